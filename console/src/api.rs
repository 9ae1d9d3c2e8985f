//! Requests to the admin API, same origin, with the bearer token in the `Authorization`
//! header (never in a URL, never in a cookie).
//!
//! This module knows requests and the API's error shape, not who is signed in: the session
//! holds the [`Api`], and the views decide what an error means on the page.

use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, Response};

use crate::json::ErrorResponse;

/// Why a request gave no usable answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The API answered with an error: its status, code and message.
    Status {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer (backend down, connection cut).
    Network(String),
    /// An answer the console cannot read.
    Decode(String),
}

impl ApiError {
    /// The API's stable error code, when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Status { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when the API answered (401: the token was refused).
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Status { message, code, .. } => write!(f, "{message} ({code})"),
            ApiError::Network(e) => write!(f, "the admin API did not answer: {e}"),
            ApiError::Decode(e) => write!(f, "unreadable answer from the admin API: {e}"),
        }
    }
}

/// The admin API, as one signed-in operator.
#[derive(Clone)]
pub struct Api {
    token: String,
}

impl Api {
    /// The API as the holder of `token`, trimmed (a pasted token often brings a newline).
    pub fn new(token: &str) -> Api {
        Api {
            token: token.trim().to_owned(),
        }
    }

    /// The token, for the session to keep in the tab.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `GET path`, decoded.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.call("GET", path).await
    }

    /// `method path` with an empty body, decoded.
    pub async fn call<T: DeserializeOwned>(&self, method: &str, path: &str) -> Result<T, ApiError> {
        let (status, body) = self.raw(method, path).await?;
        if !(200..300).contains(&status) {
            return Err(error_from(status, &body));
        }
        serde_json::from_str(&body).map_err(|e| ApiError::Decode(e.to_string()))
    }

    /// The fetch `Response` itself (the event stream reads its body as it arrives).
    pub async fn open(
        &self,
        path: &str,
        signal: Option<&web_sys::AbortSignal>,
    ) -> Result<Response, ApiError> {
        let init = self.init("GET", "text/event-stream")?;
        init.set_signal(signal);
        fetch(path, &init).await
    }

    /// The status and the body as text, whatever the status: an error's reason is in its body.
    async fn raw(&self, method: &str, path: &str) -> Result<(u16, String), ApiError> {
        let init = self.init(method, "application/json")?;
        let response = fetch(path, &init).await?;
        let text = response.text().map_err(js_network)?;
        let text = JsFuture::from(text).await.map_err(js_network)?;
        Ok((response.status(), text.as_string().unwrap_or_default()))
    }

    /// A request with the token and what it accepts.
    fn init(&self, method: &str, accept: &str) -> Result<RequestInit, ApiError> {
        let headers = Headers::new().map_err(js_network)?;
        headers
            .set("Authorization", &format!("Bearer {}", self.token))
            .map_err(js_network)?;
        headers.set("Accept", accept).map_err(js_network)?;
        let init = RequestInit::new();
        init.set_method(method);
        init.set_headers(&headers);
        // Same origin only; the token never follows a redirect elsewhere.
        init.set_mode(web_sys::RequestMode::SameOrigin);
        // The bearer token is the only credential: no cookie rides along.
        init.set_credentials(web_sys::RequestCredentials::Omit);
        // A domain's state changes under the page; a cached answer would show an old one.
        init.set_cache(web_sys::RequestCache::NoStore);
        Ok(init)
    }
}

/// `window.fetch`: an answer with any status is a `Response`; only no answer is an error.
async fn fetch(path: &str, init: &RequestInit) -> Result<Response, ApiError> {
    let request = Request::new_with_str_and_init(path, init).map_err(js_network)?;
    let window = web_sys::window().ok_or_else(|| ApiError::Network("no window".into()))?;
    let response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(js_network)?;
    response
        .dyn_into::<Response>()
        .map_err(|_| ApiError::Network("not a response".into()))
}

/// The API's `{"error": ...}`, or the status alone when the body is not one.
pub fn error_from(status: u16, body: &str) -> ApiError {
    match serde_json::from_str::<ErrorResponse>(body) {
        Ok(e) => ApiError::Status {
            status,
            code: e.error.code,
            message: e.error.message,
        },
        Err(_) => ApiError::Status {
            status,
            code: format!("http_{status}"),
            message: format!("HTTP status {status}"),
        },
    }
}

/// A JS exception as a network error, with its message when it has one (a `TypeError` from
/// `fetch`, say).
fn js_network(e: JsValue) -> ApiError {
    ApiError::Network(
        e.as_string()
            .or_else(|| {
                e.dyn_ref::<js_sys::Error>()
                    .map(|e| String::from(e.message()))
            })
            .unwrap_or_else(|| "request failed".into()),
    )
}

/// A path segment: names are percent-encoded (internationalised names typed as UTF-8).
pub fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from the pairs whose value is not empty (`?a=1&b=2`, or nothing).
pub fn query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", segment(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("a.example"), "a.example");
        assert_eq!(segment("ü/x?"), "%C3%BC%2Fx%3F");
    }

    #[test]
    fn empty_values_are_left_out_of_queries() {
        assert_eq!(query(&[("q", ""), ("state", "")]), "");
        assert_eq!(query(&[("limit", "50"), ("q", "a b")]), "?limit=50&q=a%20b");
    }

    #[test]
    fn errors_carry_the_api_reason() {
        let e = error_from(
            400,
            r#"{"error":{"code":"invalid_domain","message":"bad name"}}"#,
        );
        assert_eq!(e.code(), Some("invalid_domain"));
        assert_eq!(e.to_string(), "bad name (invalid_domain)");
        assert_eq!(error_from(502, "<html>").code(), Some("http_502"));
    }
}
