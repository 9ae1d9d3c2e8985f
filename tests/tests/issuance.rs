//! Issuance end to end: the real backend process ordering from the real Pebble, Pebble
//! validating HTTP-01 through the real Envoy and the challenge filter.
//!
//! Needs the filter built for wasm32-wasip1, the backend binary, Envoy and Pebble:
//! `cargo xtask test` provides all of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use acme_edge_contract::lookup_path;
use acme_edge_tests::backend::{Backend, now_unix, unix_time};
use acme_edge_tests::envoy::{EnvoyConfig, http};
use acme_edge_tests::pebble::Pebble;
use acme_edge_tests::ports::free_addr;
use acme_edge_tests::stack::Stack;
use anyhow::{Context, Result, anyhow, bail};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// Issuance of one name against Pebble without its validation sleep takes about a second;
/// the deadline only bounds a broken run on a slow, shared machine.
const ISSUE_DEADLINE: Duration = Duration::from_secs(120);

/// Verify `chain_pem` (leaf first) for `name` against Pebble's issuing root.
fn verify_chain(chain_pem: &str, roots_pem: &str, name: &str) -> Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    for root in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(root?)?;
    }
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("parse the chain")?;
    let (leaf, intermediates) = chain.split_first().context("empty chain")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()?;
    verifier
        .verify_server_cert(
            leaf,
            intermediates,
            &ServerName::try_from(name.to_owned())?,
            &[],
            UnixTime::now(),
        )
        .map_err(|e| anyhow!("chain for {name} does not verify: {e}"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_certificate_chains_to_pebble_and_names_the_domain() -> Result<()> {
    let stack = Stack::start().await?;
    let name = "www.issue.acme-edge.test";
    let domain = stack.issue(name, ISSUE_DEADLINE).await?;

    let (not_before, not_after) = (
        unix_time(&domain, "not_before")?,
        unix_time(&domain, "not_after")?,
    );
    let renew_at = unix_time(&domain, "renew_at")?;
    assert!(not_before < renew_at && renew_at < not_after, "{domain}");
    assert_eq!(domain["attempts"], 0);
    assert_eq!(domain["last_error"], Value::Null);

    let chain = stack.backend.certificate_pem(name).await?;
    assert!(
        !chain.contains("PRIVATE KEY"),
        "the API must never hand out the key"
    );
    let roots = stack.pebble.issuer_roots_pem().await?;
    verify_chain(&chain, &roots, name)?;
    // The check can fail: the same chain is not valid for another name.
    assert!(verify_chain(&chain, &roots, "other.acme-edge.test").is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_domains_enabled_at_once_are_all_issued() -> Result<()> {
    let stack = Stack::start().await?;
    let names: Vec<String> = (0..10)
        .map(|i| format!("d{i}.batch.acme-edge.test"))
        .collect();
    let started = Instant::now();
    let enabled = futures::future::join_all(names.iter().map(|n| stack.backend.enable(n))).await;
    for result in enabled {
        assert_eq!(result?["state"], "pending");
    }
    for name in &names {
        stack
            .backend
            .wait_for_state(name, "issued", ISSUE_DEADLINE)
            .await?;
    }
    eprintln!("10 domains issued in {:?}", started.elapsed());
    let roots = stack.pebble.issuer_roots_pem().await?;
    for name in &names {
        verify_chain(&stack.backend.certificate_pem(name).await?, &roots, name)?;
    }
    let issued = stack.backend.domains().await?;
    let count = issued["domains"]
        .as_array()
        .map_or(0, |d| d.iter().filter(|d| d["state"] == "issued").count());
    assert_eq!(count, 10, "{issued}");

    // Every request to the CA counted itself in and out of the request-slot gauges.
    let url = format!("{}/metrics", stack.backend.admin_url());
    let client = stack.backend.client();
    let drained = acme_edge_tests::process::eventually(Duration::from_secs(10), || async {
        let text = client.get(&url).send().await.ok()?.text().await.ok()?;
        let idle = [
            "acme_edge_ca_requests_in_flight 0",
            "acme_edge_ca_requests_waiting 0",
        ]
        .iter()
        .all(|line| text.lines().any(|l| l == *line));
        idle.then_some(())
    })
    .await;
    drained.context("the CA request gauges did not return to 0")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_validation_keeps_the_ca_problem_and_a_retry_time() -> Result<()> {
    // Envoy's challenge cluster points at a port nobody listens on: the filter cannot reach
    // any backend, so Pebble's validation request gets no key authorization.
    let nowhere = free_addr();
    let stack = Stack::builder()
        .envoy(move |config| config.backend(nowhere))
        .start()
        .await?;
    let name = "fail.acme-edge.test";
    let before = now_unix();
    stack.backend.enable(name).await?;
    let domain = stack
        .backend
        .wait_for_state(name, "failed", ISSUE_DEADLINE)
        .await
        .with_context(|| stack.logs())?;

    assert_eq!(domain["attempts"], 1, "{domain}");
    let error = &domain["last_error"];
    // A validation that would fail again until the platform is fixed: it says what to fix.
    assert_eq!(error["reason"], "validation_failed", "{domain}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("validation failed"), "{domain}");
    let problem = &error["problem"];
    let kind = problem["type"].as_str().unwrap_or_default();
    assert!(kind.starts_with("urn:ietf:params:acme:error:"), "{domain}");
    assert!(
        problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "the CA's detail is kept: {domain}"
    );
    // First failure: retried about a minute later.
    let retry_at = unix_time(&domain, "retry_at")?;
    let wait = retry_at - before;
    assert!((50..=300).contains(&wait), "retry in {wait} s: {domain}");
    let certificate = stack.backend.certificate_pem(name).await;
    assert!(certificate.is_err(), "no certificate for a failed domain");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reuses_the_account_and_keeps_certificates() -> Result<()> {
    let mut stack = Stack::start().await?;
    let first = "before.restart.acme-edge.test";
    stack.issue(first, ISSUE_DEADLINE).await?;
    let account = account_url(&stack.backend).await?;
    let chain = stack.backend.certificate_pem(first).await?;

    // A crash, not a clean stop: nothing may depend on shutting down gracefully.
    stack.backend.kill()?;
    stack.backend.start().await?;

    assert_eq!(
        account_url(&stack.backend).await?,
        account,
        "same account after restart"
    );
    assert_eq!(stack.backend.domain(first).await?["state"], "issued");
    assert_eq!(stack.backend.certificate_pem(first).await?, chain);

    let second = "after.restart.acme-edge.test";
    stack.issue(second, ISSUE_DEADLINE).await?;
    assert_eq!(
        account_url(&stack.backend).await?,
        account,
        "the new order used it too"
    );
    Ok(())
}

async fn account_url(backend: &Backend) -> Result<String> {
    let url = format!("{}/v1/account", backend.admin_url());
    let response = backend.client().get(&url).send().await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        bail!("{url}: {status}: {body}");
    }
    body["account_url"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no account_url in {body}"))
}

/// One validation request from Pebble, held until the test lets it through.
struct HeldValidation {
    path: String,
    host: String,
    release: oneshot::Sender<()>,
}

/// Stands where Pebble expects the HTTP server: records each validation request, waits for
/// the test's go-ahead, then relays the connection, bytes unchanged, to Envoy.
async fn hold_validations(
    listener: TcpListener,
    envoy_port: u16,
    held: mpsc::Sender<HeldValidation>,
) {
    while let Ok((mut conn, _)) = listener.accept().await {
        let held = held.clone();
        tokio::spawn(async move {
            let Some((head, path, host)) = read_request_head(&mut conn).await else {
                return;
            };
            let (release, released) = oneshot::channel();
            let sent = held.send(HeldValidation {
                path,
                host,
                release,
            });
            if sent.await.is_err() || released.await.is_err() {
                return;
            }
            let Ok(mut upstream) = tokio::net::TcpStream::connect(("127.0.0.1", envoy_port)).await
            else {
                return;
            };
            if upstream.write_all(&head).await.is_ok() {
                let _ = tokio::time::timeout(
                    ISSUE_DEADLINE,
                    tokio::io::copy_bidirectional(&mut conn, &mut upstream),
                )
                .await;
            }
        });
    }
}

/// Read up to the end of the request head; the raw bytes, the path and the `Host`.
async fn read_request_head(conn: &mut tokio::net::TcpStream) -> Option<(Vec<u8>, String, String)> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") && raw.len() < 16 * 1024 {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(buf.get(..n)?);
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = text.lines();
    let path = lines.next()?.split_whitespace().nth(1)?.to_owned();
    let host = lines
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
        })
        .map(|(_, v)| v.trim().to_owned())?;
    Some((raw, path, host))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_tokens_are_answered_only_for_their_own_host() -> Result<()> {
    let front = TcpListener::bind("127.0.0.1:0").await?;
    let pebble = Pebble::builder(front.local_addr()?.port()).start().await?;
    let backend = Backend::builder().pebble(&pebble).start().await?;
    let lookup_addr = backend.challenge_addr();
    let envoy =
        tokio::task::spawn_blocking(move || EnvoyConfig::edge(lookup_addr)?.start()).await??;
    let (held_tx, mut held) = mpsc::channel(4);
    let holder = tokio::spawn(hold_validations(front, envoy.http_port(), held_tx));

    let name = "owner.acme-edge.test";
    let intruder = "intruder.acme-edge.test";
    backend.enable(name).await?;
    let validation = tokio::time::timeout(ISSUE_DEADLINE, held.recv())
        .await
        .context("Pebble never came to validate")?
        .context("holder stopped")?;
    let token = validation
        .path
        .strip_prefix(acme_edge_contract::ACME_CHALLENGE_PREFIX)
        .context("not a challenge path")?
        .to_owned();
    assert!(validation.host.starts_with(name), "{}", validation.host);

    // The backend's lookup endpoint, directly.
    let lookup = |host: &str| {
        let path = lookup_path(host, &token);
        let port = lookup_addr.port();
        tokio::task::spawn_blocking(move || http(port, "GET", &path, "backend"))
    };
    let own = lookup(name).await??;
    assert_eq!(own.status, 200, "{own:?}");
    let key_authorization = own.text();
    assert!(
        key_authorization.starts_with(&format!("{token}.")),
        "{key_authorization}"
    );
    assert_eq!(
        lookup(intruder).await??.status,
        404,
        "token asked for under another host"
    );

    // Through Envoy and the filter, as a CA (or an attacker) would ask.
    let port = envoy.http_port();
    let path = validation.path.clone();
    let via_intruder =
        tokio::task::spawn_blocking(move || http(port, "GET", &path, intruder)).await??;
    assert_eq!(via_intruder.status, 404, "{via_intruder:?}");
    assert_ne!(via_intruder.text(), key_authorization);

    // Let Pebble's request through to Envoy: the certificate is issued.
    let _ = validation.release.send(());
    // Pebble may come again (another validation attempt): let every later request through.
    let release_rest = tokio::spawn(async move {
        while let Some(v) = held.recv().await {
            let _ = v.release.send(());
        }
    });
    let issued = backend.wait_for_state(name, "issued", ISSUE_DEADLINE).await;
    holder.abort();
    release_rest.abort();
    issued?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_enables_a_domain_that_gets_issued_and_reports_the_capacity() -> Result<()> {
    let stack = Stack::start().await?;
    let name = "cli.acme-edge.test";
    let output = stack.backend.cli(&["add", name]).await?;
    assert!(
        output.status.success(),
        "acme-edge domains add: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    stack
        .backend
        .wait_for_state(name, "issued", ISSUE_DEADLINE)
        .await?;

    // What the account can sustain, as the issued certificate (Pebble's: 5 years) loads it.
    let output = stack
        .backend
        .client_command("capacity", &["--json"])
        .await?;
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "acme-edge capacity: {said}");
    let capacity: serde_json::Value = serde_json::from_str(&said)?;
    assert_eq!(capacity["by_lifetime"][0]["certificates"], 1, "{capacity}");
    let days = capacity["by_lifetime"][0]["lifetime_days"]
        .as_u64()
        .unwrap_or_default();
    assert!((1825..=1827).contains(&days), "{capacity}");
    assert_eq!(capacity["new_names_waiting"], 0);
    assert_eq!(capacity["first_day_at_risk"], serde_json::Value::Null);
    let output = stack.backend.client_command("capacity", &[]).await?;
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("renewals needed"), "{table}");
    assert!(table.contains("1 on 182"), "{table}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_stops_answering_fails_the_attempt_instead_of_hanging() -> Result<()> {
    let mut stack = Stack::builder()
        .backend(|b| b.request_timeout(Duration::from_secs(2)))
        .start()
        .await?;
    // The account and the directory are in place before the CA hangs.
    stack
        .issue("warm.hang.acme-edge.test", ISSUE_DEADLINE)
        .await?;

    stack.pebble.freeze()?;
    let name = "hang.acme-edge.test";
    stack.backend.enable(name).await?;
    let failed = stack
        .backend
        .wait_for_state(name, "failed", ISSUE_DEADLINE)
        .await;
    stack.pebble.thaw()?;
    let domain = failed?;
    assert_eq!(domain["last_error"]["reason"], "timeout", "{domain}");
    assert!(domain["retry_at"].is_string(), "{domain}");

    // Forcing the retry once the CA is back issues it.
    stack.backend.renew(name).await?;
    stack
        .backend
        .wait_for_state(name, "issued", ISSUE_DEADLINE)
        .await?;
    Ok(())
}

/// Poll until the served chain of `name` differs from `old` (a new certificate was stored).
async fn wait_for_new_certificate(stack: &Stack, name: &str, old: &str) -> Result<String> {
    acme_edge_tests::process::eventually(ISSUE_DEADLINE, || async {
        let chain = stack.backend.certificate_pem(name).await.ok()?;
        (chain != old).then_some(chain)
    })
    .await
    .with_context(|| format!("{name} was never renewed\n{}", stack.backend.log()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_renewal_replaces_the_certificate() -> Result<()> {
    let stack = Stack::start().await?;
    let name = "forced.renew.acme-edge.test";
    stack.issue(name, ISSUE_DEADLINE).await?;
    let old = stack.backend.certificate_pem(name).await?;

    let answer = stack.backend.renew(name).await?;
    assert_eq!(answer["state"], "pending", "{answer}");
    let new = wait_for_new_certificate(&stack, name, &old).await?;
    let roots = stack.pebble.issuer_roots_pem().await?;
    verify_chain(&new, &roots, name)?;
    stack
        .backend
        .wait_for_state(name, "issued", ISSUE_DEADLINE)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_certificates_renew_by_themselves() -> Result<()> {
    // 20 s of validity: renewal is due at half of it, found by the worker's due-work query.
    let stack = Stack::builder()
        .pebble(|p| p.certificate_validity(Duration::from_secs(20)))
        .start()
        .await?;
    let name = "auto.renew.acme-edge.test";
    let domain = stack.issue(name, ISSUE_DEADLINE).await?;
    let (not_before, not_after) = (
        unix_time(&domain, "not_before")?,
        unix_time(&domain, "not_after")?,
    );
    let renew_at = unix_time(&domain, "renew_at")?;
    let half = not_before + (not_after - not_before) / 2;
    // Jitter only brings renewal forward, by up to 5 % of the lifetime (plus rounding to
    // whole seconds in the API).
    let lifetime = not_after - not_before;
    let earliest = half - lifetime / 20 - 1;
    assert!((earliest..=half + 1).contains(&renew_at), "{domain}");

    let old = stack.backend.certificate_pem(name).await?;
    wait_for_new_certificate(&stack, name, &old).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_cut_short_by_a_crash_resumes_after_restart() -> Result<()> {
    // Pebble's validation requests are held, so the order is certainly in flight when the
    // backend dies.
    let front = TcpListener::bind("127.0.0.1:0").await?;
    let pebble = Pebble::builder(front.local_addr()?.port()).start().await?;
    let mut backend = Backend::builder().pebble(&pebble).start().await?;
    let lookup_addr = backend.challenge_addr();
    let envoy =
        tokio::task::spawn_blocking(move || EnvoyConfig::edge(lookup_addr)?.start()).await??;
    let (held_tx, mut held) = mpsc::channel(4);
    let holder = tokio::spawn(hold_validations(front, envoy.http_port(), held_tx));

    let name = "crash.acme-edge.test";
    backend.enable(name).await?;
    let first = tokio::time::timeout(ISSUE_DEADLINE, held.recv())
        .await
        .context("Pebble never came to validate")?
        .context("holder stopped")?;
    assert_eq!(backend.domain(name).await?["state"], "validating");

    backend.kill()?;
    // The first order's validation now finds nobody behind Envoy: that order is lost.
    let _ = first.release.send(());
    backend.start().await?;

    let release_rest = tokio::spawn(async move {
        while let Some(v) = held.recv().await {
            let _ = v.release.send(());
        }
    });
    let issued = backend.wait_for_state(name, "issued", ISSUE_DEADLINE).await;
    holder.abort();
    release_rest.abort();
    let domain = issued?;
    assert_eq!(domain["attempts"], 0, "{domain}");
    let log = backend.log();
    assert!(
        log.contains("resuming orders interrupted"),
        "the restarted backend picked the order up from the store:\n{log}"
    );
    Ok(())
}

/// A certificate profile the CA does not list (Pebble's directory lists none) is refused
/// before any order is placed, with a reason operators can act on: never a certificate of
/// another profile issued silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_the_ca_does_not_offer_fails_without_an_order() -> Result<()> {
    let stack = Stack::builder()
        .backend(|backend| backend.setting("acme", "profile", "shortlived"))
        .start()
        .await?;
    let name = "profile.acme-edge.test";
    stack.backend.enable(name).await?;
    let domain = stack
        .backend
        .wait_for_state(name, "failed", ISSUE_DEADLINE)
        .await
        .with_context(|| stack.logs())?;
    let error = &domain["last_error"];
    assert_eq!(error["reason"], "profile_not_offered", "{domain}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("\"shortlived\""), "{domain}");
    assert!(
        !stack.pebble.log().contains("Added order"),
        "an order was placed anyway"
    );
    Ok(())
}

/// A domain's own profile reaches its order: asked of a CA that lists none, that domain
/// fails as above, named by its profile, with no order, while a domain on the configured
/// default (none) beside it is issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domains_own_profile_is_what_its_order_asks_for() -> Result<()> {
    let stack = Stack::builder().start().await?;
    let own = "own-profile.acme-edge.test";
    let default = "default-profile.acme-edge.test";
    let enabled = (stack.backend)
        .enable_with(own, &serde_json::json!({"profile": "tlsserver"}))
        .await?;
    assert_eq!(enabled["profile"], "tlsserver", "{enabled}");
    stack.backend.enable(default).await?;
    let domain = stack
        .backend
        .wait_for_state(own, "failed", ISSUE_DEADLINE)
        .await
        .with_context(|| stack.logs())?;
    let error = &domain["last_error"];
    assert_eq!(error["reason"], "profile_not_offered", "{domain}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("\"tlsserver\""), "{domain}");
    let issued = stack
        .backend
        .wait_for_state(default, "issued", ISSUE_DEADLINE)
        .await
        .with_context(|| stack.logs())?;
    assert_eq!(issued["profile"], serde_json::Value::Null, "{issued}");
    let orders = stack.backend.orders(own).await?;
    assert_eq!(orders["orders"], serde_json::json!([]), "{orders}");
    Ok(())
}
