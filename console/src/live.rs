//! Live updates: `GET /v1/events` read through `fetch` (an `EventSource` cannot send the
//! `Authorization` header), each event applied to what the page shows. While the stream is
//! down (or the backend has none) the page polls what it shows every few seconds, and the
//! stream is tried again.
//!
//! What an event changes on the page is not this module's business: it reads events and hands
//! them to the [`Page`] the app gives it, and it stops when the session it started in ends
//! (see [`session::generation`]).

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{ReadableStreamDefaultReader, Response};

use crate::api::{Api, ApiError, error_from};
use crate::dom;
use crate::json::{Deleted, Domain};
use crate::session;
use crate::sse::{Event, Parser};

/// Between two polls (and stream attempts) while the stream is down.
const POLL_INTERVAL_MS: i32 = 3_000;

/// What the events change: the page as the app shows it. Live updates know no view; the app
/// implements this with the views.
pub trait Page: 'static {
    /// A domain changed: update wherever it is shown.
    fn apply(&self, domain: &Domain);
    /// A domain was deleted: say so wherever it is shown.
    fn forget(&self, name: &str);
    /// Read again what is shown (after reconnecting, on `resync`, and at each poll).
    fn refresh(&self) -> impl Future<Output = ()>;
}

/// Run until the session `generation` ends, applying the events to `page`.
pub fn start(api: Api, generation: u64, page: impl Page) {
    spawn_local(async move {
        while session::generation() == generation {
            // To close the request of a session that has ended, not only stop reading it.
            let controller = web_sys::AbortController::new().ok();
            let signal = controller.as_ref().map(|c| c.signal());
            let outcome = stream(&api, generation, signal.as_ref(), &page).await;
            if session::generation() != generation {
                if let Some(c) = controller {
                    c.abort();
                }
                return;
            }
            // Only a refused token ends the session; anything else (a backend without the
            // stream, a cut connection) falls back to polling.
            if let Err(e) = outcome
                && e.status() == Some(401)
            {
                session::sign_out(Some("The admin API refused the token; sign in again."));
                return;
            }
            show("Polling (no event stream)");
            page.refresh().await;
            sleep(POLL_INTERVAL_MS).await;
        }
    });
}

/// The indicator in the navigation: following the stream, or polling.
fn show(state: &str) {
    if let Some(e) = dom::by_id("live") {
        e.set_text_content(Some(state));
    }
}

/// Read the stream until it ends, the session ends, or it fails.
async fn stream(
    api: &Api,
    generation: u64,
    signal: Option<&web_sys::AbortSignal>,
    page: &impl Page,
) -> Result<(), ApiError> {
    let response = api.open("/v1/events", signal).await?;
    if !response.ok() {
        let body = match response.text() {
            Ok(p) => JsFuture::from(p).await.ok().and_then(|v| v.as_string()),
            Err(_) => None,
        };
        return Err(error_from(response.status(), &body.unwrap_or_default()));
    }
    let reader = reader(&response)?;
    show("Live");
    // No replay: what changed while disconnected is read again.
    page.refresh().await;
    let mut parser = Parser::default();
    while session::generation() == generation {
        let chunk = JsFuture::from(reader.read()).await.map_err(network)?;
        // The result is a plain `{done, value}` object; one that cannot be read ends the
        // stream like `done`.
        if Reflect::get(&chunk, &JsValue::from_str("done"))
            .map(|d| d.is_truthy())
            .unwrap_or(true)
        {
            break;
        }
        let Ok(value) = Reflect::get(&chunk, &JsValue::from_str("value")) else {
            break;
        };
        let bytes = Uint8Array::new(&value).to_vec();
        for event in parser.push(&bytes) {
            apply(event, page).await;
        }
    }
    let _ = reader.cancel();
    Ok(())
}

/// The body's reader, to read the stream chunk by chunk as it arrives.
fn reader(response: &Response) -> Result<ReadableStreamDefaultReader, ApiError> {
    let body = response
        .body()
        .ok_or_else(|| ApiError::Network("the event stream has no body".into()))?;
    body.get_reader()
        .dyn_into::<ReadableStreamDefaultReader>()
        .map_err(|_| ApiError::Network("no reader for the event stream".into()))
}

/// Apply one event. Each carries the domain as it is when sent, so a late or repeated one is
/// harmless; one that does not parse, or of a type this console does not know (a newer
/// backend), is skipped.
async fn apply(event: Event, page: &impl Page) {
    match event.kind.as_str() {
        "domain" => {
            if let Ok(d) = serde_json::from_str::<Domain>(&event.data) {
                page.apply(&d);
            }
        }
        "deleted" => {
            if let Ok(d) = serde_json::from_str::<Deleted>(&event.data) {
                page.forget(&d.name);
            }
        }
        "resync" => page.refresh().await,
        _ => {}
    }
}

/// A failed read: the connection was cut.
fn network(e: JsValue) -> ApiError {
    ApiError::Network(e.as_string().unwrap_or_else(|| "stream cut".into()))
}

/// Wait `ms` milliseconds.
pub async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}
