//! `Idempotency-Key` on the creating POSTs (`/v1/sessions`,
//! `/v1/calls/originate`, `/api/v1/sessions`), end to end: the real daemon
//! against the simulator on a real redis-server (one test on the memory
//! store). A replay answers the identical status and body with
//! `Idempotent-Replayed: true` and does nothing again (no second number
//! taken from the pool, no second originate reaching the switch); the same
//! key with another body is a 422; a concurrent pair runs once; a kept
//! answer lives 24 h (Redis `PTTL`); a 503 that did nothing (Redis down,
//! draining) leaves the key free, so the retry runs, once.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::redis::RedisServer;
use support::stack::{Stack, StackOptions};

const WAIT: Duration = Duration::from_secs(10);

async fn stack(redis: bool, pool: usize) -> Stack {
    Stack::start(StackOptions {
        redis,
        pool,
        ..Default::default()
    })
    .await
}

/// An answer: status, the raw body, the JSON, whether it was replayed.
#[derive(Debug)]
struct Answer {
    status: u16,
    text: String,
    json: Value,
    replayed: bool,
}

async fn post(stack: &Stack, tenant: &str, path: &str, key: Option<&str>, body: &Value) -> Answer {
    let mut req = stack.as_tenant(tenant, Method::POST, path).json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    answer(req.send().await.unwrap()).await
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let replayed = match r.headers().get("idempotent-replayed") {
        None => false,
        Some(v) => {
            assert_eq!(v, "true");
            true
        }
    };
    let text = r.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        text,
        json,
        replayed,
    }
}

fn session_body(a: &str) -> Value {
    json!({"party_a": a, "party_b": "+15557770002", "ttl_minutes": 30, "metadata": {"order": "A-17"}})
}

fn call_body() -> Value {
    json!({"caller": "+15557770001", "callee": "+15557770002", "send_sdp": true, "user_data": "crm-1"})
}

/// The `bgapi originate` lines the simulator received.
fn originates(stack: &Stack) -> Vec<String> {
    stack
        .sim
        .faults()
        .received()
        .into_iter()
        .map(|r| r.line)
        .filter(|l| l.starts_with("bgapi originate"))
        .collect()
}

async fn sessions_of(stack: &Stack, tenant: &str) -> Vec<Value> {
    let r = stack
        .as_tenant(tenant, Method::GET, "/v1/sessions?limit=200")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["sessions"].as_array().unwrap().clone()
}

async fn pttl(stack: &Stack, key: &str) -> i64 {
    let url = stack.redis.as_ref().unwrap().url();
    let client = ::redis::Client::open(url).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    ::redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut raw)
        .await
        .unwrap()
}

// --- replays -----------------------------------------------------------------------

#[tokio::test]
async fn a_replayed_session_create_is_identical_and_takes_no_second_number() {
    let stack = stack(true, 2).await;
    let first = post(
        &stack,
        "acme",
        "/v1/sessions",
        Some("order-A-17"),
        &session_body("+15557770001"),
    )
    .await;
    assert_eq!(
        (first.status, first.replayed),
        (201, false),
        "{}",
        first.text
    );
    // The same body with other key order and spacing is the same request.
    let reordered: Value = serde_json::from_str(
        r#"{ "metadata": {"order":"A-17"}, "ttl_minutes": 30,
             "party_b": "+15557770002", "party_a": "+15557770001" }"#,
    )
    .unwrap();
    for body in [session_body("+15557770001"), reordered] {
        let again = post(&stack, "acme", "/v1/sessions", Some("order-A-17"), &body).await;
        assert_eq!((again.status, again.replayed), (201, true));
        assert_eq!(again.text, first.text, "the identical body");
    }
    assert_eq!(sessions_of(&stack, "acme").await.len(), 1, "one session");
    // The pool of two lost one number, not two: one more session fits, a
    // third does not.
    let second = post(
        &stack,
        "acme",
        "/v1/sessions",
        Some("order-B"),
        &session_body("+15557770003"),
    )
    .await;
    assert_eq!(second.status, 201, "{}", second.text);
    assert_ne!(second.json["masked_number"], first.json["masked_number"]);
    let third = post(
        &stack,
        "acme",
        "/v1/sessions",
        None,
        &session_body("+15557770004"),
    )
    .await;
    assert_eq!(third.status, 409, "{}", third.text);
    assert_eq!(third.json["error"]["code"], "pool_exhausted");
    // The kept answer lives 24 h in Redis.
    let ttl = pttl(&stack, "fsgate:{t:acme}:idem:v1.sessions:order-A-17").await;
    assert!(
        (86_340_000..=86_400_000).contains(&ttl),
        "the key expires in 24 h: PTTL {ttl}"
    );
}

