//! The overview: counts per state, what expires soon, failures by reason, and a chart of the
//! certificates expiring in each of the coming weeks.
//!
//! Two requests (`/v1/summary`, then `/v1/capacity`): the backend counts, so the page holds
//! the same few figures with ten domains or a hundred thousand. Live events do not change
//! it; it is read again when shown. The capacity says how close the account is to the CA's
//! limits: renewals a day needed, orders a day allowed, the headroom, the first day at risk.

use wasm_bindgen_futures::spawn_local;

use super::chart;
use super::common::report;
use crate::api::Api;
use crate::dom::{self, add, attrs, definitions, el, heading, text};
use crate::format::{maybe_time, time_from_now};
use crate::json::{Capacity, STATES, Summary};

/// Draw the overview's region and fill it when the summary arrives.
pub fn render(api: Api) {
    let main = dom::main();
    dom::clear(&main);
    let h = heading("Overview");
    let body = attrs(&el("div"), &[("id", "overview"), ("class", "columns")]);
    add(&main, &[&h, &body]);
    spawn_local(async move {
        match api.get::<Summary>("/v1/summary").await {
            Ok(s) => show(&s),
            Err(e) => return report(&e),
        }
        match api.get::<Capacity>("/v1/capacity").await {
            Ok(c) => show_capacity(&c),
            Err(e) => report(&e),
        }
    });
}

/// The capacity's section, after the summary's.
fn show_capacity(c: &Capacity) {
    let Some(body) = dom::by_id("overview") else {
        return;
    };
    let section = add(
        &attrs(&el("section"), &[("aria-labelledby", "h-capacity")]),
        &[
            &attrs(&text("h2", "Capacity"), &[("id", "h-capacity")]),
            &definitions(&capacity_figures(c)),
        ],
    );
    add(&body, &[&section]);
}

/// The capacity's figures, as the page shows them.
fn capacity_figures(c: &Capacity) -> Vec<(&'static str, String)> {
    vec![
        (
            "Renewals needed a day",
            format!("{:.0}", c.renewals_per_day),
        ),
        ("Orders allowed a day", format!("{:.0}", c.budget_per_day)),
        (
            "Renewals spend the budget",
            if c.renewals_spend_budget { "yes" } else { "no" }.to_owned(),
        ),
        ("Headroom", format!("{:.0} %", c.headroom_ratio * 100.0)),
        ("New names waiting", c.new_names_waiting.to_string()),
        (
            "First day at risk",
            time_from_now(c.first_day_at_risk.as_deref(), "none"),
        ),
    ]
}

/// The summary, in four sections, each labelled by its heading for screen readers.
fn show(s: &Summary) {
    let Some(body) = dom::by_id("overview") else {
        return;
    };
    dom::clear(&body);
    let mut counts = vec![("Total", s.total.to_string())];
    // Every state, in life-cycle order, at zero too: the list has the same rows on every
    // visit.
    for state in STATES {
        counts.push((state, s.states.get(state).copied().unwrap_or(0).to_string()));
    }
    let states = add(
        &attrs(&el("section"), &[("aria-labelledby", "h-states")]),
        &[
            &attrs(&text("h2", "Domains by state"), &[("id", "h-states")]),
            &definitions(&counts),
        ],
    );
    let e = &s.expiring;
    let expiring = add(
        &attrs(&el("section"), &[("aria-labelledby", "h-expiring")]),
        &[
            &attrs(
                &text("h2", "Certificates expiring"),
                &[("id", "h-expiring")],
            ),
            &definitions(&[
                ("Already expired", e.expired.to_string()),
                ("Within 7 days", e.within_7_days.to_string()),
                ("Within 14 days", e.within_14_days.to_string()),
                ("Within 30 days", e.within_30_days.to_string()),
                (
                    "Earliest expiry",
                    time_from_now(s.earliest_expiry.as_deref(), "none served"),
                ),
            ]),
        ],
    );
    let failures: Vec<(&str, String)> = s
        .failures
        .iter()
        .map(|f| (f.reason.as_str(), f.count.to_string()))
        .collect();
    let failed = add(
        &attrs(&el("section"), &[("aria-labelledby", "h-failures")]),
        &[
            &attrs(&text("h2", "Failures by reason"), &[("id", "h-failures")]),
            &if failures.is_empty() {
                text("p", "No failed domains.")
            } else {
                definitions(&failures)
            },
        ],
    );
    let chart = add(
        &attrs(
            &el("section"),
            &[("aria-labelledby", "h-weeks"), ("class", "wide")],
        ),
        &[
            &attrs(
                &text("h2", "Certificates expiring per week"),
                &[("id", "h-weeks")],
            ),
            &chart::weeks(&s.expiry_weeks),
            &chart::weeks_table(&s.expiry_weeks),
            &text(
                "p",
                &format!("As of {}.", maybe_time(s.generated_at.as_deref(), "now")),
            ),
        ],
    );
    add(&body, &[&states, &expiring, &failed, &chart]);
}
