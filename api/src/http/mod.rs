//! The HTTP surface: poem-openapi operations grouped by resource, the spec at
//! `/openapi.json`, the explorer at `/docs`, and JSON errors for everything.
//!
//! Handlers are thin: they parse, call the app layer, and map [`crate::error::AppError`]
//! through [`error::ErrorResponse`].

pub mod error;
pub mod health;

use poem::middleware::Tracing;
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{OpenApiService, Tags};

use crate::app::AppState;

/// Operation groups; every operation carries exactly one.
#[derive(Debug, Tags)]
pub enum ApiTags {
    /// Liveness and dependency checks.
    #[oai(rename = "health")]
    Health,
}

/// Every API of the server, in the order they appear in the spec.
/// (A tuple once there is more than one.)
pub type Apis = health::HealthApi;

fn apis() -> Apis {
    health::HealthApi
}

/// The OpenAPI service; its spec needs no live services.
pub fn api_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(apis(), "FunMagic API", env!("CARGO_PKG_VERSION")).description(
        "Multi-tenant AI tools platform: upload images, run AI tools, watch live progress, pay with credits. \
             Errors are JSON `{\"error\", \"code\"}` with a stable code.",
    )
}

/// The spec as committed in `openapi/funmagic.json` (pretty JSON, trailing newline).
pub fn spec_json() -> String {
    let mut spec = api_service().spec();
    if !spec.ends_with('\n') {
        spec.push('\n');
    }
    spec
}

/// All routes, with shared state and JSON errors.
pub fn routes(state: AppState) -> impl Endpoint {
    let service = api_service();
    let docs = service.swagger_ui();
    let spec = service.spec_endpoint();
    Route::new()
        .nest("/", service)
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .data(state)
        .with(Tracing)
        .catch_all_error(|err| async move { error::json_error_body(&err) })
}
