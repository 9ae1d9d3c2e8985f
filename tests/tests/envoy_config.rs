//! `acme-edge envoy-config` and the bootstraps it renders: every variant is accepted by
//! Envoy's validate mode, the default is `envoy/edge.yaml`, bad flags exit 2; end to end, a
//! name validated by a CA that reaches the proxy over IPv6 only, and the filter fetched from
//! the backend with its SHA-256 (answering a validation), or refused with another digest.

use std::process::{Command, Output};
use std::time::Duration;

use acme_edge::challenge::{FILTER_SHA256_PATH, FILTER_WASM_PATH};
use acme_edge::config::challenge::sha256_hex;
use acme_edge_envoy_bootstrap::params::DUAL_STACK;
use acme_edge_envoy_bootstrap::{FilterSource, RemoteUrl, Sha256};
use acme_edge_tests::envoy;
use acme_edge_tests::stack::Stack;
use acme_edge_tests::test_ca::{TestCa, Usage};
use acme_edge_tests::tools;
use anyhow::{Context, Result, ensure};

/// Issuance through Pebble, validation included.
const ISSUE_DEADLINE: Duration = Duration::from_secs(120);

fn envoy_config(args: &[&str]) -> Result<Output> {
    Command::new(tools::backend_bin()?)
        .arg("envoy-config")
        .args(args)
        .output()
        .context("run acme-edge envoy-config")
}

/// The bootstrap `args` render; the command must succeed.
fn rendered(args: &[&str]) -> Result<String> {
    let out = envoy_config(args)?;
    ensure!(
        out.status.success(),
        "envoy-config {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn every_variant_is_accepted_by_envoy() -> Result<()> {
    let wasm = tools::filter_wasm()?;
    let wasm = wasm.to_str().context("filter path")?;
    let dir = tempfile::tempdir()?;
    let ca = TestCa::with_intermediate("acme-edge test")?;
    let leaf = ca.issue_for(&["envoy.internal"], Usage::Client)?;
    let write = |name: &str, text: &str| -> Result<String> {
        let path = dir.path().join(name);
        std::fs::write(&path, text)?;
        Ok(path.display().to_string())
    };
    let (cert, key, ca_file) = (
        write("c.crt", &leaf.chain_pem)?,
        write("c.key", &leaf.key_pem)?,
        write("ca.crt", ca.root_pem())?,
    );
    let backend_config = write(
        "acme-edge.toml",
        &format!(
            "[acme]\nterms_agreed = true\n[challenge]\nlisten = \"0.0.0.0:8091\"\n\
             filter_wasm_file = {wasm:?}\n[sds]\nlisten = \"unix:/run/x/sds.sock\"\n"
        ),
    )?;
    let url = "http://127.0.0.1:8081/acme-edge/v1/filter.wasm";
    let sha = sha256_hex(&std::fs::read(wasm)?);
    let mtls = [
        "--sds",
        "sds.internal:8082",
        "--sds-client-cert",
        &cert,
        "--sds-client-key",
        &key,
        "--sds-ca",
        &ca_file,
        "--sds-server-name",
        "sds.internal",
    ];
    let variants: Vec<Vec<&str>> = vec![
        vec![],
        vec!["--json"],
        vec![
            "--http-listen",
            "0.0.0.0:80",
            "--https-listen",
            "0.0.0.0:443",
        ],
        vec!["--https-redirect", "--node-id", "edge-7"],
        vec!["--no-https"],
        vec!["--sds", "127.0.0.1:8082"],
        mtls.to_vec(),
        vec![
            "--filter-settings",
            r#"{"on_miss":"pass","timeout_ms":2000}"#,
        ],
        vec!["--filter-url", url, "--filter-sha256", &sha],
        vec!["--filter-url", url, "--filter-wasm-file", wasm],
        vec!["--config", &backend_config, "--filter-url", url],
        vec![
            "--config",
            &backend_config,
            "--challenge-backend",
            "backend.internal:8081",
        ],
    ];
    for args in variants {
        let mut with_filter = vec!["--filter-wasm", wasm];
        with_filter.extend(&args);
        let text = rendered(&with_filter)?;
        let (accepted, log) = envoy::validate(&text)?;
        ensure!(
            accepted,
            "envoy refused the bootstrap for {args:?}:\n{log}\n{text}"
        );
    }
    // What the backend's configuration says went in.
    let from_config = rendered(&["--config", &backend_config, "--filter-url", url])?;
    ensure!(
        from_config.contains("path: /run/x/sds.sock"),
        "{from_config}"
    );
    ensure!(from_config.contains("port_value: 8091"), "{from_config}");
    ensure!(
        from_config.contains(&format!("sha256: {sha:?}"))
            || from_config.contains(&format!("sha256: {sha}")),
        "{from_config}"
    );
    Ok(())
}

/// `envoy/edge.yaml` is the default bootstrap, as the renderer writes it today.
#[test]
fn edge_yaml_is_the_rendered_default() -> Result<()> {
    let path = tools::workspace_root().join("envoy/edge.yaml");
    let committed = std::fs::read_to_string(&path)?;
    let now = rendered(&[])?;
    ensure!(
        committed == now,
        "envoy/edge.yaml is stale: `acme-edge envoy-config > envoy/edge.yaml`"
    );
    Ok(())
}

#[test]
fn bad_flags_exit_2_with_the_reason() -> Result<()> {
    let cases: &[(&[&str], &str)] = &[
        (&["--filter-url", "https://a/f"], "only http://"),
        (&["--filter-url", "http://a/f"], "needs the filter's digest"),
        (
            &["--filter-url", "http://a/f", "--filter-sha256", "xyz"],
            "not a SHA-256",
        ),
        (&["--filter-sha256", &"a".repeat(64)], "--filter-url"),
        (&["--http-listen", "80"], "--http-listen"),
        (&["--sds", "unix:run/sds.sock"], "absolute"),
        (&["--filter-settings", "[1]"], "JSON object"),
        (&["--filter-settings", "{"], "not JSON"),
        (&["--challenge-backend", "a b:1"], "HOST:PORT"),
        (&["--sds-client-cert", "/c.crt"], "--sds-client-key"),
        (
            &[
                "--sds-client-cert",
                "/c",
                "--sds-client-key",
                "/k",
                "--sds-ca",
                "/ca",
                "--sds-server-name",
                "s",
            ],
            "TCP SDS listener",
        ),
        (&["--no-https", "--https-redirect"], "cannot be used with"),
        (&["--unknown"], "unexpected argument"),
    ];
    for (args, reason) in cases {
        let out = envoy_config(args)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.code() == Some(2) && stderr.contains(reason),
            "envoy-config {args:?}: {} {stderr}",
            out.status
        );
        ensure!(out.stdout.is_empty(), "{args:?} printed a bootstrap");
    }
    Ok(())
}

