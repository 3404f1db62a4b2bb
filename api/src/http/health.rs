//! `/health`, `/health/db`, `/health/redis`, `/health/storage`, `/health/all` (the seed's
//! checks plus storage). Dependency checks run with a timeout; any failing one makes the
//! answer 503. Health routes need no authentication; anonymous callers (load balancers,
//! probes) get each check's status only, admins also the backend, the detail (versions,
//! locations, errors), latencies, the version and the uptime. Checks only read: the local
//! store's probe files are written once, at start-up.

use std::future::Future;
use std::time::{Duration, Instant};

use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiTags;
use crate::app::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Error,
}

/// The result of checking one dependency.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DependencyCheck {
    /// `database`, `redis` or `storage`.
    pub name: String,
    pub status: HealthStatus,
    /// What serves this concern: `postgres`, `sqlite`, `redis`, `embedded`, `s3`, `local`
    /// (admins only).
    pub backend: Option<String>,
    /// Version or location on success, the problem on failure (admins only).
    pub detail: Option<String>,
    /// How long the check took (admins only).
    pub latency_ms: Option<u64>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct HealthReport {
    pub status: HealthStatus,
    /// Server version (admins only).
    pub version: Option<String>,
    /// Seconds since the process started (admins only).
    pub uptime_seconds: Option<u64>,
    pub checks: Vec<DependencyCheck>,
}

#[derive(Debug, ApiResponse)]
pub enum HealthResponse {
    /// Everything checked is healthy.
    #[oai(status = 200)]
    Ok(Json<HealthReport>),
    /// At least one dependency is unhealthy; see `checks`.
    #[oai(status = 503)]
    Unavailable(Json<HealthReport>),
}

pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness: the process is up and serving.
    #[oai(path = "/health", method = "get", operation_id = "health_get")]
    async fn health(&self, state: Data<&AppState>, req: &Request) -> HealthResponse {
        report(&state, req, vec![]).await
    }

    /// Database connectivity (PostgreSQL or the embedded SQLite).
    #[oai(path = "/health/db", method = "get", operation_id = "health_db_get")]
    async fn health_db(&self, state: Data<&AppState>, req: &Request) -> HealthResponse {
        report(&state, req, vec![check_db(&state).await]).await
    }

    /// Redis connectivity; in the embedded mode, says the embedded queue is in use.
    #[oai(path = "/health/redis", method = "get", operation_id = "health_redis_get")]
    async fn health_redis(&self, state: Data<&AppState>, req: &Request) -> HealthResponse {
        report(&state, req, vec![check_redis(&state).await]).await
    }

    /// Object storage: every bucket reachable (S3) or writable (local files).
    #[oai(path = "/health/storage", method = "get", operation_id = "health_storage_get")]
    async fn health_storage(&self, state: Data<&AppState>, req: &Request) -> HealthResponse {
        report(&state, req, vec![check_storage(&state).await]).await
    }

    /// Every dependency at once.
    #[oai(path = "/health/all", method = "get", operation_id = "health_all_get")]
    async fn health_all(&self, state: Data<&AppState>, req: &Request) -> HealthResponse {
        let (db, redis, storage) = tokio::join!(check_db(&state), check_redis(&state), check_storage(&state));
        report(&state, req, vec![db, redis, storage]).await
    }
}

async fn report(state: &AppState, req: &Request, mut checks: Vec<DependencyCheck>) -> HealthResponse {
    let healthy = checks.iter().all(|c| c.status == HealthStatus::Ok);
    let admin = super::security::optional_principal(state, req)
        .await
        .is_some_and(|p| p.require(crate::auth::Access::Admin).is_ok());
    if !admin {
        for c in &mut checks {
            c.backend = None;
            c.detail = None;
            c.latency_ms = None;
        }
    }
    let report = HealthReport {
        status: if healthy { HealthStatus::Ok } else { HealthStatus::Error },
        version: admin.then(|| env!("CARGO_PKG_VERSION").to_string()),
        uptime_seconds: admin.then(|| state.uptime().as_secs()),
        checks,
    };
    if healthy { HealthResponse::Ok(Json(report)) } else { HealthResponse::Unavailable(Json(report)) }
}

/// Runs one check with the timeout, timing it.
async fn timed<F, E>(name: &str, backend: &str, check: F) -> DependencyCheck
where
    F: Future<Output = Result<String, E>>,
    E: std::fmt::Display,
{
    let start = Instant::now();
    let (status, detail) = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(detail)) => (HealthStatus::Ok, detail),
        Ok(Err(e)) => (HealthStatus::Error, e.to_string()),
        Err(_) => (HealthStatus::Error, format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
    };
    if status == HealthStatus::Error {
        tracing::warn!(dependency = name, %detail, "health check failed");
    }
    DependencyCheck {
        name: name.to_string(),
        status,
        backend: Some(backend.to_string()),
        detail: Some(detail),
        latency_ms: Some(start.elapsed().as_millis() as u64),
    }
}

async fn check_db(state: &AppState) -> DependencyCheck {
    let store = state.store();
    timed("database", store.engine().as_str(), store.ping()).await
}

async fn check_redis(state: &AppState) -> DependencyCheck {
    match state.redis() {
        Some(redis) => timed("redis", "redis", redis.ping()).await,
        None => {
            let engine = state.store().engine().as_str();
            let detail = format!("REDIS_URL is not set: the embedded queue and event bus (in {engine}) are in use");
            timed("redis", "embedded", async move { Ok::<_, String>(detail) }).await
        }
    }
}

async fn check_storage(state: &AppState) -> DependencyCheck {
    let storage = state.storage();
    timed("storage", storage.kind(), storage.health()).await
}
