//! `/v1/domains` handlers. Each returns a response, errors included, so the error mapping
//! stays in [`super::error`].

use std::collections::HashMap;

use bytes::Bytes;
use time::OffsetDateTime;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::ApiError;
use super::json::{Domain, DomainList, DomainState, EnableRequest};
use super::{ApiState, MAX_BODY_BYTES};
use crate::certs::CertEvent;
use crate::model::DomainName;
use crate::store::Enabled;

/// The `/domains...` routes (below `/v1`, already authorised).
pub fn routes(state: ApiState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let list = warp::path!("domains")
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|s, q| respond(list(s, q)));
    let show = warp::path!("domains" / String)
        .and(warp::get())
        .and(with_state.clone())
        .then(|n, s| respond(show(s, n)));
    let enable = warp::path!("domains" / String)
        .and(warp::put())
        .and(with_state.clone())
        .and(body())
        .then(|n, s, b| respond(enable(s, n, b)));
    let disable = warp::path!("domains" / String)
        .and(warp::delete())
        .and(with_state.clone())
        .then(|n, s| respond(disable(s, n)));
    let renew = warp::path!("domains" / String / "renew")
        .and(warp::post())
        .and(with_state.clone())
        .then(|n, s| respond(renew(s, n)));
    let certificate = warp::path!("domains" / String / "certificate")
        .and(warp::get())
        .and(with_state)
        .then(|n, s| respond(certificate(s, n)));
    list.or(show)
        .unify()
        .or(enable)
        .unify()
        .or(disable)
        .unify()
        .or(renew)
        .unify()
        .or(certificate)
        .unify()
}

/// The body, at most [`MAX_BODY_BYTES`]: refused early when it announces more, and cut off
/// as soon as more arrives (chunked or HTTP/2 bodies announce nothing), so nothing past the
/// cap is buffered.
fn body() -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and_then(|len: Option<u64>| async move {
            match len {
                Some(n) if n > MAX_BODY_BYTES => {
                    Err(warp::reject::custom(ApiError::PayloadTooLarge))
                }
                _ => Ok(()),
            }
        })
        .untuple_one()
        .and(warp::body::stream())
        .and_then(|stream| async move {
            read_capped(stream, MAX_BODY_BYTES)
                .await
                .map_err(warp::reject::custom)
        })
}

/// Read `stream` whole, failing as soon as it exceeds `cap` bytes.
pub(super) async fn read_capped<S, B>(stream: S, cap: u64) -> Result<Bytes, ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    use futures::TryStreamExt;
    let mut stream = std::pin::pin!(stream);
    let mut body = bytes::BytesMut::new();
    while let Some(mut chunk) = stream.try_next().await.map_err(|_| ApiError::BadRequest)? {
        let len = chunk.remaining();
        if (body.len() + len) as u64 > cap {
            return Err(ApiError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk.copy_to_bytes(len));
    }
    Ok(body.freeze())
}

async fn respond(result: impl Future<Output = Result<Response, ApiError>>) -> Response {
    match result.await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// Path segments arrive percent-encoded (IDNs typed as UTF-8 in a URL).
pub(super) fn domain_param(raw: &str) -> Result<DomainName, ApiError> {
    let decoded =
        percent_decode(raw).ok_or(ApiError::InvalidDomain(crate::model::DomainError::Idna))?;
    Ok(DomainName::parse(&decoded)?)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

async fn list(state: ApiState, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let page = super::paging::PageQuery::parse(&query)?;
    let mut domains = state.store.domain_page(&page.store_query()).await?;
    let next = page.next_cursor(&mut domains);
    let domains = domains.into_iter().map(Domain::from).collect();
    Ok(warp::reply::json(&DomainList { domains, next }).into_response())
}

async fn show(state: ApiState, name: String) -> Result<Response, ApiError> {
    let name = domain_param(&name)?;
    let domain = state
        .store
        .domain(name.as_str())
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok(warp::reply::json(&Domain::from(domain)).into_response())
}

async fn enable(state: ApiState, name: String, body: Bytes) -> Result<Response, ApiError> {
    let name = domain_param(&name)?;
    let request = parse_enable(&body)?;
    let key_type = request.key_type.unwrap_or(state.default_key_type);
    let profile = request.profile.as_deref();
    if let Some(p) = profile
        && !crate::model::is_profile_name(p)
    {
        return Err(ApiError::InvalidProfile(p.to_owned()));
    }
    let now = OffsetDateTime::now_utc();
    match state
        .store
        .enable_domain_as(name.as_str(), key_type, profile, now)
        .await?
    {
        Enabled::Created(domain) => {
            tracing::info!(domain = %name, %key_type, "enabled");
            state.source.announce_domain(name.as_str());
            state.wake.notify_one();
            Ok(with_status(&Domain::from(domain), StatusCode::CREATED))
        }
        Enabled::Existing(domain) => Ok(with_status(&Domain::from(domain), StatusCode::OK)),
    }
}

fn parse_enable(body: &[u8]) -> Result<EnableRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(EnableRequest::default());
    }
    // `null` is no preference, like an empty body. Anything else must be an object: serde
    // would also read a struct from an array of its fields.
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    match value {
        serde_json::Value::Null => Ok(EnableRequest::default()),
        serde_json::Value::Object(_) => {
            serde_json::from_value(value).map_err(|e| ApiError::MalformedJson(e.to_string()))
        }
        _ => Err(ApiError::MalformedJson(
            "the body must be a JSON object (or empty)".to_owned(),
        )),
    }
}

async fn disable(state: ApiState, name: String) -> Result<Response, ApiError> {
    let name = domain_param(&name)?;
    let domain = state
        .store
        .disable_domain(name.as_str(), OffsetDateTime::now_utc())
        .await?
        .ok_or_else(|| not_found(&name))?;
    tracing::info!(domain = %name, "disabled");
    state
        .source
        .announce(CertEvent::Removed(name.into_string()));
    Ok(warp::reply::json(&Domain::from(domain)).into_response())
}

async fn renew(state: ApiState, name: String) -> Result<Response, ApiError> {
    let name = domain_param(&name)?;
    let domain = state
        .store
        .request_renewal(name.as_str(), OffsetDateTime::now_utc())
        .await?
        .ok_or_else(|| not_found(&name))?;
    if domain.state == DomainState::Disabled {
        return Err(ApiError::DomainDisabled(name.into_string()));
    }
    tracing::info!(domain = %name, "renewal requested");
    state.source.announce_domain(name.as_str());
    state.wake.notify_one();
    Ok(with_status(&Domain::from(domain), StatusCode::ACCEPTED))
}

async fn certificate(state: ApiState, name: String) -> Result<Response, ApiError> {
    let name = domain_param(&name)?;
    if state.store.domain(name.as_str()).await?.is_none() {
        return Err(not_found(&name));
    }
    let cert = state
        .store
        .certificate(name.as_str())
        .await?
        .ok_or_else(|| ApiError::NotIssued(name.to_string()))?;
    Ok(warp::reply::with_header(
        cert.chain_pem,
        "content-type",
        "application/pem-certificate-chain",
    )
    .into_response())
}

pub(super) fn not_found(name: &DomainName) -> ApiError {
    ApiError::NotFound(format!("{name} is not managed here"))
}

fn with_status(body: &impl serde::Serialize, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}
