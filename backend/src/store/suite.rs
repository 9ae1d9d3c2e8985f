//! The storage test suite: every test is written once over `&dyn Store` and runs against
//! SQLite (a temporary file) and PostgreSQL (a database created for the test and dropped
//! after it by the end-to-end harness's `TempDatabase`, on the server
//! `ACME_EDGE_TEST_POSTGRES_URL` names, by default the local one; `cargo xtask test` starts
//! PostgreSQL when it is not running).
//! A test whose expectations differ by design between engines is also told the engine.

use std::sync::Arc;
use std::time::Duration;

use acme_edge_tests::postgres::TempDatabase;
use time::OffsetDateTime;
use time::macros::datetime;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::engine::Engine;
use super::source::StoreSource;
use super::{
    Claim, DomainQuery, Enabled, IssuedCertificate, OpenOrder, OrderOutcome, PgStore, Published,
    SqliteStore, Store, StoredAccount,
};
use crate::certs::{CertEvent, CertificateSource};
use crate::model::{DomainState, FailureClass, KeyType, LastError};

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
const LEASE: time::Duration = time::Duration::seconds(30);
/// Bound on waiting for a change notification (they arrive in milliseconds).
const EVENT_DEADLINE: Duration = Duration::from_secs(10);

fn secs(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

fn cert(version: &str) -> IssuedCertificate {
    IssuedCertificate {
        chain_pem: format!("CHAIN {version}"),
        key_pem: "KEY".into(),
        not_before: NOW,
        not_after: NOW + time::Duration::days(90),
        version: version.into(),
    }
}

fn failure() -> LastError {
    LastError {
        reason: "ca_problem".into(),
        message: "connection refused".into(),
        problem: Some(serde_json::json!({"type": "urn:ietf:params:acme:error:connection"})),
        class: FailureClass::Domain,
    }
}

async fn claim_one(s: &dyn Store, now: OffsetDateTime, lease: &str) -> Claim {
    let mut claims = s.claim_due(now, 1, lease, now + LEASE).await.unwrap();
    assert_eq!(claims.len(), 1, "one domain due at {now}");
    claims.remove(0)
}

// ---- the suite

async fn enable_is_idempotent_and_reenables(s: Arc<dyn Store>) {
    let Enabled::Created(d) = s
        .enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap()
    else {
        panic!("first enable must create");
    };
    assert_eq!(d.state, DomainState::Pending);
    assert!(matches!(
        s.enable_domain("a.example", KeyType::Rsa2048, NOW).await.unwrap(),
        Enabled::Existing(d) if d.key_type == KeyType::EcdsaP256
    ));
    let d = s.disable_domain("a.example", NOW).await.unwrap().unwrap();
    assert_eq!(d.state, DomainState::Disabled);
    assert!(matches!(
        s.enable_domain("a.example", KeyType::Rsa2048, NOW).await.unwrap(),
        Enabled::Created(d) if d.key_type == KeyType::Rsa2048 && d.state == DomainState::Pending
    ));
    assert_eq!(s.disable_domain("nope.example", NOW).await.unwrap(), None);
}

async fn claim_issue_and_renewal_cycle(s: Arc<dyn Store>) {
    s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    s.enable_domain("b.example", KeyType::EcdsaP256, NOW + secs(3600))
        .await
        .unwrap();
    assert_eq!(s.next_due().await.unwrap(), Some(NOW));

    let claims = s.claim_due(NOW, 10, "L1", NOW + LEASE).await.unwrap();
    assert_eq!(claims.len(), 1, "b is not due yet");
    let claim = &claims[0];
    assert_eq!(
        (claim.name.as_str(), claim.renewal, claim.resumed),
        ("a.example", false, false)
    );
    assert!(
        s.claim_due(NOW, 10, "L2", NOW + LEASE)
            .await
            .unwrap()
            .is_empty(),
        "claimed once only"
    );
    assert_eq!(
        s.domain("a.example").await.unwrap().unwrap().state,
        DomainState::Validating
    );

    let renew = NOW + time::Duration::days(60);
    assert!(
        s.record_issued(claim, &cert("01"), renew, NOW)
            .await
            .unwrap()
    );
    let d = s.domain("a.example").await.unwrap().unwrap();
    assert_eq!(d.state, DomainState::Issued);
    assert_eq!(
        (d.renew_at, d.not_after),
        (Some(renew), Some(NOW + time::Duration::days(90)))
    );
    assert_eq!(
        s.certificate("a.example").await.unwrap().unwrap().version,
        "01"
    );
    assert_eq!(
        s.earliest_expiry().await.unwrap(),
        Some(NOW + time::Duration::days(90))
    );

    // Renewal comes from the same due-work query.
    let claims = s.claim_due(renew, 10, "L3", renew + LEASE).await.unwrap();
    let names: Vec<_> = claims
        .iter()
        .map(|c| (c.name.as_str(), c.renewal))
        .collect();
    assert_eq!(names, [("b.example", false), ("a.example", true)]);
    // Still served while renewing.
    assert!(s.certificate("a.example").await.unwrap().is_some());
}

async fn failure_then_retry_then_forced_renewal(s: Arc<dyn Store>) {
    s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    let claim = claim_one(&*s, NOW, "L1").await;
    let retry = NOW + secs(60);
    assert!(
        s.record_failed(&claim, &failure(), retry, NOW)
            .await
            .unwrap()
    );
    let d = s.domain("a.example").await.unwrap().unwrap();
    assert_eq!(
        (d.state, d.attempts, d.retry_at),
        (DomainState::Failed, 1, Some(retry))
    );
    assert_eq!(d.last_error, Some(failure()));
    assert!(
        s.claim_due(NOW, 1, "L2", NOW + LEASE)
            .await
            .unwrap()
            .is_empty()
    );

    // A forced attempt keeps the failure count: the next failure waits as long as the
    // backoff says, however often an operator asks.
    let d = s.request_renewal("a.example", NOW).await.unwrap().unwrap();
    assert_eq!(
        (d.state, d.attempts, d.retry_at),
        (DomainState::Pending, 1, None)
    );
    claim_one(&*s, NOW, "L3").await;
    assert_eq!(s.request_renewal("none.example", NOW).await.unwrap(), None);
}

async fn the_cas_failures_are_not_counted_and_are_released_when_it_is_back(s: Arc<dyn Store>) {
    for name in ["a.example", "b.example"] {
        s.enable_domain(name, KeyType::EcdsaP256, NOW)
            .await
            .unwrap();
    }
    let a = claim_one(&*s, NOW, "L1").await;
    let b = claim_one(&*s, NOW, "L2").await;
    let later = NOW + secs(3600);
    let ca_side = LastError {
        reason: "timeout".into(),
        class: FailureClass::Ca,
        ..failure()
    };
    assert!(s.record_failed(&a, &ca_side, later, NOW).await.unwrap());
    assert!(s.record_failed(&b, &failure(), later, NOW).await.unwrap());
    let d = s.domain("a.example").await.unwrap().unwrap();
    assert_eq!((d.attempts, d.last_error), (0, Some(ca_side)));
    assert_eq!(s.domain("b.example").await.unwrap().unwrap().attempts, 1);

    // The CA is back: only the domain waiting on it is due now.
    let back = NOW + secs(60);
    assert_eq!(s.release_waiting_on_ca(back).await.unwrap(), 1);
    let claims = s.claim_due(back, 10, "L3", back + LEASE).await.unwrap();
    let names: Vec<_> = claims.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a.example"]);
    assert_eq!(s.release_waiting_on_ca(back).await.unwrap(), 0);
}

async fn lost_lease_discards_the_result(s: Arc<dyn Store>) {
    s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    let claim = claim_one(&*s, NOW, "L1").await;
    s.disable_domain("a.example", NOW).await.unwrap();
    assert!(
        !s.record_issued(&claim, &cert("01"), NOW, NOW)
            .await
            .unwrap()
    );
    assert!(!s.record_failed(&claim, &failure(), NOW, NOW).await.unwrap());
    assert!(!s.renew_lease(&claim, NOW + LEASE).await.unwrap());
    // Re-enabled and claimed by someone else: the old lease still loses.
    s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    let second = claim_one(&*s, NOW, "L2").await;
    assert!(
        !s.record_issued(&claim, &cert("01"), NOW, NOW)
            .await
            .unwrap()
    );
    assert!(
        s.record_issued(&second, &cert("02"), NOW, NOW)
            .await
            .unwrap()
    );
    assert_eq!(
        s.certificate("a.example").await.unwrap().unwrap().version,
        "02"
    );
    s.disable_domain("a.example", NOW).await.unwrap();
    assert_eq!(
        s.certificate("a.example").await.unwrap(),
        None,
        "disabled: not served"
    );
}

async fn expired_leases_are_taken_over_live_ones_are_not(s: Arc<dyn Store>) {
    s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    let first = claim_one(&*s, NOW, "L1").await;
    // The holder heartbeats: the lease now runs to NOW + 40 s.
    assert!(s.renew_lease(&first, NOW + secs(40)).await.unwrap());
    assert_eq!(s.next_due().await.unwrap(), Some(NOW + secs(40)));
    let live = NOW + secs(39);
    assert!(
        s.claim_due(live, 10, "L2", live + LEASE)
            .await
            .unwrap()
            .is_empty(),
        "a renewed lease is not taken over"
    );
    let expired = NOW + secs(40);
    let second = claim_one(&*s, expired, "L2").await;
    assert_eq!((second.name.as_str(), second.resumed), ("a.example", true));
    assert_eq!(second.attempts, 0, "taking over is not a failed attempt");
    // The first holder finds out at its next heartbeat, and its result is discarded.
    assert!(!s.renew_lease(&first, expired + LEASE).await.unwrap());
    assert!(
        !s.record_issued(&first, &cert("01"), NOW, expired)
            .await
            .unwrap()
    );
    assert!(
        s.record_issued(&second, &cert("02"), NOW, expired)
            .await
            .unwrap()
    );
}

/// Shared stores release only expired leases; a store held by one process alone releases
/// them all (there is no other replica whose lease could be live).
async fn release_in_flight_takes_back_only_expired_leases<DB: Engine>(s: Arc<dyn Store>) {
    for name in ["dead.example", "live.example"] {
        s.enable_domain(name, KeyType::EcdsaP256, NOW)
            .await
            .unwrap();
    }
    let dead = claim_one(&*s, NOW, "dead-replica").await;
    let live = claim_one(&*s, NOW, "live-replica").await;
    assert!(s.renew_lease(&live, NOW + secs(120)).await.unwrap());
    for claim in [&dead, &live] {
        s.put_challenge(&claim.name, &claim.lease, "tok", "tok.thumb", NOW)
            .await
            .unwrap();
    }

    let later = NOW + LEASE;
    if DB::EXCLUSIVE {
        assert_eq!(s.release_in_flight(later).await.unwrap(), 2);
        for claim in [&dead, &live] {
            let domain = s.domain(&claim.name).await.unwrap();
            assert_eq!(domain.map(|d| d.state), Some(DomainState::Pending));
            assert_eq!(
                s.challenge(&claim.name, "tok").await.unwrap().as_deref(),
                Some("tok.thumb"),
                "a stopped worker's tokens stay answerable until the order is resumed"
            );
        }
        return;
    }
    assert_eq!(s.release_in_flight(later).await.unwrap(), 1);
    let state = |d: Option<crate::model::Domain>| d.map(|d| d.state);
    assert_eq!(
        state(s.domain(&dead.name).await.unwrap()),
        Some(DomainState::Pending)
    );
    assert_eq!(
        state(s.domain(&live.name).await.unwrap()),
        Some(DomainState::Validating)
    );
    assert_eq!(
        s.challenge(&dead.name, "tok").await.unwrap().as_deref(),
        Some("tok.thumb"),
        "a dead replica's tokens stay answerable until the order is resumed"
    );
    assert_eq!(
        s.challenge(&live.name, "tok").await.unwrap().as_deref(),
        Some("tok.thumb"),
        "a live replica's tokens stay answerable"
    );
    assert!(s.renew_lease(&live, later + LEASE).await.unwrap());
    let again = claim_one(&*s, later, "restarted").await;
    assert_eq!((again.name, again.resumed), (dead.name, false));
}

/// Replicas claiming at the same moment: every domain goes to exactly one of them.
async fn concurrent_claims_take_each_domain_once(s: Arc<dyn Store>) {
    const DOMAINS: usize = 50;
    for i in 0..DOMAINS {
        s.enable_domain(&format!("d{i}.example"), KeyType::EcdsaP256, NOW)
            .await
            .unwrap();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..5 {
        let s = s.clone();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claims = s
                    .claim_due(NOW, 3, &format!("W{worker}"), NOW + LEASE)
                    .await
                    .unwrap();
                if claims.is_empty() {
                    return mine;
                }
                mine.extend(claims.into_iter().map(|c| c.name));
                tokio::task::yield_now().await;
            }
        });
    }
    let mut all = Vec::new();
    let mut workers_with_work = 0;
    while let Some(mine) = tasks.join_next().await {
        let mine = mine.unwrap();
        workers_with_work += usize::from(!mine.is_empty());
        all.extend(mine);
    }
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!((claimed, all.len()), (DOMAINS, DOMAINS), "each domain once");
    assert!(workers_with_work >= 1);
}

