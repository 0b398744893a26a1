//! Parsing of what `originate` and `bridge` are given: FreeSWITCH's argument
//! splitting (`switch_separate_string`: single quotes, backslash escapes),
//! dial strings with `<…>`/`{…}` global and `[…]` per-leg variables (`\,`
//! escapes, `^^X` delimiters), leg separators (`,` simultaneous, `|`
//! failover), endpoint strings, and the `originate` argument list (`&app(arg)`
//! or `<exten> [dialplan] [context]`, caller ID, timeout).
//!
//! Pure parsing with unit tests; the call flows live in `core`.

/// Splits on spaces like `switch_separate_string`: single quotes group words
/// (and are removed), a backslash escapes a quote, space or backslash, and
/// `\n \r \t \s` become LF, CR, TAB and space.
pub fn separate_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut has = false;
    let mut chars = s.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek().copied() {
                Some(n @ ('\'' | '\\' | ' ')) => {
                    cur.push(n);
                    chars.next();
                    has = true;
                }
                Some('n') => {
                    cur.push('\n');
                    chars.next();
                    has = true;
                }
                Some('r') => {
                    cur.push('\r');
                    chars.next();
                    has = true;
                }
                Some('t') => {
                    cur.push('\t');
                    chars.next();
                    has = true;
                }
                Some('s') => {
                    cur.push(' ');
                    chars.next();
                    has = true;
                }
                _ => {
                    cur.push('\\');
                    has = true;
                }
            },
            '\'' => {
                in_q = !in_q;
                has = true;
            }
            ' ' if !in_q => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

/// One leg of a dial string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    /// `[…]` variables of this leg (after the global ones).
    pub vars: Vec<(String, String)>,
    /// The endpoint string, e.g. `sofia/external/2000@127.0.0.1:5090`.
    pub endpoint: String,
}

/// A parsed dial string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialString {
    /// `<…>` and `{…}` variables, in order.
    pub global: Vec<(String, String)>,
    /// Failover groups (`|`), each a list of simultaneous legs (`,`).
    pub groups: Vec<Vec<Leg>>,
}

/// Dial string errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    /// A bracket was not closed.
    #[error("unterminated {0:?} in dial string")]
    Unterminated(char),
    /// No endpoint.
    #[error("empty dial string")]
    Empty,
}

fn closing(open: char) -> char {
    match open {
        '{' => '}',
        '[' => ']',
        _ => '>',
    }
}

/// Parses `a=b,c=d` (the inside of a bracket), honouring `^^X`, `\,` and quotes.
pub fn parse_vars(inner: &str) -> Vec<(String, String)> {
    let (delim, body) = match inner.strip_prefix("^^") {
        Some(rest) if !rest.is_empty() => {
            let d = rest.chars().next().unwrap_or(',');
            (d, &rest[d.len_utf8()..])
        }
        _ => (',', inner),
    };
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&n) = chars.peek() {
                if n == delim || n == '\'' || n == '\\' {
                    cur.push(n);
                    chars.next();
                    continue;
                }
            }
            cur.push(c);
        } else if c == '\'' {
            in_q = !in_q;
        } else if c == delim && !in_q {
            items.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    items.push(cur);
    items
        .into_iter()
        .filter_map(|it| {
            let (k, v) = it.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Finds the closing bracket for the bracket at the start of `s`.
fn bracket_end(s: &str) -> Result<usize, DialError> {
    let open = s.chars().next().unwrap_or('{');
    let close = closing(open);
    let mut depth = 0usize;
    let mut esc = false;
    for (i, c) in s.char_indices() {
        if esc {
            esc = false;
            continue;
        }
        if c == '\\' {
            esc = true;
        } else if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Ok(i);
            }
        }
    }
    Err(DialError::Unterminated(open))
}

/// Parses a whole dial string.
pub fn parse_dial_string(s: &str) -> Result<DialString, DialError> {
    let mut rest = s.trim();
    let mut ds = DialString::default();
    while rest.starts_with('{') || rest.starts_with('<') {
        let end = bracket_end(rest)?;
        ds.global.extend(parse_vars(&rest[1..end]));
        rest = rest[end + 1..].trim_start();
    }
    // Split the remainder into legs at top-level ',' and '|'.
    let mut groups: Vec<Vec<Leg>> = vec![Vec::new()];
    let mut cur_vars = Vec::new();
    let mut cur = String::new();
    let mut i = 0;
    let bytes: Vec<char> = rest.chars().collect();
    let flush = |cur: &mut String, vars: &mut Vec<(String, String)>, groups: &mut Vec<Vec<Leg>>| {
        let ep = cur.trim().to_string();
        if !ep.is_empty() {
            if let Some(g) = groups.last_mut() {
                g.push(Leg {
                    vars: std::mem::take(vars),
                    endpoint: ep,
                });
            }
        }
        cur.clear();
    };
    while i < bytes.len() {
        let c = bytes[i];
        if c == '[' && cur.trim().is_empty() {
            let tail: String = bytes[i..].iter().collect();
            let end = bracket_end(&tail)?;
            cur_vars.extend(parse_vars(&tail[1..end]));
            i += tail[..=end].chars().count();
            continue;
        }
        match c {
            ',' => flush(&mut cur, &mut cur_vars, &mut groups),
            '|' => {
                flush(&mut cur, &mut cur_vars, &mut groups);
                groups.push(Vec::new());
            }
            _ => cur.push(c),
        }
        i += 1;
    }
    flush(&mut cur, &mut cur_vars, &mut groups);
    groups.retain(|g| !g.is_empty());
    if groups.is_empty() {
        return Err(DialError::Empty);
    }
    ds.groups = groups;
    Ok(ds)
}

/// What an endpoint string names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `sofia/<profile>/<user>@<host>[:port]`.
    Sofia {
        profile: String,
        user: String,
        host: String,
        port: u16,
    },
    /// `sofia/gateway/<gateway>/<number>`: through a configured gateway.
    Gateway { gateway: String, user: String },
    /// `error/<cause>`: fails at once with that cause.
    Error(String),
    /// `loopback/<exten>[/<context>]`, `user/<x>` and others: a generic far end.
    Other { dest: String },
}

