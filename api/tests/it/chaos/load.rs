//! The simulated users: submits (with and without `Idempotency-Key`, retried as a careful
//! client retries), cancels, SSE followers that drop and resume with `Last-Event-ID`,
//! uploads through presigned URLs, purchases through the fake Stripe webhook, and admin
//! credit adjustments. Every answer is recorded for the invariants.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use uuid::Uuid;

/// A 5xx answer (or one refused by the checks): when, where, what.
#[derive(Debug, Clone)]
pub(crate) struct Bad {
    pub(crate) route: String,
    pub(crate) sent: Instant,
    pub(crate) answered: Instant,
    pub(crate) status: u16,
    pub(crate) code: String,
}

/// What one SSE follower saw of a task, across its reconnections.
#[derive(Debug, Clone)]
pub(crate) struct Followed {
    pub(crate) task: Uuid,
    /// `(seq, kind)` of every event with an id, in arrival order.
    pub(crate) milestones: Vec<(i64, String)>,
    pub(crate) resumes: usize,
    pub(crate) ended: bool,
}

#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) statuses: Mutex<BTreeMap<u16, usize>>,
    pub(crate) bad: Mutex<Vec<Bad>>,
    pub(crate) transport_errors: AtomicUsize,
    pub(crate) accepted: Mutex<HashSet<Uuid>>,
    pub(crate) followed: Mutex<Vec<Followed>>,
    pub(crate) counts: Mutex<BTreeMap<&'static str, usize>>,
}

impl Recorder {
    pub(crate) fn count(&self, what: &'static str) {
        *self.counts.lock().unwrap().entry(what).or_default() += 1;
    }
}

pub(crate) struct User {
    pub(crate) id: Uuid,
    pub(crate) token: String,
}

pub(crate) struct World {
    pub(crate) apis: Vec<String>,
    pub(crate) users: Vec<User>,
    pub(crate) admin_token: String,
    pub(crate) package_id: Uuid,
    pub(crate) stripe_webhook_secret: String,
    pub(crate) http: reqwest::Client,
    pub(crate) rec: Recorder,
    /// Set when the load stops submitting.
    pub(crate) stop: AtomicBool,
    /// Followers give up at this instant (set when the run ends).
    pub(crate) followers_deadline: Mutex<Option<Instant>>,
    pub(crate) followers_running: AtomicUsize,
}

/// The outcome of one request: the status and JSON body, or a transport error.
type Answer = Result<(u16, Value), String>;