async fn challenges_are_per_host(s: Arc<dyn Store>) {
    s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    let claim = claim_one(&*s, NOW, "L1").await;
    for answer in ["tok.thumb", "tok.thumb2"] {
        assert_ne!(
            s.put_challenge("a.example", &claim.lease, "tok", answer, NOW)
                .await
                .unwrap(),
            Published::LeaseLost
        );
    }
    assert_eq!(
        s.challenge("a.example", "tok").await.unwrap().as_deref(),
        Some("tok.thumb2")
    );
    assert_eq!(s.challenge("b.example", "tok").await.unwrap(), None);
    s.remove_challenges("a.example").await.unwrap();
    assert_eq!(s.challenge("a.example", "tok").await.unwrap(), None);
}

async fn challenges_are_answered_only_while_an_order_can_use_them(s: Arc<dyn Store>) {
    let answer = |s: Arc<dyn Store>| async move { s.challenge("a.example", "tok").await.unwrap() };
    let put = |s: Arc<dyn Store>, lease: &'static str| async move {
        s.put_challenge("a.example", lease, "tok", "tok.thumb", NOW)
            .await
            .unwrap()
            != Published::LeaseLost
    };
    // No such domain, or no claim on it: nothing is written.
    assert!(!put(s.clone(), "L1").await);
    s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    assert!(!put(s.clone(), "L1").await);
    assert_eq!(answer(s.clone()).await, None);
    // Under the worker's lease: written and answered.
    let claim = claim_one(&*s, NOW, "L1").await;
    assert!(
        !put(s.clone(), "someone-else").await,
        "only under a matching lease"
    );
    assert!(put(s.clone(), "L1").await);
    assert_eq!(answer(s.clone()).await.as_deref(), Some("tok.thumb"));
    // Issued: the order is done; whatever is left of its tokens is not answered.
    assert!(
        s.record_issued(&claim, &cert("01"), NOW + secs(3600), NOW)
            .await
            .unwrap()
    );
    assert_eq!(answer(s.clone()).await, None);
    // Disabled mid-order: the lease is gone, so is the answer.
    s.request_renewal("a.example", NOW).await.unwrap();
    claim_one(&*s, NOW, "L2").await;
    assert!(put(s.clone(), "L2").await);
    assert_eq!(answer(s.clone()).await.as_deref(), Some("tok.thumb"));
    s.disable_domain("a.example", NOW).await.unwrap();
    assert!(!put(s.clone(), "L2").await);
    assert_eq!(answer(s.clone()).await, None);
}

