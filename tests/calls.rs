//! Call sessions against the simulator: a click-to-call rings the caller,
//! then the callee, and bridges; every create field reaches the channel
//! variables of the leg(s) it is documented for; refused requests send
//! nothing; reads are scoped to the tenant.

mod control_support;

use control_support::{start, until, Env, CONTROL, OTHER_CONTROL};
use fsgate::calls::model::SessionState;
use fsgate::calls::{AdditionalHeader, CallError, CreateCallRequest, HeaderDirection, InvalidCall};
use fsgate::sim::BehaviourSpec;
use fsgate::store::CallState;

fn request() -> CreateCallRequest {
    CreateCallRequest {
        caller: "+15557770001".into(),
        callee: "+15557770002".into(),
        send_sdp: true,
        ..Default::default()
    }
}

fn var(env: &Env, uuid: &str, name: &str) -> Option<String> {
    env.sim
        .switch()
        .channel(uuid)
        .and_then(|c| c.vars.get(name).map(str::to_owned))
}

/// The callee leg of a click-to-call, once it exists.
async fn callee_leg(env: &Env, session: &str) -> String {
    let leg = env.store.get_call(session).await.unwrap().unwrap().extra["callee_leg"]
        .as_str()
        .unwrap()
        .to_owned();
    until("callee leg created", async || {
        env.sim.switch().channel(&leg).map(|_| ())
    })
    .await;
    leg
}

#[tokio::test]
async fn click_to_call_rings_caller_then_callee_and_bridges() {
    let env = start(vec![]).await;
    let session = env.calls.create(&env.acme, &request()).await.unwrap();
    assert_eq!(session.state, SessionState::Ringing);
    assert_eq!(session.caller.as_deref(), Some("+15557770001"));
    assert_eq!(session.callee.as_deref(), Some("+15557770002"));
    assert_eq!(session.node, "fs1");
    // Tracked before FreeSWITCH saw anything: the record exists already.
    assert!(env.store.get_call(&session.id).await.unwrap().is_some());

    let originate = env.received("bgapi originate");
    assert_eq!(originate.len(), 1);
    assert!(
        originate[0].contains(&format!("origination_uuid={}", session.id)),
        "{}",
        originate[0]
    );
    let b = callee_leg(&env, &session.id).await;
    until("bridged", async || {
        (env.sim.switch().partner(&session.id).as_deref() == Some(b.as_str())).then_some(())
    })
    .await;
    // Each leg presents the other party's number.
    assert_eq!(
        var(&env, &session.id, "origination_caller_id_number").as_deref(),
        Some("+15557770002")
    );
    assert_eq!(
        var(&env, &b, "origination_caller_id_number").as_deref(),
        Some("+15557770001")
    );
    for leg in [&session.id, &b] {
        assert_eq!(var(&env, leg, "fsgate_tenant").as_deref(), Some("acme"));
    }
    assert_eq!(
        var(&env, &session.id, "sip_copy_custom_headers").as_deref(),
        Some("false")
    );
    assert_eq!(
        var(&env, &session.id, "ignore_early_media").as_deref(),
        Some("true")
    );

    let answered = env.call_in_state(&session.id, CallState::Answered).await;
    let read = env.calls.get("acme", &session.id).await.unwrap();
    assert_eq!(read.state, SessionState::Answered);
    assert_eq!(
        read.caller.as_deref(),
        Some("+15557770001"),
        "the request's caller"
    );
    assert_eq!(read.callee.as_deref(), Some("+15557770002"));
    assert!(answered.answered_at.is_some());
    until("other leg known", async || {
        let s = env.calls.get("acme", &session.id).await.unwrap();
        (s.other_leg.as_deref() == Some(b.as_str())).then_some(())
    })
    .await;
    // The tenant's live calls: the session, not its bridged B-leg.
    let page = env.calls.list("acme", None, None).await.unwrap();
    let ids: Vec<&str> = page.items.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [session.id.as_str()]);
    assert!(matches!(
        env.calls.get("acme", &b).await,
        Err(CallError::NotFound(_))
    ));
}

