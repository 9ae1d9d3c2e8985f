//! The domain list: one page at a time from the API (keyset paging, so the 2,000th page is as
//! quick as the first with 100,000 domains), filtered by state and searched by name on the
//! server; rows updated in place by live events.

use std::cell::RefCell;

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{Element, HtmlInputElement, HtmlSelectElement};

use super::common::report;
use super::shown::{apply, fill_row};
use crate::api::{Api, query};
use crate::dom::{self, action_button, add, attrs, el, heading, labelled, link, text};
use crate::json::{DomainList, STATES};
use crate::route::Route;
use crate::session;

/// Rows per page.
pub const PAGE_SIZE: u32 = 50;

/// What the list shows: the query and where it is in the pages.
#[derive(Debug, Default, Clone)]
struct Paging {
    /// Part of a name, searched on the server.
    q: String,
    /// One of the states, or empty for all.
    state: String,
    /// The `after` cursors of the pages before this one: keyset paging only goes forward,
    /// so going back takes the cursors kept on the way.
    previous: Vec<Option<String>>,
    /// This page's `after`.
    after: Option<String>,
    /// The next page's, from the API.
    next: Option<String>,
}

thread_local! {
    /// Kept for the visit, so coming back to the list shows the same query and page.
    static PAGING: RefCell<Paging> = RefCell::new(Paging::default());
}

/// A copy of the paging: no borrow is held across a request.
fn paging() -> Paging {
    PAGING.with(|p| p.borrow().clone())
}

/// Change the paging in place.
fn update(f: impl FnOnce(&mut Paging)) {
    PAGING.with(|p| f(&mut p.borrow_mut()));
}

/// Draw the list's frame with the kept query, and load its page.
pub fn render(api: Api) {
    let main = dom::main();
    dom::clear(&main);
    let p = paging();
    let h = heading("Domains");
    add(&main, &[&h, &controls(&p), &table(), &pager()]);
    spawn_local(async move { load(&api).await });
}

/// The search form: a name and a state filter, both applied by the API.
fn controls(p: &Paging) -> Element {
    let search = attrs(
        &el("input"),
        &[
            ("type", "search"),
            ("name", "q"),
            ("value", &p.q),
            // The longest a DNS name can be.
            ("maxlength", "253"),
        ],
    );
    let select = attrs(
        &el("select"),
        &[("name", "state"), ("data-action", "filter-state")],
    );
    add(
        &select,
        &[&attrs(&text("option", "All states"), &[("value", "")])],
    );
    for s in STATES {
        let option = attrs(&text("option", s), &[("value", s)]);
        if p.state == s {
            attrs(&option, &[("selected", "")]);
        }
        add(&select, &[&option]);
    }
    let form = attrs(
        &el("form"),
        &[
            ("data-action", "search"),
            ("role", "search"),
            ("class", "controls"),
        ],
    );
    add(
        &form,
        &[
            &labelled("Search names", &search, "search"),
            &labelled("State", &select, "state-filter"),
            &attrs(&text("button", "Search"), &[("type", "submit")]),
        ],
    )
}

/// The table, its rows to come (`#rows`).
fn table() -> Element {
    let head = el("tr");
    for h in ["Name", "State", "Expires", "Next renewal", "Last error"] {
        add(&head, &[&attrs(&text("th", h), &[("scope", "col")])]);
    }
    let t = attrs(&el("table"), &[("class", "domains")]);
    add(
        &t,
        &[
            &text("caption", "Managed domains, by name"),
            &add(&el("thead"), &[&head]),
            &attrs(&el("tbody"), &[("id", "rows")]),
        ],
    )
}

/// Previous and next page, and which page this is.
fn pager() -> Element {
    let nav = attrs(&el("nav"), &[("aria-label", "Pages"), ("class", "pager")]);
    add(
        &nav,
        &[
            &attrs(
                &action_button("Previous page", "page-prev", None),
                &[("id", "page-prev")],
            ),
            &attrs(&el("span"), &[("id", "page-info")]),
            &attrs(
                &action_button("Next page", "page-next", None),
                &[("id", "page-next")],
            ),
        ],
    )
}

