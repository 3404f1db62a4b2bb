//! Metrics in the Prometheus text format, named after the OpenTelemetry semantic
//! conventions as Prometheus renders them (`http_server_request_duration_seconds`, …) and
//! the platform's own `funmagic_*`, through the `metrics` facade and
//! `metrics-exporter-prometheus` (installed once per process). Labels are bounded: a route
//! template, a tool's slug, a provider's kind, a status — never a user or task id.
//!
//! `GET /metrics` is served on its own listener (`metrics.listen`, off by default) so it is
//! never public by accident; API and worker processes both expose it. Gauges that mirror the
//! database (queue depth, dead letters, pool use) are read when the endpoint is scraped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use uuid::Uuid;

use crate::app::AppState;
pub use crate::meter::{REDIS_CONNECTIONS, enabled, install, redis_in_use, redis_reconnect};

/// The text of `/metrics`, with the gauges read from the database first.
pub async fn render(state: &AppState) -> String {
    if let Ok((waiting, running, delayed)) = state.store().queue_depth().await {
        metrics::gauge!("funmagic_task_queue_depth", "state" => "waiting").set(waiting as f64);
        metrics::gauge!("funmagic_task_queue_depth", "state" => "running").set(running as f64);
        metrics::gauge!("funmagic_task_queue_depth", "state" => "delayed").set(delayed as f64);
    }
    if let Ok(dead) = state.store().dead_letter_count().await {
        metrics::gauge!("funmagic_task_queue_depth", "state" => "dead").set(dead as f64);
    }
    if ledger_check_due(state) {
        check_ledger(state).await;
    }
    let (size, idle) = state.store().pool_stats();
    metrics::gauge!("funmagic_db_pool_connections", "state" => "idle").set(idle as f64);
    metrics::gauge!("funmagic_db_pool_connections", "state" => "in_use")
        .set((size as usize).saturating_sub(idle) as f64);
    install().map(|h| h.render()).unwrap_or_default()
}

/// How often a scrape also checks the credit ledger's invariants over all accounts (three
/// aggregate queries: cheap, but not for every scrape of every process).
const LEDGER_CHECK_EVERY: Duration = Duration::from_secs(300);

/// When each database's ledger was last checked by this process.
static LEDGER_CHECKED: LazyLock<Mutex<HashMap<String, std::time::Instant>>> = LazyLock::new(Default::default);

fn ledger_check_due(state: &AppState) -> bool {
    let settings = state.settings();
    let url = settings.database.url.as_ref().map(|u| secrecy::ExposeSecret::expose_secret(u).to_string());
    let key = format!("{}|{}", url.unwrap_or_default(), settings.data_dir.display());
    let mut checked = LEDGER_CHECKED.lock().unwrap_or_else(|p| p.into_inner());
    let now = std::time::Instant::now();
    match checked.get(&key) {
        Some(at) if now.duration_since(*at) < LEDGER_CHECK_EVERY => false,
        _ => {
            checked.insert(key, now);
            true
        }
    }
}

/// Checks the credit ledger's invariants over all accounts, sets
/// `funmagic_credits_invariant_violations` (an alert fires above 0) and logs what broke;
/// returns how many invariants are broken (`None`: the check could not run).
pub async fn check_ledger(state: &AppState) -> Option<usize> {
    match state.store().credits_ledger_violations().await {
        Ok(violations) => {
            metrics::gauge!("funmagic_credits_invariant_violations").set(violations.len() as f64);
            if !violations.is_empty() {
                tracing::error!(?violations, "the credit ledger's invariants do not hold");
            }
            Some(violations.len())
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not check the credit ledger");
            None
        }
    }
}

