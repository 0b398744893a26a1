//! Masked sessions end to end against the simulator running the shipped
//! `dialplan/` (mod_curl asks this test's route endpoint, which is the
//! masking domain's lookup), with a real redis-server as the store and the
//! event pipeline feeding the masking call-event handler.
//!
//! Time for TTLs is a ManualClock; calls take real (short) time.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use fsgate::clock::ManualClock;
use fsgate::config::TenantConfig;
use fsgate::esl::command::{EventName, Password};
use fsgate::esl::connection::ConnectOptions;
use fsgate::esl::node::{Node, NodeConfig};
use fsgate::esl::HangupCause;
use fsgate::masking::model::{CreateSessionRequest, OriginateRequest, Party};
use fsgate::masking::{Masking, RecordedEvents, RouteAnswer, SessionCallHandler};
use fsgate::pipeline::{self, NumberDirectory, NumberKind, NumberOwner, Pipeline};
use fsgate::sim::core::HangupOrigin;
use fsgate::sim::{self, BehaviourSpec, SimConfig, SimHandle};
use fsgate::store::{OperationStatus, SessionRecord, SessionState, Store};
use fsgate::switch::Switch;
use fsgate::tenants::Tenants;
use support::redis::RedisServer;
use tokio::sync::mpsc;

const A: &str = "+15557770001";
const B: &str = "+15557770002";
const M: &str = "+15550100001";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn tenant(hangup_on_expiry: bool) -> TenantConfig {
    serde_json::from_value(serde_json::json!({
        "id": "acme",
        "masked_numbers": [M],
        "control_numbers": ["+15550109000"],
        "hangup_on_expiry": hangup_on_expiry,
    }))
    .unwrap()
}

struct Directory(Arc<Tenants>);

impl NumberDirectory for Directory {
    fn owner_of(&self, number: &str) -> Option<NumberOwner> {
        if let Some(t) = self.0.by_masked_number(number) {
            return Some(NumberOwner {
                tenant: t.id().to_owned(),
                kind: NumberKind::Masked,
            });
        }
        self.0.by_control_number(number).map(|t| NumberOwner {
            tenant: t.id().to_owned(),
            kind: NumberKind::Control,
        })
    }
}

#[derive(serde::Deserialize)]
struct RouteQuery {
    masked: String,
    caller: String,
    uuid: String,
}

async fn route(State(m): State<Arc<Masking>>, Query(q): Query<RouteQuery>) -> Response {
    match m.route(&q.masked, &q.caller, &q.uuid).await {
        Ok(RouteAnswer::Bridge(d)) => (StatusCode::OK, d).into_response(),
        Ok(RouteAnswer::Park) => StatusCode::NO_CONTENT.into_response(),
        Ok(RouteAnswer::Refuse(c)) => (StatusCode::NOT_FOUND, c.name()).into_response(),
        Err(e) => (StatusCode::from_u16(e.status()).unwrap(), e.to_string()).into_response(),
    }
}

struct World {
    sim: SimHandle,
    masking: Arc<Masking>,
    store: Arc<dyn Store>,
    clock: ManualClock,
    events: Arc<RecordedEvents>,
    _redis: RedisServer,
    _node: Node,
    _pipeline: Pipeline,
}

