//! The call-control port: what the domains ask FreeSWITCH to do.
//!
//! Domains (`masking`, `calls`, `control`) call [`Switch`] with typed values:
//! answer this call, hang it up with this cause, transfer it there, originate
//! these legs, list a node's channels. The switch picks the node (the one
//! holding the call, or a connected one for a new call), builds the ESL
//! command with [`crate::esl::api`] (so no domain ever formats ESL text),
//! sends it, and turns FreeSWITCH's reply into an [`Outcome`]: `+OK` or
//! FreeSWITCH's own words when it refused. It records per-command metrics.
//! It keeps no call state: the call table does.

pub mod channels;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::esl::api::{ApiCommand, Destination, Originate, TransferLeg};
use crate::esl::connection::{BackgroundJob, RequestError};
use crate::esl::node::{NodeError, NodeHandle, NodeState};
use crate::esl::HangupCause;

pub use channels::ChannelRow;

/// What FreeSWITCH answered to a command that reached it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `+OK …`: done (or, for asynchronous commands, started).
    Ok(String),
    /// Anything else (`-ERR No such channel!`, `-ERROR`, `-USAGE …`): refused,
    /// with FreeSWITCH's words.
    Refused(String),
}

impl Outcome {
    fn from_reply(body: &[u8]) -> Outcome {
        let text = String::from_utf8_lossy(body).trim_end().to_owned();
        if text.starts_with("+OK") {
            Outcome::Ok(text)
        } else {
            Outcome::Refused(text)
        }
    }

    /// True for `+OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }

    /// FreeSWITCH's words.
    pub fn text(&self) -> &str {
        match self {
            Outcome::Ok(t) | Outcome::Refused(t) => t,
        }
    }
    /// The hangup cause a refusal names (`-ERR USER_BUSY`, as an originate's
    /// job ends when its call fails), or `None` for `+OK` and for a refusal
    /// that names none.
    pub fn refusal_cause(&self) -> Option<HangupCause> {
        match self {
            Outcome::Ok(_) => None,
            Outcome::Refused(t) => t
                .strip_prefix("-ERR")
                .map(str::trim)
                .and_then(HangupCause::from_name),
        }
    }
}

/// Why a command did not reach FreeSWITCH, or got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    /// No node of that name is configured.
    #[error("no FreeSWITCH node named {0:?} is configured")]
    UnknownNode(String),
    /// The node is not connected; nothing was sent.
    #[error("FreeSWITCH node {0} is not connected; the command was not sent")]
    NotConnected(String),
    /// No node at all is connected; nothing was sent.
    #[error("no FreeSWITCH node is connected; the command was not sent")]
    NoNodeConnected,
    /// Sent, but FreeSWITCH did not answer in time; it may still run.
    #[error("FreeSWITCH node {node} did not answer within {after:?}")]
    Timeout {
        /// Node.
        node: String,
        /// The limit.
        after: Duration,
    },
    /// The connection dropped before the answer; it may or may not have run.
    #[error("the connection to FreeSWITCH node {0} was lost before it answered")]
    ConnectionLost(String),
    /// FreeSWITCH answered something that is not a reply to this command.
    #[error("FreeSWITCH node {node} answered unexpectedly: {detail}")]
    Protocol {
        /// Node.
        node: String,
        /// What came back.
        detail: String,
    },
}

impl SwitchError {
    fn from_node(node: &str, e: NodeError) -> SwitchError {
        match e {
            NodeError::NotConnected { .. } => SwitchError::NotConnected(node.to_owned()),
            NodeError::Request { error, .. } => match error {
                RequestError::Timeout(after) => SwitchError::Timeout {
                    node: node.to_owned(),
                    after,
                },
                RequestError::ConnectionLost => SwitchError::ConnectionLost(node.to_owned()),
                RequestError::Unexpected(detail) => SwitchError::Protocol {
                    node: node.to_owned(),
                    detail,
                },
            },
        }
    }
}

