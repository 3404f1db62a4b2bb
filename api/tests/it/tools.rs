//! The tool catalogue: defaults seeded on start, public listing, admin CRUD with config
//! validation, disabling.

use funmagic_api::store::Role;
use funmagic_api::testing::TestApp;
use funmagic_sdk::types;

use crate::{actor, client, client_as, err_code, raw_json};

funmagic_api::test_both_backends!(default_tools_are_listed, admins_manage_tools_with_validation);

async fn default_tools_are_listed(app: TestApp) {
    let list = client(&app).tool_list().await.unwrap().into_inner();
    let slugs: Vec<&str> = list.tools.iter().map(|t| t.slug.as_str()).collect();
    assert_eq!(slugs, ["background-remove", "crystal-memory", "echo", "figme"]);
    let figme = client(&app).tool_get(&"figme".parse().unwrap()).await.unwrap().into_inner();
    assert_eq!(figme.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["image-gen", "3d-gen"]);
    assert_eq!(figme.credits_cost, 50);
    assert_eq!(figme.style_references.len(), 4);
    assert!(figme.config.is_none(), "provider ids are for admins");
    assert_eq!(figme.tool_type.unwrap().name, "3d");
    assert_eq!(err_code(client(&app).tool_get(&"nope".parse().unwrap()).await).0, 404);
    // Seeding again (a restart, another process) changes nothing.
    funmagic_api::tools::seed_defaults(app.state().store()).await.unwrap();
    assert_eq!(client(&app).tool_list().await.unwrap().into_inner().tools.len(), 4);
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
    assert_eq!(err_code(client(&app).tool_get(&"echo-twice".parse().unwrap()).await).0, 404);
    assert!(!client(&app).tool_list().await.unwrap().into_inner().tools.iter().any(|t| t.slug == "echo-twice"));
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
