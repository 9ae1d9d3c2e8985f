//! ACME Renewal Information (RFC 9773): the CA's suggested renewal window for a certificate.
//!
//! A CA without ARI (no `renewalInfo` in its directory, e.g. Pebble 2.4) is not an error:
//! [`window`] answers `None` and the scheduler falls back to a share of the lifetime. With
//! ARI, renewals name the certificate they replace (`replaces`), which Let's Encrypt exempts
//! from its rate limits.

use std::time::Duration;

use instant_acme::{Account, CertificateIdentifier};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use super::AcmeError;
use super::request::bounded;

/// The suggested window, and when the CA wants to be asked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// From the CA's `Retry-After`: ask again no sooner than this.
    pub recheck_after: Duration,
}

/// The ARI identifier (authority key id + serial) of the leaf of `chain_pem`, when it has
/// the authority key identifier extension ARI needs.
pub fn identifier(chain_pem: &str) -> Option<CertificateIdentifier<'static>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes()).ok()?;
    let der = CertificateDer::from(pem.contents);
    CertificateIdentifier::try_from(&der)
        .ok()
        .map(CertificateIdentifier::into_owned)
}

/// The CA's suggested renewal window for the leaf of `chain_pem`; `None` when the CA offers
/// no ARI or the certificate cannot be identified.
pub async fn window(
    account: &Account,
    chain_pem: &str,
    limit: Duration,
) -> Result<Option<Window>, AcmeError> {
    let Some(id) = identifier(chain_pem) else {
        return Ok(None);
    };
    match bounded(limit, "renewal info", account.renewal_info(&id)).await {
        Ok((info, recheck_after)) => Ok(Some(Window {
            start: info.suggested_window.start,
            end: info.suggested_window.end,
            recheck_after,
        })),
        Err(AcmeError::Client {
            source: instant_acme::Error::Unsupported(_),
            ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_without_authority_key_id_has_no_identifier() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(identifier(&cert.pem()).is_none());
        assert!(identifier("not pem").is_none());
    }

    #[test]
    fn a_ca_signed_certificate_has_one() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_identifier_method = rcgen::KeyIdMethod::Sha256;
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap();
        leaf.use_authority_key_identifier_extension = true;
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let _ = ca_cert;
        let id = identifier(&cert.pem()).expect("identifier");
        // base64url(AKI) "." base64url(serial)
        assert!(id.to_string().contains('.'), "{id}");
    }
}
