//! The tests' SIP user agent (`tests/real_switch_support/sip.rs`) against itself: two Phones
//! calling each other directly, and a bare UDP socket playing the far end where the agent's
//! handling of retransmissions, ACK routing and in-dialog requests has to be seen on the wire.
//! No FreeSWITCH here.
#[path = "real_switch_support/sip/mod.rs"]
mod sip;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sip::{Auto, Phone, SipMessage};
use tokio::net::UdpSocket;

const STEP: Duration = Duration::from_secs(10);

async fn phones() -> (Phone, Phone) {
    (
        Phone::bind("127.0.0.1:0").await,
        Phone::bind("127.0.0.1:0").await,
    )
}

fn tag(value: &str) -> String {
    SipMessage::param(value, "tag").unwrap_or_else(|| panic!("no tag in {value:?}"))
}

#[tokio::test]
async fn callee_answers_then_caller_hangs_up() {
    let (alice, bob) = phones().await;
    let mut out = alice.call(bob.addr(), "alice", "bob", &[]).await;
    let mut leg = bob.incoming("bob", STEP).await;
    assert_eq!(leg.call_id(), out.call_id());
    assert_eq!(leg.invite().request_uri_user(), Some("bob"));
    assert!(leg.invite().body().contains("m=audio "), "{}", leg.invite());

    assert_eq!(out.response(STEP).await.status(), Some(100));
    leg.ring().await;
    let ringing = out.response(STEP).await;
    assert_eq!(ringing.status(), Some(180));

    // answer() returns once our ACK is in.
    let (answered, ()) = tokio::join!(out.answered(STEP), leg.answer());
    let ok = answered.expect("answered");
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        tag(ok.header("To").unwrap()),
        tag(ringing.header("To").unwrap())
    );
    let sdp = ok.body();
    assert!(sdp.contains("c=IN IP4 127.0.0.1"), "{sdp}");
    assert!(sdp.contains("m=audio "), "{sdp}");
    assert!(sdp.contains("a=rtpmap:0 PCMU/8000"), "{sdp}");
    assert!(sdp.contains("a=rtpmap:101 telephone-event/8000"), "{sdp}");
    assert_eq!(
        ok.header("Content-Length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        sdp.len()
    );

    out.hangup().await;
    let bye = leg.ended_by_remote(STEP).await;
    assert_eq!(bye.method(), Some("BYE"));
    assert_eq!(bye.cseq(), Some((2, "BYE")));
    assert_eq!(
        tag(bye.header("To").unwrap()),
        tag(ok.header("To").unwrap())
    );
    assert_eq!(
        tag(bye.header("From").unwrap()),
        tag(out.invite().header("From").unwrap())
    );
    assert_eq!(bob.invites_for("bob").len(), 1);

    // On the wire, in order: the ACK of the 200 before the BYE (the log is in send order),
    // and no send failed on either side.
    let log = alice.log();
    let ack = log.find("\nACK sip:bob@").expect("ACK in the log");
    let bye = log.find("\nBYE sip:bob@").expect("BYE in the log");
    assert!(ack < bye, "BYE before ACK:\n{log}");
    for phone in [&alice, &bob] {
        assert!(!phone.log().contains(" failed"), "{}", phone.log());
    }
}

#[tokio::test]
async fn callee_hangs_up() {
    let (alice, bob) = phones().await;
    let mut out = alice.call(bob.addr(), "alice", "bob", &[]).await;
    let mut leg = bob.incoming("bob", STEP).await;
    let (answered, ()) = tokio::join!(out.answered(STEP), leg.answer());
    let ok = answered.expect("answered");

    leg.hangup().await;
    let bye = out.ended_by_remote(STEP).await;
    assert_eq!(bye.method(), Some("BYE"));
    assert_eq!(
        bye.request_uri_user(),
        Some("alice"),
        "to the caller's Contact"
    );
    // From the callee: its tag is the To-tag of the 200, and the caller's is in To.
    assert_eq!(
        tag(bye.header("From").unwrap()),
        tag(ok.header("To").unwrap())
    );
    assert_eq!(
        tag(bye.header("To").unwrap()),
        tag(out.invite().header("From").unwrap())
    );
    // Hanging up an ended call does nothing.
    out.hangup().await;
}

