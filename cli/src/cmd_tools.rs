//! `funmagic tools list|show`: the tool catalogue.

use std::process::ExitCode;

use clap::Subcommand;

use crate::context::Context;
use crate::exit::CliError;
use crate::output::{self, DIM, HEADER};

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// Tools you can run, with their cost.
    List {
        /// Only the featured tools (a homepage's).
        #[arg(long)]
        featured: bool,
        /// Titles and names in this language where the tool has it (zh, pt-BR, …).
        #[arg(long)]
        locale: Option<String>,
    },
    /// One tool: its steps, their cost, and its styles.
    Show {
        slug: String,
        /// Titles and names in this language where the tool has it (zh, pt-BR, …).
        #[arg(long)]
        locale: Option<String>,
    },
}

pub async fn run(ctx: &Context, command: ToolsCommand) -> Result<ExitCode, CliError> {
    let sdk = |e| CliError::from_sdk(e, &ctx.api_url);
    match command {
        ToolsCommand::List { featured, locale } => {
            let locale = output::opt_field("locale", locale.as_ref())?;
            let list =
                ctx.client.tool_list(featured.then_some(true), locale.as_ref(), None).await.map_err(sdk)?.into_inner();
            if ctx.json {
                output::print_json(&list);
            } else {
                let mut rows =
                    vec![["TOOL", "TITLE", "TYPE", "STEPS", "CREDITS"].map(|h| (h.to_string(), HEADER)).to_vec()];
                let plain = anstyle::Style::new();
                for t in list.tools {
                    let steps = t.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(" → ");
                    rows.push(vec![
                        (t.slug, plain),
                        (t.title, plain),
                        (t.tool_type.map(|ty| ty.display_name).unwrap_or_default(), DIM),
                        (steps, plain),
                        (t.credits_cost.to_string(), plain),
                    ]);
                }
                output::print_table(&rows);
            }
        }
        ToolsCommand::Show { slug, locale } => {
            let locale = output::opt_field("locale", locale.as_ref())?;
            let t = ctx
                .client
                .tool_get(&output::field("tool", &slug)?, locale.as_ref(), None)
                .await
                .map_err(sdk)?
                .into_inner();
            if ctx.json {
                output::print_json(&t);
            } else {
                println!("{} — {} ({} credits for every step)", t.slug, t.title, t.credits_cost);
                if let Some(d) = &t.description {
                    println!("{d}");
                }
                println!();
                let mut rows =
                    vec![["STEP", "NAME", "TYPE", "MODEL", "CREDITS"].map(|h| (h.to_string(), HEADER)).to_vec()];
                let plain = anstyle::Style::new();
                for s in &t.steps {
                    rows.push(vec![
                        (s.id.clone(), plain),
                        (s.name.clone(), plain),
                        (s.type_.to_string(), plain),
                        (s.provider_model.clone(), DIM),
                        (s.cost.to_string(), plain),
                    ]);
                }
                output::print_table(&rows);
                if !t.style_references.is_empty() {
                    println!();
                    println!(
                        "styles (--style): {}",
                        t.style_references.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
