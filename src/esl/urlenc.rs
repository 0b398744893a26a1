//! FreeSWITCH's URL encoding of `text/event-plain` header values.
//!
//! FreeSWITCH encodes with `switch_url_encode_opt` and the `SWITCH_URL_UNSAFE`
//! set (docs/esl-protocol.md §1.4): every byte below 0x20 or above 0x7E, and
//! the ASCII characters `␠"#%&+:;<=>?@[\]^`{|}`, become `%XX` with upper-case
//! hex, except that an existing `%` followed by two upper-case hex digits is
//! copied as it is ("no double encoding"). Decoding, as the reference C client
//! does it, turns `%` plus two hex digits of either case into that byte and
//! leaves everything else alone (`+` stays `+`).
//!
//! Both directions return a [`Cow`] so that the common case, a value with
//! nothing to change, costs no allocation.

use std::borrow::Cow;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn is_unsafe(b: u8) -> bool {
    !(0x20..=0x7e).contains(&b)
        || matches!(
            b,
            b' ' | b'"'
                | b'#'
                | b'%'
                | b'&'
                | b'+'
                | b':'
                | b';'
                | b'<'
                | b'='
                | b'>'
                | b'?'
                | b'@'
                | b'['
                | b'\\'
                | b']'
                | b'^'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
        )
}

fn is_upper_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'A'..=b'F').contains(&b)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Encodes `value` exactly as FreeSWITCH does for plain events.
pub fn encode(value: &[u8]) -> Cow<'_, [u8]> {
    let needs = value
        .iter()
        .enumerate()
        .any(|(i, &b)| is_unsafe(b) && !(b == b'%' && upper_hex_pair(value, i)));
    if !needs {
        return Cow::Borrowed(value);
    }
    let mut out = Vec::with_capacity(value.len() + value.len() / 2);
    for (i, &b) in value.iter().enumerate() {
        if is_unsafe(b) && !(b == b'%' && upper_hex_pair(value, i)) {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.push(b);
        }
    }
    Cow::Owned(out)
}

fn upper_hex_pair(value: &[u8], percent_at: usize) -> bool {
    matches!(value.get(percent_at + 1..percent_at + 3), Some([a, b]) if is_upper_hex(*a) && is_upper_hex(*b))
}

/// Encodes a string value; the result is always ASCII.
pub fn encode_str(value: &str) -> Cow<'_, str> {
    match encode(value.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(value),
        // Every byte above 0x7E was escaped, so what remains is ASCII.
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8(bytes).expect("encoded output is ASCII")),
    }
}

/// Decodes `%XX` sequences (either case); everything else is kept verbatim.
pub fn decode(value: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = memchr::memchr(b'%', value) else {
        return Cow::Borrowed(value);
    };
    let mut out = Vec::with_capacity(value.len());
    out.extend_from_slice(&value[..first]);
    let mut i = first;
    while i < value.len() {
        let b = value[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                value.get(i + 1).copied().and_then(hex_value),
                value.get(i + 2).copied().and_then(hex_value),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(out)
}

/// Decodes into text, replacing invalid UTF-8 (a Latin-1 display name, say)
/// with U+FFFD rather than failing.
pub fn decode_lossy(value: &[u8]) -> Cow<'_, str> {
    match decode(value) {
        Cow::Borrowed(b) => String::from_utf8_lossy(b),
        Cow::Owned(v) => match String::from_utf8(v) {
            Ok(s) => Cow::Owned(s),
            Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_freeswitch() {
        assert_eq!(
            &*encode_str("Sat, 21 Nov 2026 17:52:35 GMT"),
            "Sat,%2021%20Nov%202026%2017%3A52%3A35%20GMT"
        );
        assert_eq!(&*encode_str("::1"), "%3A%3A1");
        assert_eq!(&*encode_str("+15550100001"), "%2B15550100001");
        assert_eq!(
            &*encode_str("plain-text_ok.(x)!~*'$/"),
            "plain-text_ok.(x)!~*'$/"
        );
        assert_eq!(&*encode_str("%41 and %3a"), "%41%20and%20%253a");
        assert_eq!(&*encode_str("é\r\n"), "%C3%A9%0D%0A");
    }

    #[test]
    fn decodes_either_case() {
        assert_eq!(&*decode_lossy(b"a%3Ab%3ac+d%"), "a:b:c+d%");
        assert_eq!(&*decode_lossy(b"%C3%A9"), "é");
        assert_eq!(&*decode_lossy(b"%E9"), "\u{fffd}");
        assert!(matches!(decode(b"nothing"), Cow::Borrowed(_)));
    }

    #[test]
    fn round_trip_without_literal_escapes() {
        let s = "sofia/external/sipp@127.0.0.1:5072 {x=y} [a|b] ^`\"#&;<>?";
        assert_eq!(decode_lossy(encode(s.as_bytes()).as_ref()), s);
    }
}
