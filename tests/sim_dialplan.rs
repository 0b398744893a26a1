//! The simulator's XML dialplan and `curl` application, end to end.
//!
//! These tests load `tests/fixtures/dialplan/test.xml` (and small inline
//! dialplans), hunt it with a map-backed channel, and run inline `curl` against a
//! real HTTP server started on a free loopback port. They must not depend on
//! anything outside the process (no network, no FreeSWITCH).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{any, get};
use axum::Router;
use fsgate::esl::cause::HangupCause;
use fsgate::sim::dialplan::{curl, Action, App, ChannelVars, Dialplan, DialplanError};

// ---------------------------------------------------------------- helpers

#[derive(Debug, Default)]
struct Chan {
    vars: HashMap<String, String>,
    profile: HashMap<String, String>,
}

impl Chan {
    fn new(caller: &str, destination: &str) -> Chan {
        let mut profile = HashMap::new();
        for (k, v) in [
            ("caller_id_number", caller),
            ("caller_id_name", "Test Caller"),
            ("destination_number", destination),
            ("uuid", "0a1b2c3d-0000-4000-8000-000000000001"),
            ("context", "public"),
        ] {
            profile.insert(k.to_owned(), v.to_owned());
        }
        Chan {
            vars: HashMap::new(),
            profile,
        }
    }

