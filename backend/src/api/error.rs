//! API errors: the one place that maps them to an HTTP status and a stable JSON code.

use std::convert::Infallible;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use super::json::{ErrorBody, ErrorResponse};
use crate::model::DomainError;
use crate::store::StoreError;

/// Everything the API can answer with instead of a result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("a valid bearer token is required (Authorization: Bearer ...)")]
    Unauthorized,
    #[error("invalid domain name: {0}")]
    InvalidDomain(DomainError),
    #[error("{0}")]
    WildcardNotSupported(DomainError),
    #[error("{0}")]
    IpNotSupported(DomainError),
    #[error("{0}")]
    NotFound(String),
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("invalid profile {0:?}: must be {rule}", rule = crate::model::profile::PROFILE_RULE)]
    InvalidProfile(String),
    #[error("{0} has no certificate yet")]
    NotIssued(String),
    #[error("{0} is disabled; enable it first")]
    DomainDisabled(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("bad request")]
    BadRequest,
    /// The store failed; the detail is logged, not sent.
    #[error("storage unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(String),
}

impl warp::reject::Reject for ApiError {}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Wildcard => ApiError::WildcardNotSupported(e),
            DomainError::IpAddress => ApiError::IpNotSupported(e),
            e => ApiError::InvalidDomain(e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "admin API: storage");
        ApiError::Unavailable
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::InvalidDomain(_)
            | ApiError::WildcardNotSupported(_)
            | ApiError::IpNotSupported(_)
            | ApiError::MalformedJson(_)
            | ApiError::InvalidQuery(_)
            | ApiError::InvalidProfile(_)
            | ApiError::BadRequest => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NotIssued(_) | ApiError::DomainDisabled(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidDomain(_) => "invalid_domain",
            ApiError::WildcardNotSupported(_) => "wildcard_not_supported",
            ApiError::IpNotSupported(_) => "ip_not_supported",
            ApiError::NotFound(_) => "not_found",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::InvalidProfile(_) => "invalid_profile",
            ApiError::NotIssued(_) => "not_issued",
            ApiError::DomainDisabled(_) => "domain_disabled",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::BadRequest => "bad_request",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: ErrorBody {
                code: self.code().to_owned(),
                message: self.to_string(),
            },
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status()).into_response();
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(
                warp::http::header::WWW_AUTHENTICATE,
                warp::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Turn any rejection into the JSON error shape.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    Ok(from_rejection(&rejection).into_response())
}

fn from_rejection(rejection: &Rejection) -> ApiError {
    if let Some(e) = rejection.find::<ApiError>() {
        return clone_error(e);
    }
    if rejection.is_not_found() {
        return ApiError::NotFound("no such resource".into());
    }
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return ApiError::MethodNotAllowed;
    }
    if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        return ApiError::PayloadTooLarge;
    }
    if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        return ApiError::InvalidQuery(e.to_string());
    }
    ApiError::BadRequest
}

// Rejections hand out references; rebuild an owned error (the store error only as text).
fn clone_error(e: &ApiError) -> ApiError {
    match e {
        ApiError::Unauthorized => ApiError::Unauthorized,
        ApiError::InvalidDomain(d) => ApiError::InvalidDomain(d.clone()),
        ApiError::WildcardNotSupported(d) => ApiError::WildcardNotSupported(d.clone()),
        ApiError::IpNotSupported(d) => ApiError::IpNotSupported(d.clone()),
        ApiError::NotFound(s) => ApiError::NotFound(s.clone()),
        ApiError::MalformedJson(s) => ApiError::MalformedJson(s.clone()),
        ApiError::InvalidQuery(s) => ApiError::InvalidQuery(s.clone()),
        ApiError::InvalidProfile(s) => ApiError::InvalidProfile(s.clone()),
        ApiError::NotIssued(s) => ApiError::NotIssued(s.clone()),
        ApiError::DomainDisabled(s) => ApiError::DomainDisabled(s.clone()),
        ApiError::MethodNotAllowed => ApiError::MethodNotAllowed,
        ApiError::PayloadTooLarge => ApiError::PayloadTooLarge,
        ApiError::BadRequest => ApiError::BadRequest,
        ApiError::Unavailable => ApiError::Unavailable,
        ApiError::Internal(s) => ApiError::Internal(s.clone()),
    }
}
