//! The daemon platform end to end: the real daemon against the simulator (and
//! a real redis-server where it matters), webhooks received over HTTP and
//! verified.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use fsgate::esl::HangupCause;
use fsgate::sim::{self, SimConfig};
use reqwest::Method;
use support::receiver::{Delivery, Receiver};
use support::stack::{Stack, StackOptions, SECRET};

const WAIT: Duration = Duration::from_secs(10);

fn assert_signed(d: &Delivery) {
    d.assert_signed(SECRET);
}

/// The recording switch's dialplan parks calls to 15550109000 by itself, so
/// these tests do not depend on the masking domain's route lookup.
fn options(redis: bool) -> StackOptions {
    StackOptions {
        redis,
        dialplan: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sim-dialplan").into()),
        ..Default::default()
    }
}

async fn park_call(stack: &Stack, from: &str) -> String {
    stack.sim.switch().place_inbound(from, "15550109000")
}

#[tokio::test]
async fn a_parked_call_produces_signed_lifecycle_webhooks() {
    let stack = Stack::start(options(false)).await;
    let uuid = park_call(&stack, "+15557770001").await;
    let initiated = stack
        .receiver
        .wait_for("call.initiated", WAIT, |d| {
            d.data()["call_id"] == uuid.as_str()
        })
        .await;
    assert_signed(&initiated);
    assert_eq!(initiated.envelope["tenant"], "acme");
    assert_eq!(initiated.data()["from"], "+15557770001");
    assert_eq!(initiated.data()["direction"], "inbound");
    assert_eq!(initiated.data()["sequence"], 1);

    assert!(stack.sim.switch().answer(&uuid, &[]));
    let answered = stack
        .receiver
        .wait_for("call.answered", WAIT, |d| {
            d.data()["call_id"] == uuid.as_str()
        })
        .await;
    assert_signed(&answered);
    assert_eq!(answered.data()["sequence"], 2);

    let id = uuid::Uuid::parse_str(&uuid).unwrap();
    let node = &stack.daemon().state().switch;
    assert!(node
        .hangup("fs1", id, HangupCause::USER_BUSY)
        .await
        .unwrap()
        .is_ok());
    let hangup = stack
        .receiver
        .wait_for("call.hangup", WAIT, |d| {
            d.data()["call_id"] == uuid.as_str()
        })
        .await;
    assert_signed(&hangup);
    assert_eq!(hangup.data()["cause"], "USER_BUSY");
    assert_eq!(hangup.data()["q850"], 17);
    assert_eq!(hangup.data()["reconciled"], false);
    assert_eq!(hangup.data()["sequence"], 3);

    // The same envelopes can be replayed from the event log, in order.
    let (status, page) = stack.get_json("/v1/events?limit=10").await;
    assert_eq!(status, 200, "{page}");
    let types: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["call.initiated", "call.answered", "call.hangup"]);
    // Another tenant sees none of them.
    let r = stack
        .as_tenant("globex", Method::GET, "/v1/events")
        .send()
        .await
        .unwrap();
    let page: serde_json::Value = r.json().await.unwrap();
    assert!(page["events"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn metrics_show_the_traffic() {
    let stack = Stack::start(options(false)).await;
    let uuid = park_call(&stack, "+15557770001").await;
    stack
        .receiver
        .wait_for("call.initiated", WAIT, |d| {
            d.data()["call_id"] == uuid.as_str()
        })
        .await;
    let text = stack
        .http
        .get(format!("{}/metrics", stack.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "fsgate_esl_connected",
        "fsgate_esl_events_total",
        "fsgate_webhook_deliveries_total",
        "fsgate_http_requests_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test]
async fn readiness_follows_the_switch() {
    let mut stack = Stack::start(options(false)).await;
    let readyz = |s: &Stack| {
        let url = format!("{}/readyz", s.base);
        let http = s.http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(readyz(&stack).await, 200);
    // The switch goes away: not ready, with the node named.
    let esl = stack.sim.esl_addr();
    let old = std::mem::replace(
        &mut stack.sim,
        sim::start(SimConfig::ephemeral()).await.unwrap(),
    );
    old.shutdown().await;
    let mut saw_503 = false;
    for _ in 0..100 {
        if readyz(&stack).await == 503 {
            saw_503 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_503, "readyz never reported the lost node");
    let body: serde_json::Value = stack
        .http
        .get(format!("{}/readyz", stack.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body.to_string().contains("fs1"), "{body}");
    // It comes back on the same address: ready again within 2 s.
    let mut cfg = SimConfig::ephemeral();
    cfg.listen = esl;
    stack.sim = sim::start(cfg).await.unwrap();
    let started = std::time::Instant::now();
    stack.wait_ready().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "reconnected in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn two_instances_on_one_redis_send_each_event_once() {
    let stack = Stack::start(options(true)).await;
    let second = stack.second_instance().await;
    // Both instances connected before the calls.
    for _ in 0..100 {
        if second.state().switch.any_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut uuids = Vec::new();
    for i in 0..8 {
        uuids.push(park_call(&stack, &format!("+1555777{i:04}")).await);
    }
    for uuid in &uuids {
        stack
            .receiver
            .wait_for("call.initiated", WAIT, |d| {
                d.data()["call_id"] == uuid.as_str()
            })
            .await;
        let id = uuid::Uuid::parse_str(uuid).unwrap();
        second
            .state()
            .switch
            .hangup("fs1", id, HangupCause::NORMAL_CLEARING)
            .await
            .unwrap();
    }
    for uuid in &uuids {
        stack
            .receiver
            .wait_for("call.hangup", WAIT, |d| {
                d.data()["call_id"] == uuid.as_str()
            })
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per: HashMap<(String, String), usize> = HashMap::new();
    for d in stack.receiver.all() {
        *per.entry((
            d.kind().to_owned(),
            d.data()["call_id"].as_str().unwrap_or_default().to_owned(),
        ))
        .or_default() += 1;
    }
    for uuid in &uuids {
        for kind in ["call.initiated", "call.hangup"] {
            assert_eq!(
                per.get(&(kind.to_owned(), uuid.clone())),
                Some(&1),
                "{kind} for {uuid}: {per:?}"
            );
        }
    }
    second.shutdown().await;
}

#[tokio::test]
async fn deliveries_pending_at_a_crash_are_delivered_by_a_new_instance() {
    let mut stack = Stack::start(options(true)).await;
    // The receiver fails everything for now.
    stack.receiver.script(&[500; 64]);
    let mut uuids = Vec::new();
    for i in 0..3 {
        uuids.push(park_call(&stack, &format!("+1555888{i:04}")).await);
    }
    // Wait until the first attempts failed, then kill the daemon outright.
    for uuid in &uuids {
        stack
            .receiver
            .wait_for("call.initiated", WAIT, |d| {
                d.data()["call_id"] == uuid.as_str()
            })
            .await;
    }
    stack.daemon.take().unwrap().abort();
    // A new receiver that accepts; a new instance on the same Redis.
    let fresh = Receiver::start().await;
    let mut config = stack.config.clone();
    for t in &mut config.tenants {
        t.webhook_url = Some(fresh.url());
    }
    config.http.listen = "127.0.0.1:0".into();
    config.webhooks.timeout_ms = 500; // a short lease takes over the dead claims quickly
    let daemon = fsgate::daemon::Daemon::start(config, Default::default())
        .await
        .unwrap();
    for uuid in &uuids {
        let d = fresh
            .wait_for("call.initiated", Duration::from_secs(45), |d| {
                d.data()["call_id"] == uuid.as_str()
            })
            .await;
        assert_signed(&d);
    }
    daemon.shutdown().await;
}

#[tokio::test]
async fn a_redis_outage_answers_503_and_recovers_by_itself() {
    let mut stack = Stack::start(options(true)).await;
    let (status, _) = stack.get_json("/v1/events").await;
    assert_eq!(status, 200);
    stack.redis.as_mut().unwrap().stop();
    let (status, body) = stack.get_json("/v1/events").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    stack.redis.as_mut().unwrap().resume();
    let mut recovered = false;
    for _ in 0..100 {
        if stack.get_json("/v1/events").await.0 == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "the API never recovered after Redis came back");
}
