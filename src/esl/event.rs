//! FreeSWITCH events: parsed lazily, read through typed accessors, and written.
//!
//! An [`Event`] keeps the bytes FreeSWITCH sent and, per header, where its name
//! and value are. Nothing is decoded until it is read: plain values are
//! url-decoded and JSON values unescaped on access, so an event the daemon only
//! routes by name and Unique-ID costs one scan and one small allocation. Header
//! order and duplicates (the two `Hangup-Cause` of CHANNEL_HANGUP_COMPLETE) are
//! kept. Invalid UTF-8 is tolerated and replaced only when text is asked for.
//!
//! This module also writes events exactly as FreeSWITCH serialises them
//! (docs/esl-protocol.md §1.3–1.5), for the simulator and for tests. It knows nothing
//! of calls or sessions: the accessors name FreeSWITCH headers, not domain
//! concepts.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::cause::HangupCause;
use super::frame::MalformedHeader;
use super::json::{self, ValueKind};
use super::scan;
use super::urlenc;

/// The two event serialisations fsgate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EventFormat {
    /// `text/event-plain`: url-encoded `Name: value` lines.
    Plain,
    /// `text/event-json`: one flat JSON object (the more robust choice).
    #[default]
    Json,
}

impl EventFormat {
    /// The word used in `event <format> …`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventFormat::Plain => "plain",
            EventFormat::Json => "json",
        }
    }
}

impl fmt::Display for EventFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "plain" => Ok(EventFormat::Plain),
            "json" => Ok(EventFormat::Json),
            other => Err(format!("unknown event format {other:?}: use plain or json")),
        }
    }
}

/// Why an event body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// A plain event line was not `Name: value`.
    #[error("plain event: {0}")]
    Header(#[from] MalformedHeader),
    /// The inner `Content-Length` of a plain event was not a number, or
    /// pointed past the end of the outer body.
    #[error("plain event: inner Content-Length {0:?} does not fit the event")]
    BadBodyLength(String),
    /// The JSON text was not one flat object.
    #[error("json event: {0}")]
    Json(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Url,
    JsonString,
    JsonArray,
    JsonLiteral,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: Range<u32>,
    value: Range<u32>,
    enc: Encoding,
}

/// `Answer-State` of a channel event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerState {
    /// Not answered yet.
    Ringing,
    /// Early media.
    Early,
    /// Answered.
    Answered,
    /// Hanging up.
    Hangup,
}

/// `Call-Direction` of a channel event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallDirection {
    /// The channel came in to FreeSWITCH.
    Inbound,
    /// FreeSWITCH placed the channel (originate, bridge B-leg).
    Outbound,
}

/// One event as FreeSWITCH sent it.
#[derive(Clone, PartialEq, Eq)]
pub struct Event {
    raw: Bytes,
    format: EventFormat,
    fields: Vec<Field>,
    body: Option<(Range<u32>, Encoding)>,
}

