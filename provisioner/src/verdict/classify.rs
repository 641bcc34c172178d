//! The web app's route classes, from a request's method and URL: the same routes, with the
//! same limits, as the web app mounts them (`links`, `ui`, `health`, `metrics`), so the verdict
//! judges each request under the policy that actually decided it.

use clusterlab_contract::route;

/// The route class that limits `method` on `url`, or `None` for a request the web app does
/// not limit (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, paths of several segments
/// under `GET`) or
/// that is no HTTP URL at all.
pub fn route_class(method: &str, url: &str) -> Option<&'static str> {
    let url = url::Url::parse(url).ok()?;
    let path = url.path().strip_prefix('/')?;
    let segments: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    match (method, segments.as_slice()) {
        ("POST", ["shorten"]) => Some(route::SHORTEN),
        // `GET /shorten` is answered 405 by a route of its own, limited by `default`.
        ("GET" | "HEAD", [] | ["shorten"]) => Some(route::DEFAULT),
        ("GET" | "HEAD", ["healthz" | "readyz" | "metrics" | "openapi.json"]) => None,
        ("GET" | "HEAD", [code]) if !code.is_empty() => Some(route::REDIRECT),
        // Every other method, on any path, gets a 405 from the app's limited fallback.
        ("POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | "TRACE", _) => Some(route::DEFAULT),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_fall_in_the_web_apps_route_classes() {
        let base = "http://10.77.0.10";
        for (method, path, class) in [
            ("POST", "/shorten", Some(route::SHORTEN)),
            ("POST", "/shorten?x=1", Some(route::SHORTEN)),
            ("GET", "/Ab3xY9z", Some(route::REDIRECT)),
            ("HEAD", "/Ab3xY9z", Some(route::REDIRECT)),
            ("GET", "/", Some(route::DEFAULT)),
            ("GET", "/?q=1", Some(route::DEFAULT)),
            ("GET", "/shorten", Some(route::DEFAULT)),
            ("PUT", "/shorten", Some(route::DEFAULT)),
            ("DELETE", "/Ab3xY9z", Some(route::DEFAULT)),
            ("POST", "/a/b", Some(route::DEFAULT)),
            ("GET", "/healthz", None),
            ("GET", "/readyz", None),
            ("GET", "/metrics", None),
            ("GET", "/openapi.json", None),
            ("GET", "/a/b", None),
            ("GET", "/Ab3xY9z/", None),
            ("TRACE", "/", Some(route::DEFAULT)),
            ("CONNECT", "/", None),
        ] {
            assert_eq!(
                route_class(method, &format!("{base}{path}")),
                class,
                "{method} {path}"
            );
        }
        assert_eq!(route_class("GET", "shorten"), None, "a k6 name, not a URL");
    }
}
