//! The daemon's HTTP layer in-process on port 0, driven with a real HTTP
//! client: the three credential styles and their failures, the error envelope
//! for bad bodies, oversized bodies, unknown routes and wrong methods, the
//! dialplan caller rules, health, readiness (nodes, store, drain), metrics,
//! the OpenAPI document's completeness, and what the logs carry.

mod platform_support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use tower::ServiceExt;

use fsgate::http::{self, openapi, ApiRouter};
use platform_support::*;

async fn daemon() -> Daemon {
    init_log_capture();
    Daemon::start(config(None, 1024)).await
}

async fn envelope(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = resp.json().await.expect("a JSON body");
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    (status, body)
}

/// Asserts the body is exactly the error envelope.
fn assert_envelope(body: &Value, code: &str, field: Option<&str>) {
    let err = body["error"].as_object().expect("error object");
    assert_eq!(
        err.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["code", "field", "message"],
        "{body}"
    );
    assert_eq!(err["code"], code, "{body}");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    match field {
        Some(f) => assert_eq!(err["field"], f, "{body}"),
        None => assert!(err["field"].is_null(), "{body}"),
    }
}

// --- authentication ------------------------------------------------------------------

#[tokio::test]
async fn the_three_credential_styles_authenticate() {
    let d = daemon().await;
    let c = client();
    let url = d.url("/v1/test/whoami");

    let r = c
        .get(&url)
        .header("X-API-Key", ACME_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["tenant"], "acme");

    let r = c.get(&url).bearer_auth(BETA_KEY).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["tenant"], "beta");

    let r = c
        .get(&url)
        .header("X-App-ID", "acme")
        .header("X-API-Key", ACME_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["tenant"], "acme");

    // The same key in both headers is fine; "bearer" is case-insensitive.
    let r = c
        .get(&url)
        .header("X-API-Key", ACME_KEY)
        .header("Authorization", format!("bearer {ACME_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    d.stop().await;
}

#[tokio::test]
async fn every_credential_failure_is_a_401_envelope() {
    let d = daemon().await;
    let c = client();
    let url = d.url("/v1/test/whoami");
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("missing", vec![]),
        ("wrong key", vec![("X-API-Key", "nope".into())]),
        (
            "wrong bearer",
            vec![("Authorization", "Bearer nope".into())],
        ),
        ("empty key", vec![("X-API-Key", "".into())]),
        (
            "basic scheme",
            vec![("Authorization", format!("Basic {ACME_KEY}"))],
        ),
        (
            "app id of another tenant",
            vec![("X-App-ID", "beta".into()), ("X-API-Key", ACME_KEY.into())],
        ),
        (
            "unknown app id",
            vec![
                ("X-App-ID", "nobody".into()),
                ("X-API-Key", ACME_KEY.into()),
            ],
        ),
        ("app id without key", vec![("X-App-ID", "acme".into())]),
        (
            "two different keys",
            vec![
                ("X-API-Key", ACME_KEY.into()),
                ("Authorization", format!("Bearer {BETA_KEY}")),
            ],
        ),
    ];
    for (name, headers) in cases {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(k, HeaderValue::from_str(&v).unwrap());
        }
        let r = c.get(&url).headers(map).send().await.unwrap();
        assert!(
            r.headers().contains_key("www-authenticate"),
            "{name}: no WWW-Authenticate"
        );
        let (status, body) = envelope(r).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_envelope(&body, "unauthorized", None);
        let text = body.to_string();
        assert!(
            !text.contains(ACME_KEY) && !text.contains(BETA_KEY),
            "{name}: {text}"
        );
    }
    d.stop().await;
}

// --- bodies, routes, methods -------------------------------------------------------------