impl Event {
    /// Reads the body of a `text/event-plain` frame.
    ///
    /// This is the hottest loop of the daemon, so it is a single SIMD pass
    /// over the event ([`scan`] for `:` and LF) instead of a per-line
    /// parser. Values are url-encoded, so in what FreeSWITCH sends the first
    /// `:` of a line ends the name and the LF ends the value; a stray `:` in a
    /// value is skipped. Nothing is copied or decoded here.
    pub fn parse_plain(raw: Bytes) -> Result<Event, EventError> {
        let mut fields = Vec::with_capacity(raw.len() / 36 + 1);
        let mut start = 0usize;
        let mut colon: Option<usize> = None;
        let mut rest_at = None;
        for at in scan::Positions::new(&raw, b':', b'\n') {
            if raw[at] == b':' {
                if colon.is_none() {
                    colon = Some(at);
                }
                continue;
            }
            // A line ends at `at`.
            let Some(c) = colon.take() else {
                if at == start {
                    rest_at = Some(at + 1);
                    break;
                }
                return Err(malformed(&raw[start..at]).into());
            };
            if c == start {
                return Err(malformed(&raw[start..at]).into());
            }
            let mut v = c + 1;
            while v < at && (raw[v] == b' ' || raw[v] == b'\t') {
                v += 1;
            }
            fields.push(Field {
                name: start as u32..c as u32,
                value: v as u32..at as u32,
                enc: Encoding::Url,
            });
            start = at + 1;
        }
        if rest_at.is_none() && start < raw.len() {
            // Text after the last LF that is not a complete line.
            return Err(malformed(&raw[start..]).into());
        }
        let input = &raw[rest_at.unwrap_or(raw.len())..];
        // FreeSWITCH writes the inner Content-Length as the last header, and
        // the body (raw, not encoded) right after the blank line.
        let mut body = None;
        if let Some(last) = fields.last() {
            if raw[last.name.start as usize..last.name.end as usize]
                .eq_ignore_ascii_case(b"Content-Length")
            {
                let text = &raw[last.value.start as usize..last.value.end as usize];
                let len = std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.parse::<usize>().ok())
                    .filter(|&n| n <= input.len())
                    .ok_or_else(|| {
                        EventError::BadBodyLength(String::from_utf8_lossy(text).into())
                    })?;
                let start = (raw.len() - input.len()) as u32;
                body = Some((start..start + len as u32, Encoding::Url));
            }
        }
        Ok(Event {
            raw,
            format: EventFormat::Plain,
            fields,
            body,
        })
    }

    /// Reads the body of a `text/event-json` frame.
    pub fn parse_json(raw: Bytes) -> Result<Event, EventError> {
        let mut fields = Vec::with_capacity(raw.len() / 40 + 1);
        let mut body = None;
        json::scan_object_with(&raw, |m| {
            let enc = match m.kind {
                ValueKind::String => Encoding::JsonString,
                ValueKind::Array => Encoding::JsonArray,
                ValueKind::Literal => Encoding::JsonLiteral,
            };
            if m.key.len() == 5 && &raw[m.key.start as usize..m.key.end as usize] == b"_body" {
                body = Some((m.value, enc));
            } else {
                fields.push(Field {
                    name: m.key,
                    value: m.value,
                    enc,
                });
            }
        })
        .map_err(EventError::Json)?;
        Ok(Event {
            raw,
            format: EventFormat::Json,
            fields,
            body,
        })
    }

    /// Parses an event body in the given format.
    pub fn parse(format: EventFormat, raw: Bytes) -> Result<Event, EventError> {
        match format {
            EventFormat::Plain => Event::parse_plain(raw),
            EventFormat::Json => Event::parse_json(raw),
        }
    }

    /// The format the event arrived in.
    pub fn format(&self) -> EventFormat {
        self.format
    }

    /// The bytes of the event body exactly as received.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Number of headers (duplicates counted, `_body` not).
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when the event has no headers at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn slice(&self, r: &Range<u32>) -> &[u8] {
        &self.raw[r.start as usize..r.end as usize]
    }

    fn name_of(&self, f: &Field) -> &[u8] {
        self.slice(&f.name)
    }

    fn decode(&self, f: &Field) -> Cow<'_, str> {
        let raw = self.slice(&f.value);
        match f.enc {
            Encoding::Url => urlenc::decode_lossy(raw),
            Encoding::JsonString => lossy(json::unescape(raw)),
            Encoding::JsonLiteral => String::from_utf8_lossy(raw),
            Encoding::JsonArray => {
                let items: Vec<String> = json::array_strings(raw)
                    .into_iter()
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .collect();
                Cow::Owned(format!("ARRAY::{}", items.join("|:")))
            }
        }
    }

    fn find(&self, name: &str) -> Option<&Field> {
        let name = name.as_bytes();
        self.fields
            .iter()
            .find(|f| self.name_of(f).eq_ignore_ascii_case(name))
    }

    /// The first value of header `name` (ASCII case-insensitive), decoded.
    /// Array values read as FreeSWITCH's `ARRAY::a|:b` text in both formats.
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.find(name).map(|f| self.decode(f))
    }

    /// True when the event has header `name`.
    pub fn has(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// The first value of each of `names` (ASCII case-insensitive), decoded,
    /// found in one pass over the headers: cheaper than one [`Event::get`]
    /// per name when several are read (each `get` scans the headers).
    pub fn get_each<const N: usize>(&self, names: [&str; N]) -> [Option<Cow<'_, str>>; N] {
        // Which wanted names have a given length (mod 64): most headers
        // are skipped on one table look-up. Names past the 64th are
        // compared one by one.
        let mut by_len = [0u64; 64];
        for (i, n) in names.iter().enumerate().take(64) {
            by_len[n.len() % 64] |= 1 << i;
        }
        let mut found: [Option<&Field>; N] = [None; N];
        let mut left = N;
        for f in &self.fields {
            if left == 0 {
                break;
            }
            let name = self.name_of(f);
            let mut mask = by_len[name.len() % 64];
            while mask != 0 {
                let i = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                if found[i].is_none() && name.eq_ignore_ascii_case(names[i].as_bytes()) {
                    found[i] = Some(f);
                    left -= 1;
                }
            }
            for i in 64..N {
                if found[i].is_none() && name.eq_ignore_ascii_case(names[i].as_bytes()) {
                    found[i] = Some(f);
                    left -= 1;
                }
            }
        }
        found.map(|f| f.map(|f| self.decode(f)))
    }

    /// Every value of header `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Cow<'a, str>> + 'a {
        self.fields
            .iter()
            .filter(move |f| self.name_of(f).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |f| self.decode(f))
    }

    /// A multi-valued header as its elements (`ARRAY::a|:b` in plain, a JSON
    /// array in json); a single value gives one element.
    pub fn get_array(&self, name: &str) -> Option<Vec<String>> {
        let f = self.find(name)?;
        if f.enc == Encoding::JsonArray {
            return Some(
                json::array_strings(self.slice(&f.value))
                    .into_iter()
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .collect(),
            );
        }
        let value = self.decode(f);
        Some(match value.strip_prefix("ARRAY::") {
            Some(items) => items.split("|:").map(str::to_owned).collect(),
            None => vec![value.into_owned()],
        })
    }

    /// Every header in order, names and decoded values.
    pub fn headers(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> + '_ {
        self.fields
            .iter()
            .map(|f| (String::from_utf8_lossy(self.name_of(f)), self.decode(f)))
    }

    /// The event body (BACKGROUND_JOB output, for example), decoded bytes.
    pub fn body(&self) -> Option<Cow<'_, [u8]>> {
        let (range, enc) = self.body.as_ref()?;
        let raw = self.slice(range);
        Some(match enc {
            Encoding::JsonString => json::unescape(raw),
            _ => Cow::Borrowed(raw),
        })
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn body_text(&self) -> Option<Cow<'_, str>> {
        self.body().map(lossy)
    }

    // --- typed access to what the daemon reads --------------------------------

    /// `Event-Name`, e.g. `CHANNEL_ANSWER`.
    pub fn name(&self) -> Option<Cow<'_, str>> {
        self.get("Event-Name")
    }

    /// True when `Event-Name` equals `name` (no allocation for plain names).
    pub fn is(&self, name: &str) -> bool {
        self.find("Event-Name")
            .is_some_and(|f| self.slice(&f.value) == name.as_bytes())
    }

    /// `Event-Subclass` of CUSTOM events.
    pub fn subclass(&self) -> Option<Cow<'_, str>> {
        self.get("Event-Subclass")
    }

    /// `Unique-ID`: the channel the event is about.
    pub fn unique_id(&self) -> Option<Cow<'_, str>> {
        self.get("Unique-ID")
    }

    /// `Core-UUID`: the FreeSWITCH process (changes on every restart).
    pub fn core_uuid(&self) -> Option<Cow<'_, str>> {
        self.get("Core-UUID")
    }

    /// `Event-Sequence`: with `Core-UUID`, identifies the event across clients.
    pub fn sequence(&self) -> Option<u64> {
        self.get("Event-Sequence")?.parse().ok()
    }

    /// `Event-Date-Timestamp`, microseconds since the Unix epoch.
    pub fn timestamp_us(&self) -> Option<u64> {
        self.get("Event-Date-Timestamp")?.parse().ok()
    }

    /// `Job-UUID` of BACKGROUND_JOB events.
    pub fn job_uuid(&self) -> Option<Cow<'_, str>> {
        self.get("Job-UUID")
    }

    /// `Channel-Call-UUID`: the call the channel belongs to.
    pub fn channel_call_uuid(&self) -> Option<Cow<'_, str>> {
        self.get("Channel-Call-UUID")
    }

    /// `Caller-Caller-ID-Number`.
    pub fn caller_id_number(&self) -> Option<Cow<'_, str>> {
        self.get("Caller-Caller-ID-Number")
    }

    /// `Caller-Caller-ID-Name`.
    pub fn caller_id_name(&self) -> Option<Cow<'_, str>> {
        self.get("Caller-Caller-ID-Name")
    }

    /// `Caller-Destination-Number`.
    pub fn destination_number(&self) -> Option<Cow<'_, str>> {
        self.get("Caller-Destination-Number")
    }

    /// `Caller-Callee-ID-Number`.
    pub fn callee_id_number(&self) -> Option<Cow<'_, str>> {
        self.get("Caller-Callee-ID-Number")
    }

    /// Any caller-profile header, by the name after `Caller-`.
    pub fn caller(&self, field: &str) -> Option<Cow<'_, str>> {
        self.get(&format!("Caller-{field}"))
    }

    /// Channel variable `name` (header `variable_<name>`).
    pub fn variable(&self, name: &str) -> Option<Cow<'_, str>> {
        let want = name.as_bytes();
        self.fields
            .iter()
            .find(|f| {
                self.name_of(f)
                    .strip_prefix(b"variable_")
                    .is_some_and(|n| n == want)
            })
            .map(|f| self.decode(f))
    }

    /// `Hangup-Cause`, when FreeSWITCH gave one it knows by name.
    pub fn hangup_cause(&self) -> Option<HangupCause> {
        HangupCause::from_name(&self.get("Hangup-Cause")?)
    }

    /// `Other-Leg-Unique-ID`: the bridged (or originating) partner.
    pub fn other_leg_unique_id(&self) -> Option<Cow<'_, str>> {
        self.get("Other-Leg-Unique-ID")
    }

    /// `Answer-State`.
    pub fn answer_state(&self) -> Option<AnswerState> {
        Some(match &*self.get("Answer-State")? {
            "ringing" => AnswerState::Ringing,
            "early" => AnswerState::Early,
            "answered" => AnswerState::Answered,
            "hangup" => AnswerState::Hangup,
            _ => return None,
        })
    }

    /// `Call-Direction`.
    pub fn call_direction(&self) -> Option<CallDirection> {
        Some(match &*self.get("Call-Direction")? {
            "inbound" => CallDirection::Inbound,
            "outbound" => CallDirection::Outbound,
            _ => return None,
        })
    }
}

