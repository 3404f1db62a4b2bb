//! The pages. Each handler loads the visitor ([`Ctx`]), reads what it shows through the
//! JSON API ([`Backend`]), and renders it with maud. Pages for signed-in visitors redirect
//! others to `/sign-in?next=…`.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use poem::http::{StatusCode, header};
use poem::web::{Data, Path, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;
use serde_json::Value;

use super::{Backend, Ctx, html_response, safe_next, static_files};
use crate::app::AppState;

/// The page around every page's content.
fn layout(ctx: &Ctx, title: &str, main: Markup, scripts: &[&str]) -> String {
    let i18n = ctx.tr.json();
    let page = html! {
        (DOCTYPE)
        html lang=(ctx.tr.0.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                meta name="funmagic-static" content=(static_files::bundle());
                title { (title) " · " (ctx.t("brand")) }
                link rel="stylesheet" href=(static_files::url("app.css"));
                link rel="icon" href=(static_files::url("icon.svg")) type="image/svg+xml";
                script type="module" src=(static_files::url("app.js")) {}
                @for s in scripts {
                    script type="module" src=(static_files::url(s)) {}
                }
            }
            body {
                a.skip href="#main" { (ctx.t("nav.skip")) }
                header.top {
                    div.wrap.bar {
                        a.brand href="/" { span.logo aria-hidden="true" { "✦" } (ctx.t("brand")) }
                        nav aria-label=(ctx.t("nav.menu")) {
                            ul {
                                (nav_link(ctx, "/", "nav.tools"))
                                @if ctx.signed_in() {
                                    (nav_link(ctx, "/tasks", "nav.history"))
                                    (nav_link(ctx, "/assets", "nav.assets"))
                                    (nav_link(ctx, "/credits", "nav.credits"))
                                }
                            }
                        }
                        div.who {
                            @if let Some(user) = &ctx.user {
                                a.pill.balance href="/credits" data-balance=(ctx.available()) {
                                    (ctx.tr.f("header.balance", &[("n", &ctx.available().to_string())]))
                                }
                                a.avatar href="/account" title=(ctx.t("nav.account")) {
                                    @if let Some(img) = user["image"].as_str() {
                                        img src=(img) alt="" width="32" height="32";
                                    } @else {
                                        span aria-hidden="true" { (initial(user)) }
                                    }
                                    span.sr { (ctx.t("nav.account")) }
                                }
                                button.link type="button" data-signout { (ctx.t("nav.signout")) }
                            } @else {
                                a href={ "/sign-in?next=" (urlencode(&ctx.path)) } { (ctx.t("nav.signin")) }
                                a.btn.small href="/sign-up" { (ctx.t("nav.signup")) }
                            }
                        }
                    }
                }
                main #main .wrap tabindex="-1" { (main) }
                footer.wrap.foot {
                    span { (ctx.t("footer.language")) ": " }
                    a href={ "/lang/en?next=" (urlencode(&ctx.path)) } lang="en" aria-current=[(ctx.tr.0.tag() == "en").then_some("true")] { "English" }
                    " · "
                    a href={ "/lang/zh?next=" (urlencode(&ctx.path)) } lang="zh" aria-current=[(ctx.tr.0.tag() == "zh").then_some("true")] { "中文" }
                    span.spacer {}
                    a href="/docs" { (ctx.t("footer.api")) }
                }
                script type="application/json" #i18n { (PreEscaped(i18n)) }
            }
        }
    };
    page.into_string()
}

fn nav_link(ctx: &Ctx, href: &str, key: &str) -> Markup {
    let here = ctx.path.split('?').next() == Some(href)
        || (href != "/" && ctx.path.starts_with(href))
        || (href == "/" && ctx.path.starts_with("/tools/"));
    html! { li { a href=(href) aria-current=[here.then_some("page")] { (ctx.t(key)) } } }
}

