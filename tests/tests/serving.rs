//! Certificates issued by the real backend through Pebble and served by the real Envoy
//! (`envoy/edge.yaml`, on-demand SDS from the backend's own listener), end to end.
//!
//! Every test starts its own [`Stack`]: Envoy validates Pebble's HTTP-01 requests through the
//! challenge filter, the backend orders and stores the certificates, and Envoy fetches them by
//! SNI. Clients are rustls handshakes that trust only Pebble's issuer root (`/roots/0`) and
//! name the domain as the server name, so a completed handshake means the chain verifies and
//! the leaf's SAN covers that domain; the leaf is also compared with the one the backend
//! issued.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use acme_edge_tests::envoy::SdsEndpoint;
use acme_edge_tests::mutual_tls::{MutualTlsFiles, SDS_SERVER_NAME};
use acme_edge_tests::process::eventually;
use acme_edge_tests::stack::{Stack, edge_config};
use acme_edge_tests::tls::{
    client_trusting, handshake_within, pem_certificates, refuses_without_client_certificate,
};
use anyhow::{Context, Result, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use tokio_rustls::TlsConnector;

/// Longest any single handshake may take (the first one for a name waits for SDS).
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// How long a change (removal, restart, fetch) may take to show in new handshakes.
const CHANGE_LIMIT: Duration = Duration::from_secs(30);
/// Envoy's SDS reconnect backoff reaches about 11 s here; leave room on a noisy machine.
const RECONNECT_LIMIT: Duration = Duration::from_secs(60);
/// Issuing a handful of names.
const ISSUE_LIMIT: Duration = Duration::from_secs(60);
/// Issuing two hundred names (Pebble without VA sleep, 50 orders in flight).
const ISSUE_MANY_LIMIT: Duration = Duration::from_secs(150);
/// Admin API requests at once while enabling many names.
const ENABLE_CONCURRENCY: usize = 16;
/// Handshakes at once while checking many names.
const HANDSHAKE_CONCURRENCY: usize = 8;
/// The contract for a name the backend does not serve: refused, not left hanging.
const UNKNOWN_SNI_LIMIT: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------
// Clients.

/// A TLS client trusting only the root Pebble issues from.
async fn pebble_client(stack: &Stack) -> Result<TlsConnector> {
    client_trusting(&stack.pebble.issuer_roots_pem().await?)
}

/// Envoy's HTTPS listener.
fn https_addr(stack: &Stack) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], stack.https_port))
}

async fn handshake(client: &TlsConnector, addr: SocketAddr, sni: &str) -> Result<Vec<u8>> {
    handshake_within(client, addr, sni, HANDSHAKE_LIMIT).await
}

/// Handshake once and require the leaf the backend issued for `sni`.
async fn presents_now(
    client: &TlsConnector,
    addr: SocketAddr,
    sni: &str,
    leaf: &[u8],
) -> Result<()> {
    let der = handshake(client, addr, sni).await?;
    ensure!(
        der == leaf,
        "{sni}: Envoy presented another certificate than the one issued"
    );
    Ok(())
}

/// Poll until a handshake with `sni` presents `leaf`.
async fn presents(
    client: &TlsConnector,
    addr: SocketAddr,
    sni: &str,
    leaf: &[u8],
    limit: Duration,
) -> Result<()> {
    eventually(limit, || async {
        let der = handshake(client, addr, sni).await.ok()?;
        (der == leaf).then_some(())
    })
    .await
    .with_context(|| format!("{sni} was never served with its issued certificate"))
}

/// Poll until handshakes with `sni` fail.
async fn refused(client: &TlsConnector, addr: SocketAddr, sni: &str) -> Result<()> {
    eventually(CHANGE_LIMIT, || async {
        handshake(client, addr, sni).await.is_err().then_some(())
    })
    .await
    .with_context(|| format!("{sni} is still served"))
}

// ---------------------------------------------------------------------------------------
// The backend's side.

/// The leaf of the chain the backend holds for `name`, DER.
async fn issued_leaf(stack: &Stack, name: &str) -> Result<Vec<u8>> {
    let chain = pem_certificates(&stack.backend.certificate_pem(name).await?)?;
    Ok(chain
        .first()
        .with_context(|| format!("{name}: empty chain"))?
        .to_vec())
}

