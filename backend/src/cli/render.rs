//! Human output: a table for lists, a detail view for one domain, relative times.

use std::fmt::Write as _;

use comfy_table::{Table, presets};
use time::OffsetDateTime;

use crate::api::json::{CaStatus, Capacity, Domain, DomainState};
use time::format_description::well_known::Rfc3339;

/// Pretty JSON on stdout, for `--json`.
pub fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        // Our own model types always serialise; report rather than panic if that changes.
        Err(e) => eprintln!("error: encoding JSON: {e}"),
    }
}

/// `NAME STATE EXPIRES RENEWS NOTE`, one row per domain, borderless like kubectl.
pub fn domain_table(domains: &[Domain], now: OffsetDateTime) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header(["NAME", "STATE", "EXPIRES", "RENEWS", "NOTE"]);
    for d in domains {
        table.add_row([
            d.name.clone(),
            d.state.to_string(),
            d.not_after
                .map(|t| relative(t, now))
                .unwrap_or_else(|| "-".into()),
            d.renew_at
                .map(|t| relative(t, now))
                .unwrap_or_else(|| "-".into()),
            note(d, now),
        ]);
    }
    table
}

/// What an operator should know at a glance: why it failed and when it retries.
fn note(d: &Domain, now: OffsetDateTime) -> String {
    match (d.state, &d.last_error, d.retry_at) {
        (DomainState::Failed, Some(e), Some(at)) => {
            format!("{} (retry {})", one_line(&e.message, 60), relative(at, now))
        }
        (DomainState::Failed, Some(e), None) => one_line(&e.message, 60),
        // Handed back unattempted: a CA limit would refuse it now.
        (DomainState::Pending, Some(e), Some(at)) if d.attempts == 0 => {
            format!("waits {}: {}", relative(at, now), one_line(&e.reason, 40))
        }
        (DomainState::Pending | DomainState::Validating, Some(e), _) if d.attempts > 0 => {
            format!(
                "attempt {} after: {}",
                d.attempts + 1,
                one_line(&e.message, 40)
            )
        }
        _ => String::new(),
    }
}

/// Every field of one domain, `key: value` per line.
pub fn domain_detail(d: &Domain, now: OffsetDateTime) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(out, "{key:<12} {value}");
    };
    line("Name:", d.name.clone());
    line("State:", d.state.to_string());
    line("Key type:", d.key_type.to_string());
    line(
        "Profile:",
        d.profile.clone().unwrap_or_else(|| "(acme.profile)".into()),
    );
    line("Not before:", timestamp(d.not_before, now));
    line("Not after:", timestamp(d.not_after, now));
    line("Renews:", timestamp(d.renew_at, now));
    line("Retries:", timestamp(d.retry_at, now));
    line("Attempts:", d.attempts.to_string());
    line("Created:", timestamp(Some(d.created_at), now));
    line("Updated:", timestamp(Some(d.updated_at), now));
    if let Some(e) = &d.last_error {
        line("Last error:", format!("{} ({})", e.message, e.reason));
        if let Some(problem) = &e.problem {
            line("CA problem:", problem.to_string());
        }
    }
    out
}

fn timestamp(t: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    let format = time::format_description::well_known::Rfc3339;
    match t {
        Some(t) => match t.format(&format) {
            Ok(text) => format!("{text} ({})", relative(t, now)),
            Err(_) => relative(t, now),
        },
        None => "-".into(),
    }
}

