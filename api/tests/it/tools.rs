//! The tool catalogue: defaults seeded on start, public listing, admin CRUD with config
//! validation, disabling.

use funmagic_api::store::Role;
use funmagic_api::testing::TestApp;
use funmagic_sdk::types;

use crate::{actor, client, client_as, err_code, raw_json};

funmagic_api::test_both_backends!(
    default_tools_are_listed,
    admins_manage_tools_with_validation,
    catalogue_in_languages_featured_and_cached,
);

async fn default_tools_are_listed(app: TestApp) {
    let list = client(&app).tool_list(None, None, None).await.unwrap().into_inner();
    let slugs: Vec<&str> = list.tools.iter().map(|t| t.slug.as_str()).collect();
    assert_eq!(slugs, ["figme", "background-remove", "crystal-memory", "echo"], "by position");
    let figme = client(&app).tool_get(&"figme".parse().unwrap(), None, None).await.unwrap().into_inner();
    assert_eq!(figme.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["image-gen", "3d-gen"]);
    assert_eq!(figme.credits_cost, 50);
    assert_eq!(figme.style_references.len(), 4);
    assert!(figme.config.is_none(), "provider ids are for admins");
    assert_eq!(figme.tool_type.unwrap().name, "3d");
    assert_eq!(err_code(client(&app).tool_get(&"nope".parse().unwrap(), None, None).await).0, 404);
    // Seeding again (a restart, another process) changes nothing.
    funmagic_api::tools::seed_defaults(app.state().store()).await.unwrap();
    assert_eq!(client(&app).tool_list(None, None, None).await.unwrap().into_inner().tools.len(), 4);
}