fn malformed(line: &[u8]) -> MalformedHeader {
    MalformedHeader {
        line: String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned(),
    }
}

fn lossy(bytes: Cow<'_, [u8]>) -> Cow<'_, str> {
    match bytes {
        Cow::Borrowed(b) => String::from_utf8_lossy(b),
        Cow::Owned(v) => Cow::Owned(match String::from_utf8(v) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }),
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name())
            .field("format", &self.format)
            .field("unique_id", &self.unique_id())
            .field("sequence", &self.sequence())
            .field("headers", &self.fields.len())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Writing events, as FreeSWITCH serialises them.

/// Writes one complete event frame (outer headers and body) the way
/// FreeSWITCH does: `Content-Length` first, then `Content-Type`, then the
/// serialised event. `headers` must not contain `Content-Length`: it is added
/// for a non-empty `body`. A value starting `ARRAY::` becomes a JSON array in
/// the json format.
pub fn write_event<N: AsRef<str>, V: AsRef<str>>(
    dst: &mut BytesMut,
    format: EventFormat,
    headers: &[(N, V)],
    body: Option<&[u8]>,
) {
    let body = body.filter(|b| !b.is_empty());
    let text = match format {
        EventFormat::Plain => serialize_plain(headers, body),
        EventFormat::Json => serialize_json(headers, body),
    };
    let content_type: &[u8] = match format {
        EventFormat::Plain => b"text/event-plain",
        EventFormat::Json => b"text/event-json",
    };
    dst.reserve(text.len() + 64);
    dst.put_slice(b"Content-Length: ");
    dst.put_slice(text.len().to_string().as_bytes());
    dst.put_slice(b"\nContent-Type: ");
    dst.put_slice(content_type);
    dst.put_slice(b"\n\n");
    dst.put_slice(&text);
}

fn serialize_plain<N: AsRef<str>, V: AsRef<str>>(
    headers: &[(N, V)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.len() * 48 + body.map_or(0, <[u8]>::len));
    for (name, value) in headers {
        out.extend_from_slice(name.as_ref().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&urlenc::encode(value.as_ref().as_bytes()));
        out.push(b'\n');
    }
    if let Some(body) = body {
        out.extend_from_slice(format!("Content-Length: {}\n\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    } else {
        out.push(b'\n');
    }
    out
}

fn serialize_json<N: AsRef<str>, V: AsRef<str>>(
    headers: &[(N, V)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.len() * 48 + body.map_or(0, <[u8]>::len));
    out.push(b'{');
    let mut first = true;
    let mut member = |out: &mut Vec<u8>, name: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        json::write_string(out, name.as_bytes());
        out.push(b':');
    };
    for (name, value) in headers {
        member(&mut out, name.as_ref());
        match value.as_ref().strip_prefix("ARRAY::") {
            Some(items) => {
                out.push(b'[');
                for (i, item) in items.split("|:").enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json::write_string(&mut out, item.as_bytes());
                }
                out.push(b']');
            }
            None => json::write_string(&mut out, value.as_ref().as_bytes()),
        }
    }
    if let Some(body) = body {
        member(&mut out, "Content-Length");
        json::write_string(&mut out, body.len().to_string().as_bytes());
        member(&mut out, "_body");
        json::write_string(&mut out, body);
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_each_agrees_with_get() {
        for e in [
            Event::parse_plain(Bytes::from_static(PLAIN)).unwrap(),
            Event::parse_json(Bytes::from_static(
                br#"{"Event-Name":"X","x-dup":"a","X-Dup":"b","N":1}"#,
            ))
            .unwrap(),
        ] {
            let names = ["X-Dup", "event-name", "Missing", "Job-UUID", "N", "x-dup"];
            let got = e.get_each(names);
            for (name, value) in names.iter().zip(got) {
                assert_eq!(value, e.get(name), "{name}");
            }
        }
    }

    const PLAIN: &[u8] = b"Event-Name: BACKGROUND_JOB\nCore-UUID: c1\nEvent-Sequence: 437\n\
Job-UUID: j1\nJob-Command: status\nX-Dup: a\nX-Dup: b%20c\nvariable_DP_MATCH: ARRAY%3A%3A2000%7C%3A2000\n\
Content-Length: 6\n\n+OK u\n";

    #[test]
    fn plain_event_accessors() {
        let e = Event::parse_plain(Bytes::from_static(PLAIN)).unwrap();
        assert!(e.is("BACKGROUND_JOB"));
        assert_eq!(e.sequence(), Some(437));
        assert_eq!(e.job_uuid().as_deref(), Some("j1"));
        assert_eq!(e.get_all("x-dup").collect::<Vec<_>>(), ["a", "b c"]);
        assert_eq!(e.variable("DP_MATCH").as_deref(), Some("ARRAY::2000|:2000"));
        assert_eq!(e.get_array("variable_DP_MATCH").unwrap(), ["2000", "2000"]);
        assert_eq!(e.body_text().as_deref(), Some("+OK u\n"));
        assert!(e.unique_id().is_none());
    }

    #[test]
    fn plain_rejects_bad_inner_length() {
        let raw = Bytes::from_static(b"Event-Name: X\nContent-Length: 99\n\nshort");
        assert!(matches!(
            Event::parse_plain(raw),
            Err(EventError::BadBodyLength(_))
        ));
        let raw = Bytes::from_static(b"Event-Name: X\ngarbage line\n\n");
        assert!(matches!(
            Event::parse_plain(raw),
            Err(EventError::Header(_))
        ));
    }

    #[test]
    fn json_event_accessors() {
        let raw = br#"{"Event-Name":"CHANNEL_HANGUP_COMPLETE","Unique-ID":"u1","Hangup-Cause":"USER_BUSY","Answer-State":"hangup","Call-Direction":"outbound","Hangup-Cause":"USER_BUSY","variable_DP_MATCH":["2000","2000"],"Content-Length":"4","_body":"a\nb\""}"#;
        let e = Event::parse_json(Bytes::from_static(raw)).unwrap();
        assert_eq!(e.hangup_cause(), Some(HangupCause::USER_BUSY));
        assert_eq!(e.get_all("Hangup-Cause").count(), 2);
        assert_eq!(e.answer_state(), Some(AnswerState::Hangup));
        assert_eq!(e.call_direction(), Some(CallDirection::Outbound));
        assert_eq!(
            e.get("variable_DP_MATCH").as_deref(),
            Some("ARRAY::2000|:2000")
        );
        assert_eq!(e.body_text().as_deref(), Some("a\nb\""));
        assert!(!e.headers().any(|(n, _)| n == "_body"));
    }

    #[test]
    fn write_then_parse_both_formats() {
        let headers = [
            ("Event-Name", "CHANNEL_CREATE"),
            ("Caller-Caller-ID-Name", "José \"J\" 100%"),
            ("variable_x", "ARRAY::a|:b"),
            ("Hangup-Cause", "NORMAL_CLEARING"),
            ("Hangup-Cause", "NORMAL_CLEARING"),
        ];
        for format in [EventFormat::Plain, EventFormat::Json] {
            let mut buf = BytesMut::new();
            write_event(&mut buf, format, &headers, Some(b"body\n"));
            let text = buf.freeze();
            let split = memchr::memmem::find(&text, b"\n\n").unwrap() + 2;
            let e = Event::parse(format, text.slice(split..)).unwrap();
            let got: Vec<(String, String)> = e
                .headers()
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .filter(|(n, _)| n != "Content-Length")
                .collect();
            let want: Vec<(String, String)> = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want, "{format}");
            assert_eq!(e.body_text().as_deref(), Some("body\n"));
        }
    }
}
