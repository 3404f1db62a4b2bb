//! Integration tests of funmagic-api: one binary, the real server on port 0, each scenario
//! on the embedded backend (SQLite) and the scale-out one (PostgreSQL + Redis).

mod config;
mod health;
mod openapi;
mod startup;
mod store;

/// An SDK client for a test app.
pub fn client(app: &funmagic_api::testing::TestApp) -> funmagic_sdk::Client {
    funmagic_sdk::ClientBuilder::new(app.base_url()).build().unwrap()
}
