//! Channel-variable expansion, `${name}`, as `switch_channel_expand_variables` does it.
//!
//! This file owns the one function that turns `${...}` references into values
//! read through [`ChannelVars`]: channel variables first, then caller-profile
//! fields; unknown names become the empty string. It must never execute
//! anything: FreeSWITCH runs `${api(args)}` / `${api args}` as an API command,
//! the simulator leaves such text exactly as written (docs/esl-protocol.md §9.3
//! explains why that syntax is dangerous in the first place). It must not write
//! to the channel either.
//!
//! Supported, as in FreeSWITCH: values are expanded again (a variable may hold
//! `${other}`), nested names (`${a_${b}}`), substrings (`${name:offset:length}`,
//! negative offsets count from the end), and the escapes `\$` (a literal `$`),
//! `\'` (removed) and `\\` (one backslash), which only apply when the text
//! contains `${` or one of those escapes. Not supported: `$${global}` (a
//! preprocessor reference, left literal), `${name[index]}` arrays and the
//! `aleg_`/`bleg_` prefixes.

use super::ChannelVars;

/// How deep values that themselves contain `${...}` are expanded again.
const MAX_DEPTH: usize = 16;

/// Expands every `${name}` in `data` against `chan` (see the module docs).
pub fn expand<C: ChannelVars + ?Sized>(data: &str, chan: &C) -> String {
    expand_depth(data, chan, 0)
}

/// True when FreeSWITCH would run the expander over `s` at all.
pub(crate) fn needs_expansion(s: &str) -> bool {
    s.contains("${") || s.contains("\\$") || s.contains("\\'")
}

fn expand_depth<C: ChannelVars + ?Sized>(data: &str, chan: &C, depth: usize) -> String {
    if depth > MAX_DEPTH || !needs_expansion(data) {
        return data.to_owned();
    }
    let b = data.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'$' => {
                    // `\$` is a literal dollar; FreeSWITCH also swallows a second `$`.
                    out.push(b'$');
                    i += 2;
                    if b.get(i) == Some(&b'$') {
                        i += 1;
                    }
                    continue;
                }
                b'\'' => {
                    i += 2;
                    continue;
                }
                b'\\' => {
                    out.push(b'\\');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        if c == b'$' && b.get(i + 1) == Some(&b'$') && b.get(i + 2) == Some(&b'{') {
            // `$${global}`: left literal, braces and all.
            let end = reference_end(b, i + 3).map_or(b.len(), |close| close + 1);
            out.extend_from_slice(&b[i..end]);
            i = end;
            continue;
        }
        if c == b'$' && b.get(i + 1) == Some(&b'{') {
            let name_start = i + 2;
            let (name_end, next) = match reference_end(b, name_start) {
                Some(close) => (close, close + 1),
                None => (b.len(), b.len()),
            };
            let name = &data[name_start..name_end];
            if name.contains([' ', '(']) {
                // `${api args}` / `${api(args)}`: never executed here.
                out.extend_from_slice(&b[i..next]);
            } else {
                out.extend_from_slice(lookup(name, chan, depth).as_bytes());
            }
            i = next;
            continue;
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Index of the `}` closing a reference whose name starts at `start`, counting
/// nested braces the way FreeSWITCH does.
fn reference_end(b: &[u8], start: usize) -> Option<usize> {
    let mut depth = 1usize;
    let mut e = start;
    while e < b.len() {
        if depth == 1 && b[e] == b'}' {
            return Some(e);
        }
        if e != start && b[e] == b'{' {
            depth += 1;
        } else if depth > 1 && b[e] == b'}' {
            depth -= 1;
        }
        e += 1;
    }
    None
}

fn lookup<C: ChannelVars + ?Sized>(raw_name: &str, chan: &C, depth: usize) -> String {
    let name = expand_depth(raw_name, chan, depth + 1);
    let (name, offset, length) = match name.split_once(':') {
        Some((n, rest)) => {
            let offset = super::fsstr::atoi(rest);
            let length = rest
                .split_once(':')
                .map_or(0, |(_, l)| super::fsstr::atoi(l));
            (n.to_owned(), offset, length)
        }
        None => (name, 0, 0),
    };
    if name.is_empty() {
        return String::new();
    }
    let Some(value) = chan.variable(&name).or_else(|| chan.profile_field(&name)) else {
        return String::new();
    };
    let value = expand_depth(&value, chan, depth + 1);
    if offset == 0 && length == 0 {
        return value;
    }
    let v = value.as_bytes();
    let start = if offset >= 0 {
        usize::try_from(offset).unwrap_or(usize::MAX).min(v.len())
    } else {
        let back = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
        if back <= v.len() {
            v.len() - back
        } else {
            0
        }
    };
    let mut sub = &v[start..];
    if let Ok(len) = usize::try_from(length) {
        if len > 0 && len < sub.len() {
            sub = &sub[..len];
        }
    }
    String::from_utf8_lossy(sub).into_owned()
}

#[cfg(test)]
mod tests {
    use super::super::testchan::TestChannel;
    use super::*;

    fn chan() -> TestChannel {
        let mut c = TestChannel::new("+15557770001", "15550100001");
        c.var("greeting", "hello");
        c.var("who", "world");
        c.var("indirect", "${greeting}!");
        c.var("key_world", "nested");
        c.var("self", "${self}");
        c
    }

    #[test]
    fn variables_then_profile_fields_then_empty() {
        let c = chan();
        assert_eq!(expand("${greeting} ${who}", &c), "hello world");
        assert_eq!(expand("to ${destination_number}", &c), "to 15550100001");
        assert_eq!(expand("[${nope}]", &c), "[]");
        assert_eq!(expand("no refs $1 \\d", &c), "no refs $1 \\d");
    }

    #[test]
    fn values_and_names_are_expanded_again() {
        let c = chan();
        assert_eq!(expand("${indirect}", &c), "hello!");
        assert_eq!(expand("${key_${who}}", &c), "nested");
        // A self-reference stops at the depth limit instead of looping.
        assert_eq!(expand("${self}", &c), "${self}");
    }

    #[test]
    fn api_calls_are_left_literal() {
        let c = chan();
        assert_eq!(
            expand("a ${system(rm -rf /)} b", &c),
            "a ${system(rm -rf /)} b"
        );
        assert_eq!(expand("${expr 1+1}", &c), "${expr 1+1}");
        assert_eq!(expand("$${domain} ${who}", &c), "$${domain} world");
    }

    #[test]
    fn substrings() {
        let c = chan();
        assert_eq!(expand("${destination_number:1}", &c), "5550100001");
        assert_eq!(expand("${destination_number:-4}", &c), "0001");
        assert_eq!(expand("${destination_number:1:3}", &c), "555");
        assert_eq!(expand("${greeting:99}", &c), "");
    }

    #[test]
    fn escapes_only_when_expanding() {
        let c = chan();
        assert_eq!(expand("\\${who} ${who}", &c), "${who} world");
        assert_eq!(expand("it\\'s ${who}", &c), "its world");
        assert_eq!(expand("a\\\\b ${who}", &c), "a\\b world");
        assert_eq!(expand("a\\\\b", &c), "a\\\\b");
        assert_eq!(expand("${who", &c), "world");
        assert_eq!(expand("$", &c), "$");
        assert_eq!(expand("${}", &c), "");
    }
}
