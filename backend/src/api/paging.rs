//! `GET /v1/domains` query parameters: keyset pages by name (`limit`, `after`), a substring
//! of the name (`q`) and a state (`state`).
//!
//! The cursor is the last name of the page (opaque to clients; names need no escaping in a
//! query string). Any text is a valid cursor: the page holds the names sorting after it.

use std::collections::HashMap;

use super::error::ApiError;
use super::json::DomainState;
use crate::model::Domain;
use crate::store::DomainQuery;

/// Domains per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 1000;
/// The longest `q` accepted: a whole domain name.
pub const MAX_QUERY_LEN: usize = 253;

/// A parsed page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    pub state: Option<DomainState>,
    pub after: Option<String>,
    pub contains: Option<String>,
    pub limit: usize,
}

impl PageQuery {
    pub fn parse(query: &HashMap<String, String>) -> Result<PageQuery, ApiError> {
        let mut page = PageQuery {
            state: None,
            after: None,
            contains: None,
            limit: DEFAULT_LIMIT,
        };
        for (key, value) in query {
            match key.as_str() {
                "state" => page.state = Some(parse_state(value)?),
                "limit" => page.limit = parse_limit(value)?,
                "after" => page.after = Some(decode_cursor(value)?),
                "q" => page.contains = parse_contains(value)?,
                other => {
                    return Err(ApiError::InvalidQuery(format!(
                        "unknown parameter {other:?}"
                    )));
                }
            }
        }
        Ok(page)
    }

    /// What to ask the store: one row more than the page, to know whether another follows.
    pub fn store_query(&self) -> DomainQuery {
        DomainQuery {
            state: self.state,
            after: self.after.clone(),
            contains: self.contains.clone(),
            limit: self.limit + 1,
        }
    }

    /// Cut `rows` (from [`Self::store_query`]) to the page; the cursor of the next page
    /// when there is one.
    pub fn next_cursor(&self, rows: &mut Vec<Domain>) -> Option<String> {
        if rows.len() <= self.limit {
            return None;
        }
        rows.truncate(self.limit);
        rows.last().map(|d| encode_cursor(&d.name))
    }
}

fn parse_state(value: &str) -> Result<DomainState, ApiError> {
    DomainState::parse(value).ok_or_else(|| {
        ApiError::InvalidQuery(format!(
            "state must be one of pending, validating, issued, failed, disabled (got {value:?})"
        ))
    })
}

fn parse_limit(value: &str) -> Result<usize, ApiError> {
    match value.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::InvalidQuery(format!(
            "limit must be a whole number from 1 to {MAX_LIMIT} (got {value:?})"
        ))),
    }
}

/// Letters, digits, `.` and `-` only (so no `LIKE` wildcard reaches the store), lower-cased
/// as names are stored; empty means no filter.
fn parse_contains(value: &str) -> Result<Option<String>, ApiError> {
    if value.len() > MAX_QUERY_LEN {
        return Err(ApiError::InvalidQuery(format!(
            "q is at most {MAX_QUERY_LEN} characters"
        )));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(ApiError::InvalidQuery(
            "q may hold only letters, digits, '.' and '-' (internationalised names in their xn-- form)".into(),
        ));
    }
    Ok((!value.is_empty()).then(|| value.to_ascii_lowercase()))
}

pub fn encode_cursor(name: &str) -> String {
    name.to_owned()
}

fn decode_cursor(value: &str) -> Result<String, ApiError> {
    if value.len() > MAX_QUERY_LEN {
        return Err(ApiError::InvalidQuery(format!(
            "after is at most {MAX_QUERY_LEN} characters"
        )));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<PageQuery, ApiError> {
        let map = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        PageQuery::parse(&map)
    }

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(parse(&[]).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(parse(&[("limit", "1000")]).unwrap().limit, 1000);
        for bad in ["0", "1001", "-1", "x", ""] {
            assert!(parse(&[("limit", bad)]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = encode_cursor("a.example");
        assert_eq!(
            parse(&[("after", &c)]).unwrap().after.as_deref(),
            Some("a.example")
        );
        assert!(parse(&[("after", &"a".repeat(254))]).is_err());
    }

    #[test]
    fn substrings_hold_no_wildcards() {
        assert_eq!(
            parse(&[("q", "Shop.EX")]).unwrap().contains.as_deref(),
            Some("shop.ex")
        );
        assert_eq!(parse(&[("q", "")]).unwrap().contains, None);
        for bad in ["%", "_", "a b", "a'b", &"a".repeat(254)] {
            assert!(parse(&[("q", bad)]).is_err(), "{bad:?}");
        }
    }
}
