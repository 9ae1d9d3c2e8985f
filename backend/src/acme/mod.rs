//! Talking to the ACME CA: the account, and one order from "new" to a stored certificate.
//!
//! # The seam
//!
//! The issuance worker and the ARI walk see the CA only through [`CertificateAuthority`]:
//! have an account, issue (or resume) an order for a name, and fetch a certificate's renewal
//! window. [`Issuer`] implements it over ACME
//! (instant-acme); the policies on the other side of it (order budget, leases, backoff,
//! Retry-After, drain, ARI windows) are tested in-process against a scriptable fake
//! (`acme::fake`, test code only), and the real protocol against Pebble in `tests/`.
//!
//! Every request to the CA is bounded by `acme.request_timeout_secs` (instant-acme has no
//! timeout of its own), and polling is bounded in total, so a CA that stops answering fails
//! the attempt instead of hanging a job.
//!
//! # Layout
//!
//! - [`account`]: one account per CA directory, created on first use and kept in the store.
//! - [`order`]: new order (or the open one resumed), HTTP-01 challenge (stored before the
//!   CA is told it is ready), polling, CSR, chain download.
//! - [`ari`]: ACME Renewal Information (RFC 9773): the CA's suggested renewal window.
//! - [`keys`]: fresh certificate keys (ECDSA P-256/P-384, RSA 2048/3072/4096).
//! - [`http`]: the HTTP client under instant-acme, which keeps the CA's `Retry-After`.

/// Rounds of a request the CA keeps answering with `badNonce` (RFC 8555 §6.5: retry with
/// the nonce from the error). instant-acme already tries each request three times with the
/// fresh nonce; this many rounds of that make 12 tries, so that even a CA refusing 30 % of
/// nonces fails a request this way about once in two million.
pub const BAD_NONCE_ROUNDS: u32 = 4;

/// [`bounded`] request, made again while the CA refuses its nonce, up to
/// [`BAD_NONCE_ROUNDS`] rounds. The request expression is evaluated anew each round (a
/// refused request did nothing at the CA, so sending it again is safe).
macro_rules! retrying_bad_nonce {
    ($limit:expr, $step:expr, $request:expr) => {{
        let mut round = 1;
        loop {
            match $crate::acme::bounded($limit, $step, $request).await {
                Err(e) if e.is_bad_nonce() && round < $crate::acme::BAD_NONCE_ROUNDS => {
                    tracing::debug!(step = $step, round, "the CA refused our nonce; again");
                    round += 1;
                }
                other => break other,
            }
        }
    }};
}

pub mod account;
pub mod ari;
#[cfg(test)]
pub(crate) mod fake;
pub mod health;
pub mod http;
pub mod keys;
pub mod order;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use instant_acme::Problem;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::config::AcmeConfig;
use crate::model::{FailureClass, LastError};
use crate::store::{Claim, IssuedCertificate, Store, StoreError, StoredCertificate};

pub use account::AccountSettings;

