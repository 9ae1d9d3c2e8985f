//! A typed client of the admin API (`/v1/`).

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::api::json::{
    CaStatus, Capacity, Domain, DomainList, DomainState, EnableRequest, ErrorResponse,
};

/// One request's bound: the admin API answers from the database, never from the CA, so a slow
/// answer means something is wrong.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid API URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("the CA file (--cacert): {0}")]
    BadCaFile(String),
    #[error("cannot reach the admin API at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The API answered with its JSON error body.
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from the admin API (HTTP {status}): {detail}")]
    Unexpected { status: u16, detail: String },
}

/// A client of one admin API endpoint.
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    token: String,
}

impl ApiClient {
    /// A client of the API at `base`, trusting `ca_pem` (PEM) besides the platform's roots.
    pub fn new(base: &str, token: &str, ca_pem: Option<&[u8]>) -> Result<ApiClient, ClientError> {
        let bad = |reason: String| ClientError::BadUrl {
            url: base.to_owned(),
            reason,
        };
        let base = Url::parse(base).map_err(|e| bad(e.to_string()))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(bad("expected an http:// or https:// URL".into()));
        }
        let mut http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::BadCaFile(e.to_string()))?;
            if certs.is_empty() {
                return Err(ClientError::BadCaFile("no PEM certificate in it".into()));
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http.build().map_err(|e| bad(e.to_string()))?;
        Ok(ApiClient {
            http,
            base,
            token: token.to_owned(),
        })
    }

    /// `PUT /v1/domains/{name}`; the flag says whether the domain is new.
    pub async fn enable(
        &self,
        name: &str,
        body: &EnableRequest,
    ) -> Result<(Domain, bool), ClientError> {
        let (status, domain) = self
            .send_json(Method::PUT, &["domains", name], &[], Some(body))
            .await?;
        Ok((domain, status == StatusCode::CREATED))
    }

    /// `GET /v1/domains[?state=...&q=...]`, every page: all matching domains, by name.
    pub async fn list(
        &self,
        state: Option<DomainState>,
        contains: Option<&str>,
    ) -> Result<DomainList, ClientError> {
        let limit = crate::api::paging::MAX_LIMIT.to_string();
        let mut domains = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query: Vec<(&str, &str)> = vec![("limit", &limit)];
            query.extend(state.map(|s| ("state", s.as_str())));
            query.extend(contains.map(|q| ("q", q)));
            query.extend(after.as_deref().map(|a| ("after", a)));
            let (_, page): (_, DomainList) = self
                .send_json::<(), _>(Method::GET, &["domains"], &query, None)
                .await?;
            domains.extend(page.domains);
            match page.next {
                Some(next) => after = Some(next),
                None => {
                    return Ok(DomainList {
                        domains,
                        next: None,
                    });
                }
            }
        }
    }

    /// `GET /v1/capacity`
    pub async fn capacity(&self) -> Result<Capacity, ClientError> {
        let (_, capacity) = self
            .send_json::<(), _>(Method::GET, &["capacity"], &[], None)
            .await?;
        Ok(capacity)
    }

    /// `GET /v1/ca`
    pub async fn ca(&self) -> Result<CaStatus, ClientError> {
        let (_, status) = self
            .send_json::<(), _>(Method::GET, &["ca"], &[], None)
            .await?;
        Ok(status)
    }

    /// `GET /v1/domains/{name}`
    pub async fn get(&self, name: &str) -> Result<Domain, ClientError> {
        let (_, domain) = self
            .send_json::<(), _>(Method::GET, &["domains", name], &[], None)
            .await?;
        Ok(domain)
    }

    /// `DELETE /v1/domains/{name}`
    pub async fn disable(&self, name: &str) -> Result<Domain, ClientError> {
        let (_, d) = self
            .send_json::<(), _>(Method::DELETE, &["domains", name], &[], None)
            .await?;
        Ok(d)
    }

    /// `POST /v1/domains/{name}/renew`
    pub async fn renew(&self, name: &str) -> Result<Domain, ClientError> {
        let path = ["domains", name, "renew"];
        let (_, domain) = self
            .send_json::<(), _>(Method::POST, &path, &[], None)
            .await?;
        Ok(domain)
    }

    /// `GET /v1/domains/{name}/certificate`: the PEM chain.
    pub async fn certificate(&self, name: &str) -> Result<String, ClientError> {
        let response = self
            .send::<()>(Method::GET, &["domains", name, "certificate"], &[], None)
            .await?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(api_error(status, &text))
        }
    }

    async fn send_json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<(StatusCode, T), ClientError> {
        let response = self.send(method, segments, query, body).await?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
        if !status.is_success() {
            return Err(api_error(status, &String::from_utf8_lossy(&bytes)));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| ClientError::Unexpected {
            status: status.as_u16(),
            detail: format!("undecodable JSON: {e}"),
        })?;
        Ok((status, value))
    }

    async fn send<B: serde::Serialize>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = self.url(segments, query)?;
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.map_err(|e| self.unreachable(e))
    }

    /// `{base}/v1/{segments...}`, each segment percent-encoded (names may be IDNs).
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, ClientError> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| ClientError::BadUrl {
                url: self.base.to_string(),
                reason: "cannot be a base URL".into(),
            })?;
            path.pop_if_empty().push("v1").extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    fn unreachable(&self, source: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.base.to_string(),
            source,
        }
    }
}

/// The API's JSON error body, or what came instead of it.
fn api_error(status: StatusCode, body: &str) -> ClientError {
    match serde_json::from_str::<ErrorResponse>(body) {
        Ok(e) => ClientError::Api {
            status: status.as_u16(),
            code: e.error.code,
            message: e.error.message,
        },
        Err(_) => ClientError::Unexpected {
            status: status.as_u16(),
            detail: body.chars().take(200).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_and_escaped() {
        let c = ApiClient::new("http://127.0.0.1:8080/", "t", None).unwrap();
        let u = c
            .url(&["domains", "bücher.example"], &[("state", "issued")])
            .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:8080/v1/domains/b%C3%BCcher.example?state=issued"
        );
        let c = ApiClient::new("https://admin.internal/edge", "t", None).unwrap();
        let u = c.url(&["domains", "a.example", "renew"], &[]).unwrap();
        assert_eq!(
            u.as_str(),
            "https://admin.internal/edge/v1/domains/a.example/renew"
        );
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(matches!(
            ApiClient::new("not a url", "t", None),
            Err(ClientError::BadUrl { .. })
        ));
        assert!(matches!(
            ApiClient::new("ftp://x", "t", None),
            Err(ClientError::BadUrl { .. })
        ));
    }

    #[test]
    fn error_bodies_are_read() {
        let e = api_error(
            StatusCode::BAD_REQUEST,
            r#"{"error":{"code":"wildcard_not_supported","message":"no"}}"#,
        );
        assert_eq!(e.to_string(), "wildcard_not_supported: no (HTTP 400)");
        let e = api_error(StatusCode::BAD_GATEWAY, "<html>");
        assert!(matches!(e, ClientError::Unexpected { status: 502, .. }));
    }
}
