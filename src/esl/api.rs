//! The API commands fsgate runs through `api`/`bgapi`, built from typed parts.
//!
//! This module owns the argument text of each command the product uses
//! (docs/esl-protocol.md §5): `uuid_*`, `originate`, `show … as json`, `status`. Every
//! builder takes already-validated pieces ([`crate::esl::dialstring`]), so
//! domains never format ESL text; only [`ApiCommand::raw`], for operators,
//! takes free text. It must not know about tenants, sessions or calls, and it
//! does not frame the socket command (that is [`crate::esl::command`]).

use std::borrow::Cow;
use std::fmt;

use uuid::Uuid;

use crate::esl::cause::HangupCause;
use crate::esl::dialstring::{
    check_chars, check_max, check_non_empty, AppArg, CommandError, DialString, Token, VarName,
    VarValue,
};

/// Longest argument text [`ApiCommand::raw`] accepts (FreeSWITCH stops reading
/// a command's header block at 10 MiB).
pub const MAX_RAW_ARGS: usize = 1 << 20;

/// One API command: a name and its argument text, both safe to put on a line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiCommand {
    name: Cow<'static, str>,
    args: String,
}

/// Which channel `uuid_transfer` moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TransferLeg {
    /// The given channel.
    #[default]
    Only,
    /// Its bridged partner (`-bleg`; the channel itself when there is none).
    Bleg,
    /// The partner, then the channel (`-both`).
    Both,
}

/// A dialplan destination: extension, optional dialplan and context.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    pub extension: Token,
    pub dialplan: Option<Token>,
    pub context: Option<Token>,
}

impl Destination {
    /// `extension` in FreeSWITCH's default dialplan and context.
    pub fn new(extension: Token) -> Destination {
        Destination {
            extension,
            dialplan: None,
            context: None,
        }
    }
}

/// What the answered originated leg does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginateTarget {
    /// `&park()`.
    Park,
    /// `&bridge(<dial string>)`: dial a second party once this leg answers.
    Bridge(DialString),
    /// `&name(arg)`.
    App { name: Token, arg: AppArg },
    /// Transfer into the dialplan.
    Extension(Destination),
}

/// Everything `originate` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Originate {
    pub dial: DialString,
    pub target: OriginateTarget,
    pub caller_id_name: Option<VarValue>,
    pub caller_id_number: Option<VarValue>,
    pub timeout_secs: Option<u32>,
}

impl Originate {
    /// Dial `dial`, then `target`; caller ID and timeout left to FreeSWITCH.
    pub fn new(dial: DialString, target: OriginateTarget) -> Originate {
        Originate {
            dial,
            target,
            caller_id_name: None,
            caller_id_number: None,
            timeout_secs: None,
        }
    }
}

/// Quotes a word for FreeSWITCH's space splitter when it holds a space. The
/// validated parts never contain `'` or `\`, so the quotes are only removed.
fn word(text: String) -> String {
    if text.contains(' ') {
        format!("'{text}'")
    } else {
        text
    }
}

/// Joins positional words, writing `undef` for a skipped one that a later one
/// follows and dropping skipped ones at the end.
fn positional(words: Vec<Option<String>>) -> String {
    let given = words.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
    let words = words.into_iter().take(given);
    let words: Vec<String> = words.map(|w| w.unwrap_or_else(|| "undef".into())).collect();
    words.join(" ")
}

/// A non-empty value as a quoted word; empty counts as not given.
fn value_word(value: &Option<VarValue>) -> Option<String> {
    value
        .as_ref()
        .filter(|v| !v.as_str().is_empty())
        .map(|v| word(v.to_string()))
}

impl ApiCommand {
    fn fixed(name: &'static str, args: String) -> ApiCommand {
        ApiCommand {
            name: Cow::Borrowed(name),
            args,
        }
    }

    /// The command name, e.g. `uuid_kill`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The argument text (may be empty).
    pub fn args(&self) -> &str {
        &self.args
    }

    /// `status`.
    pub fn status() -> ApiCommand {
        ApiCommand::fixed("status", String::new())
    }

