//! Nothing lost under store faults (the transactional outbox, events that
//! wait for the store, pools put back): each test breaks something real (a
//! stalled Redis, an emptied Redis) and counts what survived.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::stack::{Stack, StackOptions};

const WAIT: Duration = Duration::from_secs(20);

async fn redis_stack() -> Stack {
    Stack::start(StackOptions {
        redis: true,
        pool: 4,
        ..Default::default()
    })
    .await
}

/// How a Redis outage is made.
#[derive(Clone, Copy)]
enum Outage {
    /// SIGSTOP: connections stay, nothing answers (each request times out).
    Stalled,
    /// Killed and restarted (append-only, so its data comes back):
    /// connections are refused meanwhile.
    Down,
}

/// A call is answered and hung up during a 6 s Redis outage, longer than
/// the pipeline used to retry refused requests (about 3 s): once Redis is
/// back, `call.answered` and `call.hangup` are both announced, once each.
async fn events_during_an_outage_are_announced_after_it(outage: Outage) {
    let mut stack = Stack::start(StackOptions {
        redis: true,
        redis_args: vec!["--appendonly", "yes", "--appendfsync", "always"],
        ..Default::default()
    })
    .await;
    let uuid = stack
        .sim
        .switch()
        .place_inbound("+15557770001", "+15550109000");
    let of_call = |d: &support::receiver::Delivery| d.data()["call_id"] == uuid.as_str();
    stack
        .receiver
        .wait_for("call.initiated", WAIT, of_call)
        .await;

    match outage {
        Outage::Stalled => stack.redis.as_ref().unwrap().pause(),
        Outage::Down => stack.redis.as_mut().unwrap().stop(),
    }
    assert!(stack.sim.switch().answer(&uuid, &[]));
    assert!(stack.sim.switch().hangup(
        &uuid,
        fsgate::esl::HangupCause::NORMAL_CLEARING,
        fsgate::sim::core::HangupOrigin::Remote,
    ));
    // The outage itself: the events wait in their shard meanwhile.
    tokio::time::sleep(Duration::from_secs(6)).await;
    match outage {
        Outage::Stalled => stack.redis.as_ref().unwrap().unpause(),
        Outage::Down => stack.redis.as_mut().unwrap().resume(),
    }

    stack
        .receiver
        .wait_for("call.answered", WAIT, of_call)
        .await;
    stack.receiver.wait_for("call.hangup", WAIT, of_call).await;
    for kind in ["call.answered", "call.hangup"] {
        let ids: std::collections::HashSet<String> = stack
            .receiver
            .of_type(kind)
            .iter()
            .filter(|d| of_call(d))
            .map(|d| d.header("webhook-id").to_owned())
            .collect();
        assert_eq!(ids.len(), 1, "{kind} once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_during_a_stalled_redis_are_announced_when_it_resumes() {
    events_during_an_outage_are_announced_after_it(Outage::Stalled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_while_redis_is_down_are_announced_when_it_is_back() {
    events_during_an_outage_are_announced_after_it(Outage::Down).await;
}

/// Redis loses everything (FLUSHALL) under a stream of creates: the pools
/// come back without a restart, `/readyz` is not `ready` while they are
/// missing, and creates succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_redis_gets_its_pools_back_without_a_restart() {
    let stack = redis_stack().await;
    let create = || async {
        stack
            .post_json(
                "/v1/sessions",
                json!({"party_a": "+15557770001", "party_b": "+15557770002"}),
            )
            .await
    };
    assert_eq!(create().await.0, 201);

    let mut c = redis::Client::open(stack.redis.as_ref().unwrap().url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();

    // Until the daemon notices (within a second), a create may still find
    // the empty pool; then it is put back, all four numbers free again.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut created = 0;
    let mut refused = 0;
    while created < 4 {
        match create().await.0 {
            201 => created += 1,
            409 | 503 => refused += 1,
            other => panic!("create answered {other}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pool never came back ({created} created)"
        );
        if created == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Four numbers: the fifth create is refused, so no number was freed twice.
    let (status, body) = create().await;
    assert_eq!(status, 409, "{body}");
    let (status, body): (u16, Value) = {
        let r = stack
            .http
            .get(format!("{}/readyz", stack.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    };
    assert_eq!(
        (status, body["store"]["status"].as_str()),
        (200, Some("ok")),
        "{body}"
    );
    let _ = refused;
}
