//! `funmagic`: the FunMagic command-line client. Every server call goes through the SDK.

mod cmd_admin;
mod cmd_api;
mod cmd_assets;
mod cmd_auth;
mod cmd_banners;
mod cmd_completions;
mod cmd_credits;
mod cmd_providers;
mod cmd_status;
mod cmd_tasks;
mod cmd_tools;
mod cmd_webhooks;
mod context;
mod exit;
mod jq;
mod output;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::context::Context;
use crate::exit::CliError;

const EXIT_CODES: &str = "Exit codes:
  0  success
  1  error (server unreachable, unexpected answer, unhealthy)
  2  usage error
  3  cancelled or timed out
  4  authentication or permission problem
  5  task failed
  6  insufficient credits
  7  rate limited";

#[derive(Debug, Parser)]
#[command(name = "funmagic", version, about = "FunMagic: run AI tools on your images from the terminal")]
#[command(after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Base URL of the FunMagic API [default: http://127.0.0.1:8000]
    #[arg(long, global = true, env = "FUNMAGIC_API_URL", value_name = "URL")]
    pub api_url: Option<String>,
    /// Session token or API key (overrides the stored credentials).
    #[arg(long, global = true, env = "FUNMAGIC_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Credentials profile from the config file.
    #[arg(long, global = true, env = "FUNMAGIC_PROFILE", value_name = "NAME", default_value = "default")]
    pub profile: String,
    /// Machine-readable JSON output (errors go to stderr, as a JSON line).
    #[arg(long, global = true)]
    pub json: bool,
    /// Filter the JSON output with a jq program (implies --json), e.g. `--jq '.tools[].slug'`.
    #[arg(long, global = true, value_name = "EXPR")]
    pub jq: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the health of the server and of every dependency.
    Status {
        /// One check only: live (the process answers), db, redis or storage.
        #[arg(long, value_enum)]
        only: Option<cmd_status::Check>,
    },
    /// Sign in and out, accounts, API keys.
    #[command(subcommand)]
    Auth(cmd_auth::AuthCommand),
    /// The tool catalogue.
    #[command(subcommand)]
    Tools(cmd_tools::ToolsCommand),
    /// Run a tool: upload the file, submit, show live progress, save the outputs.
    Run(cmd_tasks::RunArgs),
    /// Your tasks.
    #[command(subcommand)]
    Tasks(cmd_tasks::TasksCommand),
    /// Upload a file (PNG, JPEG, WebP image or GLB, PLY, OBJ model); prints its asset id.
    Upload {
        file: std::path::PathBuf,
        /// Namespace for the file (default: uploads).
        #[arg(long)]
        module: Option<String>,
    },
    /// Your stored files.
    #[command(subcommand)]
    Assets(cmd_assets::AssetsCommand),
    /// Your credits: balance (default), history, packages, buy.
    Credits {
        #[command(subcommand)]
        command: Option<cmd_credits::CreditsCommand>,
    },
    /// Webhooks to your backend: endpoints, secrets, delivery logs.
    #[command(subcommand)]
    Webhooks(cmd_webhooks::WebhooksCommand),
    /// Administration (admins only).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The banners the web UI shows now (main, or side).
    Banners {
        #[arg(long = "type", value_parser = output::api_enum::<funmagic_sdk::types::BannerType>)]
        kind: Option<funmagic_sdk::types::BannerType>,
    },
    /// Any API call with the stored credentials (as `gh api`): `funmagic api GET /api/tools`.
    Api(cmd_api::ApiArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Users' credits.
    #[command(subcommand)]
    Credits(cmd_credits::AdminCreditsCommand),
    /// AI providers and their API keys (super_admin).
    #[command(subcommand)]
    Providers(cmd_providers::ProvidersCommand),
    /// Site banners (the content shown on the web UI).
    #[command(subcommand)]
    Banners(cmd_banners::BannersCommand),
    /// Users: find, show, roles, bans, sign-outs, deletion, their credits and files.
    #[command(subcommand)]
    Users(cmd_admin::UsersCommand),
    /// The tool catalogue: create, update, enable/disable, delete.
    #[command(subcommand)]
    Tools(cmd_admin::ToolsAdminCommand),
    /// Tool types (categories).
    #[command(subcommand)]
    ToolTypes(cmd_admin::ToolTypesCommand),
    /// Every user's tasks; retry a failed one.
    #[command(subcommand)]
    Tasks(cmd_admin::TasksAdminCommand),
    /// The task queue's depth.
    Queue,
    /// Tasks that failed for good (dead letters).
    DeadLetters {
        #[command(flatten)]
        pages: cmd_admin::Pages,
    },
    /// Credit packages (what users can buy).
    #[command(subcommand)]
    Packages(cmd_admin::PackagesCommand),
    /// Webhook endpoints failing or disabled, and stuck deliveries.
    Webhooks,
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Some(expr) = &cli.global.jq {
        if let Err(err) = output::set_jq(expr) {
            return err.report(false);
        }
        cli.global.json = true;
    }
    let json = cli.global.json;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => Err(CliError::other(format!("cannot start the async runtime: {e}"))),
    };
    match result {
        Ok(_) if output::jq_failed() => ExitCode::from(exit::Exit::Error as u8),
        Ok(code) => code,
        Err(err) => err.report(json),
    }
}

