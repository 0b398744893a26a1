//! The event pipeline against the simulator: real ESL events fill the call
//! table, two daemon instances on one store both handle each event and queue
//! what it causes exactly once,
//! and a node that drops its connection is reconciled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fsgate::clock::SystemClock;
use fsgate::esl::command::{EventName, Password};
use fsgate::esl::connection::ConnectOptions;
use fsgate::esl::node::{Node, NodeConfig};
use fsgate::esl::HangupCause;
use fsgate::pipeline::{
    self, CallEvent, CallEventHandler, CallEventKind, NumberDirectory, NumberKind, NumberOwner,
    Pipeline,
};
use fsgate::sim::{self, SimConfig, SimHandle};
use fsgate::store::memory::MemoryStore;
use fsgate::store::{CallDirection, CallRecord, CallState, Store, StoreError, WebhookJob};
use fsgate::switch::Switch;
use fsgate::webhooks::envelope::derived_event_id;
use tokio::sync::mpsc;

struct Directory;

impl NumberDirectory for Directory {
    fn owner_of(&self, number: &str) -> Option<NumberOwner> {
        (number.trim_start_matches('+') == "15550109000").then(|| NumberOwner {
            tenant: "acme".into(),
            kind: NumberKind::Control,
        })
    }
}

/// Records every change it is handed, with the instance that handled it.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, String, CallEventKind, bool)>>,
    /// `(uuid, kind)` of every webhook the store accepted to queue.
    queued: Mutex<Vec<(String, CallEventKind)>>,
}

