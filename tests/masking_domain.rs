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
