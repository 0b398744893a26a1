//! One tenant's webhook outbox and event log in the memory store.
//!
//! Owns the delivery queue (ready, claimed with a lease, retries by due time,
//! dead letters) and the log of envelopes trimmed by retention. Leases and
//! due times are judged by the `now` the caller passes; runs under the
//! store's lock and must not lock, await or read a clock.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::cursor::{decode_log, duration_ms, ms};
use crate::store::{ClaimedWebhook, LoggedEvent, Page, WebhookJob, WebhookOutcome};

/// Dead letters kept per tenant (oldest dropped first).
pub(crate) const DEAD_LETTERS_KEPT: usize = 10_000;

struct Claim {
    job: WebhookJob,
    consumer: String,
    at: i64,
}

#[derive(Default)]
pub(super) struct Outbox {
    next_receipt: u64,
    ready: VecDeque<(u64, WebhookJob)>,
    claimed: BTreeMap<u64, Claim>,
    retries: BTreeMap<(i64, u64), WebhookJob>,
    /// Newest first.
    dead: VecDeque<WebhookJob>,
    /// `((ms, seq), payload)`, in order.
    log: VecDeque<((u64, u64), String)>,
    /// Ids queued through [`Outbox::enqueue_once`], with when each is
    /// forgotten (in queueing order).
    seen: HashSet<String>,
    seen_until: VecDeque<(i64, String)>,
}

impl Outbox {
    fn push_ready(&mut self, job: WebhookJob) {
        self.next_receipt += 1;
        self.ready.push_back((self.next_receipt, job));
    }

    pub(super) fn enqueue(
        &mut self,
        job: WebhookJob,
        deliver: bool,
        now: DateTime<Utc>,
        retention: Duration,
    ) {
        let now_ms = u64::try_from(ms(now)).unwrap_or(0);
        let id = match self.log.back() {
            Some(((last_ms, seq), _)) if *last_ms >= now_ms => (*last_ms, seq + 1),
            _ => (now_ms, 0),
        };
        self.log.push_back((id, job.payload.clone()));
        let min = now_ms.saturating_sub(u64::try_from(duration_ms(retention)).unwrap_or(0));
        while self.log.front().is_some_and(|((at, _), _)| *at < min) {
            self.log.pop_front();
        }
        if deliver {
            self.push_ready(job);
        }
    }

    /// [`Outbox::enqueue`] unless `job.id` was queued this way within
    /// `retention`; false then.
    pub(super) fn enqueue_once(
        &mut self,
        job: WebhookJob,
        deliver: bool,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> bool {
        let now_ms = ms(now);
        while self
            .seen_until
            .front()
            .is_some_and(|(until, _)| *until <= now_ms)
        {
            if let Some((_, id)) = self.seen_until.pop_front() {
                self.seen.remove(&id);
            }
        }
        if !self.seen.insert(job.id.clone()) {
            return false;
        }
        let until = now_ms.saturating_add(duration_ms(retention).max(1));
        self.seen_until.push_back((until, job.id.clone()));
        self.enqueue(job, deliver, now, retention);
        true
    }

    pub(super) fn claim(
        &mut self,
        consumer: &str,
        max: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Vec<ClaimedWebhook> {
        let now = ms(now);
        let due: Vec<(i64, u64)> = self
            .retries
            .range(..=(now, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some(job) = self.retries.remove(&key) {
                self.push_ready(job);
            }
        }
        let mut out = Vec::new();
        let stale = now.saturating_sub(duration_ms(lease));
        for (receipt, claim) in self.claimed.iter_mut() {
            if out.len() >= max {
                break;
            }
            if claim.at <= stale {
                claim.consumer = consumer.to_owned();
                claim.at = now;
                out.push(claimed(*receipt, &claim.job));
            }
        }
        while out.len() < max {
            let Some((receipt, job)) = self.ready.pop_front() else {
                break;
            };
            out.push(claimed(receipt, &job));
            let consumer = consumer.to_owned();
            self.claimed.insert(
                receipt,
                Claim {
                    job,
                    consumer,
                    at: now,
                },
            );
        }
        out
    }

    pub(super) fn settle(&mut self, claim: &ClaimedWebhook, outcome: WebhookOutcome) {
        let Ok(receipt) = claim.receipt.parse::<u64>() else {
            return;
        };
        let Some(Claim { mut job, .. }) = self.claimed.remove(&receipt) else {
            return;
        };
        match outcome {
            WebhookOutcome::Delivered => {}
            WebhookOutcome::RetryAt(at) => {
                job.attempt += 1;
                self.retries.insert((ms(at), receipt), job);
            }
            WebhookOutcome::Dead => {
                job.attempt += 1;
                self.dead.push_front(job);
                self.dead.truncate(DEAD_LETTERS_KEPT);
            }
        }
    }

    pub(super) fn dead(&self, limit: usize) -> Vec<WebhookJob> {
        self.dead.iter().take(limit).cloned().collect()
    }

    pub(super) fn events_after(&self, after: Option<&str>, limit: usize) -> Page<LoggedEvent> {
        let start = match after {
            None => 0,
            Some(c) => match decode_log(c) {
                Some(id) => self.log.partition_point(|(at, _)| *at <= id),
                None => {
                    return Page {
                        items: Vec::new(),
                        next_cursor: None,
                    }
                }
            },
        };
        let mut items: Vec<LoggedEvent> = self
            .log
            .iter()
            .skip(start)
            .take(limit.saturating_add(1))
            .map(|((at, seq), payload)| LoggedEvent {
                cursor: format!("{at}-{seq}"),
                payload: payload.clone(),
            })
            .collect();
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more {
            items.last().map(|e| e.cursor.clone())
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

fn claimed(receipt: u64, job: &WebhookJob) -> ClaimedWebhook {
    ClaimedWebhook {
        job: job.clone(),
        receipt: receipt.to_string(),
    }
}
