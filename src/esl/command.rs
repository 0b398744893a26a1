//! The socket commands fsgate sends, and their exact bytes on the wire.
//!
//! This module owns [`Command`] and its encoding (docs/esl-protocol.md §1.6,
//! §2.2–2.5): one command line, LF only, plus a `Job-UUID` header for `bgapi`,
//! ending with an empty line. Every piece of text in a command is a validated
//! type, so encoding cannot fail and cannot inject a second command. It must not
//! know about tenants, sessions or calls, and it does not own the codec or the
//! connection: callers hand the bytes to the writer.

use std::fmt::{self, Write as _};

use bytes::BytesMut;
use uuid::Uuid;

use crate::esl::api::ApiCommand;
use crate::esl::dialstring::{
    check_chars, check_max, check_no_reload_trigger, check_non_empty, validated_text, CommandError,
};
use crate::esl::event::EventFormat;

/// The event-socket password. `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Validates a password: non-empty, at most 1024 characters, no CR, LF or
    /// NUL (spaces are part of it, as FreeSWITCH reads everything after
    /// `auth `), and not containing `mod_event_socket`.
    pub fn new(secret: &str) -> Result<Password, CommandError> {
        const FIELD: &str = "password";
        check_non_empty(FIELD, secret)?;
        check_max(FIELD, secret, 1024)?;
        check_chars(FIELD, secret, |c| !matches!(c, '\r' | '\n' | '\0'))?;
        // FreeSWITCH would rewrite the line into an unload/reload: never accepted.
        check_no_reload_trigger(FIELD, secret)?;
        Ok(Password(secret.to_owned()))
    }
}

impl TryFrom<&str> for Password {
    type Error = CommandError;
    fn try_from(secret: &str) -> Result<Self, Self::Error> {
        Password::new(secret)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

fn check_event_name(field: &'static str, text: &str) -> Result<(), CommandError> {
    check_non_empty(field, text)?;
    check_max(field, text, 128)?;
    check_chars(field, text, |c| {
        c.is_ascii_alphanumeric() || "_:.-".contains(c)
    })?;
    check_no_reload_trigger(field, text)
}

fn check_header_name(field: &'static str, text: &str) -> Result<(), CommandError> {
    check_non_empty(field, text)?;
    check_max(field, text, 128)?;
    check_chars(field, text, |c| {
        c.is_ascii_alphanumeric() || c == '_' || c == '-'
    })?;
    check_no_reload_trigger(field, text)
}

fn check_filter_value(field: &'static str, text: &str) -> Result<(), CommandError> {
    check_non_empty(field, text)?;
    check_max(field, text, 4096)?;
    check_chars(field, text, |c| !matches!(c, '\r' | '\n' | '\0'))?;
    if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        return Err(CommandError::Invalid {
            field,
            expected: "a value without leading or trailing whitespace",
        });
    }
    check_no_reload_trigger(field, text)
}

validated_text!(
    /// An event name (`CHANNEL_ANSWER`, `ALL`, `CUSTOM`) or a CUSTOM subclass
    /// (`sofia::register`): `[A-Za-z0-9_:.-]+`, at most 128 characters.
    EventName,
    "event_name",
    check_event_name
);

validated_text!(
    /// An event header name for filters: `[A-Za-z0-9_-]+`, at most 128 characters.
    HeaderName,
    "header_name",
    check_header_name
);

validated_text!(
    /// A filter value: non-empty, no CR, LF or NUL, no leading or trailing
    /// whitespace, at most 4096 characters. A leading `-` makes a negative
    /// filter and `/.../` a regex (docs/esl-protocol.md §2.5).
    FilterValue,
    "filter_value",
    check_filter_value
);

impl EventName {
    /// `ALL`: every event type, including every CUSTOM subclass.
    pub fn all() -> EventName {
        EventName("ALL".to_owned())
    }
}

/// A command for the event socket.
pub enum Command {
    Auth(Password),
    Api(ApiCommand),
    /// Sends header line `Job-UUID: <uuid>`; the BACKGROUND_JOB event carries it.
    BgApi {
        command: ApiCommand,
        job_uuid: Uuid,
    },
    /// Subscribe (cumulatively); an empty list means `ALL`.
    Event {
        format: EventFormat,
        events: Vec<EventName>,
    },
    Filter {
        header: HeaderName,
        value: FilterValue,
    },
    /// Without a value, deletes every filter on `header` (`all`: every filter).
    FilterDelete {
        header: HeaderName,
        value: Option<FilterValue>,
    },
    /// Unsubscribe. FreeSWITCH refuses an empty list (`-ERR no keywords
    /// supplied`); [`Command::nix_event`] rejects one up front.
    NixEvent(Vec<EventName>),
    NoEvents,
    /// Linger for that many seconds, or forever.
    Linger(Option<u32>),
    NoLinger,
    Exit,
}

impl Command {
    /// `nixevent`, refusing an empty list.
    pub fn nix_event(events: Vec<EventName>) -> Result<Command, CommandError> {
        if events.is_empty() {
            return Err(CommandError::Empty { field: "events" });
        }
        Ok(Command::NixEvent(events))
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Auth(_) => "auth",
            Command::Api(_) => "api",
            Command::BgApi { .. } => "bgapi",
            Command::Event { .. } => "event",
            Command::Filter { .. } => "filter",
            Command::FilterDelete { .. } => "filter_delete",
            Command::NixEvent(_) => "nixevent",
            Command::NoEvents => "noevents",
            Command::Linger(_) => "linger",
            Command::NoLinger => "nolinger",
            Command::Exit => "exit",
        }
    }

