//! The product's `dialplan/` as the simulator runs it, against a stand-in
//! lookup server that answers each way fsgate can: 200 (bridge), 204 (park),
//! 404 (refuse with the named cause), 500 or nothing (temporary failure).
//! The daemon's own route endpoint is tested with the masking domain; this
//! file holds the XML to its protocol.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use fsgate::sim::dialplan::{Action, ChannelVars, Dialplan};

#[derive(Default)]
struct Chan {
    vars: HashMap<String, String>,
    profile: HashMap<String, String>,
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

fn call(caller: &str, destination: &str, url: &str) -> Chan {
    let mut c = Chan::default();
    for (k, v) in [
        ("caller_id_number", caller),
        ("destination_number", destination),
        ("uuid", "0a1b2c3d-0000-4000-8000-000000000001"),
        ("context", "public"),
    ] {
        c.profile.insert(k.into(), v.into());
    }
    c.vars.insert("fsgate_url".into(), url.into());
    c
}

type Seen = Arc<Mutex<Vec<String>>>;

/// A lookup server answering `status` with `body`, recording query strings.
async fn server(status: u16, body: &'static str) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/v1/dialplan/route",
            get(
                move |State(seen): State<Seen>, RawQuery(q): RawQuery| async move {
                    seen.lock().unwrap().push(q.unwrap_or_default());
                    (StatusCode::from_u16(status).unwrap(), body)
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn shipped() -> Dialplan {
    Dialplan::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplan"))
        .expect("dialplan/ loads")
}

fn apps(actions: &[Action]) -> Vec<(String, String)> {
    actions
        .iter()
        .map(|a| (a.application.clone(), a.data.clone()))
        .collect()
}

async fn route(
    status: u16,
    body: &'static str,
    caller: &str,
    dest: &str,
) -> (Vec<(String, String)>, Chan, Seen) {
    let (url, seen) = server(status, body).await;
    let mut chan = call(caller, dest, &url);
    let actions = shipped()
        .hunt("public", &mut chan, &reqwest::Client::new())
        .await
        .expect("the hunt succeeds");
    (apps(&actions), chan, seen)
}

#[tokio::test]
async fn both_contexts_load() {
    let d = shipped();
    assert!(d.has_context("public"));
    assert!(d.has_context("fsgate"));
}

#[tokio::test]
async fn a_200_bridges_to_the_returned_dial_string() {
    let body = "[origination_caller_id_number=+15550100001]sofia/gateway/carrier/+15557770002";
    let (actions, chan, seen) = route(200, body, "+15557770001", "+15550100001").await;
    assert_eq!(
        seen.lock().unwrap()[0],
        "masked=15550100001&caller=15557770001&uuid=0a1b2c3d-0000-4000-8000-000000000001&token="
    );
    assert_eq!(
        chan.vars.get("curl_response_data").map(String::as_str),
        Some(body)
    );
    assert_eq!(
        actions.last().unwrap(),
        &("bridge".to_owned(), "${curl_response_data}".to_owned())
    );
    assert!(actions.contains(&("set".into(), "hangup_after_bridge=true".into())));
}

#[tokio::test]
async fn a_204_parks_for_call_control() {
    let (actions, _, _) = route(204, "", "15557770001", "15550109000").await;
    assert_eq!(actions, [("park".to_owned(), String::new())]);
}

#[tokio::test]
async fn a_404_hangs_up_with_the_named_cause() {
    let (actions, _, _) = route(404, "CALL_REJECTED", "+15557779999", "+15550100001").await;
    assert_eq!(
        actions,
        [("hangup".to_owned(), "${curl_response_data}".to_owned())]
    );
}

#[tokio::test]
async fn a_failed_lookup_is_a_temporary_failure() {
    let (actions, _, _) = route(500, "boom", "+15557770001", "+15550100001").await;
    assert_eq!(
        actions.last().unwrap(),
        &("hangup".to_owned(), "NORMAL_TEMPORARY_FAILURE".to_owned())
    );
    // Nobody listening at all: curl gives code 0.
    let mut chan = call("+15557770001", "+15550100001", "http://127.0.0.1:9");
    let actions = shipped()
        .hunt("public", &mut chan, &reqwest::Client::new())
        .await
        .unwrap();
    assert_eq!(
        chan.vars.get("curl_response_code").map(String::as_str),
        Some("0")
    );
    assert_eq!(apps(&actions).last().unwrap().1, "NORMAL_TEMPORARY_FAILURE");
}

#[tokio::test]
async fn unsafe_caller_ids_ask_as_anonymous() {
    let (_, _, seen) = route(404, "CALL_REJECTED", "John Doe & co", "+15550100001").await;
    assert!(seen.lock().unwrap()[0].starts_with("masked=15550100001&caller=anonymous&uuid="));
}

#[tokio::test]
async fn numbers_that_cannot_be_ours_are_left_to_the_rest_of_the_dialplan() {
    let (url, seen) = server(200, "x").await;
    let mut chan = call("sipp", "2000", &url);
    let actions = shipped()
        .hunt("public", &mut chan, &reqwest::Client::new())
        .await
        .unwrap();
    assert!(actions.is_empty());
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn disconnect_extension_hangs_up() {
    let mut chan = call("x", "fsgate_disconnected", "http://127.0.0.1:9");
    let actions = shipped()
        .hunt("fsgate", &mut chan, &reqwest::Client::new())
        .await
        .unwrap();
    assert_eq!(
        apps(&actions),
        [("hangup".to_owned(), "NORMAL_CLEARING".to_owned())]
    );
}
