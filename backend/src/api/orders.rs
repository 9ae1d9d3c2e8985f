//! `GET /v1/domains/{name}/orders`: the domain's orders from the order log, newest first.

use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::ApiState;
use super::domains::{domain_param, not_found};
use super::error::ApiError;
use super::json::{LastError, OrderEntry, OrderList};
use crate::store::OrderRecord;

/// Orders shown per domain.
pub const HISTORY_LIMIT: usize = 100;

/// The route (below `/v1`, already authorised).
pub fn route(state: ApiState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("domains" / String / "orders")
        .and(warp::get())
        .then(move |name: String| {
            let state = state.clone();
            async move {
                match history(&state, &name).await {
                    Ok(list) => warp::reply::json(&list).into_response(),
                    Err(e) => e.into_response(),
                }
            }
        })
}

async fn history(state: &ApiState, raw: &str) -> Result<OrderList, ApiError> {
    let name = domain_param(raw)?;
    if state.store.domain(name.as_str()).await?.is_none() {
        return Err(not_found(&name));
    }
    let records = state
        .store
        .order_history(name.as_str(), HISTORY_LIMIT)
        .await?;
    Ok(OrderList {
        orders: records.into_iter().map(entry).collect(),
    })
}

fn entry(r: OrderRecord) -> OrderEntry {
    let outcome = match (&r.outcome, r.closed_at) {
        (Some(o), _) => o.clone(),
        (None, None) => "open".to_owned(),
        (None, Some(_)) => "unknown".to_owned(),
    };
    // Only a failed order shows its failure; one that went on to succeed had passed it.
    let problem = (outcome == "failed")
        .then(|| {
            r.problem
                .as_deref()
                .and_then(|json| serde_json::from_str::<LastError>(json).ok())
        })
        .flatten();
    OrderEntry {
        order_url: r.order_url,
        created_at: r.created_at,
        closed_at: r.closed_at,
        kind: r.kind.unwrap_or_else(|| "unknown".to_owned()),
        resumed: r.resumed,
        outcome,
        problem,
    }
}
