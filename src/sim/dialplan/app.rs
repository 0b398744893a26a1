//! The applications the simulator knows, as typed values.
//!
//! This file owns the list of dialplan applications the simulator accepts, which
//! of them FreeSWITCH allows inline (`SAF_ROUTING_EXEC`), the parsing of their
//! (already expanded) data into [`App`], and the variable applications' effect
//! on a channel (`set`, `unset`, `export`), which both the hunt (inline) and the
//! channel code (afterwards) use so that the two can never disagree. It must not
//! execute anything that touches media or call state: bridge, park, answer and
//! friends belong to the channel code, which matches on [`App`].
//!
//! Parsing is stricter than FreeSWITCH where FreeSWITCH would only log and carry
//! on (an empty `set`, a `sleep` that is not a number, a `respond` without a
//! status code): the simulator reports [`DialplanError::InvalidData`] so that a
//! broken dialplan is noticed in tests rather than in production.

use super::curl::CurlRequest;
use super::expand::expand;
use super::fsstr::{atoi, separate_blank};
use super::{ChannelVars, DialplanError};
use crate::esl::cause::HangupCause;

/// Every application name the simulator knows (lower case).
pub const KNOWN_APPLICATIONS: &[&str] = &[
    "set",
    "unset",
    "export",
    "curl",
    "log",
    "bridge",
    "park",
    "answer",
    "pre_answer",
    "hangup",
    "respond",
    "transfer",
    "playback",
    "sleep",
];

/// The known applications FreeSWITCH registers with `SAF_ROUTING_EXEC`, i.e.
/// the only ones `inline="true"` may name.
pub const INLINE_APPLICATIONS: &[&str] = &["set", "unset", "export", "curl", "log"];

/// One application with its data parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum App {
    /// `set name=value` (or `name,value`); `None` unsets.
    Set { name: String, value: Option<String> },
    /// `unset name`.
    Unset(String),
    /// `export [nolocal:]name=value`: set locally (unless `nolocal:`) and list in
    /// `export_vars` for B-legs.
    Export {
        name: String,
        value: Option<String>,
        local: bool,
    },
    /// `curl url [words...]`.
    Curl(CurlRequest),
    /// `bridge <dial string>`, `{vars}` and all, unparsed.
    Bridge(String),
    /// `park`.
    Park,
    /// `answer`.
    Answer,
    /// `pre_answer`.
    PreAnswer,
    /// `hangup [cause]`, resolved like `switch_channel_str2cause`: a number or a
    /// name in any case; anything else (and nothing) is `NORMAL_CLEARING`.
    Hangup(HangupCause),
    /// `respond <code> [reason]`; the reason defaults to the standard phrase.
    Respond { code: u16, reason: String },
    /// `transfer <extension> [<dialplan> [<context>]]`.
    Transfer {
        extension: String,
        dialplan: Option<String>,
        context: Option<String>,
    },
    /// `playback <file or tone_stream://...>`.
    Playback(String),
    /// `sleep <milliseconds>`.
    Sleep(u64),
    /// `log [LEVEL] message`; `level` is one of FreeSWITCH's level names.
    Log {
        level: &'static str,
        message: String,
    },
}

/// FreeSWITCH's log level names, most severe first.
const LOG_LEVELS: [&str; 8] = [
    "CONSOLE", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG",
];

impl App {
    /// True for a name in [`KNOWN_APPLICATIONS`] (any case).
    pub fn is_known(application: &str) -> bool {
        KNOWN_APPLICATIONS
            .iter()
            .any(|a| a.eq_ignore_ascii_case(application))
    }

    /// True for a name in [`INLINE_APPLICATIONS`] (any case).
    pub fn may_run_inline(application: &str) -> bool {
        INLINE_APPLICATIONS
            .iter()
            .any(|a| a.eq_ignore_ascii_case(application))
    }

