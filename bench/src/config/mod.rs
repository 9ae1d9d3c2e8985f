//! `cargo xtask bench config`: the old way's Envoy configuration against acme-edge's, side by
//! side, for 1,000, 10,000 and 100,000 domains.
//!
//! - **The old way** ([`per_domain`]): one virtual host per domain with a route answering its
//!   challenge, the routes over RDS from a watched file, written as compact JSON (its best
//!   case) and as YAML (as configuration written for people is).
//! - **acme-edge**: the constant bootstrap exactly as `acme-edge envoy-config` renders it
//!   (`acme_edge_envoy_bootstrap`, through the harness's [`EnvoyConfig::edge`]): one wasm
//!   filter, one on-demand SDS selector, nothing per domain, and the HTTPS listener the old
//!   way's configuration leaves out. It is the same whatever the number of domains; it is
//!   started in every round of every row all the same, so each ratio compares Envoys
//!   measured moments apart.
//!
//! For each side: the configuration's size (every file Envoy reads), the start-up time (from
//! starting the process until the admin `/ready` answers `LIVE`, which Envoy says only once
//! its listeners are initialised, routes loaded), the resident memory then (`VmRSS` of
//! `/proc/<pid>/status`), and how one added domain takes effect. The old way writes a new
//! route file with the domain's host and waits until Envoy answers the new domain's
//! challenge. acme-edge changes nothing in Envoy: the challenge backend (the harness's fake,
//! as in `bench filter`) learns the token and the wait is until Envoy's filter answers it.
//!
//! Envoy runs with one worker (`--concurrency 1`). Each side is started `--rounds` times (the
//! table shows medians), the order of the sides alternating from round to round. Each
//! start-up and each added domain is bounded (`--start-timeout`, `--add-timeout`): a side
//! that does not make it is reported as such, is not started again, and the run goes on.
//! Not a test: the figures depend on the machine.
//!
//! # Layout
//!
//! - [`per_domain`]: the old way's files, and how a domain is added to them.
//! - [`startup`]: Envoy started and timed until `LIVE`, its memory then.
//! - [`report`]: the rounds' medians and the table with the ratios.

mod per_domain;
mod report;
mod startup;

use std::time::{Duration, Instant};

use acme_edge_tests::envoy::{EnvoyConfig, http};
use acme_edge_tests::fixture::ChallengeBackend;
use anyhow::{Context, Result, ensure};
use clap::Parser;

use per_domain::{Domain, Format, PerDomain};
use report::{Added, Round, Row, Side};
use startup::{Start, start_envoy};

/// How often readiness and answers are polled.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Parser)]
#[command(name = "cargo xtask bench config")]
struct Args {
    /// Numbers of domains, one comparison each.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 10_000, 100_000])]
    domains: Vec<usize>,
    /// The formats of the old way's files, one comparison each.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Format::Json, Format::Yaml])]
    formats: Vec<Format>,
    /// Starts per configuration (the table shows medians); the order of the sides alternates
    /// from round to round.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds one Envoy gets to start before it is reported as not started.
    #[arg(long, default_value_t = 300)]
    start_timeout: u64,
    /// Seconds one added domain gets to take effect.
    #[arg(long, default_value_t = 300)]
    add_timeout: u64,
}

impl Args {
    fn start_timeout(&self) -> Duration {
        Duration::from_secs(self.start_timeout)
    }

    fn add_timeout(&self) -> Duration {
        Duration::from_secs(self.add_timeout)
    }
}

/// Run the benchmark with `args` (after `cargo xtask bench config`).
pub fn run(args: Vec<String>) -> Result<()> {
    let args = Args::try_parse_from(std::iter::once("config".to_owned()).chain(args))?;
    ensure!(
        args.rounds > 0 && args.domains.iter().all(|n| *n > 0),
        "--rounds and --domains must be positive"
    );
    let began = Instant::now();
    let backend = ChallengeBackend::start()?;
    let rows = args
        .domains
        .iter()
        .map(|&domains| measure_row(&args, &backend, domains))
        .collect::<Result<Vec<_>>>()?;
    report::print(&rows, args.rounds);
    println!("\nwhole run: {:.0} s", began.elapsed().as_secs_f64());
    Ok(())
}

/// The configuration Envoy is started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Constant,
    PerDomain(Format),
}

impl Subject {
    fn name(self) -> String {
        match self {
            Subject::Constant => "acme-edge, constant configuration".to_owned(),
            Subject::PerDomain(format) => {
                format!("one virtual host per domain, {}", format.name())
            }
        }
    }
}

/// Every side for `domains` domains, round after round.
fn measure_row(args: &Args, backend: &ChallengeBackend, domains: usize) -> Result<Row> {
    let subjects: Vec<Subject> = std::iter::once(Subject::Constant)
        .chain(args.formats.iter().map(|f| Subject::PerDomain(*f)))
        .collect();
    let mut sides: Vec<Side> = subjects.iter().map(|_| Side::default()).collect();
    for round in 0..args.rounds {
        // Alternate the order, so drift on a shared machine hits every side alike.
        let mut order: Vec<usize> = (0..subjects.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            if sides[i].gave_up() {
                continue;
            }
            let subject = subjects[i];
            println!("{domains} domains, round {}: {}", round + 1, subject.name());
            let (bytes, measured) = measure(args, backend, domains, subject)?;
            println!("  {} bytes; {}", bytes, measured.summary());
            sides[i].record(bytes, measured);
        }
    }
    let mut sides = subjects.into_iter().zip(sides);
    let (_, constant) = sides.next().context("no constant side")?;
    let per_domain = sides
        .filter_map(|(subject, side)| match subject {
            Subject::PerDomain(format) => Some((format, side)),
            Subject::Constant => None,
        })
        .collect();
    Ok(Row {
        domains,
        per_domain,
        constant,
    })
}