fn initial(user: &Value) -> String {
    let name = user["name"].as_str().filter(|n| !n.trim().is_empty()).or(user["email"].as_str()).unwrap_or("?");
    name.chars().next().map(|c| c.to_uppercase().to_string()).unwrap_or_default()
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `<time>` the page script shows in the visitor's time zone.
fn time(ts: &Value) -> Markup {
    match ts.as_str() {
        Some(t) => {
            let short = t.get(..16).unwrap_or(t).replace('T', " ");
            html! { time datetime=(t) { (short) " UTC" } }
        }
        None => html! { "—" },
    }
}

fn status_badge(ctx: &Ctx, status: &str) -> Markup {
    let key = format!("status.{status}");
    html! { span class={ "badge st-" (status) } { (ctx.t(&key)) } }
}

fn human_size(bytes: i64) -> String {
    match bytes {
        b if b >= 1024 * 1024 => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
        b if b >= 1024 => format!("{:.0} KB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn money(amount: i64, currency: &str) -> String {
    let symbol = match currency.to_ascii_lowercase().as_str() {
        "usd" => "$",
        "eur" => "€",
        "gbp" => "£",
        "cny" => "¥",
        _ => "",
    };
    if symbol.is_empty() {
        format!("{:.2} {}", amount as f64 / 100.0, currency.to_uppercase())
    } else {
        format!("{symbol}{:.2}", amount as f64 / 100.0)
    }
}

fn private_page(state: &AppState, ctx: &Ctx, title: &str, main: Markup, scripts: &[&str]) -> Response {
    html_response(state, StatusCode::OK, true, layout(ctx, title, main, scripts))
}

fn public_page(state: &AppState, ctx: &Ctx, title: &str, main: Markup, scripts: &[&str]) -> Response {
    // A page that shows the header of a signed-in visitor is theirs alone.
    html_response(state, StatusCode::OK, ctx.signed_in(), layout(ctx, title, main, scripts))
}

fn not_found_page(state: &AppState, ctx: &Ctx, text_key: &str) -> Response {
    let main = html! {
        section.card.narrow.center {
            h1 { (ctx.t("notfound.title")) }
            p { (ctx.t(text_key)) }
            p { a.btn href="/" { (ctx.t("common.back_home")) } }
        }
    };
    html_response(state, StatusCode::NOT_FOUND, true, layout(ctx, ctx.t("notfound.title"), main, &[]))
}

fn sign_in_redirect(ctx: &Ctx) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, format!("/sign-in?next={}", urlencode(&ctx.path)))
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

fn redirect(to: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

fn error_page(state: &AppState, ctx: &Ctx, failure: &super::ApiFailure) -> Response {
    if failure.status == StatusCode::NOT_FOUND {
        return not_found_page(state, ctx, "notfound.text");
    }
    let msg = failure.body["error"].as_str().unwrap_or("unknown error").to_string();
    let main = html! {
        section.card.narrow.center {
            h1 { (failure.status.as_u16()) }
            p.error { (ctx.tr.f("common.error", &[("msg", &msg)])) }
            p { a.btn href="/" { (ctx.t("common.back_home")) } }
        }
    };
    html_response(state, failure.status, true, layout(ctx, ctx.t("notfound.title"), main, &[]))
}

/// A JSON value as an HTML attribute (escaped by maud).
fn json_attr(v: &Value) -> String {
    v.to_string()
}

fn tool_card(ctx: &Ctx, tool: &Value) -> Markup {
    let slug = tool["slug"].as_str().unwrap_or_default();
    html! {
        li.tool-card {
            a href={ "/tools/" (slug) } {
                @if let Some(color) = tool["toolType"]["color"].as_str() {
                    span.kind data-color=(color) { (tool["toolType"]["displayName"].as_str().unwrap_or_default()) }
                }
                h3 { (tool["title"].as_str().unwrap_or(slug)) }
                p { (tool["description"].as_str().unwrap_or_default()) }
                span.cost { (ctx.tr.f("home.cost", &[("n", &tool["creditsCost"].as_i64().unwrap_or(0).to_string())])) }
            }
        }
    }
}

#[handler]
pub async fn home_page(state: Data<&AppState>, backend: Data<&Backend>, req: &Request) -> Response {
    let ctx = Ctx::load(&state, &backend, req).await;
    let deleted = req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "deleted=1"));
    let (main_list, side_list, featured, all) = tokio::join!(
        backend.get(req, "/api/banners?type=main"),
        backend.get(req, "/api/banners?type=side"),
        backend.get(req, format!("/api/tools?featured=true&{}", ctx.locale_query())),
        backend.get(req, format!("/api/tools?{}", ctx.locale_query())),
    );
    let banners_of = |list: Result<Value, super::ApiFailure>| {
        list.ok().and_then(|b| b["banners"].as_array().cloned()).unwrap_or_default()
    };
    let (main_banners, side_banners) = (banners_of(main_list), banners_of(side_list));
    let featured = featured.ok().and_then(|t| t["tools"].as_array().cloned()).unwrap_or_default();
    let all = all.ok().and_then(|t| t["tools"].as_array().cloned()).unwrap_or_default();
    let rest: Vec<&Value> = all.iter().filter(|t| !featured.iter().any(|f| f["slug"] == t["slug"])).collect();
    let main = html! {
        @if deleted {
            p.notice.success role="status" { (ctx.t("account.deleted")) }
        }
        @if !main_banners.is_empty() || !side_banners.is_empty() {
            section.banners {
                div.banner-main {
                    @for b in &main_banners { (banner(b, true)) }
                }
                @if !side_banners.is_empty() {
                    aside.banner-side { @for b in &side_banners { (banner(b, false)) } }
                }
            }
        } @else {
            section.hero {
                h1 { (ctx.t("brand")) }
                p.lead { (ctx.t("tagline")) }
            }
        }
        @if !featured.is_empty() {
            section {
                h2 { (ctx.t("home.featured")) }
                ul.tools.featured { @for t in &featured { (tool_card(&ctx, t)) } }
            }
        }
        section {
            h2 { (ctx.t("home.all")) }
            @if all.is_empty() {
                p.muted { (ctx.t("home.empty")) }
            } @else {
                ul.tools { @for t in &rest { (tool_card(&ctx, t)) } }
            }
        }
    };
    public_page(&state, &ctx, ctx.t("home.title"), main, &[])
}

fn banner(b: &Value, big: bool) -> Markup {
    let link = b["link"].as_str();
    let external = b["linkTarget"] == "_blank";
    let inner = html! {
        @if let Some(src) = b["thumbnailUrl"].as_str() {
            img src=(src) alt="" loading=(if big { "eager" } else { "lazy" });
        }
        div.banner-text {
            @if let Some(badge) = b["badge"].as_str() {
                span.badge data-color=[b["badgeColor"].as_str()] { (badge) }
            }
            h2 { (b["title"].as_str().unwrap_or_default()) }
            @if let Some(d) = b["description"].as_str() { p { (d) } }
            @if let (Some(_), Some(text)) = (link, b["linkText"].as_str()) { span.btn.small { (text) } }
        }
    };
    html! {
        div class=(if big { "banner big" } else { "banner" }) {
            @if let Some(href) = link {
                a href=(href) target=[external.then_some("_blank")] rel=[external.then_some("noopener noreferrer")] { (inner) }
            } @else { (inner) }
        }
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    token: Option<String>,
    #[serde(rename = "user_code")]
    user_code: Option<String>,
}

fn auth_card(ctx: &Ctx, title_key: &str, body: Markup) -> Markup {
    html! { section.card.narrow { h1 { (ctx.t(title_key)) } (body) } }
}

fn oauth_buttons(ctx: &Ctx, next: &str) -> Markup {
    html! {
        @if ctx.oauth.0 || ctx.oauth.1 {
            p.or { span { (ctx.t("auth.or")) } }
            div.oauth {
                @if ctx.oauth.0 {
                    a.btn.secondary.wide href={ "/api/auth/sign-in/social?provider=github&callbackURL=" (urlencode(next)) } { (ctx.t("auth.github")) }
                }
                @if ctx.oauth.1 {
                    a.btn.secondary.wide href={ "/api/auth/sign-in/social?provider=google&callbackURL=" (urlencode(next)) } { (ctx.t("auth.google")) }
                }
            }
        }
    }
}

#[handler]
pub async fn sign_in_page(
    state: Data<&AppState>,
    backend: Data<&Backend>,
    req: &Request,
    q: Query<NextQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &backend, req).await;
    let next = safe_next(q.next.as_deref());
    if ctx.signed_in() {
        return redirect(&next);
    }
    let main = auth_card(
        &ctx,
        "auth.signin.title",
        html! {
            form.stack data-api="POST /api/auth/sign-in/email" data-then={ "go:" (next) } {
                label { (ctx.t("auth.email")) input type="email" name="email" required autocomplete="username" autofocus; }
                label { (ctx.t("auth.password")) input type="password" name="password" required autocomplete="current-password"; }
                button.btn.wide type="submit" { (ctx.t("auth.signin.submit")) }
                p.msg role="status" aria-live="polite" {}
            }
            (oauth_buttons(&ctx, &next))
            p.small { a href="/forgot-password" { (ctx.t("auth.signin.forgot")) } }
            p.small { (ctx.t("auth.signin.no_account")) " " a href={ "/sign-up?next=" (urlencode(&next)) } { (ctx.t("nav.signup")) } }
        },
    );
    public_page(&state, &ctx, ctx.t("auth.signin.title"), main, &[])
}

#[handler]
pub async fn sign_up_page(
    state: Data<&AppState>,
    backend: Data<&Backend>,
    req: &Request,
    q: Query<NextQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &backend, req).await;
    let next = safe_next(q.next.as_deref());
    if ctx.signed_in() {
        return redirect(&next);
    }
    let main = auth_card(
        &ctx,
        "auth.signup.title",
        html! {
            form.stack data-api="POST /api/auth/sign-up/email" data-then={ "go:" (next) } {
                label { (ctx.t("auth.name")) input type="text" name="name" required maxlength="100" autocomplete="name" autofocus; }
                label { (ctx.t("auth.email")) input type="email" name="email" required autocomplete="email"; }
                label { (ctx.t("auth.new_password")) input type="password" name="password" required minlength="8" maxlength="128" autocomplete="new-password"; }
                button.btn.wide type="submit" { (ctx.t("auth.signup.submit")) }
                p.msg role="status" aria-live="polite" {}
            }
            (oauth_buttons(&ctx, &next))
            p.small { (ctx.t("auth.signup.have_account")) " " a href={ "/sign-in?next=" (urlencode(&next)) } { (ctx.t("nav.signin")) } }
        },
    );
    public_page(&state, &ctx, ctx.t("auth.signup.title"), main, &[])
}

