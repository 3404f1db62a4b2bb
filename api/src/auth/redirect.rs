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
}
