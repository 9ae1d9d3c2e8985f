//! `[acme]`: the CA, the account, and how hard we may push the CA.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Secret;
use super::ca_limits::{CaLimits, CaLimitsSection};
use super::problems::{Problems, between, secs_between};
use crate::model::KeyType;

/// Default `acme.directory_url`: Let's Encrypt's production CA.
pub const DEFAULT_DIRECTORY_URL: &str = "letsencrypt";
pub use super::directories::{LETS_ENCRYPT_PRODUCTION, LETS_ENCRYPT_STAGING};
/// The shortcuts `acme.directory_url` accepts, and the directories they stand for.
pub const DIRECTORY_SHORTCUTS: [(&str, &str); 2] = [
    ("letsencrypt", LETS_ENCRYPT_PRODUCTION),
    ("letsencrypt-staging", LETS_ENCRYPT_STAGING),
];

/// Default `acme.key_type`: ECDSA P-256 gives small keys and fast handshakes, and every
/// client that matters today accepts it.
pub const DEFAULT_KEY_TYPE: KeyType = KeyType::EcdsaP256;

/// Default `acme.max_in_flight_orders`: cert-manager uses 60; 50 issues a large batch quickly
/// while keeping the CA's pending authorizations per account modest.
pub const DEFAULT_MAX_IN_FLIGHT_ORDERS: usize = 50;
/// Range of `acme.max_in_flight_orders`: beyond 1000, a CA's per-account limits fall over
/// long before we gain anything.
pub const MAX_IN_FLIGHT_ORDERS_RANGE: RangeInclusive<usize> = 1..=1000;

/// Default `acme.max_concurrent_requests`: orders mostly wait (validation, polling pauses),
/// so a few requests at a time keep a batch of 50 flowing, while a burst of enables queues
/// here rather than hitting the CA (and its per-IP request limits) all at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 8;
/// Range of `acme.max_concurrent_requests`: beyond 100 requests at once, more only meet the
/// CA's per-IP request limits sooner.
pub const MAX_CONCURRENT_REQUESTS_RANGE: RangeInclusive<usize> = 1..=100;

/// Default `acme.request_timeout_secs`: instant-acme sets no timeout, and a CA that stops
/// answering must fail the attempt (to be retried) rather than hang a job. 30 s is far above
/// a healthy CA's latency, even across continents.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Range of `acme.request_timeout_secs`: ten minutes at most, since an order waits that long
/// on each request to a CA that went silent before the attempt fails and is retried.
pub const REQUEST_TIMEOUT_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(600);

/// Default `acme.retry_base_secs`: the first retry delay, Let's Encrypt's guidance of one
/// minute; later ones are 10x, 100x, then daily (1440x) this (the backoff of the worker).
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(60);
/// Range of `acme.retry_base_secs`: a day at most: beyond, the daily step (1440x) would wait
/// years.
pub const RETRY_BASE_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(86_400);

/// Default `acme.order_budget`: Let's Encrypt allows 300 new orders per account per 3 hours;
/// 250 keeps a margin for orders placed by hand or by a replica racing this one
/// (the order budget).
pub const DEFAULT_ORDER_BUDGET: u32 = 250;
/// Least `acme.order_budget`: a budget of 0 would never order anything (to stop issuance,
/// disable the domains instead).
pub const MIN_ORDER_BUDGET: u32 = 1;
/// Default `acme.order_budget_window_secs`: Let's Encrypt's window, 3 hours.
pub const DEFAULT_ORDER_BUDGET_WINDOW: Duration = Duration::from_secs(3 * 3600);
/// Range of `acme.order_budget_window_secs`: a week at most, the longest window of Let's
/// Encrypt's rate limits.
pub const ORDER_BUDGET_WINDOW_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(7 * 86_400);

/// Default `acme.ari_check_interval_secs`: Let's Encrypt asks for an ARI check at least twice
/// a day.
pub const DEFAULT_ARI_CHECK_INTERVAL: Duration = Duration::from_secs(12 * 3600);
/// Range of `acme.ari_check_interval_secs`: under a minute hammers the CA for nothing; over a
/// day misses Let's Encrypt's guidance (check at least twice a day) by too much.
pub const ARI_CHECK_INTERVAL_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(60)..=Duration::from_secs(86_400);

