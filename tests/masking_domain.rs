//! The masked-session domain on both stores (memory and a real
//! redis-server): atomic allocation under 1,000 parallel creates, number
//! reuse, TTL expiry with an injected clock across a "restart" (a new
//! domain over the same Redis) and with two instances sweeping at once.

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use fsgate::clock::ManualClock;
use fsgate::config::TenantConfig;
use fsgate::masking::model::CreateSessionRequest;
use fsgate::masking::{Masking, MaskingError, RecordedEvents};
use fsgate::store::memory::MemoryStore;
use fsgate::store::{CompletionReason, SessionState, Store};
use fsgate::switch::Switch;
use fsgate::tenants::Tenants;
use support::redis::RedisServer;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn pool(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("+1555010{i:04}")).collect()
}

fn tenant(id: &str, numbers: &[String]) -> TenantConfig {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "masked_numbers": numbers,
        "default_ttl_minutes": 60,
        "max_ttl_minutes": 240,
    }))
    .unwrap()
}

fn domain(
    store: Arc<dyn Store>,
    clock: &ManualClock,
    tenants: Vec<TenantConfig>,
) -> (Arc<Masking>, Arc<RecordedEvents>) {
    let events = Arc::new(RecordedEvents::new());
    let m = Masking::new(
        store,
        Arc::new(clock.clone()),
        Arc::new(Tenants::new(tenants)),
        Switch::new(Vec::new()),
        events.clone(),
    );
    (Arc::new(m), events)
}

fn req(i: usize, ttl: Option<i64>) -> CreateSessionRequest {
    CreateSessionRequest {
        party_a: format!("+1555777{i:04}"),
        party_b: "+15559990000".into(),
        ttl_minutes: ttl,
        metadata: None,
    }
}

async fn parallel_creates_allocate_each_number_once(store: Arc<dyn Store>) {
    let clock = ManualClock::new(t0());
    let (m, _) = domain(store, &clock, vec![tenant("acme", &pool(100))]);
    m.sync_pools().await.unwrap();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let m = m.clone();
            tokio::spawn(async move { m.create("acme", req(i, None)).await })
        })
        .collect();
    let mut numbers = HashSet::new();
    let (mut ok, mut exhausted) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(s) => {
                ok += 1;
                assert!(
                    numbers.insert(s.masked_number.clone()),
                    "{} twice",
                    s.masked_number
                );
            }
            Err(MaskingError::PoolExhausted) => exhausted += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((ok, exhausted), (100, 900));
    let expected: HashSet<String> = pool(100).into_iter().collect();
    assert_eq!(numbers, expected);
}

