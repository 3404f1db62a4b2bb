//! The web UI: its pages over plain HTTP (headers, redirects, who sees what, languages, the
//! size budget), and whole journeys in a real browser — Debian's headless Chromium driven
//! over WebDriver (chromedriver) with fantoccini. Browser tests save screenshots under
//! `target/web-screenshots/` (always for the pages they visit; `FAILED-…` on a failure).
//! Outside CI a missing chromedriver is a skip with a message; in CI it is a failure
//! (`.ci/run` installs `chromium` and `chromium-driver`).

use std::time::Duration;

use fantoccini::{Client, Locator};
use funmagic_api::store::Role;
use funmagic_api::testing::{TestApp, TestBackend};
use serde_json::{Value, json};

use crate::{PASSWORD, actor, funded};

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn page(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    lang: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = http().get(format!("{}{path}", app.base_url())).header("accept", "text/html");
    if let Some(t) = token {
        req = req.header("cookie", format!("funmagic.session_token={t}"));
    }
    if let Some(l) = lang {
        req = req.header("accept-language", l);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

/// Every `<script>` of a page loads a file of ours or is a JSON data block (the CSP forbids
/// inline script), and no element carries an inline style or event handler.
fn assert_no_inline_code(html: &str) {
    for tag in html.split("<script").skip(1) {
        let open = tag.split('>').next().unwrap();
        assert!(
            open.contains("src=\"/static/") || open.contains("type=\"application/json\""),
            "inline script: <script{open}>"
        );
    }
    assert!(!html.contains(" style=\""), "an inline style attribute");
    assert!(!html.contains(" onclick=") && !html.contains(" onload="), "an inline event handler");
}

async fn pages_have_strict_headers_and_no_inline_code(app: TestApp) {
    let user = funded(&app, "web-headers@example.com", 40).await;
    for (path, token) in
        [("/", None), ("/sign-in", None), ("/tools/figme", Some(&user.token)), ("/account", Some(&user.token))]
    {
        let (status, headers, html) = page(&app, path, token.map(|t| t.as_str()), None).await;
        assert_eq!(status, 200, "{path}: {html}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self';") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(headers["x-frame-options"], "DENY");
        if token.is_some() {
            assert_eq!(headers["cache-control"], "no-store", "{path} shows the visitor's data");
            assert!(html.contains("40 credits"), "{path}: the header shows the balance");
        }
        assert!(html.starts_with("<!DOCTYPE html>"), "{path}");
        assert_no_inline_code(&html);
    }
    // Static files: the bundle's address is immutable; another hash is revalidated.
    let (_, _, html) = page(&app, "/", None, None).await;
    let css = html.split("href=\"/static/").nth(1).unwrap().split('"').next().unwrap();
    let resp =
        http().get(format!("{}/static/{css}", app.base_url())).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    let stale = http().get(format!("{}/static/000000000000/app.js", app.base_url())).send().await.unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.headers()["cache-control"], "no-cache");
    let missing = http().get(format!("{}/static/x/nope.js", app.base_url())).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

async fn signed_out_visitors_are_sent_to_sign_in_and_back(app: TestApp) {
    for path in ["/tasks", "/assets", "/credits", "/account", "/device?user_code=ABCD-EFGH"] {
        let (status, headers, _) = page(&app, path, None, None).await;
        assert_eq!(status, 303, "{path}");
        let to = headers["location"].to_str().unwrap();
        assert!(to.starts_with("/sign-in?next=/"), "{path} → {to}");
    }
    // After sign-in the form goes back to `next`, never to another site.
    let (_, _, html) = page(&app, "/sign-in?next=%2Ftasks", None, None).await;
    assert!(html.contains("data-then=\"go:/tasks\""), "{html}");
    for evil in ["//evil.example/x", "https://evil.example/", "/\\evil.example"] {
        let (_, _, html) = page(&app, &format!("/sign-in?next={}", urlencode(evil)), None, None).await;
        assert!(html.contains("data-then=\"go:/\""), "{evil} must not be a target");
    }
    // A signed-in visitor of the sign-in page goes straight on.
    let user = actor(&app, "web-back@example.com", Role::User).await;
    let (status, headers, _) = page(&app, "/sign-in?next=%2Fcredits", Some(&user.token), None).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/credits");
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

async fn no_one_sees_another_users_pages(app: TestApp) {
    let owner = funded(&app, "web-owner@example.com", 20).await;
    let other = funded(&app, "web-other@example.com", 20).await;
    let client = crate::client_as(&app, &owner.token);
    let task = client.task_create(None, &crate::echo(json!({"text": "mine"}))).await.unwrap().into_inner().task;
    let (status, _, html) = page(&app, &format!("/tasks/{}", task.id), Some(&owner.token), None).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("data-task=\"{}\"", task.id)));
    let (status, headers, html) = page(&app, &format!("/tasks/{}", task.id), Some(&other.token), None).await;
    assert_eq!(status, 404, "another user's task is a 404 page");
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(html.contains("not yours") && !html.contains(&format!("data-task=\"{}\"", task.id)));
    let (_, _, list) = page(&app, "/tasks", Some(&other.token), None).await;
    assert!(!list.contains(&task.id.to_string()), "the other user's history does not list it");
    let (_, _, list) = page(&app, "/tasks", Some(&owner.token), None).await;
    assert!(list.contains(&task.id.to_string()), "the owner's history lists it");
    let (status, _, _) = page(&app, "/tasks/not-a-uuid", Some(&owner.token), None).await;
    assert_eq!(status, 404);
    let (status, _, html) = page(&app, "/tools/no-such-tool", None, None).await;
    assert_eq!(status, 404);
    assert!(html.contains("There is no such tool."));
}

async fn pages_speak_the_visitors_language(app: TestApp) {
    let (_, _, html) = page(&app, "/", None, Some("zh-CN,zh;q=0.9,en;q=0.5")).await;
    assert!(html.contains("<html lang=\"zh\">") && html.contains("精选") && html.contains("FigMe 手办"), "{html}");
    let (_, _, html) = page(&app, "/tools/figme", None, Some("zh-CN")).await;
    assert!(html.contains("素描") && html.contains("图像生成"), "the tool's own translation");
    let (_, _, html) = page(&app, "/", None, Some("fr-FR, en;q=0.3")).await;
    assert!(html.contains("<html lang=\"en\">") && html.contains("Featured"));
    // The footer's switch wins over the browser's languages, for a year, and goes back.
    let resp = http().get(format!("{}/lang/zh?next=%2Ftools%2Ffigme", app.base_url())).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/tools/figme");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("funmagic.lang=zh;") && cookie.contains("Max-Age=31536000"), "{cookie}");
    let html = http()
        .get(format!("{}/", app.base_url()))
        .header("accept-language", "en")
        .header("cookie", "funmagic.lang=zh")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<html lang=\"zh\">"));
    let evil = http().get(format!("{}/lang/zh?next=//evil.example", app.base_url())).send().await.unwrap();
    assert_eq!(evil.headers()["location"], "/");
}