async fn telling_the_ca_is_remembered_across_takeovers(s: Arc<dyn Store>) {
    s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    let first = claim_one(&*s, NOW, "L1").await;
    let put = |s: Arc<dyn Store>, lease: String| async move {
        s.put_challenge("a.example", &lease, "tok", "tok.thumb", NOW)
            .await
            .unwrap()
    };
    assert_eq!(
        put(s.clone(), first.lease.clone()).await,
        Published::Answered { told_ready: None }
    );
    s.mark_told_ready("a.example", "tok", NOW + secs(1))
        .await
        .unwrap();
    // The worker stops; the next one to take the domain publishes the same token and
    // learns that the CA was told.
    s.release_in_flight(NOW + LEASE + secs(1)).await.unwrap();
    let second = claim_one(&*s, NOW + LEASE + secs(1), "L2").await;
    assert_eq!(
        put(s.clone(), second.lease.clone()).await,
        Published::Answered {
            told_ready: Some(NOW + secs(1))
        }
    );
}

async fn disabling_deletes_the_key_and_reenabling_orders_anew(s: Arc<dyn Store>) {
    s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    let claim = claim_one(&*s, NOW, "L1").await;
    s.record_order("a.example", "https://ca/order/1", NOW)
        .await
        .unwrap();
    s.set_order_key("https://ca/order/1", "KEY").await.unwrap();
    assert!(
        s.record_issued(&claim, &cert("01"), NOW + secs(3600), NOW)
            .await
            .unwrap()
    );
    assert!(s.certificate("a.example").await.unwrap().is_some());
    let d = s.disable_domain("a.example", NOW).await.unwrap().unwrap();
    assert_eq!(
        (d.not_after, d.renew_at),
        (None, None),
        "no certificate is held"
    );
    assert_eq!(s.open_order("a.example").await.unwrap(), None);
    let Enabled::Created(d) = s
        .enable_domain("a.example", KeyType::EcdsaP256, NOW + secs(60))
        .await
        .unwrap()
    else {
        panic!("re-enabling creates");
    };
    assert_eq!((d.state, d.not_after), (DomainState::Pending, None));
    assert_eq!(
        s.certificate("a.example").await.unwrap(),
        None,
        "the old certificate is gone: a new one is ordered"
    );
    let claim = claim_one(&*s, NOW + secs(60), "L2").await;
    assert!(
        !claim.renewal,
        "a new order, not a renewal of a deleted certificate"
    );
}

