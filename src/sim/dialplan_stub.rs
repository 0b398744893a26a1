//! PRIVATE STAND-IN for `sim::dialplan` (being written on branch `dialplan`).
//!
//! Same names and signatures as the agreed interface (`Dialplan::load_dir`,
//! `hunt`, `expand`, `App::parse`, `ChannelVars`, `Action`), with just enough
//! behaviour for the simulator's own tests: contexts, extensions, regex
//! conditions on caller-profile fields with `$1` substitution and `DP_MATCH`,
//! `action`/`anti-action`, `continue`. Delete this file when the real module
//! is merged from main.

use std::path::Path;

use quick_xml::events::Event as XmlEvent;
use regex::Regex;

/// Dialplan errors.
#[derive(Debug, thiserror::Error)]
pub enum DialplanError {
    /// File or XML problem.
    #[error("dialplan load error: {0}")]
    Load(String),
    /// Application not known.
    #[error("application {0:?} is not available")]
    UnknownApplication(String),
    /// Bad application arguments.
    #[error("bad arguments for {app}: {reason}")]
    BadArguments { app: String, reason: String },
    /// Context not found.
    #[error("no such context {0:?}")]
    NoContext(String),
}

/// What the dialplan needs from a channel.
pub trait ChannelVars {
    /// A channel variable.
    fn variable(&self, name: &str) -> Option<String>;
    /// A caller-profile field (`destination_number`, `caller_id_number` …).
    fn profile_field(&self, name: &str) -> Option<String>;
    /// Sets (None: unsets) a variable.
    fn set_variable(&mut self, name: &str, value: Option<String>);
}

/// One action the hunt selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub application: String,
    pub data: String,
    pub extension: String,
}

