//! The real-switch tier: the project's `freeswitch-conf/` and `dialplan/`
//! loaded by a real FreeSWITCH 1.11, and the daemon driving it with real SIP
//! calls from the tests' own user agents, all inside a loopback-only network
//! namespace. `scripts/real-switch.sh` builds and runs it (the test command
//! does when a FreeSWITCH launcher is there); see `real_switch_support`.
//!
//! What the simulator cannot show is checked here: that FreeSWITCH starts on
//! the shipped files, what the SIP parties really receive (caller IDs,
//! headers, response codes), and that the daemon's commands and its
//! reconnection behave on the real Event Socket.

mod real_switch_support;
mod support;

use std::path::PathBuf;

use real_switch_support::freeswitch::{self, FreeSwitch};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The operator's install (freeswitch-conf/README.md: install.sh) on the base
/// configuration starts without a single error line, with every module
/// fsgate needs, the carrier gateway and the Event Socket on the vars' password.
#[test]
fn the_switch_starts_clean_with_the_shipped_files() {
    let fs = freeswitch::shared();
    assert_eq!(
        fs.errors_outside_calls(),
        Vec::<String>::new(),
        "errors at start-up"
    );
    for module in [
        "mod_event_socket",
        "mod_sofia",
        "mod_commands",
        "mod_dptools",
        "mod_curl",
        "mod_dialplan_xml",
    ] {
        let answer = freeswitch::api(&format!("module_exists {module}")).unwrap();
        assert_eq!(answer.trim(), "true", "{module}");
    }
    let gw = freeswitch::api("sofia status gateway carrier").unwrap();
    assert!(gw.contains("127.0.0.1:5090"), "carrier gateway: {gw}");
    let url = freeswitch::api("global_getvar fsgate_url").unwrap();
    assert_eq!(url.trim(), "http://127.0.0.1:8080");
    // The README's own instructions are the script's: it names install.sh.
    let readme = std::fs::read_to_string(repo().join("freeswitch-conf/README.md")).unwrap();
    assert!(
        readme.contains("install.sh"),
        "freeswitch-conf/README.md must tell operators to run install.sh"
    );
}

/// docker/: the entrypoint's install on the base configuration, with the
/// environment compose gives the freeswitch service, starts clean too (in a
/// namespace of its own, so that it has the same ports).
#[test]
fn the_docker_entrypoint_conf_starts_clean() {
    let dir = freeswitch::work_dir().join("docker");
    let conf = freeswitch::copy_base_conf(&dir);
    // The mounts compose.yaml gives the container under /fsgate.
    let compose = std::fs::read_to_string(repo().join("docker/compose.yaml")).unwrap();
    let src = dir.join("fsgate");
    std::fs::create_dir_all(&src).unwrap();
    for (mount, from) in [
        ("/fsgate/freeswitch-conf", "freeswitch-conf"),
        ("/fsgate/dialplan", "dialplan"),
        (
            "/fsgate/vars.fsgate.xml",
            "docker/freeswitch/vars.fsgate.xml",
        ),
    ] {
        assert!(
            compose.contains(mount),
            "compose.yaml no longer mounts {mount}"
        );
        let link = src.join(mount.trim_start_matches("/fsgate/"));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(repo().join(from), link).unwrap();
    }
    let env = support::compose::resolved_environment("freeswitch");
    let mut script_env: Vec<(&str, &str)> =
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (conf_s, src_s) = (
        conf.to_str().unwrap().to_owned(),
        src.to_str().unwrap().to_owned(),
    );
    script_env.push(("FSGATE_CONF_DIR", &conf_s));
    script_env.push(("FSGATE_SRC_DIR", &src_s));
    freeswitch::run_script(
        &repo().join("docker/freeswitch/fsgate-entrypoint.sh"),
        &[],
        &script_env,
    );

    let ns = "fsgate-test-docker";
    let fs = FreeSwitch::spawn_with_env(&conf, &dir, Some(ns), &env);
    fs.wait_log("Started Profile external");
    fs.wait_log("Socket up listening");
    let password = &env
        .iter()
        .find(|(k, _)| k == "FSGATE_ESL_PASSWORD")
        .unwrap()
        .1;
    let gw = freeswitch::cli_in(ns, password, "sofia status gateway carrier");
    let errors = fs.errors();
    fs.stop();
    assert!(
        gw.contains("carrier"),
        "the carrier gateway, over ESL with compose's password: {gw}"
    );
    assert_eq!(errors, Vec::<String>::new(), "errors at start-up");
}

