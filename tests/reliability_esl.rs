//! Reliability of the ESL side, end to end through the assembled daemon and
//! the simulator: a dropped connection is re-established within 2 s and the
//! calls that ended meanwhile are reconciled (commands sent during the gap
//! get a `failed` `command.result`); a webhook receiver that is down and then
//! up gets every envelope, signed; and a receiver that takes 9 s per webhook
//! never slows the ESL reader while 1,000 calls' events flow.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fsgate::esl::HangupCause;
use fsgate::sim::core::HangupOrigin;
use serde_json::json;
use support::receiver::{Delivery, Receiver};
use support::stack::{Stack, StackOptions, SECRET};

const WAIT: Duration = Duration::from_secs(10);

/// The fixture dialplan parks calls to the control numbers by itself.
fn options() -> StackOptions {
    StackOptions {
        dialplan: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sim-dialplan").into()),
        ..Default::default()
    }
}

fn assert_signed(d: &Delivery) {
    d.assert_signed(SECRET);
}

/// Ids of the simulator's authenticated clients that subscribed to events.
fn subscribed_clients(stack: &Stack) -> Vec<u64> {
    stack
        .sim
        .switch()
        .bus()
        .clients()
        .iter()
        .filter(|c| {
            c.authed.load(std::sync::atomic::Ordering::Relaxed)
                && !c.subs.lock().unwrap().names().is_empty()
        })
        .map(|c| c.id)
        .collect()
}

/// Waits for a subscribed client that is not in `old`; returns how long it took.
async fn wait_new_client(stack: &Stack, old: &[u64], within: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < within {
        if subscribed_clients(stack).iter().any(|id| !old.contains(id)) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the daemon did not reconnect within {within:?}");
}

async fn parked(stack: &Stack, from: &str) -> String {
    let uuid = stack.sim.switch().place_inbound(from, "15550109000");
    stack
        .receiver
        .wait_for("call.initiated", WAIT, |d| {
            d.data()["call_id"] == uuid.as_str()
        })
        .await;
    uuid
}

/// Live calls the daemon lists for acme (every page).
async fn live_calls(stack: &Stack) -> usize {
    let mut n = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/sessions?limit=200&cursor={c}"),
            None => "/api/v1/sessions?limit=200".to_owned(),
        };
        let (status, page) = stack.get_json(&path).await;
        assert_eq!(status, 200, "{page}");
        n += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return n,
        }
    }
}

