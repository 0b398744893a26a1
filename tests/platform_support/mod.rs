//! Test support for the platform tests: a daemon HTTP layer in-process on
//! port 0, with a store whose `ping` can be switched off, node states that
//! tests set, and a few test-only routes documented like real ones.
//!
//! The store is `store::memory::MemoryStore` behind a switch that makes it
//! unavailable, for readiness and 503 tests.
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
use fsgate::store::memory::MemoryStore;
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
    pub store: Arc<FlakyStore>,
    pub router: axum::Router,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Daemon {
    pub async fn start(config: Config) -> Daemon {
        let nodes = Arc::new(TestNodes::default());
        nodes.set("fs1", connecting());
        nodes.set("fs2", connecting());
        let store = Arc::new(FlakyStore::default());
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

// --- the memory store, which can be switched off ------------------------------------

/// `store::memory::MemoryStore` behind a switch: while down, every call
/// (`ping` included) answers `Unavailable`, as a lost Redis would.
pub struct FlakyStore {
    pub up: AtomicBool,
    pub inner: MemoryStore,
}

impl Default for FlakyStore {
    fn default() -> Self {
        FlakyStore {
            up: AtomicBool::new(true),
            inner: MemoryStore::new(),
        }
    }
}

impl FlakyStore {
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.up.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(StoreError::Unavailable("connection refused".into()))
        }
    }
}

#[async_trait]
impl Store for FlakyStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.ping().await
    }
    async fn sync_pool(&self, tenant: &str, numbers: &[String]) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.sync_pool(tenant, numbers).await
    }
    async fn create_session(&self, new: NewSession) -> Result<SessionRecord, CreateSessionError> {
        self.check()?;
        self.inner.create_session(new).await
    }
    async fn get_session(&self, t: &str, r: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.check()?;
        self.inner.get_session(t, r).await
    }
    async fn list_sessions(
        &self,
        t: &str,
        state: Option<SessionState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<SessionRecord>, StoreError> {
        self.check()?;
        self.inner.list_sessions(t, state, cursor, limit).await
    }
    async fn session_by_number(
        &self,
        t: &str,
        n: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.check()?;
        self.inner.session_by_number(t, n).await
    }
    async fn session_call_started(
        &self,
        t: &str,
        r: &str,
        c: &str,
        b: Option<(CallBinding, Duration)>,
        e: Option<Emission>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        self.check()?;
        self.inner.session_call_started(t, r, c, b, e).await
    }
    async fn session_call_ended(
        &self,
        t: &str,
        r: &str,
        c: &str,
        e: Option<Emission>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        self.check()?;
        self.inner.session_call_ended(t, r, c, e).await
    }
    async fn complete_session(
        &self,
        t: &str,
        r: &str,
        reason: CompletionReason,
        at: DateTime<Utc>,
        e: Option<Emission>,
    ) -> Result<Option<Transition<SessionRecord>>, StoreError> {
        self.check()?;
        self.inner.complete_session(t, r, reason, at, e).await
    }
    async fn due_sessions(
        &self,
        t: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.inner.due_sessions(t, now, limit).await
    }
    async fn put_call(&self, call: CallRecord, keep: Duration) -> Result<CallRecord, StoreError> {
        self.check()?;
        self.inner.put_call(call, keep).await
    }
    async fn get_call(&self, uuid: &str) -> Result<Option<CallRecord>, StoreError> {
        self.check()?;
        self.inner.get_call(uuid).await
    }
    async fn list_live_calls(
        &self,
        t: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<CallRecord>, StoreError> {
        self.check()?;
        self.inner.list_live_calls(t, cursor, limit).await
    }
    async fn live_calls_on_node(&self, node: &str) -> Result<Vec<CallRecord>, StoreError> {
        self.check()?;
        self.inner.live_calls_on_node(node).await
    }
    async fn put_call_binding(
        &self,
        uuid: &str,
        binding: CallBinding,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_call_binding(uuid, binding, ttl).await
    }
    async fn get_call_binding(&self, uuid: &str) -> Result<Option<CallBinding>, StoreError> {
        self.check()?;
        self.inner.get_call_binding(uuid).await
    }
    async fn next_call_sequence(&self, uuid: &str) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.next_call_sequence(uuid).await
    }
    async fn register_operation(
        &self,
        op: OperationRecord,
        ttl: Duration,
    ) -> Result<Registered, StoreError> {
        self.check()?;
        self.inner.register_operation(op, ttl).await
    }
    async fn get_operation(
        &self,
        t: &str,
        id: &str,
    ) -> Result<Option<OperationRecord>, StoreError> {
        self.check()?;
        self.inner.get_operation(t, id).await
    }
    async fn finish_operation(
        &self,
        t: &str,
        id: &str,
        status: OperationStatus,
        detail: Option<String>,
        at: DateTime<Utc>,
        e: Option<Emission>,
    ) -> Result<Option<Transition<OperationRecord>>, StoreError> {
        self.check()?;
        self.inner
            .finish_operation(t, id, status, detail, at, e)
            .await
    }
    async fn pending_operations_for_call(
        &self,
        t: &str,
        call: &str,
        command: Option<&str>,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        self.check()?;
        self.inner
            .pending_operations_for_call(t, call, command)
            .await
    }
    async fn due_operations(
        &self,
        t: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        self.check()?;
        self.inner.due_operations(t, now, limit).await
    }
    async fn enqueue_webhook(
        &self,
        job: WebhookJob,
        deliver: bool,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner
            .enqueue_webhook(job, deliver, now, retention)
            .await
    }
    async fn claim_webhooks(
        &self,
        t: &str,
        consumer: &str,
        max: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedWebhook>, StoreError> {
        self.check()?;
        self.inner
            .claim_webhooks(t, consumer, max, lease, now)
            .await
    }
    async fn settle_webhook(
        &self,
        t: &str,
        claim: &ClaimedWebhook,
        outcome: WebhookOutcome,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.settle_webhook(t, claim, outcome).await
    }
    async fn dead_webhooks(&self, t: &str, limit: usize) -> Result<Vec<WebhookJob>, StoreError> {
        self.check()?;
        self.inner.dead_webhooks(t, limit).await
    }
    async fn events_after(
        &self,
        t: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<LoggedEvent>, StoreError> {
        self.check()?;
        self.inner.events_after(t, after, limit).await
    }
    async fn begin_idempotent(
        &self,
        scope: &IdempotencyScope,
        attempt: &IdempotencyAttempt,
        lease: Duration,
    ) -> Result<Begun, StoreError> {
        self.check()?;
        self.inner.begin_idempotent(scope, attempt, lease).await
    }
    async fn finish_idempotent(
        &self,
        scope: &IdempotencyScope,
        owner: &str,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner
            .finish_idempotent(scope, owner, response, ttl)
            .await
    }
    async fn release_idempotent(
        &self,
        scope: &IdempotencyScope,
        owner: &str,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.release_idempotent(scope, owner).await
    }
}