/// Why an issuance attempt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    #[error("the CA did not answer within {limit:?} ({step})")]
    Timeout { step: &'static str, limit: Duration },
    #[error("{step}: {problem}")]
    Problem {
        step: &'static str,
        problem: Box<Problem>,
    },
    #[error("the order became invalid: {detail}")]
    OrderInvalid {
        detail: String,
        problem: Option<Box<Problem>>,
        /// The challenge had been told ready by a worker that stopped before it could be
        /// sure its token was answered: the failure may be ours, not the domain's.
        unanswered: bool,
    },
    #[error("{step}: {source}")]
    Client {
        step: &'static str,
        #[source]
        source: instant_acme::Error,
    },
    #[error("the CA does not offer the certificate profile {profile:?} (acme.profile); it offers: {}", offered_list(.offered))]
    ProfileNotOffered {
        profile: String,
        offered: Vec<String>,
    },
    #[error("the CA offered no http-01 challenge for {0}")]
    NoHttp01Challenge(String),
    #[error("the certificate from the CA is unusable: {0}")]
    BadCertificate(String),
    #[error("account: {0}")]
    Account(String),
    #[error("key: {0}")]
    Key(#[from] keys::KeyError),
    #[error("CSR: {0}")]
    Csr(#[from] rcgen::Error),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("the lease on {0} was lost (disabled or taken over meanwhile)")]
    LeaseLost(String),
}

fn offered_list(offered: &[String]) -> String {
    if offered.is_empty() {
        "none (no profiles in its directory)".to_owned()
    } else {
        offered.join(", ")
    }
}

impl AcmeError {
    /// Stable reason for metrics and [`LastError::reason`]; each reason belongs to one
    /// [`FailureClass`] ([`AcmeError::class`]).
    pub fn reason(&self) -> &'static str {
        if self.validation_fix().is_some() {
            return "validation_failed";
        }
        match self {
            AcmeError::Timeout { .. } => "timeout",
            AcmeError::Problem { problem, .. } => problem_reason(problem),
            AcmeError::OrderInvalid { problem, .. } => match problem.as_deref() {
                Some(p) if is_server_side(p) => "ca_error",
                Some(p) if has_type(p, "rejectedIdentifier") => "rejected_identifier",
                _ if self.is_ours() => "challenge_unanswered",
                _ => "order_invalid",
            },
            AcmeError::Client { .. } => "network",
            AcmeError::ProfileNotOffered { .. } => "profile_not_offered",
            AcmeError::NoHttp01Challenge(_) => "no_http01_challenge",
            AcmeError::BadCertificate(_) => "bad_certificate",
            AcmeError::Account(_) => "account",
            AcmeError::Key(_) | AcmeError::Csr(_) | AcmeError::Store(_) => "internal",
            AcmeError::LeaseLost(_) => "lease_lost",
        }
    }

    /// Whose failure this is ([`FailureClass`]): the domain's climb its retry ladder, the
    /// CA's and ours are retried soon and not counted as the domain's attempts.
    pub fn class(&self) -> FailureClass {
        if self.is_ours() {
            return FailureClass::Ours;
        }
        if self.validation_fix().is_some() {
            return FailureClass::Domain;
        }
        match self {
            AcmeError::Timeout { .. }
            | AcmeError::Client { .. }
            | AcmeError::BadCertificate(_)
            | AcmeError::Account(_) => FailureClass::Ca,
            AcmeError::Problem { problem, .. } if is_transient(problem) => FailureClass::Ca,
            AcmeError::Problem { .. } if self.account_unknown() => FailureClass::Ca,
            AcmeError::OrderInvalid {
                problem: Some(p), ..
            } if is_server_side(p) => FailureClass::Ca,
            AcmeError::Key(_)
            | AcmeError::Csr(_)
            | AcmeError::Store(_)
            | AcmeError::LeaseLost(_) => FailureClass::Ours,
            _ => FailureClass::Domain,
        }
    }

    /// The CA (or the path to it) looks down: it did not answer, the connection failed, or
    /// it answered with a server error. What trips the CA health breaker
    /// ([`health::CaHealth`]); rate limits and bad nonces do not (the CA is up).
    pub fn ca_unavailable(&self) -> bool {
        match self {
            AcmeError::Timeout { .. } | AcmeError::Client { .. } | AcmeError::Account(_) => true,
            AcmeError::Problem { problem, .. } => is_server_side(problem),
            _ => false,
        }
    }

    /// A validation that failed while the challenge was not ours to answer: the order was
    /// told "ready" by a worker that then stopped, and the CA validated before this one
    /// published the token again.
    fn is_ours(&self) -> bool {
        matches!(
            self,
            AcmeError::OrderInvalid {
                unanswered: true,
                ..
            }
        )
    }

    /// The CA's problem document, whole, when there is one.
    pub fn problem(&self) -> Option<serde_json::Value> {
        match self {
            AcmeError::Problem { problem, .. } => Some(problem_json(problem)),
            AcmeError::OrderInvalid { problem, .. } => problem.as_deref().map(problem_json),
            AcmeError::Client {
                source: instant_acme::Error::Api(problem),
                ..
            } => Some(problem_json(problem)),
            _ => None,
        }
    }

    /// When the CA asked us to come back, when the error itself says so (instant-acme's
    /// polling timeout); `Retry-After` headers come through [`Failure::retry_after`].
    pub fn retry_hint(&self) -> Option<OffsetDateTime> {
        match self {
            AcmeError::Client {
                source: instant_acme::Error::Timeout(Some(at)),
                ..
            } => {
                let wait = at.saturating_duration_since(std::time::Instant::now());
                Some(OffsetDateTime::now_utc() + wait)
            }
            _ => None,
        }
    }

    /// The CA refused the request's nonce (even after instant-acme's own retries).
    pub fn is_bad_nonce(&self) -> bool {
        matches!(self, AcmeError::Problem { problem, .. } if has_type(problem, "badNonce"))
    }

    /// The CA says our account does not exist.
    pub fn account_unknown(&self) -> bool {
        self.problem()
            .is_some_and(|p| p["type"] == "urn:ietf:params:acme:error:accountDoesNotExist")
    }

    /// What operators see in the domain's `last_error`: for validation failures, what to fix
    /// first, then the CA's words.
    pub fn to_last_error(&self) -> LastError {
        let message = match self.validation_fix() {
            Some(fix) => format!("{fix} (CA: {self})"),
            None => self.to_string(),
        };
        LastError {
            reason: self.reason().to_owned(),
            message,
            problem: self.problem(),
            class: self.class(),
        }
    }

    /// The CA could not validate the challenge for a reason that repeats until the operator
    /// acts (RFC 8555 §6.7 problem types): what to fix. Such failures count against the CA's
    /// failed-validation limit, so they are retried with backoff only.
    pub fn validation_fix(&self) -> Option<&'static str> {
        let problem = match self {
            AcmeError::OrderInvalid { problem, .. } => problem.as_deref()?,
            _ => return None,
        };
        let kinds = std::iter::once(problem.r#type.as_deref())
            .chain(problem.subproblems.iter().map(|s| s.r#type.as_deref()));
        kinds.flatten().find_map(validation_hint)
    }

    fn client(step: &'static str, source: instant_acme::Error) -> AcmeError {
        match source {
            instant_acme::Error::Api(problem) => AcmeError::Problem {
                step,
                problem: Box::new(problem),
            },
            source => AcmeError::Client { step, source },
        }
    }
}

/// What to fix for a validation problem type, or `None` when the type is not one.
fn validation_hint(problem_type: &str) -> Option<&'static str> {
    let kind = problem_type.strip_prefix("urn:ietf:params:acme:error:")?;
    Some(match kind {
        "dns" => {
            "validation failed: the CA could not resolve the name; point its DNS (A/AAAA) \
             records at the platform's proxies"
        }
        "connection" => {
            "validation failed: the CA could not connect to the name on port 80; check that \
             its DNS points at the platform and that port 80 reaches the proxies"
        }
        "unauthorized" | "incorrectResponse" => {
            "validation failed: the challenge answer at \
             /.well-known/acme-challenge/ was missing or wrong; check that the name's DNS \
             points at this platform (not another server) and that the proxies route the \
             challenge path to acme-edge"
        }
        "tls" => {
            "validation failed: the CA's request was redirected to HTTPS and the TLS \
             handshake failed; check the name's DNS and redirects"
        }
        "caa" => {
            "validation failed: the name's CAA DNS records forbid this CA; add a CAA record \
             allowing it"
        }
        _ => return None,
    })
}

fn is_rate_limit(problem: &Problem) -> bool {
    has_type(problem, "rateLimited")
}

/// The problem is of the ACME type `kind` (RFC 8555 §6.7, without the URN prefix).
fn has_type(problem: &Problem, kind: &str) -> bool {
    problem
        .r#type
        .as_deref()
        .and_then(|t| t.strip_prefix("urn:ietf:params:acme:error:"))
        == Some(kind)
}

/// The CA failed on its side: an HTTP 5xx or `serverInternal`.
fn is_server_side(problem: &Problem) -> bool {
    problem.status.is_some_and(|s| s >= 500) || has_type(problem, "serverInternal")
}

/// A problem that says "not now" rather than "never": the CA's side failed, a bad nonce
/// (after the retries), a rate limit.
pub(crate) fn is_transient(problem: &Problem) -> bool {
    is_server_side(problem) || has_type(problem, "badNonce") || is_rate_limit(problem)
}

fn problem_reason(problem: &Problem) -> &'static str {
    if is_rate_limit(problem) {
        "rate_limited"
    } else if has_type(problem, "badNonce") {
        "bad_nonce"
    } else if is_server_side(problem) {
        "ca_error"
    } else if has_type(problem, "rejectedIdentifier") || has_type(problem, "unsupportedIdentifier")
    {
        "rejected_identifier"
    } else {
        "ca_problem"
    }
}

/// A failed attempt, and when the CA asked us to come back, if it did.
#[derive(Debug)]
pub struct Failure {
    /// Why: its [`AcmeError::reason`] and the CA's [`AcmeError::problem`].
    pub error: AcmeError,
    pub retry_after: Option<OffsetDateTime>,
}

/// What the issuance worker and the ARI walk need from a certificate authority (see the
/// module docs). Implementations bound every request to the CA themselves: a call that hangs
/// is cut only by the caller's lease or shutdown.
#[async_trait]
pub trait CertificateAuthority: Send + Sync + 'static {
    /// Have an account with the CA: loaded from the store, or registered on first use.
    async fn ensure_account(&self) -> Result<(), AcmeError>;

    /// Obtain a certificate for the claimed domain with a fresh key of its key type, resuming
    /// the domain's open order if it has one; challenge tokens are published under the
    /// claim's lease only. A new order is logged in the store's order log when the CA
    /// creates it (that log is what the order budget counts) and left open on success: the
    /// caller closes it once the certificate is stored. `current` is the certificate stored
    /// now when this is a renewal.
    async fn issue(
        &self,
        claim: &Claim,
        current: Option<&StoredCertificate>,
    ) -> Result<IssuedCertificate, Failure>;

    /// The CA's suggested renewal window (ARI) for the leaf of `chain_pem`; `Ok(None)` when
    /// the CA offers no ARI or the certificate cannot be identified.
    async fn renewal_window(&self, chain_pem: &str) -> Result<Option<ari::Window>, AcmeError>;

    /// A cheap request that shows whether the CA answers (its directory): the probe of the
    /// CA health breaker ([`health`]).
    async fn probe(&self) -> Result<(), AcmeError>;
}

