//! A lenient scanner for the flat JSON objects of `text/event-json`.
//!
//! FreeSWITCH's JSON events are one flat object whose values are strings, or
//! arrays of strings for multi-valued headers (docs/esl-protocol.md §1.5). A general
//! JSON library is the wrong tool here for two reasons: the objects carry
//! duplicate keys (two `Hangup-Cause` in CHANNEL_HANGUP_COMPLETE) that must be
//! kept, and cJSON copies bytes ≥ 0x80 unchanged, so a Latin-1 display name
//! makes the text invalid UTF-8, which strict parsers reject. This scanner works
//! on bytes, records where each key and value is, and unescapes nothing until a
//! value is read. It owns no event semantics.

use std::borrow::Cow;
use std::ops::Range;

use nom::bytes::complete::{take_while, take_while1};
use nom::character::complete::char;
use nom::combinator::{map, recognize};
use nom::multi::separated_list0;
use nom::sequence::{delimited, tuple};
use nom::IResult;

use super::scan::Positions;

/// What kind of JSON value a member holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    /// A string; the span excludes the quotes and may contain escapes.
    String,
    /// An array; the span covers `[` … `]`.
    Array,
    /// A number, `true`, `false` or `null`, as written.
    Literal,
}

/// One `"key": value` member, as spans into the scanned text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) key: Range<u32>,
    pub(crate) value: Range<u32>,
    pub(crate) kind: ValueKind,
}

fn ws(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))(i)
}

/// The inside of a JSON string (up to, not including, the closing quote).
/// Most values are short, so a plain byte loop looks at the first bytes
/// before handing longer strings to SIMD search.
fn string_body(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let mut at = 0;
    for (i, &b) in input.iter().take(48).enumerate() {
        match b {
            b'"' => return Ok((&input[i..], &input[..i])),
            b'\\' => break,
            _ => at = i + 1,
        }
    }
    loop {
        match memchr::memchr2(b'"', b'\\', &input[at..]) {
            Some(i) if input[at + i] == b'"' => return Ok((&input[at + i..], &input[..at + i])),
            Some(i) if at + i + 1 < input.len() => at += i + 2,
            _ => {
                return Err(nom::Err::Error(nom::error::Error::new(
                    input,
                    nom::error::ErrorKind::Escaped,
                )))
            }
        }
    }
}

fn string(i: &[u8]) -> IResult<&[u8], &[u8]> {
    delimited(char('"'), string_body, char('"'))(i)
}

fn array(i: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize(delimited(
        tuple((char('['), ws)),
        separated_list0(tuple((ws, char(','), ws)), value_any),
        tuple((ws, char(']'))),
    ))(i)
}

fn literal(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(|b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))(i)
}

fn value_any(i: &[u8]) -> IResult<&[u8], (ValueKind, &[u8])> {
    // Dispatch on the first byte: every FreeSWITCH value is a string.
    match i.first() {
        Some(b'"') => map(string, |s| (ValueKind::String, s))(i),
        Some(b'[') => map(array, |s| (ValueKind::Array, s))(i),
        _ => map(literal, |s| (ValueKind::Literal, s))(i),
    }
}

/// Scans one flat object. Returns the members in order, duplicates kept.
/// (Tests use it; the event parser takes the members one by one.)
///
/// String ends are found through one structural index of `"` and `\\` over the
/// whole text ([`super::scan`]), so the cost per member is a few bit
/// operations rather than a search; arrays and literals, rare in FreeSWITCH
/// events, go through the nom parsers above.
#[cfg(test)]
pub(crate) fn scan_object(text: &[u8]) -> Result<Vec<Member>, String> {
    let mut members = Vec::new();
    scan_object_with(text, |m| members.push(m))?;
    Ok(members)
}

