//! The simulator's XML dialplan: mod_dialplan_xml's hunt and the applications it names.
//!
//! This module owns reading dialplan XML ([`Dialplan::load_dir`],
//! [`Dialplan::from_xml`]), hunting a context for a channel the way FreeSWITCH
//! does ([`Dialplan::hunt`], which runs `inline="true"` actions on the spot),
//! `${variable}` expansion ([`expand()`]), the typed list of applications the
//! simulator knows ([`App`]) and the `curl` application ([`curl`]). It must not
//! own channels or their state machine: it reads and writes a channel only
//! through [`ChannelVars`], and it never executes bridge, park, answer,
//! hangup, respond, transfer, playback or sleep; the channel code does, from the
//! [`Action`]s a hunt returns.
//!
//! Pieces: `xml` (parsing into a model), `hunt` (conditions, regular
//! expressions, captures, hunting), `expand` (variables), `app` (the [`App`]
//! enum and the variable applications), `curl` (the `curl` application) and
//! `fsstr` (FreeSWITCH's string helpers: word splitting, URL decoding, `atoi`).
//! The semantics reproduced, and where the simulator deliberately differs, are
//! documented in each of them.

pub mod app;
pub mod curl;
mod expand;
mod fsstr;
mod hunt;
mod xml;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use app::{apply_variable_app, log_line, App, INLINE_APPLICATIONS, KNOWN_APPLICATIONS};
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
    /// An inline action starts. FreeSWITCH runs inline applications through
    /// the same `switch_core_session_exec` as queued ones, so it fires
    /// CHANNEL_EXECUTE (in state CS_ROUTING) with the variables set so far.
    /// `data` is expanded. The default does nothing.
    fn inline_started(&mut self, application: &str, data: &str) {
        let _ = (application, data);
    }
    /// The inline action started last has completed (CHANNEL_EXECUTE_COMPLETE,
    /// with what it set). The default does nothing.
    fn inline_completed(&mut self) {}
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

/// A loaded dialplan. Cheap to clone (shared).
#[derive(Clone)]
pub struct Dialplan {
    model: Arc<xml::Model>,
}

impl fmt::Debug for Dialplan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialplan")
            .field("contexts", &self.context_names())
            .finish()
    }
}

impl Dialplan {
    /// Loads every `*.xml` file under `dir` (recursively, in path order);
    /// contexts with the same name get their extensions appended in that order.
    pub fn load_dir(dir: &Path) -> Result<Dialplan, DialplanError> {
        let mut files = Vec::new();
        collect_xml_files(dir, &mut files)?;
        files.sort();
        let mut model = xml::Model::default();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| DialplanError::Io {
                path: path.clone(),
                source,
            })?;
            // A file in `<dir>/<context>/` may hold bare extensions of that
            // context, as FreeSWITCH's `public/*.xml` includes do.
            let fragment_context = path
                .parent()
                .filter(|p| *p != dir)
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str());
            model.merge(xml::parse_in(
                &text,
                &path.display().to_string(),
                fragment_context,
            )?);
        }
        Ok(Dialplan {
            model: Arc::new(model),
        })
    }

    /// Parses one document (errors name the file `<string>`).
    pub fn from_xml(xml: &str) -> Result<Dialplan, DialplanError> {
        Ok(Dialplan {
            model: Arc::new(xml::parse(xml, "<string>")?),
        })
    }

    /// True when a context of that name exists (no `global` fallback here).
    pub fn has_context(&self, name: &str) -> bool {
        self.model.context(name).is_some()
    }

    /// The contexts' names, in first-seen order.
    pub fn context_names(&self) -> Vec<&str> {
        self.model
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect()
    }

    /// FreeSWITCH's hunt of `context` for `chan` (see the `hunt` module docs).
    /// Inline actions run right away against `chan` (set/unset/export/log
    /// directly, curl through [`curl::perform`] with the channel's
    /// `curl_timeout`/`curl_connect_timeout`). Returns the other actions in
    /// order; an empty list means no extension matched (FreeSWITCH then hangs
    /// up with `NO_ROUTE_DESTINATION`).
    pub async fn hunt<C: ChannelVars + Send + ?Sized>(
        &self,
        context: &str,
        chan: &mut C,
        http: &reqwest::Client,
    ) -> Result<Vec<Action>, DialplanError> {
        hunt::hunt(&self.model, context, chan, http).await
    }
}

fn collect_xml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DialplanError> {
    let io = |source| DialplanError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        // Directories are entered only when they are real ones (no symlink loops).
        if entry.file_type().map_err(io)?.is_dir() {
            collect_xml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "xml") && path.is_file() {
            out.push(path);
        }
    }
    Ok(())
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

#[cfg(test)]
mod robustness {
    //! No input, however odd, makes the dialplan panic.
    use proptest::prelude::*;

    use super::testchan::TestChannel;
    use super::*;

    const DOC: &str = r#"<include><context name="c"><extension name="e">
        <condition field="destination_number" expression="^(\d+)$">
          <action application="set" data="a=$1 ${b}" inline="true"/>
          <action application="log" data="x"/>
        </condition></extension></context></include>"#;

    proptest! {
        #[test]
        fn any_text_is_parsed_or_refused(text in ".{0,200}") {
            let _ = Dialplan::from_xml(&text);
        }

        #[test]
        fn damaged_documents_are_parsed_or_refused(cut in 0usize..400, junk in "[<>&/\"'a-z=${}()\\\\]{0,8}") {
            let cut = cut.min(DOC.len());
            let mut doc = DOC[..cut].to_owned();
            doc.push_str(&junk);
            doc.push_str(&DOC[cut..]);
            let _ = Dialplan::from_xml(&doc);
        }

        #[test]
        fn any_data_expands_and_parses(data in "[ -~é]{0,60}", dest in "[0-9a-z${}]{0,12}") {
            let mut chan = TestChannel::new("1000", &dest);
            chan.var("b", &data);
            let _ = expand(&data, &chan);
            for app in KNOWN_APPLICATIONS {
                let _ = App::parse(app, &data);
            }
            let _ = fsstr::separate_blank(&data, 5);
            let _ = fsstr::url_decode(&data);
        }

        #[test]
        fn any_destination_hunts(dest in "[ -~]{0,24}", b in "[ -~]{0,24}") {
            let d = Dialplan::from_xml(DOC).unwrap();
            let mut chan = TestChannel::new("1000", &dest);
            chan.var("b", &b);
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let http = curl::client().unwrap();
            let _ = rt.block_on(d.hunt("c", &mut chan, &http));
        }
    }
}
