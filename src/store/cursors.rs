//! Whether a text is a cursor the stores hand out, for the HTTP layer to
//! refuse anything else with a 400 instead of answering an empty page.
//!
//! The format itself stays private to the `cursor` module; this file only
//! exposes the two checks, and must not page or decode for callers.

/// True for a list cursor (`next_cursor` of the sessions and live-calls
/// lists).
pub fn is_page_cursor(cursor: &str) -> bool {
    super::cursor::decode(cursor).is_some()
}

/// True for an event-log cursor (`next_cursor` of `GET /v1/events`).
pub fn is_event_cursor(cursor: &str) -> bool {
    super::cursor::decode_log(cursor).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_shapes() {
        assert!(is_page_cursor(&super::super::cursor::encode(17, "ses_a")));
        assert!(!is_page_cursor("garbage"));
        assert!(is_event_cursor("1795283575999-0"));
        assert!(!is_event_cursor("garbage"));
        assert!(!is_event_cursor("1-x"));
    }
}