async fn admins_manage_tools_with_validation(app: TestApp) {
    let admin = actor(&app, "admin@example.com", Role::Admin).await;
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let as_admin = client_as(&app, &admin.token);
    let all = as_admin.admin_tool_list().await.unwrap().into_inner();
    let echo = all.tools.iter().find(|t| t.slug == "echo").unwrap().clone();
    let config = echo.config.clone().unwrap();
    let types = as_admin.admin_tool_type_list().await.unwrap().into_inner();
    let utility = types.tool_types.iter().find(|t| t.name == "utility").unwrap().id;
    let input = |slug: &str, config: serde_json::Value, active: bool| types::ToolInput {
        slug: slug.parse().unwrap(),
        title: "Echo twice".parse().unwrap(),
        description: None,
        tool_type_id: utility,
        config,
        is_active: Some(active),
        featured: None,
        position: None,
    };
    let mut two = config.clone();
    let mut second = two["steps"][0].clone();
    second["id"] = "echo-2".into();
    second["cost"] = 4.into();
    two["steps"].as_array_mut().unwrap().push(second);
    let created = as_admin.admin_tool_create(&input("echo-twice", two.clone(), true)).await.unwrap().into_inner();
    assert_eq!(created.credits_cost, 5, "the cost is the sum of the steps");
    assert_eq!(
        err_code(as_admin.admin_tool_create(&input("echo-twice", two.clone(), true)).await),
        (409, "SLUG_TAKEN".into())
    );

    let mut bad_model = config.clone();
    bad_model["steps"][0]["providerModel"] = "gpt-image-1".into();
    let (status, code) = err_code(as_admin.admin_tool_create(&input("bad", bad_model, true)).await);
    assert_eq!((status, code.as_str()), (422, "INVALID_TOOL_CONFIG"));
    let mut bad_type = config.clone();
    bad_type["steps"][0]["type"] = "teleport".into();
    assert_eq!(err_code(as_admin.admin_tool_create(&input("bad", bad_type, true)).await).0, 422);
    let mut bad_slug = serde_json::to_value(input("ok", config.clone(), true)).unwrap();
    bad_slug["slug"] = "Bad Slug".into();
    let got = raw_json(&app, Some(&admin.token), reqwest::Method::POST, "/api/admin/tools", bad_slug).await;
    assert_eq!(got, (422, "VALIDATION_FAILED".into()), "the spec's slug pattern");

    // Disabling hides the tool from users (404) but not from admins.
    as_admin.admin_tool_update(&created.id, &input("echo-twice", two, false)).await.unwrap();
    assert_eq!(err_code(client(&app).tool_get(&"echo-twice".parse().unwrap(), None, None).await).0, 404);
    assert!(
        !client(&app)
            .tool_list(None, None, None)
            .await
            .unwrap()
            .into_inner()
            .tools
            .iter()
            .any(|t| t.slug == "echo-twice")
    );
    assert!(as_admin.admin_tool_list().await.unwrap().into_inner().tools.iter().any(|t| t.slug == "echo-twice"));
    assert_eq!(err_code(client_as(&app, &ada.token).admin_tool_list().await).0, 403);
    as_admin.admin_tool_delete(&created.id).await.unwrap();
    assert_eq!(err_code(as_admin.admin_tool_delete(&created.id).await).0, 404);

    // Tool types: a type in use cannot be deleted.
    assert_eq!(err_code(as_admin.admin_tool_type_delete(&utility).await), (409, "IN_USE".into()));
    let t = as_admin
        .admin_tool_type_create(&types::ToolTypeInput {
            name: "video".parse().unwrap(),
            display_name: "Video".parse().unwrap(),
            icon: None,
            color: None,
            description: None,
        })
        .await
        .unwrap()
        .into_inner();
    // Tool types can be updated: the id and creation time stay, the fields change.
    let edit = |name: &str| types::ToolTypeInput {
        name: name.parse().unwrap(),
        display_name: "Video & film".parse().unwrap(),
        icon: Some("film".parse().unwrap()),
        color: None,
        description: Some("Moving pictures".parse().unwrap()),
    };
    let updated = as_admin.admin_tool_type_update(&t.id, &edit("video-film")).await.unwrap().into_inner();
    assert_eq!(updated.id, t.id);
    assert_eq!((updated.name.as_str(), updated.display_name.as_str()), ("video-film", "Video & film"));
    let listed = as_admin.admin_tool_type_list().await.unwrap().into_inner().tool_types;
    assert!(listed.iter().any(|x| x.id == t.id && x.name.as_str() == "video-film"));
    let utility_name = listed.iter().find(|x| x.id == utility).unwrap().name.to_string();
    assert_eq!(err_code(as_admin.admin_tool_type_update(&t.id, &edit(&utility_name)).await).0, 409, "names are unique");
    assert_eq!(err_code(as_admin.admin_tool_type_update(&uuid::Uuid::now_v7(), &edit("x")).await).0, 404);
    assert_eq!(err_code(client_as(&app, &ada.token).admin_tool_type_update(&t.id, &edit("y")).await).0, 403);
    as_admin.admin_tool_type_delete(&t.id).await.unwrap();
}

