//! The JSON bodies of the admin API (`/v1/`), shared by the server and the CLI.
//!
//! Timestamps are RFC 3339 strings. Field names are part of the API: renaming one is a
//! breaking change.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where a domain is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainState {
    /// Enabled, waiting for an issuance job (new, or a retry/renewal that is due).
    Pending,
    /// An order is in flight with the CA.
    Validating,
    /// A certificate is stored and served.
    Issued,
    /// The last attempt failed; `retry_at` says when the next one starts.
    Failed,
    /// Disabled by an operator: no jobs, nothing served.
    Disabled,
}

impl DomainState {
    /// Every state, in life-cycle order.
    pub const ALL: [DomainState; 5] = [
        DomainState::Pending,
        DomainState::Validating,
        DomainState::Issued,
        DomainState::Failed,
        DomainState::Disabled,
    ];

    /// The lower-case name used in JSON, in the database and in `?state=`.
    pub fn as_str(self) -> &'static str {
        match self {
            DomainState::Pending => "pending",
            DomainState::Validating => "validating",
            DomainState::Issued => "issued",
            DomainState::Failed => "failed",
            DomainState::Disabled => "disabled",
        }
    }

    /// Inverse of [`DomainState::as_str`].
    pub fn parse(s: &str) -> Option<DomainState> {
        DomainState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

impl std::fmt::Display for DomainState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of private key generated for a domain's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    /// ECDSA on P-256: small, fast handshakes, accepted everywhere that matters today.
    #[default]
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// RSA 2048 bits, for old clients without ECDSA.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA 3072 bits.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// RSA 4096 bits.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

impl KeyType {
    /// Every key type.
    pub const ALL: [KeyType; 5] = [
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
    ];

    /// The kebab-case name used in JSON, in the configuration and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
        }
    }

    /// Inverse of [`KeyType::as_str`].
    pub fn parse(s: &str) -> Option<KeyType> {
        KeyType::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the last issuance attempt failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// One managed domain, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Domain {
    /// Normal form: lower case, punycode (`xn--...`) for internationalised names.
    pub name: String,
    pub state: DomainState,
    pub key_type: KeyType,
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

/// `GET /v1/domains` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainList {
    pub domains: Vec<Domain>,
}

/// `PUT /v1/domains/{name}` body (optional; an empty body takes the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnableRequest {
    /// Key type for this domain's certificates; the configured `acme.key_type` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<KeyType>,
}

/// `GET /v1/account` response: the ACME account this service uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// The CA's directory URL.
    pub directory_url: String,
    /// The account's URL at the CA (its identity; stable across restarts).
    pub account_url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Every error response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

/// The body of an [`ErrorResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
