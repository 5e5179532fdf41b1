//! One test per RFC 9111 rule the HTTP semantics implement, on headers alone.

use super::*;
use std::time::UNIX_EPOCH;
use warp::http::HeaderValue;

const NOW: u64 = 1_700_000_000_000;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn date(offset_secs: i64) -> String {
    let at =
        UNIX_EPOCH + Duration::from_millis(NOW) + Duration::from_secs(offset_secs.max(0) as u64)
            - Duration::from_secs((-offset_secs).max(0) as u64);
    httpdate::fmt_http_date(at)
}

const LIMITS: Limits = Limits {
    heuristic_cap: Duration::from_secs(86_400),
    keep_stale: Duration::from_secs(3600),
    stale_if_error: Duration::from_secs(300),
    cookie_keyed: false,
    most: Duration::from_secs(10 * 365 * 86_400),
};

fn judge_with(
    status: u16,
    request: &[(&str, &str)],
    response: &[(&str, &str)],
) -> Result<Judged, NotStorable> {
    let (request, response) = (headers(request), headers(response));
    judge(
        &Exchange {
            request: &request,
            status: StatusCode::from_u16(status).unwrap(),
            headers: &response,
            request_time_ms: NOW,
            response_time_ms: NOW,
        },
        LIMITS,
    )
}

fn lifetime(response: &[(&str, &str)]) -> Result<u64, NotStorable> {
    judge_with(200, &[], response).map(|j| j.lifetime_ms / 1000)
}

#[test]
fn rule_4_2_1_s_maxage_wins_over_max_age_which_wins_over_expires() {
    let now = date(0);
    let later = date(100);
    assert_eq!(
        lifetime(&[("cache-control", "max-age=10, s-maxage=20")]),
        Ok(20)
    );
    assert_eq!(
        lifetime(&[
            ("cache-control", "max-age=10"),
            ("date", &now),
            ("expires", &later)
        ]),
        Ok(10)
    );
    assert_eq!(lifetime(&[("date", &now), ("expires", &later)]), Ok(100));
}

#[test]
fn rule_5_3_an_expires_that_is_not_a_date_is_expired_not_heuristic() {
    let (now, modified) = (date(0), date(-864_000));
    for expires in ["0", "-1"] {
        assert_eq!(
            lifetime(&[
                ("date", &now),
                ("expires", expires),
                ("last-modified", &modified)
            ]),
            Ok(0),
            "{expires}"
        );
    }
}

#[test]
fn rule_5_2_2_3_must_understand_stores_only_known_statuses() {
    assert_eq!(
        judge_with(
            299,
            &[],
            &[("cache-control", "must-understand, max-age=60")]
        ),
        Err(NotStorable::Directive)
    );
    assert!(judge_with(
        200,
        &[],
        &[("cache-control", "must-understand, max-age=60")]
    )
    .is_ok());
}

#[test]
fn rule_5_3_invalid_or_repeated_expires_is_in_the_past() {
    let now = date(0);
    for expires in ["0", "not a date", "Thu, 01 Jan 1970 00:00:00 GMT"] {
        assert_eq!(
            lifetime(&[("date", &now), ("expires", expires), ("etag", "\"a\"")]),
            Ok(0),
            "{expires}"
        );
    }
}

#[test]
fn rule_4_2_2_heuristic_freshness_only_for_listed_statuses_or_public() {
    let (now, modified) = (date(0), date(-10_000));
    let response = [("date", now.as_str()), ("last-modified", modified.as_str())];
    assert_eq!(lifetime(&response), Ok(1000));
    assert_eq!(
        judge_with(302, &[], &response),
        Err(NotStorable::NoFreshness)
    );
    let public = [
        ("date", now.as_str()),
        ("last-modified", modified.as_str()),
        ("cache-control", "public"),
    ];
    assert_eq!(
        judge_with(302, &[], &public).map(|j| j.lifetime_ms),
        Ok(1_000_000)
    );
    // No freshness and nothing to revalidate with: not worth storing.
    assert_eq!(lifetime(&[]), Err(NotStorable::NoFreshness));
}

#[test]
fn rule_3_any_final_status_with_explicit_freshness_is_stored_but_not_partial_ones() {
    for status in [299, 302, 400, 500, 599] {
        assert!(
            judge_with(status, &[], &[("cache-control", "max-age=60")]).is_ok(),
            "{status}"
        );
    }
    assert_eq!(
        judge_with(206, &[], &[("cache-control", "max-age=60")]),
        Err(NotStorable::Status)
    );
}