    /// Parses `data` (already `${}`-expanded) for `application`.
    pub fn parse(application: &str, data: &str) -> Result<App, DialplanError> {
        let invalid = |reason: &str| DialplanError::InvalidData {
            application: application.to_owned(),
            data: data.to_owned(),
            reason: reason.to_owned(),
        };
        let app = match application.to_ascii_lowercase().as_str() {
            "set" => {
                let (name, value) = match data.find('=').or_else(|| data.find(',')) {
                    Some(at) => (&data[..at], Some(&data[at + 1..])),
                    None => (data, None),
                };
                if name.is_empty() {
                    return Err(invalid("no variable name"));
                }
                App::Set {
                    name: name.to_owned(),
                    value: value.filter(|v| !v.is_empty()).map(str::to_owned),
                }
            }
            "unset" => {
                if data.is_empty() {
                    return Err(invalid("no variable name"));
                }
                App::Unset(data.to_owned())
            }
            "export" => {
                let (var, value) = match data.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (data, None),
                };
                let (name, local) = match strip_prefix_ignore_case(var, "nolocal:")
                    .or_else(|| strip_prefix_ignore_case(var, "_nolocal_"))
                {
                    Some(rest) => (rest, false),
                    None => (var, true),
                };
                if name.is_empty() {
                    return Err(invalid("no variable name"));
                }
                App::Export {
                    name: name.to_owned(),
                    value: value.filter(|v| !v.is_empty()).map(str::to_owned),
                    local,
                }
            }
            "curl" => App::Curl(CurlRequest::parse(data)),
            "log" => {
                let (level, message) = match data.split_once(' ') {
                    Some((word, rest)) => (log_level(word).unwrap_or("DEBUG"), rest),
                    None => ("DEBUG", data),
                };
                App::Log {
                    level,
                    message: message.to_owned(),
                }
            }
            "bridge" => {
                if data.trim().is_empty() {
                    return Err(invalid("no dial string"));
                }
                App::Bridge(data.to_owned())
            }
            "park" => App::Park,
            "answer" => App::Answer,
            "pre_answer" => App::PreAnswer,
            "hangup" => App::Hangup(str2cause(data)),
            "respond" => {
                let (code_text, reason) = match data.split_once(' ') {
                    Some((c, r)) => (c, r),
                    None => (data, ""),
                };
                let code = u16::try_from(atoi(code_text))
                    .ok()
                    .filter(|c| (100..=699).contains(c))
                    .ok_or_else(|| invalid("the first word must be a SIP status code (100-699)"))?;
                let reason = if reason.is_empty() {
                    sip_reason_phrase(code).to_owned()
                } else {
                    reason.to_owned()
                };
                App::Respond { code, reason }
            }
            "transfer" => {
                let words = separate_blank(data, 4);
                let Some(first) = words.first().filter(|w| !w.is_empty()) else {
                    return Err(invalid("no destination extension"));
                };
                if first.eq_ignore_ascii_case("-bleg") || first.eq_ignore_ascii_case("-both") {
                    return Err(invalid("-bleg/-both transfers are not simulated"));
                }
                let word = |i: usize| words.get(i).filter(|w| !w.is_empty()).cloned();
                App::Transfer {
                    extension: first.clone(),
                    dialplan: word(1),
                    context: word(2),
                }
            }
            "playback" => {
                if data.trim().is_empty() {
                    return Err(invalid("no file to play"));
                }
                App::Playback(data.to_owned())
            }
            "sleep" => App::Sleep(
                data.trim()
                    .parse()
                    .map_err(|_| invalid("not a number of milliseconds"))?,
            ),
            _ => return Err(DialplanError::UnknownApplication(application.to_owned())),
        };
        Ok(app)
    }

    /// The application's name, lower case, as in [`KNOWN_APPLICATIONS`].
    pub fn name(&self) -> &'static str {
        match self {
            App::Set { .. } => "set",
            App::Unset(_) => "unset",
            App::Export { .. } => "export",
            App::Curl(_) => "curl",
            App::Bridge(_) => "bridge",
            App::Park => "park",
            App::Answer => "answer",
            App::PreAnswer => "pre_answer",
            App::Hangup(_) => "hangup",
            App::Respond { .. } => "respond",
            App::Transfer { .. } => "transfer",
            App::Playback(_) => "playback",
            App::Sleep(_) => "sleep",
            App::Log { .. } => "log",
        }
    }
}