/// `[acme]` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AcmeSection {
    /// Directory URL, or a shortcut ([`DIRECTORY_SHORTCUTS`]). Default
    /// [`DEFAULT_DIRECTORY_URL`].
    directory_url: Option<String>,
    /// Accept a plain `http://` directory URL (a test CA on the same host). Default: https
    /// only, since the account key and every order travel over this connection.
    allow_insecure_directory: Option<bool>,
    /// Contact e-mail addresses for the account (`mailto:` is added). Default: none.
    contact: Option<Vec<String>>,
    /// The operator has read and accepts the CA's terms of service; required.
    terms_agreed: Option<bool>,
    /// PEM file with the root that signs the CA's own HTTPS certificate (test CAs such as
    /// Pebble); the platform's roots when absent.
    ca_root_file: Option<PathBuf>,
    /// External Account Binding key id (CAs such as ZeroSSL, Google require one).
    eab_key_id: Option<String>,
    /// External Account Binding HMAC key, base64url as the CA hands it out.
    eab_hmac_key: Option<Secret<String>>,
    /// Key type for new certificates, unless a domain asks for another. Default
    /// [`DEFAULT_KEY_TYPE`].
    key_type: Option<KeyType>,
    /// Certificate profile to ask the CA for; the CA's default when absent.
    profile: Option<String>,
    /// Orders in flight with the CA at once. Default [`DEFAULT_MAX_IN_FLIGHT_ORDERS`].
    max_in_flight_orders: Option<usize>,
    /// Requests in flight to the CA at once, all orders together. Default
    /// [`DEFAULT_MAX_CONCURRENT_REQUESTS`].
    max_concurrent_requests: Option<usize>,
    /// Bound on every single request to the CA. Default [`DEFAULT_REQUEST_TIMEOUT`].
    request_timeout_secs: Option<u64>,
    /// First retry delay after a failure. Default [`DEFAULT_RETRY_BASE`].
    retry_base_secs: Option<u64>,
    /// New orders allowed per window, account-wide. Default [`DEFAULT_ORDER_BUDGET`].
    order_budget: Option<u32>,
    /// The order budget's sliding window. Default [`DEFAULT_ORDER_BUDGET_WINDOW`].
    order_budget_window_secs: Option<u64>,
    /// How often the renewal windows (ARI) of issued certificates are checked again
    /// (by the ARI walk). Default [`DEFAULT_ARI_CHECK_INTERVAL`].
    ari_check_interval_secs: Option<u64>,
}

/// `[acme]`: the CA and the account.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeConfig {
    /// `directory_url`, shortcuts resolved.
    pub directory_url: DirectoryUrl,
    /// `contact`: e-mail addresses, without `mailto:` ([`AcmeConfig::contact_urls`]).
    pub contact: Vec<String>,
    /// `ca_root_file`: a file that exists.
    pub ca_root_file: Option<PathBuf>,
    /// `eab_key_id` and `eab_hmac_key`, decoded.
    pub eab: Option<ExternalAccountBinding>,
    pub key_type: KeyType,
    pub profile: Option<String>,
    pub max_in_flight_orders: usize,
    pub max_concurrent_requests: usize,
    /// `request_timeout_secs`.
    pub request_timeout: Duration,
    /// `retry_base_secs`: the base of the retry backoff.
    pub retry_base: Duration,
    /// `order_budget` new orders per `order_budget_window_secs` (the order budget).
    pub order_budget: u32,
    pub order_budget_window: Duration,
    /// `ari_check_interval_secs`.
    pub ari_check_interval: Duration,
    /// `[acme.limits]`: the CA's rate limits, from a preset and overrides.
    pub limits: CaLimits,
}

/// The CA's directory: an absolute `http(s)` URL with a host. Kept as written, since the
/// store knows the account by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUrl(String);

impl DirectoryUrl {
    /// An https URL with a host (or http, when `allow_http`).
    fn parse(url: &str, allow_http: bool) -> Result<DirectoryUrl, &'static str> {
        let wrong = "must be an https URL, `letsencrypt` or `letsencrypt-staging`";
        let uri: http::Uri = url.parse().map_err(|_| wrong)?;
        let host = uri.host().is_some_and(|host| !host.is_empty());
        match uri.scheme_str() {
            Some("https") if host => Ok(DirectoryUrl(url.to_owned())),
            Some("http") if host && allow_http => Ok(DirectoryUrl(url.to_owned())),
            Some("http") if host => Err(
                "is plain http: the account key and every order would travel unprotected; use \
                 https (acme.allow_insecure_directory = true allows http for a test CA)",
            ),
            _ => Err(wrong),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DirectoryUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// External Account Binding: the key id and HMAC key a CA hands out with an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAccountBinding {
    pub key_id: String,
    pub hmac_key: Secret<Vec<u8>>,
}

impl AcmeConfig {
    /// Contacts as ACME wants them (`mailto:` URLs).
    pub fn contact_urls(&self) -> Vec<String> {
        self.contact.iter().map(|c| format!("mailto:{c}")).collect()
    }