#[tokio::test]
async fn every_field_reaches_the_documented_variables() {
    let env = start(vec![]).await;
    let mut r = request();
    r.caller_display_name = Some("Acme Support Desk".into());
    r.trunk = Some("backup".into());
    r.rewrite_from = Some("+15550000001".into());
    r.rewrite_pai = Some("+15550000002".into());
    r.rewrite_rpi = Some("+15550000003".into());
    r.user_data = Some("order=42".into());
    r.target = Some("sip:agent@example.com".into());
    r.target_instance_id = Some("inst-7".into());
    r.target_extension_number = Some("1001".into());
    r.additional_header = Some(AdditionalHeader::AlertInfoAutoAnswer);
    r.header_direction = Some(HeaderDirection::All);
    // A request may name only its tenant's trunk (the config lists one).
    let mut tenant = env.acme.clone();
    tenant.trunk = "backup".into();
    let session = env.calls.create(&tenant, &r).await.unwrap();
    let a = session.id.clone();
    let b = callee_leg(&env, &a).await;
    for leg in [&a, &b] {
        let v = |n: &str| var(&env, leg, n);
        // Spaces survived FreeSWITCH's argument splitting.
        assert_eq!(
            v("origination_caller_id_name").as_deref(),
            Some("Acme Support Desk")
        );
        assert_eq!(
            v("origination_caller_id_number").as_deref(),
            Some("+15550000001")
        );
        assert_eq!(v("sip_cid_type").as_deref(), Some("none"));
        assert_eq!(
            v("sip_h_P-Asserted-Identity").as_deref(),
            Some("<tel:+15550000002>")
        );
        assert_eq!(
            v("sip_h_Remote-Party-ID").as_deref(),
            Some("<tel:+15550000003>;party=calling;screen=yes;privacy=off")
        );
        assert_eq!(v("fsgate_user_data").as_deref(), Some("order=42"));
        assert_eq!(v("fsgate_target").as_deref(), Some("sip:agent@example.com"));
        assert_eq!(v("fsgate_target_instance_id").as_deref(), Some("inst-7"));
        assert_eq!(v("fsgate_target_extension_number").as_deref(), Some("1001"));
        assert_eq!(
            v("alert_info").as_deref(),
            Some("<http://localhost>;info=\"Auto Answer\"")
        );
        assert_eq!(
            v("fsgate_display_name").as_deref(),
            Some("Acme Support Desk")
        );
    }
    let a_ch = env.sim.switch().channel(&a).unwrap();
    let b_ch = env.sim.switch().channel(&b).unwrap();
    // The callee's INVITE shows the name (the caller's leg flips its caller
    // profile once answered, as FreeSWITCH does for an originated leg).
    assert_eq!(b_ch.profile.caller_id_name, "Acme Support Desk");
    // Both legs went through the trunk named in the request (FreeSWITCH
    // names a gateway leg `sofia/external/<number>`; the gateway is a
    // variable of the leg).
    assert_eq!(
        a_ch.vars.get("sip_gateway_name"),
        Some("backup"),
        "{}",
        a_ch.name
    );
    assert_eq!(
        b_ch.vars.get("sip_gateway_name"),
        Some("backup"),
        "{}",
        b_ch.name
    );

    let read = env.calls.get("acme", &a).await.unwrap();
    assert_eq!(
        read.caller_display_name.as_deref(),
        Some("Acme Support Desk")
    );
    assert_eq!(read.user_data.as_deref(), Some("order=42"));
    assert_eq!(read.target.as_deref(), Some("sip:agent@example.com"));
    assert_eq!(read.target_instance_id.as_deref(), Some("inst-7"));
    assert_eq!(read.target_extension_number.as_deref(), Some("1001"));
    // user_data is echoed on the call's webhooks.
    let answered = env
        .webhook("acme", "call.answered", |w| w["data"]["call_id"] == a)
        .await;
    assert_eq!(answered["data"]["user_data"], "order=42");
}

#[tokio::test]
async fn header_direction_puts_the_header_on_the_named_invite() {
    let env = start(vec![]).await;
    for (direction, on_a, on_b) in [
        (HeaderDirection::Caller, true, false),
        (HeaderDirection::Callee, false, true),
    ] {
        for (header, name, value) in [
            (AdditionalHeader::AnswerMode, "sip_h_Answer-Mode", "Auto"),
            (AdditionalHeader::CallInfo, "sip_auto_answer", "true"),
            (
                AdditionalHeader::AlertInfoAutoAnswerDelay0,
                "alert_info",
                "<http://localhost>;info=alert-autoanswer;delay=0",
            ),
            (
                AdditionalHeader::AlertInfoIntercom,
                "alert_info",
                "<http://localhost>;info=intercom",
            ),
        ] {
            let mut r = request();
            r.additional_header = Some(header);
            r.header_direction = Some(direction);
            let s = env.calls.create(&env.acme, &r).await.unwrap();
            let b = callee_leg(&env, &s.id).await;
            assert_eq!(
                var(&env, &s.id, name).is_some(),
                on_a,
                "{header:?} {direction:?}"
            );
            assert_eq!(
                var(&env, &b, name).is_some(),
                on_b,
                "{header:?} {direction:?}"
            );
            let leg = if on_a { &s.id } else { &b };
            assert_eq!(var(&env, leg, name).as_deref(), Some(value));
        }
    }
}

