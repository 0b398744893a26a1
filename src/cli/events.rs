//! `fsgate events`: tail a FreeSWITCH node's events, one line each.
//!
//! The first user of the ESL connection and node supervisor: it connects,
//! subscribes, and prints the headers an operator looks at. A wrong password
//! or an unreachable switch at start is a clear error and a non-zero exit; a
//! switch that goes away later is reconnected to, with a notice on stderr.
//! Lines are written a batch at a time and flushed whenever no event waits;
//! events the output cannot keep up with are dropped by the connection's
//! bounded queue and reported on stderr.

use std::io::Write;
use std::process::ExitCode;

use tokio::sync::mpsc;

use crate::esl::command::{EventName, Password};
use crate::esl::connection::ConnectOptions;
use crate::esl::node::{Node, NodeConfig, NodeEvent, NodeState};
use crate::esl::{Event, EventFormat};

/// Arguments of `fsgate events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Address of FreeSWITCH's event socket (host:port).
    #[arg(long, default_value = "127.0.0.1:8021")]
    pub connect: String,
    /// ESL password (event_socket.conf.xml).
    #[arg(
        long,
        default_value = "ClueCon",
        env = "FSGATE_ESL_PASSWORD",
        hide_env_values = true
    )]
    pub password: String,
    /// Event format to subscribe with.
    #[arg(long, value_parser = ["plain", "json"], default_value = "json")]
    pub format: String,
    /// Exit after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Event names to show (for example CHANNEL_ANSWER); all events when none.
    pub events: Vec<String>,
}

/// Runs the tail; returns the process exit code.
pub async fn run(args: EventsArgs) -> ExitCode {
    match tail(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fsgate events: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn tail(args: EventsArgs) -> Result<(), String> {
    let password = Password::new(&args.password).map_err(|e| e.to_string())?;
    let format: EventFormat = args.format.parse()?;
    let wanted: Vec<EventName> = args
        .events
        .iter()
        .map(|n| EventName::new(n).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    // HEARTBEAT keeps the liveness check fed even when the asked-for events
    // are rare; it is only printed when asked for (or with ALL).
    let mut subscribe = wanted.clone();
    if !subscribe.is_empty() && !args.events.iter().any(|n| n == "HEARTBEAT") {
        subscribe.push(EventName::new("HEARTBEAT").map_err(|e| e.to_string())?);
    }
    let show_all = wanted.is_empty() || args.events.iter().any(|n| n == "ALL");

    let mut connect = ConnectOptions::new(password);
    connect.event_queue_bytes = QUEUE_BYTES;
    let mut config = NodeConfig::new("fs", args.connect.clone(), connect);
    config.format = format;
    config.events = subscribe;
    // Small: events wait in the connection's byte-bounded queue instead.
    let (tx, mut rx) = mpsc::channel(BATCH);
    let node = Node::spawn(config, tx);
    let mut state = node.handle().watch_state();
    let mut connected_once = false;
    let mut printed = 0u64;
    let mut out = Output::new();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            changed = state.changed(), if !connected_once => {
                if changed.is_err() {
                    return Err("the node supervisor stopped".into());
                }
                let now = state.borrow_and_update().clone();
                if let NodeState::Connecting { last_error: Some(error) } = now {
                    node.shutdown().await;
                    return Err(format!("cannot connect to {}: {error}", args.connect));
                }
            }
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return Err("the node supervisor stopped".into());
                }
                for msg in batch.drain(..) {
                    match msg {
                        NodeEvent::Connected { reconnects, .. } => {
                            connected_once = true;
                            if reconnects > 0 {
                                if !out.flush() {
                                return Ok(());
                            }
                                eprintln!("fsgate events: reconnected to {}", args.connect);
                            }
                        }
                        NodeEvent::Disconnected { reason, .. } => {
                            if !out.flush() {
                                return Ok(());
                            }
                            eprintln!(
                                "fsgate events: connection to {} lost ({reason}); reconnecting",
                                args.connect
                            );
                        }
                        NodeEvent::Lagged { dropped, .. } => {
                            if !out.flush() {
                                return Ok(());
                            }
                            eprintln!("fsgate events: {dropped} events dropped (output too slow)");
                        }
                        NodeEvent::Failed { error, .. } => {
                            if !out.flush() {
                                return Ok(());
                            }
                            return Err(error);
                        }
                        NodeEvent::Event { event, .. } => {
                            if !show_all {
                                let name = event.name().unwrap_or_default();
                                if !args.events.iter().any(|n| *n == name) {
                                    continue;
                                }
                            }
                            write_line(&mut out.buf, &event);
                            out.buf.push('\n');
                            printed += 1;
                            if args.count.is_some_and(|n| printed >= n) {
                                let _ = out.flush();
                                node.shutdown().await;
                                return Ok(());
                            }
                            if out.buf.len() >= FLUSH_AT && !out.flush() {
                                return Ok(());
                            }
                        }
                    }
                }
                // Nothing more waiting: show what we have now.
                if rx.is_empty() && !out.flush() {
                    return Ok(());
                }
            }
        }
    }
}