/// Issue `names` (enabled together, waited for together); their leaves by name.
async fn issue_all(
    stack: &Stack,
    names: &[String],
    limit: Duration,
) -> Result<BTreeMap<String, Vec<u8>>> {
    enable_all(stack, names).await?;
    wait_all_issued(stack, names, limit).await?;
    futures::stream::iter(names)
        .map(|name| async move { Ok((name.clone(), issued_leaf(stack, name).await?)) })
        .buffer_unordered(ENABLE_CONCURRENCY)
        .try_collect()
        .await
}

/// `PUT /v1/domains/{name}` for every name, a bounded number at a time.
async fn enable_all(stack: &Stack, names: &[String]) -> Result<()> {
    futures::stream::iter(names)
        .map(|name| stack.backend.enable(name))
        .buffer_unordered(ENABLE_CONCURRENCY)
        .try_for_each(|_| async { Ok(()) })
        .await
}

/// Poll the domain list until every name in `names` is `issued`; fail at once if one failed.
async fn wait_all_issued(stack: &Stack, names: &[String], limit: Duration) -> Result<()> {
    let last = std::sync::Mutex::new(BTreeMap::<String, usize>::new());
    let outcome = eventually(limit, || async {
        let list = stack.backend.domains().await.ok()?;
        let states = states_of(&list, names);
        let failed: Vec<&String> = names
            .iter()
            .filter(|n| states.get(*n).map(String::as_str) == Some("failed"))
            .collect();
        if !failed.is_empty() {
            return Some(Err(format!("failed: {failed:?}")));
        }
        let mut counts = BTreeMap::new();
        for state in states.values() {
            *counts.entry(state.clone()).or_insert(0) += 1;
        }
        let issued = counts.get("issued").copied().unwrap_or(0);
        if let Ok(mut last) = last.lock() {
            *last = counts;
        }
        (issued == names.len()).then_some(Ok(()))
    })
    .await;
    let counts = last.lock().map(|c| format!("{c:?}")).unwrap_or_default();
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(failed)) => bail!("{failed}\n{}", stack.logs()),
        Err(e) => Err(e.context(format!(
            "not all issued; states last seen: {counts}\n{}",
            stack.logs()
        ))),
    }
}

/// The state of each of `names` in a `GET /v1/domains` answer.
fn states_of(list: &serde_json::Value, names: &[String]) -> BTreeMap<String, String> {
    let wanted: std::collections::BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let domains = list["domains"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    domains
        .iter()
        .filter_map(|d| Some((d["name"].as_str()?, d["state"].as_str()?)))
        .filter(|(name, _)| wanted.contains(name))
        .map(|(name, state)| (name.to_owned(), state.to_owned()))
        .collect()
}

/// `count` names under one test-specific suffix.
fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("{prefix}{i:03}.serving.example"))
        .collect()
}

/// A name no test enables.
fn random_name() -> String {
    use rand::Rng;
    format!("u{:016x}.unknown.example", rand::rng().random::<u64>())
}

/// Handshake with every name, a bounded number at a time, each presenting its issued leaf;
/// handshakes per second.
async fn handshake_all(
    client: &TlsConnector,
    addr: SocketAddr,
    leaves: &BTreeMap<String, Vec<u8>>,
) -> Result<f64> {
    let started = Instant::now();
    futures::stream::iter(leaves)
        .map(|(name, leaf)| presents_now(client, addr, name, leaf))
        .buffer_unordered(HANDSHAKE_CONCURRENCY)
        .try_for_each(|()| async { Ok(()) })
        .await?;
    Ok(leaves.len() as f64 / started.elapsed().as_secs_f64())
}

fn read_config(stack: &Stack) -> Result<Vec<u8>> {
    let path = stack.envoy.config_path();
    std::fs::read(path).with_context(|| format!("read {}", path.display()))
}

// ---------------------------------------------------------------------------------------