/// Records each change it sees, and queues one webhook per change with an
/// id derived from the call and the change, as the lifecycle handler does.
struct Tagged(&'static str, Arc<Recorder>, Arc<dyn Store>);

#[async_trait]
impl CallEventHandler for Tagged {
    async fn on_call_event(&self, e: &CallEvent<'_>) -> Result<(), StoreError> {
        self.1.seen.lock().unwrap().push((
            self.0.to_owned(),
            e.call.uuid.clone(),
            e.kind,
            e.event.is_none(),
        ));
        let key = format!("{}/{:?}", e.call.uuid, e.kind);
        let job = WebhookJob {
            id: derived_event_id(e.call.created_at, &key),
            tenant: "acme".into(),
            payload: format!("{{\"id\":\"{key}\"}}"),
            attempt: 0,
        };
        let now = chrono::Utc::now();
        if self
            .2
            .enqueue_webhook(job, true, now, Duration::from_secs(3600))
            .await?
        {
            self.1
                .queued
                .lock()
                .unwrap()
                .push((e.call.uuid.clone(), e.kind));
        }
        Ok(())
    }
}

/// A live call of `acme` on node fs1, as the table would hold it.
fn live_record(uuid: &str, direction: CallDirection, state: CallState, callee: &str) -> CallRecord {
    CallRecord {
        uuid: uuid.to_owned(),
        tenant: Some("acme".into()),
        node: "fs1".into(),
        direction,
        state,
        caller: Some("+15557770001".into()),
        caller_display_name: None,
        callee: Some(callee.into()),
        other_leg: None,
        created_at: chrono::Utc::now(),
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
    }
}

async fn sim() -> SimHandle {
    let mut cfg = SimConfig::ephemeral();
    cfg.dialplan_dir =
        Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sim-dialplan").into());
    cfg.heartbeat_interval = Duration::from_secs(1);
    sim::start(cfg).await.unwrap()
}

/// One "daemon instance": a node, a switch and a pipeline on `store`.
fn instance(
    sim: &SimHandle,
    store: Arc<dyn Store>,
    tag: &'static str,
    recorder: Arc<Recorder>,
) -> (Node, Switch, Pipeline) {
    let mut connect = ConnectOptions::new(Password::new("ClueCon").unwrap());
    connect.idle_timeout = Some(Duration::from_secs(5));
    let mut config = NodeConfig::new("fs1", sim.esl_addr().to_string(), connect);
    config.events = pipeline::SUBSCRIBED_EVENTS
        .iter()
        .map(|n| EventName::new(n).unwrap())
        .collect();
    let (tx, rx) = mpsc::channel(1024);
    let node = Node::spawn(config, tx);
    let switch = Switch::new(vec![node.handle()]);
    let deps = pipeline::Deps {
        store: store.clone(),
        clock: Arc::new(SystemClock),
        switch: switch.clone(),
        directory: Arc::new(Directory),
        handlers: vec![Arc::new(Tagged(tag, recorder, store.clone()))],
        retention: Duration::from_secs(600),
    };
    (node, switch, Pipeline::spawn(deps, rx, 4))
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn call_in_state(store: &Arc<dyn Store>, uuid: &str, state: CallState) -> CallRecord {
    until(&format!("{uuid} {state:?}"), async || {
        store
            .get_call(uuid)
            .await
            .unwrap()
            .filter(|c| c.state == state)
    })
    .await
}

async fn connected(switch: &Switch) {
    until("node connected", async || {
        switch.any_connected().then_some(())
    })
    .await;
}

#[tokio::test]
async fn events_fill_the_call_table() {
    let sim = sim().await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rec = Arc::new(Recorder::default());
    let (_node, switch, _p) = instance(&sim, store.clone(), "a", rec.clone());
    connected(&switch).await;

    let uuid = sim.switch().place_inbound("+15557770001", "15550109000");
    let parked = call_in_state(&store, &uuid, CallState::Ringing).await;
    assert_eq!(
        parked.tenant.as_deref(),
        Some("acme"),
        "tenant from the control number"
    );
    assert_eq!(parked.direction, CallDirection::Inbound);
    assert_eq!(parked.caller.as_deref(), Some("+15557770001"));
    assert_eq!(parked.node, "fs1");
    let live = store.list_live_calls("acme", None, 10).await.unwrap();
    assert_eq!(live.items.len(), 1);

    let id = uuid::Uuid::parse_str(&uuid).unwrap();
    assert!(switch.answer("fs1", id).await.unwrap().is_ok());
    let answered = call_in_state(&store, &uuid, CallState::Answered).await;
    assert!(answered.answered_at.is_some());

    assert!(switch
        .hangup("fs1", id, HangupCause::USER_BUSY)
        .await
        .unwrap()
        .is_ok());
    let ended = call_in_state(&store, &uuid, CallState::Ended).await;
    assert_eq!(ended.hangup_cause.as_deref(), Some("USER_BUSY"));
    assert_eq!(ended.q850, Some(17));
    assert!(!ended.reconciled);
    assert!(store
        .list_live_calls("acme", None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
    // A second kill is refused with FreeSWITCH's words.
    let again = switch
        .hangup("fs1", id, HangupCause::USER_BUSY)
        .await
        .unwrap();
    assert_eq!(again.text(), "-ERR No such channel!");

    let kinds: Vec<CallEventKind> = rec.seen.lock().unwrap().iter().map(|s| s.2).collect();
    assert_eq!(kinds.first(), Some(&CallEventKind::Created));
    assert!(kinds.contains(&CallEventKind::Answered));
    assert_eq!(kinds.last(), Some(&CallEventKind::HangupComplete));
}

#[tokio::test]
async fn two_instances_handle_each_event_exactly_once() {
    let sim = sim().await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rec = Arc::new(Recorder::default());
    let (_n1, s1, _p1) = instance(&sim, store.clone(), "one", rec.clone());
    let (_n2, s2, _p2) = instance(&sim, store.clone(), "two", rec.clone());
    connected(&s1).await;
    connected(&s2).await;

    let mut uuids = Vec::new();
    for i in 0..10 {
        uuids.push(
            sim.switch()
                .place_inbound(&format!("+1555777{i:04}"), "15550109000"),
        );
    }
    for uuid in &uuids {
        call_in_state(&store, uuid, CallState::Ringing).await;
        s1.hangup(
            "fs1",
            uuid::Uuid::parse_str(uuid).unwrap(),
            HangupCause::NORMAL_CLEARING,
        )
        .await
        .unwrap();
    }
    for uuid in &uuids {
        call_in_state(&store, uuid, CallState::Ended).await;
    }
    // Both instances handle every change (so none is lost with one that
    // dies), and what they cause is queued once.
    let per_change = |what: &[(String, CallEventKind)]| {
        let mut counts: HashMap<(String, CallEventKind), usize> = HashMap::new();
        for (uuid, kind) in what {
            *counts.entry((uuid.clone(), *kind)).or_default() += 1;
        }
        counts
    };
    let changes = [
        CallEventKind::Created,
        CallEventKind::Parked,
        CallEventKind::HangupComplete,
    ];
    let handled = until("both instances handled every change", async || {
        let seen: Vec<(String, CallEventKind)> = rec
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, u, k, _)| (u.clone(), *k))
            .collect();
        let counts = per_change(&seen);
        uuids
            .iter()
            .all(|u| {
                changes
                    .iter()
                    .all(|k| counts.get(&(u.clone(), *k)) == Some(&2))
            })
            .then_some(counts)
    })
    .await;
    let queued = per_change(&rec.queued.lock().unwrap());
    for uuid in &uuids {
        for kind in changes {
            let key = (uuid.clone(), kind);
            assert_eq!(
                handled.get(&key),
                Some(&2),
                "{uuid} {kind:?} handled by both"
            );
            assert_eq!(queued.get(&key), Some(&1), "{uuid} {kind:?} queued once");
        }
    }
    let page = store.events_after("acme", None, 1000).await.unwrap();
    assert_eq!(
        page.items.len(),
        queued.values().sum::<usize>(),
        "one envelope per change"
    );
}

#[tokio::test]
async fn a_call_that_ended_unseen_is_reconciled_after_a_reconnect() {
    let sim = sim().await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rec = Arc::new(Recorder::default());
    let (_node, switch, _p) = instance(&sim, store.clone(), "a", rec.clone());
    connected(&switch).await;

    // A live call the table knows but the switch no longer has (its hangup
    // happened while nobody was listening).
    let ghost = uuid::Uuid::new_v4().to_string();
    let mut record = live_record(
        &ghost,
        CallDirection::Inbound,
        CallState::Answered,
        "15550109000",
    );
    record.created_at = chrono::Utc::now() - chrono::Duration::seconds(30);
    record.answered_at = Some(chrono::Utc::now() - chrono::Duration::seconds(20));
    store
        .put_call(record, Duration::from_secs(600))
        .await
        .unwrap();
    // And a real one that must survive reconciliation.
    let real = sim.switch().place_inbound("+15557770002", "15550109000");
    call_in_state(&store, &real, CallState::Ringing).await;

    sim.faults().drop_connections();
    let ended = call_in_state(&store, &ghost, CallState::Ended).await;
    assert!(ended.reconciled);
    assert_eq!(
        ended.hangup_cause.as_deref(),
        Some(pipeline::reconcile::RECONCILED_CAUSE)
    );
    // When it really ended nobody saw: no duration is made up.
    assert_eq!((ended.duration_s, ended.billsec), (None, None));
    assert_eq!(
        store.get_call(&real).await.unwrap().unwrap().state,
        CallState::Ringing
    );
    let synthetic: Vec<_> = rec
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.3)
        .cloned()
        .collect();
    assert_eq!(synthetic.len(), 1);
    assert_eq!(synthetic[0].1, ghost);
    assert_eq!(synthetic[0].2, CallEventKind::HangupComplete);
}

#[tokio::test]
async fn a_call_recorded_before_its_channel_exists_is_not_ended_by_reconciliation() {
    let sim = sim().await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rec = Arc::new(Recorder::default());
    let (_node, switch, _p) = instance(&sim, store.clone(), "a", rec.clone());
    connected(&switch).await;

    // What click-to-call does: the record is written, then the originate is
    // sent; the switch has no such channel yet when a reconciliation runs.
    let young = uuid::Uuid::new_v4().to_string();
    let mut record = live_record(
        &young,
        CallDirection::Outbound,
        CallState::Ringing,
        "+15557770002",
    );
    record.created_at = chrono::Utc::now();
    record.answered_at = None;
    store
        .put_call(record, Duration::from_secs(600))
        .await
        .unwrap();
    sim.faults().drop_connections();
    tokio::time::sleep(Duration::from_millis(500)).await;
    connected(&switch).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.get_call(&young).await.unwrap().unwrap().state,
        CallState::Ringing,
        "left alone while young"
    );
    // It never appears on the switch: the deferred pass ends it.
    let deadline = std::time::Instant::now() + pipeline::reconcile::GRACE * 3;
    loop {
        let call = store.get_call(&young).await.unwrap().unwrap();
        if call.state == CallState::Ended {
            assert!(call.reconciled);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the deferred pass never ended it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
