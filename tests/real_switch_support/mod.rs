//! The real-switch tier's rig: the shared real FreeSWITCH (see
//! [`freeswitch`]), and per test a real redis-server, a webhook receiver, the
//! daemon in-process on 127.0.0.1:8080 (the `fsgate_url` default of
//! `freeswitch-conf/vars.fsgate.xml`, so the shipped dialplan asks it) and the
//! carrier: a SIP phone on 127.0.0.1:5090 (the `carrier` gateway's default
//! proxy) that receives every leg FreeSWITCH dials.
//!
//! Tests take the rig one at a time: the switch, its ports and the daemon's
//! port are shared. The daemon's clock is the system clock plus an offset a
//! test can move (TTL expiry without waiting an hour).
#![allow(dead_code)]

pub mod freeswitch;
pub mod sip;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use fsgate::clock::Clock;
use fsgate::config::{Config, NodeConfig};
use fsgate::daemon::{Daemon, Options};
use serde_json::{json, Value};

use crate::support::receiver::Receiver;
use crate::support::redis::RedisServer;
use crate::support::stack::{tenant, SECRET};
use freeswitch::FreeSwitch;
use sip::Phone;

/// FreeSWITCH's SIP profile (`external`, the base configuration).
pub const SWITCH_SIP: &str = "127.0.0.1:5080";
/// Where the `carrier` gateway sends calls (`fsgate_carrier_proxy`).
pub const CARRIER: &str = "127.0.0.1:5090";
/// Where the shipped dialplan asks the daemon (`fsgate_url`).
pub const DAEMON: &str = "127.0.0.1:8080";
/// Acme's first masked number and its call-control number.
pub const MASKED: &str = "+15550100001";
pub const CONTROL: &str = "+15550109000";
/// Two real numbers and a stranger.
pub const ALICE: &str = "+15557770001";
pub const BOB: &str = "+15557770002";
pub const STRANGER: &str = "+15557770099";

/// How long any one step of a call may take on a loaded 2-core machine.
pub const STEP: Duration = Duration::from_secs(10);

/// System time plus an offset that only grows.
#[derive(Default)]
pub struct OffsetClock {
    offset: Mutex<chrono::Duration>,
}

impl OffsetClock {
    /// Moves this clock (not the switch's) forward.
    pub fn advance(&self, by: chrono::Duration) {
        *self.offset.lock().unwrap() += by;
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock().unwrap()
    }
}

/// One test's world around the shared switch.
pub struct Rig {
    pub fs: &'static FreeSwitch,
    pub redis: RedisServer,
    pub receiver: Receiver,
    pub daemon: Option<Daemon>,
    pub config: Config,
    pub clock: Arc<OffsetClock>,
    pub http: reqwest::Client,
    /// Receives every leg the `carrier` gateway dials.
    pub carrier: Phone,
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

/// Options of a rig.
#[derive(Default)]
pub struct RigOptions {
    /// Acme's calls are cut when their session's TTL expires.
    pub hangup_on_expiry: bool,
}

impl Rig {
    pub async fn start() -> Rig {
        Rig::start_with(RigOptions::default()).await
    }

    pub async fn start_with(options: RigOptions) -> Rig {
        // A tokio mutex: the guard lives across awaits, for the whole test.
        static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let guard = ONE.lock().await;
        let fs = freeswitch::shared();
        clear_channels();

        let receiver = Receiver::start().await;
        let redis = RedisServer::start();
        let mut config = Config::default();
        config.http.listen = DAEMON.into();
        config.store.url = redis.url();
        config.freeswitch = vec![NodeConfig {
            name: "fs1".into(),
            address: freeswitch::ESL.into(),
            password: freeswitch::ESL_PASSWORD.into(),
        }];
        let mut acme = tenant("acme", "155501", 1, &receiver);
        acme.hangup_on_expiry = options.hangup_on_expiry;
        config.tenants = vec![acme, tenant("globex", "155502", 4, &receiver)];
        config.shutdown.drain_timeout_ms = 3000;
        let problems = fsgate::config::validate(&config);
        assert!(problems.is_empty(), "rig config invalid: {problems:?}");

        let carrier = Phone::bind(CARRIER).await;
        let mut rig = Rig {
            fs,
            redis,
            receiver,
            daemon: None,
            config,
            clock: Arc::new(OffsetClock::default()),
            http: reqwest::Client::new(),
            carrier,
            _one_at_a_time: guard,
        };
        rig.start_daemon().await;
        rig
    }

