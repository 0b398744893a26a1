//! Call sessions and call control end to end: the real daemon (as
//! `fsgate serve` assembles it) against the simulator, webhooks received
//! over HTTP and their signatures verified, on the memory store and on a
//! real redis-server.
//!
//! The simulator runs the shipped `dialplan/fsgate.xml` (the context
//! `disconnect` transfers to) next to a `public` context that parks calls to
//! the tenants' control numbers by itself, so that these tests do not depend
//! on the masking domain's route lookup.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fsgate::webhooks::sign::{verify, WebhookSecret};
use reqwest::Method;
use serde_json::{json, Value};
use support::receiver::Delivery;
use support::stack::{Stack, StackOptions, SECRET};

const WAIT: Duration = Duration::from_secs(10);

/// A dialplan directory: the shipped `fsgate.xml` plus a parking `public`.
fn dialplan() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("e2e-dialplan-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/dialplan/fsgate.xml"),
        dir.join("fsgate.xml"),
    )
    .unwrap();
    std::fs::write(
        dir.join("public.xml"),
        r#"<include><context name="public">
  <extension name="control_numbers">
    <condition field="destination_number" expression="^\+?155501090{3}$|^\+?155502090{3}$">
      <action application="park"/>
    </condition>
  </extension>
</context></include>"#,
    )
    .unwrap();
    dir
}

async fn stack(redis: bool) -> Stack {
    Stack::start(StackOptions {
        redis,
        dialplan: Some(dialplan()),
        ..Default::default()
    })
    .await
}

fn signed(d: &Delivery) -> &Delivery {
    let secret = WebhookSecret::parse(SECRET).unwrap();
    verify(
        &secret,
        d.header("webhook-id"),
        d.header("webhook-timestamp"),
        d.header("webhook-signature"),
        &d.body,
        chrono::Utc::now().timestamp(),
        300,
    )
    .unwrap_or_else(|e| panic!("bad signature on {}: {e:?}", d.kind()));
    d
}

async fn result_of(stack: &Stack, op: &Value) -> Delivery {
    let op = op.as_str().unwrap().to_owned();
    stack
        .receiver
        .wait_for("command.result", WAIT, |d| {
            d.data()["operation_id"] == op.as_str()
        })
        .await
}

async fn parked(stack: &Stack, from: &str) -> String {
    let uuid = stack.sim.switch().place_inbound(from, "+15550109000");
    let initiated = stack
        .receiver
        .wait_for("call.initiated", WAIT, |d| {
            d.data()["call_id"] == uuid.as_str()
        })
        .await;
    assert_eq!(signed(&initiated).envelope["tenant"], "acme");
    uuid
}

