//! Reading stored rows back into the model, shared by every SQL store: both keep the same
//! columns, with timestamps as Unix seconds.

use sqlx::{ColumnIndex, Decode, Row, Type};
use time::OffsetDateTime;

use super::{Claim, StoreError};
use crate::model::{Domain, DomainState, KeyType, LastError};

pub(super) fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

pub(super) fn from_ts(secs: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {secs}: {e}")))
}

pub(super) fn opt_ts<R: Row>(row: &R, column: &str) -> Result<Option<OffsetDateTime>, StoreError>
where
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get::<Option<i64>, _>(column)?
        .map(from_ts)
        .transpose()
}

pub(super) fn domain_from_row<R: Row>(row: &R) -> Result<Domain, StoreError>
where
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    let key_type: String = row.try_get("key_type")?;
    let last_error: Option<String> = row.try_get("last_error")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(Domain {
        name: row.try_get("name")?,
        state: DomainState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("domain state {state:?}")))?,
        key_type: parse_key_type(&key_type)?,
        profile: row.try_get("profile")?,
        not_before: opt_ts(row, "not_before")?,
        not_after: opt_ts(row, "not_after")?,
        renew_at: opt_ts(row, "renew_at")?,
        retry_at: opt_ts(row, "retry_at")?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        last_error: last_error
            .map(|json| {
                serde_json::from_str::<LastError>(&json)
                    .map_err(|e| StoreError::Corrupt(format!("last_error: {e}")))
            })
            .transpose()?,
        created_at: from_ts(row.try_get("created_at")?)?,
        updated_at: from_ts(row.try_get("updated_at")?)?,
    })
}

fn parse_key_type(s: &str) -> Result<KeyType, StoreError> {
    KeyType::parse(s).ok_or_else(|| StoreError::Corrupt(format!("key type {s:?}")))
}

pub(super) fn claim_from_row<R: Row>(row: &R, lease: &str) -> Result<Claim, StoreError>
where
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    let key_type: String = row.try_get("key_type")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(Claim {
        name: row.try_get("name")?,
        key_type: parse_key_type(&key_type)?,
        profile: row.try_get("profile")?,
        lease: lease.to_owned(),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        renewal: row.try_get("renewal")?,
        resumed: row.try_get("resumed")?,
    })
}
