//! `GET /v1/events`: domain changes as server-sent events.
//!
//! Fed by the store's change feed ([`StoreSource`](crate::store::source::StoreSource)), the
//! one that drives SDS: this process's changes, and on PostgreSQL every replica's (the
//! store's change notifications). Each event carries the domain as it is when the event is
//! sent, so a repeated or late event is harmless.
//!
//! - `event: domain`, `data:` the [`Domain`] JSON;
//! - `event: deleted`, `data: {"name": ...}` when the domain is gone;
//! - `event: resync`, `data: {}` when this stream fell behind: re-list, then carry on.

use std::convert::Infallible;
use std::time::Duration;

use futures::StreamExt;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, ReceiverStream};
use warp::reply::Response;
use warp::sse::Event;
use warp::{Filter, Rejection, Reply};

use super::ApiState;
use super::json::Domain;

/// A comment line this often keeps proxies from closing a quiet stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events waiting for a slow client before this stream stops reading the feed (it then
/// falls behind the feed and gets `resync`).
const EVENTS_QUEUED: usize = 64;

/// The route (below `/v1`, already authorised).
pub fn route(state: ApiState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("events").and(warp::get()).map(move || {
        let (tx, rx) = tokio::sync::mpsc::channel(EVENTS_QUEUED);
        tokio::spawn(forward(state.clone(), tx));
        let events = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
        warp::sse::reply(warp::sse::keep_alive().interval(KEEP_ALIVE).stream(events))
            .into_response()
    })
}

/// Turn changes into events for one client until it goes away (or the feed ends).
async fn forward(state: ApiState, tx: tokio::sync::mpsc::Sender<Event>) {
    let mut changes = BroadcastStream::new(state.source.subscribe_domains());
    loop {
        let change = tokio::select! {
            () = tx.closed() => return,
            change = changes.next() => match change {
                Some(change) => change,
                None => return,
            },
        };
        if tx.send(event_for(&state, change).await).await.is_err() {
            return;
        }
    }
}

pub(super) async fn event_for(
    state: &ApiState,
    change: Result<String, BroadcastStreamRecvError>,
) -> Event {
    let resync = || Event::default().event("resync").data("{}");
    let Ok(name) = change else {
        return resync();
    };
    match state.store.domain(&name).await {
        Ok(Some(domain)) => Event::default()
            .event("domain")
            .json_data(Domain::from(domain))
            .unwrap_or_else(|_| resync()),
        Ok(None) => Event::default()
            .event("deleted")
            .json_data(serde_json::json!({ "name": name }))
            .unwrap_or_else(|_| resync()),
        Err(e) => {
            tracing::warn!(error = %e, "admin API: reading a changed domain for the event stream");
            resync()
        }
    }
}
