//! Webhooks with real receivers on loopback (`webhooks.allow` lets the tests use
//! 127.0.0.1 over http): task events arrive signed in the Standard Webhooks format and
//! verify with the SDK; failures are retried with the same `webhook-id`; 410 disables;
//! redirects are failures; rotation signs with both secrets; replay sends the message again;
//! inside addresses are refused; another user sees nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use funmagic_api::testing::TestApp;
use funmagic_sdk::types;
use serde_json::{Value, json};

use crate::{client_as, echo, funded};

pub(crate) use self::Receiver as WebhookReceiver;

/// One request a receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Got {
    pub(crate) id: String,
    pub(crate) timestamp: String,
    pub(crate) signature: String,
    pub(crate) body: Vec<u8>,
    /// What it answered.
    pub(crate) status: u16,
}

impl Got {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A scripted answer: a status (0: never answer) and an optional `Location`.
type Answer = (u16, Option<String>);

#[derive(Clone, Default)]
pub(crate) struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    /// Answers for the next requests (status, Location); then 200. Status 0: hang (never
    /// answer; recorded as 0).
    script: Arc<Mutex<VecDeque<Answer>>>,
    pub(crate) url: String,
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        use poem::listener::{Acceptor, Listener, TcpListener};
        let mut receiver = Receiver::default();
        let me = receiver.clone();
        let endpoint = poem::endpoint::make(move |req: poem::Request| {
            let me = me.clone();
            async move {
                let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let (id, timestamp, signature) =
                    (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
                let body = req.into_body().into_vec().await.unwrap();
                let (status, location) = me.script.lock().unwrap().pop_front().unwrap_or((200, None));
                me.got.lock().unwrap().push(Got { id, timestamp, signature, body, status });
                if status == 0 {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                let mut resp =
                    poem::Response::builder().status(poem::http::StatusCode::from_u16(status.max(200)).unwrap());
                if let Some(location) = location {
                    resp = resp.header("location", location);
                }
                resp.body("ok")
            }
        });
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
        receiver.url = format!("http://{addr}/hook");
        receiver
    }

    pub(crate) fn answer_next(&self, answers: Vec<Answer>) {
        self.script.lock().unwrap().extend(answers);
    }

    pub(crate) fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what was received (the app's clock may be moved on
    /// meanwhile by `tick`).
    pub(crate) async fn wait(&self, what: &str, done: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.got();
            if done(&got) {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: received so far {got:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn verify(secret: &str, got: &Got) -> Result<(), funmagic_sdk::webhooks::WebhookError> {
    let ts: i64 = got.timestamp.parse().unwrap();
    funmagic_sdk::webhooks::verify_parts(secret, &got.id, &got.timestamp, &got.signature, &got.body, ts)
}

/// When no attempt of the endpoints' deliveries is in flight and none is due, moves the
/// app's clock just past the earliest pending retry; otherwise leaves it (a claimed
/// attempt's lease is in the app's time: jumping past it would send the message twice).
async fn advance_to_next_attempt(app: &TestApp, client: &funmagic_sdk::Client, endpoints: &[uuid::Uuid]) {
    let now = app.state().clock().now();
    let mut next: Option<chrono::DateTime<chrono::Utc>> = None;
    for id in endpoints {
        let log = client.webhook_delivery_list(id, None, None).await.unwrap().into_inner();
        for d in log.deliveries {
            if d.attempts as usize != d.attempt_log.len() {
                return; // in flight
            }
            if d.status == types::WebhookDeliveryStatus::Pending {
                let Some(at) = d.next_attempt_at else { return };
                if at <= now {
                    return; // due: the dispatcher may be claiming it right now
                }
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
    }
    if let Some(at) = next {
        app.advance_clock((at - now).to_std().unwrap_or_default() + Duration::from_secs(1));
    }
}

/// Waits until no attempt of the endpoint's deliveries is in flight (each claimed attempt
/// is recorded), so the app's clock can be moved on safely.
async fn settled(client: &funmagic_sdk::Client, endpoint: &uuid::Uuid) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let log = client.webhook_delivery_list(endpoint, None, None).await.unwrap().into_inner();
        if log.deliveries.iter().all(|d| d.attempts as usize == d.attempt_log.len()) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "attempts still in flight: {:#?}", log.deliveries);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_endpoint(client: &funmagic_sdk::Client, body: Value) -> types::WebhookEndpointWithSecret {
    let body: types::WebhookEndpointCreate = serde_json::from_value(body).unwrap();
    client.webhook_endpoint_create(&body).await.unwrap().into_inner()
}

async fn task_events_arrive_signed_retried_logged_and_replayable(app: TestApp) {
    let receiver = Receiver::start().await;
    let user = funded(&app, "hooks@example.com", 10).await;
    let client = client_as(&app, &user.token);
    let created = create_endpoint(&client, json!({ "url": receiver.url, "description": "mine" })).await;
    assert!(created.secret.starts_with("whsec_"));
    assert!(created.endpoint.events.is_empty(), "all events");
    // A second endpoint takes task.succeeded only, and answers 500 twice before 200.
    let flaky = Receiver::start().await;
    let flaky_endpoint = create_endpoint(&client, json!({ "url": flaky.url, "events": ["task.succeeded"] })).await;
    flaky.answer_next(vec![(500, None), (500, None)]);
    let (task, last) = funmagic_sdk::events::run_and_wait(&client, &echo(json!({ "hook": 1 })), |_| {}).await.unwrap();
    assert_eq!(last.kind, types::EventKind::Completed);

    // Move the app's clock past each retry's wait (5 s, then 5 min) until the third try,
    // only while no attempt is in flight (a jump past a lease would send it again).
    let endpoints = [created.endpoint.id, flaky_endpoint.endpoint.id];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let tries = loop {
        let tries = flaky.got();
        if tries.len() >= 3 {
            break tries;
        }
        assert!(tokio::time::Instant::now() < deadline, "the third try did not come: {tries:#?}");
        advance_to_next_attempt(&app, &client, &endpoints).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(tries.iter().map(|g| g.status).collect::<Vec<_>>(), vec![500, 500, 200]);
    assert!(tries.iter().all(|g| g.id == tries[0].id), "the same webhook-id each time: {tries:#?}");
    assert!(tries.iter().all(|g| g.body == tries[0].body), "the same message each time");
    assert_eq!(tries[0].json()["type"], "task.succeeded");
    for g in &tries {
        verify(&flaky_endpoint.secret, g).unwrap();
    }
    let first = &tries[0];
    let first_codes = vec![Some(500), Some(500), Some(200)];

    // The first endpoint got every event of the task, each once, signed.
    let got = receiver
        .wait("every event", |got| {
            ["task.queued", "task.started", "task.succeeded"].iter().all(|t| got.iter().any(|g| g.json()["type"] == *t))
        })
        .await;
    for g in &got {
        verify(&created.secret, g).unwrap_or_else(|e| panic!("{e}: {g:?}"));
        assert!(g.id.starts_with("msg_"), "{}", g.id);
    }
    assert_eq!(
        got.iter().find(|g| g.json()["type"] == "task.succeeded").map(|g| &g.id),
        Some(&first.id),
        "one message id whichever endpoint"
    );

    // The task's events: queued, started, succeeded, in order of `sequence`.
    let mut events: Vec<Value> = got.iter().filter(|g| g.status == 200).map(Got::json).collect();
    events.sort_by_key(|e| e["data"]["sequence"].as_i64());
    let types_seen: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types_seen.first(), Some(&"task.queued"), "{events:#?}");
    assert!(types_seen.contains(&"task.started"), "{types_seen:?}");
    assert_eq!(types_seen.last(), Some(&"task.succeeded"), "{types_seen:?}");
    assert_eq!(types_seen.iter().filter(|t| **t == "task.started").count(), 1);
    let done = events.last().unwrap();
    assert_eq!(done["data"]["taskId"], task.id.to_string());
    assert_eq!(done["data"]["tool"], "echo");
    assert_eq!(done["data"]["status"], "completed");
    assert_eq!(done["data"]["creditsSpent"], 1);
    assert!(done["timestamp"].is_string());

    // The delivery log shows every attempt. The receiver sees the third try before the
    // dispatcher has recorded its answer, so wait for the record (a bounded wait).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let retried = loop {
        let log = client.webhook_delivery_list(&flaky_endpoint.endpoint.id, None, None).await.unwrap().into_inner();
        let retried =
            log.deliveries.into_iter().find(|d| d.webhook_id == first.id).expect("the retried delivery is logged");
        if retried.status != types::WebhookDeliveryStatus::Pending || tokio::time::Instant::now() >= deadline {
            break retried;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(retried.status, types::WebhookDeliveryStatus::Succeeded, "{retried:#?}");
    assert_eq!(retried.attempts as usize, first_codes.len());
    let codes: Vec<Option<i32>> = retried.attempt_log.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, first_codes);
    assert_eq!(retried.attempt_log.last().unwrap().response_excerpt.as_deref(), Some("ok"));

    // Replay: the same message again.
    let replayed = client.webhook_delivery_replay(&retried.id).await.unwrap().into_inner();
    assert_eq!(replayed.webhook_id, first.id);
    flaky.wait("the replay", |got| got.iter().filter(|g| g.id == first.id).count() == 4).await;

    // Another user sees none of it.
    let other = funded(&app, "nosy@example.com", 0).await;
    let nosy = client_as(&app, &other.token);
    let err = nosy.webhook_endpoint_get(&created.endpoint.id).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
    assert_eq!(nosy.webhook_delivery_replay(&retried.id).await.unwrap_err().status().map(|s| s.as_u16()), Some(404));
    assert!(nosy.webhook_endpoint_list().await.unwrap().into_inner().endpoints.is_empty());
}

async fn rotation_gone_redirects_and_inside_addresses(app: TestApp) {
    let receiver = Receiver::start().await;
    let user = funded(&app, "rotate@example.com", 0).await;
    let client = client_as(&app, &user.token);
    let created = create_endpoint(&client, json!({ "url": receiver.url, "events": ["task.failed"] })).await;
    let id = created.endpoint.id;

    // Rotation: both secrets sign for 24 h.
    let rotated = client.webhook_endpoint_rotate(&id).await.unwrap().into_inner();
    assert_ne!(rotated.secret, created.secret);
    assert!(rotated.endpoint.previous_secret_until.is_some());
    client.webhook_endpoint_test(&id).await.unwrap();
    let got = receiver.wait("the ping", |got| !got.is_empty()).await;
    assert_eq!(got[0].json()["type"], "ping");
    assert_eq!(got[0].signature.split(' ').count(), 2, "{}", got[0].signature);
    verify(&created.secret, &got[0]).expect("the old secret still verifies");
    verify(&rotated.secret, &got[0]).expect("the new secret verifies");
    // A day later only the new one signs.
    settled(&client, &id).await;
    app.advance_clock(Duration::from_secs(25 * 3600));
    client.webhook_endpoint_test(&id).await.unwrap();
    let got = receiver.wait("the second ping", |got| got.len() == 2).await;
    assert_eq!(got[1].signature.split(' ').count(), 1);
    assert!(verify(&created.secret, &got[1]).is_err());
    verify(&rotated.secret, &got[1]).unwrap();

    // A redirect is a failure, never followed.
    let elsewhere = Receiver::start().await;
    receiver.answer_next(vec![(302, Some(elsewhere.url.clone()))]);
    let ping = client.webhook_endpoint_test(&id).await.unwrap().into_inner();
    receiver.wait("the redirecting answer", |got| got.len() == 3).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let logged = loop {
        let log = client.webhook_delivery_list(&id, None, None).await.unwrap().into_inner();
        let d = log.deliveries.into_iter().find(|d| d.id == ping.id).unwrap();
        if !d.attempt_log.is_empty() {
            break d;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(logged.status, types::WebhookDeliveryStatus::Pending, "retried later");
    assert_eq!(logged.attempt_log[0].status_code, Some(302));
    assert!(logged.last_error.as_deref().is_some_and(|e| e.contains("redirect")), "{logged:?}");
    assert!(elsewhere.got().is_empty(), "the redirect was not followed");
    assert!(client.webhook_endpoint_get(&id).await.unwrap().into_inner().failing_since.is_some());

    // 410 Gone disables the endpoint.
    receiver.answer_next(vec![(410, None)]);
    app.advance_clock(Duration::from_secs(10)); // the redirected ping's retry comes due: 410
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let endpoint = client.webhook_endpoint_get(&id).await.unwrap().into_inner();
        if !endpoint.enabled {
            assert!(endpoint.disabled_reason.as_deref().is_some_and(|r| r.contains("410")), "{endpoint:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not disabled: {endpoint:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Enabling again clears the record.
    let body: types::WebhookEndpointUpdate = serde_json::from_value(json!({ "enabled": true })).unwrap();
    let enabled = client.webhook_endpoint_update(&id, &body).await.unwrap().into_inner();
    assert!(enabled.enabled && enabled.failing_since.is_none() && enabled.disabled_reason.is_none());
    let body: types::WebhookEndpointUpdate = serde_json::from_value(json!({ "allEvents": true })).unwrap();
    assert!(client.webhook_endpoint_update(&id, &body).await.unwrap().into_inner().events.is_empty());

    // Inside addresses and plain http are refused (127.0.0.1 alone is allowed here).
    for url in
        ["https://10.0.0.1/hook", "https://169.254.169.254/latest", "https://127.0.0.2/hook", "http://example.com/hook"]
    {
        let body: types::WebhookEndpointCreate = serde_json::from_value(json!({ "url": url })).unwrap();
        let err = client.webhook_endpoint_create(&body).await.unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(422), "{url}");
        let code = crate::err_code(Err::<(), _>(err)).1;
        assert_eq!(code, "WEBHOOK_URL_REFUSED", "{url}");
    }
    // A name that resolves inside is refused too.
    app.state().webhook_poster().set_dns("hooks.internal.example", vec!["10.1.2.3".parse().unwrap()]);
    let body: types::WebhookEndpointCreate =
        serde_json::from_value(json!({ "url": "https://hooks.internal.example/x" })).unwrap();
    assert_eq!(client.webhook_endpoint_create(&body).await.unwrap_err().status().map(|s| s.as_u16()), Some(422));
    // Unknown event types are refused by the schema.
    let bad = serde_json::from_value::<types::WebhookEndpointCreate>(
        json!({ "url": receiver.url, "events": ["task.exploded"] }),
    );
    assert!(bad.is_err());

    client.webhook_endpoint_delete(&id).await.unwrap();
    assert!(client.webhook_endpoint_list().await.unwrap().into_inner().endpoints.is_empty());
}

/// A task's own webhook URL gets its events (signed with the user's first endpoint's
/// secret), the endpoints do not; without an endpoint the submit is refused.
async fn a_task_can_report_to_its_own_url(app: TestApp) {
    let (endpoint_receiver, own) = (Receiver::start().await, Receiver::start().await);
    let user = funded(&app, "own-hook@example.com", 10).await;
    let client = client_as(&app, &user.token);
    let mut body = serde_json::to_value(echo(json!({ "own": 1 }))).unwrap();
    body["webhook"] = json!(own.url);
    let request: types::TaskCreateRequest = serde_json::from_value(body).unwrap();
    let (status, code) = crate::err_code(client.task_create(None, &request).await);
    assert_eq!((status, code.as_str()), (422, "NO_WEBHOOK_ENDPOINT"));
    let created = create_endpoint(&client, json!({ "url": endpoint_receiver.url })).await;
    let task = client.task_create(None, &request).await.unwrap().into_inner().task;
    let got = own.wait("the task's events", |got| got.iter().any(|g| g.json()["type"] == "task.succeeded")).await;
    for g in &got {
        verify(&created.secret, g).unwrap();
        assert_eq!(g.json()["data"]["taskId"], task.id.to_string());
    }
    assert!(endpoint_receiver.got().is_empty(), "the endpoint gets none of that task's events");
}

/// `credits.low` is sent once, when a reservation takes the available balance below the
/// threshold, to endpoints that subscribe to it.
async fn credits_low_is_sent_when_the_balance_crosses_the_threshold(app: TestApp) {
    let receiver = Receiver::start().await;
    let user = funded(&app, "low@example.com", 6).await;
    let client = client_as(&app, &user.token);
    let created = create_endpoint(&client, json!({ "url": receiver.url, "events": ["credits.low"] })).await;
    assert_eq!(client.webhook_settings_get().await.unwrap().into_inner().credits_low_threshold, None);
    let body = types::WebhookSettingsInput { credits_low_threshold: std::num::NonZeroU64::new(5) };
    assert_eq!(client.webhook_settings_put(&body).await.unwrap().into_inner().credits_low_threshold, Some(5));
    // 6 → 5 (not below), 5 → 4 (below: the event), 4 → 3 (still below: nothing).
    for n in 0..3 {
        let (_, last) = funmagic_sdk::events::run_and_wait(&client, &echo(json!({ "n": n })), |_| {}).await.unwrap();
        assert_eq!(last.kind, types::EventKind::Completed);
    }
    let got = receiver.wait("credits.low", |got| !got.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // a second one would have come by now
    let got = if receiver.got().len() > got.len() { receiver.got() } else { got };
    assert_eq!(got.len(), 1, "one crossing, one event, no task events: {got:#?}");
    let event = got[0].json();
    assert_eq!(event["type"], "credits.low");
    assert_eq!(event["data"]["threshold"], 5);
    assert_eq!(event["data"]["available"], 4);
    verify(&created.secret, &got[0]).unwrap();
    let body = types::WebhookSettingsInput { credits_low_threshold: None };
    assert_eq!(client.webhook_settings_put(&body).await.unwrap().into_inner().credits_low_threshold, None);
}

/// A relay (`funmagic webhooks listen`): the server never POSTs to it; its deliveries are
/// pulled signed, answered, and a non-2xx answer is retried with the same `webhook-id`;
/// leases end; it is the caller's alone; idle relays are swept.
async fn a_relay_hands_its_deliveries_to_a_listener(app: TestApp) {
    let local = Receiver::start().await; // where the listener would forward: the server must not call it
    let user = funded(&app, "relay@example.com", 10).await;
    let client = client_as(&app, &user.token);
    let body: types::WebhookRelayCreate =
        serde_json::from_value(json!({ "forwardTo": local.url, "events": ["task.queued", "task.succeeded"] })).unwrap();
    let relay = client.webhook_relay_create(&body).await.unwrap().into_inner();
    let id = relay.endpoint.id;
    assert!(relay.endpoint.relay && relay.endpoint.url.starts_with("relay:http://127.0.0.1:"), "{:?}", relay.endpoint);
    assert!(relay.secret.starts_with("whsec_"));
    // A task's own webhook needs an endpoint that is not a relay.
    let mut own = serde_json::to_value(echo(json!({ "own": 1 }))).unwrap();
    own["webhook"] = json!(local.url);
    let own: types::TaskCreateRequest = serde_json::from_value(own).unwrap();
    assert_eq!(crate::err_code(client.task_create(None, &own).await), (422, "NO_WEBHOOK_ENDPOINT".into()));
    // Its URL is not for changing.
    let patch: types::WebhookEndpointUpdate = serde_json::from_value(json!({ "url": local.url })).unwrap();
    assert_eq!(client.webhook_endpoint_update(&id, &patch).await.unwrap_err().status().map(|s| s.as_u16()), Some(422));

    let (task, last) = funmagic_sdk::events::run_and_wait(&client, &echo(json!({ "relay": 1 })), |_| {}).await.unwrap();
    assert_eq!(last.kind, types::EventKind::Completed);
    let pull = |wait: u32| types::WebhookRelayPull { wait_secs: Some(wait), limit: None };
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while messages.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "pulled so far: {messages:#?}");
        messages.extend(client.webhook_relay_pull(&id, &pull(2)).await.unwrap().into_inner().messages);
    }
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let types_pulled: Vec<&str> = messages.iter().map(|m| m.event_type.as_str()).collect();
    assert_eq!(types_pulled, ["task.queued", "task.succeeded"], "due order");
    for m in &messages {
        let ts = m.webhook_timestamp;
        funmagic_sdk::webhooks::verify_parts(
            &relay.secret,
            &m.webhook_id,
            &ts.to_string(),
            &m.webhook_signature,
            m.body.as_bytes(),
            ts,
        )
        .unwrap();
        let body: Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(body["data"]["taskId"], task.id.to_string());
        assert_eq!(m.attempt, 1);
    }
    // Leased: nothing more to pull while the listener holds them.
    assert!(client.webhook_relay_pull(&id, &pull(0)).await.unwrap().into_inner().messages.is_empty());
    // Another user cannot pull or answer; a plain endpoint is not a relay.
    let other = funded(&app, "relay-nosy@example.com", 0).await;
    let nosy = client_as(&app, &other.token);
    assert_eq!(nosy.webhook_relay_pull(&id, &pull(0)).await.unwrap_err().status().map(|s| s.as_u16()), Some(404));
    let answer = |status: Option<u16>| -> types::WebhookRelayAnswer {
        serde_json::from_value(json!({ "statusCode": status, "latencyMs": 3, "responseExcerpt": "fine" })).unwrap()
    };
    let (queued, succeeded) = (&messages[0], &messages[1]);
    let err = nosy.webhook_relay_answer(&id, &queued.delivery_id, &answer(Some(200))).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
    let plain = Receiver::start().await;
    let plain = create_endpoint(&client, json!({ "url": plain.url, "events": ["credits.low"] })).await;
    let err = client.webhook_relay_pull(&plain.endpoint.id, &pull(0)).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));

    // 200: delivered; 503: retried later as the same message.
    let done = client.webhook_relay_answer(&id, &succeeded.delivery_id, &answer(Some(200))).await.unwrap().into_inner();
    assert_eq!(done.status, types::WebhookDeliveryStatus::Succeeded);
    assert_eq!(done.attempt_log[0].response_excerpt.as_deref(), Some("fine"));
    let err = client.webhook_relay_answer(&id, &succeeded.delivery_id, &answer(Some(200))).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(409), "answered already");
    let retry = client.webhook_relay_answer(&id, &queued.delivery_id, &answer(Some(503))).await.unwrap().into_inner();
    assert_eq!(retry.status, types::WebhookDeliveryStatus::Pending);
    assert!(client.webhook_relay_pull(&id, &pull(0)).await.unwrap().into_inner().messages.is_empty(), "not due yet");
    app.advance_clock(Duration::from_secs(10));
    let again = client.webhook_relay_pull(&id, &pull(5)).await.unwrap().into_inner().messages;
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!((again[0].webhook_id.as_str(), again[0].attempt), (queued.webhook_id.as_str(), 2));
    // A lease that ended cannot be answered; the delivery is handed out again.
    app.advance_clock(Duration::from_secs(60));
    let err = client.webhook_relay_answer(&id, &again[0].delivery_id, &answer(Some(200))).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(409));
    let third = client.webhook_relay_pull(&id, &pull(5)).await.unwrap().into_inner().messages;
    assert_eq!((third.len(), third[0].attempt), (1, 3));
    let error: types::WebhookRelayAnswer =
        serde_json::from_value(json!({ "error": "connection refused", "latencyMs": 1 })).unwrap();
    let logged = client.webhook_relay_answer(&id, &third[0].delivery_id, &error).await.unwrap().into_inner();
    assert_eq!(logged.attempt_log.last().unwrap().error.as_deref(), Some("connection refused"));
    let neither: types::WebhookRelayAnswer = serde_json::from_value(json!({ "latencyMs": 1 })).unwrap();
    let err = client.webhook_relay_answer(&id, &third[0].delivery_id, &neither).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(422));
    // A 410 from the local server is logged as it came and retried: a relay is not disabled.
    app.advance_clock(Duration::from_secs(40 * 60));
    let fourth = client.webhook_relay_pull(&id, &pull(5)).await.unwrap().into_inner().messages;
    assert_eq!((fourth.len(), fourth[0].attempt), (1, 4));
    let gone = client.webhook_relay_answer(&id, &fourth[0].delivery_id, &answer(Some(410))).await.unwrap().into_inner();
    assert_eq!(gone.status, types::WebhookDeliveryStatus::Pending);
    assert_eq!(gone.attempt_log.last().unwrap().status_code, Some(410));
    assert!(client.webhook_endpoint_get(&id).await.unwrap().into_inner().enabled, "a relay stays enabled");
    assert!(local.got().is_empty(), "the server never sent to the listener's URL itself");

    // A relay nobody pulls for an hour goes, with its deliveries.
    app.advance_clock(Duration::from_secs(3700));
    funmagic_api::webhooks::sweep(app.state()).await.unwrap();
    assert_eq!(client.webhook_endpoint_get(&id).await.unwrap_err().status().map(|s| s.as_u16()), Some(404));
    assert_eq!(client.webhook_endpoint_list().await.unwrap().into_inner().endpoints.len(), 1, "the plain one stays");
}

funmagic_api::test_both_backends!(
    task_events_arrive_signed_retried_logged_and_replayable,
    rotation_gone_redirects_and_inside_addresses,
    a_task_can_report_to_its_own_url,
    credits_low_is_sent_when_the_balance_crosses_the_threshold,
    a_relay_hands_its_deliveries_to_a_listener
);
