//! `funmagic admin users|tools|tool-types|tasks|queue|dead-letters|packages …`: the
//! administration the console offers, for scripts and CI. Lists print tables (or the API's
//! JSON with `--json`, filtered with `--jq`), take `--limit` and follow every page with
//! `--paginate`; users may be named by email or id.

use std::path::PathBuf;
use std::process::ExitCode;

use anstyle::Style;
use clap::{Args, Subcommand};
use funmagic_sdk::types;

use crate::context::Context;
use crate::exit::CliError;
use crate::output::{self, DIM, ERROR, OK};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Users, newest first; `--query` matches email or name.
    List {
        #[arg(long, short)]
        query: Option<String>,
        #[command(flatten)]
        pages: Pages,
    },
    /// One user (email or id).
    Show { user: String },
    /// Set a user's role (user, admin, super_admin; super_admin only).
    Role {
        user: String,
        #[arg(value_parser = output::api_enum::<types::UserRole>)]
        role: types::UserRole,
    },
    /// Ban a user: their sessions and keys stop working.
    Ban {
        user: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a ban.
    Unban { user: String },
    /// Sign a user out everywhere (sessions; keys stay).
    SignOut { user: String },
    /// Delete a user's account (files, keys, sessions; ledger and tasks kept, anonymised).
    Rm {
        user: String,
        /// Confirms the deletion (there is no undo).
        #[arg(long)]
        yes: bool,
    },
    /// A user's credit balance.
    Credits { user: String },
    /// A user's credit history.
    Transactions {
        user: String,
        #[command(flatten)]
        pages: Pages,
    },
    /// A user's files.
    Assets {
        user: String,
        #[arg(long)]
        module: Option<String>,
        #[command(flatten)]
        pages: Pages,
    },
}

/// Page size and following.
#[derive(Debug, Clone, Copy, Args)]
pub struct Pages {
    /// Items per page (1–200).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Follow every page (all items).
    #[arg(long)]
    pub paginate: bool,
}