/// Two hundred domains issued through Pebble and served by one Envoy whose configuration file
/// is the one of a single-domain stack and never changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_issued_domains_served_by_one_constant_configuration() -> Result<()> {
    let stack = Stack::start().await?;
    let config_at_start = read_config(&stack)?;
    let client = pebble_client(&stack).await?;
    let addr = https_addr(&stack);
    let names = names("many", 200);

    let started = Instant::now();
    let leaves = issue_all(&stack, &names, ISSUE_MANY_LIMIT).await?;
    let issue_time = started.elapsed();
    assert_eq!(leaves.len(), names.len());

    // First handshake per name: Envoy subscribes to it over SDS; the second is served from
    // what Envoy holds.
    let cold_rate = handshake_all(&client, addr, &leaves)
        .await
        .with_context(|| stack.logs())?;
    let warm_rate = handshake_all(&client, addr, &leaves)
        .await
        .with_context(|| stack.logs())?;
    println!(
        "{} domains issued in {issue_time:?}; handshakes per second, {HANDSHAKE_CONCURRENCY} at \
         once: {cold_rate:.0} first (SDS fetch), {warm_rate:.0} again",
        names.len()
    );

    let config_at_end = read_config(&stack)?;
    assert!(
        config_at_start == config_at_end,
        "Envoy's configuration file changed"
    );
    let text = String::from_utf8(config_at_end).context("Envoy's configuration is not UTF-8")?;
    for name in &names {
        assert!(
            !text.contains(name.as_str()),
            "the configuration names {name}"
        );
    }
    assert!(
        !text.contains("serving.example"),
        "the configuration names a domain"
    );

    // What the harness renders for a stack serving one domain on the same ports.
    let for_one = edge_config(
        stack.backend.challenge_addr(),
        stack.backend.sds().clone(),
        stack.https_port,
    )?
    .with_http_port(stack.envoy.http_port())
    .with_admin_port(stack.envoy.admin_port())
    .rendered()?;
    assert!(
        text == for_one,
        "the configuration for 200 domains differs from the one for a single domain"
    );
    Ok(())
}

/// Envoy restarted: it fetches the secrets again. Backend stopped: what Envoy holds is still
/// served; backend back on the same ports and database: new names are issued and served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_and_backend_restarts_keep_serving() -> Result<()> {
    let mut stack = Stack::start().await?;
    let client = pebble_client(&stack).await?;
    let addr = https_addr(&stack);
    let names = names("restart", 3);
    let leaves = issue_all(&stack, &names, ISSUE_LIMIT).await?;
    for (name, leaf) in &leaves {
        presents_now(&client, addr, name, leaf).await?;
    }

    // A new Envoy process on the same configuration and ports holds nothing: it fetches again.
    let config = read_config(&stack)?;
    let pid = stack.envoy.pid();
    tokio::task::block_in_place(|| stack.envoy.restart())?;
    ensure!(stack.envoy.pid() != pid, "Envoy was not restarted");
    ensure!(
        read_config(&stack)? == config,
        "Envoy's configuration changed"
    );
    for (name, leaf) in &leaves {
        presents(&client, addr, name, leaf, CHANGE_LIMIT).await?;
    }

    // Backend down (graceful stop): names Envoy holds are served without it.
    tokio::task::block_in_place(|| stack.backend.stop())?;
    ensure!(
        stack.backend.domains().await.is_err(),
        "the backend still answers after SIGTERM"
    );
    for _ in 0..3 {
        for (name, leaf) in &leaves {
            presents_now(&client, addr, name, leaf)
                .await
                .context("while the backend is down")?;
        }
    }

    // Back on the same ports and database: still served, and Envoy reconnects for new names.
    let restarted = Instant::now();
    stack.backend.start().await?;
    for (name, leaf) in &leaves {
        presents_now(&client, addr, name, leaf)
            .await
            .context("after the backend restart")?;
    }
    let fresh = "fresh.serving.example".to_owned();
    let fresh_leaf = issue_all(&stack, std::slice::from_ref(&fresh), ISSUE_LIMIT).await?;
    let fresh_leaf = fresh_leaf.get(&fresh).context("fresh name not issued")?;
    presents(&client, addr, &fresh, fresh_leaf, RECONNECT_LIMIT)
        .await
        .with_context(|| stack.logs())?;
    println!(
        "a name enabled after the backend restart was served {:?} after the restart",
        restarted.elapsed()
    );
    for (name, leaf) in &leaves {
        presents_now(&client, addr, name, leaf).await?;
    }
    Ok(())
}

