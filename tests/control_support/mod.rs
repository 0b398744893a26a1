//! One in-process "daemon" for the call-session and call-control tests: the
//! simulator running the shipped `dialplan/` (its route lookup answered by a
//! stub that parks calls to control numbers), one ESL node, the event
//! pipeline with the lifecycle and answer-confirmation handlers, a memory
//! store whose event log shows every webhook, and both services. Time for
//! operations comes from a manual clock.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use fsgate::calls::lifecycle::Lifecycle;
use fsgate::calls::{CallService, CallSettings};
use fsgate::clock::{ManualClock, SharedClock, SystemClock};
use fsgate::config::{ControlConfig, TenantConfig};
use fsgate::control::{ControlService, ControlSettings, OutboxResults, Results};
use fsgate::esl::command::{EventName, Password};
use fsgate::esl::connection::ConnectOptions;
use fsgate::esl::node::{Node, NodeConfig};
use fsgate::pipeline::{self, Pipeline};
use fsgate::sim::{self, BehaviourSpec, SimConfig, SimHandle};
use fsgate::store::memory::MemoryStore;
use fsgate::store::{CallRecord, CallState, Store};
use fsgate::switch::Switch;
use fsgate::tenants::Tenants;
use fsgate::webhooks::outbox::Outbox;
use tokio::sync::mpsc;

/// The tenant's call-control number.
pub const CONTROL: &str = "+15550109000";
/// Another tenant's call-control number.
pub const OTHER_CONTROL: &str = "+15550109999";