    /// The section's values, defaults filled in; `None` when one of them is reported. Every
    /// key is checked before the first `None` ends it, so that all problems are reported.
    pub(super) fn from_section(
        mut s: AcmeSection,
        limits: CaLimitsSection,
        problems: &mut Problems,
    ) -> Option<AcmeConfig> {
        let directory_url = directory(
            s.directory_url.as_deref(),
            s.allow_insecure_directory.unwrap_or(false),
            s.terms_agreed,
            problems,
        );
        let limits = CaLimits::from_section(
            limits,
            directory_url.as_ref().map_or("", DirectoryUrl::as_str),
            problems,
        );
        let contact = contacts(s.contact.take().unwrap_or_default(), problems);
        let eab = external_account_binding(s.eab_key_id.take(), s.eab_hmac_key.take(), problems);
        let ca_root_file = ca_root_file(s.ca_root_file.take(), problems);
        let profile = profile(s.profile.take(), problems);
        let pace = Pace::check(&s, problems);
        let pace = pace?;
        let limits = limits?;
        if let Some(limit) = limits.new_orders
            && u128::from(pace.order_budget) * limit.window.as_millis()
                > u128::from(limit.count) * pace.order_budget_window.as_millis()
        {
            problems.push(
                "acme.order_budget",
                format!(
                    "{} orders per {} s is faster than the CA allows (acme.limits.new_orders: {} \
                     per {} s); lower it, or raise the limit with the CA's override",
                    pace.order_budget,
                    pace.order_budget_window.as_secs(),
                    limit.count,
                    limit.window.as_secs()
                ),
            );
            return None;
        }
        Some(AcmeConfig {
            directory_url: directory_url?,
            contact: contact?,
            ca_root_file: ca_root_file?,
            eab: eab?,
            key_type: s.key_type.unwrap_or(DEFAULT_KEY_TYPE),
            profile: profile?,
            max_in_flight_orders: pace.max_in_flight_orders,
            max_concurrent_requests: pace.max_concurrent_requests,
            request_timeout: pace.request_timeout,
            retry_base: pace.retry_base,
            order_budget: pace.order_budget,
            order_budget_window: pace.order_budget_window,
            ari_check_interval: pace.ari_check_interval,
            limits,
        })
    }
}

/// The CA's directory (`directory_url`, shortcuts resolved), once its terms are agreed to.
fn directory(
    written: Option<&str>,
    allow_http: bool,
    terms_agreed: Option<bool>,
    problems: &mut Problems,
) -> Option<DirectoryUrl> {
    let written = written.unwrap_or(DEFAULT_DIRECTORY_URL);
    let url = DIRECTORY_SHORTCUTS
        .iter()
        .find(|(shortcut, _)| *shortcut == written)
        .map_or(written, |(_, url)| url);
    let terms_agreed = problems.check(
        "acme.terms_agreed",
        match terms_agreed {
            Some(true) => Ok(()),
            _ => Err(format!(
                "must be true: read the terms of service of {url} and agree to them explicitly"
            )),
        },
    );
    let directory_url = problems.check("acme.directory_url", DirectoryUrl::parse(url, allow_http));
    terms_agreed.and(directory_url)
}

/// `contact`: every entry an e-mail address.
fn contacts(contact: Vec<String>, problems: &mut Problems) -> Option<Vec<String>> {
    let mut ok = true;
    for bad in contact.iter().filter(|c| !looks_like_email(c)) {
        problems.push("acme.contact", format!("{bad:?} is not an e-mail address"));
        ok = false;
    }
    ok.then_some(contact)
}

/// `eab_key_id` and `eab_hmac_key`: both or neither, the key decoded.
fn external_account_binding(
    key_id: Option<String>,
    hmac_key: Option<Secret<String>>,
    problems: &mut Problems,
) -> Option<Option<ExternalAccountBinding>> {
    let hmac_key = hmac_key.map(|key| {
        problems.check(
            "acme.eab_hmac_key",
            decode_eab_key(key.expose())
                .map(Secret::new)
                .ok_or("is not base64url"),
        )
    });
    match (key_id, hmac_key) {
        (None, None) => Some(None),
        (Some(key_id), Some(hmac_key)) => {
            hmac_key.map(|hmac_key| Some(ExternalAccountBinding { key_id, hmac_key }))
        }
        _ => {
            problems.push(
                "acme.eab_key_id",
                "eab_key_id and eab_hmac_key go together: set both or neither",
            );
            None
        }
    }
}

/// `ca_root_file`, when set: a file that is there.
fn ca_root_file(file: Option<PathBuf>, problems: &mut Problems) -> Option<Option<PathBuf>> {
    match file {
        Some(path) if !path.is_file() => {
            problems.push(
                "acme.ca_root_file",
                format!("{} is not a readable file", path.display()),
            );
            None
        }
        file => Some(file),
    }
}

/// `profile`, when set: a name the CA could list.
fn profile(profile: Option<String>, problems: &mut Problems) -> Option<Option<String>> {
    match profile {
        Some(profile) if !crate::model::is_profile_name(&profile) => {
            problems.push(
                "acme.profile",
                format!("must be {}", crate::model::profile::PROFILE_RULE),
            );
            None
        }
        profile => Some(profile),
    }
}

/// How fast and how much is asked of the CA: concurrency, timeouts, retries, the order
/// budget and the ARI walk, each within its range.
struct Pace {
    max_in_flight_orders: usize,
    max_concurrent_requests: usize,
    request_timeout: Duration,
    retry_base: Duration,
    order_budget: u32,
    order_budget_window: Duration,
    ari_check_interval: Duration,
}

impl Pace {
    /// The numeric keys of `s`, each checked against its range.
    fn check(k: &AcmeSection, problems: &mut Problems) -> Option<Pace> {
        let max_in_flight_orders = problems.check(
            "acme.max_in_flight_orders",
            between(
                k.max_in_flight_orders,
                DEFAULT_MAX_IN_FLIGHT_ORDERS,
                &MAX_IN_FLIGHT_ORDERS_RANGE,
            ),
        );
        let max_concurrent_requests = problems.check(
            "acme.max_concurrent_requests",
            between(
                k.max_concurrent_requests,
                DEFAULT_MAX_CONCURRENT_REQUESTS,
                &MAX_CONCURRENT_REQUESTS_RANGE,
            ),
        );
        let request_timeout = problems.check(
            "acme.request_timeout_secs",
            secs_between(
                k.request_timeout_secs,
                DEFAULT_REQUEST_TIMEOUT,
                &REQUEST_TIMEOUT_RANGE,
            ),
        );
        let retry_base = problems.check(
            "acme.retry_base_secs",
            secs_between(k.retry_base_secs, DEFAULT_RETRY_BASE, &RETRY_BASE_RANGE),
        );
        let order_budget = problems.check(
            "acme.order_budget",
            match k.order_budget.unwrap_or(DEFAULT_ORDER_BUDGET) {
                orders if orders < MIN_ORDER_BUDGET => {
                    Err(format!("must be at least {MIN_ORDER_BUDGET}"))
                }
                orders => Ok(orders),
            },
        );
        let order_budget_window = problems.check(
            "acme.order_budget_window_secs",
            secs_between(
                k.order_budget_window_secs,
                DEFAULT_ORDER_BUDGET_WINDOW,
                &ORDER_BUDGET_WINDOW_RANGE,
            )
            .map_err(|e| format!("{e} (a week)")),
        );
        let ari_check_interval = problems.check(
            "acme.ari_check_interval_secs",
            secs_between(
                k.ari_check_interval_secs,
                DEFAULT_ARI_CHECK_INTERVAL,
                &ARI_CHECK_INTERVAL_RANGE,
            ),
        );
        Some(Pace {
            max_in_flight_orders: max_in_flight_orders?,
            max_concurrent_requests: max_concurrent_requests?,
            request_timeout: request_timeout?,
            retry_base: retry_base?,
            order_budget: order_budget?,
            order_budget_window: order_budget_window?,
            ari_check_interval: ari_check_interval?,
        })
    }
}

/// Decode an EAB HMAC key: CAs hand them out base64url without padding; accept padding too.
fn decode_eab_key(key: &str) -> Option<Vec<u8>> {
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
