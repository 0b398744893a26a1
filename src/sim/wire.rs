//! The bytes the simulator puts on (and takes off) the ESL socket.
//!
//! This is the only place in `sim` that knows frame layouts: the outer frames
//! FreeSWITCH writes (auth request, command reply, api response, disconnect
//! notice, rude rejection, plain and json events) and the reading of client
//! commands the way `read_packet` in mod_event_socket reads them. It is a
//! private stand-in for `crate::esl::{frame, event, request}`, which land in
//! main later; when they do, these functions become thin wrappers (or go). It
//! must not know about channels, subscriptions or sessions.

use bytes::{Buf, BufMut, BytesMut};

use crate::esl::urlenc;

/// The goodbye text of a normal disconnect notice (67 bytes).
pub const GOODBYE: &str = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";

/// Largest command body FreeSWITCH accepts (REFERENCE 1.6).
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Largest command header block FreeSWITCH reads (REFERENCE 1.7).
pub const MAX_HEADER_BLOCK: usize = 10 * 1024 * 1024;

/// Event serialisation chosen with `event plain|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    /// `text/event-plain`, url-encoded values.
    Plain,
    /// `text/event-json`, one flat object.
    Json,
}

/// `Content-Type: auth/request`.
pub fn write_auth_request(dst: &mut BytesMut) {
    dst.put_slice(b"Content-Type: auth/request\n\n");
}

/// A `command/reply` frame with `Reply-Text` and optional extra headers.
pub fn write_command_reply(dst: &mut BytesMut, reply_text: &str, extra: &[(&str, &str)]) {
    dst.put_slice(b"Content-Type: command/reply\nReply-Text: ");
    // FreeSWITCH's reply buffer is 512 bytes.
    let text = truncate(reply_text, 511);
    dst.put_slice(text.as_bytes());
    dst.put_u8(b'\n');
    for (name, value) in extra {
        dst.put_slice(name.as_bytes());
        dst.put_slice(b": ");
        dst.put_slice(value.as_bytes());
        dst.put_u8(b'\n');
    }
    dst.put_u8(b'\n');
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An `api/response` frame.
pub fn write_api_response(dst: &mut BytesMut, body: &[u8]) {
    dst.put_slice(b"Content-Type: api/response\nContent-Length: ");
    dst.put_slice(body.len().to_string().as_bytes());
    dst.put_slice(b"\n\n");
    dst.put_slice(body);
}

/// The normal disconnect notice.
pub fn write_disconnect_notice(dst: &mut BytesMut) {
    write_disconnect_notice_text(dst, GOODBYE);
}

/// A disconnect notice with a specific text (e.g. lost events).
pub fn write_disconnect_notice_text(dst: &mut BytesMut, text: &str) {
    dst.put_slice(b"Content-Type: text/disconnect-notice\nContent-Length: ");
    dst.put_slice(text.len().to_string().as_bytes());
    dst.put_slice(b"\n\n");
    dst.put_slice(text.as_bytes());
}

/// The ACL rejection frame.
pub fn write_rude_rejection(dst: &mut BytesMut) {
    let text = "Access Denied, go away.\n";
    dst.put_slice(b"Content-Type: text/rude-rejection\nContent-Length: ");
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
    let inner = match format {
        EventFormat::Plain => plain_body(headers, body),
        EventFormat::Json => json_body(headers, body),
    };
    dst.put_slice(b"Content-Length: ");
    dst.put_slice(inner.len().to_string().as_bytes());
    dst.put_slice(match format {
        EventFormat::Plain => b"\nContent-Type: text/event-plain\n\n".as_slice(),
        EventFormat::Json => b"\nContent-Type: text/event-json\n\n".as_slice(),
    });
    dst.put_slice(&inner);
}

fn plain_body(headers: &[(String, String)], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.len() * 48);
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        if value.is_empty() {
            out.extend_from_slice(b"_undef_");
        } else {
            out.extend_from_slice(&urlenc::encode(value.as_bytes()));
        }
        out.push(b'\n');
    }
    match body {
        Some(b) if !b.is_empty() => {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(b.len().to_string().as_bytes());
            out.extend_from_slice(b"\n\n");
            out.extend_from_slice(b);
        }
        _ => out.push(b'\n'),
    }
    out
}

