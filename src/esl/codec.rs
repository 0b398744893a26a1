//! The ESL stream codec: bytes from FreeSWITCH in, [`Message`]s out.
//!
//! The decoder finds frame boundaries incrementally (a header block ending in
//! a blank line, then exactly `Content-Length` bytes), never rescanning bytes
//! it has already looked at, so a frame that trickles in one byte at a time
//! costs linear work. It enforces size limits with typed errors instead of
//! growing without bound: the header block and the body each have a cap, and a
//! frame over either ends the stream (the connection is then reset, which is
//! what FreeSWITCH itself does with an oversized client frame).
//!
//! Framing errors are fatal; a frame that is well framed but whose event body
//! cannot be read is not: it comes out as [`Message::Malformed`] so that one
//! odd event never costs the connection. The encoder writes commands. This
//! module does not correlate replies with requests; the connection does.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::command::Command;
use super::event::{Event, EventFormat};
use super::frame::{ContentType, Frame, Headers, MalformedHeader};

/// Largest header block accepted (FreeSWITCH's own outer headers are tiny).
pub const DEFAULT_MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Largest body accepted. FreeSWITCH puts no limit on events; a
/// CHANNEL_HANGUP_COMPLETE with many variables is tens of kilobytes, and
/// `show channels` on a busy switch a few megabytes.
pub const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;

/// Why the byte stream cannot be read any further.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The socket failed.
    #[error("reading from FreeSWITCH failed: {0}")]
    Io(#[from] std::io::Error),
    /// No blank line within the header-block limit.
    #[error("frame header block exceeds {limit} bytes without ending; the stream is not ESL or is corrupt")]
    HeaderBlockTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// `Content-Length` larger than the body limit.
    #[error("frame body of {len} bytes exceeds the {limit}-byte limit")]
    BodyTooLarge {
        /// The announced length.
        len: u64,
        /// The configured limit.
        limit: usize,
    },
    /// `Content-Length` that is not a decimal number.
    #[error("frame has an invalid Content-Length {0:?}")]
    BadContentLength(String),
    /// A header line that is not `Name: value`.
    #[error("frame header: {0}")]
    Header(#[from] MalformedHeader),
}

/// The body of a `command/reply` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    headers: Headers,
}

impl Reply {
    /// `Reply-Text`, raw (FreeSWITCH does not encode it).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        self.headers.get("Reply-Text").unwrap_or_default()
    }

    /// True for `+OK …` replies.
    pub fn is_ok(&self) -> bool {
        self.headers
            .get_bytes("Reply-Text")
            .is_some_and(|t| t.starts_with(b"+OK"))
    }

    /// Any other header of the reply (`Job-UUID` after bgapi).
    pub fn header(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.headers.get(name)
    }

    /// All headers of the reply frame.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
}

/// A `text/disconnect-notice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectNotice {
    /// `Content-Disposition`: `disconnect`, `linger`, or absent.
    pub disposition: Option<String>,
    /// The goodbye text.
    pub text: String,
}

impl DisconnectNotice {
    /// True for the linger notice (the connection stays open for a while).
    pub fn is_linger(&self) -> bool {
        self.disposition.as_deref() == Some("linger")
    }
}

/// What one frame from FreeSWITCH means.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// The server asks for `auth`.
    AuthRequest,
    /// The reply to a socket command.
    Reply(Reply),
    /// The reply to `api`: the command's output.
    ApiResponse(Bytes),
    /// An event.
    Event(Event),
    /// The server is closing (or lingering).
    Disconnect(DisconnectNotice),
    /// The ACL refused this client.
    RudeRejection(String),
    /// A log line (`log/data`), kept as the raw frame.
    Log(Frame),
    /// A well-framed event whose body could not be read.
    Malformed {
        /// What the frame said it was.
        content_type: ContentType,
        /// Why it could not be read.
        error: String,
    },
    /// A frame with a content type fsgate does not handle.
    Other(Frame),
}

impl Message {
    /// Turns one frame into its meaning.
    pub fn from_frame(frame: Frame) -> Message {
        Message::from_frame_with(frame, false)
    }