/// A call placed by [`Switch::originate`]: its UUID is known before anything
/// was sent, so its events can be tracked from the first one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The node that dials.
    pub node: String,
    /// The first leg's UUID (`origination_uuid`).
    pub uuid: Uuid,
}

/// A call placed by [`Switch::originate_on`], with its job still running.
pub struct PlacedJob {
    /// Where and which call.
    pub placed: Placed,
    job: BackgroundJob,
}

impl PlacedJob {
    /// Waits for the `originate` job's own answer: `+OK <uuid>` once the
    /// first leg answered, `-ERR <CAUSE>` when it failed.
    pub async fn outcome(self, timeout: Duration) -> Result<Outcome, SwitchError> {
        let node = self.placed.node;
        match self.job.result(timeout).await {
            Ok(event) => Ok(Outcome::from_reply(
                event.body_text().unwrap_or_default().as_bytes(),
            )),
            Err(RequestError::Timeout(after)) => Err(SwitchError::Timeout { node, after }),
            Err(RequestError::ConnectionLost) => Err(SwitchError::ConnectionLost(node)),
            Err(RequestError::Unexpected(detail)) => Err(SwitchError::Protocol { node, detail }),
        }
    }
}

impl std::fmt::Debug for PlacedJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlacedJob")
            .field("placed", &self.placed)
            .field("job", &self.job.job_uuid())
            .finish()
    }
}

/// The FreeSWITCH nodes, as one port. Cheap to clone.
#[derive(Clone)]
pub struct Switch {
    nodes: Arc<Vec<NodeHandle>>,
    by_name: Arc<HashMap<String, usize>>,
    next: Arc<AtomicUsize>,
}