#[test]
fn rule_5_2_2_no_store_private_and_must_understand() {
    assert_eq!(
        lifetime(&[("cache-control", "no-store, max-age=60")]),
        Err(NotStorable::Directive)
    );
    assert_eq!(
        lifetime(&[("cache-control", "private, max-age=60")]),
        Err(NotStorable::Directive)
    );
    assert_eq!(
        lifetime(&[("cache-control", "must-understand, no-store, max-age=60")]),
        Ok(60)
    );
}

#[test]
fn rule_5_2_2_4_no_cache_is_stored_stale_and_never_served_unrevalidated() {
    let judged = judge_with(
        200,
        &[],
        &[("cache-control", "no-cache, max-age=60"), ("etag", "\"a\"")],
    )
    .unwrap();
    assert_eq!(judged.lifetime_ms, 0);
    assert!(judged.must_revalidate);
    assert_eq!(
        lifetime(&[("cache-control", "no-cache, max-age=60")]),
        Err(NotStorable::NoFreshness)
    );
}

#[test]
fn rule_4_2_4_must_revalidate_and_s_maxage_forbid_stale_windows() {
    let cc = "max-age=1, stale-while-revalidate=60, stale-if-error=60";
    let plain = judge_with(200, &[], &[("cache-control", cc)]).unwrap();
    assert_eq!(
        (plain.stale_while_revalidate_ms, plain.stale_if_error_ms),
        (60_000, 60_000)
    );
    // Silent on errors: the policy's window applies (serving stale when disconnected).
    let silent = judge_with(200, &[], &[("cache-control", "max-age=1")]).unwrap();
    assert_eq!(silent.stale_if_error_ms, 300_000);
    for strict in ["must-revalidate", "proxy-revalidate", "s-maxage=1"] {
        let value = format!("{cc}, {strict}");
        let judged = judge_with(200, &[], &[("cache-control", &value)]).unwrap();
        assert!(judged.must_revalidate, "{strict}");
        assert_eq!(
            (judged.stale_while_revalidate_ms, judged.stale_if_error_ms),
            (0, 0)
        );
    }
}

#[test]
fn rule_4_2_3_age_is_the_larger_of_apparent_and_corrected_age() {
    let (request, response) = (
        HeaderMap::new(),
        headers(&[
            ("cache-control", "max-age=600"),
            ("age", "30"),
            ("date", &date(-50)),
        ]),
    );
    let exchange = Exchange {
        request: &request,
        status: StatusCode::OK,
        headers: &response,
        request_time_ms: NOW - 2000,
        response_time_ms: NOW,
    };
    assert_eq!(judge(&exchange, LIMITS).unwrap().initial_age_ms, 50_000);
    let response = headers(&[
        ("cache-control", "max-age=600"),
        ("age", "30"),
        ("date", &date(0)),
    ]);
    let exchange = Exchange {
        headers: &response,
        ..exchange
    };
    assert_eq!(judge(&exchange, LIMITS).unwrap().initial_age_ms, 32_000);
}

#[test]
fn rule_5_1_age_uses_the_first_member_and_ignores_what_is_not_digits() {
    for (value, expected) in [
        ("7200, 0", Some(7200)),
        ("0, 7200", Some(0)),
        ("abc", None),
        ("-7200", None),
        ("7200.0", None),
        ("2147483649", Some(DELTA_SECONDS_CAP)),
    ] {
        assert_eq!(age_secs(&headers(&[("age", value)])), expected, "{value}");
    }
    assert_eq!(
        age_secs(&headers(&[("age", "7200"), ("age", "0")])),
        Some(7200)
    );
}

#[test]
fn rule_3_5_authorization_needs_public_s_maxage_or_must_revalidate() {
    let auth = [("authorization", "Basic eDp5")];
    assert_eq!(
        judge_with(200, &auth, &[("cache-control", "max-age=60")]),
        Err(NotStorable::Credentials)
    );
    for cc in [
        "public, max-age=60",
        "s-maxage=60",
        "max-age=60, must-revalidate",
    ] {
        assert!(
            judge_with(200, &auth, &[("cache-control", cc)]).is_ok(),
            "{cc}"
        );
    }
}