    /// Appends the exact wire bytes: LF line endings, ending with `\n\n`.
    pub fn encode(&self, dst: &mut BytesMut) {
        // Writing into a BytesMut cannot fail: it grows as needed.
        let _ = self.write_to(dst);
    }

    fn write_to(&self, dst: &mut BytesMut) -> fmt::Result {
        match self {
            Command::Auth(password) => write!(dst, "auth {}", password.0)?,
            Command::Api(command) => write!(dst, "api {command}")?,
            Command::BgApi { command, job_uuid } => {
                write!(dst, "bgapi {command}\nJob-UUID: {job_uuid}")?
            }
            Command::Event { format, events } => {
                write!(dst, "event {}", format_word(format))?;
                if events.is_empty() {
                    dst.write_str(" ALL")?;
                }
                write_names(dst, events)?;
            }
            Command::Filter { header, value } => {
                // A header literally named add/delete would be read as the keyword.
                let keyword = ["add", "delete"]
                    .iter()
                    .any(|k| header.as_str().eq_ignore_ascii_case(k));
                let add = if keyword { "add " } else { "" };
                write!(dst, "filter {add}{header} {value}")?;
            }
            Command::FilterDelete { header, value } => {
                write!(dst, "filter delete {header}")?;
                if let Some(value) = value {
                    write!(dst, " {value}")?;
                }
            }
            Command::NixEvent(events) => {
                dst.write_str("nixevent")?;
                write_names(dst, events)?;
            }
            Command::NoEvents => dst.write_str("noevents")?,
            Command::Linger(None) => dst.write_str("linger")?,
            Command::Linger(Some(secs)) => write!(dst, "linger {secs}")?,
            Command::NoLinger => dst.write_str("nolinger")?,
            Command::Exit => dst.write_str("exit")?,
        }
        dst.write_str("\n\n")
    }
}

fn write_names(dst: &mut BytesMut, events: &[EventName]) -> fmt::Result {
    events.iter().try_for_each(|e| write!(dst, " {e}"))
}

// `EventFormat` belongs to `event.rs`; these helpers do not assume its derives,
// so `Command`'s Clone/Debug/PartialEq are written out by hand.
fn format_word(format: &EventFormat) -> &'static str {
    match format {
        EventFormat::Plain => "plain",
        EventFormat::Json => "json",
    }
}

fn copy_format(format: &EventFormat) -> EventFormat {
    match format {
        EventFormat::Plain => EventFormat::Plain,
        EventFormat::Json => EventFormat::Json,
    }
}