/// The request for the page `p` is on (empty parameters left out).
fn path(p: &Paging) -> String {
    let limit = PAGE_SIZE.to_string();
    format!(
        "/v1/domains{}",
        query(&[
            ("limit", &limit),
            ("after", p.after.as_deref().unwrap_or("")),
            ("q", p.q.trim()),
            ("state", &p.state),
        ])
    )
}

/// Read the page the paging is on and show it.
async fn load(api: &Api) {
    let p = paging();
    match api.get::<DomainList>(&path(&p)).await {
        Ok(list) => {
            update(|s| s.next = list.next.clone());
            show(&list);
        }
        Err(e) => report(&e),
    }
}

/// Read the page again; update the rows in place when they are the same names.
pub async fn poll(api: &Api) {
    let p = paging();
    let Ok(list) = api.get::<DomainList>(&path(&p)).await else {
        return;
    };
    let Some(rows) = dom::by_id("rows") else {
        return;
    };
    let same = rows.children().length() as usize == list.domains.len()
        && list.domains.iter().enumerate().all(|(i, d)| {
            rows.children()
                .item(i as u32)
                .and_then(|r| r.get_attribute("data-name"))
                .as_deref()
                == Some(d.name.as_str())
        });
    // Redrawing would take the keyboard focus from a row's link; the same rows are filled in
    // place instead.
    if same {
        list.domains.iter().for_each(apply);
    } else {
        update(|s| s.next = list.next.clone());
        show(&list);
    }
}

/// Draw a page's rows; the pager follows the cursors.
fn show(list: &DomainList) {
    let Some(rows) = dom::by_id("rows") else {
        return;
    };
    dom::clear(&rows);
    for d in &list.domains {
        let tr = attrs(&el("tr"), &[("data-kind", "row"), ("data-name", &d.name)]);
        let name = add(
            &el("th"),
            &[&link(&d.name, &Route::Domain(d.name.clone()).href())],
        );
        attrs(&name, &[("scope", "row")]);
        add(&tr, &[&name, &el("td"), &el("td"), &el("td"), &el("td")]);
        fill_row(&tr, d);
        add(&rows, &[&tr]);
    }
    if list.domains.is_empty() {
        let td = attrs(&text("td", "No domains match."), &[("colspan", "5")]);
        add(&rows, &[&add(&el("tr"), &[&td])]);
    }
    let p = paging();
    let page = p.previous.len() + 1;
    if let Some(info) = dom::by_id("page-info") {
        info.set_text_content(Some(&format!(
            "Page {page}: {} domain{}",
            list.domains.len(),
            if list.domains.len() == 1 { "" } else { "s" }
        )));
    }
    set_disabled("page-prev", p.previous.is_empty());
    set_disabled("page-next", p.next.is_none());
}

/// Enable or disable a pager button (no page before the first, none after the last).
fn set_disabled(id: &str, disabled: bool) {
    if let Some(b) = dom::by_id(id) {
        if disabled {
            let _ = b.set_attribute("disabled", "");
        } else {
            let _ = b.remove_attribute("disabled");
        }
    }
}

/// The search form was submitted (or its state changed): first page of the new query.
pub fn search(form: &Element) {
    let q = form
        .query_selector("#search")
        .ok()
        .flatten()
        .and_then(|e| e.dyn_into::<HtmlInputElement>().ok())
        .map(|i| i.value())
        .unwrap_or_default();
    let state = form
        .query_selector("#state-filter")
        .ok()
        .flatten()
        .and_then(|e| e.dyn_into::<HtmlSelectElement>().ok())
        .map(|s| s.value())
        .unwrap_or_default();
    update(|p| {
        *p = Paging {
            q,
            state,
            ..Paging::default()
        }
    });
    reload();
}

/// The next page: its cursor is the one the API gave with this page.
pub fn next() {
    update(|p| {
        if let Some(next) = p.next.take() {
            p.previous.push(p.after.take());
            p.after = Some(next);
        }
    });
    reload();
}

/// The page before, from the cursors kept on the way forward.
pub fn prev() {
    update(|p| {
        if let Some(after) = p.previous.pop() {
            p.after = after;
        }
    });
    reload();
}

/// Load the page the paging is now on (the frame stays, so focus stays on the button).
fn reload() {
    if let Some(api) = session::api() {
        spawn_local(async move { load(&api).await });
    }
}
