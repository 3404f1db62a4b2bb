//! Admin use cases over the catalogue: tools and tool types, AI providers (keys, health,
//! master key rotation). Like every app module: a `Principal` and checked fields in, stored
//! rows out; the HTTP layer only parses and answers.

pub mod provider_health;
pub mod providers;
pub mod tools;
