//! One behaviour suite for every `Store`: each case below is written once and
//! run against the memory store, a fresh real redis-server per test, and (in
//! one sequential test) a three-master Redis Cluster. Redis-only behaviour
//! (surviving a server restart) is at the end. Never mocks Redis.

#[macro_use]
mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use fsgate::store::*;

// --- fixtures -----------------------------------------------------------------

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap()
}

fn secs(s: i64) -> chrono::Duration {
    chrono::Duration::seconds(s)
}

fn numbers(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("+1555010{i:04}")).collect()
}

fn new_session(tenant: &str, r: &str, created: DateTime<Utc>) -> NewSession {
    NewSession {
        tenant: tenant.into(),
        session_ref: r.into(),
        party_a: "+15557770001".into(),
        party_b: "+15557770002".into(),
        ttl_minutes: 10,
        metadata: Some(serde_json::json!({"order": r, "list": [], "n": 12345678901234567u64})),
        created_at: created,
        expires_at: created + secs(600),
    }
}

fn call(uuid: &str, tenant: Option<&str>, node: &str, state: CallState) -> CallRecord {
    CallRecord {
        uuid: uuid.into(),
        tenant: tenant.map(Into::into),
        node: node.into(),
        direction: CallDirection::Inbound,
        state,
        caller: None,
        caller_display_name: None,
        callee: None,
        other_leg: None,
        created_at: t0(),
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
        extra: serde_json::Map::new(),
    }
}

fn op(tenant: &str, uid: &str, id: &str, call_id: &str, command: &str) -> OperationRecord {
    OperationRecord {
        id: id.into(),
        tenant: tenant.into(),
        command_uid: uid.into(),
        command: command.into(),
        call_id: call_id.into(),
        request_hash: "h".into(),
        status: OperationStatus::InProgress,
        detail: None,
        timeout_ms: 2000,
        created_at: t0(),
        deadline: t0() + secs(2),
        completed_at: None,
    }
}

fn job(tenant: &str, id: &str) -> WebhookJob {
    WebhookJob {
        id: id.into(),
        tenant: tenant.into(),
        payload: format!(r#"{{"id":"{id}","type":"call.answered","data":{{}}}}"#),
        attempt: 0,
    }
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

type S = Arc<dyn Store>;

// --- sessions --------------------------------------------------------------

async fn concurrent_creates_never_share_a_number(s: S) {
    s.sync_pool("acme", &numbers(100)).await.unwrap();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.create_session(new_session("acme", &format!("ses_{i}"), t0()))
                    .await
            })
        })
        .collect();
    let (mut got, mut exhausted) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(rec) => got.push(rec.masked_number),
            Err(CreateSessionError::PoolExhausted) => exhausted += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(got.len(), 100);
    assert_eq!(exhausted, 900);
    let distinct: HashSet<_> = got.iter().collect();
    assert_eq!(distinct.len(), 100);
    let pool: HashSet<_> = numbers(100).into_iter().collect();
    assert!(got.iter().all(|n| pool.contains(n)));
}

async fn create_get_and_duplicate_ref(s: S) {
    s.sync_pool("acme", &numbers(3)).await.unwrap();
    let rec = s
        .create_session(new_session("acme", "ses_a", t0()))
        .await
        .unwrap();
    assert_eq!(rec.state, SessionState::Open);
    assert_eq!(rec.tenant, "acme");
    assert!(rec.active_calls.is_empty());
    assert!(rec.completed_at.is_none() && rec.completion_reason.is_none());
    let back = s.get_session("acme", "ses_a").await.unwrap().unwrap();
    assert_eq!(back, rec, "stored as created (metadata included)");
    assert_eq!(back.metadata.unwrap()["list"], serde_json::json!([]));
    let dup = s.create_session(new_session("acme", "ses_a", t0())).await;
    assert_eq!(dup.unwrap_err(), CreateSessionError::DuplicateRef);
    assert_eq!(s.get_session("acme", "ses_nope").await.unwrap(), None);
    let other = s.create_session(new_session("zeta", "ses_z", t0())).await;
    assert_eq!(
        other.unwrap_err(),
        CreateSessionError::PoolExhausted,
        "a tenant without a pool has no number"
    );
}

async fn completion_frees_the_number_for_a_later_session(s: S) {
    s.sync_pool("acme", &numbers(1)).await.unwrap();
    let a = s
        .create_session(new_session("acme", "ses_a", t0()))
        .await
        .unwrap();
    let busy = s.create_session(new_session("acme", "ses_b", t0())).await;
    assert_eq!(busy.unwrap_err(), CreateSessionError::PoolExhausted);
    let done = s
        .complete_session(
            "acme",
            "ses_a",
            CompletionReason::Closed,
            t0() + secs(5),
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(done.changed);
    assert_eq!(done.record.state, SessionState::Completed);
    assert_eq!(
        done.record.completion_reason,
        Some(CompletionReason::Closed)
    );
    assert_eq!(done.record.completed_at, Some(t0() + secs(5)));
    assert_eq!(
        s.session_by_number("acme", &a.masked_number).await.unwrap(),
        None
    );
    let b = s
        .create_session(new_session("acme", "ses_b", t0() + secs(6)))
        .await
        .unwrap();
    assert_eq!(b.masked_number, a.masked_number, "the number is reused");
    let routed = s
        .session_by_number("acme", &a.masked_number)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(routed.session_ref, "ses_b", "never yesterday's pairing");
    // Completed sessions never reopen.
    let again = s
        .complete_session("acme", "ses_a", CompletionReason::Ttl, t0() + secs(9), None)
        .await
        .unwrap()
        .unwrap();
    assert!(!again.changed);
    assert_eq!(again.record, done.record);
    let started = s
        .session_call_started("acme", "ses_a", "call-1", None, None)
        .await
        .unwrap()
        .unwrap();
    assert!(!started.changed);
    assert_eq!(started.record.state, SessionState::Completed);
    let ended = s
        .session_call_ended("acme", "ses_a", "call-1", None)
        .await
        .unwrap()
        .unwrap();
    assert!(!ended.changed);
    assert_eq!(ended.record.state, SessionState::Completed);
    assert!(s
        .complete_session("acme", "ses_nope", CompletionReason::Ttl, t0(), None)
        .await
        .unwrap()
        .is_none());
}

async fn complete_changes_exactly_once_under_race(s: S) {
    s.sync_pool("acme", &numbers(2)).await.unwrap();
    s.create_session(new_session("acme", "ses_a", t0()))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.complete_session(
                    "acme",
                    "ses_a",
                    CompletionReason::Ttl,
                    t0() + secs(600),
                    None,
                )
                .await
                .unwrap()
                .unwrap()
                .changed
            })
        })
        .collect();
    let mut changed = 0;
    for t in tasks {
        changed += usize::from(t.await.unwrap());
    }
    assert_eq!(changed, 1);
    // The number went back exactly once: two sessions fit, a third does not.
    for r in ["ses_b", "ses_c"] {
        s.create_session(new_session("acme", r, t0()))
            .await
            .unwrap();
    }
    let third = s.create_session(new_session("acme", "ses_d", t0())).await;
    assert_eq!(third.unwrap_err(), CreateSessionError::PoolExhausted);
}

