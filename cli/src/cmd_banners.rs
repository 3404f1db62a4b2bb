//! `funmagic admin banners list|create|update|rm|reorder` (admins). A thumbnail given as a
//! file is uploaded to the admin bucket first; a URL is used as is.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use funmagic_sdk::types;

use crate::context::Context;
use crate::exit::CliError;
use crate::output::{self, DIM, HEADER, OK};

#[derive(Debug, Subcommand)]
pub enum BannersCommand {
    /// Every banner, live or not.
    List,
    /// Add a banner.
    Create {
        #[arg(long)]
        title: String,
        #[command(flatten)]
        fields: Fields,
    },
    /// Change a banner (fields not given keep their value).
    Update {
        id: uuid::Uuid,
        #[arg(long)]
        title: Option<String>,
        #[command(flatten)]
        fields: Fields,
    },
    /// Delete a banner.
    Rm { id: uuid::Uuid },
    /// Put one type's banners in this order.
    Reorder {
        #[arg(long = "type", default_value = "main", value_parser = output::api_enum::<types::BannerType>)]
        kind: types::BannerType,
        ids: Vec<uuid::Uuid>,
    },
}

#[derive(Debug, Args)]
pub struct Fields {
    #[arg(long)]
    description: Option<String>,
    /// An image file (uploaded to the admin bucket) or an http(s) URL.
    #[arg(long)]
    thumbnail: Option<String>,
    #[arg(long)]
    link: Option<String>,
    #[arg(long)]
    link_text: Option<String>,
    /// Open the link in a new tab.
    #[arg(long)]
    new_tab: bool,
    /// main or side.
    #[arg(long = "type", value_parser = output::api_enum::<types::BannerType>)]
    kind: Option<types::BannerType>,
    #[arg(long)]
    position: Option<i32>,
    #[arg(long)]
    badge: Option<String>,
    #[arg(long)]
    badge_color: Option<String>,
    /// Shown from this instant (RFC 3339).
    #[arg(long)]
    starts_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Shown until this instant (RFC 3339).
    #[arg(long)]
    ends_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Keep it but do not show it.
    #[arg(long, conflicts_with = "active")]
    inactive: bool,
    #[arg(long)]
    active: bool,
}

async fn thumbnail(ctx: &Context, given: Option<String>) -> Result<Option<String>, CliError> {
    match given {
        Some(t) if t.starts_with("https://") || t.starts_with("http://") => Ok(Some(t)),
        Some(file) => {
            let path = PathBuf::from(&file);
            let asset = funmagic_sdk::files::upload_admin_file(&ctx.client, &path, None, |_, _| {})
                .await
                .map_err(|e| crate::cmd_assets::file_error(ctx, e))?;
            Ok(Some(asset.storage_key))
        }
        None => Ok(None),
    }
}

fn merge(
    ctx_title: String,
    f: Fields,
    thumb: Option<String>,
    base: Option<&types::Banner>,
) -> Result<types::BannerInput, CliError> {
    Ok(types::BannerInput {
        title: output::field("title", ctx_title)?,
        description: output::opt_field(
            "description",
            f.description.or_else(|| base.and_then(|b| b.description.clone())),
        )?,
        thumbnail: output::opt_field("thumbnail", thumb.or_else(|| base.and_then(|b| b.thumbnail.clone())))?,
        link: output::opt_field("link", f.link.or_else(|| base.and_then(|b| b.link.clone())))?,
        link_text: output::opt_field("link text", f.link_text.or_else(|| base.and_then(|b| b.link_text.clone())))?,
        link_target: Some(if f.new_tab {
            types::LinkTarget::Blank
        } else {
            base.map(|b| b.link_target).unwrap_or(types::LinkTarget::Self_)
        }),
        // A banner moved to another type goes to that type's end unless --position says.
        position: f
            .position
            .or_else(|| base.filter(|b| f.kind.as_ref().is_none_or(|k| *k == b.type_)).map(|b| b.position)),
        type_: f.kind.or_else(|| base.map(|b| b.type_)),
        badge: output::opt_field("badge", f.badge.or_else(|| base.and_then(|b| b.badge.clone())))?,
        badge_color: output::opt_field(
            "badge colour",
            f.badge_color.or_else(|| base.and_then(|b| b.badge_color.clone())),
        )?,
        is_active: Some(if f.inactive {
            false
        } else if f.active {
            true
        } else {
            base.map(|b| b.is_active).unwrap_or(true)
        }),
        starts_at: f.starts_at.or_else(|| base.and_then(|b| b.starts_at)),
        ends_at: f.ends_at.or_else(|| base.and_then(|b| b.ends_at)),
    })
}