use real_switch_support::sip::{IncomingCall, OutgoingCall, Phone, SipMessage};
use real_switch_support::{Rig, RigOptions, ALICE, BOB, CONTROL, DAEMON, MASKED, STEP, STRANGER};
use serde_json::{json, Value};

/// The user part of header `name`'s URI in `m`.
fn user_of(m: &SipMessage, name: &str) -> Option<String> {
    m.header(name).and_then(SipMessage::uri_user)
}

/// `number` without its `+` and country code 1: what would give it away in
/// any header or SDP line, however FreeSWITCH formatted it.
fn digits(number: &str) -> &str {
    &number[2..]
}

/// The INVITE a party receives shows the masked number in From and
/// P-Asserted-Identity, and `hidden`'s real number nowhere.
fn assert_only_masked(invite: &SipMessage, hidden: &str) {
    assert_eq!(
        user_of(invite, "From").as_deref(),
        Some(MASKED),
        "{}",
        invite.raw()
    );
    assert_eq!(
        user_of(invite, "P-Asserted-Identity").as_deref(),
        Some(MASKED),
        "{}",
        invite.raw()
    );
    assert!(
        !invite.raw().contains(digits(hidden)),
        "a real number reached the other party:\n{}",
        invite.raw()
    );
}

/// Places a call from `from` to `to` and returns it with the carrier's leg.
async fn call_through(
    rig: &Rig,
    phone: &Phone,
    from: &str,
    to: &str,
    reaches: &str,
) -> (OutgoingCall, IncomingCall) {
    let out = phone.call(rig.switch_sip(), from, to, &[]).await;
    let leg = rig.carrier.incoming(reaches, STEP).await;
    (out, leg)
}

/// A masked call both ways: the callee's INVITE shows the masked number in
/// From and P-Asserted-Identity and the caller's real number nowhere; the
/// session is `active` during the call and `open` after, with webhooks.
#[tokio::test]
async fn masked_calls_both_ways_show_only_the_masked_number() {
    let rig = Rig::start().await;
    let r = rig.session().await;
    for (caller, callee) in [(ALICE, BOB), (BOB, ALICE)] {
        let phone = rig.phone().await;
        let (mut out, mut leg) = call_through(&rig, &phone, caller, MASKED, callee).await;
        assert_only_masked(leg.invite(), caller);
        leg.answer().await;
        out.answered(STEP).await.expect("the caller is connected");
        let s = rig.wait_session(&r, "active").await;
        assert_eq!(s["active_calls"].as_array().map(Vec::len), Some(1), "{s}");
        out.hangup().await;
        leg.ended_by_remote(STEP).await;
        rig.wait_session(&r, "open").await;
    }
    assert_eq!(rig.count("session.active", |d| d["ref"] == r.as_str()), 2);
    rig.webhook("session.open", |d| d["ref"] == r.as_str())
        .await;
    let hangup = rig
        .webhook("call.hangup", |d| d["session_ref"] == r.as_str())
        .await;
    assert_eq!(hangup["cause"], "NORMAL_CLEARING", "{hangup}");
    assert_eq!(hangup["reconciled"], false, "{hangup}");
}