#[tokio::test]
async fn a_replayed_click_to_call_sends_one_originate() {
    let stack = stack(true, 2).await;
    stack.sim.faults().clear_received();
    let first = post(
        &stack,
        "acme",
        "/api/v1/sessions",
        Some("c2c-1"),
        &call_body(),
    )
    .await;
    assert_eq!(
        (first.status, first.replayed),
        (201, false),
        "{}",
        first.text
    );
    for _ in 0..3 {
        let again = post(
            &stack,
            "acme",
            "/api/v1/sessions",
            Some("c2c-1"),
            &call_body(),
        )
        .await;
        assert_eq!((again.status, again.replayed), (201, true));
        assert_eq!(again.text, first.text);
    }
    stack.switch_caught_up().await;
    let sent = originates(&stack);
    assert_eq!(sent.len(), 1, "exactly one originate: {sent:?}");
    assert!(sent[0].contains(first.json["id"].as_str().unwrap()));
    let ttl = pttl(&stack, "fsgate:{t:acme}:idem:api.v1.sessions:c2c-1").await;
    assert!((86_340_000..=86_400_000).contains(&ttl), "PTTL {ttl}");
}

#[tokio::test]
async fn a_replayed_session_originate_places_one_call() {
    let stack = stack(true, 2).await;
    let session = post(
        &stack,
        "acme",
        "/v1/sessions",
        None,
        &session_body("+15557770001"),
    )
    .await;
    assert_eq!(session.status, 201, "{}", session.text);
    stack.sim.faults().clear_received();
    let body = json!({"session": session.json["ref"], "first": "b"});
    let first = post(&stack, "acme", "/v1/calls/originate", Some("orig-1"), &body).await;
    assert_eq!(
        (first.status, first.replayed),
        (202, false),
        "{}",
        first.text
    );
    let again = post(&stack, "acme", "/v1/calls/originate", Some("orig-1"), &body).await;
    assert_eq!((again.status, again.replayed), (202, true));
    assert_eq!(again.text, first.text, "same call_id and operation_id");
    stack.switch_caught_up().await;
    assert_eq!(originates(&stack).len(), 1);
}

#[tokio::test]
async fn a_4xx_is_kept_and_replayed() {
    let stack = stack(false, 2).await;
    let too_long =
        json!({"party_a": "+15557770001", "party_b": "+15557770002", "ttl_minutes": 100000});
    let first = post(&stack, "acme", "/v1/sessions", Some("k-422"), &too_long).await;
    assert_eq!(
        (first.status, first.replayed),
        (422, false),
        "{}",
        first.text
    );
    assert_eq!(first.json["error"]["code"], "ttl_above_maximum");
    let again = post(&stack, "acme", "/v1/sessions", Some("k-422"), &too_long).await;
    assert_eq!((again.status, again.replayed), (422, true));
    assert_eq!(again.text, first.text);
    let missing = json!({"session": "ses_doesnotexist", "first": "a"});
    let first = post(
        &stack,
        "acme",
        "/v1/calls/originate",
        Some("k-404"),
        &missing,
    )
    .await;
    assert_eq!(first.status, 404, "{}", first.text);
    let again = post(
        &stack,
        "acme",
        "/v1/calls/originate",
        Some("k-404"),
        &missing,
    )
    .await;
    assert_eq!(
        (again.status, again.replayed, again.text),
        (404, true, first.text)
    );
}

// --- misuse -----------------------------------------------------------------------------

#[tokio::test]
async fn the_same_key_with_another_body_is_422_and_keys_are_scoped() {
    let stack = stack(true, 4).await;
    let first = post(
        &stack,
        "acme",
        "/v1/sessions",
        Some("shared"),
        &session_body("+15557770001"),
    )
    .await;
    assert_eq!(first.status, 201);
    let other = post(
        &stack,
        "acme",
        "/v1/sessions",
        Some("shared"),
        &session_body("+15557770009"),
    )
    .await;
    assert_eq!(other.status, 422, "{}", other.text);
    assert_eq!(other.json["error"]["code"], "idempotency_key_reused");
    assert_eq!(other.json["error"]["field"], "Idempotency-Key");
    assert!(!other.replayed);
    assert_eq!(
        sessions_of(&stack, "acme").await.len(),
        1,
        "nothing created"
    );
    // Another tenant's key space, and another endpoint's, are their own.
    let globex = post(
        &stack,
        "globex",
        "/v1/sessions",
        Some("shared"),
        &session_body("+15557770001"),
    )
    .await;
    assert_eq!(
        (globex.status, globex.replayed),
        (201, false),
        "{}",
        globex.text
    );
    assert_ne!(globex.json["ref"], first.json["ref"]);
    let call = post(
        &stack,
        "acme",
        "/api/v1/sessions",
        Some("shared"),
        &call_body(),
    )
    .await;
    assert_eq!((call.status, call.replayed), (201, false), "{}", call.text);
}

