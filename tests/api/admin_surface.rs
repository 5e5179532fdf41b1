//! The admin surface as an attacker reaches it, over raw TCP against the real binary: a web
//! page the operator visits (cross-site POSTs, DNS rebinding) changes nothing, bearer tokens
//! are read as RFC 7235 says, and every JSON body must say it is JSON.

use crate::support::service_process::ServiceProcess;

fn status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"))
}

/// Creates item 1 and reads it twice, so the second read is a cache hit.
fn cached_item(service: &ServiceProcess) {
    let json = [("Content-Type", "application/json")];
    let created = service.exchange("POST", "/items", &json, r#"{"name":"lamp","price":1}"#);
    assert_eq!(status(&created), 201, "{created}");
    service.exchange("GET", "/items/1", &[], "");
    assert!(is_hit(service), "the item was not cached");
}

fn is_hit(service: &ServiceProcess) -> bool {
    let read = service.exchange("GET", "/items/1", &[], "");
    read.to_ascii_lowercase().contains("x-cache: hit")
}

/// Method, path, headers, body, and the status it must get.
type Attempt<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str, u16);

#[test]
fn a_web_page_the_operator_visits_cannot_clear_purge_or_reset() {
    let service = ServiceProcess::start(&[]);
    cached_item(&service);
    let form = ("Content-Type", "text/plain");
    let evil = ("Origin", "http://attacker.example");
    let cross = ("Sec-Fetch-Site", "cross-site");
    let purge = r#"{"namespaces":["items"]}"#;
    let attempts: [Attempt; 8] = [
        ("POST", "/cache/clear/items", vec![form], "x", 415),
        ("POST", "/cache/clear/items", vec![evil], "", 403),
        ("POST", "/cache/clear/items", vec![cross], "", 403),
        ("POST", "/cache/purge", vec![form], purge, 415),
        (
            "POST",
            "/cache/purge",
            vec![evil, ("Content-Type", "application/json")],
            purge,
            403,
        ),
        ("POST", "/cache/stats/reset", vec![form, evil], "", 403),
        ("DELETE", "/cache/clear", vec![("Origin", "null")], "", 403),
        (
            "POST",
            "/cache/clear/items",
            vec![("Sec-Fetch-Site", "same-site")],
            "",
            403,
        ),
    ];
    for (method, path, headers, body, expected) in attempts {
        let response = service.exchange(method, path, &headers, body);
        assert_eq!(
            status(&response),
            expected,
            "{method} {path} {headers:?}: {response}"
        );
        assert!(response.contains("\"error\""), "{response}");
    }
    assert!(is_hit(&service), "a refused request changed the cache");

    let own_origin = format!("http://127.0.0.1:{}", service.port);
    let same_origin = [
        ("Origin", own_origin.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    let cleared = service.exchange("POST", "/cache/clear/items", &same_origin, "");
    assert_eq!(status(&cleared), 200, "{cleared}");
    assert!(!is_hit(&service), "the same-origin clear did not clear");
}

#[test]
fn dns_rebinding_cannot_read_admin_answers_in_loopback_mode() {
    let service = ServiceProcess::start(&[("ADMIN__ALLOWED_HOSTS", "cache.internal")]);
    let rebound = service.exchange(
        "GET",
        "/cache/stats",
        &[("Host", "attacker.example:8080")],
        "",
    );
    assert_eq!(status(&rebound), 403, "{rebound}");
    assert!(rebound.contains("attacker.example"), "{rebound}");
    assert!(!rebound.contains("\"hits\""), "{rebound}");
    for host in [
        "localhost:8080",
        "127.0.0.1",
        "[::1]:1",
        "cache.internal:8080",
    ] {
        let allowed = service.exchange("GET", "/cache/stats", &[("Host", host)], "");
        assert_eq!(status(&allowed), 200, "{host}: {allowed}");
    }
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_401s_say_what_was_wrong() {
    let token = "pa55 #word-0x1F-1e3";
    let service = ServiceProcess::start(&[("ADMIN__TOKEN", token)]);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let value = format!("{scheme} {token}");
        let response = service.exchange("GET", "/cache/stats", &[("Authorization", &value)], "");
        assert_eq!(status(&response), 200, "{scheme}: {response}");
    }
    let cases = [
        (None, "need an Authorization"),
        (Some("Basic dXNlcjpwYXNz"), "\\\"Basic\\\" scheme"),
        (Some("Bearer wrong-token-of-some-length"), "not valid"),
        (Some("Bearer"), "no token"),
        (Some("pa55"), "scheme"),
    ];
    for (authorization, message) in cases {
        let headers: Vec<(&str, &str)> = authorization
            .map(|v| ("Authorization", v))
            .into_iter()
            .collect();
        let response = service.exchange("GET", "/cache/stats", &headers, "");
        assert_eq!(status(&response), 401, "{authorization:?}: {response}");
        assert!(response.contains(message), "{authorization:?}: {response}");
    }
}

#[test]
fn json_bodies_without_a_content_type_are_refused_with_415_and_change_nothing() {
    let service = ServiceProcess::start(&[]);
    for (method, path) in [
        ("POST", "/items"),
        ("PUT", "/items/1"),
        ("PATCH", "/items/1"),
    ] {
        let response = service.exchange(method, path, &[], r#"{"name":"lamp","price":1}"#);
        assert_eq!(status(&response), 415, "{method} {path}: {response}");
        assert!(response.contains("unsupported_media_type"), "{response}");
    }
    let listed = service.exchange("GET", "/items", &[], "");
    assert!(listed.contains("\"total\":0"), "{listed}");
    let purge = service.exchange("POST", "/cache/purge", &[], r#"{"namespaces":["items"]}"#);
    assert_eq!(status(&purge), 415, "{purge}");
}
