//! Fault injection and the record of what clients sent: drop every ESL
//! connection, stall replies, send one malformed frame, stop reading client
//! commands for a while; and the log of every command line received (for
//! tests asserting "the simulator received nothing").
//!
//! Shared state only; the ESL sessions (`server`) consult it and the control
//! API sets it. It must not do I/O.

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

/// Fault switches shared by all sessions.
#[derive(Debug)]
pub struct Faults {
    /// Bumped to make every session drop its connection.
    pub drop_gen: watch::Sender<u64>,
    /// Bumped to make every session write one malformed frame.
    pub malformed_gen: watch::Sender<u64>,
    stall_until: Mutex<Option<Instant>>,
    /// Until when sessions stop reading commands (None: reading).
    pub stop_reading: watch::Sender<Option<Instant>>,
    received: Mutex<Vec<Received>>,
}

/// One command line a client sent.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    /// Client number.
    pub client: u64,
    /// Client address.
    pub peer: String,
    /// The command line (for `auth`, the password is masked).
    pub line: String,
    /// Header names and values sent with the command.
    pub headers: Vec<(String, String)>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            drop_gen: watch::channel(0).0,
            malformed_gen: watch::channel(0).0,
            stall_until: Mutex::new(None),
            stop_reading: watch::channel(None).0,
            received: Mutex::new(Vec::new()),
        }
    }
}

impl Faults {
    /// Drops every ESL connection (no disconnect notice, like a network loss).
    pub fn drop_connections(&self) {
        self.drop_gen.send_modify(|g| *g += 1);
    }

    /// Sends one malformed frame to every client.
    pub fn malformed_frame(&self) {
        self.malformed_gen.send_modify(|g| *g += 1);
    }

    /// Delays every reply written during the next `d`.
    pub fn stall(&self, d: Duration) {
        *self.stall_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + d);
    }

    /// When a reply must wait until.
    pub fn stalled_until(&self) -> Option<Instant> {
        let g = self.stall_until.lock().unwrap_or_else(|e| e.into_inner());
        g.filter(|t| *t > Instant::now())
    }

    /// Stops reading commands for `d` (None: until cleared).
    pub fn stop_reading_for(&self, d: Option<Duration>) {
        let until = Instant::now() + d.unwrap_or(Duration::from_secs(365 * 24 * 3600));
        self.stop_reading.send_replace(Some(until));
    }

    /// Clears stall and stop-reading.
    pub fn clear(&self) {
        *self.stall_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.stop_reading.send_replace(None);
    }

    /// Records a received command.
    pub fn record(&self, r: Received) {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r);
    }

    /// Every received command so far.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the received commands.
    pub fn clear_received(&self) {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stall_expires() {
        let f = Faults::default();
        assert!(f.stalled_until().is_none());
        f.stall(Duration::from_millis(100));
        assert!(f.stalled_until().is_some());
        tokio::time::advance(Duration::from_millis(150)).await;
        assert!(f.stalled_until().is_none());
        let rx = f.drop_gen.subscribe();
        f.drop_connections();
        assert!(rx.has_changed().unwrap());
        f.stop_reading_for(None);
        assert!(f.stop_reading.borrow().is_some());
        f.clear();
        assert!(f.stop_reading.borrow().is_none());
    }
}
