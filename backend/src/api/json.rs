//! The JSON bodies of the admin API (`/v1/`), shared by the server and the CLI.
//!
//! Built from the core model ([`crate::model`]), never the other way round. Timestamps are
//! RFC 3339 strings. Field names are part of the API: renaming one is a breaking change.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use crate::model::{DomainState, KeyType, LastError};

/// One managed domain, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Domain {
    /// Normal form: lower case, punycode (`xn--...`) for internationalised names.
    pub name: String,
    pub state: DomainState,
    pub key_type: KeyType,
    /// The certificate profile its orders ask for; `null`: the configured `acme.profile`.
    #[serde(default)]
    pub profile: Option<String>,
    /// Validity of the current certificate, read from it (absent until issued).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub not_before: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// When the current certificate will be renewed.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub renew_at: Option<OffsetDateTime>,
    /// When a failed domain is tried again.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub retry_at: Option<OffsetDateTime>,
    /// Failed attempts since the last success.
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<LastError>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<crate::model::Domain> for Domain {
    fn from(d: crate::model::Domain) -> Domain {
        Domain {
            name: d.name,
            state: d.state,
            key_type: d.key_type,
            profile: d.profile,
            not_before: d.not_before,
            not_after: d.not_after,
            renew_at: d.renew_at,
            retry_at: d.retry_at,
            attempts: d.attempts,
            last_error: d.last_error,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// `GET /v1/domains` response: one page, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DomainList {
    pub domains: Vec<Domain>,
    /// Cursor for the next page (`after=`); `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// `GET /v1/capacity` response: what the account can sustain before a limit bites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Capacity {
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// Renewals a day the served certificates need (at their earliest renewal points).
    pub renewals_per_day: f64,
    /// New orders a day the order budget allows (`acme.order_budget` per window).
    pub budget_per_day: f64,
    /// Whether renewals spend the budget (`acme.limits.renewals_exempt = false`).
    pub renewals_spend_budget: bool,
    /// What renewals leave of the budget for new names, a day; negative: renewals alone
    /// need more than it allows.
    pub left_for_new_per_day: f64,
    /// `left_for_new_per_day` as a share of the budget (also the metric
    /// `acme_edge_capacity_headroom_ratio`).
    pub headroom_ratio: f64,
    /// Names (not disabled) waiting for their first certificate.
    pub new_names_waiting: u64,
    /// Days until those are ordered at what the budget leaves; `null` when it leaves none.
    #[serde(default)]
    pub days_to_order_new_names: Option<f64>,
    /// When renewals spend the budget and need more than it allows even renewing each
    /// certificate at its expiry: the day the first would expire before its renewal; `null`
    /// when none is at risk (renewals that need more only at their planned points run late,
    /// into the validity left: `headroom_ratio` is then negative).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub first_day_at_risk: Option<OffsetDateTime>,
    /// The load by certificate lifetime.
    pub by_lifetime: Vec<LifetimeLoad>,
}

/// One certificate lifetime's share of the renewals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LifetimeLoad {
    /// The lifetime, in days.
    pub lifetime_days: u64,
    pub certificates: u64,
    pub renewals_per_day: f64,
}

/// `GET /v1/summary` response: the fleet at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// Domains in every state.
    pub total: u64,
    pub states: StateCounts,
    pub expiring: ExpiringCounts,
    /// The earliest `not_after` among served certificates; `null` when none is served.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub earliest_expiry: Option<OffsetDateTime>,
    /// Failed domains by the reason of their last error, largest count first.
    pub failures: Vec<FailureCount>,
    /// Served certificates expiring in each of the coming weeks (13 entries, from
    /// `generated_at`).
    pub expiry_weeks: Vec<ExpiryWeek>,
}

/// Domains per state (every state present).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateCounts {
    pub pending: u64,
    pub validating: u64,
    pub issued: u64,
    pub failed: u64,
    pub disabled: u64,
}

