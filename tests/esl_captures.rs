//! The decoder against real FreeSWITCH traffic.
//!
//! Every `*.s2c.bin` in `tests/fixtures/captures` (copied from
//! `shared/esl/captures` and recorded by `scripts/capture/`, from a real
//! FreeSWITCH with real SIP calls)
//! must decode into exactly the frames FreeSWITCH sent, whether the stream is
//! fed whole, one byte at a time, or in random chunks. The expected frames come
//! from a deliberately naive, independent splitter written here.

use std::path::PathBuf;

use bytes::BytesMut;
use fsgate::esl::codec::{EslCodec, FrameCodec, Message};
use fsgate::esl::{urlenc, ContentType, Event, Frame, HangupCause};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn captures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captures")
}

fn streams() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(captures())
        .expect("tests/fixtures/captures exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".s2c.bin"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    // The ten of shared/esl/captures and the sixteen recorded for the
    // real-switch tier (tests/fixtures/captures/README.md).
    assert_eq!(out.len(), 26, "26 recorded scenarios");
    out
}

/// The reference splitter: (header block text, body bytes) per frame.
fn naive_split(mut data: &[u8]) -> Vec<(String, Option<Vec<u8>>)> {
    let mut frames = Vec::new();
    while !data.is_empty() {
        let end = data
            .windows(2)
            .position(|w| w == b"\n\n")
            .expect("complete header block");
        let head = String::from_utf8(data[..end].to_vec()).unwrap();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map(|n| n.parse::<usize>().unwrap());
        data = &data[end + 2..];
        let body = len.map(|n| {
            let b = data[..n].to_vec();
            data = &data[n..];
            b
        });
        frames.push((head, body));
    }
    frames
}