impl Endpoint {
    /// Parses an endpoint string.
    pub fn parse(s: &str) -> Endpoint {
        let mut parts = s.splitn(3, '/');
        let tech = parts.next().unwrap_or_default();
        let a = parts.next().unwrap_or_default();
        let b = parts.next().unwrap_or_default();
        match tech {
            "sofia" if a == "gateway" => {
                let (gw, number) = b.split_once('/').unwrap_or((b, ""));
                Endpoint::Gateway {
                    gateway: gw.to_string(),
                    user: number.to_string(),
                }
            }
            "sofia" => {
                let target = b.strip_prefix("sip:").unwrap_or(b);
                let target = target.split(';').next().unwrap_or(target);
                let (user, hostport) = target.split_once('@').unwrap_or(("", target));
                let (host, port) = match hostport.rsplit_once(':') {
                    Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse().unwrap_or(5060)),
                    _ => (hostport, 5060),
                };
                Endpoint::Sofia {
                    profile: a.to_string(),
                    user: user.to_string(),
                    host: host.to_string(),
                    port,
                }
            }
            "error" => Endpoint::Error(a.to_string()),
            _ => Endpoint::Other {
                dest: a.split('@').next().unwrap_or(a).to_string(),
            },
        }
    }

    /// The destination number / user part.
    pub fn dest(&self) -> &str {
        match self {
            Endpoint::Sofia { user, .. } | Endpoint::Gateway { user, .. } => user,
            Endpoint::Error(c) => c,
            Endpoint::Other { dest } => dest,
        }
    }
}

/// Where an originated leg goes once it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `&app(arg)`.
    App { name: String, arg: String },
    /// `<exten> [dialplan] [context]`.
    Exten {
        exten: String,
        dialplan: String,
        context: String,
    },
}

/// Parsed `originate` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginateArgs {
    pub dial: DialString,
    pub target: Target,
    pub cid_name: Option<String>,
    pub cid_num: Option<String>,
    pub timeout_s: Option<u64>,
}

/// The usage text of `originate`.
pub const ORIGINATE_USAGE: &str = "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]\n";

/// Why `originate` refused its arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginateError {
    /// Wrong number of words: reply is the usage text.
    #[error("usage")]
    Usage,
    /// The dial string is broken.
    #[error(transparent)]
    Dial(#[from] DialError),
}

