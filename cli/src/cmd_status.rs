//! `funmagic status`: the health of the server and every dependency.

use std::process::ExitCode;

use funmagic_sdk::types::{HealthReport, HealthStatus};

use crate::context::Context;
use crate::exit::CliError;
use crate::output::{self, DIM, ERROR, HEADER, OK};

pub async fn run(ctx: &Context) -> Result<ExitCode, CliError> {
    // 503 carries the same report: show it either way.
    let report = match ctx.client.health_all_get().await {
        Ok(resp) => resp.into_inner(),
        Err(funmagic_sdk::Error::ErrorResponse(resp)) if resp.status().as_u16() == 503 => resp.into_inner(),
        Err(e) => return Err(CliError::from_sdk(e, &ctx.api_url)),
    };
    let healthy = report.status == HealthStatus::Ok;
    if ctx.json {
        let mut value = serde_json::to_value(&report).unwrap_or_default();
        value["apiUrl"] = ctx.api_url.clone().into();
        output::print_json(&value);
    } else {
        print_human(ctx, &report);
    }
    Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// One health check of `funmagic status --only`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Check {
    /// The process answers (`/health`).
    Live,
    Db,
    Redis,
    Storage,
}

/// `funmagic status --only CHECK`: one check; exit 1 when it fails.
pub async fn run_one(ctx: &Context, check: Check) -> Result<ExitCode, CliError> {
    let result = match check {
        Check::Live => ctx.client.health_get().await,
        Check::Db => ctx.client.health_db_get().await,
        Check::Redis => ctx.client.health_redis_get().await,
        Check::Storage => ctx.client.health_storage_get().await,
    };
    let report = match result {
        Ok(resp) => resp.into_inner(),
        Err(funmagic_sdk::Error::ErrorResponse(resp)) if resp.status().as_u16() == 503 => resp.into_inner(),
        Err(e) => return Err(CliError::from_sdk(e, &ctx.api_url)),
    };
    let healthy = report.status == HealthStatus::Ok;
    if ctx.json {
        output::print_json(&report);
    } else {
        print_human(ctx, &report);
    }
    Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_human(ctx: &Context, report: &HealthReport) {
    let (word, style) = status_word(report.status);
    // Version, uptime and each check's backend, latency and detail are shown to admins only.
    let version = report.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
    let uptime = report.uptime_seconds.map(|s| format!("(up {s}s)")).unwrap_or_else(|| "(details: admins only)".into());
    anstream::println!(
        "FunMagic{version} at {} — {}{word}{} {}{uptime}{}",
        ctx.api_url,
        style.render(),
        style.render_reset(),
        DIM.render(),
        DIM.render_reset()
    );
    let mut rows =
        vec![["DEPENDENCY", "STATUS", "BACKEND", "LATENCY", "DETAIL"].map(|h| (h.to_string(), HEADER)).to_vec()];
    for check in &report.checks {
        let (word, style) = status_word(check.status);
        rows.push(vec![
            (check.name.clone(), anstyle::Style::new()),
            (word.to_string(), style),
            (check.backend.clone().unwrap_or_else(|| "-".into()), anstyle::Style::new()),
            (check.latency_ms.map(|ms| format!("{ms} ms")).unwrap_or_else(|| "-".into()), DIM),
            (check.detail.clone().unwrap_or_default(), anstyle::Style::new()),
        ]);
    }
    output::print_table(&rows);
}

fn status_word(status: HealthStatus) -> (&'static str, anstyle::Style) {
    match status {
        HealthStatus::Ok => ("ok", OK),
        HealthStatus::Error => ("error", ERROR),
    }
}