/// An RFC 7807 problem document as JSON. instant-acme parses the CA's document into
/// [`Problem`]; these are all the fields it keeps.
pub fn problem_json(problem: &Problem) -> serde_json::Value {
    let subproblems: Vec<serde_json::Value> = problem
        .subproblems
        .iter()
        .map(|sub| {
            serde_json::json!({
                "type": sub.r#type,
                "detail": sub.detail,
                "identifier": sub.identifier,
            })
        })
        .collect();
    let mut doc = serde_json::json!({
        "type": problem.r#type,
        "detail": problem.detail,
        "status": problem.status,
    });
    if !subproblems.is_empty()
        && let Some(map) = doc.as_object_mut()
    {
        map.insert("subproblems".into(), subproblems.into());
    }
    doc
}

/// Run one request to the CA with a time limit.
pub(crate) async fn bounded<T>(
    limit: Duration,
    step: &'static str,
    request: impl Future<Output = Result<T, instant_acme::Error>>,
) -> Result<T, AcmeError> {
    match tokio::time::timeout(limit, request).await {
        Ok(result) => result.map_err(|e| AcmeError::client(step, e)),
        Err(_) => Err(AcmeError::Timeout { step, limit }),
    }
}

/// After the account could not be loaded or created, jobs fail fast with that error for this
/// long instead of each queueing behind the lock to wait out the same unresponsive CA.
const ACCOUNT_FAILURE_PAUSE: Duration = Duration::from_secs(15);

