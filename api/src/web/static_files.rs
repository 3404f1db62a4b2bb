//! The web UI's static files (`api/web/static/`), embedded in the binary with rust-embed
//! and served under `/static/<bundle hash>/<path>`: the hash covers every file, so a page
//! names files that never change under that address (`immutable`, cached for a year), and
//! relative imports between the ES modules keep working. A request for another hash (a page
//! rendered by an older process during a rolling deploy) still gets today's file, revalidated
//! on every use. Text files are gzipped once, on first use, for clients that accept it.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{LazyLock, Mutex};

use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Path;
use poem::{IntoResponse, Request, Response, handler};
use sha2::Digest;

#[derive(rust_embed::Embed)]
#[folder = "web/static/"]
struct Files;

/// A hash of every file's name and content (12 hex digits).
static BUNDLE: LazyLock<String> = LazyLock::new(|| {
    let mut names: Vec<String> = Files::iter().map(|n| n.to_string()).collect();
    names.sort();
    let mut hasher = sha2::Sha256::new();
    for name in names {
        if let Some(file) = Files::get(&name) {
            hasher.update(name.as_bytes());
            hasher.update(file.metadata.sha256_hash());
        }
    }
    hex::encode(hasher.finalize())[..12].to_string()
});

/// Gzipped bodies of the text files, made on first request.
static GZIPPED: LazyLock<Mutex<HashMap<String, bytes::Bytes>>> = LazyLock::new(Default::default);

/// The address of a static file, e.g. `url("app.js")` → `/static/3f2a…/app.js`.
pub fn url(path: &str) -> String {
    format!("/static/{}/{path}", *BUNDLE)
}

/// The bundle's hash (in the page's `<meta>`, for tests and debugging).
pub fn bundle() -> &'static str {
    &BUNDLE
}

/// The raw content of a file (for size budgets and tests).
pub fn content(path: &str) -> Option<Vec<u8>> {
    Files::get(path).map(|f| f.data.into_owned())
}

/// The names of every embedded file.
pub fn names() -> Vec<String> {
    Files::iter().map(|n| n.to_string()).collect()
}

fn is_text(mime: &str) -> bool {
    mime.starts_with("text/") || mime.contains("javascript") || mime.contains("json") || mime.contains("svg")
}

/// `GET /static/:hash/*path`.
#[handler]
pub fn serve(req: &Request, Path((hash, path)): Path<(String, String)>) -> Response {
    let Some(file) = Files::get(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mime = file.metadata.mimetype().to_string();
    let mime = if path.ends_with(".js") { "text/javascript; charset=utf-8".to_string() } else { mime };
    let cache = if hash == *BUNDLE { "public, max-age=31536000, immutable" } else { "no-cache" };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..12]));
    if req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains(&etag)) {
        return StatusCode::NOT_MODIFIED
            .with_header(header::ETAG, etag)
            .with_header(header::CACHE_CONTROL, cache)
            .into_response();
    }
    let accepts_gzip = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().split(';').next() == Some("gzip")));
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, mime.clone())
        .header(header::CACHE_CONTROL, cache)
        .header(header::ETAG, etag)
        .header(header::VARY, "accept-encoding")
        .header("x-content-type-options", "nosniff");
    let body = if accepts_gzip && is_text(&mime) {
        builder = builder.header(header::CONTENT_ENCODING, "gzip");
        gzipped(&path, &file.data)
    } else {
        bytes::Bytes::from(file.data.into_owned())
    };
    let mut resp = builder.body(body);
    if let Ok(v) = HeaderValue::from_str("same-origin") {
        resp.headers_mut().insert("cross-origin-resource-policy", v);
    }
    resp
}

fn gzipped(path: &str, data: &[u8]) -> bytes::Bytes {
    let mut cache = GZIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(body) = cache.get(path) {
        return body.clone();
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let body = match enc.write_all(data).and_then(|_| enc.finish()) {
        Ok(v) => bytes::Bytes::from(v),
        Err(_) => bytes::Bytes::copy_from_slice(data),
    };
    cache.insert(path.to_string(), body.clone());
    body
}

/// The gzipped size of a file (what a browser transfers).
pub fn gzipped_len(path: &str) -> Option<usize> {
    let file = Files::get(path)?;
    Some(gzipped(path, &file.data).len())
}
