//! Call control against the simulator: answer, hangup and disconnect on
//! parked inbound calls (with the webhooks they cause), the answer timeout,
//! idempotency (sequential and racing requests send one ESL command),
//! undeliverable commands, and calls that are not the tenant's.

mod control_support;
mod support;

use std::time::Duration;

use control_support::{start, start_on, until, Env, CONTROL, OTHER_CONTROL};
use fsgate::clock::Clock;
use fsgate::control::timeouts::expire_due;
use fsgate::control::{CommandKind, CommandRequest, ControlError, HangupRequest, OperationState};
use fsgate::sim::BehaviourSpec;
use fsgate::store::{CallState, OperationStatus};

fn uid(s: &str) -> CommandRequest {
    CommandRequest {
        command_uid: Some(s.into()),
    }
}

async fn result_of(env: &Env, op: &str) -> serde_json::Value {
    env.webhook("acme", "command.result", |w| {
        w["data"]["operation_id"] == op
    })
    .await
}

#[tokio::test]
async fn answer_a_parked_call_is_confirmed_by_channel_answer() {
    let env = start(vec![]).await;
    let call = env.parked_call("+15557770001", CONTROL).await;
    let initiated = env
        .webhook("acme", "call.initiated", |w| w["data"]["call_id"] == call)
        .await;
    assert_eq!(initiated["data"]["from"], "+15557770001");

    let accepted = env
        .control
        .plain("acme", &call, CommandKind::Answer, &uid("ans-1"))
        .await
        .unwrap();
    assert_eq!(accepted.status, OperationState::InProgress);
    assert_eq!(accepted.timeout_ms, 2000);

    let result = result_of(&env, &accepted.operation_id).await;
    assert_eq!(result["data"]["status"], "succeeded");
    assert_eq!(result["data"]["command"], "answer");
    assert_eq!(result["data"]["command_uid"], "ans-1");
    assert_eq!(result["data"]["call_id"], call);
    env.webhook("acme", "call.answered", |w| w["data"]["call_id"] == call)
        .await;
    env.call_in_state(&call, CallState::Answered).await;
    assert!(env.sim.switch().channel(&call).unwrap().answered());
    let types: Vec<String> = env
        .webhooks("acme")
        .await
        .iter()
        .map(|w| w["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        ["call.initiated", "call.answered", "command.result"],
        "one result, after the answer"
    );

    // Answering again: +OK without a new CHANNEL_ANSWER, yet succeeded.
    let again = env
        .control
        .plain("acme", &call, CommandKind::Answer, &uid("ans-2"))
        .await
        .unwrap();
    let result = result_of(&env, &again.operation_id).await;
    assert_eq!(result["data"]["status"], "succeeded");
    let op = env
        .control
        .operation("acme", &again.operation_id)
        .await
        .unwrap();
    assert_eq!(op.status, OperationState::Succeeded);
    assert_eq!(op.detail.as_deref(), Some("+OK"));
    assert!(matches!(
        env.control.operation("other", &again.operation_id).await,
        Err(ControlError::NotFound(_))
    ));
}

#[tokio::test]
async fn an_answer_nobody_confirms_times_out_at_its_deadline() {
    // An outbound leg that rings forever: uuid_answer says +OK and does
    // nothing (docs/esl-protocol.md §5.2), so no CHANNEL_ANSWER ever comes.
    let env = start(vec![BehaviourSpec {
        pattern: "15557770001".into(),
        answer_after_ms: None,
        reject: None,
        no_answer: true,
    }])
    .await;
    let req = fsgate::calls::CreateCallRequest {
        caller: "+15557770001".into(),
        callee: "+15557770002".into(),
        send_sdp: true,
        ..Default::default()
    };
    let session = env.calls.create(&env.acme, &req).await.unwrap();
    until("caller leg ringing", async || {
        env.sim.switch().channel(&session.id).map(|_| ())
    })
    .await;
    let accepted = env
        .control
        .plain("acme", &session.id, CommandKind::Answer, &uid("ans-t"))
        .await
        .unwrap();
    until("uuid_answer sent", async || {
        (!env.received("api uuid_answer").is_empty()).then_some(())
    })
    .await;
    env.control.dispatches_idle().await;
    assert_eq!(expire_due(&env.results, &["acme".into()]).await.unwrap(), 0);
    env.clock.advance(chrono::Duration::milliseconds(1999));
    assert_eq!(expire_due(&env.results, &["acme".into()]).await.unwrap(), 0);
    env.clock.advance(chrono::Duration::milliseconds(1));
    assert_eq!(expire_due(&env.results, &["acme".into()]).await.unwrap(), 1);
    let result = result_of(&env, &accepted.operation_id).await;
    assert_eq!(result["data"]["status"], "timeout");
    assert!(result["data"]["detail"]
        .as_str()
        .unwrap()
        .contains("2000 ms"));
    assert_eq!(expire_due(&env.results, &["acme".into()]).await.unwrap(), 0);
}

#[tokio::test]
async fn hangup_with_a_cause_reports_at_once_and_the_call_ends_with_it() {
    let env = start(vec![]).await;
    let call = env.parked_call("+15557770001", CONTROL).await;
    let req = HangupRequest {
        command_uid: Some("hup-1".into()),
        cause: Some("USER_BUSY".into()),
    };
    let accepted = env.control.hangup("acme", &call, &req).await.unwrap();
    let result = result_of(&env, &accepted.operation_id).await;
    assert_eq!(result["data"]["status"], "succeeded");
    assert_eq!(result["data"]["detail"], "+OK");
    assert_eq!(
        env.received("api uuid_kill"),
        [format!("api uuid_kill {call} USER_BUSY")]
    );
    let hangup = env
        .webhook("acme", "call.hangup", |w| w["data"]["call_id"] == call)
        .await;
    assert_eq!(hangup["data"]["cause"], "USER_BUSY");
    assert_eq!(hangup["data"]["q850"], 17);
    let ended = env.call_in_state(&call, CallState::Ended).await;
    assert_eq!(ended.hangup_cause.as_deref(), Some("USER_BUSY"));

    // The call is gone: a new command on it is 404, a replay is not.
    let late = env
        .control
        .hangup("acme", &call, &HangupRequest::default())
        .await;
    assert!(matches!(late, Err(ControlError::NotFound(_))));
    let replay = env.control.hangup("acme", &call, &req).await.unwrap();
    assert_eq!(replay.operation_id, accepted.operation_id);
    assert_eq!(replay.status, OperationState::Succeeded);
}

#[tokio::test]
async fn disconnect_transfers_to_the_configured_extension() {
    let env = start(vec![]).await;
    let call = env.parked_call("+15557770001", CONTROL).await;
    let accepted = env
        .control
        .plain(
            "acme",
            &call,
            CommandKind::Disconnect,
            &CommandRequest::default(),
        )
        .await
        .unwrap();
    let result = result_of(&env, &accepted.operation_id).await;
    assert_eq!(result["data"]["status"], "succeeded");
    assert_eq!(result["data"]["command"], "disconnect");
    assert!(uuid::Uuid::parse_str(result["data"]["command_uid"].as_str().unwrap()).is_ok());
    assert_eq!(
        env.received("api uuid_transfer"),
        [format!(
            "api uuid_transfer {call} fsgate_disconnected XML fsgate"
        )]
    );
    // The shipped `fsgate` context hangs the call up.
    let ended = env.call_in_state(&call, CallState::Ended).await;
    assert_eq!(ended.hangup_cause.as_deref(), Some("NORMAL_CLEARING"));
}

#[tokio::test]
async fn one_key_one_command_even_when_requests_race() {
    let env = start(vec![]).await;
    let call = env.parked_call("+15557770001", CONTROL).await;
    let first = env
        .control
        .plain("acme", &call, CommandKind::Answer, &uid("same"))
        .await
        .unwrap();
    let second = env
        .control
        .plain("acme", &call, CommandKind::Answer, &uid("same"))
        .await
        .unwrap();
    assert_eq!(first.operation_id, second.operation_id);

    let race = uid("race");
    let racing = futures_util::future::join_all(
        (0..8).map(|_| env.control.plain("acme", &call, CommandKind::Answer, &race)),
    )
    .await;
    let ids: std::collections::HashSet<String> = racing
        .into_iter()
        .map(|r| r.unwrap().operation_id)
        .collect();
    assert_eq!(ids.len(), 1);
    let race_id = ids.into_iter().next().unwrap();
    result_of(&env, &race_id).await;
    result_of(&env, &first.operation_id).await;
    // Every accepted command has been sent and answered: nothing more comes.
    env.control.dispatches_idle().await;
    assert_eq!(env.received("api uuid_answer").len(), 2, "one per key");
    let results = env.webhooks("acme").await;
    assert_eq!(
        results
            .iter()
            .filter(|w| w["type"] == "command.result")
            .count(),
        2,
        "one result per operation"
    );

    // The same key for another command or another body: 409.
    let other_command = env
        .control
        .plain("acme", &call, CommandKind::Disconnect, &uid("same"))
        .await;
    assert!(matches!(other_command, Err(ControlError::Conflict { .. })));
    let busy = HangupRequest {
        command_uid: Some("hup".into()),
        cause: Some("USER_BUSY".into()),
    };
    let rejected = HangupRequest {
        command_uid: Some("hup".into()),
        cause: Some("CALL_REJECTED".into()),
    };
    env.control.hangup("acme", &call, &busy).await.unwrap();
    let err = env
        .control
        .hangup("acme", &call, &rejected)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("different body"), "{err}");
    // Another tenant's key space is its own.
    let theirs = env
        .control
        .plain("other", &call, CommandKind::Answer, &uid("same"))
        .await;
    assert!(matches!(theirs, Err(ControlError::NotFound(_))));
}

