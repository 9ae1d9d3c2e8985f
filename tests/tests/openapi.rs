//! The admin API against its own OpenAPI description, by Schemathesis: generated requests
//! (valid and invalid ones, every check on, a bounded number of examples per operation) to a
//! real backend, with a valid token and without one. No server error, no answer outside the
//! description, no request let through without the token.
//!
//! The token never appears on a command line: Schemathesis reads it from its environment
//! through its configuration file (0600), `${ACME_EDGE_SCHEMATHESIS_TOKEN}`.

use std::path::Path;
use std::process::Stdio;

use acme_edge_tests::backend::Backend;
use acme_edge_tests::pebble::Pebble;
use acme_edge_tests::ports::free_addr;
use acme_edge_tests::tools::write_private;
use anyhow::{Context, Result, bail};

/// Examples per operation and phase: enough to reach every parameter and status, about a
/// minute for the whole run.
const MAX_EXAMPLES: &str = "30";
/// Fixed, so that a failure can be reproduced.
const SEED: &str = "20261129";
const TOKEN_ENV: &str = "ACME_EDGE_SCHEMATHESIS_TOKEN";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_schema_violation_or_auth_bypass() -> Result<()> {
    let pebble = Pebble::builder(free_addr().port()).start().await?;
    let backend = Backend::builder().pebble(&pebble).start().await?;
    let dir = backend.dir().join("schemathesis");
    std::fs::create_dir_all(&dir)?;
    let url = format!("{}/v1/openapi.json", backend.admin_url());
    let spec = backend
        .client()
        .get(&url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let spec_path = dir.join("openapi.json");
    std::fs::write(&spec_path, spec)?;

    let with_token = dir.join("with-token.toml");
    write_private(
        &with_token,
        &format!("[auth.openapi.bearer]\nbearer = \"${{{TOKEN_ENV}}}\"\n"),
    )?;
    let without_token = dir.join("without-token.toml");
    write_private(&without_token, "")?;

    let mut failures = Vec::new();
    for (what, config) in [
        ("with the token", &with_token),
        ("without a token", &without_token),
    ] {
        let (ok, summary) = schemathesis(&backend, config, &spec_path).await?;
        println!("---- schemathesis {what}\n{summary}");
        if !ok {
            failures.push(what);
        }
    }
    if !failures.is_empty() {
        bail!(
            "schemathesis failed {}\n---- backend log\n{}",
            failures.join(" and "),
            backend.log()
        );
    }
    Ok(())
}

/// Run Schemathesis; whether it passed, and what it printed.
async fn schemathesis(backend: &Backend, config: &Path, spec: &Path) -> Result<(bool, String)> {
    let output = tokio::process::Command::new("schemathesis")
        .arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(spec)
        .args(["--url", &backend.admin_url()])
        .args(["--checks", "all"])
        // DELETE disables a domain, which stays readable (state `disabled`): by design, not a
        // resource that should be gone.
        .args(["--exclude-checks", "use_after_free"])
        // An endless event stream: every request to it would time out (its own tests read it).
        .args(["--exclude-path", "/v1/events"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        // One worker: the generator is not safe to run on several threads.
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .env(TOKEN_ENV, backend.token())
        .env("NO_COLOR", "1")
        // Its cache (a `.schemathesis/` folder) goes to the backend's scratch directory, not
        // into the source tree.
        .current_dir(backend.dir())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("running schemathesis (installed by `cargo xtask install`)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}