/// A disabled domain stops being served; a name never enabled is refused at once instead of
/// leaving the handshake hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_domain_stops_being_served_and_unknown_sni_fails_fast() -> Result<()> {
    let stack = Stack::start().await?;
    // Certificates come over the backend's default SDS listener: a Unix socket only its
    // owner and group may connect to.
    let SdsEndpoint::Unix(socket) = stack.backend.sds() else {
        bail!("the default stack serves SDS over a Unix socket");
    };
    let mode = std::fs::metadata(socket)?.permissions().mode() & 0o777;
    ensure!(mode == 0o660, "SDS socket mode {mode:o}");
    let client = pebble_client(&stack).await?;
    let addr = https_addr(&stack);
    let names = names("disable", 2);
    let leaves = issue_all(&stack, &names, ISSUE_LIMIT).await?;
    for (name, leaf) in &leaves {
        presents_now(&client, addr, name, leaf).await?;
    }
    let (gone, kept) = (&names[0], &names[1]);

    let disabled_at = Instant::now();
    stack.backend.disable(gone).await?;
    refused(&client, addr, gone)
        .await
        .with_context(|| stack.logs())?;
    println!("disabled name refused after {:?}", disabled_at.elapsed());
    let kept_leaf = leaves.get(kept).context("kept name not issued")?;
    presents_now(&client, addr, kept, kept_leaf).await?;

    // Disabling deleted the key and the certificate: enabled again, the name gets a new one.
    let old_leaf = leaves.get(gone).context("disabled name had been issued")?;
    let renewed = issue_all(&stack, std::slice::from_ref(gone), ISSUE_LIMIT).await?;
    let new_leaf = renewed.get(gone).context("re-enabled name issued")?;
    ensure!(
        new_leaf != old_leaf,
        "re-enabling served the deleted certificate"
    );
    presents_now(&client, addr, gone, new_leaf).await?;

    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let name = random_name();
        let started = Instant::now();
        match handshake_within(&client, addr, &name, UNKNOWN_SNI_LIMIT).await {
            Ok(_) => bail!("{name} was served"),
            Err(e) if started.elapsed() >= UNKNOWN_SNI_LIMIT => {
                bail!("{name} not refused within {UNKNOWN_SNI_LIMIT:?}: {e:#}")
            }
            Err(_) => slowest = slowest.max(started.elapsed()),
        }
    }
    println!("unknown SNI refused within {slowest:?} (slowest of 5)");
    // The refusals were Envoy's answers, not a listener gone away.
    presents_now(&client, addr, kept, kept_leaf).await?;
    Ok(())
}

/// The SDS listener across hosts: the backend configured with `[sds]` mutual-TLS keys, Envoy's
/// `acme_sds` cluster presenting a client certificate from the fleet's CA (as
/// `envoy/README.md` shows). Issued certificates are served; a client without a certificate
/// gets nothing from the listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reach_envoy_over_mutual_tls_configured_in_the_backend() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let files = MutualTlsFiles::create(dir.path())?;
    let (settings, envoy_tls) = (files.backend_settings(), files.envoy());
    let stack = Stack::builder()
        .sds_over_tcp()
        .backend(move |mut backend| {
            for (key, file) in settings {
                backend = backend.setting("sds", key, file);
            }
            backend
        })
        .envoy(move |envoy| envoy.sds_client_tls(envoy_tls))
        .start()
        .await?;
    let name = "mtls.serving.example";
    stack.issue(name, ISSUE_LIMIT).await?;
    let leaf = issued_leaf(&stack, name).await?;
    let client = pebble_client(&stack).await?;
    presents(&client, https_addr(&stack), name, &leaf, CHANGE_LIMIT)
        .await
        .with_context(|| stack.logs())?;

    // A TLS client trusting the fleet's CA but without a client certificate: the listener
    // refuses it with TLS 1.3's certificate_required.
    let anonymous = client_trusting(&std::fs::read_to_string(&files.ca)?)?;
    let sds_addr = stack.backend.sds().tcp().context("SDS over TCP")?;
    refuses_without_client_certificate(&anonymous, sds_addr, SDS_SERVER_NAME, HANDSHAKE_LIMIT)
        .await?;
    Ok(())
}