/// Tools answer in the language asked for (`?locale=`, else `Accept-Language`), English
/// where a tool has none; featured tools come alone with `?featured=true`; the catalogue is
/// cached by ETag and an admin's change shows at once.
async fn catalogue_in_languages_featured_and_cached(app: TestApp) {
    let anon = client(&app);
    let figme = "figme".parse().unwrap();
    let zh: types::Line35 = "zh".parse().unwrap();
    let t = anon.tool_get(&figme, Some(&zh), None).await.unwrap().into_inner();
    assert_eq!((t.locale.as_str(), t.title.as_str()), ("zh", "FigMe 手办"));
    assert_eq!(t.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["图像生成", "3D 生成"]);
    assert_eq!(t.style_references[0].name, "素描");
    assert_eq!(t.style_references[0].prompt, "Transform into a pencil sketch", "prompts stay as written");
    for (accept, want) in [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("zh-TW", "zh"),
        ("fr-FR, en;q=0.5", "en"),
        ("en, zh", "en"),
        ("en;q=0.1, zh;q=0.9", "zh"),
        ("zh;q=0, fr", "en"),
        ("*", "en"),
    ] {
        let t = anon.tool_get(&figme, None, Some(accept)).await.unwrap().into_inner();
        assert_eq!(t.locale, want, "Accept-Language: {accept}");
    }
    let en: types::Line35 = "en".parse().unwrap();
    assert_eq!(anon.tool_get(&figme, Some(&en), Some("zh")).await.unwrap().into_inner().title, "FigMe", "?locale wins");
    let list = anon.tool_list(None, Some(&zh), None).await.unwrap().into_inner().tools;
    let echo = list.iter().find(|t| t.slug == "echo").unwrap();
    assert_eq!((echo.locale.as_str(), echo.title.as_str()), ("en", "Echo"), "no translation: English");
    assert_eq!(list.iter().find(|t| t.slug == "figme").unwrap().locale, "zh");

    let featured = anon.tool_list(Some(true), None, None).await.unwrap().into_inner().tools;
    assert_eq!(featured.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(), ["figme", "background-remove"]);

    // Conditional GETs: 304 while nothing changed, a new tag after an admin's change.
    let http = reqwest::Client::new();
    let url = format!("{}/api/tools", app.base_url());
    let first = http.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(first.headers()["cache-control"], "public, no-cache");
    let vary: Vec<&str> = first.headers().get_all("vary").iter().map(|v| v.to_str().unwrap()).collect();
    assert!(vary.iter().any(|v| v.contains("Accept-Language")), "{vary:?}");
    let head = http.head(&url).send().await.unwrap();
    assert_eq!(
        (head.status().as_u16(), head.headers()["etag"].to_str().unwrap()),
        (200, etag.as_str()),
        "HEAD: the GET's tag"
    );
    let again = http.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.bytes().await.unwrap().is_empty());
    let other = http.get(&url).header("accept-language", "zh").header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(other.status(), 200, "another language is another answer");
    let signed = http.get(&url).bearer_auth("fm_not_a_token").send().await.unwrap();
    assert_ne!(signed.headers().get("cache-control").map(|v| v.to_str().unwrap()), Some("public, no-cache"));
    for path in ["/api/banners", "/api/credits/packages", "/api/tools/figme"] {
        let r = http.get(format!("{}{path}", app.base_url())).send().await.unwrap();
        let tag = r.headers()["etag"].to_str().unwrap().to_string();
        let r = http.get(format!("{}{path}", app.base_url())).header("if-none-match", tag).send().await.unwrap();
        assert_eq!(r.status(), 304, "{path}");
    }

    let admin = actor(&app, "admin@example.com", Role::Admin).await;
    let as_admin = client_as(&app, &admin.token);
    let echo =
        as_admin.admin_tool_list().await.unwrap().into_inner().tools.into_iter().find(|t| t.slug == "echo").unwrap();
    let mut config = echo.config.clone().unwrap();
    config["translations"] = serde_json::json!({ "pt-BR": { "title": "Eco", "steps": { "echo": "Eco" } } });
    let update = |config: serde_json::Value| types::ToolInput {
        slug: "echo".parse().unwrap(),
        title: "Echo".parse().unwrap(),
        description: None,
        tool_type_id: echo.tool_type.as_ref().unwrap().id,
        config,
        is_active: Some(true),
        featured: Some(true),
        position: Some(1),
    };
    as_admin.admin_tool_update(&echo.id, &update(config.clone())).await.unwrap();
    let changed = http.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(changed.status(), 200, "an admin's change shows at once");
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    let featured = anon.tool_list(Some(true), None, None).await.unwrap().into_inner().tools;
    assert_eq!(featured.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(), ["echo", "figme", "background-remove"]);
    let pt = anon.tool_list(None, None, Some("pt")).await.unwrap().into_inner().tools;
    assert_eq!((pt[0].title.as_str(), pt[0].steps[0].name.as_str(), pt[0].locale.as_str()), ("Eco", "Eco", "pt-BR"));

    // A style's preview may be an admin-bucket upload, shown through an expiring URL.
    let figme_admin =
        as_admin.admin_tool_list().await.unwrap().into_inner().tools.into_iter().find(|t| t.slug == "figme").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sketch.png");
    let preview = funmagic_api::testing::sample_png(20, 20);
    std::fs::write(&path, &preview).unwrap();
    let upload = funmagic_sdk::files::upload_admin_file(&as_admin, &path, None, |_, _| {}).await.unwrap();
    let mut fig_config = figme_admin.config.clone().unwrap();
    fig_config["styleReferences"][0]["imageKey"] = upload.storage_key.clone().into();
    let fig_input = |config: serde_json::Value| types::ToolInput {
        slug: "figme".parse().unwrap(),
        title: "FigMe".parse().unwrap(),
        description: None,
        tool_type_id: figme_admin.tool_type.as_ref().unwrap().id,
        config,
        is_active: Some(true),
        featured: Some(true),
        position: Some(10),
    };
    as_admin.admin_tool_update(&figme_admin.id, &fig_input(fig_config.clone())).await.unwrap();
    let shown = anon.tool_get(&figme, None, None).await.unwrap().into_inner();
    let url = shown.style_references[0].image_url.clone().unwrap_or_else(|| panic!("no preview: {shown:?}"));
    assert_eq!(reqwest::get(&url).await.unwrap().bytes().await.unwrap().to_vec(), preview);
    // The preview's signed URL stays the same for minutes (signed as of a 15-minute window's
    // start), so the answer that holds it still gets its 304 seconds later.
    let now = app.state().clock().now().timestamp();
    if now % 900 > 880 {
        app.advance_clock(std::time::Duration::from_secs(30)); // into the next window first
    }
    let fig_url = format!("{}/api/tools/figme", app.base_url());
    let tag = http.get(&fig_url).send().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    app.advance_clock(std::time::Duration::from_secs(5));
    let later = http.get(&fig_url).header("if-none-match", &tag).send().await.unwrap();
    assert_eq!(later.status(), 304, "a preview's URL must not change the tag every second");
    app.advance_clock(std::time::Duration::from_secs(900));
    let next_window = http.get(&fig_url).header("if-none-match", &tag).send().await.unwrap();
    assert_eq!(next_window.status(), 200, "a fresh URL in the next window");
    let fresh = anon.tool_get(&figme, None, None).await.unwrap().into_inner().style_references[0].image_url.clone();
    assert_eq!(reqwest::get(fresh.unwrap()).await.unwrap().bytes().await.unwrap().to_vec(), preview);
    let mut missing = fig_config.clone();
    missing["styleReferences"][0]["imageKey"] = "styles/not-uploaded.png".into();
    assert_eq!(err_code(as_admin.admin_tool_update(&figme_admin.id, &fig_input(missing)).await).0, 422);
    let mut both = fig_config.clone();
    both["styleReferences"][0]["imageUrl"] = "https://img.example/s.png".into();
    assert_eq!(err_code(as_admin.admin_tool_update(&figme_admin.id, &fig_input(both)).await).0, 422);

    // Translations are checked like the rest of the config.
    for bad in [
        serde_json::json!({ "zh": { "steps": { "nope": "x" } } }),
        serde_json::json!({ "zh": { "styles": { "nope": "x" } } }),
        serde_json::json!({ "en": { "title": "Echo" } }),
        serde_json::json!({ "not a tag": { "title": "x" } }),
        serde_json::json!({ "zh": { "title": "  " } }),
        serde_json::json!({ "zh": { "subtitle": "x" } }),
    ] {
        let mut c = config.clone();
        c["translations"] = bad.clone();
        let got = err_code(as_admin.admin_tool_update(&echo.id, &update(c)).await);
        assert_eq!(got, (422, "INVALID_TOOL_CONFIG".into()), "{bad}");
    }
}