#[tokio::test]
async fn a_malformed_key_is_400_naming_the_header() {
    let stack = stack(false, 2).await;
    let long = "k".repeat(256);
    let longest = "k".repeat(255);
    for bad in ["", "two words", long.as_str(), "tab\tkey"] {
        let a = post(&stack, "acme", "/api/v1/sessions", Some(bad), &call_body()).await;
        assert_eq!(a.status, 400, "{bad:?}: {}", a.text);
        assert_eq!(a.json["error"]["field"], "Idempotency-Key", "{bad:?}");
    }
    // Non-ASCII bytes in the header.
    let r = stack
        .acme(Method::POST, "/v1/sessions")
        .header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        )
        .json(&session_body("+15557770001"))
        .send()
        .await
        .unwrap();
    let a = answer(r).await;
    assert_eq!(
        (a.status, a.json["error"]["field"].clone()),
        (400, json!("Idempotency-Key"))
    );
    // Twice.
    let r = stack
        .acme(Method::POST, "/v1/sessions")
        .header("Idempotency-Key", "a")
        .header("Idempotency-Key", "b")
        .json(&session_body("+15557770001"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer(r).await.status, 400);
    assert!(
        sessions_of(&stack, "acme").await.is_empty(),
        "nothing created"
    );
    stack.sim.faults().clear_received();
    let ok = post(
        &stack,
        "acme",
        "/api/v1/sessions",
        Some(&longest),
        &call_body(),
    )
    .await;
    assert_eq!(ok.status, 201, "255 printable characters: {}", ok.text);
    let ok = post(
        &stack,
        "acme",
        "/api/v1/sessions",
        Some("\"quoted\":{x}~!"),
        &call_body(),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
}

// --- concurrency ------------------------------------------------------------------------

#[tokio::test]
async fn a_concurrent_pair_runs_once() {
    let stack = stack(true, 2).await;
    for round in 0..5 {
        stack.sim.faults().clear_received();
        let key = format!("pair-{round}");
        let body = call_body();
        let (a, b) = tokio::join!(
            post(&stack, "acme", "/api/v1/sessions", Some(&key), &body),
            post(&stack, "acme", "/api/v1/sessions", Some(&key), &body),
        );
        let mut answers = [a, b];
        answers.sort_by_key(|a| (a.status, a.replayed));
        let [first, second] = &answers;
        assert_eq!((first.status, first.replayed), (201, false), "{first:?}");
        match (second.status, second.replayed) {
            (201, true) => assert_eq!(second.text, first.text),
            (409, false) => {
                assert_eq!(second.json["error"]["code"], "idempotency_key_in_progress");
                assert_eq!(second.json["error"]["field"], "Idempotency-Key");
            }
            other => panic!("the other of the pair answered {other:?}: {}", second.text),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(originates(&stack).len(), 1, "round {round}");
        // After the first finished, the key replays.
        let later = post(&stack, "acme", "/api/v1/sessions", Some(&key), &call_body()).await;
        assert_eq!(
            (later.status, later.replayed, later.text.as_str()),
            (201, true, first.text.as_str())
        );
    }
}

// --- 503s that did nothing release the key -----------------------------------------------

#[tokio::test]
async fn after_a_503_with_redis_down_the_retry_with_the_key_runs_once() {
    // Persistence on, so that the pools survive the restart.
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let url = redis.url();
    let stack = Stack::start(StackOptions {
        pool: 2,
        tweak: Some(Box::new(move |c| c.store.url = url)),
        ..Default::default()
    })
    .await;
    stack.sim.faults().clear_received();
    redis.stop();
    let down = post(
        &stack,
        "acme",
        "/api/v1/sessions",
        Some("outage-1"),
        &call_body(),
    )
    .await;
    assert_eq!(down.status, 503, "{}", down.text);
    assert_eq!(down.json["error"]["code"], "store_unavailable");
    let down = post(
        &stack,
        "acme",
        "/v1/sessions",
        Some("outage-2"),
        &session_body("+15557770001"),
    )
    .await;
    assert_eq!(down.status, 503, "{}", down.text);
    assert_eq!(down.json["error"]["code"], "store_unavailable");
    redis.resume();
    let deadline = tokio::time::Instant::now() + WAIT;
    let call = loop {
        let a = post(
            &stack,
            "acme",
            "/api/v1/sessions",
            Some("outage-1"),
            &call_body(),
        )
        .await;
        if a.status != 503 {
            break a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never recovered: {}",
            a.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (call.status, call.replayed),
        (201, false),
        "the retry ran: {}",
        call.text
    );
    let again = post(
        &stack,
        "acme",
        "/api/v1/sessions",
        Some("outage-1"),
        &call_body(),
    )
    .await;
    assert_eq!((again.status, again.replayed), (201, true));
    stack.switch_caught_up().await;
    assert_eq!(
        originates(&stack).len(),
        1,
        "the outage sent nothing, the retry once"
    );

    let session = post(
        &stack,
        "acme",
        "/v1/sessions",
        Some("outage-2"),
        &session_body("+15557770001"),
    )
    .await;
    assert_eq!(
        (session.status, session.replayed),
        (201, false),
        "{}",
        session.text
    );
    let again = post(
        &stack,
        "acme",
        "/v1/sessions",
        Some("outage-2"),
        &session_body("+15557770001"),
    )
    .await;
    assert_eq!(
        (again.status, again.replayed, again.text.as_str()),
        (201, true, session.text.as_str())
    );
    assert_eq!(sessions_of(&stack, "acme").await.len(), 1);
}

#[tokio::test]
async fn a_503_draining_leaves_the_key_to_another_instance() {
    let stack = stack(true, 2).await;
    let draining = stack.second_instance().await;
    draining.state().drain.start();
    stack.sim.faults().clear_received();
    let url = format!("http://{}/api/v1/sessions", draining.addr());
    let r = stack
        .http
        .post(&url)
        .header("X-API-Key", "acme-key")
        .header("Idempotency-Key", "drain-1")
        .json(&call_body())
        .send()
        .await
        .unwrap();
    let refused = answer(r).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.json["error"]["code"], "draining");
    let ran = post(
        &stack,
        "acme",
        "/api/v1/sessions",
        Some("drain-1"),
        &call_body(),
    )
    .await;
    assert_eq!((ran.status, ran.replayed), (201, false), "{}", ran.text);
    // And the draining instance now replays the kept answer (a replay
    // starts nothing new).
    let r = stack
        .http
        .post(&url)
        .header("X-API-Key", "acme-key")
        .header("Idempotency-Key", "drain-1")
        .json(&call_body())
        .send()
        .await
        .unwrap();
    let replayed = answer(r).await;
    assert_eq!(
        (replayed.status, replayed.replayed, replayed.text.as_str()),
        (201, true, ran.text.as_str())
    );
    stack.switch_caught_up().await;
    assert_eq!(originates(&stack).len(), 1);
    draining.shutdown().await;
}

// --- documentation -------------------------------------------------------------------------

#[tokio::test]
async fn the_openapi_document_describes_the_header_and_its_answers() {
    let stack = stack(false, 1).await;
    let doc: Value = stack
        .http
        .get(format!("{}/openapi.json", stack.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in ["/v1/sessions", "/v1/calls/originate", "/api/v1/sessions"] {
        let op = &doc["paths"][path]["post"];
        let params = op["parameters"].as_array().expect("parameters");
        assert!(
            params.iter().any(|p| p["name"] == "Idempotency-Key"
                && p["in"] == "header"
                && p["required"] == false),
            "{path}: {params:?}"
        );
        for status in ["409", "422", "503"] {
            let d = op["responses"][status]["description"]
                .as_str()
                .unwrap_or_default();
            assert!(
                d.contains("idempotency_key") || status == "503",
                "{path} {status}: {d}"
            );
            assert!(!d.is_empty(), "{path} {status}");
        }
        let ok = op["responses"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(s, _)| s.starts_with('2'))
            .unwrap()
            .1;
        assert!(
            ok["headers"]["Idempotent-Replayed"].is_object(),
            "{path}: {ok}"
        );
    }
}
