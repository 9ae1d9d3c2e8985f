//! Envoy started from the bootstrap `acme-edge envoy-config` renders
//! (`acme_edge_envoy_bootstrap`), on free loopback ports.
//!
//! [`EnvoyConfig::edge`] is the production bootstrap with test addresses: the same renderer
//! operators run, so the tests run what they deploy. [`EnvoyConfig::with`] changes any
//! parameter; [`EnvoyConfig::adjust`] edits the rendered document (a test's own route
//! answers).
//!
//! The SDS trial bootstrap (`envoy/sds-trial.yaml`) is a template with `${NAME}` placeholders:
//! [`render`] fills them, refusing to leave one unfilled.
//!
//! [`Envoy`] is a running proxy: it is ready once its admin `/ready` answers `LIVE`, exposes
//! its ports and stats, and is killed when dropped. [`EnvoyConfig::refused`] runs Envoy's
//! validate mode for "bad configuration is refused" tests and returns what Envoy said.
//! [`http`] is a raw HTTP/1.1 client giving full control over method and `:authority`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use acme_edge_envoy_bootstrap::{Bootstrap, Filter, FilterSource, Https, Listen, Sds, Upstream};
use anyhow::{Context, Result, bail};

pub use acme_edge_envoy_bootstrap::SdsClientTls;

use crate::ports::free_port;
use crate::process::{ChildGuard, Spawn, eventually_blocking};
use crate::tools;

/// How long Envoy gets to load its configuration (V8 compiles the filter) and go LIVE.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Bound on one HTTP exchange with Envoy.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Where a backend serves SDS, as its `sds.listen` says and Envoy's `acme_sds` cluster
/// reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdsEndpoint {
    /// A Unix domain socket (the backend's default): `unix:/PATH`.
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl SdsEndpoint {
    /// The TCP address, if it is one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            SdsEndpoint::Tcp(addr) => Some(*addr),
            SdsEndpoint::Unix(_) => None,
        }
    }

    /// The backend's `sds.listen` value.
    pub fn listen_setting(&self) -> String {
        match self {
            SdsEndpoint::Unix(path) => format!("unix:{}", path.display()),
            SdsEndpoint::Tcp(addr) => addr.to_string(),
        }
    }
}

impl From<SocketAddr> for SdsEndpoint {
    fn from(addr: SocketAddr) -> SdsEndpoint {
        SdsEndpoint::Tcp(addr)
    }
}

/// `<workspace>/envoy/<name>`.
pub fn template_path(name: &str) -> PathBuf {
    tools::workspace_root().join("envoy").join(name)
}

/// Replace every `${NAME}` in `template` by `vars[NAME]`. Fails naming every placeholder that
/// has no value; variables the template does not use are fine.
/// Comment lines are copied as they are: they document the placeholders.
pub fn render(template: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut missing = Vec::new();
    for line in template.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            render_line(line, vars, &mut out, &mut missing)?;
        }
    }
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        bail!(
            "template placeholders left unfilled: {}",
            missing.join(", ")
        );
    }
    Ok(out)
}

fn render_line(
    line: &str,
    vars: &BTreeMap<String, String>,
    out: &mut String,
    missing: &mut Vec<String>,
) -> Result<()> {
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            bail!("unterminated placeholder in {:?}", line.trim());
        };
        let name = &after[..end];
        match vars.get(name) {
            Some(value) => out.push_str(value),
            None => missing.push(name.to_owned()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(())
}

/// Where the `acme_sds` cluster's transport socket goes in `sds-trial.yaml`: just before its
/// endpoints.
const SDS_CLUSTER_ENDPOINTS: &str = "    load_assignment:\n      cluster_name: acme_sds\n";

/// The SDS trial `template` with `tls` on its `acme_sds` cluster, as the renderer writes it.
pub fn with_sds_client_tls(template: &str, tls: &SdsClientTls) -> Result<String> {
    if template.matches(SDS_CLUSTER_ENDPOINTS).count() != 1 {
        bail!("the template's acme_sds cluster changed shape");
    }
    let socket = format!(
        r#"    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: {name}
        common_tls_context:
          alpn_protocols: [h2]
          tls_certificates:
          - certificate_chain: {{ filename: {chain} }}
            private_key: {{ filename: {key} }}
          validation_context:
            trusted_ca: {{ filename: {ca} }}
            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: {{ exact: {name} }}
"#,
        name = tls.server_name,
        chain = tls.chain_file.display(),
        key = tls.key_file.display(),
        ca = tls.ca_file.display(),
    );
    Ok(template.replace(
        SDS_CLUSTER_ENDPOINTS,
        &format!("{socket}{SDS_CLUSTER_ENDPOINTS}"),
    ))
}

/// An Envoy configuration to start: the bootstrap's parameters, and edits of the rendered
/// document.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    bootstrap: Bootstrap,
    /// The filter's JSON settings, parsed when rendering (`""`: all defaults).
    settings: String,
    sds_client_tls: Option<SdsClientTls>,
    adjustments: Vec<fn(&mut serde_json::Value)>,
    concurrency: u32,
}

