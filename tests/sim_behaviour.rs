//! The simulator beyond the recordings: far-end behaviours (busy, no answer,
//! answer delay), several clients, filters, socket command replies, API
//! commands, the control API, missing applications, ACL, heartbeat shape.

mod sim_support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sim_support::{is_uuid, start_sim, Capture, Ev, RawClient};

const EVENTS: &str = "CHANNEL_CREATE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_PARK CHANNEL_UNPARK CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_DESTROY BACKGROUND_JOB HEARTBEAT";

async fn subscribed(addr: std::net::SocketAddr, fmt: &str) -> RawClient {
    let mut c = RawClient::authed(addr).await;
    let r = c.cmd(&format!("event {fmt} {EVENTS}")).await;
    assert_eq!(
        r.header("Reply-Text"),
        Some(format!("+OK event listener enabled {fmt}").as_str())
    );
    c
}

/// Events until (and including) CHANNEL_DESTROY of `uuid` (or timeout).
async fn events_until_destroy(c: &mut RawClient, uuid: &str) -> Vec<Ev> {
    let mut out = Vec::new();
    while let Some(f) = c.next().await {
        if !f.is_event() {
            continue;
        }
        let e = f.event();
        let done = e.name() == "CHANNEL_DESTROY" && e.get("Unique-ID") == Some(uuid);
        out.push(e);
        if done {
            break;
        }
    }
    out
}

fn names(evs: &[Ev]) -> Vec<String> {
    evs.iter()
        .map(|e| {
            format!(
                "{}:{}",
                e.name(),
                e.get("Unique-ID").map(|u| &u[..4]).unwrap_or("-")
            )
        })
        .collect()
}