async fn calls_move_a_session_between_open_and_active(s: S) {
    s.sync_pool("acme", &numbers(1)).await.unwrap();
    s.create_session(new_session("acme", "ses_a", t0()))
        .await
        .unwrap();
    let st = |t: &Transition<SessionRecord>| (t.record.state, t.changed);
    let t1 = s
        .session_call_started("acme", "ses_a", "c1", None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st(&t1), (SessionState::Active, true));
    assert_eq!(t1.record.active_calls, vec!["c1".to_string()]);
    let t2 = s
        .session_call_started("acme", "ses_a", "c2", None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st(&t2), (SessionState::Active, false));
    let again = s
        .session_call_started("acme", "ses_a", "c2", None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.record.active_calls.len(), 2, "no duplicates");
    let e1 = s
        .session_call_ended("acme", "ses_a", "c1", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st(&e1), (SessionState::Active, false));
    assert_eq!(e1.record.active_calls, vec!["c2".to_string()]);
    let e2 = s
        .session_call_ended("acme", "ses_a", "c2", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st(&e2), (SessionState::Open, true));
    assert!(e2.record.active_calls.is_empty());
    let e3 = s
        .session_call_ended("acme", "ses_a", "c2", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st(&e3), (SessionState::Open, false));
    assert!(s
        .session_call_started("acme", "ses_nope", "c1", None, None)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .session_call_ended("acme", "ses_nope", "c1", None)
        .await
        .unwrap()
        .is_none());
    // An active session completes (TTL mid-call) and frees its number.
    s.session_call_started("acme", "ses_a", "c3", None, None)
        .await
        .unwrap();
    let done = s
        .complete_session(
            "acme",
            "ses_a",
            CompletionReason::Ttl,
            t0() + secs(600),
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(done.changed);
    assert_eq!(done.record.state, SessionState::Completed);
    assert!(done.record.active_calls.is_empty());
    s.create_session(new_session("acme", "ses_b", t0()))
        .await
        .unwrap();
}

async fn open_active_step_changes_once_under_race(s: S) {
    s.sync_pool("acme", &numbers(1)).await.unwrap();
    s.create_session(new_session("acme", "ses_a", t0()))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.session_call_started("acme", "ses_a", &format!("c{i}"), None, None)
                    .await
                    .unwrap()
                    .unwrap()
                    .changed
            })
        })
        .collect();
    let mut changed = 0;
    for t in tasks {
        changed += usize::from(t.await.unwrap());
    }
    assert_eq!(changed, 1);
    let rec = s.get_session("acme", "ses_a").await.unwrap().unwrap();
    assert_eq!(rec.active_calls.len(), 20);
}

async fn sync_pool_adds_and_removes_numbers(s: S) {
    let n = numbers(3);
    s.sync_pool("acme", &n[..2]).await.unwrap();
    s.sync_pool("acme", &n[..2]).await.unwrap(); // idempotent
    let a = s
        .create_session(new_session("acme", "ses_a", t0()))
        .await
        .unwrap();
    assert!(n[..2].contains(&a.masked_number));
    // Keep only the held number and add n[2]: the free one leaves the pool.
    let kept = vec![a.masked_number.clone(), n[2].clone()];
    s.sync_pool("acme", &kept).await.unwrap();
    let b = s
        .create_session(new_session("acme", "ses_b", t0()))
        .await
        .unwrap();
    assert_eq!(b.masked_number, n[2]);
    let c = s.create_session(new_session("acme", "ses_c", t0())).await;
    assert_eq!(c.unwrap_err(), CreateSessionError::PoolExhausted);
    // Remove a held number: its session keeps it; on completion it is gone.
    s.sync_pool("acme", std::slice::from_ref(&n[2]))
        .await
        .unwrap();
    let still = s.get_session("acme", "ses_a").await.unwrap().unwrap();
    assert_eq!(still.masked_number, a.masked_number);
    assert_eq!(
        s.session_by_number("acme", &a.masked_number)
            .await
            .unwrap()
            .unwrap()
            .session_ref,
        "ses_a"
    );
    s.complete_session("acme", "ses_a", CompletionReason::Closed, t0(), None)
        .await
        .unwrap();
    let c = s.create_session(new_session("acme", "ses_c", t0())).await;
    assert_eq!(c.unwrap_err(), CreateSessionError::PoolExhausted);
    // Adding back a number that is held does not free it twice.
    s.sync_pool("acme", &n).await.unwrap();
    let c = s
        .create_session(new_session("acme", "ses_c", t0()))
        .await
        .unwrap();
    let d = s
        .create_session(new_session("acme", "ses_d", t0()))
        .await
        .unwrap();
    let mut got = vec![c.masked_number, d.masked_number];
    got.sort();
    assert_eq!(got, n[..2].to_vec());
    let e = s.create_session(new_session("acme", "ses_e", t0())).await;
    assert_eq!(e.unwrap_err(), CreateSessionError::PoolExhausted);
}