impl EnvoyConfig {
    /// The edge bootstrap on free loopback ports, the built filter with all-default settings,
    /// the challenge cluster pointing at `backend`, the HTTPS listener's SDS cluster at a
    /// free port until [`EnvoyConfig::sds`] names the backend's; plain HTTP not redirected.
    pub fn edge(backend: SocketAddr) -> Result<EnvoyConfig> {
        let wasm = tools::filter_wasm()?;
        let bootstrap = Bootstrap {
            admin: SocketAddr::new(LOOPBACK, free_port()),
            http: Listen::new(LOOPBACK, free_port()),
            https: Some(Https {
                listen: Listen::new(LOOPBACK, free_port()),
                sds: Sds::Tcp {
                    upstream: SocketAddr::new(LOOPBACK, free_port()).into(),
                    tls: None,
                },
            }),
            https_redirect: false,
            challenge_backend: backend.into(),
            filter: Some(Filter {
                source: FilterSource::Local(wasm),
                settings: Default::default(),
            }),
            ..Bootstrap::default()
        };
        Ok(EnvoyConfig {
            bootstrap,
            settings: String::new(),
            sds_client_tls: None,
            adjustments: Vec::new(),
            concurrency: 1,
        })
    }

    /// Change any parameter of the bootstrap.
    pub fn with(mut self, f: impl FnOnce(&mut Bootstrap)) -> EnvoyConfig {
        f(&mut self.bootstrap);
        self
    }

    /// Edit the rendered document before Envoy reads it (applied in order).
    pub fn adjust(mut self, f: fn(&mut serde_json::Value)) -> EnvoyConfig {
        self.adjustments.push(f);
        self
    }

    /// The bootstrap's parameters.
    pub fn bootstrap(&self) -> &Bootstrap {
        &self.bootstrap
    }

    /// Point the `acme_sds` cluster (the HTTPS listener's certificates) at the backend's SDS
    /// listener: a Unix socket or a TCP address.
    pub fn sds(mut self, endpoint: impl Into<SdsEndpoint>) -> EnvoyConfig {
        let sds = match endpoint.into() {
            SdsEndpoint::Unix(path) => Sds::Unix(path),
            SdsEndpoint::Tcp(addr) => Sds::Tcp {
                upstream: addr.into(),
                tls: None,
            },
        };
        if let Some(https) = &mut self.bootstrap.https {
            https.sds = sds;
        }
        self
    }

    /// Drop the HTTPS listener and its SDS cluster (tests of the plain-HTTP side only).
    pub fn http_only(mut self) -> Result<EnvoyConfig> {
        self.bootstrap.https = None;
        Ok(self)
    }

    /// The HTTPS listener's port (on 127.0.0.1).
    pub fn with_https_port(mut self, port: u16) -> EnvoyConfig {
        if let Some(https) = &mut self.bootstrap.https {
            https.listen.port = port;
        }
        self
    }

    /// The plain-HTTP listener's port.
    pub fn with_http_port(mut self, port: u16) -> EnvoyConfig {
        self.bootstrap.http.port = port;
        self
    }

