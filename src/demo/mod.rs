//! `fsgate demo`: the whole product in one process, walked through for a
//! person. The FreeSWITCH simulator runs the shipped dialplan (its
//! `fsgate_url` pointing at the daemon; far ends answer after about 300 ms),
//! the real daemon runs on the memory store on a free loopback port, and a
//! webhook receiver verifies every signature. A demo tenant is provisioned
//! with a generated API key and webhook secret, then [`steps`] walks through
//! a masked-number call, a click-to-call and the three call-control commands,
//! printing every API exchange and every webhook.
//!
//! This module owns the assembly and tear-down and the typed failure; it
//! holds no product rules (it uses the public API exactly as a customer
//! would) and never binds a fixed port or writes outside a temporary
//! directory it removes again.

mod receiver;
mod steps;
mod transcript;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use serde_json::json;

use crate::clock::SystemClock;
use crate::config::{Config, NodeConfig, TenantConfig};
use crate::daemon::{Daemon, Options};
use crate::sim::{self, SimConfig};
use crate::webhooks::sign::WebhookSecret;

pub use receiver::Delivery;
pub use transcript::Transcript;

/// The demo tenant's id (also its X-App-ID).
pub const TENANT: &str = "demo";
/// The demo tenant's masked-number pool.
pub const MASKED_POOL: [&str; 3] = ["+15550100001", "+15550100002", "+15550100003"];
/// The demo tenant's call-control number (inbound calls to it are parked).
pub const CONTROL_NUMBER: &str = "+15550109000";
/// How long simulated far ends ring before they answer.
pub const ANSWER_AFTER: Duration = Duration::from_millis(300);
/// The longest the whole walkthrough may take.
pub const OVERALL_LIMIT: Duration = Duration::from_secs(30);

/// The shipped dialplan, built in so the demo runs from any directory.
const SHIPPED_PUBLIC: &str = include_str!("../../dialplan/public/00_fsgate.xml");
const SHIPPED_FSGATE: &str = include_str!("../../dialplan/fsgate.xml");

/// How to run the demo.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Print the transcript on stdout as it happens.
    pub echo: bool,
    /// Run this dialplan directory instead of the built-in copy of `dialplan/`.
    pub dialplan: Option<PathBuf>,
}

