//! Upgrades that lose nothing.
//!
//! - A database written by an earlier release (the fixtures in
//!   `tests/fixtures/upgrade/<release>/`, SQLite and PostgreSQL) is migrated by this build:
//!   every row is there, its certificates are served over SDS, the order it left in flight is
//!   taken up, a renewal succeeds.
//! - The same, in place: the previous release writes the history against this test's Pebble,
//!   is killed with an order open, and this build takes over the database: the order is
//!   resumed (no second order) and the ACME account reused (no second registration).
//! - A mixed fleet: the previous release and this build on one PostgreSQL, each killed during
//!   issuance and restarted, with renewals: every domain issued once, both Envoys serving.
//! - A database a newer release migrated past this one: refused with exit code 65 and a
//!   message saying who migrated it and what to do (`check-config` too); one that records
//!   this release as compatible is served.

use std::path::Path;
use std::time::Duration;

use acme_edge_tests::backend::Backend;
use acme_edge_tests::fleet::{Fleet, FleetOptions, ISSUE_DEADLINE, merged, per_domain};
use acme_edge_tests::pebble::issued_orders;
use acme_edge_tests::process::eventually;
use acme_edge_tests::stack::Stack;
use acme_edge_tests::tls;
use acme_edge_tests::tools::{self, PREVIOUS_RELEASE};
use acme_edge_tests::upgrade::{History, Manifest, Snapshot, Storage, fixture_dir};
use anyhow::{Context, Result, bail, ensure};

/// This build's release, as its binary reports it in the compatibility record.
const RELEASE: &str = env!("CARGO_PKG_VERSION");
/// The oldest release a schema without contracting migrations leaves out: none.
const ANY_RELEASE: &str = "0.0.0";
/// A release newer than any this build could be.
const NEWER: &str = "99.0.0";
/// The exit code of a release refusing a schema a newer release migrated past it.
const EXIT_SCHEMA_TOO_NEW: i32 = 65;
/// Bound on one TLS handshake through Envoy (a first one waits for SDS).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// The releases that left fixtures (`tests/fixtures/upgrade/<release>/`), oldest first.
fn fixture_releases() -> Result<Vec<String>> {
    let root = fixture_dir(PREVIOUS_RELEASE);
    let root = root.parent().context("the fixtures' directory")?;
    let mut releases = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry.path().is_dir() {
            releases.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    releases.sort();
    ensure!(
        releases.iter().any(|r| r == PREVIOUS_RELEASE),
        "no fixtures of the previous release {PREVIOUS_RELEASE} in {}",
        root.display()
    );
    Ok(releases)
}

/// `release`'s fixture for `storage`'s engine, restored into it.
async fn restored(storage: &Storage, release: &str) -> Result<Manifest> {
    let dir = fixture_dir(release);
    storage.restore(&dir.join(storage.fixture_file())).await?;
    Manifest::load(&dir, storage)
}

/// `after` keeps every row of `before`: accounts, orders and published challenges as they
/// were, every domain with its certificate and key; the domains the new backend may have
/// taken up already (due: the failed one, the one in flight) may have moved on: released at
/// start-up (`pending`, a SQLite store releases its left-over leases), or claimed again
/// (`validating`).
fn assert_kept(before: &Snapshot, after: &Snapshot, history: &History) {
    assert_eq!(after.accounts, before.accounts, "the ACME account");
    for (url, order) in &before.orders {
        assert_eq!(after.orders.get(url), Some(order), "order {url}");
    }
    for (challenge, authorization) in &before.challenges {
        assert_eq!(
            after.challenges.get(challenge),
            Some(authorization),
            "challenge {challenge}"
        );
    }
    let due = [&history.failed, &history.in_flight];
    for (name, domain) in &before.domains {
        let Some(now) = after.domains.get(name) else {
            panic!("domain {name} lost");
        };
        if due.contains(&name) && ["pending", "validating"].contains(&now.state.as_str()) {
            assert_eq!(
                (&now.key_type, &now.cert_version),
                (&domain.key_type, &domain.cert_version),
                "{name}"
            );
        } else {
            assert_eq!(now, domain, "{name}");
        }
    }
}

/// The leaf (DER) of a PEM chain.
fn leaf_of(chain_pem: &str) -> Result<Vec<u8>> {
    let chain = tls::pem_certificates(chain_pem)?;
    Ok(chain.first().context("an empty chain")?.to_vec())
}

/// Envoy presents `name`'s stored certificate, verified against `root_pem`.
async fn assert_served(stack: &Stack, name: &str, root_pem: &str) -> Result<()> {
    let stored = leaf_of(&stack.backend.certificate_pem(name).await?)?;
    let client = tls::client_trusting(root_pem)?;
    let addr = ([127, 0, 0, 1], stack.https_port).into();
    let served = tls::handshake_within(&client, addr, name, HANDSHAKE_TIMEOUT).await?;
    ensure!(
        served == stored,
        "Envoy serves another certificate for {name}"
    );
    Ok(())
}

/// Force a renewal of `name` and wait until a new certificate is stored.
async fn renew(backend: &Backend, name: &str) -> Result<()> {
    let before = backend.certificate_pem(name).await?;
    backend.renew(name).await?;
    eventually(ISSUE_DEADLINE, || async {
        let pem = backend.certificate_pem(name).await.ok()?;
        (pem != before).then_some(())
    })
    .await
    .with_context(|| format!("renewing {name}\n{}", backend.log()))
}

async fn a_database_an_earlier_release_wrote_is_carried_across(
    storage: Storage,
    release: &str,
) -> Result<()> {
    let manifest = restored(&storage, release).await?;
    let history = &manifest.history;
    assert_eq!(manifest.release, release);
    let url = storage.url()?;
    // The CA answers nothing until the rows are read: only the migration moves them.
    let mut stack = Stack::builder()
        .ca_frozen_at_start()
        .backend(move |b| b.storage_url(url))
        .start()
        .await?;
    assert_eq!(
        storage.compatibility().await?,
        Some((RELEASE.to_owned(), ANY_RELEASE.to_owned())),
        "the migration is recorded"
    );
    let migrated = storage.snapshot().await?;
    assert_kept(&manifest.snapshot, &migrated, history);
    // A database file keeps holding private keys: readable by its owner only.
    if let Storage::Sqlite(path) = &storage {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(path)?.permissions().mode() & 0o077, 0);
    }

    // Usable: the certificates of the previous release are served as they are...
    for name in [&history.issued, &history.renewed] {
        assert_served(&stack, name, &manifest.issuer_root_pem)
            .await
            .with_context(|| stack.logs())?;
    }
    // ... and once the CA answers (another CA run, at another address: it knows neither the
    // account nor the order), the domain left in flight is issued, the failed one retried,
    // and a renewal issued.
    stack.pebble.thaw()?;
    for name in [&history.in_flight, &history.failed] {
        stack
            .backend
            .wait_for_state(name, "issued", ISSUE_DEADLINE)
            .await
            .with_context(|| stack.logs())?;
    }
    let taken_up = storage.snapshot().await?;
    let old_order = manifest
        .snapshot
        .open_order(&history.in_flight)
        .context("the fixture's open order")?;
    // Its order was placed with the other CA run: given up, not asked for again and again.
    let order = &taken_up.orders[old_order];
    assert_eq!(
        order.outcome.as_deref(),
        Some("abandoned"),
        "the open order of another CA: {order:?}"
    );
    assert!(
        stack.backend.log().contains("it belongs to another CA"),
        "{}",
        stack.backend.log()
    );
    renew(&stack.backend, &history.issued).await?;
    let root = stack.pebble.issuer_roots_pem().await?;
    for name in [&history.issued, &history.in_flight, &history.failed] {
        assert_served(&stack, name, &root).await?;
    }
    assert_eq!(
        stack.backend.domain(&history.disabled).await?["state"],
        "disabled"
    );
    Ok(())
}