/// Parses the argument string of the `originate` API.
pub fn parse_originate(args: &str) -> Result<OriginateArgs, OriginateError> {
    let words = separate_words(args);
    if words.len() < 2 || words.len() > 7 {
        return Err(OriginateError::Usage);
    }
    let given = |i: usize| {
        words
            .get(i)
            .filter(|w| !w.is_empty() && w.as_str() != "undef")
            .cloned()
    };
    let dial = parse_dial_string(&words[0])?;
    let dialplan = given(2).unwrap_or_else(|| "XML".to_string());
    let context = given(3).unwrap_or_else(|| "default".to_string());
    let target = if let Some(app) = words[1].strip_prefix('&') {
        match app.split_once('(') {
            Some((name, rest)) => Target::App {
                name: name.to_string(),
                arg: rest.split(')').next().unwrap_or_default().to_string(),
            },
            None => Target::App {
                name: app.to_string(),
                arg: String::new(),
            },
        }
    } else {
        Target::Exten {
            exten: words[1].clone(),
            dialplan,
            context,
        }
    };
    Ok(OriginateArgs {
        dial,
        target,
        cid_name: given(4),
        cid_num: given(5),
        timeout_s: given(6).and_then(|t| t.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_like_switch_separate_string() {
        assert_eq!(
            separate_words("{a='John Doe'}x &park()  XML"),
            vec!["{a=John Doe}x", "&park()", "XML"]
        );
        assert_eq!(separate_words(r"a\sb c\\d"), vec!["a b", r"c\d"]);
    }

    #[test]
    fn dial_string_vars_and_legs() {
        let d = parse_dial_string(
            r"{origination_uuid=u1,x=a\,b}<e=1>[leg=1]sofia/external/+1555@127.0.0.1:5090,[leg=2]sofia/external/2@h|error/USER_BUSY",
        );
        // '<' after '{' is also global.
        let d = d.unwrap();
        assert_eq!(
            d.global,
            vec![
                ("origination_uuid".into(), "u1".into()),
                ("x".into(), "a,b".into()),
                ("e".into(), "1".into())
            ]
        );
        assert_eq!(d.groups.len(), 2);
        assert_eq!(d.groups[0].len(), 2);
        assert_eq!(d.groups[0][0].vars, vec![("leg".into(), "1".into())]);
        assert_eq!(d.groups[0][1].endpoint, "sofia/external/2@h");
        assert_eq!(d.groups[1][0].endpoint, "error/USER_BUSY");
        assert_eq!(
            parse_vars("^^:a=x,y:b=z"),
            vec![("a".into(), "x,y".into()), ("b".into(), "z".into())]
        );
        assert_eq!(parse_dial_string("{a=b"), Err(DialError::Unterminated('{')));
        assert_eq!(parse_dial_string("{a=b}"), Err(DialError::Empty));
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,80}") {
            let _ = separate_words(&s);
            let _ = parse_dial_string(&s);
            let _ = parse_originate(&s);
            let _ = parse_vars(&s);
            let _ = Endpoint::parse(&s);
        }

        #[test]
        fn bracketed_values_round_trip(v in "[a-zA-Z0-9 ,=+é]{0,20}") {
            let escaped = v.replace(',', "\\,");
            let d = parse_dial_string(&format!("{{x={escaped}}}[y=1]sofia/external/1@h")).unwrap();
            proptest::prop_assert_eq!(&d.global[0].1, &v);
            proptest::prop_assert_eq!(&d.groups[0][0].vars[0].1, "1");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("sofia/external/+15557770002@127.0.0.1:5090"),
            Endpoint::Sofia {
                profile: "external".into(),
                user: "+15557770002".into(),
                host: "127.0.0.1".into(),
                port: 5090
            }
        );
        assert_eq!(Endpoint::parse("sofia/gateway/carrier/123").dest(), "123");
        assert_eq!(
            Endpoint::parse("sofia/gateway/carrier/+15557770002"),
            Endpoint::Gateway {
                gateway: "carrier".into(),
                user: "+15557770002".into()
            }
        );
        assert_eq!(
            Endpoint::parse("error/USER_BUSY"),
            Endpoint::Error("USER_BUSY".into())
        );
    }

    #[test]
    fn originate_args() {
        let a = parse_originate("{origination_uuid=u}sofia/external/1@h &park()").unwrap();
        assert_eq!(
            a.target,
            Target::App {
                name: "park".into(),
                arg: "".into()
            }
        );
        let a = parse_originate("sofia/external/1@h &bridge(sofia/external/2@h)").unwrap();
        assert_eq!(
            a.target,
            Target::App {
                name: "bridge".into(),
                arg: "sofia/external/2@h".into()
            }
        );
        let a = parse_originate("sofia/external/1@h 1000 XML public 'A B' 123 30").unwrap();
        assert_eq!(
            a.target,
            Target::Exten {
                exten: "1000".into(),
                dialplan: "XML".into(),
                context: "public".into()
            }
        );
        assert_eq!(a.cid_name.as_deref(), Some("A B"));
        assert_eq!(a.timeout_s, Some(30));
        let a = parse_originate("sofia/external/1@h 1000 undef undef").unwrap();
        assert!(matches!(a.target, Target::Exten { ref context, .. } if context == "default"));
        assert_eq!(parse_originate("x"), Err(OriginateError::Usage));
    }
}
