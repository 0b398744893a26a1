//! Reliability of the REST API end to end: a Redis restart under load
//! (persistence on) answers 503 with a clear error meanwhile and recovers
//! without a daemon restart, losing nothing; hostile characters in every
//! string field, query parameter and path segment are refused with 400 and
//! nothing reaches the switch; and another tenant's ids answer 404 on every
//! endpoint.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::redis::RedisServer;
use support::stack::{Stack, StackOptions};

const WAIT: Duration = Duration::from_secs(10);

fn options() -> StackOptions {
    StackOptions {
        dialplan: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sim-dialplan").into()),
        ..Default::default()
    }
}

fn call_body() -> Value {
    json!({"caller": "+15557770001", "callee": "+15557770002", "send_sdp": true})
}

async fn create_call(stack: &Stack) -> String {
    let (status, body) = stack.post_json("/api/v1/sessions", call_body()).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_redis_restart_under_load_answers_503_and_loses_nothing() {
    let redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let url = redis.url();
    let mut opts = options();
    opts.tweak = Some(Box::new(move |c| c.store.url = url));
    let stack = Arc::new(Stack::start(opts).await);
    let mut redis = redis;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(create_call(&stack).await);
    }
    // Load: reads of every call and the event log, all the time.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<(u16, Value)>::new()));
    let mut load = Vec::new();
    for w in 0..4 {
        let (stack, stop, seen, ids) = (stack.clone(), stop.clone(), seen.clone(), ids.clone());
        load.push(tokio::spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let path = if i % 2 == 0 {
                    format!("/api/v1/sessions/{}", ids[i % ids.len()])
                } else {
                    "/v1/events?limit=5".to_owned()
                };
                let r = stack.get_json(&path).await;
                seen.lock().unwrap().push(r);
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    redis.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = stack.post_json("/api/v1/sessions", call_body()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{body}"
    );
    redis.resume();
    // Recovers by itself.
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, _) = stack
            .get_json(&format!("/api/v1/sessions/{}", ids[0]))
            .await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    // Nothing lost, new work accepted.
    for id in &ids {
        let (status, body) = stack.get_json(&format!("/api/v1/sessions/{id}")).await;
        assert_eq!(status, 200, "{id} lost after the restart: {body}");
        assert_eq!(body["id"], id.as_str());
    }
    create_call(&stack).await;
    // Under load, only 200 or a clear 503 were ever answered.
    let seen = seen.lock().unwrap();
    let unavailable = seen.iter().filter(|(s, _)| *s == 503).count();
    assert!(unavailable > 0, "the load never saw the outage");
    for (status, body) in seen.iter() {
        match status {
            200 => {}
            503 => assert_eq!(body["error"]["code"], "store_unavailable", "{body}"),
            other => panic!("answered {other} during the outage: {body}"),
        }
    }
}

/// Characters that must never reach an ESL line.
const HOSTILE: [&str; 9] = ["\r", "\n", "\0", ",", "{", "}", "'", "\"", "${"];

/// Commands (api/bgapi) the simulator received.
fn commands_received(stack: &Stack) -> Vec<String> {
    stack
        .sim
        .faults()
        .received()
        .into_iter()
        .map(|r| r.line)
        .filter(|l| l.starts_with("api ") || l.starts_with("bgapi "))
        .collect()
}

fn pct(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn hostile_characters_anywhere_are_refused_and_nothing_is_sent() {
    let stack = Stack::start(options()).await;
    let call = stack
        .sim
        .switch()
        .place_inbound("+15557770001", "15550109000");
    stack
        .receiver
        .wait_for("call.initiated", WAIT, |d| {
            d.data()["call_id"] == call.as_str()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stack.sim.faults().clear_received();

    let failures = Mutex::new(Vec::new());
    let check = |what: String, status: u16, body: &Value| {
        if status != 400 {
            failures
                .lock()
                .unwrap()
                .push(format!("{what}: {status} {body}"));
        }
    };
    let check_path = |what: String, status: u16, body: &Value| {
        if status != 400 && status != 404 {
            failures
                .lock()
                .unwrap()
                .push(format!("{what}: {status} {body}"));
        }
    };
    let create_fields = [
        "caller",
        "caller_display_name",
        "callee",
        "trunk",
        "rewrite_from",
        "rewrite_pai",
        "rewrite_rpi",
        "user_data",
        "target",
        "target_instance_id",
        "target_extension_number",
        "additional_header",
        "header_direction",
    ];
    for bad in HOSTILE {
        for field in create_fields {
            let mut body = call_body();
            body[field] = json!(format!("15557{bad}770009"));
            if field == "additional_header" || field == "header_direction" {
                body["additional_header"] = json!("ANSWER_MODE");
                body[field] = json!(format!("ALL{bad}"));
            }
            let (status, reply) = stack.post_json("/api/v1/sessions", body).await;
            check(format!("create {field} {bad:?}"), status, &reply);
        }
        for command in ["answer", "hangup", "disconnect"] {
            let path = format!("/api/v1/sessions/{call}/commands/{command}");
            let (status, reply) = stack
                .post_json(&path, json!({"command_uid": format!("uid{bad}1")}))
                .await;
            check(format!("{command} command_uid {bad:?}"), status, &reply);
            let (status, reply) = stack
                .post_json(&path, json!({"cause": format!("USER_BUSY{bad}")}))
                .await;
            if command == "hangup" {
                check(format!("hangup cause {bad:?}"), status, &reply);
            } else {
                // `cause` is not a field of answer/disconnect: refused too.
                check(format!("{command} with cause {bad:?}"), status, &reply);
            }
            // The call id in the path.
            let path = format!("/api/v1/sessions/{call}{}/commands/{command}", pct(bad));
            let (status, reply) = stack.post_json(&path, json!({})).await;
            // A path id that cannot exist answers 404 (not 400) today.
            check_path(format!("{command} path uuid {bad:?}"), status, &reply);
        }
        let q = pct(bad);
        for path in [
            format!("/api/v1/sessions?limit=1{q}"),
            format!("/v1/events?limit=1{q}"),
        ] {
            let (status, reply) = stack.get_json(&path).await;
            check(format!("GET {path}"), status, &reply);
        }
        for path in [
            format!("/api/v1/sessions/{call}{q}"),
            format!("/api/v1/operations/op{q}"),
        ] {
            let (status, reply) = stack.get_json(&path).await;
            check_path(format!("GET {path}"), status, &reply);
        }
        // Cursors are opaque: a malformed one is read leniently today (an
        // empty page or the first page, never an error), so only "nothing
        // reaches the switch" is checked for them.
        for path in [
            format!("/api/v1/sessions?cursor=a{q}b"),
            format!("/v1/events?cursor=1{q}"),
        ] {
            let (status, reply) = stack.get_json(&path).await;
            assert!(status < 500, "GET {path}: {status} {reply}");
        }
    }
    let sent = commands_received(&stack);
    assert!(sent.is_empty(), "the switch received {sent:?}");
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "not refused:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn another_tenants_ids_answer_404_everywhere() {
    let stack = Stack::start(options()).await;
    let parked = stack
        .sim
        .switch()
        .place_inbound("+15557770001", "15550109000");
    stack
        .receiver
        .wait_for("call.initiated", WAIT, |d| {
            d.data()["call_id"] == parked.as_str()
        })
        .await;
    let created = create_call(&stack).await;
    let (status, accepted) = stack
        .post_json(
            &format!("/api/v1/sessions/{parked}/commands/answer"),
            json!({"command_uid": "mine"}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let op = accepted["operation_id"].as_str().unwrap().to_owned();

    let globex = |m: Method, p: &str| stack.as_tenant("globex", m, p);
    for id in [&parked, &created] {
        let r = globex(Method::GET, &format!("/api/v1/sessions/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "GET call {id}");
        for command in ["answer", "hangup", "disconnect"] {
            let r = globex(
                Method::POST,
                &format!("/api/v1/sessions/{id}/commands/{command}"),
            )
            .json(&json!({"command_uid": "mine"}))
            .send()
            .await
            .unwrap();
            assert_eq!(r.status().as_u16(), 404, "{command} on {id}");
        }
    }
    let r = globex(Method::GET, &format!("/api/v1/operations/{op}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404, "operation");
    let (status, _) = stack.get_json(&format!("/api/v1/operations/{op}")).await;
    assert_eq!(status, 200, "acme sees its own operation");
    // Lists and the event log show none of acme's.
    let page: Value = globex(Method::GET, "/api/v1/sessions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(page["items"].as_array().unwrap().is_empty(), "{page}");
    let page: Value = globex(Method::GET, "/v1/events")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(page["events"].as_array().unwrap().is_empty(), "{page}");
    // Nothing was sent to the switch for globex's attempts: the call is
    // still unanswered only by acme's own command.
    assert!(stack.sim.switch().channel(&parked).is_some());
}