#[tokio::test]
async fn a_command_the_switch_never_answers_fails_with_the_reason() {
    let env = start(vec![]).await;
    let call = env.parked_call("+15557770001", CONTROL).await;
    // The simulator stops reading: the command times out on the wire.
    env.sim.faults().stop_reading_for(None);
    let accepted = env
        .control
        .plain("acme", &call, CommandKind::Answer, &uid("stalled"))
        .await
        .unwrap();
    let result = result_of(&env, &accepted.operation_id).await;
    assert_eq!(result["data"]["status"], "failed");
    let detail = result["data"]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("could not be delivered (FreeSWITCH may still have run it)"),
        "{detail}"
    );
    env.sim.faults().clear();
}

#[tokio::test]
async fn a_node_that_is_not_connected_fails_the_command_with_the_reason() {
    let env = start(vec![]).await;
    let call = env.parked_call("+15557770001", CONTROL).await;
    let Env {
        sim,
        control,
        switch,
        store,
        node: _node,
        pipeline: _pipeline,
        ..
    } = env;
    sim.shutdown().await;
    until("node disconnected", async || {
        (!switch.any_connected()).then_some(())
    })
    .await;
    let accepted = control
        .hangup("acme", &call, &HangupRequest::default())
        .await
        .unwrap();
    let result = until("command.result", async || {
        let page = store.events_after("acme", None, 100).await.unwrap();
        page.items
            .iter()
            .map(|e| serde_json::from_str::<serde_json::Value>(&e.payload).unwrap())
            .find(|w| w["data"]["operation_id"] == accepted.operation_id)
    })
    .await;
    assert_eq!(result["type"], "command.result");
    assert_eq!(result["data"]["status"], "failed");
    assert_eq!(
        result["data"]["detail"],
        "could not be delivered: FreeSWITCH node fs1 is not connected; the command was not sent"
    );
}

