//! `acme-edge-demo` (run by `cargo xtask demo`, which installs and builds what it needs first):
//! the whole product on this machine, issuing a real certificate.
//!
//! Pebble plays Let's Encrypt (with `pebble-challtestsrv` answering every DNS name with
//! 127.0.0.1), the backend runs `acme-edge serve` against it, and Envoy runs the challenge
//! filter in front of the backend. A demo domain is enabled with the backend's own CLI; Pebble
//! validates it through Envoy, exactly as Let's Encrypt would through a fleet's proxies. The
//! stack then runs until Ctrl-C, for the user to try things, and is shut down.
//!
//! Everything the demo writes is under `.stack/` in the workspace (git-ignored), recreated on
//! each run: Pebble generates a new CA on every start, so older state would not verify.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use acme_edge_tests::stack::Stack;
use acme_edge_tests::tools;
use anyhow::{Context, Result, bail};
use clap::Parser;

/// The state directory, relative to the workspace root.
const STATE_DIR: &str = ".stack";
/// How long issuance of the demo domain may take (Pebble answers in well under a second
/// once its validation sleep is off; the margin is for a loaded machine).
const ISSUE_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask demo",
    about = "The whole stack on this machine, issuing a certificate"
)]
struct DemoArgs {
    /// The domain to issue a certificate for (any name: the demo DNS resolves all of them to
    /// 127.0.0.1).
    #[arg(long, default_value = "demo.acme-edge.test")]
    domain: String,
    /// Stop after issuing instead of running until Ctrl-C.
    #[arg(long)]
    once: bool,
}

fn main() -> ExitCode {
    match run(DemoArgs::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: DemoArgs) -> Result<()> {
    let state = fresh_state_dir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(demo(&args, &state))
}

fn fresh_state_dir() -> Result<PathBuf> {
    let dir = tools::workspace_root().join(STATE_DIR);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    // The stack's state holds the CA's and the backend's keys and the admin token.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod {}", dir.display()))?;
    }
    Ok(dir)
}

async fn demo(args: &DemoArgs, state: &Path) -> Result<()> {
    step("starting Envoy (with the filter), Pebble (the CA) and the backend");
    let stack = Stack::builder().dir(state).start().await?;
    describe(&stack, state);
    let env_file = write_cli_env(&stack, state)?;
    describe_console(&stack, &env_file);

    step(&format!(
        "enabling {} with the CLI: Pebble validates it through Envoy",
        args.domain
    ));
    if let Err(e) = add_domain(&stack, &args.domain).await {
        eprintln!("{}", stack.logs());
        return Err(e);
    }

    step("issued; the certificate and the CA root that signs it");
    let cert_file = state.join(format!("{}.pem", args.domain));
    let chain = stack.backend.certificate_pem(&args.domain).await?;
    write(&cert_file, &chain)?;
    let root_file = state.join("pebble-issuer-root.pem");
    write(&root_file, &stack.pebble.issuer_roots_pem().await?)?;
    println!("  chain     {}", cert_file.display());
    println!("  CA root   {}", root_file.display());
    show_filter_counters(&stack);

    step(&format!(
        "Envoy serves it: https://{}:{}/ (certificate by SNI over SDS)",
        args.domain, stack.https_port
    ));
    if let Err(e) = fetch_over_https(&stack, &args.domain).await {
        eprintln!("{}", stack.logs());
        return Err(e);
    }

    try_it(&stack, args, &env_file, &cert_file, &root_file);
    if args.once {
        return Ok(());
    }
    step("running; press Ctrl-C to stop");
    tokio::signal::ctrl_c().await.context("wait for Ctrl-C")?;
    step("shutting down");
    drop(stack);
    Ok(())
}

/// The web console's address; the token to sign in with is in the CLI's environment file
/// (never printed).
fn describe_console(stack: &Stack, env_file: &Path) {
    println!(
        "  console   {}/console/  (sign in with ACME_EDGE_ADMIN_TOKEN from {})",
        stack.backend.admin_url(),
        env_file.display()
    );
}

fn describe(stack: &Stack, state: &Path) {
    println!(
        "  Envoy     http://127.0.0.1:{}  https://127.0.0.1:{}  (admin 127.0.0.1:{})",
        stack.envoy.http_port(),
        stack.https_port,
        stack.envoy.admin_port()
    );
    println!("  Pebble    {}", stack.pebble.directory_url());
    println!(
        "  backend   admin {}  challenge lookups {}  SDS {}",
        stack.backend.admin_url(),
        stack.backend.challenge_addr(),
        stack.backend.sds().listen_setting()
    );
    println!("  logs      {}/{{pebble,backend}}/logs", state.display());
}

