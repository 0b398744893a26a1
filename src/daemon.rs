//! The daemon: every part started in order, and stopped in the reverse order.
//!
//! `fsgate serve` ends here once the configuration has loaded and validated.
//! [`Daemon::start`] opens the store, brings each tenant's masked-number pool
//! in line with the configuration, starts one supervisor per FreeSWITCH node
//! (all feeding one event pipeline), the webhook delivery workers, the
//! domains' background tasks and the HTTP server. [`Daemon::shutdown`] drains:
//! new originate-type requests answer 503 at once, requests in flight finish
//! within `shutdown.drain_timeout_ms`, the deliverers finish the attempts they
//! started (the rest stays queued in the store for the next instance), then the
//! nodes are closed. This module wires; it holds no product rules.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::calls::lifecycle::Lifecycle;
use crate::calls::{CallService, CallSettings};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::control::{
    timeouts, AnswerConfirmation, ControlService, ControlSettings, OutboxResults, Results,
};
use crate::esl::command::{EventName, Password};
use crate::esl::connection::ConnectOptions;
use crate::esl::node::{Node, NodeConfig, NodeHandle};
use crate::esl::EventFormat;
use crate::http::{self, AppState};
use crate::masking::{self, Masking};
use crate::pipeline::{self, CallEventHandler, Pipeline};
use crate::store::{self, StoreError};
use crate::switch::Switch;
use crate::telemetry::{self, LogFormat};
use crate::webhooks::worker::{Deliverer, DelivererConfig, DelivererError, DelivererHandle};

