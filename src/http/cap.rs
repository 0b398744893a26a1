//! The connection cap: how many connections may be open, and what happens
//! to one over it.
//!
//! This module owns the counting: at most `max` connections at once, of which
//! sources that may not use the reserve ("general" ones) get at most
//! `max - reserved`, so that loopback and `http.dialplan_allow` (FreeSWITCH's
//! route lookup) always find a place. A connection over the cap is answered
//! 503 `overloaded` in the error envelope with `Retry-After: 1` and closed,
//! or closed at once when [`OVERFLOW_ANSWERS`] such answers are already
//! pending, so refusing never waits and holds few file descriptors. Which
//! source may use the reserve is [`super::listener::Limits`]' business.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::ApiError;
use super::listener::{CONNECTIONS_OPEN, MAX_HEAD_BYTES};

/// How many 503 `overloaded` answers may be pending at once; past that, a
/// connection over the cap is closed without an answer.
pub const OVERFLOW_ANSWERS: usize = 64;
/// How long an overflow answer waits for the request head, and then for the
/// client to close after the answer.
const OVERFLOW_WAIT: Duration = Duration::from_secs(1);

/// Open connections: all of them, and those from sources that may not use
/// the reserve ("general"). A general connection needs a free general place
/// and a free place overall; any other only a free place overall.
pub(super) struct Slots {
    open: AtomicUsize,
    general_open: AtomicUsize,
    pub(super) max: usize,
    pub(super) general: usize,
}

/// One open connection's place under the cap; freed on drop.
pub(super) struct Slot {
    slots: Arc<Slots>,
    general: bool,
}

impl Slots {
    pub(super) fn new(max: usize, reserved: usize) -> Arc<Slots> {
        Arc::new(Slots {
            open: AtomicUsize::new(0),
            general_open: AtomicUsize::new(0),
            max,
            general: max.saturating_sub(reserved),
        })
    }

    /// A place for a connection that may (or may not) use the reserve.
    pub(super) fn take(self: &Arc<Self>, may_use_reserve: bool) -> Option<Slot> {
        let general = !may_use_reserve;
        if general && !increment_below(&self.general_open, self.general) {
            return None;
        }
        if !increment_below(&self.open, self.max) {
            if general {
                self.general_open.fetch_sub(1, Ordering::AcqRel);
            }
            return None;
        }
        metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
        Some(Slot {
            slots: self.clone(),
            general,
        })
    }
}

fn increment_below(counter: &AtomicUsize, limit: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.open.fetch_sub(1, Ordering::AcqRel);
        if self.general {
            self.slots.general_open.fetch_sub(1, Ordering::AcqRel);
        }
        metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// Answers a connection over the cap with 503 `overloaded` when few such
/// answers are pending, else closes it at once (by dropping it).
pub(super) fn overflow_answer(stream: TcpStream, pending: &Arc<AtomicUsize>) {
    let taken = pending
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < OVERFLOW_ANSWERS).then_some(n + 1)
        })
        .is_ok();
    if !taken {
        return;
    }
    let pending = pending.clone();
    tokio::spawn(async move {
        answer_overloaded(stream).await;
        pending.fetch_sub(1, Ordering::AcqRel);
    });
}

/// Reads the request head (briefly), answers 503 and closes after the
/// client has (briefly) had the chance to read it.
async fn answer_overloaded(mut stream: TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    let read_head = async {
        while head.len() < MAX_HEAD_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
            if memchr::memmem::find(&head, b"\r\n\r\n").is_some() {
                break;
            }
        }
        true
    };
    if !tokio::time::timeout(OVERFLOW_WAIT, read_head)
        .await
        .unwrap_or(true)
    {
        return;
    }
    let answered = tokio::time::timeout(OVERFLOW_WAIT, async {
        stream.write_all(overloaded_response()).await?;
        stream.shutdown().await
    })
    .await;
    if matches!(answered, Ok(Ok(()))) {
        // Read until the client closes so that closing does not reset the
        // connection before it has read the answer.
        let _ = tokio::time::timeout(OVERFLOW_WAIT, async {
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

fn overloaded_response() -> &'static [u8] {
    static RESPONSE: OnceLock<Vec<u8>> = OnceLock::new();
    RESPONSE.get_or_init(|| {
        let error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many connections are open; retry shortly",
        );
        let body = serde_json::to_vec(&error.envelope()).unwrap_or_default();
        let mut out = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn general_connections_leave_the_reserve_free() {
        let slots = Slots::new(3, 1);
        let a = slots.take(false).unwrap();
        let _b = slots.take(false).unwrap();
        assert!(slots.take(false).is_none(), "the reserve is not general");
        let c = slots.take(true).unwrap();
        assert!(slots.take(true).is_none(), "the cap is reached");
        drop(c);
        assert!(slots.take(false).is_none(), "still two general ones open");
        drop(a);
        let _a = slots.take(false).unwrap();

        // Reserve-eligible connections may take general places too, and
        // then the cap stops general ones.
        let slots = Slots::new(3, 1);
        let _x = slots.take(true).unwrap();
        let _y = slots.take(true).unwrap();
        let _g = slots.take(false).unwrap();
        assert!(slots.take(false).is_none());
        assert!(slots.take(true).is_none());
        assert_eq!(slots.general_open.load(Ordering::Acquire), 1);
    }

    #[test]
    fn the_overload_answer_is_the_envelope() {
        let text = String::from_utf8(overloaded_response().to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "overloaded");
    }
}