    /// The admin port (on 127.0.0.1).
    pub fn with_admin_port(mut self, port: u16) -> EnvoyConfig {
        self.bootstrap.admin.set_port(port);
        self
    }

    /// Redirect plain HTTP to HTTPS (challenge paths excepted).
    pub fn https_redirect(mut self, on: bool) -> EnvoyConfig {
        self.bootstrap.https_redirect = on;
        self
    }

    /// The filter's JSON settings (`""` for all defaults).
    pub fn filter_settings(mut self, json: &str) -> EnvoyConfig {
        json.clone_into(&mut self.settings);
        self
    }

    /// Point the `acme_backend` cluster at `addr`.
    pub fn backend(mut self, addr: SocketAddr) -> EnvoyConfig {
        self.bootstrap.challenge_backend = Upstream::from(addr);
        self
    }

    /// The same configuration without the acme-edge filter (the benchmark's baseline).
    pub fn without_filter(mut self) -> Result<EnvoyConfig> {
        self.bootstrap.filter = None;
        Ok(self)
    }

    /// Envoy worker threads (default 1).
    pub fn concurrency(mut self, workers: u32) -> EnvoyConfig {
        self.concurrency = workers;
        self
    }

    /// The plain-HTTP listener's port (reachable on 127.0.0.1, dual-stack too).
    pub fn http_port(&self) -> u16 {
        self.bootstrap.http.port
    }

    /// The admin port (on 127.0.0.1).
    pub fn admin_port(&self) -> u16 {
        self.bootstrap.admin.port()
    }

    /// Reach the SDS listener over mutual TLS (when it is on TCP).
    pub fn sds_client_tls(mut self, tls: SdsClientTls) -> EnvoyConfig {
        self.sds_client_tls = Some(tls);
        self
    }

    /// The parameters with the settings and client TLS applied.
    fn complete(&self) -> Result<Bootstrap> {
        let mut bootstrap = self.bootstrap.clone();
        if let Some(filter) = &mut bootstrap.filter {
            filter.settings = Filter::parse_settings(&self.settings)?;
        }
        if let (Some(tls), Some(https)) = (&self.sds_client_tls, &mut bootstrap.https) {
            match &mut https.sds {
                Sds::Tcp { tls: slot, .. } => *slot = Some(tls.clone()),
                Sds::Unix(_) => bail!("mutual TLS to an SDS Unix socket"),
            }
        }
        Ok(bootstrap)
    }

    /// The rendered configuration text (YAML).
    pub fn rendered(&self) -> Result<String> {
        let bootstrap = self.complete()?;
        if self.adjustments.is_empty() {
            return Ok(bootstrap.to_yaml());
        }
        let mut value = bootstrap.to_value();
        for adjust in &self.adjustments {
            adjust(&mut value);
        }
        Ok(acme_edge_envoy_bootstrap::yaml::to_yaml(&value))
    }

    /// Start Envoy and wait until it is LIVE.
    pub fn start(self) -> Result<Envoy> {
        let dir = tempfile::Builder::new()
            .prefix("acme-edge-envoy-")
            .tempdir()
            .context("create a temporary dir for envoy")?;
        let config = write_config(dir.path(), &self.rendered()?)?;
        let child = Spawn::new("envoy", tools::envoy()?)
            .arg("-c")
            .arg(&config)
            .args(["--use-dynamic-base-id", "--log-level", "info"])
            .args(["--concurrency", &self.concurrency.to_string()])
            .log_dir(dir.path().join("logs"))
            .start()?;
        let mut envoy = Envoy {
            child,
            http_port: self.http_port(),
            admin_port: self.admin_port(),
            config,
            _dir: dir,
        };
        envoy.wait_live()?;
        Ok(envoy)
    }

    /// Run Envoy's validate mode (which loads the wasm filter and its settings) and return
    /// its output if it refused the configuration; an error if it accepted it.
    pub fn refused(self) -> Result<String> {
        match validate(&self.rendered()?)? {
            (true, text) => bail!("envoy accepted the configuration:\n{text}"),
            (false, text) => Ok(text),
        }
    }
}