/// What the caller may supply instead of the defaults.
pub struct Options {
    /// The time source (tests use a manual clock).
    pub clock: SharedClock,
    /// An already bound listener (tests bind port 0); else `http.listen`.
    pub listener: Option<TcpListener>,
    /// Shards of the event pipeline.
    pub pipeline_shards: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
            listener: None,
            pipeline_shards: 8,
        }
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store URL could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// The HTTP listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A node's configuration is unusable.
    #[error("FreeSWITCH node {node}: {reason}")]
    Node {
        /// Node name.
        node: String,
        /// What is wrong.
        reason: String,
    },
    /// The webhook workers refused the tenants' settings.
    #[error("webhook delivery: {0}")]
    Webhooks(#[from] DelivererError),
    /// The https certificate or key cannot be used.
    #[error("https listener: {0}")]
    Https(#[from] crate::tls::TlsFileError),
    /// The `[control]` section cannot be used (disconnect destination).
    #[error("control: {0}")]
    Control(#[from] crate::esl::dialstring::CommandError),
}

/// A running daemon.
pub struct Daemon {
    addr: SocketAddr,
    state: AppState,
    masking: Arc<Masking>,
    nodes: Vec<Node>,
    pipeline: Pipeline,
    deliverer: DelivererHandle,
    http: JoinHandle<std::io::Result<()>>,
    stop: watch::Sender<bool>,
    background: Vec<JoinHandle<()>>,
}

/// How often the store is checked for the tenants' pools (one cheap script
/// per tenant; a store that came back empty gets them back within this).
const POOL_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// How often operations past their deadline are timed out.
const OPERATION_TICK: Duration = Duration::from_millis(200);

impl Daemon {
    /// Starts everything; returns once the HTTP server is listening.
    pub async fn start(config: Config, options: Options) -> Result<Daemon, StartError> {
        let clock = options.clock;
        let https = http::Https::from_config(&config.http)?;
        let store = store::open(&config.store).await?;
        let listener = match options.listener {
            Some(l) => l,
            None => TcpListener::bind(&config.http.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.http.listen.clone(),
                    source,
                })?,
        };
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.http.listen.clone(),
            source,
        })?;

        let (events_tx, events_rx) = mpsc::channel(65_536);
        let nodes = config
            .freeswitch
            .iter()
            .map(|n| Ok(Node::spawn(node_config(n)?, events_tx.clone())))
            .collect::<Result<Vec<_>, StartError>>()?;
        drop(events_tx);
        let handles: Vec<NodeHandle> = nodes.iter().map(Node::handle).collect();
        let switch = Switch::new(handles.clone());

        let deliverer = Deliverer::new(
            store.clone(),
            clock.clone(),
            &config.tenants,
            DelivererConfig::from_config(&config.webhooks),
        )?;
        let state = AppState::new(
            config,
            store.clone(),
            Arc::new(handles),
            clock.clone(),
            telemetry::metrics(),
        )
        .with_switch(switch.clone());
        let deliverer = deliverer.with_wake(state.outbox.wake_signal()).start();

        let masking = Arc::new(Masking::new(
            store.clone(),
            clock.clone(),
            state.tenants.clone(),
            switch.clone(),
            Arc::new(state.outbox.clone()),
        ));
        // Call control: one result per operation, as `command.result`.
        let results = Results::new(
            store.clone(),
            clock.clone(),
            Arc::new(OutboxResults::new(
                state.outbox.clone(),
                state.tenants.clone(),
            )),
        );
        let control = ControlService::new(
            switch.clone(),
            results.clone(),
            ControlSettings::from_config(&state.config.control)?,
        );
        let calls = CallService::new(
            store.clone(),
            switch.clone(),
            clock.clone(),
            CallSettings::from_config(&state.config.calls),
        );

        let handlers: Vec<Arc<dyn CallEventHandler>> = vec![
            Arc::new(Lifecycle::new(
                store.clone(),
                state.outbox.clone(),
                state.tenants.clone(),
            )),
            Arc::new(AnswerConfirmation::new(results.clone())),
            Arc::new(masking::SessionCallHandler::new(masking.clone())),
        ];
        let deps = pipeline::Deps {
            store: store.clone(),
            clock: clock.clone(),
            switch,
            directory: state.tenants.clone(),
            handlers,
            retention: Duration::from_secs(state.config.calls.retention_minutes * 60),
        };
        let pipeline = Pipeline::spawn(deps, events_rx, options.pipeline_shards);

        // One pass before serving (bounded: a stalled store must not hold up
        // the start; the loop goes on trying).
        if tokio::time::timeout(POOL_SYNC_INTERVAL * 2, sync_pools_once(&state, true))
            .await
            .is_err()
        {
            state
                .pools_synced
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        let (stop, stop_rx) = watch::channel(false);
        let tenant_ids = state.tenants.iter().map(|t| t.id().to_owned()).collect();
        let mut background = vec![
            tokio::spawn(sync_pools(state.clone(), stop_rx.clone())),
            timeouts::spawn(results, tenant_ids, OPERATION_TICK),
            masking::spawn_expiry(masking.clone(), masking::expiry::EXPIRY_INTERVAL),
            masking::SessionReconciler::new(masking.clone())
                .spawn(masking::SESSION_RECONCILE_INTERVAL),
        ];

        let router = http::router(
            state.clone(),
            vec![
                crate::webhooks::routes::routes(),
                crate::calls::routes::routes(calls),
                crate::control::routes::routes(control),
                masking::routes(masking.clone()),
            ],
        );
        let mut http_stop = stop_rx;
        let mut limits = http::Limits::from_config(&state.config.http);
        if let Some(https) = &https {
            background.push(https.reload_on_sighup());
        }
        limits.tls = https;
        let http = tokio::spawn(http::serve_with(listener, router, limits, async move {
            let _ = http_stop.wait_for(|stopped| *stopped).await;
        }));
        tracing::info!(%addr, nodes = nodes.len(), tenants = state.tenants.len(), "fsgate is serving");
        Ok(Daemon {
            addr,
            state,
            masking: masking.clone(),
            nodes,
            pipeline,
            deliverer,
            http,
            stop,
            background,
        })
    }

    /// Resolves once a whole session-expiry sweep began and ended after the
    /// call (see [`Masking::swept`]).
    pub async fn expiry_swept(&self) {
        self.masking.swept().await;
    }

    /// Resolves once webhook delivery has nothing due left to attempt (see
    /// [`DelivererHandle::settled`]).
    pub async fn webhooks_settled(&self) {
        self.deliverer.settled().await;
    }

    /// The HTTP address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (tests inspect the store and switch through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Graceful drain and stop, bounded by `shutdown.drain_timeout_ms`.
    pub async fn shutdown(self) {
        let limit = Duration::from_millis(self.state.config.shutdown.drain_timeout_ms);
        tracing::info!(?limit, "draining: new originates are refused");
        self.state.drain.start();
        // Keep serving (new originates answer 503 `draining`, /readyz 503)
        // while call-control operations in flight resolve, so that clients
        // see a clear refusal rather than a closed port and every operation
        // gets its result here; bounded by the drain limit.
        let until = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < until && self.operations_in_flight().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.stop.send(true);
        let Daemon {
            nodes,
            pipeline,
            deliverer,
            http,
            background,
            ..
        } = self;
        // Requests in flight finish (the server stopped accepting new ones).
        match tokio::time::timeout(limit, http).await {
            Ok(_) => {}
            Err(_) => tracing::warn!("HTTP requests still running at the drain limit were cut"),
        }
        if tokio::time::timeout(limit, deliverer.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "webhook attempts still running at the drain limit were cut; they stay queued"
            );
        }
        for task in background {
            task.abort();
        }
        for node in nodes {
            node.shutdown().await;
        }
        // The nodes' senders are gone: the pipeline drains what it has.
        if tokio::time::timeout(limit, pipeline.join()).await.is_err() {
            tracing::warn!("the event pipeline did not drain in time");
        }
        tracing::info!("fsgate stopped");
    }

    /// Whether any tenant has a call-control operation still in progress
    /// (a store error counts as none: draining must not hang on it).
    async fn operations_in_flight(&self) -> bool {
        let horizon = self.state.clock.now() + chrono::Duration::days(1);
        for tenant in self.state.tenants.iter() {
            match self
                .state
                .store
                .due_operations(tenant.id(), horizon, 1)
                .await
            {
                Ok(ops) if !ops.is_empty() => return true,
                _ => {}
            }
        }
        false
    }

    /// Stops at once without draining, as a crash would (tests).
    pub fn abort(self) {
        self.http.abort();
        self.pipeline.abort();
        for task in &self.background {
            task.abort();
        }
        drop(self.deliverer);
        drop(self.nodes);
    }
}

