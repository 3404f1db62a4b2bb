//! The few HTML pages the server serves itself: `/device`, where a person approves the
//! sign-in of a CLI (RFC 8628 verification URI). The page talks to the JSON API with
//! same-origin `fetch`, so the session cookie and the CSRF origin check apply.

use poem::web::Html;
use poem::{IntoResponse, handler};

const DEVICE_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>FunMagic — approve a device</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}
input,button{font-size:1rem;padding:.5rem;margin:.25rem 0;width:100%;box-sizing:border-box}
.code{font-family:monospace;letter-spacing:.2em;text-transform:uppercase}
#msg{margin-top:1rem;font-weight:600}.who{background:#f4f4f4;padding:.75rem;border-radius:.25rem}</style></head>
<body><h1>Sign in a device</h1>
<section id="signin" hidden><p>Sign in to FunMagic first.</p>
<form id="signin-form"><input name="email" type="email" placeholder="Email" required autocomplete="username">
<input name="password" type="password" placeholder="Password" required autocomplete="current-password">
<button>Sign in</button></form></section>
<section id="enter" hidden><p>Signed in as <b id="who"></b>. Enter the code your terminal shows:</p>
<form id="enter-form"><input id="code" class="code" name="code" placeholder="ABCD-EFGH" required maxlength="9">
<button>Continue</button></form></section>
<section id="confirm" hidden><p>Only approve if <b>you</b> just started this sign-in in your own terminal.</p>
<p class="who"><b id="client"></b><br>asked <span id="age"></span> with code <span id="shown-code" class="code"></span></p>
<p>Approving gives it full access to your account as <b id="who2"></b>.</p>
<button id="approve">Approve this device</button><button id="deny" type="button">Deny</button></section>
<p id="msg" role="status"></p>
<script>
const $=s=>document.querySelector(s);const msg=t=>$('#msg').textContent=t;
const show=id=>{for(const s of ['signin','enter','confirm'])$('#'+s).hidden=s!==id};
const code=new URLSearchParams(location.search).get('user_code');if(code)$('#code').value=code;
async function api(path,opts={}){const r=await fetch(path,{credentials:'same-origin',headers:{'content-type':'application/json'},...opts});
 const body=await r.json().catch(()=>({}));if(!r.ok)throw new Error(body.error||('HTTP '+r.status));return body}
function ago(s){return s<60?'just now':s<3600?Math.floor(s/60)+' min ago':Math.floor(s/3600)+' h ago'}
async function load(){try{const s=await api('/api/auth/get-session');$('#who').textContent=s.user.email;$('#who2').textContent=s.user.email;show('enter')}
 catch(e){show('signin')}}
$('#signin-form').onsubmit=async e=>{e.preventDefault();const f=new FormData(e.target);
 try{await api('/api/auth/sign-in/email',{method:'POST',body:JSON.stringify({email:f.get('email'),password:f.get('password')})});msg('');load()}catch(err){msg(err.message)}};
let pending=null;
$('#enter-form').onsubmit=async e=>{e.preventDefault();msg('');
 try{pending=await api('/api/auth/device/pending?user_code='+encodeURIComponent($('#code').value));
  $('#client').textContent=pending.clientName||'An unnamed client';$('#age').textContent=ago(pending.ageSecs);
  $('#shown-code').textContent=pending.userCode;show('confirm')}catch(err){msg(err.message)}};
async function decide(approve){try{const r=await api('/api/auth/device/approve',{method:'POST',body:JSON.stringify({userCode:pending.userCode,approve})});
 show(null);msg(approve?('Approved '+(r.clientName||'the device')+'. You can close this page and return to your terminal.'):'Denied.')}catch(err){msg(err.message)}}
$('#approve').onclick=()=>decide(true);$('#deny').onclick=()=>decide(false);load();
</script></body></html>"#;

/// `GET /device`: never inside a frame (clickjacking), never leaks the code in a Referer.
#[handler]
pub fn device_page() -> impl IntoResponse {
    Html(DEVICE_PAGE)
        .with_header("content-security-policy", "frame-ancestors 'none'")
        .with_header("x-frame-options", "DENY")
        .with_header("referrer-policy", "no-referrer")
        .with_header("cache-control", "no-store")
}

