//! The views, and the page's actions routed to them. Each view renders into `<main>`, fetches
//! what it shows, and marks the elements that show a domain with `data-kind` and `data-name`
//! so live updates ([`apply`]) find them.
//!
//! This module only dispatches: an action (the `data-action` the app's listeners read) to the
//! view it belongs to, and "read again" to the view of the current route. What views share
//! lives in modules of its own ([`shown`], [`details`], [`common`]), so no view imports this
//! one. Which view a route shows, and when, is the app's business.

pub mod chart;
pub mod common;
pub mod details;
pub mod domain;
pub mod enable;
pub mod list;
pub mod overview;
pub mod shown;
pub mod signin;

use web_sys::Element;

use crate::dom;
use crate::route::{self, Route};
use crate::session;

pub use shown::{apply, forget};

/// A click on an element with `data-action`.
pub fn click(action: &str, target: &Element) {
    let name = target.get_attribute("data-name");
    match (action, name) {
        ("skip", _) => dom::focus(&dom::main()),
        ("sign-out", _) => session::sign_out(None),
        ("page-next", _) => list::next(),
        ("page-prev", _) => list::prev(),
        // Every other action naming a domain is one of the domain page's buttons.
        (action, Some(name)) => domain::act(action, name),
        _ => {}
    }
}

/// A form with `data-action` submitted.
pub fn submit(action: &str, form: &Element) {
    match action {
        "sign-in" => signin::submit(form),
        "search" => list::search(form),
        "enable" => enable::submit(form),
        _ => {}
    }
}

/// A control with `data-action` changed (the state filter searches at once: a choice in a
/// list needs no button).
pub fn change(action: &str, control: &Element) {
    if action == "filter-state"
        && let Ok(Some(form)) = control.closest("form")
    {
        list::search(&form);
    }
}

/// Read again what the current view shows (after reconnecting, on `resync`, or polling).
pub async fn refresh_shown() {
    let Some(api) = session::api() else {
        return;
    };
    match route::current() {
        Route::Domains => list::poll(&api).await,
        Route::Enable => enable::poll(&api).await,
        Route::Domain(name) => domain::poll(&api, &name).await,
        // A snapshot, dated on the page ("as of"): read again when shown again.
        Route::Overview => {}
    }
}
