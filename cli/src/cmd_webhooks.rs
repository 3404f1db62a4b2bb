//! `funmagic webhooks add|list|show|update|enable|disable|rm|test|rotate|deliveries|replay|credits-low`:
//! endpoints that receive task events (Standard Webhooks), their signing secrets and their
//! delivery logs.

use std::process::ExitCode;

use clap::Subcommand;
use funmagic_sdk::types;
use serde_json::json;

use crate::context::Context;
use crate::exit::CliError;
use crate::output::{self, DIM, HEADER, OK};

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Add an endpoint; its signing secret (whsec_…) is printed once.
    Add {
        /// https URL (http only for hosts the server allows).
        url: String,
        /// An event type to send (repeat for more; default: all): task.queued, task.started,
        /// task.step_completed, task.succeeded, task.failed, task.cancelled, credits.low.
        #[arg(long = "event", value_parser = output::api_enum::<types::WebhookEventType>)]
        events: Vec<types::WebhookEventType>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Your endpoints.
    List,
    /// One endpoint.
    Show { id: uuid::Uuid },
    /// Change an endpoint (what is not given stays).
    Update {
        id: uuid::Uuid,
        #[arg(long)]
        url: Option<String>,
        /// The event types to send (repeat; replaces the list).
        #[arg(long = "event", value_parser = output::api_enum::<types::WebhookEventType>)]
        events: Vec<types::WebhookEventType>,
        /// Send every event type.
        #[arg(long, conflicts_with = "events")]
        all_events: bool,
        #[arg(long)]
        description: Option<String>,
    },
    /// Enable an endpoint again (clears its failure record).
    Enable { id: uuid::Uuid },
    /// Stop sending to an endpoint.
    Disable { id: uuid::Uuid },
    /// Remove an endpoint.
    Rm { id: uuid::Uuid },
    /// Send a `ping` to an endpoint.
    Test { id: uuid::Uuid },
    /// A new signing secret, printed once; the old one keeps signing for 24 h.
    Rotate { id: uuid::Uuid },
    /// An endpoint's deliveries (30 days), newest first, with their attempts.
    Deliveries {
        id: uuid::Uuid,
        /// At most this many (1–200).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: u32,
        /// Older than this instant (a previous page's `nextBefore`).
        #[arg(long)]
        before: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Send a delivery again (the same message: the same webhook-id).
    Replay { delivery_id: uuid::Uuid },
    /// Show, or set, the balance below which `credits.low` is sent.
    CreditsLow {
        /// The threshold in credits (at least 1).
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        threshold: Option<i64>,
        /// Stop sending credits.low.
        #[arg(long, conflicts_with = "threshold")]
        off: bool,
    },
}

fn done(ctx: &Context, human: &str, json: serde_json::Value) {
    if ctx.json {
        output::print_json(&json);
    } else {
        anstream::println!("{}✓{} {human}", OK.render(), OK.render_reset());
    }
}

fn endpoint_line(e: &types::WebhookEndpoint) -> String {
    // An empty list is every event type.
    let events = if e.events.is_empty() {
        "all events".to_string()
    } else {
        e.events.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    };
    let state = if e.enabled {
        match e.failing_since {
            Some(since) => format!("failing since {}", since.format("%Y-%m-%d %H:%M")),
            None => "enabled".into(),
        }
    } else {
        format!("disabled: {}", e.disabled_reason.as_deref().unwrap_or("—"))
    };
    format!("{}  {}  [{events}]  {state}", e.id, e.url)
}

fn update_body(
    url: Option<String>,
    events: Vec<types::WebhookEventType>,
    all_events: bool,
    description: Option<String>,
    enabled: Option<bool>,
) -> Result<types::WebhookEndpointUpdate, CliError> {
    let mut body = serde_json::Map::new();
    if let Some(url) = url {
        body.insert("url".into(), json!(url));
    }
    if !events.is_empty() {
        body.insert("events".into(), json!(events));
    }
    if all_events {
        body.insert("allEvents".into(), json!(true));
    }
    if let Some(description) = description {
        body.insert("description".into(), json!(description));
    }
    if let Some(enabled) = enabled {
        body.insert("enabled".into(), json!(enabled));
    }
    serde_json::from_value(serde_json::Value::Object(body)).map_err(|e| CliError::usage(e.to_string()))
}

pub async fn run(ctx: &Context, command: WebhooksCommand) -> Result<ExitCode, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    match command {
        WebhooksCommand::Add { url, events, description } => {
            let mut body = json!({ "url": url });
            if !events.is_empty() {
                body["events"] = json!(events);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let body: types::WebhookEndpointCreate =
                serde_json::from_value(body).map_err(|e| CliError::usage(e.to_string()))?;
            let created = ctx.client.webhook_endpoint_create(&body).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&created);
            } else {
                println!("{}", created.secret);
                eprintln!(
                    "endpoint {} created: verify deliveries with this secret (shown only now), e.g. \
                     funmagic_sdk::webhooks::verify or any Standard Webhooks library.",
                    created.endpoint.id
                );
            }
        }
        WebhooksCommand::List => {
            let list = ctx.client.webhook_endpoint_list().await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&list);
            } else if list.endpoints.is_empty() {
                eprintln!("no webhook endpoints: add one with `funmagic webhooks add URL`");
            } else {
                let mut rows = vec![output::header(&["ID", "URL", "EVENTS", "STATE", "DESCRIPTION"])];
                for e in &list.endpoints {
                    let plain = anstyle::Style::new();
                    let events = if e.events.is_empty() {
                        "all".to_string()
                    } else {
                        e.events.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
                    };
                    let state = if !e.enabled {
                        "disabled"
                    } else if e.failing_since.is_some() {
                        "failing"
                    } else {
                        "enabled"
                    };
                    rows.push(vec![
                        (e.id.to_string(), DIM),
                        (e.url.clone(), plain),
                        (events, plain),
                        (state.to_string(), plain),
                        (e.description.clone().unwrap_or_default(), plain),
                    ]);
                }
                output::print_table(&rows);
            }
        }
        WebhooksCommand::Show { id } => {
            let e = ctx.client.webhook_endpoint_get(&id).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&e);
            } else {
                println!("{}", endpoint_line(&e));
            }
        }
        WebhooksCommand::Update { id, url, events, all_events, description } => {
            let body = update_body(url, events, all_events, description, None)?;
            let e = ctx.client.webhook_endpoint_update(&id, &body).await.map_err(sdk)?.into_inner();
            done(ctx, &endpoint_line(&e), serde_json::to_value(&e).unwrap_or_default());
        }
        WebhooksCommand::Enable { id } | WebhooksCommand::Disable { id } => {
            let enable = matches!(command, WebhooksCommand::Enable { .. });
            let body = update_body(None, Vec::new(), false, None, Some(enable))?;
            let e = ctx.client.webhook_endpoint_update(&id, &body).await.map_err(sdk)?.into_inner();
            done(ctx, &endpoint_line(&e), serde_json::to_value(&e).unwrap_or_default());
        }
        WebhooksCommand::Rm { id } => {
            ctx.client.webhook_endpoint_delete(&id).await.map_err(sdk)?;
            done(ctx, &format!("removed {id}"), json!({ "removed": id }));
        }
        WebhooksCommand::Test { id } => {
            let d = ctx.client.webhook_endpoint_test(&id).await.map_err(sdk)?.into_inner();
            done(
                ctx,
                &format!("ping queued ({}); see `funmagic webhooks deliveries {id}`", d.webhook_id),
                serde_json::to_value(&d).unwrap_or_default(),
            );
        }
        WebhooksCommand::Rotate { id } => {
            let rotated = ctx.client.webhook_endpoint_rotate(&id).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&rotated);
            } else {
                println!("{}", rotated.secret);
                eprintln!("new secret for {id} (shown only now); the previous one signs too for 24 hours.");
            }
        }
        WebhooksCommand::Deliveries { id, limit, before } => {
            let page = ctx
                .client
                .webhook_delivery_list(&id, before.as_ref(), output::page(limit))
                .await
                .map_err(sdk)?
                .into_inner();
            if ctx.json {
                output::print_json(&page);
            } else {
                let mut rows =
                    vec![output::header(&["ID", "EVENT", "STATUS", "TRIES", "LAST", "CREATED", "WEBHOOK-ID"])];
                for d in &page.deliveries {
                    let plain = anstyle::Style::new();
                    let last = match (d.last_status_code, &d.last_error) {
                        (Some(code), _) => code.to_string(),
                        (None, Some(e)) => output::fit(e, 40),
                        _ => "—".into(),
                    };
                    rows.push(vec![
                        (d.id.to_string(), DIM),
                        (d.event_type.clone(), plain),
                        (d.status.to_string(), plain),
                        (d.attempts.to_string(), plain),
                        (last, plain),
                        (d.created_at.format("%Y-%m-%d %H:%M:%S").to_string(), plain),
                        (d.webhook_id.clone(), DIM),
                    ]);
                }
                output::print_table(&rows);
                if let Some(next) = page.next_before {
                    anstream::eprintln!(
                        "{}more: --before {}{}",
                        HEADER.render(),
                        next.to_rfc3339(),
                        HEADER.render_reset()
                    );
                }
            }
        }
        WebhooksCommand::Replay { delivery_id } => {
            let d = ctx.client.webhook_delivery_replay(&delivery_id).await.map_err(sdk)?.into_inner();
            done(
                ctx,
                &format!("delivery {delivery_id} queued again ({})", d.webhook_id),
                serde_json::to_value(&d).unwrap_or_default(),
            );
        }
        WebhooksCommand::CreditsLow { threshold, off } => {
            let settings = if threshold.is_none() && !off {
                ctx.client.webhook_settings_get().await.map_err(sdk)?.into_inner()
            } else {
                let threshold = threshold.and_then(|t| std::num::NonZeroU64::new(t.unsigned_abs()));
                let body = types::WebhookSettingsInput { credits_low_threshold: threshold };
                ctx.client.webhook_settings_put(&body).await.map_err(sdk)?.into_inner()
            };
            let human = match settings.credits_low_threshold {
                Some(t) => format!("credits.low is sent when your available balance falls below {t}"),
                None => "credits.low is off".to_string(),
            };
            done(ctx, &human, serde_json::to_value(&settings).unwrap_or_default());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `funmagic admin webhooks`: endpoints failing or disabled, and stuck deliveries.
pub async fn run_admin(ctx: &Context) -> Result<ExitCode, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    let overview = ctx.client.admin_webhook_overview().await.map_err(sdk)?.into_inner();
    if ctx.json {
        output::print_json(&overview);
        return Ok(ExitCode::SUCCESS);
    }
    println!("stuck deliveries (due over 10 minutes ago): {}", overview.stuck_deliveries);
    if overview.failing_endpoints.is_empty() {
        println!("no endpoint is failing");
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![output::header(&["ID", "USER", "URL", "STATE"])];
    for e in &overview.failing_endpoints {
        let plain = anstyle::Style::new();
        let state = match (&e.disabled_reason, e.failing_since) {
            (Some(reason), _) if !e.enabled => format!("disabled: {reason}"),
            (_, Some(since)) => format!("failing since {}", since.format("%Y-%m-%d %H:%M")),
            _ => "disabled".into(),
        };
        rows.push(vec![
            (e.id.to_string(), DIM),
            (output::short_id(&e.user_id), DIM),
            (e.url.clone(), plain),
            (state, plain),
        ]);
    }
    output::print_table(&rows);
    Ok(ExitCode::SUCCESS)
}