    /// `uuid_answer <uuid>`.
    pub fn uuid_answer(uuid: Uuid) -> ApiCommand {
        ApiCommand::fixed("uuid_answer", uuid.to_string())
    }

    /// `uuid_kill <uuid> <CAUSE>`: the cause name is always sent.
    pub fn uuid_kill(uuid: Uuid, cause: HangupCause) -> ApiCommand {
        ApiCommand::fixed("uuid_kill", format!("{uuid} {}", cause.name()))
    }

    /// `uuid_exists <uuid>` (answers a bare `true`/`false`).
    pub fn uuid_exists(uuid: Uuid) -> ApiCommand {
        ApiCommand::fixed("uuid_exists", uuid.to_string())
    }

    /// `uuid_getvar <uuid> <name>` (answers the value or `_undef_`).
    pub fn uuid_getvar(uuid: Uuid, name: &VarName) -> ApiCommand {
        ApiCommand::fixed("uuid_getvar", format!("{uuid} {name}"))
    }

    /// `uuid_setvar <uuid> <name> <value>`; an empty value unsets the variable.
    /// The value is the rest of the line, so spaces need no quoting.
    pub fn uuid_setvar(uuid: Uuid, name: &VarName, value: &VarValue) -> ApiCommand {
        let args = if value.as_str().is_empty() {
            format!("{uuid} {name}")
        } else {
            format!("{uuid} {name} {value}")
        };
        ApiCommand::fixed("uuid_setvar", args)
    }

    /// `show channels as json`.
    pub fn show_channels_json() -> ApiCommand {
        ApiCommand::fixed("show", "channels as json".into())
    }

    /// `show calls as json`.
    pub fn show_calls_json() -> ApiCommand {
        ApiCommand::fixed("show", "calls as json".into())
    }

    /// `uuid_transfer <uuid> [-bleg|-both] <ext> [<dialplan> [<context>]]`;
    /// a context without a dialplan is sent with dialplan `XML`.
    pub fn uuid_transfer(uuid: Uuid, leg: TransferLeg, dest: &Destination) -> ApiCommand {
        let mut args = uuid.to_string();
        match leg {
            TransferLeg::Only => {}
            TransferLeg::Bleg => args.push_str(" -bleg"),
            TransferLeg::Both => args.push_str(" -both"),
        }
        args.push(' ');
        args.push_str(dest.extension.as_str());
        let dialplan = dest.dialplan.as_ref().map(Token::as_str);
        if let Some(dialplan) = dialplan.or(dest.context.as_ref().map(|_| "XML")) {
            args.push(' ');
            args.push_str(dialplan);
        }
        if let Some(context) = &dest.context {
            args.push(' ');
            args.push_str(context.as_str());
        }
        ApiCommand::fixed("uuid_transfer", args)
    }

    /// `originate <dial> <target> [<dialplan> <context> <cid_name> <cid_num> <timeout>]`.
    ///
    /// Fails only for a [`OriginateTarget::Bridge`] whose dial string contains
    /// `)`, which would end the `&bridge(...)` argument early.
    pub fn originate(o: &Originate) -> Result<ApiCommand, CommandError> {
        let (target, dialplan, context) = match &o.target {
            OriginateTarget::Park => ("&park()".to_owned(), None, None),
            OriginateTarget::Bridge(dial) => {
                let dial = dial.to_string();
                check_chars("bridge_dial_string", &dial, |c| c != ')')?;
                (format!("&bridge({dial})"), None, None)
            }
            OriginateTarget::App { name, arg } => (format!("&{name}({arg})"), None, None),
            OriginateTarget::Extension(dest) => (
                dest.extension.to_string(),
                dest.dialplan.as_ref().map(Token::to_string),
                dest.context.as_ref().map(Token::to_string),
            ),
        };
        let args = positional(vec![
            Some(word(o.dial.to_string())),
            Some(word(target)),
            dialplan,
            context,
            value_word(&o.caller_id_name),
            value_word(&o.caller_id_number),
            o.timeout_secs.map(|t| t.to_string()),
        ]);
        Ok(ApiCommand::fixed("originate", args))
    }

