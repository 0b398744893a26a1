//! Masked sessions end to end: the REST API and the route lookup served by
//! the platform HTTP layer, the simulator running the shipped `dialplan/`
//! (mod_curl asks that server, with the dialplan token), a real
//! redis-server as the store, and the event pipeline feeding the
//! call-lifecycle and masking handlers. Webhooks are read back from the
//! outbox's event log. TTL time is a ManualClock; calls take real (short)
//! time.

mod masking_support;
mod support;

use std::time::Duration;

use fsgate::sim::BehaviourSpec;
use masking_support::{until, world, Options, World, A, B, M};
use serde_json::{json, Value};

fn answer(pattern: &str, ms: u64) -> BehaviourSpec {
    BehaviourSpec {
        pattern: pattern.into(),
        answer_after_ms: Some(ms),
        reject: None,
        no_answer: false,
    }
}

fn r(v: &serde_json::Value) -> String {
    v["ref"].as_str().unwrap().to_owned()
}

async fn complete(w: &World, session_ref: &str) -> serde_json::Value {
    let (s, v) = w
        .post_json(&format!("/v1/sessions/{session_ref}/complete"), json!({}))
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parties_reach_each_other_showing_only_the_masked_number() {
    let w = world(Options::default()).await;
    let s = w.session(A, B, None).await;
    let sref = r(&s);
    assert_eq!(s["masked_number"], M);
    assert_eq!(s["state"], "open");

    // A calls M: reaches B, who sees M.
    let a = w.sim.switch().place_inbound(A, M);
    let b = w.bridged(&a).await;
    let leg = w.sim.switch().channel(&b).unwrap();
    assert_eq!(leg.vars.get("origination_caller_id_number"), Some(M));
    assert_eq!(leg.vars.get("origination_caller_id_name"), Some(M));
    assert_eq!(leg.vars.get("sip_from_display"), Some(M));
    assert_eq!(leg.vars.get("sip_cid_type"), Some("pid"));
    assert_eq!(
        leg.profile.caller_id_number, M,
        "effective caller id number"
    );
    assert_eq!(leg.profile.caller_id_name, M, "effective caller id name");
    assert_eq!(leg.vars.get("fsgate_session"), Some(sref.as_str()));
    assert_eq!(leg.vars.get("fsgate_tenant"), Some("acme"));
    assert_eq!(leg.profile.callee_id_number, B);
    assert_eq!(
        leg.vars.get("sip_gateway_name"),
        Some("carrier"),
        "{}",
        leg.name
    );
    for (name, value) in leg.vars.iter() {
        assert!(!value.contains("${"), "{name}={value}");
    }
    assert_eq!(w.state_of(&sref).await, "active");
    let (_, v) = w.get_json(&format!("/v1/sessions/{sref}")).await;
    assert_eq!(v["active_calls"], json!([a]));

    w.hang_up(&a);
    w.until_state(&sref, "open").await;

    // B calls M (without '+'): reaches A, who sees M.
    let from_b = w.sim.switch().place_inbound(B, "15550100001");
    let to_a = w.bridged(&from_b).await;
    let leg = w.sim.switch().channel(&to_a).unwrap();
    assert_eq!(leg.profile.callee_id_number, A);
    assert_eq!(leg.profile.caller_id_number, M);
    w.hang_up(&to_a); // the far end hangs up this time
    w.until_state(&sref, "open").await;

    // A stranger is refused.
    let x = w.sim.switch().place_inbound("+15557779999", M);
    assert_eq!(w.ended_with(&x).await, "CALL_REJECTED");
    assert_eq!(w.state_of(&sref).await, "open");

    // After complete, both parties are refused.
    complete(&w, &sref).await;
    for p in [A, B] {
        let c = w.sim.switch().place_inbound(p, M);
        assert_eq!(w.ended_with(&c).await, "UNALLOCATED_NUMBER");
    }

    // A new session on the same number routes to the new pairing only.
    let n = w.session("+15557770003", "+15557770004", None).await;
    assert_eq!(n["masked_number"], M);
    let old = w.sim.switch().place_inbound(A, M);
    assert_eq!(w.ended_with(&old).await, "CALL_REJECTED");
    let c = w.sim.switch().place_inbound("+15557770003", M);
    let to = w.bridged(&c).await;
    let leg = w.sim.switch().channel(&to).unwrap();
    assert_eq!(leg.profile.callee_id_number, "+15557770004");
    assert_eq!(leg.vars.get("fsgate_session"), Some(r(&n).as_str()));
    w.hang_up(&c);
    w.until_state(&r(&n), "open").await;

    // Webhooks: the session's own, and call.* of its calls naming it.
    let kinds = w.webhook_kinds("acme").await;
    let mine: Vec<&str> = kinds
        .iter()
        .filter(|(t, s)| t.starts_with("session.") && s.as_deref() == Some(sref.as_str()))
        .map(|(t, _)| t.as_str())
        .collect();
    assert_eq!(
        mine,
        [
            "session.active",
            "session.open",
            "session.active",
            "session.open",
            "session.completed"
        ]
    );
    let hooks = w.webhooks("acme").await;
    let hangup = hooks
        .iter()
        .find(|h| h["type"] == "call.hangup" && h["data"]["call_id"] == a.as_str())
        .expect("call.hangup of A's call");
    assert_eq!(hangup["data"]["session_ref"], sref.as_str());
    let completed = hooks
        .iter()
        .find(|h| h["type"] == "session.completed")
        .unwrap();
    assert_eq!(completed["data"]["reason"], "closed");
    assert_eq!(completed["data"]["masked_number"], M);
    // Refused calls belong to the tenant but to no session.
    assert!(hooks
        .iter()
        .filter(|h| h["data"]["call_id"] == x.as_str())
        .all(|h| h["data"]["session_ref"].is_null()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_mid_call_leaves_the_call_up_by_default() {
    let w = world(Options::default()).await;
    let sref = r(&w.session(A, B, Some(5)).await);
    let a = w.sim.switch().place_inbound(A, M);
    let b = w.bridged(&a).await;
    w.clock.advance(chrono::Duration::minutes(5));
    assert_eq!(w.masking.expire_due().await.unwrap(), 1);
    assert_eq!(w.state_of(&sref).await, "completed");
    // Not hung up: nothing was sent (the sweep's commands, if any, would
    // have reached the switch before this round trip).
    w.switch_caught_up().await;
    assert!(w.received().iter().all(|l| !l.starts_with("api uuid_kill")));
    assert!(w.sim.switch().channel(&a).is_some_and(|c| !c.hanging_up));
    assert!(w.sim.switch().channel(&b).is_some());
    // Ending it changes nothing: the session stays completed.
    w.hang_up(&a);
    w.ended_with(&a).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, v) = w.get_json(&format!("/v1/sessions/{sref}")).await;
    assert_eq!(v["state"], "completed");
    assert_eq!(v["completion_reason"], "ttl");
    let kinds = w.webhook_kinds("acme").await;
    let session: Vec<&str> = kinds
        .iter()
        .filter(|(t, _)| t.starts_with("session."))
        .map(|(t, _)| t.as_str())
        .collect();
    assert_eq!(session, ["session.active", "session.completed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_mid_call_cuts_the_call_with_hangup_on_expiry() {
    let w = world(Options {
        hangup_on_expiry: true,
        ..Options::default()
    })
    .await;
    let sref = r(&w.session(A, B, Some(5)).await);
    let a = w.sim.switch().place_inbound(A, M);
    let b = w.bridged(&a).await;
    w.clock.advance(chrono::Duration::minutes(5));
    assert_eq!(w.masking.expire_due().await.unwrap(), 1);
    assert_eq!(w.ended_with(&a).await, "ALLOTTED_TIMEOUT");
    w.gone(&b).await;
    assert_eq!(w.state_of(&sref).await, "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_task_completes_within_a_second() {
    let w = world(Options::default()).await;
    let sref = r(&w.session(A, B, Some(1)).await);
    let task =
        fsgate::masking::spawn_expiry(w.masking.clone(), fsgate::masking::expiry::EXPIRY_INTERVAL);
    w.clock.advance(chrono::Duration::minutes(1));
    let started = std::time::Instant::now();
    w.until_state(&sref, "completed").await;
    assert!(started.elapsed() < Duration::from_secs(1));
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originate_rings_both_parties_showing_the_masked_number() {
    let w = world(Options {
        behaviours: vec![answer("15557770001", 50), answer("15557770002", 80)],
        ..Options::default()
    })
    .await;
    let sref = r(&w.session(A, B, None).await);
    let before = w.received().len();
    let (status, accepted) = w
        .post_json(
            "/v1/calls/originate",
            json!({"session": sref, "first": "b"}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "in_progress");
    let call_id = accepted["call_id"].as_str().unwrap().to_owned();
    let operation_id = accepted["operation_id"].as_str().unwrap().to_owned();
    let sent = w.received()[before..].to_vec();
    let originates: Vec<&String> = sent
        .iter()
        .filter(|l| l.starts_with("bgapi originate"))
        .collect();
    assert_eq!(originates.len(), 1, "{sent:?}");
    let line = originates[0];
    assert!(
        line.starts_with(&format!(
            "bgapi originate {{origination_caller_id_number={M},origination_caller_id_name={M},"
        )),
        "{line}"
    );
    assert!(
        line.contains(&format!("origination_uuid={call_id}")),
        "{line}"
    );
    assert!(line.contains("ignore_early_media=true"));
    assert!(line.contains(&format!("fsgate_session={sref}")));
    assert!(
        line.contains(&format!("sofia/gateway/carrier/{B} &bridge({{")),
        "{line}"
    );
    assert!(
        line.ends_with(&format!("sofia/gateway/carrier/{A})")),
        "{line}"
    );
    assert!(!line.contains("${"));

    assert_eq!(w.state_of(&sref).await, "active");
    let second = w.bridged(&call_id).await;
    let f = w.sim.switch().channel(&call_id).unwrap();
    let g = w.sim.switch().channel(&second).unwrap();
    assert!(f.name.ends_with(B), "B rings first: {}", f.name);
    assert!(g.name.ends_with(A), "{}", g.name);
    for leg in [&f, &g] {
        assert_eq!(leg.vars.get("origination_caller_id_number"), Some(M));
        assert_eq!(leg.vars.get("fsgate_session"), Some(sref.as_str()));
    }
    // The second leg's caller is M (the first leg's profile was flipped on
    // answer, as FreeSWITCH does, so it now names the party it reached).
    assert_eq!(g.profile.caller_id_number, M);
    let op = until("the operation's result", || async {
        let op = w.store.get_operation("acme", &operation_id).await.ok()??;
        (op.status != fsgate::store::OperationStatus::InProgress).then_some(op)
    })
    .await;
    assert_eq!(op.status, fsgate::store::OperationStatus::Succeeded);
    assert_eq!(op.call_id, call_id);
    let results: Vec<Value> = w
        .webhooks("acme")
        .await
        .into_iter()
        .filter(|h| h["type"] == "command.result")
        .collect();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["data"]["operation_id"], operation_id.as_str());
    assert_eq!(results[0]["data"]["command"], "originate");
    assert_eq!(results[0]["data"]["status"], "succeeded");
    assert_eq!(results[0]["data"]["call_id"], call_id.as_str());

    w.hang_up(&second);
    w.until_state(&sref, "open").await;
    let hooks = w.webhooks("acme").await;
    let answered = hooks
        .iter()
        .find(|h| h["type"] == "call.answered" && h["data"]["call_id"] == call_id.as_str())
        .expect("call.answered of the originated call");
    assert_eq!(answered["data"]["session_ref"], sref.as_str());

    // Completed: refused, and nothing reaches the switch.
    complete(&w, &sref).await;
    let before = w.received().len();
    let (status, e) = w
        .post_json("/v1/calls/originate", json!({"session": sref}))
        .await;
    assert_eq!(status, 409, "{e}");
    assert_eq!(e["error"]["code"], "session_not_live");
    w.switch_caught_up().await;
    // The refused originate sent nothing.
    let after = w.received();
    assert!(
        after[before..].iter().all(|l| !l.contains("originate")),
        "{:?}",
        &after[before..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_party_that_rejects_fails_the_originate() {
    let w = world(Options {
        behaviours: vec![BehaviourSpec {
            pattern: "15557770001".into(),
            answer_after_ms: None,
            reject: Some("USER_BUSY".into()),
            no_answer: false,
        }],
        ..Options::default()
    })
    .await;
    let sref = r(&w.session(A, B, None).await);
    let (status, accepted) = w
        .post_json("/v1/calls/originate", json!({"session": sref}))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let operation_id = accepted["operation_id"].as_str().unwrap().to_owned();
    let op = until("the operation's result", || async {
        let op = w.store.get_operation("acme", &operation_id).await.ok()??;
        (op.status != fsgate::store::OperationStatus::InProgress).then_some(op)
    })
    .await;
    assert_eq!(op.status, fsgate::store::OperationStatus::Failed);
    assert_eq!(op.detail.as_deref(), Some("USER_BUSY"));
    let result = until("the command.result", || async {
        w.webhooks("acme")
            .await
            .into_iter()
            .find(|h| h["type"] == "command.result")
    })
    .await;
    assert_eq!(result["data"]["status"], "failed");
    assert_eq!(result["data"]["detail"], "USER_BUSY");
    w.until_state(&sref, "open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originate_while_draining_is_refused() {
    let w = world(Options::default()).await;
    let sref = r(&w.session(A, B, None).await);
    w.state.drain.start();
    let before = w.received().len();
    let (status, e) = w
        .post_json("/v1/calls/originate", json!({"session": sref}))
        .await;
    assert_eq!(status, 503, "{e}");
    assert_eq!(e["error"]["code"], "draining");
    assert_eq!(w.received().len(), before);
    assert_eq!(w.state_of(&sref).await, "open");
}
