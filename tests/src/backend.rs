//! The real `acme-edge serve` process, with a configuration file generated from builder
//! options.
//!
//! Each backend gets its own ports (admin API, challenge lookup, SDS), its own directory
//! (configuration, SQLite database, logs) and a random admin token. Restarting keeps the
//! directory, so a test can check what survives a crash ([`Backend::kill`] then
//! [`Backend::start`]). Two backends can share one store by passing the same
//! [`BackendBuilder::storage_url`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::envoy::SdsEndpoint;
use crate::pebble::Pebble;
use crate::ports::free_addr;
use crate::process::{ChildGuard, Signal, Spawn, WorkDir, eventually};
use crate::tools;

/// How long the backend gets to answer `/healthz` after starting (it migrates its database
/// and registers the ACME account first).
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between `/healthz` (and `/readyz`) polls while the backend starts: short, so that
/// the start-up time the scale benchmark reports is not the poll's.
const HEALTH_POLL: Duration = Duration::from_millis(10);
/// Bound on each admin API request the fixture makes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONFIG_FILE: &str = "acme-edge.toml";
const DATABASE_FILE: &str = "acme-edge.db";

/// Options for [`Backend`]; start it with [`BackendBuilder::start`].
#[derive(Debug, Clone, Default)]
pub struct BackendBuilder {
    directory_url: Option<String>,
    ca_root_file: Option<PathBuf>,
    key_type: Option<String>,
    max_in_flight_orders: Option<u64>,
    max_concurrent_requests: Option<u64>,
    request_timeout_secs: Option<u64>,
    storage_url: Option<String>,
    dir: Option<PathBuf>,
    challenge_addr: Option<SocketAddr>,
    hold_challenge_socket: bool,
    sds: Option<SdsEndpoint>,
    /// Extra settings, merged over the generated ones (`[section] key = value`).
    extra: toml::Table,
    envs: Vec<(String, String)>,
    binary: Option<PathBuf>,
}

impl BackendBuilder {
    /// The CA: its directory URL and the root of its HTTPS certificate.
    pub fn ca(
        mut self,
        directory_url: impl Into<String>,
        ca_root_file: impl Into<PathBuf>,
    ) -> Self {
        self.directory_url = Some(directory_url.into());
        self.ca_root_file = Some(ca_root_file.into());
        self
    }

    /// Use `pebble` as the CA, with at most [`PEBBLE_SAFE_CONCURRENT_REQUESTS`] requests to
    /// it at once unless [`max_concurrent_requests`](Self::max_concurrent_requests) says
    /// otherwise (backends sharing one Pebble must split that number between them).
    ///
    /// [`PEBBLE_SAFE_CONCURRENT_REQUESTS`]: crate::pebble::PEBBLE_SAFE_CONCURRENT_REQUESTS
    pub fn pebble(mut self, pebble: &Pebble) -> Self {
        self.max_concurrent_requests = self
            .max_concurrent_requests
            .or(Some(crate::pebble::PEBBLE_SAFE_CONCURRENT_REQUESTS));
        self.ca(pebble.directory_url(), pebble.ca_root_file())
    }

    /// `acme.key_type` (e.g. `ecdsa-p256`).
    pub fn key_type(mut self, key_type: impl Into<String>) -> Self {
        self.key_type = Some(key_type.into());
        self
    }

    pub fn max_in_flight_orders(mut self, n: u64) -> Self {
        self.max_in_flight_orders = Some(n);
        self
    }

