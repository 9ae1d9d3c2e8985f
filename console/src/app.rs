//! The session (the token in `sessionStorage`), routing by `location.hash`, and one listener
//! per event type for the whole page, routing by `data-action` (so re-rendered views add no
//! listeners).

use std::cell::RefCell;

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{Element, Event};

use crate::api::Api;
use crate::dom::{self, action_button, add, attrs, el, link, text};
use crate::views;

/// Where the token lives for the tab's lifetime: not in a cookie, not in a URL.
const TOKEN_KEY: &str = "acme-edge-admin-token";

/// The console's pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Domains,
    Domain(String),
    Enable,
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

    pub fn href(&self) -> String {
        match self {
            Route::Domains => "#/domains".into(),
            Route::Domain(name) => format!("#/domains/{}", crate::api::segment(name)),
            Route::Enable => "#/enable".into(),
            Route::Overview => "#/overview".into(),
        }
    }
}

fn decode(s: &str) -> String {
    js_decode(s).unwrap_or_else(|| s.to_owned())
}

#[cfg(target_arch = "wasm32")]
fn js_decode(s: &str) -> Option<String> {
    js_sys::decode_uri_component(s).ok().map(String::from)
}

#[cfg(not(target_arch = "wasm32"))]
fn js_decode(_: &str) -> Option<String> {
    None
}

#[derive(Default)]
struct Session {
    api: Option<Api>,
    /// Bumped at every sign-in and sign-out: background loops of an older session stop.
    generation: u64,
}

thread_local! {
    static SESSION: RefCell<Session> = RefCell::new(Session::default());
}

/// The signed-in API, if any.
pub fn api() -> Option<Api> {
    SESSION.with(|s| s.borrow().api.clone())
}

/// The current session's number (see [`Session::generation`]).
pub fn generation() -> u64 {
    SESSION.with(|s| s.borrow().generation)
}

pub fn route() -> Route {
    let hash = web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default();
    Route::parse(&hash)
}

pub fn go(route: &Route) {
    if let Some(w) = web_sys::window() {
        let _ = w.location().set_hash(&route.href());
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.session_storage().ok().flatten())
}

/// Keep the token for this tab and start the live updates.
pub fn sign_in(api: Api) {
    if let Some(s) = storage() {
        let _ = s.set_item(TOKEN_KEY, api.token());
    }
    SESSION.with(|s| {
        let mut s = s.borrow_mut();
        s.api = Some(api.clone());
        s.generation += 1;
    });
    crate::live::start(api, generation());
    render();
}

/// Forget the token; show the sign-in form with `message`.
pub fn sign_out(message: Option<&str>) {
    if let Some(s) = storage() {
        let _ = s.remove_item(TOKEN_KEY);
    }
    SESSION.with(|s| {
        let mut s = s.borrow_mut();
        s.api = None;
        s.generation += 1;
    });
    render();
    if let Some(m) = message {
        views::signin::show_error(m);
    }
}

/// Build the page's frame, listen, and show the first view.
pub fn start() {
    frame();
    listen();
    let token = storage().and_then(|s| s.get_item(TOKEN_KEY).ok().flatten());
    match token {
        Some(t) if !t.is_empty() => sign_in(Api::new(&t)),
        _ => render(),
    }
}

fn frame() {
    let Some(body) = dom::document().body() else {
        return;
    };
    let skip = attrs(
        &text("a", "Skip to content"),
        &[
            ("href", "#main"),
            ("class", "skip"),
            ("data-action", "skip"),
        ],
    );
    let nav = attrs(
        &el("nav"),
        &[("id", "nav"), ("aria-label", "Console"), ("hidden", "")],
    );
    add(
        &nav,
        &[
            &link("Domains", &Route::Domains.href()),
            &link("Enable domains", &Route::Enable.href()),
            &link("Overview", &Route::Overview.href()),
            &attrs(
                &text("span", ""),
                &[("id", "live"), ("class", "live"), ("role", "status")],
            ),
            &action_button("Sign out", "sign-out", None),
        ],
    );
    let header = add(&el("header"), &[&text("p", "acme-edge"), &nav]);
    attrs(
        &header.first_element_child().unwrap_or(header.clone()),
        &[("class", "brand")],
    );
    let status = attrs(
        &el("p"),
        &[
            ("id", "status"),
            ("role", "status"),
            ("aria-live", "polite"),
        ],
    );
    let main = attrs(&el("main"), &[("id", "main"), ("tabindex", "-1")]);
    dom::clear(&body);
    add(&body, &[&skip, &header, &status, &main]);
}

/// Show the view of the current route (or the sign-in form).
pub fn render() {
    let nav = dom::by_id("nav");
    let Some(api) = api() else {
        if let Some(n) = nav {
            let _ = n.set_attribute("hidden", "");
        }
        views::signin::render();
        return;
    };
    if let Some(n) = nav {
        let _ = n.remove_attribute("hidden");
        mark_current(&n);
    }
    dom::status("");
    match route() {
        Route::Domains => views::list::render(api),
        Route::Domain(name) => views::domain::render(api, name),
        Route::Enable => views::enable::render(),
        Route::Overview => views::overview::render(api),
    }
}

/// `aria-current="page"` on the navigation link of the current view.
fn mark_current(nav: &Element) {
    let current = match route() {
        Route::Domain(_) => Route::Domains,
        r => r,
    }
    .href();
    let Ok(links) = nav.query_selector_all("a") else {
        return;
    };
    for i in 0..links.length() {
        if let Some(a) = links.item(i).and_then(|n| n.dyn_into::<Element>().ok()) {
            if a.get_attribute("href").as_deref() == Some(current.as_str()) {
                let _ = a.set_attribute("aria-current", "page");
            } else {
                let _ = a.remove_attribute("aria-current");
            }
        }
    }
}

fn listen() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let doc = dom::document();
    on(&window, "hashchange", |_| render());
    on(&doc, "click", |e| {
        if let Some((target, action)) = acting(&e, "button[data-action], a[data-action]") {
            e.prevent_default();
            views::click(&action, &target);
        }
    });
    on(&doc, "submit", |e| {
        e.prevent_default();
        if let Some((target, action)) = acting(&e, "form[data-action]") {
            views::submit(&action, &target);
        }
    });
    on(&doc, "change", |e| {
        if let Some((target, action)) = acting(&e, "select[data-action]") {
            views::change(&action, &target);
        }
    });
}

/// The element matching `selector` (one with `data-action`) the event happened in, and its
/// action.
fn acting(e: &Event, selector: &str) -> Option<(Element, String)> {
    let target = e.target()?.dyn_into::<Element>().ok()?;
    let acting = target.closest(selector).ok()??;
    let action = acting.get_attribute("data-action")?;
    Some((acting, action))
}

fn on(target: &web_sys::EventTarget, event: &str, f: impl FnMut(Event) + 'static) {
    let closure = Closure::<dyn FnMut(Event)>::new(f);
    let _ = target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
    // Page-lifetime listeners, installed once.
    closure.forget();
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
