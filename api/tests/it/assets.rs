//! Uploads and assets through the API: type, size and quota checks, magic bytes,
//! signatures (tampered, expired, other users'), publishing, admin bucket, the sweeper and
//! the helpers workers use. On the scale-out backend this runs against S3 when configured.

use funmagic_api::config::SettingsLayer;
use funmagic_api::store::Role;
use funmagic_api::testing::{TestApp, TestBackend};
use funmagic_sdk::types;

use crate::{actor, client_as, err_code, raw_json};

funmagic_api::test_both_backends!(
    upload_checks_and_ownership,
    signatures_are_enforced,
    publish_admin_and_worker_helpers,
    upload_urls_write_once_while_pending,
    gallery_in_one_call,
);

/// Embedded only: the S3 buckets of the tests are shared by every test app, and a sweep
/// "in the future" would remove other tests' uploads in flight.
#[tokio::test]
async fn stray_incoming_objects_are_swept_embedded() {
    stray_incoming_objects_are_swept(TestApp::spawn(TestBackend::Embedded).await.unwrap()).await;
}

fn png(len: usize) -> Vec<u8> {
    let mut data = b"\x89PNG\r\n\x1a\n".to_vec();
    data.extend((0..len).map(|i| (i % 251) as u8));
    data
}

fn presign_body(filename: &str, content_type: &str, size: u64) -> types::PresignUploadRequest {
    let size = std::num::NonZeroU64::new(size).expect("test sizes are positive");
    types::PresignUploadRequest {
        filename: filename.parse().unwrap(),
        content_type: content_type.parse().unwrap(),
        size,
        module: None,
    }
}

/// PUTs `data` to a presigned upload exactly as instructed; returns the HTTP status.
async fn put(p: &types::PresignedUpload, data: Vec<u8>) -> u16 {
    let mut req = reqwest::Client::new().put(&p.upload_url).body(data);
    for (k, v) in &p.headers {
        if !k.eq_ignore_ascii_case("content-length") {
            req = req.header(k, v);
        }
    }
    req.send().await.unwrap().status().as_u16()
}

/// The storage key a presigned upload URL writes to (`incoming/…`).
fn upload_key(p: &types::PresignedUpload) -> String {
    let path = reqwest::Url::parse(&p.upload_url).unwrap().path().to_string();
    let at = path.find("incoming/").expect("uploads go to the incoming area");
    path[at..].to_string()
}

async fn incoming_keys(app: &TestApp) -> Vec<String> {
    let far = funmagic_api::store::now() + chrono::Duration::hours(1);
    let bucket = funmagic_api::storage::Bucket::Private;
    app.state().storage().list_older(bucket, funmagic_api::assets::INCOMING_PREFIX, far, 1000).await.unwrap()
}

async fn download(as_ada: &funmagic_sdk::Client, id: &uuid::Uuid) -> Vec<u8> {
    let url = as_ada.asset_get(id).await.unwrap().into_inner().download_url.unwrap();
    reqwest::get(url).await.unwrap().bytes().await.unwrap().to_vec()
}

