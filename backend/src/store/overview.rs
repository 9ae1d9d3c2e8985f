//! What the admin API shows of the whole fleet of domains ([`Overview`]): a page of domains
//! by name, certificates by expiry, failures by reason.
//!
//! Pages are keyset pages on the name (`name > $after ORDER BY name LIMIT n`): each one
//! reads only its own rows from an index (the primary key, or `domains_state_name` when a
//! state is asked for), however many domains there are, and a name added or removed
//! meanwhile neither repeats nor hides another. The substring filter is checked on the rows
//! the index walk reads, so it too stops at the page's end.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};
use time::OffsetDateTime;

use super::StoreError;
use super::engine::Engine;
use super::rows::{domain_from_row, ts};
use super::sql::{SELECT_DOMAIN, SqlStore};
use crate::model::{Domain, DomainState, LastError};

/// Which domains a page holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainQuery {
    /// Only domains in this state.
    pub state: Option<DomainState>,
    /// Only names sorting after this one (the last name of the previous page).
    pub after: Option<String>,
    /// Only names containing this text. The caller keeps it to name characters (letters,
    /// digits, `.`, `-`), so it holds no `LIKE` wildcard.
    pub contains: Option<String>,
    pub limit: usize,
}

/// Served certificates by expiry, from a time `now`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiryCounts {
    /// Expired already (`not_after < now`).
    pub expired: u64,
    /// `by_day[i]`: expiring in `[now + i days, now + (i + 1) days)`.
    pub by_day: Vec<u64>,
}

/// The fleet as a whole, for the admin API.
#[async_trait]
pub trait Overview {
    /// Domains matching `query`, by name, at most `query.limit`.
    async fn domain_page(&self, query: &DomainQuery) -> Result<Vec<Domain>, StoreError>;
    /// Served certificates (domain not disabled, certificate stored) by day of expiry, for
    /// `days` days from `now`.
    async fn expiry_by_day(
        &self,
        now: OffsetDateTime,
        days: u32,
    ) -> Result<ExpiryCounts, StoreError>;
    /// Failed domains by the reason of their last error, largest count first.
    async fn failure_reasons(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// Served certificates by lifetime (to the day), and the names not disabled that have no
    /// certificate yet: what the account's capacity is computed from.
    async fn lifetimes(&self) -> Result<(Vec<(Duration, u64)>, u64), StoreError>;
}

const DAY_SECS: i64 = 86_400;

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl<DB> Overview for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    async fn domain_page(&self, query: &DomainQuery) -> Result<Vec<Domain>, StoreError> {
        let mut conditions = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        if let Some(state) = query.state {
            binds.push(state.as_str().to_owned());
            conditions.push(format!("state = ${}", binds.len()));
        }
        if let Some(after) = &query.after {
            binds.push(after.clone());
            conditions.push(format!("name > ${}", binds.len()));
        }
        if let Some(text) = &query.contains {
            binds.push(format!("%{text}%"));
            conditions.push(format!("name LIKE ${}", binds.len()));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "{SELECT_DOMAIN}{filter} ORDER BY name LIMIT ${}",
            binds.len() + 1
        );
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b.as_str());
        }
        let rows = q
            .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(domain_from_row).collect()
    }

    async fn expiry_by_day(
        &self,
        now: OffsetDateTime,
        days: u32,
    ) -> Result<ExpiryCounts, StoreError> {
        let now = ts(now);
        let end = now + i64::from(days) * DAY_SECS;
        // Whole days from `now`; -1 for everything expired already. Integer division on
        // both engines.
        let rows = sqlx::query(
            "SELECT CASE WHEN not_after < $1 THEN -1 ELSE (not_after - $1) / $2 END AS day, \
             COUNT(*) AS n FROM domains \
             WHERE state <> 'disabled' AND chain_pem IS NOT NULL AND not_after < $3 \
             GROUP BY 1",
        )
        .bind(now)
        .bind(DAY_SECS)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = ExpiryCounts {
            expired: 0,
            by_day: vec![0; days as usize],
        };
        for row in &rows {
            let day: i64 = row.try_get("day")?;
            let n = count(row.try_get("n")?);
            match usize::try_from(day) {
                Ok(i) => {
                    if let Some(slot) = counts.by_day.get_mut(i) {
                        *slot += n;
                    }
                }
                Err(_) => counts.expired += n,
            }
        }
        Ok(counts)
    }

    async fn failure_reasons(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query("SELECT last_error FROM domains WHERE state = 'failed'")
            .fetch_all(&self.pool)
            .await?;
        let mut by_reason = std::collections::BTreeMap::<String, u64>::new();
        for row in &rows {
            let json: Option<String> = row.try_get("last_error")?;
            let reason = match json {
                Some(json) => {
                    serde_json::from_str::<LastError>(&json)
                        .map_err(|e| StoreError::Corrupt(format!("last_error: {e}")))?
                        .reason
                }
                None => "unknown".to_owned(),
            };
            *by_reason.entry(reason).or_default() += 1;
        }
        let mut reasons: Vec<(String, u64)> = by_reason.into_iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(reasons)
    }

    async fn lifetimes(&self) -> Result<(Vec<(Duration, u64)>, u64), StoreError> {
        // Lifetimes to the day: certificates of one profile differ by seconds.
        let rows = sqlx::query(
            "SELECT (not_after - not_before + 43200) / 86400 AS days, COUNT(*) AS n \
             FROM domains WHERE state <> 'disabled' AND chain_pem IS NOT NULL \
             AND not_after > not_before GROUP BY (not_after - not_before + 43200) / 86400",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut lifetimes = Vec::with_capacity(rows.len());
        for row in &rows {
            let days = u64::try_from(row.try_get::<i64, _>("days")?).unwrap_or(0);
            lifetimes.push((
                Duration::from_secs(days.max(1) * 86_400),
                count(row.try_get("n")?),
            ));
        }
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM domains WHERE state <> 'disabled' AND chain_pem IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((lifetimes, count(row.try_get("n")?)))
    }
}