/// Scans one flat object, handing each member to `on_member` in order.
pub(crate) fn scan_object_with(
    text: &[u8],
    mut on_member: impl FnMut(Member),
) -> Result<(), String> {
    let fail =
        |at: usize, what: &str| -> String { format!("invalid JSON event at byte {at}: {what}") };
    let mut quotes = Positions::new(text, b'"', b'\\');
    let mut at = skip_ws(text, 0);
    if text.get(at) != Some(&b'{') {
        return Err(fail(at, "expected '{'"));
    }
    at = skip_ws(text, at + 1);
    if text.get(at) == Some(&b'}') {
        return end(text, &text[at + 1..]);
    }
    loop {
        if text.get(at) != Some(&b'"') {
            return Err(fail(at, "expected a string key"));
        }
        let key = at + 1
            ..string_end(text, &mut quotes, at + 1).ok_or_else(|| fail(at, "unterminated key"))?;
        at = skip_ws(text, key.end + 1);
        if text.get(at) != Some(&b':') {
            return Err(fail(at, "expected ':'"));
        }
        at = skip_ws(text, at + 1);
        let (value, kind) = match text.get(at) {
            Some(b'"') => {
                let close = string_end(text, &mut quotes, at + 1)
                    .ok_or_else(|| fail(at, "unterminated string"))?;
                (at + 1..close, ValueKind::String)
            }
            Some(_) => {
                let (_, (kind, v)) =
                    value_any(&text[at..]).map_err(|_| fail(at, "expected a value"))?;
                let start = super::frame::offset(text, v) as usize;
                (start..start + v.len(), kind)
            }
            None => return Err(fail(at, "expected a value")),
        };
        on_member(Member {
            key: key.start as u32..key.end as u32,
            value: value.start as u32..value.end as u32,
            kind,
        });
        // A string value ends at its quote; arrays and literals at their span.
        at = skip_ws(
            text,
            if kind == ValueKind::String {
                value.end + 1
            } else {
                value.end
            },
        );
        match text.get(at) {
            Some(b',') => at = skip_ws(text, at + 1),
            Some(b'}') => return end(text, &text[at + 1..]),
            _ => return Err(fail(at, "expected ',' or '}'")),
        }
    }
}

/// The index of the quote closing a string whose content starts at `from`.
#[inline(always)]
fn string_end(text: &[u8], quotes: &mut Positions<'_>, from: usize) -> Option<usize> {
    let mut pos = quotes.next_from(from)?;
    loop {
        if text[pos] == b'"' {
            return Some(pos);
        }
        // A backslash escapes the next byte, whatever it is.
        pos = quotes.next_from(pos + 2)?;
    }
}

fn skip_ws(text: &[u8], mut at: usize) -> usize {
    while matches!(text.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

fn end(text: &[u8], rest: &[u8]) -> Result<(), String> {
    let (rest, _) = ws(rest).unwrap_or((rest, &[]));
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "invalid JSON event at byte {}: trailing data after the object",
            text.len() - rest.len()
        ))
    }
}

/// Unescapes the inside of a JSON string. Bytes that are not escapes are kept
/// as they are, so invalid UTF-8 survives until the caller decides.
pub(crate) fn unescape(raw: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = memchr::memchr(b'\\', raw) else {
        return Cow::Borrowed(raw);
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut i = first;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' || i + 1 >= raw.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let e = raw[i + 1];
        i += 2;
        match e {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'u' => {
                let (ch, used) = unicode_escape(&raw[i..]);
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                i += used;
            }
            other => out.push(other),
        }
    }
    Cow::Owned(out)
}

/// Decodes `XXXX` (after `\u`), joining a surrogate pair when one follows.
/// Returns the character and how many bytes were used.
fn unicode_escape(rest: &[u8]) -> (char, usize) {
    let hex4 = |s: &[u8]| -> Option<u32> {
        let s = std::str::from_utf8(s.get(..4)?).ok()?;
        u32::from_str_radix(s, 16).ok()
    };
    let Some(hi) = hex4(rest) else {
        return (char::REPLACEMENT_CHARACTER, 0);
    };
    if (0xD800..0xDC00).contains(&hi) && rest.get(4..6) == Some(b"\\u") {
        if let Some(lo) = hex4(&rest[6..]).filter(|lo| (0xDC00..0xE000).contains(lo)) {
            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            return (char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER), 10);
        }
    }
    (char::from_u32(hi).unwrap_or(char::REPLACEMENT_CHARACTER), 4)
}

