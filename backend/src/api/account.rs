//! `GET /v1/account`: the ACME account the service uses with its CA.

use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::ApiState;
use super::error::ApiError;
use super::json;

/// The account, or 404 before the first issuance registered it.
pub fn route(state: ApiState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("account").and(warp::get()).then(move || {
        let state = state.clone();
        async move {
            match state.store.account(&state.directory_url).await {
                Ok(Some(a)) => warp::reply::json(&json::AccountInfo {
                    directory_url: a.directory_url,
                    account_url: a.account_url,
                    created_at: a.created_at,
                })
                .into_response(),
                Ok(None) => {
                    ApiError::NotFound("no ACME account yet (created on first issuance)".into())
                        .into_response()
                }
                Err(e) => ApiError::from(e).into_response(),
            }
        }
    })
}
