//! Authentication and authorization: who is asking ([`Principal`]), and whether they may
//! ([`Access`]). Credentials are session tokens (`fms_…`, as a Bearer header or the
//! HttpOnly cookie) and API keys (`fmk_…`, Bearer only). Cookie-authenticated writes must
//! pass the CSRF origin check. In scale-out mode resolved principals are cached in Redis
//! for a short TTL, with a per-user generation counter so that a ban, role change or
//! revocation takes effect at once on every API process; each process also keeps copies of
//! the entries it used lately and only asks Redis whether they still hold.

pub mod mail;
pub mod password;
pub mod ratelimit;
pub mod redirect;
pub mod token;

use std::time::Duration;

use chrono::{DateTime, Utc};
use poem::Request;
use poem::http::Method;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::AuthSettings;
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::redis_conn::RedisHandle;
use crate::store::{KeyScope, Role, Store, UserRow};

/// Name of the session cookie (better-auth's is `better-auth.session_token`).
pub const SESSION_COOKIE: &str = "funmagic.session_token";
/// How long a resolved principal may be served from the Redis cache.
const CACHE_TTL_SECS: u64 = 60;
/// How long a user's generation key lives after it was set (longer than any entry).
const GENERATION_TTL_SECS: u64 = CACHE_TTL_SECS * 10;
/// A session is extended when it was last extended longer ago than this.
const SESSION_UPDATE_AGE: chrono::Duration = chrono::Duration::days(1);

