//! Traces over OTLP: `tracing` spans exported with `tracing-opentelemetry` and
//! `opentelemetry-otlp`, only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. The standard variables work as the
//! OpenTelemetry SDK reads them: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_EXPORTER_OTLP_{,TRACES_}{HEADERS,TIMEOUT,PROTOCOL}` (`http/protobuf`, the default,
//! or `http/json`), `OTEL_TRACES_SAMPLER{,_ARG}`, `OTEL_BSP_*`; `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none` turn export off.
//!
//! What joins one trace: the request's server span (`{method} {route}`, parent = an
//! incoming `traceparent`), the task submitted in it (its context is stored with the task
//! as a W3C `traceparent`), and, in whichever worker process claims the task, the claim,
//! the run, each step, each provider request (which carries `traceparent` to the
//! provider) and the settlement.
//!
//! Without an endpoint nothing here costs more than a relaxed atomic load per call site.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported by this process.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Whether the environment asks for OTLP trace export.
pub fn wanted(env: impl Fn(&str) -> Option<String>) -> bool {
    let set = |k: &str| env(k).is_some_and(|v| !v.trim().is_empty());
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// The exporting tracer provider; dropping it flushes what is buffered and stops export.
#[derive(Debug)]
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        ON.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            eprintln!("funmagic-server: flushing traces on exit failed: {e}");
        }
    }
}

/// Builds the OTLP exporter from the environment, named `service` unless
/// `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) names it. Call
/// outside the async runtime (the exporter's HTTP client is the blocking one: the SDK
/// exports from its own thread). `None` when export is not wanted.
pub fn exporter(service: &str) -> Result<Option<Exporter>, String> {
    if !wanted(|k| std::env::var(k).ok()) {
        return Ok(None);
    }
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    // The specification's default is http/protobuf (the crate would pick JSON when both
    // encodings are built in).
    let asked = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_default();
    let protocol = match asked.trim().to_ascii_lowercase().as_str() {
        "" | "http/protobuf" => Protocol::HttpBinary,
        "http/json" => Protocol::HttpJson,
        "grpc" => {
            return Err(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not built in: use http/protobuf (port 4318) or http/json".into()
            );
        }
        other => return Err(format!("OTEL_EXPORTER_OTLP_PROTOCOL: unknown protocol '{other}'")),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
        .map_err(|e| e.to_string())?;
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let mut resource = opentelemetry_sdk::Resource::builder()
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            uuid::Uuid::now_v7().hyphenated().to_string(),
        ));
    if !named {
        resource = resource.with_service_name(service.to_string());
    }
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
    Ok(Some(Exporter { provider }))
}

impl Exporter {
    /// The `tracing` layer that hands this process's spans (`funmagic*` targets, INFO and
    /// above, whatever the log filter says) to the exporter; export is on from here.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use tracing_subscriber::Layer as _;
        ON.store(true, Ordering::Relaxed);
        // The access log's span is for log lines only: the server span is `http::observe`'s.
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("funmagic_api", tracing::Level::INFO)
            .with_target("funmagic_api::http::access_log", tracing_subscriber::filter::LevelFilter::OFF)
            .with_target("funmagic_server", tracing::Level::INFO);
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("funmagic"))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_filter(filter)
    }
}

/// The W3C `traceparent` of `span` (`None` when export is off or the span is not
/// sampled): what a task stores at submit and a provider request carries.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return None;
    }
    Some(format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

/// The `traceparent` of the innermost exported span being executed (see [`traceparent`]).
/// Read from OpenTelemetry's own current context, not `Span::current()`: the current
/// `tracing` span may be one the export filter leaves out (the access log's), which has no
/// OpenTelemetry context of its own.
pub fn current() -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = opentelemetry::Context::current();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

/// Makes `span` a child of the remote span a W3C `traceparent` names (ignored when it is
/// malformed, or when `span` has started already).
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    let mut carrier = std::collections::HashMap::with_capacity(1);
    carrier.insert("traceparent".to_string(), traceparent.to_string());
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Makes `span` a child of the caller's span when the request carries a valid
/// `traceparent` (and `tracestate`).
pub fn set_parent_from_headers(span: &tracing::Span, headers: &poem::http::HeaderMap) {
    struct Headers<'a>(&'a poem::http::HeaderMap);
    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    if headers.contains_key("traceparent") {
        let cx = TraceContextPropagator::new().extract(&Headers(headers));
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }
}

/// Marks `span` as failed (OpenTelemetry status `Error`) with `message`.
pub fn set_error(span: &tracing::Span, message: impl Into<String>) {
    if enabled() {
        span.set_status(opentelemetry::trace::Status::error(message.into()));
    }
}

/// Sets one attribute on `span`'s exported span (not a log field).
pub fn set_attribute(span: &tracing::Span, key: &'static str, value: impl Into<opentelemetry::Value>) {
    if enabled() {
        span.set_attribute(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_is_wanted_only_with_an_endpoint_and_not_disabled() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string())
        };
        assert!(!wanted(env(&[])));
        assert!(!wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")])));
        assert!(wanted(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")])));
        assert!(!wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_SDK_DISABLED", "TRUE")])));
        assert!(!wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_TRACES_EXPORTER", "none")])));
        assert!(wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_SDK_DISABLED", "false")])));
    }

    #[test]
    fn no_traceparent_without_export() {
        assert!(!enabled());
        assert_eq!(current(), None);
        assert_eq!(traceparent(&tracing::info_span!("x")), None);
    }
}
