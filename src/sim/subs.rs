//! One ESL client's event selection: `event`/`nixevent`/`noevents`
//! subscriptions and `filter` rules, with mod_event_socket's exact semantics
//! and reply texts (docs/esl-protocol.md §2.4, §2.5).
//!
//! Pure state plus the "does this client want that event" decision. It must
//! not do I/O or know about sessions; `server` calls it.

use std::collections::HashSet;

use regex::RegexBuilder;

use super::wire::EventFormat;

/// Every event type name FreeSWITCH knows (`switch_event_types`), without ALL.
pub const EVENT_NAMES: &[&str] = &[
    "CUSTOM",
    "CLONE",
    "CHANNEL_CREATE",
    "CHANNEL_DESTROY",
    "CHANNEL_STATE",
    "CHANNEL_CALLSTATE",
    "CHANNEL_ANSWER",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HOLD",
    "CHANNEL_UNHOLD",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_OUTGOING",
    "CHANNEL_PARK",
    "CHANNEL_UNPARK",
    "CHANNEL_APPLICATION",
    "CHANNEL_ORIGINATE",
    "CHANNEL_UUID",
    "API",
    "LOG",
    "INBOUND_CHAN",
    "OUTBOUND_CHAN",
    "STARTUP",
    "SHUTDOWN",
    "PUBLISH",
    "UNPUBLISH",
    "TALK",
    "NOTALK",
    "SESSION_CRASH",
    "MODULE_LOAD",
    "MODULE_UNLOAD",
    "DTMF",
    "MESSAGE",
    "PRESENCE_IN",
    "NOTIFY_IN",
    "PRESENCE_OUT",
    "PRESENCE_PROBE",
    "MESSAGE_WAITING",
    "MESSAGE_QUERY",
    "ROSTER",
    "CODEC",
    "BACKGROUND_JOB",
    "DETECTED_SPEECH",
    "DETECTED_TONE",
    "PRIVATE_COMMAND",
    "HEARTBEAT",
    "TRAP",
    "ADD_SCHEDULE",
    "DEL_SCHEDULE",
    "EXE_SCHEDULE",
    "RE_SCHEDULE",
    "RELOADXML",
    "NOTIFY",
    "PHONE_FEATURE",
    "PHONE_FEATURE_SUBSCRIBE",
    "SEND_MESSAGE",
    "RECV_MESSAGE",
    "REQUEST_PARAMS",
    "CHANNEL_DATA",
    "GENERAL",
    "COMMAND",
    "SESSION_HEARTBEAT",
    "CLIENT_DISCONNECTED",
    "SERVER_DISCONNECTED",
    "SEND_INFO",
    "RECV_INFO",
    "RECV_RTCP_MESSAGE",
    "SEND_RTCP_MESSAGE",
    "CALL_SECURE",
    "NAT",
    "RECORD_START",
    "RECORD_STOP",
    "PLAYBACK_START",
    "PLAYBACK_STOP",
    "CALL_UPDATE",
    "FAILURE",
    "SOCKET_DATA",
    "MEDIA_BUG_START",
    "MEDIA_BUG_STOP",
    "CONFERENCE_DATA_QUERY",
    "CONFERENCE_DATA",
    "CALL_SETUP_REQ",
    "CALL_SETUP_RESULT",
    "CALL_DETAIL",
    "DEVICE_STATE",
    "TEXT",
    "SHUTDOWN_REQUESTED",
];

fn event_name(word: &str) -> Option<&'static str> {
    let w = word.strip_prefix("SWITCH_EVENT_").unwrap_or(word);
    if w.eq_ignore_ascii_case("ALL") {
        return Some("ALL");
    }
    EVENT_NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(w))
        .copied()
}

/// A client's subscriptions, format and filters.
#[derive(Debug, Clone)]
pub struct Subscriptions {
    /// Current event format.
    pub format: EventFormat,
    enabled: HashSet<&'static str>,
    all_custom: bool,
    subclasses: HashSet<String>,
    listening: bool,
    filters: Vec<(String, String)>,
    flush: bool,
}

impl Default for Subscriptions {
    fn default() -> Self {
        Subscriptions {
            format: EventFormat::Plain,
            enabled: HashSet::new(),
            all_custom: false,
            subclasses: HashSet::new(),
            listening: false,
            filters: Vec::new(),
            flush: false,
        }
    }
}

fn format_name(f: EventFormat) -> &'static str {
    match f {
        EventFormat::Plain => "plain",
        EventFormat::Json => "json",
    }
}