/// The account, or why it could not be had recently.
#[derive(Default)]
struct AccountSlot {
    account: Option<instant_acme::Account>,
    last_failure: Option<(tokio::time::Instant, String)>,
}

/// Issues certificates: holds the account (created on first use) and runs orders.
pub struct Issuer {
    settings: AccountSettings,
    store: Arc<dyn Store>,
    request_timeout: Duration,
    profile: Option<String>,
    account: Mutex<AccountSlot>,
}

impl Issuer {
    pub fn new(config: &AcmeConfig, store: Arc<dyn Store>) -> Issuer {
        Issuer {
            settings: AccountSettings::from_config(config),
            store,
            request_timeout: config.request_timeout,
            profile: config.profile.clone(),
            account: Mutex::new(AccountSlot::default()),
        }
    }

    /// The account, loaded from the store or created with the CA on first use.
    pub async fn account(&self) -> Result<instant_acme::Account, AcmeError> {
        let mut slot = self.account.lock().await;
        if let Some(account) = &slot.account {
            return Ok(account.clone());
        }
        if let Some((at, error)) = &slot.last_failure
            && at.elapsed() < ACCOUNT_FAILURE_PAUSE
        {
            return Err(AcmeError::Account(format!("unavailable: {error}")));
        }
        let loaded =
            account::load_or_create(&self.settings, self.store.as_ref(), self.request_timeout)
                .await;
        match loaded {
            Ok(account) => {
                slot.account = Some(account.clone());
                slot.last_failure = None;
                Ok(account)
            }
            Err(e) => {
                slot.last_failure = Some((tokio::time::Instant::now(), e.to_string()));
                Err(e)
            }
        }
    }

