//! Issuance that survives CA faults and crashes, end to end with the real Pebble, Envoy and
//! backend: nonce rejections and validation delays, the CA stopped or frozen mid-issuance,
//! the backend SIGKILLed mid-issuance. Every test ends with all domains issued and, where a
//! crash could cause it, no domain given two certificates.
//!
//! Backoff is shortened (`acme.retry_base_secs = 1`: retries after 1 s, 10 s, 100 s) and so
//! is the CA request timeout, so that the faults play out in well under a minute each.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use acme_edge_tests::backend::Backend;
use acme_edge_tests::pebble::issued_orders;
use acme_edge_tests::process::eventually;
use acme_edge_tests::stack::Stack;
use anyhow::{Context, Result, bail};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// Bounds a broken run; a healthy one takes seconds to a minute (Pebble's validation sleep
/// is up to 15 s per attempt).
const ALL_ISSUED_DEADLINE: Duration = Duration::from_secs(170);

fn names(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("d{i}.{tag}.acme-edge.test"))
        .collect()
}

async fn enable_all(backend: &Backend, names: &[String]) -> Result<()> {
    for name in names {
        backend.enable(name).await?;
    }
    Ok(())
}

/// Poll the domain list until every one of `names` is issued (failures on the way are
/// expected: they are retried); the domains' JSON by name.
async fn wait_all_issued(
    stack: &Stack,
    names: &[String],
) -> Result<BTreeMap<String, serde_json::Value>> {
    let backend = &stack.backend;
    let reached = eventually(ALL_ISSUED_DEADLINE, || async {
        let list = backend.domains().await.ok()?;
        let by_name: BTreeMap<String, serde_json::Value> = list["domains"]
            .as_array()?
            .iter()
            .filter_map(|d| Some((d["name"].as_str()?.to_owned(), d.clone())))
            .collect();
        names
            .iter()
            .all(|n| by_name.get(n).is_some_and(|d| d["state"] == "issued"))
            .then_some(by_name)
    })
    .await;
    match reached {
        Ok(domains) => Ok(domains),
        Err(e) => {
            let list = backend.domains().await.unwrap_or_default();
            Err(e.context(format!("not all issued: {list:#}\n{}", stack.logs())))
        }
    }
}

/// Read the backend's SQLite database (read-only): orders per domain that got as far as a
/// CSR, and SQLite's own integrity check.
struct Database {
    pool: sqlx::SqlitePool,
}

impl Database {
    async fn open(dir: &Path) -> Result<Database> {
        let options = SqliteConnectOptions::new()
            .filename(dir.join("acme-edge.db"))
            .read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .context("open the backend's database")?;
        Ok(Database { pool })
    }

