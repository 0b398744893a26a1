//! The call-session and call-control endpoints over HTTP (the platform's
//! router, auth and error envelope) against the simulator: status codes,
//! bodies, every credential style, 400s naming the field, 404 for another
//! tenant, 409 for a reused key, and the OpenAPI document.

mod control_support;

use control_support::{start, until, ACME_KEY, CONTROL, OTHER_KEY};
use serde_json::{json, Value};

async fn body(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn click_to_call_over_http() {
    let env = start(vec![]).await;
    let http = env.http().await;
    let (status, session) = body(
        http.post(ACME_KEY, "/api/v1/sessions")
            .json(&json!({
                "caller": "+15557770001", "callee": "+15557770002", "send_sdp": true,
                "caller_display_name": "Acme Support", "user_data": "crm-42",
                "additional_header": "ANSWER_MODE", "header_direction": "CALLEE"
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();
    assert_eq!(session["state"], "ringing");
    assert_eq!(session["caller_display_name"], "Acme Support");
    assert_eq!(session["user_data"], "crm-42");

    let (status, read) = body(
        http.get(ACME_KEY, &format!("/api/v1/sessions/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(read["id"], id.as_str());
    let (status, err) = body(
        http.get(OTHER_KEY, &format!("/api/v1/sessions/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "another tenant's call");
    assert_eq!(err["error"]["code"], "not_found");
    let (status, page) = body(
        http.client
            .get(http.url("/api/v1/sessions?limit=10"))
            .bearer_auth(ACME_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"][0]["id"], id.as_str());
    let (status, err) = body(
        http.get(ACME_KEY, "/api/v1/sessions?limit=0")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["field"].clone()),
        (400, json!("limit"))
    );
}

#[tokio::test]
async fn bad_create_requests_name_the_field() {
    let env = start(vec![]).await;
    let http = env.http().await;
    let base = json!({"caller": "+15557770001", "callee": "+15557770002", "send_sdp": true});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases = [
        (without("send_sdp"), 400, "send_sdp"),
        (without("caller"), 400, "caller"),
        (with("calee", json!("1")), 400, "calee"),
        (with("caller", json!("1".repeat(257))), 400, "caller"),
        (
            with("caller_display_name", json!("a\r\nX-Evil: 1")),
            400,
            "caller_display_name",
        ),
        (with("trunk", json!("")), 400, "trunk"),
        (
            with("rewrite_from", json!("12345678901234567")),
            400,
            "rewrite_from",
        ),
        (with("rewrite_pai", json!("1,2")), 400, "rewrite_pai"),
        (with("rewrite_rpi", json!("${x}")), 400, "rewrite_rpi"),
        (with("user_data", json!("{\"a\":1}")), 400, "user_data"),
        (with("target", json!("a".repeat(129))), 400, "target"),
        (
            with("target_instance_id", json!("a b")),
            400,
            "target_instance_id",
        ),
        (
            with("target_extension_number", json!("1'")),
            400,
            "target_extension_number",
        ),
        (
            with("additional_header", json!("ANSWER")),
            400,
            "additional_header",
        ),
        (
            with("header_direction", json!("BOTH")),
            400,
            "header_direction",
        ),
        (with("send_sdp", json!(false)), 422, "send_sdp"),
    ];
    for (req, status, field) in cases {
        let (got, err) = body(
            http.post(ACME_KEY, "/api/v1/sessions")
                .json(&req)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got, status, "{field}: {err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    assert!(env.received("bgapi originate").is_empty());
    let (status, _) = body(
        http.client
            .post(http.url("/api/v1/sessions"))
            .json(&base)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn commands_over_http() {
    let env = start(vec![]).await;
    let http = env.http().await;
    let call = env.parked_call("+15557770001", CONTROL).await;
    let answer = format!("/api/v1/sessions/{call}/commands/answer");
    let (status, accepted) = body(
        http.client
            .post(http.url(&answer))
            .header("X-App-ID", "acme")
            .header("X-API-Key", ACME_KEY)
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "in_progress");
    assert_eq!(accepted["timeout_ms"], 2000);
    let op = accepted["operation_id"].as_str().unwrap().to_owned();
    let done = until("operation succeeded", async || {
        let (_, o) = body(
            http.get(ACME_KEY, &format!("/api/v1/operations/{op}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        (o["status"] == "succeeded").then_some(o)
    })
    .await;
    assert_eq!(done["command"], "answer");
    assert_eq!(done["call_id"], call.as_str());
    let (status, _) = body(
        http.get(OTHER_KEY, &format!("/api/v1/operations/{op}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);

    // An empty body is `{}`.
    let disconnect = format!("/api/v1/sessions/{call}/commands/disconnect");
    let hangup = format!("/api/v1/sessions/{call}/commands/hangup");
    let cases = [
        (&hangup, json!({"cause": "user_busy"}), 400, Some("cause")),
        (&hangup, json!({"cause": "NOPE"}), 400, Some("cause")),
        (
            &hangup,
            json!({"cause": "A".repeat(65)}),
            400,
            Some("cause"),
        ),
        (
            &hangup,
            json!({"command_uid": "a/b"}),
            400,
            Some("command_uid"),
        ),
        (&hangup, json!({"casue": "USER_BUSY"}), 400, Some("casue")),
        (
            &disconnect,
            json!({"cause": "USER_BUSY"}),
            400,
            Some("cause"),
        ),
        (
            &answer,
            json!({"command_uid": "x".repeat(129)}),
            400,
            Some("command_uid"),
        ),
    ];
    for (path, req, status, field) in cases {
        let (got, err) = body(http.post(ACME_KEY, path).json(&req).send().await.unwrap()).await;
        assert_eq!(got, status, "{path} {req}: {err}");
        assert_eq!(err["error"]["field"].as_str(), field, "{err}");
    }
    let (status, err) = body(
        http.post(OTHER_KEY, &hangup)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let (status, _) = body(
        http.post(ACME_KEY, "/api/v1/sessions/not-a-uuid/commands/hangup")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);

    let busy = json!({"command_uid": "hup-1", "cause": "USER_BUSY"});
    let (status, first) = body(
        http.post(ACME_KEY, &hangup)
            .json(&busy)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202);
    let (status, again) = body(
        http.post(ACME_KEY, &hangup)
            .json(&busy)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(again["operation_id"], first["operation_id"]);
    let (status, err) = body(
        http.post(ACME_KEY, &hangup)
            .json(&json!({"command_uid": "hup-1", "cause": "CALL_REJECTED"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "conflict");
    assert_eq!(err["error"]["field"], "command_uid");
    assert_eq!(env.received("api uuid_kill").len(), 1);
}

#[tokio::test]
async fn the_openapi_document_covers_the_routes() {
    let env = start(vec![]).await;
    let http = env.http().await;
    let (status, doc) = body(
        http.client
            .get(http.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    for (path, method) in [
        ("/api/v1/sessions", "get"),
        ("/api/v1/sessions", "post"),
        ("/api/v1/sessions/{id}", "get"),
        ("/api/v1/sessions/{uuid}/commands/answer", "post"),
        ("/api/v1/sessions/{uuid}/commands/hangup", "post"),
        ("/api/v1/sessions/{uuid}/commands/disconnect", "post"),
        ("/api/v1/operations/{id}", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    for schema in [
        "CreateCallRequest",
        "CallSession",
        "Accepted",
        "HangupRequest",
        "Operation",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    let parsed: utoipa::openapi::OpenApi = serde_json::from_value(doc).unwrap();
    let problems = fsgate::http::openapi::audit(&http.router, &parsed).await;
    assert!(problems.is_empty(), "{problems:#?}");
}