async fn mailed_links_land_on_pages_that_say_what_happened(app: TestApp) {
    let (status, _, html) = page(&app, "/verify-email?token=not-a-real-token", None, None).await;
    assert_eq!(status, 200);
    assert!(html.contains("invalid or has expired"), "{html}");
    let (_, headers, html) = page(&app, "/reset-password?token=abc", None, None).await;
    assert_eq!(headers["referrer-policy"], "no-referrer", "the token never leaves in a Referer");
    assert!(html.contains("name=\"token\" value=\"abc\""));
    let (_, _, html) = page(&app, "/reset-password", None, None).await;
    assert!(html.contains("needs the link from the email"));
    // Stripe sends buyers back to the credits page, which says what happened.
    let user = actor(&app, "web-buyer@example.com", Role::User).await;
    let (_, _, html) = page(&app, "/credits?checkout=success", Some(&user.token), None).await;
    assert!(html.contains("Your payment went through"));
    let (_, _, html) = page(&app, "/credits?checkout=cancelled", Some(&user.token), None).await;
    assert!(html.contains("nothing was charged"));
}

async fn home_shows_the_banners_in_their_windows(app: TestApp) {
    let admin = actor(&app, "web-banners@example.com", Role::Admin).await;
    let now = chrono::Utc::now();
    for (title, kind, ends) in [
        ("Spring sale on 3D", "main", now + chrono::Duration::days(1)),
        ("Try the new styles", "side", now + chrono::Duration::days(1)),
        ("Last week's news", "main", now - chrono::Duration::hours(1)),
    ] {
        let resp = http()
            .post(format!("{}/api/admin/banners", app.base_url()))
            .bearer_auth(&admin.token)
            .json(&json!({"title": title, "type": kind, "link": "/tools/figme", "linkText": "Open", "badge": "New",
                          "badgeColor": "#e11d48", "startsAt": (now - chrono::Duration::days(2)).to_rfc3339(), "endsAt": ends.to_rfc3339()}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }
    let (_, _, html) = page(&app, "/", None, None).await;
    let main = html.split("class=\"banner-main\"").nth(1).expect("the main banners");
    let main = main.split("class=\"banner-side\"").next().unwrap();
    assert!(main.contains("Spring sale on 3D"), "{html}");
    let side = html.split("class=\"banner-side\"").nth(1).expect("the side banners");
    assert!(side.contains("Try the new styles"));
    assert!(!html.contains("Last week"), "an ended banner is not shown");
    assert!(html.contains("href=\"/tools/figme\"") && html.contains("data-color=\"#e11d48\""));
}

funmagic_api::test_both_backends!(
    home_shows_the_banners_in_their_windows,
    pages_have_strict_headers_and_no_inline_code,
    signed_out_visitors_are_sent_to_sign_in_and_back,
    no_one_sees_another_users_pages,
    pages_speak_the_visitors_language,
    mailed_links_land_on_pages_that_say_what_happened,
);

/// The tool page's first load stays under 150 KB of JS and CSS as transferred (gzip); the
/// 3D viewer (three.js) loads only where a model is shown.
#[test]
fn the_tool_page_fits_its_transfer_budget() {
    use funmagic_api::web::static_files;
    let first_load = ["app.css", "app.js", "tool.js"];
    let total: usize = first_load.iter().map(|f| static_files::gzipped_len(f).expect(f)).sum();
    assert!(total < 150 * 1024, "the tool page's JS+CSS is {total} bytes gzipped");
    let tool_js = String::from_utf8(static_files::content("tool.js").unwrap()).unwrap();
    assert!(tool_js.contains("import('./viewer.js')"), "the viewer is a dynamic import");
    assert!(!tool_js.contains("import * as THREE"), "three.js is not in the first load");
    // The vendored library is there, with its licence, and imports only its siblings.
    let names = static_files::names();
    for f in ["vendor/three/three.module.min.js", "vendor/three/GLTFLoader.js", "vendor/three/LICENSE"] {
        assert!(names.iter().any(|n| n == f), "{f} is embedded");
    }
}

// ---- in a real browser ------------------------------------------------------------------------

/// chromedriver on a free port, stopped on drop.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Option<Driver> {
    let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    if !std::path::Path::new(&bin).exists() {
        if funmagic_api::testing::in_ci() {
            panic!("{bin} is missing (CI is set: the browser tests must run; .ci/run installs chromium-driver)");
        }
        eprintln!("SKIPPED browser test: {bin} is missing (apt-get install chromium chromium-driver)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = std::process::Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some(Driver { child, url });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("chromedriver did not start on {url}");
}

async fn browser(driver: &Driver, width: u32, height: u32) -> Client {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-swiftshader",
                     "--use-angle=swiftshader", "--ignore-gpu-blocklist", format!("--window-size={width},{height}"),
                     "--lang=en-US"]
        }),
    );
    let client = fantoccini::ClientBuilder::rustls()
        .expect("rustls connector")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session");
    client.set_window_size(width, height).await.unwrap();
    client
}

