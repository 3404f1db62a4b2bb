//! `funmagic webhooks add|list|show|update|enable|disable|rm|test|rotate|deliveries|replay|credits-low|listen`:
//! endpoints that receive task events (Standard Webhooks), their signing secrets and their
//! delivery logs; `listen` relays them to a URL on this machine for local development.

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
    /// Relay your events to a URL on this machine (local development): prints a signing
    /// secret, then forwards each event signed as the server sends it, until Ctrl-C.
    Listen {
        /// Where to POST each event, e.g. http://localhost:3000/hook.
        #[arg(long)]
        forward_to: String,
        /// An event type to relay (repeat for more; default: all).
        #[arg(long = "event", value_parser = output::api_enum::<types::WebhookEventType>)]
        events: Vec<types::WebhookEventType>,
        /// Give up on the local URL after this many seconds.
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=600))]
        timeout: u64,
    },
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
        WebhooksCommand::Listen { forward_to, events, timeout } => {
            return listen(ctx, forward_to, events, timeout).await;
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
/// `funmagic webhooks listen`: a relay endpoint whose deliveries are pulled, forwarded to
/// `forward_to` and answered, until Ctrl-C (then the relay is removed).
async fn listen(
    ctx: &Context,
    forward_to: String,
    events: Vec<types::WebhookEventType>,
    timeout: u64,
) -> Result<ExitCode, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    let target = reqwest::Url::parse(&forward_to)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| CliError::usage(format!("--forward-to: an http(s) URL, not '{forward_to}'")))?;
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "this machine".into());
    let mut body =
        json!({ "forwardTo": target.as_str(), "description": format!("funmagic webhooks listen on {host}") });
    if !events.is_empty() {
        body["events"] = json!(events);
    }
    let body: types::WebhookRelayCreate = serde_json::from_value(body).map_err(|e| CliError::usage(e.to_string()))?;
    let created = ctx.client.webhook_relay_create(&body).await.map_err(sdk)?.into_inner();
    let relay = created.endpoint.id;
    if ctx.json {
        output::print_json(&json!({ "relay": relay, "secret": created.secret, "forwardTo": target.as_str() }));
    } else {
        eprintln!(
            "Ready: relaying your webhook events to {target} (relay {relay}). Verify them with this signing \
             secret; Ctrl-C to stop."
        );
        println!("{}", created.secret);
    }
    // Local servers answer on loopback: no proxy, no redirects followed (as the server sends).
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(timeout))
        .build()
        .map_err(|e| CliError::other(e.to_string()))?;
    let pull = types::WebhookRelayPull { limit: std::num::NonZeroU32::new(10), wait_secs: Some(25) };
    // One Ctrl-C listener for the whole loop: a new `ctrl_c()` per wait would miss a
    // Ctrl-C pressed between two waits (while an answer is reported), and with the handler
    // installed the default action no longer ends the process.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let result = 'relay: loop {
        let batch = tokio::select! {
            batch = ctx.client.webhook_relay_pull(&relay, &pull) => batch,
            _ = &mut interrupted => break Ok(()),
        };
        let batch = match batch {
            Ok(batch) => batch.into_inner(),
            Err(e) => break Err(sdk(e)),
        };
        for m in batch.messages {
            let answer = tokio::select! {
                answer = forward(&http, &target, &m) => answer,
                _ = &mut interrupted => break 'relay Ok(()),
            };
            show_relayed(ctx, &m, &answer);
            let report = ctx.client.webhook_relay_answer(&relay, &m.delivery_id, &answer);
            let reported = tokio::select! {
                reported = report => reported,
                _ = &mut interrupted => break 'relay Ok(()),
            };
            if let Err(e) = reported {
                eprintln!("could not report the answer to {} (it is sent again after its lease): {e}", m.webhook_id);
            }
        }
    };
    // The relay goes with the listener (the server deletes forgotten ones after an hour).
    if let Err(e) = ctx.client.webhook_endpoint_delete(&relay).await {
        eprintln!("could not remove relay {relay} (the server removes it within the hour): {e}");
    } else if !ctx.json {
        eprintln!("stopped; relay {relay} removed");
    }
    result.map(|()| ExitCode::SUCCESS)
}

/// POSTs a relayed message to the local URL with its Standard Webhooks headers; what it
/// answered (or why it could not be reached), for the server's delivery log.
async fn forward(
    http: &reqwest::Client,
    target: &reqwest::Url,
    m: &types::WebhookRelayMessage,
) -> types::WebhookRelayAnswer {
    let started = std::time::Instant::now();
    let sent = http
        .post(target.clone())
        .header("content-type", "application/json")
        .header("webhook-id", &m.webhook_id)
        .header("webhook-timestamp", m.webhook_timestamp.to_string())
        .header("webhook-signature", &m.webhook_signature)
        .body(m.body.clone())
        .send()
        .await;
    let (status_code, error, excerpt) = match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            (Some(status), None, Some(text.chars().take(1024).collect::<String>()))
        }
        Err(e) => (None, Some(format!("could not reach {target}: {e}")), None),
    };
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let mut body = json!({ "latencyMs": latency_ms });
    if let Some(s) = status_code {
        body["statusCode"] = json!(s);
    }
    if let Some(e) = error {
        body["error"] = json!(e);
    }
    if let Some(x) = excerpt.filter(|x| !x.is_empty()) {
        body["responseExcerpt"] = json!(x);
    }
    serde_json::from_value(body).expect("a relay answer is well formed")
}

fn show_relayed(ctx: &Context, m: &types::WebhookRelayMessage, answer: &types::WebhookRelayAnswer) {
    if ctx.json {
        output::print_json(&json!({
            "webhookId": m.webhook_id, "eventType": m.event_type, "attempt": m.attempt,
            "statusCode": answer.status_code, "error": answer.error, "latencyMs": answer.latency_ms,
        }));
        return;
    }
    let now = chrono::Local::now().format("%H:%M:%S");
    match (answer.status_code, &answer.error) {
        (Some(code), _) => {
            let style = if (200..300).contains(&code) { OK } else { crate::output::ERROR };
            anstream::println!(
                "{now}  {:<20} {}  {}{code}{}  {} ms",
                m.event_type,
                m.webhook_id,
                style.render(),
                style.render_reset(),
                answer.latency_ms
            );
        }
        (None, error) => anstream::println!(
            "{now}  {:<20} {}  {}failed{}  {}",
            m.event_type,
            m.webhook_id,
            crate::output::ERROR.render(),
            crate::output::ERROR.render_reset(),
            error.as_deref().map(String::as_str).unwrap_or("")
        ),
    }
}

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
