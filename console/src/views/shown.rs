//! The elements that show a domain, wherever they are: a row of the list, a result on the
//! enable page, the state on the domain page. Each is marked with `data-kind` and `data-name`,
//! so a domain that changed is found by name and filled again, by the views and by live
//! updates alike.
//!
//! The domain page's state brings its buttons and sections along when it changes, so its
//! filling lives in [`details`]; the others are filled here.

use wasm_bindgen::JsCast;
use web_sys::Element;

use super::details;
use crate::dom::{self, add, attrs, text};
use crate::format::time_from_now;
use crate::json::Domain;

/// The elements currently showing a domain named `name`, with their kind. Looked up each
/// time, not remembered: views are re-rendered, and a name may be shown in more than one
/// place.
pub fn shown(name: &str) -> Vec<(Element, String)> {
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
            "row" => fill_row(&e, d),
            "result" => fill_result(&e, d),
            "details" => details::fill(&e, d),
            _ => {}
        }
    }
}

/// A domain was deleted: say so where it is shown. The elements stay, marked: one removed
/// from under the reader (or the keyboard focus) would leave them wondering where it went.
pub fn forget(name: &str) {
    for (e, _) in shown(name) {
        let _ = e.set_attribute("data-state", "deleted");
        let _ = e.class_list().add_1("deleted");
    }
}

/// Fill a row's cells (all but the name, whose link may have focus).
pub fn fill_row(tr: &Element, d: &Domain) {
    let _ = tr.set_attribute("data-state", &d.state);
    let cells = tr.children();
    let set = |i: u32, s: &str| {
        if let Some(c) = cells.item(i) {
            c.set_text_content(Some(s));
        }
    };
    if let Some(c) = cells.item(1) {
        dom::clear(&c);
        add(
            &c,
            &[&attrs(
                &text("span", &d.state),
                &[("class", &format!("state state-{}", d.state))],
            )],
        );
    }
    set(2, &time_from_now(d.not_after.as_deref(), "—"));
    set(3, &time_from_now(d.renew_at.as_deref(), "—"));
    let error = d
        .last_error
        .as_ref()
        .map(|e| e.reason.clone())
        .unwrap_or_default();
    set(4, &error);
    if let (Some(c), Some(e)) = (cells.item(4), d.last_error.as_ref()) {
        let _ = c.set_attribute("title", &e.message);
    }
}

/// Show where a followed name on the enable page has got to (in its `.outcome`; the link to
/// the domain stays).
pub fn fill_result(li: &Element, d: &Domain) {
    let _ = li.set_attribute("data-state", &d.state);
    let outcome = match (d.state.as_str(), &d.last_error) {
        ("issued", _) => format!(
            "issued, expires {}",
            time_from_now(d.not_after.as_deref(), "—")
        ),
        ("failed", Some(e)) => format!("failed: {} ({})", e.message, e.reason),
        // Handed back before any attempt: a CA limit would refuse it now.
        ("pending", Some(e)) if d.attempts == 0 => format!(
            "waiting until {}: {}",
            time_from_now(d.retry_at.as_deref(), "—"),
            e.message
        ),
        (state, _) => state.to_owned(),
    };
    if let Ok(Some(o)) = li.query_selector(".outcome") {
        o.set_text_content(Some(&outcome));
    }
}
