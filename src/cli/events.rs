//! `fsgate events`: tail a FreeSWITCH node's events, one line each.
//!
//! The first user of the ESL connection and node supervisor: it connects,
//! subscribes, and prints the headers an operator looks at. A wrong password
//! or an unreachable switch at start is a clear error and a non-zero exit; a
//! switch that goes away later is reconnected to, with a notice on stderr.

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

    let mut config = NodeConfig::new("fs", args.connect.clone(), ConnectOptions::new(password));
    config.format = format;
    config.events = subscribe;
    let (tx, mut rx) = mpsc::channel(1024);
    let node = Node::spawn(config, tx);
    let mut state = node.handle().watch_state();
    let mut connected_once = false;
    let mut printed = 0u64;
    let mut stdout = std::io::stdout().lock();
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
            msg = rx.recv() => {
                let Some(msg) = msg else { return Err("the node supervisor stopped".into()) };
                match msg {
                    NodeEvent::Connected { reconnects, .. } => {
                        connected_once = true;
                        if reconnects > 0 {
                            eprintln!("fsgate events: reconnected to {}", args.connect);
                        }
                    }
                    NodeEvent::Disconnected { reason, .. } => {
                        eprintln!("fsgate events: connection to {} lost ({reason}); reconnecting", args.connect);
                    }
                    NodeEvent::Lagged { dropped, .. } => {
                        eprintln!("fsgate events: {dropped} events dropped (output too slow)");
                    }
                    NodeEvent::Failed { error, .. } => return Err(error),
                    NodeEvent::Event { event, .. } => {
                        let name = event.name().unwrap_or_default().into_owned();
                        if !show_all && !args.events.contains(&name) {
                            continue;
                        }
                        if writeln!(stdout, "{}", format_line(&event)).is_err() {
                            return Ok(()); // stdout closed (a pipe into head, say)
                        }
                        let _ = stdout.flush();
                        printed += 1;
                        if args.count.is_some_and(|n| printed >= n) {
                            node.shutdown().await;
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}

/// One line per event: name, the channel (or job) it concerns, and the
/// headers an operator looks at, as `key=value`.
pub fn format_line(event: &Event) -> String {
    let name = event.name().unwrap_or_default();
    let id = event
        .unique_id()
        .or_else(|| event.job_uuid())
        .unwrap_or(std::borrow::Cow::Borrowed("-"));
    let mut line = format!("{name} {id}");
    let fields = [
        ("dir", "Call-Direction"),
        ("from", "Caller-Caller-ID-Number"),
        ("to", "Caller-Destination-Number"),
        ("state", "Answer-State"),
        ("app", "Application"),
        ("data", "Application-Data"),
        ("other", "Other-Leg-Unique-ID"),
        ("cause", "Hangup-Cause"),
    ];
    for (key, header) in fields {
        if let Some(value) = event.get(header) {
            line.push_str(&format!(" {key}={}", quote(&value)));
        }
    }
    if let Some(body) = event.body_text() {
        let first = body.lines().next().unwrap_or_default();
        line.push_str(&format!(" body={}", quote(first)));
    }
    line
}

fn quote(value: &str) -> String {
    if !value.is_empty()
        && !value.contains(|c: char| c.is_whitespace() || c == '"' || c.is_control())
    {
        value.to_owned()
    } else {
        format!("{value:?}")
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
