//! Delivery: background workers that take queued webhooks from the store and
//! POST them to tenants.
//!
//! This file owns the delivery loop: per tenant with a webhook URL, claim due
//! jobs (`claim_webhooks`), POST each one signed afresh (a new
//! `webhook-timestamp` on every attempt, the stored payload bytes as the
//! body), sort the answer with [`super::schedule`], and settle the job
//! (`settle_webhook`). Concurrency is bounded per instance, one tenant may use
//! at most half of it when several tenants have webhooks, and jobs are only
//! claimed when a slot is free, so no claim waits while its lease runs out.
//! Stopping finishes in-flight attempts (bounded) and leaves everything else
//! in the store for the next instance. It must not build envelopes or decide
//! what to emit, and nothing here is ever awaited by event intake.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::{TenantConfig, WebhooksConfig};
use crate::store::{ClaimedWebhook, Store, WebhookOutcome};

use super::outbox::Wakeup;
use super::schedule::{parse_retry_after, AttemptResult, RetrySchedule};
use super::sign::{signed_headers, SecretError, WebhookSecret};

/// Counter of attempts, labelled `result` = `delivered`, `retry` or `dead`.
pub const METRIC_DELIVERIES: &str = "fsgate_webhook_deliveries_total";
/// Histogram of attempt durations in seconds (every attempt, any result).
pub const METRIC_DELIVERY_SECONDS: &str = "fsgate_webhook_delivery_seconds";
/// Counter of messages dead-lettered (permanent refusals and exhausted retries).
pub const METRIC_DEAD: &str = "fsgate_webhooks_dead_total";

/// Longest pause between claims while the store keeps failing.
const MAX_STORE_BACKOFF: Duration = Duration::from_secs(5);

/// Counter of attempts whose TLS handshake failed, by `reason`
/// (`untrusted_certificate`, `wrong_host`, `expired`, `other`).
pub const METRIC_TLS_FAILURES: &str = "fsgate_webhook_tls_failures_total";

/// Registers the help text of the delivery metrics with the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        METRIC_DELIVERIES,
        "Webhook delivery attempts by result (delivered, retry, dead)"
    );
    metrics::describe_histogram!(
        METRIC_DELIVERY_SECONDS,
        metrics::Unit::Seconds,
        "Duration of webhook delivery attempts"
    );
    metrics::describe_counter!(METRIC_DEAD, "Webhooks dead-lettered");
    metrics::describe_counter!(
        METRIC_TLS_FAILURES,
        "Webhook attempts whose TLS handshake with the receiver failed, by reason"
    );
}

/// How the workers behave. [`DelivererConfig::from_config`] gives the
/// production values; tests shorten the schedule and the polling.
#[derive(Debug, Clone, PartialEq)]
pub struct DelivererConfig {
    /// Per-request timeout (`webhooks.timeout_ms`).
    pub timeout: Duration,
    /// Attempts in flight at once, all tenants together (`webhooks.concurrency`).
    pub concurrency: usize,
    /// Most jobs claimed in one round for one tenant.
    pub batch: usize,
    /// After this long without a settle, a claim is presumed dead and another
    /// worker may take the job. Must exceed `timeout` comfortably.
    pub lease: Duration,
    /// Sleep between claims when a tenant has nothing due (an emit wakes the
    /// workers sooner).
    pub idle_poll: Duration,
    /// Longest wait for in-flight attempts when stopping.
    pub drain: Duration,
    /// When to retry and when to give up.
    pub schedule: RetrySchedule,
    /// A CA bundle trusted for https receivers besides the system's roots
    /// (`webhooks.ca_file`).
    pub ca_file: Option<std::path::PathBuf>,
}

impl DelivererConfig {
    /// Production values from `[webhooks]`.
    pub fn from_config(webhooks: &WebhooksConfig) -> DelivererConfig {
        let timeout = Duration::from_millis(webhooks.timeout_ms.max(1));
        DelivererConfig {
            timeout,
            concurrency: webhooks.concurrency.max(1),
            batch: 32,
            // An attempt never outlives its timeout; the margin covers the
            // store writes around it. A dead worker's claims are taken over
            // this long after it claimed them.
            lease: timeout + Duration::from_secs(10),
            idle_poll: Duration::from_millis(200),
            drain: Duration::from_secs(10),
            schedule: RetrySchedule::default(),
            ca_file: crate::config::file_path(&webhooks.ca_file),
        }
    }
}

