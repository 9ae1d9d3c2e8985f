//! Sign-in with the admin token; a wrong token is said to be wrong.
//!
//! The token is tried before it is kept: a typo is caught here, not as a page of errors
//! after signing in. Keeping it and what follows are the session's ([`session::sign_in`]).

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{Element, HtmlInputElement};

use crate::api::Api;
use crate::dom::{self, add, attrs, el, heading, labelled, text};
use crate::json::DomainList;
use crate::session;

/// The sign-in form, focused on the token field.
pub fn render() {
    let main = dom::main();
    dom::clear(&main);
    let input = attrs(
        &el("input"),
        &[
            // Masked on screen; the browser is asked not to fill it in or remember it.
            ("type", "password"),
            ("name", "token"),
            ("autocomplete", "off"),
            ("required", ""),
            ("aria-describedby", "token-help"),
        ],
    );
    let form = attrs(
        &el("form"),
        &[("data-action", "sign-in"), ("aria-label", "Sign in")],
    );
    add(
        &form,
        &[
            &labelled("Admin token", &input, "token"),
            &attrs(&text("button", "Sign in"), &[("type", "submit")]),
        ],
    );
    let help = attrs(
        &text(
            "p",
            "The admin API's bearer token: admin.token, or the file admin.token_file \
             (by default admin-token next to the database). It is kept in this tab only.",
        ),
        &[("id", "token-help"), ("class", "help")],
    );
    let error = attrs(
        &el("p"),
        &[
            ("id", "signin-error"),
            ("role", "alert"),
            ("class", "error"),
        ],
    );
    let h = heading("Sign in");
    add(&main, &[&h, &help, &form, &error]);
    dom::focus(&input);
}

/// Say why signing in did not happen (an alert, so it is announced), and focus the field
/// to type again.
pub fn show_error(message: &str) {
    if let Some(e) = dom::by_id("signin-error") {
        e.set_text_content(Some(message));
    }
    if let Some(i) = dom::by_id("token") {
        dom::focus(&i);
    }
}

/// The form was submitted: try the token with a one-row page of the list.
pub fn submit(form: &Element) {
    let token = form
        .query_selector("#token")
        .ok()
        .flatten()
        .and_then(|e| e.dyn_into::<HtmlInputElement>().ok())
        .map(|i| i.value())
        .unwrap_or_default();
    if token.trim().is_empty() {
        show_error("Enter the admin token.");
        return;
    }
    show_error("Checking the token…");
    let api = Api::new(&token);
    spawn_local(async move {
        match api.get::<DomainList>("/v1/domains?limit=1").await {
            Ok(_) => session::sign_in(api),
            Err(e) if e.status() == Some(401) => {
                show_error("Wrong token: the admin API refused it.")
            }
            // Authorised (the token is checked first) but the query is not understood.
            Err(e) if e.status().is_some() => session::sign_in(api),
            Err(e) => show_error(&e.to_string()),
        }
    });
}