/// One round of one side: the configuration's size, and how Envoy started and took the
/// added domain.
fn measure(
    args: &Args,
    backend: &ChallengeBackend,
    domains: usize,
    subject: Subject,
) -> Result<(u64, Round)> {
    match subject {
        Subject::Constant => constant(args, backend, domains),
        Subject::PerDomain(format) => per_domain(args, backend, domains, format),
    }
}

/// acme-edge's side: the rendered edge bootstrap, and a name the backend learns.
fn constant(args: &Args, backend: &ChallengeBackend, domains: usize) -> Result<(u64, Round)> {
    let config = EnvoyConfig::edge(backend.addr())?.concurrency(1);
    let text = config.rendered()?;
    let dir = tempfile::Builder::new()
        .prefix("acme-edge-bench-constant-")
        .tempdir()?;
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, &text).with_context(|| format!("write {}", path.display()))?;
    let (_envoy, start) = start_envoy(&path, config.admin_port(), args.start_timeout())?;
    let added = match start {
        Start::Live { .. } => Some(answer_new_name(
            backend,
            config.http_port(),
            &Domain::nth(domains),
            args.add_timeout(),
        )?),
        _ => None,
    };
    Ok((text.len() as u64, Round { start, added }))
}

/// The time from the backend learning a new name's token to Envoy answering it.
fn answer_new_name(
    backend: &ChallengeBackend,
    http_port: u16,
    domain: &Domain,
    timeout: Duration,
) -> Result<Added> {
    let began = Instant::now();
    backend.insert(&domain.name, &domain.token, &domain.key_authorization);
    Ok(match wait_for_answer(http_port, domain, timeout)? {
        true => Added::Unchanged(began.elapsed()),
        false => Added::TimedOut(timeout),
    })
}

/// The old way's side: `domains` virtual hosts, then one more through a new route file.
fn per_domain(
    args: &Args,
    backend: &ChallengeBackend,
    domains: usize,
    format: Format,
) -> Result<(u64, Round)> {
    let config = EnvoyConfig::edge(backend.addr())?
        .without_filter()?
        .http_only()?;
    let dir = tempfile::Builder::new()
        .prefix("acme-edge-bench-per-domain-")
        .tempdir()?;
    let files = PerDomain::write(config.bootstrap().to_value(), dir.path(), format)?;
    let routes = files.render_routes(domains)?;
    files.install_routes(&routes)?;
    let bytes = files.bootstrap_bytes() + routes.len() as u64;
    let (_envoy, start) = start_envoy(
        &files.bootstrap_path(),
        config.admin_port(),
        args.start_timeout(),
    )?;
    let added = match start {
        Start::Live { .. } => {
            check_answered(config.http_port(), &Domain::nth(0))?;
            check_answered(config.http_port(), &Domain::nth(domains - 1))?;
            let added = add_host(&files, config.http_port(), domains, args.add_timeout())?;
            Some(added)
        }
        _ => None,
    };
    Ok((bytes, Round { start, added }))
}

/// Add domain number `domains` through a new route file; the time from writing it until
/// Envoy answers the domain's challenge (rendering the file, a control plane's work, is not
/// counted).
fn add_host(files: &PerDomain, http_port: u16, domains: usize, timeout: Duration) -> Result<Added> {
    let domain = Domain::nth(domains);
    ensure!(
        !answers(http_port, &domain)?,
        "{} answered before it was added",
        domain.name
    );
    let routes = files.render_routes(domains + 1)?;
    let began = Instant::now();
    files.install_routes(&routes)?;
    Ok(match wait_for_answer(http_port, &domain, timeout)? {
        true => Added::Reloaded(began.elapsed()),
        false => Added::TimedOut(timeout),
    })
}

/// Fail unless Envoy answers `domain`'s challenge (so a side measures what it claims to).
fn check_answered(http_port: u16, domain: &Domain) -> Result<()> {
    ensure!(
        answers(http_port, domain)?,
        "Envoy does not answer the challenge of {}",
        domain.name
    );
    Ok(())
}

/// Whether Envoy answers `domain`'s challenge with its key authorization.
fn answers(http_port: u16, domain: &Domain) -> Result<bool> {
    let response = http(http_port, "GET", &domain.path(), &domain.name)?;
    Ok(response.status == 200 && response.text() == domain.key_authorization)
}

/// Poll until Envoy answers `domain`'s challenge; false once `timeout` has passed.
fn wait_for_answer(http_port: u16, domain: &Domain, timeout: Duration) -> Result<bool> {
    let began = Instant::now();
    loop {
        if answers(http_port, domain)? {
            return Ok(true);
        }
        if began.elapsed() > timeout {
            return Ok(false);
        }
        std::thread::sleep(POLL);
    }
}
