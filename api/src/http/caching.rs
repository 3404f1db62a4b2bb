//! Conditional GETs of the public catalogue (`/api/tools`, `/api/tools/{slug}`,
//! `/api/banners`, `/api/credits/packages`): what the seed did with Next.js cache tags, done
//! with HTTP. The answer carries an `ETag` (a hash of its bytes) and `Cache-Control:
//! no-cache`, so a browser or CDN may keep it but asks again each time; an `If-None-Match`
//! that still matches gets `304 Not Modified` without the body. The tag is computed from
//! what would be sent, so an admin's change shows at once: there is nothing to invalidate.
//! Answers to a signed-in caller (admins may see more) are `private`.

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use sha2::{Digest, Sha256};

/// Whether `path` is one of the catalogue's GET routes.
fn is_catalogue(path: &str) -> bool {
    match path.strip_prefix("/api/tools") {
        Some("") => true,
        Some(rest) => rest.strip_prefix('/').is_some_and(|slug| !slug.is_empty() && !slug.contains('/')),
        None => matches!(path, "/api/banners" | "/api/credits/packages"),
    }
}

/// Whether an `If-None-Match` value names `etag` (weak comparison, as RFC 9110 asks for GET).
fn matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    if_none_match.split(',').any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

/// The middleware: `routes.around(caching::conditional)`.
pub async fn conditional<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) || !is_catalogue(req.uri().path()) {
        return next.call(req).await.map(IntoResponse::into_response);
    }
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
    let private = req.headers().contains_key(header::AUTHORIZATION) || req.headers().contains_key(header::COOKIE);
    // The router answers HEAD with an empty body: ask for the GET, so the tag is the GET's.
    let head = req.method() == Method::HEAD;
    let mut req = req;
    if head {
        req.set_method(Method::GET);
    }
    let resp = next.call(req).await?.into_response();
    if resp.status() != StatusCode::OK {
        return Ok(resp);
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = body.into_bytes().await?;
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..32]);
    let headers = &mut parts.headers;
    headers.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex is a valid header value"));
    let cache = if private { "private, no-cache" } else { "public, no-cache" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.append(header::VARY, HeaderValue::from_static("Accept-Language, Authorization, Cookie"));
    if if_none_match.is_some_and(|v| matches(&v, &etag)) {
        parts.status = StatusCode::NOT_MODIFIED;
        headers.remove(header::CONTENT_LENGTH);
        headers.remove(header::CONTENT_TYPE);
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    if head {
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_paths_and_tag_matching() {
        for path in ["/api/tools", "/api/tools/figme", "/api/banners", "/api/credits/packages"] {
            assert!(is_catalogue(path), "{path}");
        }
        for path in ["/api/tools/", "/api/tools/a/b", "/api/toolsx", "/api/credits/balance", "/api/admin/tools"] {
            assert!(!is_catalogue(path), "{path}");
        }
        assert!(matches("\"abc\"", "\"abc\""));
        assert!(matches("W/\"abc\", \"def\"", "\"abc\""));
        assert!(matches("*", "\"abc\""));
        assert!(!matches("\"abd\"", "\"abc\""));
    }
}
