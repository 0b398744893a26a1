//! Page cursors and time keys shared by both stores.
//!
//! Owns the (opaque to callers) text form of list cursors and the millisecond
//! scores that order and expire records, so that both implementations page
//! and compare times identically. It must not know about any backend.

use chrono::{DateTime, Utc};

/// The millisecond score of a time (the unit of every index in both stores).
pub(crate) fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// A cursor naming the last item of a page ordered by `(score, id)`.
pub(crate) fn encode(score: i64, id: &str) -> String {
    format!("{score}:{id}")
}

/// Reads a cursor made by [`encode`]; `None` when it is not one.
pub(crate) fn decode(cursor: &str) -> Option<(i64, String)> {
    let (score, id) = cursor.split_once(':')?;
    Some((score.parse().ok()?, id.to_owned()))
}

/// Reads an event-log cursor (`<ms>-<seq>`, a stream id); `None` when it is
/// not one.
pub(crate) fn decode_log(cursor: &str) -> Option<(u64, u64)> {
    let (ms, seq) = cursor.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The millisecond length of a duration, saturating.
pub(crate) fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        assert_eq!(decode(&encode(-5, "a:b")), Some((-5, "a:b".into())));
        assert_eq!(decode("x:y"), None);
        assert_eq!(decode("nocolon"), None);
        assert_eq!(decode_log("17-3"), Some((17, 3)));
        assert_eq!(decode_log("17"), None);
        assert_eq!(decode_log("a-1"), None);
    }
}
