//! The service configuration: one TOML file plus environment overrides, parsed once at
//! start-up into [`Config`]. Every problem is reported, not just the first: unknown sections
//! and keys, wrong types, and values that make no sense together.
//!
//! Environment overrides: `ACME_EDGE_<SECTION>_<KEY>` (upper case) for every scalar key
//! listed in [`ENV_OVERRIDES`], e.g. `ACME_EDGE_ADMIN_TOKEN`, `ACME_EDGE_STORAGE_URL`,
//! `ACME_EDGE_ACME_DIRECTORY_URL`. A value from the environment wins over the file. List
//! values (`acme.contact`) take a comma-separated string.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::model::KeyType;

/// Let's Encrypt's production directory (`directory_url = "letsencrypt"`).
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`directory_url = "letsencrypt-staging"`): untrusted
/// certificates, generous rate limits; use it to try a set-up.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// Default `acme.max_in_flight_orders`: cert-manager uses 60; 50 issues a large batch quickly
/// while keeping the CA's pending authorizations per account modest.
pub const DEFAULT_MAX_IN_FLIGHT_ORDERS: usize = 50;
/// Default `acme.max_concurrent_requests`: orders mostly wait (validation, polling pauses),
/// so a few requests at a time keep a batch of 50 flowing, while a burst of enables queues
/// here rather than hitting the CA (and its per-IP request limits) all at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 8;
/// Upper bound of `acme.max_concurrent_requests`.
pub const MAX_CONCURRENT_REQUESTS_LIMIT: usize = 100;
/// Default `acme.request_timeout_secs`: instant-acme sets no timeout, and a CA that stops
/// answering must fail the attempt (to be retried) rather than hang a job. 30 s is far above
/// a healthy CA's latency, even across continents.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// Default `admin.listen`: loopback only, the API is for operators on the host.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8080";
/// Default `challenge.listen`: Envoy on the same host reaches it over loopback.
pub const DEFAULT_CHALLENGE_LISTEN: &str = "127.0.0.1:8081";
/// Default `sds.listen`.
pub const DEFAULT_SDS_LISTEN: &str = "127.0.0.1:8082";
/// Default `storage.url`: a SQLite file in the working directory.
pub const DEFAULT_STORAGE_URL: &str = "sqlite://acme-edge.db";
/// Default `storage.lease_secs`: how long a worker's claim on a domain lasts unless renewed.
/// The worker renews it every third of that while the order runs, so a replica must lose
/// the database for 20 s or more before another takes its domains over; a replica that died
/// mid-order delays its domains by at most 30 s. Orders take seconds, so nothing waits on it
/// in normal operation.
pub const DEFAULT_LEASE_SECS: u64 = 30;
/// Range of `storage.lease_secs`: below 2 s the heartbeat is a busy loop; above an hour a
/// dead replica's domains wait too long.
pub const LEASE_SECS_RANGE: std::ops::RangeInclusive<u64> = 2..=3600;
/// Name of the generated admin token file, next to the database, when `admin.token` and
/// `admin.token_file` are both absent.
pub const DEFAULT_TOKEN_FILE_NAME: &str = "admin-token";
/// Shortest admin token accepted: 16 characters leave brute force hopeless over HTTP.
pub const MIN_TOKEN_LEN: usize = 16;
/// Upper bound of `acme.max_in_flight_orders`: beyond this, a CA's per-account limits fall
/// over long before we gain anything.
pub const MAX_IN_FLIGHT_ORDERS_LIMIT: usize = 1000;
/// Default `acme.ari_check_interval_secs`: Let's Encrypt asks for an ARI check at least twice
/// a day.
pub const ARI_CHECK_INTERVAL: Duration = Duration::from_secs(12 * 3600);
/// Range of `acme.ari_check_interval_secs`: under a minute hammers the CA for nothing; over a
/// day misses Let's Encrypt's guidance (check at least twice a day) by too much.
pub const ARI_CHECK_INTERVAL_SECS_RANGE: std::ops::RangeInclusive<u64> = 60..=86_400;

/// `(section, key)` pairs settable from the environment as `ACME_EDGE_<SECTION>_<KEY>`.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("acme", "directory_url"),
    ("acme", "contact"),
    ("acme", "terms_agreed"),
    ("acme", "ca_root_file"),
    ("acme", "eab_key_id"),
    ("acme", "eab_hmac_key"),
    ("acme", "key_type"),
    ("acme", "profile"),
    ("acme", "max_in_flight_orders"),
    ("acme", "max_concurrent_requests"),
    ("acme", "request_timeout_secs"),
    ("acme", "retry_base_secs"),
    ("acme", "order_budget"),
    ("acme", "order_budget_window_secs"),
    ("acme", "ari_check_interval_secs"),
    ("storage", "url"),
    ("storage", "lease_secs"),
    ("admin", "listen"),
    ("admin", "token"),
    ("admin", "token_file"),
    ("admin", "metrics_require_token"),
    ("challenge", "listen"),
    ("sds", "listen"),
    ("sds", "tls_cert_file"),
    ("sds", "tls_key_file"),
    ("sds", "client_ca_file"),
];