#[handler]
pub async fn forgot_password_page(state: Data<&AppState>, backend: Data<&Backend>, req: &Request) -> Response {
    let ctx = Ctx::load(&state, &backend, req).await;
    let main = auth_card(
        &ctx,
        "auth.forgot.title",
        html! {
            p.muted { (ctx.t("auth.forgot.help")) }
            form.stack data-api="POST /api/auth/request-password-reset" data-then="message:auth.forgot.sent" {
                label { (ctx.t("auth.email")) input type="email" name="email" required autocomplete="email" autofocus; }
                button.btn.wide type="submit" { (ctx.t("auth.forgot.submit")) }
                p.msg role="status" aria-live="polite" {}
            }
        },
    );
    public_page(&state, &ctx, ctx.t("auth.forgot.title"), main, &[])
}

#[handler]
pub async fn reset_password_page(
    state: Data<&AppState>,
    backend: Data<&Backend>,
    req: &Request,
    q: Query<NextQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &backend, req).await;
    let main = auth_card(
        &ctx,
        "auth.reset.title",
        html! {
            @if let Some(token) = q.token.as_deref().filter(|t| !t.is_empty()) {
                form.stack data-api="POST /api/auth/reset-password" data-then="message:auth.reset.done" {
                    input type="hidden" name="token" value=(token);
                    label { (ctx.t("auth.new_password")) input type="password" name="newPassword" required minlength="8" maxlength="128" autocomplete="new-password" autofocus; }
                    button.btn.wide type="submit" { (ctx.t("auth.reset.submit")) }
                    p.msg role="status" aria-live="polite" {}
                }
                p.small { a href="/sign-in" { (ctx.t("nav.signin")) } }
            } @else {
                p.error { (ctx.t("auth.reset.missing")) }
                p { a.btn href="/forgot-password" { (ctx.t("auth.forgot.submit")) } }
            }
        },
    );
    // The token is in the address: never cached, never sent on in a Referer.
    let mut resp = html_response(&state, StatusCode::OK, true, layout(&ctx, ctx.t("auth.reset.title"), main, &[]));
    resp.headers_mut().insert("referrer-policy", poem::http::HeaderValue::from_static("no-referrer"));
    resp
}

