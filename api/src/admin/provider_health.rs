//! Provider health: one cheap authenticated request per provider type, recorded as
//! `isHealthy`, `healthCheckedAt` and a message; run now by the admin `test` action and
//! every `providers.health_check_secs` by each API process.
//!
//! * openai — `GET {base}/models`;
//! * fal — `GET {base}/fal-ai/any/requests/{nil uuid}/status`: 404 means the key was
//!   accepted (there is no such request), 401/403 that it was not;
//! * tripo — `GET {base}/user/balance`;
//! * local — always healthy.

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::app::AppState;
use crate::providers::ProviderKind;
use crate::store::ProviderRow;

/// Checks one provider and records the result; returns (healthy, message).
pub async fn check_and_record(state: &AppState, provider: &ProviderRow) -> (bool, String) {
    let (healthy, message) = check(state, provider).await;
    if let Err(e) = state.store().provider_set_health(provider.id, healthy, Some(&message)).await {
        tracing::warn!(provider = %provider.name, error = %e, "recording provider health failed");
    }
    (healthy, message)
}

async fn check(state: &AppState, provider: &ProviderRow) -> (bool, String) {
    if provider.kind == ProviderKind::Local {
        return (true, "built in".into());
    }
    let key = match crate::providers::decrypt_key(state.master_key(), provider) {
        Ok(key) => key,
        Err(e) => return (false, e.message),
    };
    let base = crate::providers::base_url(provider);
    let base = base.trim_end_matches('/');
    let client = state.http();
    let kind = provider.kind;
    let request = match kind {
        ProviderKind::OpenAi => client.get(format!("{base}/models")).bearer_auth(key.expose_secret()),
        ProviderKind::Fal => client
            .get(format!("{base}/fal-ai/any/requests/00000000-0000-0000-0000-000000000000/status"))
            .header("Authorization", format!("Key {}", key.expose_secret())),
        ProviderKind::Tripo => client.get(format!("{base}/user/balance")).bearer_auth(key.expose_secret()),
        ProviderKind::Local => return (true, "built in".into()),
    };
    match request.timeout(Duration::from_secs(15)).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match (kind, status) {
                (_, 200..=299) | (ProviderKind::Fal, 404) => (true, format!("answered {status}")),
                (_, 401 | 403) => (false, format!("the API key was refused ({status})")),
                (_, 429) => (true, "rate limited (429), but reachable and the key accepted".into()),
                _ => (false, format!("answered {status}")),
            }
        }
        Err(e) if e.is_timeout() => (false, "no answer within 15 s".into()),
        Err(e) => (false, crate::providers::http::safe_message(&format!("unreachable: {e}"), &key)),
    }
}

/// Checks every active provider now and then, until the process ends.
pub async fn run_loop(state: AppState) {
    let every = Duration::from_secs(state.settings().providers.health_check_secs);
    loop {
        match state.store().provider_list().await {
            Ok(providers) => {
                for p in providers.iter().filter(|p| p.is_active) {
                    let (healthy, message) = check_and_record(&state, p).await;
                    if !healthy {
                        tracing::warn!(provider = %p.name, %message, "provider unhealthy");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing providers for the health check failed"),
        }
        tokio::time::sleep(every).await;
    }
}