#[tokio::test]
async fn heartbeat_has_the_recorded_headers_in_both_formats() {
    let sim = start_sim(|c| c.heartbeat_interval = Duration::from_millis(100)).await;
    for fmt in ["plain", "json"] {
        let cap = Capture::load(&format!("{fmt}-api-basics")).expect("capture");
        let rec = cap
            .frames
            .iter()
            .filter(|f| f.is_event())
            .map(|f| f.event())
            .find(|e| e.name() == "HEARTBEAT")
            .expect("recorded heartbeat");
        let mut c = subscribed(sim.esl_addr(), fmt).await;
        let a = c.next_event("HEARTBEAT").await.expect("heartbeat");
        let b = c.next_event("HEARTBEAT").await.expect("heartbeat");
        assert_eq!(a.names(), rec.names());
        assert_eq!(a.get("Core-UUID"), b.get("Core-UUID"));
        let sa: u64 = a.get("Event-Sequence").unwrap().parse().unwrap();
        let sb: u64 = b.get("Event-Sequence").unwrap().parse().unwrap();
        assert!(sb > sa);
        assert_eq!(a.get("Event-Info"), Some("System Ready"));
        assert!(a.get("Up-Time").unwrap().contains(" milliseconds, "));
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn clients_share_core_uuid_and_sequence_but_not_subscriptions() {
    let sim = start_sim(|_| {}).await;
    let mut plain = subscribed(sim.esl_addr(), "plain").await;
    let mut json = subscribed(sim.esl_addr(), "json").await;
    let mut only_hangup = RawClient::authed(sim.esl_addr()).await;
    only_hangup.cmd("event json CHANNEL_HANGUP").await;
    let uuid = sim.switch().place_inbound("+15557770001", "15550109000");
    let p = plain
        .next_event("CHANNEL_PARK")
        .await
        .expect("park (plain)");
    let j = json.next_event("CHANNEL_PARK").await.expect("park (json)");
    assert_eq!(p.get("Event-Sequence"), j.get("Event-Sequence"));
    assert_eq!(p.get("Core-UUID"), j.get("Core-UUID"));
    assert_eq!(p.get("Unique-ID"), Some(uuid.as_str()));
    assert_eq!(p.get("Caller-Caller-ID-Number"), Some("+15557770001"));
    sim.switch().hangup(
        &uuid,
        fsgate::esl::HangupCause::NORMAL_CLEARING,
        fsgate::sim::core::HangupOrigin::Remote,
    );
    let f = only_hangup.next().await.expect("hangup event");
    let e = f.event();
    assert_eq!(e.name(), "CHANNEL_HANGUP");
    assert!(only_hangup
        .next_within(Duration::from_millis(200))
        .await
        .is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn filters_hide_background_jobs_until_allowed() {
    let sim = start_sim(|_| {}).await;
    let mut c = subscribed(sim.esl_addr(), "plain").await;
    let r = c
        .cmd("filter Unique-ID 00000000-0000-0000-0000-000000000001")
        .await;
    assert_eq!(
        r.header("Reply-Text"),
        Some("+OK filter added. [Unique-ID]=[00000000-0000-0000-0000-000000000001]")
    );
    let r = c.cmd("bgapi status").await;
    let job = r
        .header("Job-UUID")
        .expect("generated job uuid")
        .to_string();
    assert!(is_uuid(&job));
    assert_eq!(
        r.header("Reply-Text"),
        Some(format!("+OK Job-UUID: {job}").as_str())
    );
    assert!(c.next_within(Duration::from_millis(200)).await.is_none());
    c.cmd("filter add Event-Name BACKGROUND_JOB").await;
    c.cmd("bgapi uuid_exists nope").await;
    let e = c.next_event("BACKGROUND_JOB").await.expect("job");
    assert_eq!(e.body.as_deref(), Some("false"));
    assert_eq!(e.get("Job-Command"), Some("uuid_exists"));
    assert_eq!(e.get("Job-Command-Arg"), Some("nope"));
    let r = c.cmd("filter delete all").await;
    assert_eq!(r.header("Reply-Text"), Some("+OK filter deleted. [all][]"));
    sim.shutdown().await;
}

#[tokio::test]
async fn socket_command_replies() {
    let sim = start_sim(|_| {}).await;
    let mut c = RawClient::connect(sim.esl_addr()).await;
    c.next().await.expect("auth/request");
    let r = c.cmd("api status").await;
    assert_eq!(r.header("Reply-Text"), Some("-ERR command not found"));
    let r = c.cmd("auth ClueCon").await;
    assert_eq!(r.header("Reply-Text"), Some("+OK accepted"));
    for (cmd, reply) in [
        ("event plain NOPE", "-ERR no keywords supplied"),
        ("noevents", "-ERR not listening for events"),
        ("event json ALL", "+OK event listener enabled json"),
        ("nixevent HEARTBEAT", "+OK events nixed"),
        ("noevents", "+OK no longer listening for events"),
        ("linger 10", "-ERR not controlling a session"),
        ("nolinger", "-ERR not controlling a session"),
        ("filter Unique-ID", "-ERR invalid syntax"),
        ("nolog", "-ERR not loging"),
        ("log info", "+OK log level info [6]"),
        ("auth ClueCon", "-ERR command not found"),
        (
            "myevents 00000000-0000-0000-0000-000000000000",
            "-ERR invalid uuid",
        ),
        ("bogus", "-ERR command not found"),
    ] {
        let r = c.cmd(cmd).await;
        assert_eq!(r.header("Reply-Text"), Some(reply), "{cmd}");
    }
    let r = c.cmd("exit").await;
    assert_eq!(r.header("Reply-Text"), Some("+OK bye"));
    let n = c.next().await.expect("disconnect notice");
    assert_eq!(n.content_type(), "text/disconnect-notice");
    assert!(c.next().await.is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn api_replies() {
    let sim = start_sim(|_| {}).await;
    let mut c = RawClient::authed(sim.esl_addr()).await;
    let body = |f: sim_support::Frame| f.body_str();
    let uuid = sim.switch().place_inbound("1001", "15550109000");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        body(c.cmd(&format!("api uuid_exists {uuid}")).await),
        "true"
    );
    assert_eq!(
        body(c.cmd(&format!("api uuid_getvar {uuid} nope")).await),
        "_undef_"
    );
    assert_eq!(
        body(
            c.cmd(&format!("api uuid_setvar {uuid} fsgate_x hello world"))
                .await
        ),
        "+OK\n"
    );
    assert_eq!(
        body(c.cmd(&format!("api uuid_getvar {uuid} fsgate_x")).await),
        "hello world"
    );
    assert_eq!(
        body(c.cmd("api uuid_kill").await),
        "-USAGE: <uuid> [cause]\n"
    );
    assert_eq!(
        body(c.cmd(&format!("api uuid_transfer {uuid}")).await),
        "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
    );
    assert_eq!(
        body(c.cmd("api originate sofia/external/1@127.0.0.1").await),
        "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]\n"
    );
    let rows: Value =
        serde_json::from_str(&body(c.cmd("api show channels as json").await)).unwrap();
    assert_eq!(rows["row_count"], 1);
    assert_eq!(rows["rows"][0]["uuid"], uuid.as_str());
    assert_eq!(rows["rows"][0]["application"], "park");
    assert_eq!(rows["rows"][0]["cid_num"], "1001");
    assert_eq!(rows["rows"][0]["callstate"], "RINGING");
    assert_eq!(
        body(c.cmd(&format!("api uuid_answer {uuid}")).await),
        "+OK\n"
    );
    // Unknown cause names are NORMAL_CLEARING, as in FreeSWITCH.
    let mut ev = subscribed(sim.esl_addr(), "json").await;
    assert_eq!(
        body(c.cmd(&format!("api uuid_kill {uuid} not_a_cause")).await),
        "+OK\n"
    );
    let h = ev.next_event("CHANNEL_HANGUP_COMPLETE").await.unwrap();
    assert_eq!(h.get("Hangup-Cause"), Some("NORMAL_CLEARING"));
    assert_eq!(
        body(c.cmd(&format!("api uuid_kill {uuid}")).await),
        "-ERR No such channel!\n"
    );
    assert_eq!(
        body(c.cmd("api show calls as json").await),
        "{\"row_count\": 0}\n"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn busy_far_end_fails_the_originate() {
    let sim = start_sim(|c| {
        c.behaviours.push(fsgate::sim::BehaviourSpec {
            pattern: "^1000$".into(),
            answer_after_ms: None,
            reject: Some("USER_BUSY".into()),
            no_answer: false,
        })
    })
    .await;
    let mut ev = subscribed(sim.esl_addr(), "plain").await;
    let mut c = RawClient::authed(sim.esl_addr()).await;
    let r = c
        .cmd("api originate {origination_uuid=11111111-2222-3333-4444-555555555555}sofia/external/1000@127.0.0.1:5090 &park()")
        .await;
    assert_eq!(r.body_str(), "-ERR USER_BUSY\n");
    let evs = events_until_destroy(&mut ev, "11111111-2222-3333-4444-555555555555").await;
    assert_eq!(
        names(&evs),
        vec![
            "CHANNEL_CREATE:1111",
            "CHANNEL_HANGUP:1111",
            "CHANNEL_HANGUP_COMPLETE:1111",
            "CHANNEL_DESTROY:1111"
        ]
    );
    let hc = &evs[2];
    assert_eq!(hc.get("Hangup-Cause"), Some("USER_BUSY"));
    assert_eq!(hc.get("variable_hangup_cause_q850"), Some("17"));
    assert_eq!(hc.get("variable_sip_term_status"), Some("486"));
    assert_eq!(
        hc.get("variable_proto_specific_hangup_cause"),
        Some("sip:486")
    );
    assert_eq!(
        hc.get("variable_sip_hangup_disposition"),
        Some("recv_refuse")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn far_end_answer_delay_and_no_answer_timeout() {
    let sim = start_sim(|_| {}).await;
    let ctl = sim.control_addr().unwrap();
    let http = reqwest::Client::new();
    for b in [
        json!({"pattern": "^2001$", "answer_after_ms": 300}),
        json!({"pattern": "^2002$", "no_answer": true}),
    ] {
        let r = http
            .post(format!("http://{ctl}/behaviours"))
            .json(&b)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let bad = http
        .post(format!("http://{ctl}/behaviours"))
        .json(&json!({"pattern": "x", "reject": "NOT_A_CAUSE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let list: Value = http
        .get(format!("http://{ctl}/behaviours"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let mut c = RawClient::authed(sim.esl_addr()).await;
    let t = Instant::now();
    let r = c
        .cmd("api originate sofia/external/2001@127.0.0.1 &park()")
        .await;
    assert!(r.body_str().starts_with("+OK "), "{}", r.body_str());
    assert!(t.elapsed() >= Duration::from_millis(300));
    let t = Instant::now();
    let r = c
        .cmd("api originate {originate_timeout=1}sofia/external/2002@127.0.0.1 &park()")
        .await;
    assert_eq!(r.body_str(), "-ERR NO_ANSWER\n");
    assert!(t.elapsed() >= Duration::from_secs(1));
    sim.shutdown().await;
}

#[tokio::test]
async fn missing_application_hangs_up_and_names_it() {
    let sim = start_sim(|_| {}).await;
    let mut ev = subscribed(sim.esl_addr(), "json").await;
    let uuid = sim.switch().place_inbound("1001", "broken");
    let evs = events_until_destroy(&mut ev, &uuid).await;
    let hangup = evs
        .iter()
        .find(|e| e.name() == "CHANNEL_HANGUP")
        .expect("hangup");
    assert_eq!(hangup.get("Hangup-Cause"), Some("DESTINATION_OUT_OF_ORDER"));
    let errs = sim.switch().errors(&uuid);
    assert!(errs.iter().any(|e| e.contains("no_such_app")), "{errs:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn bridge_to_busy_b_leg_hangs_up_a_with_the_cause() {
    let sim = start_sim(|c| {
        c.behaviours.push(fsgate::sim::BehaviourSpec {
            pattern: "^3000$".into(),
            answer_after_ms: None,
            reject: Some("USER_BUSY".into()),
            no_answer: false,
        })
    })
    .await;
    let mut ev = subscribed(sim.esl_addr(), "plain").await;
    let ctl = sim.control_addr().unwrap();
    let r: Value = reqwest::Client::new()
        .post(format!("http://{ctl}/calls"))
        .json(&json!({"from": "+15557770001", "to": "3000"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a = r["uuid"].as_str().unwrap().to_string();
    let evs = events_until_destroy(&mut ev, &a).await;
    let a_hangup = evs
        .iter()
        .find(|e| e.name() == "CHANNEL_HANGUP" && e.get("Unique-ID") == Some(a.as_str()))
        .expect("A hangup");
    assert_eq!(a_hangup.get("Hangup-Cause"), Some("USER_BUSY"));
    assert_eq!(a_hangup.get("variable_DIALSTATUS"), Some("BUSY"));
    let n = names(&evs);
    assert_eq!(
        n.iter().filter(|x| x.starts_with("CHANNEL_CREATE")).count(),
        2
    );
    assert!(!n.iter().any(|x| x.starts_with("CHANNEL_BRIDGE")));
    sim.shutdown().await;
}

#[tokio::test]
async fn bridged_call_shows_in_show_calls_and_control_api() {
    let sim = start_sim(|_| {}).await;
    let mut ev = subscribed(sim.esl_addr(), "json").await;
    let a = sim.switch().place_inbound("sipp", "2000");
    let br = ev.next_event("CHANNEL_BRIDGE").await.expect("bridge");
    let b = br.get("Bridge-B-Unique-ID").unwrap().to_string();
    let mut c = RawClient::authed(sim.esl_addr()).await;
    let rows: Value =
        serde_json::from_str(&c.cmd("api show calls as json").await.body_str()).unwrap();
    assert_eq!(rows["row_count"], 1);
    assert_eq!(rows["rows"][0]["uuid"], a.as_str());
    assert_eq!(rows["rows"][0]["b_uuid"], b.as_str());
    let ctl = sim.control_addr().unwrap();
    let http = reqwest::Client::new();
    let calls: Value = http
        .get(format!("http://{ctl}/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls.as_array().unwrap().len(), 2);
    let one: Value = http
        .get(format!("http://{ctl}/calls/{b}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["bridged_to"], a.as_str());
    assert_eq!(one["variables"]["originator"], a.as_str());
    // B hangs up: A's bridge ends and, with hangup_after_bridge, A hangs up.
    let r = http
        .post(format!("http://{ctl}/calls/{b}/hangup"))
        .json(&json!({"cause": "normal_clearing"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let evs = events_until_destroy(&mut ev, &a).await;
    let n: Vec<String> = names(&evs)
        .into_iter()
        .map(|s| s.split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(
        n,
        vec![
            "CHANNEL_HANGUP",
            "CHANNEL_UNBRIDGE",
            "CHANNEL_EXECUTE_COMPLETE",
            "CHANNEL_HANGUP_COMPLETE",
            "CHANNEL_DESTROY",
            "CHANNEL_HANGUP",
            "CHANNEL_HANGUP_COMPLETE",
            "CHANNEL_DESTROY"
        ]
    );
    assert_eq!(evs[0].get("Unique-ID"), Some(b.as_str()));
    assert_eq!(evs[5].get("Unique-ID"), Some(a.as_str()));
    let missing = http
        .get(format!("http://{ctl}/calls/{a}"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn acl_rejection_is_rude() {
    let sim = start_sim(|c| c.acl = fsgate::sim::Acl::RejectAll).await;
    let mut c = RawClient::connect(sim.esl_addr()).await;
    let f = c.next().await.expect("rejection");
    assert_eq!(f.content_type(), "text/rude-rejection");
    assert_eq!(f.body_str(), "Access Denied, go away.\n");
    let f = c.next().await.expect("notice");
    assert_eq!(f.content_type(), "text/disconnect-notice");
    assert!(c.next().await.is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn dialplan_curl_result_feeds_later_actions() {
    // A tiny HTTP server standing in for fsgate's route endpoint.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = "target=2000";
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    let sim = start_sim(|_| {}).await;
    let mut ev = subscribed(sim.esl_addr(), "json").await;
    let ctl = sim.control_addr().unwrap();
    let r = reqwest::Client::new()
        .post(format!("http://{ctl}/calls"))
        .json(&json!({"from": "1001", "to": "4000",
                      "variables": {"route_url": format!("http://127.0.0.1:{port}/route")}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let park = ev
        .next_event("CHANNEL_PARK")
        .await
        .expect("parked after curl");
    assert_eq!(park.get("variable_curl_response_code"), Some("200"));
    assert_eq!(park.get("variable_curl_response_data"), Some("target=2000"));
    assert_eq!(park.get("variable_routed"), Some("200"));
    sim.shutdown().await;
}

#[tokio::test]
async fn originate_to_an_extension_runs_the_dialplan() {
    let sim = start_sim(|_| {}).await;
    let mut ev = subscribed(sim.esl_addr(), "plain").await;
    let mut c = RawClient::authed(sim.esl_addr()).await;
    let r = c
        .cmd("api originate {origination_caller_id_number=+15550100001}sofia/external/+15557770002@127.0.0.1:5090 fsgate_disconnected XML public")
        .await;
    let body = r.body_str();
    let uuid = body.strip_prefix("+OK ").unwrap().trim().to_string();
    let e = ev.next_event("CHANNEL_EXECUTE").await.unwrap();
    assert_eq!(e.get("Unique-ID"), Some(uuid.as_str()));
    assert_eq!(e.get("Application"), Some("answer"));
    assert_eq!(
        e.get("Caller-Destination-Number"),
        Some("fsgate_disconnected")
    );
    assert_eq!(e.get("Caller-Context"), Some("public"));
    let e = ev.next_event("CHANNEL_EXECUTE").await.unwrap();
    assert_eq!(e.get("Application"), Some("playback"));
    sim.shutdown().await;
}

#[tokio::test]
async fn originate_then_bridge_and_transfer_the_b_leg() {
    let sim = start_sim(|_| {}).await;
    let mut ev = subscribed(sim.esl_addr(), "json").await;
    let mut c = RawClient::authed(sim.esl_addr()).await;
    let r = c
        .cmd("api originate {origination_uuid=aaaaaaaa-0000-4000-8000-000000000001}sofia/external/1001@127.0.0.1 &bridge([origination_uuid=bbbbbbbb-0000-4000-8000-000000000002,fsgate_leg=b]sofia/external/1002@127.0.0.1)")
        .await;
    assert_eq!(r.body_str(), "+OK aaaaaaaa-0000-4000-8000-000000000001\n");
    let br = ev.next_event("CHANNEL_BRIDGE").await.expect("bridged");
    assert_eq!(
        br.get("Unique-ID"),
        Some("aaaaaaaa-0000-4000-8000-000000000001")
    );
    assert_eq!(
        br.get("Bridge-B-Unique-ID"),
        Some("bbbbbbbb-0000-4000-8000-000000000002")
    );
    assert_eq!(
        br.get("Other-Leg-Unique-ID"),
        Some("bbbbbbbb-0000-4000-8000-000000000002")
    );
    let b = sim
        .switch()
        .channel("bbbbbbbb-0000-4000-8000-000000000002")
        .unwrap();
    assert_eq!(b.vars.get("fsgate_leg"), Some("b"));
    assert_eq!(
        b.vars.get("originator"),
        Some("aaaaaaaa-0000-4000-8000-000000000001")
    );
    // -bleg transfers the partner: B leaves the bridge into the dialplan.
    let r = c
        .cmd("api uuid_transfer aaaaaaaa-0000-4000-8000-000000000001 -bleg 15550109000 XML public")
        .await;
    assert_eq!(r.body_str(), "+OK\n");
    let ub = ev.next_event("CHANNEL_UNBRIDGE").await.expect("unbridged");
    assert_eq!(
        ub.get("Unique-ID"),
        Some("aaaaaaaa-0000-4000-8000-000000000001")
    );
    // B parks in the dialplan; the originated A leg had nothing left to run
    // and hangs up (in either order).
    let (mut b_parked, mut a_gone) = (false, false);
    while !(b_parked && a_gone) {
        let f = ev.next().await.expect("events");
        let e = f.event();
        match (e.name(), e.get("Unique-ID")) {
            ("CHANNEL_PARK", Some("bbbbbbbb-0000-4000-8000-000000000002")) => {
                assert_eq!(e.get("Caller-Destination-Number"), Some("15550109000"));
                b_parked = true;
            }
            ("CHANNEL_DESTROY", Some("aaaaaaaa-0000-4000-8000-000000000001")) => a_gone = true,
            ("CHANNEL_DESTROY", _) => panic!("B must live on"),
            _ => {}
        }
    }
    sim.shutdown().await;
}
