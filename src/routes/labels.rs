//! The fixed set of route templates that metric labels and access lines name a request by, and
//! the allocation-free lookup from a path to its template. A leaf: metrics and the request shell
//! read it without depending on the route tree.

/// Every route template, for metric labels: [`route_index`] picks one; the last is `other`.
pub const ROUTE_LABELS: [&str; 19] = [
    "/health",
    "/health/live",
    "/health/ready",
    "/metrics",
    "/openapi.json",
    "/items",
    "/cache/stats",
    "/cache/stats/reset",
    "/cache/ping",
    "/cache/clear",
    "/cache/keys",
    "/cache/purge",
    "/cache/dashboard",
    "/cache/dashboard.js",
    "/",
    "/items/{id}",
    "/cache/clear/{namespace}",
    "/cache/entries/{namespace}/{key}",
    "other",
];

/// The paths of the templates without parameters: the first entries of [`ROUTE_LABELS`].
const EXACT_ROUTES: usize = 15;

/// The route template a path belongs to, for metric labels: one of a fixed set, `other` for
/// any path the routes do not serve.
///
/// ```
/// use warp_redis_cache_service::routes::labels::route_label;
///
/// assert_eq!(route_label("/items/7"), "/items/{id}");
/// assert_eq!(route_label("/cache/entries/ns/a/b"), "/cache/entries/{namespace}/{key}");
/// assert_eq!(route_label("/items/7/x"), "other");
/// ```
pub fn route_label(path: &str) -> &'static str {
    ROUTE_LABELS[route_index(path)]
}

/// The position in [`ROUTE_LABELS`] of the template `path` belongs to (no allocation: this
/// runs on every request).
pub fn route_index(path: &str) -> usize {
    if let Some(known) = ROUTE_LABELS[..EXACT_ROUTES]
        .iter()
        .position(|known| *known == path)
    {
        return known;
    }
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next(), segments.next()) {
        (Some("items"), Some(_), None) => EXACT_ROUTES,
        (Some("cache"), Some("clear"), Some(_)) if segments.next().is_none() => EXACT_ROUTES + 1,
        (Some("cache"), Some("entries"), Some(_)) => EXACT_ROUTES + 2,
        _ => EXACT_ROUTES + 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The labelling before it avoided allocating, as the reference.
    fn reference_label(path: &str) -> &'static str {
        if let Some(known) = ROUTE_LABELS[..EXACT_ROUTES]
            .iter()
            .find(|known| **known == path)
        {
            return known;
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            ["items", _] => "/items/{id}",
            ["cache", "clear", _] => "/cache/clear/{namespace}",
            ["cache", "entries", _, ..] => "/cache/entries/{namespace}/{key}",
            _ => "other",
        }
    }

    #[test]
    fn route_labels_are_the_templates_as_before() {
        for path in [
            "",
            "/",
            "//",
            "/items",
            "/items/",
            "/items/1",
            "//items/1",
            "/items/1/",
            "/items/1/2",
            "/cache",
            "/cache/clear",
            "/cache/clear/",
            "/cache/clear/ns",
            "/cache/clear/ns/x",
            "/cache/entries",
            "/cache/entries/ns",
            "/cache/entries/ns/",
            "/cache/entries/ns/k",
            "/cache/entries/ns/k/more",
            "/health/live",
            "/health/live/",
            "/metrics",
            "/x",
            "/cache/dashboard.js",
            "/openapi.json",
        ] {
            assert_eq!(route_label(path), reference_label(path), "{path:?}");
        }
    }
}
