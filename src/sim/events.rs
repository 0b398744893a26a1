//! Which headers each simulated event carries, and in which order, matching
//! the recordings in `shared/esl/captures/`: the channel-data block
//! (`Channel-*`, `Answer-State`, `Hangup-Cause`, codecs, `Caller-*`,
//! `Other-Leg-*`, `variable_*`), the event-specific headers around it, the
//! calling file/function/line FreeSWITCH reports, BACKGROUND_JOB and
//! HEARTBEAT.
//!
//! It renders state into `bus::Event`s; it must not change channel state.

use super::bus::{uptime_text, Bus, Event};
use super::channel::{Channel, RunningApp};

/// The channel events the simulator fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChanEvent {
    Create,
    Progress,
    ProgressMedia,
    Answer,
    Execute,
    ExecuteComplete,
    Park,
    Unpark,
    Bridge,
    Unbridge,
    Hangup,
    HangupComplete,
    Destroy,
}

impl ChanEvent {
    fn name(self) -> &'static str {
        match self {
            ChanEvent::Create => "CHANNEL_CREATE",
            ChanEvent::Progress => "CHANNEL_PROGRESS",
            ChanEvent::ProgressMedia => "CHANNEL_PROGRESS_MEDIA",
            ChanEvent::Answer => "CHANNEL_ANSWER",
            ChanEvent::Execute => "CHANNEL_EXECUTE",
            ChanEvent::ExecuteComplete => "CHANNEL_EXECUTE_COMPLETE",
            ChanEvent::Park => "CHANNEL_PARK",
            ChanEvent::Unpark => "CHANNEL_UNPARK",
            ChanEvent::Bridge => "CHANNEL_BRIDGE",
            ChanEvent::Unbridge => "CHANNEL_UNBRIDGE",
            ChanEvent::Hangup => "CHANNEL_HANGUP",
            ChanEvent::HangupComplete => "CHANNEL_HANGUP_COMPLETE",
            ChanEvent::Destroy => "CHANNEL_DESTROY",
        }
    }

    fn origin(self) -> (&'static str, &'static str, u32) {
        match self {
            ChanEvent::Create => (
                "switch_core_state_machine.c",
                "switch_core_session_run",
                626,
            ),
            ChanEvent::Progress => (
                "switch_channel.c",
                "switch_channel_perform_mark_ring_ready_value",
                3507,
            ),
            ChanEvent::ProgressMedia => (
                "switch_channel.c",
                "switch_channel_perform_mark_pre_answered",
                3666,
            ),
            ChanEvent::Answer => (
                "switch_channel.c",
                "switch_channel_perform_mark_answered",
                3848,
            ),
            ChanEvent::Execute => ("switch_core_session.c", "switch_core_session_exec", 2949),
            ChanEvent::ExecuteComplete => {
                ("switch_core_session.c", "switch_core_session_exec", 2972)
            }
            ChanEvent::Park => ("switch_ivr.c", "switch_ivr_park", 1002),
            ChanEvent::Unpark => ("switch_ivr.c", "switch_ivr_park", 1213),
            ChanEvent::Bridge => (
                "switch_ivr_bridge.c",
                "switch_ivr_multi_threaded_bridge",
                1689,
            ),
            ChanEvent::Unbridge => (
                "switch_ivr_bridge.c",
                "switch_ivr_multi_threaded_bridge",
                1879,
            ),
            ChanEvent::Hangup => ("switch_channel.c", "switch_channel_perform_hangup", 3447),
            ChanEvent::HangupComplete => (
                "switch_core_state_machine.c",
                "switch_core_session_reporting_state",
                943,
            ),
            ChanEvent::Destroy => (
                "switch_core_session.c",
                "switch_core_session_perform_destroy",
                1588,
            ),
        }
    }
}

/// Extra data for EXECUTE/EXECUTE_COMPLETE and BRIDGE/UNBRIDGE.
#[derive(Debug, Clone, Default)]
pub struct Extra<'a> {
    /// The application (EXECUTE, EXECUTE_COMPLETE).
    pub app: Option<&'a RunningApp>,
    /// `Application-Response` (EXECUTE_COMPLETE).
    pub response: Option<&'a str>,
    /// Bridge A and B uuids (BRIDGE, UNBRIDGE).
    pub bridge: Option<(&'a str, &'a str)>,
}

