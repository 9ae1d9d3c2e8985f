//! The fleet the benchmark measures, written through the store's own code as the worker
//! leaves it: each domain enabled, claimed, then recorded issued (with a certificate chain
//! and key) or failed; a few left pending.
//!
//! Shares, by the domain's number modulo 100:
//! - 0: issued, renewal due now: the worker's due-claim finds 1 % due among the fleet;
//! - 1: failed (the CA could not validate), retried in 6 hours;
//! - 2: pending, due a day ahead (enabled with that due time, so that the backend measured
//!   at rest has no work to pick up);
//! - the rest: issued at some time in the last 60 days (spread, as renewals spread them),
//!   renewal at 2/3 of a 90-day lifetime, so between a day and two months ahead.
//!
//! Every issued domain stores the same chain and key (a leaf and an intermediate, as a
//! public CA's chains are built); only the times and the version differ.

use std::sync::Arc;
use std::time::{Duration, Instant};

use acme_edge::model::{FailureClass, KeyType, LastError};
use acme_edge::store::{Claim, IssuedCertificate, Store};
use acme_edge_tests::test_ca::TestCa;
use anyhow::{Context, Result, ensure};
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;

/// Domains claimed at once while filling (the worker claims fewer, but this is setup).
const CLAIM_BATCH: usize = 500;
/// The lease the fill holds its claims under.
const FILL_LEASE: &str = "bench-fill";
/// Lifetime of the certificates, as Let's Encrypt's `classic` profile.
const LIFETIME_DAYS: i64 = 90;
/// Renewal at 2/3 of the lifetime (1/3 left), as without ARI.
const RENEW_AFTER_DAYS: i64 = 60;
/// When a failed domain is tried again.
const RETRY_IN: time::Duration = time::Duration::hours(6);
/// How far ahead pending domains are due.
const PENDING_DUE_IN: time::Duration = time::Duration::days(1);

/// What a domain becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// Issued, its renewal due now.
    RenewalDue,
    Failed,
    Pending,
    Issued,
}

impl Share {
    pub fn of(i: usize) -> Share {
        match i % 100 {
            0 => Share::RenewalDue,
            1 => Share::Failed,
            2 => Share::Pending,
            _ => Share::Issued,
        }
    }
}

/// How many of `domains` are due for renewal.
pub fn renewals_due(domains: usize) -> usize {
    (0..domains)
        .filter(|&i| Share::of(i) == Share::RenewalDue)
        .count()
}

/// The name of domain number `i`.
pub fn name(i: usize) -> String {
    format!("d{i:06}.scale.example")
}

/// The number in a name made by [`name`].
fn number(name: &str) -> Option<usize> {
    name.strip_prefix('d')?.split('.').next()?.parse().ok()
}

/// The chain and key every issued domain stores.
pub struct Chain {
    template: IssuedCertificate,
}

impl Chain {
    /// A leaf and its intermediate from a throwaway CA, read as the worker reads what the
    /// CA returns.
    pub fn new() -> Result<Chain> {
        let ca = TestCa::with_intermediate("Scale Bench CA")?;
        let leaf = ca.issue("scale.example")?;
        let template =
            acme_edge::acme::order::read_certificate("scale.example", leaf.chain_pem, leaf.key_pem)
                .context("reading the bench's certificate as the worker would")?;
        Ok(Chain { template })
    }

    /// The chain every issued domain stores (PEM, the leaf first).
    pub fn chain_pem(&self) -> &str {
        &self.template.chain_pem
    }

    /// Bytes stored per issued domain (chain, key).
    pub fn sizes(&self) -> (usize, usize) {
        (self.template.chain_pem.len(), self.template.key_pem.len())
    }

    /// Domain `i`'s certificate, issued `age` before `now`, and when it is renewed.
    fn issued(&self, i: usize, now: OffsetDateTime) -> (IssuedCertificate, OffsetDateTime) {
        let (not_before, renew_at) = match Share::of(i) {
            Share::RenewalDue => (
                now - time::Duration::days(RENEW_AFTER_DAYS),
                // A second after the fill's own claims look: due for the measured claims.
                now + time::Duration::seconds(1),
            ),
            _ => {
                // 1 to 59 days old: the renewal is at least a day ahead.
                let age = (i % (RENEW_AFTER_DAYS as usize - 1)) as i64 + 1;
                let age = time::Duration::days(age);
                let not_before = now - age;
                (
                    not_before,
                    not_before + time::Duration::days(RENEW_AFTER_DAYS),
                )
            }
        };
        let cert = IssuedCertificate {
            not_before,
            not_after: not_before + time::Duration::days(LIFETIME_DAYS),
            version: format!("{i:016x}"),
            ..self.template.clone()
        };
        (cert, renew_at)
    }
}