/// The whole configuration, valid as a whole.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub acme: AcmeConfig,
    pub storage: StorageConfig,
    pub admin: AdminConfig,
    pub challenge: ChallengeConfig,
    pub sds: SdsConfig,
}

/// `[acme]`: the CA and the account.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// Directory URL, or `letsencrypt` / `letsencrypt-staging`. Resolved by
    /// [`AcmeConfig::directory`].
    pub directory_url: String,
    /// Contact e-mail addresses for the account (`mailto:` is added).
    pub contact: Vec<String>,
    /// The operator has read and accepts the CA's terms of service; required.
    pub terms_agreed: bool,
    /// PEM file with the root that signs the CA's own HTTPS certificate (test CAs such as
    /// Pebble); the platform's roots when absent.
    pub ca_root_file: Option<PathBuf>,
    /// External Account Binding key id (CAs such as ZeroSSL, Google require one).
    pub eab_key_id: Option<String>,
    /// External Account Binding HMAC key, base64url as the CA hands it out.
    pub eab_hmac_key: Option<String>,
    /// Key type for new certificates, unless a domain asks for another.
    pub key_type: KeyType,
    /// Certificate profile to ask the CA for (Let's Encrypt: `classic`, `tlsserver`,
    /// `shortlived`); the CA's default when absent.
    pub profile: Option<String>,
    /// Orders in flight with the CA at once.
    pub max_in_flight_orders: usize,
    /// Requests in flight to the CA at once, all orders together.
    pub max_concurrent_requests: usize,
    /// Bound on every single request to the CA, in seconds.
    pub request_timeout_secs: u64,
    /// First retry delay after a failure, in seconds; later ones are 10x, 100x, then daily
    /// (1440x) this ([`crate::schedule::Backoff`]). Default 60 (Let's Encrypt's guidance).
    pub retry_base_secs: u64,
    /// New orders allowed per window, account-wide ([`crate::budget`]). Default 250.
    pub order_budget: u32,
    /// The order budget's sliding window, in seconds. Default 3 hours.
    pub order_budget_window_secs: u64,
    /// How often the renewal windows (ARI) of issued certificates are checked again, in
    /// seconds ([`crate::ari_refresh`]). Default 12 hours.
    pub ari_check_interval_secs: u64,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            directory_url: "letsencrypt".into(),
            contact: Vec::new(),
            terms_agreed: false,
            ca_root_file: None,
            eab_key_id: None,
            eab_hmac_key: None,
            key_type: KeyType::default(),
            profile: None,
            max_in_flight_orders: DEFAULT_MAX_IN_FLIGHT_ORDERS,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            retry_base_secs: crate::schedule::DEFAULT_RETRY_BASE_SECS,
            order_budget: crate::budget::DEFAULT_ORDERS,
            order_budget_window_secs: crate::budget::DEFAULT_WINDOW_SECS,
            ari_check_interval_secs: ARI_CHECK_INTERVAL.as_secs(),
        }
    }
}

impl std::fmt::Debug for AcmeConfig {
    // The EAB HMAC key is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeConfig")
            .field("directory_url", &self.directory_url)
            .field("contact", &self.contact)
            .field("terms_agreed", &self.terms_agreed)
            .field("ca_root_file", &self.ca_root_file)
            .field("eab_key_id", &self.eab_key_id)
            .field("key_type", &self.key_type)
            .field("profile", &self.profile)
            .field("max_in_flight_orders", &self.max_in_flight_orders)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("retry_base_secs", &self.retry_base_secs)
            .field("order_budget", &self.order_budget)
            .field("order_budget_window_secs", &self.order_budget_window_secs)
            .field("ari_check_interval_secs", &self.ari_check_interval_secs)
            .finish_non_exhaustive()
    }
}

