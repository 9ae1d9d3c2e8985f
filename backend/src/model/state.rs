//! Where a domain is in its life cycle, and the moves between states.

use serde::{Deserialize, Serialize};

/// Where a domain is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