/// Applies `set`, `unset` or `export` to the channel the way mod_dptools does;
/// returns false (and does nothing) for any other application.
///
/// * `set`: the value is expanded once more (mod_dptools' `base_set` does), an
///   empty result unsets, and a value containing `${` is allowed.
/// * `export`: sets the variable (named `nolocal:<name>` for a non-local export,
///   as FreeSWITCH stores it) refusing values that contain `${`, and, when there
///   is a value, appends the name to `export_vars` (comma-separated).
pub fn apply_variable_app<C: ChannelVars + ?Sized>(app: &App, chan: &mut C) -> bool {
    match app {
        App::Set { name, value } => {
            let value = value
                .as_deref()
                .map(|v| expand(v, chan))
                .filter(|v| !v.is_empty());
            chan.set_variable(name, value);
            true
        }
        App::Unset(name) => {
            chan.set_variable(name, None);
            true
        }
        App::Export { name, value, local } => {
            let var = if *local {
                name.clone()
            } else {
                format!("nolocal:{name}")
            };
            set_checked(chan, &var, value.as_deref());
            if value.is_some() {
                let list = match chan.variable("export_vars").filter(|l| !l.is_empty()) {
                    Some(existing) => format!("{existing},{var}"),
                    None => var,
                };
                chan.set_variable("export_vars", Some(list));
            }
            true
        }
        _ => false,
    }
}

/// Emits the `log` application's line through `tracing` (target
/// `fsgate::sim::log`), FreeSWITCH's level mapped onto tracing's.
pub fn log_line(level: &str, message: &str) {
    match level {
        "CONSOLE" | "ALERT" | "CRIT" | "ERR" => {
            tracing::error!(target: "fsgate::sim::log", "{message}")
        }
        "WARNING" => tracing::warn!(target: "fsgate::sim::log", "{message}"),
        "NOTICE" | "INFO" => tracing::info!(target: "fsgate::sim::log", "{message}"),
        _ => tracing::debug!(target: "fsgate::sim::log", "{message}"),
    }
}

/// `switch_channel_set_variable`: the old value always goes; an empty value or
/// one containing `${` is not stored (FreeSWITCH logs an error for the latter).
pub(crate) fn set_checked<C: ChannelVars + ?Sized>(chan: &mut C, name: &str, value: Option<&str>) {
    let value = value.filter(|v| !v.is_empty() && !v.contains("${"));
    chan.set_variable(name, value.map(str::to_owned));
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `switch_log_str2level` for the names the `log` application accepts.
fn log_level(word: &str) -> Option<&'static str> {
    if word.eq_ignore_ascii_case("ERROR") {
        return Some("ERR");
    }
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
        let n = usize::try_from(atoi(word)).unwrap_or(usize::MAX);
        return Some(LOG_LEVELS[n.min(LOG_LEVELS.len() - 1)]);
    }
    LOG_LEVELS
        .iter()
        .find(|l| l.eq_ignore_ascii_case(word))
        .copied()
}

/// `switch_channel_str2cause`: digits are a cause code, otherwise a name in any
/// case; unknown (and empty) give `NORMAL_CLEARING`. A numeric code FreeSWITCH
/// has no name for also gives `NORMAL_CLEARING` here.
fn str2cause(data: &str) -> HangupCause {
    let data = data.trim();
    if data.is_empty() {
        return HangupCause::NORMAL_CLEARING;
    }
    if data.as_bytes()[0].is_ascii_digit() {
        return u16::try_from(atoi(data))
            .ok()
            .and_then(HangupCause::from_code)
            .unwrap_or(HangupCause::NORMAL_CLEARING);
    }
    HangupCause::from_name_ignore_case(data).unwrap_or(HangupCause::NORMAL_CLEARING)
}