fn shots_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(client: &Client, name: &str) {
    if let Ok(png) = client.screenshot().await {
        let _ = std::fs::write(shots_dir().join(format!("{name}.png")), png);
    }
}

/// Runs a browser journey; on failure saves a screenshot and the page's HTML first.
async fn journey<F, Fut>(name: &str, client: Client, f: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let keep = client.clone();
    let outcome = f(client).await;
    if let Err(err) = outcome {
        shot(&keep, &format!("FAILED-{name}")).await;
        if let Ok(html) = keep.source().await {
            let _ = std::fs::write(shots_dir().join(format!("FAILED-{name}.html")), html);
        }
        let _ = keep.close().await;
        panic!("{name}: {err} (screenshot in target/web-screenshots/FAILED-{name}.png)");
    }
    let _ = keep.close().await;
}

type Step<T> = Result<T, String>;

/// Defines `drawn(share)`: whether at least `share` of the viewer canvas's pixels are drawn.
const CANVAS_READY: &str = "
    const src = document.querySelector('.viewer[data-ready=true] canvas');
    const drawn = (share) => {
      if (!src) return false;
      const c = document.createElement('canvas'); c.width = 64; c.height = 48;
      const g = c.getContext('2d'); g.drawImage(src, 0, 0, 64, 48);
      const d = g.getImageData(0, 0, 64, 48).data; let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) n++;
      return n > 64 * 48 * share;
    };";

