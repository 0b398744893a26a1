//! The bytes the simulator puts on (and takes off) the ESL socket.
//!
//! The only place in `sim` that touches frame layouts. It delegates to the
//! shared protocol code (`crate::esl::frame`, `crate::esl::event`,
//! `crate::esl::request`) and adds the one frame the client side never needs:
//! a disconnect notice with a custom text ("killed listener because of lost
//! events"). It must not know about channels, subscriptions or sessions.

use bytes::{BufMut, BytesMut};

pub use crate::esl::event::EventFormat;
pub use crate::esl::frame::{
    write_api_response, write_auth_request, write_command_reply, write_disconnect_notice,
    write_rude_rejection,
};
pub use crate::esl::request::{Request, RequestCodec, RequestError};

/// The goodbye text of a normal disconnect notice (67 bytes).
pub const GOODBYE: &str = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";

/// A disconnect notice with a specific text (e.g. lost events).
pub fn write_disconnect_notice_text(dst: &mut BytesMut, text: &str) {
    if text == GOODBYE {
        write_disconnect_notice(dst);
        return;
    }
    dst.put_slice(b"Content-Type: text/disconnect-notice\nContent-Length: ");
    dst.put_slice(text.len().to_string().as_bytes());
    dst.put_slice(b"\n\n");
    dst.put_slice(text.as_bytes());
}

/// One event frame in the given format.
pub fn write_event(
    dst: &mut BytesMut,
    format: EventFormat,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) {
    crate::esl::event::write_event(dst, format, headers, body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices() {
        let mut a = BytesMut::new();
        write_disconnect_notice_text(&mut a, GOODBYE);
        let mut b = BytesMut::new();
        write_disconnect_notice(&mut b);
        assert_eq!(a, b);
        let mut c = BytesMut::new();
        write_disconnect_notice_text(&mut c, "killed listener because of lost events\n");
        assert!(c.ends_with(b"Content-Length: 39\n\nkilled listener because of lost events\n"));
    }

    #[test]
    fn plain_and_json_events() {
        let h = vec![
            ("Event-Name".to_string(), "X".to_string()),
            ("A".to_string(), "a b:c".to_string()),
            ("M".to_string(), "ARRAY::1|:2".to_string()),
        ];
        let mut b = BytesMut::new();
        write_event(&mut b, EventFormat::Plain, &h, Some(b"+OK\n"));
        assert_eq!(
            &b[..],
            &b"Content-Length: 73\nContent-Type: text/event-plain\n\nEvent-Name: X\nA: a%20b%3Ac\nM: ARRAY%3A%3A1%7C%3A2\nContent-Length: 4\n\n+OK\n"[..]
        );
        let mut b = BytesMut::new();
        write_event(&mut b, EventFormat::Json, &h, Some(b"+OK\n"));
        let s = std::str::from_utf8(&b).unwrap();
        assert!(s.ends_with(
            r#"{"Event-Name":"X","A":"a b:c","M":["1","2"],"Content-Length":"4","_body":"+OK\n"}"#
        ), "{s}");
    }
}
