//! Properties of the command side of the ESL layer: whatever text reaches the
//! validated constructors, a command that builds is one well-formed packet that
//! FreeSWITCH (as `RequestCodec` reads it) splits back into the same command,
//! and dial strings keep their variables intact.

use bytes::BytesMut;
use fsgate::esl::api::{ApiCommand, Destination, Originate, OriginateTarget, TransferLeg};
use fsgate::esl::command::{Command, EventName, FilterValue, HeaderName, Password};
use fsgate::esl::dialstring::{AppArg, DialString, Endpoint, Leg, Token, VarName, VarValue};
use fsgate::esl::event::EventFormat;
use fsgate::esl::request::{Request, RequestCodec};
use fsgate::esl::HangupCause;
use proptest::prelude::*;
use proptest::sample::Index;
use tokio_util::codec::Decoder;
use uuid::Uuid;

/// Text of every kind: anything, printable ASCII, likely-valid shapes, and
/// injection attempts.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        "[A-Za-z0-9_ ,.:/@+=()é-]{0,30}",
        "[A-Za-z_][A-Za-z0-9_-]{0,20}",
        "[a-z0-9_]{1,12}",
        "[a-z]{1,6}/[A-Za-z0-9_+*#.@:;=~-]{1,20}",
        "[A-Za-z0-9 \\r\\n\\t\\x00'{}\\[\\]$|^,é]{0,20}",
        injected(),
    ]
}

/// Otherwise plausible text with one character or sequence that must never
/// reach the wire unvalidated.
fn injected() -> impl Strategy<Value = String> {
    let bad = prop_oneof![
        "[\\r\\n\\x00\\t\\x7f'\"`{}<>|^$\\\\\\[\\]]",
        Just("\n\n".to_owned()),
        Just("\r\n".to_owned()),
        Just(":_:".to_owned()),
        Just("reload mod_event_socket".to_owned()),
    ];
    ("[A-Za-z0-9_]{1,8}", bad, "[A-Za-z0-9 ,]{0,8}").prop_map(|(a, b, c)| format!("{a}{b}{c}"))
}

/// A command that built, the command line it must produce, and its Job-UUID.
struct Built {
    command: Command,
    line: String,
    job: Option<Uuid>,
}

fn api(list: &mut Vec<Built>, command: ApiCommand, job: Uuid) {
    list.push(Built {
        line: format!("api {command}"),
        command: Command::Api(command.clone()),
        job: None,
    });
    list.push(Built {
        line: format!("bgapi {command}"),
        command: Command::BgApi {
            command,
            job_uuid: job,
        },
        job: Some(job),
    });
}

fn plain(list: &mut Vec<Built>, command: Command, line: String) {
    list.push(Built {
        command,
        line,
        job: None,
    });
}