#[tokio::test]
async fn callee_rejects_with_486() {
    let (alice, bob) = phones().await;
    let mut out = alice.call(bob.addr(), "alice", "bob", &[]).await;
    let mut leg = bob.incoming("bob", STEP).await;
    let (answered, ()) = tokio::join!(out.answered(STEP), leg.reject(486));
    let busy = answered.expect_err("rejected");
    assert_eq!(busy.status(), Some(486));
    assert!(busy.start_line().ends_with("Busy Here"), "{busy}");
    assert!(SipMessage::param(busy.header("To").unwrap(), "tag").is_some());
    // The rejection also ends the call as far as the caller is concerned.
    assert_eq!(out.ended_by_remote(STEP).await.status(), Some(486));
}

#[tokio::test]
async fn caller_cancels_before_answer() {
    let (alice, bob) = phones().await;
    let mut out = alice.call(bob.addr(), "alice", "bob", &[]).await;
    let mut leg = bob.incoming("bob", STEP).await;
    leg.ring().await;
    loop {
        if out.response(STEP).await.status() == Some(180) {
            break;
        }
    }
    out.hangup().await; // CANCEL, its 200 and the INVITE's 487
    let cancel = leg.ended_by_remote(STEP).await;
    assert_eq!(cancel.method(), Some("CANCEL"));
    assert_eq!(cancel.cseq(), Some((1, "CANCEL")));
    let fin = out.answered(STEP).await.expect_err("cancelled");
    assert_eq!(fin.status(), Some(487));
}