/// What an operation needs of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any authenticated caller (read-only keys included).
    Read,
    /// Changes the caller's own data: sessions, `write` and `admin` keys.
    Write,
    /// `/api/admin/*`: role admin or super_admin, and not through a read/write key.
    Admin,
    /// Roles and providers: super_admin only.
    SuperAdmin,
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Credential {
    Session {
        id: Uuid,
        token_hash: String,
        expires_at: DateTime<Utc>,
    },
    /// `expires_at`: the key's own expiry, so a cached key lapses on time too (absent in
    /// entries cached by earlier releases: those keys are checked when next resolved).
    ApiKey {
        id: Uuid,
        token_hash: String,
        scope: String,
        #[serde(default)]
        expires_at: Option<DateTime<Utc>>,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Principal {
    pub user: UserRow,
    pub credential: Credential,
}

impl Principal {
    pub fn user_id(&self) -> Uuid {
        self.user.id
    }

    pub fn role(&self) -> Role {
        self.user.role()
    }

    /// The effective scope: a session acts with everything its user's role allows; a key
    /// with its own scope, capped by the role (an admin key of a demoted admin is `write`).
    pub fn scope(&self) -> KeyScope {
        let role_cap = if self.role() >= Role::Admin { KeyScope::Admin } else { KeyScope::Write };
        match &self.credential {
            Credential::Session { .. } => role_cap,
            Credential::ApiKey { scope, .. } => KeyScope::parse(scope).unwrap_or(KeyScope::Read).min(role_cap),
        }
    }

    pub fn session_id(&self) -> Option<Uuid> {
        match &self.credential {
            Credential::Session { id, .. } => Some(*id),
            Credential::ApiKey { .. } => None,
        }
    }

    /// Checks `access`; the error says whether the role or the key's scope is lacking.
    pub fn require(&self, access: Access) -> AppResult<()> {
        let scope_error = |needed: &str| {
            AppError::new(
                ErrorKind::Forbidden,
                ErrorCode::InsufficientScope,
                format!("this API key's scope does not allow this; it needs scope '{needed}'"),
            )
        };
        match access {
            Access::Read => Ok(()),
            Access::Write if self.scope() >= KeyScope::Write => Ok(()),
            Access::Write => Err(scope_error("write")),
            Access::Admin | Access::SuperAdmin => {
                let role_ok = match access {
                    Access::SuperAdmin => self.role() == Role::SuperAdmin,
                    _ => self.role() >= Role::Admin,
                };
                if !role_ok {
                    Err(AppError::forbidden())
                } else if self.scope() < KeyScope::Admin {
                    Err(scope_error("admin"))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Refuses API keys: `what` needs a signed-in session (device approval, creating keys), so
    /// a leaked key cannot turn itself into a wider or longer-lived credential.
    pub fn require_session(&self, what: &str) -> AppResult<()> {
        match self.credential {
            Credential::Session { .. } => Ok(()),
            Credential::ApiKey { .. } => Err(AppError::new(
                ErrorKind::Forbidden,
                ErrorCode::SessionRequired,
                format!("{what} needs a signed-in session; API keys cannot do it"),
            )),
        }
    }

    /// Admins read any user's data; everyone else only their own. Not yours → 404, so ids
    /// do not leak.
    pub fn can_see_user(&self, owner: Uuid) -> bool {
        owner == self.user.id || (self.role() >= Role::Admin && self.scope() >= KeyScope::Admin)
    }
}

/// The account an admin read is about: the caller must be an admin, and the user must
/// exist (an unknown id is 404).
pub async fn admin_target(store: &Store, principal: &Principal, user_id: Uuid) -> AppResult<Uuid> {
    principal.require(Access::Admin)?;
    store.user_get(user_id).await?.ok_or_else(|| AppError::not_found("user"))?;
    Ok(user_id)
}

/// The client address used for rate limits and session records: the TCP peer, or — behind
/// a reverse proxy (`auth.trust_forwarded_for`) — the address that proxy appended last to
/// `X-Forwarded-For` (entries further left are client-supplied and not trusted).
pub fn client_ip(req: &Request, trust_forwarded_for: bool) -> String {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into());
    if !trust_forwarded_for {
        return peer;
    }
    req.headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .next_back()
        .filter(|v| v.parse::<std::net::IpAddr>().is_ok())
        .map(str::to_string)
        .unwrap_or(peer)
}

pub fn user_agent(req: &Request) -> Option<String> {
    req.headers()
        .get(poem::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect())
}

/// CSRF defence for cookie-authenticated unsafe requests: the `Origin` (or, failing that,
/// `Referer`) must be this server (same host as `Host`), its public URL, or a trusted origin.
pub fn check_csrf(req: &Request, settings: &AuthSettings, public_url: Option<&str>) -> AppResult<()> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let header = |name| req.headers().get(name).and_then(|v: &poem::http::HeaderValue| v.to_str().ok());
    let origin = header(poem::http::header::ORIGIN)
        .filter(|o| *o != "null")
        .map(str::to_string)
        .or_else(|| header(poem::http::header::REFERER).and_then(origin_of));
    let rejected = || {
        AppError::new(
            ErrorKind::Forbidden,
            ErrorCode::CsrfRejected,
            "cookie-authenticated requests must come from this site (Origin check failed); API clients should send Authorization: Bearer",
        )
    };
    let Some(origin) = origin else { return Err(rejected()) };
    let origin = origin.trim_end_matches('/');
    let host = header(poem::http::header::HOST);
    let same_host =
        host.is_some_and(|h| origin.split_once("://").is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(h)));
    let listed = public_url.and_then(origin_of).is_some_and(|p| p.eq_ignore_ascii_case(origin))
        || settings.trusted_origins.iter().chain(&settings.cors_origins).any(|t| t.eq_ignore_ascii_case(origin));
    if same_host || listed { Ok(()) } else { Err(rejected()) }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

/// Resolves credentials to principals, with the Redis cache in scale-out mode and an
/// in-process cache in the embedded default (one API process on its SQLite file).
#[derive(Debug)]
pub struct Authenticator {
    store: Store,
    redis: Option<RedisHandle>,
    session_ttl: chrono::Duration,
    local: Option<LocalCache>,
    /// Scale-out: principals this process resolved lately, so a request asks Redis only
    /// whether they still hold (entry there, no tombstone, same generation) instead of
    /// fetching and parsing the entry (see [`Authenticator::near_check`]).
    near: Option<Copies>,
    /// Sessions and keys expire by this clock.
    clock: std::sync::Arc<crate::clock::Clock>,
}

/// The embedded mode's principal cache: the same protocol as the Redis one (entries carry
/// their user's generation, revoked credentials leave tombstones), in memory.
#[derive(Debug, Default)]
struct LocalCache {
    entries: Copies,
    generations: std::sync::Mutex<std::collections::HashMap<Uuid, i64>>,
    tombstones: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// How long the in-process cache keeps an entry (and a tombstone).
const LOCAL_CACHE_TTL: Duration = Duration::from_secs(10);

/// Principals held in this process for `LOCAL_CACHE_TTL`: the embedded mode's cache, and
/// scale-out's copies of Redis cache entries. A scale-out copy is only served while the
/// Redis entry it copies still exists, its credential has no tombstone and its user's
/// generation is the copy's: the same three facts the Redis lookup checks, read in one
/// pipeline. So a revocation, a ban or a role change on any process takes effect at once
/// here too, as before. A copy lives at most `LOCAL_CACHE_TTL`, inside the tombstone's
/// lifetime; a generation value is never used twice (`fresh_generation`), so a copy
/// cannot match a generation set after it was made, even after the generation key expired
/// or Redis lost its data and another process wrote the entry again.
#[derive(Debug)]
struct Copies {
    map: std::sync::Mutex<CopyMap>,
}

#[derive(Debug)]
struct CopyMap {
    entries: std::collections::HashMap<String, (std::time::Instant, CachedPrincipal)>,
    /// When expired copies were last dropped (at most once a `LOCAL_CACHE_TTL`).
    swept: std::time::Instant,
}

impl Default for Copies {
    fn default() -> Self {
        let entries = CopyMap { entries: Default::default(), swept: std::time::Instant::now() };
        Self { map: std::sync::Mutex::new(entries) }
    }
}

impl Copies {
    /// Copies at most; past it (credentials used on this process within `LOCAL_CACHE_TTL`)
    /// the map starts again.
    const MAX: usize = 100_000;

    fn get(&self, hash: &str) -> Option<CachedPrincipal> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (at, cached) = map.entries.get(hash)?;
        (at.elapsed() < LOCAL_CACHE_TTL).then(|| cached.clone())
    }

    fn put(&self, hash: &str, cached: CachedPrincipal) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.swept.elapsed() >= LOCAL_CACHE_TTL {
            map.entries.retain(|_, (at, _)| at.elapsed() < LOCAL_CACHE_TTL);
            map.swept = std::time::Instant::now();
        }
        if map.entries.len() >= Self::MAX {
            map.entries.clear();
        }
        map.entries.insert(hash.to_string(), (std::time::Instant::now(), cached));
    }

    fn remove(&self, hash: &str) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).entries.remove(hash);
    }
}

impl Authenticator {
    pub fn new(
        store: Store,
        redis: Option<RedisHandle>,
        settings: &AuthSettings,
        clock: std::sync::Arc<crate::clock::Clock>,
    ) -> Self {
        let local = (redis.is_none() && store.engine() == crate::store::Engine::Sqlite).then(LocalCache::default);
        let near = redis.is_some().then(Copies::default);
        let session_ttl = chrono::Duration::days(i64::from(settings.session_ttl_days));
        Self { store, redis, session_ttl, local, near, clock }
    }

    pub fn session_ttl(&self) -> chrono::Duration {
        self.session_ttl
    }

    /// The principal behind a secret, or 401/403 with a precise code.
    ///
    /// Cache protocol (scale-out): on a miss, the credential row is read first, then the
    /// user's generation, then the user row; the entry is stored with that generation.
    /// A user-level change writes the database and *then* sets a new generation (a value
    /// never used before), so an entry built from a stale user row always carries a stale
    /// generation. Revoking a single credential leaves a tombstone that outlives any entry
    /// written concurrently.
    pub async fn resolve(&self, secret: &str) -> AppResult<Principal> {
        Ok(self.resolve_counting(secret, None).await?.0)
    }

    /// [`Self::resolve`], and in scale-out mode a bump of the caller's per-user counter in
    /// the same round trip as the cache lookup (what a rate limit counts). The count comes
    /// back when the bump was made for the principal returned; `None` when it could not be
    /// (no Redis, a cache miss, a revoked credential): then nothing was counted.
    pub async fn resolve_counting(
        &self,
        secret: &str,
        counter: Option<&Counter>,
    ) -> AppResult<(Principal, Option<Count>)> {
        let is_key = secret.starts_with(token::API_KEY_PREFIX);
        if !is_key && !secret.starts_with(token::SESSION_PREFIX) {
            return Err(invalid_token());
        }
        let hash = token::hash(secret);
        let (cached, counted) = self.cache_get(&hash, counter).await;
        // A bump counts for this request when it was made for the principal's user. A stale
        // entry (an older generation, an expired session) still names the credential's
        // user, which never changes, so its bump counts even when the database resolves it.
        let count_for =
            |principal: &Principal| counted.filter(|(user, _)| *user == principal.user.id).map(|(_, count)| count);
        if let Some(principal) = cached {
            let count = count_for(&principal);
            return Ok((principal, count));
        }
        let (principal, generation) =
            if is_key { self.resolve_key(&hash).await? } else { self.resolve_session(&hash).await? };
        if principal.user.banned {
            return Err(banned());
        }
        self.cache_put(&hash, &principal, generation).await;
        let count = count_for(&principal);
        Ok((principal, count))
    }

    async fn resolve_session(&self, hash: &str) -> AppResult<(Principal, i64)> {
        let session = self.store.session_get_by_token(hash).await?.ok_or_else(invalid_token)?;
        let now = self.clock.now();
        if session.expires_at <= now {
            let _ = self.store.session_delete_by_token(hash).await;
            return Err(AppError::new(
                ErrorKind::Unauthenticated,
                ErrorCode::SessionExpired,
                "the session has expired; sign in again",
            ));
        }
        let generation = self.generation(session.user_id).await;
        let user = self.store.user_get(session.user_id).await?.ok_or_else(invalid_token)?;
        let mut expires_at = session.expires_at;
        // Rolling expiry, written at most once a day per session.
        if session.expires_at - now < self.session_ttl - SESSION_UPDATE_AGE {
            expires_at = now + self.session_ttl;
            self.store.session_extend(session.id, expires_at).await?;
        }
        let credential = Credential::Session { id: session.id, token_hash: hash.to_string(), expires_at };
        Ok((Principal { user, credential }, generation))
    }

    async fn resolve_key(&self, hash: &str) -> AppResult<(Principal, i64)> {
        let key = self.store.api_key_get_by_hash(hash).await?.ok_or_else(invalid_token)?;
        let now = self.clock.now();
        if key.revoked_at.is_some() {
            return Err(AppError::new(
                ErrorKind::Unauthenticated,
                ErrorCode::ApiKeyRevoked,
                "this API key has been revoked",
            ));
        }
        if key.expires_at.is_some_and(|e| e <= now) {
            return Err(AppError::new(
                ErrorKind::Unauthenticated,
                ErrorCode::ApiKeyExpired,
                "this API key has expired",
            ));
        }
        let generation = self.generation(key.user_id).await;
        let user = self.store.user_get(key.user_id).await?.ok_or_else(invalid_token)?;
        if key.last_used_at.is_none_or(|t| now - t > chrono::Duration::seconds(60)) {
            self.store.api_key_touch(key.id).await?;
        }
        let credential = Credential::ApiKey {
            id: key.id,
            token_hash: hash.to_string(),
            scope: key.scope,
            expires_at: key.expires_at,
        };
        Ok((Principal { user, credential }, generation))
    }

    /// Drops credentials from the cache on every API process (sign-out, revocation): a
    /// tombstone outlives any entry a concurrent request may still write.
    pub async fn forget(&self, token_hashes: &[String]) {
        if let Some(local) = &self.local {
            let mut tombstones = local.tombstones.lock().unwrap_or_else(|e| e.into_inner());
            tombstones.retain(|_, at| at.elapsed() < LOCAL_CACHE_TTL);
            for hash in token_hashes {
                local.entries.remove(hash);
                tombstones.insert(hash.clone(), std::time::Instant::now());
            }
        }
        if let Some(near) = &self.near {
            for hash in token_hashes {
                near.remove(hash);
            }
        }
        let Some(redis) = &self.redis else { return };
        if token_hashes.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for hash in token_hashes {
            pipe.cmd("SET")
                .arg(redis.key(&format!("revoked:{hash}")))
                .arg(1)
                .arg("EX")
                .arg(CACHE_TTL_SECS * 2)
                .ignore();
            pipe.cmd("DEL").arg(redis.key(&format!("principal:{hash}"))).ignore();
        }
        let mut conn = redis.conn();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::error!(error = %e, "could not drop revoked credentials from the cache");
        }
    }

    /// Invalidates every cached credential of a user (ban, role or password change). Call
    /// it after the database change.
    pub async fn forget_user(&self, user_id: Uuid) {
        if let Some(local) = &self.local {
            *local.generations.lock().unwrap_or_else(|e| e.into_inner()).entry(user_id).or_default() += 1;
        }
        let Some(redis) = &self.redis else { return };
        let mut conn = redis.conn();
        let result: Result<(), _> = redis::cmd("SET")
            .arg(redis.key(&format!("user-gen:{user_id}")))
            .arg(fresh_generation())
            .arg("EX")
            .arg(GENERATION_TTL_SECS)
            .query_async(&mut conn)
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "could not invalidate cached credentials");
        }
    }

    async fn generation(&self, user_id: Uuid) -> i64 {
        if let Some(local) = &self.local {
            return local.generations.lock().unwrap_or_else(|e| e.into_inner()).get(&user_id).copied().unwrap_or(0);
        }
        let Some(redis) = &self.redis else { return 0 };
        let mut conn = redis.conn();
        // The user's generation, given one now if it has none (never changed, expired, or
        // lost with Redis's data): each value is new, so a copy or an entry made before a
        // change can never match a generation set after it.
        let fresh = fresh_generation();
        redis::cmd("SET")
            .arg(redis.key(&format!("user-gen:{user_id}")))
            .arg(fresh)
            .arg("NX")
            .arg("GET")
            .arg("EX")
            .arg(GENERATION_TTL_SECS)
            .query_async::<Option<i64>>(&mut conn)
            .await
            .map_or(0, |old| old.unwrap_or(fresh))
    }

    /// A cached principal, unless revoked or its user's generation moved on: one round trip
    /// (a script reads the entry, the tombstone and the user's generation together, and
    /// bumps `counter` for the entry's user when the entry is there and not revoked; or,
    /// for a principal this process holds a copy of, [`Self::near_check`]). The bump comes
    /// back with the user it counted for, even when the entry is then refused here
    /// (expired, stale).
    async fn cache_get(&self, hash: &str, counter: Option<&Counter>) -> (Option<Principal>, Option<(Uuid, Count)>) {
        if let Some(local) = &self.local {
            return (self.local_get(local, hash).await, None);
        }
        let Some(redis) = self.redis.as_ref() else { return (None, None) };
        if let Some(near) = &self.near
            && let Some(cached) = near.get(hash)
        {
            return self.near_check(redis, near, hash, cached, counter).await;
        }
        let mut conn = redis.conn();
        let mut invocation = CACHE_GET_SCRIPT.prepare_invoke();
        invocation
            .key(redis.key(&format!("principal:{hash}")))
            .key(redis.key(&format!("revoked:{hash}")))
            .arg(redis.key("user-gen:"));
        if let Some(counter) = counter {
            invocation.arg(redis.key(&counter.prefix)).arg(counter.window_secs.max(1));
        }
        // EVALSHA: Redis runs its cached copy instead of reading and hashing the script's
        // text on every request (a NOSCRIPT answer loads it once and runs it again).
        let Ok(Some((raw, current, count, ttl))) =
            invocation.invoke_async::<Option<(String, i64, i64, i64)>>(&mut conn).await
        else {
            return (None, None);
        };
        let Ok(cached) = serde_json::from_str::<CachedPrincipal>(&raw) else { return (None, None) };
        let counted = (counter.is_some() && count > 0)
            .then(|| (cached.principal.user.id, Count { count: u64::try_from(count).unwrap_or(0), ttl_secs: ttl }));
        if credential_expired(&cached, self.clock.now()) || cached.generation != current {
            return (None, counted);
        }
        if let Some(near) = &self.near {
            near.put(hash, cached.clone());
        }
        (Some(cached.principal), counted)
    }

    /// The lookup of a principal this process holds a copy of: one pipeline asks whether
    /// the Redis entry still exists, whether the credential has a tombstone and what the
    /// user's generation is, and bumps `counter` for the user (as the script does, and
    /// `RateLimiter::hit`: INCR, EXPIRE NX, TTL). About a tenth of the script's cost in
    /// Redis, and no entry to fetch and parse. A copy that no longer holds is dropped.
    async fn near_check(
        &self,
        redis: &RedisHandle,
        near: &Copies,
        hash: &str,
        cached: CachedPrincipal,
        counter: Option<&Counter>,
    ) -> (Option<Principal>, Option<(Uuid, Count)>) {
        let user = cached.principal.user.id;
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS")
            .arg(redis.key(&format!("principal:{hash}")))
            .cmd("EXISTS")
            .arg(redis.key(&format!("revoked:{hash}")))
            .cmd("GET")
            .arg(redis.key(&format!("user-gen:{user}")));
        if let Some(counter) = counter {
            ratelimit::bump(&mut pipe, &redis.key(&format!("{}{user}", counter.prefix)), counter.window_secs);
        }
        let mut conn = redis.conn();
        let answer = if counter.is_some() {
            pipe.query_async::<(bool, bool, Option<i64>, i64, i64)>(&mut conn).await
        } else {
            pipe.query_async::<(bool, bool, Option<i64>)>(&mut conn).await.map(|(e, r, g)| (e, r, g, 0, 0))
        };
        let Ok((entry, revoked, current, count, ttl)) = answer else {
            near.remove(hash);
            return (None, None);
        };
        let counted = (counter.is_some() && count > 0)
            .then(|| (user, Count { count: u64::try_from(count).unwrap_or(0), ttl_secs: ttl }));
        if !entry || revoked || current != Some(cached.generation) || credential_expired(&cached, self.clock.now()) {
            near.remove(hash);
            return (None, counted);
        }
        (Some(cached.principal), counted)
    }

    /// The embedded mode's cache lookup.
    async fn local_get(&self, local: &LocalCache, hash: &str) -> Option<Principal> {
        let cached = local.entries.get(hash)?;
        if credential_expired(&cached, self.clock.now()) {
            return None;
        }
        let current = self.generation(cached.principal.user.id).await;
        (cached.generation == current).then_some(cached.principal)
    }

    async fn cache_put(&self, hash: &str, principal: &Principal, generation: i64) {
        if let Some(local) = &self.local {
            // Held while the entry goes in, so a concurrent `forget` comes wholly before
            // (and is seen) or wholly after (and removes it).
            let tombstones = local.tombstones.lock().unwrap_or_else(|e| e.into_inner());
            if tombstones.get(hash).is_none_or(|at| at.elapsed() >= LOCAL_CACHE_TTL) {
                local.entries.put(hash, CachedPrincipal { principal: principal.clone(), generation });
            }
            return;
        }
        let Some(redis) = &self.redis else { return };
        let cached = CachedPrincipal { principal: principal.clone(), generation };
        let Ok(json) = serde_json::to_string(&cached) else {
            return;
        };
        let mut conn = redis.conn();
        let _: Result<(), _> = redis::cmd("SET")
            .arg(redis.key(&format!("principal:{hash}")))
            .arg(format!("{}|{json}", principal.user.id))
            .arg("EX")
            .arg(CACHE_TTL_SECS)
            .query_async(&mut conn)
            .await;
        // The copy is only served while that entry exists, so a failed SET costs nothing.
        if let Some(near) = &self.near {
            near.put(hash, cached);
        }
    }
}

