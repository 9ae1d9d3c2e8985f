//! The admin API's JSON shapes, as the console reads them. Unknown fields are ignored and
//! every field the console can do without has a default, so a newer backend still works.
//!
//! Enumerations (states, key types) stay strings: the console shows them as they come and
//! compares them with the few it acts on, so a state it does not know is still shown.
//! Timestamps stay RFC 3339 strings too, made readable where they are shown.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The states a domain can be in, in life-cycle order (the list's filter offers them).
pub const STATES: [&str; 5] = ["pending", "validating", "issued", "failed", "disabled"];

/// One managed domain.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Domain {
    /// In the API's normal form: lower case, punycode for internationalised names.
    pub name: String,
    /// One of [`STATES`].
    pub state: String,
    #[serde(default)]
    pub key_type: String,
    /// The certificate profile its orders ask for; absent or null: the backend's default.
    #[serde(default)]
    pub profile: Option<String>,
    /// The current certificate's validity (absent until one is issued).
    #[serde(default)]
    pub not_before: Option<String>,
    #[serde(default)]
    pub not_after: Option<String>,
    /// When the current certificate will be renewed.
    #[serde(default)]
    pub renew_at: Option<String>,
    /// When a failed domain is tried again.
    #[serde(default)]
    pub retry_at: Option<String>,
    /// Failed attempts since the last success.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<LastError>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// Why the last attempt failed; `problem` is the CA's RFC 7807 document, whole.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LastError {
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub problem: Option<serde_json::Value>,
}

/// `GET /v1/domains`: one page, and the cursor of the next (`None` on the last).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DomainList {
    pub domains: Vec<Domain>,
    #[serde(default)]
    pub next: Option<String>,
}

/// `GET /v1/summary`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Summary {
    /// When the figures were counted (the overview says "as of").
    #[serde(default)]
    pub generated_at: Option<String>,
    /// Domains in every state.
    #[serde(default)]
    pub total: u64,
    /// Domains per state, by state name: a map, so a state this console does not know
    /// still parses.
    #[serde(default)]
    pub states: BTreeMap<String, u64>,
    #[serde(default)]
    pub expiring: Expiring,
    /// The earliest expiry among served certificates; absent when none is served.
    #[serde(default)]
    pub earliest_expiry: Option<String>,
    /// Failed domains by the reason of their last error, largest count first.
    #[serde(default)]
    pub failures: Vec<FailureCount>,
    /// Served certificates expiring in each of the coming weeks, from `generated_at`.
    #[serde(default)]
    pub expiry_weeks: Vec<ExpiryWeek>,
}

/// `GET /v1/capacity`: what the account sustains before a CA limit bites.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Capacity {
    #[serde(default)]
    pub renewals_per_day: f64,
    #[serde(default)]
    pub budget_per_day: f64,
    #[serde(default)]
    pub renewals_spend_budget: bool,
    #[serde(default)]
    pub headroom_ratio: f64,
    #[serde(default)]
    pub new_names_waiting: u64,
    /// Absent or null: no certificate at risk.
    #[serde(default)]
    pub first_day_at_risk: Option<String>,
}

/// Served certificates by how soon they expire (cumulative: 14 days includes 7).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Expiring {
    #[serde(default)]
    pub expired: u64,
    #[serde(default)]
    pub within_7_days: u64,
    #[serde(default)]
    pub within_14_days: u64,
    #[serde(default)]
    pub within_30_days: u64,
}

/// Failed domains sharing one `last_error.reason`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FailureCount {
    pub reason: String,
    pub count: u64,
}

/// Certificates expiring in `[start, end)`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExpiryWeek {
    pub start: String,
    #[serde(default)]
    pub end: Option<String>,
    pub count: u64,
}

/// `GET /v1/domains/{name}/certificate/details`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CertificateDetails {
    /// The DNS names the certificate covers.
    #[serde(default)]
    pub sans: Vec<String>,
    /// The issuer's distinguished name.
    #[serde(default)]
    pub issuer: String,
    /// Serial number, lower-case hex.
    #[serde(default)]
    pub serial: String,
    #[serde(default)]
    pub not_before: Option<String>,
    #[serde(default)]
    pub not_after: Option<String>,
    #[serde(default)]
    pub key_type: String,
    #[serde(default)]
    pub ari_window: Option<Window>,
}

/// The CA's suggested renewal window (ACME Renewal Information).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Window {
    pub start: String,
    pub end: String,
}

/// `GET /v1/domains/{name}/orders`: newest first.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Orders {
    pub orders: Vec<Order>,
}

/// One ACME order of a domain.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Order {
    /// The order's URL at the CA.
    #[serde(default)]
    pub order_url: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    /// When it ended; absent while open.
    #[serde(default)]
    pub closed_at: Option<String>,
    /// `new` or `renewal` (or `unknown`, for orders logged before kinds were).
    #[serde(default)]
    pub kind: String,
    /// Taken up again after the backend stopped mid-order.
    #[serde(default)]
    pub resumed: bool,
    /// `open`, `issued`, `failed`, `abandoned` (or `unknown`).
    #[serde(default)]
    pub outcome: String,
    /// Why it failed, with the CA's problem document.
    #[serde(default)]
    pub problem: Option<LastError>,
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

/// The body of an [`ErrorResponse`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// `event: deleted` data.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Deleted {
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_with_a_problem_parses() {
        let json = r#"{"name":"a.example","state":"failed","key_type":"ecdsa-p256",
            "not_before":null,"not_after":null,"renew_at":null,"retry_at":"2026-12-01T00:00:00Z",
            "attempts":2,"last_error":{"reason":"ca_problem","message":"no",
            "problem":{"type":"urn:ietf:params:acme:error:malformed","detail":"<b>x</b>"}},
            "created_at":"2026-11-29T21:45:00Z","updated_at":"2026-11-29T21:45:00Z"}"#;
        let d: Domain = serde_json::from_str(json).unwrap();
        assert_eq!(d.attempts, 2);
        let problem = d.last_error.unwrap().problem.unwrap();
        assert_eq!(problem["detail"], "<b>x</b>");
    }

    #[test]
    fn a_list_without_a_cursor_is_the_last_page() {
        let l: DomainList = serde_json::from_str(r#"{"domains":[]}"#).unwrap();
        assert_eq!(l.next, None);
    }
}
