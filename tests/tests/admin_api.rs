//! The admin API of the real backend process: authentication, error codes, idempotent
//! enabling, metrics; and how the process refuses a bad configuration.
//!
//! No certificate is needed here, so the CA is a Pebble whose validations go nowhere.

use std::process::Stdio;
use std::time::Duration;

use acme_edge_tests::backend::Backend;
use acme_edge_tests::pebble::Pebble;
use acme_edge_tests::ports::free_addr;
use acme_edge_tests::process::eventually;
use acme_edge_tests::tools;
use anyhow::{Context, Result};
use serde_json::Value;

async fn start() -> Result<(Pebble, Backend)> {
    let pebble = Pebble::builder(free_addr().port()).start().await?;
    let backend = Backend::builder().pebble(&pebble).start().await?;
    Ok((pebble, backend))
}

/// A client without the token.
fn anonymous() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?)
}

async fn send(request: reqwest::RequestBuilder) -> Result<(u16, Value)> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, json))
}

fn code(body: &Value) -> String {
    body["error"]["code"]
        .as_str()
        .unwrap_or("<none>")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_right_token_are_refused() -> Result<()> {
    let (_pebble, backend) = start().await?;
    let base = backend.admin_url();
    let client = anonymous()?;
    let attempts = [
        client.get(format!("{base}/v1/domains")),
        client.put(format!("{base}/v1/domains/a.acme-edge.test")),
        client
            .get(format!("{base}/v1/domains"))
            .bearer_auth("wrong-token-0123456789abcdef"),
        client
            .delete(format!("{base}/v1/domains/a.acme-edge.test"))
            .bearer_auth(format!("{}x", backend.token())),
        client
            .get(format!("{base}/v1/domains"))
            .header("authorization", backend.token()),
    ];
    for request in attempts {
        let (status, body) = send(request).await?;
        assert_eq!(
            (status, code(&body).as_str()),
            (401, "unauthorized"),
            "{body}"
        );
    }
    // Nothing was enabled by the refused PUT.
    assert_eq!(backend.domains().await?["domains"], serde_json::json!([]));
    // Health and metrics need no token.
    assert_eq!(send(client.get(format!("{base}/healthz"))).await?.0, 200);
    let (status, metrics) = send(client.get(format!("{base}/metrics"))).await?;
    assert_eq!(status, 200);
    assert!(
        metrics
            .as_str()
            .is_some_and(|m| m.contains("acme_edge_domains")),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_codes() -> Result<()> {
    let (_pebble, backend) = start().await?;
    let base = backend.admin_url();
    let client = backend.client();
    let cases = [
        ("a.acme-edge.test", "{\"key_type\": ", 400, "malformed_json"),
        (
            "a.acme-edge.test",
            "{\"key_type\": \"dsa\"}",
            400,
            "malformed_json",
        ),
        ("a.acme-edge.test", "[1, 2]", 400, "malformed_json"),
        ("%2A.acme-edge.test", "", 400, "wildcard_not_supported"),
        ("192.0.2.7", "", 400, "ip_not_supported"),
        ("under_score.acme-edge.test", "", 400, "invalid_domain"),
        ("-dash.acme-edge.test", "", 400, "invalid_domain"),
        ("singlelabel", "", 400, "invalid_domain"),
    ];
    for (name, body, status, want) in cases {
        let request = client
            .put(format!("{base}/v1/domains/{name}"))
            .header("content-type", "application/json")
            .body(body);
        let (got, answer) = send(request).await?;
        assert_eq!(
            (got, code(&answer).as_str()),
            (status, want),
            "PUT {name} {body}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (status, answer) =
        send(client.get(format!("{base}/v1/domains/nope.acme-edge.test"))).await?;
    assert_eq!((status, code(&answer).as_str()), (404, "not_found"));
    let (status, answer) = send(client.get(format!("{base}/v1/domains?state=lost"))).await?;
    assert_eq!((status, code(&answer).as_str()), (400, "invalid_query"));
    assert_eq!(backend.domains().await?["domains"], serde_json::json!([]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabling_is_idempotent_and_disabling_stops_serving() -> Result<()> {
    let (_pebble, backend) = start().await?;
    let base = backend.admin_url();
    let client = backend.client();
    let url = format!("{base}/v1/domains/Mixed.ACME-edge.test.");
    let (first, body) = send(client.put(&url).body(r#"{"key_type": "ecdsa-p384"}"#)).await?;
    assert_eq!(
        (first, body["name"].as_str()),
        (201, Some("mixed.acme-edge.test")),
        "{body}"
    );
    assert_eq!(body["key_type"], "ecdsa-p384");
    let (again, body) = send(client.put(&url)).await?;
    assert_eq!(again, 200, "{body}");
    assert_eq!(body["name"], "mixed.acme-edge.test", "{body}");

    let (status, body) = send(client.get(format!(
        "{base}/v1/domains/mixed.acme-edge.test/certificate"
    )))
    .await?;
    assert!(
        matches!((status, code(&body).as_str()), (409, "not_issued")),
        "{status} {body}"
    );

    let disabled = backend.disable("mixed.acme-edge.test").await?;
    assert_eq!(disabled["state"], "disabled");
    let (status, body) =
        send(client.post(format!("{base}/v1/domains/mixed.acme-edge.test/renew"))).await?;
    assert_eq!((status, code(&body).as_str()), (409, "domain_disabled"));
    let listed = send(client.get(format!("{base}/v1/domains?state=disabled")))
        .await?
        .1;
    assert_eq!(
        listed["domains"][0]["name"], "mixed.acme-edge.test",
        "{listed}"
    );
    Ok(())
}

/// Run `acme-edge serve` on `config` and return (exit code, stderr), bounded.
async fn serve_once(config: &str, dir: &std::path::Path) -> Result<(Option<i32>, String)> {
    run_once("serve", config, dir).await
}

/// `acme-edge COMMAND --config FILE` with `config` in `FILE`: its exit code and standard
/// error (standard output appended).
async fn run_once(
    command: &str,
    config: &str,
    dir: &std::path::Path,
) -> Result<(Option<i32>, String)> {
    let path = dir.join("bad.toml");
    std::fs::write(&path, config)?;
    let child = tokio::process::Command::new(tools::backend_bin()?)
        .args([command, "--config"])
        .arg(&path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .with_context(|| format!("acme-edge {command} did not exit"))??;
    Ok((
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        ),
    ))
}

/// `check-config` says what `serve` would, without starting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_reports_every_problem_and_starts_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let good = "[acme]\nterms_agreed = true\n[sds]\nlisten = \"127.0.0.1:0\"\n";
    let (code, out) = run_once("check-config", good, dir.path()).await?;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("configuration OK"), "{out}");
    let bad = "[acme]\nterms_agreed = false\n[admin]\nlisten = \"nowhere\"\n[sds]\nlisten = \"0.0.0.0:1\"\n";
    let (code, out) = run_once("check-config", bad, dir.path()).await?;
    assert_eq!(code, Some(64), "{out}");
    for key in ["acme.terms_agreed", "admin.listen", "sds.listen"] {
        assert!(out.contains(key), "{key} not reported:\n{out}");
    }
    assert!(
        !dir.path().join("acme-edge.db").exists(),
        "check-config created the database"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_is_refused_with_every_problem_and_exit_64() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = r#"
        [acme]
        directory_url = "letsencrypt-staging"
        terms_agreed = false
        max_in_flight_orders = "many"
        unknown_key = 1
        [admin]
        listen = "not an address"
        [sds]
        listen = "0.0.0.0:18000"
        [surprise]
    "#;
    let (code, stderr) = serve_once(config, dir.path()).await?;
    assert_eq!(code, Some(64), "{stderr}");
    for key in [
        "acme.terms_agreed",
        "acme.max_in_flight_orders",
        "acme.unknown_key",
        "admin.listen",
        "sds.listen",
        "surprise",
    ] {
        assert!(stderr.contains(key), "{key} not reported:\n{stderr}");
    }
    // Private keys in plain text off loopback: refused, with the ways to fix it.
    for fix in ["sds.tls_cert_file", "unix:", "sds.insecure_plaintext"] {
        assert!(stderr.contains(fix), "{fix} not named:\n{stderr}");
    }
    assert!(!dir.path().join("acme-edge.db").exists(), "nothing started");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_generated_once_into_a_private_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let admin = free_addr();
    let config = format!(
        "[acme]\nterms_agreed = true\ndirectory_url = \"https://127.0.0.1:1/dir\"\n\
         [storage]\nurl = \"sqlite://{db}\"\n[admin]\nlisten = \"{admin}\"\n\
         [challenge]\nlisten = \"{c}\"\n[sds]\nlisten = \"{s}\"\n",
        db = dir.path().join("data/acme-edge.db").display(),
        c = free_addr(),
        s = free_addr(),
    );
    let path = dir.path().join("acme-edge.toml");
    std::fs::write(&path, config)?;
    let mut child = tokio::process::Command::new(tools::backend_bin()?)
        .args(["serve", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let token_file = dir.path().join("data/admin-token");
    let token = eventually(Duration::from_secs(30), || async {
        let text = std::fs::read_to_string(&token_file).ok()?;
        let token = text.trim().to_owned();
        (!token.is_empty()).then_some(token)
    })
    .await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file)?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("data"))?
            .permissions()
            .mode();
        assert_eq!(
            dir_mode & 0o777,
            0o700,
            "the data directory is the service's alone"
        );
    }
    let client = anonymous()?;
    let url = format!("http://{admin}/v1/domains");
    let answered = eventually(Duration::from_secs(30), || async {
        let r = client.get(&url).bearer_auth(&token).send().await.ok()?;
        Some(r.status().as_u16())
    })
    .await?;
    assert_eq!(answered, 200);
    child.start_kill()?;
    let output = child.wait_with_output().await?;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Standard output and error end up in journald or container logs: the token file's path
    // is printed, never the token.
    assert!(
        !printed.contains(&token),
        "the token was printed: {printed}"
    );
    assert!(
        printed.contains(&token_file.display().to_string()),
        "the token file is named: {printed}"
    );
    Ok(())
}

/// A SQLite database serves one backend: a second one pointed at the same file refuses to
/// start and says why, and the first keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_backend_on_the_same_sqlite_file_is_refused() -> Result<()> {
    let pebble = Pebble::builder(free_addr().port()).start().await?;
    let first = Backend::builder().pebble(&pebble).start().await?;
    let db = first.dir().join("acme-edge.db");
    let second = Backend::builder()
        .pebble(&pebble)
        .storage_url(format!("sqlite://{}", db.display()))
        .start()
        .await;
    let Err(refused) = second else {
        anyhow::bail!("a second backend started on {}", db.display());
    };
    let refused = format!("{refused:#}");
    assert!(
        refused.contains("in use by another acme-edge process"),
        "{refused}"
    );
    first.enable("still.acme-edge.test").await?;
    assert_eq!(
        first.domain("still.acme-edge.test").await?["name"],
        "still.acme-edge.test"
    );
    Ok(())
}
