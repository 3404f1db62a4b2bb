//! Upload an image, run background removal on it, follow the progress live, and download
//! the cut-out, with progress for both transfers.
//!
//! ```text
//! FUNMAGIC_TOKEN=fmk_… cargo run -p funmagic-examples --example upload_run_download -- photo.png out/
//! ```

use funmagic_examples::{client_from_env, output_assets};
use funmagic_sdk::events::TaskFollower;
use funmagic_sdk::types;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let photo = std::path::PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!("usage: PHOTO [OUT_DIR]"))?);
    let out_dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let client = client_from_env()?;

    let asset = funmagic_sdk::files::upload_file(&client, &photo, Some("uploads"), |sent, total| {
        eprint!("\ruploading {sent}/{total} bytes");
    })
    .await?;
    eprintln!("\nuploaded as {}", asset.id);

    let request = types::TaskCreateRequest {
        tool_slug: "background-remove".parse()?,
        step_id: None,
        input: serde_json::json!({ "imageStorageKey": asset.storage_key }),
        parent_task_id: None,
        run_all_steps: Some(true),
        webhook: None,
    };
    // A fresh Idempotency-Key; a retried submission never makes a second task.
    let task = funmagic_sdk::retry::submit_task(&client, &request).await?;
    println!("task {}", task.id);

    let mut follower = TaskFollower::new(&client, task.id, 0);
    let mut outputs = Vec::new();
    while let Some(event) = follower.next().await {
        let event = event?;
        match event.kind {
            types::EventKind::Progress => {
                eprintln!("{:>3}% {}", event.data["progress"], event.data["message"].as_str().unwrap_or(""))
            }
            types::EventKind::Completed => outputs = output_assets(&event.data["output"]),
            types::EventKind::Failed => anyhow::bail!("the task failed: {}", event.data["error"]),
            types::EventKind::Cancelled => anyhow::bail!("the task was cancelled"),
            _ => eprintln!("{}", event.kind),
        }
    }
    std::fs::create_dir_all(&out_dir)?;
    for id in outputs {
        let info = client.asset_get(&id).await?.into_inner();
        let dest = out_dir.join(info.filename.unwrap_or_else(|| id.to_string()));
        funmagic_sdk::files::download_asset(&client, &id, &dest, |got, total| {
            eprint!("\rdownloading {got}/{} bytes", total.map(|t| t.to_string()).unwrap_or_else(|| "?".into()));
        })
        .await?;
        eprintln!();
        println!("saved {}", dest.display());
    }
    Ok(())
}
