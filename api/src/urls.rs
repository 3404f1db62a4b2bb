//! URL checks by parsing (`url::Url`, re-exported by reqwest), never by prefix: a string that
//! starts with `https://` is not yet a URL (`https://` alone, `https:// host`, `https://[`).

/// An absolute `http` or `https` URL with a host.
pub fn is_http_url(s: &str) -> bool {
    reqwest::Url::parse(s)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()))
}

/// The origin (`scheme://host[:port]`) of an http(s) URL, as browsers compare them.
pub fn origin(s: &str) -> Option<String> {
    let url = reqwest::Url::parse(s).ok().filter(|u| matches!(u.scheme(), "http" | "https"))?;
    url.host_str().filter(|h| !h.is_empty())?;
    Some(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rather_than_matching_a_prefix() {
        for ok in ["https://example.com", "http://127.0.0.1:9/v1", "https://cdn.example.com/a.png?x=1"] {
            assert!(is_http_url(ok), "{ok}");
        }
        for bad in [
            "https://",
            "https:// host",
            "https://[",
            "ftp://example.com",
            "/path",
            "example.com",
            "javascript:alert(1)",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }

    #[test]
    fn origins_drop_the_path_and_the_default_port() {
        assert_eq!(origin("https://Example.com:443/a?b").as_deref(), Some("https://example.com"));
        assert_eq!(origin("http://127.0.0.1:9000/x").as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(origin("ftp://example.com"), None);
        assert_eq!(origin("/relative"), None);
    }
}