    /// Any command, for operators (a CLI), never for domains: `name` is
    /// `[a-z0-9_]+`, `args` any text without CR, LF or NUL.
    pub fn raw(name: &str, args: &str) -> Result<ApiCommand, CommandError> {
        check_non_empty("api_command", name)?;
        check_max("api_command", name, 64)?;
        check_chars("api_command", name, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
        })?;
        check_max("api_arguments", args, MAX_RAW_ARGS)?;
        check_chars("api_arguments", args, |c| !matches!(c, '\r' | '\n' | '\0'))?;
        Ok(ApiCommand {
            name: Cow::Owned(name.to_owned()),
            args: args.to_owned(),
        })
    }
}

impl fmt::Display for ApiCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.args.is_empty() {
            write!(f, " {}", self.args)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esl::dialstring::{Endpoint, Leg};

    const U: &str = "8438156f-f28b-45f8-9eff-0b7839c69aab";

    fn uuid() -> Uuid {
        U.parse().unwrap()
    }
    fn token(s: &str) -> Token {
        Token::new(s).unwrap()
    }
    fn value(s: &str) -> VarValue {
        VarValue::new(s).unwrap()
    }
    fn single(s: &str) -> DialString {
        DialString::single(Endpoint::new(s).unwrap())
    }

    #[test]
    fn simple_commands() {
        assert_eq!(ApiCommand::status().to_string(), "status");
        assert_eq!(
            ApiCommand::uuid_answer(uuid()).to_string(),
            format!("uuid_answer {U}")
        );
        assert_eq!(
            ApiCommand::uuid_kill(uuid(), HangupCause::USER_BUSY).to_string(),
            format!("uuid_kill {U} USER_BUSY")
        );
        assert_eq!(
            ApiCommand::uuid_kill(uuid(), HangupCause::default()).args(),
            format!("{U} NORMAL_CLEARING")
        );
        assert_eq!(ApiCommand::uuid_exists(uuid()).name(), "uuid_exists");
        let var = VarName::new("fsgate_session").unwrap();
        assert_eq!(
            ApiCommand::uuid_getvar(uuid(), &var).args(),
            format!("{U} fsgate_session")
        );
        assert_eq!(
            ApiCommand::uuid_setvar(uuid(), &var, &value("a b, c")).args(),
            format!("{U} fsgate_session a b, c")
        );
        assert_eq!(
            ApiCommand::uuid_setvar(uuid(), &var, &value("")).args(),
            format!("{U} fsgate_session")
        );
        assert_eq!(
            ApiCommand::show_channels_json().to_string(),
            "show channels as json"
        );
        assert_eq!(
            ApiCommand::show_calls_json().to_string(),
            "show calls as json"
        );
    }

    #[test]
    fn transfer_matches_the_capture() {
        let dest = Destination {
            extension: token("fsgate_disconnected"),
            dialplan: Some(token("XML")),
            context: Some(token("public")),
        };
        let cmd = ApiCommand::uuid_transfer(uuid(), TransferLeg::Only, &dest);
        assert_eq!(
            cmd.to_string(),
            format!("uuid_transfer {U} fsgate_disconnected XML public")
        );
    }

    #[test]
    fn transfer_variants() {
        let mut dest = Destination::new(token("1000"));
        let t = |leg, d: &Destination| ApiCommand::uuid_transfer(uuid(), leg, d).args().to_owned();
        assert_eq!(t(TransferLeg::Only, &dest), format!("{U} 1000"));
        assert_eq!(t(TransferLeg::Bleg, &dest), format!("{U} -bleg 1000"));
        dest.context = Some(token("public"));
        assert_eq!(
            t(TransferLeg::Both, &dest),
            format!("{U} -both 1000 XML public")
        );
        dest.context = None;
        dest.dialplan = Some(token("XML"));
        assert_eq!(t(TransferLeg::Only, &dest), format!("{U} 1000 XML"));
    }