#[tokio::test]
async fn headers_round_trip() {
    let (alice, bob) = phones().await;
    let extra = [
        ("X-Fsgate-Test", "one, two"),
        ("X-Fsgate-Test", "three"),
        (
            "P-Asserted-Identity",
            "\"Support\" <sip:+15550001@127.0.0.1;user=phone>",
        ),
    ];
    let out = alice
        .call(bob.addr(), "+15557770001", "+15557770002", &extra)
        .await;
    let leg = bob.incoming("+15557770002", STEP).await;
    let invite = leg.invite();
    assert_eq!(invite.headers_named("x-fsgate-test"), ["one, two", "three"]);
    assert_eq!(invite.header("X-FSGATE-TEST"), Some("one, two"));
    assert_eq!(
        invite
            .header("P-Asserted-Identity")
            .and_then(SipMessage::uri_user),
        Some("+15550001".to_string())
    );
    assert_eq!(
        invite.header("From").and_then(SipMessage::uri_user),
        Some("+15557770001".to_string())
    );
    assert_eq!(invite.request_uri_user(), Some("+15557770002"));
    assert_eq!(invite.raw(), out.invite().raw());
    assert_eq!(bob.invites_for("+15557770002").len(), 1);
    assert!(bob.invites_for("+15557770001").is_empty());
    let names = invite.header_names();
    for name in [
        "Via",
        "Max-Forwards",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(invite.header("User-Agent"), Some("fsgate-tests"));
    assert!(invite.header("Via").unwrap().contains(";rport"));
}

#[test]
fn parses_compact_forms_folding_and_uris() {
    let text = "SIP/2.0 180 Ringing\r\n\
        v: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKa;rport=5080\r\n\
        v: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKb\r\n\
        f: \"Bob <x>\" <sip:+1555@h;x>;tag=1\r\n\
        t: <sip:bob@127.0.0.1>;tag=2\r\n\
        i: abc@127.0.0.1\r\n\
        CSeq: 7 INVITE\r\n\
        m: <sip:mod_sofia@127.0.0.1:5080;transport=udp>\r\n\
        X-Folded: a\r\n  b\r\n\
        c: text/plain\r\n\
        l: 5\r\n\r\nhello, and more";
    let m = SipMessage::parse(text).unwrap();
    assert_eq!(m.status(), Some(180));
    assert_eq!(m.method(), None);
    assert_eq!(m.header("Via"), m.header("v"));
    assert_eq!(m.headers_named("via").len(), 2);
    assert_eq!(m.header("Call-ID"), Some("abc@127.0.0.1"));
    assert_eq!(m.header("i"), Some("abc@127.0.0.1"));
    assert_eq!(m.header("Content-Type"), Some("text/plain"));
    assert_eq!(m.header("X-Folded"), Some("a b"));
    assert_eq!(m.body(), "hello");
    assert_eq!(m.cseq(), Some((7, "INVITE")));
    assert_eq!(
        m.header("From").and_then(SipMessage::uri_user),
        Some("+1555".into())
    );
    assert_eq!(
        SipMessage::param(m.header("f").unwrap(), "tag"),
        Some("1".into())
    );
    assert_eq!(
        SipMessage::uri_user("\"Bob\" <sip:+1555@h;x>;tag=1"),
        Some("+1555".into())
    );
    assert_eq!(
        SipMessage::uri_user("sip:alice:secret@h"),
        Some("alice".into())
    );
    assert_eq!(
        SipMessage::uri_user("<tel:+1555;phone-context=x>"),
        Some("+1555".into())
    );
    assert_eq!(SipMessage::uri_user("<sip:h:5060>"), None);

    let req = SipMessage::parse("INVITE sip:1000@127.0.0.1:5090 SIP/2.0\r\nl: 0\r\n\r\n").unwrap();
    assert_eq!(req.method(), Some("INVITE"));
    assert_eq!(req.request_uri_user(), Some("1000"));
    assert!(SipMessage::parse("hello world\r\n\r\n").is_err());
}

#[tokio::test]
async fn auto_answer_reject_and_ring() {
    let (alice, bob) = phones().await;
    bob.set_auto(
        "yes",
        Auto::Answer {
            after: Duration::from_millis(50),
        },
    );
    bob.set_auto(
        "now",
        Auto::Answer {
            after: Duration::ZERO,
        },
    );
    bob.set_auto("no", Auto::Reject(603));
    bob.set_auto("ring", Auto::Ring);

    let mut yes = alice.call(bob.addr(), "alice", "yes", &[]).await;
    let ok = yes.answered(STEP).await.expect("auto-answered");
    assert_eq!(ok.status(), Some(200));
    let mut now = alice.call(bob.addr(), "alice", "now", &[]).await;
    now.answered(STEP).await.expect("auto-answered at once");

    let mut no = alice.call(bob.addr(), "alice", "no", &[]).await;
    assert_eq!(no.answered(STEP).await.unwrap_err().status(), Some(603));

    let mut ring = alice.call(bob.addr(), "alice", "ring", &[]).await;
    assert_eq!(ring.response(STEP).await.status(), Some(100));
    assert_eq!(ring.response(STEP).await.status(), Some(180));
    ring.hangup().await;
    assert_eq!(ring.answered(STEP).await.unwrap_err().status(), Some(487));

    // An auto-handled call can still be taken, and hung up by the callee.
    let mut leg = bob.incoming("yes", STEP).await;
    assert_eq!(leg.call_id(), yes.call_id());
    leg.hangup().await;
    assert_eq!(yes.ended_by_remote(STEP).await.method(), Some("BYE"));
    now.hangup().await;

    for user in ["yes", "now", "no", "ring"] {
        assert_eq!(bob.invites_for(user).len(), 1, "{user}");
    }
}

#[tokio::test]
async fn incoming_times_out_with_what_it_saw() {
    let (alice, bob) = phones().await;
    let bob = Arc::new(bob);
    let _out = alice.call(bob.addr(), "alice", "someone", &[]).await;
    bob.incoming("someone", STEP).await; // it arrived: the next wait sees it in the log
    let waiting = bob.clone();
    let failed = tokio::spawn(async move {
        waiting.incoming("nobody", Duration::from_millis(200)).await;
    })
    .await
    .expect_err("incoming() must panic");
    let payload = failed.into_panic();
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("no INVITE for user \"nobody\""),
        "{message}"
    );
    assert!(message.contains("INVITE sip:someone@"), "{message}");
    assert!(message.contains("SIP log"), "{message}");
    assert!(message.contains("SIP/2.0 100 Trying"), "{message}");
}

// ------------------------------------------------------------------------------------------
// A bare socket as the far end

struct Raw {
    socket: UdpSocket,
}