async fn find(c: &Client, css: &str) -> Step<fantoccini::elements::Element> {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .map_err(|e| format!("waiting for {css}: {e}"))
}

/// Waits until the script returns true.
async fn until(c: &Client, what: &str, script: &str) -> Step<()> {
    for _ in 0..200 {
        if c.execute(script, vec![]).await.map_err(|e| format!("{what}: {e}"))? == Value::Bool(true) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("timed out waiting until {what}"))
}

async fn text(c: &Client, css: &str) -> Step<String> {
    find(c, css).await?.text().await.map_err(|e| e.to_string())
}

fn check(cond: bool, what: impl Into<String>) -> Step<()> {
    if cond { Ok(()) } else { Err(what.into()) }
}

fn write_photo(app: &TestApp, name: &str) -> std::path::PathBuf {
    let path = app.dir.path().join(name);
    std::fs::write(&path, funmagic_api::testing::sample_png(96, 72)).unwrap();
    path
}

/// Sign up → grant credits (admin) → credits page → background removal with live progress →
/// the cut-out in the before/after slider → download (bytes checked) → figme with a style →
/// pick the image → 3D → the viewer draws; another user gets the 404 page for the task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_runs_tools_in_the_browser() {
    let Some(driver) = driver().await else { return };
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let admin = actor(&app, "web-admin@example.com", Role::Admin).await;
    let base = app.base_url();
    let photo = write_photo(&app, "photo.png");
    let client = browser(&driver, 1280, 1000).await;
    let admin_token = admin.token.clone();
    let app_ref = &app;
    journey("new-user", client, |c| async move {
        // Sign up.
        c.goto(&format!("{base}/sign-up")).await.map_err(|e| e.to_string())?;
        shot(&c, "sign-up").await;
        find(&c, "input[name=name]").await?.send_keys("Web Person").await.map_err(|e| e.to_string())?;
        find(&c, "input[name=email]").await?.send_keys("web-person@example.com").await.map_err(|e| e.to_string())?;
        find(&c, "input[name=password]").await?.send_keys(PASSWORD).await.map_err(|e| e.to_string())?;
        find(&c, "form[data-api] button[type=submit]").await?.click().await.map_err(|e| e.to_string())?;
        until(&c, "signed in on the home page", "return location.pathname === '/' && !!document.querySelector('[data-balance]')").await?;
        check(text(&c, "[data-balance]").await?.contains("0 credits"), "a new account starts at 0 credits")?;
        shot(&c, "home-signed-in").await;

        // An admin grants credits; the credits page shows them.
        let user = app_ref.state().store().user_get_by_email("web-person@example.com").await.unwrap().unwrap();
        let granted = http()
            .post(format!("{base}/api/admin/users/{}/credits", user.id))
            .bearer_auth(&admin_token)
            .json(&json!({"amount": 200, "description": "welcome from the team"}))
            .send()
            .await
            .unwrap();
        check(granted.status() == 200, format!("admin grant: {}", granted.status()))?;
        c.goto(&format!("{base}/credits")).await.map_err(|e| e.to_string())?;
        check(text(&c, "#available").await? == "200", "the credits page shows the grant")?;
        check(c.source().await.map_err(|e| e.to_string())?.contains("welcome from the team"), "the history lists it")?;
        shot(&c, "credits").await;

        // Background removal: upload (presigned), run, live progress, the cut-out.
        c.goto(&format!("{base}/tools/background-remove")).await.map_err(|e| e.to_string())?;
        find(&c, "#file").await?.send_keys(photo.to_str().unwrap()).await.map_err(|e| e.to_string())?;
        until(&c, "the upload finished", "return document.querySelector('#upload-msg').dataset.kind === 'success'").await?;
        check(!find(&c, "#preview").await?.attr("src").await.map_err(|e| e.to_string())?.unwrap_or_default().is_empty(), "a preview")?;
        shot(&c, "tool-uploaded").await;
        find(&c, "#run").await?.click().await.map_err(|e| e.to_string())?;
        // The steps list is filled only by the task's SSE events.
        until(&c, "the step appeared live", "return document.querySelectorAll('#steps li').length > 0").await?;
        until(&c, "the task completed", "return document.querySelector('#status-line').dataset.kind === 'success'").await?;
        until(&c, "the cut-out is shown", "const i = document.querySelector('.compare img.after'); return !!i && i.complete && i.naturalWidth > 0").await?;
        check(c.current_url().await.map_err(|e| e.to_string())?.query().unwrap_or_default().contains("task="), "the address names the task")?;
        check(text(&c, "[data-balance]").await?.contains("190 credits"), "the header shows the new balance")?;
        shot(&c, "background-removed").await;
        let href = find(&c, "#outputs a[download]").await?.attr("href").await.map_err(|e| e.to_string())?.unwrap();
        let bytes = http().get(reqwest::Url::parse(&base).unwrap().join(&href).unwrap()).send().await.unwrap().bytes().await.unwrap();
        let cut = image::load_from_memory(&bytes).map_err(|e| format!("the download is not an image: {e}"))?.to_rgba8();
        check(cut.dimensions() == (96, 72), "the cut-out has the photo's size")?;
        check(cut.pixels().any(|p| p[3] == 0) && cut.pixels().any(|p| p[3] == 255), "the cut-out has a transparent background")?;
        // Re-opening the page re-attaches to the task.
        c.refresh().await.map_err(|e| e.to_string())?;
        until(&c, "re-attached", "return document.querySelector('#status-line').dataset.kind === 'success' && !!document.querySelector('#outputs img')").await?;

        // figme with a style, then the 3D step on the picked image; the viewer draws.
        c.goto(&format!("{base}/tools/figme")).await.map_err(|e| e.to_string())?;
        find(&c, "#file").await?.send_keys(photo.to_str().unwrap()).await.map_err(|e| e.to_string())?;
        until(&c, "the upload finished", "return document.querySelector('#upload-msg').dataset.kind === 'success'").await?;
        find(&c, "label.style-option:nth-child(2)").await?.click().await.map_err(|e| e.to_string())?;
        until(&c, "the second style is chosen", "return document.querySelector('input[name=style]:checked').value === 'posterize'").await?;
        find(&c, "#run").await?.click().await.map_err(|e| e.to_string())?;
        let next = find(&c, "#next button").await?;
        until(&c, "the generated image is shown", "const i = document.querySelector('#outputs img'); return !!i && i.complete && i.naturalWidth > 0").await?;
        shot(&c, "figme-image").await;
        next.click().await.map_err(|e| e.to_string())?;
        until(&c, "the viewer is ready", "return !!document.querySelector('.viewer[data-ready=true] canvas')").await?;
        until(&c, "the model is drawn (the canvas is not blank)", &format!("{CANVAS_READY} return drawn(0.05);")).await?;
        shot(&c, "figme-3d").await;
        let task_url = c.current_url().await.map_err(|e| e.to_string())?;
        let task_id = task_url.query_pairs().find(|(k, _)| k == "task").map(|(_, v)| v.to_string()).ok_or("no task in the address")?;

        // crystal-memory: a point cloud (PLY) in the viewer.
        c.goto(&format!("{base}/tools/crystal-memory")).await.map_err(|e| e.to_string())?;
        find(&c, "#file").await?.send_keys(photo.to_str().unwrap()).await.map_err(|e| e.to_string())?;
        until(&c, "the upload finished", "return document.querySelector('#upload-msg').dataset.kind === 'success'").await?;
        find(&c, "#run").await?.click().await.map_err(|e| e.to_string())?;
        until(&c, "the point cloud is drawn", &format!("{CANVAS_READY} return drawn(0.01);")).await?;
        shot(&c, "crystal-memory").await;

        // History and assets show the work; the task page has the outputs.
        c.goto(&format!("{base}/tasks")).await.map_err(|e| e.to_string())?;
        check(c.find_all(Locator::Css("table.list tbody tr")).await.map_err(|e| e.to_string())?.len() >= 3, "three tasks in the history")?;
        shot(&c, "history").await;
        c.goto(&format!("{base}/assets")).await.map_err(|e| e.to_string())?;
        check(c.find_all(Locator::Css(".gallery .asset")).await.map_err(|e| e.to_string())?.len() >= 4, "uploads and outputs in the gallery")?;
        shot(&c, "assets").await;
        c.goto(&format!("{base}/account")).await.map_err(|e| e.to_string())?;
        shot(&c, "account").await;
        // An API key: shown once, listed by its prefix, revoked after a confirmation.
        find(&c, "#keys input[name=name]").await?.send_keys("laptop").await.map_err(|e| e.to_string())?;
        find(&c, "#keys button[type=submit]").await?.click().await.map_err(|e| e.to_string())?;
        until(&c, "the new key is shown", "return !document.querySelector('#new-key').hidden").await?;
        let key = text(&c, "#new-key-value").await?;
        let me = http().get(format!("{base}/api/auth/get-session")).bearer_auth(&key).send().await.unwrap();
        check(me.status() == 200, format!("the shown key works: {}", me.status()))?;
        shot(&c, "account-key").await;
        c.refresh().await.map_err(|e| e.to_string())?;
        find(&c, "#keys button[data-call^='DELETE']").await?.click().await.map_err(|e| e.to_string())?;
        c.accept_alert().await.map_err(|e| e.to_string())?;
        until(&c, "the key is gone", "return document.readyState === 'complete' && !document.querySelector(\"#keys button[data-call^='DELETE']\")").await?;
        let me = http().get(format!("{base}/api/auth/get-session")).bearer_auth(&key).send().await.unwrap();
        check(me.status() == 401, "the revoked key no longer works")?;

        // Another user gets the 404 page for this task.
        c.delete_all_cookies().await.map_err(|e| e.to_string())?;
        c.goto(&format!("{base}/sign-up")).await.map_err(|e| e.to_string())?;
        find(&c, "input[name=name]").await?.send_keys("Someone Else").await.map_err(|e| e.to_string())?;
        find(&c, "input[name=email]").await?.send_keys("web-else@example.com").await.map_err(|e| e.to_string())?;
        find(&c, "input[name=password]").await?.send_keys(PASSWORD).await.map_err(|e| e.to_string())?;
        find(&c, "form[data-api] button[type=submit]").await?.click().await.map_err(|e| e.to_string())?;
        until(&c, "signed in", "return !!document.querySelector('[data-balance]')").await?;
        c.goto(&format!("{base}/tasks/{task_id}")).await.map_err(|e| e.to_string())?;
        check(text(&c, "main h1").await? == "Not found", "the other user's task is the 404 page")?;
        shot(&c, "not-found").await;
        Ok(())
    })
    .await;
}