#[tokio::test]
async fn bad_bodies_are_400_envelopes_naming_the_field() {
    let d = daemon().await;
    let c = client();
    let url = d.url("/v1/test/echo");
    let post = |body: &'static str| {
        c.post(&url)
            .header("X-API-Key", ACME_KEY)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };

    let r = post(r#"{"caller":"+15557770001","legs":[{"number":"+1"}]}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    for (body, code, field) in [
        (r#"{"caller": "#, "invalid_json", None),
        ("not json", "invalid_json", None),
        (
            r#"{"caller":"x","calee":"y"}"#,
            "unknown_field",
            Some("calee"),
        ),
        (r#"{"caller":5}"#, "invalid_type", Some("caller")),
        (
            r#"{"caller":"x","ttl_minutes":"soon"}"#,
            "invalid_type",
            Some("ttl_minutes"),
        ),
        (
            r#"{"caller":"x","ttl_minutes":-5}"#,
            "invalid_value",
            Some("ttl_minutes"),
        ),
        (r#"{"ttl_minutes":5}"#, "missing_field", Some("caller")),
        (
            r#"{"caller":"x","legs":[{"number":7}]}"#,
            "invalid_type",
            Some("legs[0].number"),
        ),
        (
            r#"{"caller":"x","legs":[{"nummer":"7"}]}"#,
            "unknown_field",
            Some("legs[0].nummer"),
        ),
    ] {
        let (status, env) = envelope(post(body).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {env}");
        assert_envelope(&env, code, field);
    }

    // Not JSON at all.
    let r = c
        .post(&url)
        .header("X-API-Key", ACME_KEY)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("caller=x")
        .send()
        .await
        .unwrap();
    let (status, env) = envelope(r).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_envelope(&env, "unsupported_media_type", None);

    // Authentication comes before the body.
    let r = c.post(&url).body("{").send().await.unwrap();
    assert_eq!(r.status(), 401);
    d.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_envelope() {
    let d = daemon().await; // max_body_bytes = 1024
    let c = client();
    let big = format!(r#"{{"caller":"{}"}}"#, "9".repeat(4096));
    let r = c
        .post(d.url("/v1/test/echo"))
        .header("X-API-Key", ACME_KEY)
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let (status, env) = envelope(r).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_envelope(&env, "payload_too_large", None);
    d.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_the_envelope() {
    let d = daemon().await;
    let c = client();
    let (status, env) = envelope(c.get(d.url("/v1/nope")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&env, http::ROUTE_NOT_FOUND, None);

    let r = c.delete(d.url("/healthz")).send().await.unwrap();
    let allow = r.headers().get("allow").cloned();
    let (status, env) = envelope(r).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_envelope(&env, "method_not_allowed", None);
    assert!(allow.is_some_and(|a| a.to_str().unwrap().contains("GET")));

    let r = c
        .get(d.url("/v1/test/echo"))
        .header("X-API-Key", ACME_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    d.stop().await;
}

// --- operations ----------------------------------------------------------------------------

#[tokio::test]
async fn healthz_answers_ok() {
    let d = daemon().await;
    let r = client().get(d.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status":"ok"}));
    d.stop().await;
}

#[tokio::test]
async fn readyz_follows_nodes_store_and_drain() {
    let d = daemon().await;
    let c = client();
    let ready = || async {
        let r = c.get(d.url("/readyz")).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };

    // No node connected yet.
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["store"]["status"], "ok");
    assert_eq!(body["nodes"][0]["name"], "fs1");
    assert_eq!(body["nodes"][0]["state"], "connecting");
    assert_eq!(body["nodes"][0]["error"], "connection refused");

    // One of two connected is enough.
    d.nodes.set("fs2", connected());
    let (status, body) = ready().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["nodes"][1]["state"], "connected");
    assert!(body["nodes"][1]["connected_for_s"].is_u64());

    // The store goes away, and comes back.
    d.store.set_up(false);
    let (status, body) = ready().await;
    assert_eq!(status, 503);
    assert_eq!(body["store"]["status"], "unavailable");
    let r = c
        .get(d.url("/v1/test/store"))
        .header("X-API-Key", ACME_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("retry-after").unwrap(), "1");
    let (status, env) = envelope(r).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_envelope(&env, "store_unavailable", None);
    assert!(!env.to_string().contains("connection refused"), "{env}");
    d.store.set_up(true);
    assert_eq!(ready().await.0, 200);

    // A node fails for good; the other still carries readiness.
    d.nodes.set(
        "fs1",
        fsgate::esl::node::NodeState::Failed {
            error: "password refused".into(),
        },
    );
    let (status, body) = ready().await;
    assert_eq!(status, 200);
    assert_eq!(body["nodes"][0]["state"], "failed");

    // Draining: not ready, and originate-type requests are refused.
    let originate = || {
        c.post(d.url("/v1/test/originate"))
            .header("X-API-Key", ACME_KEY)
            .send()
    };
    assert_eq!(originate().await.unwrap().status(), 202);
    d.state.drain.start();
    let (status, body) = ready().await;
    assert_eq!(status, 503);
    assert_eq!(body["draining"], true);
    let (status, env) = envelope(originate().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_envelope(&env, "draining", None);
    // Reads still work while draining.
    let r = c
        .get(d.url("/v1/test/whoami"))
        .header("X-API-Key", ACME_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    d.stop().await;
}

#[tokio::test]
async fn metrics_expose_requests_by_route_template_and_status() {
    let d = daemon().await;
    let c = client();
    c.get(d.url("/healthz")).send().await.unwrap();
    c.get(d.url("/v1/test/whoami")).send().await.unwrap(); // 401
    c.get(d.url("/no/such/route/12345")).send().await.unwrap();
    let r = c.get(d.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for needle in [
        "# TYPE fsgate_http_requests_total counter",
        r#"fsgate_http_requests_total{method="GET",route="/healthz",status="200"}"#,
        r#"fsgate_http_requests_total{method="GET",route="/v1/test/whoami",status="401"}"#,
        r#"route="unmatched",status="404""#,
        "# TYPE fsgate_http_request_duration_seconds histogram",
        r#"fsgate_http_request_duration_seconds_bucket{method="GET",route="/healthz",le="0.002"}"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    // Raw paths never become label values.
    assert!(!text.contains("12345"));
    d.stop().await;
}

// --- dialplan callers ----------------------------------------------------------------------

#[tokio::test]
async fn dialplan_caller_with_a_token() {
    init_log_capture();
    let d = Daemon::start(config(Some(DIALPLAN_TOKEN), 1024)).await;
    let c = client();
    let url = d.url("/v1/test/dialplan");
    let r = c
        .get(&url)
        .header("X-Dialplan-Token", DIALPLAN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["by"], "Token");
    let r = c
        .get(format!(
            "{url}?masked=%2B15550100001&token={DIALPLAN_TOKEN}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Loopback alone is not enough once a token is configured.
    for r in [
        c.get(&url).send().await.unwrap(),
        c.get(&url)
            .header("X-Dialplan-Token", "wrong")
            .send()
            .await
            .unwrap(),
        c.get(format!("{url}?token=wrong")).send().await.unwrap(),
        // A tenant key is not a dialplan token.
        c.get(&url)
            .header("X-API-Key", ACME_KEY)
            .send()
            .await
            .unwrap(),
    ] {
        let (status, env) = envelope(r).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_envelope(&env, "unauthorized", None);
    }
    d.stop().await;
}

#[tokio::test]
async fn dialplan_caller_without_a_token_is_loopback_or_allow_listed() {
    let d = daemon().await;
    // Over real TCP from 127.0.0.1.
    let r = client()
        .get(d.url("/v1/test/dialplan"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["by"], "Address");

    assert_eq!(
        probe(d.router.clone(), Some("[::1]:5000")).await.status(),
        200
    );
    assert_eq!(
        probe(d.router.clone(), Some("[::ffff:127.0.0.1]:5000"))
            .await
            .status(),
        200
    );
    let r = probe(d.router.clone(), Some("10.0.0.5:5000")).await;
    assert_eq!(r.status(), 403);
    let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
    let env: Value = serde_json::from_slice(&body).unwrap();
    assert_envelope(&env, "forbidden", None);
    assert_eq!(probe(d.router.clone(), None).await.status(), 403);
    d.stop().await;

    // With an allow-list.
    let mut cfg = config(None, 1024);
    cfg.http.dialplan_allow = vec!["10.0.0.0/24".into()];
    let d = Daemon::start(cfg).await;
    assert_eq!(
        probe(d.router.clone(), Some("10.0.0.5:5000"))
            .await
            .status(),
        200
    );
    assert_eq!(
        probe(d.router.clone(), Some("10.0.1.5:5000"))
            .await
            .status(),
        403
    );
    d.stop().await;
}

async fn probe(router: axum::Router, peer: Option<&str>) -> axum::response::Response {
    let mut req = Request::get("/v1/test/dialplan")
        .body(Body::empty())
        .unwrap();
    if let Some(peer) = peer {
        let addr: SocketAddr = peer.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    router.oneshot(req).await.unwrap()
}

// --- OpenAPI ----------------------------------------------------------------------------------

#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_the_reverse() {
    let d = daemon().await;
    let doc = http::openapi(vec![test_routes()]);
    let paths = openapi::router_paths(&d.router).expect("router paths");
    for p in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/test/echo",
    ] {
        assert!(paths.contains(p), "{p} not listed in {paths:?}");
    }
    let problems = openapi::audit(&d.router, &doc).await;
    assert!(problems.is_empty(), "{problems:#?}");

    // The served document is the same one.
    let served: Value = client()
        .get(d.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(served["openapi"].as_str().unwrap().starts_with("3."));
    let served_paths: Vec<&String> = served["paths"].as_object().unwrap().keys().collect();
    for p in &paths {
        assert!(served_paths.contains(&p), "{p} not served");
    }
    assert!(served["paths"]["/v1/test/echo"]["post"]["requestBody"].is_object());
    assert_eq!(
        served["paths"]["/v1/test/echo"]["post"]["responses"]["default"]["content"]
            ["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorEnvelope"
    );
    assert!(served["components"]["schemas"]["EchoBody"].is_object());
    assert!(served["components"]["schemas"]["Leg"].is_object());
    // Operations need no credentials; tenant routes inherit the three styles.
    assert_eq!(served["paths"]["/healthz"]["get"]["security"], json!([{}]));
    assert!(served["paths"]["/v1/test/whoami"]["get"]["security"].is_null());
    assert_eq!(served["security"].as_array().unwrap().len(), 3);
    d.stop().await;
}

#[tokio::test]
async fn the_audit_catches_an_undocumented_route() {
    init_log_capture();
    async fn hidden() -> &'static str {
        "hidden"
    }
    let plain: axum::Router<http::AppState> =
        axum::Router::new().route("/v1/hidden", axum::routing::get(hidden).post(hidden));
    let extra = vec![ApiRouter::from(plain), test_routes()];
    let d = Daemon::start(config(None, 1024)).await;
    let router = http::router(d.state.clone(), extra);
    let doc = http::openapi(vec![test_routes()]);
    let problems = openapi::audit(&router, &doc).await;
    assert_eq!(
        problems,
        vec![
            "GET /v1/hidden is routed but not in the OpenAPI document".to_string(),
            "POST /v1/hidden is routed but not in the OpenAPI document".to_string(),
        ]
    );
    // And a documented operation that is not routed.
    let router = http::router(d.state.clone(), Vec::<ApiRouter>::new());
    let problems = openapi::audit(&router, &doc).await;
    assert!(
        problems.contains(&"POST /v1/test/echo is documented but not routed".to_string()),
        "{problems:#?}"
    );
    d.stop().await;
}

// --- logs --------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<Captured> = OnceLock::new();

/// Every test of this binary logs into one buffer, at TRACE.
fn init_log_capture() -> Captured {
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        captured
    })
    .clone()
}

#[tokio::test]
async fn request_logs_carry_route_status_and_tenant_but_never_keys() {
    let logs = init_log_capture();
    let d = Daemon::start(config(Some(DIALPLAN_TOKEN), 1024)).await;
    let c = client();
    let secret_key = "never-logged-key-7f3a";
    c.get(d.url("/v1/test/whoami"))
        .header("X-API-Key", ACME_KEY)
        .send()
        .await
        .unwrap();
    c.get(d.url("/v1/test/whoami"))
        .bearer_auth(secret_key)
        .send()
        .await
        .unwrap();
    c.get(d.url("/v1/test/dialplan?token=never-logged-token-9c1d"))
        .send()
        .await
        .unwrap();
    d.stop().await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("route=/v1/test/whoami") && l.contains("tenant=acme"))
        .unwrap_or_else(|| panic!("no request line with the tenant in\n{text}"));
    assert!(
        line.contains("status=200") && line.contains("method=GET"),
        "{line}"
    );
    assert!(text.contains("status=401"), "{text}");
    for secret in [
        ACME_KEY,
        secret_key,
        "never-logged-token-9c1d",
        DIALPLAN_TOKEN,
    ] {
        assert!(!text.contains(secret), "{secret} logged:\n{text}");
    }
}