async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Completions { shell } => {
            cmd_completions::run(shell);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { only } => {
            let ctx = Context::resolve(&cli.global)?;
            match only {
                None => cmd_status::run(&ctx).await,
                Some(check) => cmd_status::run_one(&ctx, check).await,
            }
        }
        Command::Auth(command) => {
            let ctx = Context::resolve(&cli.global)?;
            cmd_auth::run(&ctx, command).await
        }
        Command::Tools(command) => {
            let ctx = Context::resolve(&cli.global)?;
            cmd_tools::run(&ctx, command).await
        }
        Command::Run(args) => {
            let ctx = Context::resolve(&cli.global)?;
            cmd_tasks::run(&ctx, args).await
        }
        Command::Tasks(command) => {
            let ctx = Context::resolve(&cli.global)?;
            cmd_tasks::run_tasks(&ctx, command).await
        }
        Command::Webhooks(command) => {
            let ctx = Context::resolve(&cli.global)?;
            cmd_webhooks::run(&ctx, command).await
        }
        Command::Upload { file, module } => {
            let ctx = Context::resolve(&cli.global)?;
            cmd_assets::upload(&ctx, file, module).await
        }
        Command::Assets(command) => {
            let ctx = Context::resolve(&cli.global)?;
            cmd_assets::run(&ctx, command).await
        }
        Command::Credits { command } => {
            let ctx = Context::resolve(&cli.global)?;
            cmd_credits::run(&ctx, command).await
        }
        Command::Admin(command) => {
            let ctx = Context::resolve(&cli.global)?;
            match command {
                AdminCommand::Users(c) => cmd_admin::run_users(&ctx, c).await,
                AdminCommand::Tools(c) => cmd_admin::run_tools(&ctx, c).await,
                AdminCommand::ToolTypes(c) => cmd_admin::run_tool_types(&ctx, c).await,
                AdminCommand::Tasks(c) => cmd_admin::run_tasks(&ctx, c).await,
                AdminCommand::Queue => cmd_admin::run_queue(&ctx).await,
                AdminCommand::Webhooks => cmd_webhooks::run_admin(&ctx).await,
                AdminCommand::DeadLetters { pages } => cmd_admin::run_dead_letters(&ctx, pages).await,
                AdminCommand::Packages(c) => cmd_admin::run_packages(&ctx, c).await,
                AdminCommand::Credits(c) => cmd_credits::run_admin(&ctx, c).await,
                AdminCommand::Providers(c) => cmd_providers::run(&ctx, c).await,
                AdminCommand::Banners(c) => cmd_banners::run(&ctx, c).await,
            }
        }
        Command::Banners { kind } => {
            let ctx = Context::resolve(&cli.global)?;
            cmd_banners::run_public(&ctx, kind).await
        }
        Command::Api(args) => {
            let ctx = Context::resolve(&cli.global)?;
            cmd_api::run(&ctx, args).await
        }
    }
}
