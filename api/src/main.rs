//! `funmagic-server`: `serve`, `worker`, `migrate`, `openapi`.

use std::process::ExitCode;

use clap::Parser;
use funmagic_api::accounts::flows;
use funmagic_api::app::{AppState, Migrations};
use funmagic_api::cli::{AdminCommand, Cli, Command};
use funmagic_api::config::{LogFormat, Settings};
use funmagic_api::{http, server};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        print!("{}", http::spec_json());
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::load(cli.global.config.as_deref(), |k| std::env::var(k).ok(), cli.global.layer()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("funmagic-server: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let traces = init_tracing(&settings, &cli.command);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("funmagic-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    };
    drop(runtime);
    drop(traces); // flushes the spans still buffered
    code
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Openapi => unreachable!("handled before configuration is loaded"),
        Command::Migrate => {
            let state = build_waiting(settings, Migrations::Apply).await?;
            tracing::info!("database is up to date");
            state.store().close().await;
        }
        Command::Admin(AdminCommand::CreateSuperAdmin { email, name, password_stdin: _ }) => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            let state = AppState::build(settings, Migrations::AtStart).await?;
            let user = flows::ensure_super_admin(&state, &email, &name, password)
                .await
                .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))?;
            println!("super admin {} ({})", user.email, user.id);
            state.store().close().await;
        }
        Command::Admin(AdminCommand::RotateMasterKey { new_key_stdin }) => {
            let new = if new_key_stdin {
                let mut text = String::new();
                std::io::stdin().read_line(&mut text)?;
                funmagic_api::providers::crypto::MasterKey::parse(&text)
                    .map_err(|e| anyhow::anyhow!("the new key {e}"))?
            } else {
                funmagic_api::providers::crypto::MasterKey::generate()
            };
            let from_env = settings.providers.master_key.is_some();
            let state = AppState::build(settings, Migrations::AtStart).await?;
            let rotated = funmagic_api::admin::providers::rotate_master_key(&state, &new)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            println!(
                "re-encrypted {} provider key(s): master key {} → {}",
                rotated.keys,
                state.master_key().id(),
                new.id()
            );
            match rotated.file {
                Some(path) => {
                    println!("{} now holds the new key; restart every API and worker process", path.display())
                }
                None if from_env && !new_key_stdin => println!(
                    "set FUNMAGIC_MASTER_KEY={} on every API and worker process, then restart them",
                    new.encoded()
                ),
                None => println!("set FUNMAGIC_MASTER_KEY to the new key on every process, then restart them"),
            }
            state.store().close().await;
        }
        Command::Serve { workers } => {
            let listen = settings.listen;
            let workers = workers.unwrap_or(if settings.database.url.is_none() { 4 } else { 0 });
            let bootstrap = settings.auth.bootstrap_admin && settings.database.url.is_none();
            let state = build_waiting(settings, Migrations::AtStart).await?;
            if bootstrap
                && let Some((email, password)) =
                    flows::bootstrap_admin(&state).await.map_err(|e| anyhow::anyhow!("{}", e.message))?
            {
                // Printed once, on the first start of an embedded install; the log line says
                // where to look without repeating the password.
                tracing::warn!("created the first super admin {email}; its password is printed on stderr once");
                eprintln!(
                    "\n  First start: created super admin\n    email:    {email}\n    password: {password}\n  Sign in with `funmagic auth login --email {email}` and change the password.\n"
                );
            }
            serve_metrics(&state).await?;
            tokio::spawn(sweep_expired_sessions(state.clone()));
            tokio::spawn(sweep_pending_uploads(state.clone()));
            tokio::spawn(funmagic_api::admin::provider_health::run_loop(state.clone()));
            let (stop_workers, stop_rx) = tokio::sync::watch::channel(false);
            let worker_pool = (workers > 0).then(|| {
                tracing::info!(workers, "task workers running in this process");
                tokio::spawn(funmagic_api::worker::run_workers(state.clone(), workers, stop_rx))
            });
            let (addr, serve) = server::bind(state.clone(), listen)
                .await
                .map_err(|e| anyhow::anyhow!("FUNMAGIC_LISTEN: cannot listen on {listen}: {e}"))?;
            tracing::info!("listening on http://{addr} (API docs at http://{addr}/docs)");
            serve(Box::new(Box::pin(server::shutdown_signal()))).await?;
            let _ = stop_workers.send(true);
            if let Some(pool) = worker_pool {
                // Drain: running tasks finish; unfinished ones stay leased and are retried.
                let _ = tokio::time::timeout(server::SHUTDOWN_GRACE, pool).await;
            }
            state.store().close().await;
            tracing::info!("stopped");
        }
        Command::Worker { concurrency } => {
            let state = build_waiting(settings, Migrations::AtStart).await?;
            serve_metrics(&state).await?;
            tracing::info!(concurrency, "worker started");
            let (stop, stop_rx) = tokio::sync::watch::channel(false);
            let pool = tokio::spawn(funmagic_api::worker::run_workers(state.clone(), concurrency, stop_rx));
            server::shutdown_signal().await;
            // Drain: running tasks finish within the grace period; the rest stay leased and
            // are picked up again when the lease runs out.
            let _ = stop.send(true);
            let _ = tokio::time::timeout(server::SHUTDOWN_GRACE, pool).await;
            state.store().close().await;
        }
    }
    Ok(())
}

