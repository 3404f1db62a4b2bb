//! Examples of the FunMagic SDK live beside this file; run them with
//! `cargo run -p funmagic-examples --example NAME -- [ARGS]`. Each reads the server from
//! `FUNMAGIC_API_URL` (default `http://127.0.0.1:8000`) and the credentials from
//! `FUNMAGIC_TOKEN` (a session token or API key: `funmagic auth keys create --name sdk`).
//! `tests/examples.rs` runs every one against an embedded server.

/// A client for `FUNMAGIC_API_URL` with `FUNMAGIC_TOKEN`.
pub fn client_from_env() -> anyhow::Result<funmagic_sdk::Client> {
    let url = std::env::var("FUNMAGIC_API_URL").unwrap_or_else(|_| funmagic_sdk::DEFAULT_API_URL.to_string());
    let token = std::env::var("FUNMAGIC_TOKEN")
        .map_err(|_| anyhow::anyhow!("set FUNMAGIC_TOKEN to a session token or API key"))?;
    Ok(funmagic_sdk::ClientBuilder::new(url).token(token).build()?)
}

/// The asset ids a step output names (`assetId`, `assetIds`).
pub fn output_assets(output: &serde_json::Value) -> Vec<uuid::Uuid> {
    let mut ids: Vec<uuid::Uuid> =
        output["assetIds"].as_array().into_iter().flatten().filter_map(|v| v.as_str()?.parse().ok()).collect();
    if let Some(id) = output["assetId"].as_str().and_then(|s| s.parse().ok()) {
        ids.push(id);
    }
    ids
}