    async fn integrity(&self) -> Result<String> {
        let row = sqlx::query("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<String, _>(0)?)
    }

    /// Orders whose CSR was sent, i.e. certificates the CA may have issued, per domain.
    async fn certificates_ordered(&self) -> Result<BTreeMap<String, i64>> {
        let rows =
            sqlx::query("SELECT name, COUNT(*) AS n FROM orders WHERE key_made GROUP BY name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("n")?)))
            .collect()
    }

    /// Every logged order: its URL, domain, and whether its CSR was (about to be) sent.
    async fn order_log(&self) -> Result<Vec<(String, String, bool)>> {
        let rows = sqlx::query("SELECT order_url, name, key_made FROM orders ORDER BY created_at")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("order_url")?,
                    r.try_get("name")?,
                    r.try_get("key_made")?,
                ))
            })
            .collect()
    }

    async fn orders(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM orders")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}

async fn fault_stack(
    pebble: impl FnOnce(
        acme_edge_tests::pebble::PebbleBuilder,
    ) -> acme_edge_tests::pebble::PebbleBuilder
    + Send
    + 'static,
) -> Result<Stack> {
    Stack::builder()
        .pebble(pebble)
        .backend(|b| {
            b.setting("acme", "retry_base_secs", 1)
                .request_timeout(Duration::from_secs(3))
        })
        .start()
        .await
}

async fn issue_twenty_under(nonce_reject_percent: u8, tag: &str) -> Result<()> {
    let stack =
        fault_stack(move |p| p.nonce_reject_percent(nonce_reject_percent).va_sleep(true)).await?;
    let names = names(tag, 20);
    enable_all(&stack.backend, &names).await?;
    wait_all_issued(&stack, &names).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_domains_issue_with_5_percent_nonce_rejections_and_validation_delays() -> Result<()>
{
    issue_twenty_under(5, "nonce5").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_domains_issue_with_30_percent_nonce_rejections_and_validation_delays() -> Result<()>
{
    issue_twenty_under(30, "nonce30").await
}

/// Pebble stopped while 20 orders are in flight (it forgets every account and order), then
/// started again: failed attempts back off, the lost account is registered again, and the
/// orders the CA forgot are replaced by new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_stopped_during_issuance_then_started_again() -> Result<()> {
    // Without Pebble's validation sleep: the outage, not validation, is under test here.
    let mut stack = fault_stack(|p| p).await?;
    stack
        .issue("warm.stop.acme-edge.test", ALL_ISSUED_DEADLINE)
        .await?;
    let names = names("stop", 20);
    enable_all(&stack.backend, &names).await?;
    wait_for_some_in_flight(&stack.backend).await?;
    stack.pebble.stop()?;
    // Long enough for attempts to fail and back off against the stopped CA.
    wait_for_some_failed(&stack.backend).await?;
    stack.pebble.start().await?;
    wait_all_issued(&stack, &names).await?;
    Ok(())
}

/// How long the CA stays frozen.
const FREEZE: Duration = Duration::from_secs(60);

/// Pebble frozen (SIGSTOP: connections accepted, nothing answered) while 20 orders are in
/// flight, thawed a minute later: every call times out instead of hanging (each domain is
/// seen failed while frozen), and all end issued after the thaw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_frozen_during_issuance_then_thawed() -> Result<()> {
    let mut stack = fault_stack(|p| p.va_sleep(true)).await?;
    stack
        .issue("warm.freeze.acme-edge.test", ALL_ISSUED_DEADLINE)
        .await?;
    let names = names("freeze", 20);
    enable_all(&stack.backend, &names).await?;
    wait_for_some_in_flight(&stack.backend).await?;
    stack.pebble.freeze()?;
    let frozen_at = std::time::Instant::now();
    // Every job gives up (request timeout 3 s) instead of hanging: each domain is seen
    // failed while the CA answers nothing.
    let failed_once = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let settled = eventually(Duration::from_secs(90), || async {
        let list = stack.backend.domains().await.ok()?;
        let mut seen = failed_once.lock().ok()?;
        for d in list["domains"].as_array()? {
            if d["state"] == "failed"
                && let Some(name) = d["name"].as_str()
            {
                seen.insert(name.to_owned());
            }
        }
        names.iter().all(|n| seen.contains(n)).then_some(())
    })
    .await;
    // Then stay frozen for a minute in all, as a CA outage would, before thawing.
    let frozen_for = frozen_at.elapsed();
    if settled.is_ok() && frozen_for < FREEZE {
        tokio::time::sleep(FREEZE - frozen_for).await;
    }
    stack.pebble.thaw()?;
    settled.context("a job hung on the frozen CA")?;
    wait_all_issued(&stack, &names).await?;
    Ok(())
}

/// The backend SIGKILLed three times while issuing 20 domains, restarted each time: all end
/// issued, no domain was given two certificates, the database is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_killed_repeatedly_during_issuance() -> Result<()> {
    // Short leases: a killed backend's domains are taken over 6 s after its last beat.
    let mut stack = Stack::builder()
        .pebble(|p| p.va_sleep(true))
        .backend(|b| {
            b.setting("acme", "retry_base_secs", 1)
                .setting("storage", "lease_secs", 6)
                .request_timeout(Duration::from_secs(3))
        })
        .start()
        .await?;
    let names = names("kill", 20);
    enable_all(&stack.backend, &names).await?;
    // Kill whenever a few more domains are done, so each kill lands mid-batch.
    for round in 1..=3 {
        wait_for_issued_count(&stack.backend, round * 3)
            .await
            .with_context(|| format!("round {round}"))?;
        stack.backend.kill()?;
        stack.backend.start().await?;
    }
    wait_all_issued(&stack, &names).await?;

    let db = Database::open(stack.backend.dir()).await?;
    assert_eq!(db.integrity().await?, "ok");
    let certificates = db.certificates_ordered().await?;
    for name in &names {
        assert_eq!(
            certificates.get(name).copied(),
            Some(1),
            "{name}: {certificates:?}"
        );
    }
    eprintln!(
        "orders placed for 20 domains over 3 crashes: {}",
        db.orders().await?
    );
    Ok(())
}