/// Drops the daemon's connection with every reply stalled for 1.5 s, so the
/// reconnection cannot authenticate meanwhile; returns the connections that
/// were subscribed before, once they are gone.
async fn lose_the_switch(stack: &Stack) -> Vec<u64> {
    let faults = stack.sim.faults();
    let connected = subscribed_clients(stack);
    faults.stall(Duration::from_millis(1500));
    faults.drop_connections();
    let deadline = Instant::now() + Duration::from_secs(2);
    while subscribed_clients(stack)
        .iter()
        .any(|id| connected.contains(id))
    {
        assert!(Instant::now() < deadline, "the old connection never went");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    connected
}

#[tokio::test]
async fn a_dropped_connection_reconnects_and_reconciles_what_ended_meanwhile() {
    let stack = Stack::start(options()).await;
    let faults = stack.sim.faults().clone();

    // A plain drop: a new, subscribed connection within 2 s.
    let before = subscribed_clients(&stack);
    assert_eq!(before.len(), 1, "one daemon connection");
    faults.drop_connections();
    let took = wait_new_client(&stack, &before, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(2), "reconnected in {took:?}");

    // Two live calls; the daemon then loses the switch for a while (every
    // reply stalled, so the reconnection cannot authenticate).
    let ended = parked(&stack, "+15557770001").await;
    let alive = parked(&stack, "+15557770002").await;
    let connected = lose_the_switch(&stack).await;
    // During the gap: one call ends on the switch, and a command is sent.
    assert!(stack
        .sim
        .switch()
        .hangup(&ended, HangupCause::NORMAL_CLEARING, HangupOrigin::Remote));
    let (status, accepted) = stack
        .post_json(
            &format!("/api/v1/sessions/{alive}/commands/hangup"),
            json!({"command_uid": "during-gap"}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let op = accepted["operation_id"].as_str().unwrap().to_owned();
    let result = stack
        .receiver
        .wait_for("command.result", WAIT, |d| {
            d.data()["operation_id"] == op.as_str()
        })
        .await;
    assert_signed(&result);
    assert_eq!(result.data()["status"], "failed", "{}", result.envelope);
    assert!(stack.sim.switch().channel(&alive).is_some());

    // Back: reconnected, and the missed hangup reconciled.
    wait_new_client(&stack, &connected, Duration::from_secs(4)).await;
    let hangup = stack
        .receiver
        .wait_for("call.hangup", WAIT, |d| {
            d.data()["call_id"] == ended.as_str()
        })
        .await;
    assert_signed(&hangup);
    assert_eq!(hangup.data()["reconciled"], true, "{}", hangup.envelope);
    let (status, _) = stack.get_json(&format!("/api/v1/sessions/{alive}")).await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + WAIT;
    while live_calls(&stack).await != 1 {
        assert!(Instant::now() < deadline, "the ended call is still listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The surviving call is still controllable on the new connection.
    let (status, accepted) = stack
        .post_json(
            &format!("/api/v1/sessions/{alive}/commands/hangup"),
            json!({"command_uid": "after-gap"}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let op = accepted["operation_id"].as_str().unwrap().to_owned();
    let result = stack
        .receiver
        .wait_for("command.result", WAIT, |d| {
            d.data()["operation_id"] == op.as_str()
        })
        .await;
    assert_eq!(result.data()["status"], "succeeded", "{}", result.envelope);
}

/// Binds a free port and releases it: a receiver that is down.
fn closed_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Waits until acme's event log holds at least `n` envelopes.
async fn wait_logged(stack: &Stack, n: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, page) = stack.get_json("/v1/events?limit=100").await;
        assert_eq!(status, 200, "{page}");
        if page["events"].as_array().unwrap().len() >= n {
            return;
        }
        assert!(Instant::now() < deadline, "events never logged: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_receiver_down_then_up_gets_every_envelope_signed() {
    let down = closed_port();
    let mut opts = options();
    opts.tweak = Some(Box::new(move |c| {
        for t in &mut c.tenants {
            t.webhook_url = Some(format!("http://{down}/hooks"));
        }
    }));
    let stack = Stack::start(opts).await;
    // Calls while nobody listens: every first attempt is refused.
    let mut uuids = Vec::new();
    for i in 0..5 {
        let uuid = stack
            .sim
            .switch()
            .place_inbound(&format!("+1555777{i:04}"), "15550109000");
        uuids.push(uuid);
    }
    wait_logged(&stack, 5).await;
    for uuid in &uuids {
        assert!(stack.sim.switch().hangup(
            uuid,
            HangupCause::NORMAL_CLEARING,
            HangupOrigin::Remote
        ));
    }
    // Every envelope is in the event log, none delivered yet.
    wait_logged(&stack, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The receiver comes up on that address. The retry schedule is fixed
    // (first retry after 5 s ±10 %, not configurable), so this waits ~6 s.
    let up = Receiver::start_on(down).await;
    let (_, page) = stack.get_json("/v1/events?limit=100").await;
    let ids: HashSet<String> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got: HashSet<String> = up
            .all()
            .iter()
            .map(|d| d.envelope["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        if ids.is_subset(&got) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delivered {} of {} envelopes",
            got.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for d in up.all() {
        assert_signed(&d);
    }
    for uuid in &uuids {
        for kind in ["call.initiated", "call.hangup"] {
            assert_eq!(
                up.of_type(kind)
                    .iter()
                    .filter(|d| d.data()["call_id"] == uuid.as_str())
                    .count(),
                1,
                "{kind} for {uuid}"
            );
        }
    }
}

#[tokio::test]
async fn a_slow_receiver_never_slows_the_esl_reader() {
    let stack = Stack::start(options()).await;
    stack.receiver.delay(Duration::from_secs(9));
    const CALLS: usize = 1000;
    let start = Instant::now();
    let sw = stack.sim.switch();
    let uuids: Vec<String> = (0..CALLS)
        .map(|i| sw.place_inbound(&format!("+1555600{i:04}"), "15550109000"))
        .collect();
    // The call table reflects every call promptly.
    let deadline = Instant::now() + Duration::from_secs(20);
    while live_calls(&stack).await != CALLS {
        assert!(Instant::now() < deadline, "not every call listed in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for uuid in &uuids {
        sw.hangup(uuid, HangupCause::NORMAL_CLEARING, HangupOrigin::Remote);
    }
    while live_calls(&stack).await != 0 {
        assert!(Instant::now() < deadline, "not every hangup seen in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = start.elapsed();
    // The simulator never had to drop an event for the daemon's connection.
    for c in sw.bus().clients() {
        let dropped = c.dropped.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(dropped, 0, "client {} dropped {dropped} events", c.id);
    }
    assert!(
        took < Duration::from_secs(20),
        "1,000 calls took {took:?} to flow"
    );
    // Webhooks are being attempted (slowly) meanwhile.
    assert!(!stack.receiver.all().is_empty());
}

#[tokio::test]
async fn a_masked_session_whose_call_ended_during_the_gap_returns_to_open() {
    // The shipped dialplan: the call asks the daemon's route lookup.
    let stack = Stack::start(StackOptions::default()).await;
    let (status, session) = stack
        .post_json(
            "/v1/sessions",
            json!({"party_a": "+15557770001", "party_b": "+15557770002"}),
        )
        .await;
    assert_eq!(status, 201, "{session}");
    let sref = session["ref"].as_str().unwrap().to_owned();
    let masked = session["masked_number"].as_str().unwrap().to_owned();

    let a_leg = stack.sim.switch().place_inbound("+15557770001", &masked);
    stack
        .receiver
        .wait_for("session.active", WAIT, |d| d.data()["ref"] == sref.as_str())
        .await;

    // The daemon loses the switch; the call ends meanwhile.
    let connected = lose_the_switch(&stack).await;
    assert!(stack
        .sim
        .switch()
        .hangup(&a_leg, HangupCause::NORMAL_CLEARING, HangupOrigin::Remote));

    // Back: the hangup is reconciled and the session is open again.
    wait_new_client(&stack, &connected, Duration::from_secs(4)).await;
    let open = stack
        .receiver
        .wait_for("session.open", WAIT, |d| d.data()["ref"] == sref.as_str())
        .await;
    assert_signed(&open);
    let (status, now) = stack.get_json(&format!("/v1/sessions/{sref}")).await;
    assert_eq!(status, 200);
    assert_eq!(now["state"], "open", "{now}");
    let hangup = stack
        .receiver
        .wait_for("call.hangup", WAIT, |d| {
            d.data()["call_id"] == a_leg.as_str()
        })
        .await;
    assert_eq!(hangup.data()["reconciled"], true, "{}", hangup.envelope);
    assert_eq!(hangup.data()["session_ref"], sref.as_str());
}
