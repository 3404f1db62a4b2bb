//! JSON shapes shared by several resources (camelCase on the wire).

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use uuid::Uuid;

use crate::store::{ApiKeyRow, Role, SessionRow, UserRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum UserRole {
    User,
    Admin,
    SuperAdmin,
}

impl From<Role> for UserRole {
    fn from(role: Role) -> Self {
        match role {
            Role::User => UserRole::User,
            Role::Admin => UserRole::Admin,
            Role::SuperAdmin => UserRole::SuperAdmin,
        }
    }
}

impl From<UserRole> for Role {
    fn from(role: UserRole) -> Self {
        match role {
            UserRole::User => Role::User,
            UserRole::Admin => Role::Admin,
            UserRole::SuperAdmin => Role::SuperAdmin,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: UserRole,
    pub email_verified: bool,
    pub image: Option<String>,
    pub banned: bool,
    pub ban_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(u: UserRow) -> Self {
        let role = u.role().into();
        Self {
            id: u.id,
            email: u.email,
            name: u.name,
            role,
            email_verified: u.email_verified,
            image: u.image,
            banned: u.banned,
            ban_reason: u.ban_reason,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct Session {
    pub id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<SessionRow> for Session {
    fn from(s: SessionRow) -> Self {
        Self {
            id: s.id,
            expires_at: s.expires_at,
            ip_address: s.ip_address,
            user_agent: s.user_agent,
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ApiKeyScope {
    Read,
    Write,
    Admin,
}

impl From<ApiKeyScope> for crate::store::KeyScope {
    fn from(s: ApiKeyScope) -> Self {
        match s {
            ApiKeyScope::Read => Self::Read,
            ApiKeyScope::Write => Self::Write,
            ApiKeyScope::Admin => Self::Admin,
        }
    }
}

impl From<crate::store::KeyScope> for ApiKeyScope {
    fn from(s: crate::store::KeyScope) -> Self {
        match s {
            crate::store::KeyScope::Read => Self::Read,
            crate::store::KeyScope::Write => Self::Write,
            crate::store::KeyScope::Admin => Self::Admin,
        }
    }
}

/// An API key as listed: never the secret, only its first characters.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the key, to recognize it.
    pub prefix: String,
    pub scope: ApiKeyScope,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(k: ApiKeyRow) -> Self {
        let scope = crate::store::KeyScope::parse(&k.scope).unwrap_or(crate::store::KeyScope::Read).into();
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            scope,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            created_at: k.created_at,
        }
    }
}

/// `{"success": true}`.
#[derive(Debug, Clone, Object)]
pub struct Success {
    pub success: bool,
}

impl Success {
    pub fn ok() -> poem_openapi::payload::Json<Self> {
        poem_openapi::payload::Json(Self { success: true })
    }
}

/// The page size of a list request: 50 unless asked, between 1 and 200. Queries fetch one
/// row more than this to learn whether another page follows.
pub fn page_limit(limit: Option<u32>) -> i64 {
    i64::from(limit.unwrap_or(50).clamp(1, 200))
}

/// Cuts the extra row fetched past `limit` and returns the cursor of the next page (the
/// last kept row's id), or `None` on the last page.
pub fn next_page<T>(rows: &mut Vec<T>, limit: i64, id: impl Fn(&T) -> Uuid) -> Option<Uuid> {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(id)
    } else {
        None
    }
}

/// A spec enum whose JSON names are also the strings the store keeps: `as_str` for writing
/// them, `parse` for reading them back.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[oai(rename = $wire)] #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }

            /// The value the store keeps; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// Like [`Self::parse`], for values the store's CHECK constraints guarantee.
            pub fn from_store(s: &str) -> Self {
                Self::parse(s).unwrap_or_else(|| {
                    tracing::error!(value = s, "unknown {} in the store", stringify!($name));
                    Self::ALL[0]
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// Where a task is in its life.
    TaskStatus {
        Pending = "pending",
        Queued = "queued",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

wire_enum! {
    /// Where a step of a task is.
    StepStatus {
        Pending = "pending",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
        Skipped = "skipped",
    }
}

wire_enum! {
    /// Where a banner shows.
    BannerType {
        Main = "main",
        Side = "side",
    }
}

wire_enum! {
    /// Where a banner link opens.
    LinkTarget {
        SameTab = "_self",
        NewTab = "_blank",
    }
}

wire_enum! {
    /// The API a provider speaks.
    ProviderType {
        Openai = "openai",
        Fal = "fal",
        Tripo = "tripo",
        Local = "local",
    }
}

wire_enum! {
    /// The provider types an admin can add (`local` is built in).
    ExternalProviderType {
        Openai = "openai",
        Fal = "fal",
        Tripo = "tripo",
    }
}

wire_enum! {
    /// A Stripe Checkout Session's state as we track it.
    CheckoutStatus {
        Open = "open",
        Completed = "completed",
        Expired = "expired",
    }
}