async fn wait_for_some_in_flight(backend: &Backend) -> Result<()> {
    wait_for_state_count(backend, "validating").await
}

async fn wait_for_issued_count(backend: &Backend, n: usize) -> Result<()> {
    let seen = eventually(ALL_ISSUED_DEADLINE, || async {
        let list = backend.domains().await.ok()?;
        let issued = list["domains"]
            .as_array()?
            .iter()
            .filter(|d| d["state"] == "issued")
            .count();
        (issued >= n).then_some(())
    })
    .await;
    if seen.is_err() {
        bail!("never {n} issued\n{}", backend.log());
    }
    Ok(())
}

async fn wait_for_some_failed(backend: &Backend) -> Result<()> {
    wait_for_state_count(backend, "failed").await
}

async fn wait_for_state_count(backend: &Backend, state: &str) -> Result<()> {
    let seen = eventually(Duration::from_secs(60), || async {
        let list = backend.domains().await.ok()?;
        list["domains"]
            .as_array()?
            .iter()
            .any(|d| d["state"] == state)
            .then_some(())
    })
    .await;
    if seen.is_err() {
        bail!("no domain became {state}\n{}", backend.log());
    }
    Ok(())
}

/// Lines of Pebble's log that say it issued a certificate, and that an authorization became
/// invalid: counted at the CA, not in our database.
fn pebble_counts(stack: &Stack) -> (usize, usize) {
    let log = stack.pebble.log();
    let issued = log.matches("Issued certificate serial").count();
    let invalid = log.matches("set INVALID by completed challenge").count();
    (issued, invalid)
}

/// When the CA issued more certificates than there are names: which domain got more than
/// one, through which orders (as the backend logged them, or not logged at all), with every
/// line of Pebble's log naming those orders and every backend line naming the domain (the
/// backend's log holds all its processes, the killed ones included).
async fn extra_certificates(stack: &Stack) -> Result<String> {
    let db = Database::open(stack.backend.dir()).await?;
    let logged = db.order_log().await?;
    let pebble_log = stack.pebble.log();
    let mut by_name: BTreeMap<String, Vec<(String, String, bool)>> = BTreeMap::new();
    for (order_id, serial) in issued_orders(&pebble_log) {
        let entry = logged
            .iter()
            .find(|(url, _, _)| url.rsplit('/').next() == Some(order_id.as_str()));
        let (name, key_made) = match entry {
            Some((_, name, key_made)) => (name.clone(), *key_made),
            None => ("<order not in the backend's order log>".to_owned(), false),
        };
        by_name
            .entry(name)
            .or_default()
            .push((order_id, serial, key_made));
    }
    let backend_log = stack.backend.log();
    let mut report = String::new();
    for (name, issued) in by_name.iter().filter(|(_, v)| v.len() > 1) {
        report += &format!("{name}: {} certificates: {issued:?}\n", issued.len());
        report += "--- Pebble's lines for these orders ---\n";
        for line in pebble_log.lines() {
            if issued
                .iter()
                .any(|(order, _, _)| line.contains(order.as_str()))
            {
                report += line;
                report += "\n";
            }
        }
        report += "--- the backend's lines for this domain (all processes) ---\n";
        for line in backend_log
            .lines()
            .filter(|l| l.contains(name.as_str()) || l.contains("acme-edge serving"))
        {
            report += line;
            report += "\n";
        }
    }
    Ok(report)
}

/// The backend SIGKILLed again and again while the CA validates (Pebble's validation sleep
/// on), its challenge socket held across restarts as systemd's `acme-edge.socket` holds it:
/// the stopped worker's tokens stay answered, a lookup made during the restart waits in the
/// socket's backlog, and a resumed order neither tells the CA twice nor gives up an order the
/// CA is validating. So the CA finds no authorization invalid, and issues one certificate
/// per name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_killed_during_validations_never_invalidates_an_authorization() -> Result<()> {
    let mut stack = Stack::builder()
        .pebble(|p| p.va_sleep(true))
        .backend(|b| {
            b.setting("acme", "retry_base_secs", 1)
                .setting("storage", "lease_secs", 6)
                .request_timeout(Duration::from_secs(5))
                .hold_challenge_socket()
        })
        .start()
        .await?;
    let names = names("validating", 20);
    enable_all(&stack.backend, &names).await?;
    for _ in 0..3 {
        if !some_validating_until_all_issued(&stack.backend).await? {
            break;
        }
        // Into the CA's validation sleep (0-15 s) of the orders told ready.
        tokio::time::sleep(Duration::from_secs(2)).await;
        stack.backend.kill()?;
        stack.backend.start().await?;
    }
    wait_all_issued(&stack, &names).await?;
    let (issued, invalid) = pebble_counts(&stack);
    assert_eq!(
        invalid,
        0,
        "authorizations invalid at the CA\n{}",
        stack.logs()
    );
    assert_eq!(issued, names.len(), "certificates issued by the CA");
    Ok(())
}