impl Default for DelivererConfig {
    fn default() -> Self {
        DelivererConfig::from_config(&WebhooksConfig::default())
    }
}

/// Why the workers could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DelivererError {
    /// A tenant has a webhook URL but no secret: it would get unsigned hooks.
    #[error("tenant {0:?} has a webhook_url but no webhook_secret")]
    MissingSecret(String),
    /// A tenant's secret is malformed.
    #[error("tenant {tenant:?}: {error}")]
    Secret {
        /// The tenant.
        tenant: String,
        /// What is wrong with it.
        error: SecretError,
    },
    /// A tenant's webhook URL cannot be used.
    #[error("tenant {tenant:?}: webhook_url {url:?}: {reason}")]
    Url {
        /// The tenant.
        tenant: String,
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The lease does not outlast an attempt: a job could be claimed again
    /// while its first attempt is still running.
    #[error("webhook lease ({lease:?}) must be longer than the request timeout ({timeout:?})")]
    LeaseTooShort {
        /// The configured lease.
        lease: Duration,
        /// The configured request timeout.
        timeout: Duration,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(String),
    /// `webhooks.ca_file` is unusable.
    #[error("webhooks.ca_file: {0}")]
    CaFile(#[from] crate::tls::TlsFileError),
}

/// One tenant's delivery target.
#[derive(Debug)]
struct Target {
    tenant: String,
    url: reqwest::Url,
    secret: WebhookSecret,
}

impl Target {
    fn from_config(tenant: &TenantConfig) -> Result<Option<Target>, DelivererError> {
        let Some(url) = tenant
            .webhook_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        else {
            return Ok(None);
        };
        let url_error = |reason: String| DelivererError::Url {
            tenant: tenant.id.clone(),
            url: url.to_owned(),
            reason,
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| url_error(e.to_string()))?;
        match parsed.scheme() {
            "http" | "https" => {}
            other => return Err(url_error(format!("scheme {other:?} is not http or https"))),
        }
        let secret = tenant
            .webhook_secret
            .as_deref()
            .ok_or_else(|| DelivererError::MissingSecret(tenant.id.clone()))?;
        let secret = WebhookSecret::parse(secret).map_err(|error| DelivererError::Secret {
            tenant: tenant.id.clone(),
            error,
        })?;
        Ok(Some(Target {
            tenant: tenant.id.clone(),
            url: parsed,
            secret,
        }))
    }
}

/// A consumer id unique to this daemon instance: hostname, pid and a random
/// suffix (two instances in one container or one pid namespace still differ).
pub fn default_consumer_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// What every worker task shares.
struct Shared {
    store: Arc<dyn Store>,
    clock: SharedClock,
    client: reqwest::Client,
    config: DelivererConfig,
    consumer: String,
    wake: Wakeup,
    slots: Arc<Semaphore>,
    stop: CancellationToken,
}

/// The delivery workers of one daemon instance, before they start.
pub struct Deliverer {
    store: Arc<dyn Store>,
    clock: SharedClock,
    targets: Vec<Target>,
    config: DelivererConfig,
    consumer: String,
    wake: Wakeup,
    client: reqwest::Client,
}

impl Deliverer {
    /// Workers for every tenant with a webhook URL. Refuses a tenant whose
    /// URL or secret is unusable (better than failing every attempt), and a
    /// lease that does not outlast the request timeout.
    pub fn new(
        store: Arc<dyn Store>,
        clock: SharedClock,
        tenants: &[TenantConfig],
        config: DelivererConfig,
    ) -> Result<Deliverer, DelivererError> {
        if config.lease <= config.timeout {
            return Err(DelivererError::LeaseTooShort {
                lease: config.lease,
                timeout: config.timeout,
            });
        }
        let mut targets = Vec::new();
        for tenant in tenants {
            if let Some(target) = Target::from_config(tenant)? {
                targets.push(target);
            }
        }
        // rustls with the system's roots plus `webhooks.ca_file`; the
        // certificate is checked against the URL's host.
        let tls = crate::tls::client_config(config.ca_file.as_deref())?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("fsgate-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DelivererError::Client(e.to_string()))?;
        Ok(Deliverer {
            store,
            clock,
            targets,
            config,
            consumer: default_consumer_id(),
            wake: Wakeup::new(),
            client,
        })
    }

    /// Wakes the workers on this signal (give it [`super::Outbox::wake_signal`]).
    pub fn with_wake(mut self, wake: Wakeup) -> Deliverer {
        self.wake = wake;
        self
    }

    /// Replaces the consumer id (tests; or an operator-chosen instance name).
    pub fn with_consumer_id(mut self, consumer: impl Into<String>) -> Deliverer {
        self.consumer = consumer.into();
        self
    }

    /// The consumer id claims are made under.
    pub fn consumer_id(&self) -> &str {
        &self.consumer
    }

    /// The tenants that get webhooks.
    pub fn tenants(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.tenant.as_str()).collect()
    }

    /// Starts one worker loop per tenant on the current tokio runtime.
    pub fn start(self) -> DelivererHandle {
        let concurrency = self.config.concurrency.max(1);
        let per_tenant = if self.targets.len() <= 1 {
            concurrency
        } else {
            concurrency.div_ceil(2)
        };
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            store: self.store,
            clock: self.clock,
            client: self.client,
            consumer: self.consumer,
            wake: self.wake,
            slots: Arc::new(Semaphore::new(concurrency)),
            stop: stop.clone(),
            config: self.config,
        });
        tracing::info!(
            consumer = %shared.consumer,
            tenants = self.targets.len(),
            concurrency,
            "webhook delivery started"
        );
        let mut quiet = Vec::new();
        let loops = self
            .targets
            .into_iter()
            .map(|target| {
                let (quiet_tx, quiet_rx) = watch::channel(0u64);
                quiet.push(quiet_rx);
                let lane = Lane {
                    shared: Arc::clone(&shared),
                    target: Arc::new(target),
                    slots: Arc::new(Semaphore::new(per_tenant)),
                    quiet: quiet_tx,
                };
                tokio::spawn(lane.run())
            })
            .collect();
        DelivererHandle {
            stop: stop.clone(),
            loops,
            quiet,
            _guard: Some(stop.drop_guard()),
        }
    }
}

