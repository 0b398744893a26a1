//! The Idempotency-Key steps of every `Store` (`begin_idempotent`,
//! `finish_idempotent`, `release_idempotent`): each case is written once and
//! run against the memory store, a fresh real redis-server per test, and (in
//! one sequential test) a three-master Redis Cluster, as
//! `tests/store_conformance.rs` does for the rest of the trait. Redis-only
//! behaviour (the key's TTL as Redis reports it, an outage) is at the end.
//! Never mocks Redis.

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::Duration;

use fsgate::store::memory::MemoryStore;
use fsgate::store::*;

// --- fixtures -----------------------------------------------------------------

const LEASE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

type S = Arc<dyn Store>;

fn scope(tenant: &str, endpoint: &str, key: &str) -> IdempotencyScope {
    IdempotencyScope {
        tenant: tenant.into(),
        endpoint: endpoint.into(),
        key: key.into(),
    }
}

fn acme(key: &str) -> IdempotencyScope {
    scope("acme", "v1.sessions", key)
}

fn attempt(fingerprint: &str, owner: &str) -> IdempotencyAttempt {
    IdempotencyAttempt {
        fingerprint: fingerprint.into(),
        owner: owner.into(),
    }
}

fn response(status: u16, body: &str) -> StoredResponse {
    StoredResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.into(),
    }
}

fn done(fingerprint: &str, owner: &str, r: StoredResponse) -> Begun {
    Begun::Existing(IdempotencyRecord {
        fingerprint: fingerprint.into(),
        owner: owner.into(),
        response: Some(r),
    })
}

fn in_progress(fingerprint: &str, owner: &str) -> Begun {
    Begun::Existing(IdempotencyRecord {
        fingerprint: fingerprint.into(),
        owner: owner.into(),
        response: None,
    })
}

// --- cases --------------------------------------------------------------------

/// begin creates once; later begins see the record, in progress then done;
/// the stored response comes back byte for byte.
async fn begin_then_finish_then_replay(s: S) {
    let k = acme("key-1");
    assert_eq!(
        s.begin_idempotent(&k, &attempt("fp", "o1"), LEASE)
            .await
            .unwrap(),
        Begun::Started
    );
    assert_eq!(
        s.begin_idempotent(&k, &attempt("fp", "o2"), LEASE)
            .await
            .unwrap(),
        in_progress("fp", "o1"),
        "a second attempt sees the first one running"
    );
    let body = r#"{"ref":"ses_1","metadata":{"note":"é ✓ \"quoted\"\n"}}"#;
    assert!(s
        .finish_idempotent(&k, "o1", response(201, body), DAY)
        .await
        .unwrap());
    for owner in ["o2", "o3"] {
        assert_eq!(
            s.begin_idempotent(&k, &attempt("fp", owner), LEASE)
                .await
                .unwrap(),
            done("fp", "o1", response(201, body))
        );
    }
    // A different fingerprint sees the record as it is (the caller refuses).
    assert_eq!(
        s.begin_idempotent(&k, &attempt("other", "o4"), LEASE)
            .await
            .unwrap(),
        done("fp", "o1", response(201, body))
    );
    // A done record cannot be finished again nor released.
    assert!(!s
        .finish_idempotent(&k, "o1", response(500, "{}"), DAY)
        .await
        .unwrap());
    assert!(!s.release_idempotent(&k, "o1").await.unwrap());
    assert_eq!(
        s.begin_idempotent(&k, &attempt("fp", "o5"), LEASE)
            .await
            .unwrap(),
        done("fp", "o1", response(201, body))
    );
}

/// Release lets the next attempt start; only the owner releases or
/// finishes.
async fn release_lets_a_retry_start_and_only_the_owner_acts(s: S) {
    let k = acme("key-2");
    assert_eq!(
        s.begin_idempotent(&k, &attempt("fp", "o1"), LEASE)
            .await
            .unwrap(),
        Begun::Started
    );
    assert!(!s.release_idempotent(&k, "intruder").await.unwrap());
    assert!(!s
        .finish_idempotent(&k, "intruder", response(201, "{}"), DAY)
        .await
        .unwrap());
    assert_eq!(
        s.begin_idempotent(&k, &attempt("fp", "o2"), LEASE)
            .await
            .unwrap(),
        in_progress("fp", "o1")
    );
    assert!(s.release_idempotent(&k, "o1").await.unwrap());
    assert!(
        !s.release_idempotent(&k, "o1").await.unwrap(),
        "already gone"
    );
    assert_eq!(
        s.begin_idempotent(&k, &attempt("fp2", "o2"), LEASE)
            .await
            .unwrap(),
        Begun::Started,
        "released: the retry runs (even with another body)"
    );
    assert!(!s
        .finish_idempotent(&k, "o1", response(201, "{}"), DAY)
        .await
        .unwrap());
    assert!(s
        .finish_idempotent(&k, "o2", response(400, "{\"error\":{}}"), DAY)
        .await
        .unwrap());
    // Finishing or releasing what does not exist changes nothing.
    let never = acme("never-begun");
    assert!(!s.release_idempotent(&never, "o1").await.unwrap());
    assert!(!s
        .finish_idempotent(&never, "o1", response(201, "{}"), DAY)
        .await
        .unwrap());
    assert_eq!(
        s.begin_idempotent(&never, &attempt("fp", "o1"), LEASE)
            .await
            .unwrap(),
        Begun::Started
    );
}