impl Clone for Command {
    fn clone(&self) -> Self {
        match self {
            Command::Auth(p) => Command::Auth(p.clone()),
            Command::Api(c) => Command::Api(c.clone()),
            Command::BgApi { command, job_uuid } => Command::BgApi {
                command: command.clone(),
                job_uuid: *job_uuid,
            },
            Command::Event { format, events } => Command::Event {
                format: copy_format(format),
                events: events.clone(),
            },
            Command::Filter { header, value } => Command::Filter {
                header: header.clone(),
                value: value.clone(),
            },
            Command::FilterDelete { header, value } => Command::FilterDelete {
                header: header.clone(),
                value: value.clone(),
            },
            Command::NixEvent(events) => Command::NixEvent(events.clone()),
            Command::NoEvents => Command::NoEvents,
            Command::Linger(secs) => Command::Linger(*secs),
            Command::NoLinger => Command::NoLinger,
            Command::Exit => Command::Exit,
        }
    }
}

/// Two commands are equal when they put the same bytes on the wire (so an
/// empty `Event` list equals an explicit `ALL`).
impl PartialEq for Command {
    fn eq(&self, other: &Self) -> bool {
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        self.encode(&mut a);
        other.encode(&mut b);
        a == b
    }
}

impl Eq for Command {}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Auth(p) => f.debug_tuple("Auth").field(p).finish(),
            Command::Api(c) => f.debug_tuple("Api").field(c).finish(),
            Command::BgApi { command, job_uuid } => f
                .debug_struct("BgApi")
                .field("command", command)
                .field("job_uuid", job_uuid)
                .finish(),
            Command::Event { format, events } => f
                .debug_struct("Event")
                .field("format", &format_word(format))
                .field("events", events)
                .finish(),
            Command::Filter { header, value } => f
                .debug_struct("Filter")
                .field("header", header)
                .field("value", value)
                .finish(),
            Command::FilterDelete { header, value } => f
                .debug_struct("FilterDelete")
                .field("header", header)
                .field("value", value)
                .finish(),
            Command::NixEvent(events) => f.debug_tuple("NixEvent").field(events).finish(),
            Command::NoEvents => f.write_str("NoEvents"),
            Command::Linger(secs) => f.debug_tuple("Linger").field(secs).finish(),
            Command::NoLinger => f.write_str("NoLinger"),
            Command::Exit => f.write_str("Exit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esl::cause::HangupCause;

    fn wire(cmd: &Command) -> String {
        let mut dst = BytesMut::new();
        cmd.encode(&mut dst);
        String::from_utf8(dst.to_vec()).unwrap()
    }
    fn names(list: &str) -> Vec<EventName> {
        list.split(' ')
            .map(|n| EventName::new(n).unwrap())
            .collect()
    }
    fn header(s: &str) -> HeaderName {
        HeaderName::new(s).unwrap()
    }
    fn filter_value(s: &str) -> FilterValue {
        FilterValue::new(s).unwrap()
    }

    #[test]
    fn matches_the_captures_byte_for_byte() {
        let uuid: Uuid = "8438156f-f28b-45f8-9eff-0b7839c69aab".parse().unwrap();
        let job: Uuid = "b54e6782-3b4f-4c30-a009-d2a369025f38".parse().unwrap();
        let cases = [
            (
                Command::Auth(Password::new("ClueCon").unwrap()),
                "auth ClueCon\n\n",
            ),
            (
                Command::Event {
                    format: EventFormat::Plain,
                    events: names("CHANNEL_CREATE CHANNEL_ANSWER BACKGROUND_JOB HEARTBEAT"),
                },
                "event plain CHANNEL_CREATE CHANNEL_ANSWER BACKGROUND_JOB HEARTBEAT\n\n",
            ),
            (
                Command::Api(ApiCommand::uuid_kill(uuid, HangupCause::USER_BUSY)),
                "api uuid_kill 8438156f-f28b-45f8-9eff-0b7839c69aab USER_BUSY\n\n",
            ),
            (
                Command::BgApi {
                    command: ApiCommand::status(),
                    job_uuid: job,
                },
                "bgapi status\nJob-UUID: b54e6782-3b4f-4c30-a009-d2a369025f38\n\n",
            ),
            (
                Command::Filter {
                    header: header("Event-Name"),
                    value: filter_value("CHANNEL_ANSWER"),
                },
                "filter Event-Name CHANNEL_ANSWER\n\n",
            ),
            (
                Command::FilterDelete {
                    header: header("Event-Name"),
                    value: Some(filter_value("CHANNEL_ANSWER")),
                },
                "filter delete Event-Name CHANNEL_ANSWER\n\n",
            ),
            (Command::Exit, "exit\n\n"),
            (
                Command::Event {
                    format: EventFormat::Json,
                    events: vec![],
                },
                "event json ALL\n\n",
            ),
            (Command::Api(ApiCommand::status()), "api status\n\n"),
            (
                Command::Api(ApiCommand::show_calls_json()),
                "api show calls as json\n\n",
            ),
        ];
        for (cmd, expected) in cases {
            assert_eq!(wire(&cmd), expected);
        }
    }

    #[test]
    fn other_commands() {
        let ev = names("CUSTOM sofia::register");
        assert_eq!(
            wire(&Command::nix_event(ev.clone()).unwrap()),
            "nixevent CUSTOM sofia::register\n\n"
        );
        assert_eq!(
            wire(&Command::Event {
                format: EventFormat::Json,
                events: ev
            }),
            "event json CUSTOM sofia::register\n\n"
        );
        assert_eq!(wire(&Command::NoEvents), "noevents\n\n");
        assert_eq!(wire(&Command::Linger(None)), "linger\n\n");
        assert_eq!(wire(&Command::Linger(Some(30))), "linger 30\n\n");
        assert_eq!(wire(&Command::NoLinger), "nolinger\n\n");
        let del_all = Command::FilterDelete {
            header: header("all"),
            value: None,
        };
        assert_eq!(wire(&del_all), "filter delete all\n\n");
        let tricky = Command::Filter {
            header: header("delete"),
            value: filter_value("x y"),
        };
        assert_eq!(wire(&tricky), "filter add delete x y\n\n");
        assert!(Command::nix_event(vec![]).is_err());
    }

    #[test]
    fn names_for_logs() {
        assert_eq!(Command::Exit.name(), "exit");
        assert_eq!(Command::Api(ApiCommand::status()).name(), "api");
        let bg = Command::BgApi {
            command: ApiCommand::status(),
            job_uuid: Uuid::nil(),
        };
        assert_eq!(bg.name(), "bgapi");
        assert_eq!(bg.clone(), bg);
        assert_ne!(bg, Command::Exit);
    }

    #[test]
    fn password_is_never_printed() {
        let p = Password::new("ClueCon").unwrap();
        assert_eq!(format!("{p} {p:?}"), "*** ***");
        let cmd = Command::Auth(p);
        assert!(!format!("{cmd:?}").contains("ClueCon"));
        for c in ['\r', '\n', '\0'] {
            assert_eq!(
                Password::new(&format!("a{c}b")),
                Err(CommandError::Forbidden {
                    field: "password",
                    found: c
                })
            );
        }
        assert_eq!(
            Password::new(""),
            Err(CommandError::Empty { field: "password" })
        );
        assert!(Password::new("with spaces").is_ok());
    }

    #[test]
    fn validated_names_and_values() {
        assert!(EventName::new("sofia::register").is_ok());
        assert_eq!(EventName::all().as_str(), "ALL");
        assert_eq!(
            EventName::new("CHANNEL ANSWER"),
            Err(CommandError::Forbidden {
                field: "event_name",
                found: ' '
            })
        );
        assert_eq!(
            HeaderName::for_field("filter_header", "Event:Name"),
            Err(CommandError::Forbidden {
                field: "filter_header",
                found: ':'
            })
        );
        assert!(FilterValue::new("/^CHANNEL_.*/").is_ok());
        assert!(FilterValue::new("-HEARTBEAT").is_ok());
        for bad in [" x", "x ", "x\t"] {
            assert!(
                matches!(FilterValue::new(bad), Err(CommandError::Invalid { .. })),
                "{bad:?}"
            );
        }
        for c in ['\r', '\n', '\0'] {
            assert_eq!(
                FilterValue::new(&format!("a{c}b")),
                Err(CommandError::Forbidden {
                    field: "filter_value",
                    found: c
                })
            );
        }
        assert!(matches!(
            FilterValue::new("unload mod_event_socket"),
            Err(CommandError::ForbiddenSequence { .. })
        ));
    }
}
