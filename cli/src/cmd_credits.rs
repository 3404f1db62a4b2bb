//! `funmagic credits …` and `funmagic admin credits adjust`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Subcommand;
use funmagic_sdk::types;

use crate::context::Context;
use crate::exit::CliError;
use crate::output::{self, DIM, HEADER};

#[derive(Debug, Subcommand)]
pub enum CreditsCommand {
    /// Your balance (the default).
    Balance,
    /// Your credit history, newest first.
    History {
        /// Only this kind: purchase, spend, refund, bonus, admin_adjust, reserve.
        #[arg(long = "type")]
        kind: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Credit packages on sale.
    Packages,
    /// Buy a package (by name or id): prints, and on a desktop opens, the checkout page.
    Buy { package: String },
}

#[derive(Debug, Subcommand)]
pub enum AdminCreditsCommand {
    /// Add (or, negative, remove) a user's credits with a reason.
    Adjust {
        /// The user's email or id.
        user: String,
        #[arg(allow_negative_numbers = true)]
        amount: i64,
        #[arg(long)]
        reason: String,
        /// Makes a retried command safe: the same key never adjusts twice.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
}

pub async fn run(ctx: &Context, command: Option<CreditsCommand>) -> Result<ExitCode, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    match command.unwrap_or(CreditsCommand::Balance) {
        CreditsCommand::Balance => {
            let b = ctx.client.credits_balance_get().await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&b);
            } else {
                println!("{} credits available", b.available);
                anstream::println!(
                    "{}balance {} · reserved for running tasks {} · earned {} · spent {}{}",
                    DIM.render(),
                    b.balance,
                    b.reserved,
                    b.lifetime_earned,
                    b.lifetime_spent,
                    DIM.render_reset()
                );
            }
        }
        CreditsCommand::History { kind, limit } => {
            let kind = match kind.as_deref() {
                None => None,
                Some(k) => Some(k.parse::<types::TransactionType>().map_err(|_| {
                    CliError::usage(format!(
                        "unknown type '{k}': purchase, spend, refund, bonus, admin_adjust or reserve"
                    ))
                })?),
            };
            let page =
                ctx.client.credits_transaction_list(None, output::page(limit), kind).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&page);
            } else {
                let mut rows = vec![
                    ["WHEN", "TYPE", "AMOUNT", "BALANCE", "RESERVED", "DESCRIPTION"]
                        .map(|h| (h.to_string(), HEADER))
                        .to_vec(),
                ];
                let plain = anstyle::Style::new();
                for t in page.transactions {
                    let amount = if t.amount > 0 { format!("+{}", t.amount) } else { t.amount.to_string() };
                    rows.push(vec![
                        (t.created_at.format("%Y-%m-%d %H:%M").to_string(), DIM),
                        (t.type_.to_string(), plain),
                        (amount, plain),
                        (t.balance_after.to_string(), plain),
                        (t.reserved_after.to_string(), DIM),
                        (t.description.unwrap_or_default(), plain),
                    ]);
                }
                output::print_table(&rows);
            }
        }
        CreditsCommand::Packages => {
            let list = ctx.client.credits_package_list().await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&list);
            } else {
                let mut rows = vec![["NAME", "CREDITS", "PRICE", "ID"].map(|h| (h.to_string(), HEADER)).to_vec()];
                let plain = anstyle::Style::new();
                for p in list.packages {
                    rows.push(vec![
                        (p.name, plain),
                        (p.credits.to_string(), plain),
                        (format!("{}.{:02} {}", p.price / 100, p.price % 100, p.currency.to_uppercase()), plain),
                        (p.id.to_string(), DIM),
                    ]);
                }
                output::print_table(&rows);
            }
        }
        CreditsCommand::Buy { package } => {
            let list = ctx.client.credits_package_list().await.map_err(sdk)?.into_inner();
            let chosen = list
                .packages
                .iter()
                .find(|p| p.id.to_string() == package || p.name.eq_ignore_ascii_case(&package))
                .ok_or_else(|| CliError::usage(format!("no package '{package}' (see `funmagic credits packages`)")))?;
            let key = uuid::Uuid::new_v4().to_string();
            let checkout = ctx
                .client
                .credits_checkout_create(
                    Some(&output::field("idempotency key", &key)?),
                    &types::CheckoutRequest { package_id: chosen.id },
                )
                .await
                .map_err(sdk)?
                .into_inner();
            if ctx.json {
                output::print_json(&checkout);
            } else {
                println!("{}", checkout.url);
                eprintln!(
                    "Pay for {} ({} credits) at the address above; the credits arrive when payment completes.",
                    chosen.name, chosen.credits
                );
                open_in_browser(&checkout.url);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens a URL when a person is at a desktop; silent otherwise.
fn open_in_browser(url: &str) {
    if !std::io::stdout().is_terminal() {
        return;
    }
    let opener = if cfg!(target_os = "macos") {
        Some("open")
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
        Some("xdg-open")
    } else {
        None
    };
    if let Some(cmd) = opener {
        let _ = std::process::Command::new(cmd)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

/// Finds a user id by id or exact email (admin).
pub async fn resolve_user(ctx: &Context, user: &str) -> Result<uuid::Uuid, CliError> {
    if let Ok(id) = user.parse::<uuid::Uuid>() {
        return Ok(id);
    }
    let list = ctx
        .client
        .admin_user_list(None, output::page(200), Some(&output::field("user", user)?))
        .await
        .map_err(|e| CliError::from_sdk(e, &ctx.api_url))?
        .into_inner();
    list.users
        .into_iter()
        .find(|u| u.email.eq_ignore_ascii_case(user.trim()))
        .map(|u| u.id)
        .ok_or_else(|| CliError::new(crate::exit::Exit::Error, format!("no user with email '{user}'")))
}

pub async fn run_admin(ctx: &Context, command: AdminCreditsCommand) -> Result<ExitCode, CliError> {
    match command {
        AdminCreditsCommand::Adjust { user, amount, reason, idempotency_key } => {
            let id = resolve_user(ctx, &user).await?;
            let body = types::AdjustCreditsRequest { amount, description: output::field("reason", reason)? };
            let idempotency_key = output::opt_field("idempotency key", idempotency_key)?;
            let balance = ctx
                .client
                .admin_user_credits_adjust(&id, idempotency_key.as_ref(), &body)
                .await
                .map_err(|e| CliError::from_sdk(e, &ctx.api_url))?
                .into_inner();
            if ctx.json {
                output::print_json(&balance);
            } else {
                println!("{user}: balance {} ({} available)", balance.balance, balance.available);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
