//! figme's chain, one step at a time: generate a styled image, pick it, then turn that
//! image into a 3D model (the second step names the first as its parent).
//!
//! ```text
//! FUNMAGIC_TOKEN=fmk_… cargo run -p funmagic-examples --example figme_chain -- photo.png sketch
//! ```

use funmagic_examples::{client_from_env, output_assets};
use funmagic_sdk::types;

async fn run(client: &funmagic_sdk::Client, request: types::TaskCreateRequest) -> anyhow::Result<serde_json::Value> {
    let (task, last) =
        funmagic_sdk::events::run_and_wait(client, &request, |e| eprintln!("  {} {}", e.kind, e.data)).await?;
    anyhow::ensure!(last.kind == types::EventKind::Completed, "task {} ended {}: {}", task.id, last.kind, last.data);
    Ok(serde_json::json!({ "task": task.id, "output": last.data["output"] }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let photo = std::path::PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!("usage: PHOTO [STYLE]"))?);
    let style = args.next().unwrap_or_else(|| "sketch".into());
    let client = client_from_env()?;
    let tool = client.tool_get(&"figme".parse()?, None, None).await?.into_inner();
    let steps: Vec<&str> = tool.steps.iter().map(|s| s.id.as_str()).collect();
    println!("{}: {}", tool.title, steps.join(" → "));

    let asset = funmagic_sdk::files::upload_file(&client, &photo, Some("uploads"), |_, _| {}).await?;
    eprintln!("step 1: {}", steps[0]);
    let first = run(
        &client,
        types::TaskCreateRequest {
            tool_slug: "figme".parse()?,
            step_id: Some(steps[0].parse()?),
            input: serde_json::json!({ "imageStorageKey": asset.storage_key, "style": style }),
            parent_task_id: None,
            run_all_steps: None,
            webhook: None,
        },
    )
    .await?;
    // Pick the image (the first output here; a UI would let a person choose).
    let picked = *output_assets(&first["output"]).first().ok_or_else(|| anyhow::anyhow!("no image"))?;
    let picked = client.asset_get(&picked).await?.into_inner();
    println!("picked {}", picked.filename.as_deref().unwrap_or("the image"));

    eprintln!("step 2: {}", steps[1]);
    let second = run(
        &client,
        types::TaskCreateRequest {
            tool_slug: "figme".parse()?,
            step_id: Some(steps[1].parse()?),
            input: serde_json::json!({ "imageStorageKey": picked.storage_key }),
            parent_task_id: Some(first["task"].as_str().unwrap_or_default().parse()?),
            run_all_steps: None,
            webhook: None,
        },
    )
    .await?;
    for id in output_assets(&second["output"]) {
        let model = client.asset_get(&id).await?.into_inner();
        println!("3D model: {} ({} bytes, {})", model.filename.unwrap_or_default(), model.size, model.mime_type);
    }
    Ok(())
}
