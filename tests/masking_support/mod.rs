//! A masked-session "daemon" for tests, assembled the way the daemon will
//! be: the platform HTTP layer with the masking routes on a real port, a
//! store (memory or a real redis-server), the FreeSWITCH simulator running
//! the shipped `dialplan/` with `fsgate_url`/`fsgate_token` pointed at that
//! port, one ESL node, the event pipeline with the call-lifecycle and
//! masking handlers, and the webhook outbox (read back from the store's
//! event log). Time for TTLs is a ManualClock the test moves.
//!
//! `tests/masking_e2e.rs` runs the assembled daemon (`tests/support/stack.rs`);
//! this world exposes the parts (ManualClock, the domain, the dialplan
//! token) that tests of the details need.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fsgate::calls::lifecycle::Lifecycle;
use fsgate::clock::ManualClock;
use fsgate::config::{self, Config};
use fsgate::esl::command::{EventName, Password};
use fsgate::esl::connection::ConnectOptions;
use fsgate::esl::node::{Node, NodeConfig, NodeHandle};
use fsgate::http::{self, AppState};
use fsgate::masking::{self, Masking};
use fsgate::pipeline::{self, Pipeline};
use fsgate::sim::{self, BehaviourSpec, SimConfig, SimHandle};
use fsgate::store::memory::MemoryStore;
use fsgate::store::Store;
use fsgate::switch::Switch;
use fsgate::webhooks::Outbox;
use tokio::sync::mpsc;

use crate::support::redis::RedisServer;

pub const ACME_KEY: &str = "test-key-acme-0001";
pub const BETA_KEY: &str = "test-key-beta-0002";
pub const TOKEN: &str = "dialplan-token-xyz";
pub const A: &str = "+15557770001";
pub const B: &str = "+15557770002";
pub const M: &str = "+15550100001";
pub const CONTROL: &str = "+15550109000";

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// How to build the world.
pub struct Options {
    pub redis: bool,
    pub pool: Vec<String>,
    pub hangup_on_expiry: bool,
    pub behaviours: Vec<BehaviourSpec>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            redis: true,
            pool: vec![M.to_owned()],
            hangup_on_expiry: false,
            behaviours: Vec::new(),
        }
    }
}

fn config_text(o: &Options, listen: SocketAddr, esl: SocketAddr) -> String {
    let pool: Vec<String> = o.pool.iter().map(|n| format!("\"{n}\"")).collect();
    format!(
        r#"
[http]
listen = "{listen}"
dialplan_token = "{TOKEN}"

[[freeswitch]]
name = "fs1"
address = "{esl}"

[[tenants]]
id = "acme"
api_keys_sha256 = ["{acme}"]
masked_numbers = [{pool}]
control_numbers = ["{CONTROL}"]
default_ttl_minutes = 60
max_ttl_minutes = 240
hangup_on_expiry = {hoe}

[[tenants]]
id = "beta"
api_keys_sha256 = ["{beta}"]
masked_numbers = ["+15550200001"]
"#,
        acme = fsgate::tenants::hash_key(ACME_KEY),
        beta = fsgate::tenants::hash_key(BETA_KEY),
        pool = pool.join(", "),
        hoe = o.hangup_on_expiry,
    )
}

pub struct World {
    pub sim: SimHandle,
    /// The port the domain sends through (one node, `fs1`).
    pub switch: Switch,
    pub masking: Arc<Masking>,
    pub store: Arc<dyn Store>,
    pub clock: ManualClock,
    pub state: AppState,
    pub base: String,
    pub http: reqwest::Client,
    _redis: Option<RedisServer>,
    _node: Node,
    _pipeline: Pipeline,
}

