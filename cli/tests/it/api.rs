//! `funmagic api`, `--jq`, and the admin commands, on both backends.

use funmagic_api::store::Role;
use funmagic_api::testing::{TempDir, TestApp};

use crate::{funmagic, stderr, stdout};

/// Runs `funmagic --api-url URL --token TOKEN ARGS`.
async fn as_user(app: &TestApp, cfg: &TempDir, token: &str, args: &[&str]) -> std::process::Output {
    let url = app.base_url();
    let mut all = vec!["--api-url", url.as_str(), "--token", token];
    all.extend_from_slice(args);
    funmagic(cfg, &all).await
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "exit {:?}\nstdout: {}\nstderr: {}", out.status.code(), stdout(out), stderr(out));
    stdout(out)
}

async fn api_calls_any_route_with_the_stored_credentials(app: TestApp) {
    let cfg = TempDir::new("cli-api");
    let user = crate::signed_in(&app, "api-user@example.com", Role::User, 20).await;
    let out = as_user(&app, &cfg, &user, &["api", "GET", "/api/tools", "--jq", ".tools[].slug"]).await;
    let slugs = ok(&out);
    assert!(slugs.lines().any(|l| l == "figme") && slugs.lines().any(|l| l == "echo"), "{slugs}");

    // Typed fields build the body; three tasks, then every page of one item each.
    for i in 0..3 {
        let input = format!("input={{\"n\": {i}}}");
        let out = as_user(
            &app,
            &cfg,
            &user,
            &[
                "api",
                "POST",
                "/api/tasks",
                "-f",
                "toolSlug=echo",
                "-F",
                &input,
                "-F",
                "runAllSteps=true",
                "--jq",
                ".task.status",
            ],
        )
        .await;
        let status = ok(&out);
        assert!(["queued", "running", "completed"].contains(&status.trim()), "{status}");
    }
    let out =
        as_user(&app, &cfg, &user, &["api", "GET", "/api/tasks", "-f", "limit=1", "--paginate", "--jq", ".tasks[].id"])
            .await;
    let ids = ok(&out);
    assert_eq!(ids.lines().count(), 3, "every page, one id each: {ids}");
    let out =
        as_user(&app, &cfg, &user, &["api", "GET", "/api/tasks", "-f", "limit=1", "--jq", ".tasks | length"]).await;
    assert_eq!(ok(&out).trim(), "1", "without --paginate: the first page");

    // A refused call: the API's JSON on stdout, the error on stderr, the documented exit code.
    let out = as_user(&app, &cfg, &user, &["api", "GET", "/api/admin/users"]).await;
    assert_eq!(out.status.code(), Some(4), "403 is an auth problem");
    let body: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(body["code"], "FORBIDDEN", "{body}");
    assert!(stderr(&out).contains("error:"));
    let out = as_user(&app, &cfg, &user, &["api", "GET", "/api/no-such-thing"]).await;
    assert_eq!(out.status.code(), Some(2));
    let out = as_user(&app, &cfg, &user, &["api", "GET", "no-slash"]).await;
    assert_eq!(out.status.code(), Some(2));

    // --jq on any command's JSON; a bad program is a usage error before any call.
    let out = as_user(&app, &cfg, &user, &["tools", "list", "--jq", ".tools | length"]).await;
    assert_eq!(ok(&out).trim(), "4");
    let out = as_user(&app, &cfg, &user, &["credits", "--jq", ".available"]).await;
    assert_eq!(ok(&out).trim(), "17", "20 granted, 3 spent");
    let out = as_user(&app, &cfg, &user, &["tools", "list", "--jq", ".tools["]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--jq"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

async fn admins_run_the_console_s_operations_from_the_cli(app: TestApp) {
    let cfg = TempDir::new("cli-admin");
    let root = crate::signed_in(&app, "root@example.com", Role::SuperAdmin, 0).await;
    let _ada = crate::signed_in(&app, "ada-admin-cli@example.com", Role::User, 40).await;
    let run = |args: Vec<&'static str>| {
        let (app, cfg, root) = (&app, &cfg, root.clone());
        async move { as_user(app, cfg, &root, &args).await }
    };
    let emails = ok(&run(vec!["admin", "users", "list", "--jq", ".users[].email"]).await);
    assert!(emails.contains("ada-admin-cli@example.com"), "{emails}");
    let table = ok(&run(vec!["admin", "users", "list", "--query", "ada-admin"]).await);
    assert!(table.contains("ada-admin-cli@example.com") && table.contains('…'), "short ids in tables: {table}");

    let banned =
        ok(&run(vec!["admin", "users", "ban", "ada-admin-cli@example.com", "--reason", "spam", "--json"]).await);
    assert!(banned.contains("\"banned\": true"), "{banned}");
    ok(&run(vec!["admin", "users", "unban", "ada-admin-cli@example.com"]).await);
    let role = ok(&run(vec!["admin", "users", "role", "ada-admin-cli@example.com", "admin", "--jq", ".role"]).await);
    assert_eq!(role.trim(), "admin");
    let credits = ok(&run(vec!["admin", "users", "credits", "ada-admin-cli@example.com", "--jq", ".available"]).await);
    assert_eq!(credits.trim(), "40");
    let history =
        ok(&run(vec!["admin", "users", "transactions", "ada-admin-cli@example.com", "--jq", ".transactions | length"])
            .await);
    assert_eq!(history.trim(), "1");
    let out = run(vec!["admin", "users", "rm", "ada-admin-cli@example.com"]).await;
    assert_eq!(out.status.code(), Some(2), "deletion needs --yes");

    // Tool types, tools, packages.
    ok(&run(vec!["admin", "tool-types", "create", "audio", "--display-name", "Audio", "--color", "#10b981"]).await);
    let names = ok(&run(vec!["admin", "tool-types", "list", "--jq", ".toolTypes[].name"]).await);
    assert!(names.lines().any(|l| l == "audio"), "{names}");
    ok(&run(vec!["admin", "tool-types", "rm", "audio"]).await);
    let off = ok(&run(vec!["admin", "tools", "disable", "echo", "--jq", ".isActive"]).await);
    assert_eq!(off.trim(), "false");
    let public = ok(&run(vec!["tools", "list", "--jq", "[.tools[].slug] | index(\"echo\")"]).await);
    assert_eq!(public.trim(), "null", "a disabled tool leaves the catalogue");
    ok(&run(vec!["admin", "tools", "enable", "echo"]).await);
    let package = ok(&run(vec![
        "admin",
        "packages",
        "create",
        "--name",
        "Starter",
        "--credits",
        "100",
        "--price",
        "500",
        "--jq",
        ".name",
    ])
    .await);
    assert_eq!(package.trim(), "Starter");
    let on_sale = ok(&run(vec!["credits", "packages", "--jq", ".packages[].name"]).await);
    assert!(on_sale.contains("Starter"), "{on_sale}");

    // Tasks, the queue, dead letters.
    let tasks = ok(&run(vec!["admin", "tasks", "list", "--jq", ".tasks | length"]).await);
    assert_eq!(tasks.trim(), "0");
    let queue = ok(&run(vec!["admin", "queue", "--jq", ".waiting"]).await);
    assert_eq!(queue.trim(), "0");
    let dead = ok(&run(vec!["admin", "dead-letters", "--jq", ".deadLetters | length"]).await);
    assert_eq!(dead.trim(), "0");
    // A plain user is refused, with the exit code for permission problems.
    let user = crate::signed_in(&app, "plain-cli@example.com", Role::User, 0).await;
    let out = as_user(&app, &cfg, &user, &["admin", "queue"]).await;
    assert_eq!(out.status.code(), Some(4));
}

funmagic_api::test_both_backends!(
    api_calls_any_route_with_the_stored_credentials,
    admins_run_the_console_s_operations_from_the_cli,
);