impl AcmeConfig {
    /// The directory URL, shortcuts resolved.
    pub fn directory(&self) -> &str {
        match self.directory_url.as_str() {
            "letsencrypt" => LETS_ENCRYPT_PRODUCTION,
            "letsencrypt-staging" => LETS_ENCRYPT_STAGING,
            url => url,
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// The retry backoff (`retry_base_secs`).
    pub fn backoff(&self) -> crate::schedule::Backoff {
        crate::schedule::Backoff {
            base: Duration::from_secs(self.retry_base_secs),
        }
    }

    /// The order budget (`order_budget` per `order_budget_window_secs`).
    pub fn order_budget(&self) -> crate::budget::OrderBudget {
        crate::budget::OrderBudget {
            orders: self.order_budget,
            window: Duration::from_secs(self.order_budget_window_secs),
        }
    }

    /// How often issued certificates' renewal windows are checked (`ari_check_interval_secs`).
    pub fn ari_check_interval(&self) -> Duration {
        Duration::from_secs(self.ari_check_interval_secs)
    }

    /// Contacts as ACME wants them (`mailto:` URLs).
    pub fn contact_urls(&self) -> Vec<String> {
        self.contact.iter().map(|c| format!("mailto:{c}")).collect()
    }
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://PATH` (relative paths from the working directory), or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` for a fleet of replicas.
    pub url: String,
    /// Seconds a worker's lease on a domain lasts unless renewed ([`DEFAULT_LEASE_SECS`]).
    pub lease_secs: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: DEFAULT_STORAGE_URL.into(),
            lease_secs: DEFAULT_LEASE_SECS,
        }
    }
}

impl StorageConfig {
    /// The SQLite file, when the URL is a SQLite one.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let path = self.url.strip_prefix("sqlite://")?;
        (!path.is_empty()).then(|| PathBuf::from(path))
    }

    /// The URL names a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| self.url.len() > scheme.len() && self.url.starts_with(scheme))
    }

    /// How long a worker's lease on a domain lasts unless renewed.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
}

/// `[admin]`: the operator API.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// The bearer token; see [`AdminConfig::token_file`] for the alternative.
    pub token: Option<String>,
    /// File holding the token; generated (mode 0600) when it does not exist. Default:
    /// `admin-token` next to the database.
    pub token_file: Option<PathBuf>,
    /// Require the token on `/metrics` too (off: Prometheus scrapers usually carry none).
    pub metrics_require_token: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: parse_default_addr(DEFAULT_ADMIN_LISTEN),
            token: None,
            token_file: None,
            metrics_require_token: false,
        }
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("metrics_require_token", &self.metrics_require_token)
            .finish()
    }
}

/// `[challenge]`: the lookup endpoint the Envoy filter calls.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChallengeConfig {
    pub listen: SocketAddr,
}

impl Default for ChallengeConfig {
    fn default() -> Self {
        ChallengeConfig {
            listen: parse_default_addr(DEFAULT_CHALLENGE_LISTEN),
        }
    }
}

/// `[sds]`: the Secret Discovery Service Envoy fetches certificates from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SdsConfig {
    pub listen: SocketAddr,
    /// Mutual TLS (all three or none): the listener's certificate chain (PEM) ...
    pub tls_cert_file: Option<PathBuf>,
    /// ... its private key (PEM) ...
    pub tls_key_file: Option<PathBuf>,
    /// ... and the CA (PEM) whose client certificates Envoys must present to get secrets.
    pub client_ca_file: Option<PathBuf>,
    /// What those three files hold, read and checked once when the configuration is parsed.
    #[serde(skip)]
    pub tls: Option<crate::sds::ServerTls>,
}

impl Default for SdsConfig {
    fn default() -> Self {
        SdsConfig {
            listen: parse_default_addr(DEFAULT_SDS_LISTEN),
            tls_cert_file: None,
            tls_key_file: None,
            client_ca_file: None,
            tls: None,
        }
    }
}

impl SdsConfig {
    /// The listener's mutual-TLS material, read from the files and checked (the chain and
    /// key parse and belong together, the CA parses); `None` without TLS keys. Every problem
    /// is reported under its key.
    fn load_tls(&self) -> Result<Option<crate::sds::ServerTls>, Vec<ConfigProblem>> {
        let files = [
            ("sds.tls_cert_file", &self.tls_cert_file),
            ("sds.tls_key_file", &self.tls_key_file),
            ("sds.client_ca_file", &self.client_ca_file),
        ];
        if files.iter().all(|(_, f)| f.is_none()) {
            return Ok(None);
        }
        let mut problems = Vec::new();
        for (key, file) in &files {
            if file.is_none() {
                problems.push(problem(
                    key,
                    "is required for mutual TLS: set sds.tls_cert_file, sds.tls_key_file and \
                     sds.client_ca_file together, or none of them",
                ));
            }
        }
        let (Some(cert), Some(key), Some(ca)) = (
            &self.tls_cert_file,
            &self.tls_key_file,
            &self.client_ca_file,
        ) else {
            return Err(problems);
        };
        let chain = pem_certificates("sds.tls_cert_file", cert, &mut problems);
        let private_key = pem_private_key("sds.tls_key_file", key, &mut problems);
        let roots = pem_certificates("sds.client_ca_file", ca, &mut problems);
        if let (Some((chain_pem, chain)), Some((key_pem, private_key)), Some((ca_pem, _))) =
            (chain, private_key, roots)
        {
            if let Err(e) = key_matches(chain, private_key) {
                problems.push(problem("sds.tls_key_file", e));
            } else if problems.is_empty() {
                return Ok(Some(crate::sds::ServerTls {
                    cert_pem: chain_pem,
                    key_pem,
                    client_ca_pem: ca_pem,
                }));
            }
        }
        Err(problems)
    }
}

