//! The process's metrics recorder (`metrics-exporter-prometheus`, installed once) and the
//! few counters that low-level modules bump (Redis reconnects). A leaf module, so the
//! connection code can count without depending on the app; `telemetry` builds on it.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Request and step durations: 5 ms to 2 minutes.
const SECONDS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once; later calls reuse it). `None` when another
/// recorder is installed already (a test harness).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder =
                PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS).ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            // Histograms keep their samples until upkeep drains them into the buckets; without
            // a scrape they would pile up (install_recorder leaves upkeep to the caller).
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
            Some(handle)
        })
        .as_ref()
}

/// Whether metrics are kept in this process (`metrics.listen` set, or a test installed the
/// recorder): without it the request path skips naming routes and building labels.
pub fn enabled() -> bool {
    HANDLE.get().is_some_and(Option::is_some)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!("http_server_request_duration_seconds", Unit::Seconds, "Duration of HTTP server requests");
    describe_gauge!("http_server_active_requests", "HTTP server requests in flight");
    describe_counter!("funmagic_tasks_submitted_total", "Tasks accepted, by tool");
    describe_counter!("funmagic_tasks_finished_total", "Tasks that reached a terminal state, by tool and status");
    describe_histogram!("funmagic_task_queue_wait_seconds", Unit::Seconds, "From submission to a worker's claim");
    describe_histogram!("funmagic_task_run_seconds", Unit::Seconds, "One step's run, by tool, provider and outcome");
    describe_gauge!("funmagic_task_queue_depth", "Tasks in the queue by state (waiting, delayed, running, dead)");
    describe_counter!(
        "funmagic_task_submits_held_total",
        "Submissions held because tasks.max_waiting tasks were waiting, by outcome (admitted, refused)"
    );
    describe_counter!("funmagic_task_retries_total", "Steps scheduled to run again after a transient failure");
    describe_counter!("funmagic_provider_requests_total", "Provider step runs, by provider kind and outcome");
    describe_histogram!("funmagic_provider_request_seconds", Unit::Seconds, "Provider step runs, by provider kind");
    describe_counter!("funmagic_credits_total", "Credits moved, by type (granted, reserved, spent, released)");
    describe_gauge!("funmagic_sse_streams_open", "Task event streams open in this process");
    describe_counter!("funmagic_uploads_bytes_total", "Bytes of completed uploads");
    describe_gauge!("funmagic_db_pool_connections", "Database pool connections by state (in_use, idle)");
    describe_counter!(
        "funmagic_redis_reconnects_total",
        "Redis connections lost and opened again, by connection (commands, events, queue)"
    );
    describe_gauge!(
        "funmagic_credits_invariant_violations",
        "Credit ledger invariants broken over all accounts (checked every 5 minutes at scrape)"
    );
}

/// The Redis connections whose reconnects are counted: `commands` (the shared connection
/// of a single Redis server; counted per command or pipeline that failed on a lost
/// connection, which makes the manager reconnect; a Redis Cluster client reconnects inside
/// redis-rs unseen),
/// `events` (the Pub/Sub subscription of task events) and `queue` (a worker's blocking reader).
pub const REDIS_CONNECTIONS: [&str; 3] = ["commands", "events", "queue"];

/// Starts the reconnect counters at zero in scale-out mode, so a dashboard shows 0, not
/// "no data", until the first reconnect.
pub fn redis_in_use() {
    if enabled() {
        for connection in REDIS_CONNECTIONS {
            metrics::counter!("funmagic_redis_reconnects_total", "connection" => connection).increment(0);
        }
    }
}

/// A Redis connection lost and opened again (see [`REDIS_CONNECTIONS`]).
pub fn redis_reconnect(connection: &'static str) {
    if enabled() {
        metrics::counter!("funmagic_redis_reconnects_total", "connection" => connection).increment(1);
    }
}