/// A signed upload URL cannot replace a checked file, nor recreate a deleted one: it writes
/// to its own incoming key, once, while its upload is pending (the local store enforces
/// all of it at the PUT; S3 accepts the PUT but the bytes never reach the asset).
async fn upload_urls_write_once_while_pending(app: TestApp) {
    let local = app.state().storage().kind() == "local";
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let as_ada = client_as(&app, &ada.token);
    let original = png(1000);
    let mut evil = b"\x89PNG\r\n\x1a\n".to_vec();
    evil.extend(std::iter::repeat_n(0xEEu8, 1000));
    let p = as_ada.upload_presign(&presign_body("a.png", "image/png", 1008)).await.unwrap().into_inner();
    assert!(!p.upload_url.contains(&p.storage_key), "the URL does not write to the asset's key");
    assert_eq!(put(&p, original.clone()).await, 200);
    if local {
        assert_eq!(put(&p, evil.clone()).await, 409, "a second PUT to the same URL is refused");
    } else {
        assert_eq!(put(&p, original.clone()).await, 200, "S3 takes the PUT; it only reaches the incoming key");
    }
    let asset = as_ada
        .upload_complete(&types::CompleteUploadRequest { storage_key: p.storage_key.clone().parse().unwrap() })
        .await
        .unwrap()
        .into_inner();
    // Replays after `complete`: refused locally; on S3 they land in the incoming area.
    let status = put(&p, evil.clone()).await;
    if local {
        assert_eq!(status, 403);
    }
    assert_eq!(download(&as_ada, &asset.id).await, original, "the checked bytes are the bytes kept");
    as_ada.asset_delete(&asset.id).await.unwrap();
    let status = put(&p, evil.clone()).await;
    if local {
        assert_eq!(status, 403);
        assert!(incoming_keys(&app).await.is_empty(), "nothing was written after the upload closed");
    }
    let bucket = funmagic_api::storage::Bucket::Private;
    assert!(
        app.state().storage().head(bucket, &p.storage_key).await.unwrap().is_none(),
        "the deleted file stays deleted"
    );
    // A pending upload's bytes wait in the incoming area until `complete`.
    let next = as_ada.upload_presign(&presign_body("b.png", "image/png", 108)).await.unwrap().into_inner();
    assert_eq!(put(&next, png(100)).await, 200);
    assert!(app.state().storage().head(bucket, &upload_key(&next)).await.unwrap().is_some());
}

/// Objects in the incoming area that no pending upload refers to are removed once their URL
/// expired; a pending upload's object is kept.
async fn stray_incoming_objects_are_swept(app: TestApp) {
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let as_ada = client_as(&app, &ada.token);
    let pending = as_ada.upload_presign(&presign_body("a.png", "image/png", 108)).await.unwrap().into_inner();
    assert_eq!(put(&pending, png(100)).await, 200);
    // A stray: what a replayed URL leaves on S3 (or a PUT racing `complete` locally).
    let bucket = funmagic_api::storage::Bucket::Private;
    let stray = format!("{}stray{}", funmagic_api::assets::INCOMING_PREFIX, uuid::Uuid::new_v4().simple());
    app.state().storage().put(bucket, &stray, png(10).into(), "image/png").await.unwrap();
    let keys = incoming_keys(&app).await;
    assert!(keys.contains(&stray) && keys.contains(&upload_key(&pending)), "{keys:?}");
    // Too young to sweep: the URL might still be in use.
    funmagic_api::assets::sweep_pending_uploads(app.state()).await.unwrap();
    assert!(incoming_keys(&app).await.contains(&stray));
    // Pretend the clock moved past the URL's expiry and the grace period.
    let url_ttl = app.state().settings().storage.upload_url_ttl_secs as i64;
    let later =
        funmagic_api::store::now() + chrono::Duration::seconds(url_ttl + funmagic_api::assets::INCOMING_GRACE_SECS + 2);
    let removed = funmagic_api::assets::sweep_incoming(app.state(), later).await.unwrap();
    assert_eq!(removed, 1);
    let keys = incoming_keys(&app).await;
    assert!(!keys.contains(&stray), "{keys:?}");
    assert!(keys.contains(&upload_key(&pending)), "a pending upload's bytes stay: {keys:?}");
    as_ada
        .upload_complete(&types::CompleteUploadRequest { storage_key: pending.storage_key.clone().parse().unwrap() })
        .await
        .expect("the pending upload still completes");
}