/// Renders a channel event.
pub fn channel_event(bus: &Bus, ch: &Channel, kind: ChanEvent, extra: &Extra<'_>) -> Event {
    let (file, func, line) = kind.origin();
    let mut ev = bus.new_event(kind.name(), file, func, line);
    let h = &mut ev.headers;
    let mut add = |n: &str, v: &str| h.push((n.to_string(), v.to_string()));
    if kind == ChanEvent::HangupComplete {
        if let Some(c) = ch.hangup_cause {
            add("Hangup-Cause", c.name());
        }
    }
    if let Some((a, b)) = extra.bridge {
        add("Bridge-A-Unique-ID", a);
        add("Bridge-B-Unique-ID", b);
    }
    add("Channel-State", ch.running_state);
    add("Channel-Call-State", ch.callstate);
    add("Channel-State-Number", &ch.state_number.to_string());
    add("Channel-Name", &ch.name);
    add("Unique-ID", &ch.uuid);
    add("Call-Direction", ch.direction.as_str());
    add("Presence-Call-Direction", ch.direction.as_str());
    add(
        "Channel-HIT-Dialplan",
        if ch.hit_dialplan { "true" } else { "false" },
    );
    add("Channel-Call-UUID", &ch.call_uuid());
    add("Answer-State", ch.answer_state);
    if let Some(c) = ch.hangup_cause {
        add("Hangup-Cause", c.name());
    }
    if ch.has_media {
        add("Channel-Read-Codec-Name", "PCMU");
        add("Channel-Read-Codec-Rate", "8000");
        add("Channel-Read-Codec-Bit-Rate", "64000");
        add("Channel-Write-Codec-Name", "PCMU");
        add("Channel-Write-Codec-Rate", "8000");
        add("Channel-Write-Codec-Bit-Rate", "64000");
    }
    ch.profile.push_headers("Caller", h);
    if let Some((ty, other)) = &ch.other {
        h.push(("Other-Type".to_string(), ty.to_string()));
        other.push_headers("Other-Leg", h);
    }
    for (n, v) in ch.vars.iter() {
        h.push((format!("variable_{n}"), v.clone()));
    }
    if let Some(app) = extra.app {
        h.push(("Application".to_string(), app.name.clone()));
        if !app.data.is_empty() {
            h.push(("Application-Data".to_string(), app.data.clone()));
        }
        if let Some(r) = extra.response {
            h.push(("Application-Response".to_string(), r.to_string()));
        }
        h.push(("Application-UUID".to_string(), app.uuid.clone()));
    }
    ev
}

/// The BACKGROUND_JOB event of a `bgapi`.
pub fn background_job(bus: &Bus, job_uuid: &str, cmd: &str, arg: &str, output: &str) -> Event {
    let mut ev = bus.new_event("BACKGROUND_JOB", "mod_event_socket.c", "api_exec", 1580);
    ev.add("Job-UUID", job_uuid);
    ev.add("Job-Command", cmd);
    if !arg.is_empty() {
        ev.add("Job-Command-Arg", arg);
    }
    if !output.is_empty() {
        ev.body = Some(output.to_string());
    }
    ev
}

/// Session counters shown by HEARTBEAT and `status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionStats {
    pub count: usize,
    pub since_startup: u64,
    pub peak: usize,
}

/// FreeSWITCH's version string in HEARTBEAT.
pub const VERSION: &str = "1.11.3-dev~64bit";

/// A HEARTBEAT event.
pub fn heartbeat(bus: &Bus, stats: SessionStats) -> Event {
    let mut ev = bus.new_event("HEARTBEAT", "switch_core.c", "send_heartbeat", 95);
    let up = bus.clock.uptime_us();
    ev.add("Event-Info", "System Ready");
    ev.add("Up-Time", uptime_text(up));
    ev.add("FreeSWITCH-Version", VERSION);
    ev.add("Uptime-msec", (up / 1000).to_string());
    ev.add("Session-Count", stats.count.to_string());
    ev.add("Max-Sessions", "1000");
    ev.add("Session-Per-Sec", "30");
    ev.add("Session-Per-Sec-Last", "0");
    ev.add("Session-Per-Sec-Max", "0");
    ev.add("Session-Per-Sec-FiveMin", "0");
    ev.add("Session-Since-Startup", stats.since_startup.to_string());
    ev.add("Session-Peak-Max", stats.peak.to_string());
    ev.add("Session-Peak-FiveMin", stats.peak.to_string());
    ev.add("Idle-CPU", "98.933333");
    ev
}

/// The `status` API text.
pub fn status_text(bus: &Bus, stats: SessionStats) -> String {
    format!(
        "UP {}\nFreeSWITCH (Version 1.11.3-dev  64bit) is ready\n{} session(s) since startup\n{} session(s) - peak {}, last 5min {} \n0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n1000 session(s) max\nmin idle cpu 0.00/98.93\nCurrent Stack Size/Max 240K/8192K\n",
        uptime_text(bus.clock.uptime_us()),
        stats.since_startup,
        stats.count,
        stats.peak,
        stats.peak
    )
}
