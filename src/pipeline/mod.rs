//! The event pipeline: FreeSWITCH events in, call table and domain effects out.
//!
//! Events from every node flow one way: node supervisor → dispatcher →
//! shard → de-duplication → call table → domain handlers (which write webhook
//! envelopes to the outbox). The dispatcher only hashes each event's
//! `Unique-ID` to one of a fixed set of shard tasks, so the events of one call
//! are handled in order while different calls proceed in parallel; nothing on
//! this path waits on HTTP, and the ESL reader upstream never waits at all
//! (its own channel drops and reports instead, see `esl::connection`).
//!
//! Several instances: every daemon instance connected to a node receives,
//! and handles, every event, so that no event is lost with an instance that
//! died handling it. What they write is idempotent: the call table merges
//! records monotonically (see [`crate::store::Store::put_call`]), session and
//! operation transitions happen once and queue their webhook with them, and
//! the lifecycle webhooks have ids derived from the call, queued once.
//!
//! The store unreachable: a shard waits (retrying, with a backoff capped at
//! a second) and keeps its events in order meanwhile; the wait is counted in
//! `fsgate_pipeline_events_waiting`. Its queue is bounded, so a long outage
//! backs up to the node's bounded event channel, which drops and reports
//! the loss: the node is then reconciled from the switch. Never silence.
//!
//! When a node connects (again), or events were dropped, the pipeline
//! reconciles that node's live calls with what the switch reports
//! ([`reconcile`]): calls that ended unseen get a synthetic hangup, marked as
//! reconciled, that flows through the same handlers.

pub mod calltable;
pub mod reconcile;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::esl::node::NodeEvent;
use crate::esl::Event;
use crate::store::{CallRecord, Store, StoreError};
use crate::switch::Switch;

pub use calltable::CallEventKind;

/// The events a node is subscribed to for the pipeline (BACKGROUND_JOB for
/// `bgapi` results, HEARTBEAT for liveness).
pub const SUBSCRIBED_EVENTS: &[&str] = &[
    "CHANNEL_CREATE",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_PARK",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "BACKGROUND_JOB",
    "HEARTBEAT",
];

/// One change of a call, as the domain handlers see it.
#[derive(Debug)]
pub struct CallEvent<'a> {
    /// The node the channel is on.
    pub node: &'a str,
    /// What happened.
    pub kind: CallEventKind,
    /// The FreeSWITCH event; `None` for what reconciliation inferred.
    pub event: Option<&'a Event>,
    /// The call as the table holds it after this change.
    pub call: &'a CallRecord,
}

/// A domain's reaction to call events (webhooks, session state, pending
/// commands). Called once per event across all daemon instances.
#[async_trait]
pub trait CallEventHandler: Send + Sync + 'static {
    /// Reacts to one change. An error makes the pipeline retry the handler.
    async fn on_call_event(&self, event: &CallEvent<'_>) -> Result<(), StoreError>;
}

/// Who owns a dialled number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberOwner {
    /// Tenant id.
    pub tenant: String,
    /// Which of the tenant's numbers it is.
    pub kind: NumberKind,
}

/// The kinds of tenant numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberKind {
    /// From the masked-number pool.
    Masked,
    /// A call-control number (inbound calls park).
    Control,
}

/// Maps dialled numbers to tenants (from the configuration).
pub trait NumberDirectory: Send + Sync + 'static {
    /// The owner of `number`, compared with or without a leading `+`.
    fn owner_of(&self, number: &str) -> Option<NumberOwner>;
}

/// What the pipeline needs.
#[derive(Clone)]
pub struct Deps {
    /// Shared state.
    pub store: Arc<dyn Store>,
    /// Time.
    pub clock: SharedClock,
    /// The nodes (for reconciliation).
    pub switch: Switch,
    /// Number ownership.
    pub directory: Arc<dyn NumberDirectory>,
    /// Domain handlers, called in order.
    pub handlers: Vec<Arc<dyn CallEventHandler>>,
    /// How long ended calls stay readable.
    pub retention: Duration,
}

/// The running pipeline.
pub struct Pipeline {
    dispatcher: JoinHandle<()>,
}

impl Pipeline {
    /// Starts the dispatcher and `shards` workers reading `events`.
    pub fn spawn(deps: Deps, events: mpsc::Receiver<NodeEvent>, shards: usize) -> Pipeline {
        let deps = Arc::new(deps);
        let mut senders = Vec::with_capacity(shards.max(1));
        for _ in 0..shards.max(1) {
            let (tx, rx) = mpsc::channel(4096);
            senders.push(tx);
            tokio::spawn(shard(deps.clone(), rx));
        }
        let dispatcher = tokio::spawn(dispatch(deps, events, senders));
        Pipeline { dispatcher }
    }

    /// Waits until the event source is closed and every shard has drained.
    pub async fn join(self) {
        let _ = self.dispatcher.await;
    }

    /// Stops at once.
    pub fn abort(&self) {
        self.dispatcher.abort();
    }
}

struct Work {
    node: Arc<str>,
    event: Event,
}