impl Switch {
    /// A switch over the supervised nodes.
    pub fn new(nodes: Vec<NodeHandle>) -> Switch {
        let by_name = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name().to_string(), i))
            .collect();
        Switch {
            nodes: Arc::new(nodes),
            by_name: Arc::new(by_name),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Every node and its state.
    pub fn node_states(&self) -> Vec<(String, NodeState)> {
        self.nodes
            .iter()
            .map(|n| (n.name().to_string(), n.state()))
            .collect()
    }

    /// True when at least one node is connected.
    pub fn any_connected(&self) -> bool {
        self.nodes.iter().any(NodeHandle::is_connected)
    }

    fn node(&self, name: &str) -> Result<&NodeHandle, SwitchError> {
        self.by_name
            .get(name)
            .map(|&i| &self.nodes[i])
            .ok_or_else(|| SwitchError::UnknownNode(name.to_owned()))
    }

    /// A connected node for a new call, round robin.
    pub fn pick_node(&self) -> Result<&NodeHandle, SwitchError> {
        let n = self.nodes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.nodes[(start + i) % n.max(1)])
            .find(|node| node.is_connected())
            .ok_or(SwitchError::NoNodeConnected)
    }

    async fn api(&self, node: &str, command: ApiCommand) -> Result<Outcome, SwitchError> {
        let handle = self.node(node)?;
        let started = Instant::now();
        let result = handle.api(&command).await;
        let name = command.name().to_owned();
        let outcome = result
            .map(|body| Outcome::from_reply(&body))
            .map_err(|e| SwitchError::from_node(node, e));
        record(node, &name, &outcome, started);
        outcome
    }

    /// `uuid_answer`.
    pub async fn answer(&self, node: &str, uuid: Uuid) -> Result<Outcome, SwitchError> {
        self.api(node, ApiCommand::uuid_answer(uuid)).await
    }

    /// `uuid_kill <uuid> <cause>`.
    pub async fn hangup(
        &self,
        node: &str,
        uuid: Uuid,
        cause: HangupCause,
    ) -> Result<Outcome, SwitchError> {
        self.api(node, ApiCommand::uuid_kill(uuid, cause)).await
    }

    /// `uuid_transfer` to an extension (back to the dialplan).
    pub async fn transfer(
        &self,
        node: &str,
        uuid: Uuid,
        to: &Destination,
    ) -> Result<Outcome, SwitchError> {
        self.api(node, ApiCommand::uuid_transfer(uuid, TransferLeg::Only, to))
            .await
    }

    /// `uuid_exists`.
    pub async fn exists(&self, node: &str, uuid: Uuid) -> Result<bool, SwitchError> {
        Ok(self.api(node, ApiCommand::uuid_exists(uuid)).await?.text() == "true")
    }

    /// Places a call with `bgapi originate` on a connected node. `originate`
    /// must carry the `origination_uuid` given as `uuid` (the caller chose it
    /// and recorded it before calling). Returns once FreeSWITCH accepted the
    /// job; how the call goes is told by its events.
    pub async fn originate(
        &self,
        originate: &Originate,
        uuid: Uuid,
    ) -> Result<Placed, SwitchError> {
        let node = self.pick_node()?.name().to_string();
        Ok(self.originate_on(&node, originate, uuid).await?.placed)
    }

    /// [`Switch::originate`] on a node the caller chose (with
    /// [`Switch::pick_node`], so that it could record the node before sending),
    /// keeping the pending result of the `bgapi`: FreeSWITCH answers
    /// `-ERR <CAUSE>` there when the first leg could not even be created
    /// (an unknown or down gateway), a failure no channel event reports.
    pub async fn originate_on(
        &self,
        node: &str,
        originate: &Originate,
        uuid: Uuid,
    ) -> Result<PlacedJob, SwitchError> {
        let handle = self.node(node)?;
        let command = ApiCommand::originate(originate).map_err(|e| SwitchError::Protocol {
            node: node.to_owned(),
            detail: e.to_string(),
        })?;
        let started = Instant::now();
        match handle.bgapi(&command).await {
            Ok(job) => {
                record(node, "originate", &Ok(Outcome::Ok("+OK".into())), started);
                let placed = Placed {
                    node: node.to_owned(),
                    uuid,
                };
                Ok(PlacedJob { placed, job })
            }
            Err(e) => {
                let error = SwitchError::from_node(node, e);
                record(node, "originate", &Err(error.clone()), started);
                Err(error)
            }
        }
    }

    /// `show channels as json` on one node.
    pub async fn channels(&self, node: &str) -> Result<Vec<ChannelRow>, SwitchError> {
        let handle = self.node(node)?;
        let body = handle
            .api(&ApiCommand::show_channels_json())
            .await
            .map_err(|e| SwitchError::from_node(node, e))?;
        channels::parse(&body).map_err(|detail| SwitchError::Protocol {
            node: node.to_owned(),
            detail,
        })
    }
}

fn record(node: &str, command: &str, outcome: &Result<Outcome, SwitchError>, started: Instant) {
    let result = match outcome {
        Ok(Outcome::Ok(_)) => "ok",
        Ok(Outcome::Refused(_)) => "refused",
        Err(SwitchError::Timeout { .. }) => "timeout",
        Err(_) => "error",
    };
    let labels = [
        ("node", node.to_owned()),
        ("command", command.to_owned()),
        ("result", result.to_owned()),
    ];
    metrics::counter!("fsgate_esl_commands_total", &labels).increment(1);
    metrics::histogram!(
        "fsgate_esl_command_seconds",
        &[("node", node.to_owned()), ("command", command.to_owned())]
    )
    .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_keep_freeswitch_words() {
        assert_eq!(Outcome::from_reply(b"+OK\n"), Outcome::Ok("+OK".into()));
        assert_eq!(
            Outcome::from_reply(b"-ERR No such channel!\n"),
            Outcome::Refused("-ERR No such channel!".into())
        );
        assert!(!Outcome::from_reply(b"-ERROR\n").is_ok());
        assert_eq!(
            Outcome::from_reply(b"-ERR USER_BUSY\n").refusal_cause(),
            Some(HangupCause::USER_BUSY)
        );
        assert_eq!(
            Outcome::from_reply(b"-ERR No such channel!\n").refusal_cause(),
            None
        );
        assert_eq!(Outcome::from_reply(b"+OK\n").refusal_cause(), None);
    }
}
