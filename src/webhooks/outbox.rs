//! The outbox: how the rest of the daemon emits a webhook.
//!
//! This file owns turning an [`Envelope`] into a stored [`WebhookJob`]: the
//! envelope is serialised once, and those exact bytes are what is logged for
//! `GET /v1/events`, signed and sent on every attempt. Emitting only writes to
//! the store (one atomic step: queue + event log; or, as an [`Emission`],
//! part of the state change it announces) and pokes the delivery workers; it must never wait on HTTP, so a slow or dead receiver cannot slow
//! event intake. It does not decide which events to emit, nor deliver them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::clock::SharedClock;
use crate::config::TenantConfig;
use crate::store::{Emission, Store, StoreError, WebhookJob};

use super::envelope::{Envelope, EnvelopeError, EventData};

/// Why an event could not be emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// The envelope names another tenant than the one it is emitted for.
    #[error("envelope for tenant {envelope:?} emitted as tenant {tenant:?}")]
    WrongTenant {
        /// The envelope's tenant.
        envelope: String,
        /// The tenant it was emitted for.
        tenant: String,
    },
    /// The data could not be serialised.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The store failed; nothing was queued.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Per-tenant wake-up signals from the outbox to the delivery workers, so
/// an emit is sent at once instead of at the next poll, and only the
/// emitting tenant's worker wakes. Clones share the signals.
#[derive(Clone, Default)]
pub struct Wakeup {
    signals: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Wakeup {
    /// No signals yet.
    pub fn new() -> Wakeup {
        Wakeup::default()
    }

    /// The tenant's signal (created on first use); a worker waits on it.
    pub fn signal(&self, tenant: &str) -> Arc<Notify> {
        let mut signals = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(signals.entry(tenant.to_owned()).or_default())
    }

    /// Wakes the tenant's worker, if one is waiting.
    pub fn wake(&self, tenant: &str) {
        let signal = {
            let signals = self.signals.lock().unwrap_or_else(|e| e.into_inner());
            signals.get(tenant).cloned()
        };
        if let Some(signal) = signal {
            signal.notify_waiters();
        }
    }
}

impl std::fmt::Debug for Wakeup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wakeup")
    }
}

/// Where events go to be delivered and logged.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn Store>,
    clock: SharedClock,
    retention: Duration,
    wake: Wakeup,
}

impl Outbox {
    /// An outbox over `store`; the event log keeps envelopes for `retention`
    /// (`webhooks.events_retention_hours`).
    pub fn new(store: Arc<dyn Store>, clock: SharedClock, retention: Duration) -> Outbox {
        Outbox {
            store,
            clock,
            retention,
            wake: Wakeup::new(),
        }
    }

    /// The signals poked on every emit; give them to
    /// [`super::worker::Deliverer::with_wake`] for low-latency delivery.
    pub fn wake_signal(&self) -> Wakeup {
        self.wake.clone()
    }

    /// The stored form of `envelope` for `tenant`: queued for the tenant's
    /// webhook URL (only logged when the tenant has none) and logged. Give
    /// it to a store transition to queue it in the same atomic step as the
    /// change it announces, then call [`Outbox::queued`] when it changed.
    pub fn emission(
        &self,
        tenant: &TenantConfig,
        envelope: &Envelope,
    ) -> Result<Emission, EmitError> {
        if envelope.tenant != tenant.id {
            return Err(EmitError::WrongTenant {
                envelope: envelope.tenant.clone(),
                tenant: tenant.id.clone(),
            });
        }
        let deliver = tenant
            .webhook_url
            .as_deref()
            .is_some_and(|url| !url.trim().is_empty());
        Ok(Emission {
            job: WebhookJob {
                id: envelope.id.clone(),
                tenant: tenant.id.clone(),
                payload: envelope.to_json(),
                attempt: 0,
            },
            deliver,
            now: self.clock.now(),
            retention: self.retention,
        })
    }

    /// [`Outbox::emission`] of a fresh envelope for typed data.
    pub fn emission_for<D: EventData>(
        &self,
        tenant: &TenantConfig,
        occurred_at: chrono::DateTime<chrono::Utc>,
        data: &D,
    ) -> Result<Emission, EmitError> {
        self.emission(tenant, &Envelope::new(&tenant.id, occurred_at, data)?)
    }

    /// An emission was queued by a store step: wake the tenant's worker.
    pub fn queued(&self, emission: &Emission) {
        if emission.deliver {
            self.wake.wake(&emission.job.tenant);
        }
    }

    /// Queues an envelope for the tenant's webhook URL (only logs it when the
    /// tenant has none) and appends it to the tenant's event log, unless an
    /// envelope with its id was queued before (then nothing happens: the
    /// same webhook derived twice, by two instances or a retry).
    pub async fn emit(&self, tenant: &TenantConfig, envelope: &Envelope) -> Result<(), EmitError> {
        let e = self.emission(tenant, envelope)?;
        let queued = self
            .store
            .enqueue_webhook(e.job.clone(), e.deliver, e.now, e.retention)
            .await?;
        if queued {
            self.queued(&e);
        }
        Ok(())
    }

    /// Builds the envelope for typed data (a fresh id, `occurred_at`) and
    /// emits it. Returns the envelope, for logs and callers' tests.
    pub async fn emit_data<D: EventData>(
        &self,
        tenant: &TenantConfig,
        occurred_at: chrono::DateTime<chrono::Utc>,
        data: &D,
    ) -> Result<Envelope, EmitError> {
        let envelope = Envelope::new(&tenant.id, occurred_at, data)?;
        self.emit(tenant, &envelope).await?;
        Ok(envelope)
    }
}