impl Subscriptions {
    /// `event [plain|json|xml] <names…>`: returns the Reply-Text.
    pub fn event(&mut self, args: &str) -> String {
        let mut custom = false;
        let mut any = false;
        for word in args.split_whitespace() {
            if custom {
                self.subclasses.insert(word.to_string());
                any = true;
                continue;
            }
            if word.eq_ignore_ascii_case("plain") {
                self.format = EventFormat::Plain;
                continue;
            }
            if word.eq_ignore_ascii_case("json") {
                self.format = EventFormat::Json;
                continue;
            }
            if word.eq_ignore_ascii_case("xml") {
                // xml is not produced by the simulator; keep plain.
                continue;
            }
            match event_name(word) {
                Some("ALL") => {
                    self.enabled.extend(EVENT_NAMES.iter().copied());
                    self.all_custom = true;
                    any = true;
                }
                Some("CUSTOM") => {
                    custom = true;
                }
                Some(name) => {
                    self.enabled.insert(name);
                    any = true;
                }
                None => {}
            }
        }
        if any {
            self.listening = true;
            format!("+OK event listener enabled {}", format_name(self.format))
        } else {
            "-ERR no keywords supplied".to_string()
        }
    }

    /// `nixevent <names…>`.
    pub fn nixevent(&mut self, args: &str) -> String {
        let mut custom = false;
        let mut any = false;
        for word in args.split_whitespace() {
            if custom {
                self.subclasses.remove(word);
                any = true;
                continue;
            }
            match event_name(word) {
                Some("ALL") => {
                    self.enabled.clear();
                    self.all_custom = false;
                    self.subclasses.clear();
                    any = true;
                }
                Some("CUSTOM") => custom = true,
                Some(name) => {
                    self.enabled.remove(name);
                    any = true;
                }
                None => {}
            }
        }
        if any {
            "+OK events nixed".to_string()
        } else {
            "-ERR no keywords supplied".to_string()
        }
    }

    /// `noevents`.
    pub fn noevents(&mut self) -> String {
        if self.listening {
            self.listening = false;
            self.enabled.clear();
            self.subclasses.clear();
            self.all_custom = false;
            "+OK no longer listening for events".to_string()
        } else {
            "-ERR not listening for events".to_string()
        }
    }

    /// Asks the session to drop the events already queued (`noevents`).
    pub fn request_flush(&mut self) {
        self.flush = true;
    }

    /// Whether queued events must be dropped now (resets the request).
    pub fn take_flush(&mut self) -> bool {
        std::mem::take(&mut self.flush)
    }

    /// Whether `event`/`myevents` has enabled delivery.
    pub fn listening(&self) -> bool {
        self.listening
    }

    /// `filter …` (everything after `filter `).
    pub fn filter(&mut self, args: &str) -> String {
        let args = args.trim();
        let (name, val) = match args.split_once(' ') {
            Some((n, v)) => (n, Some(v)),
            None => (args, None),
        };
        if name.eq_ignore_ascii_case("delete") {
            if let Some(rest) = val {
                let (name, val) = match rest.split_once(' ') {
                    Some((n, v)) => (n, Some(v)),
                    None => (rest, None),
                };
                if name.eq_ignore_ascii_case("all") {
                    self.filters.clear();
                } else {
                    self.filters.retain(|(n, v)| {
                        !(n.eq_ignore_ascii_case(name) && val.is_none_or(|val| v == val))
                    });
                }
                return format!("+OK filter deleted. [{}][{}]", name, val.unwrap_or(""));
            }
        }
        let Some(mut val) = val else {
            return "-ERR invalid syntax".to_string();
        };
        let mut name = name;
        if name.eq_ignore_ascii_case("add") {
            match val.split_once(' ') {
                Some((n, v)) => {
                    name = n;
                    val = v;
                }
                None => return "-ERR invalid syntax".to_string(),
            }
        }
        self.filters.push((name.to_string(), val.to_string()));
        format!("+OK filter added. [{}]=[{}]", name, val)
    }

    /// The filters, in order.
    pub fn filters(&self) -> &[(String, String)] {
        &self.filters
    }

    /// Subscribed event names (sorted) and subclasses, for reports.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.enabled.iter().map(|s| s.to_string()).collect();
        v.sort();
        v.extend(self.subclasses.iter().map(|s| format!("CUSTOM {s}")));
        v
    }

    /// Subscription + filter decision for one event.
    pub fn wants(&self, name: &str, subclass: Option<&str>, headers: &[(String, String)]) -> bool {
        if !self.listening {
            return false;
        }
        let subscribed = if name == "CUSTOM" {
            self.all_custom || subclass.is_some_and(|s| self.subclasses.contains(s))
        } else {
            self.enabled.contains(name)
        };
        if !subscribed {
            return false;
        }
        self.filters_pass(headers)
    }

    fn filters_pass(&self, headers: &[(String, String)]) -> bool {
        if self.filters.is_empty() {
            return true;
        }
        let mut send = false;
        for (fname, fvalue) in &self.filters {
            let Some(hval) = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(fname))
                .map(|(_, v)| v.as_str())
            else {
                continue;
            };
            let mut pos = true;
            let mut comp = fvalue.as_str();
            while let Some(c) = comp.chars().next() {
                match c {
                    '+' => pos = true,
                    '-' => pos = false,
                    ' ' => {}
                    _ => break,
                }
                comp = &comp[1..];
            }
            if send && pos {
                continue;
            }
            if comp.is_empty() {
                continue;
            }
            let cmp = if fvalue.starts_with('/') {
                regex_match(hval, comp)
            } else {
                hval.eq_ignore_ascii_case(comp)
            };
            if cmp {
                if pos {
                    send = true;
                } else {
                    return false;
                }
            }
        }
        send
    }
}