fn node_config(n: &crate::config::NodeConfig) -> Result<NodeConfig, StartError> {
    let bad = |reason: String| StartError::Node {
        node: n.name.clone(),
        reason,
    };
    let password = Password::new(&n.password).map_err(|e| bad(e.to_string()))?;
    let mut config = NodeConfig::new(
        n.name.clone(),
        n.address.clone(),
        ConnectOptions::new(password),
    );
    config.format = EventFormat::Json;
    config.events = pipeline::SUBSCRIBED_EVENTS
        .iter()
        .map(|e| EventName::new(e).map_err(|err| bad(err.to_string())))
        .collect::<Result<_, _>>()?;
    Ok(config)
}

/// Brings every tenant's pool in line with the configuration, retrying
/// while the store is unavailable.
/// Keeps every tenant's pool in the store as configured, checking every
/// [`POOL_SYNC_INTERVAL`]: a store that came back empty (restarted without
/// persistence, failed over to an empty replica) gets its pools back without
/// a restart, and `/readyz` says `syncing` until it has them.
async fn sync_pools(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POOL_SYNC_INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        sync_pools_once(&state, false).await;
    }
}

/// One pass of [`sync_pools`]; `first` at start-up, where a change is
/// expected rather than a sign of a store that lost its contents.
async fn sync_pools_once(state: &AppState, first: bool) {
    let mut synced = true;
    for tenant in state.tenants.iter() {
        let numbers = tenant.masked_numbers();
        match tokio::time::timeout(
            POOL_SYNC_INTERVAL * 2,
            state.store.sync_pool(tenant.id(), numbers),
        )
        .await
        {
            Ok(Ok(true)) if !first => {
                metrics::counter!("fsgate_store_pools_restored_total", "tenant" => tenant.id().to_owned())
                    .increment(1);
                tracing::warn!(
                    tenant = tenant.id(),
                    "the store had lost the masked-number pool; put it back"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                synced = false;
                tracing::warn!(tenant = tenant.id(), %error, "cannot sync the masked-number pool; retrying");
            }
            Err(_) => {
                synced = false;
                tracing::warn!(
                    tenant = tenant.id(),
                    "syncing the masked-number pool timed out; retrying"
                );
            }
        }
    }
    state
        .pools_synced
        .store(synced, std::sync::atomic::Ordering::Relaxed);
}

/// Runs the daemon until SIGTERM/SIGINT, then drains.
pub async fn run(config: Config, log: LogFormat) -> ExitCode {
    let _ = log; // logging is set up by the CLI before this is called
    let daemon = match Daemon::start(config, Options::default()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "fsgate cannot start");
            eprintln!("fsgate serve: {e}");
            return ExitCode::FAILURE;
        }
    };
    crate::cli::shutdown_signal().await;
    daemon.shutdown().await;
    ExitCode::SUCCESS
}
