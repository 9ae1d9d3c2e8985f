//! The console's pages and where the browser is among them: the route lives in
//! `location.hash` (`#/domains/a.example`), so reloading, bookmarking and the back button
//! work without the backend knowing about pages. Which view shows a route is the app's
//! business, not this module's.

use crate::api::segment;

/// The console's pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The domain list (also where anything unknown lands).
    Domains,
    /// One domain's page, by name.
    Domain(String),
    /// Enabling many names at once.
    Enable,
    /// Counts, expiries and failures.
    Overview,
}

impl Route {
    /// `#/domains/a.example` and the like; anything else is the domain list.
    pub fn parse(hash: &str) -> Route {
        let path = hash.trim_start_matches('#').trim_start_matches('/');
        match path.split_once('/') {
            Some(("domains", name)) if !name.is_empty() => Route::Domain(decode(name)),
            _ => match path {
                "enable" => Route::Enable,
                "overview" => Route::Overview,
                _ => Route::Domains,
            },
        }
    }

    /// The `href` of a link to this page, as [`Route::parse`] reads it back.
    pub fn href(&self) -> String {
        match self {
            Route::Domains => "#/domains".into(),
            Route::Domain(name) => format!("#/domains/{}", segment(name)),
            Route::Enable => "#/enable".into(),
            Route::Overview => "#/overview".into(),
        }
    }
}

/// A percent-encoded name as typed; one that does not decode is kept as it came rather than
/// lost.
fn decode(s: &str) -> String {
    js_decode(s).unwrap_or_else(|| s.to_owned())
}

#[cfg(target_arch = "wasm32")]
fn js_decode(s: &str) -> Option<String> {
    js_sys::decode_uri_component(s).ok().map(String::from)
}

/// js-sys functions panic off wasm32; the host (tests, clippy) keeps names as they came.
#[cfg(not(target_arch = "wasm32"))]
fn js_decode(_: &str) -> Option<String> {
    None
}

/// The page the browser is on.
pub fn current() -> Route {
    let hash = web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default();
    Route::parse(&hash)
}

/// Go to `route`. Only the hash changes: the `hashchange` listener renders the view.
pub fn go(route: &Route) {
    if let Some(w) = web_sys::window() {
        let _ = w.location().set_hash(&route.href());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        assert_eq!(Route::parse(""), Route::Domains);
        assert_eq!(Route::parse("#/enable"), Route::Enable);
        assert_eq!(Route::parse("#/overview"), Route::Overview);
        assert_eq!(
            Route::parse("#/domains/a.example"),
            Route::Domain("a.example".into())
        );
        assert_eq!(Route::parse("#/domains/"), Route::Domains);
        assert_eq!(
            Route::Domain("a.example".into()).href(),
            "#/domains/a.example"
        );
    }
}
