//! Test support for the platform tests: a daemon HTTP layer in-process on
//! port 0, with a store whose `ping` can be switched off, node states that
//! tests set, and a few test-only routes documented like real ones.
//!
//! The store stand-in answers only `ping` (everything else reports
//! `Unavailable`); it is replaced by `store::memory::MemoryStore` once that
//! lands in main.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use utoipa::ToSchema;

use fsgate::clock::ManualClock;
use fsgate::config::{self, Config};
use fsgate::esl::node::NodeState;
use fsgate::http::{
    self, ApiError, ApiJson, ApiRouter, AppState, DialplanCaller, NodeStatus, Tenant,
};
use fsgate::store::*;

/// Keys of the test tenants (their hashes are in [`config_text`]).
pub const ACME_KEY: &str = "test-key-acme-0001";
pub const BETA_KEY: &str = "test-key-beta-0002";
pub const DIALPLAN_TOKEN: &str = "dialplan-token-xyz";

/// A valid configuration with two tenants and one node.
pub fn config_text(dialplan_token: Option<&str>, max_body: usize) -> String {
    let token = dialplan_token
        .map(|t| format!("dialplan_token = \"{t}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[http]
listen = "127.0.0.1:0"
max_body_bytes = {max_body}
{token}
[[freeswitch]]
name = "fs1"
address = "127.0.0.1:8021"

[[freeswitch]]
name = "fs2"
address = "127.0.0.1:8022"

[[tenants]]
id = "acme"
api_keys_sha256 = ["{acme}"]
masked_numbers = ["+15550100001"]

[[tenants]]
id = "beta"
api_keys_sha256 = ["{beta}"]
masked_numbers = ["+15550100002"]
"#,
        acme = fsgate::tenants::hash_key(ACME_KEY),
        beta = fsgate::tenants::hash_key(BETA_KEY),
    )
}

pub fn config(dialplan_token: Option<&str>, max_body: usize) -> Config {
    config::load_str(
        &config_text(dialplan_token, max_body),
        "test.toml",
        Vec::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Node states the test sets.
#[derive(Default)]
pub struct TestNodes(pub Mutex<Vec<(String, NodeState)>>);

impl TestNodes {
    pub fn set(&self, name: &str, state: NodeState) {
        let mut nodes = self.0.lock().unwrap();
        match nodes.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = state,
            None => nodes.push((name.to_string(), state)),
        }
    }
}

impl NodeStatus for TestNodes {
    fn nodes(&self) -> Vec<(String, NodeState)> {
        self.0.lock().unwrap().clone()
    }
}

pub fn connected() -> NodeState {
    NodeState::Connected {
        since: Instant::now(),
    }
}

pub fn connecting() -> NodeState {
    NodeState::Connecting {
        last_error: Some("connection refused".into()),
    }
}

/// A running HTTP layer.
pub struct Daemon {
    pub addr: SocketAddr,
    pub base: String,
    pub state: AppState,
    pub nodes: Arc<TestNodes>,
    pub store: Arc<PingStore>,
    pub router: axum::Router,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Daemon {
    pub async fn start(config: Config) -> Daemon {
        let nodes = Arc::new(TestNodes::default());
        nodes.set("fs1", connecting());
        nodes.set("fs2", connecting());
        let store = Arc::new(PingStore::default());
        let state = AppState::new(
            config,
            store.clone(),
            nodes.clone(),
            Arc::new(ManualClock::new(Utc::now())),
            fsgate::telemetry::metrics(),
        );
        let router = http::router(state.clone(), vec![test_routes()]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(listener, router.clone(), async move {
            let _ = rx.await;
        }));
        Daemon {
            addr,
            base: format!("http://{addr}"),
            state,
            nodes,
            store,
            router,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("graceful shutdown")
                .unwrap()
                .unwrap();
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

// --- test routes, documented like real ones ------------------------------------------

pub fn test_routes() -> ApiRouter {
    ApiRouter::new()
        .api(__path_whoami, whoami)
        .api(__path_echo, echo)
        .api(__path_originate, originate)
        .api(__path_store_ping, store_ping)
        .api(__path_route, route)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    pub tenant: String,
}

/// The authenticated tenant.
#[utoipa::path(get, path = "/v1/test/whoami", tag = "test", responses((status = 200, body = WhoAmI)))]
pub async fn whoami(tenant: Tenant) -> Json<WhoAmI> {
    Json(WhoAmI {
        tenant: tenant.id().to_string(),
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoBody {
    pub caller: String,
    #[serde(default)]
    pub ttl_minutes: Option<u32>,
    #[serde(default)]
    pub legs: Vec<Leg>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Leg {
    pub number: String,
}

/// Echoes a JSON body.
#[utoipa::path(post, path = "/v1/test/echo", tag = "test", request_body = EchoBody,
               responses((status = 200, body = EchoBody)))]
pub async fn echo(_tenant: Tenant, ApiJson(body): ApiJson<EchoBody>) -> ApiJson<EchoBody> {
    ApiJson(body)
}

/// An originate-type request: refused while draining.
#[utoipa::path(post, path = "/v1/test/originate", tag = "test", responses((status = 202)))]
pub async fn originate(
    _tenant: Tenant,
    State(state): State<AppState>,
) -> Result<axum::http::StatusCode, ApiError> {
    state.drain.check()?;
    Ok(axum::http::StatusCode::ACCEPTED)
}

/// Pings the store through `?` (StoreError → ApiError).
#[utoipa::path(get, path = "/v1/test/store", tag = "test", responses((status = 204)))]
pub async fn store_ping(
    _tenant: Tenant,
    State(state): State<AppState>,
) -> Result<axum::http::StatusCode, ApiError> {
    state.store.ping().await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Admitted {
    pub by: String,
}

/// Stands in for the dialplan lookup.
#[utoipa::path(get, path = "/v1/test/dialplan", tag = "test", security(("dialplan_token" = [])),
               responses((status = 200, body = Admitted)))]
pub async fn route(caller: DialplanCaller) -> Json<Admitted> {
    Json(Admitted {
        by: format!("{:?}", caller.admitted_by),
    })
}

// --- a ping-only store ---------------------------------------------------------------

/// `ping` answers while `up`; everything else is `Unavailable`.
pub struct PingStore {
    pub up: AtomicBool,
}

impl Default for PingStore {
    fn default() -> Self {
        PingStore {
            up: AtomicBool::new(true),
        }
    }
}

impl PingStore {
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

fn nope<T>() -> Result<T, StoreError> {
    Err(StoreError::Unavailable("ping-only test store".into()))
}

#[async_trait]
impl Store for PingStore {
    async fn ping(&self) -> Result<(), StoreError> {
        if self.up.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(StoreError::Unavailable("connection refused".into()))
        }
    }
    async fn claim_event(&self, _: &str, _: u64, _: Duration) -> Result<bool, StoreError> {
        nope()
    }
    async fn sync_pool(&self, _: &str, _: &[String]) -> Result<(), StoreError> {
        nope()
    }
    async fn create_session(&self, _: NewSession) -> Result<SessionRecord, CreateSessionError> {
        Err(nope::<()>().unwrap_err().into())
    }
    async fn get_session(&self, _: &str, _: &str) -> Result<Option<SessionRecord>, StoreError> {
        nope()
    }
    async fn list_sessions(
        &self,
        _: &str,
        _: Option<SessionState>,
        _: Option<&str>,
        _: usize,
    ) -> Result<Page<SessionRecord>, StoreError> {
        nope()
    }
    async fn session_by_number(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        nope()
    }
    async fn session_call_started(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        nope()
    }
    async fn session_call_ended(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        nope()
    }
    async fn complete_session(
        &self,
        _: &str,
        _: &str,
        _: CompletionReason,
        _: DateTime<Utc>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        nope()
    }
    async fn due_sessions(
        &self,
        _: &str,
        _: DateTime<Utc>,
        _: usize,
    ) -> Result<Vec<String>, StoreError> {
        nope()
    }
    async fn put_call(&self, _: CallRecord, _: Duration) -> Result<CallRecord, StoreError> {
        nope()
    }
    async fn get_call(&self, _: &str) -> Result<Option<CallRecord>, StoreError> {
        nope()
    }
    async fn list_live_calls(
        &self,
        _: &str,
        _: Option<&str>,
        _: usize,
    ) -> Result<Page<CallRecord>, StoreError> {
        nope()
    }
    async fn live_calls_on_node(&self, _: &str) -> Result<Vec<CallRecord>, StoreError> {
        nope()
    }
    async fn put_call_binding(
        &self,
        _: &str,
        _: CallBinding,
        _: Duration,
    ) -> Result<(), StoreError> {
        nope()
    }
    async fn get_call_binding(&self, _: &str) -> Result<Option<CallBinding>, StoreError> {
        nope()
    }
    async fn next_call_sequence(&self, _: &str) -> Result<u64, StoreError> {
        nope()
    }
    async fn register_operation(
        &self,
        _: OperationRecord,
        _: Duration,
    ) -> Result<Registered, StoreError> {
        nope()
    }
    async fn get_operation(&self, _: &str, _: &str) -> Result<Option<OperationRecord>, StoreError> {
        nope()
    }
    async fn finish_operation(
        &self,
        _: &str,
        _: &str,
        _: OperationStatus,
        _: Option<String>,
        _: DateTime<Utc>,
    ) -> Result<Option<Transition<OperationRecord>>, StoreError> {
        nope()
    }
    async fn pending_operations_for_call(
        &self,
        _: &str,
        _: &str,
        _: Option<&str>,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        nope()
    }
    async fn due_operations(
        &self,
        _: &str,
        _: DateTime<Utc>,
        _: usize,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        nope()
    }
    async fn enqueue_webhook(
        &self,
        _: WebhookJob,
        _: bool,
        _: DateTime<Utc>,
        _: Duration,
    ) -> Result<(), StoreError> {
        nope()
    }
    async fn claim_webhooks(
        &self,
        _: &str,
        _: &str,
        _: usize,
        _: Duration,
        _: DateTime<Utc>,
    ) -> Result<Vec<ClaimedWebhook>, StoreError> {
        nope()
    }
    async fn settle_webhook(
        &self,
        _: &str,
        _: &ClaimedWebhook,
        _: WebhookOutcome,
    ) -> Result<(), StoreError> {
        nope()
    }
    async fn dead_webhooks(&self, _: &str, _: usize) -> Result<Vec<WebhookJob>, StoreError> {
        nope()
    }
    async fn events_after(
        &self,
        _: &str,
        _: Option<&str>,
        _: usize,
    ) -> Result<Page<LoggedEvent>, StoreError> {
        nope()
    }
}