async fn dispatch(
    deps: Arc<Deps>,
    mut events: mpsc::Receiver<NodeEvent>,
    shards: Vec<mpsc::Sender<Work>>,
) {
    while let Some(message) = events.recv().await {
        match message {
            NodeEvent::Event { node, event } => {
                let name = event.name().map(|n| n.into_owned()).unwrap_or_default();
                metrics::counter!("fsgate_esl_events_total", "node" => node.to_string(), "event" => name).increment(1);
                let Some(uuid) = event.unique_id().map(|u| u.into_owned()) else {
                    continue; // HEARTBEAT, BACKGROUND_JOB: nothing for the call table
                };
                let mut h = DefaultHasher::new();
                uuid.hash(&mut h);
                let shard = &shards[(h.finish() % shards.len() as u64) as usize];
                if shard.send(Work { node, event }).await.is_err() {
                    return;
                }
            }
            NodeEvent::Connected { node, reconnects } => {
                metrics::gauge!("fsgate_esl_connected", "node" => node.to_string()).set(1.0);
                if reconnects > 0 {
                    metrics::counter!("fsgate_esl_reconnects_total", "node" => node.to_string())
                        .increment(1);
                }
                spawn_reconcile(deps.clone(), node);
            }
            NodeEvent::Disconnected { node, reason } => {
                metrics::gauge!("fsgate_esl_connected", "node" => node.to_string()).set(0.0);
                tracing::warn!(node = %node, %reason, "node disconnected; its calls are reconciled on reconnect");
            }
            NodeEvent::Lagged { node, dropped } => {
                metrics::counter!("fsgate_esl_events_dropped_total", "node" => node.to_string())
                    .increment(dropped);
                tracing::warn!(node = %node, dropped, "events were dropped; reconciling the node");
                spawn_reconcile(deps.clone(), node);
            }
            NodeEvent::Failed { node, error } => {
                metrics::gauge!("fsgate_esl_connected", "node" => node.to_string()).set(0.0);
                tracing::error!(node = %node, %error, "node supervisor stopped");
            }
        }
    }
}

fn spawn_reconcile(deps: Arc<Deps>, node: Arc<str>) {
    tokio::spawn(async move {
        // Young calls are judged again after the grace period, a few times.
        for pass in 0..4 {
            if pass > 0 {
                tokio::time::sleep(reconcile::GRACE).await;
            }
            match reconcile::reconcile_node(&deps, &node).await {
                Ok(report) => {
                    if report.ended + report.adopted > 0 {
                        tracing::info!(node = %node, ended = report.ended, adopted = report.adopted, "reconciled calls");
                    }
                    if report.deferred == 0 {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(node = %node, %error, "reconciliation failed");
                    return;
                }
            }
        }
    });
}

async fn shard(deps: Arc<Deps>, mut work: mpsc::Receiver<Work>) {
    while let Some(Work { node, event }) = work.recv().await {
        let Some((kind, record)) = calltable::record_of(&node, &event, deps.clock.now()) else {
            continue;
        };
        if retry(&node, || apply(&deps, &node, &event, kind, record.clone()))
            .await
            .is_none()
        {
            spawn_reconcile(deps.clone(), node.clone());
        }
    }
}

/// Runs `step` until it succeeds. While the store is unavailable it waits
/// as long as that lasts (backing off from 50 ms to 1 s), keeping the
/// shard's events in order; other failures are retried for about 3 s. `None`
/// when it gave up (counted and logged).
async fn retry<T, F, Fut>(node: &str, mut step: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(50);
    let mut waited = Duration::ZERO;
    let mut waiting = false;
    let result = loop {
        match step().await {
            Ok(value) => break Some(value),
            Err(StoreError::Unavailable(error)) => {
                if !waiting {
                    waiting = true;
                    metrics::gauge!("fsgate_pipeline_events_waiting", "node" => node.to_owned())
                        .increment(1.0);
                    tracing::warn!(node, %error, "the store is unavailable; events wait for it");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(error) if waited <= Duration::from_secs(2) => {
                tracing::warn!(node, %error, "handling an event failed; retrying");
                tokio::time::sleep(delay).await;
                waited += delay;
                delay *= 2;
            }
            Err(error) => {
                metrics::counter!("fsgate_pipeline_events_failed_total", "node" => node.to_owned())
                    .increment(1);
                tracing::error!(node, %error, "giving up on an event; the node will be reconciled");
                break None;
            }
        }
    };
    if waiting {
        metrics::gauge!("fsgate_pipeline_events_waiting", "node" => node.to_owned()).decrement(1.0);
    }
    result
}

/// Call table, then handlers.
async fn apply(
    deps: &Deps,
    node: &str,
    event: &Event,
    kind: CallEventKind,
    mut record: CallRecord,
) -> Result<(), StoreError> {
    attribute(deps.directory.as_ref(), &mut record);
    let call = deps.store.put_call(record, deps.retention).await?;
    let change = CallEvent {
        node,
        kind,
        event: Some(event),
        call: &call,
    };
    for handler in &deps.handlers {
        handler.on_call_event(&change).await?;
    }
    Ok(())
}

/// Fills in the tenant of a record whose event did not name it, from the
/// dialled number's owner (configuration, no I/O). What a binding written by
/// the dialplan lookup or a creator knows (tenant, session, user data) the
/// store applies itself in [`Store::put_call`].
pub(crate) fn attribute(directory: &dyn NumberDirectory, record: &mut CallRecord) {
    if record.tenant.is_none() {
        record.tenant = record
            .callee
            .as_deref()
            .and_then(|n| directory.owner_of(n))
            .map(|o| o.tenant);
    }
}