impl World {
    pub(crate) async fn call(
        &self,
        api: usize,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Answer {
        let url = format!("{}{path}", self.apis[api % self.apis.len()]);
        let mut req = self.http.request(method.clone(), url).bearer_auth(token).timeout(Duration::from_secs(30));
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        let sent = Instant::now();
        let result = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Ok(bytes) => Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        self.record(&format!("{method} {}", route_of(path)), sent, &result);
        result
    }

    fn record(&self, route: &str, sent: Instant, result: &Answer) {
        match result {
            Ok((status, body)) => {
                *self.rec.statuses.lock().unwrap().entry(*status).or_default() += 1;
                if *status >= 500 {
                    self.rec.bad.lock().unwrap().push(Bad {
                        route: route.to_string(),
                        sent,
                        answered: Instant::now(),
                        status: *status,
                        code: body["code"].as_str().unwrap_or("").to_string(),
                    });
                }
            }
            Err(_) => {
                self.rec.transport_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One simulated user's loop until the load stops.
    pub(crate) async fn user_loop(self: Arc<Self>, index: usize, seed: u64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut mine: Vec<Uuid> = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            let api = rng.random_range(0..self.apis.len());
            match rng.random_range(0..100) {
                0..40 => {
                    let body = json!({ "toolSlug": "echo", "input": { "i": rng.random_range(0..1_000_000), "delayMs": rng.random_range(0..400) } });
                    if let Some(id) = self.submit(index, api, &body, rng.random_bool(0.6)).await {
                        mine.push(id);
                    }
                }
                40..55 => {
                    let body = json!({ "toolSlug": "paint", "input": { "prompt": format!("a fox no. {}", rng.random_range(0..1000)) } });
                    if let Some(id) = self.submit(index, api, &body, rng.random_bool(0.6)).await {
                        mine.push(id);
                    }
                }
                55..63 if !mine.is_empty() => {
                    let id = mine[rng.random_range(mine.len().saturating_sub(5)..mine.len())];
                    let token = &self.users[index].token;
                    if let Ok((200, _)) = self
                        .call(api, reqwest::Method::POST, &format!("/api/tasks/{id}/cancel"), token, None, None)
                        .await
                    {
                        self.rec.count("cancels accepted");
                    }
                }
                63..75 if !mine.is_empty() && self.followers_running.load(Ordering::Relaxed) < 3 * self.users.len() => {
                    let id = mine[rng.random_range(mine.len().saturating_sub(3)..mine.len())];
                    let me = self.clone();
                    let follower_seed = rng.random();
                    me.followers_running.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        let seen = me.follow(index, id, follower_seed).await;
                        me.rec.followed.lock().unwrap().push(seen);
                        me.followers_running.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                75..80 => self.upload(index, api, rng.random_range(8..64)).await,
                80..85 => self.purchase(index, api, rng.random_bool(0.4)).await,
                85..89 => {
                    let amount: i64 =
                        if rng.random_bool(0.7) { rng.random_range(1..40) } else { -rng.random_range(1..20) };
                    let body = json!({ "amount": amount, "description": "chaos adjustment" });
                    let path = format!("/api/admin/users/{}/credits", self.users[index].id);
                    if let Ok((200, _)) =
                        self.call(api, reqwest::Method::POST, &path, &self.admin_token, Some(&body), None).await
                    {
                        self.rec.count("admin adjustments");
                    }
                }
                _ => {
                    let token = &self.users[index].token;
                    let path = if rng.random_bool(0.5) { "/api/credits/balance" } else { "/api/tasks?limit=20" };
                    let _ = self.call(api, reqwest::Method::GET, path, token, None, None).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
        }
    }

    /// Submits; with a key, retries a lost or 503 answer with the same key on the other
    /// API (one task whatever happens). Returns the accepted task's id.
    async fn submit(&self, user: usize, mut api: usize, body: &Value, keyed: bool) -> Option<Uuid> {
        let key = keyed.then(|| Uuid::new_v4().to_string());
        let token = &self.users[user].token;
        for attempt in 0..8 {
            match self.call(api, reqwest::Method::POST, "/api/tasks", token, Some(body), key.as_deref()).await {
                Ok((200 | 201, v)) => {
                    let id: Uuid = v["task"]["id"].as_str()?.parse().ok()?;
                    self.rec.accepted.lock().unwrap().insert(id);
                    self.rec.count(if attempt == 0 {
                        "tasks accepted first time"
                    } else {
                        "tasks accepted after a retry"
                    });
                    return Some(id);
                }
                Ok((503 | 429, _)) => {}
                Ok((status, _)) => {
                    self.rec.count(match status {
                        402 => "submits refused: not enough credits",
                        409 => "submits refused: conflict",
                        _ => "submits refused: other",
                    });
                    return None;
                }
                // The answer was lost: only a keyed submit may be sent again.
                Err(_) if key.is_none() => return None,
                Err(_) => {}
            }
            api += 1;
            tokio::time::sleep(Duration::from_millis(200 << attempt.min(4))).await;
        }
        self.rec.count("submits given up");
        None
    }

    /// Follows a task from its start; drops the stream after a few events or a random
    /// time, and resumes with `Last-Event-ID` on a random API, until the terminal event.
    async fn follow(&self, user: usize, task: Uuid, seed: u64) -> Followed {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut seen = Followed { task, milestones: vec![], resumes: 0, ended: false };
        let token = &self.users[user].token;
        loop {
            if self.followers_deadline.lock().unwrap().is_some_and(|d| Instant::now() > d) {
                return seen;
            }
            let api = rng.random_range(0..self.apis.len());
            let last = seen.milestones.last().map(|m| m.0).unwrap_or(0);
            let mut req = self
                .http
                .get(format!("{}/api/tasks/{task}/stream", self.apis[api]))
                .bearer_auth(token)
                .header("accept", "text/event-stream");
            if last > 0 {
                req = req.header("last-event-id", last.to_string());
            }
            let sent = Instant::now();
            let resp = match tokio::time::timeout(Duration::from_secs(20), req.send()).await {
                Ok(Ok(resp)) => resp,
                _ => {
                    self.rec.transport_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    seen.resumes += 1;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            if status != 200 {
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                self.record("GET /api/tasks/{id}/stream", sent, &Ok((status, body)));
                tokio::time::sleep(Duration::from_millis(300)).await;
                seen.resumes += 1;
                continue;
            }
            *self.rec.statuses.lock().unwrap().entry(200).or_default() += 1;
            // Drop after this many milestones, or after this long, whichever first.
            let drop_after = if rng.random_bool(0.6) { Some(rng.random_range(1..4)) } else { None };
            let drop_at = Instant::now() + Duration::from_millis(rng.random_range(200..5000));
            let mut body = resp.bytes_stream();
            let mut buf = String::new();
            let mut got_here = 0;
            'read: loop {
                let chunk = match tokio::time::timeout(Duration::from_secs(20), body.next()).await {
                    Ok(Some(Ok(chunk))) => chunk,
                    // Ended, broken, or silent past the heartbeat: reconnect.
                    _ => break 'read,
                };
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let frame: String = buf.drain(..end + 2).collect();
                    let (mut id, mut kind) = (None, String::new());
                    for line in frame.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            id = v.trim().parse::<i64>().ok();
                        } else if let Some(v) = line.strip_prefix("event:") {
                            kind = v.trim().to_string();
                        }
                    }
                    if let Some(id) = id {
                        seen.milestones.push((id, kind.clone()));
                        got_here += 1;
                    }
                    if matches!(kind.as_str(), "completed" | "failed" | "cancelled") {
                        seen.ended = true;
                        return seen;
                    }
                    if drop_after.is_some_and(|n| got_here >= n) || Instant::now() > drop_at {
                        break 'read;
                    }
                }
            }
            seen.resumes += 1;
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
        }
    }

    /// An upload through a presigned URL: presign, PUT to the S3 server, complete.
    async fn upload(&self, user: usize, api: usize, side: u32) {
        let png = funmagic_api::testing::sample_png(side, side);
        let token = &self.users[user].token;
        let body =
            json!({ "filename": "chaos.png", "contentType": "image/png", "size": png.len(), "module": "uploads" });
        let Ok((200 | 201, presigned)) =
            self.call(api, reqwest::Method::POST, "/api/uploads/presign", token, Some(&body), None).await
        else {
            return;
        };
        let method = reqwest::Method::from_bytes(presigned["method"].as_str().unwrap_or("PUT").as_bytes()).unwrap();
        let mut put = self.http.request(method, presigned["uploadUrl"].as_str().unwrap_or_default()).body(png);
        if let Some(headers) = presigned["headers"].as_object() {
            for (k, v) in headers {
                put = put.header(k, v.as_str().unwrap_or_default());
            }
        }
        match put.send().await {
            Ok(resp) if resp.status().is_success() => {}
            _ => {
                self.rec.count("uploads: storage PUT failed");
                return;
            }
        }
        let complete = json!({ "storageKey": presigned["storageKey"] });
        if let Ok((200 | 201, _)) =
            self.call(api, reqwest::Method::POST, "/api/uploads/complete", token, Some(&complete), None).await
        {
            self.rec.count("uploads completed");
        }
    }

    /// A purchase: a checkout session, then Stripe's signed webhook (sometimes twice, to
    /// both APIs, as Stripe retries).
    async fn purchase(&self, user: usize, api: usize, twice: bool) {
        let token = &self.users[user].token;
        let body = json!({ "packageId": self.package_id });
        let key = Uuid::new_v4().to_string();
        let Ok((200 | 201, session)) =
            self.call(api, reqwest::Method::POST, "/api/credits/checkout", token, Some(&body), Some(&key)).await
        else {
            return;
        };
        let Some(session) = session["id"].as_str() else { return };
        let event = crate::stripe::event(
            &format!("evt_{}", Uuid::new_v4().simple()),
            "checkout.session.completed",
            session,
            "paid",
        );
        let payload = event.to_string();
        for n in 0..(1 + usize::from(twice)) {
            for attempt in 0..6u32 {
                let signature =
                    crate::stripe::signed(&payload, chrono::Utc::now().timestamp(), &self.stripe_webhook_secret);
                let url = format!("{}/api/webhooks/stripe", self.apis[(api + n + attempt as usize) % self.apis.len()]);
                let sent = Instant::now();
                let result = match self
                    .http
                    .post(url)
                    .header("content-type", "application/json")
                    .header("stripe-signature", signature)
                    .body(payload.clone())
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await
                {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        Ok((status, resp.json().await.unwrap_or(Value::Null)))
                    }
                    Err(e) => Err(e.to_string()),
                };
                self.record("POST /api/webhooks/stripe", sent, &result);
                // Stripe retries anything but a 2xx.
                if let Ok((200, _)) = result {
                    self.rec.count("purchase webhooks delivered");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300 << attempt)).await;
            }
        }
    }
}

/// The route template of a path (ids replaced), for the report.
fn route_of(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    path.split('/').map(|s| if Uuid::parse_str(s).is_ok() { "{id}" } else { s }).collect::<Vec<_>>().join("/")
}
