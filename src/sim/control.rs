//! The simulator's control HTTP API (axum): the outside world of the switch.
//! Place inbound calls, list and hang up channels from the far side, set far
//! end behaviours, see connected ESL clients (with dropped-event counts),
//! inject faults and read back what clients sent.
//!
//! Translation from HTTP to `core::Switch` / `Faults` / bus calls only.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::behaviour::BehaviourSpec;
use super::channel::Channel;
use super::core::{HangupOrigin, Switch};
use super::exec::parse_cause;
use super::faults::Faults;
use super::server::format_name;

#[derive(Clone)]
struct Ctl {
    sw: Switch,
    faults: Arc<Faults>,
}

/// The router of the control API.
pub fn router(sw: Switch, faults: Arc<Faults>) -> Router {
    Router::new()
        .route("/calls", post(place_call).get(list_calls))
        .route("/calls/{uuid}", get(get_call))
        .route("/calls/{uuid}/hangup", post(hangup_call))
        .route(
            "/behaviours",
            post(add_behaviour)
                .get(list_behaviours)
                .delete(clear_behaviours),
        )
        .route("/clients", get(clients))
        .route("/errors", get(errors))
        .route("/faults/drop-connections", post(drop_connections))
        .route("/faults/stall", post(stall))
        .route("/faults/malformed-frame", post(malformed))
        .route("/faults/stop-reading", post(stop_reading))
        .route("/faults/clear", post(clear_faults))
        .route("/received", get(received).delete(clear_received))
        .with_state(Ctl { sw, faults })
}

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

#[derive(Deserialize)]
struct NewCall {
    from: String,
    to: String,
    /// Extra channel variables (e.g. what SIP X-headers would set).
    #[serde(default)]
    variables: std::collections::BTreeMap<String, String>,
}

fn valid_number(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+*#._-".contains(c))
}

async fn place_call(State(c): State<Ctl>, Json(b): Json<NewCall>) -> Response {
    if !valid_number(&b.from) || !valid_number(&b.to) {
        return err(
            StatusCode::BAD_REQUEST,
            "from and to must be 1-64 of [A-Za-z0-9+*#._-]",
        );
    }
    if b.variables
        .keys()
        .any(|k| k.is_empty() || k.contains(['\n', '\r', ' ', ':']))
    {
        return err(
            StatusCode::BAD_REQUEST,
            "variable names must be non-empty, without spaces or colons",
        );
    }
    let vars: Vec<(String, String)> = b.variables.into_iter().collect();
    let uuid = c.sw.place_inbound_with(&b.from, &b.to, &vars);
    (StatusCode::CREATED, Json(json!({ "uuid": uuid }))).into_response()
}

fn channel_json(sw: &Switch, ch: &Channel) -> Value {
    let vars: serde_json::Map<String, Value> = ch
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "uuid": ch.uuid,
        "name": ch.name,
        "direction": ch.direction,
        "state": ch.running_state,
        "callstate": ch.callstate,
        "answer_state": ch.answer_state,
        "caller_id_name": ch.profile.caller_id_name,
        "caller_id_number": ch.profile.caller_id_number,
        "destination_number": ch.profile.destination_number,
        "context": ch.profile.context,
        "application": ch.current_app.as_ref().map(|a| &a.name),
        "application_data": ch.current_app.as_ref().map(|a| &a.data),
        "bridged_to": ch.partner,
        "hangup_cause": ch.hangup_cause.map(|c| c.name()),
        "errors": sw.errors(&ch.uuid),
        "variables": vars,
    })
}

async fn list_calls(State(c): State<Ctl>) -> Json<Value> {
    let list: Vec<Value> =
        c.sw.channels()
            .iter()
            .map(|ch| channel_json(&c.sw, ch))
            .collect();
    Json(Value::Array(list))
}