type Pem<T> = Option<(String, T)>;

/// The file's text and the certificates in it (at least one).
fn pem_certificates(
    key: &str,
    path: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Pem<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let text = read_pem_file(key, path, problems)?;
    match CertificateDer::pem_slice_iter(text.as_bytes()).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => Some((text, certs)),
        Ok(_) => {
            problems.push(problem(
                key,
                format!("{}: no PEM certificate", path.display()),
            ));
            None
        }
        Err(e) => {
            problems.push(problem(key, format!("{}: {e}", path.display())));
            None
        }
    }
}

/// The file's text and the private key in it.
fn pem_private_key(
    key: &str,
    path: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Pem<rustls::pki_types::PrivateKeyDer<'static>> {
    use rustls::pki_types::{PrivateKeyDer, pem::PemObject};
    let text = read_pem_file(key, path, problems)?;
    match PrivateKeyDer::from_pem_slice(text.as_bytes()) {
        Ok(private_key) => Some((text, private_key)),
        Err(e) => {
            problems.push(problem(
                key,
                format!("{}: no usable PEM private key ({e})", path.display()),
            ));
            None
        }
    }
}

fn read_pem_file(key: &str, path: &Path, problems: &mut Vec<ConfigProblem>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) => {
            problems.push(problem(key, format!("{}: {e}", path.display())));
            None
        }
    }
}

/// The private key is the one the chain's first certificate was issued for.
fn key_matches(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    private_key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<(), String> {
    let provider = rustls::crypto::ring::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(private_key)
        .map_err(|e| format!("unusable private key: {e}"))?;
    rustls::sign::CertifiedKey::new(chain, signing_key)
        .keys_match()
        .map_err(|e| format!("does not belong to the certificate in sds.tls_cert_file ({e})"))
}

fn parse_default_addr(s: &str) -> SocketAddr {
    // The defaults are literals above, covered by `defaults_are_valid`.
    s.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key (`acme.terms_agreed`), or the file for syntax errors.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Everything wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problems):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Read `path`, apply the process environment, validate.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![problem(&path.display().to_string(), e.to_string())],
        })?;
        Config::parse(&text, |name| std::env::var(name).ok())
    }

    /// Parse TOML `text`, with `env` looking up overrides; report every problem.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
            problems: vec![problem("<toml>", e.message().to_owned())],
        })?;
        apply_env(&mut table, &env, &mut problems);
        let mut config = read_sections(table, &mut problems);
        validate(&config, &mut problems);
        match config.sds.load_tls() {
            Ok(tls) => config.sds.tls = tls,
            Err(tls) => problems.extend(tls),
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Where the admin token lives when it is not in the configuration itself.
    pub fn token_file(&self) -> PathBuf {
        if let Some(path) = &self.admin.token_file {
            return path.clone();
        }
        let dir = self
            .storage
            .sqlite_path()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        dir.join(DEFAULT_TOKEN_FILE_NAME)
    }
}

fn problem(key: &str, message: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        key: key.to_owned(),
        message: message.into(),
    }
}

fn env_name(section: &str, key: &str) -> String {
    format!("ACME_EDGE_{}_{}", section, key).to_ascii_uppercase()
}

fn apply_env(
    table: &mut toml::Table,
    env: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<ConfigProblem>,
) {
    for (section, key) in ENV_OVERRIDES {
        let name = env_name(section, key);
        let Some(raw) = env(&name) else { continue };
        let value = env_value(key, &raw);
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key.to_string(), value);
            }
            _ => problems.push(problem(
                section,
                format!("is not a table (while applying {name})"),
            )),
        }
    }
}

