//! Submits several tasks and follows them all at once (one stream each, concurrently),
//! printing each task's milestones as they arrive and a summary at the end.
//!
//! ```text
//! FUNMAGIC_TOKEN=fmk_… cargo run -p funmagic-examples --example follow_many -- 5
//! ```

use funmagic_sdk::events::TaskFollower;
use funmagic_sdk::types;
use futures::future::join_all;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(5);
    let client = funmagic_examples::client_from_env()?;
    let mut tasks = Vec::new();
    for i in 0..count {
        let request = types::TaskCreateRequest {
            tool_slug: "echo".parse()?,
            step_id: None,
            input: serde_json::json!({ "n": i, "delayMs": 100 * i }),
            parent_task_id: None,
            run_all_steps: Some(true),
            webhook: None,
        };
        tasks.push(funmagic_sdk::retry::submit_task(&client, &request).await?);
    }
    let follows = tasks.iter().map(|task| {
        let client = client.clone();
        let id = task.id;
        async move {
            let mut follower = TaskFollower::new(&client, id, 0);
            let mut last = None;
            while let Some(event) = follower.next().await {
                let event = event?;
                if event.id.is_some() {
                    println!("{id} {}", event.kind);
                }
                last = Some(event.kind);
            }
            anyhow::Ok((id, last))
        }
    });
    let mut completed = 0;
    for result in join_all(follows).await {
        let (id, last) = result?;
        if last == Some(types::EventKind::Completed) {
            completed += 1;
        } else {
            eprintln!("{id} ended with {last:?}");
        }
    }
    println!("{completed} of {count} tasks completed");
    anyhow::ensure!(completed == count, "some tasks did not complete");
    Ok(())
}
