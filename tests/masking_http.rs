//! The masked-session REST API and route lookup over real HTTP: the three
//! credential styles, tenant isolation, every input check (with proof that
//! nothing reached FreeSWITCH), listing and completing, the lookup protocol
//! the shipped dialplan relies on, allocation under 1,000 parallel HTTP
//! creates on Redis, and the OpenAPI document.

mod masking_support;
mod support;

use std::collections::HashSet;
use std::sync::Arc;

use masking_support::{world, Options, World, A, ACME_KEY, B, BETA_KEY, CONTROL, M, TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

const U1: &str = "0a1b2c3d-0000-4000-8000-000000000001";

fn pool(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("+1555010{i:04}")).collect()
}

async fn memory_world() -> World {
    world(Options {
        redis: false,
        ..Options::default()
    })
    .await
}

fn error_of(v: &Value) -> (&str, Option<&str>) {
    (
        v["error"]["code"].as_str().unwrap_or("?"),
        v["error"]["field"].as_str(),
    )
}

#[tokio::test]
async fn the_three_credential_styles_and_tenant_isolation() {
    let w = memory_world().await;
    let body = json!({"party_a": A, "party_b": B});
    let styles: [(&str, &str); 3] = [
        ("X-API-Key", ACME_KEY),
        ("Authorization", &format!("Bearer {ACME_KEY}")),
        ("X-App-ID", "acme"),
    ];
    let mut refs = Vec::new();
    for (i, (name, value)) in styles.iter().enumerate() {
        let mut req = w.http.post(w.url("/v1/sessions")).header(*name, *value);
        if *name == "X-App-ID" {
            req = req.header("X-API-Key", ACME_KEY);
        }
        let r = req.json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        if i == 0 {
            assert_eq!(status, 201, "{v}");
            refs.push(v["ref"].as_str().unwrap().to_owned());
        } else {
            // The one-number pool is taken: authenticated, then refused.
            assert_eq!((status, error_of(&v).0), (409, "pool_exhausted"), "{v}");
        }
    }
    let r = w
        .http
        .post(w.url("/v1/sessions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = w
        .http
        .get(w.url("/v1/sessions"))
        .header("X-App-ID", "beta")
        .header("X-API-Key", ACME_KEY)
        .send()
        .await
        .unwrap();
    assert!(matches!(r.status().as_u16(), 401 | 403), "{}", r.status());

    // Another tenant's ref is not found, whatever it tries.
    let sref = &refs[0];
    let beta = |m: Method, p: &str| {
        w.http
            .request(m, w.url(p))
            .header("Authorization", format!("Bearer {BETA_KEY}"))
    };
    for req in [
        beta(Method::GET, &format!("/v1/sessions/{sref}")),
        beta(Method::POST, &format!("/v1/sessions/{sref}/complete")),
        beta(Method::POST, "/v1/calls/originate").json(&json!({"session": sref})),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404);
        let v: Value = r.json().await.unwrap();
        assert_eq!(error_of(&v).0, "not_found");
    }
    let r = beta(Method::GET, "/v1/sessions").send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["sessions"], json!([]));
    assert_eq!(w.state_of(sref).await, "open");
}