    /// `acme.max_concurrent_requests`.
    pub fn max_concurrent_requests(mut self, n: u64) -> Self {
        self.max_concurrent_requests = Some(n);
        self
    }

    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout_secs = Some(timeout.as_secs().max(1));
        self
    }

    /// `storage.url`; default: a SQLite file in the backend's directory.
    pub fn storage_url(mut self, url: impl Into<String>) -> Self {
        self.storage_url = Some(url.into());
        self
    }

    /// Keep configuration, database and logs in `dir` instead of a temporary directory.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Listen for challenge lookups here (default: a free port). Lets Envoy be configured
    /// before the backend starts.
    pub fn challenge_addr(mut self, addr: SocketAddr) -> Self {
        self.challenge_addr = Some(addr);
        self
    }

    /// Hold the challenge lookup's listening socket in the test and pass it to the backend
    /// at every start, as systemd socket activation does (`deploy/acme-edge.socket`): while
    /// the backend restarts, lookups wait in the socket's backlog instead of being refused.
    pub fn hold_challenge_socket(mut self) -> Self {
        self.hold_challenge_socket = true;
        self
    }

    /// Serve SDS on this TCP address (default: a free port).
    pub fn sds_addr(self, addr: SocketAddr) -> Self {
        self.sds(SdsEndpoint::Tcp(addr))
    }

    /// Serve SDS here: a Unix socket or a TCP address.
    pub fn sds(mut self, endpoint: SdsEndpoint) -> Self {
        self.sds = Some(endpoint);
        self
    }

    /// Any other setting, e.g. `.setting("acme", "contact", vec!["ops@example.com"])`.
    pub fn setting(mut self, section: &str, key: &str, value: impl Into<toml::Value>) -> Self {
        let entry = self
            .extra
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(table) = entry {
            table.insert(key.into(), value.into());
        }
        self
    }

    /// An environment variable for the process (`RUST_LOG`, `ACME_EDGE_*` overrides).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Run this `acme-edge` instead of the one under test ([`tools::backend_bin`]): the one
    /// in a container image's file system, which finds its files from where it is.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Write the configuration, start `acme-edge serve` and wait until `/healthz` answers.
    pub async fn start(self) -> Result<Backend> {
        let dir = WorkDir::new(self.dir.clone(), "backend")?;
        let addrs = Addrs {
            admin: free_addr(),
            challenge: self.challenge_addr.unwrap_or_else(free_addr),
            sds: self
                .sds
                .clone()
                .unwrap_or_else(|| SdsEndpoint::Tcp(free_addr())),
        };
        let token = random_token();
        let config_path = dir.path().join(CONFIG_FILE);
        let config = self.config(&addrs, &token, dir.path());
        tools::write_private(&config_path, &toml::to_string_pretty(&config)?)
            .with_context(|| format!("write {}", config_path.display()))?;

        let binary = match &self.binary {
            Some(path) => path.clone(),
            None => tools::backend_bin()?,
        };
        let mut spawn = Spawn::new("acme-edge", binary)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .log_dir(dir.path().join("logs"))
            .env("RUST_LOG", "info,acme_edge=debug");
        for (key, value) in &self.envs {
            spawn = spawn.env(key, value);
        }
        if self.hold_challenge_socket {
            let socket = std::net::TcpListener::bind(addrs.challenge)
                .with_context(|| format!("hold the challenge socket {}", addrs.challenge))?;
            spawn = spawn.pass_socket("challenge", socket);
        }
        let process = spawn.start()?;
        let client = admin_client(&token)?;
        let mut backend = Backend {
            process,
            addrs,
            token,
            config_path,
            client,
            dir,
        };
        backend.wait_healthy().await?;
        Ok(backend)
    }

    /// The configuration file's content.
    fn config(&self, addrs: &Addrs, token: &str, dir: &Path) -> toml::Table {
        let mut acme = toml::Table::new();
        if let Some(url) = &self.directory_url {
            acme.insert("directory_url".into(), url.clone().into());
        }
        if let Some(file) = &self.ca_root_file {
            acme.insert("ca_root_file".into(), file.display().to_string().into());
        }
        acme.insert("contact".into(), vec!["ops@acme-edge.test"].into());
        acme.insert("terms_agreed".into(), true.into());
        if let Some(key_type) = &self.key_type {
            acme.insert("key_type".into(), key_type.clone().into());
        }
        if let Some(n) = self.max_in_flight_orders {
            acme.insert("max_in_flight_orders".into(), int(n));
        }
        if let Some(n) = self.max_concurrent_requests {
            acme.insert("max_concurrent_requests".into(), int(n));
        }
        if let Some(secs) = self.request_timeout_secs {
            acme.insert("request_timeout_secs".into(), int(secs));
        }
        let storage_url = self
            .storage_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.join(DATABASE_FILE).display()));

        let mut config = toml::Table::new();
        config.insert("acme".into(), acme.into());
        config.insert("storage".into(), table([("url", storage_url.into())]));
        config.insert(
            "admin".into(),
            table([
                ("listen", addrs.admin.to_string().into()),
                ("token", token.into()),
            ]),
        );
        config.insert(
            "challenge".into(),
            table([("listen", addrs.challenge.to_string().into())]),
        );
        config.insert(
            "sds".into(),
            table([("listen", addrs.sds.listen_setting().into())]),
        );
        merge(&mut config, &self.extra);
        config
    }
}