fn json_body(headers: &[(String, String)], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.len() * 48);
    out.push(b'{');
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, k: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        json_string(out, k.as_bytes());
        out.push(b':');
    };
    for (name, value) in headers {
        key(&mut out, name);
        if let Some(rest) = value.strip_prefix("ARRAY::") {
            out.push(b'[');
            for (i, item) in rest.split("|:").enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_string(&mut out, item.as_bytes());
            }
            out.push(b']');
        } else {
            json_string(&mut out, value.as_bytes());
        }
    }
    if let Some(b) = body {
        if !b.is_empty() {
            key(&mut out, "Content-Length");
            json_string(&mut out, b.len().to_string().as_bytes());
            key(&mut out, "_body");
            json_string(&mut out, b);
        }
    }
    out.push(b'}');
    out
}

/// cJSON's string printer: escapes `"`, `\` and control bytes, copies the rest.
fn json_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b if b < 0x20 => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            b => out.push(b),
        }
    }
    out.push(b'"');
}

/// One command a client sent: the first line, its headers, its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The command line (up to the first CR/LF).
    pub line: String,
    /// `Name: value` lines after the command line, in order.
    pub headers: Vec<(String, String)>,
    /// The body read because of a `Content-Length` header.
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// A header by name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a client's byte stream cannot be read any further.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Negative, unparsable or too large `Content-Length`: FreeSWITCH drops the connection.
    #[error("invalid command Content-Length {0:?}")]
    BadContentLength(String),
    /// The header block exceeded FreeSWITCH's cap.
    #[error("command header block larger than {MAX_HEADER_BLOCK} bytes")]
    HeaderTooLarge,
    /// Socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads client commands the way FreeSWITCH's `read_packet` does.
#[derive(Debug, Default)]
pub struct RequestCodec {
    _priv: (),
}

impl tokio_util::codec::Decoder for RequestCodec {
    type Item = Request;
    type Error = RequestError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, RequestError> {
        // Leading CR/LF bytes before a command are discarded.
        let skip = src
            .iter()
            .take_while(|b| **b == b'\n' || **b == b'\r')
            .count();
        src.advance(skip);
        // End of packet: LF, optional CRs, LF.
        let mut end = None;
        let mut i = 0;
        while i < src.len() {
            if src[i] == b'\n' {
                let mut j = i + 1;
                while j < src.len() && src[j] == b'\r' {
                    j += 1;
                }
                if j < src.len() && src[j] == b'\n' {
                    end = Some((i, j + 1));
                    break;
                }
            }
            i += 1;
        }
        let Some((block_end, consumed)) = end else {
            if src.len() > MAX_HEADER_BLOCK {
                return Err(RequestError::HeaderTooLarge);
            }
            return Ok(None);
        };
        let block = String::from_utf8_lossy(&src[..block_end]).into_owned();
        let mut lines = block.split('\n').map(|l| l.trim_end_matches('\r'));
        let line = lines.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        let mut content_length = None;
        for l in lines {
            if let Some((name, value)) = l.split_once(':') {
                let value = value.trim_start_matches([' ', '\t']).to_string();
                if name.eq_ignore_ascii_case("Content-Length") {
                    match value.trim().parse::<i64>() {
                        Ok(n) if (0..=MAX_BODY as i64).contains(&n) => {
                            content_length = Some(n as usize)
                        }
                        _ => return Err(RequestError::BadContentLength(value)),
                    }
                }
                headers.push((name.to_string(), value));
            }
        }
        if let Some(n) = content_length {
            if src.len() < consumed + n {
                src.reserve(consumed + n - src.len());
                return Ok(None);
            }
            src.advance(consumed);
            let body = src.split_to(n).to_vec();
            return Ok(Some(Request {
                line,
                headers,
                body: Some(body),
            }));
        }
        src.advance(consumed);
        Ok(Some(Request {
            line,
            headers,
            body: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::Decoder;

    #[test]
    fn reads_commands_like_read_packet() {
        let mut c = RequestCodec::default();
        let mut b = BytesMut::from(
            &b"\r\nauth ClueCon\n\nbgapi status\nJob-UUID: x\n\nsendevent X\nContent-Length: 2\n\nhiapi"[..],
        );
        let r = c.decode(&mut b).unwrap().unwrap();
        assert_eq!(r.line, "auth ClueCon");
        let r = c.decode(&mut b).unwrap().unwrap();
        assert_eq!(r.header("job-uuid"), Some("x"));
        let r = c.decode(&mut b).unwrap().unwrap();
        assert_eq!(r.body.as_deref(), Some(&b"hi"[..]));
        assert!(c.decode(&mut b).unwrap().is_none());
        let mut b = BytesMut::from(&b"x\nContent-Length: -1\n\n"[..]);
        assert!(c.decode(&mut b).is_err());
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
        ));
    }
}