/// How long each step of the fill took.
#[derive(Debug, Clone, Copy)]
pub struct Filled {
    pub enabled: Duration,
    pub recorded: Duration,
}

/// Enable domains `0..domains` and record what each becomes, `concurrency` store calls at a
/// time. Returns when nothing is due at the fill's start time any more.
pub async fn fill(
    store: &Arc<dyn Store>,
    chain: &Chain,
    domains: usize,
    concurrency: usize,
) -> Result<Filled> {
    let now = whole_second(OffsetDateTime::now_utc());
    let started = Instant::now();
    futures::stream::iter(0..domains)
        .map(|i| enable(store.as_ref(), i, now))
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;
    let enabled = started.elapsed();
    let started = Instant::now();
    let lease_until = now + time::Duration::hours(1);
    loop {
        let claims = store
            .claim_due(now, CLAIM_BATCH, FILL_LEASE, lease_until)
            .await?;
        if claims.is_empty() {
            break;
        }
        futures::stream::iter(claims)
            .map(|claim| record(store.as_ref(), chain, claim, now))
            .buffer_unordered(concurrency)
            .try_collect::<()>()
            .await?;
    }
    Ok(Filled {
        enabled,
        recorded: started.elapsed(),
    })
}

/// Renew what is due now (the renewal-due share, and what the measured claims took: pass
/// their claims), as the worker would: nothing is due afterwards. Returns how many.
pub async fn renew_due(
    store: &Arc<dyn Store>,
    chain: &Chain,
    held: Vec<Claim>,
    concurrency: usize,
) -> Result<usize> {
    let now = whole_second(OffsetDateTime::now_utc());
    let mut renewed = 0;
    let mut claims = held;
    loop {
        renewed += claims.len();
        futures::stream::iter(claims)
            .map(|claim| renew(store.as_ref(), chain, claim, now))
            .buffer_unordered(concurrency)
            .try_collect::<()>()
            .await?;
        claims = store
            .claim_due(now, CLAIM_BATCH, FILL_LEASE, now + time::Duration::hours(1))
            .await?;
        if claims.is_empty() {
            return Ok(renewed);
        }
    }
}

async fn enable(store: &dyn Store, i: usize, now: OffsetDateTime) -> Result<()> {
    let due = match Share::of(i) {
        Share::Pending => now + PENDING_DUE_IN,
        _ => now,
    };
    store
        .enable_domain(&name(i), KeyType::default(), due)
        .await?;
    Ok(())
}

async fn record(store: &dyn Store, chain: &Chain, claim: Claim, now: OffsetDateTime) -> Result<()> {
    let i = number(&claim.name).with_context(|| format!("not a bench name: {}", claim.name))?;
    let kept = match Share::of(i) {
        Share::Failed => {
            store
                .record_failed(&claim, &failure(), now + RETRY_IN, now)
                .await?
        }
        _ => {
            let (cert, renew_at) = chain.issued(i, now);
            store.record_issued(&claim, &cert, renew_at, now).await?
        }
    };
    ensure!(kept, "lost the lease on {}", claim.name);
    Ok(())
}

/// Store a renewed certificate (issued now) for a claimed domain.
async fn renew(store: &dyn Store, chain: &Chain, claim: Claim, now: OffsetDateTime) -> Result<()> {
    let i = number(&claim.name).with_context(|| format!("not a bench name: {}", claim.name))?;
    let (template, _) = chain.issued(i, now);
    let cert = IssuedCertificate {
        not_before: now,
        not_after: now + time::Duration::days(LIFETIME_DAYS),
        ..template
    };
    let renew_at = now + time::Duration::days(RENEW_AFTER_DAYS);
    let kept = store.record_issued(&claim, &cert, renew_at, now).await?;
    ensure!(kept, "lost the lease on {}", claim.name);
    Ok(())
}

/// What a failed validation leaves, as the worker records it.
fn failure() -> LastError {
    LastError {
        reason: "validation_failed".into(),
        message: "the CA could not fetch the challenge: connection refused".into(),
        problem: Some(serde_json::json!({
            "type": "urn:ietf:params:acme:error:connection",
            "detail": "127.0.0.1: Fetching http://example/.well-known/acme-challenge/x: \
                       Connection refused",
            "status": 400
        })),
        class: FailureClass::Domain,
    }
}

/// The store keeps whole seconds.
fn whole_second(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}