/// Served certificates by expiry; each window starts at `generated_at` (so 14 days
/// includes 7).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExpiringCounts {
    pub expired: u64,
    pub within_7_days: u64,
    pub within_14_days: u64,
    pub within_30_days: u64,
}

/// Failed domains with one `last_error.reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FailureCount {
    pub reason: String,
    pub count: u64,
}

/// Served certificates expiring in `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExpiryWeek {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    pub count: u64,
}

/// `GET /v1/domains/{name}/certificate/details` response: the served certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CertificateDetails {
    pub name: String,
    /// The DNS names the certificate covers.
    pub sans: Vec<String>,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// Serial number, lower-case hex.
    pub serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub key_type: KeyType,
    /// The CA's suggested renewal window (ARI), when known; `null` otherwise.
    #[serde(default)]
    pub ari_window: Option<AriWindow>,
}

/// `GET /v1/domains/{name}/orders` response: newest first, at most 100.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderList {
    pub orders: Vec<OrderEntry>,
}

/// One order placed with the CA for a domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderEntry {
    /// The order's URL at the CA.
    pub order_url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it ended; `null` while open.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
    /// `new`, `renewal` (a certificate was stored already), or `unknown` (logged before
    /// kinds were).
    pub kind: String,
    /// Taken up again after the process stopped mid-order (crash, restart, takeover).
    pub resumed: bool,
    /// `open`, `issued`, `failed` (the CA declared it invalid), `abandoned`, or `unknown`.
    pub outcome: String,
    /// Why it failed (when `outcome` is `failed`), with the CA's problem document.
    #[serde(default)]
    pub problem: Option<LastError>,
}

/// A renewal window suggested by the CA (ACME Renewal Information).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AriWindow {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

/// `PUT /v1/domains/{name}` body (optional; an empty body takes the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableRequest {
    /// Key type for this domain's certificates; the configured `acme.key_type` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<KeyType>,
    /// Certificate profile its orders ask the CA for (`shortlived`, `tlsserver`, ...), kept
    /// across renewals; the configured `acme.profile` when absent. Given for an enabled
    /// domain, its next order asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", min_length = 1, max_length = 64)]
    pub profile: Option<String>,
}

/// `GET /v1/account` response: the ACME account this service uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountInfo {
    /// The CA's directory URL.
    pub directory_url: String,
    /// The account's URL at the CA (its identity; stable across restarts).
    pub account_url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Every error response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

/// The body of an [`ErrorResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable code (`unauthorized`, `invalid_domain`,
    /// `wildcard_not_supported`, `ip_not_supported`, `not_found`, `malformed_json`,
    /// `invalid_query`, `not_issued`, `domain_disabled`, `method_not_allowed`,
    /// `payload_too_large`, `bad_request`, `unavailable`, `internal`).
    pub code: String,
    /// One line for humans.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in DomainState::ALL {
            assert_eq!(DomainState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        for k in KeyType::ALL {
            assert_eq!(KeyType::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
    }

    #[test]
    fn domain_json_uses_rfc3339() {
        let t = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        let d = Domain {
            profile: None,
            name: "example.com".into(),
            state: DomainState::Issued,
            key_type: KeyType::EcdsaP256,
            not_before: Some(t),
            not_after: None,
            renew_at: None,
            retry_at: None,
            attempts: 0,
            last_error: None,
            created_at: t,
            updated_at: t,
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["not_before"], "2026-01-02T03:04:05Z");
        assert_eq!(v["not_after"], serde_json::Value::Null);
        let back: Domain = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
    }
}

/// `GET /v1/ca`: the CA's health as the answering replica sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CaStatus {
    /// `available`, or `unavailable`: issuance is paused until the CA answers again.
    pub state: String,
    /// Since when the CA is unavailable.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// The last problem that counted against the CA.
    #[serde(default)]
    pub last_problem: Option<String>,
}

impl CaStatus {
    pub fn paused(&self) -> bool {
        self.state == "unavailable"
    }
}
