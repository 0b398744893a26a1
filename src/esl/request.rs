//! The client-to-server direction, read the way FreeSWITCH reads it.
//!
//! This module owns [`RequestCodec`], which splits the bytes a client sends
//! into [`Request`]s following `read_packet` in mod_event_socket
//! (docs/esl-protocol.md §1.6, §1.7): a packet ends at two LFs with only CRs
//! between them, leading CR/LF bytes are dropped, the first line is the command
//! and `Name: value` lines are headers; `Content-Length` adds a body. The
//! simulator uses it; the daemon never reads requests. It interprets no command
//! and knows nothing about tenants, sessions or calls. Buffering is bounded by
//! FreeSWITCH's own limits (10 MiB header block, 16 MiB body), past which it
//! fails like FS does.
//!
//! Two simplifications: a line ends at its first CR (FS's `strip_cr`), but the
//! FS quirk that skips header lines when LF and CRLF lines are mixed is not
//! reproduced; a non-numeric `Content-Length` means no body (as FS's `atoi`).

use bytes::{Buf, Bytes, BytesMut};
use memchr::memchr;
use nom::bytes::complete::{tag, take_till};
use nom::character::complete::space0;
use nom::combinator::rest;
use nom::multi::separated_list1;
use nom::sequence::{preceded, separated_pair};
use nom::IResult;
use tokio_util::codec::Decoder;

/// FreeSWITCH's cap on a command's header block.
pub const MAX_HEADER_BLOCK: usize = 10 * 1024 * 1024;
/// FreeSWITCH's cap on a command body (`MAX_CONTENT_LENGTH`).
pub const MAX_BODY: u64 = 16 * 1024 * 1024;

/// One command as FreeSWITCH sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The command line, without line ending.
    pub line: String,
    /// The header lines, in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The `Content-Length` body, if a positive length was given.
    pub body: Option<Bytes>,
}

impl Request {
    /// The first header called `name`, compared case-insensitively as FS does.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why the stream cannot be read further. Every variant but `Io` is one where
/// FreeSWITCH drops the connection: the simulator should do the same.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("reading the client's commands failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("command header block reached 10 MiB without an empty line: close the connection")]
    HeaderBlockTooLarge,
    #[error("Content-Length {len} is over 16 MiB: close the connection")]
    BodyTooLarge { len: u64 },
    #[error("Content-Length is negative or given more than once: close the connection")]
    BadContentLength,
}

/// Splits a client's byte stream into [`Request`]s; works with any chunking.
#[derive(Debug, Default)]
pub struct RequestCodec {
    state: State,
}

#[derive(Debug, Default)]
enum State {
    /// Between packets: dropping CR/LF bytes.
    #[default]
    Start,
    /// Looking for the end of a header block; `scanned` bytes are already
    /// checked, and they end with an LF (plus CRs) when `after_lf`.
    Head { scanned: usize, after_lf: bool },
    /// Waiting for `len` body bytes.
    Body {
        line: String,
        headers: Vec<(String, String)>,
        len: usize,
    },
}

impl Decoder for RequestCodec {
    type Item = Request;
    type Error = RequestError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, RequestError> {
        loop {
            match std::mem::take(&mut self.state) {
                State::Start => {
                    let blank = src
                        .iter()
                        .take_while(|&&b| b == b'\r' || b == b'\n')
                        .count();
                    src.advance(blank);
                    if src.is_empty() {
                        return Ok(None);
                    }
                    self.state = State::Head {
                        scanned: 0,
                        after_lf: false,
                    };
                }
                State::Head { scanned, after_lf } => {
                    let (end, scanned, after_lf) = find_end(src, scanned, after_lf);
                    let Some(end) = end else {
                        if scanned >= MAX_HEADER_BLOCK {
                            return Err(RequestError::HeaderBlockTooLarge);
                        }
                        self.state = State::Head { scanned, after_lf };
                        return Ok(None);
                    };
                    if end > MAX_HEADER_BLOCK {
                        return Err(RequestError::HeaderBlockTooLarge);
                    }
                    let block = src.split_to(end);
                    let (line, headers) = parse_block(&block);
                    let len = content_length(&headers)?;
                    if len == 0 {
                        return Ok(Some(Request {
                            line,
                            headers,
                            body: None,
                        }));
                    }
                    self.state = State::Body { line, headers, len };
                }
                State::Body { line, headers, len } => {
                    if src.len() < len {
                        src.reserve(len - src.len());
                        self.state = State::Body { line, headers, len };
                        return Ok(None);
                    }
                    let body = Some(src.split_to(len).freeze());
                    return Ok(Some(Request {
                        line,
                        headers,
                        body,
                    }));
                }
            }
        }
    }
}

