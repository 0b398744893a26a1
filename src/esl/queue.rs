//! The event queue of one inbound connection, between the reader task and
//! the consumer: a deque under a mutex, bounded by **bytes** (each event is
//! charged its body, its header index and a fixed overhead:
//! [`queue_charge`]) and by a count, with one waiter.
//!
//! It never blocks the reader: an event that does not fit is dropped and
//! counted, and the next delivery is a [`Delivery::Lagged`] saying how many
//! were lost, so that the consumer reconciles. A batch of events (everything
//! decoded from one socket read) is queued under one lock with one wake-up.
//! It knows nothing of sockets or of what the events mean.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::connection::{Delivery, Stats};
use super::event::Event;

/// Bytes of index charged per header ([`queue_charge`]): a 20-byte span
/// entry plus the spare capacity of its vector.
const INDEX_BYTES_PER_HEADER: usize = 24;

/// Fixed bytes charged per queued event (its struct and queue slot).
const EVENT_OVERHEAD: usize = 128;

/// What one queued event counts against [`ConnectOptions::event_queue_bytes`]:
/// its body, its header index and a fixed overhead.
pub fn queue_charge(event: &Event) -> usize {
    event.raw().len() + event.len() * INDEX_BYTES_PER_HEADER + EVENT_OVERHEAD
}

/// The event queue between the reader and the consumer: a deque under a
/// mutex, bounded by bytes and by count, with one waiter (the consumer).
pub(super) struct Queue {
    state: Mutex<QueueState>,
    /// Notified whenever deliveries were queued or the queue ended.
    pub(super) ready: Notify,
    max_events: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<(Delivery, usize)>,
    events: usize,
    bytes: usize,
    /// Events dropped since the last one queued.
    lag: u64,
    /// The reader stopped: nothing more will be queued.
    ended: bool,
    /// The consumer went away: events are discarded.
    abandoned: bool,
}

impl Queue {
    pub(super) fn new(max_events: usize, max_bytes: usize) -> Queue {
        Queue {
            state: Mutex::new(QueueState::default()),
            ready: Notify::new(),
            max_events: max_events.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a batch of events in order (dropping what does not fit) and
    /// wakes the consumer once.
    pub(super) fn push(&self, batch: &mut Vec<Event>, stats: &Stats) {
        if batch.is_empty() {
            return;
        }
        let mut q = self.lock();
        if q.abandoned {
            batch.clear();
            return;
        }
        let mut dropped = 0;
        for event in batch.drain(..) {
            let charge = queue_charge(&event);
            let fits =
                q.events == 0 || (q.events < self.max_events && q.bytes + charge <= self.max_bytes);
            if !fits {
                q.lag += 1;
                dropped += 1;
                continue;
            }
            if q.lag > 0 {
                let lag = std::mem::take(&mut q.lag);
                q.items.push_back((Delivery::Lagged(lag), 0));
            }
            q.events += 1;
            q.bytes += charge;
            q.items.push_back((Delivery::Event(event), charge));
        }
        let bytes = q.bytes as u64;
        drop(q);
        if dropped > 0 {
            stats.events_dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        stats.queued_bytes.store(bytes, Ordering::Relaxed);
        stats.peak_queued_bytes.fetch_max(bytes, Ordering::Relaxed);
        self.ready.notify_one();
    }

    /// The reader stopped: let the consumer see the end once it drained,
    /// after a last [`Delivery::Lagged`] if the final events were dropped.
    pub(super) fn end(&self) {
        let mut q = self.lock();
        if q.lag > 0 && !q.abandoned {
            let lag = std::mem::take(&mut q.lag);
            q.items.push_back((Delivery::Lagged(lag), 0));
        }
        q.ended = true;
        drop(q);
        self.ready.notify_one();
    }

    /// The next delivery: `None` when there is none yet, `Some(None)` once
    /// the queue has ended and is empty.
    pub(super) fn take_one(&self, stats: &Stats) -> Option<Option<Delivery>> {
        let mut q = self.lock();
        let Some((delivery, charge)) = q.items.pop_front() else {
            return q.ended.then_some(None);
        };
        q.bytes -= charge;
        q.events -= usize::from(charge > 0);
        stats.queued_bytes.store(q.bytes as u64, Ordering::Relaxed);
        Some(Some(delivery))
    }

    /// Moves up to `limit` deliveries into `out`. `None` when there is none
    /// yet; `Some(0)` once the queue has ended and is empty.
    pub(super) fn take(
        &self,
        out: &mut Vec<Delivery>,
        limit: usize,
        stats: &Stats,
    ) -> Option<usize> {
        let mut q = self.lock();
        if q.items.is_empty() {
            return q.ended.then_some(0);
        }
        let n = q.items.len().min(limit.max(1));
        let mut freed = 0;
        let mut events = 0;
        for (delivery, charge) in q.items.drain(..n) {
            freed += charge;
            events += usize::from(charge > 0);
            out.push(delivery);
        }
        q.bytes -= freed;
        q.events -= events;
        stats.queued_bytes.store(q.bytes as u64, Ordering::Relaxed);
        Some(n)
    }

    /// The byte bound.
    pub(super) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The consumer went away: what waits is discarded, and so is whatever
    /// the reader queues from now on.
    pub(super) fn abandon(&self, stats: &Stats) {
        let mut q = self.lock();
        q.abandoned = true;
        q.items.clear();
        q.bytes = 0;
        q.events = 0;
        stats.queued_bytes.store(0, Ordering::Relaxed);
    }
}
