//! FunMagic API server library: configuration, datastore, storage, HTTP surface and the
//! server runtime. The binary `funmagic-server` (src/main.rs) is a thin shell around it.
//! See ARCHITECTURE.md at the repository root for the map.

pub mod accounts;
pub mod admin;
pub mod admission;
pub mod app;
pub mod assets;
pub mod auth;
pub mod backoff;
pub mod banners;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credits;
pub mod domain;
pub mod error;
pub mod events;
pub mod fetch;
pub mod http;
pub mod meter;
pub mod providers;
pub mod queue;
pub mod redis_conn;
pub mod server;
pub mod storage;
pub mod store;
pub mod tasks;
pub mod telemetry;
/// Test harness (test apps on both backends, sample images); only in test builds and for
/// crates that enable the `testing` feature, never in the server binary.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tools;
pub mod traces;
pub mod urls;
pub mod web;
pub mod webhooks;
pub mod worker;