impl Raw {
    async fn bind() -> Raw {
        Raw {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    async fn send(&self, text: &str, to: SocketAddr) {
        self.socket.send_to(text.as_bytes(), to).await.unwrap();
    }

    /// The next message that `want` accepts (others, e.g. retransmissions, are skipped).
    async fn recv(
        &self,
        what: &str,
        want: impl Fn(&SipMessage) -> bool,
    ) -> (SipMessage, SocketAddr) {
        let mut buf = vec![0u8; 65536];
        let mut skipped = Vec::new();
        loop {
            let got = tokio::time::timeout(STEP, self.socket.recv_from(&mut buf)).await;
            let Ok(Ok((n, from))) = got else {
                panic!("raw {}: no {what}; skipped: {skipped:#?}", self.addr());
            };
            let msg = SipMessage::parse(std::str::from_utf8(&buf[..n]).unwrap()).unwrap();
            if want(&msg) {
                return (msg, from);
            }
            skipped.push(msg.start_line().to_string());
        }
    }

    async fn request(&self, method: &str) -> (SipMessage, SocketAddr) {
        self.recv(method, |m| m.method() == Some(method)).await
    }

    async fn response(&self, code: u16, method: &str) -> SipMessage {
        self.recv(&format!("{code} to {method}"), |m| {
            m.status() == Some(code) && m.cseq().is_some_and(|c| c.1 == method)
        })
        .await
        .0
    }
}

const OFFER: &str = "v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
    m=audio 40000 RTP/AVP 8 9 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\n\
    a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\nm=video 40002 RTP/AVP 31\r\n";

fn request(
    raw: &Raw,
    method: &str,
    call_id: &str,
    cseq: u32,
    to_tag: Option<&str>,
    branch: &str,
    body: &str,
) -> String {
    let to = match to_tag {
        Some(t) => format!("<sip:bob@127.0.0.1>;tag={t}"),
        None => "<sip:bob@127.0.0.1>".to_string(),
    };
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:bob@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.99:9;branch={branch}\r\n\
         Via: SIP/2.0/UDP 127.0.0.98:9;branch=z9hG4bKsecond\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:raw@{addr}>;tag=rawtag\r\n\
         To: {to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:raw@{addr}>\r\n\
         {content_type}Content-Length: {}\r\n\r\n{body}",
        body.len(),
        addr = raw.addr()
    )
}

#[tokio::test]
async fn retransmissions_and_out_of_dialog_requests() {
    let bob = Phone::bind("127.0.0.1:0").await;
    let raw = Raw::bind().await;
    let invite = request(&raw, "INVITE", "rtx-1", 1, None, "z9hG4bKrtx1", OFFER);
    raw.send(&invite, bob.addr()).await;
    let trying = raw.response(100, "INVITE").await;
    // Responses copy every Via in order (the raw Via names another address: the answer came to
    // the source address all the same), and a 100 has no To-tag.
    assert_eq!(
        trying.headers_named("Via"),
        [
            "SIP/2.0/UDP 127.0.0.99:9;branch=z9hG4bKrtx1",
            "SIP/2.0/UDP 127.0.0.98:9;branch=z9hG4bKsecond"
        ]
    );
    assert_eq!(SipMessage::param(trying.header("To").unwrap(), "tag"), None);
    raw.send(&invite, bob.addr()).await;
    raw.response(100, "INVITE").await; // the retransmission is answered again...
    let mut leg = bob.incoming("bob", STEP).await;
    assert_eq!(bob.invites_for("bob").len(), 1); // ...and is not a new call

    leg.ring().await;
    let ringing = raw.response(180, "INVITE").await;
    raw.send(&invite, bob.addr()).await;
    assert_eq!(raw.response(180, "INVITE").await.raw(), ringing.raw());

    let options = request(&raw, "OPTIONS", "opt-1", 1, None, "z9hG4bKopt", "");
    raw.send(&options, bob.addr()).await;
    let ok = raw.response(200, "OPTIONS").await;
    assert!(SipMessage::param(ok.header("To").unwrap(), "tag").is_some());
    let stray = request(
        &raw,
        "BYE",
        "no-such-call",
        5,
        Some("x"),
        "z9hG4bKstray",
        "",
    );
    raw.send(&stray, bob.addr()).await;
    raw.response(481, "BYE").await;

    let rejecting = async {
        let busy = raw.response(486, "INVITE").await;
        let to = busy.header("To").unwrap().to_string();
        assert_eq!(tag(&to), tag(ringing.header("To").unwrap()));
        let ack = format!(
            "ACK sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.99:9;branch=z9hG4bKrtx1\r\n\
             From: <sip:raw@{}>;tag=rawtag\r\nTo: {to}\r\nCall-ID: rtx-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            raw.addr()
        );
        raw.send(&ack, bob.addr()).await;
    };
    tokio::join!(leg.reject(486), rejecting);
}

#[tokio::test]
async fn answer_resends_200_until_ack_and_handles_the_dialog() {
    let bob = Phone::bind("127.0.0.1:0").await;
    let raw = Raw::bind().await;
    raw.send(
        &request(&raw, "INVITE", "dlg-1", 1, None, "z9hG4bKdlg1", OFFER),
        bob.addr(),
    )
    .await;
    let mut leg = bob.incoming("bob", STEP).await;
    let remote = async {
        let first = raw.response(200, "INVITE").await;
        let again = raw.response(200, "INVITE").await; // no ACK yet: the 200 comes again
        assert_eq!(first.raw(), again.raw());
        let to_tag = tag(first.header("To").unwrap());
        raw.send(
            &request(&raw, "ACK", "dlg-1", 1, Some(&to_tag), "z9hG4bKack1", ""),
            bob.addr(),
        )
        .await;
        (first, to_tag)
    };
    let ((ok, to_tag), ()) = tokio::join!(remote, leg.answer());
    // The answer takes what we offered and can do: PCMA and telephone-event with the offer's
    // payload numbers, and refuses the video stream.
    let sdp = ok.body();
    assert!(
        sdp.contains(&format!("m=audio {} RTP/AVP 8 96\r\n", bob.rtp_port())),
        "{sdp}"
    );
    assert!(sdp.contains("a=fmtp:96 0-15"), "{sdp}");
    assert!(sdp.contains("m=video 0 RTP/AVP 31"), "{sdp}");
    assert!(ok
        .header("Contact")
        .unwrap()
        .contains(&bob.addr().to_string()));

    // A re-INVITE with the same offer: 200 with the same SDP, and its ACK accepted.
    let reinvite = request(
        &raw,
        "INVITE",
        "dlg-1",
        2,
        Some(&to_tag),
        "z9hG4bKre2",
        OFFER,
    );
    raw.send(&reinvite, bob.addr()).await;
    let re_ok = raw.response(200, "INVITE").await;
    assert_eq!(re_ok.cseq(), Some((2, "INVITE")));
    assert_eq!(re_ok.body(), sdp);
    raw.send(
        &request(&raw, "ACK", "dlg-1", 2, Some(&to_tag), "z9hG4bKack2", ""),
        bob.addr(),
    )
    .await;
    // A hold offer: the answer changes direction and version.
    let hold = OFFER.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    raw.send(
        &request(
            &raw,
            "INVITE",
            "dlg-1",
            3,
            Some(&to_tag),
            "z9hG4bKre3",
            &hold,
        ),
        bob.addr(),
    )
    .await;
    let held = raw.response(200, "INVITE").await;
    assert!(held.body().contains("a=recvonly"), "{}", held.body());
    assert!(
        held.body().contains(" 2 IN IP4 127.0.0.1"),
        "{}",
        held.body()
    );
    raw.send(
        &request(&raw, "ACK", "dlg-1", 3, Some(&to_tag), "z9hG4bKack3", ""),
        bob.addr(),
    )
    .await;

    for (cseq, method, code) in [
        (4, "INFO", 200),
        (5, "NOTIFY", 200),
        (6, "UPDATE", 200),
        (7, "REFER", 501),
    ] {
        let branch = format!("z9hG4bK{method}");
        raw.send(
            &request(&raw, method, "dlg-1", cseq, Some(&to_tag), &branch, ""),
            bob.addr(),
        )
        .await;
        raw.response(code, method).await;
    }

    raw.send(
        &request(&raw, "BYE", "dlg-1", 8, Some(&to_tag), "z9hG4bKbye", ""),
        bob.addr(),
    )
    .await;
    raw.response(200, "BYE").await;
    assert_eq!(leg.ended_by_remote(STEP).await.cseq(), Some((8, "BYE")));
    assert_eq!(bob.invites_for("bob").len(), 1, "re-INVITEs are not calls");
}

/// The raw far end's answer to an INVITE of ours.
fn response_to(
    invite: &SipMessage,
    code: u16,
    to_tag: &str,
    contact: Option<SocketAddr>,
) -> String {
    let mut text = format!("SIP/2.0 {code} Whatever\r\n");
    for via in invite.headers_named("Via") {
        text += &format!("Via: {via}\r\n");
    }
    text += &format!(
        "From: {}\r\nTo: {};tag={to_tag}\r\nCall-ID: {}\r\nCSeq: {}\r\n",
        invite.header("From").unwrap(),
        invite.header("To").unwrap(),
        invite.header("Call-ID").unwrap(),
        invite.header("CSeq").unwrap()
    );
    if let Some(c) = contact {
        text += &format!("Contact: <sip:far@{c};transport=udp>\r\n");
    }
    text + "Content-Length: 0\r\n\r\n"
}

#[tokio::test]
async fn ack_and_bye_go_to_the_contact_and_the_ack_is_resent() {
    let alice = Phone::bind("127.0.0.1:0").await;
    let (edge, far) = (Raw::bind().await, Raw::bind().await);
    let mut out = alice.call(edge.addr(), "alice", "far", &[]).await;
    let (invite, from) = edge.request("INVITE").await;
    assert_eq!(from, alice.addr());
    let ok = response_to(&invite, 200, "fartag", Some(far.addr()));
    edge.send(&ok, alice.addr()).await;
    let (ack, _) = far.request("ACK").await;
    assert_eq!(
        ack.request_uri(),
        Some(format!("sip:far@{};transport=udp", far.addr()).as_str())
    );
    assert_eq!(ack.cseq(), Some((1, "ACK")));
    assert_ne!(
        ack.header("Via"),
        invite.header("Via"),
        "a 2xx ACK is a new transaction"
    );
    assert_eq!(tag(ack.header("To").unwrap()), "fartag");
    out.answered(STEP).await.expect("answered");

    edge.send(&ok, alice.addr()).await; // the 200 again: our ACK was "lost"
    let (again, _) = far.request("ACK").await;
    assert_eq!(again.raw(), ack.raw());

    let far_side = async {
        let (bye, from) = far.request("BYE").await;
        assert_eq!(from, alice.addr());
        assert_eq!(bye.cseq(), Some((2, "BYE")));
        assert_eq!(tag(bye.header("To").unwrap()), "fartag");
        let mut text = format!("SIP/2.0 200 OK\r\nVia: {}\r\n", bye.header("Via").unwrap());
        for h in ["From", "To", "Call-ID", "CSeq"] {
            text += &format!("{h}: {}\r\n", bye.header(h).unwrap());
        }
        far.send(&(text + "Content-Length: 0\r\n\r\n"), alice.addr())
            .await;
    };
    tokio::join!(out.hangup(), far_side);
}

#[tokio::test]
async fn non_2xx_is_acked_on_the_invite_branch_and_a_silent_far_end_gets_the_invite_again() {
    let alice = Phone::bind("127.0.0.1:0").await;
    let edge = Raw::bind().await;
    let mut out = alice.call(edge.addr(), "alice", "far", &[]).await;
    let (first, _) = edge.request("INVITE").await;
    let (again, _) = edge.request("INVITE").await; // no response within T1: timer A
    assert_eq!(first.raw(), again.raw());
    edge.send(&response_to(&first, 503, "t503", None), alice.addr())
        .await;
    let (ack, from) = edge.request("ACK").await;
    assert_eq!(from, alice.addr());
    assert_eq!(
        ack.header("Via"),
        first.header("Via"),
        "same branch as the INVITE"
    );
    assert_eq!(ack.request_uri(), first.request_uri());
    assert_eq!(ack.cseq(), Some((1, "ACK")));
    assert_eq!(tag(ack.header("To").unwrap()), "t503");
    assert_eq!(out.answered(STEP).await.unwrap_err().status(), Some(503));
}
