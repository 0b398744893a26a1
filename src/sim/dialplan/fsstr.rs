//! FreeSWITCH's little string rules that the dialplan and its applications rely on.
//!
//! This file owns faithful copies of the C helpers whose quirks are visible from a
//! dialplan: word splitting with single quotes and backslash escapes
//! (`switch_separate_string` with a blank delimiter), `switch_url_decode`, `atoi`
//! and `switch_true`. It must not know about channels, applications or XML; it
//! only turns strings into strings.

/// `switch_true`: "yes", "on", "true", "t", "enabled", "active", "allow"
/// (any case) or a non-zero number.
pub(crate) fn switch_true(value: Option<&str>) -> bool {
    let Some(v) = value else { return false };
    const WORDS: [&str; 7] = ["yes", "on", "true", "t", "enabled", "active", "allow"];
    if WORDS.iter().any(|w| v.eq_ignore_ascii_case(w)) {
        return true;
    }
    is_number(v) && atoi(v) != 0
}

/// `switch_is_number`: optional sign, digits, at most one dot, nothing else.
fn is_number(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if body.is_empty() {
        return false;
    }
    let mut dots = 0;
    for c in body.chars() {
        match c {
            '0'..='9' => {}
            '.' => {
                dots += 1;
                if dots > 1 {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// C `atoi`: leading white space, an optional sign, then digits; anything
/// unparsable gives 0. Saturates instead of overflowing.
pub(crate) fn atoi(s: &str) -> i64 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

/// `switch_url_decode`: `%` followed by hex digits becomes that byte (FreeSWITCH
/// reads up to two hex digits with `sscanf("%2x")` and then always skips two
/// characters); `+` is left alone. A decoded NUL ends the string, as it does in C.
pub(crate) fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && b.len() - i > 2 {
            let hex = &b[i + 1..i + 3];
            let digits: Vec<u8> = hex
                .iter()
                .take_while(|c| c.is_ascii_hexdigit())
                .copied()
                .collect();
            if !digits.is_empty() {
                let text = std::str::from_utf8(&digits).unwrap_or("0");
                out.push(u8::from_str_radix(text, 16).unwrap_or(0));
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    if let Some(nul) = out.iter().position(|&c| c == 0) {
        out.truncate(nul);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `switch_separate_string(buf, ' ', argv, max)`: splits on runs of spaces;
/// single quotes group words (and are removed), a backslash escapes the next
/// character (`\n`, `\r`, `\t`, `\s` become newline, CR, tab and space). When
/// `max` words are reached the last one holds the rest of the text.
pub(crate) fn separate_blank(s: &str, max: usize) -> Vec<String> {
    #[derive(PartialEq)]
    enum State {
        Start,
        SkipInitialSpace,
        FindDelim,
        SkipEndingSpace,
    }
    let b = s.as_bytes();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut state = State::Start;
    let mut inside_quotes = false;
    let mut i = 0;
    while i < b.len() && ranges.len() < max {
        match state {
            State::Start => {
                ranges.push((i, b.len()));
                state = State::SkipInitialSpace;
            }
            State::SkipInitialSpace => {
                if b[i] == b' ' {
                    i += 1;
                } else {
                    state = State::FindDelim;
                }
            }
            State::FindDelim => {
                if b[i] == b'\\' {
                    i += 1;
                } else if b[i] == b'\'' {
                    inside_quotes = !inside_quotes;
                } else if b[i] == b' ' && !inside_quotes {
                    if let Some(last) = ranges.last_mut() {
                        last.1 = i;
                    }
                    state = State::SkipEndingSpace;
                }
                i += 1;
            }
            State::SkipEndingSpace => {
                if b[i] == b' ' {
                    i += 1;
                } else {
                    state = State::Start;
                }
            }
        }
    }
    ranges
        .into_iter()
        .map(|(start, end)| cleanup_separated(&b[start..end.min(b.len())]))
        .collect()
}

fn unescape_char(c: u8) -> u8 {
    match c {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b's' => b' ',
        other => other,
    }
}

/// `cleanup_separated_string(str, ' ')`: strips leading spaces, unescaped
/// quotes, escapes and trailing spaces outside quotes.
fn cleanup_separated(word: &[u8]) -> String {
    let start = word.iter().position(|&c| c != b' ').unwrap_or(word.len());
    let w = &word[start..];
    let mut out: Vec<u8> = Vec::with_capacity(w.len());
    let mut end: Option<usize> = None;
    let mut inside_quotes = false;
    let mut i = 0;
    while i < w.len() {
        let c = w[i];
        if c == b'\\' && i + 1 < w.len() {
            let next = w[i + 1];
            let e = unescape_char(next);
            if matches!(next, b'\'' | b'"' | b' ' | b'\\') || e != next {
                out.push(e);
                end = Some(out.len());
                i += 2;
                continue;
            }
        }
        if c == b'\'' && (inside_quotes || w[i + 1..].contains(&b'\'')) {
            inside_quotes = !inside_quotes;
            if inside_quotes {
                end = Some(out.len());
            }
        } else {
            out.push(c);
            if c != b' ' || inside_quotes {
                end = Some(out.len());
            }
        }
        i += 1;
    }
    if let Some(end) = end {
        out.truncate(end);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_true_words_and_numbers() {
        for v in [
            "true", "TRUE", "yes", "on", "t", "enabled", "active", "allow", "1", "-2",
        ] {
            assert!(switch_true(Some(v)), "{v}");
        }
        for v in ["false", "no", "0", "", "truex", "1a"] {
            assert!(!switch_true(Some(v)), "{v}");
        }
        assert!(!switch_true(None));
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi("12"), 12);
        assert_eq!(atoi("  -7x"), -7);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi(""), 0);
        assert_eq!(atoi("99999999999999999999999"), i64::MAX);
    }

    #[test]
    fn url_decode_like_freeswitch() {
        assert_eq!(url_decode("a%20b+c"), "a b+c");
        assert_eq!(url_decode("%7B%22k%22%3A1%7D"), "{\"k\":1}");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz"), "%zz");
        assert_eq!(url_decode("x%00y"), "x");
        assert_eq!(url_decode("%4g"), "\u{4}");
    }

    #[test]
    fn words_split_on_spaces_with_quotes() {
        assert_eq!(separate_blank("a  b c", 30), ["a", "b", "c"]);
        assert_eq!(separate_blank("  a b  ", 30), ["a", "b"]);
        assert_eq!(
            separate_blank("http://x post 'a b c' append_headers 'X-A: 1'", 30),
            ["http://x", "post", "a b c", "append_headers", "X-A: 1"]
        );
        assert_eq!(separate_blank(r"a\sb c\'d", 30), ["a b", "c'd"]);
        // A lone quote still suppresses splitting, then stays in the word.
        assert_eq!(separate_blank("it's here", 30), ["it's here"]);
        assert_eq!(separate_blank("a b c d e", 3), ["a", "b", "c d e"]);
        assert!(separate_blank("", 30).is_empty());
        assert_eq!(separate_blank("trailing\\", 30), ["trailing\\"]);
    }
}
