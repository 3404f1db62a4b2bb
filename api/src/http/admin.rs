//! `/api/admin/*`: user administration. Admin or super_admin (with a session or an
//! admin-scoped key); role changes are super_admin only.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::error::ErrorResponse;
use super::models::{RevokedSessions, Success, User, UserRole};
use super::security::Caller;
use super::text::{Opt, Prose};
use crate::accounts::flows;
use crate::app::AppState;

type Result<T> = std::result::Result<T, ErrorResponse>;

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct UserList {
    pub users: Vec<User>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SetRoleRequest {
    pub role: UserRole,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct BanRequest {
    /// Shown to admins.
    pub reason: Opt<Prose<500>>,
}

pub struct AdminApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// Lists users, optionally filtered by a substring of email or name.
    #[oai(path = "/api/admin/users", method = "get", operation_id = "admin_user_list")]
    async fn user_list(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        q: Query<Option<Prose<200>>>,
        cursor: Query<Option<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
    ) -> Result<Json<UserList>> {
        let limit = super::models::page_limit(limit.0);
        let mut users = flows::admin_user_search(&state, &principal, q.0.as_deref(), cursor.0, limit + 1).await?;
        let next_cursor = super::models::next_page(&mut users, limit, |r| r.id);
        Ok(Json(UserList { users: users.into_iter().map(Into::into).collect(), next_cursor }))
    }

    /// One user.
    #[oai(path = "/api/admin/users/:id", method = "get", operation_id = "admin_user_get")]
    async fn user_get(&self, state: Data<&AppState>, Caller(principal): Caller, id: Path<Uuid>) -> Result<Json<User>> {
        Ok(Json(flows::admin_user_get(&state, &principal, id.0).await?.into()))
    }

    /// Changes a user's role (super_admin only; the last super_admin cannot be demoted).
    #[oai(path = "/api/admin/users/:id/role", method = "post", operation_id = "admin_user_role_set")]
    async fn user_role_set(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
        body: Json<SetRoleRequest>,
    ) -> Result<Json<User>> {
        Ok(Json(flows::admin_set_role(&state, &principal, id.0, body.role.into()).await?.into()))
    }

    /// Bans a user: their sessions end and their API keys stop working at once.
    #[oai(path = "/api/admin/users/:id/ban", method = "post", operation_id = "admin_user_ban")]
    async fn user_ban(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
        body: Json<BanRequest>,
    ) -> Result<Json<User>> {
        Ok(Json(flows::admin_set_banned(&state, &principal, id.0, true, body.reason.as_deref()).await?.into()))
    }

    /// Lifts a ban.
    #[oai(path = "/api/admin/users/:id/unban", method = "post", operation_id = "admin_user_unban")]
    async fn user_unban(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<User>> {
        Ok(Json(flows::admin_set_banned(&state, &principal, id.0, false, None).await?.into()))
    }

    /// Signs a user out everywhere.
    #[oai(path = "/api/admin/users/:id/revoke-sessions", method = "post", operation_id = "admin_user_sessions_revoke")]
    async fn user_sessions_revoke(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<RevokedSessions>> {
        let revoked = flows::admin_revoke_sessions(&state, &principal, id.0).await? as u64;
        Ok(Json(RevokedSessions { revoked }))
    }

    /// Deletes a user's account: it becomes an anonymised tombstone (kept for the ledger
    /// and the tasks), unfinished tasks are cancelled with their credits released, files
    /// are deleted. Admins delete users; only a super admin deletes an admin; the last
    /// super admin cannot be deleted.
    #[oai(path = "/api/admin/users/:id", method = "delete", operation_id = "admin_user_delete")]
    async fn user_delete(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<Success>> {
        flows::admin_delete_user(&state, &principal, id.0).await?;
        Ok(Success::ok())
    }
}
