//! Integration tests of the `funmagic` binary against the real server (in-process, port 0).

mod api;
mod assets;
mod auth;
mod coverage;
mod credits;
mod pty;
mod quickstart;
mod status;
mod tasks;
mod webhooks;

use std::process::Output;

use funmagic_api::testing::TempDir;

/// Runs `funmagic ARGS` with a clean environment and its own config dir.
pub async fn funmagic(config_dir: &TempDir, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_funmagic"));
    cmd.args(args).env("FUNMAGIC_CONFIG_DIR", config_dir.path()).stdin(std::process::Stdio::null());
    for var in ["FUNMAGIC_API_URL", "FUNMAGIC_TOKEN", "FUNMAGIC_PROFILE", "NO_COLOR", "CLICOLOR_FORCE"] {
        cmd.env_remove(var);
    }
    cmd.output().await.expect("run funmagic")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A user created in the store with `credits`, and a session token for them.
pub async fn signed_in(
    app: &funmagic_api::testing::TestApp,
    email: &str,
    role: funmagic_api::store::Role,
    credits: i64,
) -> String {
    let state = app.state();
    let hash = state.hasher().hash("correct horse battery").await.unwrap();
    let name = email.split('@').next().unwrap_or("T").to_string();
    let new = funmagic_api::store::NewUser { email: email.into(), name, role, email_verified: true };
    let user = state.store().user_create_with_password(&new, &hash).await.unwrap();
    if credits > 0 {
        let reference = format!("seed-{email}");
        let kind = funmagic_api::store::TransactionType::Bonus;
        state.store().credits_grant(user.id, kind, credits, &reference, None).await.unwrap();
    }
    funmagic_api::accounts::flows::create_session(state, user, &Default::default()).await.unwrap().token
}