/// The stub route lookup: 204 (park) for control numbers, 404 otherwise.
async fn route_stub() -> String {
    let app = Router::new().route(
        "/v1/dialplan/route",
        get(|RawQuery(q): RawQuery| async move {
            let q = q.unwrap_or_default();
            if q.contains("masked=15550109000") || q.contains("masked=15550109999") {
                (StatusCode::NO_CONTENT, String::new())
            } else {
                (StatusCode::NOT_FOUND, "UNALLOCATED_NUMBER".to_owned())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

pub fn tenant(id: &str) -> TenantConfig {
    serde_json::from_value(serde_json::json!({ "id": id })).unwrap()
}

/// Everything a test drives.
pub struct Env {
    pub sim: SimHandle,
    pub store: Arc<dyn Store>,
    pub switch: Switch,
    pub node: Node,
    pub pipeline: Pipeline,
    pub clock: Arc<ManualClock>,
    pub results: Results,
    pub control: ControlService,
    pub calls: CallService,
    pub acme: TenantConfig,
}

/// Starts everything on a memory store; far ends follow `behaviours`.
pub async fn start(behaviours: Vec<BehaviourSpec>) -> Env {
    start_on(behaviours, Arc::new(MemoryStore::new())).await
}

/// Starts everything on `store`; far ends follow `behaviours`.
pub async fn start_on(behaviours: Vec<BehaviourSpec>, store: Arc<dyn Store>) -> Env {
    let url = route_stub().await;
    let mut cfg = SimConfig::ephemeral();
    cfg.dialplan_dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplan"));
    cfg.globals = vec![("fsgate_url".into(), url)];
    cfg.heartbeat_interval = Duration::from_secs(1);
    cfg.behaviours = behaviours;
    let sim = sim::start(cfg).await.unwrap();

    let clock = Arc::new(ManualClock::new(Utc::now()));
    let shared_clock: SharedClock = clock.clone();
    let tenants = Arc::new(Tenants::new(http_config().tenants));
    let outbox = Outbox::new(
        store.clone(),
        shared_clock.clone(),
        Duration::from_secs(3600),
    );

    let mut connect = ConnectOptions::new(Password::new("ClueCon").unwrap());
    connect.idle_timeout = Some(Duration::from_secs(5));
    connect.request_timeout = Duration::from_millis(500);
    let mut node_cfg = NodeConfig::new("fs1", sim.esl_addr().to_string(), connect);
    node_cfg.events = pipeline::SUBSCRIBED_EVENTS
        .iter()
        .map(|n| EventName::new(n).unwrap())
        .collect();
    let (tx, rx) = mpsc::channel(1024);
    let node = Node::spawn(node_cfg, tx);
    let switch = Switch::new(vec![node.handle()]);

    let results = Results::new(
        store.clone(),
        shared_clock,
        Arc::new(OutboxResults::new(outbox.clone(), tenants.clone())),
    );
    let deps = pipeline::Deps {
        store: store.clone(),
        clock: Arc::new(SystemClock),
        switch: switch.clone(),
        directory: tenants.clone(),
        handlers: vec![
            Arc::new(Lifecycle::new(store.clone(), outbox, tenants)),
            Arc::new(fsgate::control::AnswerConfirmation::new(results.clone())),
        ],
        retention: Duration::from_secs(600),
    };
    let pipeline = Pipeline::spawn(deps, rx, 4);
    let settings = ControlSettings::from_config(&ControlConfig::default()).unwrap();
    let control = ControlService::new(switch.clone(), results.clone(), settings);
    let calls = CallService::new(
        store.clone(),
        switch.clone(),
        Arc::new(SystemClock),
        CallSettings {
            failure_grace: Duration::from_millis(200),
            ..CallSettings::default()
        },
    );
    let env = Env {
        sim,
        store,
        switch,
        node,
        pipeline,
        clock,
        results,
        control,
        calls,
        acme: http_config().tenants[0].clone(),
    };
    until("node connected", async || {
        env.switch.any_connected().then_some(())
    })
    .await;
    env
}

/// Polls `f` every 10 ms for up to 5 s.
pub async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

impl Env {
    /// A call from `from` parked on `to`, once the call table has it.
    pub async fn parked_call(&self, from: &str, to: &str) -> String {
        let uuid = self.sim.switch().place_inbound(from, to);
        let store = self.store.clone();
        until("parked call in the call table", async || {
            let park = self
                .sim
                .switch()
                .channel(&uuid)
                .is_some_and(|c| c.current_app.as_ref().is_some_and(|a| a.name == "park"));
            let known = store.get_call(&uuid).await.unwrap().is_some();
            (park && known).then_some(())
        })
        .await;
        uuid
    }

    /// The call once it is in `state`.
    pub async fn call_in_state(&self, uuid: &str, state: CallState) -> CallRecord {
        until(&format!("{uuid} {state:?}"), async || {
            self.store
                .get_call(uuid)
                .await
                .unwrap()
                .filter(|c| c.state == state)
        })
        .await
    }

    /// Webhook envelopes of `tenant` so far, as JSON.
    pub async fn webhooks(&self, tenant: &str) -> Vec<serde_json::Value> {
        let page = self.store.events_after(tenant, None, 1000).await.unwrap();
        page.items
            .iter()
            .map(|e| serde_json::from_str(&e.payload).unwrap())
            .collect()
    }

    /// The first webhook of `tenant` of `kind` matching `pred`, waited for.
    pub async fn webhook(
        &self,
        tenant: &str,
        kind: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        until(&format!("{kind} webhook"), async || {
            self.webhooks(tenant)
                .await
                .into_iter()
                .find(|w| w["type"] == kind && pred(w))
        })
        .await
    }

    /// Waits until everything the daemon wrote to the switch so far has
    /// been received: one `uuid_exists` round trip on the same connection
    /// (FreeSWITCH, and the simulator, answer a connection's commands in
    /// order). After it, `received` shows every command sent before.
    pub async fn switch_caught_up(&self) {
        let node = self.node.handle().name().to_owned();
        self.switch
            .exists(&node, uuid::Uuid::new_v4())
            .await
            .expect("the switch answers");
    }

    /// Command lines the simulator received that start with `prefix`
    /// (e.g. `api uuid_answer`).
    pub fn received(&self, prefix: &str) -> Vec<String> {
        self.sim
            .faults()
            .received()
            .into_iter()
            .map(|r| r.line)
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

/// API keys of the HTTP tests' tenants.
pub const ACME_KEY: &str = "acme-test-key-0001";
pub const OTHER_KEY: &str = "other-test-key-0002";

/// The REST API of an [`Env`], served on port 0.
pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
    pub router: axum::Router,
}

impl Http {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with `key` as `X-API-Key`.
    pub fn post(&self, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).header("X-API-Key", key)
    }

    pub fn get(&self, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).header("X-API-Key", key)
    }
}

/// The configuration the HTTP layer is served with (tenants and keys).
pub fn http_config() -> fsgate::config::Config {
    let text = format!(
        r#"
[http]
listen = "127.0.0.1:0"

[[freeswitch]]
name = "fs1"
address = "127.0.0.1:8021"

[[tenants]]
id = "acme"
api_keys_sha256 = ["{acme}"]
control_numbers = ["{CONTROL}"]

[[tenants]]
id = "other"
api_keys_sha256 = ["{other}"]
control_numbers = ["{OTHER_CONTROL}"]
"#,
        acme = fsgate::tenants::hash_key(ACME_KEY),
        other = fsgate::tenants::hash_key(OTHER_KEY),
    );
    fsgate::config::load_str(&text, "test.toml", Vec::new()).unwrap_or_else(|e| panic!("{e}"))
}

impl Env {
    /// Serves the call-session and call-control routes over this Env.
    pub async fn http(&self) -> Http {
        let state = fsgate::http::AppState::new(
            http_config(),
            self.store.clone(),
            Arc::new(vec![self.node.handle()]),
            self.clock.clone(),
            fsgate::telemetry::metrics(),
        );
        let router = fsgate::http::router(
            state,
            vec![
                fsgate::calls::routes::routes(self.calls.clone()),
                fsgate::control::routes::routes(self.control.clone()),
            ],
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = router.clone();
        tokio::spawn(async move {
            let _ = fsgate::http::serve(listener, serving, std::future::pending()).await;
        });
        Http {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            router,
        }
    }
}
