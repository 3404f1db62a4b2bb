//! Every one of your files, across all pages, as an async stream; prints a summary per
//! media type.
//!
//! ```text
//! FUNMAGIC_TOKEN=fmk_… cargo run -p funmagic-examples --example paginate_assets
//! ```

use std::collections::BTreeMap;

use futures::TryStreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let client = funmagic_examples::client_from_env()?;
    let mut by_type: BTreeMap<String, (usize, i64)> = BTreeMap::new();
    let mut assets = std::pin::pin!(funmagic_sdk::pages::assets(&client, None));
    while let Some(asset) = assets.try_next().await? {
        let entry = by_type.entry(asset.mime_type.clone()).or_default();
        entry.0 += 1;
        entry.1 += asset.size;
    }
    let total: usize = by_type.values().map(|(n, _)| n).sum();
    println!("{total} files");
    for (mime, (count, bytes)) in by_type {
        println!("  {mime:<20} {count:>5} files {bytes:>12} bytes");
    }
    Ok(())
}