/// The standard reason phrase mod_sofia sends when `respond` gives none.
pub fn sip_reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::super::testchan::TestChannel;
    use super::*;

    #[test]
    fn set_unset_export_parse() {
        assert_eq!(
            App::parse("set", "a=b=c").unwrap(),
            App::Set {
                name: "a".into(),
                value: Some("b=c".into())
            }
        );
        assert_eq!(
            App::parse("SET", "a,b").unwrap(),
            App::Set {
                name: "a".into(),
                value: Some("b".into())
            }
        );
        assert_eq!(
            App::parse("set", "a=").unwrap(),
            App::Set {
                name: "a".into(),
                value: None
            }
        );
        assert!(matches!(
            App::parse("set", "=x"),
            Err(DialplanError::InvalidData { .. })
        ));
        assert_eq!(App::parse("unset", "a").unwrap(), App::Unset("a".into()));
        assert_eq!(
            App::parse("export", "nolocal:x=1").unwrap(),
            App::Export {
                name: "x".into(),
                value: Some("1".into()),
                local: false
            }
        );
    }

    #[test]
    fn call_apps_parse() {
        assert_eq!(
            App::parse("hangup", "").unwrap(),
            App::Hangup(HangupCause::NORMAL_CLEARING)
        );
        assert_eq!(
            App::parse("hangup", "user_busy").unwrap(),
            App::Hangup(HangupCause::USER_BUSY)
        );
        assert_eq!(
            App::parse("hangup", "21").unwrap(),
            App::Hangup(HangupCause::CALL_REJECTED)
        );
        assert_eq!(
            App::parse("hangup", "BUSY").unwrap(),
            App::Hangup(HangupCause::NORMAL_CLEARING)
        );
        assert_eq!(
            App::parse("respond", "486 Busy Here").unwrap(),
            App::Respond {
                code: 486,
                reason: "Busy Here".into()
            }
        );
        assert_eq!(
            App::parse("respond", "603").unwrap(),
            App::Respond {
                code: 603,
                reason: "Decline".into()
            }
        );
        assert!(App::parse("respond", "busy").is_err());
        assert_eq!(
            App::parse("transfer", "1000 XML default").unwrap(),
            App::Transfer {
                extension: "1000".into(),
                dialplan: Some("XML".into()),
                context: Some("default".into())
            }
        );
        assert_eq!(
            App::parse("transfer", "1000").unwrap(),
            App::Transfer {
                extension: "1000".into(),
                dialplan: None,
                context: None
            }
        );
        assert!(App::parse("transfer", "").is_err());
        assert_eq!(App::parse("sleep", "250").unwrap(), App::Sleep(250));
        assert!(App::parse("sleep", "soon").is_err());
        assert_eq!(App::parse("park", "ignored").unwrap(), App::Park);
        assert_eq!(
            App::parse("bridge", "{a=b}sofia/gateway/gw/123").unwrap(),
            App::Bridge("{a=b}sofia/gateway/gw/123".into())
        );
        assert_eq!(
            App::parse("log", "INFO hello there").unwrap(),
            App::Log {
                level: "INFO",
                message: "hello there".into()
            }
        );
        // FreeSWITCH drops an unknown first word and logs the rest at DEBUG.
        assert_eq!(
            App::parse("log", "hello there").unwrap(),
            App::Log {
                level: "DEBUG",
                message: "there".into()
            }
        );
    }

    #[test]
    fn unknown_application_is_an_error_naming_it() {
        let err = App::parse("foo", "bar").unwrap_err();
        assert!(matches!(err, DialplanError::UnknownApplication(ref a) if a == "foo"));
        assert_eq!(err.to_string(), "unknown application \"foo\"");
    }

    #[test]
    fn variable_apps_follow_mod_dptools() {
        let mut c = TestChannel::new("1000", "2000");
        c.var("x", "X");
        let set = App::parse("set", "a=${x}").unwrap();
        // The value is expanded once more when applied, as base_set does.
        assert!(apply_variable_app(&set, &mut c));
        assert_eq!(c.get("a").as_deref(), Some("X"));

        apply_variable_app(&App::parse("export", "e=1").unwrap(), &mut c);
        apply_variable_app(&App::parse("export", "nolocal:f=2").unwrap(), &mut c);
        assert_eq!(c.get("e").as_deref(), Some("1"));
        assert_eq!(c.get("f"), None);
        assert_eq!(c.get("nolocal:f").as_deref(), Some("2"));
        assert_eq!(c.get("export_vars").as_deref(), Some("e,nolocal:f"));

        apply_variable_app(&App::Unset("e".into()), &mut c);
        assert_eq!(c.get("e"), None);
        assert!(!apply_variable_app(&App::Park, &mut c));
    }
}
