//! Outer ESL frames: a header block, then `Content-Length` bytes of body.
//!
//! This module owns the shape every frame FreeSWITCH sends has in common
//! (docs/esl-protocol.md §1.1–1.2): `Name: value` lines ending in LF, a blank line, and
//! an optional body whose length in bytes is given by `Content-Length`. It parses
//! a header block with nom into spans over one shared buffer (no copy, no
//! per-header allocation) and writes the frames a server sends, for the
//! simulator. It does not interpret bodies: events are [`crate::esl::event`]'s
//! job, and which frame answers which command is the connection's.
//!
//! Outer header values are kept raw. FreeSWITCH does not url-encode them
//! (`Reply-Text` in particular), so decoding them would corrupt a reply that
//! happens to contain `%41`.

use std::fmt;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use nom::bytes::complete::{tag, take_until, take_while};
use nom::sequence::terminated;
use nom::IResult;

/// The `Content-Type` of a frame, which says how to read its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// `auth/request`: the server wants `auth <password>`.
    AuthRequest,
    /// `command/reply`: the answer to every command except `api`.
    CommandReply,
    /// `api/response`: the answer to `api`; the body is the command's output.
    ApiResponse,
    /// `text/event-plain`: a url-encoded event in the body.
    EventPlain,
    /// `text/event-json`: a JSON event in the body.
    EventJson,
    /// `text/event-xml`: an XML event in the body (not parsed by fsgate).
    EventXml,
    /// `text/disconnect-notice`: the server is closing (or lingering).
    DisconnectNotice,
    /// `text/rude-rejection`: the ACL refused us.
    RudeRejection,
    /// `log/data`: a log line after `log <level>`.
    LogData,
    /// Anything else, or no `Content-Type` at all.
    Other,
}

impl ContentType {
    /// Maps the header value to a content type.
    pub fn from_bytes(value: &[u8]) -> ContentType {
        match value {
            b"auth/request" => ContentType::AuthRequest,
            b"command/reply" => ContentType::CommandReply,
            b"api/response" => ContentType::ApiResponse,
            b"text/event-plain" => ContentType::EventPlain,
            b"text/event-json" => ContentType::EventJson,
            b"text/event-xml" => ContentType::EventXml,
            b"text/disconnect-notice" => ContentType::DisconnectNotice,
            b"text/rude-rejection" => ContentType::RudeRejection,
            b"log/data" => ContentType::LogData,
            _ => ContentType::Other,
        }
    }

    /// The wire name, or `None` for [`ContentType::Other`].
    pub fn as_str(self) -> Option<&'static str> {
        Some(match self {
            ContentType::AuthRequest => "auth/request",
            ContentType::CommandReply => "command/reply",
            ContentType::ApiResponse => "api/response",
            ContentType::EventPlain => "text/event-plain",
            ContentType::EventJson => "text/event-json",
            ContentType::EventXml => "text/event-xml",
            ContentType::DisconnectNotice => "text/disconnect-notice",
            ContentType::RudeRejection => "text/rude-rejection",
            ContentType::LogData => "log/data",
            ContentType::Other => return None,
        })
    }
}

/// A header line that is not `Name: value`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed header line {line:?}: expected `Name: value`")]
pub struct MalformedHeader {
    /// The offending line, lossily decoded and cut to 120 bytes.
    pub line: String,
}

impl MalformedHeader {
    fn new(line: &[u8]) -> Self {
        let cut = &line[..line.len().min(120)];
        MalformedHeader {
            line: String::from_utf8_lossy(cut).into_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) name: Range<u32>,
    pub(crate) value: Range<u32>,
}

/// A parsed header block: the raw text plus where each header's name and value
/// are. Duplicate names are kept, in order.
#[derive(Clone, PartialEq, Eq)]
pub struct Headers {
    raw: Bytes,
    spans: Vec<Span>,
}

/// One `Name: value` line: the name, then the value with leading blanks
/// skipped (FreeSWITCH skips spaces and tabs after the colon).
pub(crate) fn header_line(input: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    let (rest, line) = terminated(take_until("\n"), tag("\n"))(input)?;
    let (value, name) = terminated(take_until(":"), tag(":"))(line)?;
    let (value, _) = take_while(|b| b == b' ' || b == b'\t')(value)?;
    Ok((rest, (name, value)))
}

pub(crate) fn offset(base: &[u8], part: &[u8]) -> u32 {
    (part.as_ptr() as usize - base.as_ptr() as usize) as u32
}

pub(crate) fn span_of(base: &[u8], name: &[u8], value: &[u8]) -> Span {
    let n = offset(base, name);
    let v = offset(base, value);
    Span {
        name: n..n + name.len() as u32,
        value: v..v + value.len() as u32,
    }
}

impl Headers {
    /// Parses a header block: `Name: value\n` lines, each ending in LF. `raw`
    /// holds exactly the lines (the terminating blank line is not included).
    pub fn parse(raw: Bytes) -> Result<Headers, MalformedHeader> {
        let mut spans = Vec::with_capacity(4);
        let mut input: &[u8] = &raw;
        while !input.is_empty() {
            match header_line(input) {
                Ok((rest, (name, value))) if !name.is_empty() => {
                    spans.push(span_of(&raw, name, strip_cr(value)));
                    input = rest;
                }
                _ => {
                    let end = memchr::memchr(b'\n', input).unwrap_or(input.len());
                    return Err(MalformedHeader::new(&input[..end]));
                }
            }
        }
        Ok(Headers { raw, spans })
    }