#[handler]
pub async fn verify_email_page(
    state: Data<&AppState>,
    backend: Data<&Backend>,
    req: &Request,
    q: Query<NextQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &backend, req).await;
    let token = q.token.clone().unwrap_or_default();
    let outcome = if token.is_empty() {
        None
    } else {
        Some(backend.get(req, format!("/api/auth/verify-email?token={}", urlencode(&token))).await)
    };
    let ok = matches!(outcome, Some(Ok(_)))
        || matches!(&outcome, Some(Err(f)) if f.code() == crate::error::ErrorCode::AlreadyVerified.as_str());
    let main = auth_card(
        &ctx,
        "auth.verified.title",
        html! {
            @if ok {
                p.success { (ctx.t("auth.verified.ok")) }
                p { a.btn href="/" { (ctx.t("common.back_home")) } }
            } @else {
                p.error { (ctx.t("auth.verified.failed")) }
                @if ctx.signed_in() {
                    form data-api="POST /api/auth/send-verification-email" data-then="message:account.resent" {
                        button.btn type="submit" { (ctx.t("auth.verified.resend")) }
                        p.msg role="status" aria-live="polite" {}
                    }
                }
            }
        },
    );
    let mut resp = html_response(&state, StatusCode::OK, true, layout(&ctx, ctx.t("auth.verified.title"), main, &[]));
    resp.headers_mut().insert("referrer-policy", poem::http::HeaderValue::from_static("no-referrer"));
    resp
}

/// `/device`: the CLI's sign-in approval (RFC 8628 verification URI).
#[handler]
pub async fn device_page(
    state: Data<&AppState>,
    backend: Data<&Backend>,
    req: &Request,
    q: Query<NextQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &backend, req).await;
    if !ctx.signed_in() {
        return sign_in_redirect(&ctx);
    }
    let email = ctx.user.as_ref().and_then(|u| u["email"].as_str()).unwrap_or_default().to_string();
    let main = auth_card(
        &ctx,
        "device.title",
        html! {
            div #device data-email=(email) {
                form #device-enter .stack {
                    label { (ctx.t("device.enter"))
                        input #device-code .code name="code" required maxlength="9" autocomplete="off" placeholder="ABCD-EFGH" value=[q.user_code.as_deref()] autofocus;
                    }
                    button.btn.wide type="submit" { (ctx.t("device.continue")) }
                }
                div #device-confirm hidden {
                    p.warning { (ctx.t("device.warning")) }
                    p.who #device-who {}
                    p { (ctx.t("device.access")) " (" b { (email) } ")" }
                    div.row {
                        button.btn #device-approve type="button" { (ctx.t("device.approve")) }
                        button.btn.secondary #device-deny type="button" { (ctx.t("device.deny")) }
                    }
                }
                p.msg #device-msg role="status" aria-live="polite" {}
            }
        },
    );
    // The code is in the address: never inside a frame, never sent on in a Referer.
    let mut resp =
        html_response(&state, StatusCode::OK, true, layout(&ctx, ctx.t("device.title"), main, &["device.js"]));
    resp.headers_mut().insert("referrer-policy", poem::http::HeaderValue::from_static("no-referrer"));
    resp
}

#[derive(Deserialize)]
pub struct ToolQuery {
    task: Option<String>,
}

/// What the page script needs about a tool (steps, costs, styles).
fn tool_data(tool: &Value) -> Value {
    serde_json::json!({
        "slug": tool["slug"],
        "title": tool["title"],
        "steps": tool["steps"],
        "styles": tool["styleReferences"],
    })
}

