//! The admin API's OpenAPI 3.1 description, derived from the JSON types of [`super::json`]
//! (utoipa) and the route table below; served at `GET /v1/openapi.json` and printed by
//! `acme-edge openapi`. The tests check it against the routes and the bodies they answer.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::json::{
    AccountInfo, AriWindow, CaStatus, Capacity, CertificateDetails, Domain, DomainList,
    EnableRequest, ErrorBody, ErrorResponse, ExpiringCounts, ExpiryWeek, FailureCount,
    LifetimeLoad, OrderEntry, OrderList, StateCounts, Summary,
};
use crate::model::{DomainState, FailureClass, KeyType, LastError};

/// The description, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Pretty JSON, as `acme-edge openapi` prints it and `dist/openapi.json` holds it.
pub fn json() -> String {
    document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The `/openapi.json` route (below `/v1`, already authorised).
pub fn route() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("openapi.json")
        .and(warp::get())
        .map(|| warp::reply::json(&document()).into_response())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "acme-edge admin API",
        description = "Manage the domains acme-edge gets certificates for. Every `/v1` route \
                       needs `Authorization: Bearer <token>`. Errors are \
                       `{\"error\": {\"code\", \"message\"}}` with a stable code."
    ),
    paths(
        list_domains, show_domain, enable_domain, disable_domain, renew_domain,
        domain_certificate, certificate_details, domain_orders, account, ca, capacity, summary, events, openapi_json, healthz, metrics
    ),
    components(schemas(
        Domain, DomainList, DomainState, KeyType, LastError, FailureClass, EnableRequest, AccountInfo, CaStatus,
        ErrorResponse, ErrorBody, OrderList, OrderEntry, CertificateDetails, AriWindow, Capacity, LifetimeLoad, Summary, StateCounts, ExpiringCounts, FailureCount, ExpiryWeek
    )),
    modifiers(&BearerToken),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// A domain name (path segment): at least two labels, lower or upper case, a trailing dot
/// allowed; internationalised names in their `xn--` form (UTF-8 is accepted too); no
/// wildcards, no IP addresses.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct NameParam {
    #[param(
        min_length = 3,
        max_length = 253,
        pattern = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$"
    )]
    name: String,
}

/// `Allow` for a 405 on `path`: the methods the description lists for it.
pub fn allowed_methods(path: &str) -> Option<String> {
    let doc = document();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    doc.paths.paths.iter().find_map(|(template, item)| {
        let parts: Vec<&str> = template.split('/').collect();
        let matches = parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(t, s)| t.starts_with('{') || t == s);
        if !matches {
            return None;
        }
        let value = serde_json::to_value(item).ok()?;
        let methods: Vec<String> = value
            .as_object()?
            .keys()
            .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
            .map(|k| k.to_uppercase())
            .collect();
        Some(methods.join(", "))
    })
}

/// `GET /v1/domains` query.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListParams {
    /// Only domains in this state.
    state: Option<DomainState>,
    /// Only names containing this text (letters, digits, `.`, `-`; case-insensitive).
    #[param(max_length = 253, pattern = "^[A-Za-z0-9.-]*$")]
    q: Option<String>,
    /// Domains per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next` cursor of the previous page.
    #[param(max_length = 253)]
    after: Option<String>,
}

// The routes. Their bodies never run: they carry the description of the warp routes in
// `super::domains`, `super::summary` and `super`.

#[utoipa::path(get, path = "/v1/domains", params(ListParams), responses(
    (status = 200, description = "One page of domains, by name", body = DomainList),
    (status = 400, description = "invalid_query", body = ErrorResponse),
    (status = 401, description = "unauthorized", body = ErrorResponse),
    (status = 503, description = "unavailable", body = ErrorResponse),
))]
#[allow(dead_code)]
fn list_domains() {}

#[utoipa::path(get, path = "/v1/domains/{name}", params(NameParam), responses(
    (status = 200, description = "The domain", body = Domain),
    (status = 400, description = "invalid_domain, wildcard_not_supported, ip_not_supported", body = ErrorResponse),
    (status = 401, description = "unauthorized", body = ErrorResponse),
    (status = 404, description = "not_found", body = ErrorResponse),
    (status = 503, description = "unavailable", body = ErrorResponse),
))]
#[allow(dead_code)]
fn show_domain() {}

#[utoipa::path(put, path = "/v1/domains/{name}", params(NameParam),
    request_body(content = Option<EnableRequest>, description = "Optional; empty takes the defaults"),
    responses(
    (status = 200, description = "Already enabled: unchanged", body = Domain),
    (status = 201, description = "Enabled: issuance is due now", body = Domain),
    (status = 400, description = "invalid_domain, wildcard_not_supported, ip_not_supported, malformed_json, bad_request", body = ErrorResponse),
    (status = 401, description = "unauthorized", body = ErrorResponse),
    (status = 413, description = "payload_too_large", body = ErrorResponse),
    (status = 503, description = "unavailable", body = ErrorResponse),
))]
#[allow(dead_code)]
fn enable_domain() {}

#[utoipa::path(delete, path = "/v1/domains/{name}", params(NameParam), responses(
    (status = 200, description = "Disabled", body = Domain),
    (status = 400, description = "invalid_domain, wildcard_not_supported, ip_not_supported", body = ErrorResponse),
    (status = 401, description = "unauthorized", body = ErrorResponse),
    (status = 404, description = "not_found", body = ErrorResponse),
    (status = 503, description = "unavailable", body = ErrorResponse),
))]
#[allow(dead_code)]
fn disable_domain() {}

