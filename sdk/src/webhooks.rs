//! Verifying the webhooks FunMagic sends, in the [Standard Webhooks] format.
//!
//! Every delivery carries three headers: `webhook-id` (the message id: the same on every
//! retry, so it is the receiver's dedupe key), `webhook-timestamp` (Unix seconds of this
//! attempt) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`;
//! several, space-separated, while an endpoint's old and new secrets both sign during a
//! rotation). The secret is shown once, as `whsec_<base64 key>`.
//!
//! ```no_run
//! # fn handle(headers: &reqwest::header::HeaderMap, body: &[u8]) -> Result<(), funmagic_sdk::webhooks::WebhookError> {
//! let secret = std::env::var("FUNMAGIC_WEBHOOK_SECRET").unwrap(); // whsec_…
//! funmagic_sdk::webhooks::verify(&secret, headers, body)?;
//! let event: serde_json::Value = serde_json::from_slice(body).unwrap();
//! println!("{} for task {}", event["type"], event["data"]["taskId"]);
//! # Ok(())
//! # }
//! ```
//!
//! Delivery is at least once: a receiver that answers anything but 2xx (or not within the
//! timeout) gets the same `webhook-id` again later. Events of one task carry a `sequence`
//! (`data.sequence`) to order them by; deliveries themselves may arrive out of order.
//!
//! [Standard Webhooks]: https://www.standardwebhooks.com/

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far a `webhook-timestamp` may be from the receiver's clock (either way): older
/// messages are refused as replays, newer ones as forged.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the secret is not a whsec_ secret (base64 after the prefix)")]
    BadSecret,
    #[error("the {0} header is missing or not text")]
    MissingHeader(&'static str),
    #[error("the webhook-timestamp header is not a Unix time in seconds")]
    BadTimestamp,
    #[error("the message is {0} s away from this clock, beyond the tolerance")]
    OutsideTolerance(i64),
    #[error("no signature matches")]
    NoMatch,
}

/// The HMAC key of a `whsec_…` secret (the prefix is optional, as in the reference
/// libraries).
fn key(secret: &str) -> Result<Vec<u8>, WebhookError> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .map_err(|_| WebhookError::BadSecret)
        .and_then(|k| if k.is_empty() { Err(WebhookError::BadSecret) } else { Ok(k) })
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` value one `secret` gives a message: `v1,<base64>`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, WebhookError> {
    let key = key(secret)?;
    Ok(format!("v1,{}", STANDARD.encode(mac(&key, id, timestamp, body).finalize().into_bytes())))
}

/// Checks a delivery's headers and raw body against `secret`, at the current time.
pub fn verify(secret: &str, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Result<(), WebhookError> {
    let header =
        |name: &'static str| headers.get(name).and_then(|v| v.to_str().ok()).ok_or(WebhookError::MissingHeader(name));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    verify_parts(secret, header("webhook-id")?, header("webhook-timestamp")?, header("webhook-signature")?, body, now)
}

/// [`verify`] from the three header values, at `now` (Unix seconds): the timestamp within
/// [`TOLERANCE_SECS`] of `now`, and any `v1` signature in the space-separated list made
/// with `secret` (compared in constant time).
pub fn verify_parts(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), WebhookError> {
    let key = key(secret)?;
    let ts: i64 = timestamp.trim().parse().map_err(|_| WebhookError::BadTimestamp)?;
    let skew = now - ts;
    if skew.abs() > TOLERANCE_SECS {
        return Err(WebhookError::OutsideTolerance(skew));
    }
    let expected = mac(&key, id, ts, body);
    let matched = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|sig| STANDARD.decode(sig).is_ok_and(|raw| expected.clone().verify_slice(&raw).is_ok()));
    if matched { Ok(()) } else { Err(WebhookError::NoMatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks specification's reference vector (the same in every reference
    // library): a receiver's off-the-shelf library accepts what matches it.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_reference_vector() {
        assert_eq!(sign(SECRET, ID, TS, BODY).unwrap(), SIGNATURE);
        // The prefix is optional, as in the reference libraries.
        assert_eq!(sign(SECRET.trim_start_matches("whsec_"), ID, TS, BODY).unwrap(), SIGNATURE);
    }

    #[test]
    fn verifies_the_reference_vector_and_refuses_tampering() {
        assert_eq!(verify_parts(SECRET, ID, "1614265330", SIGNATURE, BODY, TS), Ok(()));
        // Either of two signatures (a secret rotation) is enough; unknown versions are skipped.
        let two = format!("v1a,ignored v1,bm9wZQ== {SIGNATURE}");
        assert_eq!(verify_parts(SECRET, ID, "1614265330", &two, BODY, TS + 10), Ok(()));
        assert_eq!(
            verify_parts(SECRET, ID, "1614265330", SIGNATURE, br#"{"test": 2432232315}"#, TS),
            Err(WebhookError::NoMatch)
        );
        assert_eq!(verify_parts(SECRET, "msg_other", "1614265330", SIGNATURE, BODY, TS), Err(WebhookError::NoMatch));
        assert_eq!(
            verify_parts("whsec_c2VjcmV0", ID, "1614265330", SIGNATURE, BODY, TS),
            Err(WebhookError::NoMatch),
            "another secret"
        );
        assert_eq!(verify_parts(SECRET, ID, "1614265330", "v1,%%%", BODY, TS), Err(WebhookError::NoMatch));
        assert_eq!(verify_parts("whsec_!!", ID, "1614265330", SIGNATURE, BODY, TS), Err(WebhookError::BadSecret));
    }

    #[test]
    fn timestamps_outside_the_tolerance_are_refused() {
        let old = TS + TOLERANCE_SECS + 1;
        assert_eq!(
            verify_parts(SECRET, ID, "1614265330", SIGNATURE, BODY, old),
            Err(WebhookError::OutsideTolerance(TOLERANCE_SECS + 1))
        );
        let future = TS - TOLERANCE_SECS - 1;
        assert!(matches!(
            verify_parts(SECRET, ID, "1614265330", SIGNATURE, BODY, future),
            Err(WebhookError::OutsideTolerance(_))
        ));
        assert_eq!(verify_parts(SECRET, ID, "soon", SIGNATURE, BODY, TS), Err(WebhookError::BadTimestamp));
    }

    #[test]
    fn verifies_from_headers() {
        let mut headers = reqwest::header::HeaderMap::new();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        headers.insert("webhook-id", ID.parse().unwrap());
        headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
        assert_eq!(verify(SECRET, &headers, BODY), Err(WebhookError::MissingHeader("webhook-signature")));
        headers.insert("webhook-signature", sign(SECRET, ID, now, BODY).unwrap().parse().unwrap());
        assert_eq!(verify(SECRET, &headers, BODY), Ok(()));
    }
}
