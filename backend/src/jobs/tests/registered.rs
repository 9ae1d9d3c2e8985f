//! The per-registered-domain limit, executed: new names over their registered domain's
//! share wait their turn (visible reason, due time) instead of being ordered and refused;
//! other registered domains and renewals are not held back.

use std::time::Duration;

use time::OffsetDateTime;

use super::{World, assert_within_budget, mins, run_for, start};
use crate::config::{CaLimits, Limit, Preset};
use crate::model::{DomainState, FailureClass};
use crate::policy::registered_domain::REASON;

const HOUR: Duration = Duration::from_secs(3600);

fn three_an_hour() -> CaLimits {
    CaLimits {
        registered_domain: Some(Limit {
            count: 3,
            window: HOUR,
        }),
        ..Preset::None.limits()
    }
}

/// When each name under `domain` was ordered.
fn ordered_under(w: &World, domain: &str) -> Vec<OffsetDateTime> {
    let suffix = format!(".{domain}");
    (w.ca.issues().into_iter())
        .filter(|c| c.new_order && (c.name == domain || c.name.ends_with(&suffix)))
        .map(|c| c.at)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn new_names_of_a_registered_domain_wait_their_turn_with_the_reason_shown() {
    let w = World::new().await;
    let shop: Vec<String> = (0..8).map(|i| format!("s{i}.shop.example")).collect();
    let names: Vec<&str> = shop.iter().map(String::as_str).collect();
    w.enable(&names).await;
    w.enable(&["other.example.org", "www.example.org"]).await;
    let worker = super::Worker {
        limits: three_an_hour(),
        ..w.worker()
    };
    let running = start(worker);
    run_for(mins(5)).await;

    assert_eq!(ordered_under(&w, "shop.example").len(), 3);
    assert_eq!(ordered_under(&w, "example.org").len(), 2, "not held back");
    let mut waiting = 0;
    for name in &names {
        let d = w.store.domain(name).await.unwrap().unwrap();
        if d.state == DomainState::Issued {
            continue;
        }
        waiting += 1;
        assert_eq!(d.state, DomainState::Pending, "{name}");
        assert_eq!(d.attempts, 0, "{name}: not an attempt");
        let last = d.last_error.expect("the reason is shown");
        assert_eq!(last.reason, REASON);
        assert_eq!(last.class, FailureClass::Ca);
        assert!(last.message.contains("shop.example"), "{}", last.message);
        let at = d.retry_at.expect("when its turn comes");
        assert!(at > w.clock.now() + mins(50), "{at}");
    }
    assert_eq!(waiting, 5);

    run_for(3 * HOUR).await;
    running.stop().await;
    for name in &names {
        assert_eq!(w.state(name).await, DomainState::Issued, "{name}");
    }
    let ordered = ordered_under(&w, "shop.example");
    assert_eq!(ordered.len(), 8, "each ordered once: {ordered:?}");
    assert_within_budget(&ordered, 3, HOUR);
}

#[tokio::test(start_paused = true)]
async fn without_the_limit_every_new_name_goes_at_once() {
    let w = World::new().await;
    let shop: Vec<String> = (0..8).map(|i| format!("s{i}.shop.example")).collect();
    let names: Vec<&str> = shop.iter().map(String::as_str).collect();
    w.enable(&names).await;
    let running = start(w.worker());
    run_for(mins(5)).await;
    running.stop().await;
    assert_eq!(ordered_under(&w, "shop.example").len(), 8);
}