#[handler]
pub async fn tool_page(
    state: Data<&AppState>,
    backend: Data<&Backend>,
    req: &Request,
    Path(slug): Path<String>,
    q: Query<ToolQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &backend, req).await;
    let tool = match backend.get(req, format!("/api/tools/{}?{}", urlencode(&slug), ctx.locale_query())).await {
        Ok(t) => t,
        Err(f) if f.status == StatusCode::NOT_FOUND || f.status == StatusCode::BAD_REQUEST => {
            return not_found_page(&state, &ctx, "tool.not_found");
        }
        Err(f) => return error_page(&state, &ctx, &f),
    };
    let steps = tool["steps"].as_array().cloned().unwrap_or_default();
    let styles = tool["styleReferences"].as_array().cloned().unwrap_or_default();
    let first_cost = steps.first().and_then(|s| s["cost"].as_i64()).unwrap_or(0);
    let task = q.task.as_deref().and_then(|t| t.parse::<uuid::Uuid>().ok()).map(|t| t.to_string());
    let main = html! {
        section.tool-head {
            h1 { (tool["title"].as_str().unwrap_or(&slug)) }
            @if let Some(d) = tool["description"].as_str() { p.lead { (d) } }
            @if steps.len() > 1 {
                ol.chain aria-label=(ctx.t("tool.steps")) {
                    @for s in &steps {
                        li { (s["name"].as_str().unwrap_or_default()) " · " (ctx.tr.f("home.cost", &[("n", &s["cost"].as_i64().unwrap_or(0).to_string())])) }
                    }
                }
            }
        }
        div #tool .tool-grid data-tool=(json_attr(&tool_data(&tool))) data-available=(ctx.available())
            data-signed-in=(ctx.signed_in()) data-max-mb=(ctx.max_upload_mb) data-task=[task.as_deref()] {
            form #run-form .card .stack novalidate {
                fieldset.upload {
                    legend { (ctx.t("tool.upload")) }
                    label.drop #drop {
                        input #file type="file" accept="image/png,image/jpeg,image/webp" class="sr";
                        img #preview alt="" hidden;
                        span.drop-text #drop-text {
                            strong { (ctx.t("tool.drop")) }
                            br;
                            small.muted { (ctx.tr.f("tool.formats", &[("mb", &ctx.max_upload_mb.to_string())])) }
                        }
                    }
                    progress #upload-progress max="100" value="0" hidden {}
                    p.msg #upload-msg role="status" aria-live="polite" {}
                }
                @if !styles.is_empty() {
                    fieldset.styles {
                        legend { (ctx.t("tool.style")) }
                        div.style-grid {
                            @for (i, s) in styles.iter().enumerate() {
                                label.style-option {
                                    input type="radio" name="style" value=(s["id"].as_str().unwrap_or_default()) checked[i == 0];
                                    @if let Some(src) = s["imageUrl"].as_str() {
                                        img src=(src) alt="" loading="lazy";
                                    } @else {
                                        span.swatch aria-hidden="true" { (s["name"].as_str().unwrap_or_default().chars().next().unwrap_or('✦')) }
                                    }
                                    span { (s["name"].as_str().unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
                div.costline {
                    span #cost { (ctx.tr.f("tool.cost", &[("n", &first_cost.to_string())])) }
                    @if ctx.signed_in() {
                        span.muted #balance-line { (ctx.tr.f("tool.balance", &[("n", &ctx.available().to_string())])) }
                    }
                }
                @if ctx.signed_in() {
                    button.btn.wide #run type="submit" { (ctx.t("tool.run")) }
                } @else {
                    a.btn.wide href={ "/sign-in?next=" (urlencode(&ctx.path)) } { (ctx.t("tool.signin_to_run")) }
                }
                p.msg #run-msg role="alert" {}
            }
            div.side {
                section #placeholder .card .placeholder { p.muted { (ctx.t("tool.placeholder")) } }
                section #progress .card hidden aria-live="polite" {
                    h2 { (ctx.t("progress.title")) }
                    p #status-line {}
                    ol #steps .steps {}
                    button.btn.secondary #cancel type="button" hidden { (ctx.t("progress.cancel")) }
                }
                section #result .card .result hidden {
                    h2 { (ctx.t("result.title")) }
                    div #outputs {}
                    div #next {}
                }
            }
        }
    };
    private_page(&state, &ctx, tool["title"].as_str().unwrap_or(&slug), main, &["tool.js"])
}

#[derive(Deserialize)]
pub struct CursorQuery {
    cursor: Option<String>,
    checkout: Option<String>,
}

fn cursor_param(cursor: &Option<String>) -> String {
    cursor.as_deref().map(|c| format!("&cursor={}", urlencode(c))).unwrap_or_default()
}

fn more_link(ctx: &Ctx, list: &Value, base: &str) -> Markup {
    html! {
        @if let Some(next) = list["nextCursor"].as_str() {
            p.center { a.btn.secondary href={ (base) "?cursor=" (urlencode(next)) } { (ctx.t("common.more")) } }
        }
    }
}

#[handler]
pub async fn tasks_page(
    state: Data<&AppState>,
    backend: Data<&Backend>,
    req: &Request,
    q: Query<CursorQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &backend, req).await;
    if !ctx.signed_in() {
        return sign_in_redirect(&ctx);
    }
    let (list, tools) = tokio::join!(
        backend.get(req, format!("/api/tasks?limit=30{}", cursor_param(&q.cursor))),
        backend.get(req, format!("/api/tools?{}", ctx.locale_query())),
    );
    let list = match list {
        Ok(l) => l,
        Err(f) => return error_page(&state, &ctx, &f),
    };
    let tools = tools.ok().and_then(|t| t["tools"].as_array().cloned()).unwrap_or_default();
    let tool_title =
        |id: &Value| tools.iter().find(|t| t["id"] == *id).and_then(|t| t["title"].as_str()).unwrap_or("—").to_string();
    let items = list["tasks"].as_array().cloned().unwrap_or_default();
    let main = html! {
        h1 { (ctx.t("tasks.title")) }
        @if items.is_empty() {
            section.card.center { p.muted { (ctx.t("tasks.empty")) } p { a.btn href="/" { (ctx.t("common.back_home")) } } }
        } @else {
            div.table-wrap {
                table.list {
                    thead { tr {
                        th scope="col" { (ctx.t("tasks.tool")) }
                        th scope="col" { (ctx.t("tasks.status")) }
                        th scope="col" .num { (ctx.t("tasks.cost")) }
                        th scope="col" { (ctx.t("tasks.created")) }
                        th scope="col" { (ctx.t("tasks.finished")) }
                    } }
                    tbody {
                        @for t in &items {
                            tr {
                                td { a href={ "/tasks/" (t["id"].as_str().unwrap_or_default()) } { (tool_title(&t["toolId"])) } }
                                td { (status_badge(&ctx, t["status"].as_str().unwrap_or_default())) }
                                td.num { (t["creditsCost"].as_i64().unwrap_or(0)) }
                                td { (time(&t["createdAt"])) }
                                td { (time(&t["completedAt"])) }
                            }
                        }
                    }
                }
            }
            (more_link(&ctx, &list, "/tasks"))
        }
    };
    private_page(&state, &ctx, ctx.t("tasks.title"), main, &[])
}