/// Continues the scan for LF, CR*, LF from `scanned`; returns the block's end
/// (just past the second LF) if found, and the new scan state.
fn find_end(src: &[u8], mut scanned: usize, mut after_lf: bool) -> (Option<usize>, usize, bool) {
    while scanned < src.len() {
        if !after_lf {
            match memchr(b'\n', &src[scanned..]) {
                Some(at) => {
                    scanned += at + 1;
                    after_lf = true;
                }
                None => return (None, src.len(), false),
            }
            continue;
        }
        match src[scanned] {
            b'\n' => return (Some(scanned + 1), scanned + 1, true),
            b'\r' => {}
            _ => after_lf = false,
        }
        scanned += 1;
    }
    (None, scanned, after_lf)
}

fn lines(block: &[u8]) -> IResult<&[u8], Vec<&[u8]>> {
    separated_list1(tag("\n"), take_till(|b| b == b'\n'))(block)
}

fn header_line(line: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    separated_pair(take_till(|b| b == b':'), tag(":"), preceded(space0, rest))(line)
}

/// Text of a line up to its first CR (FS's `strip_cr`); bad UTF-8 is replaced.
fn text(line: &[u8]) -> String {
    let line = memchr(b'\r', line).map_or(line, |cr| &line[..cr]);
    String::from_utf8_lossy(line).into_owned()
}

/// The command line and the headers; lines without a colon are ignored, as FS does.
fn parse_block(block: &[u8]) -> (String, Vec<(String, String)>) {
    let all = lines(block).map(|(_, l)| l).unwrap_or_default();
    let mut all = all.into_iter();
    let line = all.next().map(text).unwrap_or_default();
    let headers = all
        .map(text)
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (_, (name, value)) = header_line(l.as_bytes()).ok()?;
            let pair = (
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(value),
            );
            Some((pair.0.into_owned(), pair.1.into_owned()))
        })
        .collect();
    (line, headers)
}

