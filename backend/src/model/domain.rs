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
    /// did not answer in time), `network`, `order_invalid`, `profile_not_offered` (the CA
    /// does not offer `acme.profile`), `no_http01_challenge`, `bad_certificate`, `account`,
    /// `internal`.
    pub reason: String,
    /// One line for humans.
    pub message: String,
    /// The CA's RFC 7807 problem document, kept whole, when the CA sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<serde_json::Value>,
}

/// One managed domain, as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Domain {
    /// Normal form: lower case, punycode (`xn--...`) for internationalised names.
    pub name: String,
    pub state: DomainState,
    pub key_type: KeyType,
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
