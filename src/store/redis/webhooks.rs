//! The webhook outbox and event log on Redis.
//!
//! Owns how jobs and envelopes are kept, all under the tenant's tag: the
//! queue is a stream (`wh:queue`) read through the consumer group
//! `workers`, with a lease per claimed entry in `wh:leases` (ZSET of entry
//! id → claim time, so a dead worker's jobs are taken over by `XCLAIM` once
//! the caller's `now` is `lease` past the claim: time comes from the caller,
//! not from Redis's idle counters); retries wait in `wh:retry` (ZSET of job
//! JSON → due ms) and go back into the stream when claimed; dead letters in
//! `wh:dead` (list, newest first, capped). The event log is the stream
//! `events` with ids `<ms>-<seq>` (the cursor), trimmed with `MINID` on
//! every append. `emit.lua` holds the append-and-queue step, prepended to
//! the state-change scripts that queue their webhook in the same step (the
//! transactional outbox); `wh:seen:<id>` remembers queued ids (at most once
//! per id). It must not sign or send anything.

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::{Script, ScriptInvocation, Value};
use chrono::{DateTime, Utc};

use super::sessions::empty_page;
use super::value::{array, corrupt, json, string, strings, to_json};
use super::RedisStore;
use crate::store::cursor::{decode_log, duration_ms, ms};
use crate::store::{
    ClaimedWebhook, Emission, LoggedEvent, Page, StoreError, WebhookJob, WebhookOutcome,
};

static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| emitting_script(include_str!("enqueue_webhook.lua")));

/// A script that may queue a webhook: `emit.lua`'s functions, then `body`.
pub(super) fn emitting_script(body: &str) -> Script {
    Script::new(&format!("{}\n{body}", include_str!("emit.lua")))
}
static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("claim_webhooks.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("settle_webhook.lua")));

/// Dead letters kept per tenant (oldest dropped first).
const DEAD_LETTERS_KEPT: usize = 10_000;

/// A stream entry id (`<ms>-<seq>`).
fn is_stream_id(s: &str) -> bool {
    decode_log(s).is_some()
}

impl RedisStore {
    fn outbox_keys(&self, tenant: &str) -> [String; 4] {
        [
            self.keys.tenant(tenant, "wh:queue"),
            self.keys.tenant(tenant, "wh:leases"),
            self.keys.tenant(tenant, "wh:retry"),
            self.keys.tenant(tenant, "wh:dead"),
        ]
    }

    pub(super) async fn enqueue_webhook_impl(
        &self,
        job: WebhookJob,
        deliver: bool,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        let seen = self
            .keys
            .tenant(&job.tenant, &format!("wh:seen:{}", job.id));
        let remember = duration_ms(retention).max(1);
        let emission = Emission {
            job,
            deliver,
            now,
            retention,
        };
        let mut inv = ENQUEUE.prepare_invoke();
        self.add_emission(&mut inv, &emission.job.tenant.clone(), Some(&emission));
        inv.key(seen).arg(remember);
        let reply = self.invoke(&inv).await?;
        Ok(matches!(reply, Value::Int(1)))
    }

    /// Appends an emission's keys (queue, events) and arguments (see
    /// `emit_if` in emit.lua) to a script invocation; `None` appends the
    /// keys and a '0' (nothing to queue), so the script's layout is fixed.
    pub(super) fn add_emission(
        &self,
        inv: &mut ScriptInvocation<'_>,
        tenant: &str,
        emission: Option<&Emission>,
    ) {
        inv.key(self.keys.tenant(tenant, "wh:queue"))
            .key(self.keys.tenant(tenant, "events"));
        let Some(e) = emission else {
            inv.arg("0");
            return;
        };
        let now_ms = ms(e.now).max(0);
        let keep_from = now_ms.saturating_sub(duration_ms(e.retention)).max(0);
        inv.arg("1")
            .arg(to_json(&e.job))
            .arg(if e.deliver { "1" } else { "0" })
            .arg(now_ms)
            .arg(keep_from)
            .arg(&e.job.payload);
    }

    pub(super) async fn claim_webhooks_impl(
        &self,
        tenant: &str,
        consumer: &str,
        max: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedWebhook>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let [queue, leases, retry, _] = self.outbox_keys(tenant);
        let mut inv = CLAIM.prepare_invoke();
        inv.key(queue)
            .key(leases)
            .key(retry)
            .arg(consumer)
            .arg(max)
            .arg(ms(now))
            .arg(ms(now).saturating_sub(duration_ms(lease)));
        let reply = self.invoke(&inv).await?;
        let mut out = Vec::new();
        for entry in array(&reply)? {
            let e = array(entry)?;
            let (Some(id), Some(job)) = (e.first(), e.get(1)) else {
                return Err(corrupt("unexpected claim_webhooks entry"));
            };
            out.push(ClaimedWebhook {
                receipt: string(id)?,
                job: json(&string(job)?, "webhook job")?,
            });
        }
        Ok(out)
    }

    pub(super) async fn settle_webhook_impl(
        &self,
        tenant: &str,
        claim: &ClaimedWebhook,
        outcome: WebhookOutcome,
    ) -> Result<(), StoreError> {
        if !is_stream_id(&claim.receipt) {
            return Ok(());
        }
        let (kind, due) = match outcome {
            WebhookOutcome::Delivered => ("delivered", 0),
            WebhookOutcome::RetryAt(at) => ("retry", ms(at)),
            WebhookOutcome::Dead => ("dead", 0),
        };
        let mut inv = SETTLE.prepare_invoke();
        inv.key(&self.outbox_keys(tenant)[..])
            .arg(&claim.receipt)
            .arg(kind)
            .arg(due)
            .arg(DEAD_LETTERS_KEPT);
        self.invoke(&inv).await.map(|_| ())
    }

    pub(super) async fn dead_webhooks_impl(
        &self,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<WebhookJob>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let reply = self
            .query(
                ::redis::cmd("LRANGE")
                    .arg(self.keys.tenant(tenant, "wh:dead"))
                    .arg(0)
                    .arg(limit - 1),
            )
            .await?;
        strings(&reply)?
            .iter()
            .map(|j| json(j, "dead webhook job"))
            .collect()
    }

    pub(super) async fn events_after_impl(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<LoggedEvent>, StoreError> {
        let start = match after {
            None => "-".to_string(),
            Some(c) if is_stream_id(c) => format!("({c}"),
            Some(_) => return Ok(empty_page()),
        };
        let reply = self
            .query(
                ::redis::cmd("XRANGE")
                    .arg(self.keys.tenant(tenant, "events"))
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit + 1),
            )
            .await?;
        let mut items = Vec::new();
        for entry in array(&reply)? {
            let e = array(entry)?;
            let (Some(id), Some(fields)) = (e.first(), e.get(1)) else {
                return Err(corrupt("unexpected XRANGE entry"));
            };
            let fields = array(fields)?;
            let payload = fields
                .get(1)
                .ok_or_else(|| corrupt("event log entry without payload"))?;
            items.push(LoggedEvent {
                cursor: string(id)?,
                payload: string(payload)?,
            });
        }
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more {
            items.last().map(|e| e.cursor.clone())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}