/// Feeds `t` to every constructor and builder; keeps what builds.
fn build_all(t: &[String], job: Uuid, n: u32) -> Vec<Built> {
    let (a, b, c, d, e) = (&t[0], &t[1], &t[2], &t[3], &t[4]);
    let uuid = Uuid::from_u128(u128::from(n) * 0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    if let Ok(p) = Password::new(a) {
        plain(&mut out, Command::Auth(p), format!("auth {a}"));
    }
    if let Ok(ev) = EventName::new(a) {
        let format = if n.is_multiple_of(2) {
            EventFormat::Plain
        } else {
            EventFormat::Json
        };
        let word = if n.is_multiple_of(2) { "plain" } else { "json" };
        let event = Command::Event {
            format,
            events: vec![ev.clone()],
        };
        plain(&mut out, event, format!("event {word} {a}"));
        let nix = Command::nix_event(vec![ev]).unwrap();
        plain(&mut out, nix, format!("nixevent {a}"));
    }
    if let (Ok(h), Ok(v)) = (HeaderName::new(a), FilterValue::new(b)) {
        let add = if a.eq_ignore_ascii_case("add") || a.eq_ignore_ascii_case("delete") {
            "add "
        } else {
            ""
        };
        let filter = Command::Filter {
            header: h.clone(),
            value: v.clone(),
        };
        plain(&mut out, filter, format!("filter {add}{a} {b}"));
        let delete = Command::FilterDelete {
            header: h,
            value: Some(v),
        };
        plain(&mut out, delete, format!("filter delete {a} {b}"));
    }
    if let Ok(name) = VarName::new(a) {
        api(&mut out, ApiCommand::uuid_getvar(uuid, &name), job);
        if let Ok(value) = VarValue::new(b) {
            api(&mut out, ApiCommand::uuid_setvar(uuid, &name, &value), job);
        }
    }
    if let Ok(ext) = Token::new(a) {
        let dest = Destination {
            extension: ext,
            dialplan: Token::new(b).ok(),
            context: Token::new(c).ok(),
        };
        let leg = [TransferLeg::Only, TransferLeg::Bleg, TransferLeg::Both][n as usize % 3];
        api(&mut out, ApiCommand::uuid_transfer(uuid, leg, &dest), job);
        let o = Originate::new(
            DialString::single(Endpoint::new("user/1000").unwrap()),
            OriginateTarget::Extension(dest),
        );
        api(&mut out, ApiCommand::originate(&o).unwrap(), job);
        if let Ok(arg) = AppArg::new(b) {
            let target = OriginateTarget::App {
                name: Token::new(a).unwrap(),
                arg,
            };
            let o = Originate::new(
                DialString::single(Endpoint::new("user/1000").unwrap()),
                target,
            );
            api(&mut out, ApiCommand::originate(&o).unwrap(), job);
        }
    }
    if let Some(dial) = dial_from(a, b, c) {
        let mut o = Originate::new(dial.clone(), OriginateTarget::Park);
        o.caller_id_name = VarValue::for_field("caller_id_name", d).ok();
        o.caller_id_number = VarValue::for_field("caller_id_number", e).ok();
        o.timeout_secs = n.is_multiple_of(3).then_some(n);
        api(&mut out, ApiCommand::originate(&o).unwrap(), job);
        let bridge = Originate::new(
            dial,
            OriginateTarget::Bridge(DialString::single(Endpoint::new("user/1").unwrap())),
        );
        api(&mut out, ApiCommand::originate(&bridge).unwrap(), job);
    }
    if let Some(dial) = dial_from(b, c, d) {
        let o = Originate::new(
            DialString::single(Endpoint::new("user/1000").unwrap()),
            OriginateTarget::Bridge(dial),
        );
        if let Ok(cmd) = ApiCommand::originate(&o) {
            api(&mut out, cmd, job);
        }
    }
    if let Ok(raw) = ApiCommand::raw(a, b) {
        api(&mut out, raw, job);
    }
    let cause = HangupCause::all().nth(n as usize % 82).unwrap();
    api(&mut out, ApiCommand::uuid_kill(uuid, cause), job);
    api(&mut out, ApiCommand::uuid_answer(uuid), job);
    plain(
        &mut out,
        Command::Linger(n.is_multiple_of(2).then_some(n)),
        if n.is_multiple_of(2) {
            format!("linger {n}")
        } else {
            "linger".into()
        },
    );
    out
}

/// `{name=value}[name=value]endpoint`, if all three pieces are valid.
fn dial_from(endpoint: &str, name: &str, value: &str) -> Option<DialString> {
    let endpoint = Endpoint::new(endpoint).ok()?;
    let name = VarName::new(name).ok()?;
    let value = VarValue::new(value).ok()?;
    let leg = Leg::new(endpoint).var(name.clone(), value.clone());
    DialString::builder().var(name, value).leg(leg).build().ok()
}

fn encode(command: &Command) -> Vec<u8> {
    let mut dst = BytesMut::new();
    command.encode(&mut dst);
    dst.to_vec()
}

/// Decodes `bytes` delivered in chunks cut at `cuts`.
fn decode_chunked(bytes: &[u8], cuts: &[Index]) -> Vec<Request> {
    let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    cuts.push(bytes.len());
    cuts.sort_unstable();
    let (mut codec, mut buf, mut out, mut from) =
        (RequestCodec::default(), BytesMut::new(), Vec::new(), 0);
    for cut in cuts {
        buf.extend_from_slice(&bytes[from..cut]);
        from = cut;
        while let Some(req) = codec
            .decode(&mut buf)
            .expect("our own commands always decode")
        {
            out.push(req);
        }
    }
    assert!(buf.is_empty(), "bytes left over");
    out
}

/// FreeSWITCH's space splitter, reduced to what our words use: single quotes
/// group and are removed, runs of spaces separate.
fn fs_words(args: &str) -> Vec<String> {
    let (mut words, mut cur, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for c in args.chars() {
        match c {
            '\'' => (quoted, any) = (!quoted, true),
            ' ' if !quoted => {
                if any {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            _ => (cur.push(c), any = true).1,
        }
    }
    if any {
        words.push(cur);
    }
    words
}

type Vars = Vec<(String, String)>;
type Legs = Vec<Vec<(Vars, String)>>;

/// Splits `s` at `sep` where it is neither escaped by `\` nor inside `[...]`.
fn split_top(s: &str, sep: char) -> Vec<String> {
    let (mut parts, mut cur, mut depth, mut prev) = (Vec::new(), String::new(), 0, ' ');
    for c in s.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        if c == sep && depth == 0 && prev != '\\' {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
        prev = c;
    }
    parts.push(cur);
    parts
}

fn parse_vars(block: &str) -> Vars {
    split_top(block, ',')
        .into_iter()
        .map(|pair| {
            let (name, value) = pair.split_once('=').expect("name=value");
            (name.to_owned(), value.replace("\\,", ","))
        })
        .collect()
}

/// The tiny dial-string parser: `{vars}` then `|` groups of `,` legs `[vars]endpoint`.
fn parse_dial(s: &str) -> (Vars, Legs) {
    let (globals, rest) = match s.strip_prefix('{') {
        Some(inner) => {
            let (block, rest) = inner.split_once('}').expect("closing brace");
            (parse_vars(block), rest)
        }
        None => (Vec::new(), s),
    };
    let groups = rest
        .split('|')
        .map(|group| {
            split_top(group, ',')
                .into_iter()
                .map(|leg| match leg.strip_prefix('[') {
                    Some(inner) => {
                        let (block, endpoint) = inner.split_once(']').expect("closing bracket");
                        (parse_vars(block), endpoint.to_owned())
                    }
                    None => (Vec::new(), leg),
                })
                .collect()
        })
        .collect();
    (globals, groups)
}

fn var() -> impl Strategy<Value = (VarName, VarValue)> {
    let name =
        "[A-Za-z_][A-Za-z0-9_-]{0,12}".prop_filter_map("valid name", |s| VarName::new(&s).ok());
    let value = prop_oneof!["[ -~]{0,20}", "[A-Za-z ,=:;/@()é-]{0,20}", any::<String>()]
        .prop_filter_map("valid value", |s| VarValue::new(&s).ok());
    (name, value)
}

fn leg() -> impl Strategy<Value = Leg> {
    let endpoint = "[a-z]{1,6}/[A-Za-z0-9_+*#.@:;=~-]{1,20}"
        .prop_filter_map("valid endpoint", |s| Endpoint::new(&s).ok());
    (endpoint, prop::collection::vec(var(), 0..4)).prop_map(|(e, vars)| {
        vars.into_iter()
            .fold(Leg::new(e), |leg, (n, v)| leg.var(n, v))
    })
}

fn as_strings(vars: &[(VarName, VarValue)]) -> Vars {
    vars.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) Built commands are exactly one packet: no CR or NUL, one empty
    /// line (the end), one line (two for bgapi).
    #[test]
    fn built_commands_are_one_clean_packet(t in prop::collection::vec(text(), 5), job in any::<u128>(), n in any::<u32>()) {
        for built in build_all(&t, Uuid::from_u128(job), n) {
            let bytes = encode(&built.command);
            prop_assert!(!bytes.contains(&b'\r') && !bytes.contains(&0), "{:?}", built.command);
            prop_assert!(bytes.ends_with(b"\n\n"));
            prop_assert_eq!(bytes.windows(2).filter(|w| w == b"\n\n").count(), 1);
            let lines = if built.job.is_some() { 2 } else { 1 };
            prop_assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), lines + 1);
        }
    }

    /// (b) Encoded and read back the way FreeSWITCH reads it, in any chunking,
    /// one at a time or pipelined, every command gives back its line and Job-UUID.
    #[test]
    fn commands_round_trip_through_the_request_codec(
        t in prop::collection::vec(text(), 5),
        job in any::<u128>(),
        n in any::<u32>(),
        cuts in prop::collection::vec(any::<Index>(), 0..10),
    ) {
        let built = build_all(&t, Uuid::from_u128(job), n);
        let mut stream = Vec::new();
        for b in &built {
            let bytes = encode(&b.command);
            let whole = decode_chunked(&bytes, &[]);
            prop_assert_eq!(whole.len(), 1);
            prop_assert_eq!(&whole, &decode_chunked(&bytes, &cuts));
            stream.extend_from_slice(&bytes);
        }
        let decoded = decode_chunked(&stream, &cuts);
        prop_assert_eq!(decoded.len(), built.len());
        for (req, b) in decoded.iter().zip(&built) {
            prop_assert_eq!(&req.line, &b.line);
            prop_assert_eq!(req.body.as_ref(), None);
            let expected = b.job.map(|j| j.to_string());
            prop_assert_eq!(req.header("Job-UUID"), expected.as_deref());
            prop_assert_eq!(req.headers.len(), usize::from(b.job.is_some()));
        }
    }

    /// (c) A dial string's text splits back into the same variables and legs.
    #[test]
    fn dial_strings_split_back_into_their_parts(
        globals in prop::collection::vec(var(), 0..4),
        groups in prop::collection::vec(prop::collection::vec(leg(), 1..4), 1..4),
    ) {
        let mut builder = globals.iter().cloned().fold(DialString::builder(), |b, (n, v)| b.var(n, v));
        for group in &groups {
            let mut legs = group.iter().cloned();
            builder = builder.failover(legs.next().unwrap());
            builder = legs.fold(builder, |b, leg| b.leg(leg));
        }
        let dial = builder.build().unwrap();
        let (parsed_globals, parsed_groups) = parse_dial(&dial.to_string());
        prop_assert_eq!(parsed_globals, as_strings(&globals));
        let expected: Legs = groups
            .iter()
            .map(|g| g.iter().map(|l| (as_strings(l.vars()), l.endpoint().to_string())).collect())
            .collect();
        prop_assert_eq!(parsed_groups, expected);
    }

    /// Originate's words, split like FreeSWITCH splits them, are the dial
    /// string, the target and the caller ID, whatever spaces they hold.
    #[test]
    fn originate_words_survive_freeswitch_splitting(
        globals in prop::collection::vec(var(), 0..3),
        first in leg(),
        cid in var(),
        timeout in proptest::option::of(any::<u32>()),
    ) {
        let dial = globals.into_iter().fold(DialString::builder(), |b, (n, v)| b.var(n, v)).leg(first).build().unwrap();
        let mut o = Originate::new(dial.clone(), OriginateTarget::Park);
        o.caller_id_name = Some(cid.1.clone());
        o.timeout_secs = timeout;
        let words = fs_words(ApiCommand::originate(&o).unwrap().args());
        prop_assert!(words.len() <= 7);
        prop_assert_eq!(&words[0], &dial.to_string());
        prop_assert_eq!(&words[1], "&park()");
        if !cid.1.as_str().is_empty() {
            prop_assert_eq!(&words[4], cid.1.as_str());
        }
    }
}
