//! What every HTTP handler can reach: [`AppState`], the [`NodeStatus`] port
//! and the [`DrainSignal`].
//!
//! This module owns the shape of the shared state and the drain flag. It does
//! not build the parts (the daemon does: store, node supervisors, clock,
//! recorder) and holds no behaviour beyond cheap accessors; handlers stay
//! thin by calling into their domain module with what they take from here.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use super::error::ApiError;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::esl::node::{NodeHandle, NodeState};
use crate::store::Store;
use crate::tenants::Tenants;

/// The state of the HTTP layer, cloned into every request (all `Arc`s).
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The tenants, indexed.
    pub tenants: Arc<Tenants>,
    /// Shared state.
    pub store: Arc<dyn Store>,
    /// Where each FreeSWITCH node's connection stands.
    pub nodes: Arc<dyn NodeStatus>,
    /// The clock (injected so tests can move time).
    pub clock: SharedClock,
    /// The Prometheus recorder's handle, for `/metrics`.
    pub metrics: PrometheusHandle,
    /// Set when the daemon is shutting down.
    pub drain: DrainSignal,
    /// The FreeSWITCH nodes, as the call-control port.
    pub switch: crate::switch::Switch,
    /// Where domain handlers write webhook envelopes.
    pub outbox: crate::webhooks::outbox::Outbox,
    /// False while the store is known to lack a tenant's masked-number pool
    /// (a sync failed, or found it gone: a store that came back empty) until
    /// the daemon has synced it again: `/readyz` says so. The daemon syncs
    /// once before it serves, so this starts out true.
    pub pools_synced: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    /// State for `config`, indexing its tenants; not draining.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        nodes: Arc<dyn NodeStatus>,
        clock: SharedClock,
        metrics: PrometheusHandle,
    ) -> AppState {
        let retention =
            std::time::Duration::from_secs(config.webhooks.events_retention_hours * 3600);
        AppState {
            tenants: Arc::new(Tenants::from_config(&config)),
            config: Arc::new(config),
            outbox: crate::webhooks::outbox::Outbox::new(store.clone(), clock.clone(), retention),
            store,
            nodes,
            clock,
            metrics,
            drain: DrainSignal::new(),
            switch: crate::switch::Switch::new(Vec::new()),
            pools_synced: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    /// The same state commanding these nodes.
    pub fn with_switch(mut self, switch: crate::switch::Switch) -> AppState {
        self.switch = switch;
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("tenants", &self.tenants.len())
            .field("draining", &self.drain.is_draining())
            .finish_non_exhaustive()
    }
}

/// Where the FreeSWITCH connections stand, for `/readyz`.
pub trait NodeStatus: Send + Sync + 'static {
    /// Every configured node with its state, in config order.
    fn nodes(&self) -> Vec<(String, NodeState)>;
}

impl NodeStatus for Vec<NodeHandle> {
    fn nodes(&self) -> Vec<(String, NodeState)> {
        self.iter()
            .map(|h| (h.name().to_string(), h.state()))
            .collect()
    }
}

/// A fixed list of node states (tests, and tools without ESL).
impl NodeStatus for Vec<(String, NodeState)> {
    fn nodes(&self) -> Vec<(String, NodeState)> {
        self.clone()
    }
}

/// Whether the daemon is draining (shutting down): no new originate-type
/// requests, `/readyz` answers 503. Cloning shares the flag.
#[derive(Debug, Clone)]
pub struct DrainSignal {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for DrainSignal {
    fn default() -> Self {
        DrainSignal::new()
    }
}

impl DrainSignal {
    /// A signal that is not draining.
    pub fn new() -> DrainSignal {
        DrainSignal {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Starts draining (idempotent; there is no way back).
    pub fn start(&self) {
        self.tx.send_replace(true);
    }

    /// True once draining has started.
    pub fn is_draining(&self) -> bool {
        *self.tx.borrow()
    }

    /// `Err(503 draining)` once draining has started. Handlers that start
    /// something new on FreeSWITCH (originate, create a call) call
    /// `state.drain.check()?` first.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.is_draining() {
            Err(ApiError::draining())
        } else {
            Ok(())
        }
    }

    /// Resolves when draining starts (at once if it has).
    pub async fn draining(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|d| *d).await;
    }

    /// A receiver that sees the flag change.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_is_shared_and_one_way() {
        let a = DrainSignal::new();
        let b = a.clone();
        assert!(a.check().is_ok());
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.draining().await }
        });
        b.start();
        waiter.await.unwrap();
        assert!(a.is_draining());
        assert_eq!(a.check().unwrap_err().code(), "draining");
        a.start();
        assert!(b.is_draining());
    }
}