/// The running workers. Dropping it stops them without waiting; prefer
/// [`DelivererHandle::shutdown`].
pub struct DelivererHandle {
    stop: CancellationToken,
    loops: Vec<JoinHandle<()>>,
    /// Per tenant: how many claims found nothing due with nothing running.
    quiet: Vec<watch::Receiver<u64>>,
    _guard: Option<tokio_util::sync::DropGuard>,
}

impl DelivererHandle {
    /// Resolves once every tenant's worker has, since this call, looked for
    /// due webhooks and found none while none of its attempts was running:
    /// everything due when it was called has been attempted and settled.
    /// The signal tests wait on before asserting that nothing more is sent.
    pub async fn settled(&self) {
        for quiet in &self.quiet {
            let mut quiet = quiet.clone();
            // A claim under way now may have begun before the call: wait for
            // one more after it.
            let seen = *quiet.borrow_and_update();
            let _ = quiet.wait_for(|n| *n >= seen + 2).await;
        }
    }

    /// Stops claiming, lets in-flight attempts finish and settle (up to
    /// `drain` of the config; the rest are abandoned and their jobs come back
    /// after the lease), and returns when every worker has ended.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for handle in self.loops.drain(..) {
            if let Err(e) = handle.await {
                tracing::warn!(error = %e, "webhook worker ended abnormally");
            }
        }
    }
}

/// One tenant's loop.
struct Lane {
    shared: Arc<Shared>,
    target: Arc<Target>,
    /// This tenant's share of the instance's slots.
    slots: Arc<Semaphore>,
    /// Counts the claims that found nothing with nothing in flight.
    quiet: watch::Sender<u64>,
}

/// Permission to run one attempt: a tenant slot and an instance slot.
struct Slot {
    _tenant: OwnedSemaphorePermit,
    _instance: OwnedSemaphorePermit,
}