#[utoipa::path(post, path = "/v1/domains/{name}/renew", params(NameParam), responses(
    (status = 202, description = "Renewal due now", body = Domain),
    (status = 400, description = "invalid_domain, wildcard_not_supported, ip_not_supported", body = ErrorResponse),
    (status = 401, description = "unauthorized", body = ErrorResponse),
    (status = 404, description = "not_found", body = ErrorResponse),
    (status = 409, description = "domain_disabled", body = ErrorResponse),
    (status = 503, description = "unavailable", body = ErrorResponse),
))]
#[allow(dead_code)]
fn renew_domain() {}

#[utoipa::path(get, path = "/v1/domains/{name}/certificate", params(NameParam), responses(
    (status = 200, description = "The served chain, leaf first (never the key)",
        body = String, content_type = "application/pem-certificate-chain"),
    (status = 400, description = "invalid_domain, wildcard_not_supported, ip_not_supported", body = ErrorResponse),
    (status = 401, description = "unauthorized", body = ErrorResponse),
    (status = 404, description = "not_found", body = ErrorResponse),
    (status = 409, description = "not_issued", body = ErrorResponse),
    (status = 503, description = "unavailable", body = ErrorResponse),
))]
#[allow(dead_code)]
fn domain_certificate() {}

#[utoipa::path(get, path = "/v1/domains/{name}/certificate/details", params(NameParam), responses(
    (status = 200, description = "What the served certificate says", body = CertificateDetails),
    (status = 400, description = "invalid_domain, wildcard_not_supported, ip_not_supported", body = ErrorResponse),
    (status = 401, description = "unauthorized", body = ErrorResponse),
    (status = 404, description = "not_found", body = ErrorResponse),
    (status = 409, description = "not_issued", body = ErrorResponse),
    (status = 500, description = "internal: the stored certificate cannot be read", body = ErrorResponse),
    (status = 503, description = "unavailable", body = ErrorResponse),
))]
#[allow(dead_code)]
fn certificate_details() {}

#[utoipa::path(get, path = "/v1/domains/{name}/orders", params(NameParam), responses(
    (status = 200, description = "The domain's orders, newest first (at most 100)", body = OrderList),
    (status = 400, description = "invalid_domain, wildcard_not_supported, ip_not_supported", body = ErrorResponse),
    (status = 401, description = "unauthorized", body = ErrorResponse),
    (status = 404, description = "not_found", body = ErrorResponse),
    (status = 503, description = "unavailable", body = ErrorResponse),
))]
#[allow(dead_code)]
fn domain_orders() {}

#[utoipa::path(get, path = "/v1/account", responses(
    (status = 200, description = "The ACME account in use", body = AccountInfo),
    (status = 401, description = "unauthorized", body = ErrorResponse),
    (status = 404, description = "not_found: no account yet", body = ErrorResponse),
    (status = 503, description = "unavailable", body = ErrorResponse),
))]
#[allow(dead_code)]
fn account() {}

#[utoipa::path(get, path = "/v1/ca", responses(
    (status = 200, description = "The CA's health as this replica sees it: `unavailable` while issuance is paused", body = CaStatus),
    (status = 401, description = "unauthorized", body = ErrorResponse),
))]
#[allow(dead_code)]
fn ca() {}

#[utoipa::path(get, path = "/v1/capacity", responses(
    (status = 200, description = "What the account can sustain before a limit bites", body = Capacity),
    (status = 401, description = "unauthorized", body = ErrorResponse),
    (status = 503, description = "unavailable", body = ErrorResponse),
))]
#[allow(dead_code)]
fn capacity() {}

#[utoipa::path(get, path = "/v1/summary", responses(
    (status = 200, description = "The fleet at a glance", body = Summary),
    (status = 401, description = "unauthorized", body = ErrorResponse),
    (status = 503, description = "unavailable", body = ErrorResponse),
))]
#[allow(dead_code)]
fn summary() {}

#[utoipa::path(get, path = "/v1/events", responses(
    (status = 200, description = "Server-sent events, without end: `event: domain` (data: a \
        Domain), `event: deleted` (data: {\"name\"}), `event: resync` (fell behind: re-list)",
        body = String, content_type = "text/event-stream"),
    (status = 401, description = "unauthorized", body = ErrorResponse),
))]
#[allow(dead_code)]
fn events() {}

#[utoipa::path(get, path = "/v1/openapi.json", responses(
    (status = 200, description = "This description", body = Object),
    (status = 401, description = "unauthorized", body = ErrorResponse),
))]
#[allow(dead_code)]
fn openapi_json() {}

#[utoipa::path(get, path = "/healthz", security(()), responses(
    (status = 200, description = "The process is up", body = Object),
))]
#[allow(dead_code)]
fn healthz() {}

#[utoipa::path(get, path = "/metrics", security(("bearer" = []), ()), responses(
    (status = 200, description = "Prometheus exposition text", body = String,
        content_type = "text/plain"),
    (status = 401, description = "unauthorized (when metrics.require_token)", body = ErrorResponse),
    (status = 404, description = "not_found: metrics are not enabled", body = ErrorResponse),
    (status = 503, description = "unavailable", body = ErrorResponse),
))]
#[allow(dead_code)]
fn metrics() {}