#[derive(Debug, Clone)]
struct Condition {
    field: String,
    expression: String,
    actions: Vec<(String, String)>,
    anti: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Extension {
    name: String,
    cont: bool,
    conditions: Vec<Condition>,
}

/// A loaded XML dialplan.
#[derive(Debug, Clone, Default)]
pub struct Dialplan {
    contexts: Vec<(String, Vec<Extension>)>,
}

impl Dialplan {
    /// Loads every `*.xml` file of a directory.
    pub fn load_dir(dir: &Path) -> Result<Dialplan, DialplanError> {
        let mut dp = Dialplan::default();
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| DialplanError::Load(format!("{}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| DialplanError::Load(format!("{}: {e}", f.display())))?;
            dp.load_str(&text)?;
        }
        Ok(dp)
    }

    /// Loads one XML text.
    pub fn load_str(&mut self, text: &str) -> Result<(), DialplanError> {
        let mut r = quick_xml::Reader::from_str(text);
        let mut ctx: Option<(String, Vec<Extension>)> = None;
        let mut ext: Option<Extension> = None;
        let mut cond: Option<Condition> = None;
        loop {
            let ev = r
                .read_event()
                .map_err(|e| DialplanError::Load(e.to_string()))?;
            let (ev, empty) = match ev {
                XmlEvent::Empty(e) => (XmlEvent::Start(e), true),
                other => (other, false),
            };
            match ev {
                XmlEvent::Eof => break,
                XmlEvent::Start(e) => {
                    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    let mut attrs = std::collections::HashMap::new();
                    for a in e.attributes().flatten() {
                        let k = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                        let v = a
                            .unescape_value()
                            .map(|v| v.into_owned())
                            .unwrap_or_default();
                        attrs.insert(k, v);
                    }
                    let get = |k: &str| attrs.get(k).cloned().unwrap_or_default();
                    match name.as_str() {
                        "context" => ctx = Some((get("name"), Vec::new())),
                        "extension" => {
                            ext = Some(Extension {
                                name: get("name"),
                                cont: get("continue") == "true",
                                conditions: Vec::new(),
                            })
                        }
                        "condition" => {
                            let c = Condition {
                                field: get("field"),
                                expression: get("expression"),
                                actions: Vec::new(),
                                anti: Vec::new(),
                            };
                            if empty {
                                if let Some(x) = ext.as_mut() {
                                    x.conditions.push(c);
                                }
                            } else {
                                cond = Some(c);
                            }
                        }
                        "action" => {
                            if let Some(c) = cond.as_mut() {
                                c.actions.push((get("application"), get("data")));
                            }
                        }
                        "anti-action" => {
                            if let Some(c) = cond.as_mut() {
                                c.anti.push((get("application"), get("data")));
                            }
                        }
                        _ => {}
                    }
                }
                XmlEvent::End(e) => match e.name().as_ref() {
                    b"condition" => {
                        if let (Some(c), Some(x)) = (cond.take(), ext.as_mut()) {
                            x.conditions.push(c);
                        }
                    }
                    b"extension" => {
                        if let (Some(x), Some(c)) = (ext.take(), ctx.as_mut()) {
                            c.1.push(x);
                        }
                    }
                    b"context" => {
                        if let Some(c) = ctx.take() {
                            if let Some(existing) = self.contexts.iter_mut().find(|x| x.0 == c.0) {
                                existing.1.extend(c.1);
                            } else {
                                self.contexts.push(c);
                            }
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        Ok(())
    }

    /// Runs the hunt in `context` and returns the actions to execute.
    pub async fn hunt<C: ChannelVars + Send + ?Sized>(
        &self,
        context: &str,
        chan: &mut C,
        _http: &reqwest::Client,
    ) -> Result<Vec<Action>, DialplanError> {
        let Some((_, exts)) = self.contexts.iter().find(|c| c.0 == context) else {
            return Err(DialplanError::NoContext(context.to_string()));
        };
        let mut out = Vec::new();
        for x in exts {
            let mut all = true;
            let mut picked = Vec::new();
            for c in &x.conditions {
                let value = if c.field.is_empty() {
                    None
                } else if c.field.starts_with("${") {
                    Some(expand(&c.field, chan))
                } else {
                    chan.profile_field(&c.field)
                        .or_else(|| chan.variable(&c.field))
                };
                let matched = match value {
                    None => Some(Vec::new()),
                    Some(v) => Regex::new(&c.expression).ok().and_then(|re| {
                        re.captures(&v).map(|caps| {
                            caps.iter()
                                .map(|m| m.map(|m| m.as_str().to_string()).unwrap_or_default())
                                .collect::<Vec<_>>()
                        })
                    }),
                };
                match matched {
                    Some(caps) => {
                        if caps.len() > 1 {
                            chan.set_variable(
                                "DP_MATCH",
                                Some(format!("ARRAY::{}", caps.join("|:"))),
                            );
                        }
                        for (a, d) in &c.actions {
                            let mut d = d.clone();
                            for (i, cap) in caps.iter().enumerate().rev() {
                                d = d.replace(&format!("${i}"), cap);
                            }
                            picked.push(Action {
                                application: a.clone(),
                                data: d,
                                extension: x.name.clone(),
                            });
                        }
                    }
                    None => {
                        all = false;
                        for (a, d) in &c.anti {
                            picked.push(Action {
                                application: a.clone(),
                                data: d.clone(),
                                extension: x.name.clone(),
                            });
                        }
                        break;
                    }
                }
            }
            if all || !picked.is_empty() {
                out.extend(picked);
                if all && !x.cont {
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// Expands `${var}` references.
pub fn expand<C: ChannelVars + ?Sized>(data: &str, chan: &C) -> String {
    let mut out = String::new();
    let mut rest = data;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                let name = &after[..j];
                out.push_str(&chan.variable(name).unwrap_or_default());
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A parsed application (same variants as the real module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum App {
    Set {
        name: String,
        value: Option<String>,
    },
    Unset(String),
    Export {
        name: String,
        value: Option<String>,
        local: bool,
    },
    Curl(curl::CurlRequest),
    Bridge(String),
    Park,
    Answer,
    PreAnswer,
    Hangup(crate::esl::HangupCause),
    Respond {
        code: u16,
        reason: String,
    },
    Transfer {
        extension: String,
        dialplan: Option<String>,
        context: Option<String>,
    },
    Playback(String),
    Sleep(u64),
    Log {
        level: &'static str,
        message: String,
    },
}

impl App {
    /// Parses an application and its (expanded) data.
    pub fn parse(app: &str, data: &str) -> Result<App, DialplanError> {
        let bad = |reason: &str| DialplanError::BadArguments {
            app: app.to_string(),
            reason: reason.to_string(),
        };
        let opt = |v: &str| (!v.is_empty()).then(|| v.to_string());
        Ok(match app.to_ascii_lowercase().as_str() {
            "set" => {
                let (n, v) = data.split_once('=').unwrap_or((data, ""));
                App::Set {
                    name: n.to_string(),
                    value: opt(v),
                }
            }
            "export" => {
                let (n, v) = data.split_once('=').unwrap_or((data, ""));
                let (n, local) = match n.strip_prefix("nolocal:") {
                    Some(n) => (n, false),
                    None => (n, true),
                };
                App::Export {
                    name: n.to_string(),
                    value: opt(v),
                    local,
                }
            }
            "unset" => App::Unset(data.to_string()),
            "curl" => App::Curl(curl::CurlRequest::parse(data)),
            "bridge" => App::Bridge(data.to_string()),
            "park" => App::Park,
            "answer" => App::Answer,
            "pre_answer" => App::PreAnswer,
            "hangup" => App::Hangup(
                crate::esl::HangupCause::from_name_ignore_case(data.trim())
                    .unwrap_or(crate::esl::HangupCause::NORMAL_CLEARING),
            ),
            "respond" => {
                let (c, r) = data.split_once(' ').unwrap_or((data, ""));
                App::Respond {
                    code: c.trim().parse().map_err(|_| bad("expected a SIP code"))?,
                    reason: r.to_string(),
                }
            }
            "transfer" => {
                let mut w = data.split_whitespace();
                App::Transfer {
                    extension: w.next().unwrap_or_default().to_string(),
                    dialplan: w.next().map(str::to_string),
                    context: w.next().map(str::to_string),
                }
            }
            "playback" => App::Playback(data.to_string()),
            "sleep" => App::Sleep(data.trim().parse().map_err(|_| bad("expected ms"))?),
            "log" => App::Log {
                level: "DEBUG",
                message: data.to_string(),
            },
            _ => return Err(DialplanError::UnknownApplication(app.to_string())),
        })
    }
}

/// Runs set/unset/export on the channel; false for other applications.
pub fn apply_variable_app<C: ChannelVars + ?Sized>(app: &App, chan: &mut C) -> bool {
    match app {
        App::Set { name, value } => chan.set_variable(name, value.clone()),
        App::Unset(name) => chan.set_variable(name, None),
        App::Export { name, value, local } => {
            let var = if *local {
                name.clone()
            } else {
                format!("nolocal:{name}")
            };
            chan.set_variable(&var, value.clone());
            if value.is_some() {
                let list = match chan.variable("export_vars") {
                    Some(l) if !l.is_empty() => format!("{l},{var}"),
                    _ => var,
                };
                chan.set_variable("export_vars", Some(list));
            }
        }
        _ => return false,
    }
    true
}

/// Logs the `log` application's line.
pub fn log_line(level: &str, message: &str) {
    tracing::info!(target: "fsgate::sim::log", level, "{message}");
}

/// Stand-in for `dialplan::curl`.
pub mod curl {
    use std::time::Duration;

    use super::ChannelVars;

    /// A parsed `curl` application argument.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct CurlRequest {
        pub url: String,
    }

    impl CurlRequest {
        /// Parses the words of the application data.
        pub fn parse(data: &str) -> CurlRequest {
            CurlRequest {
                url: data
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            }
        }
    }

    /// What the request produced.
    #[derive(Debug, Clone, Default)]
    pub struct CurlOutcome {
        pub data: Option<String>,
        pub response_code: u16,
        pub method: Option<String>,
    }

    /// The HTTP client the application uses.
    pub fn client() -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder().build()
    }

    /// `curl_timeout` / `curl_connect_timeout`.
    pub fn timeouts<C: ChannelVars + ?Sized>(chan: &C) -> (Option<Duration>, Option<Duration>) {
        let secs = |n: &str| {
            chan.variable(n)
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
        };
        (secs("curl_timeout"), secs("curl_connect_timeout"))
    }

    /// Performs the request.
    pub async fn perform(
        req: &CurlRequest,
        timeout: Option<Duration>,
        _connect_timeout: Option<Duration>,
        http: &reqwest::Client,
    ) -> CurlOutcome {
        let mut rb = http.get(&req.url);
        if let Some(t) = timeout {
            rb = rb.timeout(t);
        }
        match rb.send().await {
            Ok(r) => {
                let code = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                CurlOutcome {
                    data: (!body.is_empty()).then_some(body),
                    response_code: code,
                    method: None,
                }
            }
            Err(_) => CurlOutcome::default(),
        }
    }

    /// Stores the outcome as FreeSWITCH does.
    pub fn apply<C: ChannelVars + ?Sized>(outcome: &CurlOutcome, chan: &mut C) {
        let data = outcome.data.clone().filter(|d| !d.contains("${"));
        chan.set_variable("curl_response_data", data);
        chan.set_variable(
            "curl_response_code",
            Some(outcome.response_code.to_string()),
        );
        chan.set_variable("curl_method", outcome.method.clone());
    }
}
