//! `GET /v1/capacity`: what the account can sustain before a limit bites
//! ([`crate::policy::capacity`]), from the served certificates' lifetimes and the names
//! waiting for their first one.

use time::OffsetDateTime;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::ApiState;
use super::error::ApiError;
use super::json::{Capacity, LifetimeLoad};
use crate::policy::capacity::{self, Lifetimes, Load, Pacing};
use crate::store::{Store, StoreError};

/// The `/capacity` route (below `/v1`, already authorised).
pub fn route(state: ApiState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("capacity").and(warp::get()).then(move || {
        let state = state.clone();
        async move {
            let now = OffsetDateTime::now_utc();
            match compute(state.store.as_ref(), state.pacing, now).await {
                Ok(c) => warp::reply::json(&as_json(&c, now)).into_response(),
                Err(e) => ApiError::from(e).into_response(),
            }
        }
    })
}

/// The capacity of the domains in `store` under `pacing`, as of `now`.
pub async fn compute(
    store: &dyn Store,
    pacing: Pacing,
    now: OffsetDateTime,
) -> Result<capacity::Capacity, StoreError> {
    let (lifetimes, new_names) = store.lifetimes().await?;
    let load = Load {
        lifetimes: (lifetimes.into_iter())
            .map(|(lifetime, certificates)| Lifetimes {
                lifetime,
                certificates,
            })
            .collect(),
        new_names,
        pacing,
    };
    Ok(capacity::capacity(&load, now))
}

fn as_json(c: &capacity::Capacity, now: OffsetDateTime) -> Capacity {
    Capacity {
        generated_at: now.replace_nanosecond(0).unwrap_or(now),
        renewals_per_day: c.renewals_per_day,
        budget_per_day: c.budget_per_day,
        renewals_spend_budget: c.renewals_spend_budget,
        left_for_new_per_day: c.left_for_new_per_day,
        headroom_ratio: c.headroom_ratio,
        new_names_waiting: c.new_names,
        days_to_order_new_names: c.days_to_order_new_names,
        first_day_at_risk: c
            .first_day_at_risk
            .map(|at| at.replace_nanosecond(0).unwrap_or(at)),
        by_lifetime: (c.by_lifetime.iter())
            .map(|l| LifetimeLoad {
                lifetime_days: l.lifetime.as_secs() / 86_400,
                certificates: l.certificates,
                renewals_per_day: l.renewals_per_day,
            })
            .collect(),
    }
}
