//! `GET /v1/ca`: the CA's health as this replica sees it ([`crate::acme::health`]): whether
//! issuance is paused because the CA is unavailable, since when, and the last problem.

use std::sync::Arc;

use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::json::CaStatus;
use crate::acme::health::CaHealth;

pub fn routes(
    health: Arc<CaHealth>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("ca")
        .and(warp::get())
        .map(move || warp::reply::json(&status(&health)).into_response())
}

/// The health as the API shows it.
pub fn status(health: &CaHealth) -> CaStatus {
    let snapshot = health.snapshot();
    CaStatus {
        state: snapshot.state.to_owned(),
        since: snapshot.since,
        last_problem: snapshot.last_problem,
    }
}