#[handler]
pub async fn task_page(
    state: Data<&AppState>,
    backend: Data<&Backend>,
    req: &Request,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::load(&state, &backend, req).await;
    if !ctx.signed_in() {
        return sign_in_redirect(&ctx);
    }
    let Ok(id) = id.parse::<uuid::Uuid>() else {
        return not_found_page(&state, &ctx, "task.not_found");
    };
    let detail = match backend.get(req, format!("/api/tasks/{id}")).await {
        Ok(d) => d,
        Err(f) if f.status == StatusCode::NOT_FOUND => return not_found_page(&state, &ctx, "task.not_found"),
        Err(f) => return error_page(&state, &ctx, &f),
    };
    let tools = backend.get(req, format!("/api/tools?{}", ctx.locale_query())).await.ok();
    let tool = tools
        .as_ref()
        .and_then(|t| t["tools"].as_array())
        .and_then(|list| list.iter().find(|t| t["id"] == detail["task"]["toolId"]).cloned());
    let task = &detail["task"];
    let title = tool.as_ref().and_then(|t| t["title"].as_str()).unwrap_or("—").to_string();
    let data = tool.as_ref().map(tool_data).unwrap_or_else(|| serde_json::json!({"steps": [], "styles": []}));
    let main = html! {
        p.crumbs { a href="/tasks" { (ctx.t("tasks.title")) } " / " }
        section.tool-head {
            h1 { (title) " " (status_badge(&ctx, task["status"].as_str().unwrap_or_default())) }
            dl.facts {
                dt { (ctx.t("tasks.cost")) } dd { (task["creditsCost"].as_i64().unwrap_or(0)) " " (ctx.t("common.credits")) }
                dt { (ctx.t("tasks.created")) } dd { (time(&task["createdAt"])) }
                dt { (ctx.t("tasks.finished")) } dd { (time(&task["completedAt"])) }
            }
            @if let Some(err) = detail["error"].as_str() {
                p.error { strong { (ctx.t("task.error")) ": " } (err) }
            }
            @if let Some(slug) = tool.as_ref().and_then(|t| t["slug"].as_str()) {
                p { a.btn.secondary href={ "/tools/" (slug) } { (ctx.t("tool.run_again")) } }
            }
        }
        div #tool .side data-tool=(json_attr(&data)) data-available=(ctx.available()) data-signed-in="true"
            data-task=(id.to_string()) data-readonly="true" {
            section #progress .card hidden aria-live="polite" {
                h2 { (ctx.t("progress.title")) }
                p #status-line {}
                ol #steps .steps {}
                button.btn.secondary #cancel type="button" hidden { (ctx.t("progress.cancel")) }
            }
            section #result .card .result hidden {
                h2 { (ctx.t("task.outputs")) }
                div #outputs {}
                div #next {}
            }
        }
    };
    private_page(&state, &ctx, &title, main, &["tool.js"])
}

#[handler]
pub async fn assets_page(
    state: Data<&AppState>,
    backend: Data<&Backend>,
    req: &Request,
    q: Query<CursorQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &backend, req).await;
    if !ctx.signed_in() {
        return sign_in_redirect(&ctx);
    }
    let list = match backend.get(req, format!("/api/assets?limit=48{}", cursor_param(&q.cursor))).await {
        Ok(l) => l,
        Err(f) => return error_page(&state, &ctx, &f),
    };
    let items = list["assets"].as_array().cloned().unwrap_or_default();
    let main = html! {
        h1 { (ctx.t("assets.title")) }
        @if items.is_empty() {
            section.card.center { p.muted { (ctx.t("assets.empty")) } p { a.btn href="/" { (ctx.t("common.back_home")) } } }
        } @else {
            ul.gallery {
                @for a in &items {
                    @let id = a["id"].as_str().unwrap_or_default();
                    @let public = a["visibility"] == "public";
                    @let name = a["filename"].as_str().unwrap_or_default();
                    li.asset {
                        div.thumb.checker {
                            @if let Some(src) = a["thumbnailUrl"].as_str() {
                                img src=(src) alt=(name) loading="lazy";
                            } @else {
                                span.filetype aria-hidden="true" { (name.rsplit('.').next().unwrap_or("file").to_uppercase()) }
                            }
                        }
                        div.asset-info {
                            span.name title=(name) { (name) }
                            span.muted.small { (human_size(a["size"].as_i64().unwrap_or(0))) " · " (time(&a["createdAt"])) }
                            span class={ "badge " (if public { "st-completed" } else { "st-pending" }) } {
                                (ctx.t(if public { "assets.public" } else { "assets.private" }))
                            }
                        }
                        div.actions {
                            @if let Some(url) = a["downloadUrl"].as_str() {
                                a.btn.small href=(url) download=(name) { (ctx.t("common.download")) }
                            }
                            @if public {
                                button.btn.small.secondary type="button" data-copy=[a["downloadUrl"].as_str()] { (ctx.t("assets.copy_link")) }
                                button.btn.small.secondary type="button" data-call={ "POST /api/assets/" (id) "/unpublish" } data-then="reload" { (ctx.t("assets.unpublish")) }
                            } @else {
                                button.btn.small.secondary type="button" data-call={ "POST /api/assets/" (id) "/publish" } data-then="reload" { (ctx.t("assets.publish")) }
                            }
                            button.btn.small.danger type="button" data-call={ "DELETE /api/assets/" (id) } data-confirm="assets.delete_confirm" data-then="reload" { (ctx.t("common.delete")) }
                        }
                    }
                }
            }
            (more_link(&ctx, &list, "/assets"))
        }
        p.msg #page-msg role="status" aria-live="polite" {}
    };
    private_page(&state, &ctx, ctx.t("assets.title"), main, &[])
}

