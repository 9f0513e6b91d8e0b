//! Which browser pages may open the stream: the service's own origin, and the configured ones.

/// Whether a page of `origin` (the `Origin` header) may connect to a service reached as `host`
/// (the `Host` header, or the forwarded host): the same host and port, an origin listed in
/// `allowed` (compared without case or trailing slash), or any when `allowed` holds `*`.
#[must_use]
pub fn allowed(origin: &str, host: &str, allowed: &[String]) -> bool {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    if allowed.iter().any(|listed| {
        listed == "*" || listed.trim().trim_end_matches('/').to_ascii_lowercase() == origin
    }) {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => return false,
    };
    let host = host.trim().to_ascii_lowercase();
    let without_default = |text: &str| text.strip_suffix(default_port).unwrap_or(text).to_owned();
    !authority.is_empty() && without_default(authority) == without_default(&host)
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn same_origin_pages_are_allowed_and_others_refused() {
        let none: Vec<String> = Vec::new();
        assert!(allowed("http://127.0.0.1:8080", "127.0.0.1:8080", &none));
        assert!(allowed(
            "https://Markets.example",
            "markets.example:443",
            &none
        ));
        assert!(allowed(
            "http://markets.example:80",
            "markets.example",
            &none
        ));
        assert!(!allowed("http://127.0.0.1:8081", "127.0.0.1:8080", &none));
        assert!(!allowed("https://evil.example", "markets.example", &none));
        assert!(!allowed(
            "http://markets.example.evil",
            "markets.example",
            &none
        ));
        assert!(!allowed("null", "markets.example", &none));
        assert!(!allowed("", "markets.example", &none));
    }

    #[test]
    fn listed_origins_and_the_wildcard_are_allowed() {
        let listed = vec!["https://app.example/".to_owned()];
        assert!(allowed("https://APP.example", "api.example", &listed));
        assert!(!allowed("https://other.example", "api.example", &listed));
        assert!(allowed(
            "https://any.example",
            "api.example",
            &["*".to_owned()]
        ));
    }
}
