//! The supervisor of one FreeSWITCH node: connected whenever it can be.
//!
//! A [`Node`] owns the connection to one configured switch. It connects,
//! authenticates and subscribes; forwards every event, tagged with the node's
//! name, to one channel shared by all nodes (taking them from the
//! connection's byte-bounded queue a batch at a time; while that channel is
//! full they wait in the queue, which drops beyond its bound); and when the
//! connection ends it says so ([`NodeEvent::Disconnected`]), then reconnects
//! with jittered exponential backoff capped near one second, re-authenticating
//! and re-subscribing, and says so again ([`NodeEvent::Connected`]). Upper layers
//! use those two signals to fail in-flight work with a result and to reconcile
//! their view of live calls: events that happened while disconnected are gone.
//!
//! Commands go through [`NodeHandle`]. While the node is not connected they
//! fail at once with [`NodeError::NotConnected`] rather than wait for a
//! reconnect that may never come; a command in flight when the connection drops
//! fails with [`RequestError::ConnectionLost`]. A refused password stops the
//! supervisor ([`NodeState::Failed`]): retrying cannot fix configuration. An
//! ACL rejection is logged as an error and retried at the slowest pace: a
//! switch reloading mod_event_socket rejects every client that way until the
//! module is back, and the node must not stay down after it.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::api::ApiCommand;
use super::command::EventName;
use super::connection::{
    self, BackgroundJob, Client, CloseReason, ConnectError, ConnectOptions, Delivery, RequestError,
};
use super::event::{Event, EventFormat};

/// How to reach and watch one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's name in config, logs, metrics and webhooks.
    pub name: String,
    /// `host:port` of mod_event_socket.
    pub address: String,
    /// Connection options (password, timeouts, event capacity).
    pub connect: ConnectOptions,
    /// Event format to subscribe with.
    pub format: EventFormat,
    /// Events to subscribe to; empty means ALL. BACKGROUND_JOB is needed for
    /// `bgapi` results and HEARTBEAT for liveness.
    pub events: Vec<EventName>,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay (before jitter).
    pub backoff_max: Duration,
}

impl NodeConfig {
    /// A node with the default backoff (50 ms doubling to 1 s).
    pub fn new(
        name: impl Into<String>,
        address: impl Into<String>,
        connect: ConnectOptions,
    ) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            address: address.into(),
            connect,
            format: EventFormat::Json,
            events: Vec::new(),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
        }
    }
}

/// What a node reports to the layers above.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// Connected, authenticated and subscribed (again, after a reconnect).
    Connected {
        /// Node name.
        node: Arc<str>,
        /// How many times this node has connected before (0 on the first).
        reconnects: u64,
    },
    /// The connection ended; the supervisor is reconnecting.
    Disconnected {
        /// Node name.
        node: Arc<str>,
        /// Why it ended.
        reason: CloseReason,
    },
    /// An event from the node.
    Event {
        /// Node name.
        node: Arc<str>,
        /// The event.
        event: Event,
    },
    /// Events were dropped because the consumer fell behind: reconcile.
    Lagged {
        /// Node name.
        node: Arc<str>,
        /// How many.
        dropped: u64,
    },
    /// The supervisor gave up: configuration must change.
    Failed {
        /// Node name.
        node: Arc<str>,
        /// The non-retryable error, as text.
        error: String,
    },
}

/// Where a node stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeState {
    /// Trying to connect (first attempt or after a loss).
    Connecting {
        /// The last error, if an attempt failed.
        last_error: Option<String>,
    },
    /// Connected and subscribed.
    Connected {
        /// When the connection was made.
        since: Instant,
    },
    /// Stopped for good: the password was refused.
    Failed {
        /// Why.
        error: String,
    },
    /// Shut down by us.
    Stopped,
}

/// Why a command could not be sent to a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The node is not connected right now. Nothing was sent.
    #[error("FreeSWITCH node {node} is not connected")]
    NotConnected {
        /// Node name.
        node: Arc<str>,
    },
    /// The request failed on the connection.
    #[error("FreeSWITCH node {node}: {error}")]
    Request {
        /// Node name.
        node: Arc<str>,
        /// What went wrong.
        error: RequestError,
    },
}

struct Shared {
    name: Arc<str>,
    client: RwLock<Option<Client>>,
    state: watch::Sender<NodeState>,
}

/// Sends commands to a node and reads its state. Cheap to clone.
#[derive(Clone)]
pub struct NodeHandle {
    shared: Arc<Shared>,
}

/// A running supervisor.
pub struct Node {
    handle: NodeHandle,
    task: JoinHandle<()>,
}

impl Node {
    /// Starts supervising a node; its events go to `out`.
    pub fn spawn(config: NodeConfig, out: mpsc::Sender<NodeEvent>) -> Node {
        let (state, _) = watch::channel(NodeState::Connecting { last_error: None });
        let shared = Arc::new(Shared {
            name: Arc::from(config.name.as_str()),
            client: RwLock::new(None),
            state,
        });
        let task = tokio::spawn(supervise(config, shared.clone(), out));
        Node {
            handle: NodeHandle { shared },
            task,
        }
    }

    /// A handle for commands and state.
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Stops the supervisor and closes the connection.
    pub async fn shutdown(self) {
        self.task.abort();
        let client = self
            .handle
            .shared
            .client
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(client) = client {
            client.close().await;
        }
        self.handle.shared.state.send_replace(NodeState::Stopped);
    }
}