async fn tenants_are_isolated(s: S) {
    s.sync_pool("acme", &numbers(1)).await.unwrap();
    s.sync_pool("zeta", &numbers(1)).await.unwrap();
    let a = s
        .create_session(new_session("acme", "ses_a", t0()))
        .await
        .unwrap();
    let z = s
        .create_session(new_session("zeta", "ses_z", t0()))
        .await
        .unwrap();
    assert_eq!(a.masked_number, z.masked_number, "pools are per tenant");
    assert_eq!(s.get_session("zeta", "ses_a").await.unwrap(), None);
    assert_eq!(
        s.session_by_number("zeta", &a.masked_number)
            .await
            .unwrap()
            .unwrap()
            .session_ref,
        "ses_z"
    );
    assert!(s
        .complete_session("zeta", "ses_a", CompletionReason::Closed, t0(), None)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .session_call_started("zeta", "ses_a", "c", None, None)
        .await
        .unwrap()
        .is_none());
    let zl = s.list_sessions("zeta", None, None, 10).await.unwrap();
    assert_eq!(zl.items.len(), 1);
    assert_eq!(zl.items[0].session_ref, "ses_z");
    s.register_operation(op("acme", "k", "op-1", "c", "answer"), HOUR)
        .await
        .unwrap();
    assert_eq!(s.get_operation("zeta", "op-1").await.unwrap(), None);
    assert!(s
        .finish_operation("zeta", "op-1", OperationStatus::Failed, None, t0(), None)
        .await
        .unwrap()
        .is_none());
    let z_reg = s
        .register_operation(op("zeta", "k", "op-2", "c", "answer"), HOUR)
        .await
        .unwrap();
    assert!(
        matches!(z_reg, Registered::Created(_)),
        "keys are per tenant"
    );
    s.enqueue_webhook(job("acme", "evt_1"), true, t0(), DAY)
        .await
        .unwrap();
    assert!(s
        .events_after("zeta", None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(s
        .claim_webhooks("zeta", "w", 10, HOUR, t0())
        .await
        .unwrap()
        .is_empty());
}

async fn list_sessions_newest_first_with_filters_and_cursors(s: S) {
    s.sync_pool("acme", &numbers(10)).await.unwrap();
    // Seven sessions; two share a creation time to exercise ties.
    let times = [0, 1, 2, 3, 3, 4, 5];
    for (i, t) in times.iter().enumerate() {
        s.create_session(new_session("acme", &format!("ses_{i}"), t0() + secs(*t)))
            .await
            .unwrap();
    }
    s.complete_session("acme", "ses_1", CompletionReason::Closed, t0(), None)
        .await
        .unwrap();
    s.complete_session("acme", "ses_4", CompletionReason::Closed, t0(), None)
        .await
        .unwrap();
    s.session_call_started("acme", "ses_6", "c", None, None)
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = s
            .list_sessions("acme", None, cursor.as_deref(), 3)
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|r| r.session_ref.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["ses_6", "ses_5", "ses_4", "ses_3", "ses_2", "ses_1", "ses_0"],
        "newest first, ties by ref, no gaps or repeats"
    );
    let all = s.list_sessions("acme", None, None, 7).await.unwrap();
    assert_eq!(all.items.len(), 7);
    assert_eq!(
        all.next_cursor, None,
        "exactly full last page has no cursor"
    );

    let refs = |p: Page<SessionRecord>| {
        p.items
            .into_iter()
            .map(|r| r.session_ref)
            .collect::<Vec<_>>()
    };
    let completed = s
        .list_sessions("acme", Some(SessionState::Completed), None, 10)
        .await
        .unwrap();
    assert_eq!(refs(completed), ["ses_4", "ses_1"]);
    let active = s
        .list_sessions("acme", Some(SessionState::Active), None, 10)
        .await
        .unwrap();
    assert_eq!(refs(active), ["ses_6"]);
    let open1 = s
        .list_sessions("acme", Some(SessionState::Open), None, 2)
        .await
        .unwrap();
    let next = open1.next_cursor.clone().unwrap();
    assert_eq!(refs(open1), ["ses_5", "ses_3"]);
    let open2 = s
        .list_sessions("acme", Some(SessionState::Open), Some(&next), 2)
        .await
        .unwrap();
    assert_eq!(open2.next_cursor, None);
    assert_eq!(refs(open2), ["ses_2", "ses_0"]);
    let junk = s
        .list_sessions("acme", None, Some("not a cursor"), 2)
        .await
        .unwrap();
    assert!(junk.items.is_empty() && junk.next_cursor.is_none());
    let none = s.list_sessions("nobody", None, None, 5).await.unwrap();
    assert!(none.items.is_empty() && none.next_cursor.is_none());
}

async fn due_sessions_are_live_and_oldest_first(s: S) {
    s.sync_pool("acme", &numbers(5)).await.unwrap();
    for (r, offset) in [("ses_c", 30), ("ses_a", 10), ("ses_b", 20), ("ses_d", 1000)] {
        let mut n = new_session("acme", r, t0());
        n.expires_at = t0() + secs(offset);
        s.create_session(n).await.unwrap();
    }
    assert!(s.due_sessions("acme", t0(), 10).await.unwrap().is_empty());
    let due = s.due_sessions("acme", t0() + secs(30), 10).await.unwrap();
    assert_eq!(due, ["ses_a", "ses_b", "ses_c"], "inclusive of now");
    assert_eq!(
        s.due_sessions("acme", t0() + secs(30), 2).await.unwrap(),
        ["ses_a", "ses_b"]
    );
    s.complete_session(
        "acme",
        "ses_a",
        CompletionReason::Ttl,
        t0() + secs(30),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        s.due_sessions("acme", t0() + secs(30), 10).await.unwrap(),
        ["ses_b", "ses_c"]
    );
    assert!(s
        .due_sessions("zeta", t0() + secs(9999), 10)
        .await
        .unwrap()
        .is_empty());
}

// --- the call table -------------------------------------------------------------

async fn put_call_merges_monotonically(s: S) {
    let mut answered = call("u1", Some("acme"), "fs1", CallState::Answered);
    answered.answered_at = Some(t0() + secs(3));
    answered.caller = Some("+1555".into());
    answered.extra.insert("a".into(), serde_json::json!([]));
    let r = s.put_call(answered, DAY).await.unwrap();
    assert_eq!(r.state, CallState::Answered);
    // An older event processed late: nothing moves back or is erased.
    let mut ringing = call("u1", None, "fs1", CallState::Ringing);
    ringing.callee = Some("+1666".into());
    ringing
        .extra
        .insert("b".into(), serde_json::json!({"x": 1.5}));
    let r = s.put_call(ringing, DAY).await.unwrap();
    assert_eq!(r.state, CallState::Answered);
    assert_eq!(r.tenant.as_deref(), Some("acme"));
    assert_eq!(r.caller.as_deref(), Some("+1555"));
    assert_eq!(r.callee.as_deref(), Some("+1666"));
    assert_eq!(r.answered_at, Some(t0() + secs(3)));
    assert_eq!(r.extra["a"], serde_json::json!([]));
    assert_eq!(r.extra["b"], serde_json::json!({"x": 1.5}));
    // The hangup.
    let mut ended = call("u1", Some("acme"), "fs1", CallState::Ended);
    ended.ended_at = Some(t0() + secs(20));
    ended.hangup_cause = Some("NORMAL_CLEARING".into());
    ended.q850 = Some(16);
    ended.duration_s = Some(20);
    ended.billsec = Some(17);
    let r = s.put_call(ended, DAY).await.unwrap();
    assert_eq!(r.state, CallState::Ended);
    assert_eq!(r.q850, Some(16));
    // A late reconciliation guess changes none of the ending details.
    let mut guess = call("u1", Some("acme"), "fs1", CallState::Ended);
    guess.ended_at = Some(t0() + secs(99));
    guess.hangup_cause = Some("LOSE_RACE".into());
    guess.sip_code = Some(486);
    guess.reconciled = true;
    let r = s.put_call(guess, DAY).await.unwrap();
    assert_eq!(r.ended_at, Some(t0() + secs(20)));
    assert_eq!(r.hangup_cause.as_deref(), Some("NORMAL_CLEARING"));
    assert_eq!(r.sip_code, Some(486), "missing details are filled");
    assert!(!r.reconciled);
    // Even a later `answered` does not revive it.
    let r = s
        .put_call(call("u1", None, "fs1", CallState::Answered), DAY)
        .await
        .unwrap();
    assert_eq!(r.state, CallState::Ended);
    assert_eq!(s.get_call("u1").await.unwrap().unwrap(), r);
    assert_eq!(s.get_call("u-none").await.unwrap(), None);
}

async fn put_call_out_of_order_from_many_tasks(s: S) {
    let states = [
        CallState::Ended,
        CallState::Ringing,
        CallState::Answered,
        CallState::Early,
    ];
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = s.clone();
            let mut c = call("u-race", Some("acme"), "fs1", states[i % 4]);
            if c.state == CallState::Ended {
                c.ended_at = Some(t0() + secs(i as i64));
                c.hangup_cause = Some(format!("CAUSE_{i}"));
            }
            if c.state == CallState::Answered {
                c.answered_at = Some(t0() + secs(1));
            }
            tokio::spawn(async move { s.put_call(c, DAY).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let r = s.get_call("u-race").await.unwrap().unwrap();
    assert_eq!(r.state, CallState::Ended);
    assert!(r.ended_at.is_some() && r.hangup_cause.is_some());
    assert_eq!(r.answered_at, Some(t0() + secs(1)));
    assert!(s
        .list_live_calls("acme", None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(s.live_calls_on_node("fs1").await.unwrap().is_empty());
}

async fn live_lists_per_tenant_and_node(s: S) {
    for (i, (u, tenant, node)) in [
        ("u1", Some("acme"), "fs1"),
        ("u2", Some("acme"), "fs2"),
        ("u3", Some("zeta"), "fs1"),
        ("u4", None, "fs1"),
        ("u5", Some("acme"), "fs1"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = call(u, tenant, node, CallState::Ringing);
        c.created_at = t0() + secs(i as i64);
        s.put_call(c, DAY).await.unwrap();
    }
    let uuids = |v: Vec<CallRecord>| v.into_iter().map(|c| c.uuid).collect::<Vec<_>>();
    let p1 = s.list_live_calls("acme", None, 2).await.unwrap();
    let next = p1.next_cursor.clone().expect("more");
    assert_eq!(uuids(p1.items), ["u1", "u2"], "oldest first");
    let p2 = s.list_live_calls("acme", Some(&next), 2).await.unwrap();
    assert_eq!(uuids(p2.items), ["u5"]);
    assert_eq!(p2.next_cursor, None);
    assert_eq!(
        uuids(s.list_live_calls("zeta", None, 10).await.unwrap().items),
        ["u3"]
    );
    let mut on_fs1 = uuids(s.live_calls_on_node("fs1").await.unwrap());
    on_fs1.sort();
    assert_eq!(on_fs1, ["u1", "u3", "u4", "u5"]);
    // Ending a call takes it off both lists; answering keeps it on.
    let mut end = call("u1", Some("acme"), "fs1", CallState::Ended);
    end.created_at = t0();
    s.put_call(end, DAY).await.unwrap();
    s.put_call(call("u5", None, "fs1", CallState::Answered), DAY)
        .await
        .unwrap();
    assert_eq!(
        uuids(s.list_live_calls("acme", None, 10).await.unwrap().items),
        ["u2", "u5"]
    );
    let mut on_fs1 = uuids(s.live_calls_on_node("fs1").await.unwrap());
    on_fs1.sort();
    assert_eq!(on_fs1, ["u3", "u4", "u5"]);
    // A tenant learned later puts the call on that tenant's list.
    let mut known = call("u4", Some("zeta"), "fs1", CallState::Ringing);
    known.created_at = t0() + secs(3);
    s.put_call(known, DAY).await.unwrap();
    assert_eq!(
        uuids(s.list_live_calls("zeta", None, 10).await.unwrap().items),
        ["u3", "u4"]
    );
    assert!(s.live_calls_on_node("fs9").await.unwrap().is_empty());
    let junk = s.list_live_calls("acme", Some("junk"), 10).await.unwrap();
    assert!(junk.items.is_empty());
}

async fn ended_calls_expire_after_retention(s: S) {
    let keep = Duration::from_millis(300);
    s.put_call(
        call("u-live", Some("acme"), "fs1", CallState::Ringing),
        keep,
    )
    .await
    .unwrap();
    s.put_call(call("u-end", Some("acme"), "fs1", CallState::Ringing), keep)
        .await
        .unwrap();
    s.put_call(call("u-end", Some("acme"), "fs1", CallState::Ended), keep)
        .await
        .unwrap();
    assert!(s.get_call("u-end").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.get_call("u-end").await.unwrap(), None);
    assert!(
        s.get_call("u-live").await.unwrap().is_some(),
        "live calls stay"
    );
    assert_eq!(s.live_calls_on_node("fs1").await.unwrap().len(), 1);
}

async fn bindings_expire_and_fill_the_record(s: S) {
    let b = CallBinding {
        tenant: "acme".into(),
        session_ref: Some("ses_a".into()),
        user_data: Some("ud".into()),
    };
    s.put_call_binding("u1", b.clone(), HOUR).await.unwrap();
    assert_eq!(s.get_call_binding("u1").await.unwrap(), Some(b));
    assert_eq!(s.get_call_binding("u2").await.unwrap(), None);
    let r = s
        .put_call(call("u1", None, "fs1", CallState::Ringing), DAY)
        .await
        .unwrap();
    assert_eq!(r.tenant.as_deref(), Some("acme"));
    assert_eq!(r.session_ref.as_deref(), Some("ses_a"));
    assert_eq!(r.user_data.as_deref(), Some("ud"));
    assert_eq!(
        s.list_live_calls("acme", None, 10)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let short = CallBinding {
        tenant: "zeta".into(),
        session_ref: None,
        user_data: None,
    };
    s.put_call_binding("u3", short, Duration::from_millis(200))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.get_call_binding("u3").await.unwrap(), None);
}

/// The dialplan's tie: a call started on a live session is bound in the
/// same step (its binding fills the call record); nothing is bound to a
/// completed or unknown session.
async fn a_started_call_is_bound_only_to_a_live_session(s: S) {
    s.sync_pool("acme", &numbers(2)).await.unwrap();
    s.create_session(new_session("acme", "ses_a", t0()))
        .await
        .unwrap();
    let bind = |r: &str| {
        Some((
            CallBinding {
                tenant: "acme".into(),
                session_ref: Some(r.into()),
                user_data: None,
            },
            HOUR,
        ))
    };
    let t = s
        .session_call_started("acme", "ses_a", "u1", bind("ses_a"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t.record.state, t.changed), (SessionState::Active, true));
    let b = s.get_call_binding("u1").await.unwrap().expect("bound");
    assert_eq!(b.session_ref.as_deref(), Some("ses_a"));
    let r = s
        .put_call(call("u1", None, "fs1", CallState::Ringing), DAY)
        .await
        .unwrap();
    assert_eq!(r.session_ref.as_deref(), Some("ses_a"));
    assert_eq!(r.tenant.as_deref(), Some("acme"));

    s.complete_session("acme", "ses_a", CompletionReason::Closed, t0(), None)
        .await
        .unwrap();
    let late = s
        .session_call_started("acme", "ses_a", "u2", bind("ses_a"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(late.record.state, SessionState::Completed);
    assert_eq!(s.get_call_binding("u2").await.unwrap(), None);
    assert!(s
        .session_call_started("acme", "ses_nope", "u3", bind("ses_nope"), None)
        .await
        .unwrap()
        .is_none());
    assert_eq!(s.get_call_binding("u3").await.unwrap(), None);
}

async fn call_sequences_count_from_one_without_gaps(s: S) {
    assert_eq!(s.next_call_sequence("u1").await.unwrap(), 1);
    assert_eq!(s.next_call_sequence("u1").await.unwrap(), 2);
    assert_eq!(s.next_call_sequence("u2").await.unwrap(), 1);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.next_call_sequence("u3").await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    got.sort();
    assert_eq!(got, (1..=100).collect::<Vec<u64>>());
    // The counter survives writes of the call.
    s.put_call(call("u1", Some("acme"), "fs1", CallState::Ended), DAY)
        .await
        .unwrap();
    assert_eq!(s.next_call_sequence("u1").await.unwrap(), 3);
}

// --- operations ---------------------------------------------------------------

async fn register_operation_once_under_race(s: S) {
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.register_operation(
                    op("acme", "ans-1", &format!("op-{i}"), "c1", "answer"),
                    HOUR,
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let (mut created, mut existing) = (Vec::new(), Vec::new());
    for t in tasks {
        match t.await.unwrap() {
            Registered::Created(r) => created.push(r),
            Registered::Existing(r) => existing.push(r),
        }
    }
    assert_eq!(created.len(), 1);
    assert_eq!(existing.len(), 49);
    assert!(existing.iter().all(|r| *r == created[0]));
    let stored = s.get_operation("acme", &created[0].id).await.unwrap();
    assert_eq!(stored.as_ref(), Some(&created[0]));
    assert_eq!(
        s.pending_operations_for_call("acme", "c1", None)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn finish_operation_exactly_once(s: S) {
    s.register_operation(op("acme", "k1", "op-1", "c1", "answer"), HOUR)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            let status = if i % 2 == 0 {
                OperationStatus::Succeeded
            } else {
                OperationStatus::Timeout
            };
            tokio::spawn(async move {
                s.finish_operation(
                    "acme",
                    "op-1",
                    status,
                    Some(format!("d{i}")),
                    t0() + secs(1),
                    None,
                )
                .await
                .unwrap()
                .unwrap()
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut all = Vec::new();
    for t in tasks {
        let tr = t.await.unwrap();
        if tr.changed {
            winners.push(tr.record.clone());
        }
        all.push(tr.record);
    }
    assert_eq!(winners.len(), 1);
    let w = &winners[0];
    assert_ne!(w.status, OperationStatus::InProgress);
    assert_eq!(w.completed_at, Some(t0() + secs(1)));
    assert!(w.detail.is_some());
    let stored = s.get_operation("acme", "op-1").await.unwrap().unwrap();
    assert_eq!(&stored, w, "the single result sticks");
    assert!(s
        .pending_operations_for_call("acme", "c1", None)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .due_operations("acme", t0() + secs(60), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .finish_operation("acme", "op-x", OperationStatus::Failed, None, t0(), None)
        .await
        .unwrap()
        .is_none());
    // Replaying the key after the result gives the finished record.
    let again = s
        .register_operation(op("acme", "k1", "op-2", "c1", "answer"), HOUR)
        .await
        .unwrap();
    assert_eq!(again, Registered::Existing(stored));
}

async fn pending_and_due_operations(s: S) {
    let mut a = op("acme", "k1", "op-1", "c1", "answer");
    a.deadline = t0() + secs(2);
    let mut b = op("acme", "k2", "op-2", "c1", "hangup");
    b.created_at = t0() + secs(1);
    b.deadline = t0() + secs(5);
    let mut c = op("acme", "k3", "op-3", "c2", "answer");
    c.deadline = t0() + secs(1);
    let mut done = op("acme", "k4", "op-4", "c1", "answer");
    done.status = OperationStatus::Failed;
    done.completed_at = Some(t0());
    for o in [a, b, c, done] {
        s.register_operation(o, HOUR).await.unwrap();
    }
    let ids = |v: Vec<OperationRecord>| v.into_iter().map(|o| o.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s
            .pending_operations_for_call("acme", "c1", None)
            .await
            .unwrap()),
        ["op-1", "op-2"]
    );
    assert_eq!(
        ids(s
            .pending_operations_for_call("acme", "c1", Some("answer"))
            .await
            .unwrap()),
        ["op-1"]
    );
    assert!(s
        .pending_operations_for_call("acme", "c9", None)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .pending_operations_for_call("zeta", "c1", None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        ids(s.due_operations("acme", t0() + secs(2), 10).await.unwrap()),
        ["op-3", "op-1"],
        "deadline <= now, earliest first"
    );
    assert_eq!(
        ids(s.due_operations("acme", t0() + secs(9), 1).await.unwrap()),
        ["op-3"]
    );
    assert!(s.due_operations("acme", t0(), 10).await.unwrap().is_empty());
    assert_eq!(
        s.get_operation("acme", "op-4")
            .await
            .unwrap()
            .unwrap()
            .status,
        OperationStatus::Failed
    );
}

async fn operations_expire_with_their_key(s: S) {
    let ttl = Duration::from_millis(300);
    s.register_operation(op("acme", "k1", "op-1", "c1", "answer"), ttl)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.get_operation("acme", "op-1").await.unwrap(), None);
    assert!(s
        .pending_operations_for_call("acme", "c1", None)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .due_operations("acme", t0() + secs(60), 10)
        .await
        .unwrap()
        .is_empty());
    let again = s
        .register_operation(op("acme", "k1", "op-2", "c1", "answer"), HOUR)
        .await
        .unwrap();
    assert!(matches!(again, Registered::Created(r) if r.id == "op-2"));
}

// --- webhooks ---------------------------------------------------------------------

async fn webhooks_claim_and_deliver(s: S) {
    for i in 1..=3 {
        s.enqueue_webhook(job("acme", &format!("evt_{i}")), true, t0(), DAY)
            .await
            .unwrap();
    }
    let a = s
        .claim_webhooks("acme", "w-a", 2, HOUR, t0())
        .await
        .unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].job, job("acme", "evt_1"), "in order, as stored");
    let b = s
        .claim_webhooks("acme", "w-b", 5, HOUR, t0())
        .await
        .unwrap();
    assert_eq!(b.len(), 1, "a job is claimed by one worker at a time");
    assert_eq!(b[0].job.id, "evt_3");
    for c in a.iter().chain(&b) {
        s.settle_webhook("acme", c, WebhookOutcome::Delivered)
            .await
            .unwrap();
    }
    // Settling twice is harmless.
    s.settle_webhook("acme", &b[0], WebhookOutcome::Dead)
        .await
        .unwrap();
    assert!(s
        .claim_webhooks("acme", "w-a", 5, Duration::ZERO, t0() + secs(3600))
        .await
        .unwrap()
        .is_empty());
    assert!(s.dead_webhooks("acme", 10).await.unwrap().is_empty());
}

async fn webhook_retries_wait_until_due(s: S) {
    s.enqueue_webhook(job("acme", "evt_1"), true, t0(), DAY)
        .await
        .unwrap();
    let c = s.claim_webhooks("acme", "w", 1, HOUR, t0()).await.unwrap();
    s.settle_webhook("acme", &c[0], WebhookOutcome::RetryAt(t0() + secs(10)))
        .await
        .unwrap();
    assert!(s
        .claim_webhooks("acme", "w", 5, HOUR, t0() + secs(9))
        .await
        .unwrap()
        .is_empty());
    let again = s
        .claim_webhooks("acme", "w", 5, HOUR, t0() + secs(10))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].job.id, "evt_1");
    assert_eq!(again[0].job.attempt, 1);
    s.settle_webhook("acme", &again[0], WebhookOutcome::RetryAt(t0() + secs(30)))
        .await
        .unwrap();
    let third = s
        .claim_webhooks("acme", "w", 5, HOUR, t0() + secs(31))
        .await
        .unwrap();
    assert_eq!(third[0].job.attempt, 2);
    s.settle_webhook("acme", &third[0], WebhookOutcome::Dead)
        .await
        .unwrap();
    let dead = s.dead_webhooks("acme", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, "evt_1");
    assert_eq!(dead[0].attempt, 3);
    assert!(s
        .claim_webhooks("acme", "w", 5, HOUR, t0() + secs(9999))
        .await
        .unwrap()
        .is_empty());
}

async fn dead_letters_newest_first(s: S) {
    for i in 1..=3 {
        s.enqueue_webhook(job("acme", &format!("evt_{i}")), true, t0(), DAY)
            .await
            .unwrap();
    }
    for c in s.claim_webhooks("acme", "w", 3, HOUR, t0()).await.unwrap() {
        s.settle_webhook("acme", &c, WebhookOutcome::Dead)
            .await
            .unwrap();
    }
    let dead = s.dead_webhooks("acme", 2).await.unwrap();
    let ids: Vec<_> = dead.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["evt_3", "evt_2"]);
    assert!(s.dead_webhooks("zeta", 10).await.unwrap().is_empty());
}

async fn a_dead_workers_claim_is_taken_over_after_the_lease(s: S) {
    let lease = Duration::from_secs(30);
    s.enqueue_webhook(job("acme", "evt_1"), true, t0(), DAY)
        .await
        .unwrap();
    let a = s
        .claim_webhooks("acme", "w-a", 5, lease, t0())
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    assert!(s
        .claim_webhooks("acme", "w-b", 5, lease, t0() + secs(29))
        .await
        .unwrap()
        .is_empty());
    let b = s
        .claim_webhooks("acme", "w-b", 5, lease, t0() + secs(30))
        .await
        .unwrap();
    assert_eq!(b.len(), 1, "w-a died: w-b takes the job over");
    assert_eq!(b[0].job, a[0].job);
    assert!(
        s.claim_webhooks("acme", "w-c", 5, lease, t0() + secs(31))
            .await
            .unwrap()
            .is_empty(),
        "w-b's lease is fresh"
    );
    s.settle_webhook("acme", &b[0], WebhookOutcome::Delivered)
        .await
        .unwrap();
    assert!(s
        .claim_webhooks("acme", "w-c", 5, lease, t0() + secs(999))
        .await
        .unwrap()
        .is_empty());
}

async fn undelivered_envelopes_are_only_logged(s: S) {
    s.enqueue_webhook(job("acme", "evt_1"), false, t0(), DAY)
        .await
        .unwrap();
    assert!(s
        .claim_webhooks("acme", "w", 5, HOUR, t0())
        .await
        .unwrap()
        .is_empty());
    let log = s.events_after("acme", None, 10).await.unwrap();
    assert_eq!(log.items.len(), 1);
    assert_eq!(log.items[0].payload, job("acme", "evt_1").payload);
}

async fn event_log_in_order_with_cursors(s: S) {
    // Times go backwards once (another instance's clock): order is append order.
    let offsets = [0, 1, 1, 5, 3, 6, 7];
    for (i, o) in offsets.iter().enumerate() {
        s.enqueue_webhook(
            job("acme", &format!("evt_{i}")),
            i % 2 == 0,
            t0() + secs(*o),
            DAY,
        )
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.events_after("acme", after.as_deref(), 3).await.unwrap();
        seen.extend(page.items.iter().map(|e| e.payload.clone()));
        if let Some(last) = page.items.last() {
            assert_eq!(page.next_cursor.as_ref().is_some(), seen.len() < 7);
            after = Some(last.cursor.clone());
        }
        if page.next_cursor.is_none() {
            break;
        }
    }
    let want: Vec<_> = (0..7)
        .map(|i| job("acme", &format!("evt_{i}")).payload)
        .collect();
    assert_eq!(seen, want);
    let tail = s.events_after("acme", after.as_deref(), 3).await.unwrap();
    assert!(tail.items.is_empty() && tail.next_cursor.is_none());
    let junk = s.events_after("acme", Some("junk"), 3).await.unwrap();
    assert!(junk.items.is_empty());
}

async fn event_log_trimmed_by_retention(s: S) {
    let keep = Duration::from_secs(60);
    s.enqueue_webhook(job("acme", "evt_old"), false, t0(), keep)
        .await
        .unwrap();
    s.enqueue_webhook(job("acme", "evt_mid"), false, t0() + secs(30), keep)
        .await
        .unwrap();
    let first = s.events_after("acme", None, 10).await.unwrap().items;
    assert_eq!(first.len(), 2);
    s.enqueue_webhook(job("acme", "evt_new"), false, t0() + secs(61), keep)
        .await
        .unwrap();
    let log = s.events_after("acme", None, 10).await.unwrap().items;
    let payloads: Vec<_> = log.iter().map(|e| e.payload.clone()).collect();
    assert_eq!(
        payloads,
        [
            job("acme", "evt_mid").payload,
            job("acme", "evt_new").payload
        ]
    );
    // A cursor into the trimmed part still reads what is left after it.
    let after_old = s
        .events_after("acme", Some(&first[0].cursor), 10)
        .await
        .unwrap();
    assert_eq!(after_old.items.len(), 2);
}

// --- the runner -------------------------------------------------------------------

store_conformance!(
    concurrent_creates_never_share_a_number,
    create_get_and_duplicate_ref,
    completion_frees_the_number_for_a_later_session,
    complete_changes_exactly_once_under_race,
    calls_move_a_session_between_open_and_active,
    open_active_step_changes_once_under_race,
    sync_pool_adds_and_removes_numbers,
    tenants_are_isolated,
    list_sessions_newest_first_with_filters_and_cursors,
    due_sessions_are_live_and_oldest_first,
    put_call_merges_monotonically,
    put_call_out_of_order_from_many_tasks,
    live_lists_per_tenant_and_node,
    ended_calls_expire_after_retention,
    bindings_expire_and_fill_the_record,
    a_started_call_is_bound_only_to_a_live_session,
    call_sequences_count_from_one_without_gaps,
    register_operation_once_under_race,
    finish_operation_exactly_once,
    pending_and_due_operations,
    operations_expire_with_their_key,
    webhooks_claim_and_deliver,
    webhook_retries_wait_until_due,
    dead_letters_newest_first,
    a_dead_workers_claim_is_taken_over_after_the_lease,
    undelivered_envelopes_are_only_logged,
    event_log_in_order_with_cursors,
    event_log_trimmed_by_retention,
    a_transition_queues_its_webhook_only_when_it_changes,
    a_webhook_id_is_queued_once,
    sync_pool_reports_whether_it_changed,
; then |cluster| {
    let counts = cluster.key_counts();
    assert!(
        counts.iter().filter(|n| **n > 0).count() >= 2,
        "keys should spread over the masters: {counts:?}"
    );
});

// --- the transactional outbox -------------------------------------------------------

fn emission(tenant: &str, id: &str) -> Emission {
    Emission {
        job: job(tenant, id),
        deliver: true,
        now: t0(),
        retention: DAY,
    }
}

async fn logged_ids(s: &S, tenant: &str) -> Vec<String> {
    let page = s.events_after(tenant, None, 1000).await.unwrap();
    page.items
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
            v["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// 20 racing completes, each carrying its own webhook: exactly the winner's
/// is logged and queued, in the same step as the change.
async fn a_transition_queues_its_webhook_only_when_it_changes(s: S) {
    s.sync_pool("acme", &numbers(1)).await.unwrap();
    s.create_session(new_session("acme", "ses_a", t0()))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let e = emission("acme", &format!("evt_{i}"));
                let t = s
                    .complete_session("acme", "ses_a", CompletionReason::Closed, t0(), Some(e))
                    .await
                    .unwrap()
                    .unwrap();
                t.changed.then_some(format!("evt_{i}"))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        winners.extend(t.await.unwrap());
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(logged_ids(&s, "acme").await, winners);
    let claimed = s.claim_webhooks("acme", "w", 10, HOUR, t0()).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job.id, winners[0]);

    // The same for the call steps and an operation's result.
    s.sync_pool("acme", &numbers(2)).await.unwrap();
    s.create_session(new_session("acme", "ses_b", t0()))
        .await
        .unwrap();
    for (i, started) in [(1, true), (2, true), (3, false), (4, false)] {
        let e = Some(emission("acme", &format!("evt_step{i}")));
        let t = if started {
            s.session_call_started("acme", "ses_b", "c1", None, e).await
        } else {
            s.session_call_ended("acme", "ses_b", "c1", e).await
        };
        t.unwrap().unwrap();
    }
    s.register_operation(op("acme", "k1", "op-1", "c1", "answer"), HOUR)
        .await
        .unwrap();
    for i in 1..=2 {
        let e = Some(emission("acme", &format!("evt_op{i}")));
        s.finish_operation("acme", "op-1", OperationStatus::Succeeded, None, t0(), e)
            .await
            .unwrap()
            .unwrap();
    }
    let ids = logged_ids(&s, "acme").await;
    assert_eq!(ids[1..], ["evt_step1", "evt_step3", "evt_op1"], "{ids:?}");
}

/// An id is queued once, however many instances derive it.
async fn a_webhook_id_is_queued_once(s: S) {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.enqueue_webhook(job("acme", "evt_same"), true, t0(), DAY)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut queued = 0;
    for t in tasks {
        queued += usize::from(t.await.unwrap());
    }
    assert_eq!(queued, 1);
    assert!(s
        .enqueue_webhook(job("acme", "evt_other"), true, t0(), DAY)
        .await
        .unwrap());
    assert_eq!(logged_ids(&s, "acme").await, ["evt_same", "evt_other"]);
    let claimed = s.claim_webhooks("acme", "w", 10, HOUR, t0()).await.unwrap();
    assert_eq!(claimed.len(), 2);
    // Another tenant's id space is its own.
    assert!(s
        .enqueue_webhook(job("beta", "evt_same"), true, t0(), DAY)
        .await
        .unwrap());
}

/// A pool synced to the same numbers is left alone (cheap enough to check
/// every second); other numbers change it.
async fn sync_pool_reports_whether_it_changed(s: S) {
    assert!(s.sync_pool("acme", &numbers(2)).await.unwrap());
    assert!(!s.sync_pool("acme", &numbers(2)).await.unwrap());
    s.create_session(new_session("acme", "ses_a", t0()))
        .await
        .unwrap();
    assert!(!s.sync_pool("acme", &numbers(2)).await.unwrap());
    assert!(s.sync_pool("acme", &numbers(3)).await.unwrap());
    // The held number stayed held: two more sessions fit, not three.
    for r in ["ses_b", "ses_c"] {
        s.create_session(new_session("acme", r, t0()))
            .await
            .unwrap();
    }
    let full = s.create_session(new_session("acme", "ses_d", t0())).await;
    assert_eq!(full.unwrap_err(), CreateSessionError::PoolExhausted);
}

// --- Redis only -------------------------------------------------------------------

mod redis_only {
    use super::*;
    use crate::support::redis::RedisServer;

    async fn until_up(s: &S) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while s.ping().await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the store did not come back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn unavailable<T: std::fmt::Debug>(r: Result<T, StoreError>) {
        assert!(
            matches!(r, Err(StoreError::Unavailable(_))),
            "expected Unavailable, got {r:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_store_survives_a_redis_restart() {
        let mut server = RedisServer::start();
        let s = open(&server.url()).await.unwrap();
        s.sync_pool("acme", &numbers(2)).await.unwrap();
        s.create_session(new_session("acme", "ses_a", t0()))
            .await
            .unwrap();

        server.stop();
        unavailable(s.ping().await);
        unavailable(s.get_session("acme", "ses_a").await);
        let created = s.create_session(new_session("acme", "ses_b", t0())).await;
        assert!(
            matches!(
                created,
                Err(CreateSessionError::Store(StoreError::Unavailable(_)))
            ),
            "{created:?}"
        );

        server.resume();
        until_up(&s).await;
        // A fresh server: scripts are loaded again, state rebuilt by sync.
        s.sync_pool("acme", &numbers(2)).await.unwrap();
        let b = s
            .create_session(new_session("acme", "ses_b", t0()))
            .await
            .unwrap();
        assert_eq!(s.get_session("acme", "ses_b").await.unwrap(), Some(b));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_opened_while_redis_is_down_works_once_it_is_up() {
        let mut server = RedisServer::start();
        server.stop();
        let s = open(&server.url())
            .await
            .expect("opening never needs redis");
        unavailable(s.ping().await);
        server.resume();
        until_up(&s).await;
        assert!(s.sync_pool("acme", &numbers(1)).await.unwrap());
    }

    /// A Redis that lost everything (FLUSHALL: a restart without
    /// persistence, a failover to an empty replica) gets the pool back from
    /// the next sync, which says so.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_emptied_redis_gets_its_pool_back() {
        let server = RedisServer::start();
        let s = open(&server.url()).await.unwrap();
        assert!(s.sync_pool("acme", &numbers(1)).await.unwrap());
        s.create_session(new_session("acme", "ses_a", t0()))
            .await
            .unwrap();
        let mut c = ::redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: () = ::redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
        let gone = s.create_session(new_session("acme", "ses_b", t0())).await;
        assert_eq!(gone.unwrap_err(), CreateSessionError::PoolExhausted);
        assert!(s.sync_pool("acme", &numbers(1)).await.unwrap(), "noticed");
        s.create_session(new_session("acme", "ses_c", t0()))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn persisted_state_survives_a_restart() {
        let mut server =
            RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
        let s = open(&server.url()).await.unwrap();
        s.sync_pool("acme", &numbers(1)).await.unwrap();
        let a = s
            .create_session(new_session("acme", "ses_a", t0()))
            .await
            .unwrap();
        s.enqueue_webhook(job("acme", "evt_1"), true, t0(), DAY)
            .await
            .unwrap();
        server.restart();
        until_up(&s).await;
        assert_eq!(s.get_session("acme", "ses_a").await.unwrap(), Some(a));
        let busy = s.create_session(new_session("acme", "ses_b", t0())).await;
        assert_eq!(busy.unwrap_err(), CreateSessionError::PoolExhausted);
        let claimed = s.claim_webhooks("acme", "w", 5, HOUR, t0()).await.unwrap();
        assert_eq!(claimed.len(), 1, "the outbox is durable");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn foreign_data_is_corrupt_not_a_panic() {
        let server = RedisServer::start();
        let s = open(&server.url()).await.unwrap();
        let client = ::redis::Client::open(server.url()).unwrap();
        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
        let set = |key: &'static str, field: &'static str, value: &'static str| {
            let mut cmd = ::redis::cmd("HSET");
            cmd.arg(key).arg(field).arg(value);
            cmd
        };
        for cmd in [
            set("fsgate:{t:acme}:ses:ses_x", "base", "{not json"),
            set("fsgate:{t:acme}:ses:ses_x", "state", "open"),
            set("fsgate:{call:u1}:call", "uuid", "\"u1\""),
            set("fsgate:{t:acme}:op:op-1", "rec", "[]"),
        ] {
            let _: () = cmd.query_async(&mut raw).await.unwrap();
        }
        let _: () = ::redis::cmd("SET")
            .arg("fsgate:{t:acme}:sescalls:ses_y")
            .arg("a string, not a list")
            .query_async(&mut raw)
            .await
            .unwrap();
        let corrupt = |r: Result<(), StoreError>| {
            assert!(matches!(r, Err(StoreError::Corrupt(_))), "{r:?}");
        };
        corrupt(s.get_session("acme", "ses_x").await.map(|_| ()));
        corrupt(s.get_call("u1").await.map(|_| ()));
        corrupt(s.get_operation("acme", "op-1").await.map(|_| ()));
        let _: () = ::redis::cmd("HSET")
            .arg("fsgate:{t:acme}:ses:ses_y")
            .arg("state")
            .arg("open")
            .query_async(&mut raw)
            .await
            .unwrap();
        corrupt(s.get_session("acme", "ses_y").await.map(|_| ()));
    }
}