/// Waits until some domain is validating (`true`) or all are issued (`false`).
async fn some_validating_until_all_issued(backend: &Backend) -> Result<bool> {
    eventually(Duration::from_secs(60), || async {
        let list = backend.domains().await.ok()?;
        let domains = list["domains"].as_array()?;
        if domains.iter().any(|d| d["state"] == "validating") {
            Some(true)
        } else if domains.iter().all(|d| d["state"] == "issued") {
            Some(false)
        } else {
            None
        }
    })
    .await
    .with_context(|| format!("nothing validating\n{}", backend.log()))
}

/// How long the CA stays frozen in the bad few minutes.
const BAD_FREEZE: Duration = Duration::from_secs(20);
/// Bounds a broken run of the bad few minutes after the thaw.
const AFTER_THAW_DEADLINE: Duration = Duration::from_secs(120);

/// An operator's bad few minutes: 30 domains enabled at once against a CA that refuses 30 %
/// of nonces and sleeps before validating, the backend SIGKILLed and restarted three times in
/// the first 10 seconds (its challenge socket held across restarts, as under systemd), then
/// the CA frozen for 20 seconds and thawed. All 30 end issued, the CA issued exactly 30
/// certificates (counted in Pebble's log). Returns the seconds from the thaw to the last
/// issuance. The authorizations Pebble makes invalid here are its own: validations it had
/// under way when frozen time out the moment it is thawed.
async fn bad_few_minutes(tag: &str) -> Result<f64> {
    let mut stack = Stack::builder()
        .pebble(|p| p.nonce_reject_percent(30).va_sleep(true))
        .backend(|b| {
            b.setting("acme", "retry_base_secs", 1)
                .request_timeout(Duration::from_secs(5))
                .hold_challenge_socket()
        })
        .start()
        .await?;
    let names = names(tag, 30);
    enable_all(&stack.backend, &names).await?;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        stack.backend.kill()?;
        stack.backend.start().await?;
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "kills took too long to stage"
    );
    wait_for_some_in_flight(&stack.backend).await?;
    stack.pebble.freeze()?;
    tokio::time::sleep(BAD_FREEZE).await;
    stack.pebble.thaw()?;
    let thawed = std::time::Instant::now();
    let issued = eventually(AFTER_THAW_DEADLINE, || async {
        let list = stack.backend.domains().await.ok()?;
        let domains = list["domains"].as_array()?;
        names
            .iter()
            .all(|n| {
                domains
                    .iter()
                    .any(|d| d["name"] == n.as_str() && d["state"] == "issued")
            })
            .then_some(())
    })
    .await;
    let after_thaw = thawed.elapsed().as_secs_f64();
    if let Err(e) = issued {
        let list = stack.backend.domains().await.unwrap_or_default();
        return Err(e.context(format!(
            "not all issued after the thaw: {list:#}\n{}",
            stack.logs()
        )));
    }
    let (certificates, invalid) = pebble_counts(&stack);
    if certificates != names.len() {
        bail!(
            "{tag}: the CA issued {certificates} certificates for {} names\n{}",
            names.len(),
            extra_certificates(&stack).await?
        );
    }
    eprintln!(
        "{tag}: 30 issued {after_thaw:.1} s after the thaw; CA issued {certificates} \
         certificates, {invalid} authorizations invalid"
    );
    Ok(after_thaw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_domains_through_nonce_rejections_kills_and_a_frozen_ca() -> Result<()> {
    // One lucky run proves little: three in a row, each with its own CA and backend.
    for run in ["bad1", "bad2", "bad3"] {
        bad_few_minutes(run).await?;
    }
    Ok(())
}
