//! Why an issuance attempt failed, and whose failure it is.
//!
//! [`AcmeError`] keeps the CA's problem document whole (RFC 8555 §6.7, RFC 7807) and answers
//! the questions the worker asks of every failure: its stable reason (metrics, the domain's
//! `last_error`), its [`FailureClass`] (the domain's own climb its retry ladder; the CA's and
//! ours do not), whether the CA looks down (the health breaker), and what an operator should
//! fix when validation failed.

use std::time::Duration;

use instant_acme::Problem;
use time::OffsetDateTime;

use super::keys;
use crate::model::{FailureClass, LastError};
use crate::store::StoreError;

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
    #[error("the CA does not offer the certificate profile {profile:?} (the domain's, else acme.profile); it offers: {}", offered_list(.offered))]
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
        if self.unpause_link().is_some() {
            return "ca_paused";
        }
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
        // A paused name waits for someone to fix it: the domain's, not a CA outage.
        if self.validation_fix().is_some() || self.unpause_link().is_some() {
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
    /// ([`super::health::CaHealth`]); rate limits and bad nonces do not (the CA is up).
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
    /// polling timeout); `Retry-After` headers come through [`super::Failure::retry_after`].
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

    /// The link at which the name can be unpaused, when the CA paused it for this account
    /// (Let's Encrypt, after 1,152 failed authorizations in a row: "Your account is
    /// temporarily prevented from requesting certificates for NAME ... Please visit:
    /// https://portal.letsencrypt.org/sfe/v1/unpause?jwt=..."). Until someone follows it,
    /// every order for the name is refused.
    pub fn unpause_link(&self) -> Option<String> {
        let problem = self.problem()?;
        let detail = problem["detail"].as_str()?;
        let at = detail.find(UNPAUSE_PATH)?;
        let start = detail[..at].rfind("https://")?;
        let link = detail[start..]
            .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
            .next()?;
        Some(link.trim_end_matches(['.', ',', ')']).to_owned())
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
        let message = match (self.unpause_link(), self.validation_fix()) {
            (Some(link), _) => format!(
                "the CA paused issuance for this name after too many failed validations in a \
                 row: fix what made them fail (the earlier errors), then unpause it at {link}; \
                 tried again daily meanwhile"
            ),
            (None, Some(fix)) => format!("{fix} (CA: {self})"),
            (None, None) => self.to_string(),
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

    pub(super) fn client(step: &'static str, source: instant_acme::Error) -> AcmeError {
        match source {
            instant_acme::Error::Api(problem) => AcmeError::Problem {
                step,
                problem: Box::new(problem),
            },
            source => AcmeError::Client { step, source },
        }
    }
}

/// The path of Let's Encrypt's self-service unpause page, in a paused name's problem.
const UNPAUSE_PATH: &str = "/sfe/v1/unpause";

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
fn is_transient(problem: &Problem) -> bool {
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

#[cfg(test)]
mod classes {
    use super::*;
    use crate::acme::fake::{problem, timeout, validation_failed};

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
    fn a_paused_name_is_the_domains_with_its_link() {
        let link = "https://portal.letsencrypt.org/sfe/v1/unpause?jwt=abc.def.ghi";
        for kind in ["rateLimited", "unauthorized"] {
            let mut paused = problem(kind, 429);
            if let AcmeError::Problem { problem, .. } = &mut paused {
                problem.detail = Some(format!(
                    "Your account is temporarily prevented from requesting certificates for \
                     a.example and possibly others. Please visit: {link}."
                ));
            }
            assert_eq!(paused.unpause_link().as_deref(), Some(link), "{kind}");
            assert_eq!(paused.reason(), "ca_paused");
            assert_eq!(paused.class(), FailureClass::Domain);
            assert!(!paused.ca_unavailable());
            let shown = paused.to_last_error();
            assert!(shown.message.contains(link), "{}", shown.message);
        }
        assert_eq!(problem("rateLimited", 429).unpause_link(), None);
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