    /// The CA lost our account (a test CA restarted, or the account was deactivated): drop it
    /// here and in the store, so that the next attempt registers a new one.
    async fn forget_account(&self) {
        let mut slot = self.account.lock().await;
        let Some(account) = slot.account.take() else {
            return;
        };
        tracing::warn!(account = %account.id(), "the CA does not know our account; registering a new one");
        if let Err(e) = self
            .store
            .forget_account(&self.settings.directory_url, account.id())
            .await
        {
            tracing::error!(error = %e, "forgetting the account");
        }
    }
}

#[async_trait]
impl CertificateAuthority for Issuer {
    async fn ensure_account(&self) -> Result<(), AcmeError> {
        self.account().await.map(drop)
    }

    async fn issue(
        &self,
        claim: &Claim,
        current: Option<&StoredCertificate>,
    ) -> Result<IssuedCertificate, Failure> {
        let attempt = async {
            let account = self.account().await?;
            // ARI: name the replaced certificate, only when the CA offers ARI (else the
            // order would be refused).
            let replaces = match current {
                Some(c) => ari::window(&account, &c.chain_pem, self.request_timeout)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|_| ari::identifier(&c.chain_pem)),
                None => None,
            };
            let request = order::Request {
                name: &claim.name,
                lease: &claim.lease,
                key_type: claim.key_type,
                limit: self.request_timeout,
                current_version: current.map(|c| c.version.as_str()),
                replaces,
                profile: self.profile.as_deref(),
            };
            order::issue(&account, self.store.as_ref(), &request).await
        };
        let (result, retry_after) = http::noting_retry_after(attempt).await;
        if let Err(error) = &result
            && error.account_unknown()
        {
            self.forget_account().await;
        }
        result.map_err(|error| Failure {
            retry_after: retry_after
                .map(OffsetDateTime::from)
                .or_else(|| error.retry_hint()),
            error,
        })
    }

    async fn renewal_window(&self, chain_pem: &str) -> Result<Option<ari::Window>, AcmeError> {
        let account = self.account().await?;
        ari::window(&account, chain_pem, self.request_timeout).await
    }

    async fn probe(&self) -> Result<(), AcmeError> {
        let settings = &self.settings;
        let client = http::client(
            settings.ca_root_file.as_deref(),
            settings.request_slots.clone(),
        )?;
        let request = ::http::Request::get(settings.directory_url.as_str())
            .body(instant_acme::BodyWrapper::from(Vec::new()))
            .map_err(|e| AcmeError::Account(format!("directory request: {e}")))?;
        let answer = async {
            let mut response = client.request(request).await?;
            let status = response.parts.status;
            response
                .body
                .into_bytes()
                .await
                .map_err(instant_acme::Error::Other)?;
            Ok(status)
        };
        let status = bounded(self.request_timeout, "directory", answer).await?;
        if status.is_server_error() {
            return Err(AcmeError::Client {
                step: "directory",
                source: instant_acme::Error::Str("the CA's directory answered with a server error"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::KeyType;
    use crate::store::SqliteStore;
    use warp::Filter;

    /// A CA that rate-limits account creation, with a Retry-After an hour away.
    async fn rate_limiting_ca() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let directory = serde_json::json!({
            "newNonce": format!("{base}/nonce"),
            "newAccount": format!("{base}/account"),
            "newOrder": format!("{base}/order"),
        });
        let dir = warp::path!("dir")
            .and(warp::get())
            .map(move || warp::reply::json(&directory));
        let nonce = warp::path!("nonce")
            .and(warp::head())
            .map(|| warp::reply::with_header("", "replay-nonce", "bm9uY2U"));
        let account = warp::path!("account").and(warp::post()).map(|| {
            let problem = serde_json::json!({
                "type": "urn:ietf:params:acme:error:rateLimited",
                "detail": "too many new accounts",
                "status": 429,
            });
            let reply = warp::reply::with_status(
                warp::reply::json(&problem),
                warp::http::StatusCode::TOO_MANY_REQUESTS,
            );
            let reply = warp::reply::with_header(reply, "retry-after", "3600");
            warp::reply::with_header(reply, "replay-nonce", "bm9uY2Uy")
        });
        tokio::spawn(
            warp::serve(dir.or(nonce).or(account))
                .incoming(listener)
                .run(),
        );
        format!("{base}/dir")
    }

    #[tokio::test]
    async fn the_cas_retry_after_and_problem_reach_the_failure() {
        let directory = rate_limiting_ca().await;
        let text = format!(
            "[acme]\nterms_agreed = true\ndirectory_url = \"{directory}\"\n\
             allow_insecure_directory = true\n"
        );
        let config = Config::parse(&text, |_| None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let issuer = Issuer::new(&config.acme, store);

        let before = OffsetDateTime::now_utc();
        let claim = Claim {
            name: "a.example".into(),
            key_type: KeyType::EcdsaP256,
            lease: "L".into(),
            attempts: 0,
            renewal: false,
            resumed: false,
        };
        let Err(failure) = issuer.issue(&claim, None).await else {
            panic!("a rate-limited account cannot issue");
        };
        assert_eq!(failure.error.reason(), "rate_limited", "{}", failure.error);
        let problem = failure.error.problem().unwrap();
        assert_eq!(problem["type"], "urn:ietf:params:acme:error:rateLimited");
        assert_eq!(problem["status"], 429);
        let wait = failure.retry_after.unwrap() - before;
        assert!(
            (time::Duration::minutes(59)..=time::Duration::minutes(61)).contains(&wait),
            "{wait}"
        );
        // The scheduler keeps the CA's time over its own one-minute backoff.
        let retry = crate::schedule::Backoff::default().retry_at(before, 1, failure.retry_after);
        assert!(retry - before > time::Duration::minutes(59));
    }
}

#[cfg(test)]
mod classes {
    use super::fake::{problem, timeout, validation_failed};
    use super::*;

    #[test]
    fn every_failure_has_a_class() {
        let ca = [
            timeout(),
            problem("serverInternal", 500),
            problem("badNonce", 400),
            problem("rateLimited", 429),
            problem("accountDoesNotExist", 400),
            problem("malformed", 503),
            AcmeError::Client {
                step: "new order",
                source: instant_acme::Error::Str("connection refused"),
            },
            AcmeError::Account("unavailable".into()),
        ];
        for error in ca {
            assert_eq!(error.class(), FailureClass::Ca, "{error}");
            assert_eq!(error.to_last_error().class, FailureClass::Ca);
        }
        let domain = [
            validation_failed("dns"),
            validation_failed("connection"),
            validation_failed("incorrectResponse"),
            validation_failed("unauthorized"),
            validation_failed("caa"),
            validation_failed("rejectedIdentifier"),
            problem("rejectedIdentifier", 400),
        ];
        for error in domain {
            assert_eq!(error.class(), FailureClass::Domain, "{error}");
        }
        let mut unanswered = validation_failed("connection");
        if let AcmeError::OrderInvalid { unanswered: u, .. } = &mut unanswered {
            *u = true;
        }
        let ours = [
            unanswered,
            AcmeError::LeaseLost("a.example".into()),
            AcmeError::Store(StoreError::Corrupt("x".into())),
        ];
        for error in ours {
            assert_eq!(error.class(), FailureClass::Ours, "{error}");
        }
    }

    #[test]
    fn reasons_name_the_failure() {
        assert_eq!(timeout().reason(), "timeout");
        assert_eq!(problem("badNonce", 400).reason(), "bad_nonce");
        assert_eq!(problem("serverInternal", 500).reason(), "ca_error");
        assert_eq!(problem("rateLimited", 429).reason(), "rate_limited");
        assert_eq!(
            problem("rejectedIdentifier", 400).reason(),
            "rejected_identifier"
        );
        assert_eq!(validation_failed("dns").reason(), "validation_failed");
        assert_eq!(
            validation_failed("rejectedIdentifier").reason(),
            "rejected_identifier"
        );
    }

    #[test]
    fn only_unavailability_trips_the_breaker() {
        assert!(timeout().ca_unavailable());
        assert!(problem("serverInternal", 500).ca_unavailable());
        assert!(!problem("rateLimited", 429).ca_unavailable());
        assert!(!problem("badNonce", 400).ca_unavailable());
        assert!(!validation_failed("dns").ca_unavailable());
        assert!(problem("badNonce", 400).is_bad_nonce());
    }
}