async fn upload_checks_and_ownership(app: TestApp) {
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let bob = actor(&app, "bob@example.com", Role::User).await;
    let (as_ada, as_bob) = (client_as(&app, &ada.token), client_as(&app, &bob.token));

    // Types outside the spec's list (which the SDK will not send) are 415, named.
    for ct in ["image/gif", "IMAGE/PNG", "image/png; charset=binary"] {
        let body = serde_json::json!({ "filename": "a.gif", "contentType": ct, "size": 10 });
        let got = raw_json(&app, Some(&ada.token), reqwest::Method::POST, "/api/uploads/presign", body).await;
        assert_eq!(got, (415, "UNSUPPORTED_MEDIA_TYPE".into()), "{ct}");
    }
    assert_eq!(
        err_code(as_ada.upload_presign(&presign_body("a.png", "image/png", 26 * 1024 * 1024)).await),
        (413, "FILE_TOO_LARGE".into())
    );
    as_ada
        .upload_presign(&presign_body("m.glb", "model/gltf-binary", 26 * 1024 * 1024))
        .await
        .expect("models may be larger");
    // Size 0 is outside the spec (minimum 1): refused as a schema misfit.
    let empty = reqwest::Client::new()
        .post(format!("{}/api/uploads/presign", app.base_url()))
        .bearer_auth(&ada.token)
        .json(&serde_json::json!({ "filename": "a.png", "contentType": "image/png", "size": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 422);
    assert_eq!(empty.json::<serde_json::Value>().await.unwrap()["code"], "VALIDATION_FAILED");
    let bad_module =
        serde_json::json!({ "filename": "a.png", "contentType": "image/png", "size": 10, "module": "../x" });
    let got = raw_json(&app, Some(&ada.token), reqwest::Method::POST, "/api/uploads/presign", bad_module).await;
    assert_eq!(got, (422, "VALIDATION_FAILED".into()));

    // A PNG renamed .exe, declared image/png, but ELF bytes inside: refused and removed.
    let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
    elf.extend([0u8; 120]);
    let p = as_ada
        .upload_presign(&presign_body("photo.png.exe", "image/png", elf.len() as u64))
        .await
        .unwrap()
        .into_inner();
    assert!(p.storage_key.ends_with(".png"), "the server names the key after the declared type: {}", p.storage_key);
    assert_eq!(put(&p, elf).await, 200);
    let done = as_ada
        .upload_complete(&types::CompleteUploadRequest { storage_key: p.storage_key.clone().parse().unwrap() })
        .await;
    assert_eq!(err_code(done), (415, "CONTENT_MISMATCH".into()));
    let again = as_ada
        .upload_complete(&types::CompleteUploadRequest { storage_key: p.storage_key.clone().parse().unwrap() })
        .await;
    assert_eq!(err_code(again).0, 404, "the rejected upload is gone");

    // Completing before uploading, and someone else's key.
    let data = png(2000);
    let p = as_ada.upload_presign(&presign_body("cat.png", "image/png", data.len() as u64)).await.unwrap().into_inner();
    let early = as_ada
        .upload_complete(&types::CompleteUploadRequest { storage_key: p.storage_key.clone().parse().unwrap() })
        .await;
    assert_eq!(err_code(early), (409, "UPLOAD_MISSING".into()));
    assert_eq!(put(&p, data.clone()).await, 200);
    let stolen = as_bob
        .upload_complete(&types::CompleteUploadRequest { storage_key: p.storage_key.clone().parse().unwrap() })
        .await;
    assert_eq!(err_code(stolen).0, 404);
    let asset = as_ada
        .upload_complete(&types::CompleteUploadRequest { storage_key: p.storage_key.clone().parse().unwrap() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (asset.size, asset.mime_type.as_str(), asset.visibility),
        (2000 + 8, "image/png", types::Visibility::Private)
    );
    let twice = as_ada
        .upload_complete(&types::CompleteUploadRequest { storage_key: p.storage_key.clone().parse().unwrap() })
        .await;
    assert_eq!(err_code(twice).0, 404);

    // Other users see nothing of it.
    assert_eq!(err_code(as_bob.asset_get(&asset.id).await).0, 404);
    assert_eq!(err_code(as_bob.asset_delete(&asset.id).await).0, 404);
    assert_eq!(err_code(as_bob.asset_publish(&asset.id).await).0, 404);
    assert!(as_bob.asset_list(None, None, None).await.unwrap().into_inner().assets.is_empty());
    let mine = as_ada.asset_list(None, None, Some(&"uploads".parse().unwrap())).await.unwrap().into_inner();
    assert_eq!(mine.assets.len(), 1);
    assert!(
        as_ada.asset_list(None, None, Some(&"other".parse().unwrap())).await.unwrap().into_inner().assets.is_empty()
    );

    // Download URL works and returns the bytes.
    let fetched = as_ada.asset_get(&asset.id).await.unwrap().into_inner();
    let body = reqwest::get(fetched.download_url.unwrap()).await.unwrap().bytes().await.unwrap();
    assert_eq!(body.as_ref(), data.as_slice());
}

async fn signatures_are_enforced(app: TestApp) {
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let as_ada = client_as(&app, &ada.token);
    let data = png(1000);
    let p = as_ada.upload_presign(&presign_body("dog.png", "image/png", data.len() as u64)).await.unwrap().into_inner();
    // A different length or content type than signed is refused.
    assert_eq!(put(&p, png(1001)).await, 403);
    let mut wrong_type = p.clone();
    for (name, value) in wrong_type.headers.iter_mut() {
        if name.eq_ignore_ascii_case("content-type") {
            *value = "image/jpeg".into();
        }
    }
    assert_eq!(put(&wrong_type, data.clone()).await, 403);
    // A tampered signature is refused.
    let mut tampered = p.clone();
    let last = tampered.upload_url.pop().unwrap();
    tampered.upload_url.push(if last == '0' { '1' } else { '0' });
    assert_eq!(put(&tampered, data.clone()).await, 403);
    assert_eq!(put(&p, data.clone()).await, 200);
    let asset = as_ada
        .upload_complete(&types::CompleteUploadRequest { storage_key: p.storage_key.parse().unwrap() })
        .await
        .unwrap()
        .into_inner();

    let url = as_ada.asset_get(&asset.id).await.unwrap().into_inner().download_url.unwrap();
    let mut bad = url.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == '0' { '1' } else { '0' });
    assert_eq!(reqwest::get(&bad).await.unwrap().status(), 403);
    // Another object under the same signature: refused.
    let other = url.replacen("dog.png", "cat.png", 1);
    assert_eq!(reqwest::get(&other).await.unwrap().status(), 403);
}

#[tokio::test]
async fn expired_urls_and_traversal_are_refused() {
    let mut extra = SettingsLayer::default();
    extra.storage.upload_url_ttl_secs = Some(60);
    extra.storage.download_url_ttl_secs = Some(60);
    let app = TestApp::spawn_with(TestBackend::Embedded, extra).await.unwrap();
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let as_ada = client_as(&app, &ada.token);
    let p = as_ada.upload_presign(&presign_body("a.png", "image/png", 108)).await.unwrap().into_inner();
    app.advance_clock(std::time::Duration::from_secs(61));
    assert_eq!(put(&p, png(100)).await, 403, "expired upload URL");
    for path in [
        "/files/private/../secret.key",
        "/files/private/%2e%2e/secret.key",
        "/files/nope/x.png",
        "/files/public/missing.png",
    ] {
        let status = reqwest::get(format!("{}{path}", app.base_url())).await.unwrap().status().as_u16();
        assert!(matches!(status, 400 | 403 | 404), "{path}: {status}");
    }
    assert!(app.dir.path().join("secret.key").exists(), "the signing key exists and stayed unreachable");
}

#[tokio::test]
async fn quota_and_sweeper() {
    let mut extra = SettingsLayer::default();
    extra.storage.quota_bytes = Some(5000);
    extra.storage.pending_upload_ttl_secs = Some(60);
    let app = TestApp::spawn_with(TestBackend::Embedded, extra).await.unwrap();
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let as_ada = client_as(&app, &ada.token);
    let p = as_ada.upload_presign(&presign_body("a.png", "image/png", 3000)).await.unwrap().into_inner();
    let over = as_ada.upload_presign(&presign_body("b.png", "image/png", 2001)).await;
    assert_eq!(err_code(over), (413, "QUOTA_EXCEEDED".into()), "uploads in flight count against the quota");
    assert_eq!(put(&p, png(2992)).await, 200);
    assert_eq!(funmagic_api::assets::sweep_pending_uploads(app.state()).await.unwrap(), 0, "not expired yet");
    app.advance_clock(std::time::Duration::from_secs(61));
    assert_eq!(funmagic_api::assets::sweep_pending_uploads(app.state()).await.unwrap(), 1);
    let bucket = funmagic_api::storage::Bucket::Private;
    assert!(
        app.state().storage().head(bucket, &upload_key(&p)).await.unwrap().is_none(),
        "the abandoned object is deleted"
    );
    as_ada.upload_presign(&presign_body("b.png", "image/png", 4000)).await.expect("the quota is free again");
}

async fn publish_admin_and_worker_helpers(app: TestApp) {
    let admin = actor(&app, "admin@example.com", Role::Admin).await;
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let (as_admin, as_ada) = (client_as(&app, &admin.token), client_as(&app, &ada.token));

    // Admin bucket with a free key; users may not use it.
    let banner = png(500);
    let admin_req = |key: Option<&str>| types::AdminPresignUploadRequest {
        filename: "banner.png".parse().unwrap(),
        content_type: "image/png".parse().unwrap(),
        size: std::num::NonZeroU64::new(banner.len() as u64).unwrap(),
        key: key.map(str::to_string).map(|s| s.parse().unwrap()),
    };
    assert_eq!(err_code(as_ada.admin_upload_presign(&admin_req(None)).await).0, 403);
    let escape =
        serde_json::json!({ "filename": "b.png", "contentType": "image/png", "size": 10, "key": "../escape.png" });
    let got = raw_json(&app, Some(&admin.token), reqwest::Method::POST, "/api/admin/uploads/presign", escape).await;
    assert_eq!(got, (422, "VALIDATION_FAILED".into()));
    let p = as_admin.admin_upload_presign(&admin_req(Some("banners/2026/summer.png"))).await.unwrap().into_inner();
    assert_eq!(p.storage_key, "banners/2026/summer.png");
    assert_eq!(put(&p, banner).await, 200);
    let asset = as_admin
        .admin_upload_complete(&types::CompleteUploadRequest { storage_key: p.storage_key.parse().unwrap() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(asset.visibility, types::Visibility::AdminPrivate);

    // Worker helpers: outputs are stored as the owner's assets; inputs resolve only for the owner.
    let state = app.state();
    let out = funmagic_api::assets::store_output(
        state,
        ada.id,
        None,
        "image-gen",
        "out.png",
        funmagic_api::assets::FileType::Png,
        png(64).into(),
    )
    .await
    .unwrap();
    assert!(out.storage_key.starts_with(&format!("{}/image-gen/", ada.id)));
    let input = serde_json::json!({ "imageStorageKey": out.storage_key });
    let url = funmagic_api::assets::resolve_image_url(state, ada.id, &input).await.unwrap();
    assert_eq!(reqwest::get(&url).await.unwrap().bytes().await.unwrap().len(), 72);
    assert!(funmagic_api::assets::resolve_image_url(state, admin.id, &input).await.is_err(), "not someone else's file");
    let (_, bytes) = funmagic_api::assets::read_owned(state, ada.id, &out.storage_key).await.unwrap();
    assert_eq!(bytes.len(), 72);

    // Publish: a permanent public URL (no signature), cache headers on S3/CDN; unpublish.
    let published = as_ada.asset_publish(&out.id).await.unwrap().into_inner();
    assert_eq!(published.visibility, types::Visibility::Public);
    assert!(published.storage_key.starts_with(&format!("shared/{}/{}/", ada.id, out.id)));
    assert!(published.download_url_expires_at.is_none());
    let resp = funmagic_api::testing::fetch_public(&published.download_url.clone().unwrap()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "public, max-age=31536000, immutable");
    let private = as_ada.asset_unpublish(&out.id).await.unwrap().into_inner();
    assert_eq!(private.visibility, types::Visibility::Private);
    assert!(private.download_url_expires_at.is_some());

    // Admins see any user's assets; users cannot.
    let listed = as_admin.admin_user_asset_list(&ada.id, None, None, None).await.unwrap().into_inner();
    assert_eq!(listed.assets.len(), 1);
    assert_eq!(err_code(as_ada.admin_user_asset_list(&ada.id, None, None, None).await).0, 403);
    as_ada.asset_delete(&out.id).await.unwrap();
    assert!(as_ada.asset_list(None, None, None).await.unwrap().into_inner().assets.is_empty());
}

/// Concurrent presigns cannot overshoot the quota: check and reservation are one step.
async fn quota_holds_under_concurrency(backend: TestBackend) {
    let mut extra = SettingsLayer::default();
    extra.storage.quota_bytes = Some(10_000);
    let Some(app) = TestApp::spawn_with(backend, extra).await else { return };
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let as_ada = client_as(&app, &ada.token);
    let attempts = (0..40).map(|i| {
        let as_ada = as_ada.clone();
        async move { as_ada.upload_presign(&presign_body(&format!("f{i}.png"), "image/png", 1008)).await }
    });
    let results = futures::future::join_all(attempts).await;
    let mut granted = 0;
    for r in results {
        match r {
            Ok(_) => granted += 1,
            Err(e) => assert_eq!(err_code::<()>(Err(e)), (413, "QUOTA_EXCEEDED".into())),
        }
    }
    assert_eq!(granted, 9, "9 × 1008 bytes fit in 10000, a 10th does not");
    assert!(app.state().store().storage_usage(ada.id).await.unwrap() <= 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_holds_under_concurrency_embedded() {
    quota_holds_under_concurrency(TestBackend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_holds_under_concurrency_scale_out() {
    quota_holds_under_concurrency(TestBackend::ScaleOut).await;
}

/// `GET /api/assets` gives every item its download URL and, for images, a thumbnail made
/// once when the file was stored; deleting the asset deletes the thumbnail too.
async fn gallery_in_one_call(app: TestApp) {
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let as_ada = client_as(&app, &ada.token);
    let dir = tempfile::tempdir().unwrap();
    let photo_path = dir.path().join("photo.png");
    let photo = funmagic_api::testing::sample_png(640, 480);
    std::fs::write(&photo_path, &photo).unwrap();
    let uploaded = funmagic_sdk::files::upload_file(&as_ada, &photo_path, None, |_, _| {}).await.unwrap();
    let state = app.state();
    let model = funmagic_api::assets::store_output(
        state,
        ada.id,
        None,
        "3d-gen",
        "m.glb",
        funmagic_api::assets::FileType::Glb,
        b"glTF\x02\0\0\0".to_vec().into(),
    )
    .await
    .unwrap();
    let output = funmagic_api::assets::store_output(
        state,
        ada.id,
        None,
        "image-gen",
        "out.png",
        funmagic_api::assets::FileType::Png,
        funmagic_api::testing::sample_png(100, 300).into(),
    )
    .await
    .unwrap();

    let list = as_ada.asset_list(None, None, None).await.unwrap().into_inner().assets;
    assert_eq!(list.len(), 3);
    for a in &list {
        let url = a.download_url.as_deref().expect("every item has its download URL");
        let bytes = reqwest::get(url).await.unwrap().bytes().await.unwrap();
        assert_eq!(bytes.len() as i64, a.size, "{}", a.storage_key);
    }
    let thumb = |id: uuid::Uuid| list.iter().find(|a| a.id == id).unwrap().thumbnail_url.clone();
    assert_eq!(thumb(model.id), None, "models have no thumbnail");
    for (id, want) in [(uploaded.id, (256, 192)), (output.id, (85, 256))] {
        let url = thumb(id).expect("images have a thumbnail");
        let bytes = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!((img.width(), img.height()), want);
    }
    assert!(as_ada.asset_get(&uploaded.id).await.unwrap().into_inner().thumbnail_url.is_some());

    let key = state.store().asset_get(uploaded.id).await.unwrap().unwrap().thumbnail_key.unwrap();
    as_ada.asset_delete(&uploaded.id).await.unwrap();
    let bucket = funmagic_api::storage::Bucket::Private;
    assert!(state.storage().head(bucket, &key).await.unwrap().is_none(), "the thumbnail went with it");
}