/// A stranger, and a party after `complete`, are refused by the dialplan
/// with the lookup's causes, and nothing is dialled.
#[tokio::test]
async fn strangers_and_completed_sessions_are_refused() {
    let rig = Rig::start().await;
    let r = rig.session().await;
    let phone = rig.phone().await;

    let mut stranger = phone.call(rig.switch_sip(), STRANGER, MASKED, &[]).await;
    let refused = stranger.answered(STEP).await.expect_err("refused");
    // CALL_REJECTED (Q.850 21) is 603 Decline on the wire.
    assert_eq!(refused.status(), Some(603), "{}", refused.raw());

    rig.post(&format!("/v1/sessions/{r}/complete"), json!({}), 200)
        .await;
    let mut late = phone.call(rig.switch_sip(), ALICE, MASKED, &[]).await;
    let refused = late.answered(STEP).await.expect_err("refused");
    // UNALLOCATED_NUMBER (Q.850 1) is 404 Not Found.
    assert_eq!(refused.status(), Some(404), "{}", refused.raw());

    assert!(
        rig.carrier.invites_for(BOB).is_empty(),
        "a refused call was bridged"
    );
    assert!(
        rig.carrier.invites_for(ALICE).is_empty(),
        "a refused call was bridged"
    );
    let s = rig.wait_session(&r, "completed").await;
    assert_eq!(s["completion_reason"], "closed", "{s}");
}

/// The TTL runs out mid-call on a tenant with `hangup_on_expiry`: both
/// parties are hung up, the session completes (`ttl`), the number is free.
#[tokio::test]
async fn ttl_expiry_mid_call_hangs_up_both_parties() {
    let rig = Rig::start_with(RigOptions {
        hangup_on_expiry: true,
    })
    .await;
    let r = rig.session().await;
    let phone = rig.phone().await;
    let (mut out, mut leg) = call_through(&rig, &phone, ALICE, MASKED, BOB).await;
    leg.answer().await;
    out.answered(STEP).await.expect("connected");
    rig.wait_session(&r, "active").await;

    rig.clock.advance(chrono::Duration::minutes(31));
    out.ended_by_remote(STEP).await;
    leg.ended_by_remote(STEP).await;
    let s = rig.wait_session(&r, "completed").await;
    assert_eq!(s["completion_reason"], "ttl", "{s}");
    let done = rig
        .webhook("session.completed", |d| d["ref"] == r.as_str())
        .await;
    assert_eq!(done["reason"], "ttl", "{done}");
    rig.wait_no_channels().await;
    // Acme's pool has one number: a new session gets it back.
    let again = rig.session().await;
    assert_ne!(again, r);
}

/// `POST /v1/calls/originate`: A rings first showing the masked number,
/// then B, showing it too; they are bridged; the session is active meanwhile.
#[tokio::test]
async fn originate_rings_both_parties_with_the_masked_number() {
    let rig = Rig::start().await;
    let r = rig.session().await;
    let accepted = rig
        .post("/v1/calls/originate", json!({"session": r}), 202)
        .await;
    let call_id = accepted["call_id"].as_str().unwrap().to_owned();

    let mut a = rig.carrier.incoming(ALICE, STEP).await;
    assert_eq!(
        user_of(a.invite(), "From").as_deref(),
        Some(MASKED),
        "{}",
        a.invite().raw()
    );
    assert!(
        !a.invite().raw().contains(digits(BOB)),
        "{}",
        a.invite().raw()
    );
    assert!(
        rig.carrier.invites_for(BOB).is_empty(),
        "B rang before A answered"
    );
    a.answer().await;
    let mut b = rig.carrier.incoming(BOB, STEP).await;
    assert_only_masked(b.invite(), ALICE);
    b.answer().await;
    rig.wait_session(&r, "active").await;
    rig.webhook("call.answered", |d| d["call_id"] == call_id.as_str())
        .await;
    // The originate succeeds when the two legs are bridged: wait for that
    // before B hangs up (a BYE right after B's 200 can beat the bridge, and
    // then the switch never bridges and the originate rightly fails).
    rig.webhook("command.result", |d| {
        d["command"] == "originate" && d["status"] == "succeeded"
    })
    .await;

    b.hangup().await;
    a.ended_by_remote(STEP).await;
    rig.wait_session(&r, "open").await;
    rig.webhook("call.hangup", |d| d["call_id"] == call_id.as_str())
        .await;
}