/// `switch_regex_perform` with a `/regex/flags` expression.
fn regex_match(value: &str, expr: &str) -> bool {
    let (pattern, flags) = match expr.strip_prefix('/') {
        Some(rest) => match rest.rfind('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        },
        None => (expr, ""),
    };
    RegexBuilder::new(pattern)
        .case_insensitive(flags.contains('i'))
        .dot_matches_new_line(flags.contains('s'))
        .build()
        .map(|re| re.is_match(value))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn commands_never_panic(s in "\\PC{0,60}") {
            let mut subs = Subscriptions::default();
            let _ = subs.event(&s);
            let _ = subs.filter(&s);
            let _ = subs.wants("CHANNEL_CREATE", None, &h(&[("Unique-ID", s.as_str())]));
            let _ = subs.nixevent(&s);
            let _ = subs.filter(&format!("delete {s}"));
        }
    }

    #[test]
    fn event_replies_and_format() {
        let mut s = Subscriptions::default();
        assert_eq!(s.noevents(), "-ERR not listening for events");
        assert_eq!(s.event("json BOGUS"), "-ERR no keywords supplied");
        assert_eq!(s.format, EventFormat::Json);
        assert_eq!(
            s.event("plain CHANNEL_CREATE NOPE"),
            "+OK event listener enabled plain"
        );
        assert!(s.wants("CHANNEL_CREATE", None, &[]));
        assert!(!s.wants("CHANNEL_ANSWER", None, &[]));
        assert_eq!(s.event("ALL"), "+OK event listener enabled plain");
        assert!(s.wants("CUSTOM", Some("sofia::register"), &[]));
        assert_eq!(s.nixevent("CHANNEL_ANSWER"), "+OK events nixed");
        assert!(!s.wants("CHANNEL_ANSWER", None, &[]));
        assert!(s.wants("HEARTBEAT", None, &[]));
        assert_eq!(s.nixevent("NOPE"), "-ERR no keywords supplied");
        assert_eq!(s.noevents(), "+OK no longer listening for events");
        assert!(!s.wants("HEARTBEAT", None, &[]));
    }

    #[test]
    fn filters_follow_event_handler() {
        let mut s = Subscriptions::default();
        s.event("ALL");
        assert_eq!(
            s.filter("Unique-ID abc"),
            "+OK filter added. [Unique-ID]=[abc]"
        );
        // Events without the header are skipped, so heartbeat is dropped.
        assert!(!s.wants("HEARTBEAT", None, &h(&[("Event-Name", "HEARTBEAT")])));
        assert!(s.wants("CHANNEL_ANSWER", None, &h(&[("Unique-ID", "ABC")])));
        assert_eq!(
            s.filter("add Event-Name BACKGROUND_JOB"),
            "+OK filter added. [Event-Name]=[BACKGROUND_JOB]"
        );
        assert!(s.wants(
            "BACKGROUND_JOB",
            None,
            &h(&[("Event-Name", "BACKGROUND_JOB")])
        ));
        s.filter("Event-Name -CHANNEL_ANSWER");
        assert!(!s.wants(
            "CHANNEL_ANSWER",
            None,
            &h(&[("Event-Name", "CHANNEL_ANSWER"), ("Unique-ID", "abc")])
        ));
        assert_eq!(
            s.filter("delete Event-Name"),
            "+OK filter deleted. [Event-Name][]"
        );
        assert_eq!(s.filters().len(), 1);
        assert_eq!(s.filter("delete all"), "+OK filter deleted. [all][]");
        assert!(s.filters().is_empty());
        assert_eq!(s.filter("Unique-ID"), "-ERR invalid syntax");
        s.filter("Caller-Caller-ID-Number /^\\+1555/");
        assert!(
            s.wants("X", None, &h(&[("Caller-Caller-ID-Number", "+15551234")]))
                || !s.enabled.contains("X")
        );
        assert!(s.wants(
            "CHANNEL_CREATE",
            None,
            &h(&[("Caller-Caller-ID-Number", "+15551234")])
        ));
        assert!(!s.wants(
            "CHANNEL_CREATE",
            None,
            &h(&[("Caller-Caller-ID-Number", "+4930")])
        ));
        // A negative regex is compared literally.
        let mut s = Subscriptions::default();
        s.event("ALL");
        s.filter("Event-Name -/HEART.*/");
        assert!(!s.wants("HEARTBEAT", None, &h(&[("Event-Name", "HEARTBEAT")])));
    }
}
