//! Prints the health of a FunMagic server with the SDK.
//!
//! ```text
//! cargo run -p funmagic-examples --example health -- http://127.0.0.1:8000
//! ```

use funmagic_sdk::ClientBuilder;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args().nth(1).unwrap_or_else(|| funmagic_sdk::DEFAULT_API_URL.to_string());
    let client = ClientBuilder::new(url).build()?;
    let report = match client.health_all_get().await {
        Ok(resp) => resp.into_inner(),
        // 503 still carries the report.
        Err(funmagic_sdk::Error::ErrorResponse(resp)) => resp.into_inner(),
        Err(e) => return Err(e.into()),
    };
    println!("server {} is {}", report.version, report.status);
    for check in report.checks {
        println!("  {:<10} {:<6} {:<9} {}", check.name, check.status, check.backend, check.detail);
    }
    Ok(())
}