/// Exactly one of many concurrent begins of one key starts.
async fn exactly_one_concurrent_begin_starts(s: S) {
    let k = acme("raced");
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let s = s.clone();
            let k = k.clone();
            tokio::spawn(async move {
                s.begin_idempotent(&k, &attempt("fp", &format!("o{i}")), LEASE)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut started = 0;
    let mut owners = std::collections::HashSet::new();
    for t in tasks {
        match t.await.unwrap() {
            Begun::Started => started += 1,
            Begun::Existing(r) => {
                assert_eq!(r.response, None);
                owners.insert(r.owner);
            }
        }
    }
    assert_eq!(started, 1);
    assert_eq!(owners.len(), 1, "everyone else saw the one winner");
}

/// Keys are scoped by tenant and by endpoint, and keep any printable text.
async fn keys_are_scoped_per_tenant_and_endpoint(s: S) {
    let odd = "a:b{c}d/~!\"'%*";
    let scopes = [
        scope("acme", "v1.sessions", odd),
        scope("globex", "v1.sessions", odd),
        scope("acme", "api.v1.sessions", odd),
        scope("acme", "v1.sessions", "a:b{c}d/~!\"'%"),
    ];
    for (i, k) in scopes.iter().enumerate() {
        assert_eq!(
            s.begin_idempotent(k, &attempt("fp", &format!("o{i}")), LEASE)
                .await
                .unwrap(),
            Begun::Started,
            "{k:?}"
        );
    }
    assert!(s
        .finish_idempotent(&scopes[0], "o0", response(201, "zero"), DAY)
        .await
        .unwrap());
    assert_eq!(
        s.begin_idempotent(&scopes[1], &attempt("fp", "x"), LEASE)
            .await
            .unwrap(),
        in_progress("fp", "o1"),
        "another tenant's key is its own"
    );
    assert!(!s.release_idempotent(&scopes[2], "o0").await.unwrap());
    assert!(s.release_idempotent(&scopes[2], "o2").await.unwrap());
    assert_eq!(
        s.begin_idempotent(&scopes[0], &attempt("fp", "x"), LEASE)
            .await
            .unwrap(),
        done("fp", "o0", response(201, "zero"))
    );
}

/// An unfinished attempt's lease runs out (a daemon died mid-request): the
/// key can be started again, and the late owner can no longer finish it.
/// A finished record lives for its TTL, then the key is free.
async fn leases_and_ttls_expire(s: S) {
    let k = acme("lease");
    let short = Duration::from_millis(300);
    assert_eq!(
        s.begin_idempotent(&k, &attempt("fp", "o1"), short)
            .await
            .unwrap(),
        Begun::Started
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        s.begin_idempotent(&k, &attempt("fp", "o2"), LEASE)
            .await
            .unwrap(),
        Begun::Started,
        "the lease ran out"
    );
    assert!(!s
        .finish_idempotent(&k, "o1", response(201, "late"), DAY)
        .await
        .unwrap());
    // The finish's TTL replaces the lease.
    assert!(s
        .finish_idempotent(&k, "o2", response(201, "kept"), short)
        .await
        .unwrap());
    assert_eq!(
        s.begin_idempotent(&k, &attempt("fp", "o3"), LEASE)
            .await
            .unwrap(),
        done("fp", "o2", response(201, "kept"))
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        s.begin_idempotent(&k, &attempt("fp", "o4"), LEASE)
            .await
            .unwrap(),
        Begun::Started,
        "the kept response expired with its TTL"
    );
    // A long TTL outlives a short lease.
    assert!(s
        .finish_idempotent(&k, "o4", response(201, "day"), DAY)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(matches!(
        s.begin_idempotent(&k, &attempt("fp", "o5"), short)
            .await
            .unwrap(),
        Begun::Existing(IdempotencyRecord {
            response: Some(_),
            ..
        })
    ));
}

// --- the runner -------------------------------------------------------------------

store_conformance!(
    begin_then_finish_then_replay,
    release_lets_a_retry_start_and_only_the_owner_acts,
    exactly_one_concurrent_begin_starts,
    keys_are_scoped_per_tenant_and_endpoint,
    leases_and_ttls_expire,
);

// --- memory only: the full 24 h on tokio's paused clock ------------------------------

/// The memory store's TTLs run on tokio's clock: a day-long record expires
/// after a day, not before.
#[tokio::test(start_paused = true)]
async fn memory_records_live_exactly_their_ttl() {
    let s = MemoryStore::new();
    let k = acme("day");
    assert_eq!(
        s.begin_idempotent(&k, &attempt("fp", "o1"), LEASE)
            .await
            .unwrap(),
        Begun::Started
    );
    assert!(s
        .finish_idempotent(&k, "o1", response(201, "{}"), DAY)
        .await
        .unwrap());
    tokio::time::advance(DAY - Duration::from_secs(1)).await;
    assert!(matches!(
        s.begin_idempotent(&k, &attempt("fp", "o2"), LEASE)
            .await
            .unwrap(),
        Begun::Existing(_)
    ));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        s.begin_idempotent(&k, &attempt("fp", "o3"), LEASE)
            .await
            .unwrap(),
        Begun::Started
    );
}

// --- Redis only -------------------------------------------------------------------

mod redis_only {
    use super::*;
    use crate::support::redis::RedisServer;

    async fn pttl(server: &RedisServer, key: &str) -> i64 {
        let client = ::redis::Client::open(server.url()).unwrap();
        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
        ::redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut raw)
            .await
            .unwrap()
    }

    /// The record is one key under the tenant's hash tag; Redis expires it
    /// after the lease while in progress and after the TTL once done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_key_carries_the_lease_then_the_ttl() {
        let server = RedisServer::start();
        let s = open(&server.url()).await.unwrap();
        let k = acme("k-1");
        s.begin_idempotent(&k, &attempt("fp", "o1"), LEASE)
            .await
            .unwrap();
        let key = "fsgate:{t:acme}:idem:v1.sessions:k-1";
        let lease = pttl(&server, key).await;
        assert!((55_000..=60_000).contains(&lease), "lease PTTL {lease}");
        s.finish_idempotent(&k, "o1", response(201, "{}"), DAY)
            .await
            .unwrap();
        let ttl = pttl(&server, key).await;
        assert!((86_340_000..=86_400_000).contains(&ttl), "done PTTL {ttl}");
        s.begin_idempotent(&acme("k-2"), &attempt("fp", "o1"), LEASE)
            .await
            .unwrap();
        s.release_idempotent(&acme("k-2"), "o1").await.unwrap();
        assert_eq!(
            pttl(&server, "fsgate:{t:acme}:idem:v1.sessions:k-2").await,
            -2,
            "released: gone"
        );
    }

    /// While Redis is down every step is `Unavailable`; once it is back the
    /// same key starts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outage_is_unavailable_then_recovers() {
        let mut server = RedisServer::start();
        let s = open(&server.url()).await.unwrap();
        server.stop();
        let k = acme("outage");
        assert!(matches!(
            s.begin_idempotent(&k, &attempt("fp", "o1"), LEASE).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            s.release_idempotent(&k, "o1").await,
            Err(StoreError::Unavailable(_))
        ));
        server.resume();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match s.begin_idempotent(&k, &attempt("fp", "o2"), LEASE).await {
                Ok(b) => {
                    assert_eq!(b, Begun::Started);
                    break;
                }
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the store did not come back: {e}"),
            }
        }
    }

    /// A record another writer left in a shape we did not write is corrupt,
    /// not a panic.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn foreign_records_are_corrupt() {
        let server = RedisServer::start();
        let s = open(&server.url()).await.unwrap();
        let client = ::redis::Client::open(server.url()).unwrap();
        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = ::redis::cmd("HSET")
            .arg("fsgate:{t:acme}:idem:v1.sessions:bad")
            .arg("fp")
            .arg("x")
            .arg("owner")
            .arg("o")
            .arg("state")
            .arg("done")
            .arg("response")
            .arg("{not json")
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(matches!(
            s.begin_idempotent(&acme("bad"), &attempt("fp", "o1"), LEASE)
                .await,
            Err(StoreError::Corrupt(_))
        ));
    }
}
