//! Enable many names at once: one request per name, each answered on its own line (refused
//! names with the API's reason), then followed live until issued or failed.
//!
//! Names are sent as typed: the API checks and normalises them (lower case, punycode), and a
//! result shows the name as the API has it.

use std::cell::RefCell;

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{Element, HtmlTextAreaElement};

use super::common::report;
use super::shown::{apply, fill_result};
use crate::api::{Api, segment};
use crate::dom::{self, add, attrs, el, heading, labelled, link, text};
use crate::json::Domain;
use crate::route::Route;
use crate::session;

/// Names in one submission, at most (one request each, so a paste of a whole zone file does
/// not become tens of thousands of requests).
pub const MAX_NAMES: usize = 1000;

thread_local! {
    /// The names enabled from this page, followed until they settle (kept for the visit, not
    /// the view: they are shown again when the page is).
    static WATCHED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// The form, and the results of the last submission, read again.
pub fn render() {
    let main = dom::main();
    dom::clear(&main);
    let area = attrs(
        &el("textarea"),
        &[
            ("name", "names"),
            ("rows", "8"),
            ("spellcheck", "false"),
            ("aria-describedby", "names-help"),
        ],
    );
    let form = attrs(
        &el("form"),
        &[("data-action", "enable"), ("aria-label", "Enable domains")],
    );
    add(
        &form,
        &[
            &labelled("Names, one per line", &area, "names"),
            &attrs(
                &text(
                    "p",
                    "Each name is enabled on its own: a refused name does not stop the others. \
                     Envoy must route the name's HTTP-01 challenges to this service.",
                ),
                &[("id", "names-help"), ("class", "help")],
            ),
            &attrs(&text("button", "Enable"), &[("type", "submit")]),
        ],
    );
    let results = attrs(
        &el("ul"),
        &[
            ("id", "results"),
            ("class", "results"),
            ("aria-live", "polite"),
        ],
    );
    let h = heading("Enable domains");
    add(&main, &[&h, &form, &text("h2", "Results"), &results]);
    // Results of an earlier submission stay followed when coming back.
    let watched = WATCHED.with(|w| w.borrow().clone());
    for name in watched {
        add(&results, &[&result_item(&name)]);
    }
    if let Some(api) = session::api() {
        spawn_local(async move { poll(&api).await });
    }
}

/// The non-empty lines, trimmed, each once.
pub fn names(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.iter().any(|n| n == line) {
            out.push(line.to_owned());
        }
    }
    out
}

/// A result line for an enabled name: its page's link and its outcome, which
/// [`fill_result`] writes (`data-kind="result"`, so live events find it too).
fn result_item(name: &str) -> Element {
    let li = attrs(&el("li"), &[("data-kind", "result"), ("data-name", name)]);
    add(
        &li,
        &[
            &link(name, &Route::Domain(name.to_owned()).href()),
            &text("span", " — "),
            &attrs(&text("span", "…"), &[("class", "outcome")]),
        ],
    )
}

/// The form was submitted: check the names, then enable them in the background.
pub fn submit(form: &Element) {
    let Some(api) = session::api() else {
        return;
    };
    let typed = form
        .query_selector("#names")
        .ok()
        .flatten()
        .and_then(|e| e.dyn_into::<HtmlTextAreaElement>().ok())
        .map(|t| t.value())
        .unwrap_or_default();
    let names = names(&typed);
    if names.is_empty() {
        dom::status("Type at least one name.");
        return;
    }
    if names.len() > MAX_NAMES {
        dom::status(&format!("At most {MAX_NAMES} names at once."));
        return;
    }
    let Some(results) = dom::by_id("results") else {
        return;
    };
    dom::clear(&results);
    WATCHED.with(|w| w.borrow_mut().clear());
    spawn_local(async move { enable_all(&api, &results, names).await });
}

/// One request after the other, in the order typed: the results read in that order, and the
/// API gets no burst.
async fn enable_all(api: &Api, results: &Element, names: Vec<String>) {
    let (mut enabled, mut refused) = (0, 0);
    for typed in names {
        // A line for the name as typed at once, replaced by the result under the name as the
        // API has it.
        let li = attrs(&el("li"), &[("data-typed", &typed)]);
        add(results, &[&li]);
        match api
            .call::<Domain>("PUT", &format!("/v1/domains/{}", segment(&typed)))
            .await
        {
            Ok(d) => {
                enabled += 1;
                let item = result_item(&d.name);
                let _ = results.replace_child(&item, &li);
                fill_result(&item, &d);
                WATCHED.with(|w| w.borrow_mut().push(d.name.clone()));
            }
            // A refused token refuses every name: stop at the first.
            Err(e) if e.status() == Some(401) => return report(&e),
            Err(e) => {
                refused += 1;
                let _ = li.set_attribute("data-state", "refused");
                let _ = li.class_list().add_1("error");
                add(
                    &li,
                    &[
                        &text("span", &typed),
                        &text("span", " — refused: "),
                        &attrs(&text("span", &e.to_string()), &[("class", "outcome")]),
                    ],
                );
            }
        }
    }
    dom::status(&format!("{enabled} enabled, {refused} refused."));
}

/// Read the followed names again.
pub async fn poll(api: &Api) {
    let watched = WATCHED.with(|w| w.borrow().clone());
    for name in watched {
        if let Ok(d) = api
            .get::<Domain>(&format!("/v1/domains/{}", segment(&name)))
            .await
        {
            apply(&d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_once() {
        assert_eq!(
            names(" a.example \n\n b.example\r\na.example\n"),
            vec!["a.example".to_owned(), "b.example".to_owned()]
        );
    }
}
