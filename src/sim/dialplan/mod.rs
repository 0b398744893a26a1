//! The simulator's XML dialplan: mod_dialplan_xml's hunt and the applications it names.
//!
//! This module owns `${variable}` expansion ([`expand()`]), the typed list of
//! applications the simulator knows ([`App`]) and the `curl` application
//! ([`curl`]); the XML reading and the hunt come next. It must not own channels
//! or their state machine: it reads and writes a channel only through
//! [`ChannelVars`], and it never executes bridge, park, answer, hangup,
//! respond, transfer, playback or sleep; the channel code does.
//!
//! Pieces: `expand` (variables), `app` (the [`App`] enum and the variable
//! applications), `curl` (the `curl` application) and `fsstr` (FreeSWITCH's
//! string helpers: word splitting, URL decoding, `atoi`).

pub mod app;
pub mod curl;
mod expand;
mod fsstr;

use std::path::PathBuf;

pub use app::{apply_variable_app, App, INLINE_APPLICATIONS, KNOWN_APPLICATIONS};
pub use curl::{CurlOutcome, CurlRequest};
pub use expand::expand;

/// The caller-profile field names FreeSWITCH's `switch_caller_get_field_by_name`
/// answers (a `<condition field="...">` without `$` reads one of these; any
/// other name reads as the empty string).
pub const PROFILE_FIELDS: &[&str] = &[
    "dialplan",
    "username",
    "caller_id_name",
    "caller_id_number",
    "orig_caller_id_name",
    "orig_caller_id_number",
    "callee_id_name",
    "callee_id_number",
    "ani",
    "aniii",
    "network_addr",
    "rdnis",
    "destination_number",
    "uuid",
    "source",
    "transfer_source",
    "context",
    "chan_name",
];

/// What the dialplan reads from and writes to a channel.
///
/// FreeSWITCH compares variable names case-insensitively; implementations
/// decide whether to do the same.
pub trait ChannelVars {
    /// A channel variable, `None` when unset.
    fn variable(&self, name: &str) -> Option<String>;
    /// A caller-profile field (see [`PROFILE_FIELDS`]); `None` for unknown names.
    fn profile_field(&self, name: &str) -> Option<String>;
    /// Sets (`Some`) or unsets (`None`) a channel variable. The dialplan has
    /// already applied FreeSWITCH's rules (empty values unset, `${` refused
    /// where FreeSWITCH refuses it); store what you are given.
    fn set_variable(&mut self, name: &str, value: Option<String>);
}

/// Everything that can go wrong loading or hunting a dialplan.
#[derive(Debug, thiserror::Error)]
pub enum DialplanError {
    /// The file is not well-formed XML.
    #[error("{file}:{line}:{column}: XML syntax error: {message}")]
    Xml {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// Well-formed XML that is not a dialplan the simulator understands.
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A dialplan file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Neither the context nor a `global` context exists.
    #[error("context {0:?} not found in the dialplan")]
    UnknownContext(String),
    /// An expression the regex engine refuses.
    #[error("extension {extension:?}: bad regular expression {expression:?}: {reason}")]
    BadRegex {
        extension: String,
        expression: String,
        reason: String,
    },
    /// `inline="true"` on an application FreeSWITCH does not allow inline.
    #[error(
        "extension {extension:?}: application {application:?} cannot run inline \
         (only set, unset, export, curl and log can)"
    )]
    NotInline {
        extension: String,
        application: String,
    },
    /// An application the simulator does not know.
    #[error("unknown application {0:?}")]
    UnknownApplication(String),
    /// A known application with data it cannot use.
    #[error("application {application:?}: invalid data {data:?}: {reason}")]
    InvalidData {
        application: String,
        data: String,
        reason: String,
    },
}

/// One queued application, as the hunt leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The application name as written in the XML.
    pub application: String,
    /// `$N` already substituted; `${...}` not yet expanded (that happens when
    /// the action runs, against the channel as it is then).
    pub data: String,
    /// The extension that queued it.
    pub extension: String,
}

impl Action {
    /// Expands the data against `chan` now and parses it into an [`App`]; an
    /// unknown application is [`DialplanError::UnknownApplication`].
    pub fn to_app<C: ChannelVars + ?Sized>(&self, chan: &C) -> Result<App, DialplanError> {
        App::parse(&self.application, &expand(&self.data, chan))
    }
}

#[cfg(test)]
pub(crate) mod testchan {
    //! A map-backed channel for the unit tests.
    use std::collections::HashMap;

    use super::ChannelVars;

    #[derive(Debug, Default)]
    pub(crate) struct TestChannel {
        vars: HashMap<String, String>,
        profile: HashMap<String, String>,
    }

    impl TestChannel {
        pub(crate) fn new(caller: &str, destination: &str) -> TestChannel {
            let mut profile = HashMap::new();
            profile.insert("caller_id_number".to_owned(), caller.to_owned());
            profile.insert("caller_id_name".to_owned(), caller.to_owned());
            profile.insert("ani".to_owned(), caller.to_owned());
            profile.insert("destination_number".to_owned(), destination.to_owned());
            profile.insert(
                "uuid".to_owned(),
                "11111111-2222-3333-4444-555555555555".to_owned(),
            );
            profile.insert("context".to_owned(), "c".to_owned());
            TestChannel {
                vars: HashMap::new(),
                profile,
            }
        }

        pub(crate) fn var(&mut self, name: &str, value: &str) {
            self.vars.insert(name.to_owned(), value.to_owned());
        }

        pub(crate) fn get(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
    }

    impl ChannelVars for TestChannel {
        fn variable(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn profile_field(&self, name: &str) -> Option<String> {
            self.profile.get(name).cloned()
        }
        fn set_variable(&mut self, name: &str, value: Option<String>) {
            match value {
                Some(v) => self.vars.insert(name.to_owned(), v),
                None => self.vars.remove(name),
            };
        }
    }
}