async fn accounts_are_kept_once_per_directory(s: Arc<dyn Store>) {
    let a = StoredAccount {
        directory_url: "https://ca/dir".into(),
        account_url: "https://ca/acct/1".into(),
        credentials_json: "{}".into(),
        created_at: NOW,
    };
    assert_eq!(s.save_account(&a).await.unwrap(), a);
    let b = StoredAccount {
        account_url: "https://ca/acct/2".into(),
        ..a.clone()
    };
    assert_eq!(s.save_account(&b).await.unwrap(), a, "first account wins");
    assert_eq!(s.account("https://other/dir").await.unwrap(), None);
}

async fn counts_by_state(s: Arc<dyn Store>) {
    for n in ["a.example", "b.example", "c.example"] {
        s.enable_domain(n, KeyType::EcdsaP256, NOW).await.unwrap();
    }
    s.disable_domain("c.example", NOW).await.unwrap();
    let mut counts = s.count_by_state().await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        counts,
        [(DomainState::Disabled, 1), (DomainState::Pending, 2)]
    );
}

/// Enable `names` and claim them all at `NOW`, by name.
async fn claim_all(s: &dyn Store, names: &[&str]) -> Vec<Claim> {
    for n in names {
        s.enable_domain(n, KeyType::EcdsaP256, NOW).await.unwrap();
    }
    let mut claims = s
        .claim_due(NOW, names.len(), "L1", NOW + LEASE)
        .await
        .unwrap();
    claims.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(claims.len(), names.len());
    claims
}