/// The string elements of an array span (`["a","b"]`), unescaped.
pub(crate) fn array_strings(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = raw;
    while let Some(q) = memchr::memchr(b'"', i) {
        match string(&i[q..]) {
            Ok((rest, s)) => {
                out.push(unescape(s).into_owned());
                i = rest;
            }
            Err(_) => break,
        }
    }
    out
}

/// Appends `value` to `dst` as a JSON string with quotes, escaping what JSON
/// requires and copying every other byte as it is (as cJSON does).
pub(crate) fn write_string(dst: &mut Vec<u8>, value: &[u8]) {
    dst.push(b'"');
    for &b in value {
        match b {
            b'"' => dst.extend_from_slice(b"\\\""),
            b'\\' => dst.extend_from_slice(b"\\\\"),
            b'\n' => dst.extend_from_slice(b"\\n"),
            b'\r' => dst.extend_from_slice(b"\\r"),
            b'\t' => dst.extend_from_slice(b"\\t"),
            0x08 => dst.extend_from_slice(b"\\b"),
            0x0c => dst.extend_from_slice(b"\\f"),
            b if b < 0x20 => {
                dst.extend_from_slice(format!("\\u{:04x}", b).as_bytes());
            }
            b => dst.push(b),
        }
    }
    dst.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(text: &[u8]) -> Vec<(String, String, ValueKind)> {
        scan_object(text)
            .unwrap()
            .into_iter()
            .map(|m| {
                (
                    String::from_utf8_lossy(&text[m.key.start as usize..m.key.end as usize]).into(),
                    String::from_utf8_lossy(&text[m.value.start as usize..m.value.end as usize])
                        .into(),
                    m.kind,
                )
            })
            .collect()
    }

    #[test]
    fn keeps_duplicates_arrays_and_escapes() {
        let text = br#"{"A":"1","Hangup-Cause":"X","Hangup-Cause":"Y","V":["a","b\"c"],"N":12, "E":"q\"\\z"}"#;
        let m = members(text);
        assert_eq!(m.len(), 6);
        assert_eq!(m[1].1, "X");
        assert_eq!(m[2].1, "Y");
        assert_eq!(m[3].2, ValueKind::Array);
        assert_eq!(m[4], ("N".into(), "12".into(), ValueKind::Literal));
        assert_eq!(&*unescape(b"q\\\"\\\\z"), b"q\"\\z");
        assert_eq!(
            array_strings(br#"["a","b\"c"]"#),
            vec![b"a".to_vec(), b"b\"c".to_vec()]
        );
    }

    #[test]
    fn tolerates_invalid_utf8() {
        let text = b"{\"Caller-Caller-ID-Name\":\"Jos\xe9\"}";
        let m = scan_object(text).unwrap();
        assert_eq!(
            &text[m[0].value.start as usize..m[0].value.end as usize],
            b"Jos\xe9"
        );
    }

    #[test]
    fn unicode_escapes() {
        assert_eq!(&*unescape(br"\u00e9\ud83d\ude00\n"), "é😀\n".as_bytes());
        assert_eq!(&*unescape(br"\u12"), "\u{fffd}12".as_bytes());
    }

    #[test]
    fn rejects_broken_objects() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\"}",
            b"{\"a\":\"b\"",
            b"{\"a\":\"b\"} x",
            b"[1]",
            b"{\"a\":\"b",
        ] {
            assert!(
                scan_object(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(scan_object(b" {} ").unwrap().is_empty());
    }

    #[test]
    fn write_round_trip() {
        let mut out = Vec::new();
        write_string(&mut out, b"a\"b\\c\nd\x01\xe9");
        assert_eq!(&out, b"\"a\\\"b\\\\c\\nd\\u0001\xe9\"");
        let inner = &out[1..out.len() - 1];
        assert_eq!(&*unescape(inner), b"a\"b\\c\nd\x01\xe9");
    }
}
