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
    /// When the account was deleted (admins see the anonymised tombstone).
    pub deleted_at: Option<DateTime<Utc>>,
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
            deleted_at: u.deleted_at,
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

use crate::domain::wire_enum;
pub use crate::domain::{BannerType, CheckoutStatus, LinkTarget, StepStatus, TaskStatus, TransactionType};

wire_enum! {
    /// The provider types an admin can add (`local` is built in).
    ExternalProviderType {
        Openai = "openai",
        Fal = "fal",
        Tripo = "tripo",
    }
}

impl From<ExternalProviderType> for crate::providers::ProviderKind {
    fn from(t: ExternalProviderType) -> Self {
        match t {
            ExternalProviderType::Openai => Self::OpenAi,
            ExternalProviderType::Fal => Self::Fal,
            ExternalProviderType::Tripo => Self::Tripo,
        }
    }
}

/// How many sessions a revocation ended.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RevokedSessions {
    pub revoked: u64,
}