#[test]
fn cookie_requests_share_only_public_responses_unless_the_key_varies_on_cookie() {
    let cookie = [("cookie", "user=a")];
    let private_ish = [("cache-control", "max-age=60")];
    assert_eq!(
        judge_with(200, &cookie, &private_ish),
        Err(NotStorable::Credentials)
    );
    assert!(judge_with(200, &cookie, &[("cache-control", "public, max-age=60")]).is_ok());
    let (request, response) = (headers(&cookie), headers(&private_ish));
    let keyed = Limits {
        cookie_keyed: true,
        ..LIMITS
    };
    let exchange = Exchange {
        request: &request,
        status: StatusCode::OK,
        headers: &response,
        request_time_ms: NOW,
        response_time_ms: NOW,
    };
    assert!(judge(&exchange, keyed).is_ok());
    let stored = stored_headers(&response).unwrap();
    assert_eq!(
        unusable_for(&stored, &Vec::new(), &request, false),
        Some("credentials")
    );
    assert_eq!(unusable_for(&stored, &Vec::new(), &request, true), None);
}

#[test]
fn rule_4_1_vary_star_is_not_stored() {
    assert_eq!(
        lifetime(&[("cache-control", "max-age=60"), ("vary", "*")]),
        Err(NotStorable::Vary)
    );
}

#[test]
fn rule_4_3_4_a_304_replaces_stored_fields_but_not_framing() {
    let stored = vec![
        ("content-type".to_string(), "text/plain".to_string()),
        ("test-header".to_string(), "old".to_string()),
        ("cache-control".to_string(), "max-age=1".to_string()),
    ];
    let updated = updated_headers(
        &stored,
        &headers(&[
            ("test-header", "new"),
            ("cache-control", "max-age=3600"),
            ("content-length", "99"),
            ("content-type", "text/html"),
        ]),
    );
    assert!(updated.contains(&("test-header".into(), "new".into())));
    assert!(updated.contains(&("cache-control".into(), "max-age=3600".into())));
    assert!(updated.contains(&("content-type".into(), "text/plain".into())));
    assert!(!updated.iter().any(|(name, _)| name == "content-length"));
}

#[test]
fn rule_4_3_2_client_conditionals_are_answered_from_the_stored_validators() {
    let stored = headers(&[("etag", "\"v1\""), ("last-modified", &date(-3000))]);
    let ok = StatusCode::OK;
    assert!(not_modified(
        &headers(&[("if-none-match", "W/\"v1\"")]),
        ok,
        &stored
    ));
    assert!(!not_modified(
        &headers(&[("if-none-match", "\"v2\"")]),
        ok,
        &stored
    ));
    assert!(not_modified(
        &headers(&[("if-modified-since", &date(-10))]),
        ok,
        &stored
    ));
    assert!(!not_modified(
        &headers(&[("if-modified-since", &date(-4000))]),
        ok,
        &stored
    ));
    // If-None-Match wins over If-Modified-Since.
    assert!(!not_modified(
        &headers(&[
            ("if-none-match", "\"v2\""),
            ("if-modified-since", &date(-10))
        ]),
        ok,
        &stored
    ));
    assert!(!not_modified(
        &headers(&[("if-none-match", "\"v1\"")]),
        StatusCode::NOT_FOUND,
        &stored
    ));
}

#[test]
fn connection_headers_framing_and_age_are_not_stored() {
    let stored = stored_headers(&headers(&[
        ("connection", "x-hop"),
        ("x-hop", "1"),
        ("content-length", "5"),
        ("age", "3"),
        ("date", "x"),
        ("etag", "\"a\""),
    ]))
    .unwrap();
    let names: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["date", "etag"]);
}

#[test]
fn rule_5_6_7_dates_are_read_in_all_three_formats_and_any_case() {
    let expected = parse_date_ms("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
    assert_eq!(expected, 784_111_777_000);
    for text in [
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "SUN, 06 NOV 1994 08:49:37 gmt",
        "Mon, 06 Nov 1994 08:49:37 GMT",
    ] {
        assert_eq!(parse_date_ms(text), Some(expected), "{text}");
    }
    for bad in [
        "0",
        "yesterday",
        "Sun, 06 Nov 1994",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun 06 Nov 1994 08:49:37 GMT",
        "Sun,  06 Nov 1994 08:49:37 GMT",
        "Sun, 06-Nov-1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
    ] {
        assert_eq!(parse_date_ms(bad), None, "{bad}");
    }
    assert_eq!(date(0).len(), 29);
}