fn show(ctx: &Context, b: &types::Banner) {
    if ctx.json {
        output::print_json(b);
    } else {
        println!(
            "{} {} [{} #{}] {}",
            b.id,
            b.title,
            b.type_,
            b.position,
            if b.is_active { "active" } else { "inactive" }
        );
    }
}

pub async fn run(ctx: &Context, command: BannersCommand) -> Result<ExitCode, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    match command {
        BannersCommand::List => {
            let list = ctx.client.admin_banner_list().await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&list);
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows =
                vec![["ID", "TYPE", "POS", "TITLE", "LIVE", "WINDOW"].map(|h| (h.to_string(), HEADER)).to_vec()];
            let plain = anstyle::Style::new();
            let now = chrono::Utc::now();
            for b in list.banners {
                let live = b.is_active && b.starts_at.is_none_or(|s| s <= now) && b.ends_at.is_none_or(|e| e > now);
                let window = format!(
                    "{} → {}",
                    b.starts_at.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "…".into()),
                    b.ends_at.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "…".into())
                );
                let live = if live { ("yes".to_string(), OK) } else { ("no".to_string(), DIM) };
                rows.push(vec![
                    (b.id.to_string(), DIM),
                    (b.type_.to_string(), plain),
                    (b.position.to_string(), plain),
                    (b.title, plain),
                    live,
                    (window, DIM),
                ]);
            }
            output::print_table(&rows);
        }
        BannersCommand::Create { title, fields } => {
            let thumb = thumbnail(ctx, fields.thumbnail.clone()).await?;
            let input = merge(title, fields, thumb, None)?;
            let created = ctx.client.admin_banner_create(&input).await.map_err(sdk)?.into_inner();
            show(ctx, &created);
        }
        BannersCommand::Update { id, title, fields } => {
            let list = ctx.client.admin_banner_list().await.map_err(sdk)?.into_inner();
            let base = list
                .banners
                .into_iter()
                .find(|b| b.id == id)
                .ok_or_else(|| CliError::usage(format!("no banner {id}")))?;
            let thumb = thumbnail(ctx, fields.thumbnail.clone()).await?;
            let input = merge(title.unwrap_or_else(|| base.title.clone()), fields, thumb, Some(&base))?;
            let updated = ctx.client.admin_banner_update(&id, &input).await.map_err(sdk)?.into_inner();
            show(ctx, &updated);
        }
        BannersCommand::Rm { id } => {
            ctx.client.admin_banner_delete(&id).await.map_err(sdk)?;
            if ctx.json {
                output::print_json(&serde_json::json!({ "deleted": id }));
            } else {
                println!("deleted {id}");
            }
        }
        BannersCommand::Reorder { kind, ids } => {
            let list = ctx
                .client
                .admin_banner_reorder(&types::BannerReorder { type_: kind, ids })
                .await
                .map_err(sdk)?
                .into_inner();
            if ctx.json {
                output::print_json(&list);
            } else {
                for b in &list.banners {
                    show(ctx, b);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `funmagic banners [--type side]`: what the web UI shows now.
pub async fn run_public(ctx: &Context, kind: Option<types::BannerType>) -> Result<ExitCode, CliError> {
    let list = ctx.client.banner_list(kind).await.map_err(|e| CliError::from_sdk(e, &ctx.api_url))?.into_inner();
    if ctx.json {
        output::print_json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![output::header(&["TITLE", "LINK", "BADGE", "UNTIL"])];
    for b in list.banners {
        rows.push(vec![
            (b.title, anstyle::Style::new()),
            (b.link.unwrap_or_default(), DIM),
            (b.badge.unwrap_or_default(), OK),
            (b.ends_at.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default(), DIM),
        ]);
    }
    output::print_table(&rows);
    Ok(ExitCode::SUCCESS)
}