/// Environment values are strings; keys whose type is not a string are read as TOML values
/// (`true`, `50`), `contact` as a comma-separated list.
fn env_value(key: &str, raw: &str) -> toml::Value {
    match key {
        "contact" => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        "terms_agreed"
        | "metrics_require_token"
        | "max_in_flight_orders"
        | "max_concurrent_requests"
        | "request_timeout_secs"
        | "retry_base_secs"
        | "order_budget"
        | "order_budget_window_secs"
        | "ari_check_interval_secs"
        | "lease_secs" => scalar_from_str(raw),
        _ => toml::Value::String(raw.to_owned()),
    }
}

fn scalar_from_str(raw: &str) -> toml::Value {
    let raw = raw.trim();
    if let Ok(b) = raw.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    toml::Value::String(raw.to_owned())
}

fn read_sections(mut table: toml::Table, problems: &mut Vec<ConfigProblem>) -> Config {
    let config = Config {
        acme: read_section(&mut table, "acme", problems),
        storage: read_section(&mut table, "storage", problems),
        admin: read_section(&mut table, "admin", problems),
        challenge: read_section(&mut table, "challenge", problems),
        sds: read_section(&mut table, "sds", problems),
    };
    for unknown in table.keys() {
        problems.push(problem(unknown, "unknown section"));
    }
    config
}

/// Deserialize one section; when that fails, deserialize it key by key (every field has a
/// default) so that each bad key is reported on its own, with serde's own message.
fn read_section<T: DeserializeOwned + Default>(
    table: &mut toml::Table,
    name: &str,
    problems: &mut Vec<ConfigProblem>,
) -> T {
    let Some(value) = table.remove(name) else {
        return T::default();
    };
    let toml::Value::Table(section) = value else {
        problems.push(problem(name, "must be a table ([section])"));
        return T::default();
    };
    match T::deserialize(toml::Value::Table(section.clone())) {
        Ok(parsed) => parsed,
        Err(_) => {
            // Keep the good keys, so that their values are still validated below.
            let mut good = toml::Table::new();
            for (key, value) in section {
                let mut single = toml::Table::new();
                single.insert(key.clone(), value.clone());
                match T::deserialize(toml::Value::Table(single)) {
                    Ok(_) => {
                        good.insert(key, value);
                    }
                    Err(e) => problems.push(problem(&format!("{name}.{key}"), e.message().trim())),
                }
            }
            T::deserialize(toml::Value::Table(good)).unwrap_or_default()
        }
    }
}

fn validate(config: &Config, problems: &mut Vec<ConfigProblem>) {
    validate_acme(&config.acme, problems);
    validate_storage(&config.storage, problems);
    validate_admin(&config.admin, problems);
    validate_listeners(config, problems);
}

fn validate_acme(acme: &AcmeConfig, problems: &mut Vec<ConfigProblem>) {
    if !acme.terms_agreed {
        problems.push(problem(
            "acme.terms_agreed",
            format!(
                "must be true: read the terms of service of {} and agree to them explicitly",
                acme.directory()
            ),
        ));
    }
    let url = acme.directory();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        problems.push(problem(
            "acme.directory_url",
            "must be an http(s) URL, `letsencrypt` or `letsencrypt-staging`",
        ));
    }
    for contact in &acme.contact {
        if !looks_like_email(contact) {
            problems.push(problem(
                "acme.contact",
                format!("{contact:?} is not an e-mail address"),
            ));
        }
    }
    if acme.eab_key_id.is_some() != acme.eab_hmac_key.is_some() {
        problems.push(problem(
            "acme.eab_key_id",
            "eab_key_id and eab_hmac_key go together: set both or neither",
        ));
    }
    if let Some(key) = &acme.eab_hmac_key
        && decode_eab_key(key).is_none()
    {
        problems.push(problem("acme.eab_hmac_key", "is not base64url"));
    }
    if let Some(path) = &acme.ca_root_file
        && !path.is_file()
    {
        problems.push(problem(
            "acme.ca_root_file",
            format!("{} is not a readable file", path.display()),
        ));
    }
    if !(1..=MAX_IN_FLIGHT_ORDERS_LIMIT).contains(&acme.max_in_flight_orders) {
        problems.push(problem(
            "acme.max_in_flight_orders",
            format!("must be between 1 and {MAX_IN_FLIGHT_ORDERS_LIMIT}"),
        ));
    }
    if let Some(profile) = &acme.profile
        && !is_profile_name(profile)
    {
        problems.push(problem(
            "acme.profile",
            "must be a profile name the CA lists: 1 to 64 letters, digits, '.', '_' or '-'",
        ));
    }
    if !(1..=MAX_CONCURRENT_REQUESTS_LIMIT).contains(&acme.max_concurrent_requests) {
        problems.push(problem(
            "acme.max_concurrent_requests",
            format!("must be between 1 and {MAX_CONCURRENT_REQUESTS_LIMIT}"),
        ));
    }
    if !(1..=600).contains(&acme.request_timeout_secs) {
        problems.push(problem(
            "acme.request_timeout_secs",
            "must be between 1 and 600",
        ));
    }
    // A day at most: beyond, the daily step (1440x) would wait years.
    if !(1..=86_400).contains(&acme.retry_base_secs) {
        problems.push(problem(
            "acme.retry_base_secs",
            "must be between 1 and 86400",
        ));
    }
    if acme.order_budget == 0 {
        problems.push(problem("acme.order_budget", "must be at least 1"));
    }
    if !(1..=7 * 86_400).contains(&acme.order_budget_window_secs) {
        problems.push(problem(
            "acme.order_budget_window_secs",
            "must be between 1 and 604800 (a week)",
        ));
    }
    if !ARI_CHECK_INTERVAL_SECS_RANGE.contains(&acme.ari_check_interval_secs) {
        problems.push(problem(
            "acme.ari_check_interval_secs",
            format!(
                "must be between {} and {}",
                ARI_CHECK_INTERVAL_SECS_RANGE.start(),
                ARI_CHECK_INTERVAL_SECS_RANGE.end()
            ),
        ));
    }
}