async fn get_call(State(c): State<Ctl>, Path(uuid): Path<String>) -> Response {
    match c.sw.channel(&uuid) {
        Some(ch) => Json(channel_json(&c.sw, &ch)).into_response(),
        None => err(StatusCode::NOT_FOUND, "no such channel"),
    }
}

#[derive(Deserialize, Default)]
struct HangupBody {
    #[serde(default)]
    cause: Option<String>,
}

async fn hangup_call(
    State(c): State<Ctl>,
    Path(uuid): Path<String>,
    body: Option<Json<HangupBody>>,
) -> Response {
    let cause = body
        .and_then(|b| b.0.cause)
        .map(|s| parse_cause(&s))
        .unwrap_or(crate::esl::HangupCause::NORMAL_CLEARING);
    if c.sw.hangup(&uuid, cause, HangupOrigin::Remote) {
        Json(json!({"uuid": uuid, "cause": cause.name()})).into_response()
    } else {
        err(
            StatusCode::NOT_FOUND,
            "no such channel (or already hanging up)",
        )
    }
}

async fn add_behaviour(State(c): State<Ctl>, Json(spec): Json<BehaviourSpec>) -> Response {
    let mut b = c.sw.0.behaviours.lock().unwrap_or_else(|e| e.into_inner());
    match b.add(spec.clone()) {
        Ok(()) => (StatusCode::CREATED, Json(json!(spec))).into_response(),
        Err(e) => err(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn list_behaviours(State(c): State<Ctl>) -> Json<Value> {
    let b = c.sw.0.behaviours.lock().unwrap_or_else(|e| e.into_inner());
    Json(json!(b.list()))
}

async fn clear_behaviours(State(c): State<Ctl>) -> StatusCode {
    c.sw.0
        .behaviours
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    StatusCode::NO_CONTENT
}

async fn clients(State(c): State<Ctl>) -> Json<Value> {
    let list: Vec<Value> =
        c.sw.bus()
            .clients()
            .iter()
            .map(|cl| {
                let subs = cl.subs.lock().unwrap_or_else(|e| e.into_inner());
                json!({
                    "id": cl.id,
                    "peer": cl.peer.to_string(),
                    "authenticated": cl.authed.load(Ordering::Relaxed),
                    "format": format_name(subs.format),
                    "events": subs.names(),
                    "filters": subs.filters(),
                    "queued_total": cl.queued.load(Ordering::Relaxed),
                    "dropped_events": cl.dropped.load(Ordering::Relaxed),
                    "slow_reader": cl.dropped.load(Ordering::Relaxed) > 0,
                })
            })
            .collect();
    Json(Value::Array(list))
}

async fn errors(State(c): State<Ctl>) -> Json<Value> {
    Json(json!(c.sw.all_errors()))
}

async fn drop_connections(State(c): State<Ctl>) -> StatusCode {
    c.faults.drop_connections();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize, Default)]
struct Ms {
    #[serde(default)]
    ms: Option<u64>,
}

async fn stall(State(c): State<Ctl>, Json(b): Json<Ms>) -> Response {
    match b.ms {
        Some(ms) => {
            c.faults.stall(Duration::from_millis(ms));
            StatusCode::NO_CONTENT.into_response()
        }
        None => err(StatusCode::BAD_REQUEST, "ms is required"),
    }
}

async fn malformed(State(c): State<Ctl>) -> StatusCode {
    c.faults.malformed_frame();
    StatusCode::NO_CONTENT
}

async fn stop_reading(State(c): State<Ctl>, body: Option<Json<Ms>>) -> StatusCode {
    let ms = body.and_then(|b| b.0.ms);
    c.faults.stop_reading_for(ms.map(Duration::from_millis));
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(c): State<Ctl>) -> StatusCode {
    c.faults.clear();
    StatusCode::NO_CONTENT
}

async fn received(State(c): State<Ctl>) -> Json<Value> {
    Json(json!(c.faults.received()))
}

async fn clear_received(State(c): State<Ctl>) -> StatusCode {
    c.faults.clear_received();
    StatusCode::NO_CONTENT
}
