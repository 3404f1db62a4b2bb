//! `funmagic upload FILE` and `funmagic assets list|show|download|rm|publish|unpublish`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use funmagic_sdk::files::{self, FileError};
use funmagic_sdk::types;
use indicatif::{ProgressBar, ProgressStyle};

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{self, DIM, HEADER};

#[derive(Debug, Subcommand)]
pub enum AssetsCommand {
    /// Your files, newest first.
    List {
        #[arg(long)]
        module: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One file, with a download URL.
    Show { id: uuid::Uuid },
    /// Download a file (to --output, default: its name in the current directory).
    Download {
        id: uuid::Uuid,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Delete a file.
    Rm { id: uuid::Uuid },
    /// Make a file public (permanent URL).
    Publish { id: uuid::Uuid },
    /// Make a published file private again.
    Unpublish { id: uuid::Uuid },
}

fn bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

pub(crate) fn file_error(ctx: &Context, e: FileError) -> CliError {
    match e {
        FileError::Api(e) => CliError::from_sdk(e, &ctx.api_url),
        FileError::UnknownType(_) | FileError::Empty(_) => CliError::usage(e.to_string()),
        other => CliError::new(Exit::Error, other.to_string()),
    }
}

/// `funmagic upload FILE [--module M]`.
pub async fn upload(ctx: &Context, path: PathBuf, module: Option<String>) -> Result<ExitCode, CliError> {
    if !path.is_file() {
        return Err(CliError::usage(format!("{} is not a file", path.display())));
    }
    let asset = upload_with_bar(ctx, &path, module.as_deref()).await?;
    if ctx.json {
        output::print_json(&asset);
    } else {
        println!("{}", asset.id);
        eprintln!(
            "uploaded {} ({} bytes) as {}",
            asset.filename.as_deref().unwrap_or("file"),
            asset.size,
            asset.storage_key
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Uploads with a progress bar on a terminal (hidden otherwise); used by `run` too.
pub async fn upload_with_bar(
    ctx: &Context,
    path: &std::path::Path,
    module: Option<&str>,
) -> Result<types::Asset, CliError> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let progress = Arc::new(bar(size));
    let shown = progress.clone();
    let result = files::upload_file(&ctx.client, path, module, move |sent, _| shown.set_position(sent)).await;
    progress.finish_and_clear();
    result.map_err(|e| file_error(ctx, e))
}

pub async fn run(ctx: &Context, command: AssetsCommand) -> Result<ExitCode, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    match command {
        AssetsCommand::List { module, limit } => {
            let module = output::opt_field("module", module.as_ref())?;
            let list =
                ctx.client.asset_list(None, output::page(limit), module.as_ref()).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&list);
            } else {
                let mut rows = vec![
                    ["ID", "NAME", "TYPE", "SIZE", "VISIBILITY", "MODULE", "CREATED"]
                        .map(|h| (h.to_string(), HEADER))
                        .to_vec(),
                ];
                let plain = anstyle::Style::new();
                for a in list.assets {
                    rows.push(vec![
                        (a.id.to_string(), DIM),
                        (a.filename.unwrap_or_default(), plain),
                        (a.mime_type, plain),
                        (a.size.to_string(), plain),
                        (a.visibility.to_string(), plain),
                        (a.module, plain),
                        (a.created_at.format("%Y-%m-%d %H:%M").to_string(), DIM),
                    ]);
                }
                output::print_table(&rows);
            }
        }
        AssetsCommand::Show { id } => {
            let a = ctx.client.asset_get(&id).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&a);
            } else {
                println!(
                    "{} {} ({}, {} bytes, {})",
                    a.id,
                    a.filename.as_deref().unwrap_or(""),
                    a.mime_type,
                    a.size,
                    a.visibility
                );
                println!("  key:      {}", a.storage_key);
                if let Some(url) = &a.download_url {
                    println!("  download: {url}");
                }
            }
        }
        AssetsCommand::Download { id, output: dest } => {
            let asset = ctx.client.asset_get(&id).await.map_err(sdk)?.into_inner();
            let dest = dest.unwrap_or_else(|| PathBuf::from(asset.filename.clone().unwrap_or_else(|| id.to_string())));
            let dest =
                if dest.is_dir() { dest.join(asset.filename.clone().unwrap_or_else(|| id.to_string())) } else { dest };
            let url = asset.download_url.clone().ok_or_else(|| CliError::other("the asset has no download URL"))?;
            let progress = bar(asset.size.max(0) as u64);
            let result = files::download_url(&url, &dest, |got, _| progress.set_position(got)).await;
            progress.finish_and_clear();
            result.map_err(|e| file_error(ctx, e))?;
            if ctx.json {
                output::print_json(&serde_json::json!({ "id": id, "path": dest }));
            } else {
                println!("{}", dest.display());
            }
        }
        AssetsCommand::Rm { id } => {
            ctx.client.asset_delete(&id).await.map_err(sdk)?;
            if ctx.json {
                output::print_json(&serde_json::json!({ "deleted": id }));
            } else {
                println!("deleted {id}");
            }
        }
        AssetsCommand::Publish { id } | AssetsCommand::Unpublish { id } => {
            let publish = matches!(command, AssetsCommand::Publish { .. });
            let a = if publish { ctx.client.asset_publish(&id).await } else { ctx.client.asset_unpublish(&id).await }
                .map_err(sdk)?
                .into_inner();
            if ctx.json {
                output::print_json(&a);
            } else if publish {
                println!("{}", a.download_url.unwrap_or_default());
            } else {
                println!("{} is private again", a.id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