async fn completion_returns_numbers_for_reuse(store: Arc<dyn Store>) {
    let clock = ManualClock::new(t0());
    let (m, events) = domain(store, &clock, vec![tenant("acme", &pool(3))]);
    m.sync_pools().await.unwrap();
    let mut live = Vec::new();
    for i in 0..3 {
        live.push(m.create("acme", req(i, Some(5))).await.unwrap());
    }
    assert_eq!(
        m.create("acme", req(9, None)).await.unwrap_err(),
        MaskingError::PoolExhausted
    );
    m.complete("acme", &live[1].session_ref).await.unwrap();
    let next = m.create("acme", req(10, None)).await.unwrap();
    assert_eq!(next.masked_number, live[1].masked_number);
    // TTL: the other two complete at 5 minutes, by one sweep.
    clock.advance(chrono::Duration::minutes(5));
    assert_eq!(m.expire_due().await.unwrap(), 2);
    for s in [&live[0], &live[2]] {
        let s = m.get("acme", &s.session_ref).await.unwrap();
        assert_eq!(s.state, SessionState::Completed);
        assert_eq!(s.completion_reason, Some(CompletionReason::Ttl));
    }
    let completed: Vec<_> = events
        .all()
        .into_iter()
        .filter(|e| e.state == SessionState::Completed)
        .collect();
    assert_eq!(completed.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_parallel_creates() {
    parallel_creates_allocate_each_number_once(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_parallel_creates() {
    let server = RedisServer::start();
    let store = fsgate::store::open(&server.url()).await.unwrap();
    parallel_creates_allocate_each_number_once(store).await;
}

#[tokio::test]
async fn memory_reuse_and_expiry() {
    completion_returns_numbers_for_reuse(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn redis_reuse_and_expiry() {
    let server = RedisServer::start();
    let store = fsgate::store::open(&server.url()).await.unwrap();
    completion_returns_numbers_for_reuse(store).await;
}

/// Sessions that expired while no daemon ran are completed by the first
/// sweep of the next one; two instances sweeping at once complete each
/// session exactly once between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_expiry_survives_a_restart_and_runs_once_across_instances() {
    let server = RedisServer::start();
    let clock = ManualClock::new(t0());
    let tenants = vec![tenant("acme", &pool(60))];
    let refs = {
        let store = fsgate::store::open(&server.url()).await.unwrap();
        let (m, _) = domain(store, &clock, tenants.clone());
        m.sync_pools().await.unwrap();
        let mut refs = Vec::new();
        for i in 0..60 {
            let ttl = if i < 50 { 1 } else { 10 };
            refs.push(
                m.create("acme", req(i, Some(ttl)))
                    .await
                    .unwrap()
                    .session_ref,
            );
        }
        refs
    }; // the first "daemon" is gone
    clock.advance(chrono::Duration::minutes(3));
    let (one, ev1) = domain(
        fsgate::store::open(&server.url()).await.unwrap(),
        &clock,
        tenants.clone(),
    );
    let (two, ev2) = domain(
        fsgate::store::open(&server.url()).await.unwrap(),
        &clock,
        tenants,
    );
    let (a, b) = tokio::join!(
        tokio::spawn({
            let one = one.clone();
            async move { one.expire_due().await }
        }),
        tokio::spawn({
            let two = two.clone();
            async move { two.expire_due().await }
        }),
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_eq!(a + b, 50, "{a} + {b}");
    assert_eq!(ev1.all().len() + ev2.all().len(), 50);
    for (i, r) in refs.iter().enumerate() {
        let s = one.get("acme", r).await.unwrap();
        let want = if i < 50 {
            SessionState::Completed
        } else {
            SessionState::Open
        };
        assert_eq!(s.state, want, "{i}");
    }
}

// --- the route lookup's store round trips -------------------------------------

/// Scripts Redis has run so far (`EVALSHA`s in `INFO commandstats`): every
/// store request of the route lookup is one script, so this counts its
/// round trips (the commands a script runs are counted apart, under their
/// own names).
fn commands_run(url: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

fn route_uuid(i: u32) -> String {
    format!("0a1b2c3d-0000-4000-8000-{i:012}")
}

/// The session's other party as the lookup answered it.
fn bridged_to(answer: &fsgate::masking::RouteAnswer) -> &str {
    match answer {
        fsgate::masking::RouteAnswer::Bridge(d) => d.rsplit('/').next().unwrap(),
        other => panic!("expected a bridge, got {other:?}"),
    }
}

/// A lookup for a session this instance knows ties the call in one Redis
/// command; another instance's lookup reads the holder first (two). When
/// the number has meanwhile gone to another session of the same caller,
/// the instance that knew the old one routes to the new pairing and binds
/// the call to it: a stale snapshot costs a round trip, never a wrong
/// answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lookups_take_one_round_trip_and_heal_a_stale_snapshot() {
    let server = RedisServer::start();
    let url = server.url();
    let clock = ManualClock::new(t0());
    let tenants = vec![tenant("acme", &pool(1))];
    let store = fsgate::store::open(&url).await.unwrap();
    let (one, _) = domain(store.clone(), &clock, tenants.clone());
    let (two, _) = domain(
        fsgate::store::open(&url).await.unwrap(),
        &clock,
        tenants.clone(),
    );
    one.sync_pools().await.unwrap();
    let s = one.create("acme", req(1, None)).await.unwrap();
    let caller = "+15557770001";
    // Load every script once (on an instance of its own, which knows no
    // session yet), so that the counts below are steady state.
    let (warm, _) = domain(store.clone(), &clock, tenants);
    warm.route(&s.masked_number, caller, &route_uuid(1))
        .await
        .unwrap();

    let before = commands_run(&url);
    let a = one
        .route(&s.masked_number, caller, &route_uuid(3))
        .await
        .unwrap();
    assert_eq!(bridged_to(&a), "+15559990000");
    assert_eq!(commands_run(&url) - before, 1, "the creator's lookup");
    let before = commands_run(&url);
    two.route(&s.masked_number, caller, &route_uuid(4))
        .await
        .unwrap();
    assert_eq!(commands_run(&url) - before, 2, "a first lookup elsewhere");
    let before = commands_run(&url);
    two.route(&s.masked_number, caller, &route_uuid(5))
        .await
        .unwrap();
    assert_eq!(commands_run(&url) - before, 1, "and the next one");

    // Instance two completes the session; the number's next session pairs
    // the same caller with someone else.
    two.complete("acme", &s.session_ref).await.unwrap();
    let mut next = req(1, None);
    next.party_b = "+15558880000".into();
    let n = two.create("acme", next).await.unwrap();
    assert_eq!(n.masked_number, s.masked_number);
    let healed = one
        .route(&s.masked_number, caller, &route_uuid(6))
        .await
        .unwrap();
    assert_eq!(bridged_to(&healed), "+15558880000", "the new pairing");
    let binding = store
        .get_call_binding(&route_uuid(6))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(binding.session_ref.as_deref(), Some(n.session_ref.as_str()));
    let old = one.get("acme", &s.session_ref).await.unwrap();
    assert_eq!(old.state, SessionState::Completed);
    assert!(!old.active_calls.contains(&route_uuid(6)));
    let new = one.get("acme", &n.session_ref).await.unwrap();
    assert_eq!(new.active_calls, [route_uuid(6)]);
    // And the stale snapshot is gone: the next lookup is one command again.
    let before = commands_run(&url);
    one.route(&s.masked_number, caller, &route_uuid(7))
        .await
        .unwrap();
    assert_eq!(commands_run(&url) - before, 1);
}
