//! Prints the health of a FunMagic server with the SDK. Anonymous callers see each check's
//! status; set `FUNMAGIC_TOKEN` to an admin's token to see versions, backends and details.
//!
//! ```text
//! cargo run -p funmagic-examples --example health -- http://127.0.0.1:8000
//! ```

use funmagic_sdk::ClientBuilder;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args().nth(1).unwrap_or_else(|| funmagic_sdk::DEFAULT_API_URL.to_string());
    let mut builder = ClientBuilder::new(url);
    if let Ok(token) = std::env::var("FUNMAGIC_TOKEN") {
        builder = builder.token(token);
    }
    let client = builder.build()?;
    let report = match client.health_all_get().await {
        Ok(resp) => resp.into_inner(),
        // 503 still carries the report.
        Err(funmagic_sdk::Error::ErrorResponse(resp)) => resp.into_inner(),
        Err(e) => return Err(e.into()),
    };
    println!("server {} is {}", report.version.as_deref().unwrap_or("(version: admins only)"), report.status);
    for check in report.checks {
        let backend = check.backend.unwrap_or_default();
        println!("  {:<10} {:<6} {:<9} {}", check.name, check.status, backend, check.detail.unwrap_or_default());
    }
    Ok(())
}
