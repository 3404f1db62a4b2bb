//! `imageUrl` inputs: fetched by the server through the SSRF guard and kept as the user's
//! upload, so every provider reads the same checked file; loopback, link-local (cloud
//! metadata), private names and redirects to any of them are refused before a connection.

use std::time::Duration;

use funmagic_api::config::SettingsLayer;
use funmagic_api::store::{Role, TransactionType};
use funmagic_api::testing::{TestApp, TestBackend};
use funmagic_sdk::types;

use crate::fakes::{self, Reply};
use crate::{actor, client_as, err_code};

fn submit(slug: &str, url: &str) -> types::TaskCreateRequest {
    types::TaskCreateRequest {
        tool_slug: slug.parse().unwrap(),
        step_id: None,
        input: serde_json::json!({ "imageUrl": url }),
        parent_task_id: None,
        run_all_steps: None,
        webhook: None,
    }
}

fn redirect(to: &str) -> Reply {
    Reply::text(302, "moved").header("location", to)
}

#[tokio::test]
async fn image_urls_are_fetched_through_the_guard() {
    let fake = fakes::start().await;
    let host_port = fake.base.trim_start_matches("http://").to_string();
    let photo = funmagic_api::testing::sample_png(64, 48);
    fake.script("GET /photos/cat.png", vec![Reply::bytes("image/png", photo.clone())]);
    fake.script("GET /to-metadata", vec![redirect("http://169.254.169.254/latest/meta-data/")]);
    fake.script("GET /to-private-name", vec![redirect("https://internal.example/cat.png")]);
    fake.script("GET /to-loopback", vec![redirect("http://127.0.0.1/cat.png")]);
    fake.script("GET /to-self", vec![redirect(&format!("{}/photos/cat.png", fake.base))]);
    fake.script("GET /page.html", vec![Reply::bytes("text/html", b"<html>not an image</html>".to_vec())]);
    let mut huge = b"\x89PNG\r\n\x1a\n".to_vec();
    huge.resize(200_000, 0);
    fake.script("GET /huge.png", vec![Reply::bytes("image/png", huge)]);
    fake.script("GET /slow.png", vec![Reply::bytes("image/png", photo.clone()).delayed(Duration::from_secs(5))]);

    let mut extra = SettingsLayer::default();
    extra.tasks.image_url_allow = Some(vec![host_port.clone()]);
    extra.tasks.image_url_timeout_secs = Some(2);
    extra.storage.max_image_bytes = Some(100_000);
    for backend in [TestBackend::Embedded, TestBackend::ScaleOut] {
        let Some(app) = TestApp::spawn_with(backend, extra.clone()).await else { continue };
        let state = app.state();
        state.fetcher().set_dns("internal.example", vec!["10.0.0.5".parse().unwrap()]);
        state.fetcher().set_dns("mixed.example", vec!["127.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()]);
        let ada = actor(&app, "ada@example.com", Role::User).await;
        state.store().credits_grant(ada.id, TransactionType::Bonus, 100, "seed", None).await.unwrap();
        let as_ada = client_as(&app, &ada.token);

        // Allowed (the test's loopback server is on the allow-list): fetched, kept as the
        // user's upload, and the task runs on it.
        for path in ["/photos/cat.png", "/to-self"] {
            let url = format!("{}{path}", fake.base);
            let task = as_ada.task_create(None, &submit("background-remove", &url)).await.unwrap().into_inner().task;
            let input = state.store().task_payload(task.id).await.unwrap().unwrap().input.0;
            let key = input["imageStorageKey"].as_str().expect("the URL became an upload").to_string();
            assert_eq!((input.get("imageUrl"), input["imageSourceUrl"].as_str()), (None, Some(url.as_str())));
            assert!(key.starts_with(&format!("{}/uploads/", ada.id)) && key.ends_with("cat.png"), "{key}");
            let (asset, bytes) = funmagic_api::assets::read_owned(state, ada.id, &key).await.unwrap();
            assert_eq!((bytes.to_vec(), asset.mime_type.as_str()), (photo.clone(), "image/png"));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while as_ada.task_get(&task.id).await.unwrap().into_inner().task.status != types::TaskStatus::Completed {
                assert!(tokio::time::Instant::now() < deadline, "the task did not complete");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let balance = as_ada.credits_balance_get().await.unwrap().into_inner().balance;
        assert_eq!(balance, 80);

        // Refused, with nothing charged and nothing stored.
        let assets_before = state.store().asset_ids_of_user(ada.id, 100).await.unwrap().len();
        let refused = [
            "http://127.0.0.1/cat.png".to_string(),
            "https://127.0.0.1/cat.png".into(),
            "http://169.254.169.254/latest/meta-data/".into(),
            "https://169.254.169.254/latest/meta-data/".into(),
            "https://[::ffff:169.254.169.254]/".into(),
            "https://0x7f000001/cat.png".into(),
            "https://internal.example/cat.png".into(),
            "https://mixed.example/cat.png".into(),
            "https://localhost/cat.png".into(),
            "http://images.example.com/cat.png".into(),
            "file:///etc/passwd".into(),
            format!("{}/to-metadata", fake.base),
            format!("{}/to-private-name", fake.base),
            format!("{}/to-loopback", fake.base),
        ];
        for url in &refused {
            let got = err_code(as_ada.task_create(None, &submit("background-remove", url)).await);
            assert_eq!(got, (422, "IMAGE_URL_REFUSED".into()), "{url}");
        }
        let cases = [
            ("/missing.png", 422, "IMAGE_URL_UNREACHABLE"),
            ("/slow.png", 422, "IMAGE_URL_UNREACHABLE"),
            ("/page.html", 422, "INVALID_IMAGE"),
            ("/huge.png", 413, "FILE_TOO_LARGE"),
        ];
        for (path, status, code) in cases {
            let url = format!("{}{path}", fake.base);
            let got = err_code(as_ada.task_create(None, &submit("background-remove", &url)).await);
            assert_eq!(got, (status, code.into()), "{path}");
        }
        let both = types::TaskCreateRequest {
            input: serde_json::json!({ "imageUrl": format!("{}/photos/cat.png", fake.base), "imageStorageKey": "x" }),
            ..submit("background-remove", "")
        };
        assert_eq!(err_code(as_ada.task_create(None, &both).await).0, 422);
        assert_eq!(as_ada.credits_balance_get().await.unwrap().into_inner().balance, 80);
        // Nothing is fetched for a submission its credits cannot pay for.
        let broke = actor(&app, "broke@example.com", Role::User).await;
        let hits = fake.hits("GET /photos/cat.png").len();
        let url = format!("{}/photos/cat.png", fake.base);
        let got = err_code(client_as(&app, &broke.token).task_create(None, &submit("background-remove", &url)).await);
        assert_eq!(got, (402, "INSUFFICIENT_CREDITS".into()));
        assert_eq!(fake.hits("GET /photos/cat.png").len(), hits);
        assert_eq!(state.store().asset_ids_of_user(ada.id, 100).await.unwrap().len(), assets_before);
        // The metadata address was never asked: no connection left this machine for it.
        assert!(fake.hits("GET /latest/meta-data/").is_empty());

        // Without the allow-list (the default), the same loopback server is refused outright,
        // over http and https, and is never asked.
        let Some(plain) = TestApp::spawn(backend).await else { continue };
        let bob = actor(&plain, "bob@example.com", Role::User).await;
        plain.state().store().credits_grant(bob.id, TransactionType::Bonus, 100, "seed", None).await.unwrap();
        let as_bob = client_as(&plain, &bob.token);
        let hits = fake.hits("GET /photos/cat.png").len();
        for url in [format!("{}/photos/cat.png", fake.base), format!("https://{host_port}/photos/cat.png")] {
            let got = err_code(as_bob.task_create(None, &submit("background-remove", &url)).await);
            assert_eq!(got, (422, "IMAGE_URL_REFUSED".into()), "{url}");
        }
        assert_eq!(fake.hits("GET /photos/cat.png").len(), hits, "a refused URL is never fetched");
        assert_eq!(as_bob.credits_balance_get().await.unwrap().into_inner().balance, 100);
    }
}
