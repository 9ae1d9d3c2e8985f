//! Building the page. Text goes in with `textContent` only: there is no function here that
//! takes HTML, so nothing from outside can become markup.
//!
//! The builders return the element they were given (a handle; cloning it is cheap) so that
//! they nest: `add(&attrs(&el("div"), ...), &[...])`. What a view needs again later it finds by
//! `id` ([`by_id`]): a request may answer after the page has moved on.

use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlElement};

const SVG_NS: &str = "http://www.w3.org/2000/svg";

/// The page's document.
pub fn document() -> Document {
    // The console only runs in a page.
    web_sys::window()
        .and_then(|w| w.document())
        .expect("a document")
}

/// A new element (`tag` is always a constant of this crate).
pub fn el(tag: &str) -> Element {
    document().create_element(tag).expect("a valid tag name")
}

/// A new SVG element.
pub fn svg(tag: &str) -> Element {
    document()
        .create_element_ns(Some(SVG_NS), tag)
        .expect("a valid SVG tag name")
}

/// A new element holding `content` as text.
pub fn text(tag: &str, content: &str) -> Element {
    let e = el(tag);
    e.set_text_content(Some(content));
    e
}

/// Set attributes (constant names; values are attribute text, never parsed as markup).
pub fn attrs(e: &Element, pairs: &[(&str, &str)]) -> Element {
    for (k, v) in pairs {
        let _ = e.set_attribute(k, v);
    }
    e.clone()
}

/// Append children in order.
pub fn add(parent: &Element, children: &[&Element]) -> Element {
    for child in children {
        let _ = parent.append_child(child);
    }
    parent.clone()
}

/// Remove every child.
pub fn clear(e: &Element) {
    e.set_text_content(None);
}

/// The element with `id`, if the page still has it (views check: the page may have been
/// re-rendered while a request was in flight).
pub fn by_id(id: &str) -> Option<Element> {
    document().get_element_by_id(id)
}

/// A button that the page's click dispatcher routes by `data-action`.
pub fn action_button(label: &str, action: &str, name: Option<&str>) -> Element {
    let b = attrs(
        &text("button", label),
        &[("type", "button"), ("data-action", action)],
    );
    if let Some(name) = name {
        attrs(&b, &[("data-name", name)]);
    }
    b
}

/// A link within the console (`#/...`).
pub fn link(label: &str, href: &str) -> Element {
    attrs(&text("a", label), &[("href", href)])
}

/// `<label for=id>` + the control, in a wrapper.
pub fn labelled(label: &str, control: &Element, id: &str) -> Element {
    attrs(control, &[("id", id)]);
    let l = attrs(&text("label", label), &[("for", id)]);
    add(&attrs(&el("div"), &[("class", "field")]), &[&l, control])
}

/// A `<dl>` of term/description pairs.
pub fn definitions(pairs: &[(&str, String)]) -> Element {
    let dl = el("dl");
    for (term, value) in pairs {
        add(&dl, &[&text("dt", term), &text("dd", value)]);
    }
    dl
}

/// The `<main>` region the views render into (made again should it be missing, so a view
/// always has somewhere to go).
pub fn main() -> Element {
    by_id("main").unwrap_or_else(|| {
        let m = attrs(&el("main"), &[("id", "main"), ("tabindex", "-1")]);
        if let Some(body) = document().body() {
            let _ = body.append_child(&m);
        }
        m
    })
}

/// Say something in the polite live region (screen readers announce it).
pub fn status(message: &str) {
    if let Some(s) = by_id("status") {
        s.set_text_content(Some(message));
    }
}

/// Move keyboard focus (and the screen reader) to an element.
pub fn focus(e: &Element) {
    if let Some(h) = e.dyn_ref::<HtmlElement>() {
        let _ = h.focus();
    }
}

/// A view's heading, focusable so navigation can move focus to it.
pub fn heading(content: &str) -> Element {
    attrs(&text("h1", content), &[("tabindex", "-1")])
}