/// Decode an EAB HMAC key: CAs hand them out base64url without padding; accept padding too.
pub fn decode_eab_key(key: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bytes = URL_SAFE_NO_PAD
        .decode(key.trim().trim_end_matches('='))
        .ok()?;
    (!bytes.is_empty()).then_some(bytes)
}

fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !s.contains(|c: char| c.is_whitespace() || c == ',' || c == ':')
        }
        None => false,
    }
}

fn is_profile_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn validate_storage(storage: &StorageConfig, problems: &mut Vec<ConfigProblem>) {
    if storage.sqlite_path().is_none() && !storage.is_postgres() {
        problems.push(problem(
            "storage.url",
            "must be sqlite://PATH or postgres://USER@HOST:PORT/DATABASE",
        ));
    }
    if !LEASE_SECS_RANGE.contains(&storage.lease_secs) {
        problems.push(problem(
            "storage.lease_secs",
            format!(
                "must be between {} and {}",
                LEASE_SECS_RANGE.start(),
                LEASE_SECS_RANGE.end()
            ),
        ));
    }
}

fn validate_admin(admin: &AdminConfig, problems: &mut Vec<ConfigProblem>) {
    if let Some(token) = &admin.token {
        if admin.token_file.is_some() {
            problems.push(problem(
                "admin.token",
                "set admin.token or admin.token_file, not both",
            ));
        }
        if token.trim().len() < MIN_TOKEN_LEN {
            problems.push(problem(
                "admin.token",
                format!("must be at least {MIN_TOKEN_LEN} characters"),
            ));
        }
    }
}