#[derive(Debug, Clone)]
struct Addrs {
    admin: SocketAddr,
    challenge: SocketAddr,
    sds: SdsEndpoint,
}

/// A running `acme-edge serve`; killed on drop.
#[derive(Debug)]
pub struct Backend {
    process: ChildGuard,
    addrs: Addrs,
    token: String,
    config_path: PathBuf,
    client: reqwest::Client,
    // Last: the directory outlives the process using it.
    dir: WorkDir,
}

impl Backend {
    pub fn builder() -> BackendBuilder {
        BackendBuilder::default()
    }

    /// Base URL of the admin API, e.g. `http://127.0.0.1:41234`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.addrs.admin)
    }

    /// The admin API's bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The challenge lookup listener (Envoy's `acme_backend` cluster).
    pub fn challenge_addr(&self) -> SocketAddr {
        self.addrs.challenge
    }

    /// The SDS gRPC listener.
    /// Where it serves SDS.
    pub fn sds(&self) -> &SdsEndpoint {
        &self.addrs.sds
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Configuration, database and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// An HTTP client that sends the admin token with every request.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The process id, while it runs (to read its memory and CPU time from `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.process.id()
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Kill it outright (SIGKILL): no graceful shutdown, as in a crash.
    pub fn kill(&mut self) -> Result<()> {
        self.process.kill(Signal::SIGKILL)
    }

    /// Graceful stop (SIGTERM, bounded).
    pub fn stop(&mut self) -> Result<()> {
        self.process.stop()
    }

    /// Start again with the same configuration and data; wait until healthy.
    pub async fn start(&mut self) -> Result<()> {
        self.process.restart()?;
        self.wait_healthy().await
    }

    /// Stop gracefully and start again.
    pub async fn restart(&mut self) -> Result<()> {
        self.start().await
    }

    /// Stop (if it still runs) and start `binary` in its place, on the same configuration and
    /// data: an upgrade (or a rollback) of this replica; wait until healthy.
    pub async fn restart_as(&mut self, binary: impl Into<PathBuf>) -> Result<()> {
        self.process.restart_as(binary)?;
        self.wait_healthy().await
    }

    /// Until `/healthz` answers; fails at once if the process exits (a refused configuration
    /// or store), with its log.
    async fn wait_healthy(&mut self) -> Result<()> {
        self.poll_until_success("/healthz", START_DEADLINE).await
    }

    /// Until `/readyz` answers 200 (the store answers, the ACME account is loaded, every
    /// listener serves); fails at once if the process exits, with its log.
    pub async fn wait_ready(&mut self, deadline: Duration) -> Result<()> {
        self.poll_until_success("/readyz", deadline).await
    }

    /// Until `GET path` answers a success status, or fail with the log once the process
    /// exited or `deadline` passed.
    async fn poll_until_success(&mut self, path: &str, deadline: Duration) -> Result<()> {
        let url = format!("{}{path}", self.admin_url());
        let end = tokio::time::Instant::now() + deadline;
        loop {
            if let Ok(response) = self.client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if let Err(e) = self.process.ensure_running() {
                return Err(e.context(self.log()));
            }
            if tokio::time::Instant::now() >= end {
                bail!("{url} never answered\n{}", self.log());
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    /// `PUT /v1/domains/{name}`: enable a domain (starts issuance).
    pub async fn enable(&self, name: &str) -> Result<serde_json::Value> {
        let url = format!("{}/v1/domains/{name}", self.admin_url());
        self.json(self.client.put(&url), &url).await
    }

    /// `PUT /v1/domains/{name}` with a body (`{"key_type": ...}`, `{"profile": ...}`).
    pub async fn enable_with(
        &self,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let url = format!("{}/v1/domains/{name}", self.admin_url());
        self.json(self.client.put(&url).json(body), &url).await
    }

    /// `GET /v1/domains/{name}`.
    pub async fn domain(&self, name: &str) -> Result<serde_json::Value> {
        let url = format!("{}/v1/domains/{name}", self.admin_url());
        self.json(self.client.get(&url), &url).await
    }

    /// `GET /v1/domains/{name}/orders`: its order history, newest first.
    pub async fn orders(&self, name: &str) -> Result<serde_json::Value> {
        let url = format!("{}/v1/domains/{name}/orders", self.admin_url());
        self.json(self.client.get(&url), &url).await
    }

    /// `DELETE /v1/domains/{name}`: disable a domain.
    pub async fn disable(&self, name: &str) -> Result<serde_json::Value> {
        let url = format!("{}/v1/domains/{name}", self.admin_url());
        self.json(self.client.delete(&url), &url).await
    }

    /// `POST /v1/domains/{name}/renew`: renew now.
    pub async fn renew(&self, name: &str) -> Result<serde_json::Value> {
        let url = format!("{}/v1/domains/{name}/renew", self.admin_url());
        self.json(self.client.post(&url), &url).await
    }

    /// `GET /v1/domains/{name}/certificate`: the served chain, PEM.
    pub async fn certificate_pem(&self, name: &str) -> Result<String> {
        let url = format!("{}/v1/domains/{name}/certificate", self.admin_url());
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .with_context(|| url.clone())?;
        let status = response.status();
        let body = response.text().await.with_context(|| url.clone())?;
        if !status.is_success() {
            bail!("{url}: {status}: {body}");
        }
        Ok(body)
    }

    /// `GET /v1/domains`, every page (1,000 domains a page): `{"domains": [all of them]}`.
    pub async fn domains(&self) -> Result<serde_json::Value> {
        let mut domains = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/domains?limit=1000", self.admin_url());
            if let Some(cursor) = &after {
                url.push_str(&format!("&after={cursor}"));
            }
            let mut page = self.json(self.client.get(&url), &url).await?;
            if let Some(items) = page["domains"].as_array_mut() {
                domains.append(items);
            }
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => return Ok(serde_json::json!({ "domains": domains, "next": null })),
            }
        }
    }

    /// Poll `GET /v1/domains/{name}` until its `state` is `state`; fail early if it is
    /// `failed` (unless that is what is awaited), with the backend's logs.
    pub async fn wait_for_state(
        &self,
        name: &str,
        state: &str,
        deadline: Duration,
    ) -> Result<serde_json::Value> {
        // The last answer seen, for the failure message.
        let last = std::sync::Mutex::new(serde_json::Value::Null);
        let reached = eventually(deadline, || async {
            let domain = self.domain(name).await.ok()?;
            let current = domain["state"].as_str().map(str::to_owned);
            if let Ok(mut last) = last.lock() {
                *last = domain.clone();
            }
            match current.as_deref() {
                Some(s) if s == state => Some(Ok(domain)),
                Some("failed") => Some(Err(domain)),
                _ => None,
            }
        })
        .await;
        match reached {
            Ok(Ok(domain)) => Ok(domain),
            Ok(Err(domain)) => bail!("{name} failed: {domain}\n{}", self.log()),
            Err(e) => {
                let last = last.lock().map(|v| v.to_string()).unwrap_or_default();
                Err(e.context(format!(
                    "{name} never reached {state}; last seen: {last}\n{}",
                    self.log()
                )))
            }
        }
    }

    /// Run the CLI (`acme-edge domains --api-url URL ARGS...`) against this backend and return
    /// its output. The token goes in the environment (`ACME_EDGE_ADMIN_TOKEN`), never on the
    /// command line, where other users of the machine could read it.
    pub async fn cli(&self, args: &[&str]) -> Result<std::process::Output> {
        self.client_command("domains", args).await
    }

    /// `acme-edge COMMAND ARGS...` as an operator runs a client command against this backend
    /// (`capacity`, `domains`), the token in the environment.
    pub async fn client_command(
        &self,
        command: &str,
        args: &[&str],
    ) -> Result<std::process::Output> {
        let mut cmd = tokio::process::Command::new(tools::backend_bin()?);
        cmd.arg(command)
            .args(["--api-url", &self.admin_url()])
            .env("ACME_EDGE_ADMIN_TOKEN", &self.token)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd.output()
            .await
            .with_context(|| format!("run acme-edge {command} {}", args.join(" ")))
    }

    async fn json(&self, request: reqwest::RequestBuilder, url: &str) -> Result<serde_json::Value> {
        let response = request.send().await.with_context(|| url.to_owned())?;
        let status = response.status();
        let body = response.text().await.with_context(|| url.to_owned())?;
        if !status.is_success() {
            bail!("{url}: {status}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("{url}: not JSON: {body}"))
    }
}

/// A timestamp field (RFC 3339) of a domain as the admin API answers it, in Unix seconds.
pub fn unix_time(domain: &serde_json::Value, field: &str) -> Result<i64> {
    let text = domain[field]
        .as_str()
        .with_context(|| format!("{field} missing in {domain}"))?;
    let time = OffsetDateTime::parse(text, &Rfc3339)
        .with_context(|| format!("{field} is not RFC 3339: {text}"))?;
    Ok(time.unix_timestamp())
}

/// Now, in Unix seconds: to compare with [`unix_time`].
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn admin_client(token: &str) -> Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
    value.set_sensitive(true);
    headers.insert(AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("build the admin API client")
}

/// 32 hex characters from the kernel's random source.
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    // /dev/urandom cannot run dry; failing to read it means a broken machine.
    if let Err(e) = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
    {
        panic!("read /dev/urandom: {e}");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn int(n: u64) -> toml::Value {
    toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn table<const N: usize>(entries: [(&str, toml::Value); N]) -> toml::Value {
    toml::Value::Table(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

/// Merge `extra` over `base`, section by section.
fn merge(base: &mut toml::Table, extra: &toml::Table) {
    for (key, value) in extra {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(extra)) => merge(base, extra),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_every_section_and_extra_settings_win() {
        let builder = Backend::builder()
            .ca("https://127.0.0.1:1/dir", "/ca.pem")
            .max_in_flight_orders(7)
            .setting("acme", "max_in_flight_orders", 9)
            .setting("acme", "contact", vec!["a@b.test"]);
        let addrs = Addrs {
            admin: "127.0.0.1:1".parse().unwrap(),
            challenge: "127.0.0.1:2".parse().unwrap(),
            sds: SdsEndpoint::Unix(PathBuf::from("/run/t/sds.sock")),
        };
        let config = builder.config(&addrs, "t".repeat(32).as_str(), Path::new("/d"));
        let text = toml::to_string(&config).unwrap();
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(
            parsed["acme"]["directory_url"].as_str(),
            Some("https://127.0.0.1:1/dir")
        );
        assert_eq!(parsed["acme"]["ca_root_file"].as_str(), Some("/ca.pem"));
        assert_eq!(parsed["acme"]["terms_agreed"].as_bool(), Some(true));
        assert_eq!(parsed["acme"]["max_in_flight_orders"].as_integer(), Some(9));
        assert_eq!(parsed["acme"]["contact"][0].as_str(), Some("a@b.test"));
        assert_eq!(
            parsed["storage"]["url"].as_str(),
            Some("sqlite:///d/acme-edge.db")
        );
        assert_eq!(parsed["admin"]["listen"].as_str(), Some("127.0.0.1:1"));
        assert_eq!(parsed["challenge"]["listen"].as_str(), Some("127.0.0.1:2"));
        assert_eq!(
            parsed["sds"]["listen"].as_str(),
            Some("unix:/run/t/sds.sock")
        );
    }

    #[test]
    fn tokens_are_long_enough_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
