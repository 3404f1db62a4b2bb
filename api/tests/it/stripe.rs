//! Purchases: a loopback fake of Stripe's Checkout Sessions API (form-encoded requests,
//! bearer secret key, `Idempotency-Key`) and webhooks signed as Stripe signs them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use funmagic_api::config::SettingsLayer;
use funmagic_api::store::Role;
use funmagic_api::testing::{TestApp, TestBackend};
use funmagic_sdk::types;
use hmac::{Hmac, KeyInit, Mac};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Form};
use poem::{EndpointExt, Route, handler};
use serde_json::{Value, json};

use crate::{actor, client_as, err_code};

pub(crate) const WEBHOOK_SECRET: &str = "whsec_test_secret";

#[derive(Clone, Default)]
pub(crate) struct FakeStripe {
    /// Idempotency-Key → session id, as Stripe replays.
    by_key: Arc<Mutex<HashMap<String, String>>>,
    created: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

#[handler]
fn create_session(
    fake: Data<&FakeStripe>,
    req: &poem::Request,
    Form(form): Form<HashMap<String, String>>,
) -> poem::Response {
    let json = |status: u16, body: Value| {
        poem::Response::builder()
            .status(poem::http::StatusCode::from_u16(status).unwrap())
            .content_type("application/json")
            .body(body.to_string())
    };
    if req.header("authorization") != Some("Bearer sk_test_123") {
        return json(401, json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}));
    }
    if form.get("mode").map(String::as_str) != Some("payment") || !form.contains_key("line_items[0][price]") {
        return json(400, json!({"error": {"type": "invalid_request_error", "message": "Missing required param"}}));
    }
    let key = req.header("idempotency-key").map(str::to_string);
    let id = key
        .as_ref()
        .and_then(|k| fake.by_key.lock().unwrap().get(k).cloned())
        .unwrap_or_else(|| format!("cs_test_{}", uuid::Uuid::new_v4().simple()));
    if let Some(k) = key {
        fake.by_key.lock().unwrap().insert(k, id.clone());
    }
    fake.created.lock().unwrap().push(form.clone());
    json(
        200,
        json!({"id": id, "object": "checkout.session", "url": format!("https://checkout.stripe.test/c/pay/{id}"), "payment_status": "unpaid", "status": "open"}),
    )
}

pub(crate) async fn start_fake() -> (String, FakeStripe) {
    let fake = FakeStripe::default();
    let app = Route::new().at("/v1/checkout/sessions", poem::post(create_session)).data(fake.clone());
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    (format!("http://{addr}"), fake)
}