/// The connection's event queue: 8 MiB, far below the daemon's default. Under glibc
/// the queue's memory can sit in two allocator arenas (the reader moves
/// between runtime threads), so the process peaks near 10 MiB plus twice
/// this: under 32 MiB (BENCHMARKS.md, "ESL intake over a socket").
const QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// Messages taken from the node at once (and the node channel's size).
const BATCH: usize = 32;

/// Output is written when this much is buffered, or when no event waits.
const FLUSH_AT: usize = 64 * 1024;

/// Lines for stdout, written a batch at a time: one `write` per batch
/// instead of one per line, and at once whenever the queue runs dry so that
/// an operator still sees events as they happen.
struct Output {
    buf: String,
    stdout: std::io::Stdout,
}

impl Output {
    fn new() -> Output {
        Output {
            buf: String::with_capacity(2 * FLUSH_AT),
            stdout: std::io::stdout(),
        }
    }

    /// Writes what is buffered; false once stdout is closed (a pipe into
    /// head, say), which ends the tail quietly.
    #[must_use]
    fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let mut lock = self.stdout.lock();
        let written = lock
            .write_all(self.buf.as_bytes())
            .and_then(|()| lock.flush());
        self.buf.clear();
        written.is_ok()
    }
}

/// The headers shown after the name and id, as `key=header`.
const FIELDS: [(&str, &str); 8] = [
    ("dir", "Call-Direction"),
    ("from", "Caller-Caller-ID-Number"),
    ("to", "Caller-Destination-Number"),
    ("state", "Answer-State"),
    ("app", "Application"),
    ("data", "Application-Data"),
    ("other", "Other-Leg-Unique-ID"),
    ("cause", "Hangup-Cause"),
];

/// One line per event: name, the channel (or job) it concerns, and the
/// headers an operator looks at, as `key=value`.
pub fn format_line(event: &Event) -> String {
    let mut line = String::new();
    write_line(&mut line, event);
    line
}

/// [`format_line`], appended to `line` (no newline). The headers are found
/// in one pass over the event ([`Event::get_each`]), not one scan per header.
fn write_line(line: &mut String, event: &Event) {
    let [name, unique_id, job_uuid, fields @ ..] = event.get_each([
        "Event-Name",
        "Unique-ID",
        "Job-UUID",
        FIELDS[0].1,
        FIELDS[1].1,
        FIELDS[2].1,
        FIELDS[3].1,
        FIELDS[4].1,
        FIELDS[5].1,
        FIELDS[6].1,
        FIELDS[7].1,
    ]);
    line.push_str(name.as_deref().unwrap_or_default());
    line.push(' ');
    line.push_str(unique_id.or(job_uuid).as_deref().unwrap_or("-"));
    for ((key, _), value) in FIELDS.iter().zip(fields) {
        if let Some(value) = value {
            line.push(' ');
            line.push_str(key);
            line.push('=');
            push_quoted(line, &value);
        }
    }
    if let Some(body) = event.body_text() {
        let first = body.lines().next().unwrap_or_default();
        line.push_str(" body=");
        push_quoted(line, first);
    }
}

fn push_quoted(line: &mut String, value: &str) {
    use std::fmt::Write as _;
    if !value.is_empty()
        && !value.contains(|c: char| c.is_whitespace() || c == '"' || c.is_control())
    {
        line.push_str(value);
    } else {
        let _ = write!(line, "{value:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn line_shows_what_operators_look_at() {
        let e = Event::parse_json(Bytes::from_static(
            br#"{"Event-Name":"CHANNEL_HANGUP","Unique-ID":"u1","Call-Direction":"inbound","Caller-Caller-ID-Number":"+1555","Caller-Caller-ID-Name":"A B","Answer-State":"hangup","Hangup-Cause":"USER_BUSY"}"#,
        ))
        .unwrap();
        assert_eq!(
            format_line(&e),
            "CHANNEL_HANGUP u1 dir=inbound from=+1555 state=hangup cause=USER_BUSY"
        );
        let job = Event::parse_json(Bytes::from_static(
            br#"{"Event-Name":"BACKGROUND_JOB","Job-UUID":"j1","_body":"+OK abc\n"}"#,
        ))
        .unwrap();
        assert_eq!(format_line(&job), "BACKGROUND_JOB j1 body=\"+OK abc\"");
    }
}
