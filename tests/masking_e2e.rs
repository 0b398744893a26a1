//! Masked sessions through the assembled daemon (`fsgate serve`'s
//! `Daemon`): the simulator runs the shipped `dialplan/` against it, a real
//! redis-server holds the state, and webhooks arrive signed at a receiver.
//! The daemon's own expiry task is what completes sessions here (its clock
//! is a ManualClock the test moves), across a restart and with two
//! instances on one Redis.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fsgate::clock::{Clock, ManualClock};
use serde_json::{json, Value};
use support::receiver::Delivery;
use support::stack::{Stack, StackOptions, SECRET};

const WAIT: Duration = Duration::from_secs(10);
const A: &str = "+15557770001";
const B: &str = "+15557770002";

/// Checks the signature; `now` is the daemon's clock (it stamps
/// `webhook-timestamp`).
fn assert_signed(d: &Delivery, now: i64) {
    d.assert_signed_at(SECRET, now);
}

fn t0() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc)
}

async fn stack(clock: &ManualClock, pool: usize) -> Stack {
    Stack::start(StackOptions {
        redis: true,
        pool,
        clock: Arc::new(clock.clone()),
        ..Default::default()
    })
    .await
}

async fn create(s: &Stack, a: &str, b: &str, ttl: i64) -> Value {
    let (status, v) = s
        .post_json(
            "/v1/sessions",
            json!({"party_a": a, "party_b": b, "ttl_minutes": ttl}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v
}

async fn state_of(s: &Stack, r: &str) -> String {
    let (status, v) = s.get_json(&format!("/v1/sessions/{r}")).await;
    assert_eq!(status, 200, "{v}");
    v["state"].as_str().unwrap().to_owned()
}

async fn until_state(s: &Stack, r: &str, want: &str) {
    let deadline = Instant::now() + WAIT;
    while state_of(s, r).await != want {
        assert!(Instant::now() < deadline, "{r} never became {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masked_call_through_the_daemon_with_signed_webhooks() {
    let clock = ManualClock::new(t0());
    let s = stack(&clock, 2).await;
    let session = create(&s, A, B, 30).await;
    let r = session["ref"].as_str().unwrap().to_owned();
    let m = session["masked_number"].as_str().unwrap().to_owned();

    let a = s.sim.switch().place_inbound(A, &m);
    let b = {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(b) = s.sim.switch().partner(&a) {
                break b;
            }
            assert!(Instant::now() < deadline, "no bridge");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let leg = s.sim.switch().channel(&b).unwrap();
    assert_eq!(leg.profile.caller_id_number, m);
    assert_eq!(leg.profile.callee_id_number, B);
    let active = s
        .receiver
        .wait_for("session.active", WAIT, |d| d.data()["ref"] == r.as_str())
        .await;
    assert_signed(&active, clock.now().timestamp());
    assert_eq!(active.data()["call_id"], a.as_str());
    assert_eq!(active.envelope["tenant"], "acme");

    s.sim.switch().hangup(
        &a,
        fsgate::esl::HangupCause::NORMAL_CLEARING,
        fsgate::sim::core::HangupOrigin::Remote,
    );
    let open = s
        .receiver
        .wait_for("session.open", WAIT, |d| d.data()["ref"] == r.as_str())
        .await;
    assert_signed(&open, clock.now().timestamp());
    let hangup = s
        .receiver
        .wait_for("call.hangup", WAIT, |d| d.data()["call_id"] == a.as_str())
        .await;
    assert_eq!(hangup.data()["session_ref"], r.as_str());
    assert_eq!(state_of(&s, &r).await, "open");

    // A stranger: refused, no session webhook.
    let x = s.sim.switch().place_inbound("+15557779999", &m);
    let refused = s
        .receiver
        .wait_for("call.hangup", WAIT, |d| d.data()["call_id"] == x.as_str())
        .await;
    assert_eq!(refused.data()["cause"], "CALL_REJECTED");

    let (status, done) = s
        .post_json(&format!("/v1/sessions/{r}/complete"), json!({}))
        .await;
    assert_eq!(status, 200, "{done}");
    let completed = s
        .receiver
        .wait_for("session.completed", WAIT, |d| d.data()["ref"] == r.as_str())
        .await;
    assert_signed(&completed, clock.now().timestamp());
    assert_eq!(completed.data()["reason"], "closed");
    let kinds: Vec<String> = s
        .receiver
        .all()
        .iter()
        .filter(|d| d.kind().starts_with("session.") && d.data()["ref"] == r.as_str())
        .map(|d| d.kind().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["session.active", "session.open", "session.completed"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_expires_sessions_at_the_first_sweep_after_their_ttl() {
    let clock = ManualClock::new(t0());
    let s = stack(&clock, 2).await;
    let r = create(&s, A, B, 1).await["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance(chrono::Duration::seconds(59));
    s.daemon().expiry_swept().await;
    assert_eq!(state_of(&s, &r).await, "open", "not before its TTL");
    clock.advance(chrono::Duration::seconds(1));
    // The sweeps run every 250 ms: the first one after the TTL completes it.
    s.daemon().expiry_swept().await;
    let (_, v) = s.get_json(&format!("/v1/sessions/{r}")).await;
    assert_eq!(v["state"], "completed", "{v}");
    assert_eq!(v["completion_reason"], "ttl");
    let hook = s
        .receiver
        .wait_for("session.completed", WAIT, |d| d.data()["ref"] == r.as_str())
        .await;
    assert_eq!(hook.data()["reason"], "ttl");
}

/// Sessions that expire while no daemon runs are completed by the next
/// one; with two instances sweeping the same Redis, each session completes
/// (and is announced) exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_survives_a_restart_and_runs_once_across_instances() {
    let clock = ManualClock::new(t0());
    let mut s = stack(&clock, 12).await;
    let mut refs = Vec::new();
    for i in 0..12 {
        let v = create(&s, &format!("+1555777{i:04}"), "+15559990000", 1).await;
        refs.push(v["ref"].as_str().unwrap().to_owned());
    }
    s.stop_daemon().await;
    clock.advance(chrono::Duration::minutes(5));
    let one = s.second_instance().await;
    let two = s.second_instance().await;
    let base = format!("http://{}", one.addr());
    let deadline = Instant::now() + WAIT;
    for r in &refs {
        loop {
            let v: Value = s
                .http
                .get(format!("{base}/v1/sessions/{r}"))
                .header("X-API-Key", "acme-key")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["state"] == "completed" {
                assert_eq!(v["completion_reason"], "ttl");
                break;
            }
            assert!(Instant::now() < deadline, "{r} not completed: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Both instances have swept again and delivered everything due since:
    // a duplicate would be here by now.
    tokio::join!(one.expiry_swept(), two.expiry_swept());
    tokio::join!(one.webhooks_settled(), two.webhooks_settled());
    let completed = s.receiver.of_type("session.completed");
    assert_eq!(completed.len(), 12, "each session announced once");
    let mut seen: Vec<&str> = completed
        .iter()
        .map(|d| d.data()["ref"].as_str().unwrap())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 12);
    one.shutdown().await;
    two.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originate_through_the_daemon() {
    let clock = ManualClock::new(t0());
    let s = stack(&clock, 2).await;
    let ctl = s.sim.control_addr().unwrap();
    for (pattern, ms) in [("15557770001", 40), ("15557770002", 60)] {
        let r = s
            .http
            .post(format!("http://{ctl}/behaviours"))
            .json(&json!({"pattern": pattern, "answer_after_ms": ms}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let session = create(&s, A, B, 30).await;
    let r = session["ref"].as_str().unwrap().to_owned();
    let m = session["masked_number"].as_str().unwrap();
    let (status, accepted) = s
        .post_json("/v1/calls/originate", json!({"session": r}))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let call_id = accepted["call_id"].as_str().unwrap().to_owned();
    let answered = s
        .receiver
        .wait_for("call.answered", WAIT, |d| {
            d.data()["call_id"] == call_id.as_str()
        })
        .await;
    assert_eq!(answered.data()["session_ref"], r.as_str());
    let deadline = Instant::now() + WAIT;
    let second = loop {
        if let Some(b) = s.sim.switch().partner(&call_id) {
            break b;
        }
        assert!(Instant::now() < deadline, "no second leg");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let g = s.sim.switch().channel(&second).unwrap();
    assert_eq!(g.profile.caller_id_number, m);
    assert!(g.name.ends_with(B));
    assert_eq!(state_of(&s, &r).await, "active");
    s.sim.switch().hangup(
        &second,
        fsgate::esl::HangupCause::NORMAL_CLEARING,
        fsgate::sim::core::HangupOrigin::Remote,
    );
    until_state(&s, &r, "open").await;
}