    #[test]
    fn originate_matches_the_capture() {
        let v = |n: &str, s: &str| (VarName::new(n).unwrap(), value(s));
        let vars = [
            v("origination_uuid", U),
            v("origination_caller_id_number", "+15550100001"),
            v("origination_caller_id_name", "Masked"),
            v("fsgate_session", "ses_capture01"),
        ];
        let leg = Leg::new(Endpoint::new("sofia/external/+15557770002@127.0.0.1:5090").unwrap());
        let dial = vars
            .into_iter()
            .fold(DialString::builder(), |b, (n, v)| b.var(n, v))
            .leg(leg)
            .build()
            .unwrap();
        let cmd = ApiCommand::originate(&Originate::new(dial, OriginateTarget::Park)).unwrap();
        assert_eq!(cmd.name(), "originate");
        assert_eq!(
            cmd.args(),
            "{origination_uuid=8438156f-f28b-45f8-9eff-0b7839c69aab,origination_caller_id_number=+15550100001,origination_caller_id_name=Masked,fsgate_session=ses_capture01}sofia/external/+15557770002@127.0.0.1:5090 &park()"
        );
    }

    #[test]
    fn originate_quotes_words_with_spaces() {
        let dial = DialString::builder()
            .var(
                VarName::new("origination_caller_id_name").unwrap(),
                value("John Doe"),
            )
            .leg(Leg::new(Endpoint::new("user/1000").unwrap()))
            .build()
            .unwrap();
        let mut o = Originate::new(dial, OriginateTarget::Park);
        o.caller_id_name = Some(value("Jane Roe"));
        o.timeout_secs = Some(30);
        assert_eq!(
            ApiCommand::originate(&o).unwrap().args(),
            "'{origination_caller_id_name=John Doe}user/1000' &park() undef undef 'Jane Roe' undef 30"
        );
    }

    #[test]
    fn originate_targets() {
        let args = |target| {
            let o = Originate::new(single("user/1000"), target);
            ApiCommand::originate(&o).unwrap().args().to_owned()
        };
        assert_eq!(
            args(OriginateTarget::Bridge(single("user/1001"))),
            "user/1000 &bridge(user/1001)"
        );
        let app = OriginateTarget::App {
            name: token("playback"),
            arg: AppArg::new("ivr/ivr-welcome.wav").unwrap(),
        };
        assert_eq!(args(app), "user/1000 &playback(ivr/ivr-welcome.wav)");
        let app = OriginateTarget::App {
            name: token("echo"),
            arg: AppArg::new("a b").unwrap(),
        };
        assert_eq!(args(app), "user/1000 '&echo(a b)'");
        let mut dest = Destination::new(token("9196"));
        assert_eq!(
            args(OriginateTarget::Extension(dest.clone())),
            "user/1000 9196"
        );
        dest.context = Some(token("default"));
        assert_eq!(
            args(OriginateTarget::Extension(dest)),
            "user/1000 9196 undef default"
        );
    }

    #[test]
    fn originate_rejects_a_bridge_with_a_closing_parenthesis() {
        let dial = DialString::builder()
            .var(VarName::new("x").unwrap(), value("(work)"))
            .leg(Leg::new(Endpoint::new("user/1").unwrap()))
            .build()
            .unwrap();
        let o = Originate::new(single("user/1000"), OriginateTarget::Bridge(dial.clone()));
        assert_eq!(
            ApiCommand::originate(&o),
            Err(CommandError::Forbidden {
                field: "bridge_dial_string",
                found: ')'
            })
        );
        // The same text is fine as the first leg's dial string.
        assert!(ApiCommand::originate(&Originate::new(dial, OriginateTarget::Park)).is_ok());
    }

    #[test]
    fn raw_is_checked() {
        let cmd = ApiCommand::raw("sofia", "status profile internal").unwrap();
        assert_eq!(cmd.to_string(), "sofia status profile internal");
        assert_eq!(ApiCommand::raw("status", "").unwrap().to_string(), "status");
        assert_eq!(
            ApiCommand::raw("", "x"),
            Err(CommandError::Empty {
                field: "api_command"
            })
        );
        assert_eq!(
            ApiCommand::raw("Status", ""),
            Err(CommandError::Forbidden {
                field: "api_command",
                found: 'S'
            })
        );
        for c in ['\r', '\n', '\0'] {
            assert_eq!(
                ApiCommand::raw("status", &format!("a{c}b")),
                Err(CommandError::Forbidden {
                    field: "api_arguments",
                    found: c
                })
            );
        }
    }
}