/// Pebble's DNS answers every name with `::1` only, as Let's Encrypt validates a name with
/// an AAAA record over IPv6: the proxy's dual-stack listener (`::`, `ipv4_compat`) answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_validated_over_ipv6_only() -> Result<()> {
    let stack = Stack::builder()
        .pebble(|p| p.ipv6_only())
        .envoy(|c| c.with(|b| b.http.address = DUAL_STACK))
        .start()
        .await?;
    let config = std::fs::read_to_string(stack.envoy.config_path())?;
    ensure!(config.contains("ipv4_compat: true"), "{config}");
    stack.issue("six.example", ISSUE_DEADLINE).await?;
    Ok(())
}

/// The remote code source for the backend's filter build at `addr`, with `sha256`.
fn remote(addr: std::net::SocketAddr, sha256: &str) -> Result<FilterSource> {
    Ok(FilterSource::Remote {
        url: RemoteUrl::parse(&format!("http://{addr}{FILTER_WASM_PATH}"))?,
        sha256: Sha256::parse(sha256)?,
    })
}

/// A stack whose backend serves the built filter and whose Envoy fetches it, expecting
/// `sha256`.
async fn remote_filter_stack(sha256: Option<String>) -> Result<(Stack, String)> {
    let wasm = tools::filter_wasm()?;
    let build_sha = sha256_hex(&std::fs::read(&wasm)?);
    let expected = sha256.unwrap_or_else(|| build_sha.clone());
    let wasm_setting = wasm.display().to_string();
    let stack = Stack::builder()
        .backend(move |b| b.setting("challenge", "filter_wasm_file", wasm_setting))
        .envoy(move |c| {
            let addr = c.bootstrap().challenge_backend.clone();
            let addr = format!("{}:{}", addr.host, addr.port);
            c.with(move |b| {
                let source = addr
                    .parse()
                    .map_err(anyhow::Error::from)
                    .and_then(|addr| remote(addr, &expected));
                if let (Some(filter), Ok(source)) = (&mut b.filter, source) {
                    filter.source = source;
                }
            })
        })
        .start()
        .await?;
    let config = std::fs::read_to_string(stack.envoy.config_path())?;
    ensure!(
        config.contains("remote:") && !config.contains("local:"),
        "{config}"
    );
    Ok((stack, build_sha))
}

/// Envoy loads the filter from the backend's challenge listener, checked by its SHA-256, and
/// the filter answers Pebble's validation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filter_fetched_from_the_backend_answers_a_validation() -> Result<()> {
    let (stack, build_sha) = remote_filter_stack(None).await?;
    let served = reqwest::get(format!(
        "http://{}{FILTER_SHA256_PATH}",
        stack.backend.challenge_addr()
    ))
    .await?
    .text()
    .await?;
    ensure!(served.trim() == build_sha, "served digest {served:?}");
    stack.issue("remote.example", ISSUE_DEADLINE).await?;
    Ok(())
}

/// A build whose bytes do not match the configured SHA-256 is refused by Envoy; challenge
/// requests then get 503 (the filter fails closed), every other request is served as usual
/// (the filter is off outside the challenge route).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_with_another_digest_is_refused() -> Result<()> {
    let other = sha256_hex(b"another build");
    let (stack, _) = remote_filter_stack(Some(other)).await?;
    let port = stack.envoy.http_port();
    let (page, challenge) = envoy::page_and_challenge(port, "/page", "shop.example").await?;
    ensure!(page.status == 200, "normal route: {}", page.status);
    ensure!(challenge.status == 503, "challenge: {}", challenge.status);
    let log = stack.envoy.log();
    ensure!(
        log.contains("Plugin acme_edge failed to load") && log.contains("Retry limit exceeded"),
        "{log}"
    );
    Ok(())
}
