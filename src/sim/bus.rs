//! The simulated switch's event core: the Core-UUID of this run, the one
//! global `Event-Sequence` counter, the clock every timestamp comes from, the
//! standard headers FreeSWITCH puts on every event, and the fan-out of each
//! fired event to every connected client's bounded queue (with the per-client
//! drop accounting of mod_event_socket).
//!
//! It must not know about channels or the socket protocol: it takes finished
//! header lists and hands `Arc<Event>`s to client queues.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Local, TimeZone, Utc};
use tokio::sync::{mpsc, Notify};

use super::subs::Subscriptions;

/// One fired event (shared by every client that receives it).
#[derive(Debug, Clone)]
pub struct Event {
    /// `Event-Name`.
    pub name: String,
    /// `Event-Subclass` for CUSTOM events.
    pub subclass: Option<String>,
    /// Every header, in FreeSWITCH order (standard headers first).
    pub headers: Vec<(String, String)>,
    /// The body (BACKGROUND_JOB output …).
    pub body: Option<String>,
}

impl Event {
    /// First header by name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Appends a header.
    pub fn add(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_string(), value.into()));
    }
}

/// The one clock of a simulator: wall-clock epoch at start plus tokio's
/// monotonic time since (so paused tokio time moves timestamps too).
#[derive(Debug, Clone)]
pub struct Clock {
    start: tokio::time::Instant,
    start_epoch_us: i64,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        Clock {
            start: tokio::time::Instant::now(),
            start_epoch_us: now,
        }
    }

    /// Microseconds since the Unix epoch.
    pub fn now_us(&self) -> i64 {
        self.start_epoch_us + self.start.elapsed().as_micros() as i64
    }

    /// Microseconds since the simulator started.
    pub fn uptime_us(&self) -> i64 {
        self.start.elapsed().as_micros() as i64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// `YYYY-MM-DD HH:MM:SS` in local time (Event-Date-Local, *_stamp variables).
pub fn local_stamp(us: i64) -> String {
    match Local.timestamp_micros(us) {
        chrono::LocalResult::Single(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        _ => String::new(),
    }
}

fn gmt_stamp(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

/// FreeSWITCH's `Up-Time` / `status` text.
pub fn uptime_text(us: i64) -> String {
    let us = us.max(0);
    let micro = us % 1000;
    let ms = (us / 1000) % 1000;
    let secs = us / 1_000_000;
    let s = secs % 60;
    let m = (secs / 60) % 60;
    let h = (secs / 3600) % 24;
    let d = (secs / 86400) % 365;
    let y = secs / (86400 * 365);
    format!("{y} years, {d} days, {h} hours, {m} minutes, {s} seconds, {ms} milliseconds, {micro} microseconds")
}

/// One connected client as the bus sees it.
#[derive(Debug)]
pub struct ClientSink {
    /// Client number (per run).
    pub id: u64,
    /// Peer address.
    pub peer: SocketAddr,
    /// Subscriptions, format and filters.
    pub subs: Mutex<Subscriptions>,
    /// Whether the client authenticated.
    pub authed: AtomicBool,
    tx: mpsc::Sender<Arc<Event>>,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Events queued for the client.
    pub queued: AtomicU64,
    consecutive_drops: AtomicU64,
    /// Set when the client must be disconnected (lost events, fault).
    pub kill: Notify,
    /// The text of the disconnect notice when killed.
    pub kill_reason: Mutex<Option<String>>,
}

impl ClientSink {
    /// Asks the session to close with a disconnect notice carrying `text`.
    pub fn kill_with(&self, text: &str) {
        *self.kill_reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(text.to_string());
        self.kill.notify_one();
    }
}

/// Consecutive drops after which FreeSWITCH kills a listener.
pub const MAX_MISSED: u64 = 500;

/// Standard-header data and the fan-out.
#[derive(Debug)]
pub struct Bus {
    /// Core-UUID of this run.
    pub core_uuid: String,
    /// `FreeSWITCH-Hostname` / `-Switchname`.
    pub switchname: String,
    /// `FreeSWITCH-IPv4`.
    pub ipv4: String,
    /// The clock.
    pub clock: Clock,
    seq: AtomicU64,
    next_client: AtomicU64,
    queue_len: usize,
    clients: Mutex<Vec<Arc<ClientSink>>>,
}

impl Bus {
    /// A bus for one simulator run.
    pub fn new(switchname: String, queue_len: usize) -> Bus {
        Bus {
            core_uuid: uuid::Uuid::new_v4().to_string(),
            switchname,
            ipv4: "127.0.0.1".to_string(),
            clock: Clock::new(),
            seq: AtomicU64::new(0),
            next_client: AtomicU64::new(1),
            queue_len: queue_len.max(1),
            clients: Mutex::new(Vec::new()),
        }
    }

    /// A new event with the standard headers; the sequence number is taken now.
    pub fn new_event(&self, name: &str, file: &str, func: &str, line: u32) -> Event {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let now = self.clock.now_us();
        let mut headers = Vec::with_capacity(64);
        let mut add = |n: &str, v: String| headers.push((n.to_string(), v));
        add("Event-Name", name.to_string());
        add("Core-UUID", self.core_uuid.clone());
        add("FreeSWITCH-Hostname", self.switchname.clone());
        add("FreeSWITCH-Switchname", self.switchname.clone());
        add("FreeSWITCH-IPv4", self.ipv4.clone());
        add("FreeSWITCH-IPv6", "::1".to_string());
        add("Event-Date-Local", local_stamp(now));
        add("Event-Date-GMT", gmt_stamp(now));
        add("Event-Date-Timestamp", now.to_string());
        add("Event-Calling-File", file.to_string());
        add("Event-Calling-Function", func.to_string());
        add("Event-Calling-Line-Number", line.to_string());
        add("Event-Sequence", seq.to_string());
        Event {
            name: name.to_string(),
            subclass: None,
            headers,
            body: None,
        }
    }

    /// Delivers the event to every client that wants it.
    pub fn fire(&self, ev: Event) {
        let ev = Arc::new(ev);
        let clients = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for c in clients {
            if !c.authed.load(Ordering::Relaxed) {
                continue;
            }
            let wants = c.subs.lock().unwrap_or_else(|e| e.into_inner()).wants(
                &ev.name,
                ev.subclass.as_deref(),
                &ev.headers,
            );
            if !wants {
                continue;
            }
            match c.tx.try_send(ev.clone()) {
                Ok(()) => {
                    c.queued.fetch_add(1, Ordering::Relaxed);
                    c.consecutive_drops.store(0, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    c.dropped.fetch_add(1, Ordering::Relaxed);
                    let n = c.consecutive_drops.fetch_add(1, Ordering::Relaxed) + 1;
                    if n > MAX_MISSED {
                        c.kill_with("killed listener because of lost events\n");
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Registers a client; returns its sink and the receiving end of its queue.
    pub fn register(&self, peer: SocketAddr) -> (Arc<ClientSink>, mpsc::Receiver<Arc<Event>>) {
        let (tx, rx) = mpsc::channel(self.queue_len);
        let sink = Arc::new(ClientSink {
            id: self.next_client.fetch_add(1, Ordering::Relaxed),
            peer,
            subs: Mutex::new(Subscriptions::default()),
            authed: AtomicBool::new(false),
            tx,
            dropped: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            consecutive_drops: AtomicU64::new(0),
            kill: Notify::new(),
            kill_reason: Mutex::new(None),
        });
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sink.clone());
        (sink, rx)
    }

    /// Removes a client.
    pub fn unregister(&self, id: u64) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|c| c.id != id);
    }

    /// Every connected client.
    pub fn clients(&self) -> Vec<Arc<ClientSink>> {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_text_like_freeswitch() {
        assert_eq!(
            uptime_text(9_249_792),
            "0 years, 0 days, 0 hours, 0 minutes, 9 seconds, 249 milliseconds, 792 microseconds"
        );
    }

    #[tokio::test]
    async fn sequence_is_global_and_queue_is_bounded() {
        let bus = Bus::new("vm".into(), 2);
        let (c, mut rx) = bus.register("127.0.0.1:1".parse().unwrap());
        c.authed.store(true, Ordering::Relaxed);
        c.subs.lock().unwrap().event("HEARTBEAT");
        for _ in 0..3 {
            let e = bus.new_event("HEARTBEAT", "switch_core.c", "send_heartbeat", 95);
            bus.fire(e);
        }
        assert_eq!(c.dropped.load(Ordering::Relaxed), 1);
        let a = rx.recv().await.unwrap();
        let b = rx.recv().await.unwrap();
        assert_eq!(a.header("Event-Sequence"), Some("1"));
        assert_eq!(b.header("Event-Sequence"), Some("2"));
    }
}