/// A phone-width screen: nothing scrolls sideways, the navigation and the run form fit,
/// and the insufficient-credits error links to the credits page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_fit_a_phone() {
    let Some(driver) = driver().await else { return };
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let user = actor(&app, "web-phone@example.com", Role::User).await;
    let base = app.base_url();
    let photo = write_photo(&app, "phone.png");
    let notes = app.dir.path().join("notes.txt");
    std::fs::write(&notes, "not a picture").unwrap();
    let client = browser(&driver, 390, 844).await;
    journey("phone", client, |c| async move {
        c.goto(&format!("{base}/sign-in")).await.map_err(|e| e.to_string())?;
        find(&c, "input[name=email]").await?.send_keys(&user.email).await.map_err(|e| e.to_string())?;
        find(&c, "input[name=password]").await?.send_keys(PASSWORD).await.map_err(|e| e.to_string())?;
        find(&c, "form[data-api] button[type=submit]").await?.click().await.map_err(|e| e.to_string())?;
        until(&c, "signed in", "return !!document.querySelector('[data-balance]')").await?;
        shot(&c, "phone-signed-in").await;
        for path in ["/", "/tools/figme", "/credits", "/account", "/tasks", "/assets"] {
            c.goto(&format!("{base}{path}")).await.map_err(|e| e.to_string())?;
            find(&c, "main").await?;
            until(
                &c,
                &format!("{path} fits the width"),
                "return document.documentElement.scrollWidth <= window.innerWidth",
            )
            .await?;
            shot(&c, &format!("phone{}", path.replace('/', "-"))).await;
        }
        c.goto(&format!("{base}/tools/background-remove")).await.map_err(|e| e.to_string())?;
        // A file that is not an image is refused with the reason, before any upload.
        find(&c, "#file").await?.send_keys(notes.to_str().unwrap()).await.map_err(|e| e.to_string())?;
        until(&c, "the file is refused", "return document.querySelector('#upload-msg').dataset.kind === 'error'")
            .await?;
        check(text(&c, "#upload-msg").await?.contains("not a PNG, JPEG or WebP"), "the reason is given")?;
        find(&c, "#file").await?.send_keys(photo.to_str().unwrap()).await.map_err(|e| e.to_string())?;
        until(&c, "the upload finished", "return document.querySelector('#upload-msg').dataset.kind === 'success'")
            .await?;
        find(&c, "#run").await?.click().await.map_err(|e| e.to_string())?;
        until(&c, "the error says why", "return document.querySelector('#run-msg').dataset.kind === 'error'").await?;
        let msg = text(&c, "#run-msg").await?;
        check(msg.contains("Not enough credits"), format!("the message: {msg}"))?;
        check(
            !c.find_all(Locator::Css("#run-msg a[href='/credits']")).await.map_err(|e| e.to_string())?.is_empty(),
            "a link to buy",
        )?;
        shot(&c, "phone-insufficient").await;
        Ok(())
    })
    .await;
}

