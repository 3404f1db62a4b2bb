//! `funmagic run` and `funmagic tasks list|show|watch|cancel`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use funmagic_sdk::events::{TaskEvent, TaskFollower};
use funmagic_sdk::types;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{self, DIM, HEADER};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The tool's slug (see `funmagic tools list`).
    tool: String,
    /// An input image or model to upload first (becomes `imageStorageKey`), or an https
    /// URL of an image, which the server downloads (`imageUrl`).
    #[arg(value_name = "FILE|URL")]
    file: Option<PathBuf>,
    /// Run only this step (default: every step of the tool, in order, each taking the
    /// previous one's output).
    #[arg(long)]
    step: Option<String>,
    /// Run every step of the tool (the default; kept for scripts).
    #[arg(long, conflicts_with = "step", hide = true)]
    all: bool,
    /// A style reference id (see `funmagic tools show`).
    #[arg(long)]
    style: Option<String>,
    #[arg(long)]
    prompt: Option<String>,
    /// Extra input, `key=value` (values that parse as JSON are JSON).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Chain after this completed task.
    #[arg(long)]
    parent: Option<uuid::Uuid>,
    /// Where to save output files (default: current directory).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Print the task id and return at once.
    #[arg(long)]
    no_wait: bool,
    /// Cancel the task on Ctrl-C instead of detaching.
    #[arg(long)]
    cancel_on_interrupt: bool,
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Your tasks, newest first.
    List {
        /// pending, queued, running, completed, failed or cancelled.
        #[arg(long, value_parser = output::api_enum::<types::TaskStatus>)]
        status: Option<types::TaskStatus>,
        #[arg(long)]
        tool: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// A task with its steps, input and output.
    Show { id: uuid::Uuid },
    /// Follow a task's progress (re-attach after `run` was interrupted).
    Watch {
        id: uuid::Uuid,
        /// Resume after this event id.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
    /// Cancel a task.
    Cancel { id: uuid::Uuid },
    /// A task's stored events (milestones), oldest first.
    Events { id: uuid::Uuid },
}

fn parse_params(params: &[String]) -> Result<serde_json::Map<String, serde_json::Value>, CliError> {
    let mut map = serde_json::Map::new();
    for p in params {
        let (k, v) = p.split_once('=').ok_or_else(|| CliError::usage(format!("--param {p}: expected KEY=VALUE")))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
        map.insert(k.to_string(), value);
    }
    Ok(map)
}

pub async fn run(ctx: &Context, args: RunArgs) -> Result<ExitCode, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    let mut input = parse_params(&args.params)?;
    if let Some(style) = &args.style {
        input.insert("style".into(), style.clone().into());
    }
    if let Some(prompt) = &args.prompt {
        input.insert("prompt".into(), prompt.clone().into());
    }
    let url =
        args.file.as_deref().and_then(|f| f.to_str()).filter(|f| f.starts_with("https://") || f.starts_with("http://"));
    if let Some(url) = url {
        input.insert("imageUrl".into(), url.into());
    } else if let Some(file) = &args.file {
        let asset = crate::cmd_assets::upload_with_bar(ctx, file, Some("uploads")).await?;
        input.insert("imageStorageKey".into(), asset.storage_key.into());
    }
    let request = types::TaskCreateRequest {
        tool_slug: output::field("tool", &args.tool)?,
        step_id: output::opt_field("step", args.step.as_ref())?,
        input: serde_json::Value::Object(input),
        parent_task_id: args.parent,
        run_all_steps: args.step.is_none().then_some(true),
        webhook: None,
    };
    // With an Idempotency-Key, retried while the server is briefly unavailable or its task
    // line is full (503 `QUEUE_FULL`, after its `Retry-After`): one task however many tries.
    let task = funmagic_sdk::retry::submit_task(&ctx.client, &request).await.map_err(sdk)?;
    if ctx.json {
        println!("{}", serde_json::json!({ "type": "submitted", "taskId": task.id }));
    } else {
        eprintln!("task {} submitted ({} credits reserved)", task.id, task.credits_cost);
    }
    if args.no_wait {
        if !ctx.json {
            println!("{}", task.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    follow(ctx, task.id, 0, args.cancel_on_interrupt, args.output.as_deref()).await
}

/// Shows events (bars per step on a terminal, NDJSON with --json) until the task ends.
async fn follow(
    ctx: &Context,
    task: uuid::Uuid,
    after: i64,
    cancel_on_interrupt: bool,
    output_dir: Option<&std::path::Path>,
) -> Result<ExitCode, CliError> {
    let mut follower = TaskFollower::new(&ctx.client, task, after);
    let bars = MultiProgress::new();
    let mut steps: HashMap<String, ProgressBar> = HashMap::new();
    let style = ProgressStyle::with_template("{prefix:>16} {bar:30} {pos:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    // Every step's files, in order (a chain's intermediate results too).
    let mut assets: Vec<uuid::Uuid> = Vec::new();
    let last = loop {
        let next = tokio::select! {
            next = follower.next() => next,
            _ = tokio::signal::ctrl_c() => {
                bars.clear().ok();
                if cancel_on_interrupt {
                    ctx.client.task_cancel(&task).await.map_err(|e| CliError::from_sdk(e, &ctx.api_url))?;
                    eprintln!("cancel requested for {task}");
                } else {
                    eprintln!("detached; the task keeps running. Re-attach with: funmagic tasks watch {task} --after {}", follower.last_event_id());
                }
                return Ok(ExitCode::from(Exit::Cancelled as u8));
            }
        };
        let Some(event) = next else { break None };
        let event = event.map_err(|e| match e {
            funmagic_sdk::events::FollowError::Api(e) => CliError::from_sdk(e, &ctx.api_url),
            other => CliError::other(other.to_string()),
        })?;
        if ctx.json {
            println!("{}", serde_json::json!({ "id": event.id, "type": event.kind, "data": event.data }));
        } else {
            show(&bars, &mut steps, &style, &event);
        }
        if event.kind == types::EventKind::StepCompleted {
            for id in asset_ids(&event.data["output"]) {
                if !assets.contains(&id) {
                    assets.push(id);
                }
            }
        }
        if event.is_terminal() {
            break Some(event);
        }
    };
    bars.clear().ok();
    let Some(last) = last else { return Err(CliError::other("the event stream ended without a result")) };
    match last.kind {
        types::EventKind::Completed => {
            if !ctx.json {
                eprintln!("task {task} completed");
                println!("{}", serde_json::to_string_pretty(&last.data["output"]).unwrap_or_default());
            }
            for id in asset_ids(&last.data["output"]) {
                if !assets.contains(&id) {
                    assets.push(id);
                }
            }
            download_outputs(ctx, &assets, output_dir).await?;
            Ok(ExitCode::SUCCESS)
        }
        types::EventKind::Cancelled => Err(CliError::new(Exit::Cancelled, format!("task {task} was cancelled"))),
        _ => {
            // `failed`: the only other kind that ends a stream.
            let message = last.data["error"].as_str().unwrap_or("the task failed").to_string();
            let mut err = CliError::new(Exit::TaskFailed, format!("task {task} failed: {message}"));
            err.code = last.data["code"].as_str().map(str::to_string);
            Err(err)
        }
    }
}

const QUEUE_BAR: &str = "\u{0}queue";

fn show(bars: &MultiProgress, steps: &mut HashMap<String, ProgressBar>, style: &ProgressStyle, event: &TaskEvent) {
    let step = event.data["stepId"].as_str().unwrap_or("").to_string();
    match event.kind {
        types::EventKind::Queued | types::EventKind::QueuePosition => {
            // A spinner while the task waits, with its place in the queue.
            let bar = steps.entry(QUEUE_BAR.into()).or_insert_with(|| {
                let bar = bars.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>16} {spinner} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix("queued");
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                bar
            });
            match event.data["position"].as_i64() {
                Some(0) => bar.set_message("next in line"),
                Some(n) => bar.set_message(format!("{n} ahead in the queue")),
                None => bar.set_message("waiting for a worker"),
            }
        }
        types::EventKind::StepStarted => {
            if let Some(queue) = steps.remove(QUEUE_BAR) {
                queue.finish_and_clear();
            }
            let bar = bars.add(ProgressBar::new(100));
            bar.set_style(style.clone());
            bar.set_prefix(step.clone());
            bar.set_message(event.data["stepName"].as_str().unwrap_or("").to_string());
            steps.insert(step, bar);
        }
        types::EventKind::Progress => {
            if let Some(bar) = steps.get(&step) {
                bar.set_position(event.data["progress"].as_u64().unwrap_or(0).min(100));
                if let Some(m) = event.data["message"].as_str() {
                    bar.set_message(m.to_string());
                }
            }
        }
        types::EventKind::StepCompleted => {
            if let Some(bar) = steps.get(&step) {
                bar.set_position(100);
                bar.finish_with_message("done");
            }
        }
        // The stream's first event, and the ends (reported by the caller).
        types::EventKind::Connected
        | types::EventKind::Completed
        | types::EventKind::Failed
        | types::EventKind::Cancelled => {}
    }
}

/// The files an output names (`assetId` / `assetIds`).
fn asset_ids(output: &serde_json::Value) -> Vec<uuid::Uuid> {
    let mut ids: Vec<uuid::Uuid> =
        output["assetIds"].as_array().into_iter().flatten().filter_map(|v| v.as_str()?.parse().ok()).collect();
    if let Some(id) = output["assetId"].as_str().and_then(|s| s.parse().ok()) {
        ids.push(id);
    }
    ids
}

/// Saves the given assets into `dir` (default: the current directory).
async fn download_outputs(ctx: &Context, ids: &[uuid::Uuid], dir: Option<&std::path::Path>) -> Result<(), CliError> {
    let dir = dir.map(std::path::Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    if !ids.is_empty() {
        std::fs::create_dir_all(&dir).map_err(|e| CliError::other(format!("{}: {e}", dir.display())))?;
    }
    for &id in ids {
        let asset = ctx.client.asset_get(&id).await.map_err(|e| CliError::from_sdk(e, &ctx.api_url))?.into_inner();
        let dest = dir.join(asset.filename.clone().unwrap_or_else(|| id.to_string()));
        let url = asset.download_url.clone().ok_or_else(|| CliError::other("output has no download URL"))?;
        funmagic_sdk::files::download_url(&url, &dest, |_, _| {})
            .await
            .map_err(|e| crate::cmd_assets::file_error(ctx, e))?;
        eprintln!("saved {}", dest.display());
    }
    Ok(())
}

pub async fn run_tasks(ctx: &Context, command: TasksCommand) -> Result<ExitCode, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    match command {
        TasksCommand::List { status, tool, limit } => {
            let tool = output::opt_field("tool", tool.as_ref())?;
            let list =
                ctx.client.task_list(None, output::page(limit), status, tool.as_ref()).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&list);
            } else {
                let mut rows =
                    vec![["ID", "STATUS", "STEP", "CREDITS", "CREATED"].map(|h| (h.to_string(), HEADER)).to_vec()];
                let plain = anstyle::Style::new();
                for t in list.tasks {
                    rows.push(vec![
                        (t.id.to_string(), DIM),
                        (t.status.to_string(), plain),
                        (t.current_step_id.unwrap_or_default(), plain),
                        (t.credits_cost.to_string(), plain),
                        (t.created_at.format("%Y-%m-%d %H:%M:%S").to_string(), DIM),
                    ]);
                }
                output::print_table(&rows);
            }
        }
        TasksCommand::Show { id } => {
            let d = ctx.client.task_get(&id).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&d);
            } else {
                println!("{} {} ({} credits)", d.task.id, d.task.status, d.task.credits_cost);
                for s in &d.steps {
                    println!("  {:<20} {}", s.step_id, s.status);
                }
                if let Some(p) = d.queue_position {
                    println!("  queue position: {p}");
                }
                if let Some(e) = &d.error {
                    println!("  error: {e}");
                }
                if let Some(o) = &d.output {
                    println!("  output: {o}");
                }
            }
        }
        TasksCommand::Watch { id, after } => return follow(ctx, id, after, false, None).await,
        TasksCommand::Events { id } => {
            let list = ctx.client.task_events_list(&id).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&list);
            } else {
                for e in list.events {
                    let data = serde_json::to_string(&e.data).unwrap_or_default();
                    anstream::println!(
                        "{:>4}  {:<15} {}{}{}",
                        e.seq.map(|s| s.to_string()).unwrap_or_default(),
                        e.type_.to_string(),
                        DIM.render(),
                        data,
                        DIM.render_reset()
                    );
                }
            }
        }
        TasksCommand::Cancel { id } => {
            let t = ctx.client.task_cancel(&id).await.map_err(sdk)?.into_inner().task;
            if ctx.json {
                output::print_json(&t);
            } else {
                println!(
                    "{} {}",
                    t.id,
                    if t.status == types::TaskStatus::Cancelled { "cancelled" } else { "cancel requested" }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