/// `in 59d`, `3m ago`, `now`: the largest unit that fits, like `kubectl get`'s AGE column.
pub fn relative(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let seconds = (t - now).whole_seconds();
    let magnitude = seconds.unsigned_abs();
    if magnitude < 1 {
        return "now".into();
    }
    let amount = match magnitude {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    };
    if seconds > 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// The line `domains list` prints above the table while issuance is paused because the CA
/// is unavailable; `None` while it is not.
/// `acme-edge capacity`: the account's capacity, a line per figure.
pub fn capacity(c: &Capacity, now: OffsetDateTime) -> String {
    let mut out = String::new();
    let lifetimes: Vec<String> = (c.by_lifetime.iter())
        .map(|l| format!("{} on {} days", l.certificates, l.lifetime_days))
        .collect();
    let certificates = if lifetimes.is_empty() {
        "no certificate served".to_owned()
    } else {
        lifetimes.join(", ")
    };
    out.push_str(&format!(
        "renewals needed     {:.0} a day ({certificates})\n",
        c.renewals_per_day
    ));
    let spend = if c.renewals_spend_budget {
        "renewals spend it"
    } else {
        "renewals spend none (the CA exempts them)"
    };
    out.push_str(&format!(
        "order budget        {:.0} new orders a day; {spend}\n",
        c.budget_per_day
    ));
    out.push_str(&format!(
        "left for new names  {:.0} a day (headroom {:.0} %)\n",
        c.left_for_new_per_day,
        c.headroom_ratio * 100.0
    ));
    let waiting = match c.days_to_order_new_names {
        Some(days) => format!("{}: ordered within {days:.1} days", c.new_names_waiting),
        None => format!(
            "{}: the budget leaves nothing for them",
            c.new_names_waiting
        ),
    };
    out.push_str(&format!("names waiting       {waiting}\n"));
    let risk = match c.first_day_at_risk {
        Some(at) => format!(
            "{} ({}): renewals need more than the budget allows",
            at.date(),
            relative(at, now)
        ),
        None => "none".to_owned(),
    };
    out.push_str(&format!("first day at risk   {risk}\n"));
    out
}

pub fn ca_paused_line(ca: &CaStatus, now: OffsetDateTime) -> Option<String> {
    if !ca.paused() {
        return None;
    }
    let since = ca.since.map_or_else(
        || "a while".to_owned(),
        |t| {
            format!(
                "{} ({})",
                t.format(&Rfc3339).unwrap_or_default(),
                relative(t, now)
            )
        },
    );
    let problem = ca
        .last_problem
        .as_deref()
        .map(|p| format!(": {}", one_line(p, 100)))
        .unwrap_or_default();
    Some(format!(
        "Issuance paused: the CA is unavailable since {since}{problem}"
    ))
}

fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_says_what_bites_and_when() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let c = Capacity {
            generated_at: now,
            renewals_per_day: 3603.6,
            budget_per_day: 2000.0,
            renewals_spend_budget: true,
            left_for_new_per_day: -1603.6,
            headroom_ratio: -0.8018,
            new_names_waiting: 12,
            days_to_order_new_names: None,
            first_day_at_risk: Some(now + time::Duration::days(18)),
            by_lifetime: vec![crate::api::json::LifetimeLoad {
                lifetime_days: 45,
                certificates: 100_000,
                renewals_per_day: 3603.6,
            }],
        };
        let text = capacity(&c, now);
        assert!(
            text.contains("renewals needed     3604 a day (100000 on 45 days)"),
            "{text}"
        );
        assert!(text.contains("renewals spend it"), "{text}");
        assert!(text.contains("headroom -80 %"), "{text}");
        assert!(
            text.contains("12: the budget leaves nothing for them"),
            "{text}"
        );
        assert!(
            text.contains("renewals need more than the budget allows"),
            "{text}"
        );
    }
    use crate::api::json::{KeyType, LastError};
    use crate::model::FailureClass;
    use time::Duration;
    use time::macros::datetime;

    fn domain(state: DomainState) -> Domain {
        let t = datetime!(2026-01-01 00:00 UTC);
        Domain {
            profile: None,
            name: "shop.example".into(),
            state,
            key_type: KeyType::EcdsaP256,
            not_before: None,
            not_after: None,
            renew_at: None,
            retry_at: None,
            attempts: 0,
            last_error: None,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn relative_times() {
        let now = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(relative(now, now), "now");
        assert_eq!(relative(now + Duration::seconds(5), now), "in 5s");
        assert_eq!(relative(now - Duration::minutes(3), now), "3m ago");
        assert_eq!(relative(now + Duration::hours(30), now), "in 30h");
        assert_eq!(relative(now + Duration::days(59), now), "in 59d");
    }

    #[test]
    fn a_paused_ca_is_one_line_with_since_and_why() {
        let now = datetime!(2026-01-01 00:10 UTC);
        let mut ca = CaStatus {
            state: "available".into(),
            since: None,
            last_problem: None,
        };
        assert_eq!(ca_paused_line(&ca, now), None);
        ca.state = "unavailable".into();
        ca.since = Some(datetime!(2026-01-01 00:00 UTC));
        ca.last_problem = Some("the CA did not answer within 5s (new order)".into());
        let line = ca_paused_line(&ca, now).unwrap();
        assert!(
            line.starts_with(
                "Issuance paused: the CA is unavailable since 2026-01-01T00:00:00Z (10m ago)"
            ),
            "{line}"
        );
        assert!(
            line.ends_with("did not answer within 5s (new order)"),
            "{line}"
        );
    }

    #[test]
    fn failed_rows_say_why_and_when() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let mut d = domain(DomainState::Failed);
        d.retry_at = Some(now + Duration::minutes(10));
        d.last_error = Some(LastError {
            reason: "ca_problem".into(),
            message: "DNS problem: NXDOMAIN looking up A for shop.example".into(),
            problem: None,
            class: Default::default(),
        });
        let table = domain_table(&[d.clone()], now).to_string();
        assert!(table.contains("NXDOMAIN"), "{table}");
        assert!(table.contains("retry in 10m"), "{table}");
        let detail = domain_detail(&d, now);
        assert!(detail.contains("Last error:"), "{detail}");
    }

    #[test]
    fn names_waiting_their_turn_say_until_when_and_why() {
        let now = datetime!(2026-03-01 12:00 UTC);
        let mut d = domain(DomainState::Pending);
        d.retry_at = Some(now + Duration::hours(30));
        d.last_error = Some(LastError {
            reason: "rate_limit_registered_domain".into(),
            message: "example.com has had the CA's 50 new certificates per 7 days".into(),
            problem: None,
            class: FailureClass::Ca,
        });
        let note = note(&d, now);
        assert!(note.starts_with("waits in 30h: "), "{note}");
        assert!(note.ends_with("rate_limit_registered_domain"), "{note}");
    }

    #[test]
    fn long_messages_are_cut() {
        assert_eq!(one_line("a  b\nc", 10), "a b c");
        assert_eq!(one_line(&"x".repeat(20), 5).chars().count(), 5);
    }
}
