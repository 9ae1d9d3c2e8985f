//! The top of the console: the page's frame, the view of the current route, and one
//! listener per event type for the whole page, routing by `data-action` (so re-rendered views
//! add no listeners). It wires the rest together: the session's changes re-render the page and
//! start the live updates; the session, the route and the views know nothing of this module.

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{Element, Event};

use crate::api::Api;
use crate::dom::{self, action_button, add, attrs, el, link, text};
use crate::json::Domain;
use crate::route::{self, Route};
use crate::session::{self, Change};
use crate::{live, views};

/// Build the page's frame, listen, and show the first view: signed in already when this tab
/// kept a token (a reload), else the sign-in form.
pub fn start() {
    session::on_change(session_changed);
    frame();
    listen();
    match session::stored_token() {
        Some(t) if !t.is_empty() => session::sign_in(Api::new(&t)),
        _ => render(),
    }
}

/// A new session gets its live updates; either way the page shows what the session allows.
fn session_changed(change: Change<'_>) {
    match change {
        Change::SignedIn => {
            if let Some(api) = session::api() {
                live::start(api, session::generation(), Views);
            }
            render();
        }
        Change::SignedOut(message) => {
            render();
            if let Some(m) = message {
                views::signin::show_error(m);
            }
        }
    }
}

/// The views, as the live updates see the page: the one [`live::Page`], so that live updates
/// reach the views without depending on them.
struct Views;

impl live::Page for Views {
    fn apply(&self, domain: &Domain) {
        views::apply(domain);
    }

    fn forget(&self, name: &str) {
        views::forget(name);
    }

    fn refresh(&self) -> impl Future<Output = ()> {
        views::refresh_shown()
    }
}

/// The parts of the page that stay for the whole visit: the skip link, the header with the
/// navigation (hidden until signed in), the status region and `<main>`. Built once, so the
/// live regions keep announcing and views only ever replace what is inside `<main>`.
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
    // The static page's "Loading" placeholder goes with it.
    dom::clear(&body);
    add(&body, &[&skip, &header, &status, &main]);
}

/// Show the view of the current route (or the sign-in form, whatever the route: the route is
/// kept, so signing in lands on the page that was asked for).
pub fn render() {
    let nav = dom::by_id("nav");
    let Some(api) = session::api() else {
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
    // A message about the page before does not belong to this one.
    dom::status("");
    match route::current() {
        Route::Domains => views::list::render(api),
        Route::Domain(name) => views::domain::render(api, name),
        Route::Enable => views::enable::render(),
        Route::Overview => views::overview::render(api),
    }
}

/// `aria-current="page"` on the navigation link of the current view.
fn mark_current(nav: &Element) {
    // A domain's page has no link of its own: it is one of the domains.
    let current = match route::current() {
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

/// One listener per event type on the document, for the whole visit: views are re-rendered
/// often and add none; what an element does is its `data-action`.
fn listen() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let doc = dom::document();
    on(&window, "hashchange", |_| render());
    on(&doc, "click", |e| {
        if let Some((target, action)) = acting(&e, "button[data-action], a[data-action]") {
            // A link with an action is not followed: the skip link's `#main` would be read
            // as a route.
            e.prevent_default();
            views::click(&action, &target);
        }
    });
    on(&doc, "submit", |e| {
        // Every form is the console's to handle: the browser's own submission would leave
        // the page (and the Content-Security-Policy's `form-action 'none'` refuses it).
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
    // The event may come from inside the element (the text of a link, say).
    let acting = target.closest(selector).ok()??;
    let action = acting.get_attribute("data-action")?;
    Some((acting, action))
}

/// Listen to `event` on `target` for as long as the page lives.
fn on(target: &web_sys::EventTarget, event: &str, f: impl FnMut(Event) + 'static) {
    let closure = Closure::<dyn FnMut(Event)>::new(f);
    let _ = target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
    // Page-lifetime listeners, installed once: the closure must outlive this function, and
    // leaking it is how wasm-bindgen keeps it for JS.
    closure.forget();
}
