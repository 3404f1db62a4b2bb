//! URL checks by parsing (`url::Url`, re-exported by reqwest), never by prefix: a string that
//! starts with `https://` is not yet a URL (`https://` alone, `https:// host`, `https://[`).

/// An absolute `http` or `https` URL with a host.
pub fn is_http_url(s: &str) -> bool {
    reqwest::Url::parse(s)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()))
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
}
