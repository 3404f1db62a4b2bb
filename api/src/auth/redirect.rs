//! Where a redirect or a link may point: the one rule shared by the OAuth `callbackURL` and
//! banner links, so neither can send a browser to another site.
//!
//! Browsers drop tabs and newlines inside URLs and read `\` as `/`, so `/\t/evil.example`
//! and `/\evil.example` both become `//evil.example` — another host. A candidate path is
//! therefore refused when it holds any control character, whitespace or backslash, and what
//! is left must resolve, against the server's public URL, to that same origin.

use reqwest::Url;

fn has_forbidden_chars(s: &str) -> bool {
    s.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\')
}

/// `candidate` when it is a path on `public_url`'s own origin (`/…`, with query and
/// fragment kept), normalised as a browser would resolve it; `None` otherwise.
pub fn same_origin_path(public_url: &str, candidate: &str) -> Option<String> {
    if !candidate.starts_with('/') || candidate.starts_with("//") || has_forbidden_chars(candidate) {
        return None;
    }
    let base = Url::parse(public_url).ok()?;
    let resolved = base.join(candidate).ok()?;
    if resolved.origin() != base.origin() {
        return None;
    }
    let mut path = resolved.path().to_string();
    if let Some(q) = resolved.query() {
        path.push('?');
        path.push_str(q);
    }
    if let Some(f) = resolved.fragment() {
        path.push('#');
        path.push_str(f);
    }
    (path.starts_with('/') && !path.starts_with("//")).then_some(path)
}

/// Where the OAuth flow may send the browser back to (`callbackURL`): a path, resolved
/// against the web app (`web_url`, else this server); or an absolute URL whose origin is
/// exactly this server's, the web app's or one of `origins` (`auth.cors_origins`). `None`
/// for anything else.
pub fn callback_target(public_url: &str, web_url: Option<&str>, origins: &[String], candidate: &str) -> Option<String> {
    if candidate.starts_with('/') {
        let path = same_origin_path(web_url.unwrap_or(public_url), candidate)?;
        return Some(match web_url {
            Some(web) => format!("{}{path}", web.trim_end_matches('/')),
            None => path,
        });
    }
    if has_forbidden_chars(candidate) {
        return None;
    }
    let url = Url::parse(candidate).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let origin = url.origin().ascii_serialization();
    let same = |base: &str| Url::parse(base).is_ok_and(|b| b.origin().ascii_serialization() == origin);
    (same(public_url) || web_url.is_some_and(same) || origins.iter().any(|o| same(o))).then(|| url.to_string())
}

/// A link an admin may put on a banner: an absolute `http(s)` URL with a host, or a
/// same-origin path (see [`same_origin_path`]). Returns the link as stored.
pub fn safe_link(public_url: &str, link: &str) -> Option<String> {
    if link.starts_with('/') {
        return same_origin_path(public_url, link).map(|_| link.to_string());
    }
    if has_forbidden_chars(link) {
        return None;
    }
    let url = Url::parse(link).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty()))
        .then(|| link.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://app.example.com";

    #[test]
    fn only_same_origin_paths_pass() {
        for ok in ["/", "/tools/x?a=1#top", "/a/../b", "/%2F%2Fescaped"] {
            let got = same_origin_path(BASE, ok).unwrap_or_else(|| panic!("{ok:?} refused"));
            assert!(got.starts_with('/') && !got.starts_with("//"), "{ok:?} → {got:?}");
        }
        assert_eq!(same_origin_path(BASE, "/a/../b").as_deref(), Some("/b"));
        for bad in [
            "//evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/ /evil.example",
            "/\\evil.example",
            "/\\/evil.example",
            "https://evil.example/",
            "evil.example",
            "javascript:alert(1)",
            "",
            "/\u{0}x",
            "/\u{a0}/evil.example",
        ] {
            assert_eq!(same_origin_path(BASE, bad), None, "{bad:?} must be refused");
        }
    }

    #[test]
    fn banner_links_are_http_urls_or_safe_paths() {
        assert!(safe_link(BASE, "https://shop.example.com/sale").is_some());
        assert!(safe_link(BASE, "/pricing").is_some());
        for bad in [
            "/\\evil.example",
            "//evil.example",
            "javascript:alert(1)",
            "http://",
            "https://a b.example/",
            "data:text/html,x",
            "ftp://x.example",
        ] {
            assert_eq!(safe_link(BASE, bad), None, "{bad:?} must be refused");
        }
    }

    #[test]
    fn callbacks_to_configured_origins_only() {
        let origins = vec!["https://admin.example.com".to_string()];
        let web = Some("https://app.example.com");
        let t = |web: Option<&str>, c: &str| callback_target(BASE, web, &origins, c);
        assert_eq!(t(None, "/done").as_deref(), Some("/done"));
        assert_eq!(t(web, "/done?x=1").as_deref(), Some("https://app.example.com/done?x=1"));
        assert_eq!(t(web, "https://app.example.com/welcome").as_deref(), Some("https://app.example.com/welcome"));
        assert_eq!(t(None, "https://admin.example.com/").as_deref(), Some("https://admin.example.com/"));
        assert_eq!(t(None, "https://app.example.com/x").as_deref(), Some("https://app.example.com/x"), "this server");
        for refused in [
            "https://evil.example/",
            "https://app.example.com.evil.example/",
            "http://app.example.com/",
            "https://app.example.com:8443/",
            "https://user@admin.example.com/",
            "javascript:alert(1)",
            "//evil.example",
            "https://admin.example.com/\t",
        ] {
            assert_eq!(t(web, refused), None, "{refused}");
        }
    }
}