    /// As [`Message::from_frame`]; with `detach`, an event's body is first
    /// copied into an allocation of its own, so that the event does not keep
    /// the rest of the read buffer it came from alive.
    fn from_frame_with(frame: Frame, detach: bool) -> Message {
        let event = |format| {
            let ct = frame.content_type();
            let body = frame.body().cloned().unwrap_or_default();
            let body = if detach {
                Bytes::copy_from_slice(&body)
            } else {
                body
            };
            match Event::parse(format, body) {
                Ok(e) => Message::Event(e),
                Err(error) => Message::Malformed {
                    content_type: ct,
                    error: error.to_string(),
                },
            }
        };
        match frame.content_type() {
            ContentType::AuthRequest => Message::AuthRequest,
            ContentType::CommandReply => Message::Reply(Reply {
                headers: frame.headers().clone(),
            }),
            ContentType::ApiResponse => Message::ApiResponse(frame.into_body().unwrap_or_default()),
            ContentType::EventPlain => event(EventFormat::Plain),
            ContentType::EventJson => event(EventFormat::Json),
            ContentType::DisconnectNotice => Message::Disconnect(DisconnectNotice {
                disposition: frame
                    .headers()
                    .get("Content-Disposition")
                    .map(|s| s.into_owned()),
                text: body_text(&frame),
            }),
            ContentType::RudeRejection => Message::RudeRejection(body_text(&frame)),
            ContentType::LogData => Message::Log(frame),
            ContentType::EventXml | ContentType::Other => Message::Other(frame),
        }
    }
}

fn body_text(frame: &Frame) -> String {
    frame
        .body()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Looking for the blank line; bytes before `scanned` hold none.
    Head { scanned: usize },
    /// The header block is `head` bytes long (blank line included); `body`
    /// more bytes complete the frame.
    Body { head: usize, body: usize },
}

/// Splits the byte stream into [`Frame`]s.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    state: State,
    max_header_block: usize,
    max_body: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::with_limits(DEFAULT_MAX_HEADER_BLOCK, DEFAULT_MAX_BODY)
    }
}

impl FrameCodec {
    /// A codec with explicit limits.
    pub fn with_limits(max_header_block: usize, max_body: usize) -> FrameCodec {
        FrameCodec {
            state: State::Head { scanned: 0 },
            max_header_block,
            max_body,
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        loop {
            match self.state {
                State::Head { scanned } => {
                    // Blank lines between frames carry nothing.
                    if scanned == 0 {
                        let lead = src.iter().take_while(|&&b| b == b'\n').count();
                        src.advance(lead);
                    }
                    let from = scanned.saturating_sub(1);
                    let Some(at) = memchr::memmem::find(&src[from..], b"\n\n").map(|i| from + i)
                    else {
                        if src.len() > self.max_header_block {
                            return Err(DecodeError::HeaderBlockTooLarge {
                                limit: self.max_header_block,
                            });
                        }
                        self.state = State::Head { scanned: src.len() };
                        return Ok(None);
                    };
                    if at + 1 > self.max_header_block {
                        return Err(DecodeError::HeaderBlockTooLarge {
                            limit: self.max_header_block,
                        });
                    }
                    let body = content_length(&src[..at + 1], self.max_body)?;
                    self.state = State::Body { head: at + 2, body };
                }
                State::Body { head, body } => {
                    if src.len() < head + body {
                        src.reserve(head + body - src.len());
                        return Ok(None);
                    }
                    let mut frame = src.split_to(head + body).freeze();
                    self.state = State::Head { scanned: 0 };
                    let payload = (body > 0 || has_content_length(&frame[..head]))
                        .then(|| frame.split_off(head));
                    frame.truncate(head - 1);
                    let headers = Headers::parse(frame)?;
                    return Ok(Some(Frame::new(headers, payload)));
                }
            }
        }
    }
}

fn has_content_length(head: &[u8]) -> bool {
    find_header(head, b"Content-Length").is_some()
}

/// Finds a header's value in a raw block without building the full index.
fn find_header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let colon = memchr::memchr(b':', line)?;
        line[..colon].eq_ignore_ascii_case(name).then(|| {
            let v = &line[colon + 1..];
            let skip = v.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
            let v = &v[skip..];
            v.strip_suffix(b"\r").unwrap_or(v)
        })
    })
}