/// `.stack/cli.env`: what the CLI needs to talk to this backend.
fn write_cli_env(stack: &Stack, state: &Path) -> Result<PathBuf> {
    let path = state.join("cli.env");
    let text = format!(
        "export ACME_EDGE_API_URL={}\nexport ACME_EDGE_ADMIN_TOKEN={}\n",
        stack.backend.admin_url(),
        stack.backend.token()
    );
    write(&path, &text)?;
    Ok(path)
}

/// `acme-edge domains add NAME --wait`, showing the CLI's own output.
async fn add_domain(stack: &Stack, domain: &str) -> Result<()> {
    let bin = tools::backend_bin()?;
    let status = tokio::process::Command::new(&bin)
        .args(["domains", "add", domain, "--wait"])
        .env("ACME_EDGE_API_URL", stack.backend.admin_url())
        .env("ACME_EDGE_ADMIN_TOKEN", stack.backend.token())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(ISSUE_DEADLINE, status)
        .await
        .with_context(|| format!("{domain} not issued within {ISSUE_DEADLINE:?}"))?
        .context("run acme-edge domains add")?;
    if !status.success() {
        bail!("`acme-edge domains add {domain} --wait` failed ({status})");
    }
    // The CLI said issued; the API must agree.
    stack
        .backend
        .wait_for_state(domain, "issued", Duration::from_secs(10))
        .await?;
    Ok(())
}

/// One HTTPS request through Envoy that only succeeds if it presents a certificate for
/// `domain` chaining to Pebble's root.
async fn fetch_over_https(stack: &Stack, domain: &str) -> Result<()> {
    let client = stack.https_client(domain).await?;
    let url = stack.https_url(domain);
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    println!("  GET {url} -> {status} {}", body.trim());
    Ok(())
}

fn show_filter_counters(stack: &Stack) {
    let Ok(stats) = stack.envoy.stats() else {
        return;
    };
    let counters: Vec<_> = stats
        .iter()
        .filter(|(name, value)| name.contains("acme_edge") && **value > 0)
        .collect();
    if counters.is_empty() {
        return;
    }
    println!("  Envoy counters of the challenge filter:");
    for (name, value) in counters {
        println!("    {name}: {value}");
    }
}

fn try_it(stack: &Stack, args: &DemoArgs, env_file: &Path, cert: &Path, root: &Path) {
    let bin = tools::backend_bin()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "target/debug/acme-edge".into());
    let http = stack.envoy.http_port();
    step("try it");
    println!("  # the CLI against this backend");
    println!("  source {}", env_file.display());
    println!("  {bin} domains list");
    println!("  {bin} domains add another.acme-edge.test --wait");
    println!("  {bin} domains show {}", args.domain);
    println!();
    println!("  # the issued certificate, checked against the CA that issued it");
    println!(
        "  openssl verify -CAfile {} -untrusted {} {}",
        root.display(),
        cert.display(),
        cert.display()
    );
    println!(
        "  openssl x509 -in {} -noout -subject -issuer -dates",
        cert.display()
    );
    println!();
    println!("  # the certificate as Envoy serves it, by SNI");
    println!(
        "  curl --cacert {} --resolve {}:{}:127.0.0.1 https://{}:{}/",
        root.display(),
        args.domain,
        stack.https_port,
        args.domain,
        stack.https_port
    );
    println!(
        "  openssl s_client -connect 127.0.0.1:{} -servername {} -CAfile {} </dev/null",
        stack.https_port,
        args.domain,
        root.display()
    );
    println!();
    println!("  # a challenge for an unknown token, answered by the filter in Envoy");
    println!(
        "  curl -i -H 'Host: {}' http://127.0.0.1:{http}/.well-known/acme-challenge/unknown-token",
        args.domain
    );
    println!("  # any other path goes to Envoy's normal routes, never into the filter");
    println!("  curl -i http://127.0.0.1:{http}/");
}

fn step(what: &str) {
    println!("\n==> {what}");
}

/// Every file the demo writes is its user's alone (`cli.env` holds the admin token).
fn write(path: &Path, text: &str) -> Result<()> {
    tools::write_private(path, text).with_context(|| format!("write {}", path.display()))
}
