//! `GET /v1/domains/{name}/certificate/details`: what the served certificate says — names,
//! issuer, serial, validity — read from the stored chain (never the key).

use warp::reply::Response;
use warp::{Filter, Rejection, Reply};
use x509_parser::extensions::GeneralName;

use super::ApiState;
use super::domains::{domain_param, not_found};
use super::error::ApiError;
use super::json::CertificateDetails;

/// The route (below `/v1`, already authorised).
pub fn route(state: ApiState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("domains" / String / "certificate" / "details")
        .and(warp::get())
        .then(move |name: String| {
            let state = state.clone();
            async move {
                match details(&state, &name).await {
                    Ok(d) => warp::reply::json(&d).into_response(),
                    Err(e) => e.into_response(),
                }
            }
        })
}

async fn details(state: &ApiState, raw: &str) -> Result<CertificateDetails, ApiError> {
    let name = domain_param(raw)?;
    let domain = state
        .store
        .domain(name.as_str())
        .await?
        .ok_or_else(|| not_found(&name))?;
    let cert = state
        .store
        .certificate(name.as_str())
        .await?
        .ok_or_else(|| ApiError::NotIssued(name.to_string()))?;
    let leaf = read_leaf(&cert.chain_pem)?;
    Ok(CertificateDetails {
        name: domain.name,
        key_type: domain.key_type,
        ari_window: None,
        ..leaf
    })
}

/// The leaf's names, issuer, serial and validity.
fn read_leaf(chain_pem: &str) -> Result<CertificateDetails, ApiError> {
    let corrupt = |e: String| {
        tracing::error!(error = %e, "admin API: stored certificate unreadable");
        ApiError::Internal("the stored certificate cannot be read".into())
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes())
        .map_err(|e| corrupt(e.to_string()))?;
    let leaf = pem.parse_x509().map_err(|e| corrupt(e.to_string()))?;
    let sans = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let validity = leaf.validity();
    let time = |t: x509_parser::time::ASN1Time| t.to_datetime();
    Ok(CertificateDetails {
        name: String::new(),
        sans,
        issuer: leaf.issuer().to_string(),
        serial: leaf.raw_serial_as_string().replace(':', ""),
        not_before: time(validity.not_before),
        not_after: time(validity.not_after),
        key_type: Default::default(),
        ari_window: None,
    })
}
