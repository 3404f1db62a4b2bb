//! Banners: the public list (active, inside the window, by position, per type), admin
//! CRUD, reorder (all of a type, once each), thumbnails from the admin bucket.

use funmagic_api::store::Role;
use funmagic_api::testing::TestApp;
use funmagic_sdk::types;

use crate::{actor, client, client_as, err_code, raw_json};

funmagic_api::test_both_backends!(banners_public_list_and_admin_crud);

fn input(title: &str, kind: &str) -> types::BannerInput {
    types::BannerInput {
        title: title.parse().unwrap(),
        description: None,
        thumbnail: None,
        link: Some("/tools/figme".parse().unwrap()),
        link_text: Some("Try it".parse().unwrap()),
        link_target: None,
        type_: Some(kind.parse().unwrap()),
        position: None,
        badge: None,
        badge_color: None,
        is_active: None,
        starts_at: None,
        ends_at: None,
    }
}

async fn banners_public_list_and_admin_crud(app: TestApp) {
    let admin = actor(&app, "admin@example.com", Role::Admin).await;
    let user = actor(&app, "user@example.com", Role::User).await;
    let as_admin = client_as(&app, &admin.token);
    let now = chrono::Utc::now();
    let a = as_admin.admin_banner_create(&input("A", "main")).await.unwrap().into_inner();
    let b = as_admin.admin_banner_create(&input("B", "main")).await.unwrap().into_inner();
    assert_eq!((a.position, b.position), (0, 1), "appended in order");
    let mut later = input("Later", "main");
    later.starts_at = Some(now + chrono::Duration::hours(1));
    as_admin.admin_banner_create(&later).await.unwrap();
    let mut over = input("Over", "main");
    over.starts_at = Some(now - chrono::Duration::hours(2));
    over.ends_at = Some(now - chrono::Duration::hours(1));
    as_admin.admin_banner_create(&over).await.unwrap();
    let mut off = input("Off", "main");
    off.is_active = Some(false);
    as_admin.admin_banner_create(&off).await.unwrap();
    let side = as_admin.admin_banner_create(&input("Side", "side")).await.unwrap().into_inner();

    // Anyone: only what is live now, by position, per type.
    let anon = client(&app);
    let titles = |l: types::BannerList| l.banners.into_iter().map(|b| b.title).collect::<Vec<_>>();
    assert_eq!(titles(anon.banner_list(Some(types::BannerType::Main)).await.unwrap().into_inner()), ["A", "B"]);
    assert_eq!(titles(anon.banner_list(Some(types::BannerType::Side)).await.unwrap().into_inner()), ["Side"]);
    // A type outside the spec's enum is refused as a bad parameter.
    let top = reqwest::get(format!("{}/api/banners?type=top", app.base_url())).await.unwrap();
    assert_eq!(top.status(), 400);
    assert_eq!(top.json::<serde_json::Value>().await.unwrap()["code"], "BAD_REQUEST");

    // Reorder: every main banner once, else 422.
    let all = as_admin.admin_banner_list().await.unwrap().into_inner();
    let mut mains: Vec<uuid::Uuid> =
        all.banners.iter().filter(|x| x.type_.to_string() == "main").map(|x| x.id).collect();
    assert_eq!(mains.len(), 5);
    assert_eq!(
        err_code(
            as_admin
                .admin_banner_reorder(&types::BannerReorder { type_: types::BannerType::Main, ids: vec![b.id, a.id] })
                .await
        )
        .0,
        422
    );
    mains.retain(|id| *id != a.id && *id != b.id);
    let order: Vec<uuid::Uuid> = [b.id, a.id].into_iter().chain(mains).collect();
    as_admin.admin_banner_reorder(&types::BannerReorder { type_: types::BannerType::Main, ids: order }).await.unwrap();
    assert_eq!(titles(anon.banner_list(Some(types::BannerType::Main)).await.unwrap().into_inner()), ["B", "A"]);

    // Validation: a window that ends before it starts; a thumbnail that is not ours.
    let mut bad = input("Bad", "main");
    bad.starts_at = Some(now);
    bad.ends_at = Some(now - chrono::Duration::minutes(1));
    assert_eq!(err_code(as_admin.admin_banner_create(&bad).await).0, 422);
    let mut bad = input("Bad", "main");
    bad.thumbnail = Some("someone/else.png".parse().unwrap());
    assert_eq!(err_code(as_admin.admin_banner_create(&bad).await), (422, "UNKNOWN_THUMBNAIL".into()));
    // Links that a browser would follow to another site are refused.
    for evil in ["/\\evil.example", "//evil.example", "/\t/evil.example", "javascript:alert(1)"] {
        let mut bad = serde_json::to_value(input("Bad", "main")).unwrap();
        bad["link"] = evil.into();
        let got = raw_json(&app, Some(&admin.token), reqwest::Method::POST, "/api/admin/banners", bad).await;
        assert_eq!(got.0, 422, "link {evil:?}");
    }

    // A thumbnail uploaded to the admin bucket is served through a download URL.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("thumb.png");
    std::fs::write(&path, funmagic_api::testing::sample_png(32, 16)).unwrap();
    let asset = funmagic_sdk::files::upload_admin_file(&as_admin, &path, None, |_, _| {}).await.unwrap();
    let mut with_thumb = input("Thumb", "side");
    with_thumb.thumbnail = Some(asset.storage_key.clone().parse().unwrap());
    let updated = as_admin.admin_banner_update(&side.id, &with_thumb).await.unwrap().into_inner();
    assert_eq!(updated.title, "Thumb");
    let shown = anon.banner_list(Some(types::BannerType::Side)).await.unwrap().into_inner().banners.remove(0);
    let url = shown.thumbnail_url.expect("a thumbnail URL");
    let bytes = funmagic_api::testing::fetch_public(&url).await.bytes().await.unwrap();
    assert_eq!(&bytes[1..4], b"PNG");

    // Users cannot write; deleting twice is 404.
    let as_user = client_as(&app, &user.token);
    assert_eq!(err_code(as_user.admin_banner_create(&input("X", "main")).await).0, 403);
    assert_eq!(err_code(as_user.admin_banner_list().await).0, 403);
    as_admin.admin_banner_delete(&a.id).await.unwrap();
    assert_eq!(err_code(as_admin.admin_banner_delete(&a.id).await).0, 404);
    assert_eq!(titles(anon.banner_list(Some(types::BannerType::Main)).await.unwrap().into_inner()), ["B"]);
}