#[tokio::test]
async fn calls_that_are_not_the_tenants_are_not_found_and_nothing_is_sent() {
    let env = start(vec![]).await;
    let theirs = env.parked_call("+15557770001", OTHER_CONTROL).await;
    env.sim.faults().clear_received();
    for call in [
        theirs.as_str(),
        "0a1b2c3d-0000-4000-8000-000000000001",
        "not-a-uuid",
    ] {
        let r = env
            .control
            .plain(
                "acme",
                call,
                CommandKind::Answer,
                &CommandRequest::default(),
            )
            .await;
        assert!(matches!(r, Err(ControlError::NotFound(_))), "{call}");
        let r = env
            .control
            .hangup("acme", call, &HangupRequest::default())
            .await;
        assert!(matches!(r, Err(ControlError::NotFound(_))), "{call}");
    }
    let bad = env
        .control
        .hangup(
            "acme",
            &theirs,
            &HangupRequest {
                command_uid: Some("a b".into()),
                cause: None,
            },
        )
        .await;
    assert!(matches!(bad, Err(ControlError::Invalid(e)) if e.field == "command_uid"));
    let bad = env
        .control
        .hangup(
            "acme",
            &theirs,
            &HangupRequest {
                command_uid: None,
                cause: Some("NOT_A_CAUSE".into()),
            },
        )
        .await;
    assert!(matches!(bad, Err(ControlError::Invalid(e)) if e.field == "cause"));
    env.control.dispatches_idle().await;
    assert!(env.received("api uuid_").is_empty());
    // Their call is fine.
    assert!(env
        .control
        .plain(
            "other",
            &theirs,
            CommandKind::Answer,
            &CommandRequest::default()
        )
        .await
        .is_ok());
}

#[tokio::test]
async fn operations_left_in_progress_by_a_stopped_daemon_time_out() {
    let env = start(vec![]).await;
    let call = env.parked_call("+15557770001", CONTROL).await;
    let now = env.clock.now();
    let op = fsgate::store::OperationRecord {
        id: "left-over".into(),
        tenant: "acme".into(),
        command_uid: "left-over".into(),
        command: "hangup".into(),
        call_id: call.clone(),
        request_hash: "h".into(),
        status: OperationStatus::InProgress,
        detail: None,
        timeout_ms: 2000,
        created_at: now,
        deadline: now + chrono::Duration::seconds(2),
        completed_at: None,
    };
    env.store
        .register_operation(op, Duration::from_secs(3600))
        .await
        .unwrap();
    env.clock.advance(chrono::Duration::seconds(3));
    let handle = fsgate::control::timeouts::spawn(
        env.results.clone(),
        vec!["acme".into(), "other".into()],
        Duration::from_millis(20),
    );
    let result = result_of(&env, "left-over").await;
    handle.abort();
    assert_eq!(result["data"]["status"], "timeout");
    assert_eq!(result["data"]["detail"], "no result within 2000 ms");
}

