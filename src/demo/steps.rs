//! The walkthrough itself: a masked-number call, a click-to-call, and the
//! three call-control commands, each step checked against what the API
//! answered, what the simulated phones saw, and which signed webhooks came.
//!
//! It uses only the public REST API (and the simulator to play the phones);
//! it must not reach into the daemon's internals, and every failed check is
//! a [`DemoError`], never a panic.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::receiver::Receiver;
use super::transcript::Transcript;
use super::{DemoError, CONTROL_NUMBER};
use crate::esl::HangupCause;
use crate::sim::core::HangupOrigin;
use crate::sim::SimHandle;

/// How long any one thing may take to happen.
const WAIT: Duration = Duration::from_secs(8);

/// Party A of the masked session.
const A: &str = "+15557770001";
/// Party B of the masked session.
const B: &str = "+15557770002";
/// The click-to-call's caller and callee.
const CALLER: &str = "+15557770011";
const CALLEE: &str = "+15557770012";
/// Who calls the control number.
const CUSTOMER: &str = "+15557770021";
const CUSTOMER_2: &str = "+15557770022";

/// The demo's REST client: every exchange goes to the transcript.
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
    transcript: Transcript,
}

impl Api {
    /// A client for `base` with the tenant's key.
    pub fn new(base: String, key: String, transcript: Transcript) -> Api {
        Api {
            http: reqwest::Client::new(),
            base,
            key,
            transcript,
        }
    }

    /// Waits until `/readyz` says ready (the node is connected).
    pub async fn wait_ready(&self) -> Result<(), DemoError> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DemoError::Check(format!(
                    "the daemon did not become ready within {WAIT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends a request as the demo tenant, prints both sides, and checks the status.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Result<Value, DemoError> {
        self.transcript
            .request(method.as_str(), path, body.as_ref());
        let http_err = |reason: String| DemoError::Http {
            method: method.to_string(),
            path: path.to_owned(),
            reason,
        };
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("X-API-Key", &self.key);
        if let Some(body) = &body {
            req = req.json(body);
        }
        let sent = async {
            let resp = req.send().await?;
            let status = resp.status();
            Ok::<_, reqwest::Error>((status, resp.bytes().await?))
        }
        .await;
        let (status, bytes) = match sent {
            Ok(r) => r,
            Err(e) => {
                self.transcript.end_exchange();
                return Err(http_err(e.to_string()));
            }
        };
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        self.transcript.response(
            status.as_u16(),
            status.canonical_reason().unwrap_or_default(),
            &value,
        );
        if status.as_u16() != expect {
            return Err(DemoError::Status {
                method: method.to_string(),
                path: path.to_owned(),
                expected: expect,
                got: status.as_u16(),
                body: value.to_string(),
            });
        }
        Ok(value)
    }
}

/// Everything the walkthrough uses.
pub struct World<'a> {
    /// The REST client.
    pub api: Api,
    /// The simulator (the phones).
    pub sim: &'a SimHandle,
    /// The webhook receiver.
    pub receiver: &'a Receiver,
    /// The transcript.
    pub transcript: &'a Transcript,
}

fn text<'v>(v: &'v Value, field: &str, what: &str) -> Result<&'v str, DemoError> {
    v[field]
        .as_str()
        .ok_or_else(|| DemoError::Check(format!("{what}: no {field:?} in {v}")))
}

fn expect_eq(what: &str, got: &Value, want: &str) -> Result<(), DemoError> {
    if got.as_str() == Some(want) {
        Ok(())
    } else {
        Err(DemoError::Check(format!(
            "{what}: expected {want:?}, got {got}"
        )))
    }
}