#[handler]
pub async fn credits_page(
    state: Data<&AppState>,
    backend: Data<&Backend>,
    req: &Request,
    q: Query<CursorQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &backend, req).await;
    if !ctx.signed_in() {
        return sign_in_redirect(&ctx);
    }
    let (history, packages) = tokio::join!(
        backend.get(req, format!("/api/credits/transactions?limit=30{}", cursor_param(&q.cursor))),
        backend.get(req, "/api/credits/packages"),
    );
    let history = match history {
        Ok(h) => h,
        Err(f) => return error_page(&state, &ctx, &f),
    };
    let packages = packages.ok().and_then(|p| p["packages"].as_array().cloned()).unwrap_or_default();
    let bal = ctx.balance.clone().unwrap_or(Value::Null);
    let items = history["transactions"].as_array().cloned().unwrap_or_default();
    let main = html! {
        h1 { (ctx.t("credits.title")) }
        @match q.checkout.as_deref() {
            Some("success") => p.notice.success role="status" { (ctx.t("credits.checkout_success")) },
            Some("cancelled") => p.notice role="status" { (ctx.t("credits.checkout_cancelled")) },
            _ => {},
        }
        section.stats {
            div.stat { span.label { (ctx.t("credits.available")) } span.value #available { (bal["available"].as_i64().unwrap_or(0)) } }
            div.stat { span.label { (ctx.t("credits.balance")) } span.value { (bal["balance"].as_i64().unwrap_or(0)) } }
            div.stat { span.label { (ctx.t("credits.reserved")) } span.value { (bal["reserved"].as_i64().unwrap_or(0)) } }
        }
        section #packages {
            h2 { (ctx.t("credits.packages")) }
            @if packages.is_empty() {
                p.muted { (ctx.t("credits.no_packages")) }
            } @else {
                ul.packages {
                    @for p in &packages {
                        li.card.package {
                            h3 { (p["name"].as_str().unwrap_or_default()) }
                            p.big { (p["credits"].as_i64().unwrap_or(0)) " " (ctx.t("common.credits")) }
                            p.muted { (money(p["price"].as_i64().unwrap_or(0), p["currency"].as_str().unwrap_or("usd"))) }
                            button.btn.wide type="button" data-buy=(p["id"].as_str().unwrap_or_default()) { (ctx.t("credits.buy")) }
                        }
                    }
                }
            }
            p.msg #buy-msg role="status" aria-live="polite" {}
        }
        section {
            h2 { (ctx.t("credits.history")) }
            @if items.is_empty() {
                p.muted { (ctx.t("common.none")) }
            } @else {
                div.table-wrap {
                    table.list {
                        thead { tr {
                            th scope="col" { (ctx.t("credits.when")) }
                            th scope="col" { (ctx.t("credits.type")) }
                            th scope="col" { (ctx.t("credits.what")) }
                            th scope="col" .num { (ctx.t("credits.amount")) }
                            th scope="col" .num { (ctx.t("credits.after")) }
                        } }
                        tbody {
                            @for t in &items {
                                @let amount = t["amount"].as_i64().unwrap_or(0);
                                tr {
                                    td { (time(&t["createdAt"])) }
                                    td { span.badge { (t["type"].as_str().unwrap_or_default()) } }
                                    td { (t["description"].as_str().unwrap_or_default()) }
                                    td.num class=(if amount >= 0 { "plus" } else { "minus" }) { @if amount > 0 { "+" } (amount) }
                                    td.num { (t["balanceAfter"].as_i64().unwrap_or(0)) }
                                }
                            }
                        }
                    }
                }
                (more_link(&ctx, &history, "/credits"))
            }
        }
    };
    private_page(&state, &ctx, ctx.t("credits.title"), main, &[])
}

