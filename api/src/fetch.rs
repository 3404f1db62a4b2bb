//! Fetching a URL a user gave us (an `imageUrl` input) without letting it reach into our own
//! network (server-side request forgery).
//!
//! Every URL, the first and each redirect, is checked by parsing: https only (http just for
//! hosts in `tasks.image_url_allow`), no user info, and an address literal must be public.
//! Host names are resolved by [`GuardedResolver`], which drops every address that is not
//! public (loopback, private, link-local and cloud metadata, carrier-grade NAT, unique
//! local, multicast, documentation, …) before the connection is made, so a name that
//! resolves to an inside address, or rebinds to one, never gets a connection. Proxies from
//! the environment are ignored (a proxy would resolve the name itself). Bodies are read up
//! to a size cap, under one overall timeout.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How many redirects a fetch follows.
const MAX_REDIRECTS: usize = 3;

/// Why a fetch did not bring the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL (or a redirect, or the addresses its name resolves to) is not allowed.
    #[error("{0}")]
    Refused(String),
    /// The server could not be reached, or did not answer with the file.
    #[error("{0}")]
    Unreachable(String),
    /// The file is larger than the cap.
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
}

/// A refusal raised inside reqwest (by the resolver or the redirect policy), found again in
/// its error's source chain.
#[derive(Debug)]
struct Refusal(String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// Hosts exempt from the rules (`tasks.image_url_allow`): `host` or `host:port`.
#[derive(Debug, Default)]
struct Allow {
    entries: Vec<(String, Option<u16>)>,
}

impl Allow {
    fn new(list: &[String]) -> Self {
        let entries = list
            .iter()
            .filter_map(|entry| {
                let entry = entry.trim();
                // The port as written (the URL parser would drop a scheme's default, `:80`).
                let (host, port) = match entry.rsplit_once(':') {
                    Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => {
                        (h, Some(p.parse().ok()?))
                    }
                    _ => (entry, None),
                };
                let url = Url::parse(&format!("http://{host}/")).ok()?;
                Some((url.host_str()?.to_ascii_lowercase(), port))
            })
            .collect();
        Self { entries }
    }

    /// Any entry names this host (whatever its port): its addresses are not filtered.
    fn host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.entries.iter().any(|(h, _)| h.trim_start_matches('[').trim_end_matches(']') == host)
    }

    /// An entry names this URL's host and, when it gives one, its port.
    fn url(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else { return false };
        let host = host.to_ascii_lowercase();
        self.entries.iter().any(|(h, port)| *h == host && port.is_none_or(|p| Some(p) == url.port_or_known_default()))
    }
}

/// Whether an address is on the public internet: not this machine, a private or shared
/// network, link-local (where cloud metadata lives), multicast, or a reserved range.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b && !is_public_v4(embedded_v4(s[6], s[7]))) // NAT64
                || (s[0] == 0x2002 && !is_public_v4(embedded_v4(s[1], s[2]))) // 6to4
                || (s[0] == 0x2001 && s[1] == 0) // Teredo
                || (s[0..6] == [0, 0, 0, 0, 0, 0])) // IPv4-compatible (deprecated)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network"
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224) // multicast, reserved, broadcast
}

/// Checks one URL (the first, or a redirect's target) by parsing it.
fn check_url(url: &Url, allow: &Allow) -> Result<(), String> {
    let allowed = allow.url(url);
    // A host allowed on one port only: its other ports are not reachable either (its
    // addresses, inside ones included, are not filtered once resolved).
    if !allowed && url.host_str().is_some_and(|h| allow.host(h)) {
        return Err("this host is allowed on another port only".into());
    }
    match url.scheme() {
        "https" => {}
        "http" if allowed => {}
        other => return Err(format!("only https URLs are fetched, not {other}")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URLs with a user name or password are not fetched".into());
    }
    // The URL parser writes every address form (hex, decimal, short) as the canonical one.
    let host = url.host_str().ok_or("the URL has no host")?;
    let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
    if let Some(ip) = literal
        && !allowed
        && !is_public(ip)
    {
        return Err(format!("{ip} is not a public address"));
    }
    Ok(())
}

/// Resolves host names and keeps only public addresses (all of them for allowed hosts).
#[derive(Debug)]
struct GuardedResolver {
    allow: Arc<Allow>,
    /// Fixed answers for names (tests only: see `UrlFetcher::set_dns`).
    fixed: RwLock<HashMap<String, Vec<IpAddr>>>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let fixed = self.fixed.read().unwrap_or_else(|e| e.into_inner()).get(&host).cloned();
        let allowed = self.allow.host(&host);
        Box::pin(async move {
            let found: Vec<IpAddr> = match fixed {
                Some(ips) => ips,
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.map(|a| a.ip()).collect(),
            };
            let usable: Vec<SocketAddr> =
                found.iter().filter(|ip| allowed || is_public(**ip)).map(|ip| SocketAddr::new(*ip, 0)).collect();
            if usable.is_empty() {
                // One answer for both: which inside names exist is nobody's business.
                let err: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(Refusal(format!("{host} does not resolve to a public address")));
                return Err(err);
            }
            let addrs: Addrs = Box::new(usable.into_iter());
            Ok(addrs)
        })
    }
}