#[tokio::test]
async fn create_answers_the_session_and_checks_every_field() {
    let w = world(Options {
        redis: false,
        pool: pool(2),
        ..Options::default()
    })
    .await;
    let (s, v) = w
        .create(json!({"party_a": A, "party_b": B, "metadata": {"order": "A-17"}}))
        .await;
    assert_eq!(s, 201, "{v}");
    let sref = v["ref"].as_str().unwrap();
    assert!(sref.starts_with("ses_") && sref.len() >= 20, "{sref}");
    assert_eq!(v["state"], "open");
    assert_eq!(v["party_a"], A);
    assert_eq!(v["party_b"], B);
    assert_eq!(v["ttl_minutes"], 60, "the tenant's default");
    assert_eq!(v["created_at"], "2026-11-21T10:00:00.000Z");
    assert_eq!(v["expires_at"], "2026-11-21T11:00:00.000Z");
    assert!(v["completed_at"].is_null() && v["completion_reason"].is_null());
    assert_eq!(v["metadata"], json!({"order": "A-17"}));
    assert!(pool(2).contains(&v["masked_number"].as_str().unwrap().to_owned()));
    let (_, again) = w.get_json(&format!("/v1/sessions/{sref}")).await;
    assert_eq!(again, v);

    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            json!({"party_a": "15557770001", "party_b": B}),
            400,
            "bad_request",
            Some("party_a"),
        ),
        (
            json!({"party_a": A, "party_b": "+1555"}),
            400,
            "bad_request",
            Some("party_b"),
        ),
        (
            json!({"party_a": A, "party_b": "+1 555 777 0002"}),
            400,
            "bad_request",
            Some("party_b"),
        ),
        (
            json!({"party_a": A, "party_b": A}),
            400,
            "bad_request",
            Some("party_b"),
        ),
        (
            json!({"party_a": A, "party_b": "+15557770001"}),
            400,
            "bad_request",
            Some("party_b"),
        ),
        (
            json!({"party_a": A, "party_b": B, "ttl_minutes": 0}),
            400,
            "bad_request",
            Some("ttl_minutes"),
        ),
        (
            json!({"party_a": A, "party_b": B, "ttl_minutes": -3}),
            400,
            "bad_request",
            Some("ttl_minutes"),
        ),
        (
            json!({"party_a": A, "party_b": B, "ttl_minutes": 241}),
            422,
            "ttl_above_maximum",
            Some("ttl_minutes"),
        ),
        (
            json!({"party_a": A, "party_b": B, "ttl_minutes": 1.5}),
            400,
            "?",
            None,
        ),
        (
            json!({"party_a": A, "party_b": B, "ttl": 5}),
            400,
            "?",
            Some("ttl"),
        ),
        (json!({"party_a": A}), 400, "?", None),
        (
            json!({"party_a": A, "party_b": B, "metadata": "x"}),
            400,
            "bad_request",
            Some("metadata"),
        ),
    ];
    for (body, status, code, field) in cases {
        let (s, v) = w.create(body.clone()).await;
        assert_eq!(s, status, "{body} → {v}");
        if code != "?" {
            assert_eq!(error_of(&v).0, code, "{body} → {v}");
        }
        if let Some(f) = field {
            assert_eq!(error_of(&v).1, Some(f), "{body} → {v}");
        }
    }
    let (_, v) = w
        .create(json!({"party_a": A, "party_b": B, "ttl_minutes": 500}))
        .await;
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("240"), "names the cap: {message}");
    // The cap itself is fine, and the pool then runs dry.
    let (s, v) = w
        .create(json!({"party_a": A, "party_b": B, "ttl_minutes": 240}))
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["expires_at"], "2026-11-21T14:00:00.000Z");
    let (s, v) = w.create(json!({"party_a": A, "party_b": B})).await;
    assert_eq!((s, error_of(&v).0), (409, "pool_exhausted"), "{v}");
}

