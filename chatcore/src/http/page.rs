//! Cursor paging shared by the list routes: the `limit` rule (400
//! `invalid_query` outside 1 to the maximum) and the next page's cursor.

use super::error::ApiError;

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest `limit` a list route accepts.
pub const MAX_LIMIT: u32 = 1000;

/// `limit`, or [`DEFAULT_LIMIT`]; 1 to [`MAX_LIMIT`].
pub fn limit(given: Option<u32>) -> Result<u32, ApiError> {
    limit_within(given, DEFAULT_LIMIT, MAX_LIMIT)
}

/// `limit`, or `default`; 1 to `max`.
pub fn limit_within(given: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = given.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {max}"),
        ));
    }
    Ok(limit)
}

/// The cursor of the page after `rows`: the last row's, when the page is
/// full (a shorter page is the last).
pub fn next_cursor<R, C>(rows: &[R], limit: u32, cursor: impl FnOnce(&R) -> C) -> Option<C> {
    if rows.len() as u32 == limit {
        rows.last().map(cursor)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_refuses_out_of_range() {
        assert_eq!(limit(None).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(limit(Some(1)).ok(), Some(1));
        assert_eq!(limit(Some(MAX_LIMIT)).ok(), Some(MAX_LIMIT));
        for bad in [0, MAX_LIMIT + 1] {
            let e = limit(Some(bad)).err();
            assert_eq!(
                e.map(|e| (e.status.as_u16(), e.code, e.message)),
                Some((400, "invalid_query", "limit must be 1 to 1000".to_string()))
            );
        }
        assert_eq!(limit_within(None, 20, 100).ok(), Some(20));
        assert!(limit_within(Some(101), 20, 100).is_err());
    }

    #[test]
    fn a_full_page_has_a_next_cursor_a_short_one_none() {
        let rows = ["a", "b", "c"];
        assert_eq!(next_cursor(&rows, 3, |r| r.to_string()), Some("c".into()));
        assert_eq!(next_cursor(&rows, 4, |r| r.to_string()), None);
        assert_eq!(next_cursor::<&str, String>(&[], 1, |r| r.to_string()), None);
    }
}