impl World<'_> {
    /// Waits for the leg bridged to `uuid` in the simulator.
    async fn partner(&self, uuid: &str) -> Result<String, DemoError> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(b) = self.sim.switch().partner(uuid) {
                return Ok(b);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DemoError::Check(format!(
                    "call {uuid} was not bridged within {WAIT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn webhook(
        &self,
        kind: &str,
        field: &str,
        value: &str,
    ) -> Result<super::Delivery, DemoError> {
        self.receiver
            .wait_for(kind, WAIT, |d| d[field].as_str() == Some(value))
            .await
    }

    /// Sends a command, checks its 202 envelope and waits for its result.
    async fn command(&self, call: &str, command: &str, body: Value) -> Result<(), DemoError> {
        let accepted = self
            .api
            .call(
                Method::POST,
                &format!("/api/v1/sessions/{call}/commands/{command}"),
                Some(body),
                202,
            )
            .await?;
        let op = text(&accepted, "operation_id", command)?.to_owned();
        let result = self.webhook("command.result", "operation_id", &op).await?;
        expect_eq(
            &format!("command.result of {command}"),
            &result.data()["status"],
            "succeeded",
        )
    }

    /// Places a call to the control number and waits until it is parked
    /// and announced.
    async fn parked_call(&self, from: &str) -> Result<String, DemoError> {
        self.transcript.note(&format!(
            "simulator: {from} calls the control number {CONTROL_NUMBER}"
        ));
        let uuid = self.sim.switch().place_inbound(from, CONTROL_NUMBER);
        self.webhook("call.initiated", "call_id", &uuid).await?;
        self.transcript
            .note(&format!("the call {uuid} is parked, waiting for commands"));
        Ok(uuid)
    }
}

/// Runs every step; returns how many there were.
pub async fn walk(w: &World<'_>) -> Result<usize, DemoError> {
    masked_session(w).await?;
    click_to_call(w).await?;
    answer_and_hang_up(w).await?;
    disconnect(w).await?;
    Ok(4)
}

/// Step 1: a masked session, a call through it, completion.
async fn masked_session(w: &World<'_>) -> Result<(), DemoError> {
    w.transcript
        .heading("1. A masked-number session: A and B talk through one masked number");
    let session = w
        .api
        .call(
            Method::POST,
            "/v1/sessions",
            Some(json!({"party_a": A, "party_b": B, "ttl_minutes": 30})),
            201,
        )
        .await?;
    let r = text(&session, "ref", "the session")?.to_owned();
    let m = text(&session, "masked_number", "the session")?.to_owned();

    w.transcript.note(&format!(
        "simulator: A ({A}) dials the masked number {m}; FreeSWITCH asks GET /v1/dialplan/route and bridges"
    ));
    let a = w.sim.switch().place_inbound(A, &m);
    let b = w.partner(&a).await?;
    let leg = w
        .sim
        .switch()
        .channel(&b)
        .ok_or_else(|| DemoError::Check(format!("the B-leg {b} vanished")))?;
    w.transcript.note(&format!(
        "simulator: B-leg {b} rings {} with caller ID {}",
        leg.profile.callee_id_number, leg.profile.caller_id_number
    ));
    if leg.profile.caller_id_number != m {
        return Err(DemoError::Check(format!(
            "B saw caller ID {}, not the masked number {m}",
            leg.profile.caller_id_number
        )));
    }
    if leg.profile.callee_id_number != B {
        return Err(DemoError::Check(format!(
            "the B-leg went to {}, not to B ({B})",
            leg.profile.callee_id_number
        )));
    }
    w.webhook("session.active", "ref", &r).await?;
    w.webhook("call.answered", "call_id", &a).await?;
    w.transcript.note(&format!(
        "simulator: A and B are talking; B's phone shows {m}, never A's number"
    ));

    w.transcript.note(&format!("simulator: A hangs up ({a})"));
    w.sim
        .switch()
        .hangup(&a, HangupCause::NORMAL_CLEARING, HangupOrigin::Remote);
    w.webhook("session.open", "ref", &r).await?;
    w.webhook("call.hangup", "call_id", &a).await?;

    let read = w
        .api
        .call(Method::GET, &format!("/v1/sessions/{r}"), None, 200)
        .await?;
    expect_eq("the session after the call", &read["state"], "open")?;
    w.api
        .call(
            Method::POST,
            &format!("/v1/sessions/{r}/complete"),
            Some(json!({})),
            200,
        )
        .await?;
    let done = w.webhook("session.completed", "ref", &r).await?;
    expect_eq("session.completed", &done.data()["reason"], "closed")
}

/// Step 2: click-to-call, then hang it up through call control.
async fn click_to_call(w: &World<'_>) -> Result<(), DemoError> {
    w.transcript
        .heading("2. Click-to-call: ring the caller, then the callee, bridge them");
    let session = w
        .api
        .call(
            Method::POST,
            "/api/v1/sessions",
            Some(json!({"caller": CALLER, "callee": CALLEE, "send_sdp": true,
                        "caller_display_name": "Demo Support", "user_data": "demo-1"})),
            201,
        )
        .await?;
    let id = text(&session, "id", "the call session")?.to_owned();
    w.transcript.note(&format!(
        "simulator: {CALLER} rings and answers after {} ms; then {CALLEE} rings and answers",
        super::ANSWER_AFTER.as_millis()
    ));
    w.webhook("call.answered", "call_id", &id).await?;
    let b = w.partner(&id).await?;
    w.transcript
        .note(&format!("simulator: {id} is bridged to {b}"));
    let read = w
        .api
        .call(Method::GET, &format!("/api/v1/sessions/{id}"), None, 200)
        .await?;
    expect_eq("the click-to-call", &read["state"], "answered")?;
    w.command(&id, "hangup", json!({"command_uid": "demo-c2c-hangup"}))
        .await?;
    let hangup = w.webhook("call.hangup", "call_id", &id).await?;
    expect_eq(
        "the click-to-call's hangup",
        &hangup.data()["cause"],
        "NORMAL_CLEARING",
    )
}

/// Step 3a: answer a parked call, then hang it up with a cause.
async fn answer_and_hang_up(w: &World<'_>) -> Result<(), DemoError> {
    w.transcript
        .heading("3a. Call control: answer a parked call, then hang up with a cause");
    let call = w.parked_call(CUSTOMER).await?;
    w.command(&call, "answer", json!({"command_uid": "demo-answer"}))
        .await?;
    w.webhook("call.answered", "call_id", &call).await?;
    w.command(&call, "hangup", json!({"cause": "USER_BUSY"}))
        .await?;
    let hangup = w.webhook("call.hangup", "call_id", &call).await?;
    expect_eq(
        "the parked call's hangup",
        &hangup.data()["cause"],
        "USER_BUSY",
    )
}

/// Step 3b: disconnect another parked call (back to the dialplan, which hangs up).
async fn disconnect(w: &World<'_>) -> Result<(), DemoError> {
    w.transcript
        .heading("3b. Call control: disconnect a parked call (back to the dialplan)");
    let call = w.parked_call(CUSTOMER_2).await?;
    w.command(&call, "disconnect", json!({})).await?;
    w.webhook("call.hangup", "call_id", &call).await?;
    Ok(())
}
