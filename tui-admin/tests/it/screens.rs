//! Every screen, drawn into a `TestBackend` from the state the real server gave the app.
//! `UPDATE_SNAPSHOTS=1` rewrites `tests/snapshots/*.txt`.

use std::time::Duration;

use funmagic_admin::app::{App, Key};
use funmagic_admin::io::{self, Request};
use funmagic_api::store::Role;
use funmagic_api::testing::{TestApp, TestBackend};
use funmagic_sdk::types;
use ratatui::Terminal;
use ratatui::backend::TestBackend as Backend;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::user;

/// Runs every request the app sent (and those its answers trigger) until it is idle.
async fn settle(app: &mut App, requests: &mut UnboundedReceiver<Request>, client: &funmagic_sdk::Client) {
    while let Ok(request) = requests.try_recv() {
        let response = io::execute(client, request).await;
        app.on_response(response);
    }
    assert_eq!(app.shell.pending, 0, "every request was answered");
}

fn render(app: &App, width: u16, height: u16) -> Terminal<Backend> {
    let mut terminal = Terminal::new(Backend::new(width, height)).unwrap();
    terminal.draw(|f| funmagic_admin::ui::draw(f, app)).unwrap();
    terminal
}

fn text(terminal: &Terminal<Backend>) -> String {
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buffer.area.height {
        let mut line = String::new();
        for x in 0..buffer.area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Masks what changes from run to run: the server's port, short ids, dates and times.
fn normalize(frame: &str, api_url: &str) -> String {
    let frame = frame.replace(api_url, "http://API");
    let chars: Vec<char> = frame.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let is_hex = |c: char| c.is_ascii_hexdigit() && !c.is_ascii_uppercase();
    while i < chars.len() {
        let boundary = i == 0 || !chars[i - 1].is_alphanumeric();
        // 8 lowercase hex digits (a short id) with at least one digit.
        if boundary
            && i + 8 <= chars.len()
            && chars[i..i + 8].iter().all(|c| is_hex(*c))
            && chars[i..i + 8].iter().any(char::is_ascii_digit)
            && chars.get(i + 8).is_none_or(|c| !c.is_alphanumeric())
        {
            out.push_str("########");
            i += 8;
            continue;
        }
        // MM-DD HH:MM and YYYY-MM-DD.
        let pattern = |p: &str| {
            i + p.len() <= chars.len()
                && p.chars()
                    .zip(&chars[i..i + p.len()])
                    .all(|(pc, c)| if pc == 'd' { c.is_ascii_digit() } else { pc == *c })
        };
        if boundary && pattern("dd-dd dd:dd") {
            out.push_str("MM-DD hh:mm");
            i += 11;
            continue;
        }
        if boundary && pattern("dddd-dd-dd") {
            out.push_str("YYYY-MM-DD");
            i += 10;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn snapshot(name: &str, frame: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, frame).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run with UPDATE_SNAPSHOTS=1", path.display()));
    assert_eq!(frame, expected, "screen {name} changed; if intended, run with UPDATE_SNAPSHOTS=1\n{frame}");
}

async fn wait_ended(client: &funmagic_sdk::Client, id: uuid::Uuid) {
    for _ in 0..600 {
        let t = client.task_get(&id).await.unwrap().into_inner().task;
        if matches!(t.status, types::TaskStatus::Completed | types::TaskStatus::Failed | types::TaskStatus::Cancelled) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("task {id} did not end");
}

/// Seeds users, tasks (completed and failed), a provider, packages and banners.
async fn seeded() -> (TestApp, String, String) {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let (_, root) = user(&app, "root@example.com", Role::SuperAdmin, 0).await;
    let (_, ada) = user(&app, "ada@example.com", Role::User, 100).await;
    user(&app, "bob@example.com", Role::User, 5).await;
    let (_, ops) = user(&app, "ops@example.com", Role::Admin, 0).await;
    let as_ada = funmagic_sdk::ClientBuilder::new(app.base_url()).token(&ada).build().unwrap();
    for (tool, input) in [
        ("echo", serde_json::json!({"n": 1})),
        ("echo", serde_json::json!({"n": 2})),
        ("background-remove", serde_json::json!({"imageStorageKey": "nobody/uploads/missing.png"})),
    ] {
        let req = types::TaskCreateRequest {
            tool_slug: tool.parse().unwrap(),
            step_id: None,
            input,
            parent_task_id: None,
            run_all_steps: None,
            webhook: None,
        };
        let t = as_ada.task_create(None, &req).await.unwrap().into_inner().task;
        wait_ended(&as_ada, t.id).await;
    }
    let as_root = funmagic_sdk::ClientBuilder::new(app.base_url()).token(&root).build().unwrap();
    as_root
        .admin_provider_create(&types::ProviderCreate {
            name: "openai-main".parse().unwrap(),
            type_: types::ExternalProviderType::Openai,
            api_key: Some("sk-test-key-1234".parse().unwrap()),
            base_url: Some("http://127.0.0.1:9/v1".parse().unwrap()),
            is_active: None,
        })
        .await
        .unwrap();
    for (name, credits, price) in [("Starter", 100, 500), ("Pro", 1000, 4000)] {
        as_root
            .admin_credit_package_create(&types::PackageInput {
                name: name.parse().unwrap(),
                credits: std::num::NonZeroU64::new(credits).unwrap(),
                price,
                currency: None,
                stripe_price_id: None,
                is_active: None,
                sort_order: None,
            })
            .await
            .unwrap();
    }
    for (title, kind) in [("Try FigMe", "main"), ("Crystal week", "main"), ("Buy credits", "side")] {
        as_root
            .admin_banner_create(&types::BannerInput {
                title: title.parse().unwrap(),
                description: None,
                thumbnail: None,
                link: None,
                link_text: None,
                link_target: None,
                type_: Some(kind.parse().unwrap()),
                position: None,
                badge: None,
                badge_color: None,
                is_active: None,
                starts_at: None,
                ends_at: None,
            })
            .await
            .unwrap();
    }
    (app, root, ops)
}

async fn console(app: &TestApp, token: &str) -> (App, UnboundedReceiver<Request>, funmagic_sdk::Client) {
    let client = funmagic_sdk::ClientBuilder::new(app.base_url()).token(token).build().unwrap();
    let me = client.auth_session_get().await.unwrap().into_inner().user;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut console = App::new(me, app.base_url(), tx, false);
    console.refresh();
    (console, rx, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_screen() {
    let (app, root, ops) = seeded().await;
    let url = app.base_url();
    let (mut c, mut rx, client) = console(&app, &root).await;
    settle(&mut c, &mut rx, &client).await;
    let mut frames = vec![];
    frames.push(("dashboard", text(&render(&c, 100, 30))));

    // Users: search, then the details of the one found.
    c.on_key(Key::Char('2'));
    settle(&mut c, &mut rx, &client).await;
    frames.push(("users", text(&render(&c, 100, 30))));
    c.on_key(Key::Char('/'));
    for ch in "ada".chars() {
        c.on_key(Key::Char(ch));
    }
    c.on_key(Key::Enter);
    settle(&mut c, &mut rx, &client).await;
    assert_eq!(c.users.list.len(), 1);
    c.on_key(Key::Enter);
    settle(&mut c, &mut rx, &client).await;
    frames.push(("users_detail", text(&render(&c, 100, 30))));
    // Adjusting credits: a form, then a confirmation showing before → after.
    c.on_key(Key::Char('c'));
    for ch in "25".chars() {
        c.on_key(Key::Char(ch));
    }
    c.on_key(Key::Tab);
    for ch in "goodwill".chars() {
        c.on_key(Key::Char(ch));
    }
    frames.push(("users_adjust_form", text(&render(&c, 100, 30))));
    c.on_key(Key::Enter);
    frames.push(("users_adjust_confirm", text(&render(&c, 100, 30))));
    c.on_key(Key::Char('y'));
    settle(&mut c, &mut rx, &client).await;
    assert_eq!(c.users.detail.as_ref().unwrap().credits.balance, 100 - 2 + 25, "2 echo tasks paid, then +25");

    // Tasks: the list (newest first), a failed one's details.
    c.on_key(Key::Char('3'));
    settle(&mut c, &mut rx, &client).await;
    frames.push(("tasks", text(&render(&c, 100, 30))));
    c.on_key(Key::Char('f'));
    settle(&mut c, &mut rx, &client).await;
    for _ in 0..3 {
        c.on_key(Key::Char('f'));
        settle(&mut c, &mut rx, &client).await;
    }
    assert_eq!(c.tasks.status, Some(funmagic_sdk::types::TaskStatus::Failed));
    c.on_key(Key::Enter);
    settle(&mut c, &mut rx, &client).await;
    frames.push(("tasks_failed_detail", text(&render(&c, 100, 30))));
    // The dead letters, and back.
    c.on_key(Key::Char('D'));
    settle(&mut c, &mut rx, &client).await;
    assert!(c.tasks.dead.is_some());
    frames.push(("tasks_dead_letters", text(&render(&c, 100, 30))));
    c.on_key(Key::Char('D'));
    settle(&mut c, &mut rx, &client).await;
    assert!(c.tasks.dead.is_none());

    // Tools, with an edit the server refuses shown inline.
    c.on_key(Key::Char('4'));
    settle(&mut c, &mut rx, &client).await;
    frames.push(("tools", text(&render(&c, 100, 30))));
    let echo = c.tools.list.iter().find(|t| t.slug == "echo").unwrap().clone();
    let mut bad = echo.config.clone().unwrap();
    bad["steps"][0]["type"] = "teleport".into();
    c.on_tool_edited(Some(echo.id), &bad.to_string());
    settle(&mut c, &mut rx, &client).await;
    assert!(c.tools.invalid.is_some());
    frames.push(("tools_invalid", text(&render(&c, 100, 30))));
    c.on_tool_edited(Some(echo.id), "{ not json");
    assert!(c.shell.status.as_ref().unwrap().1.starts_with("INVALID_JSON"));
    // A new tool type from the form, then a new tool written from the template.
    c.on_key(Key::Char('T'));
    for ch in "audio".chars() {
        c.on_key(Key::Char(ch));
    }
    c.on_key(Key::Tab);
    for ch in "Audio".chars() {
        c.on_key(Key::Char(ch));
    }
    c.on_key(Key::Tab);
    c.on_key(Key::Enter);
    settle(&mut c, &mut rx, &client).await;
    assert!(c.tools.types.iter().any(|t| t.name == "audio"), "{:?}", c.shell.status);
    let template = c.tools.template();
    c.on_tool_edited(None, "{ \"slug\": 1 }");
    assert!(c.shell.status.as_ref().unwrap().1.starts_with("INVALID_TOOL"), "{:?}", c.shell.status);
    assert_eq!(c.tools.draft.as_deref(), Some("{ \"slug\": 1 }"), "the draft is kept to fix");
    c.on_tool_edited(None, &template.replace("my-tool", "console-made"));
    settle(&mut c, &mut rx, &client).await;
    let made = c.tools.list.iter().find(|t| t.slug == "console-made").expect("the new tool is listed");
    assert!(!made.is_active, "a new tool starts off");
    frames.push(("tools_new", text(&render(&c, 100, 30))));

    // Providers, Packages & Banners.
    c.on_key(Key::Char('5'));
    settle(&mut c, &mut rx, &client).await;
    frames.push(("providers", text(&render(&c, 100, 30))));
    c.on_key(Key::Down);
    c.on_key(Key::Char('R'));
    for ch in "sk-new-secret-9876".chars() {
        c.on_key(Key::Char(ch));
    }
    let masked = text(&render(&c, 100, 30));
    assert!(!masked.contains("sk-new") && masked.contains("••••••••"), "the key is masked while typed");
    c.on_key(Key::Enter);
    settle(&mut c, &mut rx, &client).await;
    let openai = c.providers.list.iter().find(|p| p.name == "openai-main").unwrap();
    assert_eq!(openai.key_last4.as_deref(), Some("9876"), "{:?}", c.shell.status);
    c.on_key(Key::Char('6'));
    settle(&mut c, &mut rx, &client).await;
    // Edit a package (a prefilled form), then move it below the next one.
    c.on_key(Key::Char('e'));
    c.on_key(Key::Tab);
    for _ in 0..3 {
        c.on_key(Key::Backspace);
    }
    for ch in "150".chars() {
        c.on_key(Key::Char(ch));
    }
    c.on_key(Key::Tab);
    c.on_key(Key::Tab);
    c.on_key(Key::Enter);
    settle(&mut c, &mut rx, &client).await;
    assert_eq!(c.content.packages.iter().find(|p| p.name == "Starter").unwrap().credits, 150, "{:?}", c.shell.status);
    c.on_key(Key::Char('J'));
    settle(&mut c, &mut rx, &client).await;
    let names: Vec<&str> = c.content.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Pro", "Starter"], "{:?}", c.shell.status);
    // Banners: move the first main one down, edit the side one's title.
    c.on_key(Key::Char('b'));
    c.on_key(Key::Char('J'));
    settle(&mut c, &mut rx, &client).await;
    c.on_key(Key::Down);
    c.on_key(Key::Char('e'));
    for _ in 0.."Buy credits".len() {
        c.on_key(Key::Backspace);
    }
    for ch in "Top up".chars() {
        c.on_key(Key::Char(ch));
    }
    for _ in 0..4 {
        c.on_key(Key::Tab);
    }
    c.on_key(Key::Enter);
    settle(&mut c, &mut rx, &client).await;
    assert!(
        c.content.banners.iter().any(|b| b.title == "Top up" && b.type_ == types::BannerType::Side),
        "{:?}",
        c.shell.status
    );
    frames.push(("content", text(&render(&c, 100, 30))));
    c.on_key(Key::Char('?'));
    frames.push(("help", text(&render(&c, 100, 30))));
    c.on_key(Key::Char('x'));

    for (name, frame) in &frames {
        snapshot(name, &normalize(frame, &url));
    }

    // Every screen fits 80×24 without panicking, and NO_COLOR draws no colour.
    for k in ['1', '2', '3', '4', '5', '6'] {
        c.on_key(Key::Char(k));
        settle(&mut c, &mut rx, &client).await;
        let small = render(&c, 80, 24);
        let buffer = small.backend().buffer();
        assert!(
            buffer
                .content()
                .iter()
                .all(|cell| cell.fg == ratatui::style::Color::Reset && cell.bg == ratatui::style::Color::Reset)
        );
        render(&c, 20, 6);
    }

    // An admin (not super): providers are not shown; an API error lands in the status line.
    let (mut o, mut orx, oclient) = console(&app, &ops).await;
    settle(&mut o, &mut orx, &oclient).await;
    o.on_key(Key::Char('5'));
    settle(&mut o, &mut orx, &oclient).await;
    assert!(text(&render(&o, 100, 30)).contains("for super admins"));
    o.on_key(Key::Char('2'));
    settle(&mut o, &mut orx, &oclient).await;
    let root_row = o.users.list.iter().position(|u| u.email == "root@example.com").unwrap();
    o.users.selected = root_row;
    o.on_key(Key::Char('o'));
    assert!(o.shell.status.as_ref().unwrap().1.starts_with("FORBIDDEN"));
    o.on_key(Key::Char('b'));
    o.on_key(Key::Char('y'));
    settle(&mut o, &mut orx, &oclient).await;
    let (level, status) = o.shell.status.clone().unwrap();
    assert_eq!(level, funmagic_admin::app::Level::Error, "{status}");
    assert!(status.contains(": ") && status.ends_with(')'), "the code and the message: {status}");
}