pub async fn world(o: Options) -> World {
    let (redis, store): (_, Arc<dyn Store>) = if o.redis {
        let r = RedisServer::start();
        let s = fsgate::store::open(&r.url()).await.unwrap();
        (Some(r), s)
    } else {
        (None, Arc::new(MemoryStore::new()))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");

    let mut cfg = SimConfig::ephemeral();
    cfg.dialplan_dir = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/dialplan").into());
    cfg.globals = vec![
        ("fsgate_url".into(), base.clone()),
        ("fsgate_token".into(), TOKEN.into()),
    ];
    cfg.answer_delay = Duration::from_millis(20);
    cfg.behaviours = o.behaviours.clone();
    let sim = sim::start(cfg).await.unwrap();

    let config: Config = config::load_str(
        &config_text(&o, addr, sim.esl_addr()),
        "masking-test.toml",
        Vec::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let mut connect = ConnectOptions::new(Password::new("ClueCon").unwrap());
    connect.idle_timeout = Some(Duration::from_secs(5));
    let mut node_cfg = NodeConfig::new("fs1", sim.esl_addr().to_string(), connect);
    node_cfg.events = pipeline::SUBSCRIBED_EVENTS
        .iter()
        .map(|n| EventName::new(n).unwrap())
        .collect();
    let (tx, rx) = mpsc::channel(4096);
    let node = Node::spawn(node_cfg, tx);
    let handles: Vec<NodeHandle> = vec![node.handle()];
    let switch = Switch::new(handles.clone());

    let clock = ManualClock::new(t0());
    let state = AppState::new(
        config.clone(),
        store.clone(),
        Arc::new(handles),
        Arc::new(clock.clone()),
        fsgate::telemetry::metrics(),
    );
    let outbox = Outbox::new(
        store.clone(),
        Arc::new(clock.clone()),
        Duration::from_secs(3600),
    );
    let masking = Arc::new(Masking::new(
        store.clone(),
        Arc::new(clock.clone()),
        state.tenants.clone(),
        switch.clone(),
        Arc::new(outbox.clone()),
    ));
    masking.sync_pools().await.unwrap();

    let deps = pipeline::Deps {
        store: store.clone(),
        clock: Arc::new(clock.clone()),
        switch: switch.clone(),
        directory: state.tenants.clone(),
        handlers: vec![
            Arc::new(Lifecycle::new(store.clone(), outbox, state.tenants.clone())),
            Arc::new(masking::SessionCallHandler::new(masking.clone())),
        ],
        retention: Duration::from_secs(600),
    };
    let pipeline = Pipeline::spawn(deps, rx, 4);

    let router = http::router(state.clone(), vec![masking::routes(masking.clone())]);
    tokio::spawn(http::serve(listener, router, std::future::pending()));
    until("node connected", || async {
        switch.any_connected().then_some(())
    })
    .await;
    World {
        sim,
        switch,
        masking,
        store,
        clock,
        state,
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        _redis: redis,
        _node: node,
        _pipeline: pipeline,
    }
}

pub async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..500 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

impl World {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request as tenant acme (X-API-Key).
    pub fn acme(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("X-API-Key", ACME_KEY)
    }

    /// POST /v1/sessions as acme; the JSON answer and status.
    pub async fn create(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .acme(reqwest::Method::POST, "/v1/sessions")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// A session created for `a` and `b` (asserts 201).
    pub async fn session(&self, a: &str, b: &str, ttl: Option<i64>) -> serde_json::Value {
        let mut body = serde_json::json!({"party_a": a, "party_b": b});
        if let Some(t) = ttl {
            body["ttl_minutes"] = t.into();
        }
        let (status, v) = self.create(body).await;
        assert_eq!(status, 201, "{v}");
        v
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.acme(reqwest::Method::GET, path).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .acme(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn state_of(&self, session_ref: &str) -> String {
        let (s, v) = self.get_json(&format!("/v1/sessions/{session_ref}")).await;
        assert_eq!(s, 200, "{v}");
        v["state"].as_str().unwrap().to_owned()
    }

    pub async fn until_state(&self, session_ref: &str, want: &str) {
        until(&format!("{session_ref} {want}"), || async {
            (self.state_of(session_ref).await == want).then_some(())
        })
        .await
    }

    /// The route lookup as the dialplan asks it: (status, content type, body).
    pub async fn lookup(&self, query: &str) -> (u16, String, String) {
        let r = self
            .http
            .get(self.url(&format!("/v1/dialplan/route?{query}")))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, ct, r.text().await.unwrap())
    }

    /// The bridged partner of `a` once the bridge is up.
    pub async fn bridged(&self, a: &str) -> String {
        until("the bridge", || async {
            let b = self.sim.switch().partner(a)?;
            let ch = self.sim.switch().channel(&b)?;
            (ch.bridged_us != 0).then_some(b)
        })
        .await
    }

    /// The cause `uuid` ended with, as its CHANNEL_HANGUP_COMPLETE told the
    /// call table (waits for it).
    pub async fn ended_with(&self, uuid: &str) -> String {
        until("the hangup", || async {
            let c = self.store.get_call(uuid).await.ok()??;
            c.ended_at.and(c.hangup_cause)
        })
        .await
    }

    pub fn hang_up(&self, uuid: &str) {
        self.sim.switch().hangup(
            uuid,
            fsgate::esl::HangupCause::NORMAL_CLEARING,
            fsgate::sim::core::HangupOrigin::Remote,
        );
    }

    pub async fn gone(&self, uuid: &str) {
        until(&format!("{uuid} gone"), || async {
            self.sim.switch().channel(uuid).is_none().then_some(())
        })
        .await
    }

    /// The tenant's webhook envelopes so far (the outbox's event log).
    pub async fn webhooks(&self, tenant: &str) -> Vec<serde_json::Value> {
        let page = self.store.events_after(tenant, None, 1000).await.unwrap();
        page.items
            .iter()
            .map(|e| serde_json::from_str(&e.payload).unwrap())
            .collect()
    }

    /// `(type, data.ref or data.session_ref)` of the tenant's webhooks.
    pub async fn webhook_kinds(&self, tenant: &str) -> Vec<(String, Option<String>)> {
        self.webhooks(tenant)
            .await
            .into_iter()
            .map(|v| {
                let d = &v["data"];
                let r = d["ref"].as_str().or(d["session_ref"].as_str());
                (v["type"].as_str().unwrap().to_owned(), r.map(str::to_owned))
            })
            .collect()
    }

    /// ESL command lines the simulator received so far.
    /// Waits until the simulator has received everything sent to it so
    /// far: one `uuid_exists` round trip on the node's connection (answered
    /// in order). Wait on it before counting what reached the switch.
    pub async fn switch_caught_up(&self) {
        self.switch
            .exists("fs1", uuid::Uuid::new_v4())
            .await
            .expect("the switch answers");
    }

    pub fn received(&self) -> Vec<String> {
        self.sim
            .faults()
            .received()
            .into_iter()
            .map(|r| r.line)
            .collect()
    }
}