impl NodeHandle {
    /// The node's name.
    pub fn name(&self) -> &Arc<str> {
        &self.shared.name
    }

    /// The current state.
    pub fn state(&self) -> NodeState {
        self.shared.state.borrow().clone()
    }

    /// A receiver that sees every state change.
    pub fn watch_state(&self) -> watch::Receiver<NodeState> {
        self.shared.state.subscribe()
    }

    /// True while connected.
    pub fn is_connected(&self) -> bool {
        matches!(self.state(), NodeState::Connected { .. })
    }

    fn client(&self) -> Result<Client, NodeError> {
        self.shared
            .client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|c| !c.is_closed())
            .ok_or_else(|| NodeError::NotConnected {
                node: self.shared.name.clone(),
            })
    }

    fn wrap(&self, error: RequestError) -> NodeError {
        NodeError::Request {
            node: self.shared.name.clone(),
            error,
        }
    }

    /// Runs `api <command>` on the node.
    pub async fn api(&self, command: &ApiCommand) -> Result<Bytes, NodeError> {
        let client = self.client()?;
        client.api(command).await.map_err(|e| self.wrap(e))
    }

    /// Runs `bgapi <command>` on the node.
    pub async fn bgapi(&self, command: &ApiCommand) -> Result<BackgroundJob, NodeError> {
        let client = self.client()?;
        client.bgapi(command).await.map_err(|e| self.wrap(e))
    }
}

async fn supervise(config: NodeConfig, shared: Arc<Shared>, out: mpsc::Sender<NodeEvent>) {
    let name = shared.name.clone();
    let mut delay = config.backoff_min;
    let mut connections = 0u64;
    loop {
        match connect_and_subscribe(&config).await {
            Ok((client, mut events)) => {
                delay = config.backoff_min;
                *shared.client.write().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
                shared.state.send_replace(NodeState::Connected {
                    since: Instant::now(),
                });
                tracing::info!(node = %name, address = %config.address, "FreeSWITCH node connected");
                let hello = NodeEvent::Connected {
                    node: name.clone(),
                    reconnects: connections,
                };
                connections += 1;
                if out.send(hello).await.is_err() {
                    return;
                }
                if !forward(&mut events, &name, &out).await {
                    client.close().await;
                    return;
                }
                let reason = events.close_reason().unwrap_or(CloseReason::PeerClosed);
                *shared.client.write().unwrap_or_else(|e| e.into_inner()) = None;
                shared.state.send_replace(NodeState::Connecting {
                    last_error: Some(reason.to_string()),
                });
                tracing::warn!(node = %name, %reason, "FreeSWITCH node disconnected; reconnecting");
                if out
                    .send(NodeEvent::Disconnected {
                        node: name.clone(),
                        reason,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(error) if !error.is_retryable() => {
                let error = error.to_string();
                tracing::error!(node = %name, %error, "FreeSWITCH node refused us; not retrying");
                shared.state.send_replace(NodeState::Failed {
                    error: error.clone(),
                });
                let _ = out.send(NodeEvent::Failed { node: name, error }).await;
                return;
            }
            Err(error) => {
                if matches!(error, ConnectError::Rejected(_)) {
                    // An operator must look (or the switch is reloading its
                    // Event Socket): say so, and retry at the slowest pace.
                    tracing::error!(node = %name, %error, "FreeSWITCH node rejected us by ACL; retrying");
                    delay = config.backoff_max;
                } else {
                    tracing::debug!(node = %name, %error, "connecting to FreeSWITCH failed");
                }
                shared.state.send_replace(NodeState::Connecting {
                    last_error: Some(error.to_string()),
                });
            }
        }
        tokio::time::sleep(jitter(delay)).await;
        delay = (delay * 2).min(config.backoff_max);
    }
}

/// Deliveries taken from the connection's queue at once.
const FORWARD_BATCH: usize = 32;

/// Forwards a connection's deliveries until it ends (true) or `out` is
/// closed (false). The queue is drained a batch at a time: one lock and at
/// most one wake-up per batch, not per event.
async fn forward(
    events: &mut connection::Events,
    name: &Arc<str>,
    out: &mpsc::Sender<NodeEvent>,
) -> bool {
    let mut batch = Vec::with_capacity(FORWARD_BATCH);
    while events.recv_many(&mut batch, FORWARD_BATCH).await > 0 {
        for delivery in batch.drain(..) {
            let msg = match delivery {
                Delivery::Event(event) => NodeEvent::Event {
                    node: name.clone(),
                    event,
                },
                Delivery::Lagged(dropped) => NodeEvent::Lagged {
                    node: name.clone(),
                    dropped,
                },
            };
            if out.send(msg).await.is_err() {
                return false;
            }
        }
    }
    true
}

async fn connect_and_subscribe(
    config: &NodeConfig,
) -> Result<(Client, connection::Events), ConnectError> {
    let (client, events) = connection::connect(&config.address, &config.connect).await?;
    if let Err(e) = client.subscribe(config.format, &config.events).await {
        client.close().await;
        return Err(ConnectError::Protocol(format!(
            "subscribing to events failed: {e}"
        )));
    }
    Ok((client, events))
}

/// ±20 % so that many daemons do not reconnect in lockstep.
fn jitter(d: Duration) -> Duration {
    let factor = rand::thread_rng().gen_range(0.8..1.2);
    d.mul_f64(factor)
}