pub(crate) fn signed(payload: &str, timestamp: i64, secret: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{payload}").as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver(app: &TestApp, event: &Value, signature: Option<String>) -> (u16, Value) {
    let payload = event.to_string();
    let mut req = reqwest::Client::new()
        .post(format!("{}/api/webhooks/stripe", app.base_url()))
        .header("content-type", "application/json")
        .body(payload.clone());
    let signature = signature.unwrap_or_else(|| signed(&payload, chrono::Utc::now().timestamp(), WEBHOOK_SECRET));
    req = req.header("stripe-signature", signature);
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

pub(crate) fn event(id: &str, kind: &str, session: &str, payment_status: &str) -> Value {
    json!({
        "id": id, "object": "event", "type": kind, "api_version": "2024-06-20",
        "created": chrono::Utc::now().timestamp(),
        "data": {"object": {"id": session, "object": "checkout.session", "payment_status": payment_status, "status": "complete", "amount_subtotal": 900, "amount_total": 900, "currency": "usd"}}
    })
}

async fn scenario(backend: TestBackend) {
    let (base, fake) = start_fake().await;
    // The web app on its own host: Stripe sends the buyer back there.
    let mut extra = SettingsLayer { web_url: Some("https://app.example.com/".into()), ..Default::default() };
    extra.stripe.secret_key = Some("sk_test_123".to_string().into());
    extra.stripe.webhook_secret = Some(WEBHOOK_SECRET.to_string().into());
    extra.stripe.api_url = Some(base);
    let Some(app) = TestApp::spawn_with(backend, extra).await else { return };
    let admin = actor(&app, "admin@example.com", Role::Admin).await;
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let package = client_as(&app, &admin.token)
        .admin_credit_package_create(&types::PackageInput {
            name: "Starter".parse().unwrap(),
            credits: std::num::NonZeroU64::new(100).unwrap(),
            price: 900,
            currency: Some("usd".parse().unwrap()),
            stripe_price_id: Some("price_starter".parse().unwrap()),
            is_active: Some(true),
            sort_order: None,
        })
        .await
        .unwrap()
        .into_inner();
    let as_ada = client_as(&app, &ada.token);
    let request = types::CheckoutRequest { package_id: package.id };
    let checkout =
        as_ada.credits_checkout_create(Some(&"buy-1".parse().unwrap()), &request).await.unwrap().into_inner();
    assert!(checkout.url.starts_with("https://checkout.stripe.test/c/pay/cs_test_"));
    assert_eq!((checkout.credits, checkout.amount, checkout.status.to_string().as_str()), (100, 900, "open"));
    let again = as_ada.credits_checkout_create(Some(&"buy-1".parse().unwrap()), &request).await.unwrap().into_inner();
    assert_eq!(again.id, checkout.id, "same Idempotency-Key, same checkout");
    assert_eq!(fake.created.lock().unwrap().len(), 1, "the retry did not reach Stripe");
    let sent = fake.created.lock().unwrap()[0].clone();
    assert_eq!(sent["line_items[0][price]"], "price_starter");
    assert_eq!(sent["client_reference_id"], ada.id.to_string());
    assert_eq!(sent["success_url"], "https://app.example.com/credits?checkout=success", "{sent:?}");
    assert_eq!(sent["cancel_url"], "https://app.example.com/credits?checkout=cancelled", "{sent:?}");
    assert_eq!(
        err_code(
            as_ada.credits_checkout_create(None, &types::CheckoutRequest { package_id: uuid::Uuid::now_v7() }).await
        )
        .0,
        404
    );

    // Forged and stale signatures grant nothing.
    let completed = event("evt_1", "checkout.session.completed", &checkout.id, "paid");
    let (status, body) =
        deliver(&app, &completed, Some(signed(&completed.to_string(), chrono::Utc::now().timestamp(), "whsec_wrong")))
            .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("INVALID_SIGNATURE")));
    let stale = chrono::Utc::now().timestamp() - 3600;
    let (status, _) = deliver(&app, &completed, Some(signed(&completed.to_string(), stale, WEBHOOK_SECRET))).await;
    assert_eq!(status, 400);
    let (status, _) = deliver(&app, &completed, Some("t=1,v1=00".into())).await;
    assert_eq!(status, 400);
    assert_eq!(as_ada.credits_balance_get().await.unwrap().into_inner().balance, 0);

    // Delivered three times (Stripe retries), once as a distinct event for the same
    // session, and a later "expired" event out of order: granted exactly once.
    for _ in 0..3 {
        let (status, _) = deliver(&app, &completed, None).await;
        assert_eq!(status, 200);
    }
    let (status, _) =
        deliver(&app, &event("evt_2", "checkout.session.async_payment_succeeded", &checkout.id, "paid"), None).await;
    assert_eq!(status, 200);
    let (status, _) = deliver(&app, &event("evt_3", "checkout.session.expired", &checkout.id, "unpaid"), None).await;
    assert_eq!(status, 200);
    let balance = as_ada.credits_balance_get().await.unwrap().into_inner();
    assert_eq!(balance.balance, 100);
    let purchases =
        as_ada.credits_transaction_list(None, None, Some(types::TransactionType::Purchase)).await.unwrap().into_inner();
    assert_eq!(purchases.transactions.len(), 1);
    assert_eq!(purchases.transactions[0].reference_id.as_deref(), Some(checkout.id.as_str()));
    let row = app.state().store().checkout_get(&checkout.id).await.unwrap().unwrap();
    assert_eq!(row.status.to_string(), "completed", "a later expiry does not undo a payment");

    // Expired first, paid later (async payment): the money still counts.
    let second = as_ada.credits_checkout_create(None, &request).await.unwrap().into_inner();
    deliver(&app, &event("evt_4", "checkout.session.completed", &second.id, "unpaid"), None).await;
    assert_eq!(as_ada.credits_balance_get().await.unwrap().into_inner().balance, 100, "unpaid: nothing yet");
    deliver(&app, &event("evt_5", "checkout.session.expired", &second.id, "unpaid"), None).await;
    deliver(&app, &event("evt_6", "checkout.session.async_payment_succeeded", &second.id, "paid"), None).await;
    assert_eq!(as_ada.credits_balance_get().await.unwrap().into_inner().balance, 200);

    // Paid, but not the amount (or currency) the session was created for: no credits.
    for (i, (subtotal, currency)) in [(1, "usd"), (900, "eur")].into_iter().enumerate() {
        let third = as_ada.credits_checkout_create(None, &request).await.unwrap().into_inner();
        let mut wrong = event(&format!("evt_m{i}"), "checkout.session.completed", &third.id, "paid");
        wrong["data"]["object"]["amount_subtotal"] = subtotal.into();
        wrong["data"]["object"]["amount_total"] = subtotal.into();
        wrong["data"]["object"]["currency"] = currency.into();
        let (status, body) = deliver(&app, &wrong, None).await;
        assert_eq!(status, 200, "answered, so Stripe does not retry");
        assert!(body["outcome"].as_str().unwrap().starts_with("AmountMismatch"), "{body}");
        assert_eq!(as_ada.credits_balance_get().await.unwrap().into_inner().balance, 200);
    }
    let violations = app.state().store().credits_invariant_violations(ada.id).await.unwrap();
    assert!(violations.is_empty(), "{violations:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_embedded() {
    scenario(TestBackend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_scale_out() {
    scenario(TestBackend::ScaleOut).await;
}

#[tokio::test]
async fn purchases_disabled_without_a_key() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let result = client_as(&app, &ada.token)
        .credits_checkout_create(None, &types::CheckoutRequest { package_id: uuid::Uuid::now_v7() })
        .await;
    assert_eq!(err_code(result), (409, "PURCHASES_DISABLED".into()));
    let (status, body) = deliver(&app, &event("evt_x", "checkout.session.completed", "cs_x", "paid"), None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("PURCHASES_DISABLED")));
}
