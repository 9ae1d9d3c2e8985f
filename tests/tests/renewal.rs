//! Renewal end to end with the real Pebble, Envoy and backend: short-lived certificates
//! renewed by themselves before they expire and the new one served by Envoy, and a domain
//! that keeps failing validation backing off instead of hammering the CA.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use acme_edge_tests::backend::{now_unix, unix_time};
use acme_edge_tests::ports::free_addr;
use acme_edge_tests::process::eventually;
use acme_edge_tests::stack::Stack;
use acme_edge_tests::tls::handshake_within;
use anyhow::{Context, Result, bail};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

const DEADLINE: Duration = Duration::from_secs(150);

/// Certificates valid this long: renewal falls due at half of it (under ten days), minus
/// up to 5 % jitter.
const VALIDITY: Duration = Duration::from_secs(90);

fn leaf_der(chain_pem: &str) -> Result<Vec<u8>> {
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .context("empty chain")??;
    Ok(leaf.to_vec())
}

/// The leaf certificate Envoy presents for `name` (SNI) on its HTTPS listener, verified
/// against Pebble's root.
async fn served_leaf(stack: &Stack, name: &str) -> Result<Vec<u8>> {
    let connector = acme_edge_tests::tls::client_trusting(&stack.pebble.issuer_roots_pem().await?)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, stack.https_port));
    handshake_within(&connector, addr, name, Duration::from_secs(10)).await
}

/// Three 90-second certificates: each renews by itself at about half its lifetime (never
/// later, a little earlier by jitter), before it expires, and Envoy then serves the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_certificates_renew_before_expiry_and_envoy_serves_the_new_one() -> Result<()> {
    let stack = Stack::builder()
        .pebble(|p| p.certificate_validity(VALIDITY))
        .start()
        .await?;
    let names: Vec<String> = (0..3)
        .map(|i| format!("r{i}.short.acme-edge.test"))
        .collect();
    let mut first = BTreeMap::new();
    for name in &names {
        let domain = stack.issue(name, DEADLINE).await?;
        let (nb, na, renew) = (
            unix_time(&domain, "not_before")?,
            unix_time(&domain, "not_after")?,
            unix_time(&domain, "renew_at")?,
        );
        let half = nb + (na - nb) / 2;
        let jitter = (na - nb) / 20 + 1;
        assert!(
            renew <= half + 1 && renew >= half - jitter,
            "renew_at {renew} not in [{}, {half}]: {domain}",
            half - jitter
        );
        let chain = stack.backend.certificate_pem(name).await?;
        let served = served_leaf(&stack, name).await?;
        assert_eq!(
            served,
            leaf_der(&chain)?,
            "Envoy serves the issued certificate"
        );
        first.insert(name.clone(), (served, na));
    }

    for name in &names {
        let (old_leaf, old_not_after) = &first[name];
        let new_leaf = eventually(DEADLINE, || async {
            let leaf = served_leaf(&stack, name).await.ok()?;
            (leaf != *old_leaf).then_some(leaf)
        })
        .await
        .with_context(|| format!("{name} never renewed\n{}", stack.logs()))?;
        let renewed_at = now_unix();
        assert!(
            renewed_at < *old_not_after,
            "{name} renewed at {renewed_at}, after the old one expired at {old_not_after}"
        );
        let chain = stack.backend.certificate_pem(name).await?;
        assert_eq!(
            new_leaf,
            leaf_der(&chain)?,
            "Envoy serves the renewed certificate"
        );
        let domain = stack.backend.domain(name).await?;
        assert!(
            unix_time(&domain, "not_after")? > *old_not_after,
            "{domain}"
        );
    }
    Ok(())
}

/// Envoy's challenge route points at a port nobody listens on, so every validation fails.
/// The domain backs off (attempts and retry_at grow: 1 s, 10 s, then 100 s with the base
/// shortened to 1 s), says what to fix, and orders no more than once per attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_that_keeps_failing_validation_backs_off() -> Result<()> {
    let nowhere = free_addr();
    let stack = Stack::builder()
        .envoy(move |config| config.backend(nowhere))
        .backend(|b| b.setting("acme", "retry_base_secs", 1))
        .start()
        .await?;
    let name = "failing.backoff.acme-edge.test";
    stack.backend.enable(name).await?;

    let third = eventually(DEADLINE, || async {
        let domain = stack.backend.domain(name).await.ok()?;
        if domain["state"] != "failed" {
            return None;
        }
        let attempts = domain["attempts"].as_i64()?;
        let retry_at = unix_time(&domain, "retry_at").ok()?;
        let updated_at = unix_time(&domain, "updated_at").ok()?;
        (attempts >= 3).then_some((domain, attempts, retry_at, updated_at))
    })
    .await
    .with_context(|| stack.logs())?;
    let (domain, attempts, retry_at, updated_at) = third;

    assert_eq!(attempts, 3, "{domain}");
    let wait = retry_at - updated_at;
    assert!(
        (99..=101).contains(&wait),
        "third failure waits 100 s: {wait} s {domain}"
    );
    let error = &domain["last_error"];
    assert_eq!(error["reason"], "validation_failed", "{domain}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("DNS"), "says what to fix: {message}");
    assert!(
        error["problem"]["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:ietf:params:acme:error:")),
        "the CA's problem is kept: {domain}"
    );

    // One order per attempt at most (a failed order is closed, never re-used), and no
    // more attempts while the 100 s wait runs.
    let db = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(stack.backend.dir().join("acme-edge.db"))
                .read_only(true),
        )
        .await?;
    let orders: i64 = sqlx::query("SELECT COUNT(*) AS n FROM orders WHERE name = ?")
        .bind(name)
        .fetch_one(&db)
        .await?
        .try_get("n")?;
    if !(1..=3).contains(&orders) {
        bail!("{orders} orders for 3 attempts");
    }
    let still = stack.backend.domain(name).await?;
    assert_eq!(still["attempts"], 3, "no attempt before retry_at: {still}");
    Ok(())
}