    fn with_var(mut self, name: &str, value: &str) -> Chan {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

impl ChannelVars for Chan {
    fn variable(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
    fn profile_field(&self, name: &str) -> Option<String> {
        self.profile.get(name).cloned()
    }
    fn set_variable(&mut self, name: &str, value: Option<String>) {
        match value {
            Some(v) => self.vars.insert(name.to_owned(), v),
            None => self.vars.remove(name),
        };
    }
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dialplan")
}

fn fixture() -> Dialplan {
    Dialplan::load_dir(&fixture_dir()).expect("the fixture dialplan loads")
}

fn http() -> reqwest::Client {
    curl::client().expect("reqwest client")
}

fn apps(actions: &[Action], chan: &Chan) -> Vec<App> {
    actions
        .iter()
        .map(|a| a.to_app(chan).expect("every fixture action parses"))
        .collect()
}

/// What the test server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: String,
    user_agent: String,
}

#[derive(Clone, Default)]
struct Server {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn record(&self, path: &str, query: Option<String>, headers: &HeaderMap) {
        let user_agent = headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        self.seen.lock().unwrap().push(Seen {
            path: path.to_owned(),
            query: query.unwrap_or_default(),
            user_agent,
        });
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn route(
    State(s): State<Server>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> (StatusCode, String) {
    s.record("/route", q.clone(), &headers);
    if q.unwrap_or_default().contains("masked=+15550100001&") {
        (StatusCode::OK, "+15557770002".to_owned())
    } else {
        (StatusCode::NOT_FOUND, "no session".to_owned())
    }
}

async fn echo(method: Method, headers: HeaderMap, body: String) -> String {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    format!("{method}|{}|{}|{body}", h("content-type"), h("x-one"))
}

/// Starts the test HTTP server on a free loopback port.
async fn start_server() -> (SocketAddr, Server) {
    let state = Server::default();
    let app = Router::new()
        .route("/route", get(route))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route("/dollar", get(|| async { "{\"script\":\"${oops}\"}" }))
        .route("/big", get(|| async { "a".repeat(100_000) }))
        .route("/echo", any(echo))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    (addr, state)
}

/// A one-context dialplan around `extensions`.
fn inline_dialplan(extensions: &str) -> Dialplan {
    Dialplan::from_xml(&format!(
        "<include><context name=\"t\">{extensions}</context></include>"
    ))
    .unwrap()
}

/// Hunts an extension that runs `curl <data>` inline (after `set`s).
async fn inline_curl(chan: &mut Chan, sets: &[&str], data: &str) -> Vec<Action> {
    let mut xml = String::from("<extension name=\"c\"><condition>");
    for s in sets {
        xml.push_str(&format!(
            "<action application=\"set\" data=\"{s}\" inline=\"true\"/>"
        ));
    }
    xml.push_str(&format!(
        "<action application=\"curl\" data=\"{data}\" inline=\"true\"/></condition></extension>"
    ));
    inline_dialplan(&xml)
        .hunt("t", chan, &http())
        .await
        .unwrap()
}

// ---------------------------------------------------------------- the fixture

#[test]
fn fixture_has_its_contexts() {
    let d = fixture();
    assert!(d.has_context("public"));
    assert!(d.has_context("fsgate"));
    assert!(!d.has_context("default"));
}

#[tokio::test]
async fn masked_number_is_routed_with_inline_curl() {
    let (addr, server) = start_server().await;
    let mut chan = Chan::new("+15557770001", "+15550100001")
        .with_var("fsgate_route_url", &format!("http://{addr}"));
    let actions = fixture().hunt("public", &mut chan, &http()).await.unwrap();

    // Inline actions ran during the hunt; later conditions saw their results.
    assert_eq!(chan.var("fsgate_inbound"), Some("true"));
    assert_eq!(chan.var("fsgate_masked"), Some("+15550100001"));
    assert_eq!(chan.var("curl_response_code"), Some("200"));
    assert_eq!(chan.var("curl_response_data"), Some("+15557770002"));
    assert_eq!(chan.var("curl_method"), None);

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/route");
    assert_eq!(
        seen[0].query,
        "masked=+15550100001&caller=+15557770001&uuid=0a1b2c3d-0000-4000-8000-000000000001"
    );
    assert_eq!(seen[0].user_agent, "freeswitch-curl/1.0");

    // The continue="true" extension's action comes first, then the match.
    let names: Vec<_> = actions
        .iter()
        .map(|a| (a.extension.as_str(), a.application.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("tag_inbound", "export"),
            ("masked_number", "set"),
            ("masked_number", "bridge")
        ]
    );
    // `${}` is left for execution time.
    assert!(actions[2]
        .data
        .starts_with("{origination_caller_id_number=${fsgate_masked},"));
    assert_eq!(
        apps(&actions, &chan),
        [
            App::Export {
                name: "fsgate_node".into(),
                value: Some("sim1".into()),
                local: true
            },
            App::Set {
                name: "effective_caller_id_number".into(),
                value: Some("+15550100001".into())
            },
            App::Bridge(
                "{origination_caller_id_number=+15550100001,fsgate_masked=+15550100001}\
                 sofia/gateway/trunk/+15557770002"
                    .into()
            ),
        ]
    );
}

#[tokio::test]
async fn masked_number_without_session_is_rejected_by_anti_action() {
    let (addr, _server) = start_server().await;
    let mut chan = Chan::new("+15557770001", "15550100002")
        .with_var("fsgate_route_url", &format!("http://{addr}"));
    let actions = fixture().hunt("public", &mut chan, &http()).await.unwrap();
    assert_eq!(chan.var("curl_response_code"), Some("404"));
    assert_eq!(chan.var("curl_response_data"), Some("no session"));
    assert_eq!(
        apps(&actions, &chan),
        [
            App::Export {
                name: "fsgate_node".into(),
                value: Some("sim1".into()),
                local: true
            },
            App::Hangup(HangupCause::CALL_REJECTED),
        ]
    );
}

#[tokio::test]
async fn busy_number_responds_486_before_the_masked_rule() {
    let mut chan = Chan::new("+15557770001", "15550100486");
    let actions = fixture().hunt("public", &mut chan, &http()).await.unwrap();
    assert_eq!(
        apps(&actions, &chan)[1..],
        [App::Respond {
            code: 486,
            reason: "Busy Here".into()
        }]
    );
    assert_eq!(chan.var("curl_response_code"), None, "no curl ran");
}

#[tokio::test]
async fn call_control_number_parks_with_its_capture() {
    let mut chan = Chan::new("+15557770001", "+15550209000");
    let actions = fixture().hunt("public", &mut chan, &http()).await.unwrap();
    assert_eq!(
        apps(&actions, &chan)[1..],
        [
            App::Set {
                name: "fsgate_control_number".into(),
                value: Some("15550209000".into())
            },
            App::Park
        ]
    );
    assert_eq!(
        chan.var("DP_MATCH"),
        Some("ARRAY::+15550209000|:15550209000")
    );
}

#[tokio::test]
async fn transfer_then_disconnected_context() {
    let d = fixture();
    let mut chan = Chan::new("+15557770001", "fsgate");
    let actions = d.hunt("public", &mut chan, &http()).await.unwrap();
    assert_eq!(
        apps(&actions, &chan)[1..],
        [App::Transfer {
            extension: "fsgate_disconnected".into(),
            dialplan: Some("XML".into()),
            context: Some("fsgate".into())
        }]
    );

    let mut chan = Chan::new("+15557770001", "fsgate_disconnected");
    let actions = d.hunt("fsgate", &mut chan, &http()).await.unwrap();
    assert_eq!(
        apps(&actions, &chan),
        [
            App::Answer,
            App::Playback("tone_stream://%(500,500,480,620);loops=3".into()),
            App::Hangup(HangupCause::NORMAL_CLEARING),
        ]
    );
}

#[tokio::test]
async fn break_never_anti_action_then_next_condition() {
    let d = fixture();
    let mut chan = Chan::new("+15557770001", "1000");
    let actions = d.hunt("fsgate", &mut chan, &http()).await.unwrap();
    assert_eq!(
        apps(&actions, &chan),
        [
            App::Set {
                name: "priority".into(),
                value: Some("normal".into())
            },
            App::Sleep(250),
            App::Bridge("user/1000".into()),
        ]
    );
    let mut chan = Chan::new("+15557770001", "1000").with_var("fsgate_tier", "vip");
    let actions = d.hunt("fsgate", &mut chan, &http()).await.unwrap();
    assert_eq!(actions[0].data, "priority=high");
}

#[tokio::test]
async fn unmatched_number_hangs_up_no_route() {
    let mut chan = Chan::new("+15557770001", "999");
    let actions = fixture().hunt("public", &mut chan, &http()).await.unwrap();
    assert_eq!(
        apps(&actions, &chan)[1..],
        [App::Hangup(HangupCause::NO_ROUTE_DESTINATION)]
    );
}

// ---------------------------------------------------------------- curl

#[tokio::test]
async fn curl_timeout_gives_code_zero_quickly() {
    let (addr, _server) = start_server().await;
    let mut chan = Chan::new("1000", "2000").with_var("curl_response_data", "stale");
    let started = Instant::now();
    inline_curl(
        &mut chan,
        &["curl_timeout=1"],
        &format!("http://{addr}/slow"),
    )
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    assert_eq!(chan.var("curl_response_code"), Some("0"));
    assert_eq!(
        chan.var("curl_response_data"),
        None,
        "empty result removes the variable"
    );
}

#[tokio::test]
async fn curl_result_with_dollar_brace_is_not_stored() {
    let (addr, _server) = start_server().await;
    let mut chan = Chan::new("1000", "2000").with_var("curl_response_data", "stale");
    inline_curl(&mut chan, &[], &format!("http://{addr}/dollar")).await;
    assert_eq!(chan.var("curl_response_code"), Some("200"));
    assert_eq!(chan.var("curl_response_data"), None);
}

#[tokio::test]
async fn curl_post_json_headers_and_content_type() {
    let (addr, _server) = start_server().await;
    let mut chan = Chan::new("1000", "2000");
    let data = format!(
        "http://{addr}/echo json post a%20b%26c content-type text/plain append_headers 'X-One: 1'"
    );
    inline_curl(&mut chan, &[], &data).await;
    assert_eq!(chan.var("curl_method"), Some("post"));
    let json: serde_json::Value =
        serde_json::from_str(chan.var("curl_response_data").unwrap()).unwrap();
    assert_eq!(json["exit_code"], "0");
    assert_eq!(json["status_code"], "200");
    assert_eq!(json["body"], "POST|text/plain|1|a b&c");
    assert_eq!(json["version"], "HTTP/1.1");
    assert_eq!(json["phrase"], "OK");
    assert!(json["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["key"] == "content-length"));
}

#[tokio::test]
async fn curl_defaults_and_headers_mode() {
    let (addr, _server) = start_server().await;
    let http = http();
    // POST without content-type: libcurl's form default.
    let out = curl::execute(&format!("http://{addr}/echo post x=1"), None, None, &http).await;
    assert_eq!(
        out.data.as_deref(),
        Some("POST|application/x-www-form-urlencoded|-|x=1")
    );
    // No scheme: http:// is assumed, as libcurl does.
    let out = curl::execute(&format!("{addr}/echo headers"), None, None, &http).await;
    let data = out.data.unwrap();
    assert!(data.starts_with("HTTP/1.1 200 OK\r\n\n"), "{data:?}");
    assert!(data.ends_with("\r\n\n\nGET|-|-|"), "{data:?}");
}

#[tokio::test]
async fn curl_body_is_capped_at_64000_bytes() {
    let (addr, _server) = start_server().await;
    let out = curl::execute(&format!("http://{addr}/big"), None, None, &http()).await;
    assert_eq!(out.response_code, 200);
    assert_eq!(out.exit_code, 23);
    assert_eq!(out.data.map(|d| d.len()), Some(curl::MAX_BYTES));
}

#[tokio::test]
async fn curl_to_a_closed_port_gives_code_zero() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let out = curl::execute(
        &format!("http://{addr}/x"),
        None,
        Some(Duration::from_secs(1)),
        &http(),
    )
    .await;
    assert_eq!((out.response_code, out.exit_code, out.data), (0, 7, None));
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn unknown_application_is_an_error_when_executed() {
    let d = inline_dialplan(
        r#"<extension name="x"><condition><action application="foo" data="bar"/></condition></extension>"#,
    );
    let mut chan = Chan::new("1000", "2000");
    let actions = d.hunt("t", &mut chan, &http()).await.unwrap();
    let err = actions[0].to_app(&chan).unwrap_err();
    assert!(matches!(&err, DialplanError::UnknownApplication(a) if a == "foo"));
    assert_eq!(err.to_string(), "unknown application \"foo\"");
}

#[tokio::test]
async fn unknown_context_is_an_error() {
    let mut chan = Chan::new("1000", "2000");
    let err = fixture()
        .hunt("nowhere", &mut chan, &http())
        .await
        .unwrap_err();
    assert!(matches!(&err, DialplanError::UnknownContext(c) if c == "nowhere"));
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("fsgate-dialplan-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

#[test]
fn malformed_xml_names_file_and_position() {
    let dir = TempDir::new();
    dir.write(
        "broken.xml",
        "<include>\n  <context name=\"a\">\n    <extension>\n</include>\n",
    );
    let err = Dialplan::load_dir(&dir.0).unwrap_err();
    let DialplanError::Xml { file, line, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(file.ends_with("broken.xml"), "{file}");
    assert_eq!(*line, 4);
    assert!(err.to_string().contains("broken.xml:4:"), "{err}");
}

#[test]
fn bad_regex_names_extension_and_expression() {
    let err = Dialplan::from_xml(
        r#"<include><context name="a"><extension name="oops">
             <condition field="destination_number" expression="^(\d+"/>
           </extension></context></include>"#,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("\"oops\"") && text.contains("^(\\\\d+"),
        "{text}"
    );
}

#[tokio::test]
async fn load_dir_merges_files_in_path_order_recursively() {
    let dir = TempDir::new();
    let ext = |name: &str| {
        format!(
            r#"<include><context name="m"><extension name="{name}" continue="true">
                 <condition><action application="log" data="{name}"/></condition>
               </extension></context></include>"#
        )
    };
    dir.write("b.xml", &ext("b"));
    dir.write("a.xml", &ext("a"));
    dir.write("sub/c.xml", &ext("sub-c"));
    dir.write("notes.txt", "<not xml");
    let d = Dialplan::load_dir(&dir.0).unwrap();
    let mut chan = Chan::new("1", "2");
    let order: Vec<String> = d
        .hunt("m", &mut chan, &http())
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.data)
        .collect();
    assert_eq!(order, ["a", "b", "sub-c"]);
    assert!(matches!(
        Dialplan::load_dir(&dir.0.join("missing")),
        Err(DialplanError::Io { .. })
    ));
}

#[test]
fn dialplan_and_hunt_can_cross_threads() {
    fn is_send_sync<T: Send + Sync + Clone>(_: &T) {}
    fn is_send<T: Send>(_: T) {}
    let d = fixture();
    is_send_sync(&d);
    let http = http();
    let mut chan = Chan::new("1", "2");
    is_send(d.hunt("public", &mut chan, &http));
}
