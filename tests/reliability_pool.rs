//! Masked-number allocation under contention, end to end: 10,000 parallel
//! `POST /v1/sessions` against a 1,000-number pool on a real redis-server
//! leave exactly 1,000 live sessions, no number held twice, and every other
//! request refused with the pool-exhausted error (never a 5xx).

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use support::stack::{Stack, StackOptions};
use tokio::sync::Mutex;

const POOL: usize = 1000;
const CREATES: usize = 10_000;
const WORKERS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_creates_on_a_thousand_numbers() {
    let stack = Arc::new(
        Stack::start(StackOptions {
            redis: true,
            pool: POOL,
            ..Default::default()
        })
        .await,
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(CREATES)));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (stack, next, outcomes) = (stack.clone(), next.clone(), outcomes.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= CREATES {
                    return;
                }
                let body = json!({"party_a": format!("+1555{:07}", i), "party_b": format!("+1666{:07}", i)});
                let (status, reply) = stack.post_json("/v1/sessions", body).await;
                let number = reply["masked_number"].as_str().map(str::to_owned);
                let code = reply["error"]["code"].as_str().map(str::to_owned);
                outcomes.lock().await.push((status, number, code));
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let outcomes = outcomes.lock().await;
    assert_eq!(outcomes.len(), CREATES);
    let created: Vec<&String> = outcomes
        .iter()
        .filter(|o| o.0 == 201)
        .filter_map(|o| o.1.as_ref())
        .collect();
    assert_eq!(created.len(), POOL, "exactly the pool is handed out");
    let distinct: HashSet<&&String> = created.iter().collect();
    assert_eq!(distinct.len(), POOL, "no number twice");
    for (status, _, code) in outcomes.iter().filter(|o| o.0 != 201) {
        assert_eq!((*status, code.as_deref()), (409, Some("pool_exhausted")));
    }
    // The store agrees: 1,000 live sessions.
    let mut live = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/sessions?state=open&limit=200&cursor={c}"),
            None => "/v1/sessions?state=open&limit=200".to_owned(),
        };
        let (status, page) = stack.get_json(&path).await;
        assert_eq!(status, 200, "{page}");
        live += page["sessions"].as_array().map_or(0, Vec::len);
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(live, POOL);
}
