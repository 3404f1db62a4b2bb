//! The storage scenario as a user runs it: upload → list → show → download → publish →
//! unpublish → delete, against the local file store and against a real S3 server.

use funmagic_api::testing::{TempDir, TestApp, TestBackend};

use crate::{funmagic, stderr, stdout};

/// A PNG by its magic bytes, then `len` bytes of a repeating pattern.
pub fn png_bytes(len: usize) -> Vec<u8> {
    let mut data = b"\x89PNG\r\n\x1a\n".to_vec();
    data.extend((0..len).map(|i| (i % 251) as u8));
    data
}

async fn session(app: &TestApp, email: &str) -> String {
    crate::signed_in(app, email, funmagic_api::store::Role::User, 0).await
}

async fn scenario(app: TestApp) {
    let token = session(&app, "ada@example.com").await;
    let cfg = TempDir::new("cli-assets");
    let work = TempDir::new("cli-files");
    let photo = work.path().join("holiday photo.png");
    let content = png_bytes(300_000);
    std::fs::write(&photo, &content).unwrap();
    let url = app.base_url();
    let base = ["--api-url", url.as_str(), "--token", token.as_str()];
    let cli = |args: &[&str]| {
        let mut all: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        all.extend(args.iter().map(|s| s.to_string()));
        let cfg = &cfg;
        async move { funmagic(cfg, &all.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };

    let out = cli(&["upload", photo.to_str().unwrap(), "--module", "photos"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");

    let out = cli(&["--json", "assets", "list"]).await;
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let asset = &list["assets"][0];
    assert_eq!(asset["id"], id.as_str());
    assert_eq!(asset["filename"], "holiday_photo.png");
    assert_eq!(asset["mimeType"], "image/png");
    assert_eq!(asset["size"], content.len());
    assert_eq!(asset["module"], "photos");
    let key = asset["storageKey"].as_str().unwrap();
    assert!(key.contains("/photos/") && key.ends_with("_holiday_photo.png"), "{key}");

    let dest = work.path().join("copy.png");
    let out = cli(&["assets", "download", &id, "--output", dest.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read(&dest).unwrap(), content, "downloaded bytes are the uploaded bytes");
    assert!(
        std::fs::read_dir(work.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".part-"))
    );

    let out = cli(&["assets", "publish", &id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let public_url = stdout(&out).trim().to_string();
    assert!(public_url.contains("shared/"), "{public_url}");
    let fetched = funmagic_api::testing::fetch_public(&public_url).await;
    assert_eq!(fetched.status(), 200, "the public URL needs no signature");
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), content.as_slice());

    let out = cli(&["--json", "assets", "unpublish", &id]).await;
    let back: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(back["visibility"], "private");
    let gone = funmagic_api::testing::fetch_public(&public_url).await;
    assert!(gone.status().is_client_error(), "unpublished files leave the public bucket: {}", gone.status());

    let out = cli(&["assets", "rm", &id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = cli(&["assets", "show", &id]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("NOT_FOUND"));

    // A file type we do not accept is a usage error before any upload.
    let exe = work.path().join("tool.exe");
    std::fs::write(&exe, b"\x7fELF").unwrap();
    let out = cli(&["upload", exe.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_scenario_on_local_files() {
    scenario(TestApp::spawn(TestBackend::Embedded).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_scenario_on_s3() {
    if !funmagic_api::testing::s3_available() {
        return;
    }
    let Some(app) = TestApp::spawn(TestBackend::ScaleOut).await else { return };
    assert_eq!(app.state().storage().kind(), "s3");
    scenario(app).await;
}
