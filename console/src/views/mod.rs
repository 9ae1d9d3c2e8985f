//! The views. Each renders into `<main>`, fetches what it shows, and marks the elements that
//! show a domain with `data-kind` and `data-name` so live updates ([`apply`]) find them.

pub mod chart;
pub mod domain;
pub mod enable;
pub mod list;
pub mod overview;
pub mod signin;

use wasm_bindgen::JsCast;
use web_sys::Element;

use crate::dom;
use crate::model::Domain;
use crate::route::{self, Route};
use crate::session;

/// A click on an element with `data-action`.
pub fn click(action: &str, target: &Element) {
    let name = target.get_attribute("data-name");
    match (action, name) {
        ("skip", _) => dom::focus(&dom::main()),
        ("sign-out", _) => session::sign_out(None),
        ("page-next", _) => list::next(),
        ("page-prev", _) => list::prev(),
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

/// A control with `data-action` changed.
pub fn change(action: &str, control: &Element) {
    if action == "filter-state"
        && let Ok(Some(form)) = control.closest("form")
    {
        list::search(&form);
    }
}

/// The elements currently showing a domain named `name`, with their kind.
fn shown(name: &str) -> Vec<(Element, String)> {
    let mut found = Vec::new();
    let Ok(nodes) = dom::document().query_selector_all("[data-kind][data-name]") else {
        return found;
    };
    for i in 0..nodes.length() {
        let Some(e) = nodes.item(i).and_then(|n| n.dyn_into::<Element>().ok()) else {
            continue;
        };
        if e.get_attribute("data-name").as_deref() == Some(name) {
            let kind = e.get_attribute("data-kind").unwrap_or_default();
            found.push((e, kind));
        }
    }
    found
}

/// A domain changed: update wherever it is shown.
pub fn apply(d: &Domain) {
    for (e, kind) in shown(&d.name) {
        match kind.as_str() {
            "row" => list::fill_row(&e, d),
            "result" => enable::fill_result(&e, d),
            "details" => domain::fill(&e, d),
            _ => {}
        }
    }
}

/// A domain was deleted: say so where it is shown.
pub fn forget(name: &str) {
    for (e, _) in shown(name) {
        let _ = e.set_attribute("data-state", "deleted");
        let _ = e.class_list().add_1("deleted");
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
        Route::Overview => {}
    }
}

/// Report a failed request: sign out on 401, else say it in the live region.
pub fn report(e: &crate::api::ApiError) {
    if e.status() == Some(401) {
        session::sign_out(Some("The admin API refused the token; sign in again."));
    } else {
        dom::status(&e.to_string());
    }
}