/// Run `envoy --mode validate` on a bootstrap's text: whether Envoy accepted it, and what it
/// said.
pub fn validate(text: &str) -> Result<(bool, String)> {
    let dir = tempfile::tempdir().context("create a temporary dir")?;
    let config = write_config(dir.path(), text)?;
    let log = dir.path().join("validate.log");
    let log_file = std::fs::File::create(&log).context("create the validate log")?;
    let mut child = Command::new(tools::envoy()?)
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .context("run envoy --mode validate")?;
    let waited = eventually_blocking(READY_DEADLINE, || child.try_wait().ok().flatten());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    match waited {
        Ok(status) => Ok((status.success(), text)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e.context(format!("envoy --mode validate did not finish\n{text}")))
        }
    }
}

fn write_config(dir: &Path, text: &str) -> Result<PathBuf> {
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// A running Envoy, killed on drop.
#[derive(Debug)]
pub struct Envoy {
    child: ChildGuard,
    http_port: u16,
    admin_port: u16,
    /// The configuration file Envoy was started with.
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Envoy {
    /// The HTTP listener's port on 127.0.0.1.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The admin port on 127.0.0.1.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// The configuration file Envoy was started with (it is never rewritten).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stop Envoy (SIGTERM, bounded) and start it again with the same configuration file and
    /// ports; wait until it is LIVE. Its certificates held over SDS are gone with the old
    /// process: the new one fetches them again.
    pub fn restart(&mut self) -> Result<()> {
        self.child.restart()?;
        self.wait_live()
    }

    /// Everything Envoy logged so far.
    pub fn log(&self) -> String {
        self.child.log()
    }

    /// One request to the HTTP listener.
    pub fn request(&self, method: &str, path: &str, authority: &str) -> Result<HttpResponse> {
        http(self.http_port, method, path, authority)
    }

    /// All counters and gauges of the admin `/stats` page.
    pub fn stats(&self) -> Result<BTreeMap<String, u64>> {
        let page = http(self.admin_port, "GET", "/stats", "127.0.0.1")?;
        if page.status != 200 {
            bail!("admin /stats answered {}", page.status);
        }
        Ok(parse_stats(&page.text()))
    }

    /// One counter's value; 0 when Envoy does not show it (yet).
    pub fn counter(&self, name: &str) -> Result<u64> {
        Ok(self.stats()?.get(name).copied().unwrap_or(0))
    }

    fn wait_live(&mut self) -> Result<()> {
        let admin = self.admin_port;
        let mut exited = None;
        let live = eventually_blocking(READY_DEADLINE, || {
            if let Err(e) = self.child.ensure_running() {
                exited = Some(e);
                return Some(false);
            }
            let ready = http(admin, "GET", "/ready", "127.0.0.1").ok()?;
            (ready.status == 200 && ready.text().trim() == "LIVE").then_some(true)
        });
        match (live, exited) {
            (_, Some(e)) => Err(e.context("envoy exited during start-up")),
            (Ok(_), None) => Ok(()),
            (Err(e), None) => Err(e.context(format!("envoy not LIVE\n{}", self.log()))),
        }
    }
}

/// `GET page`, then `GET /.well-known/acme-challenge/abc`, both for `authority` on the HTTP
/// listener at `port` (each with [`http`], off the async runtime's threads): what a listener
/// does with a page and with a challenge path, side by side.
pub async fn page_and_challenge(
    port: u16,
    page: &str,
    authority: &str,
) -> Result<(HttpResponse, HttpResponse)> {
    let (page, authority) = (page.to_owned(), authority.to_owned());
    tokio::task::spawn_blocking(move || {
        let page = http(port, "GET", &page, &authority)?;
        let challenge = http(port, "GET", "/.well-known/acme-challenge/abc", &authority)?;
        Ok((page, challenge))
    })
    .await?
}

/// `name: value` lines of `/stats`; histograms and other non-integer lines are skipped.
pub fn parse_stats(page: &str) -> BTreeMap<String, u64> {
    page.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(": ")?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// How many secrets the Envoy with its admin interface at `admin` holds: its active SDS
/// secrets, from its configuration dump (names only, so that it stays small at thousands).
pub async fn secrets_held(admin: SocketAddr) -> Result<usize> {
    let url = format!("http://{admin}/config_dump?resource=dynamic_active_secrets&mask=name");
    let body: serde_json::Value = reqwest::get(&url).await?.json().await?;
    let active = body.get("configs").and_then(|c| c.as_array());
    Ok(active.map_or(0, Vec::len))
}

/// A complete HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send one HTTP/1.1 request to `127.0.0.1:port` with exactly this method, path and `Host`
/// (`:authority`), on a fresh connection, and read the whole response.
pub fn http(port: u16, method: &str, path: &str, authority: &str) -> Result<HttpResponse> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&addr, IO_TIMEOUT).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let request =
        format!("{method} {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    // Read only up to the end of the response: waiting for the server to close costs Envoy's
    // delayed-close timeout (1 s) per request.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if is_complete(&raw, method == "HEAD") {
            break;
        }
        let n = stream
            .read(&mut chunk)
            .with_context(|| format!("read the response to {method} {path}"))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    parse_response(&raw, method == "HEAD")
}

/// True once `raw` holds a whole response (by `content-length`, chunked framing, or headers
/// alone for HEAD); a response framed by connection close is complete at EOF only.
fn is_complete(raw: &[u8], head: bool) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    if head {
        return true;
    }
    let head_text = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = &raw[split + 4..];
    for line in head_text.split("\r\n") {
        if let Some(len) = line.strip_prefix("content-length:") {
            return len
                .trim()
                .parse::<usize>()
                .is_ok_and(|len| body.len() >= len);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return body.ends_with(b"0\r\n\r\n");
        }
    }
    false
}

