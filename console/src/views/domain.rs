//! One domain: its state and dates, the last CA problem in full (as text), the certificate,
//! the order history; renew, and disable behind a confirmation.
//!
//! The page's sections, filled from the domain, are in [`super::details`]: live events fill
//! them too.

use wasm_bindgen_futures::spawn_local;

use super::common::report;
use super::details::{actions, extras, fill, path};
use super::shown::{apply, shown};
use crate::api::{Api, ApiError};
use crate::dom::{self, action_button, add, attrs, el, heading, text};
use crate::json::Domain;
use crate::session;

/// Draw the page's regions at once, empty (so the heading takes focus without waiting), and
/// fill them when the domain arrives.
pub fn render(api: Api, name: String) {
    let main = dom::main();
    dom::clear(&main);
    let h = heading(&name);
    let details = attrs(
        &el("section"),
        &[
            ("data-kind", "details"),
            ("data-name", &name),
            ("aria-label", "State"),
        ],
    );
    let actions = attrs(&el("div"), &[("id", "actions"), ("class", "actions")]);
    let confirm = attrs(&el("div"), &[("id", "confirm"), ("class", "confirm")]);
    let cert = attrs(&el("section"), &[("id", "certificate")]);
    let orders = attrs(&el("section"), &[("id", "orders")]);
    add(
        &main,
        &[
            &h,
            &actions,
            &confirm,
            &details,
            &add(
                &attrs(&el("div"), &[("class", "columns")]),
                &[&cert, &orders],
            ),
        ],
    );
    dom::focus(&h);
    spawn_local(async move { load(&api, &name).await });
}

/// Read the domain and fill the page; a name not managed here can be enabled from it.
async fn load(api: &Api, name: &str) {
    match api.get::<Domain>(&path(name, "")).await {
        Ok(d) => {
            for (e, kind) in shown(name) {
                if kind == "details" {
                    fill(&e, &d);
                }
            }
            actions(&d);
            extras(api, name).await;
        }
        Err(e) if e.code() == Some("not_found") => {
            dom::status(&format!("{name} is not managed here."));
            actions_for_unknown(name);
        }
        Err(e) => report(&e),
    }
}

/// The one button for a name the backend does not manage.
fn actions_for_unknown(name: &str) {
    if let Some(div) = dom::by_id("actions") {
        dom::clear(&div);
        add(&div, &[&action_button("Enable", "enable-one", Some(name))]);
    }
}

/// A button on the domain page.
pub fn act(action: &str, name: String) {
    let Some(api) = session::api() else {
        return;
    };
    match action {
        "disable-ask" => ask_disable(&name),
        "disable-cancel" => {
            if let Some(c) = dom::by_id("confirm") {
                dom::clear(&c);
            }
            dom::status("Not disabled.");
        }
        "renew" => spawn_local(async move {
            let done = api.call::<Domain>("POST", &path(&name, "/renew")).await;
            after(&api, &name, done, "Renewal requested: an order starts now.").await;
        }),
        "disable-confirm" => spawn_local(async move {
            let done = api.call::<Domain>("DELETE", &path(&name, "")).await;
            after(
                &api,
                &name,
                done,
                "Disabled: its certificate is no longer served.",
            )
            .await;
        }),
        "enable-one" => spawn_local(async move {
            let done = api.call::<Domain>("PUT", &path(&name, "")).await;
            after(&api, &name, done, "Enabled: issuance starts now.").await;
        }),
        _ => {}
    }
}

/// Ask before disabling: Envoy stops serving the certificate. Focus goes to Cancel, so a
/// stray Enter does not confirm.
fn ask_disable(name: &str) {
    let Some(c) = dom::by_id("confirm") else {
        return;
    };
    dom::clear(&c);
    let _ = c.set_attribute("role", "alertdialog");
    let _ = c.set_attribute("aria-labelledby", "confirm-text");
    let cancel = action_button("Cancel", "disable-cancel", Some(name));
    add(
        &c,
        &[
            &attrs(
                &text(
                    "p",
                    &format!(
                        "Disable {name}? Envoy stops serving its certificate and it is no \
                         longer renewed."
                    ),
                ),
                &[("id", "confirm-text")],
            ),
            &attrs(
                &action_button(&format!("Disable {name}"), "disable-confirm", Some(name)),
                &[("class", "danger"), ("id", "disable-confirm")],
            ),
            &cancel,
        ],
    );
    dom::focus(&cancel);
}

/// After a button's request: say what happened and read the page again, rather than wait
/// for the event (there is none while polling).
async fn after(api: &Api, name: &str, done: Result<Domain, ApiError>, message: &str) {
    if let Some(c) = dom::by_id("confirm") {
        dom::clear(&c);
    }
    match done {
        Ok(_) => {
            dom::status(&format!("{name}: {message}"));
            load(api, name).await;
        }
        Err(e) => report(&e),
    }
}

/// Read the domain again (while polling, or after a reconnection).
pub async fn poll(api: &Api, name: &str) {
    if let Ok(d) = api.get::<Domain>(&path(name, "")).await {
        apply(&d);
    }
}
