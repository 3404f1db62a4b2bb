//! Integration tests of funmagic-admin: every screen rendered into ratatui's `TestBackend`
//! against a real server with seeded data (frames compared to committed snapshots; ids and
//! times masked), small terminals and NO_COLOR, and the real binary driven in a pty.

mod pty;
mod screens;

use funmagic_api::store::{NewUser, Role, TransactionType};
use funmagic_api::testing::TestApp;

/// A user with a session token.
pub async fn user(app: &TestApp, email: &str, role: Role, credits: i64) -> (uuid::Uuid, String) {
    let state = app.state();
    let hash = state.hasher().hash("correct horse battery").await.unwrap();
    let new =
        NewUser { email: email.into(), name: email.split('@').next().unwrap().into(), role, email_verified: true };
    let user = state.store().user_create_with_password(&new, &hash).await.unwrap();
    if credits > 0 {
        state
            .store()
            .credits_grant(user.id, TransactionType::Bonus, credits, &format!("seed-{email}"), None)
            .await
            .unwrap();
    }
    let token =
        funmagic_api::accounts::flows::create_session(state, user.clone(), &Default::default()).await.unwrap().token;
    (user.id, token)
}