fn validate_listeners(config: &Config, problems: &mut Vec<ConfigProblem>) {
    let listeners = [
        ("admin.listen", config.admin.listen),
        ("challenge.listen", config.challenge.listen),
        ("sds.listen", config.sds.listen),
    ];
    for (i, (key, addr)) in listeners.iter().enumerate() {
        for (other, other_addr) in &listeners[..i] {
            if addr == other_addr && addr.port() != 0 {
                problems.push(problem(key, format!("same address as {other} ({addr})")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn keys(err: ConfigError) -> Vec<String> {
        err.problems.into_iter().map(|p| p.key).collect()
    }

    const MINIMAL: &str = "[acme]\nterms_agreed = true\n";

    #[test]
    fn defaults_are_valid() {
        let c = Config::parse(MINIMAL, no_env).unwrap();
        assert_eq!(c.acme.directory(), LETS_ENCRYPT_PRODUCTION);
        assert_eq!(c.acme.max_in_flight_orders, DEFAULT_MAX_IN_FLIGHT_ORDERS);
        assert_eq!(c.admin.listen.to_string(), DEFAULT_ADMIN_LISTEN);
        assert_eq!(c.challenge.listen.to_string(), DEFAULT_CHALLENGE_LISTEN);
        assert_eq!(c.sds.listen.to_string(), DEFAULT_SDS_LISTEN);
        assert_eq!(c.storage.sqlite_path(), Some(PathBuf::from("acme-edge.db")));
        assert_eq!(c.token_file(), PathBuf::from("admin-token"));
    }

    #[test]
    fn postgres_storage_and_lease() {
        let text = format!(
            "{MINIMAL}[storage]\nurl = \"postgres://acme@db.internal:5432/acme\"\nlease_secs = 10\n"
        );
        let c = Config::parse(&text, no_env).unwrap();
        assert!(c.storage.is_postgres());
        assert_eq!(c.storage.sqlite_path(), None);
        assert_eq!(c.storage.lease(), Duration::from_secs(10));
        assert_eq!(
            Config::parse(MINIMAL, no_env).unwrap().storage.lease(),
            Duration::from_secs(DEFAULT_LEASE_SECS)
        );
        let env = |name: &str| (name == "ACME_EDGE_STORAGE_LEASE_SECS").then(|| "1".to_owned());
        assert_eq!(
            keys(Config::parse(MINIMAL, env).unwrap_err()),
            ["storage.lease_secs"],
            "below the range, from the environment too"
        );
        let bad = format!("{MINIMAL}[storage]\nurl = \"postgres://\"\n");
        assert_eq!(
            keys(Config::parse(&bad, no_env).unwrap_err()),
            ["storage.url"]
        );
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../acme-edge.example.toml");
        let c = Config::parse(text, no_env).unwrap();
        assert_eq!(c.acme.directory(), LETS_ENCRYPT_STAGING);
        assert!(c.acme.terms_agreed);
    }

    #[test]
    fn refuses_without_terms() {
        assert_eq!(
            keys(Config::parse("", no_env).unwrap_err()),
            ["acme.terms_agreed"]
        );
    }

    #[test]
    fn reports_every_problem() {
        let text = r#"
            [acme]
            terms_agreed = "yes"
            directory_urll = "x"
            max_in_flight_orders = 0
            key_type = "dsa"
            contact = ["not-an-address"]
            eab_key_id = "kid"
            [storage]
            url = "mysql://x"
            [admin]
            listen = "nowhere"
            token = "short"
            [challenge]
            listen = "127.0.0.1:9000"
            [sds]
            listen = "127.0.0.1:9000"
            [extra]
        "#;
        let mut got = keys(Config::parse(text, no_env).unwrap_err());
        got.sort();
        let mut want = vec![
            "acme.terms_agreed",
            "acme.directory_urll",
            "acme.key_type",
            "acme.terms_agreed",
            "acme.max_in_flight_orders",
            "acme.contact",
            "acme.eab_key_id",
            "storage.url",
            "admin.listen",
            "admin.token",
            "sds.listen",
            "extra",
        ];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn semantic_problems_all_reported() {
        let text = r#"
            [acme]
            terms_agreed = true
            max_in_flight_orders = 0
            max_concurrent_requests = 101
            profile = "short lived"
            request_timeout_secs = 0
            contact = ["not-an-address", "ops@example.com"]
            eab_key_id = "kid"
            ca_root_file = "/nonexistent/root.pem"
            [admin]
            token = "short"
        "#;
        let mut got = keys(Config::parse(text, no_env).unwrap_err());
        got.sort();
        assert_eq!(
            got,
            [
                "acme.ca_root_file",
                "acme.contact",
                "acme.eab_key_id",
                "acme.max_concurrent_requests",
                "acme.max_in_flight_orders",
                "acme.profile",
                "acme.request_timeout_secs",
                "admin.token",
            ]
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = |name: &str| match name {
            "ACME_EDGE_ADMIN_TOKEN" => Some("0123456789abcdef-from-env".to_owned()),
            "ACME_EDGE_STORAGE_URL" => Some("sqlite:///var/lib/acme-edge/db.sqlite".to_owned()),
            "ACME_EDGE_ACME_TERMS_AGREED" => Some("true".to_owned()),
            "ACME_EDGE_ACME_MAX_IN_FLIGHT_ORDERS" => Some("7".to_owned()),
            "ACME_EDGE_ACME_MAX_CONCURRENT_REQUESTS" => Some("3".to_owned()),
            "ACME_EDGE_ACME_CONTACT" => Some("a@example.com, b@example.com".to_owned()),
            _ => None,
        };
        let c = Config::parse("[acme]\nterms_agreed = false\n", env).unwrap();
        assert_eq!(c.admin.token.as_deref(), Some("0123456789abcdef-from-env"));
        assert_eq!(c.acme.max_in_flight_orders, 7);
        assert_eq!(c.acme.max_concurrent_requests, 3);
        assert_eq!(c.acme.contact, ["a@example.com", "b@example.com"]);
        assert_eq!(
            c.token_file(),
            PathBuf::from("/var/lib/acme-edge/admin-token")
        );
    }

    #[test]
    fn bad_environment_value_is_reported_under_its_key() {
        let env =
            |name: &str| (name == "ACME_EDGE_ACME_MAX_IN_FLIGHT_ORDERS").then(|| "many".to_owned());
        assert_eq!(
            keys(Config::parse(MINIMAL, env).unwrap_err()),
            ["acme.max_in_flight_orders"]
        );
    }

    #[test]
    fn ari_check_interval_defaults_to_twelve_hours_and_is_range_checked() {
        let c = Config::parse(MINIMAL, no_env).unwrap();
        assert_eq!(c.acme.ari_check_interval(), Duration::from_secs(12 * 3600));
        let text = format!("{MINIMAL}\nari_check_interval_secs = 59\n");
        assert_eq!(
            keys(Config::parse(&text, no_env).unwrap_err()),
            ["acme.ari_check_interval_secs"]
        );
        let env = |name: &str| {
            (name == "ACME_EDGE_ACME_ARI_CHECK_INTERVAL_SECS").then(|| "3600".to_owned())
        };
        assert_eq!(
            Config::parse(MINIMAL, env)
                .unwrap()
                .acme
                .ari_check_interval_secs,
            3600
        );
        let env = |name: &str| {
            (name == "ACME_EDGE_ACME_ARI_CHECK_INTERVAL_SECS").then(|| "86401".to_owned())
        };
        assert_eq!(
            keys(Config::parse(MINIMAL, env).unwrap_err()),
            ["acme.ari_check_interval_secs"]
        );
    }

    #[test]
    fn syntax_error_is_reported() {
        assert_eq!(
            keys(Config::parse("[acme", no_env).unwrap_err()),
            ["<toml>"]
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Config::parse(
            "[acme]\nterms_agreed = true\neab_key_id = \"k\"\neab_hmac_key = \"c2VjcmV0\"\n[admin]\ntoken = \"0123456789abcdefSECRET\"\n",
            no_env,
        )
        .unwrap();
        let text = format!("{c:?}");
        assert!(
            !text.contains("SECRET") && !text.contains("c2VjcmV0"),
            "{text}"
        );
    }

    /// A CA, a server chain and key signed by it, and an unrelated key, as PEM files.
    fn sds_tls_files(dir: &Path) -> [PathBuf; 4] {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["sds.internal".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let files = ["server.crt", "server.key", "ca.crt", "other.key"].map(|f| dir.join(f));
        let texts = [
            leaf.pem(),
            key.serialize_pem(),
            ca_cert.pem(),
            other.serialize_pem(),
        ];
        for (file, text) in files.iter().zip(texts) {
            std::fs::write(file, text).unwrap();
        }
        files
    }

    fn with_sds_tls(cert: &Path, key: &Path, ca: &Path) -> String {
        format!(
            "{MINIMAL}[sds]\ntls_cert_file = {:?}\ntls_key_file = {:?}\nclient_ca_file = {:?}\n",
            cert.display().to_string(),
            key.display().to_string(),
            ca.display().to_string()
        )
    }

    #[test]
    fn sds_mutual_tls_files_are_loaded_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let [cert, key, ca, other_key] = sds_tls_files(dir.path());

        let c = Config::parse(&with_sds_tls(&cert, &key, &ca), no_env).unwrap();
        let tls = c.sds.tls.as_ref().unwrap();
        assert!(tls.cert_pem.contains("BEGIN CERTIFICATE"));
        assert!(tls.client_ca_pem.contains("BEGIN CERTIFICATE"));
        assert_eq!(Config::parse(MINIMAL, no_env).unwrap().sds.tls, None);

        // A key that is not the certificate's.
        let text = with_sds_tls(&cert, &other_key, &ca);
        assert_eq!(
            keys(Config::parse(&text, no_env).unwrap_err()),
            ["sds.tls_key_file"]
        );
        // Not PEM at all, and a missing file: each under its own key.
        let text = with_sds_tls(&key, &key, &dir.path().join("missing.crt"));
        let mut got = keys(Config::parse(&text, no_env).unwrap_err());
        got.sort();
        assert_eq!(got, ["sds.client_ca_file", "sds.tls_cert_file"]);
    }

    #[test]
    fn sds_mutual_tls_needs_all_three_files() {
        let dir = tempfile::tempdir().unwrap();
        let [cert, ..] = sds_tls_files(dir.path());
        let text = format!(
            "{MINIMAL}[sds]\ntls_cert_file = {:?}\n",
            cert.display().to_string()
        );
        let mut got = keys(Config::parse(&text, no_env).unwrap_err());
        got.sort();
        assert_eq!(got, ["sds.client_ca_file", "sds.tls_key_file"]);
    }
}