    /// Starts the daemon (again) and waits until it is ready.
    pub async fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "the daemon already runs");
        // A crashed daemon's aborted tasks let go of the port when the
        // runtime next drops them: bind it first, retrying until then.
        let deadline = tokio::time::Instant::now() + STEP;
        let listener = loop {
            match tokio::net::TcpListener::bind(DAEMON).await {
                Ok(l) => break l,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot listen on {DAEMON}: {e}"),
            }
        };
        let options = Options {
            clock: self.clock.clone(),
            listener: Some(listener),
            pipeline_shards: 4,
        };
        let daemon = Daemon::start(self.config.clone(), options)
            .await
            .expect("the daemon starts");
        self.daemon = Some(daemon);
        self.wait_node("connected").await;
    }

    /// Stops the daemon at once, as a crash would.
    pub fn crash_daemon(&mut self) {
        self.daemon.take().expect("the daemon runs").abort();
    }

    /// Waits until `/readyz` reports the node in `state`.
    pub async fn wait_node(&self, state: &str) {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let (_, body) = self.request("GET", "/readyz", None).await;
            if body["nodes"][0]["state"] == state {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node never {state}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `/readyz` reports the node anything but connected.
    pub async fn wait_node_down(&self) {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let (_, body) = self.request("GET", "/readyz", None).await;
            if body["nodes"][0]["state"] != "connected" {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the node stayed connected: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `fsgate_esl_reconnects_total` of node fs1 (process-wide, so compare).
    pub async fn reconnects(&self) -> u64 {
        let text = self
            .http
            .get(format!("http://{DAEMON}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with("fsgate_esl_reconnects_total{") && l.contains("node=\"fs1\""))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0, |v| v.parse::<f64>().unwrap_or(0.0) as u64)
    }

    /// Waits until the node has reconnected more than `before` times and is
    /// connected.
    pub async fn wait_reconnected(&self, before: u64) {
        let deadline = tokio::time::Instant::now() + STEP;
        while self.reconnects().await <= before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no reconnection within {STEP:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.wait_node("connected").await;
    }

    /// A request as acme (X-API-Key), returning status and JSON.
    pub async fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("http://{DAEMON}{path}"))
            .header("X-API-Key", "acme-key")
            .timeout(STEP);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.expect("the daemon answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POST JSON as acme, expecting `want`.
    pub async fn post(&self, path: &str, body: Value, want: u16) -> Value {
        let (status, reply) = self.request("POST", path, Some(body)).await;
        assert_eq!(status, want, "POST {path}: {reply}");
        reply
    }

    /// A masked session between Alice and Bob; returns its ref.
    pub async fn session(&self) -> String {
        let s = self
            .post(
                "/v1/sessions",
                json!({"party_a": ALICE, "party_b": BOB, "ttl_minutes": 30}),
                201,
            )
            .await;
        assert_eq!(s["masked_number"], MASKED, "{s}");
        s["ref"].as_str().unwrap().to_owned()
    }

    /// Waits until session `r` is in `state`; returns it.
    pub async fn wait_session(&self, r: &str, state: &str) -> Value {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let (_, s) = self
                .request("GET", &format!("/v1/sessions/{r}"), None)
                .await;
            if s["state"] == state {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "session never {state}: {s}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for a webhook of `kind` matching `pred`, checks its signature.
    pub async fn webhook(&self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let d = self.receiver.wait_for(kind, STEP, |d| pred(d.data())).await;
        d.assert_signed_at(SECRET, self.clock.now().timestamp());
        d.data().clone()
    }

    /// How many webhooks of `kind` match `pred` so far.
    pub fn count(&self, kind: &str, pred: impl Fn(&Value) -> bool) -> usize {
        self.receiver
            .of_type(kind)
            .iter()
            .filter(|d| pred(d.data()))
            .count()
    }

    /// A phone of its own on a free port.
    pub async fn phone(&self) -> Phone {
        Phone::bind("127.0.0.1:0").await
    }

    /// The switch's SIP address.
    pub fn switch_sip(&self) -> SocketAddr {
        SWITCH_SIP.parse().unwrap()
    }

    /// Waits until the switch has no channel left.
    pub async fn wait_no_channels(&self) {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let rows = channel_count();
            if rows == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{rows} channels still up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.abort();
        }
        clear_channels();
    }
}

/// Live channels on the switch (`show channels as json`).
pub fn channel_count() -> u64 {
    try_channel_count().expect("the switch answers")
}

fn try_channel_count() -> std::io::Result<u64> {
    let body = freeswitch::api("show channels as json")?;
    let v: Value =
        serde_json::from_str(&body).map_err(|e| std::io::Error::other(format!("{e}: {body}")))?;
    Ok(v["row_count"].as_u64().unwrap_or(0))
}

/// Ends whatever a previous test left on the switch (which may be without
/// its Event Socket for a few seconds after a test that cut it).
fn clear_channels() {
    for _ in 0..200 {
        let _ = freeswitch::api("hupall NORMAL_CLEARING");
        if let Ok(0) = try_channel_count() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