/// The guarded HTTP client for user-given URLs.
#[derive(Debug, Clone)]
pub struct UrlFetcher {
    client: reqwest::Client,
    allow: Arc<Allow>,
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    resolver: Arc<GuardedResolver>,
    timeout: Duration,
}

impl UrlFetcher {
    /// `allow`: `tasks.image_url_allow`; `timeout`: the whole fetch, body included.
    pub fn new(allow: &[String], timeout: Duration) -> Self {
        let allow = Arc::new(Allow::new(allow));
        let resolver = Arc::new(GuardedResolver { allow: allow.clone(), fixed: RwLock::default() });
        let policy_allow = allow.clone();
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(Refusal(format!("more than {MAX_REDIRECTS} redirects")));
            }
            match check_url(attempt.url(), &policy_allow) {
                Ok(()) => attempt.follow(),
                Err(why) => attempt.error(Refusal(format!("redirected to a refused URL: {why}"))),
            }
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(resolver.clone())
            .redirect(policy)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("funmagic/", env!("CARGO_PKG_VERSION"), " (image fetch)"))
            .build()
            .expect("the fetch client's settings are valid");
        Self { client, allow, resolver, timeout }
    }

    /// Makes `name` resolve to `ips` (tests: a name that resolves to a private address
    /// without touching the machine's DNS). The guard applies to these answers as to any.
    #[cfg(feature = "testing")]
    pub fn set_dns(&self, name: &str, ips: Vec<IpAddr>) {
        self.resolver.fixed.write().unwrap_or_else(|e| e.into_inner()).insert(name.to_ascii_lowercase(), ips);
    }

    /// GETs `raw` and reads at most `max` bytes of body; returns the body and the final URL.
    pub async fn fetch(&self, raw: &str, max: u64) -> Result<(Bytes, Url), FetchError> {
        let url = Url::parse(raw).map_err(|e| FetchError::Refused(format!("not a URL: {e}")))?;
        check_url(&url, &self.allow).map_err(FetchError::Refused)?;
        tokio::time::timeout(self.timeout, self.get(url, max))
            .await
            .unwrap_or_else(|_| Err(FetchError::Unreachable(format!("no file within {} s", self.timeout.as_secs()))))
    }

    async fn get(&self, url: Url, max: u64) -> Result<(Bytes, Url), FetchError> {
        let resp = self.client.get(url).send().await.map_err(classify)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchError::Unreachable(format!("the server answered {status}")));
        }
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(FetchError::TooLarge(max));
        }
        let final_url = resp.url().clone();
        let mut body = BytesMut::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(classify)?;
            if (body.len() + chunk.len()) as u64 > max {
                return Err(FetchError::TooLarge(max));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body.freeze(), final_url))
    }
}

/// The guarded client for customers' webhook endpoints: the address rules of
/// [`UrlFetcher`] (with its own allow-list, `webhooks.allow`), checked on the URL and again
/// on every connection's resolved addresses; no redirect is followed (a 3xx is the answer,
/// and a failed delivery).
#[derive(Debug, Clone)]
pub struct WebhookPoster {
    client: reqwest::Client,
    allow: Arc<Allow>,
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    resolver: Arc<GuardedResolver>,
}

/// What an endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After` in seconds (an HTTP date is read as its distance from now).
    pub retry_after: Option<Duration>,
    /// The start of the body (at most 1 KiB, lossy UTF-8), for the delivery log.
    pub excerpt: String,
}