/// A value for a user's generation that no earlier change had: random, never 0 (what a
/// user without a generation key reads in the script), and below 2^62, so a process of the
/// previous release (which bumped it with `INCR`) can still bump it during a rolling deploy.
fn fresh_generation() -> i64 {
    let (bits, _) = Uuid::new_v4().as_u64_pair();
    i64::try_from(bits >> 2).unwrap_or(1) | 1
}

/// Whether a cached credential has passed its expiry (a session's, or a key's own).
fn credential_expired(cached: &CachedPrincipal, now: DateTime<Utc>) -> bool {
    match &cached.principal.credential {
        Credential::Session { expires_at, .. } => *expires_at <= now,
        Credential::ApiKey { expires_at, .. } => expires_at.is_some_and(|at| at <= now),
    }
}

/// KEYS: the cached entry (`<user id>|<json>`), its tombstone; ARGV: the prefix of the
/// users' generation keys, then optionally a counter's key prefix and window (seconds).
/// Returns `[json, generation, count, ttl]` (count and ttl 0 when no counter is given),
/// or nil when missing or revoked. The counter (`<prefix><user id>`) is bumped as
/// `RateLimiter::hit` bumps it: INCR, EXPIRE NX, TTL.
static CACHE_GET_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local entry = redis.call('GET', KEYS[1])
if not entry then return false end
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local bar = string.find(entry, '|', 1, true)
if not bar then return false end
local user = string.sub(entry, 1, bar - 1)
local generation = redis.call('GET', ARGV[1] .. user)
local count, ttl = 0, 0
if ARGV[2] then
  local key = ARGV[2] .. user
  count = redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[3], 'NX')
  ttl = redis.call('TTL', key)
end
return {string.sub(entry, bar + 1), tonumber(generation or '0'), count, ttl}
",
    )
});

/// A per-user counter that [`Authenticator::resolve_counting`] bumps with the cache
/// lookup: its Redis key without the namespace prefix, up to the user id
/// (`ratelimit:<action>:`), and its window.
#[derive(Debug, Clone)]
pub struct Counter {
    pub prefix: String,
    pub window_secs: u64,
}

/// A counter after its bump: the count in the window and the seconds the window has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub count: u64,
    pub ttl_secs: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedPrincipal {
    principal: Principal,
    generation: i64,
}

fn invalid_token() -> AppError {
    AppError::new(ErrorKind::Unauthenticated, ErrorCode::InvalidToken, "the token is invalid, revoked or expired")
}

fn banned() -> AppError {
    AppError::new(ErrorKind::Forbidden, ErrorCode::UserBanned, "this account has been suspended")
}

/// `Duration` helper for rate-limit windows.
pub const MINUTE: Duration = Duration::from_secs(60);
