//! Dial strings, and the validated pieces of text every command is built from.
//!
//! This module owns [`CommandError`] and the newtypes ([`VarName`], [`VarValue`],
//! [`Endpoint`], [`Token`], [`AppArg`]) that make untrusted text safe to put in
//! an API line: once one exists, it cannot end the line or the packet (no CR,
//! LF, NUL), cannot be re-split or re-interpreted by FreeSWITCH's second-level
//! parsers (quotes, backslashes, `{}` `[]` `<>`, `|`, `^^`, `:_:`), cannot
//! expand variables or run APIs (`$`), and cannot trigger the
//! `reload mod_event_socket` rewrite (docs/esl-protocol.md §2.4, §5.1, §5.7,
//! §9). [`DialString`] renders `{a=b}[c=d]endpoint,endpoint|endpoint` from those
//! pieces. It knows the wire only: nothing here may know about tenants, sessions
//! or calls.

use std::fmt;

/// Why a piece of text cannot go into a command. `field` names the
/// user-facing field, so the HTTP layer can point at the input to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The field must not be empty.
    #[error("field {field:?} is empty: give it a value")]
    Empty { field: &'static str },
    /// The field is longer than FreeSWITCH or fsgate accepts.
    #[error("field {field:?} is longer than {max} characters: shorten it")]
    TooLong { field: &'static str, max: usize },
    /// The field contains a character that would change how FreeSWITCH reads it.
    #[error("field {field:?} contains a forbidden character {found:?}")]
    Forbidden { field: &'static str, found: char },
    /// The field contains a sequence FreeSWITCH treats specially.
    #[error("field {field:?} contains the forbidden sequence {sequence:?}: remove it")]
    ForbiddenSequence {
        field: &'static str,
        sequence: &'static str,
    },
    /// The field has the wrong shape.
    #[error("field {field:?} is not valid: expected {expected}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
    },
}

/// Most legs (per group) and groups FreeSWITCH reads (`MAX_PEERS`).
pub const MAX_LEGS: usize = 128;
/// Most variables one `{}` or `[]` block may carry (`var_array` in FreeSWITCH).
pub const MAX_BLOCK_VARS: usize = 1024;
/// Longest rendered dial string we build.
pub const MAX_DIAL_STRING: usize = 65_536;

/// Characters a value may never contain, besides control characters.
const VALUE_FORBIDDEN: &[char] = &[
    '\'', '"', '`', '\\', '{', '}', '[', ']', '<', '>', '|', '^', '$',
];
/// The enterprise-originate separator.
const ENTERPRISE_DELIM: &str = ":_:";
/// With `unload`/`reload` anywhere in a command, FreeSWITCH replaces it.
const RELOAD_TRIGGER: &[u8] = b"mod_event_socket";

pub(crate) fn check_non_empty(field: &'static str, text: &str) -> Result<(), CommandError> {
    if text.is_empty() {
        return Err(CommandError::Empty { field });
    }
    Ok(())
}

pub(crate) fn check_max(field: &'static str, text: &str, max: usize) -> Result<(), CommandError> {
    if text.len() > max && text.chars().count() > max {
        return Err(CommandError::TooLong { field, max });
    }
    Ok(())
}

/// Fails on the first character `allowed` rejects.
pub(crate) fn check_chars(
    field: &'static str,
    text: &str,
    allowed: impl Fn(char) -> bool,
) -> Result<(), CommandError> {
    match text.chars().find(|&c| !allowed(c)) {
        Some(found) => Err(CommandError::Forbidden { field, found }),
        None => Ok(()),
    }
}

/// Rejects `mod_event_socket` in any case: with `unload`/`reload` elsewhere on
/// the line, FreeSWITCH would unload or reload the event socket instead.
pub(crate) fn check_no_reload_trigger(field: &'static str, text: &str) -> Result<(), CommandError> {
    let hit = text
        .as_bytes()
        .windows(RELOAD_TRIGGER.len())
        .any(|w| w.eq_ignore_ascii_case(RELOAD_TRIGGER));
    if hit {
        return Err(CommandError::ForbiddenSequence {
            field,
            sequence: "mod_event_socket",
        });
    }
    Ok(())
}

/// Free text (a value): no controls, no [`VALUE_FORBIDDEN`], no `extra`, no `:_:`.
fn check_value(field: &'static str, text: &str, extra: &[char]) -> Result<(), CommandError> {
    check_max(field, text, VarValue::MAX)?;
    check_chars(field, text, |c| {
        !c.is_control() && !VALUE_FORBIDDEN.contains(&c) && !extra.contains(&c)
    })?;
    if text.contains(ENTERPRISE_DELIM) {
        return Err(CommandError::ForbiddenSequence {
            field,
            sequence: ENTERPRISE_DELIM,
        });
    }
    check_no_reload_trigger(field, text)
}

/// Declares a `String` newtype whose only constructors run `$check`.
macro_rules! validated_text {
    ($(#[$meta:meta])* $name:ident, $field:literal, $check:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Validates `text`; errors name the field `", $field, "`.")]
            pub fn new(text: &str) -> Result<Self, $crate::esl::dialstring::CommandError> {
                Self::for_field($field, text)
            }

            /// Validates `text`; errors name `field`, the user-facing field it came from.
            pub fn for_field(
                field: &'static str,
                text: &str,
            ) -> Result<Self, $crate::esl::dialstring::CommandError> {
                $check(field, text)?;
                Ok(Self(text.to_owned()))
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = $crate::esl::dialstring::CommandError;
            fn try_from(text: &str) -> Result<Self, Self::Error> {
                Self::new(text)
            }
        }
    };
}
pub(crate) use validated_text;

validated_text!(
    /// A channel variable name: `[A-Za-z_][A-Za-z0-9_-]*`, at most 128 characters
    /// (e.g. `sip_h_X-Fsgate-Session`, `origination_caller_id_name`).
    VarName,
    "variable_name",
    check_var_name
);

validated_text!(
    /// A channel variable value: any text up to 1024 characters except control
    /// characters, ``' " ` \ { } [ ] < > | ^ $`` and the sequence `:_:`. Spaces,
    /// commas and non-ASCII letters are allowed; the dial string escapes commas
    /// and the originate builder quotes words with spaces. FreeSWITCH trims
    /// leading and trailing spaces of values it splits out.
    VarValue,
    "variable_value",
    check_var_value
);

validated_text!(
    /// A leg's endpoint, `<type>/<address>` in `[A-Za-z0-9_+*#.@:/;=~-]`, at most
    /// 512 characters (e.g. `sofia/gateway/carrier/+15551234`, `user/1000`).
    Endpoint,
    "endpoint",
    check_endpoint
);

validated_text!(
    /// A single word (extension, context, dialplan, application name):
    /// `[A-Za-z0-9_+*#.-]+`, at most 128 characters, not starting with `-` (which
    /// `uuid_transfer` would read as a flag).
    Token,
    "token",
    check_token
);

validated_text!(
    /// An application argument in `&app(arg)`: like [`VarValue`], and also without
    /// `(`, `)` or `,` (originate ends the argument at the first `)`).
    AppArg,
    "application_argument",
    check_app_arg
);

impl VarName {
    /// Longest accepted name.
    pub const MAX: usize = 128;
}

impl VarValue {
    /// Longest accepted value.
    pub const MAX: usize = 1024;

    /// A SIP name-addr for a `sip_h_*` header variable: `<uri>` followed by
    /// `params` (e.g. `;party=calling`). `uri` and `params` obey the value
    /// rules (so neither holds `<` or `>`); only this constructor writes the
    /// angle brackets, around the URI. They are safe there: FreeSWITCH reads
    /// `<` as the start of enterprise variables only as the first character of
    /// a dial string, and a value always follows `name=`.
    pub fn angle_uri(field: &'static str, uri: &str, params: &str) -> Result<Self, CommandError> {
        check_non_empty(field, uri)?;
        check_var_value(field, uri)?;
        check_var_value(field, params)?;
        let text = format!("<{uri}>{params}");
        check_max(field, &text, VarValue::MAX)?;
        Ok(VarValue(text))
    }

    /// [`VarValue::angle_uri`] followed by `;name="quoted"`: a header
    /// parameter whose value holds spaces, as SIP's quoted-string (RFC 3261
    /// §25.1). mod_sofia parses the headers it sends and drops one whose
    /// parameter value has a bare space. `quoted` obeys the value rules (so it
    /// holds no `"`); only this constructor writes the double quotes.
    pub fn angle_uri_quoted_param(
        field: &'static str,
        uri: &str,
        name: &str,
        quoted: &str,
    ) -> Result<Self, CommandError> {
        check_token(field, name)?;
        check_var_value(field, quoted)?;
        let VarValue(head) = VarValue::angle_uri(field, uri, "")?;
        let text = format!("{head};{name}=\"{quoted}\"");
        check_max(field, &text, VarValue::MAX)?;
        Ok(VarValue(text))
    }
}

fn check_var_name(field: &'static str, text: &str) -> Result<(), CommandError> {
    check_non_empty(field, text)?;
    check_max(field, text, VarName::MAX)?;
    check_chars(field, text, |c| {
        c.is_ascii_alphanumeric() || c == '_' || c == '-'
    })?;
    if !text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return Err(CommandError::Invalid {
            field,
            expected: "a name starting with a letter or '_'",
        });
    }
    check_no_reload_trigger(field, text)
}

fn check_var_value(field: &'static str, text: &str) -> Result<(), CommandError> {
    check_value(field, text, &[])
}

fn check_app_arg(field: &'static str, text: &str) -> Result<(), CommandError> {
    check_value(field, text, &['(', ')', ','])
}

fn check_endpoint(field: &'static str, text: &str) -> Result<(), CommandError> {
    check_non_empty(field, text)?;
    check_max(field, text, 512)?;
    check_chars(field, text, |c| {
        c.is_ascii_alphanumeric() || "_+*#.@:/;=~-".contains(c)
    })?;
    let shaped = text.split_once('/').is_some_and(|(kind, address)| {
        !kind.is_empty()
            && !address.is_empty()
            && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    if !shaped {
        return Err(CommandError::Invalid {
            field,
            expected: "<type>/<address>, such as sofia/gateway/carrier/+15551234",
        });
    }
    if text.contains(ENTERPRISE_DELIM) {
        return Err(CommandError::ForbiddenSequence {
            field,
            sequence: ENTERPRISE_DELIM,
        });
    }
    check_no_reload_trigger(field, text)
}

fn check_token(field: &'static str, text: &str) -> Result<(), CommandError> {
    check_non_empty(field, text)?;
    check_max(field, text, 128)?;
    check_chars(field, text, |c| {
        c.is_ascii_alphanumeric() || "_+*#.-".contains(c)
    })?;
    if text.starts_with('-') {
        return Err(CommandError::Invalid {
            field,
            expected: "a word that does not start with '-'",
        });
    }
    check_no_reload_trigger(field, text)
}

/// One leg: its own `[name=value]` variables and its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    vars: Vec<(VarName, VarValue)>,
    endpoint: Endpoint,
}

impl Leg {
    /// A leg to `endpoint` with no variables of its own.
    pub fn new(endpoint: Endpoint) -> Leg {
        Leg {
            vars: Vec::new(),
            endpoint,
        }
    }

    /// Adds a per-leg variable (`[name=value]`).
    pub fn var(mut self, name: VarName, value: VarValue) -> Leg {
        self.vars.push((name, value));
        self
    }

    /// The leg's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The per-leg variables, in order.
    pub fn vars(&self) -> &[(VarName, VarValue)] {
        &self.vars
    }
}

/// A dial string: global `{}` variables, then groups of legs. Legs in a group
/// ring at the same time (`,`); groups are tried in order (`|`, failover).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialString {
    vars: Vec<(VarName, VarValue)>,
    groups: Vec<Vec<Leg>>,
}

/// Builds a [`DialString`]; see [`DialString::builder`].
#[derive(Debug, Clone, Default)]
pub struct DialStringBuilder {
    vars: Vec<(VarName, VarValue)>,
    groups: Vec<Vec<Leg>>,
}

impl DialString {
    /// A builder with no variables and no legs.
    pub fn builder() -> DialStringBuilder {
        DialStringBuilder::default()
    }

    /// One leg to `endpoint`, no variables.
    pub fn single(endpoint: Endpoint) -> DialString {
        DialString {
            vars: Vec::new(),
            groups: vec![vec![Leg::new(endpoint)]],
        }
    }

    /// The global `{}` variables, in order.
    pub fn vars(&self) -> &[(VarName, VarValue)] {
        &self.vars
    }

    /// The failover groups, each a non-empty list of simultaneous legs.
    pub fn groups(&self) -> &[Vec<Leg>] {
        &self.groups
    }
}

impl DialStringBuilder {
    /// Adds a global variable (`{name=value}`), applied to every leg.
    pub fn var(mut self, name: VarName, value: VarValue) -> Self {
        self.vars.push((name, value));
        self
    }

    /// Adds a leg that rings at the same time as the current group's legs (`,`).
    pub fn leg(mut self, leg: Leg) -> Self {
        match self.groups.last_mut() {
            Some(group) => group.push(leg),
            None => self.groups.push(vec![leg]),
        }
        self
    }

    /// Starts a new group with `leg`, tried only if the previous group fails (`|`).
    pub fn failover(mut self, leg: Leg) -> Self {
        self.groups.push(vec![leg]);
        self
    }

    /// Checks the limits FreeSWITCH reads within and returns the dial string.
    pub fn build(self) -> Result<DialString, CommandError> {
        const FIELD: &str = "dial_string";
        if self.groups.is_empty() {
            return Err(CommandError::Invalid {
                field: FIELD,
                expected: "at least one leg",
            });
        }
        if self.groups.len() > MAX_LEGS || self.groups.iter().any(|g| g.len() > MAX_LEGS) {
            return Err(CommandError::Invalid {
                field: FIELD,
                expected: "at most 128 failover groups of at most 128 legs each",
            });
        }
        let legs = self.groups.iter().flatten();
        if self.vars.len() > MAX_BLOCK_VARS || legs.clone().any(|l| l.vars.len() > MAX_BLOCK_VARS) {
            return Err(CommandError::Invalid {
                field: FIELD,
                expected: "at most 1024 variables per block",
            });
        }
        let dial = DialString {
            vars: self.vars,
            groups: self.groups,
        };
        check_max(FIELD, &dial.to_string(), MAX_DIAL_STRING)?;
        Ok(dial)
    }
}

/// Writes `open name=value,... close`, escaping commas in values as `\,`.
fn write_block(
    f: &mut fmt::Formatter<'_>,
    open: char,
    vars: &[(VarName, VarValue)],
    close: char,
) -> fmt::Result {
    if vars.is_empty() {
        return Ok(());
    }
    write!(f, "{open}")?;
    for (i, (name, value)) in vars.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{name}=")?;
        for (j, part) in value.as_str().split(',').enumerate() {
            if j > 0 {
                f.write_str("\\,")?;
            }
            f.write_str(part)?;
        }
    }
    write!(f, "{close}")
}