#[derive(Debug, Subcommand)]
pub enum ToolsAdminCommand {
    /// Every tool, active or not.
    List,
    /// Add a tool from a JSON file in the API's ToolInput shape
    /// (`{"slug","title","toolTypeId","config":{"steps":[…]},…}`; `-` reads stdin).
    Create {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Replace a tool (slug or id) with the JSON file's definition.
    Update {
        tool: String,
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Turn a tool on or off without editing the rest.
    Enable {
        tool: String,
    },
    Disable {
        tool: String,
    },
    /// Delete a tool (refused while tasks reference it: disable it instead).
    Rm {
        tool: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ToolTypesCommand {
    /// The tool types (categories).
    List,
    /// Add a tool type.
    Create {
        name: String,
        #[command(flatten)]
        fields: ToolTypeFields,
    },
    /// Change a tool type (name or id); fields not given keep their value.
    Update {
        tool_type: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: ToolTypeFields,
    },
    /// Delete a tool type (refused while tools use it).
    Rm { tool_type: String },
}

#[derive(Debug, Args)]
pub struct ToolTypeFields {
    #[arg(long)]
    display_name: Option<String>,
    #[arg(long)]
    icon: Option<String>,
    #[arg(long)]
    color: Option<String>,
    #[arg(long)]
    description: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TasksAdminCommand {
    /// Every user's tasks, newest first.
    List {
        #[arg(long, value_parser = output::api_enum::<types::TaskStatus>)]
        status: Option<types::TaskStatus>,
        /// A tool's slug.
        #[arg(long)]
        tool: Option<String>,
        /// A user (email or id).
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        pages: Pages,
    },
    /// Run a failed task again (a new task, charged again).
    Retry { id: uuid::Uuid },
}

#[derive(Debug, Subcommand)]
pub enum PackagesCommand {
    /// Every credit package, on sale or not.
    List,
    /// Add a package.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        credits: u64,
        /// In the currency's smallest unit (cents).
        #[arg(long)]
        price: i64,
        #[command(flatten)]
        fields: PackageFields,
    },
    /// Change a package (fields not given keep their value).
    Update {
        id: uuid::Uuid,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        credits: Option<u64>,
        #[arg(long)]
        price: Option<i64>,
        #[command(flatten)]
        fields: PackageFields,
    },
    /// Delete a package (refused once bought: deactivate it instead).
    Rm { id: uuid::Uuid },
}

#[derive(Debug, Args)]
pub struct PackageFields {
    /// ISO 4217, lower case (default usd).
    #[arg(long)]
    currency: Option<String>,
    #[arg(long)]
    sort_order: Option<i32>,
    #[arg(long)]
    stripe_price_id: Option<String>,
    /// Off sale.
    #[arg(long, conflicts_with = "active")]
    inactive: bool,
    /// On sale.
    #[arg(long)]
    active: bool,
}

fn sdk_err(ctx: &Context) -> impl Fn(funmagic_sdk::Error<types::ApiError>) -> CliError + '_ {
    move |e| CliError::from_sdk(e, &ctx.api_url)
}

/// A listing's items: the first page of `pages.limit`, or every page with `--paginate`; and
/// the cursor of what is left.
async fn collect<T, F, Fut>(
    pages: Pages,
    mut fetch: F,
) -> Result<(Vec<T>, Option<uuid::Uuid>), funmagic_sdk::Error<types::ApiError>>
where
    F: FnMut(Option<uuid::Uuid>, Option<std::num::NonZeroU32>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<uuid::Uuid>), funmagic_sdk::Error<types::ApiError>>>,
{
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = fetch(cursor, output::page(pages.limit)).await?;
        items.extend(page);
        cursor = next;
        if !pages.paginate || cursor.is_none() {
            return Ok((items, cursor));
        }
    }
}

fn status_style(status: types::TaskStatus) -> Style {
    match status {
        types::TaskStatus::Completed => OK,
        types::TaskStatus::Failed | types::TaskStatus::Cancelled => ERROR,
        _ => Style::new(),
    }
}

fn plain() -> Style {
    Style::new()
}

/// A user named by id, id prefix (of the listed page) or email.
pub async fn resolve_user(ctx: &Context, who: &str) -> Result<types::User, CliError> {
    if let Ok(id) = who.parse::<uuid::Uuid>() {
        return Ok(ctx.client.admin_user_get(&id).await.map_err(sdk_err(ctx))?.into_inner());
    }
    let q: types::Prose200 = output::field("user", who)?;
    let list = ctx.client.admin_user_list(None, output::page(200), Some(&q)).await.map_err(sdk_err(ctx))?.into_inner();
    let lower = who.to_lowercase();
    if let Some(u) = list.users.iter().find(|u| u.email.to_lowercase() == lower) {
        return Ok(u.clone());
    }
    let by_prefix: Vec<&types::User> = list.users.iter().filter(|u| output::id_matches(&u.id, who)).collect();
    match by_prefix.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(CliError::usage(format!("no user '{who}' (give an email or an id)"))),
        _ => Err(CliError::usage(format!("'{who}' matches several users: give more of the id"))),
    }
}

fn user_rows(users: &[types::User]) -> Vec<Vec<(String, Style)>> {
    let mut rows = vec![output::header(&["ID", "EMAIL", "NAME", "ROLE", "VERIFIED", "STATE", "CREATED"])];
    for u in users {
        let state = if u.deleted_at.is_some() {
            ("deleted".to_string(), DIM)
        } else if u.banned {
            ("banned".to_string(), ERROR)
        } else {
            ("active".to_string(), OK)
        };
        rows.push(vec![
            (output::short_id(&u.id), DIM),
            (u.email.clone(), plain()),
            (u.name.clone(), plain()),
            (u.role.to_string(), plain()),
            (if u.email_verified { "yes" } else { "no" }.to_string(), plain()),
            state,
            (u.created_at.format("%Y-%m-%d").to_string(), DIM),
        ]);
    }
    rows
}

fn show_user(ctx: &Context, u: &types::User) -> Result<(), CliError> {
    if ctx.json {
        return output::emit_json(ctx, u);
    }
    output::print_table(&user_rows(std::slice::from_ref(u)));
    if let Some(reason) = &u.ban_reason {
        anstream::println!("{}ban reason: {reason}{}", DIM.render(), DIM.render_reset());
    }
    Ok(())
}

pub async fn run_users(ctx: &Context, command: UsersCommand) -> Result<ExitCode, CliError> {
    let sdk = sdk_err(ctx);
    match command {
        UsersCommand::List { query, pages } => {
            let q: Option<types::Prose200> = output::opt_field("query", query)?;
            let q = q.as_ref();
            let (users, cursor) = collect(pages, |cursor, limit| async move {
                let page = ctx.client.admin_user_list(cursor.as_ref(), limit, q).await?.into_inner();
                Ok((page.users, page.next_cursor))
            })
            .await
            .map_err(sdk_err(ctx))?;
            if ctx.json {
                return output::emit_json(ctx, &serde_json::json!({ "users": users, "nextCursor": cursor }))
                    .map(|_| ExitCode::SUCCESS);
            }
            output::print_table(&user_rows(&users));
            output::more_hint(cursor.is_some());
        }
        UsersCommand::Show { user } => show_user(ctx, &resolve_user(ctx, &user).await?)?,
        UsersCommand::Role { user, role } => {
            let u = resolve_user(ctx, &user).await?;
            let u = ctx.client.admin_user_role_set(&u.id, &types::SetRoleRequest { role }).await.map_err(&sdk)?;
            show_user(ctx, &u.into_inner())?;
        }
        UsersCommand::Ban { user, reason } => {
            let u = resolve_user(ctx, &user).await?;
            let body = types::BanRequest { reason: output::opt_field("reason", reason)? };
            let u = ctx.client.admin_user_ban(&u.id, &body).await.map_err(&sdk)?;
            show_user(ctx, &u.into_inner())?;
        }
        UsersCommand::Unban { user } => {
            let u = resolve_user(ctx, &user).await?;
            show_user(ctx, &ctx.client.admin_user_unban(&u.id).await.map_err(&sdk)?.into_inner())?;
        }
        UsersCommand::SignOut { user } => {
            let u = resolve_user(ctx, &user).await?;
            let r = ctx.client.admin_user_sessions_revoke(&u.id).await.map_err(&sdk)?.into_inner();
            if ctx.json {
                output::emit_json(ctx, &r)?;
            } else {
                anstream::println!(
                    "{}✓{} signed {} out of {} session(s)",
                    OK.render(),
                    OK.render_reset(),
                    u.email,
                    r.revoked
                );
            }
        }
        UsersCommand::Rm { user, yes } => {
            let u = resolve_user(ctx, &user).await?;
            if !yes {
                return Err(CliError::usage(format!(
                    "deleting {} cannot be undone: run again with --yes to confirm",
                    u.email
                )));
            }
            ctx.client.admin_user_delete(&u.id).await.map_err(&sdk)?;
            if ctx.json {
                output::emit_json(ctx, &serde_json::json!({ "deleted": u.id }))?;
            } else {
                anstream::println!("{}✓{} deleted the account of {}", OK.render(), OK.render_reset(), u.email);
            }
        }
        UsersCommand::Credits { user } => {
            let u = resolve_user(ctx, &user).await?;
            let b = ctx.client.admin_user_credits_get(&u.id).await.map_err(&sdk)?.into_inner();
            if ctx.json {
                output::emit_json(ctx, &b)?;
            } else {
                println!(
                    "{}: {} available (balance {}, reserved {}, earned {}, spent {})",
                    u.email, b.available, b.balance, b.reserved, b.lifetime_earned, b.lifetime_spent
                );
            }
        }
        UsersCommand::Transactions { user, pages } => {
            let u = resolve_user(ctx, &user).await?;
            let (items, cursor) = collect(pages, |cursor, limit| async move {
                let page = ctx.client.admin_user_transaction_list(&u.id, cursor.as_ref(), limit).await?.into_inner();
                Ok((page.transactions, page.next_cursor))
            })
            .await
            .map_err(sdk_err(ctx))?;
            if ctx.json {
                return output::emit_json(ctx, &serde_json::json!({ "transactions": items, "nextCursor": cursor }))
                    .map(|_| ExitCode::SUCCESS);
            }
            let mut rows = vec![output::header(&["WHEN", "TYPE", "AMOUNT", "BALANCE AFTER", "DESCRIPTION"])];
            for t in items {
                rows.push(vec![
                    (t.created_at.format("%Y-%m-%d %H:%M").to_string(), DIM),
                    (t.type_.to_string(), plain()),
                    (format!("{:+}", t.amount), if t.amount < 0 { ERROR } else { OK }),
                    (t.balance_after.to_string(), plain()),
                    (t.description.unwrap_or_default(), DIM),
                ]);
            }
            output::print_table(&rows);
            output::more_hint(cursor.is_some());
        }
        UsersCommand::Assets { user, module, pages } => {
            let u = resolve_user(ctx, &user).await?;
            let module: Option<types::Module> = output::opt_field("module", module)?;
            let module = module.as_ref();
            let (items, cursor) = collect(pages, |cursor, limit| async move {
                let page = ctx.client.admin_user_asset_list(&u.id, cursor.as_ref(), limit, module).await?.into_inner();
                Ok((page.assets, page.next_cursor))
            })
            .await
            .map_err(sdk_err(ctx))?;
            if ctx.json {
                return output::emit_json(ctx, &serde_json::json!({ "assets": items, "nextCursor": cursor }))
                    .map(|_| ExitCode::SUCCESS);
            }
            let mut rows = vec![output::header(&["ID", "FILE", "TYPE", "SIZE", "VISIBILITY", "CREATED"])];
            for a in items {
                rows.push(vec![
                    (output::short_id(&a.id), DIM),
                    (a.filename.unwrap_or_default(), plain()),
                    (a.mime_type, DIM),
                    (a.size.to_string(), plain()),
                    (a.visibility.to_string(), plain()),
                    (a.created_at.format("%Y-%m-%d %H:%M").to_string(), DIM),
                ]);
            }
            output::print_table(&rows);
            output::more_hint(cursor.is_some());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn find_tool(ctx: &Context, which: &str) -> Result<types::Tool, CliError> {
    let list = ctx.client.admin_tool_list().await.map_err(sdk_err(ctx))?.into_inner();
    let matches: Vec<types::Tool> = list
        .tools
        .into_iter()
        .filter(|t| t.slug.as_str() == which || t.id.to_string() == which || output::id_matches(&t.id, which))
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().unwrap_or_else(|| unreachable!())),
        0 => Err(CliError::usage(format!("no tool '{which}' (see `funmagic admin tools list`)"))),
        _ => Err(CliError::usage(format!("'{which}' matches several tools: give more of the id"))),
    }
}

fn tool_input(value: serde_json::Value, what: &str) -> Result<types::ToolInput, CliError> {
    serde_json::from_value(value).map_err(|e| CliError::usage(format!("{what}: not a tool definition: {e}")))
}

fn tool_as_input(t: &types::Tool) -> Result<types::ToolInput, CliError> {
    let mut v = serde_json::to_value(t).map_err(|e| CliError::other(e.to_string()))?;
    let kind = t.tool_type.as_ref().ok_or_else(|| CliError::other("the tool has no tool type"))?;
    v["toolTypeId"] = serde_json::json!(kind.id);
    tool_input(v, "the tool")
}

fn show_tool(ctx: &Context, t: &types::Tool) -> Result<(), CliError> {
    if ctx.json {
        return output::emit_json(ctx, t);
    }
    anstream::println!(
        "{}✓{} {} ({}) {} credits, {}",
        OK.render(),
        OK.render_reset(),
        t.slug.as_str(),
        t.title,
        t.credits_cost,
        if t.is_active { "active" } else { "disabled" }
    );
    Ok(())
}

pub async fn run_tools(ctx: &Context, command: ToolsAdminCommand) -> Result<ExitCode, CliError> {
    let sdk = sdk_err(ctx);
    match command {
        ToolsAdminCommand::List => {
            let list = ctx.client.admin_tool_list().await.map_err(&sdk)?.into_inner();
            if ctx.json {
                output::emit_json(ctx, &list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows =
                vec![output::header(&["SLUG", "TITLE", "TYPE", "COST", "STEPS", "ACTIVE", "FEATURED", "ID"])];
            for t in list.tools {
                rows.push(vec![
                    (t.slug.to_string(), plain()),
                    (t.title, plain()),
                    (t.tool_type.map(|k| k.name).unwrap_or_default(), DIM),
                    (t.credits_cost.to_string(), plain()),
                    (t.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(" → "), DIM),
                    (if t.is_active { "yes" } else { "no" }.to_string(), if t.is_active { OK } else { ERROR }),
                    (if t.featured { "yes" } else { "" }.to_string(), plain()),
                    (output::short_id(&t.id), DIM),
                ]);
            }
            output::print_table(&rows);
        }
        ToolsAdminCommand::Create { file } => {
            let body = tool_input(output::read_json_file(&file)?, &file.display().to_string())?;
            show_tool(ctx, &ctx.client.admin_tool_create(&body).await.map_err(&sdk)?.into_inner())?;
        }
        ToolsAdminCommand::Update { tool, file } => {
            let t = find_tool(ctx, &tool).await?;
            let body = tool_input(output::read_json_file(&file)?, &file.display().to_string())?;
            show_tool(ctx, &ctx.client.admin_tool_update(&t.id, &body).await.map_err(&sdk)?.into_inner())?;
        }
        ToolsAdminCommand::Enable { tool } => set_active(ctx, &tool, true).await?,
        ToolsAdminCommand::Disable { tool } => set_active(ctx, &tool, false).await?,
        ToolsAdminCommand::Rm { tool } => {
            let t = find_tool(ctx, &tool).await?;
            ctx.client.admin_tool_delete(&t.id).await.map_err(&sdk)?;
            if ctx.json {
                output::emit_json(ctx, &serde_json::json!({ "deleted": t.id }))?;
            } else {
                anstream::println!("{}✓{} deleted {}", OK.render(), OK.render_reset(), t.slug.as_str());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_active(ctx: &Context, tool: &str, active: bool) -> Result<(), CliError> {
    let t = find_tool(ctx, tool).await?;
    let mut body = tool_as_input(&t)?;
    body.is_active = Some(active);
    show_tool(ctx, &ctx.client.admin_tool_update(&t.id, &body).await.map_err(sdk_err(ctx))?.into_inner())
}

async fn find_tool_type(ctx: &Context, which: &str) -> Result<types::ToolType, CliError> {
    let list = ctx.client.admin_tool_type_list().await.map_err(sdk_err(ctx))?.into_inner();
    list.tool_types
        .into_iter()
        .find(|t| t.name == which || t.id.to_string() == which || output::id_matches(&t.id, which))
        .ok_or_else(|| CliError::usage(format!("no tool type '{which}' (see `funmagic admin tool-types list`)")))
}

fn show_tool_type(ctx: &Context, t: &types::ToolType) -> Result<(), CliError> {
    if ctx.json {
        return output::emit_json(ctx, t);
    }
    anstream::println!("{}✓{} {} ({})", OK.render(), OK.render_reset(), t.name, t.display_name);
    Ok(())
}

pub async fn run_tool_types(ctx: &Context, command: ToolTypesCommand) -> Result<ExitCode, CliError> {
    let sdk = sdk_err(ctx);
    match command {
        ToolTypesCommand::List => {
            let list = ctx.client.admin_tool_type_list().await.map_err(&sdk)?.into_inner();
            if ctx.json {
                output::emit_json(ctx, &list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = vec![output::header(&["NAME", "DISPLAY NAME", "ICON", "COLOR", "ID"])];
            for t in list.tool_types {
                rows.push(vec![
                    (t.name, plain()),
                    (t.display_name, plain()),
                    (t.icon.unwrap_or_default(), DIM),
                    (t.color.unwrap_or_default(), DIM),
                    (output::short_id(&t.id), DIM),
                ]);
            }
            output::print_table(&rows);
        }
        ToolTypesCommand::Create { name, fields } => {
            let body = types::ToolTypeInput {
                display_name: output::field(
                    "display name",
                    fields.display_name.clone().unwrap_or_else(|| name.clone()),
                )?,
                name: output::field("name", &name)?,
                icon: output::opt_field("icon", fields.icon)?,
                color: output::opt_field("color", fields.color)?,
                description: output::opt_field("description", fields.description)?,
            };
            show_tool_type(ctx, &ctx.client.admin_tool_type_create(&body).await.map_err(&sdk)?.into_inner())?;
        }
        ToolTypesCommand::Update { tool_type, name, fields } => {
            let t = find_tool_type(ctx, &tool_type).await?;
            let body = types::ToolTypeInput {
                name: output::field("name", name.unwrap_or(t.name.clone()))?,
                display_name: output::field("display name", fields.display_name.unwrap_or(t.display_name.clone()))?,
                icon: output::opt_field("icon", fields.icon.or(t.icon.clone()))?,
                color: output::opt_field("color", fields.color.or(t.color.clone()))?,
                description: output::opt_field("description", fields.description.or(t.description.clone()))?,
            };
            show_tool_type(ctx, &ctx.client.admin_tool_type_update(&t.id, &body).await.map_err(&sdk)?.into_inner())?;
        }
        ToolTypesCommand::Rm { tool_type } => {
            let t = find_tool_type(ctx, &tool_type).await?;
            ctx.client.admin_tool_type_delete(&t.id).await.map_err(&sdk)?;
            if ctx.json {
                output::emit_json(ctx, &serde_json::json!({ "deleted": t.id }))?;
            } else {
                anstream::println!("{}✓{} deleted {}", OK.render(), OK.render_reset(), t.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_tasks(ctx: &Context, command: TasksAdminCommand) -> Result<ExitCode, CliError> {
    let sdk = sdk_err(ctx);
    match command {
        TasksAdminCommand::List { status, tool, user, pages } => {
            let tool: Option<types::Slug60> = output::opt_field("tool", tool)?;
            let user_id = match user {
                Some(u) => Some(resolve_user(ctx, &u).await?.id),
                None => None,
            };
            let tool = tool.as_ref();
            let (tasks, cursor) = collect(pages, |cursor, limit| async move {
                let page = ctx
                    .client
                    .admin_task_list(cursor.as_ref(), limit, status, tool, user_id.as_ref())
                    .await?
                    .into_inner();
                Ok((page.tasks, page.next_cursor))
            })
            .await
            .map_err(sdk_err(ctx))?;
            if ctx.json {
                return output::emit_json(ctx, &serde_json::json!({ "tasks": tasks, "nextCursor": cursor }))
                    .map(|_| ExitCode::SUCCESS);
            }
            let mut rows = vec![output::header(&["ID", "STATUS", "USER", "COST", "ATTEMPTS", "CREATED"])];
            for t in tasks {
                rows.push(vec![
                    (output::short_id(&t.id), DIM),
                    (t.status.to_string(), status_style(t.status)),
                    (output::short_id(&t.user_id), DIM),
                    (t.credits_cost.to_string(), plain()),
                    (t.attempts.to_string(), plain()),
                    (t.created_at.format("%Y-%m-%d %H:%M:%S").to_string(), DIM),
                ]);
            }
            output::print_table(&rows);
            output::more_hint(cursor.is_some());
        }
        TasksAdminCommand::Retry { id } => {
            let task = ctx.client.admin_task_retry(&id).await.map_err(&sdk)?.into_inner().task;
            if ctx.json {
                output::emit_json(ctx, &task)?;
            } else {
                anstream::println!("{}✓{} retried as task {}", OK.render(), OK.render_reset(), task.id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_queue(ctx: &Context) -> Result<ExitCode, CliError> {
    let q = ctx.client.admin_queue_get().await.map_err(sdk_err(ctx))?.into_inner();
    if ctx.json {
        output::emit_json(ctx, &q)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("queue ({}): {} waiting · {} delayed · {} running", q.backend, q.waiting, q.delayed, q.running);
    if let Some(len) = q.stream_length {
        anstream::println!(
            "{}stream: {len} entries · {} pending delivery · {} delayed{}",
            DIM.render(),
            q.stream_pending.unwrap_or(0),
            q.stream_delayed.unwrap_or(0),
            DIM.render_reset()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_dead_letters(ctx: &Context, pages: Pages) -> Result<ExitCode, CliError> {
    let (items, cursor) = collect(pages, |cursor, limit| async move {
        let page = ctx.client.admin_dead_letter_list(cursor.as_ref(), limit).await?.into_inner();
        Ok((page.dead_letters, page.next_cursor))
    })
    .await
    .map_err(sdk_err(ctx))?;
    if ctx.json {
        return output::emit_json(ctx, &serde_json::json!({ "deadLetters": items, "nextCursor": cursor }))
            .map(|_| ExitCode::SUCCESS);
    }
    let mut rows = vec![output::header(&["TASK", "WHEN", "ATTEMPTS", "REASON", "ERROR"])];
    for d in items {
        rows.push(vec![
            (output::short_id(&d.task_id), DIM),
            (d.created_at.format("%Y-%m-%d %H:%M").to_string(), DIM),
            (d.attempts.to_string(), plain()),
            (d.reason, ERROR),
            (output::fit(&d.error, 60), plain()),
        ]);
    }
    output::print_table(&rows);
    output::more_hint(cursor.is_some());
    Ok(ExitCode::SUCCESS)
}

fn show_package(ctx: &Context, p: &types::CreditPackage) -> Result<(), CliError> {
    if ctx.json {
        return output::emit_json(ctx, p);
    }
    anstream::println!(
        "{}✓{} {} — {} credits for {} {} ({})",
        OK.render(),
        OK.render_reset(),
        p.name,
        p.credits,
        p.price,
        p.currency,
        if p.is_active { "on sale" } else { "off sale" }
    );
    Ok(())
}

pub async fn run_packages(ctx: &Context, command: PackagesCommand) -> Result<ExitCode, CliError> {
    let sdk = sdk_err(ctx);
    match command {
        PackagesCommand::List => {
            let list = ctx.client.admin_credit_package_list().await.map_err(&sdk)?.into_inner();
            if ctx.json {
                output::emit_json(ctx, &list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows =
                vec![output::header(&["ID", "NAME", "CREDITS", "PRICE", "ON SALE", "ORDER", "STRIPE PRICE"])];
            for p in list.packages {
                rows.push(vec![
                    (p.id.to_string(), DIM),
                    (p.name, plain()),
                    (p.credits.to_string(), plain()),
                    (format!("{} {}", p.price, p.currency), plain()),
                    (if p.is_active { "yes" } else { "no" }.to_string(), if p.is_active { OK } else { DIM }),
                    (p.sort_order.to_string(), DIM),
                    (p.stripe_price_id.unwrap_or_default(), DIM),
                ]);
            }
            output::print_table(&rows);
        }
        PackagesCommand::Create { name, credits, price, fields } => {
            let body = types::PackageInput {
                name: output::field("name", name)?,
                credits: std::num::NonZeroU64::new(credits)
                    .ok_or_else(|| CliError::usage("--credits must be at least 1"))?,
                price,
                currency: output::opt_field("currency", fields.currency)?,
                sort_order: fields.sort_order,
                stripe_price_id: output::opt_field("stripe price id", fields.stripe_price_id)?,
                is_active: if fields.inactive { Some(false) } else { Some(true) },
            };
            show_package(ctx, &ctx.client.admin_credit_package_create(&body).await.map_err(&sdk)?.into_inner())?;
        }
        PackagesCommand::Update { id, name, credits, price, fields } => {
            let list = ctx.client.admin_credit_package_list().await.map_err(&sdk)?.into_inner();
            let p = list
                .packages
                .into_iter()
                .find(|p| p.id == id)
                .ok_or_else(|| CliError::usage(format!("no package {id} (see `funmagic admin packages list`)")))?;
            let credits = credits.unwrap_or(p.credits.max(1) as u64);
            let body = types::PackageInput {
                name: output::field("name", name.unwrap_or(p.name))?,
                credits: std::num::NonZeroU64::new(credits)
                    .ok_or_else(|| CliError::usage("--credits must be at least 1"))?,
                price: price.unwrap_or(p.price),
                currency: output::opt_field("currency", Some(fields.currency.unwrap_or(p.currency)))?,
                sort_order: fields.sort_order.or(Some(p.sort_order)),
                stripe_price_id: output::opt_field("stripe price id", fields.stripe_price_id.or(p.stripe_price_id))?,
                is_active: Some(if fields.inactive {
                    false
                } else if fields.active {
                    true
                } else {
                    p.is_active
                }),
            };
            show_package(ctx, &ctx.client.admin_credit_package_update(&id, &body).await.map_err(&sdk)?.into_inner())?;
        }
        PackagesCommand::Rm { id } => {
            ctx.client.admin_credit_package_delete(&id).await.map_err(&sdk)?;
            if ctx.json {
                output::emit_json(ctx, &serde_json::json!({ "deleted": id }))?;
            } else {
                anstream::println!("{}✓{} deleted package {id}", OK.render(), OK.render_reset());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
