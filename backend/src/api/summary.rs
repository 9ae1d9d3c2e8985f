//! `GET /v1/summary`: the fleet at a glance — domains per state, certificates by expiry
//! (with a week-by-week histogram), failures by reason.

use time::{Duration, OffsetDateTime};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::ApiState;
use super::error::ApiError;
use super::json::{DomainState, ExpiringCounts, ExpiryWeek, FailureCount, StateCounts, Summary};
use crate::store::ExpiryCounts;

/// Weeks in the expiry histogram: a quarter.
pub const HISTOGRAM_WEEKS: u32 = 13;

/// The `/summary` route (below `/v1`, already authorised).
pub fn route(state: ApiState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("summary").and(warp::get()).then(move || {
        let state = state.clone();
        async move {
            match summary(&state, OffsetDateTime::now_utc()).await {
                Ok(s) => warp::reply::json(&s).into_response(),
                Err(e) => e.into_response(),
            }
        }
    })
}

async fn summary(state: &ApiState, now: OffsetDateTime) -> Result<Summary, ApiError> {
    // Whole seconds, as the store keeps times.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let store = state.store.as_ref();
    let states = state_counts(&store.count_by_state().await?);
    let expiry = store.expiry_by_day(now, HISTOGRAM_WEEKS * 7).await?;
    let failures = store
        .failure_reasons()
        .await?
        .into_iter()
        .map(|(reason, count)| FailureCount { reason, count })
        .collect();
    Ok(Summary {
        generated_at: now,
        total: states.pending + states.validating + states.issued + states.failed + states.disabled,
        states,
        expiring: expiring(&expiry),
        earliest_expiry: store.earliest_expiry().await?,
        failures,
        expiry_weeks: weeks(&expiry, now),
    })
}

fn state_counts(counts: &[(DomainState, u64)]) -> StateCounts {
    let mut out = StateCounts::default();
    for &(state, n) in counts {
        let slot = match state {
            DomainState::Pending => &mut out.pending,
            DomainState::Validating => &mut out.validating,
            DomainState::Issued => &mut out.issued,
            DomainState::Failed => &mut out.failed,
            DomainState::Disabled => &mut out.disabled,
        };
        *slot += n;
    }
    out
}

fn within(expiry: &ExpiryCounts, days: usize) -> u64 {
    expiry.by_day.iter().take(days).sum()
}

fn expiring(expiry: &ExpiryCounts) -> ExpiringCounts {
    ExpiringCounts {
        expired: expiry.expired,
        within_7_days: within(expiry, 7),
        within_14_days: within(expiry, 14),
        within_30_days: within(expiry, 30),
    }
}

fn weeks(expiry: &ExpiryCounts, now: OffsetDateTime) -> Vec<ExpiryWeek> {
    (0..HISTOGRAM_WEEKS)
        .map(|w| {
            let first = w as usize * 7;
            ExpiryWeek {
                start: now + Duration::weeks(i64::from(w)),
                end: now + Duration::weeks(i64::from(w) + 1),
                count: expiry.by_day.iter().skip(first).take(7).sum(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_add_up_to_windows_and_weeks() {
        let mut by_day = vec![0; 91];
        by_day[0] = 1;
        by_day[6] = 2;
        by_day[7] = 4;
        by_day[29] = 8;
        by_day[30] = 16;
        by_day[90] = 32;
        let expiry = ExpiryCounts { expired: 5, by_day };
        let e = expiring(&expiry);
        assert_eq!(
            (
                e.expired,
                e.within_7_days,
                e.within_14_days,
                e.within_30_days
            ),
            (5, 3, 7, 15)
        );
        let now = time::macros::datetime!(2026-01-01 00:00 UTC);
        let w = weeks(&expiry, now);
        assert_eq!(w.len(), 13);
        assert_eq!(w[0].count, 3);
        assert_eq!(w[1].count, 4);
        assert_eq!(w[4].count, 16 + 8);
        assert_eq!(w[12].count, 32);
        assert_eq!(w[12].end, now + Duration::weeks(13));
    }
}
