//! Findings of a hostile-user test of the REST API, each fixed and held here
//! against the real daemon and the simulator:
//!
//! - click-to-call `caller`/`callee` are E.164, a 2–6 digit extension or a
//!   SIP user; `-`, `..`, `#`, `*`, 19 digits or a national number without
//!   `+` are a 400 naming the field, and nothing reaches the switch;
//! - `trunk` may name only the tenant's configured trunk;
//! - display names of any script with combining marks (a Devanagari virama,
//!   decomposed accents) are accepted, control characters still refused;
//! - unknown query parameters on `/v1/events` and `/v1/dialplan/route` are a
//!   400 naming the parameter (the route lookup still takes exactly what
//!   `dialplan/public/00_fsgate.xml` sends);
//! - a cursor the API did not hand out is a 400 naming it, not an empty page
//!   that echoes it back;
//! - the 405 message says which method and path, and `Allow` lists methods;
//! - a session created on a number just released does not start before the
//!   release (times read before the store's atomic step).

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fsgate::clock::ManualClock;
use reqwest::Method;
use serde_json::{json, Value};
use support::stack::{Stack, StackOptions};

async fn stack() -> Stack {
    Stack::start(StackOptions::default()).await
}

async fn get(stack: &Stack, path: &str) -> (u16, Value) {
    stack.get_json(path).await
}

fn call(caller: &str, callee: &str) -> Value {
    json!({"caller": caller, "callee": callee, "send_sdp": true})
}

fn originates(stack: &Stack) -> usize {
    stack
        .sim
        .faults()
        .received()
        .into_iter()
        .filter(|r| r.line.starts_with("bgapi originate"))
        .count()
}

fn field(body: &Value) -> &Value {
    &body["error"]["field"]
}

// --- click-to-call parties and trunk ---------------------------------------------------------

#[tokio::test]
async fn click_to_call_parties_are_e164_extensions_or_sip_users() {
    let stack = stack().await;
    stack.sim.faults().clear_received();
    let nineteen = "1".repeat(19);
    let plus_nineteen = format!("+{nineteen}");
    let refused = [
        "-",
        "..",
        "#",
        "*",
        "*67",
        "+",
        nineteen.as_str(),
        plus_nineteen.as_str(),
        "5557770001",
        "15557770001",
        "+0015557770001",
        "+1555",
        "alice.",
        "a..b",
        ".x",
        "9",
    ];
    for bad in refused {
        for (name, body) in [
            ("caller", call(bad, "+15557770002")),
            ("callee", call("+15557770001", bad)),
        ] {
            let (status, reply) = stack.post_json("/api/v1/sessions", body).await;
            assert_eq!(
                (status, field(&reply)),
                (400, &json!(name)),
                "{name} {bad:?}: {reply}"
            );
            let message = reply["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("E.164"),
                "the message says what is accepted: {message}"
            );
        }
    }
    stack.switch_caught_up().await;
    assert_eq!(originates(&stack), 0, "nothing reached the switch");
    for (caller, callee) in [
        ("+15557770001", "1001"),
        ("alice", "+4930901820"),
        ("bob.smith", "carol_2"),
    ] {
        let (status, reply) = stack
            .post_json("/api/v1/sessions", call(caller, callee))
            .await;
        assert_eq!(status, 201, "{caller} → {callee}: {reply}");
    }
}

#[tokio::test]
async fn only_the_tenants_trunk_may_be_named() {
    let stack = stack().await;
    stack.sim.faults().clear_received();
    let mut body = call("+15557770001", "+15557770002");
    body["trunk"] = json!("premium-route");
    let (status, reply) = stack.post_json("/api/v1/sessions", body.clone()).await;
    assert_eq!((status, field(&reply)), (400, &json!("trunk")), "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("carrier"),
        "{reply}"
    );
    stack.switch_caught_up().await;
    assert_eq!(originates(&stack), 0);
    body["trunk"] = json!("carrier");
    let (status, reply) = stack.post_json("/api/v1/sessions", body).await;
    assert_eq!(status, 201, "{reply}");
}

// --- display names ------------------------------------------------------------------------------

#[tokio::test]
async fn display_names_with_combining_marks_are_accepted() {
    let stack = stack().await;
    for name in [
        "नमस्ते जी",                         // virama U+094D
        "Jose\u{301} Nu\u{303}n\u{303}ez", // decomposed accents
        "Ng\u{1EC7}\u{300}",               // a precomposed letter plus a mark
        "Zoë Ångström",
    ] {
        let mut body = call("+15557770001", "+15557770002");
        body["caller_display_name"] = json!(name);
        let (status, reply) = stack.post_json("/api/v1/sessions", body).await;
        assert_eq!(status, 201, "{name:?}: {reply}");
        assert_eq!(reply["caller_display_name"], name);
    }
    for bad in [
        "a\u{1}b",
        "a\u{7f}b",
        "a\u{9b}b",
        "a\u{202e}b",
        "x$y",
        "x:_:y",
        "a\"b",
    ] {
        let mut body = call("+15557770001", "+15557770002");
        body["caller_display_name"] = json!(bad);
        let (status, reply) = stack.post_json("/api/v1/sessions", body).await;
        assert_eq!(
            (status, field(&reply)),
            (400, &json!("caller_display_name")),
            "{bad:?}"
        );
    }
}