/// The body length, read like C's `atoi` (leading blanks, sign, digits).
fn content_length(headers: &[(String, String)]) -> Result<usize, RequestError> {
    let mut found = None;
    for (_, value) in headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        let v = value.trim_start();
        let (negative, digits) = match v.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, v.strip_prefix('+').unwrap_or(v)),
        };
        let digits = &digits[..digits.bytes().take_while(u8::is_ascii_digit).count()];
        let len = digits
            .bytes()
            .try_fold(0u64, |n, d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .unwrap_or(u64::MAX);
        if negative && len > 0 {
            return Err(RequestError::BadContentLength);
        }
        if len > MAX_BODY {
            return Err(RequestError::BodyTooLarge { len });
        }
        if len > 0 && found.replace(len).is_some() {
            return Err(RequestError::BadContentLength);
        }
    }
    Ok(found.map_or(0, |len| len as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut RequestCodec, bytes: &[u8]) -> Vec<Request> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(req) = codec.decode(&mut buf).unwrap() {
            out.push(req);
        }
        out
    }

    fn one_at_a_time(bytes: &[u8]) -> Vec<Request> {
        let mut codec = RequestCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in bytes {
            buf.extend_from_slice(&[b]);
            while let Some(req) = codec.decode(&mut buf).unwrap() {
                out.push(req);
            }
        }
        out
    }

    const CAPTURE: &[u8] = b"auth ClueCon\n\napi status\n\nbgapi status\nJob-UUID: b54e6782-3b4f-4c30-a009-d2a369025f38\n\nfilter delete Event-Name CHANNEL_ANSWER\n\nexit\n\n";

    #[test]
    fn splits_the_captured_commands() {
        for reqs in [
            decode_all(&mut RequestCodec::default(), CAPTURE),
            one_at_a_time(CAPTURE),
        ] {
            let lines: Vec<_> = reqs.iter().map(|r| r.line.as_str()).collect();
            assert_eq!(
                lines,
                [
                    "auth ClueCon",
                    "api status",
                    "bgapi status",
                    "filter delete Event-Name CHANNEL_ANSWER",
                    "exit"
                ]
            );
            assert_eq!(
                reqs[2].header("job-uuid"),
                Some("b54e6782-3b4f-4c30-a009-d2a369025f38")
            );
            assert!(reqs.iter().all(|r| r.body.is_none()));
        }
    }

    #[test]
    fn accepts_every_terminator_and_skips_blank_lines() {
        let input = b"\r\n\napi a\r\n\r\n\n\napi b\n\r\napi c\nX-A:\t v\r\n\n";
        for reqs in [
            decode_all(&mut RequestCodec::default(), input),
            one_at_a_time(input),
        ] {
            let lines: Vec<_> = reqs.iter().map(|r| r.line.as_str()).collect();
            assert_eq!(lines, ["api a", "api b", "api c"]);
            assert_eq!(reqs[2].headers, [("X-A".to_owned(), "v".to_owned())]);
        }
    }

    #[test]
    fn reads_a_body() {
        let input =
            b"sendevent CUSTOM\nContent-Type: text/plain\nContent-Length: 5\n\nhello\napi x\n\n";
        for reqs in [
            decode_all(&mut RequestCodec::default(), input),
            one_at_a_time(input),
        ] {
            assert_eq!(reqs.len(), 2);
            assert_eq!(reqs[0].body.as_deref(), Some(&b"hello"[..]));
            assert_eq!(reqs[0].header("content-type"), Some("text/plain"));
            assert_eq!(reqs[1].line, "api x");
        }
    }

    #[test]
    fn header_details() {
        let reqs = decode_all(
            &mut RequestCodec::default(),
            b"sendmsg\nno colon here\nA: b: c\nEmpty:\nContent-Length: abc\n\n",
        );
        let h = &reqs[0].headers;
        assert_eq!(h[0], ("A".to_owned(), "b: c".to_owned()));
        assert_eq!(h[1], ("Empty".to_owned(), String::new()));
        assert_eq!(reqs[0].body, None);
        assert_eq!(reqs[0].header("a"), Some("b: c"));
        assert_eq!(reqs[0].header("missing"), None);
    }

    #[test]
    fn rejects_bad_lengths() {
        let err = |input: &[u8]| {
            RequestCodec::default()
                .decode(&mut BytesMut::from(input))
                .unwrap_err()
        };
        assert!(matches!(
            err(b"x\nContent-Length: -1\n\n"),
            RequestError::BadContentLength
        ));
        assert!(matches!(
            err(b"x\nContent-Length: 16777217\n\n"),
            RequestError::BodyTooLarge { len: 16_777_217 }
        ));
        assert!(matches!(
            err(b"x\nContent-Length: 99999999999999999999999\n\n"),
            RequestError::BodyTooLarge { .. }
        ));
        assert!(matches!(
            err(b"x\nContent-Length: 1\nContent-Length: 2\n\n"),
            RequestError::BadContentLength
        ));
        let ok =
            RequestCodec::default().decode(&mut BytesMut::from(&b"x\nContent-Length: 0\n\n"[..]));
        assert!(ok.unwrap().unwrap().body.is_none());
    }

    #[test]
    fn caps_the_header_block() {
        let mut codec = RequestCodec::default();
        let mut buf = BytesMut::from(&b"api "[..]);
        buf.extend_from_slice(&vec![b'x'; MAX_HEADER_BLOCK]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(RequestError::HeaderBlockTooLarge)
        ));

        let mut codec = RequestCodec::default();
        let mut buf = BytesMut::from(&b"api "[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&vec![b'x'; MAX_HEADER_BLOCK - 6]);
        buf.extend_from_slice(b"\n\n");
        assert_eq!(
            codec.decode(&mut buf).unwrap().unwrap().line.len(),
            MAX_HEADER_BLOCK - 2
        );
    }

    #[test]
    fn a_partial_packet_waits() {
        let mut codec = RequestCodec::default();
        let mut buf = BytesMut::from(&b"api status\n"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"\r");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"\n");
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().line, "api status");
        assert!(buf.is_empty());
    }
}
