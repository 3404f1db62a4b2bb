//! `funmagic admin providers list|add|update|test|disable|enable` (super_admin). API keys
//! are read from standard input (`--key-stdin`) or a hidden prompt, never from the command
//! line (shell history, `ps`); only their last 4 characters are ever shown.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Subcommand;
use funmagic_sdk::types;

use crate::context::Context;
use crate::exit::CliError;
use crate::output::{self, DIM, ERROR, HEADER, OK};

#[derive(Debug, Subcommand)]
pub enum ProvidersCommand {
    /// Providers with their health.
    List,
    /// Add a provider (openai, fal, tripo).
    Add {
        name: String,
        /// openai, fal or tripo.
        #[arg(long = "type", value_parser = output::api_enum::<types::ExternalProviderType>)]
        kind: types::ExternalProviderType,
        /// Read the API key from standard input (else a hidden prompt).
        #[arg(long)]
        key_stdin: bool,
        /// Send requests here instead of the provider's public API.
        #[arg(long)]
        base_url: Option<String>,
    },
    /// Change a provider: rotate its key, change or clear its base URL, rename it.
    Update {
        /// The provider's name or id.
        provider: String,
        /// Replace the API key (read from stdin with --key-stdin, else prompted).
        #[arg(long)]
        rotate_key: bool,
        #[arg(long)]
        key_stdin: bool,
        #[arg(long, conflicts_with = "clear_base_url")]
        base_url: Option<String>,
        #[arg(long)]
        clear_base_url: bool,
        #[arg(long)]
        name: Option<String>,
    },
    /// Check a provider now (an authenticated request to its API).
    Test {
        provider: String,
    },
    /// Stop using a provider (its steps fail until enabled again).
    Disable {
        provider: String,
    },
    Enable {
        provider: String,
    },
}

fn read_key(from_stdin: bool) -> Result<String, CliError> {
    let key = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| CliError::other(format!("reading stdin: {e}")))?;
        line.trim().to_string()
    } else {
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return Err(CliError::usage("no terminal to ask for the key: pass --key-stdin"));
        }
        rpassword::prompt_password("API key: ").map_err(|e| CliError::other(e.to_string()))?.trim().to_string()
    };
    if key.is_empty() {
        return Err(CliError::usage("the API key is empty"));
    }
    Ok(key)
}

async fn find(ctx: &Context, which: &str) -> Result<types::Provider, CliError> {
    let list = ctx.client.admin_provider_list().await.map_err(|e| CliError::from_sdk(e, &ctx.api_url))?.into_inner();
    list.providers
        .into_iter()
        .find(|p| p.name == which || p.id.to_string() == which)
        .ok_or_else(|| CliError::usage(format!("no provider named '{which}' (see `funmagic admin providers list`)")))
}

fn show(ctx: &Context, p: &types::Provider) {
    if ctx.json {
        output::print_json(p);
    } else {
        let key = p.key_last4.as_deref().map(|l| format!("…{l}")).unwrap_or_else(|| "no key".into());
        println!("{} ({}) {key} {}", p.name, p.type_, if p.is_active { "active" } else { "disabled" });
    }
}

pub async fn run(ctx: &Context, command: ProvidersCommand) -> Result<ExitCode, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    match command {
        ProvidersCommand::List => {
            let list = ctx.client.admin_provider_list().await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&list);
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = vec![
                ["NAME", "TYPE", "KEY", "ACTIVE", "HEALTH", "CHECKED", "BASE URL"]
                    .map(|h| (h.to_string(), HEADER))
                    .to_vec(),
            ];
            let plain = anstyle::Style::new();
            for p in list.providers {
                let health = if p.is_healthy { ("healthy".to_string(), OK) } else { ("unhealthy".to_string(), ERROR) };
                rows.push(vec![
                    (p.name, plain),
                    (p.type_.to_string(), plain),
                    (p.key_last4.map(|l| format!("…{l}")).unwrap_or_else(|| "-".into()), DIM),
                    (if p.is_active { "yes" } else { "no" }.to_string(), plain),
                    health,
                    (p.health_checked_at.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default(), DIM),
                    (p.base_url.unwrap_or_default(), DIM),
                ]);
            }
            output::print_table(&rows);
        }
        ProvidersCommand::Add { name, kind, key_stdin, base_url } => {
            let key = read_key(key_stdin)?;
            let body = types::ProviderCreate {
                name: output::field("name", name)?,
                type_: kind,
                api_key: Some(output::field("API key", key)?),
                base_url: output::opt_field("base URL", base_url)?,
                is_active: None,
            };
            let created = ctx.client.admin_provider_create(&body).await.map_err(sdk)?.into_inner();
            show(ctx, &created);
        }
        ProvidersCommand::Update { provider, rotate_key, key_stdin, base_url, clear_base_url, name } => {
            if !(rotate_key || key_stdin || base_url.is_some() || clear_base_url || name.is_some()) {
                return Err(CliError::usage(
                    "nothing to change: give --rotate-key, --base-url, --clear-base-url or --name",
                ));
            }
            let p = find(ctx, &provider).await?;
            let api_key = if rotate_key || key_stdin { Some(read_key(key_stdin)?) } else { None };
            let body = types::ProviderUpdate {
                api_key: output::opt_field("API key", api_key)?,
                base_url: output::opt_field("base URL", base_url)?,
                clear_base_url: clear_base_url.then_some(true),
                name: output::opt_field("name", name)?,
                is_active: None,
            };
            let updated = ctx.client.admin_provider_update(&p.id, &body).await.map_err(sdk)?.into_inner();
            show(ctx, &updated);
        }
        ProvidersCommand::Test { provider } => {
            let p = find(ctx, &provider).await?;
            let result = ctx.client.admin_provider_test(&p.id).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&result);
            } else {
                let (word, style) = if result.healthy { ("healthy", OK) } else { ("unhealthy", ERROR) };
                anstream::println!("{}: {style}{word}{style:#} — {}", p.name, result.message);
            }
            if !result.healthy {
                return Ok(ExitCode::from(crate::exit::Exit::Error as u8));
            }
        }
        ProvidersCommand::Disable { provider } => set_active(ctx, &provider, false).await?,
        ProvidersCommand::Enable { provider } => set_active(ctx, &provider, true).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_active(ctx: &Context, provider: &str, active: bool) -> Result<(), CliError> {
    let p = find(ctx, provider).await?;
    let body = types::ProviderUpdate {
        api_key: None,
        base_url: None,
        clear_base_url: None,
        name: None,
        is_active: Some(active),
    };
    let updated = ctx
        .client
        .admin_provider_update(&p.id, &body)
        .await
        .map_err(|e| CliError::from_sdk(e, &ctx.api_url))?
        .into_inner();
    show(ctx, &updated);
    Ok(())
}
