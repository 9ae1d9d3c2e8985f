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
//! - [`CertificateAuthority`] (here): the seam; [`Failure`], a failed attempt.
//! - `issuer`: [`Issuer`], the seam over ACME: the account held, orders run.
//! - `error`: [`AcmeError`], why an attempt failed and whose failure it is.
//! - `request`: one request to the CA, bounded in time, sent again on `badNonce`.
//! - [`account`]: one account per CA directory, created on first use and kept in the store.
//! - [`order`]: new order (or the open one resumed), HTTP-01 challenge (stored before the
//!   CA is told it is ready), polling, CSR, chain download.
//! - [`ari`]: ACME Renewal Information (RFC 9773): the CA's suggested renewal window.
//! - [`keys`]: fresh certificate keys (ECDSA P-256/P-384, RSA 2048/3072/4096).
//! - [`http`]: the HTTP client under instant-acme, which keeps the CA's `Retry-After`.

// The request helpers come first: `retrying_bad_nonce!` is a macro, visible only to the
// modules declared after it.
#[macro_use]
mod request;

pub mod account;
pub mod ari;
mod error;
#[cfg(test)]
pub(crate) mod fake;
pub mod health;
pub mod http;
mod issuer;
pub mod keys;
pub mod order;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::store::{Claim, IssuedCertificate, StoredCertificate};

pub use account::AccountSettings;
pub use error::{AcmeError, problem_json};
pub use issuer::Issuer;
pub use request::BAD_NONCE_ROUNDS;

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

/// A failed attempt, and when the CA asked us to come back, if it did.
#[derive(Debug)]
pub struct Failure {
    /// Why: its [`AcmeError::reason`] and the CA's [`AcmeError::problem`].
    pub error: AcmeError,
    pub retry_after: Option<OffsetDateTime>,
}