async fn world(hangup_on_expiry: bool, behaviours: Vec<BehaviourSpec>) -> World {
    let redis = RedisServer::start();
    let store = fsgate::store::open(&redis.url()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());

    let mut cfg = SimConfig::ephemeral();
    cfg.dialplan_dir = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/dialplan").into());
    cfg.globals = vec![("fsgate_url".into(), url)];
    cfg.answer_delay = Duration::from_millis(20);
    cfg.behaviours = behaviours;
    let sim = sim::start(cfg).await.unwrap();

    let mut connect = ConnectOptions::new(Password::new("ClueCon").unwrap());
    connect.idle_timeout = Some(Duration::from_secs(5));
    let mut node_cfg = NodeConfig::new("fs1", sim.esl_addr().to_string(), connect);
    node_cfg.events = pipeline::SUBSCRIBED_EVENTS
        .iter()
        .map(|n| EventName::new(n).unwrap())
        .collect();
    let (tx, rx) = mpsc::channel(1024);
    let node = Node::spawn(node_cfg, tx);
    let switch = Switch::new(vec![node.handle()]);

    let clock = ManualClock::new(t0());
    let tenants = Arc::new(Tenants::new([tenant(hangup_on_expiry)]));
    let events = Arc::new(RecordedEvents::new());
    let masking = Arc::new(Masking::new(
        store.clone(),
        Arc::new(clock.clone()),
        tenants.clone(),
        switch.clone(),
        events.clone(),
    ));
    masking.sync_pools().await.unwrap();
    let deps = pipeline::Deps {
        store: store.clone(),
        clock: Arc::new(clock.clone()),
        switch: switch.clone(),
        directory: Arc::new(Directory(tenants)),
        handlers: vec![Arc::new(SessionCallHandler::new(masking.clone()))],
        retention: Duration::from_secs(600),
        dedup_ttl: Duration::from_secs(3600),
    };
    let pipeline = Pipeline::spawn(deps, rx, 4);

    let app = axum::Router::new()
        .route("/v1/dialplan/route", get(route))
        .with_state(masking.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    until("node connected", || async {
        switch.any_connected().then_some(())
    })
    .await;
    World {
        sim,
        masking,
        store,
        clock,
        events,
        _redis: redis,
        _node: node,
        _pipeline: pipeline,
    }
}

async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..400 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

impl World {
    async fn create(&self, a: &str, b: &str, ttl: Option<i64>) -> SessionRecord {
        self.masking
            .create(
                "acme",
                CreateSessionRequest {
                    party_a: a.into(),
                    party_b: b.into(),
                    ttl_minutes: ttl,
                    metadata: None,
                },
            )
            .await
            .unwrap()
    }

    async fn state(&self, r: &str) -> SessionState {
        self.masking.get("acme", r).await.unwrap().state
    }

    async fn until_state(&self, r: &str, want: SessionState) {
        until(&format!("{r} {want:?}"), || async {
            (self.state(r).await == want).then_some(())
        })
        .await
    }

    /// The bridged partner of `a` once the bridge is up.
    async fn bridged(&self, a: &str) -> String {
        until("the bridge", || async {
            let b = self.sim.switch().partner(a)?;
            let ch = self.sim.switch().channel(&b)?;
            (ch.bridged_us != 0).then_some(b)
        })
        .await
    }

    /// The cause `uuid` was hung up with, as its CHANNEL_HANGUP_COMPLETE
    /// told the call table (waits for it).
    async fn refused(&self, uuid: &str) -> String {
        until("the refusal", || async {
            let c = self.store.get_call(uuid).await.ok()??;
            c.ended_at.and(c.hangup_cause)
        })
        .await
    }

    async fn hang_up(&self, uuid: &str) {
        self.sim
            .switch()
            .hangup(uuid, HangupCause::NORMAL_CLEARING, HangupOrigin::Remote);
    }

    async fn gone(&self, uuid: &str) {
        until(&format!("{uuid} gone"), || async {
            self.sim.switch().channel(uuid).is_none().then_some(())
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parties_reach_each_other_showing_only_the_masked_number() {
    let w = world(false, vec![]).await;
    let s = w.create(A, B, None).await;
    assert_eq!(s.masked_number, M);

    // A calls M: reaches B, who sees M.
    let a = w.sim.switch().place_inbound(A, M);
    let b = w.bridged(&a).await;
    let leg = w.sim.switch().channel(&b).unwrap();
    assert_eq!(leg.vars.get("origination_caller_id_number"), Some(M));
    assert_eq!(leg.vars.get("origination_caller_id_name"), Some(M));
    assert_eq!(leg.vars.get("sip_cid_type"), Some("pid"));
    assert_eq!(leg.profile.caller_id_number, M, "effective caller id");
    assert_eq!(leg.profile.caller_id_name, M);
    assert_eq!(leg.vars.get("fsgate_session"), Some(s.session_ref.as_str()));
    assert_eq!(leg.profile.callee_id_number, B);
    assert!(
        leg.name.starts_with("sofia/gateway/carrier/"),
        "{}",
        leg.name
    );
    assert!(
        !leg.vars.iter().any(|(_, v)| v.contains("${")),
        "no unexpanded variable reached the leg"
    );
    assert_eq!(w.state(&s.session_ref).await, SessionState::Active);
    let binding = w.store.get_call_binding(&a).await.unwrap().unwrap();
    assert_eq!(binding.session_ref.as_deref(), Some(s.session_ref.as_str()));
    // The call table ties the a-leg to the session (for call.* webhooks).
    until("the a-leg's record names the session", || async {
        let c = w.store.get_call(&a).await.ok()??;
        (c.session_ref.as_deref() == Some(s.session_ref.as_str())).then_some(())
    })
    .await;

    w.hang_up(&a).await;
    w.until_state(&s.session_ref, SessionState::Open).await;

    // B calls M: reaches A.
    let from_b = w.sim.switch().place_inbound(B, "15550100001");
    let to_a = w.bridged(&from_b).await;
    let leg = w.sim.switch().channel(&to_a).unwrap();
    assert_eq!(leg.profile.callee_id_number, A);
    assert_eq!(leg.profile.caller_id_number, M);
    w.hang_up(&to_a).await; // the far end hangs up this time
    w.until_state(&s.session_ref, SessionState::Open).await;

    // A stranger is refused.
    let x = w.sim.switch().place_inbound("+15557779999", M);
    assert_eq!(w.refused(&x).await, "CALL_REJECTED");
    assert_eq!(w.state(&s.session_ref).await, SessionState::Open);

    // After complete, both parties are refused.
    w.masking.complete("acme", &s.session_ref).await.unwrap();
    for p in [A, B] {
        let c = w.sim.switch().place_inbound(p, M);
        assert_eq!(w.refused(&c).await, "UNALLOCATED_NUMBER");
    }

    // A new session on the same number routes to the new pairing only.
    let n = w.create("+15557770003", "+15557770004", None).await;
    assert_eq!(n.masked_number, M);
    let old = w.sim.switch().place_inbound(A, M);
    assert_eq!(w.refused(&old).await, "CALL_REJECTED");
    let c = w.sim.switch().place_inbound("+15557770003", M);
    let to = w.bridged(&c).await;
    let leg = w.sim.switch().channel(&to).unwrap();
    assert_eq!(leg.profile.callee_id_number, "+15557770004");
    assert_eq!(leg.vars.get("fsgate_session"), Some(n.session_ref.as_str()));
    w.hang_up(&c).await;
    w.until_state(&n.session_ref, SessionState::Open).await;

    let st = w.events.states();
    let first: Vec<_> = st.iter().filter(|(r, _)| *r == s.session_ref).collect();
    assert_eq!(
        first.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [
            SessionState::Active,
            SessionState::Open,
            SessionState::Active,
            SessionState::Open,
            SessionState::Completed
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_mid_call_leaves_the_call_up_by_default() {
    let w = world(false, vec![]).await;
    let s = w.create(A, B, Some(5)).await;
    let a = w.sim.switch().place_inbound(A, M);
    let b = w.bridged(&a).await;
    w.clock.advance(chrono::Duration::minutes(5));
    assert_eq!(w.masking.expire_due().await.unwrap(), 1);
    assert_eq!(w.state(&s.session_ref).await, SessionState::Completed);
    // Still up a moment later.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(w.sim.switch().channel(&a).is_some_and(|c| !c.hanging_up));
    assert!(w.sim.switch().channel(&b).is_some());
    // Ending it changes nothing: the session stays completed.
    w.hang_up(&a).await;
    w.gone(&a).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(w.state(&s.session_ref).await, SessionState::Completed);
    assert_eq!(
        w.events.states().last(),
        Some(&(s.session_ref.clone(), SessionState::Completed))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_mid_call_cuts_the_call_with_hangup_on_expiry() {
    let w = world(true, vec![]).await;
    let s = w.create(A, B, Some(5)).await;
    let a = w.sim.switch().place_inbound(A, M);
    let b = w.bridged(&a).await;
    // The pipeline has recorded the call (so the node is known).
    until("the call table", || async {
        w.store.get_call(&a).await.ok()?
    })
    .await;
    w.clock.advance(chrono::Duration::minutes(5));
    assert_eq!(w.masking.expire_due().await.unwrap(), 1);
    w.gone(&a).await;
    w.gone(&b).await;
    let ended = until("the a-leg's end", || async {
        let c = w.store.get_call(&a).await.ok()??;
        c.hangup_cause.clone()
    })
    .await;
    assert_eq!(ended, "ALLOTTED_TIMEOUT");
    assert_eq!(w.state(&s.session_ref).await, SessionState::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originate_rings_both_parties_showing_the_masked_number() {
    let answer = |pattern: &str, ms| BehaviourSpec {
        pattern: pattern.into(),
        answer_after_ms: Some(ms),
        reject: None,
        no_answer: false,
    };
    let w = world(
        false,
        vec![answer("15557770001", 50), answer("15557770002", 80)],
    )
    .await;
    let s = w.create(A, B, None).await;
    let before = w.sim.faults().received().len();
    let accepted = w
        .masking
        .originate(
            "acme",
            OriginateRequest {
                session: s.session_ref.clone(),
                first: Party::B,
            },
        )
        .await
        .unwrap();
    assert_eq!(accepted.status, "in_progress");
    let sent: Vec<String> = w.sim.faults().received()[before..]
        .iter()
        .map(|r| r.line.clone())
        .collect();
    let line = sent
        .iter()
        .find(|l| l.starts_with("bgapi originate"))
        .expect("one originate");
    assert!(
        line.starts_with(&format!(
            "bgapi originate {{origination_caller_id_number={M},origination_caller_id_name={M},"
        )),
        "{line}"
    );
    assert!(line.contains(&format!("origination_uuid={}", accepted.call_id)));
    assert!(line.contains("ignore_early_media=true"));
    assert!(
        line.contains(&format!("sofia/gateway/carrier/{B} &bridge({{")),
        "{line}"
    );
    assert!(
        line.ends_with(&format!("sofia/gateway/carrier/{A})")),
        "{line}"
    );
    assert!(!line.contains("${"));

    assert_eq!(w.state(&s.session_ref).await, SessionState::Active);
    let first = accepted.call_id.clone();
    let second = w.bridged(&first).await;
    let f = w.sim.switch().channel(&first).unwrap();
    let g = w.sim.switch().channel(&second).unwrap();
    assert!(f.name.ends_with(B), "B rings first: {}", f.name);
    assert!(g.name.ends_with(A), "{}", g.name);
    for leg in [&f, &g] {
        assert_eq!(leg.vars.get("origination_caller_id_number"), Some(M));
        assert_eq!(leg.vars.get("fsgate_session"), Some(s.session_ref.as_str()));
    }
    // The second leg's caller is M (the first leg's profile was flipped on
    // answer, as FreeSWITCH does, so it now names the party it reached).
    assert_eq!(g.profile.caller_id_number, M);
    let op = until("the operation's result", || async {
        let op = w
            .store
            .get_operation("acme", &accepted.operation_id)
            .await
            .ok()??;
        (op.status != OperationStatus::InProgress).then_some(op)
    })
    .await;
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert_eq!(op.call_id, first);

    w.hang_up(&second).await;
    w.until_state(&s.session_ref, SessionState::Open).await;

    // Completed: refused, and nothing reaches the switch.
    w.masking.complete("acme", &s.session_ref).await.unwrap();
    let before = w.sim.faults().received().len();
    let e = w
        .masking
        .originate(
            "acme",
            OriginateRequest {
                session: s.session_ref.clone(),
                first: Party::A,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "session_not_live");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(w.sim.faults().received().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_party_that_does_not_answer_fails_the_originate() {
    let w = world(
        false,
        vec![BehaviourSpec {
            pattern: "15557770001".into(),
            answer_after_ms: None,
            reject: Some("USER_BUSY".into()),
            no_answer: false,
        }],
    )
    .await;
    let s = w.create(A, B, None).await;
    let accepted = w
        .masking
        .originate(
            "acme",
            OriginateRequest {
                session: s.session_ref.clone(),
                first: Party::A,
            },
        )
        .await
        .unwrap();
    let op = until("the operation's result", || async {
        let op = w
            .store
            .get_operation("acme", &accepted.operation_id)
            .await
            .ok()??;
        (op.status != OperationStatus::InProgress).then_some(op)
    })
    .await;
    assert_eq!(op.status, OperationStatus::Failed);
    assert_eq!(op.detail.as_deref(), Some("USER_BUSY"));
    w.until_state(&s.session_ref, SessionState::Open).await;
}