// --- query strings -------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_query_parameters_are_refused_by_name() {
    let stack = stack().await;
    let (status, reply) = get(&stack, "/v1/events?limit=5&debug=1").await;
    assert_eq!((status, field(&reply)), (400, &json!("debug")), "{reply}");
    let (status, _) = get(&stack, "/v1/events?limit=5").await;
    assert_eq!(status, 200);

    // The route lookup takes exactly what 00_fsgate.xml sends.
    let uuid = uuid::Uuid::new_v4();
    let base =
        format!("/v1/dialplan/route?masked=15550100001&caller=15557770001&uuid={uuid}&token=");
    let r = stack
        .http
        .get(format!("{}{base}", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no session: the lookup's own refusal");
    assert_eq!(r.text().await.unwrap(), "UNALLOCATED_NUMBER");
    let r = stack
        .http
        .get(format!("{}{base}&priority=1", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let reply: Value = r.json().await.unwrap();
    assert_eq!(field(&reply), &json!("priority"), "{reply}");
}

#[tokio::test]
async fn garbage_cursors_are_400_naming_the_parameter() {
    let stack = stack().await;
    for (path, name) in [
        ("/v1/events?after=garbage", "after"),
        ("/v1/events?after=12-x", "after"),
        ("/api/v1/sessions?cursor=garbage", "cursor"),
        ("/v1/sessions?cursor=garbage", "cursor"),
    ] {
        let (status, reply) = get(&stack, path).await;
        assert_eq!(
            (status, field(&reply)),
            (400, &json!(name)),
            "{path}: {reply}"
        );
        assert!(reply.get("next_cursor").is_none());
    }
    // Real cursors still page.
    for i in 0..3 {
        let (status, _) = stack
            .post_json(
                "/api/v1/sessions",
                call(&format!("+1555777000{i}"), "+15557770009"),
            )
            .await;
        assert_eq!(status, 201);
    }
    // Follow the cursors (a page may hold fewer items than asked: bridged
    // B-legs are in the live list but are not sessions).
    let mut ids = std::collections::HashSet::new();
    let mut path = "/api/v1/sessions?limit=1".to_owned();
    for _ in 0..20 {
        let (status, page) = get(&stack, &path).await;
        assert_eq!(status, 200, "{path}: {page}");
        for item in page["items"].as_array().unwrap() {
            ids.insert(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/sessions?limit=1&cursor={}", urlenc(c)),
            None => break,
        }
    }
    assert_eq!(ids.len(), 3, "every call, through the cursors");
    // The event log: wait for an envelope, then page after it.
    let mut after = None;
    for _ in 0..100 {
        let (_, events) = get(&stack, "/v1/events?limit=1").await;
        if let Some(c) = events["next_cursor"].as_str() {
            after = Some(c.to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = after.expect("some webhook envelope was logged");
    let (status, _) = get(&stack, &format!("/v1/events?after={}", urlenc(&after))).await;
    assert_eq!(status, 200);
    let (status, _) = get(&stack, "/v1/events?after=").await;
    assert_eq!(status, 200, "empty means from the start");
}

fn urlenc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// --- 405 -----------------------------------------------------------------------------------------

#[tokio::test]
async fn a_405_names_the_method_and_path_and_allow_lists_methods() {
    let stack = stack().await;
    let r = stack
        .acme(Method::DELETE, "/v1/sessions")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let allow = r
        .headers()
        .get("allow")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow: {allow}"
    );
    let reply: Value = r.json().await.unwrap();
    assert_eq!(reply["error"]["code"], "method_not_allowed");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(!message.trim_end().ends_with(':'), "{message}");
    assert!(
        message.contains("DELETE") && message.contains("/v1/sessions"),
        "{message}"
    );
}

// --- session times ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_session_on_a_just_released_number_does_not_start_before_the_release() {
    let start: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let stack = Stack::start(StackOptions {
        pool: 1,
        clock: clock.clone(),
        ..Default::default()
    })
    .await;
    let body = json!({"party_a": "+15557770001", "party_b": "+15557770002", "ttl_minutes": 30});
    let (status, a) = stack.post_json("/v1/sessions", body.clone()).await;
    assert_eq!(status, 201, "{a}");
    // The completion reads 10:00:05.007; the next create read 10:00:05.000
    // (before it, in another request) but reaches the store after it.
    clock.set(start + chrono::Duration::milliseconds(5_007));
    let path = format!("/v1/sessions/{}/complete", a["ref"].as_str().unwrap());
    let (status, done) = stack.post_json(&path, json!({})).await;
    assert_eq!(status, 200, "{done}");
    clock.set(start + chrono::Duration::milliseconds(5_000));
    let (status, b) = stack.post_json("/v1/sessions", body).await;
    assert_eq!(status, 201, "{b}");
    assert_eq!(b["masked_number"], a["masked_number"]);
    let completed: DateTime<Utc> = done["completed_at"].as_str().unwrap().parse().unwrap();
    let created: DateTime<Utc> = b["created_at"].as_str().unwrap().parse().unwrap();
    let expires: DateTime<Utc> = b["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(created >= completed, "{created} before {completed}");
    assert_eq!(expires - created, chrono::Duration::minutes(30));
    let (_, read) = stack
        .get_json(&format!("/v1/sessions/{}", b["ref"].as_str().unwrap()))
        .await;
    assert_eq!(
        read["created_at"], b["created_at"],
        "what was written is what reads back"
    );
}