fn content_length(head: &[u8], max: usize) -> Result<usize, DecodeError> {
    let Some(value) = find_header(head, b"Content-Length") else {
        return Ok(0);
    };
    let text = std::str::from_utf8(value).unwrap_or("");
    let len: u64 = text
        .parse()
        .map_err(|_| DecodeError::BadContentLength(String::from_utf8_lossy(value).into_owned()))?;
    if len > max as u64 {
        return Err(DecodeError::BodyTooLarge { len, limit: max });
    }
    Ok(len as usize)
}

/// Frames and their meaning: the codec a client connection uses.
#[derive(Debug, Clone, Default)]
pub struct EslCodec {
    frames: FrameCodec,
    detach_events: bool,
}

impl EslCodec {
    /// A codec with explicit size limits.
    pub fn with_limits(max_header_block: usize, max_body: usize) -> EslCodec {
        EslCodec {
            frames: FrameCodec::with_limits(max_header_block, max_body),
            detach_events: false,
        }
    }

    /// With `on`, each event's body is copied out of the read buffer before
    /// it is parsed. Frames decoded from one buffer share its allocation, so
    /// one event kept for long keeps the whole buffer alive; a consumer that
    /// keeps events for long (a queue that is filling) turns this on to keep
    /// its memory equal to the events it holds. Off by default: the copy
    /// costs a little and is useless when events are consumed promptly.
    pub fn set_detach_events(&mut self, on: bool) {
        self.detach_events = on;
    }
}

impl Decoder for EslCodec {
    type Item = Message;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        let detach = self.detach_events;
        Ok(self
            .frames
            .decode(src)?
            .map(|f| Message::from_frame_with(f, detach)))
    }
}

impl Encoder<&Command> for EslCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: &Command, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        item.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut EslCodec, bytes: &[u8]) -> Vec<Message> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(m) = codec.decode(&mut buf).unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn splits_replies_and_bodies() {
        let stream = b"Content-Type: auth/request\n\n\
Content-Type: command/reply\nReply-Text: +OK accepted\n\n\
Content-Type: api/response\nContent-Length: 5\n\nfalse\
Content-Type: text/disconnect-notice\nContent-Length: 3\n\nbye";
        let msgs = decode_all(&mut EslCodec::default(), stream);
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[0], Message::AuthRequest);
        assert!(matches!(&msgs[1], Message::Reply(r) if r.is_ok() && r.text() == "+OK accepted"));
        assert_eq!(msgs[2], Message::ApiResponse(Bytes::from_static(b"false")));
        assert!(matches!(&msgs[3], Message::Disconnect(d) if d.text == "bye"));
    }

    #[test]
    fn one_byte_at_a_time() {
        let stream: &[u8] = b"Content-Length: 34\nContent-Type: text/event-plain\n\nEvent-Name: HEARTBEAT\nUp-Time: 1\n\n";
        let mut codec = EslCodec::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in stream {
            buf.extend_from_slice(&[b]);
            while let Some(m) = codec.decode(&mut buf).unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 1);
        assert!(matches!(&got[0], Message::Event(e) if e.is("HEARTBEAT")));
    }

    #[test]
    fn limits_are_typed_errors() {
        let mut codec = EslCodec::with_limits(16, 8);
        let mut buf = BytesMut::from(&b"Content-Type: command/reply"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(DecodeError::HeaderBlockTooLarge { .. })
        ));
        let mut codec = EslCodec::with_limits(1024, 8);
        let mut buf = BytesMut::from(&b"Content-Length: 9\n\n"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(DecodeError::BodyTooLarge { len: 9, .. })
        ));
        let mut buf = BytesMut::from(&b"Content-Length: -1\n\n"[..]);
        assert!(matches!(
            EslCodec::default().decode(&mut buf),
            Err(DecodeError::BadContentLength(_))
        ));
    }

    #[test]
    fn unreadable_event_is_not_fatal() {
        let stream = b"Content-Length: 3\nContent-Type: text/event-json\n\n{x}\
Content-Type: command/reply\nReply-Text: +OK\n\n";
        let msgs = decode_all(&mut EslCodec::default(), stream);
        assert!(matches!(
            &msgs[0],
            Message::Malformed {
                content_type: ContentType::EventJson,
                ..
            }
        ));
        assert!(matches!(&msgs[1], Message::Reply(_)));
    }
}