impl Lane {
    async fn run(self) {
        let wake = self.shared.wake.signal(&self.target.tenant);
        let mut in_flight = JoinSet::new();
        let mut store_failures: u32 = 0;
        loop {
            while in_flight.try_join_next().is_some() {}
            // Armed before claiming, so an emit during the claim is not missed.
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let Some(slots) = self.free_slots().await else {
                break;
            };
            let wanted = slots.len();
            let now = self.shared.clock.now();
            let claimed = self
                .shared
                .store
                .claim_webhooks(
                    &self.target.tenant,
                    &self.shared.consumer,
                    wanted,
                    self.shared.config.lease,
                    now,
                )
                .await;
            let mut pause = self.shared.config.idle_poll;
            match claimed {
                Ok(claims) => {
                    store_failures = 0;
                    let got = claims.len();
                    if got == 0 && in_flight.is_empty() {
                        self.quiet.send_modify(|n| *n += 1);
                    }
                    for (claim, slot) in claims.into_iter().zip(slots) {
                        let shared = Arc::clone(&self.shared);
                        let target = Arc::clone(&self.target);
                        in_flight.spawn(async move {
                            attempt(&shared, &target, claim).await;
                            drop(slot);
                        });
                    }
                    if got >= wanted {
                        // Possibly more due: claim again as soon as a slot frees.
                        continue;
                    }
                }
                Err(e) => {
                    // Back off while the store is down: up to 5 s between tries.
                    store_failures = store_failures.saturating_add(1);
                    pause = pause
                        .saturating_mul(1 << store_failures.min(5))
                        .min(MAX_STORE_BACKOFF.max(pause));
                    tracing::warn!(tenant = %self.target.tenant, error = %e, retry_in = ?pause, "cannot claim webhooks");
                }
            }
            tokio::select! {
                biased;
                _ = self.shared.stop.cancelled() => break,
                _ = &mut notified => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        self.drain(in_flight).await;
    }

    /// Waits for at least one free slot, then takes as many more as are free
    /// (up to the batch size). `None` when stopping.
    async fn free_slots(&self) -> Option<Vec<Slot>> {
        let stop = &self.shared.stop;
        let tenant = tokio::select! {
            biased;
            _ = stop.cancelled() => return None,
            p = Arc::clone(&self.slots).acquire_owned() => p.ok()?,
        };
        let instance = tokio::select! {
            biased;
            _ = stop.cancelled() => return None,
            p = Arc::clone(&self.shared.slots).acquire_owned() => p.ok()?,
        };
        let mut slots = vec![Slot {
            _tenant: tenant,
            _instance: instance,
        }];
        while slots.len() < self.shared.config.batch.max(1) {
            let Ok(tenant) = Arc::clone(&self.slots).try_acquire_owned() else {
                break;
            };
            let Ok(instance) = Arc::clone(&self.shared.slots).try_acquire_owned() else {
                break;
            };
            slots.push(Slot {
                _tenant: tenant,
                _instance: instance,
            });
        }
        Some(slots)
    }

    async fn drain(&self, mut in_flight: JoinSet<()>) {
        let pending = in_flight.len();
        if pending == 0 {
            return;
        }
        let finished = tokio::time::timeout(self.shared.config.drain, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!(
                tenant = %self.target.tenant,
                abandoned = in_flight.len(),
                "webhook attempts still running at shutdown; their jobs return after the lease"
            );
            in_flight.abort_all();
            while in_flight.join_next().await.is_some() {}
        }
    }
}

/// One attempt of one claimed job, settled in the store.
async fn attempt(shared: &Shared, target: &Target, claim: ClaimedWebhook) {
    let job = &claim.job;
    let signed = signed_headers(
        &target.secret,
        &job.id,
        shared.clock.now().timestamp(),
        job.payload.as_bytes(),
    );
    let mut request = shared
        .client
        .post(target.url.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(job.payload.clone());
    for (name, value) in signed.pairs() {
        request = request.header(name, value);
    }
    let started = Instant::now();
    let result = match request.send().await {
        Ok(response) => AttemptResult::Status {
            code: response.status().as_u16(),
            retry_after: response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after),
        },
        Err(e) if e.is_timeout() => AttemptResult::Timeout,
        Err(e) => match crate::tls::tls_failure(&e) {
            Some(reason) => {
                let problem = crate::tls::problem_of(&reason);
                metrics::counter!(METRIC_TLS_FAILURES, "reason" => problem.as_str()).increment(1);
                tracing::warn!(
                    tenant = %target.tenant,
                    id = %job.id,
                    url = %target.url,
                    error = %reason,
                    "webhook receiver's TLS refused: fix its certificate or webhooks.ca_file"
                );
                AttemptResult::Tls(problem)
            }
            None if e.is_connect() => AttemptResult::Connect,
            None => AttemptResult::Transport,
        },
    };
    metrics::histogram!(METRIC_DELIVERY_SECONDS).record(started.elapsed().as_secs_f64());

    let outcome = shared.config.schedule.outcome(
        result,
        job.attempt,
        shared.clock.now(),
        rand::random::<f64>(),
    );
    let label = match &outcome {
        WebhookOutcome::Delivered => "delivered",
        WebhookOutcome::RetryAt(_) => "retry",
        WebhookOutcome::Dead => "dead",
    };
    metrics::counter!(METRIC_DELIVERIES, "result" => label).increment(1);
    match &outcome {
        WebhookOutcome::Delivered => {
            tracing::debug!(tenant = %target.tenant, id = %job.id, attempt = job.attempt + 1, "webhook delivered");
        }
        WebhookOutcome::RetryAt(at) => {
            tracing::info!(tenant = %target.tenant, id = %job.id, attempt = job.attempt + 1, ?result, retry_at = %at, "webhook attempt failed; will retry");
        }
        WebhookOutcome::Dead => {
            metrics::counter!(METRIC_DEAD).increment(1);
            tracing::warn!(tenant = %target.tenant, id = %job.id, attempt = job.attempt + 1, ?result, "webhook dead-lettered");
        }
    }
    if let Err(e) = shared
        .store
        .settle_webhook(&target.tenant, &claim, outcome)
        .await
    {
        // The claim stays open; after the lease another worker retries it.
        tracing::warn!(tenant = %target.tenant, id = %job.id, error = %e, "cannot settle webhook");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(url: Option<&str>, secret: Option<&str>) -> TenantConfig {
        let mut v = serde_json::json!({"id": "acme"});
        if let Some(url) = url {
            v["webhook_url"] = url.into();
        }
        if let Some(secret) = secret {
            v["webhook_secret"] = secret.into();
        }
        serde_json::from_value(v).unwrap()
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn targets_need_a_usable_url_and_secret() {
        assert!(matches!(Target::from_config(&tenant(None, None)), Ok(None)));
        assert!(matches!(
            Target::from_config(&tenant(Some("  "), None)),
            Ok(None)
        ));
        assert!(matches!(
            Target::from_config(&tenant(Some("http://127.0.0.1:9/h"), Some(SECRET))),
            Ok(Some(_))
        ));
        assert!(matches!(
            Target::from_config(&tenant(Some("http://127.0.0.1:9/h"), None)),
            Err(DelivererError::MissingSecret(t)) if t == "acme"
        ));
        assert!(matches!(
            Target::from_config(&tenant(Some("http://127.0.0.1:9/h"), Some("whsec_!!"))),
            Err(DelivererError::Secret { .. })
        ));
        assert!(matches!(
            Target::from_config(&tenant(Some("not a url"), Some(SECRET))),
            Err(DelivererError::Url { .. })
        ));
        assert!(matches!(
            Target::from_config(&tenant(Some("ftp://example.com/"), Some(SECRET))),
            Err(DelivererError::Url { .. })
        ));
        assert!(matches!(
            Target::from_config(&tenant(Some("https://example.com/"), Some(SECRET))),
            Ok(Some(_))
        ));
    }

    #[tokio::test]
    async fn a_lease_must_outlast_an_attempt() {
        let store: Arc<dyn Store> = Arc::new(crate::store::memory::MemoryStore::new());
        let clock: SharedClock = Arc::new(crate::clock::SystemClock);
        let config = DelivererConfig {
            lease: Duration::from_secs(10),
            ..DelivererConfig::default()
        };
        let result = Deliverer::new(store, clock, &[], config);
        assert!(matches!(result, Err(DelivererError::LeaseTooShort { .. })));
    }

    #[test]
    fn consumer_ids_differ_per_instance() {
        let a = default_consumer_id();
        let b = default_consumer_id();
        assert_ne!(a, b);
        assert!(a.contains(&std::process::id().to_string()));
    }

    #[test]
    fn production_config_from_webhooks_section() {
        let c = DelivererConfig::default();
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.concurrency, 16);
        assert!(c.lease > c.timeout);
        assert_eq!(c.schedule, RetrySchedule::default());
    }
}