/// The account page's forms: change the password, sign out, sign in with the new one, end
/// another session, delete the account (with a confirmation) — the old password and the
/// deleted account no longer sign in, and the errors say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_manages_the_account_in_the_browser() {
    let Some(driver) = driver().await else { return };
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let user = actor(&app, "web-account@example.com", Role::User).await;
    let base = app.base_url();
    let client = browser(&driver, 1280, 1000).await;
    let other_session = user.token.clone();
    let avatar = write_photo(&app, "avatar.png");
    journey("account", client, |c| async move {
        let sign_in = |password: &'static str| {
            let c = c.clone();
            let base = base.clone();
            async move {
                c.goto(&format!("{base}/sign-in")).await.map_err(|e| e.to_string())?;
                find(&c, "input[name=email]")
                    .await?
                    .send_keys("web-account@example.com")
                    .await
                    .map_err(|e| e.to_string())?;
                find(&c, "input[name=password]").await?.send_keys(password).await.map_err(|e| e.to_string())?;
                find(&c, "form[data-api] button[type=submit]").await?.click().await.map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            }
        };
        sign_in(PASSWORD).await?;
        until(&c, "signed in", "return !!document.querySelector('[data-balance]')").await?;

        // Another session (the one the test made) is listed and can be ended.
        c.goto(&format!("{base}/account")).await.map_err(|e| e.to_string())?;
        check(
            c.find_all(Locator::Css("#sessions tbody tr")).await.map_err(|e| e.to_string())?.len() == 2,
            "two sessions",
        )?;
        find(&c, "#sessions button[data-call^='DELETE']").await?.click().await.map_err(|e| e.to_string())?;
        until(
            &c,
            "one session left",
            "return document.readyState === 'complete' && document.querySelectorAll('#sessions tbody tr').length === 1",
        )
        .await?;
        let gone = http().get(format!("{base}/api/auth/get-session")).bearer_auth(&other_session).send().await.unwrap();
        check(gone.status() == 401, "the ended session no longer works")?;

        // The new password, then sign out and in again with it.
        find(&c, "#password input[name=currentPassword]")
            .await?
            .send_keys(PASSWORD)
            .await
            .map_err(|e| e.to_string())?;
        find(&c, "#password input[name=newPassword]")
            .await?
            .send_keys("a brand new secret")
            .await
            .map_err(|e| e.to_string())?;
        find(&c, "#password button[type=submit]").await?.click().await.map_err(|e| e.to_string())?;
        until(
            &c,
            "the password is changed",
            "return document.querySelector('#password .msg').dataset.kind === 'success'",
        )
        .await?;
        find(&c, "button[data-signout]").await?.click().await.map_err(|e| e.to_string())?;
        until(&c, "signed out", "return location.pathname === '/' && !document.querySelector('[data-balance]')")
            .await?;
        sign_in(PASSWORD).await?;
        until(
            &c,
            "the old password is refused",
            "return document.querySelector('form[data-api] .msg').dataset.kind === 'error'",
        )
        .await?;
        check(text(&c, "form[data-api] .msg").await? == "The email or the password is wrong.", "the reason is given")?;
        sign_in("a brand new secret").await?;
        until(&c, "signed in with the new password", "return !!document.querySelector('[data-balance]')").await?;

        // A picture: uploaded straight to storage, then the avatar here and in the header.
        c.goto(&format!("{base}/account")).await.map_err(|e| e.to_string())?;
        find(&c, "#avatar-file").await?.send_keys(avatar.to_str().unwrap()).await.map_err(|e| e.to_string())?;
        until(&c, "the avatar is shown", "const i = document.querySelector('#avatar-img'); return !!i && i.complete && i.naturalWidth > 0 && !!document.querySelector('.who .avatar img')").await?;
        shot(&c, "account-avatar").await;

        // Delete the account.
        c.goto(&format!("{base}/account")).await.map_err(|e| e.to_string())?;
        find(&c, "#delete input[name=password]")
            .await?
            .send_keys("a brand new secret")
            .await
            .map_err(|e| e.to_string())?;
        find(&c, "#delete button[type=submit]").await?.click().await.map_err(|e| e.to_string())?;
        c.accept_alert().await.map_err(|e| e.to_string())?;
        until(
            &c,
            "the goodbye page",
            "return location.search === '?deleted=1' && !!document.querySelector('.notice.success')",
        )
        .await?;
        shot(&c, "account-deleted").await;
        check(c.find_all(Locator::Css("[data-balance]")).await.map_err(|e| e.to_string())?.is_empty(), "signed out")?;
        sign_in("a brand new secret").await?;
        until(
            &c,
            "the deleted account cannot sign in",
            "return document.querySelector('form[data-api] .msg').dataset.kind === 'error'",
        )
        .await?;
        Ok(())
    })
    .await;
}