#[tokio::test]
async fn refused_requests_send_nothing() {
    let env = start(vec![]).await;
    env.sim.faults().clear_received();
    type Set = fn(&mut CreateCallRequest, String);
    let fields: [(&str, Set); 11] = [
        ("caller", |r, v| r.caller = v),
        ("caller_display_name", |r, v| {
            r.caller_display_name = Some(v)
        }),
        ("callee", |r, v| r.callee = v),
        ("trunk", |r, v| r.trunk = Some(v)),
        ("rewrite_from", |r, v| r.rewrite_from = Some(v)),
        ("rewrite_pai", |r, v| r.rewrite_pai = Some(v)),
        ("rewrite_rpi", |r, v| r.rewrite_rpi = Some(v)),
        ("user_data", |r, v| r.user_data = Some(v)),
        ("target", |r, v| r.target = Some(v)),
        ("target_instance_id", |r, v| r.target_instance_id = Some(v)),
        ("target_extension_number", |r, v| {
            r.target_extension_number = Some(v)
        }),
    ];
    let attacks = [
        "1\r\n2",
        "1\n",
        "1\u{0}",
        "1,2",
        "{1}",
        "[1]",
        "'1'",
        "\"1\"",
        "${system(id)}",
        "1)",
        "x:_:y",
    ];
    for (field, set) in fields {
        for attack in attacks {
            let mut r = request();
            set(&mut r, attack.to_owned());
            match env.calls.create(&env.acme, &r).await {
                Err(CallError::Invalid(InvalidCall::Field { field: f, .. })) => {
                    assert_eq!(f, field, "{attack:?}")
                }
                other => panic!("{field} {attack:?}: {other:?}"),
            }
        }
    }
    let mut r = request();
    r.send_sdp = false;
    assert!(matches!(
        env.calls.create(&env.acme, &r).await,
        Err(CallError::Invalid(InvalidCall::Unsupported {
            field: "send_sdp",
            ..
        }))
    ));
    env.switch_caught_up().await;
    assert!(env.received("bgapi originate").is_empty());
    assert!(env
        .store
        .list_live_calls("acme", None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn an_originate_freeswitch_refuses_ends_the_session_with_its_cause() {
    let env = start(vec![]).await;
    let mut tenant = env.acme.clone();
    tenant.dial_string = "error/GATEWAY_DOWN".into();
    let session = env.calls.create(&tenant, &request()).await.unwrap();
    let ended = env.call_in_state(&session.id, CallState::Ended).await;
    assert_eq!(ended.hangup_cause.as_deref(), Some("GATEWAY_DOWN"));
    assert!(ended.reconciled, "inferred: no channel ever existed");
    let read = env.calls.get("acme", &session.id).await.unwrap();
    assert_eq!(read.state, SessionState::Ended);
    assert_eq!(
        read.q850,
        Some(16),
        "FreeSWITCH's own causes map to Q.850 16"
    );
    assert!(env
        .calls
        .list("acme", None, None)
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn a_rejecting_caller_ends_the_session_and_get_shows_why() {
    let env = start(vec![BehaviourSpec {
        pattern: "15557770001".into(),
        answer_after_ms: None,
        reject: Some("USER_BUSY".into()),
        no_answer: false,
    }])
    .await;
    let session = env.calls.create(&env.acme, &request()).await.unwrap();
    env.call_in_state(&session.id, CallState::Ended).await;
    let read = env.calls.get("acme", &session.id).await.unwrap();
    assert_eq!(read.hangup_cause.as_deref(), Some("USER_BUSY"));
    assert_eq!(read.q850, Some(17));
    assert!(read.ended_at.is_some() && read.duration_s.is_some());
    // Not the other tenant's.
    assert!(matches!(
        env.calls.get("other", &session.id).await,
        Err(CallError::NotFound(_))
    ));
}

#[tokio::test]
async fn reads_are_scoped_to_the_tenant() {
    let env = start(vec![]).await;
    let ours = env.parked_call("+15557770001", CONTROL).await;
    let theirs = env.parked_call("+15557770009", OTHER_CONTROL).await;
    let page = env.calls.list("acme", None, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, ours);
    assert_eq!(page.items[0].caller.as_deref(), Some("+15557770001"));
    assert!(matches!(
        env.calls.get("acme", &theirs).await,
        Err(CallError::NotFound(_))
    ));
    assert_eq!(env.calls.get("other", &theirs).await.unwrap().id, theirs);
}

#[tokio::test]
async fn without_a_connected_node_nothing_is_recorded() {
    let env = start(vec![]).await;
    let Env {
        sim,
        calls,
        switch,
        store,
        acme,
        node: _node,
        pipeline: _pipeline,
        ..
    } = env;
    sim.shutdown().await;
    until("node disconnected", async || {
        (!switch.any_connected()).then_some(())
    })
    .await;
    assert!(matches!(
        calls.create(&acme, &request()).await,
        Err(CallError::NoNode)
    ));
    assert!(store
        .list_live_calls("acme", None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
}