fn as_pairs(frames: &[Frame]) -> Vec<(String, Option<Vec<u8>>)> {
    frames
        .iter()
        .map(|f| {
            let head = f
                .headers()
                .iter_bytes()
                .map(|(n, v)| {
                    format!(
                        "{}: {}",
                        String::from_utf8_lossy(n),
                        String::from_utf8_lossy(v)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            (head, f.body().map(|b| b.to_vec()))
        })
        .collect()
}

fn decode_chunked(data: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let cut = cut.clamp(at, data.len());
        buf.extend_from_slice(&data[at..cut]);
        at = cut;
        while let Some(f) = codec.decode(&mut buf).expect("capture decodes") {
            frames.push(f);
        }
    }
    assert!(buf.is_empty(), "no bytes left over");
    frames
}

#[test]
fn every_capture_decodes_whole_and_byte_by_byte() {
    for (name, data) in streams() {
        let want = naive_split(&data);
        assert!(!want.is_empty());
        let whole = decode_chunked(&data, &[]);
        assert_eq!(as_pairs(&whole), want, "{name} fed whole");
        let bytewise: Vec<usize> = (1..data.len()).collect();
        assert_eq!(
            as_pairs(&decode_chunked(&data, &bytewise)),
            want,
            "{name} byte by byte"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn every_capture_decodes_in_random_chunks(mut cuts in proptest::collection::vec(0usize..160_000, 0..400)) {
        cuts.sort_unstable();
        for (name, data) in streams() {
            let want = naive_split(&data);
            prop_assert_eq!(as_pairs(&decode_chunked(&data, &cuts)), want, "{}", name);
        }
    }
}

fn messages(name: &str) -> Vec<Message> {
    let data = std::fs::read(captures().join(name)).unwrap();
    let mut codec = EslCodec::default();
    let mut buf = BytesMut::from(&data[..]);
    let mut out = Vec::new();
    while let Some(m) = codec.decode(&mut buf).unwrap() {
        assert!(
            !matches!(m, Message::Malformed { .. } | Message::Other(_)),
            "{name}: {m:?}"
        );
        out.push(m);
    }
    out
}

fn events(msgs: &[Message]) -> Vec<&Event> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn api_basics_key_values() {
    for format in ["plain", "json"] {
        let msgs = messages(&format!("{format}-api-basics.s2c.bin"));
        assert_eq!(msgs[0], Message::AuthRequest);
        let replies: Vec<String> = msgs
            .iter()
            .filter_map(|m| match m {
                Message::Reply(r) => Some(r.text().into_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(replies[0], "+OK accepted");
        assert_eq!(replies[1], format!("+OK event listener enabled {format}"));
        assert_eq!(replies[2], "-ERR command not found");
        let job_reply = msgs
            .iter()
            .find_map(|m| match m {
                Message::Reply(r) if r.header("Job-UUID").is_some() => Some(r.clone()),
                _ => None,
            })
            .expect("bgapi reply");
        let job = job_reply.header("Job-UUID").unwrap().into_owned();
        assert_eq!(job_reply.text(), format!("+OK Job-UUID: {job}"));
        let apis: Vec<&[u8]> = msgs
            .iter()
            .filter_map(|m| match m {
                Message::ApiResponse(b) => Some(&b[..]),
                _ => None,
            })
            .collect();
        assert!(apis[0].starts_with(b"UP 0 years"));
        assert_eq!(apis[1], b"-ERROR\n");
        assert_eq!(apis[2], b"-ERR No such channel!\n");
        assert_eq!(apis[3], b"-ERR no_such_command Command not found!\n");
        assert_eq!(apis[4], b"false");
        assert_eq!(apis[5], b"{\"row_count\": 0}\n");
        let evs = events(&msgs);
        let bg = evs.iter().find(|e| e.is("BACKGROUND_JOB")).unwrap();
        assert_eq!(bg.job_uuid().as_deref(), Some(job.as_str()));
        assert!(bg.body_text().unwrap().starts_with("UP 0 years"));
        assert!(bg.unique_id().is_none());
        let hb = evs.iter().find(|e| e.is("HEARTBEAT")).unwrap();
        assert_eq!(hb.get("Event-Info").as_deref(), Some("System Ready"));
        assert_eq!(hb.get("FreeSWITCH-IPv6").as_deref(), Some("::1"));
        assert!(
            matches!(msgs.last(), Some(Message::Disconnect(d)) if d.text.starts_with("Disconnected, goodbye."))
        );
    }
}

#[test]
fn auth_failure() {
    for format in ["plain", "json"] {
        let msgs = messages(&format!("{format}-auth-failure.s2c.bin"));
        assert_eq!(msgs.len(), 3);
        assert!(matches!(&msgs[1], Message::Reply(r) if !r.is_ok() && r.text() == "-ERR invalid"));
        assert!(matches!(&msgs[2], Message::Disconnect(_)));
    }
}

#[test]
fn originate_capture_values() {
    for format in ["plain", "json"] {
        let msgs = messages(&format!("{format}-originate-transfer-kill.s2c.bin"));
        let evs = events(&msgs);
        let bg = evs.iter().find(|e| e.is("BACKGROUND_JOB")).unwrap();
        let body = bg.body_text().unwrap().into_owned();
        let uuid = body.strip_prefix("+OK ").unwrap().trim_end().to_owned();
        assert_eq!(uuid.len(), 36);
        let create = evs.iter().find(|e| e.is("CHANNEL_CREATE")).unwrap();
        assert_eq!(create.unique_id().as_deref(), Some(uuid.as_str()));
        assert_eq!(
            create.variable("fsgate_session").as_deref(),
            Some("ses_capture01"),
            "{format}"
        );
        assert_eq!(create.caller_id_number().as_deref(), Some("+15550100001"));
        let hangup = evs
            .iter()
            .find(|e| e.is("CHANNEL_HANGUP_COMPLETE"))
            .unwrap();
        assert_eq!(
            hangup.hangup_cause(),
            Some(HangupCause::USER_BUSY),
            "{format}"
        );
        assert_eq!(hangup.get_all("Hangup-Cause").count(), 2, "{format}");
        assert_eq!(hangup.variable("hangup_cause_q850").as_deref(), Some("17"));
        let names: Vec<String> = evs.iter().map(|e| e.name().unwrap().into_owned()).collect();
        let kill_order: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .skip_while(|n| *n != "CHANNEL_HANGUP")
            .collect();
        assert_eq!(
            kill_order,
            [
                "CHANNEL_HANGUP",
                "CHANNEL_EXECUTE_COMPLETE",
                "CHANNEL_HANGUP_COMPLETE",
                "CHANNEL_DESTROY"
            ]
        );
    }
}

#[test]
fn plain_and_json_agree_header_for_header() {
    for scenario in [
        "inbound-bridge",
        "inbound-park-answer-kill",
        "originate-transfer-kill",
    ] {
        let plain = messages(&format!("plain-{scenario}.s2c.bin"));
        let json = messages(&format!("json-{scenario}.s2c.bin"));
        // Legs interleave differently between two real calls; within one
        // event name and call direction the order is causal and must agree.
        let key = |e: &&Event| {
            (
                e.name().unwrap().into_owned(),
                e.get("Call-Direction").map(|d| d.into_owned()),
            )
        };
        let (mut p, mut j) = (events(&plain), events(&json));
        assert_eq!(p.len(), j.len(), "{scenario}");
        p.sort_by_key(key);
        j.sort_by_key(key);
        for (a, b) in p.iter().zip(&j) {
            assert_eq!(a.name(), b.name(), "{scenario}");
            // The two recordings are different calls: compare header names and
            // the values that do not depend on time or random ids.
            let names_a: Vec<String> = a.headers().map(|(n, _)| n.into_owned()).collect();
            let names_b: Vec<String> = b.headers().map(|(n, _)| n.into_owned()).collect();
            let common = names_a.iter().filter(|n| names_b.contains(n)).count();
            assert!(
                common * 10 >= names_a.len() * 9,
                "{scenario} {:?}",
                a.name()
            );
            for key in [
                "Answer-State",
                "Call-Direction",
                "Caller-Destination-Number",
            ] {
                // FreeSWITCH keeps an outbound leg's destination url-encoded
                // (`%2B1555…`) and plain's "no double encoding" rule makes that
                // irreversible (docs/esl-protocol.md §1.4): compare one more decode.
                let once = |v: Option<std::borrow::Cow<'_, str>>| {
                    v.map(|v| urlenc::decode_lossy(v.as_bytes()).into_owned())
                };
                assert_eq!(
                    once(a.get(key)),
                    once(b.get(key)),
                    "{scenario} {:?} {key}",
                    a.name()
                );
            }
        }
    }
}

#[test]
fn content_types_seen() {
    let msgs = messages("plain-inbound-bridge.s2c.bin");
    let frames = decode_chunked(
        &std::fs::read(captures().join("plain-inbound-bridge.s2c.bin")).unwrap(),
        &[],
    );
    assert_eq!(frames.len(), msgs.len());
    assert!(frames
        .iter()
        .any(|f| f.content_type() == ContentType::EventPlain));
    let bridge = events(&msgs)
        .into_iter()
        .find(|e| e.is("CHANNEL_BRIDGE"))
        .unwrap();
    assert_eq!(
        bridge.other_leg_unique_id(),
        bridge.get("Bridge-B-Unique-ID")
    );
}