impl fmt::Display for DialString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_block(f, '{', &self.vars, '}')?;
        for (g, group) in self.groups.iter().enumerate() {
            if g > 0 {
                f.write_str("|")?;
            }
            for (l, leg) in group.iter().enumerate() {
                if l > 0 {
                    f.write_str(",")?;
                }
                write_block(f, '[', &leg.vars, ']')?;
                write!(f, "{}", leg.endpoint)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> VarName {
        VarName::new(s).unwrap()
    }
    fn value(s: &str) -> VarValue {
        VarValue::new(s).unwrap()
    }
    fn endpoint(s: &str) -> Endpoint {
        Endpoint::new(s).unwrap()
    }

    #[test]
    fn renders_the_canonical_example() {
        let dial = DialString::builder()
            .var(name("a"), value("1"))
            .var(name("b"), value("x,y"))
            .leg(Leg::new(endpoint("sofia/gateway/gw/+1555")).var(name("c"), value("2")))
            .build()
            .unwrap();
        assert_eq!(dial.to_string(), r"{a=1,b=x\,y}[c=2]sofia/gateway/gw/+1555");
    }

    #[test]
    fn renders_simultaneous_and_failover_legs() {
        let dial = DialString::builder()
            .leg(Leg::new(endpoint("user/1000")))
            .leg(Leg::new(endpoint("user/1001")).var(name("leg_timeout"), value("10")))
            .failover(Leg::new(endpoint("loopback/1000/default")))
            .build()
            .unwrap();
        assert_eq!(
            dial.to_string(),
            "user/1000,[leg_timeout=10]user/1001|loopback/1000/default"
        );
        assert_eq!(
            DialString::single(endpoint("user/1000")).to_string(),
            "user/1000"
        );
    }

    #[test]
    fn needs_a_leg() {
        let err = DialString::builder().var(name("a"), value("1")).build();
        assert!(matches!(
            err,
            Err(CommandError::Invalid {
                field: "dial_string",
                ..
            })
        ));
    }

    #[test]
    fn value_rejects_each_forbidden_character_naming_the_field() {
        let forbidden = "\r\n\0\t\u{7f}\u{85}'\"`\\{}[]<>|^$";
        for c in forbidden.chars() {
            let text = format!("John{c}Doe");
            assert_eq!(
                VarValue::for_field("caller_id_name", &text),
                Err(CommandError::Forbidden {
                    field: "caller_id_name",
                    found: c
                }),
                "{c:?}"
            );
        }
        let err = VarValue::for_field("caller_id_name", "a{b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "field \"caller_id_name\" contains a forbidden character '{'"
        );
    }

    #[test]
    fn value_rules() {
        for ok in [
            "",
            "John Doe",
            "José, Jr.",
            "a=b;c/d@e:f",
            "(work)",
            "+15550100001",
        ] {
            assert!(VarValue::new(ok).is_ok(), "{ok:?}");
        }
        assert_eq!(
            VarValue::for_field("x", "a:_:b"),
            Err(CommandError::ForbiddenSequence {
                field: "x",
                sequence: ":_:"
            })
        );
        assert!(matches!(
            VarValue::new("please reload MOD_EVENT_SOCKET"),
            Err(CommandError::ForbiddenSequence { .. })
        ));
        assert!(VarValue::new(&"é".repeat(1024)).is_ok());
        assert_eq!(
            VarValue::for_field("x", &"a".repeat(1025)),
            Err(CommandError::TooLong {
                field: "x",
                max: 1024
            })
        );
    }

    #[test]
    fn angle_uri_brackets_only_the_checked_uri() {
        let v = VarValue::angle_uri("rewrite_pai", "tel:+15550100001", ";party=calling").unwrap();
        assert_eq!(v.as_str(), "<tel:+15550100001>;party=calling");
        let dial = DialString::builder()
            .leg(Leg::new(endpoint("user/1")).var(name("sip_h_P-Asserted-Identity"), v))
            .build()
            .unwrap();
        assert_eq!(
            dial.to_string(),
            "[sip_h_P-Asserted-Identity=<tel:+15550100001>;party=calling]user/1"
        );
        assert_eq!(
            VarValue::angle_uri("rewrite_pai", "tel:1>x", ""),
            Err(CommandError::Forbidden {
                field: "rewrite_pai",
                found: '>'
            })
        );
        assert_eq!(
            VarValue::angle_uri("rewrite_pai", "", ""),
            Err(CommandError::Empty {
                field: "rewrite_pai"
            })
        );
        assert!(VarValue::angle_uri("x", "tel:1", ";a\nb").is_err());
    }

    #[test]
    fn app_arg_also_rejects_parentheses_and_commas() {
        for c in ['(', ')', ','] {
            assert_eq!(
                AppArg::for_field("announcement", &format!("a{c}b")),
                Err(CommandError::Forbidden {
                    field: "announcement",
                    found: c
                })
            );
        }
        assert!(AppArg::new("").is_ok());
        assert!(AppArg::new("tone_stream://%(200,0,500)").is_err());
    }

    #[test]
    fn name_rules() {
        assert!(VarName::new("sip_h_X-Fsgate-Session").is_ok());
        assert!(VarName::new("_x").is_ok());
        assert_eq!(
            VarName::new(""),
            Err(CommandError::Empty {
                field: "variable_name"
            })
        );
        assert!(matches!(
            VarName::new("1abc"),
            Err(CommandError::Invalid { .. })
        ));
        assert!(matches!(
            VarName::new("-abc"),
            Err(CommandError::Invalid { .. })
        ));
        assert_eq!(
            VarName::new("a=b"),
            Err(CommandError::Forbidden {
                field: "variable_name",
                found: '='
            })
        );
        assert!(VarName::new(&"a".repeat(128)).is_ok());
        assert!(matches!(
            VarName::new(&"a".repeat(129)),
            Err(CommandError::TooLong { .. })
        ));
    }

    #[test]
    fn endpoint_rules() {
        for ok in [
            "sofia/gateway/carrier/+15551234",
            "sofia/external/+15557770002@127.0.0.1:5090",
            "user/1000",
            "loopback/1000/default",
            "sofia/internal/1000@example.com;transport=tcp",
        ] {
            assert!(Endpoint::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "user/10 00",
            "user/1,user/2",
            "[x=1]user/1",
            "user/'1'",
            "user/é",
        ] {
            assert!(
                matches!(Endpoint::new(bad), Err(CommandError::Forbidden { .. })),
                "{bad}"
            );
        }
        for bad in ["user", "/1000", "user/", "so-fia/1000"] {
            assert!(
                matches!(Endpoint::new(bad), Err(CommandError::Invalid { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            Endpoint::new("user/1:_:user/2"),
            Err(CommandError::ForbiddenSequence { .. })
        ));
        assert!(matches!(
            Endpoint::try_from("user/mod_event_socket"),
            Err(CommandError::ForbiddenSequence { .. })
        ));
    }

    #[test]
    fn token_rules() {
        for ok in ["fsgate_disconnected", "XML", "public", "+1555*#.x", "a-b"] {
            assert!(Token::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            Token::for_field("context", "pub lic"),
            Err(CommandError::Forbidden {
                field: "context",
                found: ' '
            })
        );
        assert!(matches!(
            Token::new("-bleg"),
            Err(CommandError::Invalid { .. })
        ));
        assert_eq!(Token::new(""), Err(CommandError::Empty { field: "token" }));
    }

    #[test]
    fn limits_are_enforced() {
        let many = (0..=MAX_LEGS).fold(DialString::builder(), |b, _| {
            b.leg(Leg::new(endpoint("user/1")))
        });
        assert!(many.build().is_err());
        let big = value(&"v".repeat(1000));
        let huge = (0..70).fold(DialString::builder(), |b, i| {
            b.var(name(&format!("v{i}")), big.clone())
        });
        let err = huge.leg(Leg::new(endpoint("user/1"))).build();
        assert!(matches!(
            err,
            Err(CommandError::TooLong {
                field: "dial_string",
                ..
            })
        ));
    }
}
