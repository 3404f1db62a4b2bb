//! `funmagic credits …` and `funmagic admin credits adjust`.

use funmagic_api::testing::{TempDir, TestApp, TestBackend};
use funmagic_sdk::types;

use crate::{funmagic, stderr, stdout};

async fn token(app: &TestApp, email: &str, role: funmagic_api::store::Role) -> String {
    crate::signed_in(app, email, role, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_commands() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let admin = token(&app, "admin@example.com", funmagic_api::store::Role::Admin).await;
    let ada = token(&app, "ada@example.com", funmagic_api::store::Role::User).await;
    let cfg = TempDir::new("cli-credits");
    let url = app.base_url();
    let as_admin = |args: &[&str]| {
        let mut all = vec!["--api-url", url.as_str(), "--token", admin.as_str()];
        all.extend_from_slice(args);
        all.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let cfg = &cfg;
        async move { funmagic(cfg, &args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };

    let out = run(as_admin(&[
        "admin",
        "credits",
        "adjust",
        "ada@example.com",
        "120",
        "--reason",
        "beta tester",
        "--idempotency-key",
        "k1",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("balance 120"), "{}", stdout(&out));
    let out = run(as_admin(&[
        "admin",
        "credits",
        "adjust",
        "ada@example.com",
        "120",
        "--reason",
        "beta tester",
        "--idempotency-key",
        "k1",
    ]))
    .await;
    assert!(stdout(&out).contains("balance 120"), "the retried command did not grant twice");
    let out = run(as_admin(&["admin", "credits", "adjust", "ada@example.com", "-500", "--reason", "oops"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ADJUSTMENT_EXCEEDS_AVAILABLE"), "{}", stderr(&out));
    let out = run(as_admin(&["admin", "credits", "adjust", "nobody@example.com", "5", "--reason", "x"])).await;
    assert_eq!(out.status.code(), Some(1));

    let as_ada = |args: &[&str]| {
        let mut all = vec!["--api-url", url.as_str(), "--token", ada.as_str()];
        all.extend_from_slice(args);
        all.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let out = run(as_ada(&["credits"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("120 credits available"), "{}", stdout(&out));
    let out = run(as_ada(&["--json", "credits", "history"])).await;
    let history: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(history["transactions"][0]["type"], "admin_adjust");
    assert_eq!(history["transactions"][0]["amount"], 120);
    let out = run(as_ada(&["credits", "history", "--type", "bogus"])).await;
    assert_eq!(out.status.code(), Some(2));
    let out = run(as_ada(&["admin", "credits", "adjust", "ada@example.com", "5", "--reason", "self"])).await;
    assert_eq!(out.status.code(), Some(4), "plain users get an auth exit code");

    let sdk = funmagic_sdk::ClientBuilder::new(&url).token(&admin).build().unwrap();
    let input = types::PackageInput {
        name: "Starter".parse().unwrap(),
        credits: std::num::NonZeroU64::new(100).unwrap(),
        price: 900,
        currency: None,
        stripe_price_id: None,
        is_active: Some(true),
        sort_order: None,
    };
    sdk.admin_credit_package_create(&input).await.unwrap();
    let out = run(as_ada(&["credits", "packages"])).await;
    assert!(stdout(&out).contains("Starter") && stdout(&out).contains("9.00 USD"), "{}", stdout(&out));
    let out = run(as_ada(&["credits", "buy", "starter"])).await;
    assert_eq!(out.status.code(), Some(1), "no Stripe key configured");
    assert!(stderr(&out).contains("PURCHASES_DISABLED"), "{}", stderr(&out));
    let out = run(as_ada(&["credits", "buy", "platinum"])).await;
    assert_eq!(out.status.code(), Some(2));
}

/// `funmagic admin banners`: create (with a thumbnail file uploaded to the admin bucket),
/// list, update, reorder, rm; the public list follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_banners_from_the_cli() {
    let app = funmagic_api::testing::TestApp::spawn(funmagic_api::testing::TestBackend::Embedded).await.unwrap();
    let token = crate::signed_in(&app, "admin@example.com", funmagic_api::store::Role::Admin, 0).await;
    let cfg = funmagic_api::testing::TempDir::new("cli-banners");
    let thumb = cfg.path().join("thumb.png");
    std::fs::write(&thumb, funmagic_api::testing::sample_png(16, 16)).unwrap();
    let url = app.base_url();
    let run = |args: Vec<String>| {
        let mut all = vec!["--api-url".to_string(), url.clone(), "--token".to_string(), token.clone()];
        all.extend(args);
        let cfg = &cfg;
        async move { crate::funmagic(cfg, &all.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let out =
        run(s(&["--json", "admin", "banners", "create", "--title", "First", "--thumbnail", thumb.to_str().unwrap()]))
            .await;
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    let first: serde_json::Value = serde_json::from_str(&crate::stdout(&out)).unwrap();
    // The file went to the admin bucket and is served from there.
    let thumb_url = first["thumbnailUrl"].as_str().unwrap_or_else(|| panic!("no thumbnail URL: {first}"));
    assert!(first["thumbnail"].is_string() && !first["thumbnail"].as_str().unwrap().starts_with("http"), "{first}");
    let png = funmagic_api::testing::fetch_public(thumb_url).await.bytes().await.unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let out = run(s(&["--json", "admin", "banners", "create", "--title", "Second", "--link", "/tools/figme"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    let second: serde_json::Value = serde_json::from_str(&crate::stdout(&out)).unwrap();
    let (a, b) = (first["id"].as_str().unwrap().to_string(), second["id"].as_str().unwrap().to_string());
    let out = run(s(&["admin", "banners", "reorder", "--type", "main", &b, &a])).await;
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    let public: serde_json::Value =
        reqwest::get(format!("{url}/api/banners?type=main")).await.unwrap().json().await.unwrap();
    let titles: Vec<&str> =
        public["banners"].as_array().unwrap().iter().map(|b| b["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Second", "First"], "reordered");
    let out = run(s(&["admin", "banners", "update", &a, "--inactive"])).await;
    assert!(
        crate::stdout(&out).contains("First") && crate::stdout(&out).contains("inactive"),
        "{}",
        crate::stdout(&out)
    );
    let public: serde_json::Value =
        reqwest::get(format!("{url}/api/banners?type=main")).await.unwrap().json().await.unwrap();
    let titles: Vec<&str> =
        public["banners"].as_array().unwrap().iter().map(|b| b["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Second"]);
    let out = run(s(&["admin", "banners", "list"])).await;
    assert!(crate::stdout(&out).contains("First") && crate::stdout(&out).contains("Second"));
    let out = run(s(&["admin", "banners", "rm", &b])).await;
    assert_eq!(out.status.code(), Some(0));
    let out = run(s(&["admin", "banners", "rm", &b])).await;
    assert_ne!(out.status.code(), Some(0), "deleting twice fails: {}", crate::stderr(&out));
}