/// The header each `additional_header` value must put into an INVITE.
fn expected_header(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "ANSWER_MODE" => ("Answer-Mode", "Auto"),
        "CALL_INFO" => ("Call-Info", "answer-after=0"),
        "ALERT_INFO_AUTO_ANSWER_DELAY0" => ("Alert-Info", ">;info=alert-autoanswer;delay=0"),
        "ALERT_INFO_AUTO_ANSWER" => ("Alert-Info", ">;info=\"Auto Answer\""),
        "ALERT_INFO_INTERCOM" => ("Alert-Info", ">;info=intercom"),
        other => panic!("{other}"),
    }
}

fn has_header(m: &SipMessage, (name, contains): (&str, &str)) -> bool {
    m.headers_named(name).iter().any(|v| v.contains(contains))
}

/// Click-to-call: the caller's leg rings first and presents the callee, then
/// the callee's leg presents the caller; every `additional_header` with every
/// `header_direction` lands in exactly the INVITEs it names.
#[tokio::test]
async fn click_to_call_puts_each_additional_header_where_asked() {
    let rig = Rig::start().await;
    let kinds = [
        "ANSWER_MODE",
        "CALL_INFO",
        "ALERT_INFO_AUTO_ANSWER_DELAY0",
        "ALERT_INFO_AUTO_ANSWER",
        "ALERT_INFO_INTERCOM",
    ];
    let mut n = 0;
    for kind in kinds {
        for direction in ["CALLER", "CALLEE", "ALL"] {
            n += 1;
            let (caller, callee) = (format!("+1555888{n:04}"), format!("+1555999{n:04}"));
            let created = rig
                .post(
                    "/api/v1/sessions",
                    json!({"caller": caller, "callee": callee, "send_sdp": true,
                           "additional_header": kind, "header_direction": direction}),
                    201,
                )
                .await;
            let mut a = rig.carrier.incoming(&caller, STEP).await;
            assert_eq!(
                user_of(a.invite(), "From").as_deref(),
                Some(callee.as_str())
            );
            a.answer().await;
            let mut b = rig.carrier.incoming(&callee, STEP).await;
            assert_eq!(
                user_of(b.invite(), "From").as_deref(),
                Some(caller.as_str())
            );
            b.answer().await;
            let want = expected_header(kind);
            let (on_a, on_b) = match direction {
                "CALLER" => (true, false),
                "CALLEE" => (false, true),
                _ => (true, true),
            };
            for (leg, on, who) in [(&a, on_a, "caller"), (&b, on_b, "callee")] {
                assert_eq!(
                    has_header(leg.invite(), want),
                    on,
                    "{kind}/{direction}: {want:?} on the {who}'s INVITE:\n{}",
                    leg.invite().raw()
                );
            }
            a.hangup().await;
            b.ended_by_remote(STEP).await;
            let id = created["id"].as_str().unwrap().to_owned();
            rig.webhook("call.hangup", |d| d["call_id"] == id.as_str())
                .await;
        }
    }
}

/// Click-to-call on a trunk with From, P-Asserted-Identity and
/// Remote-Party-ID rewrites: both INVITEs carry exactly the rewritten users.
#[tokio::test]
async fn click_to_call_rewrites_from_pai_and_rpid_on_the_trunk() {
    let rig = Rig::start().await;
    let created = rig
        .post(
            "/api/v1/sessions",
            json!({"caller": "+15558880001", "callee": "+15559990001", "send_sdp": true,
                   "trunk": "carrier", "caller_display_name": "Support",
                   "rewrite_from": "15551110000", "rewrite_pai": "15552220000",
                   "rewrite_rpi": "15553330000", "user_data": "order-42"}),
            201,
        )
        .await;
    let mut a = rig.carrier.incoming("+15558880001", STEP).await;
    a.answer().await;
    let mut b = rig.carrier.incoming("+15559990001", STEP).await;
    b.answer().await;
    for leg in [&a, &b] {
        let m = leg.invite();
        assert_eq!(
            user_of(m, "From").as_deref(),
            Some("15551110000"),
            "{}",
            m.raw()
        );
        assert!(m.header("From").unwrap().contains("Support"), "{}", m.raw());
        assert_eq!(
            m.headers_named("P-Asserted-Identity"),
            vec!["<tel:15552220000>"],
            "{}",
            m.raw()
        );
        assert_eq!(
            m.headers_named("Remote-Party-ID"),
            vec!["<tel:15553330000>;party=calling;screen=yes;privacy=off"],
            "{}",
            m.raw()
        );
    }
    let id = created["id"].as_str().unwrap().to_owned();
    let answered = rig
        .webhook("call.answered", |d| d["call_id"] == id.as_str())
        .await;
    assert_eq!(answered["user_data"], "order-42", "{answered}");
    b.hangup().await;
    a.ended_by_remote(STEP).await;
}

