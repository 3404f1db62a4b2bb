//! Account use cases: sign-up, sign-in and out, email verification, password change and
//! reset, API keys, the device flow (RFC 8628), OAuth sign-in, and the admin's user
//! operations. Built on `auth` (who is asking, credentials, hashing, limits), which knows
//! nothing of these flows.

pub mod flows;
pub mod oauth;
