//! The domain page's sections that follow the domain: its state (filled again by live
//! events), the buttons that fit that state, the certificate and the order history.
//! Drawing the page and acting on its buttons is left to the domain page's own module.

use wasm_bindgen_futures::spawn_local;
use web_sys::Element;

use crate::api::{Api, ApiError, segment};
use crate::dom::{self, action_button, add, attrs, definitions, el, text};
use crate::format::{maybe_time, time_from_now};
use crate::json::{CertificateDetails, Domain, LastError, Orders};
use crate::session;

/// `/v1/domains/{name}` and below, the name percent-encoded.
pub fn path(name: &str, rest: &str) -> String {
    format!("/v1/domains/{}{rest}", segment(name))
}

/// Fill the state section from the domain (live events call this too).
pub fn fill(section: &Element, d: &Domain) {
    let before = section.get_attribute("data-state");
    let _ = section.set_attribute("data-state", &d.state);
    dom::clear(section);
    let state = definitions(&[
        ("State", d.state.clone()),
        ("Key type", d.key_type.clone()),
        (
            "Profile",
            d.profile
                .clone()
                .unwrap_or_else(|| "the default".to_owned()),
        ),
        ("Valid from", maybe_time(d.not_before.as_deref(), "—")),
        ("Expires", time_from_now(d.not_after.as_deref(), "—")),
        ("Next renewal", time_from_now(d.renew_at.as_deref(), "—")),
        ("Next retry", time_from_now(d.retry_at.as_deref(), "—")),
        ("Failed attempts", d.attempts.to_string()),
        ("Enabled since", maybe_time(d.created_at.as_deref(), "—")),
        ("Last change", maybe_time(d.updated_at.as_deref(), "—")),
    ]);
    add(section, &[&state]);
    if let Some(e) = &d.last_error {
        add(section, &[&problem_section(e)]);
    }
    // The buttons and the certificate and orders follow the state: drawn again only when it
    // changes, so events that change a date cost no request. The first fill has no state
    // before it: the page's load draws them itself.
    if before.is_some() && before.as_deref() != Some(d.state.as_str()) {
        actions(d);
        if let Some(api) = session::api() {
            let name = d.name.clone();
            spawn_local(async move { extras(&api, &name).await });
        }
    }
}

/// The buttons that fit the state: a disabled domain can only be enabled again.
pub fn actions(d: &Domain) {
    let Some(div) = dom::by_id("actions") else {
        return;
    };
    dom::clear(&div);
    if d.state == "disabled" {
        add(
            &div,
            &[&action_button("Enable", "enable-one", Some(&d.name))],
        );
    } else {
        add(
            &div,
            &[
                &action_button("Renew now", "renew", Some(&d.name)),
                &action_button("Disable…", "disable-ask", Some(&d.name)),
            ],
        );
    }
}

/// The certificate and the order history (read again when the state changes).
pub async fn extras(api: &Api, name: &str) {
    let cert = api
        .get::<CertificateDetails>(&path(name, "/certificate/details"))
        .await;
    if let Some(section) = dom::by_id("certificate") {
        show_certificate(&section, cert);
    }
    let orders = api.get::<Orders>(&path(name, "/orders")).await;
    if let Some(section) = dom::by_id("orders") {
        show_orders(&section, orders);
    }
}

/// The last error: reason, message, and the CA's problem document whole, as text.
fn problem_section(e: &LastError) -> Element {
    let s = attrs(
        &el("section"),
        &[("class", "problem"), ("id", "last-error")],
    );
    add(
        &s,
        &[
            &text("h2", "Last error"),
            &definitions(&[("Reason", e.reason.clone()), ("Message", e.message.clone())]),
        ],
    );
    if let Some(p) = &e.problem {
        // Whole and indented: the CA's own words (its `detail`, its sub-problems) are what an
        // operator acts on, and the console does not know every field a CA may send.
        let json = serde_json::to_string_pretty(p).unwrap_or_else(|_| p.to_string());
        add(
            &s,
            &[
                &text("h3", "The CA's problem document"),
                &attrs(&text("pre", &json), &[("id", "problem"), ("tabindex", "0")]),
            ],
        );
    }
    s
}

/// The served certificate, or why there is none (a new domain has none yet: not an error).
fn show_certificate(section: &Element, cert: Result<CertificateDetails, ApiError>) {
    dom::clear(section);
    add(section, &[&text("h2", "Certificate")]);
    match cert {
        Ok(c) => {
            let ari = c
                .ari_window
                .map(|w| {
                    format!(
                        "{} to {}",
                        maybe_time(Some(&w.start), ""),
                        maybe_time(Some(&w.end), "")
                    )
                })
                .unwrap_or_else(|| "not known".into());
            add(
                section,
                &[&definitions(&[
                    ("Names", c.sans.join(", ")),
                    ("Issuer", c.issuer),
                    ("Serial", c.serial),
                    ("Valid from", maybe_time(c.not_before.as_deref(), "—")),
                    ("Expires", time_from_now(c.not_after.as_deref(), "—")),
                    ("Key type", c.key_type),
                    ("CA's renewal window", ari),
                ])],
            );
        }
        Err(e) if e.code() == Some("not_issued") => {
            add(section, &[&text("p", "No certificate yet.")]);
        }
        Err(e) => {
            add(section, &[&text("p", &format!("Not available: {e}"))]);
        }
    }
}

/// The orders placed with the CA for this domain, newest first, failures with their reason.
fn show_orders(section: &Element, orders: Result<Orders, ApiError>) {
    dom::clear(section);
    add(section, &[&text("h2", "Order history")]);
    let orders = match orders {
        Ok(o) => o.orders,
        Err(e) => {
            add(section, &[&text("p", &format!("Not available: {e}"))]);
            return;
        }
    };
    if orders.is_empty() {
        add(section, &[&text("p", "No orders yet.")]);
        return;
    }
    let head = el("tr");
    for h in ["Started", "Closed", "Kind", "Outcome", "Problem"] {
        add(&head, &[&attrs(&text("th", h), &[("scope", "col")])]);
    }
    let body = el("tbody");
    for o in orders {
        let kind = if o.resumed {
            format!("{} (resumed)", o.kind)
        } else {
            o.kind.clone()
        };
        let problem = o
            .problem
            .map(|p| format!("{}: {}", p.reason, p.message))
            .unwrap_or_default();
        add(
            &body,
            &[&add(
                &el("tr"),
                &[
                    &text("td", &maybe_time(o.created_at.as_deref(), "—")),
                    &text("td", &maybe_time(o.closed_at.as_deref(), "—")),
                    &text("td", &kind),
                    &text("td", &o.outcome),
                    &text("td", &problem),
                ],
            )],
        );
    }
    let table = add(
        &el("table"),
        &[
            &text("caption", "Orders, newest first"),
            &add(&el("thead"), &[&head]),
            &body,
        ],
    );
    add(section, &[&table]);
}