async fn answer_then_hang_up(redis: bool) {
    let stack = stack(redis).await;
    let call = parked(&stack, "+15557770001").await;
    let (status, live) = stack.get_json("/api/v1/sessions").await;
    assert_eq!(status, 200);
    assert_eq!(live["items"][0]["id"], call.as_str());

    let (status, accepted) = stack
        .post_json(
            &format!("/api/v1/sessions/{call}/commands/answer"),
            json!({"command_uid": "ans-1"}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "in_progress");
    assert_eq!(accepted["timeout_ms"], 2000);
    let result = result_of(&stack, &accepted["operation_id"]).await;
    assert_eq!(signed(&result).data()["status"], "succeeded");
    assert_eq!(result.data()["command_uid"], "ans-1");
    let answered = stack
        .receiver
        .wait_for("call.answered", WAIT, |d| {
            d.data()["call_id"] == call.as_str()
        })
        .await;
    signed(&answered);

    // The same key again: the same operation, and no second uuid_answer.
    let (status, again) = stack
        .post_json(
            &format!("/api/v1/sessions/{call}/commands/answer"),
            json!({"command_uid": "ans-1"}),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(again["operation_id"], accepted["operation_id"]);
    assert_eq!(again["status"], "succeeded");

    let (status, accepted) = stack
        .post_json(
            &format!("/api/v1/sessions/{call}/commands/hangup"),
            json!({"cause": "USER_BUSY"}),
        )
        .await;
    assert_eq!(status, 202);
    let result = result_of(&stack, &accepted["operation_id"]).await;
    assert_eq!(signed(&result).data()["status"], "succeeded");
    let hangup = stack
        .receiver
        .wait_for("call.hangup", WAIT, |d| {
            d.data()["call_id"] == call.as_str()
        })
        .await;
    assert_eq!(signed(&hangup).data()["cause"], "USER_BUSY");
    assert_eq!(hangup.data()["q850"], 17);
    let (status, ended) = stack.get_json(&format!("/api/v1/sessions/{call}")).await;
    assert_eq!(status, 200);
    assert_eq!(ended["state"], "ended");
    assert_eq!(ended["hangup_cause"], "USER_BUSY");
    assert_eq!(ended["q850"], 17);

    let received: Vec<String> = stack
        .sim
        .faults()
        .received()
        .into_iter()
        .map(|r| r.line)
        .filter(|l| l.starts_with("api uuid_"))
        .collect();
    assert_eq!(
        received,
        [
            format!("api uuid_answer {call}"),
            format!("api uuid_kill {call} USER_BUSY")
        ]
    );
}

#[tokio::test]
async fn answer_and_hangup_with_webhooks() {
    answer_then_hang_up(false).await;
}

#[tokio::test]
async fn answer_and_hangup_with_webhooks_on_redis() {
    answer_then_hang_up(true).await;
}

#[tokio::test]
async fn disconnect_returns_the_call_to_the_shipped_context() {
    let stack = stack(false).await;
    let call = parked(&stack, "+15557770001").await;
    let (status, accepted) = stack
        .post_json(
            &format!("/api/v1/sessions/{call}/commands/disconnect"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    let result = result_of(&stack, &accepted["operation_id"]).await;
    assert_eq!(signed(&result).data()["status"], "succeeded");
    assert!(stack
        .sim
        .faults()
        .received()
        .iter()
        .any(|r| r.line == format!("api uuid_transfer {call} fsgate_disconnected XML fsgate")));
    let hangup = stack
        .receiver
        .wait_for("call.hangup", WAIT, |d| {
            d.data()["call_id"] == call.as_str()
        })
        .await;
    assert_eq!(hangup.data()["cause"], "NORMAL_CLEARING");
}

#[tokio::test]
async fn click_to_call_and_an_answer_that_times_out() {
    let stack = stack(false).await;
    // The caller's phone rings forever.
    let control = stack.sim.control_addr().unwrap();
    let r = reqwest::Client::new()
        .post(format!("http://{control}/behaviours"))
        .json(&json!({"pattern": "15557770009", "no_answer": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    // A click-to-call that connects: user_data comes back on its webhooks.
    let (status, session) = stack
        .post_json(
            "/api/v1/sessions",
            json!({"caller": "+15557770001", "callee": "+15557770002", "send_sdp": true,
                   "user_data": "crm-4711", "caller_display_name": "Acme Support"}),
        )
        .await;
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();
    let answered = stack
        .receiver
        .wait_for("call.answered", WAIT, |d| {
            d.data()["call_id"] == id.as_str()
        })
        .await;
    assert_eq!(signed(&answered).data()["user_data"], "crm-4711");
    // The webhooks name the parties as the request did, whatever FreeSWITCH's
    // caller profile on the originated leg says (who is shown, who is dialled).
    assert_eq!(
        answered.data()["from"],
        "+15557770001",
        "{}",
        answered.envelope
    );
    assert_eq!(
        answered.data()["to"],
        "+15557770002",
        "{}",
        answered.envelope
    );
    let (_, read) = stack.get_json(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(read["state"], "answered");
    assert_eq!(
        (read["caller"].as_str(), read["callee"].as_str()),
        (Some("+15557770001"), Some("+15557770002"))
    );
    assert_eq!(read["caller_display_name"], "Acme Support");
    let globex = stack
        .as_tenant("globex", Method::GET, &format!("/api/v1/sessions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(globex.status().as_u16(), 404);

    // One that never connects: answering its ringing outbound leg is a
    // FreeSWITCH no-op (+OK, no CHANNEL_ANSWER), so the result is timeout.
    let (status, ringing) = stack
        .post_json(
            "/api/v1/sessions",
            json!({"caller": "+15557770009", "callee": "+15557770002", "send_sdp": true}),
        )
        .await;
    assert_eq!(status, 201);
    let ringing = ringing["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let (status, accepted) = stack
        .post_json(
            &format!("/api/v1/sessions/{ringing}/commands/answer"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    let result = result_of(&stack, &accepted["operation_id"]).await;
    let waited = started.elapsed();
    assert_eq!(signed(&result).data()["status"], "timeout");
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(5),
        "timeout after {waited:?}"
    );
}