/// The same guarantees on a real redis-server: the Lua registration lets one
/// of racing requests win, and CHANNEL_ANSWER finishes the answer once.
#[tokio::test]
async fn on_redis_racing_keys_send_one_command_and_answers_are_confirmed() {
    let redis = support::redis::RedisServer::start();
    let store = fsgate::store::open(&redis.url()).await.unwrap();
    let env = start_on(vec![], store).await;
    let call = env.parked_call("+15557770001", CONTROL).await;
    let race = uid("race");
    let racing = futures_util::future::join_all(
        (0..8).map(|_| env.control.plain("acme", &call, CommandKind::Answer, &race)),
    )
    .await;
    let ids: std::collections::HashSet<String> = racing
        .into_iter()
        .map(|r| r.unwrap().operation_id)
        .collect();
    assert_eq!(ids.len(), 1);
    let id = ids.into_iter().next().unwrap();
    let result = result_of(&env, &id).await;
    assert_eq!(result["data"]["status"], "succeeded");
    env.webhook("acme", "call.answered", |w| w["data"]["call_id"] == call)
        .await;
    env.control.dispatches_idle().await;
    assert_eq!(env.received("api uuid_answer").len(), 1);
    let conflict = env
        .control
        .hangup(
            "acme",
            &call,
            &HangupRequest {
                command_uid: Some("race".into()),
                cause: None,
            },
        )
        .await;
    assert!(matches!(conflict, Err(ControlError::Conflict { .. })));
    let op = env.control.operation("acme", &id).await.unwrap();
    assert_eq!(op.status, OperationState::Succeeded);

    // An operation nobody finishes times out by the injected clock.
    let now = env.clock.now();
    let left = fsgate::store::OperationRecord {
        id: "left-over".into(),
        tenant: "acme".into(),
        command_uid: "left-over".into(),
        command: "disconnect".into(),
        call_id: call.clone(),
        request_hash: "h".into(),
        status: OperationStatus::InProgress,
        detail: None,
        timeout_ms: 2000,
        created_at: now,
        deadline: now + chrono::Duration::seconds(2),
        completed_at: None,
    };
    env.store
        .register_operation(left, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(expire_due(&env.results, &["acme".into()]).await.unwrap(), 0);
    env.clock.advance(chrono::Duration::seconds(2));
    assert_eq!(expire_due(&env.results, &["acme".into()]).await.unwrap(), 1);
    assert_eq!(
        result_of(&env, "left-over").await["data"]["status"],
        "timeout"
    );
}

#[tokio::test]
async fn refused_commands_fail_with_freeswitchs_words() {
    let env = start(vec![]).await;
    // The call table still holds a call FreeSWITCH no longer has (its
    // hangup not yet processed): every command reaches the switch and is
    // refused.
    let gone = uuid::Uuid::new_v4().to_string();
    let now = chrono::Utc::now();
    env.store
        .put_call(
            fsgate::store::CallRecord {
                uuid: gone.clone(),
                tenant: Some("acme".into()),
                node: "fs1".into(),
                direction: fsgate::store::CallDirection::Inbound,
                state: CallState::Ringing,
                caller: Some("+15557770001".into()),
                caller_display_name: None,
                callee: Some(CONTROL.into()),
                other_leg: None,
                created_at: now,
                answered_at: None,
                ended_at: None,
                hangup_cause: None,
                q850: None,
                sip_code: None,
                duration_s: None,
                billsec: None,
                user_data: None,
                session_ref: None,
                reconciled: false,
                extra: Default::default(),
            },
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    let answer = env
        .control
        .plain(
            "acme",
            &gone,
            CommandKind::Answer,
            &CommandRequest::default(),
        )
        .await
        .unwrap();
    let hangup = env
        .control
        .hangup("acme", &gone, &HangupRequest::default())
        .await
        .unwrap();
    let disconnect = env
        .control
        .plain(
            "acme",
            &gone,
            CommandKind::Disconnect,
            &CommandRequest::default(),
        )
        .await
        .unwrap();
    for (op, words) in [
        (answer, "-ERROR"),
        (hangup, "-ERR No such channel!"),
        (disconnect, "-ERR No such channel!"),
    ] {
        let result = result_of(&env, &op.operation_id).await;
        assert_eq!(result["data"]["status"], "failed");
        assert_eq!(result["data"]["detail"], words);
    }
}
