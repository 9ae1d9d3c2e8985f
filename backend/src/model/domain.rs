//! A managed domain and why its last attempt failed.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{DomainState, KeyType};

/// Why the last issuance attempt failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LastError {
    /// Stable, machine-readable reason: `ca_problem` (the CA said no; see `problem`),
    /// `validation_failed` (the CA could not validate, and would fail again until DNS or the
    /// proxies are fixed: the message says what to check), `rate_limited`, `timeout` (the CA
    /// did not answer in time), `rate_limit_registered_domain` (not a failure: the name waits
    /// unattempted, `pending` until `retry_at`, because its registered domain has had the
    /// CA's share of new certificates), `ca_paused` (the CA paused the name for the account:
    /// the message carries the unpause link), `network`, `order_invalid`, `profile_not_offered` (the CA
    /// does not offer the domain's profile, or `acme.profile`), `no_http01_challenge`, `bad_certificate`, `account`,
    /// `internal`.
    pub reason: String,
    /// One line for humans.
    pub message: String,
    /// The CA's RFC 7807 problem document, kept whole, when the CA sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<serde_json::Value>,
    /// Whose failure it was: only the domain's own climb its retry ladder. Absent in
    /// failures recorded before the classes existed (read as the domain's).
    #[serde(default)]
    pub class: FailureClass,
}

/// Whose failure an attempt was, which decides when it is tried again.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The CA could not validate the name for a reason at the name's end (DNS, a refused
    /// connection, a wrong answer, CAA) or refuses the name: repeats until the operator acts.
    /// Climbs the per-domain retry ladder up to the daily step.
    #[default]
    Domain,
    /// The CA or the path to it (timeouts, connection errors, HTTP 5xx, bad nonces after
    /// retries, `serverInternal`, rate limits): retried on a short, capped schedule and not
    /// counted as the domain's attempt.
    Ca,
    /// Our own side: a challenge we could not answer across our restart, storage, key
    /// generation, a lost lease. Retried like the CA's.
    Ours,
}

impl FailureClass {
    pub const ALL: [FailureClass; 3] = [FailureClass::Domain, FailureClass::Ca, FailureClass::Ours];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Domain => "domain",
            FailureClass::Ca => "ca",
            FailureClass::Ours => "ours",
        }
    }

    /// The failure counts as one of the domain's attempts (its backoff step).
    pub fn counts_against_domain(self) -> bool {
        self == FailureClass::Domain
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One managed domain, as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Domain {
    /// Normal form: lower case, punycode (`xn--...`) for internationalised names.
    pub name: String,
    pub state: DomainState,
    pub key_type: KeyType,
    /// The certificate profile its orders ask for; `None`: `acme.profile`.
    pub profile: Option<String>,
    /// Validity of the current certificate, read from it (absent until issued).
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    /// When the current certificate will be renewed.
    pub renew_at: Option<OffsetDateTime>,
    /// When a failed domain is tried again.
    pub retry_at: Option<OffsetDateTime>,
    /// Failed attempts since the last success.
    pub attempts: u32,
    pub last_error: Option<LastError>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}
