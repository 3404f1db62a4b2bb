//! The browser-only routes outside the spec: social sign-in (redirects to and back from the
//! provider) and the Stripe webhook. The web UI's pages are in `crate::web`.

use poem::handler;

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
    let body = crate::http::error::ApiError::new(err.message, err.code.as_str().to_string(), err.details);
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