async fn issued_domains_page_by_name(s: Arc<dyn Store>) {
    let claims = claim_all(
        s.as_ref(),
        &[
            "e.example",
            "c.example",
            "a.example",
            "b.example",
            "d.example",
        ],
    )
    .await;
    let renew = NOW + time::Duration::days(60);
    for claim in &claims {
        if claim.name == "b.example" {
            assert!(
                s.record_failed(claim, &failure(), renew, NOW)
                    .await
                    .unwrap()
            );
        } else {
            let version = format!("v-{}", claim.name);
            assert!(
                s.record_issued(claim, &cert(&version), renew, NOW)
                    .await
                    .unwrap()
            );
        }
    }
    s.disable_domain("e.example", NOW).await.unwrap();
    s.enable_domain("f.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();

    let page = |name: &str| (name.to_owned(), format!("v-{name}"));
    assert_eq!(
        s.issued_after(None, 2).await.unwrap(),
        [page("a.example"), page("c.example")]
    );
    assert_eq!(
        s.issued_after(Some("c.example"), 2).await.unwrap(),
        [page("d.example")],
        "failed, disabled and pending domains are not issued"
    );
    assert_eq!(s.issued_after(Some("d.example"), 2).await.unwrap(), []);
    assert_eq!(s.issued_after(None, 0).await.unwrap(), []);
}

fn names_of(domains: &[crate::model::Domain]) -> Vec<&str> {
    domains.iter().map(|d| d.name.as_str()).collect()
}

async fn domains_page_by_name_state_and_substring(s: Arc<dyn Store>) {
    let claims = claim_all(
        s.as_ref(),
        &["shop-b.example", "shop-a.example", "blog.example"],
    )
    .await;
    for claim in &claims {
        s.record_issued(claim, &cert(&claim.name), NOW + secs(60), NOW)
            .await
            .unwrap();
    }
    for n in ["a.example", "shop-c.example", "z.example"] {
        s.enable_domain(n, KeyType::EcdsaP256, NOW).await.unwrap();
    }
    let page = |state, after: Option<&str>, contains: Option<&str>, limit| DomainQuery {
        state,
        after: after.map(str::to_owned),
        contains: contains.map(str::to_owned),
        limit,
    };
    let first = s.domain_page(&page(None, None, None, 2)).await.unwrap();
    assert_eq!(names_of(&first), ["a.example", "blog.example"]);
    // A name added before the cursor meanwhile neither repeats nor shifts the next page.
    s.enable_domain("aa.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    let second = s
        .domain_page(&page(None, Some("blog.example"), None, 2))
        .await
        .unwrap();
    assert_eq!(names_of(&second), ["shop-a.example", "shop-b.example"]);
    let last = s
        .domain_page(&page(None, Some("shop-b.example"), None, 2))
        .await
        .unwrap();
    assert_eq!(names_of(&last), ["shop-c.example", "z.example"]);
    let shops = s
        .domain_page(&page(None, None, Some("shop-"), 10))
        .await
        .unwrap();
    assert_eq!(
        names_of(&shops),
        ["shop-a.example", "shop-b.example", "shop-c.example"]
    );
    let issued_shops = s
        .domain_page(&page(
            Some(DomainState::Issued),
            Some("shop-a.example"),
            Some("shop"),
            10,
        ))
        .await
        .unwrap();
    assert_eq!(names_of(&issued_shops), ["shop-b.example"]);
    let none = s
        .domain_page(&page(None, None, Some("nothing"), 10))
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn expiry_and_failures_for_the_summary(s: Arc<dyn Store>) {
    let claims = claim_all(
        s.as_ref(),
        &[
            "a.example",
            "b.example",
            "c.example",
            "d.example",
            "e.example",
            "f.example",
        ],
    )
    .await;
    // Certificates issued at NOW expire at NOW + 90 days.
    for claim in &claims[..4] {
        s.record_issued(claim, &cert(&claim.name), NOW + secs(60), NOW)
            .await
            .unwrap();
    }
    for claim in &claims[4..] {
        s.record_failed(claim, &failure(), NOW + secs(60), NOW)
            .await
            .unwrap();
    }
    s.disable_domain("d.example", NOW).await.unwrap();
    let from = NOW + time::Duration::days(85);
    let counts = s.expiry_by_day(from, 10).await.unwrap();
    assert_eq!(counts.expired, 0);
    assert_eq!(counts.by_day[5], 3, "disabled domains are not served");
    assert_eq!(counts.by_day.iter().sum::<u64>(), 3);
    let later = s
        .expiry_by_day(NOW + time::Duration::days(91), 10)
        .await
        .unwrap();
    assert_eq!((later.expired, later.by_day.iter().sum::<u64>()), (3, 0));
    assert_eq!(
        s.failure_reasons().await.unwrap(),
        [("ca_problem".to_owned(), 2)]
    );
}

async fn renewal_advances_only_earlier_for_the_same_issued_certificate(s: Arc<dyn Store>) {
    let claims = claim_all(s.as_ref(), &["a.example", "b.example"]).await;
    let renew = NOW + time::Duration::days(60);
    for claim in &claims {
        assert!(
            s.record_issued(claim, &cert("01"), renew, NOW)
                .await
                .unwrap()
        );
    }
    let renew_at = |name: &'static str| {
        let s = s.clone();
        async move { s.domain(name).await.unwrap().unwrap().renew_at }
    };

    let later = renew + time::Duration::days(1);
    assert!(
        !s.advance_renewal("a.example", "01", later, NOW)
            .await
            .unwrap()
    );
    assert!(
        !s.advance_renewal("a.example", "01", renew, NOW)
            .await
            .unwrap()
    );
    let earlier = NOW + time::Duration::days(10);
    assert!(
        !s.advance_renewal("a.example", "02", earlier, NOW)
            .await
            .unwrap(),
        "another certificate version"
    );
    assert!(
        !s.advance_renewal("nope.example", "01", earlier, NOW)
            .await
            .unwrap()
    );
    assert_eq!(renew_at("a.example").await, Some(renew));

    assert!(
        s.advance_renewal("a.example", "01", earlier, NOW)
            .await
            .unwrap()
    );
    assert_eq!(renew_at("a.example").await, Some(earlier));
    assert_eq!(renew_at("b.example").await, Some(renew));
    // The due time moved with it: the renewal is claimed then, and only it.
    assert_eq!(s.next_due().await.unwrap(), Some(earlier));
    let claim = claim_one(s.as_ref(), earlier, "L2").await;
    assert_eq!((claim.name.as_str(), claim.renewal), ("a.example", true));

    // Renewing or disabled: left alone.
    let sooner = NOW + time::Duration::days(5);
    assert!(
        !s.advance_renewal("a.example", "01", sooner, NOW)
            .await
            .unwrap()
    );
    s.disable_domain("b.example", NOW).await.unwrap();
    assert!(
        !s.advance_renewal("b.example", "01", sooner, NOW)
            .await
            .unwrap()
    );
}

// ---- the order log

async fn orders_are_resumed_until_closed(s: Arc<dyn Store>) {
    let open = |order_url: &str, key_pem: Option<&str>| {
        Some(OpenOrder {
            order_url: order_url.into(),
            key_pem: key_pem.map(Into::into),
        })
    };
    assert_eq!(s.open_order("a.example").await.unwrap(), None);
    s.record_order("a.example", "https://ca/order/1", NOW)
        .await
        .unwrap();
    s.record_order("b.example", "https://ca/order/2", NOW)
        .await
        .unwrap();
    assert_eq!(
        s.open_order("a.example").await.unwrap(),
        open("https://ca/order/1", None)
    );
    s.set_order_key("https://ca/order/1", "KEY").await.unwrap();
    assert_eq!(
        s.open_order("a.example").await.unwrap(),
        open("https://ca/order/1", Some("KEY"))
    );
    // A later order of the same name is the one to resume.
    s.record_order("a.example", "https://ca/order/3", NOW + secs(60))
        .await
        .unwrap();
    assert_eq!(
        s.open_order("a.example").await.unwrap(),
        open("https://ca/order/3", None)
    );
    s.close_orders("a.example", OrderOutcome::Issued, NOW + secs(120))
        .await
        .unwrap();
    assert_eq!(
        s.open_order("a.example").await.unwrap(),
        None,
        "every open order of the name is closed"
    );
    assert_eq!(
        s.open_order("b.example").await.unwrap(),
        open("https://ca/order/2", None),
        "other names' orders stay open"
    );
}

async fn orders_make_a_history(s: Arc<dyn Store>) {
    s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    let claim = claim_one(&*s, NOW, "L1").await;
    s.record_order("a.example", "https://ca/order/1", NOW)
        .await
        .unwrap();
    assert!(
        s.record_failed(&claim, &failure(), NOW + secs(60), NOW)
            .await
            .unwrap()
    );
    let claim = claim_one(&*s, NOW + secs(60), "L2").await;
    s.mark_resumed("https://ca/order/1").await.unwrap();
    s.close_orders("a.example", OrderOutcome::Issued, NOW + secs(60))
        .await
        .unwrap();
    assert!(
        s.record_issued(&claim, &cert("01"), NOW + secs(90), NOW + secs(60))
            .await
            .unwrap()
    );
    s.record_order("a.example", "https://ca/order/2", NOW + secs(120))
        .await
        .unwrap();
    s.record_order("b.example", "https://ca/order/3", NOW)
        .await
        .unwrap();
    let history = s.order_history("a.example", 10).await.unwrap();
    assert_eq!(history.len(), 2);
    let (renewal, first) = (&history[0], &history[1]);
    assert_eq!(renewal.order_url, "https://ca/order/2");
    assert_eq!(
        (
            renewal.kind.as_deref(),
            renewal.outcome.as_deref(),
            renewal.resumed
        ),
        (Some("renewal"), None, false)
    );
    assert_eq!(
        (
            first.kind.as_deref(),
            first.outcome.as_deref(),
            first.resumed
        ),
        (Some("new"), Some("issued"), true)
    );
    assert_eq!(first.closed_at, Some(NOW + secs(60)));
    let problem: LastError = serde_json::from_str(first.problem.as_deref().unwrap()).unwrap();
    assert_eq!(problem, failure());
    assert_eq!(s.order_history("a.example", 1).await.unwrap().len(), 1);
}

async fn orders_count_against_the_budget_once_each(s: Arc<dyn Store>) {
    let placed = [NOW - secs(3600), NOW, NOW + secs(60)];
    for (i, at) in placed.into_iter().enumerate() {
        s.record_order("a.example", &format!("https://ca/order/{i}"), at)
            .await
            .unwrap();
    }
    // Logged again (a retried write): still one order.
    s.record_order("a.example", "https://ca/order/1", NOW + secs(90))
        .await
        .unwrap();
    s.close_orders("a.example", OrderOutcome::Issued, NOW + secs(120))
        .await
        .unwrap();
    assert_eq!(
        s.orders_since(NOW).await.unwrap(),
        2,
        "closed orders still count"
    );
    assert_eq!(s.orders_since(NOW - secs(3600)).await.unwrap(), 3);
    assert_eq!(s.orders_since(NOW + secs(61)).await.unwrap(), 0);
}

async fn a_capped_claim_takes_renewals_first_and_few_new_names(s: Arc<dyn Store>) {
    let lease = NOW + LEASE;
    // Two issued domains due for renewal, three new names due before them.
    for name in ["r1.example", "r2.example"] {
        s.enable_domain(name, KeyType::EcdsaP256, NOW - secs(120))
            .await
            .unwrap();
        let claim = claim_one(s.as_ref(), NOW - secs(120), "setup").await;
        // Logged as the worker logs it: before the certificate is stored.
        s.record_order(name, &format!("https://ca/order/{name}"), NOW - secs(120))
            .await
            .unwrap();
        assert!(
            s.record_issued(&claim, &cert(name), NOW - secs(10), NOW - secs(120))
                .await
                .unwrap()
        );
    }
    for name in ["n1.example", "n2.example", "n3.example"] {
        s.enable_domain(name, KeyType::EcdsaP256, NOW - secs(60))
            .await
            .unwrap();
    }
    let claims = s.claim_due_capped(NOW, 4, 1, "L", lease).await.unwrap();
    let names: Vec<&str> = claims.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(claims[0].renewal && claims[1].renewal, "{names:?}");
    assert!(!claims[2].renewal && names[2] == "n1.example", "{names:?}");
    // No room for new names: renewals only (none left), nothing else.
    assert!(
        s.claim_due_capped(NOW, 4, 0, "L2", lease)
            .await
            .unwrap()
            .is_empty()
    );
    // The orders of the renewals' first issuance are new; a renewal's order is not.
    s.record_order("r1.example", "https://ca/order/renewal", NOW)
        .await
        .unwrap();
    assert_eq!(s.orders_since(NOW - secs(3600)).await.unwrap(), 3);
    assert_eq!(s.new_orders_since(NOW - secs(3600)).await.unwrap(), 2);
}

async fn a_registered_domains_new_certificates_are_counted_and_names_wait(s: Arc<dyn Store>) {
    // Under shop.example: its apex, two subdomains, one order that failed and one renewal;
    // not under it: a name that merely ends in the same letters, and another domain.
    let orders = [
        ("shop.example", "new", NOW - secs(7200)),
        ("a.shop.example", "new", NOW - secs(60)),
        ("b.shop.example", "new", NOW - secs(30)),
        ("c.shop.example", "failed", NOW - secs(20)),
        ("myshop.example", "new", NOW - secs(10)),
        ("a.other.example", "new", NOW - secs(10)),
    ];
    for (i, (name, how, at)) in orders.into_iter().enumerate() {
        s.record_order(name, &format!("https://ca/order/{i}"), at)
            .await
            .unwrap();
        if how == "failed" {
            s.close_orders(name, OrderOutcome::Failed, at)
                .await
                .unwrap();
        }
    }
    let mut counted = s
        .registered_domain_orders("shop.example", NOW - secs(3600))
        .await
        .unwrap();
    counted.sort();
    assert_eq!(counted, [NOW - secs(60), NOW - secs(30)]);
    let week = s
        .registered_domain_orders("shop.example", NOW - secs(86_400))
        .await
        .unwrap();
    assert_eq!(week.len(), 3, "{week:?}");

    // A claimed name handed back waits, unattempted, until its turn.
    s.enable_domain("d.shop.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    let claim = claim_one(s.as_ref(), NOW, "L").await;
    let reason = LastError {
        reason: "rate_limit_registered_domain".into(),
        message: "shop.example has had its share".into(),
        problem: None,
        class: crate::model::FailureClass::Ca,
    };
    let until = NOW + secs(3600);
    assert!(s.wait_turn(&claim, &reason, until, NOW).await.unwrap());
    let d = s.domain("d.shop.example").await.unwrap().unwrap();
    assert_eq!(d.state, DomainState::Pending);
    assert_eq!((d.attempts, d.retry_at), (0, Some(until)));
    assert_eq!(d.last_error, Some(reason.clone()));
    assert!(
        s.claim_due(NOW + secs(3599), 10, "L2", NOW + LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.claim_due(until, 10, "L3", until + LEASE)
            .await
            .unwrap()
            .len(),
        1
    );
    // The lease is gone: handing it back again changes nothing.
    assert!(!s.wait_turn(&claim, &reason, until, NOW).await.unwrap());
}

async fn a_domains_profile_is_kept_and_reaches_its_claims(s: Arc<dyn Store>) {
    let created = s
        .enable_domain_as("a.example", KeyType::EcdsaP256, Some("shortlived"), NOW)
        .await
        .unwrap();
    assert!(
        matches!(created, Enabled::Created(ref d) if d.profile.as_deref() == Some("shortlived"))
    );
    s.enable_domain("b.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    let claims = s.claim_due(NOW, 10, "L", NOW + LEASE).await.unwrap();
    let profile_of = |name: &str| {
        claims
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.profile.clone())
    };
    assert_eq!(profile_of("a.example"), Some(Some("shortlived".into())));
    assert_eq!(profile_of("b.example"), Some(None));
    // Enabled again without one: kept. With another: changed, the state as it was.
    s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    let again = s
        .enable_domain_as("b.example", KeyType::EcdsaP256, Some("tlsserver"), NOW)
        .await
        .unwrap();
    assert!(matches!(again, Enabled::Existing(ref d) if d.state == DomainState::Validating));
    let a = s.domain("a.example").await.unwrap().unwrap();
    let b = s.domain("b.example").await.unwrap().unwrap();
    assert_eq!(a.profile.as_deref(), Some("shortlived"));
    assert_eq!(b.profile.as_deref(), Some("tlsserver"));
    // Disabled, then enabled without one: the default again.
    s.disable_domain("a.example", NOW).await.unwrap();
    s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    let a = s.domain("a.example").await.unwrap().unwrap();
    assert_eq!(a.profile, None);
}

async fn lifetimes_count_served_certificates_and_names_waiting(s: Arc<dyn Store>) {
    for name in ["a.example", "b.example"] {
        s.enable_domain(name, KeyType::EcdsaP256, NOW)
            .await
            .unwrap();
        let claim = claim_one(s.as_ref(), NOW, "setup").await;
        assert!(
            s.record_issued(&claim, &cert(name), NOW + secs(86_400 * 60), NOW)
                .await
                .unwrap()
        );
    }
    s.enable_domain("new.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    s.enable_domain("gone.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    s.disable_domain("gone.example", NOW).await.unwrap();
    let (lifetimes, waiting) = s.lifetimes().await.unwrap();
    assert_eq!(lifetimes, [(Duration::from_secs(90 * 86_400), 2)]);
    assert_eq!(waiting, 1, "disabled names wait for nothing");
}

/// `stores`: tests over `&dyn Store` alone; `engines`: tests also told the engine.
macro_rules! suite {
    (stores: [$($test:ident),* $(,)?], engines: [$($engine_test:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let (_dir, store) = super::sqlite_store().await;
                    super::$test(store).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $engine_test() {
                    let (_dir, store) = super::sqlite_store().await;
                    super::$engine_test::<sqlx::Sqlite>(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = super::temp_database().await;
                    super::$test(super::pg_store(&db).await).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $engine_test() {
                    let db = super::temp_database().await;
                    super::$engine_test::<sqlx::Postgres>(super::pg_store(&db).await).await;
                }
            )*
        }
    };
}

suite! {
    stores: [
        enable_is_idempotent_and_reenables,
        claim_issue_and_renewal_cycle,
        failure_then_retry_then_forced_renewal,
        the_cas_failures_are_not_counted_and_are_released_when_it_is_back,
        lost_lease_discards_the_result,
        expired_leases_are_taken_over_live_ones_are_not,
        concurrent_claims_take_each_domain_once,
        challenges_are_per_host,
        telling_the_ca_is_remembered_across_takeovers,
        challenges_are_answered_only_while_an_order_can_use_them,
        disabling_deletes_the_key_and_reenabling_orders_anew,
        accounts_are_kept_once_per_directory,
        counts_by_state,
        issued_domains_page_by_name,
        domains_page_by_name_state_and_substring,
        expiry_and_failures_for_the_summary,
        renewal_advances_only_earlier_for_the_same_issued_certificate,
        orders_are_resumed_until_closed,
        orders_count_against_the_budget_once_each,
        a_capped_claim_takes_renewals_first_and_few_new_names,
        lifetimes_count_served_certificates_and_names_waiting,
        a_registered_domains_new_certificates_are_counted_and_names_wait,
        a_domains_profile_is_kept_and_reaches_its_claims,
        orders_make_a_history,
    ],
    engines: [release_in_flight_takes_back_only_expired_leases],
}

// ---- PostgreSQL only: change notifications between replicas

async fn next_event(events: &mut broadcast::Receiver<CertEvent>) -> CertEvent {
    tokio::time::timeout(EVENT_DEADLINE, events.recv())
        .await
        .expect("a change notification in time")
        .expect("events open")
}

/// A replica following the database, as the service runs it.
struct Follower {
    source: StoreSource,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    fn start(store: Arc<dyn Store>) -> Follower {
        let source = StoreSource::new(store.clone());
        let stop = CancellationToken::new();
        let feed = source.clone();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            store.follow_changes(feed, stopped).await.unwrap();
        });
        Follower { source, stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(EVENT_DEADLINE, self.task)
            .await
            .expect("the follower stops when told")
            .unwrap();
    }
}

/// Issued, renewed and disabled on one replica, announced on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_changes_reach_the_other_replicas() {
    let db = temp_database().await;
    let (a, b) = (pg_store(&db).await, pg_store(&db).await);
    let follower = Follower::start(b.clone());
    let mut events = follower.source.subscribe();
    // Subscribed before the listener runs: wait until it is listening.
    wait_for_listener(&db).await;

    a.enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    let claim = claim_one(&*a, NOW, "A").await;
    assert!(
        a.record_issued(&claim, &cert("01"), NOW, NOW)
            .await
            .unwrap()
    );
    assert_eq!(
        next_event(&mut events).await,
        CertEvent::Updated("a.example".into())
    );
    assert_eq!(
        follower
            .source
            .certificate("a.example")
            .await
            .unwrap()
            .unwrap()
            .version,
        "01",
        "replica B reads what replica A stored"
    );

    a.request_renewal("a.example", NOW).await.unwrap();
    let claim = claim_one(&*a, NOW, "A2").await;
    assert!(
        a.record_issued(&claim, &cert("02"), NOW, NOW)
            .await
            .unwrap()
    );
    assert_eq!(
        next_event(&mut events).await,
        CertEvent::Updated("a.example".into())
    );

    a.disable_domain("a.example", NOW).await.unwrap();
    assert_eq!(
        next_event(&mut events).await,
        CertEvent::Removed("a.example".into())
    );
    follower.stop().await;
}

/// Every change of a domain's state on one replica reaches the others' domain feed (the admin
/// API's event stream), not only changes of what is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_domain_changes_reach_the_other_replicas() {
    let db = temp_database().await;
    let (a, b) = (pg_store(&db).await, pg_store(&db).await);
    let follower = Follower::start(b.clone());
    let mut names = follower.source.subscribe_domains();
    wait_for_listener(&db).await;
    a.enable_domain("a.example", KeyType::EcdsaP256, NOW)
        .await
        .unwrap();
    assert_eq!(next_name(&mut names).await, "a.example", "enabled");
    let claim = claim_one(&*a, NOW, "A").await;
    assert_eq!(next_name(&mut names).await, "a.example", "claimed");
    a.record_failed(&claim, &failure(), NOW + secs(60), NOW)
        .await
        .unwrap();
    assert_eq!(next_name(&mut names).await, "a.example", "failed");
    follower.stop().await;
}

async fn next_name(names: &mut broadcast::Receiver<String>) -> String {
    tokio::time::timeout(EVENT_DEADLINE, names.recv())
        .await
        .expect("a domain change within the deadline")
        .unwrap()
}

/// Changes made while a replica was not listening are announced once it listens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listener_catches_up_after_losing_its_connection() {
    let db = temp_database().await;
    let (a, b) = (pg_store(&db).await, pg_store(&db).await);
    let now = OffsetDateTime::now_utc();
    a.enable_domain("before.example", KeyType::EcdsaP256, now)
        .await
        .unwrap();
    let claim = claim_one(&*a, now, "A").await;
    let renew_at = now + time::Duration::days(60);
    assert!(
        a.record_issued(&claim, &cert("01"), renew_at, now)
            .await
            .unwrap()
    );

    // Not listening when that was committed: caught up when the listener starts.
    let follower = Follower::start(b);
    let mut events = follower.source.subscribe();
    assert_eq!(
        next_event(&mut events).await,
        CertEvent::Updated("before.example".into())
    );

    // The database drops the listening connection (a restart, a network cut).
    wait_for_listener(&db).await;
    terminate_listeners(&db).await;
    a.enable_domain("after.example", KeyType::EcdsaP256, now)
        .await
        .unwrap();
    let claim = claim_one(&*a, now, "A").await;
    assert_eq!(claim.name, "after.example");
    assert!(
        a.record_issued(&claim, &cert("02"), renew_at, now)
            .await
            .unwrap()
    );
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("the change after the reconnect is announced")
            .unwrap();
        if event == CertEvent::Updated("after.example".into()) {
            break;
        }
    }
    follower.stop().await;
}

// ---- fixtures

async fn sqlite_store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    (dir, Arc::new(store))
}

/// A PostgreSQL database of its own for one test (the end-to-end harness's), dropped with its
/// connections when the test ends, even when it fails.
async fn temp_database() -> TempDatabase {
    TempDatabase::create()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

async fn pg_store(db: &TempDatabase) -> Arc<dyn Store> {
    Arc::new(PgStore::connect(&db.url().unwrap()).await.unwrap())
}

/// Until a session of `db` is listening on the change channel.
async fn wait_for_listener(db: &TempDatabase) {
    let mut server = db.server().await.unwrap();
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
        )
        .bind(db.name())
        .fetch_one(&mut server)
        .await
        .unwrap();
        if n > 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "nobody listens");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn terminate_listeners(db: &TempDatabase) {
    let mut server = db.server().await.unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND query LIKE 'LISTEN%'",
    )
    .bind(db.name())
    .execute(&mut server)
    .await
    .unwrap();
}