async fn sign_up_in_browser(c: &Client, base: &str, email: &str) -> Step<()> {
    c.goto(&format!("{base}/sign-up")).await.map_err(|e| e.to_string())?;
    find(c, "input[name=name]").await?.send_keys("Browser User").await.map_err(|e| e.to_string())?;
    find(c, "input[name=email]").await?.send_keys(email).await.map_err(|e| e.to_string())?;
    find(c, "input[name=password]").await?.send_keys(PASSWORD).await.map_err(|e| e.to_string())?;
    find(c, "form[data-api] button[type=submit]").await?.click().await.map_err(|e| e.to_string())?;
    until(c, "signed in", "return !!document.querySelector('[data-balance]')").await
}

async fn upload_in_browser(c: &Client, file: &std::path::Path) -> Step<()> {
    find(c, "#file").await?.send_keys(file.to_str().unwrap()).await.map_err(|e| e.to_string())?;
    until(c, "the upload finished", "return document.querySelector('#upload-msg').dataset.kind === 'success'").await
}

/// With S3 (scale-out), the browser uploads straight to the bucket through the presigned
/// URL and the 3D viewer fetches the model from it: the server set the buckets' CORS rules
/// for its origin at start, and the page's CSP names the store's origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_uploads_to_s3_and_views_models_from_it() {
    if !funmagic_api::testing::s3_available() {
        return;
    }
    let Some(driver) = driver().await else { return };
    let Some(app) = TestApp::spawn(TestBackend::ScaleOut).await else { return };
    assert_eq!(app.state().storage().kind(), "s3");
    let admin = actor(&app, "web-s3-admin@example.com", Role::Admin).await;
    let base = app.base_url();
    let photo = write_photo(&app, "s3-photo.png");
    let client = browser(&driver, 1280, 1000).await;
    let app_ref = &app;
    journey("s3", client, |c| async move {
        sign_up_in_browser(&c, &base, "web-s3@example.com").await?;
        let user = app_ref.state().store().user_get_by_email("web-s3@example.com").await.unwrap().unwrap();
        let granted = http()
            .post(format!("{base}/api/admin/users/{}/credits", user.id))
            .bearer_auth(&admin.token)
            .json(&json!({"amount": 100, "description": "s3 test"}))
            .send()
            .await
            .unwrap();
        check(granted.status() == 200, format!("admin grant: {}", granted.status()))?;
        c.goto(&format!("{base}/tools/figme")).await.map_err(|e| e.to_string())?;
        upload_in_browser(&c, &photo).await?;
        find(&c, "#run").await?.click().await.map_err(|e| e.to_string())?;
        let next = find(&c, "#next button").await?;
        until(
            &c,
            "the generated image is shown",
            "const i = document.querySelector('#outputs img'); return !!i && i.complete && i.naturalWidth > 0",
        )
        .await?;
        let src = find(&c, "#outputs img").await?.attr("src").await.map_err(|e| e.to_string())?.unwrap_or_default();
        check(!src.starts_with(&base), format!("the image comes from the bucket: {src}"))?;
        next.click().await.map_err(|e| e.to_string())?;
        until(&c, "the model from S3 is drawn", &format!("{CANVAS_READY} return drawn(0.05);")).await?;
        shot(&c, "s3-figme-3d").await;
        Ok(())
    })
    .await;
}
