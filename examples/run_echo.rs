//! Runs the `echo` tool with the SDK and prints its progress events.
//!
//! ```text
//! FUNMAGIC_TOKEN=fms_… cargo run -p funmagic-examples --example run_echo -- http://127.0.0.1:8000
//! ```

use funmagic_sdk::{ClientBuilder, types};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args().nth(1).unwrap_or_else(|| funmagic_sdk::DEFAULT_API_URL.to_string());
    let token = std::env::var("FUNMAGIC_TOKEN")
        .map_err(|_| anyhow::anyhow!("set FUNMAGIC_TOKEN to a session token or API key"))?;
    let client = ClientBuilder::new(url).token(token).build()?;
    let request = types::TaskCreateRequest {
        tool_slug: "echo".parse()?,
        step_id: None,
        input: serde_json::json!({ "hello": "world", "delayMs": 500 }),
        parent_task_id: None,
        run_all_steps: None,
        webhook: None,
    };
    let (task, last) = funmagic_sdk::events::run_and_wait(&client, &request, |event| {
        println!(
            "{:>4} {:<15} {}",
            event.id.map(|i| i.to_string()).unwrap_or_default(),
            event.kind.to_string(),
            event.data
        );
    })
    .await?;
    println!("task {} ended with {}", task.id, last.kind);
    Ok(())
}
