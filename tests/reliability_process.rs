//! Reliability of the daemon as a process: the real `fsgate serve` binary,
//! started with a generated configuration file against the simulator and a
//! real redis-server, killed with SIGKILL while webhook deliveries are
//! pending (restarted instances deliver every one, and two live instances
//! never emit an envelope twice), and stopped with SIGTERM (new originates
//! refused while draining, the operation in flight resolved, exit status 0
//! within the drain limit).

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fsgate::config::{Config, NodeConfig, TenantConfig};
use fsgate::sim::{self, SimConfig, SimHandle};
use serde_json::{json, Value};
use support::receiver::{Delivery, Receiver};
use support::redis::RedisServer;
use support::stack::SECRET;

const WAIT: Duration = Duration::from_secs(10);
const DRAIN_MS: u64 = 3000;

fn assert_signed(d: &Delivery) {
    d.assert_signed(SECRET);
}

async fn simulator() -> SimHandle {
    let mut cfg = SimConfig::ephemeral();
    cfg.dialplan_dir =
        Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sim-dialplan").into());
    sim::start(cfg).await.unwrap()
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn config(sim: &SimHandle, redis: &RedisServer, hooks: &Receiver) -> Config {
    let mut c = Config::default();
    c.http.listen = free_addr();
    c.store.url = redis.url();
    c.freeswitch = vec![NodeConfig {
        name: "fs1".into(),
        address: sim.esl_addr().to_string(),
        password: "ClueCon".into(),
    }];
    let mut t: TenantConfig = serde_json::from_value(json!({ "id": "acme" })).unwrap();
    t.api_keys_sha256 = vec![fsgate::tenants::hash_key("acme-key")];
    t.masked_numbers = vec!["+15550100001".into()];
    t.control_numbers = vec!["+15550109000".into()];
    t.webhook_url = Some(hooks.url());
    t.webhook_secret = Some(SECRET.to_owned());
    t.trunk = "carrier".into();
    t.dial_string = "sofia/gateway/${trunk}/${number}".into();
    c.tenants = vec![t];
    c.shutdown.drain_timeout_ms = DRAIN_MS;
    // A short request timeout keeps the lease (timeout + 10 s) of a claim
    // whose holder was killed within the tests' deadlines.
    c.webhooks.timeout_ms = 2000;
    c
}

/// A running `fsgate serve`; SIGKILLed on drop.
struct Process {
    child: Child,
    base: String,
    _file: TempFile,
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    async fn spawn(config: &Config) -> Process {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("reliability-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, toml::to_string(config).unwrap()).unwrap();
        let file = TempFile(path);
        let child = Command::new(env!("CARGO_BIN_EXE_fsgate"))
            .arg("serve")
            .arg("--config")
            .arg(&file.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let p = Process {
            child,
            base: format!("http://{}", config.http.listen),
            _file: file,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", p.base)).send().await {
                if r.status().is_success() {
                    return p;
                }
            }
            assert!(Instant::now() < deadline, "fsgate serve never became ready");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("X-API-Key", "acme-key")
            .json(&body)
    }
}

async fn initiated(hooks: &Receiver, uuid: &str) -> Delivery {
    hooks
        .wait_for("call.initiated", WAIT, |d| d.data()["call_id"] == uuid)
        .await
}

#[tokio::test]
async fn deliveries_pending_at_a_sigkill_are_delivered_once_by_the_next_instances() {
    let sim = simulator().await;
    let redis = RedisServer::start();
    let hooks = Receiver::start().await;
    let cfg = config(&sim, &redis, &hooks);
    let mut first = Process::spawn(&cfg).await;
    // Every first attempt fails; the process dies with the deliveries pending.
    const CALLS: usize = 4;
    hooks.script(&[500; CALLS]);
    let uuids: Vec<String> = (0..CALLS)
        .map(|i| {
            sim.switch()
                .place_inbound(&format!("+1555888{i:04}"), "15550109000")
        })
        .collect();
    for uuid in &uuids {
        initiated(&hooks, uuid).await;
    }
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();

    // Two new instances on the same Redis (each its own HTTP port).
    let mut cfg_b = cfg.clone();
    cfg_b.http.listen = free_addr();
    let mut cfg_c = cfg.clone();
    cfg_c.http.listen = free_addr();
    let (b, c) = tokio::join!(Process::spawn(&cfg_b), Process::spawn(&cfg_c));
    // The pending ones arrive again, answered 200: at their retry (5 s
    // after the failed attempt) when the killed instance had settled that
    // attempt, else once its claim's lease (2 s timeout + 10 s) has passed.
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let attempts = hooks.of_type("call.initiated");
        let retried = uuids
            .iter()
            .filter(|u| {
                attempts
                    .iter()
                    .filter(|d| d.data()["call_id"] == u.as_str())
                    .count()
                    >= 2
            })
            .count();
        if retried == CALLS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{retried} of {CALLS} pending deliveries retried"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // More calls with both instances live, then every call ends.
    let more: Vec<String> = (0..CALLS)
        .map(|i| {
            sim.switch()
                .place_inbound(&format!("+1555999{i:04}"), "15550109000")
        })
        .collect();
    for uuid in &more {
        initiated(&hooks, uuid).await;
    }
    let all: Vec<&String> = uuids.iter().chain(&more).collect();
    for uuid in &all {
        let (status, body) = {
            let r = b
                .post(
                    &format!("/api/v1/sessions/{uuid}/commands/hangup"),
                    json!({}),
                )
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        };
        assert_eq!(status, 202, "{body}");
    }
    for uuid in &all {
        hooks
            .wait_for("call.hangup", WAIT, |d| {
                d.data()["call_id"] == uuid.as_str()
            })
            .await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Each event was emitted once (one envelope id per call and type), and
    // each envelope was answered 200 exactly once.
    let mut ids: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut attempts: HashMap<String, usize> = HashMap::new();
    for d in hooks.all() {
        assert_signed(&d);
        let id = d.envelope["id"].as_str().unwrap().to_owned();
        *attempts.entry(id.clone()).or_default() += 1;
        let key = (
            d.kind().to_owned(),
            d.data()["call_id"].as_str().unwrap_or_default().to_owned(),
        );
        let v = ids.entry(key).or_default();
        if !v.contains(&id) {
            v.push(id);
        }
    }
    for uuid in &all {
        for kind in ["call.initiated", "call.hangup"] {
            let got = ids.get(&(kind.to_owned(), uuid.to_string()));
            assert_eq!(got.map(Vec::len), Some(1), "{kind} for {uuid}: {got:?}");
        }
    }
    for (id, n) in &attempts {
        // The pending ones: one failed attempt, one success; others: one.
        assert!(*n <= 2, "envelope {id} delivered {n} times");
    }
    assert_eq!(attempts.values().filter(|n| **n == 2).count(), CALLS);
    drop((b, c));
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let sim = simulator().await;
    let redis = RedisServer::start();
    let hooks = Receiver::start().await;
    let cfg = config(&sim, &redis, &hooks);
    let mut p = Process::spawn(&cfg).await;
    let call = sim.switch().place_inbound("+15557770001", "15550109000");
    initiated(&hooks, &call).await;

    // An answer in flight: the switch's replies stall for a while.
    sim.faults().stall(Duration::from_millis(1200));
    let r = p
        .post(
            &format!("/api/v1/sessions/{call}/commands/answer"),
            json!({"command_uid": "in-flight"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let accepted: Value = r.json().await.unwrap();
    let op = accepted["operation_id"].as_str().unwrap().to_owned();

    // An originate that is still being processed when SIGTERM arrives.
    let slow_originate = p
        .post(
            "/api/v1/sessions",
            json!({"caller": "+15557770002", "callee": "+15557770003", "send_sdp": true}),
        )
        .send();
    let slow = tokio::spawn(slow_originate);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &p.pid()])
        .status()
        .unwrap();
    assert!(status.success());
    // New originates are refused with 503 `draining`: the listener stays
    // up while the answer in flight resolves.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = p
        .post(
            "/api/v1/sessions",
            json!({"caller": "+15557770004", "callee": "+15557770005", "send_sdp": true}),
        )
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "draining", "{body}");
    // The request in flight finished with an answer.
    let slow = slow.await.unwrap();
    if let Ok(r) = slow {
        let s = r.status().as_u16();
        assert!(s == 201 || s == 503 || s == 502, "in-flight originate: {s}");
    }

    // The process exits 0 within the drain limit (with margin for the
    // sequential stages).
    let limit = Duration::from_millis(DRAIN_MS * 2);
    let code = loop {
        if let Some(code) = p.child.try_wait().unwrap() {
            break code;
        }
        assert!(sent.elapsed() < limit, "still running after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(code.success(), "exit status {code:?}");

    // The answer in flight got its one result: delivered before the exit,
    // or left in the outbox for the next instance.
    let got = hooks.of_type("command.result");
    let result = match got.iter().find(|d| d.data()["operation_id"] == op.as_str()) {
        Some(d) => d.clone(),
        None => {
            let mut next_cfg = cfg.clone();
            next_cfg.http.listen = free_addr();
            let _next = Process::spawn(&next_cfg).await;
            hooks
                .wait_for("command.result", WAIT, |d| {
                    d.data()["operation_id"] == op.as_str()
                })
                .await
        }
    };
    assert_signed(&result);
    let status = result.data()["status"].as_str().unwrap_or_default();
    assert!(
        ["succeeded", "failed", "timeout"].contains(&status),
        "{}",
        result.envelope
    );
}

/// `kill -9` right after the first answer of bursts of 60 session completes, five times: every
/// session ends `completed` once the client has retried, and every one of
/// them got its `session.completed`, exactly one envelope each (the change
/// and its webhook are one store step, so no crash can fall between them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_completes_loses_no_session_completed() {
    const POOL: usize = 60;
    const CYCLES: usize = 5;
    let sim = simulator().await;
    let redis = RedisServer::start();
    let hooks = Receiver::start().await;
    let mut cfg = config(&sim, &redis, &hooks);
    cfg.tenants[0].masked_numbers = (1..=POOL).map(|i| format!("+155501{i:05}")).collect();
    // A dead instance's claimed deliveries are taken over after the lease
    // (the request timeout + 10 s).
    cfg.webhooks.timeout_ms = 2000;
    let mut refs = Vec::new();
    let mut process = Process::spawn(&cfg).await;
    for cycle in 0..CYCLES {
        let mut batch = Vec::new();
        for i in 0..POOL {
            let r = process
                .post(
                    "/v1/sessions",
                    json!({"party_a": format!("+1555777{cycle}{i:03}"), "party_b": "+15557770999"}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201, "cycle {cycle}");
            let v: Value = r.json().await.unwrap();
            batch.push(v["ref"].as_str().unwrap().to_owned());
        }
        // The burst, and the kill while it is under way.
        let (answered_tx, mut answered_rx) = tokio::sync::mpsc::unbounded_channel();
        for r in &batch {
            let req = process.post(&format!("/v1/sessions/{r}/complete"), json!({}));
            let tx = answered_tx.clone();
            tokio::spawn(async move {
                if let Ok(resp) = req.send().await {
                    let _ = tx.send(resp.status().as_u16());
                }
            });
        }
        answered_rx.recv().await;
        process.child.kill().unwrap(); // SIGKILL, while the rest are in flight
        process.child.wait().unwrap();
        process = Process::spawn(&cfg).await;
        // The client retries whatever it did not see succeed: all of them.
        for r in &batch {
            let resp = process
                .post(&format!("/v1/sessions/{r}/complete"), json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{r}");
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["state"], "completed", "{v}");
        }
        refs.extend(batch);
    }
    // Every session's webhook, once (deliveries are at least once: count
    // envelope ids, not requests). A delivery claimed by a killed instance
    // waits out its lease (12 s here), possibly more than once in a row.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ids: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
        for d in hooks.of_type("session.completed") {
            assert_signed(&d);
            ids.entry(d.data()["ref"].as_str().unwrap().to_owned())
                .or_default()
                .insert(d.header("webhook-id").to_owned());
        }
        let missing = refs.iter().filter(|r| !ids.contains_key(*r)).count();
        let twice: Vec<_> = ids.iter().filter(|(_, v)| v.len() > 1).collect();
        assert!(twice.is_empty(), "announced twice: {twice:?}");
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} completed sessions never announced",
            refs.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two instances on one Redis, one SIGKILLed in the middle of a stream of
/// calls: the survivor alone delivers every call's `call.initiated`, those
/// the dead one had claimed included, each envelope exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_survivor_of_two_delivers_everything_the_dead_one_had() {
    const CALLS: usize = 40;
    let sim = simulator().await;
    let redis = RedisServer::start();
    let hooks = Receiver::start().await;
    let mut cfg = config(&sim, &redis, &hooks);
    cfg.webhooks.timeout_ms = 2000; // the lease: 12 s
    let mut cfg_b = cfg.clone();
    cfg_b.http.listen = free_addr();
    let (mut a, _b) = tokio::join!(Process::spawn(&cfg), Process::spawn(&cfg_b));
    let mut uuids = Vec::new();
    for i in 0..CALLS {
        uuids.push(
            sim.switch()
                .place_inbound(&format!("+1555666{i:04}"), "15550109000"),
        );
        if i == CALLS / 2 {
            a.child.kill().unwrap(); // SIGKILL, mid-stream
            a.child.wait().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ids: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
        for d in hooks.of_type("call.initiated") {
            ids.entry(d.data()["call_id"].as_str().unwrap().to_owned())
                .or_default()
                .insert(d.header("webhook-id").to_owned());
        }
        let twice: Vec<_> = ids.iter().filter(|(_, v)| v.len() > 1).collect();
        assert!(twice.is_empty(), "two envelopes for one call: {twice:?}");
        let missing = uuids.iter().filter(|u| !ids.contains_key(*u)).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {CALLS} calls never announced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