/// Serves `GET /metrics` on `listen` until the process ends.
pub async fn serve(state: AppState, listen: SocketAddr) -> std::io::Result<SocketAddr> {
    use poem::listener::{Acceptor, Listener, TcpListener};
    install();
    if state.redis().is_some() {
        redis_in_use();
    }
    let acceptor = TcpListener::bind(listen).into_acceptor().await?;
    let addr = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).unwrap_or(listen);
    let app = poem::Route::new().at(
        "/metrics",
        poem::get(poem::endpoint::make(move |_| {
            let state = state.clone();
            async move {
                poem::Response::builder()
                    .content_type("text/plain; version=0.0.4; charset=utf-8")
                    .body(render(&state).await)
            }
        })),
    );
    tokio::spawn(async move {
        if let Err(e) = poem::Server::new_with_acceptor(acceptor).run(app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    tracing::info!(%addr, "metrics on http://{addr}/metrics");
    Ok(addr)
}

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `fut` as the request `id` (see [`current_request_id`]).
pub async fn with_request_id<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The id of the request being served, if any (JSON error bodies carry it).
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// An incoming `X-Request-Id` worth keeping: 1–128 visible characters of `[A-Za-z0-9._:-]`
/// (anything else is replaced, so a log line cannot be forged through it).
pub fn sane_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// One HTTP request's end.
pub fn http_request(method: &str, route: &str, status: u16, took: Duration) {
    metrics::histogram!(
        "http_server_request_duration_seconds",
        "http_request_method" => method.to_string(),
        "http_route" => route.to_string(),
        "http_response_status_code" => status.to_string(),
    )
    .record(took.as_secs_f64());
}

/// Counts a request in flight while it lives.
pub struct ActiveRequest;

impl ActiveRequest {
    pub fn start() -> Self {
        metrics::gauge!("http_server_active_requests").increment(1.0);
        ActiveRequest
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        metrics::gauge!("http_server_active_requests").decrement(1.0);
    }
}

/// Tools' slugs by id (labels name tools by slug; ids never become labels).
static SLUGS: LazyLock<Mutex<HashMap<Uuid, String>>> = LazyLock::new(Default::default);

/// The slug of a tool for labels (looked up once per tool and process).
pub async fn tool_label(state: &AppState, tool_id: Uuid) -> String {
    if !enabled() {
        return String::new(); // no metrics: no lookup on the task path
    }
    if let Some(slug) = SLUGS.lock().unwrap_or_else(|p| p.into_inner()).get(&tool_id) {
        return slug.clone();
    }
    let slug = match state.store().tool_get(tool_id).await {
        Ok(Some(tool)) => tool.slug,
        _ => return "unknown".into(),
    };
    SLUGS.lock().unwrap_or_else(|p| p.into_inner()).insert(tool_id, slug.clone());
    slug
}

pub fn task_submitted(tool: &str) {
    metrics::counter!("funmagic_tasks_submitted_total", "tool" => tool.to_string()).increment(1);
}

/// A task ended with `status`, spending `spend` of its reservation (`None`: all of it);
/// labelled with the task the caller works on (see [`with_task`]).
pub fn task_ended(status: &str, spend: Option<i64>) {
    if !enabled() {
        return;
    }
    let labels = current_task().unwrap_or_else(|| TaskLabels { tool: "unknown".into(), cost: 0 });
    task_finished(&labels.tool, status);
    let spent = spend.unwrap_or(labels.cost).clamp(0, labels.cost.max(0));
    credits("spent", spent);
    credits("released", labels.cost - spent);
}

pub fn task_finished(tool: &str, status: &str) {
    metrics::counter!("funmagic_tasks_finished_total", "tool" => tool.to_string(), "status" => status.to_string())
        .increment(1);
}

pub fn queue_wait(took: Duration) {
    metrics::histogram!("funmagic_task_queue_wait_seconds").record(took.as_secs_f64());
}

pub fn step_run(tool: &str, provider: &str, outcome: &str, took: Duration) {
    metrics::histogram!(
        "funmagic_task_run_seconds",
        "tool" => tool.to_string(),
        "provider" => provider.to_string(),
        "outcome" => outcome.to_string(),
    )
    .record(took.as_secs_f64());
    metrics::counter!("funmagic_provider_requests_total", "provider" => provider.to_string(), "outcome" => outcome.to_string())
        .increment(1);
    metrics::histogram!("funmagic_provider_request_seconds", "provider" => provider.to_string())
        .record(took.as_secs_f64());
}

pub fn task_retry() {
    metrics::counter!("funmagic_task_retries_total").increment(1);
}

/// Credits moved: `kind` is granted, reserved, spent or released.
pub fn credits(kind: &'static str, amount: i64) {
    if amount > 0 {
        metrics::counter!("funmagic_credits_total", "type" => kind).increment(amount as u64);
    }
}

pub fn sse_stream_opened() {
    metrics::gauge!("funmagic_sse_streams_open").increment(1.0);
}

pub fn sse_stream_closed() {
    metrics::gauge!("funmagic_sse_streams_open").decrement(1.0);
}

pub fn upload_completed(bytes: u64) {
    metrics::counter!("funmagic_uploads_bytes_total").increment(bytes);
}

/// What a task's metrics are labelled with, known where it runs (the worker) or ends.
#[derive(Debug, Clone)]
pub struct TaskLabels {
    pub tool: String,
    pub cost: i64,
}

tokio::task_local! {
    static TASK: TaskLabels;
}

/// Runs `fut` with the labels of the task it works on (see [`current_task`]).
pub async fn with_task<F: std::future::Future>(labels: TaskLabels, fut: F) -> F::Output {
    TASK.scope(labels, fut).await
}

/// The labels of the task being worked on, if any.
pub fn current_task() -> Option<TaskLabels> {
    TASK.try_with(Clone::clone).ok()
}

/// A task event stream held open; counted while it lives.
pub struct OpenStream;

impl OpenStream {
    pub fn start() -> Self {
        sse_stream_opened();
        OpenStream
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        sse_stream_closed();
    }
}