/// `GET /metrics` on `metrics.listen`, when set (API and worker processes alike).
/// [`AppState::build`], retried while PostgreSQL or Redis is unreachable (a rolling restart,
/// a failover, a machine booting) for `startup_wait_secs`, instead of exiting into a
/// supervisor's restart loop; a wrong setting still fails at once.
async fn build_waiting(settings: Settings, migrations: Migrations) -> anyhow::Result<AppState> {
    let wait = std::time::Duration::from_secs(settings.startup_wait_secs);
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(250);
    loop {
        match AppState::build(settings.clone(), migrations).await {
            Ok(state) => return Ok(state),
            Err(e) if e.retryable && started.elapsed() + pause < wait => {
                tracing::warn!(
                    "{e}; retrying in {:.1} s (for up to {} s in all: FUNMAGIC_STARTUP_WAIT_SECS)",
                    pause.as_secs_f64(),
                    wait.as_secs()
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn serve_metrics(state: &AppState) -> anyhow::Result<()> {
    if let Some(listen) = state.settings().metrics.listen {
        funmagic_api::telemetry::serve(state.clone(), listen)
            .await
            .map_err(|e| anyhow::anyhow!("FUNMAGIC_METRICS_LISTEN: cannot listen on {listen}: {e}"))?;
    }
    Ok(())
}

/// Deletes expired sessions hourly (they are refused on use anyway; this keeps the table small).
async fn sweep_expired_sessions(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match state.store().sessions_delete_expired(funmagic_api::store::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired sessions removed"),
            Err(e) => tracing::warn!(error = %e, "could not remove expired sessions"),
        }
    }
}

/// Deletes uploads never completed (objects and records), and finishes account deletions
/// a stopped process left, every ten minutes.
async fn sweep_pending_uploads(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        match funmagic_api::assets::sweep_pending_uploads(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "abandoned uploads removed"),
            Err(e) => tracing::warn!(error = %e, "could not remove abandoned uploads"),
        }
        match funmagic_api::webhooks::sweep(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "webhook delivery logs older than 30 days removed"),
            Err(e) => tracing::warn!(error = %e, "could not remove old webhook delivery logs"),
        }
        match flows::sweep_deleted_accounts(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(accounts = n, "deleted accounts' files and tasks cleaned up"),
            Err(e) => tracing::warn!(error = %e, "could not finish account deletions"),
        }
    }
}

/// Logs on stderr (`log.level`, `log.format`), and spans over OTLP when the standard
/// `OTEL_*` variables ask for it (see `traces`); the returned exporter flushes
/// when dropped, after the runtime has stopped.
fn init_tracing(settings: &Settings, command: &Command) -> Option<funmagic_api::traces::Exporter> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter = EnvFilter::try_new(&settings.log.level).unwrap_or_else(|e| {
        eprintln!("funmagic-server: FUNMAGIC_LOG: invalid filter '{}': {e}; using 'info'", settings.log.level);
        EnvFilter::new("info")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let logs = match settings.log.format {
        LogFormat::Json => logs.json().with_filter(filter).boxed(),
        LogFormat::Text => logs.with_filter(filter).boxed(),
    };
    let service = match command {
        Command::Serve { .. } => "funmagic-api",
        Command::Worker { .. } => "funmagic-worker",
        _ => "funmagic-server",
    };
    let exporter = funmagic_api::traces::exporter(service).unwrap_or_else(|e| {
        eprintln!("funmagic-server: OTLP trace export is off: {e}");
        None
    });
    let spans = exporter.as_ref().map(|e| e.layer());
    tracing_subscriber::registry().with(logs).with(spans).init();
    if exporter.is_some() {
        tracing::info!(service, "exporting traces over OTLP");
    }
    exporter
}