/// CR, LF, NUL, commas, braces, quotes and `${` in every string field are
/// refused with 400, and FreeSWITCH never hears of them.
#[tokio::test]
async fn hostile_text_in_any_string_field_is_refused_and_reaches_nothing() {
    let w = memory_world().await;
    let sref = w.session(A, B, None).await["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = w.received();
    let bad = [
        "\r", "\n", "\0", ",", "{", "}", "[", "]", "'", "\"", "${x}", "|", " ",
    ];
    for b in bad {
        let n = format!("+1555777{b}0009");
        for body in [
            json!({"party_a": n, "party_b": B}),
            json!({"party_a": A, "party_b": n}),
        ] {
            let (s, v) = w.create(body.clone()).await;
            assert_eq!(s, 400, "{body} → {v}");
        }
        for body in [
            json!({"session": format!("{sref}{b}")}),
            json!({"session": sref, "first": format!("a{b}")}),
        ] {
            let (s, v) = w.post_json("/v1/calls/originate", body.clone()).await;
            assert_eq!(s, 400, "{body} → {v}");
        }
        let enc: String = url_encode(b);
        for path in [
            format!("/v1/sessions/{sref}{enc}"),
            format!("/v1/sessions?state=open{enc}"),
            format!("/v1/sessions?cursor=1:{sref}{enc}"),
            format!("/v1/sessions?limit=1{enc}"),
        ] {
            let (s, v) = w.get_json(&path).await;
            assert_eq!(s, 400, "{path} → {v}");
        }
        let (s, v) = w
            .post_json(&format!("/v1/sessions/{sref}{enc}/complete"), json!({}))
            .await;
        assert_eq!(s, 400, "{v}");
        for q in [
            format!("masked=1555010000{enc}1&caller=15557770001&uuid={U1}&token={TOKEN}"),
            format!("masked=15550100001&caller=1555777{enc}0001&uuid={U1}&token={TOKEN}"),
            format!("masked=15550100001&caller=15557770001&uuid={U1}{enc}&token={TOKEN}"),
        ] {
            let (s, _, body) = w.lookup(&q).await;
            assert_eq!(s, 400, "{q} → {body}");
            assert!(!body.contains("${"));
        }
    }
    assert_eq!(w.received(), before, "nothing was sent to FreeSWITCH");
    assert_eq!(w.state_of(&sref).await, "open", "no call was tied to it");
    assert!(w.sim.switch().channels().is_empty());
}

fn url_encode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn list_pages_newest_first_and_complete_is_idempotent() {
    let w = world(Options {
        redis: false,
        pool: pool(5),
        ..Options::default()
    })
    .await;
    let mut refs = Vec::new();
    for i in 0..5 {
        w.clock.advance(chrono::Duration::seconds(1));
        let v = w.session(&format!("+1555888000{i}"), B, None).await;
        refs.push(v["ref"].as_str().unwrap().to_owned());
    }
    let (s, first) = w
        .post_json(&format!("/v1/sessions/{}/complete", refs[1]), json!({}))
        .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["state"], "completed");
    assert_eq!(first["completion_reason"], "closed");
    assert_eq!(first["completed_at"], "2026-11-21T10:00:05.000Z");
    w.clock.advance(chrono::Duration::seconds(30));
    let (s, second) = w
        .post_json(&format!("/v1/sessions/{}/complete", refs[1]), json!({}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(second, first, "completing again returns it unchanged");

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/v1/sessions?limit=2".to_owned(),
            Some(c) => format!("/v1/sessions?limit=2&cursor={c}"),
        };
        let (s, v) = w.get_json(&path).await;
        assert_eq!(s, 200, "{v}");
        for item in v["sessions"].as_array().unwrap() {
            seen.push(item["ref"].as_str().unwrap().to_owned());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let newest_first: Vec<String> = refs.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    let (_, v) = w.get_json("/v1/sessions?state=completed").await;
    let completed: Vec<&str> = v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ref"].as_str().unwrap())
        .collect();
    assert_eq!(completed, [refs[1].as_str()]);
    let (_, v) = w.get_json("/v1/sessions?state=open").await;
    assert_eq!(v["sessions"].as_array().unwrap().len(), 4);
    for bad in [
        "?limit=0",
        "?limit=201",
        "?state=done",
        "?cursor=zzz",
        "?page=2",
    ] {
        let (s, v) = w.get_json(&format!("/v1/sessions{bad}")).await;
        assert_eq!(s, 400, "{bad} → {v}");
    }
    let (s, v) = w.get_json("/v1/sessions/ses_doesnotexist").await;
    assert_eq!((s, error_of(&v).0), (404, "not_found"));
    // A completed session's number is free again.
    let v = w.session(A, "+15557770009", None).await;
    assert_eq!(v["masked_number"], first["masked_number"]);
}

#[tokio::test]
async fn the_route_lookup_speaks_the_dialplan_protocol() {
    let w = memory_world().await;
    let s = w.session(A, B, None).await;
    let sref = s["ref"].as_str().unwrap();
    let q = |masked: &str, caller: &str| {
        format!("masked={masked}&caller={caller}&uuid={U1}&token={TOKEN}")
    };

    let (status, ct, body) = w.lookup(&q("15550100001", "15557770001")).await;
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert!(
        body.ends_with(&format!("sofia/gateway/carrier/{B}")),
        "{body}"
    );
    assert!(
        body.starts_with(&format!("[origination_caller_id_number={M},")),
        "{body}"
    );
    assert!(body.contains(&format!("fsgate_session={sref}")));
    assert!(!body.contains("${"), "{body}");
    assert!(
        !body.contains(A),
        "the caller's number never reaches the callee"
    );
    assert_eq!(w.state_of(sref).await, "active");

    // '+' or not, on both numbers.
    let (status, _, body) = w.lookup(&q("%2B15550100001", "%2B15557770002")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with(&format!("/{A}")));
    assert!(!body.contains("${"));

    for (masked, caller, cause) in [
        ("15550100001", "15557779999", "CALL_REJECTED"),
        ("15550100001", "anonymous", "CALL_REJECTED"),
        ("15559999999", "15557770001", "UNALLOCATED_NUMBER"),
        ("15550200001", "15557770001", "UNALLOCATED_NUMBER"),
    ] {
        let (status, ct, body) = w.lookup(&q(masked, caller)).await;
        assert_eq!((status, body.as_str()), (404, cause), "{masked} {caller}");
        assert!(ct.starts_with("text/plain"), "{ct}");
    }
    let control = CONTROL.trim_start_matches('+');
    let (status, _, body) = w.lookup(&q(control, "15557770001")).await;
    assert_eq!((status, body.as_str()), (204, ""));

    // Authenticated: no token, or a wrong one, is refused (the dialplan then
    // fails the call with NORMAL_TEMPORARY_FAILURE).
    for query in [
        format!("masked=15550100001&caller=15557770001&uuid={U1}"),
        format!("masked=15550100001&caller=15557770001&uuid={U1}&token=nope"),
    ] {
        let (status, ct, _) = w.lookup(&query).await;
        assert_eq!(status, 401);
        assert!(ct.starts_with("application/json"));
    }
    // Tenant keys do not open it either.
    let r = w
        .acme(
            Method::GET,
            &format!("/v1/dialplan/route?masked=15550100001&caller=15557770001&uuid={U1}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_parallel_http_creates_on_a_hundred_numbers_with_redis() {
    let w = Arc::new(
        world(Options {
            redis: true,
            pool: pool(100),
            ..Options::default()
        })
        .await,
    );
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let w = w.clone();
            tokio::spawn(async move {
                w.create(json!({"party_a": format!("+1555777{i:04}"), "party_b": "+15559990000"}))
                    .await
            })
        })
        .collect();
    let mut numbers = HashSet::new();
    let (mut created, mut exhausted) = (0, 0);
    for t in tasks {
        let (s, v) = t.await.unwrap();
        match s {
            201 => {
                created += 1;
                let n = v["masked_number"].as_str().unwrap().to_owned();
                assert!(numbers.insert(n.clone()), "{n} allocated twice");
            }
            409 => {
                assert_eq!(error_of(&v).0, "pool_exhausted");
                exhausted += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!((created, exhausted), (100, 900));
    assert_eq!(numbers, pool(100).into_iter().collect::<HashSet<_>>());
}

#[tokio::test]
async fn every_masking_route_is_in_the_openapi_document() {
    let w = memory_world().await;
    let routes = || vec![fsgate::masking::routes(w.masking.clone())];
    let router = fsgate::http::router(w.state.clone(), routes());
    let doc = fsgate::http::openapi(routes());
    let problems = fsgate::http::openapi::audit(&router, &doc).await;
    assert!(problems.is_empty(), "{problems:#?}");
    let json = serde_json::to_value(&doc).unwrap();
    for path in [
        "/v1/sessions",
        "/v1/sessions/{ref}",
        "/v1/sessions/{ref}/complete",
        "/v1/calls/originate",
        "/v1/dialplan/route",
    ] {
        assert!(json["paths"][path].is_object(), "{path} documented");
    }
    let served: Value = w
        .http
        .get(w.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(served["paths"]["/v1/sessions"]["post"].is_object());
    assert!(served["components"]["schemas"]["Session"].is_object());
}
