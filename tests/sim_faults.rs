//! Fault injection through the control API, the received-command log and the
//! per-client dropped-event accounting (slow readers).

mod sim_support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sim_support::{start_sim, RawClient};
use tokio::io::AsyncWriteExt;

async fn post(ctl: std::net::SocketAddr, path: &str, body: Value) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("http://{ctl}{path}"))
        .json(&body)
        .send()
        .await
        .expect("control api")
        .status()
}

async fn get(ctl: std::net::SocketAddr, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{ctl}{path}"))
        .send()
        .await
        .expect("control api")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn drop_connections_closes_every_client() {
    let sim = start_sim(|_| {}).await;
    let ctl = sim.control_addr().unwrap();
    let mut a = RawClient::authed(sim.esl_addr()).await;
    let mut b = RawClient::authed(sim.esl_addr()).await;
    assert_eq!(post(ctl, "/faults/drop-connections", json!({})).await, 204);
    assert!(a.next().await.is_none());
    assert!(b.next().await.is_none());
    // New clients are served again.
    let _c = RawClient::authed(sim.esl_addr()).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn stall_delays_replies() {
    let sim = start_sim(|_| {}).await;
    let ctl = sim.control_addr().unwrap();
    let mut c = RawClient::authed(sim.esl_addr()).await;
    assert_eq!(post(ctl, "/faults/stall", json!({"ms": 300})).await, 204);
    let t = Instant::now();
    let r = c.cmd("api uuid_exists x").await;
    assert_eq!(r.body_str(), "false");
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert_eq!(post(ctl, "/faults/stall", json!({})).await, 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_frame_reaches_every_client() {
    let sim = start_sim(|_| {}).await;
    let ctl = sim.control_addr().unwrap();
    let mut c = RawClient::authed(sim.esl_addr()).await;
    assert_eq!(post(ctl, "/faults/malformed-frame", json!({})).await, 204);
    let f = c.next().await.expect("malformed frame");
    assert_eq!(f.header("Content-Length"), Some("not-a-number"));
    sim.shutdown().await;
}

#[tokio::test]
async fn stop_reading_holds_commands_and_received_records_them() {
    let sim = start_sim(|_| {}).await;
    let ctl = sim.control_addr().unwrap();
    let mut c = RawClient::authed(sim.esl_addr()).await;
    assert_eq!(
        post(ctl, "/faults/stop-reading", json!({"ms": 300})).await,
        204
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t = Instant::now();
    let r = c.cmd("api uuid_exists x").await;
    assert_eq!(r.body_str(), "false");
    assert!(t.elapsed() >= Duration::from_millis(200));
    let rec = get(ctl, "/received").await;
    let lines: Vec<&str> = rec
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_str().unwrap())
        .collect();
    assert_eq!(lines, vec!["auth ********", "api uuid_exists x"]);
    let del = reqwest::Client::new()
        .delete(format!("http://{ctl}/received"))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(get(ctl, "/received").await, json!([]));
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_reader_loses_events_and_is_reported() {
    let sim = start_sim(|c| c.queue_len = 4).await;
    let ctl = sim.control_addr().unwrap();
    // A client that subscribes to everything and then never reads.
    let mut slow = RawClient::authed(sim.esl_addr()).await;
    slow.cmd("event plain ALL").await;
    let mut fast = RawClient::authed(sim.esl_addr()).await;
    let body = "x".repeat(64 * 1024);
    let mut burst = String::new();
    for _ in 0..200 {
        burst.push_str(&format!(
            "sendevent CUSTOM\nEvent-Subclass: fsgate::flood\nContent-Length: {}\n\n{body}",
            body.len()
        ));
    }
    fast.stream.write_all(burst.as_bytes()).await.unwrap();
    for _ in 0..200 {
        let r = fast.next().await.expect("sendevent reply");
        assert!(r.header("Reply-Text").unwrap().starts_with("+OK "));
    }
    let clients = get(ctl, "/clients").await;
    let list = clients.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let slow_row = list
        .iter()
        .find(|c| c["events"].as_array().is_some_and(|e| !e.is_empty()))
        .expect("slow client listed");
    assert!(
        slow_row["dropped_events"].as_u64().unwrap() > 0,
        "{slow_row}"
    );
    assert_eq!(slow_row["slow_reader"], true);
    sim.shutdown().await;
}