/// A call to the control number is parked and announced; its uuid.
async fn parked_call(rig: &Rig, phone: &Phone) -> (OutgoingCall, String) {
    let before = rig.receiver.of_type("call.initiated").len();
    let out = phone.call(rig.switch_sip(), ALICE, CONTROL, &[]).await;
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let all = rig.receiver.of_type("call.initiated");
        if all.len() > before {
            let d = all[before].data().clone();
            return (out, d["call_id"].as_str().unwrap().to_owned());
        }
        assert!(tokio::time::Instant::now() < deadline, "no call.initiated");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn command(rig: &Rig, uuid: &str, name: &str, body: Value) -> Value {
    let op = rig
        .post(
            &format!("/api/v1/sessions/{uuid}/commands/{name}"),
            body,
            202,
        )
        .await;
    assert_eq!(op["status"], "in_progress", "{op}");
    let id = op["operation_id"].as_str().unwrap().to_owned();
    rig.webhook("command.result", |d| d["operation_id"] == id.as_str())
        .await
}

/// Call control on parked calls: answer (the caller gets 200 OK,
/// `call.answered`), hangup with a cause (the caller gets that cause's SIP
/// code, `call.hangup` names it), disconnect (back to the dialplan's
/// `fsgate` context, which hangs up), each with its `command.result`.
#[tokio::test]
async fn answer_hangup_and_disconnect_parked_calls() {
    let rig = Rig::start().await;
    let phone = rig.phone().await;

    let (mut answered, uuid) = parked_call(&rig, &phone).await;
    let result = command(&rig, &uuid, "answer", json!({"command_uid": "ans-1"})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    answered
        .answered(STEP)
        .await
        .expect("200 OK after uuid_answer");
    let a = rig
        .webhook("call.answered", |d| d["call_id"] == uuid.as_str())
        .await;
    assert_eq!(a["direction"], "inbound", "{a}");
    let result = command(&rig, &uuid, "hangup", json!({})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    answered.ended_by_remote(STEP).await;
    let h = rig
        .webhook("call.hangup", |d| d["call_id"] == uuid.as_str())
        .await;
    assert_eq!(h["cause"], "NORMAL_CLEARING", "{h}");

    let (mut busy, uuid) = parked_call(&rig, &phone).await;
    let result = command(&rig, &uuid, "hangup", json!({"cause": "USER_BUSY"})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    let refused = busy.answered(STEP).await.expect_err("refused");
    assert_eq!(refused.status(), Some(486), "{}", refused.raw());
    let h = rig
        .webhook("call.hangup", |d| d["call_id"] == uuid.as_str())
        .await;
    assert_eq!(
        (h["cause"].as_str(), h["q850"].as_u64()),
        (Some("USER_BUSY"), Some(17)),
        "{h}"
    );

    let (mut gone, uuid) = parked_call(&rig, &phone).await;
    let result = command(&rig, &uuid, "disconnect", json!({})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    let ended = gone.ended_by_remote(STEP).await;
    assert!(ended.status().is_some_and(|s| s >= 400), "{}", ended.raw());
    let h = rig
        .webhook("call.hangup", |d| d["call_id"] == uuid.as_str())
        .await;
    assert_eq!(h["cause"], "NORMAL_CLEARING", "{h}");
    assert_eq!(
        rig.count("call.answered", |d| d["call_id"] == uuid.as_str()),
        0
    );
}

/// The daemon crashes mid-call and starts again: a call that outlived the
/// restart is kept and its hangup reported normally; a call that ended
/// while the daemon was down is reconciled (`call.hangup`, reconciled) and
/// the session returns to `open`.
#[tokio::test]
async fn a_daemon_restart_mid_call_is_reconciled() {
    let mut rig = Rig::start().await;
    let r = rig.session().await;
    let phone = rig.phone().await;
    let of_session = |d: &Value| d["session_ref"] == r.as_str();

    // Survives the restart.
    let (mut out, mut leg) = call_through(&rig, &phone, ALICE, MASKED, BOB).await;
    leg.answer().await;
    out.answered(STEP).await.expect("connected");
    rig.wait_session(&r, "active").await;
    rig.crash_daemon();
    rig.start_daemon().await;
    let s = rig.wait_session(&r, "active").await;
    assert_eq!(s["active_calls"].as_array().map(Vec::len), Some(1), "{s}");
    out.hangup().await;
    leg.ended_by_remote(STEP).await;
    rig.wait_session(&r, "open").await;
    let h = rig.webhook("call.hangup", of_session).await;
    assert_eq!(h["reconciled"], false, "{h}");

    // Ends while the daemon is down.
    let (mut out, mut leg) = call_through(&rig, &phone, BOB, MASKED, ALICE).await;
    leg.answer().await;
    out.answered(STEP).await.expect("connected");
    rig.wait_session(&r, "active").await;
    rig.crash_daemon();
    out.hangup().await;
    leg.ended_by_remote(STEP).await;
    rig.wait_no_channels().await;
    rig.start_daemon().await;
    rig.wait_session(&r, "open").await;
    let reconciled = |d: &Value| of_session(d) && d["reconciled"] == true;
    rig.webhook("call.hangup", reconciled).await;
    assert_eq!(
        rig.count("call.hangup", of_session),
        2,
        "one hangup per call"
    );
}

/// A masked call to a party that is busy: the caller hears busy (486), the
/// session returns to `open`.
#[tokio::test]
async fn a_busy_party_gives_the_caller_busy() {
    let rig = Rig::start().await;
    let r = rig.session().await;
    let phone = rig.phone().await;
    let (mut out, mut leg) = call_through(&rig, &phone, ALICE, MASKED, BOB).await;
    leg.reject(486).await;
    let refused = out.answered(STEP).await.expect_err("busy");
    assert_eq!(refused.status(), Some(486), "{}", refused.raw());
    rig.wait_session(&r, "open").await;
    let h = rig
        .webhook("call.hangup", |d| d["session_ref"] == r.as_str())
        .await;
    assert_eq!(h["cause"], "USER_BUSY", "{h}");
}

/// The switch cuts the Event Socket (`reload mod_event_socket`) with a call
/// up: the daemon reconnects and leaves the live call alone; the switch
/// then drops the socket for seconds while the call ends: the daemon
/// reconnects and reconciles the hangup it missed.
#[tokio::test]
async fn an_event_socket_cut_by_the_switch_is_healed_and_reconciled() {
    let rig = Rig::start().await;
    let r = rig.session().await;
    let phone = rig.phone().await;
    let (mut out, mut leg) = call_through(&rig, &phone, ALICE, MASKED, BOB).await;
    leg.answer().await;
    out.answered(STEP).await.expect("connected");
    rig.wait_session(&r, "active").await;

    // A reload from the switch's own scheduler (an ESL client cannot unload
    // the module serving it).
    let before = rig.reconnects().await;
    freeswitch::api("sched_api +1 none reload mod_event_socket").unwrap();
    rig.wait_reconnected(before).await;
    let s = rig.wait_session(&r, "active").await;
    assert_eq!(s["active_calls"].as_array().map(Vec::len), Some(1), "{s}");

    // Now a gap of seconds, and the call ends inside it.
    // The load is scheduled first: once the module is gone, no ESL client
    // (this one included) can ask for it. The scheduler counts whole seconds,
    // so "+2" can come in just over one.
    freeswitch::api("sched_api +5 none load mod_event_socket").unwrap();
    freeswitch::api("sched_api +2 none unload mod_event_socket").unwrap();
    let before = rig.reconnects().await;
    rig.wait_node_down().await;
    out.hangup().await;
    leg.ended_by_remote(STEP).await;
    rig.wait_reconnected(before).await;
    rig.wait_session(&r, "open").await;
    let h = rig
        .webhook("call.hangup", |d| d["session_ref"] == r.as_str())
        .await;
    assert_eq!(h["reconciled"], true, "{h}");
    assert_eq!(
        rig.count("call.hangup", |d| d["session_ref"] == r.as_str()),
        1
    );
}

/// Points the switch's `fsgate_url` elsewhere for one test, and back (also
/// when the test fails: the switch is shared).
struct FsgateUrl;

impl FsgateUrl {
    fn set(url: &str) -> FsgateUrl {
        freeswitch::api(&format!("global_setvar fsgate_url={url}")).unwrap();
        FsgateUrl
    }
}

impl Drop for FsgateUrl {
    fn drop(&mut self) {
        let _ = freeswitch::api(&format!("global_setvar fsgate_url=http://{DAEMON}"));
    }
}

/// An https `fsgate_url`: the shipped route extension asks with mod_curl's
/// `secure`, so the lookup fails closed (NORMAL_TEMPORARY_FAILURE, nothing
/// dialled) until the daemon's CA is `cacert.pem` in the switch's certs
/// folder, and then the masked call goes through the https listener.
#[tokio::test]
async fn route_lookup_over_https_verifies_the_daemon_certificate() {
    let rig = Rig::start().await;
    let r = rig.session().await;
    let ca = support::certs::TestCa::new("switch-https");
    let cert = ca.server("fsgate", &["localhost"]);
    let mut config = rig.config.clone();
    config.http.listen = "127.0.0.1:8443".into();
    config.http.tls_cert_file = Some(cert.cert_file.display().to_string());
    config.http.tls_key_file = Some(cert.key_file.display().to_string());
    let https = fsgate::daemon::Daemon::start(
        config,
        fsgate::daemon::Options {
            clock: rig.clock.clone(),
            listener: None,
            pipeline_shards: 2,
        },
    )
    .await
    .expect("the https daemon starts");
    let _url = FsgateUrl::set("https://localhost:8443");
    let certs_dir = freeswitch::api("global_getvar certs_dir").unwrap();
    let cacert = PathBuf::from(certs_dir.trim()).join("cacert.pem");
    let _ = std::fs::remove_file(&cacert);

    // The daemon's CA is not the switch's: the lookup does not verify.
    let phone = rig.phone().await;
    let mut unverified = phone.call(rig.switch_sip(), ALICE, MASKED, &[]).await;
    let refused = unverified.answered(STEP).await.expect_err("refused");
    // NORMAL_TEMPORARY_FAILURE (Q.850 41) is 503 on the wire.
    assert_eq!(refused.status(), Some(503), "{}", refused.raw());
    assert!(
        rig.carrier.invites_for(BOB).is_empty(),
        "bridged unverified"
    );

    // With the CA in place the same call is routed over https.
    std::fs::copy(ca.ca_file(), &cacert).unwrap();
    let (mut out, mut leg) = call_through(&rig, &phone, ALICE, MASKED, BOB).await;
    assert_only_masked(leg.invite(), ALICE);
    leg.answer().await;
    out.answered(STEP).await.expect("the caller is connected");
    rig.wait_session(&r, "active").await;
    out.hangup().await;
    leg.ended_by_remote(STEP).await;
    rig.wait_session(&r, "open").await;
    let _ = std::fs::remove_file(&cacert);
    https.shutdown().await;
}
