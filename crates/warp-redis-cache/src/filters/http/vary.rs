//! `Vary` (RFC 9111 section 4.1): a stored response is reused only for requests whose
//! selecting header fields match those of the request that caused it. The values are kept with
//! the entry, normalised (lines combined, whitespace around commas dropped, and for the
//! `Accept*` fields case and order ignored), so equivalent requests match.

use warp::http::header::{HeaderMap, HeaderName, VARY};

/// The selecting fields of a stored response: each name (lower case) with the normalised value
/// the request that caused it had (`None`: it had no such field).
pub(crate) type Selecting = Vec<(String, Option<String>)>;

/// `Vary: *`: the response matches no later request and is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VaryStar;

/// The selecting fields of `response` with `request`'s values; empty when it does not vary.
pub(crate) fn selecting(request: &HeaderMap, response: &HeaderMap) -> Result<Selecting, VaryStar> {
    let mut names: Vec<String> = Vec::new();
    for value in response.get_all(VARY).iter() {
        let Ok(value) = value.to_str() else {
            return Err(VaryStar);
        };
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Err(VaryStar);
            }
            let name = name.to_ascii_lowercase();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names
        .into_iter()
        .map(|name| {
            let value = normalised(request, &name);
            (name, value)
        })
        .collect())
}

/// Whether `request` matches the selecting fields stored with an entry.
pub(crate) fn matches(stored: &Selecting, request: &HeaderMap) -> bool {
    stored
        .iter()
        .all(|(name, value)| normalised(request, name) == *value)
}

/// The request's value of `name`, normalised; `None` when absent.
fn normalised(request: &HeaderMap, name: &str) -> Option<String> {
    let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
    let mut lines = request.get_all(&name).iter().peekable();
    lines.peek()?;
    // Bytes that are not UTF-8 are kept distinct (escaped), never merged into U+FFFD.
    let text = |bytes: &[u8]| match std::str::from_utf8(bytes) {
        // `%` is escaped too, so an escaped byte never equals a literal text.
        Ok(text) => text.replace('%', "%25"),
        Err(_) => bytes.iter().map(|b| format!("%{b:02x}")).collect(),
    };
    let mut items: Vec<String> = lines
        .flat_map(|v| {
            text(v.as_bytes())
                .split(',')
                .map(|i| i.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|item| !item.is_empty())
        .collect();
    if name.as_str().starts_with("accept") {
        for item in &mut items {
            item.retain(|c| c != ' ' && c != '\t');
            item.make_ascii_lowercase();
        }
        items.sort_unstable();
    }
    Some(items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn requests_match_on_the_selecting_fields_only() {
        let response = headers(&[("vary", "Foo, Bar"), ("vary", "foo")]);
        let stored = selecting(&headers(&[("foo", "1"), ("other", "x")]), &response).unwrap();
        assert_eq!(
            stored,
            vec![("foo".into(), Some("1".into())), ("bar".into(), None)]
        );
        assert!(matches(&stored, &headers(&[("foo", "1"), ("other", "y")])));
        assert!(!matches(&stored, &headers(&[("foo", "2")])));
        assert!(!matches(&stored, &headers(&[("foo", "1"), ("bar", "")])));
        assert!(!matches(&stored, &headers(&[])));
    }

    #[test]
    fn values_are_normalised() {
        let response = headers(&[("vary", "Accept-Language, Foo")]);
        let stored = selecting(
            &headers(&[("accept-language", "en, FR;q=0.5"), ("foo", "a, b")]),
            &response,
        )
        .unwrap();
        assert!(matches(
            &stored,
            &headers(&[
                ("accept-language", "fr; q=0.5,en"),
                ("foo", "a"),
                ("foo", "b")
            ])
        ));
    }

    #[test]
    fn bytes_that_are_not_text_never_match_a_text_that_spells_their_escape() {
        let response = headers(&[("vary", "X-Token")]);
        let mut raw = HeaderMap::new();
        raw.insert(
            "x-token",
            warp::http::HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        let stored = selecting(&raw, &response).unwrap();
        assert!(matches(&stored, &raw));
        assert!(!matches(&stored, &headers(&[("x-token", "%ff")])));
        let mut other = HeaderMap::new();
        other.insert(
            "x-token",
            warp::http::HeaderValue::from_bytes(b"\xfe").unwrap(),
        );
        assert!(!matches(&stored, &other));
    }

    #[test]
    fn vary_star_matches_nothing() {
        assert_eq!(
            selecting(&headers(&[]), &headers(&[("vary", "foo, *")])),
            Err(VaryStar)
        );
    }
}
