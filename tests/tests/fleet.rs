//! A fleet: two backend replicas and two Envoys sharing one PostgreSQL database, with the
//! real Pebble validating through Envoy B only (its `httpPort` can name one Envoy).
//!
//! Envoy A asks backend A for challenge answers and certificates, Envoy B asks backend B.
//! Whatever one replica does must show through the other: tokens stored by A are answered
//! by B, certificates issued by one are served by both Envoys, work is shared without
//! double issuance, and a replica killed mid-order is taken over once its leases expire.

use std::time::Instant;

use acme_edge_tests::fleet::{
    Fleet, FleetOptions, ISSUE_DEADLINE, PUSH_DEADLINE, TEST_LEASE_SECS, merged, per_domain,
};
use acme_edge_tests::process::eventually;
use anyhow::{Context, Result, bail};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabled_through_a_validated_through_b_served_by_both() -> Result<()> {
    let fleet = Fleet::start(FleetOptions::default()).await?;
    let name = "both.fleet.acme-edge.test";
    fleet.backend_a.enable(name).await?;
    // Pebble only reaches Envoy B, whose filter asks backend B: the tokens backend A's
    // order stored must be answered by B.
    fleet
        .backend_a
        .wait_for_state(name, "issued", ISSUE_DEADLINE)
        .await
        .with_context(|| fleet.logs())?;
    assert_eq!(fleet.backend_b.domain(name).await?["state"], "issued");
    let ordered_by_a = per_domain(&fleet.backend_a.log(), "ordering");
    let ordered_by_b = per_domain(&fleet.backend_b.log(), "ordering");
    eprintln!("orders: A {ordered_by_a:?}, B {ordered_by_b:?}");

    let leaf_a = fleet
        .wait_for_leaf(fleet.https_a, name, None, ISSUE_DEADLINE)
        .await?;
    let leaf_b = fleet
        .wait_for_leaf(fleet.https_b, name, None, ISSUE_DEADLINE)
        .await?;
    assert_eq!(
        leaf_a, leaf_b,
        "both Envoys serve the one issued certificate"
    );
    assert!(
        fleet
            .served_leaf(fleet.https_a, "unknown.fleet.acme-edge.test")
            .await?
            .is_none(),
        "a name nobody enabled gets no certificate"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_domains_across_two_replicas_are_each_issued_once() -> Result<()> {
    const DOMAINS: usize = 50;
    let fleet = Fleet::start(FleetOptions {
        max_in_flight_orders: 20,
        ..FleetOptions::default()
    })
    .await?;
    let names: Vec<String> = (0..DOMAINS)
        .map(|i| format!("n{i}.fleet.acme-edge.test"))
        .collect();
    let enables = names.iter().enumerate().map(|(i, name)| {
        let backend = if i % 2 == 0 {
            &fleet.backend_a
        } else {
            &fleet.backend_b
        };
        backend.enable(name)
    });
    for enabled in futures::future::join_all(enables).await {
        enabled?;
    }
    let started = Instant::now();
    for name in &names {
        fleet
            .backend_b
            .wait_for_state(name, "issued", ISSUE_DEADLINE)
            .await
            .with_context(|| fleet.logs())?;
    }
    eprintln!(
        "{DOMAINS} domains issued by the fleet in {:?}",
        started.elapsed()
    );

    let (log_a, log_b) = (fleet.backend_a.log(), fleet.backend_b.log());
    let (orders_a, orders_b) = (
        per_domain(&log_a, "ordering"),
        per_domain(&log_b, "ordering"),
    );
    let issued = merged(per_domain(&log_a, "issued"), &per_domain(&log_b, "issued"));
    let orders = merged(orders_a.clone(), &orders_b);
    eprintln!(
        "orders run by A: {}, by B: {}",
        orders_a.values().sum::<usize>(),
        orders_b.values().sum::<usize>()
    );
    for name in &names {
        assert_eq!(
            orders.get(name),
            Some(&1),
            "{name} ordered once: {orders:?}"
        );
        assert_eq!(issued.get(name), Some(&1), "{name} issued once: {issued:?}");
    }
    // The database agrees: every row issued, no lease left behind.
    let mut conn = fleet.db.connect().await?;
    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM domains WHERE lease IS NOT NULL")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(held, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_order_is_taken_over_when_its_leases_expire() -> Result<()> {
    const DOMAINS: usize = 4;
    // Pebble's validation delay keeps A's orders in flight when it dies.
    let mut fleet = Fleet::start(FleetOptions {
        va_sleep: true,
        ..FleetOptions::default()
    })
    .await?;
    let names: Vec<String> = (0..DOMAINS)
        .map(|i| format!("k{i}.fleet.acme-edge.test"))
        .collect();
    for name in &names {
        fleet.backend_a.enable(name).await?;
    }
    // Enabling wakes A's worker at once; B's may take some too (the change feed wakes it):
    // what is tested is that whatever A holds when killed is taken over.
    let ordering = eventually(ISSUE_DEADLINE, || async {
        let by_a = per_domain(&fleet.backend_a.log(), "ordering");
        let by_b = per_domain(&fleet.backend_b.log(), "ordering");
        let all = (names.iter()).all(|n| by_a.contains_key(n) || by_b.contains_key(n));
        all.then_some(by_a)
    })
    .await
    .with_context(|| fleet.logs())?;
    let mut in_flight = Vec::new();
    for name in ordering.keys() {
        if fleet.backend_a.domain(name).await?["state"] == "validating" {
            in_flight.push(name.clone());
        }
    }
    if in_flight.is_empty() {
        bail!("every order finished before the kill ({ordering:?}); nothing to take over");
    }
    fleet.backend_a.kill()?;
    let killed = Instant::now();
    eprintln!(
        "backend A killed holding {} leases: {in_flight:?}",
        in_flight.len()
    );

    for name in &names {
        fleet
            .backend_b
            .wait_for_state(name, "issued", ISSUE_DEADLINE)
            .await
            .with_context(|| fleet.logs())?;
    }
    eprintln!(
        "backend B finished A's domains {:?} after the kill (lease {TEST_LEASE_SECS} s)",
        killed.elapsed()
    );
    let resumed = per_domain(&fleet.backend_b.log(), "resuming");
    for name in &in_flight {
        assert!(
            resumed.contains_key(name),
            "B took {name} over from the expired lease: {resumed:?}\n{}",
            fleet.logs()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_by_b_reaches_the_envoy_connected_to_a() -> Result<()> {
    let fleet = Fleet::start(FleetOptions::default()).await?;
    let name = "push.fleet.acme-edge.test";
    fleet.backend_b.enable(name).await?;
    fleet
        .backend_b
        .wait_for_state(name, "issued", ISSUE_DEADLINE)
        .await
        .with_context(|| fleet.logs())?;
    // Envoy A holds the name (its SDS stream to backend A is subscribed to it).
    let first = fleet
        .wait_for_leaf(fleet.https_a, name, None, ISSUE_DEADLINE)
        .await?;
    let old_pem = fleet.backend_b.certificate_pem(name).await?;

    fleet.backend_b.renew(name).await?;
    // The moment the renewed certificate is committed, as the API shows it.
    eventually(ISSUE_DEADLINE, || async {
        let pem = fleet.backend_b.certificate_pem(name).await.ok()?;
        (pem != old_pem).then_some(())
    })
    .await
    .with_context(|| fleet.logs())?;
    let stored = Instant::now();
    let renewed = fleet
        .wait_for_leaf(fleet.https_a, name, Some(&first), PUSH_DEADLINE)
        .await
        .with_context(|| fleet.logs())?;
    let latency = stored.elapsed();
    eprintln!("renewal by backend B served by Envoy A {latency:?} after it was stored");
    assert_ne!(renewed, first);
    let via_b = fleet
        .wait_for_leaf(fleet.https_b, name, Some(&first), PUSH_DEADLINE)
        .await?;
    assert_eq!(renewed, via_b, "both Envoys serve the renewed certificate");
    Ok(())
}
