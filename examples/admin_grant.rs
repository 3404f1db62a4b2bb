//! An admin script: find a user by email and grant them credits, safely retryable (the
//! same Idempotency-Key never grants twice).
//!
//! ```text
//! FUNMAGIC_TOKEN=<admin key> cargo run -p funmagic-examples --example admin_grant -- ada@example.com 100 "beta tester"
//! ```

use funmagic_sdk::types;
use futures::TryStreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(email), Some(amount)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: EMAIL AMOUNT [REASON]");
    };
    let amount: i64 = amount.parse()?;
    let reason = args.next().unwrap_or_else(|| "granted by a script".into());
    let client = funmagic_examples::client_from_env()?;

    let query: types::Prose200 = email.parse()?;
    let user = funmagic_sdk::pages::users(&client, Some(&query))
        .try_filter(|u| std::future::ready(u.email.eq_ignore_ascii_case(&email)))
        .try_next()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user {email}"))?;
    // One key per intended grant: rerunning after a timeout cannot grant twice.
    let key = format!("grant-{}-{amount}-{}", user.id, reason.len());
    let body = types::AdjustCreditsRequest { amount, description: reason.parse()? };
    let balance = funmagic_sdk::retry::with_retry(Default::default(), || {
        let key = key.parse().expect("a valid key");
        let (client, body, id) = (&client, &body, user.id);
        async move { client.admin_user_credits_adjust(&id, Some(&key), body).await }
    })
    .await?
    .into_inner();
    println!("{} now has {} credits available", user.email, balance.available);
    Ok(())
}