    /// The first value of header `name` (ASCII case-insensitive), raw.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.iter_bytes()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The first value of header `name` as text (invalid UTF-8 replaced).
    pub fn get(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.get_bytes(name).map(String::from_utf8_lossy)
    }

    /// Every header in order, raw.
    pub fn iter_bytes(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans.iter().map(|s| {
            (
                &self.raw[s.name.start as usize..s.name.end as usize],
                &self.raw[s.value.start as usize..s.value.end as usize],
            )
        })
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when the block has no headers.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

fn strip_cr(value: &[u8]) -> &[u8] {
    value.strip_suffix(b"\r").unwrap_or(value)
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter_bytes().map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            }))
            .finish()
    }
}

/// One outer frame as it came off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    headers: Headers,
    content_type: ContentType,
    body: Option<Bytes>,
}

impl Frame {
    pub(crate) fn new(headers: Headers, body: Option<Bytes>) -> Frame {
        let content_type = headers
            .get_bytes("Content-Type")
            .map_or(ContentType::Other, ContentType::from_bytes);
        Frame {
            headers,
            content_type,
            body,
        }
    }

    /// The outer headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The content type named by the `Content-Type` header.
    pub fn content_type(&self) -> ContentType {
        self.content_type
    }

    /// The body, when the frame had a `Content-Length`.
    pub fn body(&self) -> Option<&Bytes> {
        self.body.as_ref()
    }

    /// Takes the body out of the frame.
    pub fn into_body(self) -> Option<Bytes> {
        self.body
    }
}

// ---------------------------------------------------------------------------
// Writing frames, as a server does (the simulator, and test peers).

/// The body FreeSWITCH sends with its ordinary disconnect notice.
pub const GOODBYE: &[u8] = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";

/// The body of a `text/rude-rejection` frame.
pub const ACCESS_DENIED: &[u8] = b"Access Denied, go away.\n";

/// `Content-Type: auth/request`, sent when a client connects.
pub fn write_auth_request(dst: &mut BytesMut) {
    dst.put_slice(b"Content-Type: auth/request\n\n");
}

/// A `command/reply` with `Reply-Text` and any extra headers, in that order
/// (bgapi adds `Job-UUID`).
pub fn write_command_reply(dst: &mut BytesMut, reply_text: &str, extra_headers: &[(&str, &str)]) {
    dst.put_slice(b"Content-Type: command/reply\nReply-Text: ");
    dst.put_slice(reply_text.as_bytes());
    dst.put_u8(b'\n');
    for (name, value) in extra_headers {
        dst.put_slice(name.as_bytes());
        dst.put_slice(b": ");
        dst.put_slice(value.as_bytes());
        dst.put_u8(b'\n');
    }
    dst.put_u8(b'\n');
}

/// An `api/response` carrying `body`.
pub fn write_api_response(dst: &mut BytesMut, body: &[u8]) {
    write_with_body(dst, "api/response", body);
}

/// The ordinary disconnect notice FreeSWITCH sends before closing.
pub fn write_disconnect_notice(dst: &mut BytesMut) {
    write_with_body(dst, "text/disconnect-notice", GOODBYE);
}

/// The ACL rejection frame (FreeSWITCH follows it with a disconnect notice).
pub fn write_rude_rejection(dst: &mut BytesMut) {
    write_with_body(dst, "text/rude-rejection", ACCESS_DENIED);
}

fn write_with_body(dst: &mut BytesMut, content_type: &str, body: &[u8]) {
    dst.reserve(content_type.len() + body.len() + 48);
    dst.put_slice(b"Content-Type: ");
    dst.put_slice(content_type.as_bytes());
    dst.put_slice(b"\nContent-Length: ");
    dst.put_slice(body.len().to_string().as_bytes());
    dst.put_slice(b"\n\n");
    dst.put_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_keeping_duplicates_and_raw_values() {
        let raw = Bytes::from_static(
            b"Content-Type: command/reply\nReply-Text: +OK %41\nX:\t tabbed\nX: again\n",
        );
        let h = Headers::parse(raw).unwrap();
        assert_eq!(h.len(), 4);
        assert_eq!(h.get("reply-text").as_deref(), Some("+OK %41"));
        assert_eq!(h.get("X").as_deref(), Some("tabbed"));
        assert_eq!(h.iter_bytes().filter(|(n, _)| *n == b"X").count(), 2);
    }

    #[test]
    fn rejects_lines_without_colon() {
        let err = Headers::parse(Bytes::from_static(b"Content-Type: x\nnonsense\n")).unwrap_err();
        assert_eq!(err.line, "nonsense");
    }

    #[test]
    fn writes_frames_like_freeswitch() {
        let mut b = BytesMut::new();
        write_command_reply(&mut b, "+OK Job-UUID: j", &[("Job-UUID", "j")]);
        write_api_response(&mut b, b"-ERROR\n");
        write_disconnect_notice(&mut b);
        assert_eq!(
            &b[..],
            &b"Content-Type: command/reply\nReply-Text: +OK Job-UUID: j\nJob-UUID: j\n\n\
Content-Type: api/response\nContent-Length: 7\n\n-ERROR\n\
Content-Type: text/disconnect-notice\nContent-Length: 67\n\n\
Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"[..]
        );
    }
}