/// `GET /api/auth/sign-in/social?provider=github&callbackURL=/path`: redirects the browser
/// to the provider (better-auth's route name). Browser-only, so not in the OpenAPI spec.
#[handler]
pub async fn social_sign_in(
    state: poem::web::Data<&crate::app::AppState>,
    poem::web::Query(params): poem::web::Query<SocialParams>,
) -> poem::Result<poem::Response> {
    use crate::accounts::oauth;
    let provider = params
        .provider
        .as_deref()
        .and_then(oauth::Provider::parse)
        .ok_or_else(|| api_error(crate::error::AppError::validation("provider must be github or google")))?;
    let (url, flow_state) = oauth::start(&state, provider, params.callback_url.as_deref()).await.map_err(api_error)?;
    let secure = if state.public_url().starts_with("https://") { "; Secure" } else { "" };
    Ok(poem::Response::builder()
        .status(poem::http::StatusCode::FOUND)
        .header(poem::http::header::LOCATION, url)
        .header(
            poem::http::header::SET_COOKIE,
            format!(
                "{}={flow_state}; Path=/api/auth/callback; HttpOnly; SameSite=Lax; Max-Age=600{secure}",
                oauth::STATE_COOKIE
            ),
        )
        .finish())
}

#[derive(Debug, serde::Deserialize)]
pub struct SocialParams {
    provider: Option<String>,
    #[serde(rename = "callbackURL")]
    callback_url: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /api/auth/callback/:provider`: the provider sends the browser back here.
#[handler]
pub async fn social_callback(
    state: poem::web::Data<&crate::app::AppState>,
    req: &poem::Request,
    poem::web::Path(provider): poem::web::Path<String>,
    poem::web::Query(params): poem::web::Query<CallbackParams>,
) -> poem::Result<poem::Response> {
    use crate::accounts::oauth;
    use crate::error::{AppError, ErrorCode, ErrorKind};
    let provider = oauth::Provider::parse(&provider).ok_or_else(|| api_error(AppError::not_found("provider")))?;
    if let Some(error) = params.error {
        return Err(api_error(AppError::new(
            ErrorKind::BadRequest,
            ErrorCode::OauthDenied,
            format!("sign-in was not completed: {error}"),
        )));
    }
    let (Some(code), Some(flow_state)) = (params.code, params.state) else {
        return Err(api_error(AppError::bad_request("code and state are required")));
    };
    let cookie = req.cookie().get(oauth::STATE_COOKIE).map(|c| c.value_str().to_string());
    let client = crate::accounts::flows::Client {
        ip: crate::auth::client_ip(req, state.settings().auth.trust_forwarded_for),
        user_agent: crate::auth::user_agent(req),
    };
    let (issued, callback) =
        oauth::finish(&state, provider, &code, &flow_state, cookie.as_deref(), &client).await.map_err(api_error)?;
    let max_age = (issued.session.expires_at - state.clock().now()).num_seconds().max(0);
    Ok(poem::Response::builder()
        .status(poem::http::StatusCode::FOUND)
        .header(poem::http::header::LOCATION, callback)
        .header(poem::http::header::SET_COOKIE, super::auth::session_cookie(&state, &issued.token, max_age))
        .header(
            poem::http::header::SET_COOKIE,
            format!("{}=; Path=/api/auth/callback; HttpOnly; Max-Age=0", oauth::STATE_COOKIE),
        )
        .finish())
}

/// An app error as the JSON error response, from a plain poem handler.
fn api_error(err: crate::error::AppError) -> poem::Error {
    let status = crate::http::error::status_of(err.kind);
    let body =
        crate::http::error::ApiError { error: err.message, code: err.code.as_str().to_string(), details: err.details };
    let mut builder = poem::Response::builder().status(status).content_type("application/json");
    if let Some(secs) = err.retry_after_secs {
        builder = builder.header(poem::http::header::RETRY_AFTER, secs.to_string());
    }
    poem::Error::from_response(builder.body(serde_json::to_vec(&body).unwrap_or_default()))
}

/// `POST /api/webhooks/stripe`: Stripe's signed events. Reads the raw body (the signature
/// covers the exact bytes), so it is a plain handler, not an OpenAPI operation.
#[handler]
pub async fn stripe_webhook(
    state: poem::web::Data<&crate::app::AppState>,
    req: &poem::Request,
    body: poem::Body,
) -> poem::Result<poem::web::Json<serde_json::Value>> {
    let payload = body
        .into_bytes_limit(crate::http::MAX_BODY_BYTES)
        .await
        .map_err(|_| api_error(crate::error::AppError::bad_request("unreadable body")))?;
    let signature = req.header("stripe-signature");
    let outcome = crate::credits::stripe::webhook(&state, signature, &payload).await.map_err(api_error)?;
    Ok(poem::web::Json(serde_json::json!({ "received": true, "outcome": format!("{outcome:?}") })))
}