/// Why the demo stopped. The first failure ends the walkthrough.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Something the demo needs could not be set up.
    #[error("set-up failed: {0}")]
    Setup(String),
    /// The simulator did not start.
    #[error("the FreeSWITCH simulator did not start: {0}")]
    Sim(#[from] sim::SimError),
    /// The daemon did not start.
    #[error("the daemon did not start: {0}")]
    Daemon(#[from] crate::daemon::StartError),
    /// The generated configuration is invalid (a bug in the demo).
    #[error("the demo configuration is invalid: {0}")]
    Config(String),
    /// A request could not be sent or its answer read.
    #[error("{method} {path}: {reason}")]
    Http {
        /// The method.
        method: String,
        /// The path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The API answered with another status than the walkthrough expects.
    #[error("{method} {path}: expected {expected}, got {got}: {body}")]
    Status {
        /// The method.
        method: String,
        /// The path.
        path: String,
        /// The status the step needs.
        expected: u16,
        /// The status received.
        got: u16,
        /// The response body.
        body: String,
    },
    /// An expected webhook did not arrive in time.
    #[error("no {kind} webhook within {within:?} (received so far: {seen:?})")]
    NoWebhook {
        /// The envelope type waited for.
        kind: String,
        /// How long.
        within: Duration,
        /// The types received so far.
        seen: Vec<String>,
    },
    /// A webhook's signature did not verify.
    #[error("a {kind} webhook failed signature verification: {reason}")]
    Signature {
        /// Its type.
        kind: String,
        /// Why.
        reason: String,
    },
    /// Something the walkthrough checks was not as it should be.
    #[error("{0}")]
    Check(String),
    /// The whole walkthrough took too long.
    #[error("the demo did not finish within {0:?}")]
    Overall(Duration),
}

/// What a finished demo reports.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Every line shown.
    pub transcript: String,
    /// Webhooks received (every one verified).
    pub webhooks: usize,
    /// Steps completed.
    pub steps: usize,
}

/// A failed demo: the error and what was shown until then.
#[derive(Debug)]
pub struct DemoFailure {
    /// The first failure.
    pub error: DemoError,
    /// Every line shown until then.
    pub transcript: String,
}

/// Runs the whole demo: assemble, walk through, tear down.
pub async fn run(options: DemoOptions) -> Result<DemoReport, DemoFailure> {
    let transcript = Transcript::new(options.echo);
    let outcome =
        match tokio::time::timeout(OVERALL_LIMIT, assemble_and_walk(&options, &transcript)).await {
            Ok(r) => r,
            Err(_) => Err(DemoError::Overall(OVERALL_LIMIT)),
        };
    match outcome {
        Ok((webhooks, steps)) => Ok(DemoReport {
            transcript: transcript.text(),
            webhooks,
            steps,
        }),
        Err(error) => Err(DemoFailure {
            error,
            transcript: transcript.text(),
        }),
    }
}

/// A directory holding a copy of the shipped dialplan, removed on drop.
struct TempDialplan(PathBuf);

impl TempDialplan {
    fn write() -> Result<TempDialplan, DemoError> {
        let dir = std::env::temp_dir().join(format!("fsgate-demo-{}", uuid::Uuid::new_v4()));
        let io = |e: std::io::Error| {
            DemoError::Setup(format!("writing the dialplan to {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir.join("public")).map_err(io)?;
        std::fs::write(dir.join("public").join("00_fsgate.xml"), SHIPPED_PUBLIC).map_err(io)?;
        std::fs::write(dir.join("fsgate.xml"), SHIPPED_FSGATE).map_err(io)?;
        Ok(TempDialplan(dir))
    }
}

impl Drop for TempDialplan {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

fn demo_tenant(
    api_key: &str,
    secret: &str,
    webhook_url: String,
) -> Result<TenantConfig, DemoError> {
    let mut t: TenantConfig = serde_json::from_value(json!({ "id": TENANT }))
        .map_err(|e| DemoError::Config(format!("tenant: {e}")))?;
    t.api_keys_sha256 = vec![crate::tenants::hash_key(api_key)];
    t.masked_numbers = MASKED_POOL.iter().map(|s| (*s).to_owned()).collect();
    t.control_numbers = vec![CONTROL_NUMBER.to_owned()];
    t.webhook_url = Some(webhook_url);
    t.webhook_secret = Some(secret.to_owned());
    t.trunk = "carrier".into();
    t.dial_string = "sofia/gateway/${trunk}/${number}".into();
    Ok(t)
}

async fn assemble_and_walk(
    options: &DemoOptions,
    transcript: &Transcript,
) -> Result<(usize, usize), DemoError> {
    // The tenant's credentials, generated for this run.
    let api_key = format!("demo_{}", hex::encode(random_bytes(16)));
    let secret = WebhookSecret::from_bytes(&random_bytes(32))
        .map_err(|e| DemoError::Setup(format!("webhook secret: {e}")))?;
    let secret_text = secret.to_config_string();

    let receiver = receiver::Receiver::start(secret, transcript.clone()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| DemoError::Setup(format!("cannot listen on 127.0.0.1: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| DemoError::Setup(format!("daemon listener: {e}")))?;

    let temp = match &options.dialplan {
        Some(_) => None,
        None => Some(TempDialplan::write()?),
    };
    let dialplan_dir = match (&options.dialplan, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(t)) => t.0.clone(),
        (None, None) => return Err(DemoError::Setup("no dialplan".into())),
    };
    let mut sim_cfg = SimConfig::ephemeral();
    sim_cfg.dialplan_dir = Some(dialplan_dir);
    sim_cfg.globals = vec![("fsgate_url".into(), format!("http://{addr}"))];
    sim_cfg.answer_delay = ANSWER_AFTER;
    sim_cfg.heartbeat_interval = Duration::from_secs(5);
    let sim = sim::start(sim_cfg).await?;

    let mut config = Config::default();
    config.http.listen = addr.to_string();
    config.http.dialplan_token = None;
    config.store.url = "memory://".into();
    config.freeswitch = vec![NodeConfig {
        name: "fs1".into(),
        address: sim.esl_addr().to_string(),
        password: "ClueCon".into(),
    }];
    config.tenants = vec![demo_tenant(&api_key, &secret_text, receiver.url())?];
    config.shutdown.drain_timeout_ms = 2000;
    let problems = crate::config::validate(&config);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        return Err(DemoError::Config(list.join("; ")));
    }

    let daemon = Daemon::start(
        config,
        Options {
            clock: Arc::new(SystemClock),
            listener: Some(listener),
            pipeline_shards: 2,
        },
    )
    .await?;

    transcript.heading("fsgate demo");
    transcript.note(&format!(
        "FreeSWITCH simulator: Event Socket on {} running the shipped dialplan (fsgate_url=http://{addr}); far ends answer after {} ms",
        sim.esl_addr(),
        ANSWER_AFTER.as_millis()
    ));
    transcript.note(&format!("daemon: http://{addr} on the memory store"));
    transcript.note(&format!(
        "tenant {TENANT:?}: API key {api_key} (stored as its SHA-256), masked pool {}, control number {CONTROL_NUMBER}",
        MASKED_POOL.join(", ")
    ));
    transcript.note(&format!(
        "webhooks: {} (every signature verified with the tenant's secret)",
        receiver.url()
    ));

    let world = steps::World {
        api: steps::Api::new(format!("http://{addr}"), api_key, transcript.clone()),
        sim: &sim,
        receiver: &receiver,
        transcript,
    };
    let walked = async {
        world.api.wait_ready().await?;
        steps::walk(&world).await
    }
    .await;

    daemon.shutdown().await;
    sim.shutdown().await;
    let webhooks = receiver.all().len();
    receiver.stop();
    drop(temp);
    let steps = walked?;
    transcript.heading("done");
    transcript.note(&format!(
        "all {steps} steps succeeded; {webhooks} webhooks received, every signature ok"
    ));
    Ok((webhooks, steps))
}