impl WebhookPoster {
    /// `allow`: `webhooks.allow`; `timeout`: the whole request, body included.
    pub fn new(allow: &[String], timeout: Duration) -> Self {
        let allow = Arc::new(Allow::new(allow));
        let resolver = Arc::new(GuardedResolver { allow: allow.clone(), fixed: RwLock::default() });
        let client = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(resolver.clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .user_agent(concat!("funmagic-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the webhook client's settings are valid");
        Self { client, allow, resolver }
    }

    /// Makes `name` resolve to `ips` (tests), as [`UrlFetcher::set_dns`].
    #[cfg(feature = "testing")]
    pub fn set_dns(&self, name: &str, ips: Vec<IpAddr>) {
        self.resolver.fixed.write().unwrap_or_else(|e| e.into_inner()).insert(name.to_ascii_lowercase(), ips);
    }

    /// Parses an endpoint URL and checks it by the rules, its name's addresses included.
    pub async fn check(&self, raw: &str) -> Result<Url, FetchError> {
        let url = Url::parse(raw).map_err(|e| FetchError::Refused(format!("not a URL: {e}")))?;
        check_url(&url, &self.allow).map_err(FetchError::Refused)?;
        if url.fragment().is_some() {
            return Err(FetchError::Refused("an endpoint URL has no #fragment".into()));
        }
        if let Some(host) = url.domain().map(str::to_ascii_lowercase)
            && !self.allow.host(&host)
        {
            let fixed = self.resolver.fixed.read().unwrap_or_else(|e| e.into_inner()).get(&host).cloned();
            let found: Vec<IpAddr> = match fixed {
                Some(ips) => ips,
                None => tokio::net::lookup_host((host.as_str(), 0))
                    .await
                    .map_err(|_| FetchError::Refused(format!("{host} does not resolve")))?
                    .map(|a| a.ip())
                    .collect(),
            };
            if !found.iter().any(|ip| is_public(*ip)) {
                return Err(FetchError::Refused(format!("{host} does not resolve to a public address")));
            }
        }
        Ok(url)
    }

    /// POSTs `body` to `url` with `headers`; any answer is an [`Answer`] (redirects too).
    pub async fn post(
        &self,
        url: &str,
        headers: reqwest::header::HeaderMap,
        body: Vec<u8>,
    ) -> Result<Answer, FetchError> {
        let url = Url::parse(url).map_err(|e| FetchError::Refused(format!("not a URL: {e}")))?;
        check_url(&url, &self.allow).map_err(FetchError::Refused)?;
        let resp = self.client.post(url).headers(headers).body(body).send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        let retry_after =
            resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| {
                v.trim().parse::<u64>().ok().map(Duration::from_secs).or_else(|| {
                    let at = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
                    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
                })
            });
        let mut excerpt = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            excerpt.extend_from_slice(&chunk[..chunk.len().min(1024 - excerpt.len())]);
            if excerpt.len() >= 1024 {
                break;
            }
        }
        Ok(Answer { status, retry_after, excerpt: String::from_utf8_lossy(&excerpt).into_owned() })
    }
}

/// A reqwest error: a refusal of ours somewhere in its causes, or the server unreachable.
fn classify(err: reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(refusal) = e.downcast_ref::<Refusal>() {
            return FetchError::Refused(refusal.0.clone());
        }
        source = e.source();
    }
    let what = if err.is_timeout() {
        "the server did not answer in time"
    } else if err.is_connect() {
        "the server could not be reached"
    } else {
        "the download failed"
    };
    FetchError::Unreachable(what.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_inside_addresses() {
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
        ] {
            assert!(!is_public(inside.parse().unwrap()), "{inside}");
        }
        for public in ["1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "64:ff9b::808:808"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_checked_by_parsing() {
        let none = Allow::default();
        let check = |u: &str, allow: &Allow| check_url(&Url::parse(u).unwrap(), allow);
        assert!(check("https://images.example.com/a.png", &none).is_ok());
        assert!(check("http://images.example.com/a.png", &none).is_err(), "http needs the allow-list");
        assert!(check("https://127.0.0.1/a.png", &none).is_err());
        assert!(check("https://[::1]/a.png", &none).is_err());
        assert!(check("https://0x7f000001/a.png", &none).is_err(), "hex forms parse to the same address");
        assert!(check("https://2130706433/a.png", &none).is_err());
        assert!(check("https://user:pw@images.example.com/a.png", &none).is_err());
        assert!(check("ftp://images.example.com/a.png", &none).is_err());
        let allow = Allow::new(&["127.0.0.1:8080".into(), "Images.Internal".into()]);
        assert!(check("http://127.0.0.1:8080/a.png", &allow).is_ok());
        assert!(check("http://127.0.0.1/a.png", &allow).is_err(), "another port");
        assert!(check("http://images.internal/a.png", &allow).is_ok());
        assert!(allow.host("127.0.0.1") && allow.host("images.internal") && !allow.host("evil.example"));
        let one_port = Allow::new(&["images.internal:80".into()]);
        assert!(check("http://images.internal/a.png", &one_port).is_ok(), ":80 is the http default");
        assert!(check("https://images.internal/a.png", &one_port).is_err(), "443 is another port");
        assert!(check("http://images.internal:8080/a.png", &one_port).is_err());
    }
}