#[handler]
pub async fn account_page(state: Data<&AppState>, backend: Data<&Backend>, req: &Request) -> Response {
    let ctx = Ctx::load(&state, &backend, req).await;
    let Some(user) = ctx.user.clone() else {
        return sign_in_redirect(&ctx);
    };
    let (keys, sessions) = tokio::join!(backend.get(req, "/api/auth/api-keys"), backend.get(req, "/api/auth/sessions"));
    let keys = keys.ok().and_then(|k| k["apiKeys"].as_array().cloned()).unwrap_or_default();
    let sessions = sessions.ok().and_then(|s| s["sessions"].as_array().cloned()).unwrap_or_default();
    let admin = matches!(user["role"].as_str(), Some("admin" | "super_admin"));
    let main = html! {
        h1 { (ctx.t("account.title")) }
        section.card #profile {
            h2 { (ctx.t("account.profile")) }
            div.profile-row {
                div.avatar.large {
                    @if let Some(img) = user["image"].as_str() { img #avatar-img src=(img) alt="" width="96" height="96"; }
                    @else { span aria-hidden="true" { (initial(&user)) } }
                }
                div.stack {
                    label.btn.secondary.small {
                        (ctx.t("account.avatar_change"))
                        input #avatar-file .sr type="file" accept="image/png,image/jpeg,image/webp";
                    }
                    @if user["image"].is_string() {
                        button.btn.small.secondary type="button" data-call="PATCH /api/auth/user" data-body="{\"removeImage\":true}" data-then="reload" { (ctx.t("account.avatar_remove")) }
                    }
                    progress #avatar-progress max="100" value="0" hidden {}
                }
            }
            form.stack data-api="PATCH /api/auth/user" data-then="message:account.saved" {
                label { (ctx.t("auth.name")) input type="text" name="name" required maxlength="100" value=(user["name"].as_str().unwrap_or_default()) autocomplete="name"; }
                label { (ctx.t("auth.email")) input type="email" value=(user["email"].as_str().unwrap_or_default()) readonly; }
                button.btn type="submit" { (ctx.t("common.save")) }
                p.msg role="status" aria-live="polite" {}
            }
            @if user["emailVerified"] == false {
                form data-api="POST /api/auth/send-verification-email" data-then="message:account.resent" {
                    p.warning { (ctx.t("account.unverified")) " " button.link type="submit" { (ctx.t("account.resend")) } }
                    p.msg role="status" aria-live="polite" {}
                }
            }
        }
        section.card #password {
            h2 { (ctx.t("account.password")) }
            form.stack data-api="POST /api/auth/change-password" data-then="message:account.password_changed" data-reset {
                input type="email" name="username" value=(user["email"].as_str().unwrap_or_default()) autocomplete="username" hidden;
                label { (ctx.t("account.current_password")) input type="password" name="currentPassword" required autocomplete="current-password"; }
                label { (ctx.t("auth.new_password")) input type="password" name="newPassword" required minlength="8" maxlength="128" autocomplete="new-password"; }
                label.check { input type="checkbox" name="revokeOtherSessions" checked; (ctx.t("account.revoke_others")) }
                button.btn type="submit" { (ctx.t("common.save")) }
                p.msg role="status" aria-live="polite" {}
            }
        }
        section.card #keys {
            h2 { (ctx.t("account.keys")) }
            p.muted { (ctx.t("account.keys_help")) }
            @if !keys.is_empty() {
                div.table-wrap { table.list {
                    thead { tr {
                        th scope="col" { (ctx.t("account.key_name")) }
                        th scope="col" { (ctx.t("account.key_prefix")) }
                        th scope="col" { (ctx.t("account.key_scope")) }
                        th scope="col" { (ctx.t("account.key_last_used")) }
                        th {}
                    } }
                    tbody { @for k in &keys { tr {
                        td { (k["name"].as_str().unwrap_or_default()) }
                        td { code { (k["prefix"].as_str().unwrap_or_default()) "…" } }
                        td { (k["scope"].as_str().unwrap_or_default()) }
                        td { @if k["lastUsedAt"].is_string() { (time(&k["lastUsedAt"])) } @else { (ctx.t("account.key_never")) } }
                        td { button.btn.small.danger type="button" data-call={ "DELETE /api/auth/api-keys/" (k["id"].as_str().unwrap_or_default()) } data-confirm="common.confirm" data-then="reload" { (ctx.t("account.revoke")) } }
                    } } }
                } }
            }
            form.inline data-api="POST /api/auth/api-keys" data-then="key" {
                label { (ctx.t("account.key_name")) input type="text" name="name" required maxlength="100" placeholder="laptop"; }
                label { (ctx.t("account.key_scope"))
                    select name="scope" {
                        option value="write" selected { "write" }
                        option value="read" { "read" }
                        @if admin { option value="admin" { "admin" } }
                    }
                }
                button.btn type="submit" { (ctx.t("account.key_create")) }
                p.msg role="status" aria-live="polite" {}
            }
            div #new-key .notice hidden {
                p { (ctx.t("account.key_created")) }
                p.row { code #new-key-value {} button.btn.small.secondary type="button" #new-key-copy { (ctx.t("common.copy")) } }
            }
        }
        section.card #sessions {
            h2 { (ctx.t("account.sessions")) }
            div.table-wrap { table.list {
                thead { tr {
                    th scope="col" { (ctx.t("account.device")) }
                    th scope="col" { (ctx.t("account.address")) }
                    th scope="col" { (ctx.t("account.created")) }
                    th scope="col" { (ctx.t("account.last_used")) }
                    th {}
                } }
                tbody { @for s in &sessions { tr {
                    td.ua { (s["userAgent"].as_str().unwrap_or("—")) @if s["current"] == true { " " span.badge.st-completed { (ctx.t("account.this_session")) } } }
                    td { (s["ipAddress"].as_str().unwrap_or("—")) }
                    td { (time(&s["createdAt"])) }
                    td { (time(&s["lastUsedAt"])) }
                    td { @if s["current"] != true {
                        button.btn.small.danger type="button" data-call={ "DELETE /api/auth/sessions/" (s["id"].as_str().unwrap_or_default()) } data-then="reload" { (ctx.t("account.revoke")) }
                    } }
                } } }
            } }
            @if sessions.len() > 1 {
                p { button.btn.secondary.small type="button" data-call="POST /api/auth/sessions/revoke-others" data-then="reload" { (ctx.t("account.revoke_others")) } }
            }
        }
        section.card.danger-zone #delete {
            h2 { (ctx.t("account.delete")) }
            p.muted { (ctx.t("account.delete_help")) }
            form.stack data-api="DELETE /api/auth/user" data-confirm="account.delete_confirm" data-then="go:/?deleted=1" {
                input type="email" name="username" value=(user["email"].as_str().unwrap_or_default()) autocomplete="username" hidden;
                label { (ctx.t("auth.password")) input type="password" name="password" autocomplete="current-password"; }
                button.btn.danger type="submit" { (ctx.t("account.delete")) }
                p.msg role="status" aria-live="polite" {}
            }
        }
    };
    private_page(&state, &ctx, ctx.t("account.title"), main, &["account.js"])
}

/// `GET /lang/{en|zh}?next=/path`: remembers the language for a year and goes back.
#[handler]
pub fn set_language(Path(tag): Path<String>, q: Query<NextQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    let Some(locale) = super::i18n::Locale::parse(&tag) else {
        return redirect(&next);
    };
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, next)
        .header(header::CACHE_CONTROL, "no-store")
        .header(
            header::SET_COOKIE,
            format!("{}={}; Path=/; Max-Age=31536000; SameSite=Lax", super::LANG_COOKIE, locale.tag()),
        )
        .finish()
}
