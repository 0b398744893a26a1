//! One simulated channel's state: identity, FreeSWITCH state names, answer
//! and call state, the caller profile (and the linked other-leg profile),
//! hangup cause, and the channel variables in FreeSWITCH's order (setting a
//! variable moves it to the end, as `switch_channel_set_variable` does).
//!
//! Plain data with small, obvious mutators. It must not fire events, sleep or
//! know about sockets; `core` drives it and `events` renders it.

use crate::esl::HangupCause;

/// Ordered channel variables.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Vars(Vec<(String, String)>);

impl Vars {
    /// Sets (or with `None`/empty, deletes) a variable; a set moves it to the end.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        self.0.retain(|(n, _)| n != name);
        if let Some(v) = value {
            if !v.is_empty() {
                self.0.push((name.to_string(), v.to_string()));
            }
        }
    }

    /// Sets a variable.
    pub fn put(&mut self, name: &str, value: impl AsRef<str>) {
        self.set(name, Some(value.as_ref()));
    }

    /// Deletes a variable.
    pub fn del(&mut self, name: &str) {
        self.0.retain(|(n, _)| n != name);
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All variables in order.
    pub fn iter(&self) -> impl Iterator<Item = &(String, String)> {
        self.0.iter()
    }
}

/// Caller-profile time stamps (µs since the epoch, 0 = not reached).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Times {
    pub profile_created: i64,
    pub created: i64,
    pub answered: i64,
    pub progress: i64,
    pub progress_media: i64,
    pub hangup: i64,
    pub transfer: i64,
    pub resurrect: i64,
    pub bridged: i64,
    pub last_hold: i64,
    pub hold_accum: i64,
}

/// A caller profile (`Caller-*` / `Other-Leg-*` headers).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Profile {
    pub direction: String,
    pub logical_direction: String,
    pub username: String,
    pub dialplan: String,
    pub caller_id_name: String,
    pub caller_id_number: String,
    pub orig_caller_id_name: String,
    pub orig_caller_id_number: String,
    pub callee_id_name: String,
    pub callee_id_number: String,
    pub network_addr: String,
    pub ani: String,
    pub destination_number: String,
    pub uuid: String,
    pub source: String,
    pub transfer_source: String,
    pub context: String,
    pub rdnis: String,
    pub channel_name: String,
    /// `None` for other-leg profiles (FreeSWITCH prints no index for them).
    pub profile_index: Option<u32>,
    pub times: Times,
}

impl Profile {
    /// Appends the profile's headers with `prefix` (`Caller` or `Other-Leg`).
    pub fn push_headers(&self, prefix: &str, out: &mut Vec<(String, String)>) {
        let mut add = |name: &str, value: &str| {
            if !value.is_empty() {
                out.push((format!("{prefix}-{name}"), value.to_string()));
            }
        };
        add("Direction", &self.direction);
        add("Logical-Direction", &self.logical_direction);
        add("Username", &self.username);
        add("Dialplan", &self.dialplan);
        add("Caller-ID-Name", &self.caller_id_name);
        add("Caller-ID-Number", &self.caller_id_number);
        add("Orig-Caller-ID-Name", &self.orig_caller_id_name);
        add("Orig-Caller-ID-Number", &self.orig_caller_id_number);
        add("Callee-ID-Name", &self.callee_id_name);
        add("Callee-ID-Number", &self.callee_id_number);
        add("Network-Addr", &self.network_addr);
        add("ANI", &self.ani);
        add("Destination-Number", &self.destination_number);
        add("Unique-ID", &self.uuid);
        add("Source", &self.source);
        add("Transfer-Source", &self.transfer_source);
        add("Context", &self.context);
        add("RDNIS", &self.rdnis);
        add("Channel-Name", &self.channel_name);
        if let Some(i) = self.profile_index {
            add("Profile-Index", &i.to_string());
        }
        let t = &self.times;
        add("Profile-Created-Time", &t.profile_created.to_string());
        add("Channel-Created-Time", &t.created.to_string());
        add("Channel-Answered-Time", &t.answered.to_string());
        add("Channel-Progress-Time", &t.progress.to_string());
        add("Channel-Progress-Media-Time", &t.progress_media.to_string());
        add("Channel-Hangup-Time", &t.hangup.to_string());
        add("Channel-Transfer-Time", &t.transfer.to_string());
        add("Channel-Resurrect-Time", &t.resurrect.to_string());
        add("Channel-Bridged-Time", &t.bridged.to_string());
        add("Channel-Last-Hold", &t.last_hold.to_string());
        add("Channel-Hold-Accum", &t.hold_accum.to_string());
        add("Screen-Bit", "true");
        add("Privacy-Hide-Name", "false");
        add("Privacy-Hide-Number", "false");
    }
}

/// Call direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    /// `inbound` / `outbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// The application a channel is running.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunningApp {
    pub name: String,
    pub data: String,
    pub uuid: String,
}

/// The simulated SIP peer of a channel (what sofia would know about it).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SipPeer {
    /// `host:port` of the far end.
    pub host: String,
    pub port: u16,
    /// The far end's user part (inbound: From user; outbound: request user).
    pub user: String,
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: String,
    pub local_media_port: u16,
    pub remote_media_port: u16,
    pub ssrc: u32,
}

/// One channel.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Channel {
    pub uuid: String,
    pub name: String,
    pub direction: Direction,
    /// `Channel-State` (running state name).
    pub running_state: &'static str,
    /// `Channel-State-Number`.
    pub state_number: u8,
    /// `Channel-Call-State` as the next event shows it.
    pub callstate: &'static str,
    /// `Answer-State`.
    pub answer_state: &'static str,
    pub hit_dialplan: bool,
    /// Codec headers present (media negotiated).
    pub has_media: bool,
    pub profile: Profile,
    /// The caller profile as the channel was created (`show channels`'
    /// `initial_*` columns).
    pub initial: Profile,
    /// `Other-Type` and the linked profile.
    pub other: Option<(&'static str, Profile)>,
    #[serde(serialize_with = "ser_cause")]
    pub hangup_cause: Option<HangupCause>,
    pub vars: Vars,
    pub current_app: Option<RunningApp>,
    /// The bridged partner.
    pub partner: Option<String>,
    /// Hangup has started (uuid_* commands no longer find the channel).
    pub hanging_up: bool,
    pub created_us: i64,
    pub sip: SipPeer,
    /// Creation order, for listings.
    pub serial: u64,
    /// Ring-ready already signalled.
    pub progressed: bool,
    /// When the channel was bridged (µs), 0 if never.
    pub bridged_us: i64,
    /// The last application run and its argument.
    pub last_app: Option<(String, String)>,
}

impl Channel {
    /// `Channel-Call-UUID`: the `call_uuid` variable, else the channel's own.
    pub fn call_uuid(&self) -> String {
        self.vars.get("call_uuid").unwrap_or(&self.uuid).to_string()
    }

    /// Answered (or hanging up after an answer).
    pub fn answered(&self) -> bool {
        self.profile.times.answered != 0
    }
}

fn ser_cause<S: serde::Serializer>(c: &Option<HangupCause>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => s.serialize_some(c.name()),
        None => s.serialize_none(),
    }
}