async fn an_upgrade_in_place_resumes_the_order_and_keeps_the_account(
    storage: Storage,
) -> Result<()> {
    let previous = tools::previous_backend_bin()?;
    let url = storage.url()?;
    let mut stack = Stack::builder()
        .pebble(|p| p.va_sleep(true))
        .backend(move |b| b.binary(previous).storage_url(url))
        .start()
        .await?;
    let mut history = History::under("in-place.upgrade.acme-edge.test");
    history
        .write(&mut stack, &storage)
        .await
        .with_context(|| stack.logs())?;
    let before = storage.snapshot().await?;
    // 0.1.0 kept no compatibility record; later releases record themselves.
    let recorded = storage.compatibility().await?;
    ensure!(
        recorded.is_none()
            || recorded
                .as_ref()
                .is_some_and(|(by, _)| by == PREVIOUS_RELEASE),
        "{PREVIOUS_RELEASE} left the record {recorded:?}"
    );
    let open_order = before
        .open_order(&history.in_flight)
        .context("an open order")?
        .to_owned();

    // This build in the previous release's place, on its database, with the CA frozen.
    stack
        .backend
        .restart_as(tools::backend_bin()?)
        .await
        .with_context(|| stack.logs())?;
    assert_eq!(
        storage.compatibility().await?,
        Some((RELEASE.to_owned(), ANY_RELEASE.to_owned()))
    );
    assert_kept(&before, &storage.snapshot().await?, &history);

    stack.pebble.thaw()?;
    stack
        .backend
        .wait_for_state(&history.in_flight, "issued", ISSUE_DEADLINE)
        .await
        .with_context(|| stack.logs())?;
    let after = storage.snapshot().await?;
    let order = &after.orders[&open_order];
    assert!(
        order.resumed && order.outcome.as_deref() == Some("issued"),
        "the open order was resumed and issued: {order:?}\n{}",
        stack.logs()
    );
    assert_eq!(
        after.orders_of(&history.in_flight),
        1,
        "no second order for the name in flight"
    );
    renew(&stack.backend, &history.issued).await?;
    let after = storage.snapshot().await?;
    assert_eq!(after.accounts, before.accounts, "the account is reused");
    assert!(
        !stack.backend.log().contains("registering a new one"),
        "no second registration at the CA"
    );
    let root = stack.pebble.issuer_roots_pem().await?;
    for name in [&history.issued, &history.renewed, &history.in_flight] {
        assert_served(&stack, name, &root).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_written_by_earlier_releases_is_carried_across() -> Result<()> {
    for release in fixture_releases()? {
        let dir = tempfile::tempdir()?;
        let storage = Storage::sqlite(dir.path().join("acme-edge.db"));
        a_database_an_earlier_release_wrote_is_carried_across(storage, &release)
            .await
            .with_context(|| format!("the SQLite database of {release}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_written_by_earlier_releases_is_carried_across() -> Result<()> {
    for release in fixture_releases()? {
        let storage = Storage::postgres().await?;
        a_database_an_earlier_release_wrote_is_carried_across(storage, &release)
            .await
            .with_context(|| format!("the PostgreSQL database of {release}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_upgraded_in_place_resumes_the_order_and_keeps_the_account() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = Storage::sqlite(dir.path().join("acme-edge.db"));
    an_upgrade_in_place_resumes_the_order_and_keeps_the_account(storage).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_upgraded_in_place_resumes_the_order_and_keeps_the_account() -> Result<()> {
    an_upgrade_in_place_resumes_the_order_and_keeps_the_account(Storage::postgres().await?).await
}

/// Until `backend` holds a lease on one of `names` (an order in flight): that name.
async fn holding_a_lease(backend: &Backend, names: &[String]) -> Result<String> {
    eventually(ISSUE_DEADLINE, || async {
        for name in names {
            if backend.domain(name).await.ok()?["state"] == "validating"
                && per_domain(&backend.log(), "ordering").contains_key(name)
            {
                return Some(name.clone());
            }
        }
        None
    })
    .await
    .context("an order in flight")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_two_releases_issues_each_domain_once() -> Result<()> {
    const DOMAINS: usize = 6;
    // Replica A runs the previous release, B this build; Pebble's validation delay keeps
    // orders in flight when a replica is killed.
    let mut fleet = Fleet::start(FleetOptions {
        va_sleep: true,
        binary_a: Some(tools::previous_backend_bin()?),
        ..FleetOptions::default()
    })
    .await?;
    let names: Vec<String> = (0..DOMAINS)
        .map(|i| format!("m{i}.mixed.acme-edge.test"))
        .collect();
    let (via_a, via_b) = names.split_at(DOMAINS / 2);
    for name in via_a {
        fleet.backend_a.enable(name).await?;
    }
    // A replica of each release killed during issuance, and started again (the previous
    // release on the schema this build migrated).
    let held = holding_a_lease(&fleet.backend_a, &names).await?;
    fleet.backend_a.kill()?;
    eprintln!("the previous release killed holding {held}");
    for name in via_b {
        fleet.backend_b.enable(name).await?;
    }
    fleet
        .backend_a
        .start()
        .await
        .with_context(|| fleet.logs())?;
    let held = holding_a_lease(&fleet.backend_b, &names).await?;
    fleet.backend_b.kill()?;
    eprintln!("this build killed holding {held}");
    fleet
        .backend_b
        .start()
        .await
        .with_context(|| fleet.logs())?;
    for name in &names {
        fleet
            .backend_b
            .wait_for_state(name, "issued", ISSUE_DEADLINE)
            .await
            .with_context(|| fleet.logs())?;
    }
    // Renewals through each release.
    let renewed = [&names[0], &names[DOMAINS - 1]];
    for (backend, name) in [
        (&fleet.backend_a, renewed[0]),
        (&fleet.backend_b, renewed[1]),
    ] {
        renew(backend, name).await.with_context(|| fleet.logs())?;
    }

    // Exactly one certificate per domain, and one more per renewal: as the CA issued them.
    let mut conn = fleet.db.connect().await?;
    let log: Vec<(String, String)> = sqlx::query_as("SELECT order_url, name FROM orders")
        .fetch_all(&mut conn)
        .await?;
    let mut issued = std::collections::BTreeMap::new();
    for (order_id, _serial) in issued_orders(&fleet.pebble.log()) {
        let name = log
            .iter()
            .find(|(url, _)| url.rsplit('/').next() == Some(order_id.as_str()))
            .map(|(_, name)| name.clone())
            .with_context(|| format!("Pebble issued for order {order_id}, which nobody logged"))?;
        *issued.entry(name).or_insert(0) += 1;
    }
    for name in &names {
        let want = if renewed.contains(&name) { 2 } else { 1 };
        assert_eq!(
            issued.get(name),
            Some(&want),
            "{name}: certificates issued {issued:?}\n{}",
            fleet.logs()
        );
    }
    let orders = merged(
        per_domain(&fleet.backend_a.log(), "ordering"),
        &per_domain(&fleet.backend_b.log(), "ordering"),
    );
    eprintln!("orders run, resumed ones included: {orders:?}");
    // Both Envoys serve each domain's current certificate.
    for name in &names {
        let stored = leaf_of(&fleet.backend_a.certificate_pem(name).await?)?;
        for port in [fleet.https_a, fleet.https_b] {
            let served = fleet
                .wait_for_leaf(port, name, None, ISSUE_DEADLINE)
                .await?;
            if served != stored {
                // A renewal may still be on its way to this Envoy.
                let current = fleet
                    .wait_for_leaf(port, name, Some(&served), ISSUE_DEADLINE)
                    .await?;
                assert_eq!(current, stored, "{name} on :{port}");
            }
        }
    }
    Ok(())
}

/// `acme-edge COMMAND --config FILE`: its exit code and what it printed.
async fn run_backend(binary: &Path, command: &str, config: &Path) -> Result<(Option<i32>, String)> {
    let run = tokio::process::Command::new(binary)
        .arg(command)
        .arg("--config")
        .arg(config)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .context("it did not exit")??;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code(), text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_a_newer_release_migrated_is_refused_or_served_as_its_record_says() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = Storage::sqlite(dir.path().join("acme-edge.db"));
    let url = storage.url()?;
    let mut stack = Stack::builder()
        .backend(move |b| b.storage_url(url))
        .start()
        .await?;
    let before = "before.newer.acme-edge.test";
    stack.issue(before, ISSUE_DEADLINE).await?;
    stack.backend.stop()?;

    // What a newer release would leave: a migration this build does not know, and a record
    // saying releases before it cannot run on the schema.
    storage
        .execute(&format!(
            "ALTER TABLE domains ADD COLUMN newer_column TEXT; \
             INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (29991231000001, 'a newer release', TRUE, X'00', 0); \
             UPDATE schema_compatibility SET migrated_by = '{NEWER}', oldest_release = '{NEWER}';"
        ))
        .await?;
    let binary = tools::backend_bin()?;
    let config = stack.backend.config_path().to_owned();
    let (code, said) = run_backend(&binary, "serve", &config).await?;
    assert_eq!(code, Some(EXIT_SCHEMA_TOO_NEW), "{said}");
    for words in [
        &format!("migrated by acme-edge {NEWER}"),
        &format!("this is acme-edge {RELEASE}"),
        &format!("releases before {NEWER} cannot run on it"),
        "upgrade this replica",
        "restore the database from the backup",
    ] {
        assert!(said.contains(words), "{words:?} in: {said}");
    }
    let (code, said) = run_backend(&binary, "check-config", &config).await?;
    assert_eq!(code, Some(EXIT_SCHEMA_TOO_NEW), "{said}");
    assert!(said.contains("ahead and incompatible"), "{said}");
    assert_eq!(
        storage.compatibility().await?,
        Some((NEWER.to_owned(), NEWER.to_owned())),
        "a refused database is left as it is"
    );

    // The same schema, recorded as one this release still runs on: served.
    storage
        .execute(&format!(
            "UPDATE schema_compatibility SET oldest_release = '{RELEASE}';"
        ))
        .await?;
    let (code, said) = run_backend(&binary, "check-config", &config).await?;
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("ahead and compatible"), "{said}");
    stack.backend.start().await.with_context(|| stack.logs())?;
    let after = "after.newer.acme-edge.test";
    stack.issue(after, ISSUE_DEADLINE).await?;
    let root = stack.pebble.issuer_roots_pem().await?;
    for name in [before, after] {
        assert_served(&stack, name, &root).await?;
    }
    assert_eq!(
        storage.compatibility().await?,
        Some((NEWER.to_owned(), RELEASE.to_owned())),
        "the newer release's record stays"
    );
    if stack.backend.log().contains("refusing") {
        bail!("a compatible schema was refused:\n{}", stack.backend.log());
    }
    Ok(())
}