fn parse_response(raw: &[u8], head: bool) -> Result<HttpResponse> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("response has no end of headers")?;
    let head_text = std::str::from_utf8(&raw[..split]).context("response head is not UTF-8")?;
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = match (head, chunked) {
        (true, _) => rest.to_vec(),
        (false, true) => dechunk(rest)?,
        (false, false) => rest.to_vec(),
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunk size")?;
        let size_text = std::str::from_utf8(&raw[..eol])?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(raw.get(..size).context("truncated chunk")?);
        raw = raw.get(size + 2..).context("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_and_refuses_unfilled() {
        let t = "a: ${A}\nb: ${B} ${A}\n";
        assert_eq!(
            render(t, &vars(&[("A", "1"), ("B", "2"), ("C", "3")])).unwrap(),
            "a: 1\nb: 2 1\n"
        );
        let err = render(t, &vars(&[("C", "3")])).unwrap_err().to_string();
        assert!(err.contains("A, B"), "{err}");
        assert!(render("${A", &vars(&[("A", "1")])).is_err());
        assert_eq!(render("  # ${X}\n", &vars(&[])).unwrap(), "  # ${X}\n");
    }

    #[test]
    fn edge_renders_settings_and_without_filter() {
        let config = EnvoyConfig::edge(SocketAddr::from(([127, 0, 0, 1], 9)))
            .unwrap()
            .filter_settings("{\"on_miss\":\"pass\"}")
            .http_only()
            .unwrap();
        let text = config.rendered().unwrap();
        assert!(
            text.contains(r#"value: "{\"on_miss\":\"pass\"}""#),
            "{text}"
        );
        assert!(!text.contains("acme_sds"), "{text}");
        let base = config.without_filter().unwrap().rendered().unwrap();
        assert!(!base.contains("envoy.filters.http.wasm"));
        assert!(base.contains("envoy.filters.http.router"));
        let bad = EnvoyConfig::edge(SocketAddr::from(([127, 0, 0, 1], 9)))
            .unwrap()
            .filter_settings("[1]");
        assert!(bad.rendered().is_err());
    }

    #[test]
    fn parses_responses() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhi",
            false,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.header("content-type"), r.text().as_str()),
            (200, Some("text/plain"), "hi")
        );
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n1\r\n!\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.text(), "hi!");
        let stats = parse_stats("a.b: 3\nc: 4.5\nh: P0(nan,1)\nd: 0\n");
        let want: BTreeMap<String, u64> = [("a.b".to_string(), 3), ("d".to_string(), 0)].into();
        assert_eq!(stats, want);
    }
}
