//! `[tasks]` (queue and workers), `[providers]` (the AI services) and `[limits]` (per-user
//! request limits).

use secrecy::SecretString;

use super::section::{at_least, section, within};

section! {
    /// The queue and the workers.
    pub struct TaskLayer => TaskSettings in "tasks" {
        lease_secs: u64 {
            env: "FUNMAGIC_TASK_LEASE_SECS",
            default: 45u64,
            check: at_least(3),
            help: "a task whose worker stops renewing its lease this long is run by another worker",
        },
        max_attempts: u32 {
            env: "FUNMAGIC_TASK_MAX_ATTEMPTS",
            default: 3u32,
            check: at_least(1),
            help: "runs of a task before a transient failure becomes final",
        },
        retry_base_ms: u64 {
            env: "FUNMAGIC_TASK_RETRY_BASE_MS",
            default: 1000u64,
            help: "first retry delay; doubles per attempt (max 5 min), plus jitter",
        },
        step_timeout_secs: u64 {
            env: "FUNMAGIC_STEP_TIMEOUT_SECS",
            default: 900u64,
            check: at_least(1),
            help: "a step running longer is stopped and counts as a transient failure",
        },
        max_running_per_user: u32 {
            env: "FUNMAGIC_MAX_RUNNING_PER_USER",
            default: 3u32,
            help: "tasks of one user run at once at most (0 = no limit); the rest wait their turn",
        },
        max_waiting: u64 {
            env: "FUNMAGIC_QUEUE_MAX_WAITING",
            default: 2000u64,
            help: "due tasks waiting for a worker (all users, not counting those of a user at their running limit) beyond which new submissions wait for room (0 = no bound)",
        },
        admit_wait_secs: u64 {
            env: "FUNMAGIC_QUEUE_ADMIT_WAIT_SECS",
            default: 15u64,
            check: within(1, MAX_ADMIT_WAIT_SECS),
            help: "a submission held by tasks.max_waiting that finds no room this long (at most 30 s, and less than idle_timeout_secs) is answered 503 QUEUE_FULL with Retry-After",
        },
        reconcile_secs: u64 {
            env: "FUNMAGIC_QUEUE_RECONCILE_SECS",
            default: 30u64,
            check: at_least(1),
            help: "scale-out: a due task not picked up this long is sent to the Redis queue again",
        },
        event_ttl_secs: u64 {
            env: "FUNMAGIC_EVENT_STREAM_TTL_SECS",
            default: 3600u64,
            check: at_least(1),
            help: "scale-out: how long Redis keeps the latest progress of a running task (for streams that join late)",
        },
        image_url_allow: Vec<String> {
            env: "FUNMAGIC_IMAGE_URL_ALLOW",
            default: Vec::<String>::new(),
            shown: "(none)",
            check: hosts,
            help: "comma-separated hosts (host or host:port) whose imageUrl inputs may use http and private addresses (an internal image server; tests)",
        },
        image_url_timeout_secs: u64 {
            env: "FUNMAGIC_IMAGE_URL_TIMEOUT_SECS",
            default: 20u64,
            check: at_least(1),
            help: "an imageUrl input not downloaded within this is refused",
        },
    }
}

/// The longest `tasks.admit_wait_secs`: a held request must get its answer well within the
/// server's idle timeout and a client's patience, and before its `Idempotency-Key` (held
/// while it waits) may be taken over by a retry.
pub const MAX_ADMIT_WAIT_SECS: u64 = 30;

/// Check: each `host` or `host:port`, nothing more.
pub(super) fn hosts(list: &[String]) -> Result<(), String> {
    for entry in list {
        let ok = reqwest::Url::parse(&format!("http://{entry}/"))
            .is_ok_and(|u| u.host_str().is_some() && u.path() == "/" && u.username().is_empty() && u.query().is_none())
            && !entry.contains(['/', '@', '?', '#']);
        if !ok {
            return Err(format!("'{entry}' is not a host or host:port"));
        }
    }
    Ok(())
}

section! {
    /// OpenAI, fal.ai and Tripo: how their API keys are kept and how they are called.
    pub struct ProviderLayer => ProviderSettings in "providers" {
        master_key: SecretString {
            env: "FUNMAGIC_MASTER_KEY",
            shown: "(generated in data_dir/master.key)",
            help: "32 bytes (base64 or 64 hex digits) that encrypt provider API keys (AES-256-GCM)",
        },
        timeout_secs: u64 {
            env: "FUNMAGIC_PROVIDER_TIMEOUT_SECS",
            default: 60u64,
            check: at_least(1),
            help: "one HTTP request to OpenAI, fal.ai or Tripo takes at most this long",
        },
        max_retries: u32 {
            env: "FUNMAGIC_PROVIDER_MAX_RETRIES",
            default: 3u32,
            help: "retries of one provider request on 429, 5xx and timeouts (Retry-After honoured)",
        },
        poll_ms: u64 {
            env: "FUNMAGIC_PROVIDER_POLL_MS",
            default: 2000u64,
            check: at_least(1),
            help: "how often a queued provider job (fal.ai, Tripo) is polled",
        },
        health_check_secs: u64 {
            env: "FUNMAGIC_PROVIDER_HEALTH_SECS",
            default: 300u64,
            check: at_least(1),
            help: "how often the API checks each active provider's health",
        },
    }
}

section! {
    /// Per-user request limits (0 = no limit); windows are one minute, counted in Redis in
    /// scale-out mode and in process memory in the embedded default.
    pub struct LimitLayer => LimitSettings in "limits" {
        task_submits_per_minute: u32 {
            env: "FUNMAGIC_LIMIT_TASK_SUBMITS_PER_MINUTE",
            default: 6000u32,
            help: "task submissions per user per minute (0 = no limit); over it: 429 with `Retry-After`",
        },
        presigns_per_minute: u32 {
            env: "FUNMAGIC_LIMIT_PRESIGNS_PER_MINUTE",
            default: 600u32,
            help: "upload URLs per user per minute (0 = no limit)",
        },
        stream_opens_per_minute: u32 {
            env: "FUNMAGIC_LIMIT_STREAM_OPENS_PER_MINUTE",
            default: 1200u32,
            help: "task event streams opened per user per minute (0 = no limit)",
        },
        max_streams_per_user: u32 {
            env: "FUNMAGIC_MAX_STREAMS_PER_USER",
            default: 100u32,
            help: "task event streams one user may hold open at once, per API process (0 = no limit)",
        },
    }
}
