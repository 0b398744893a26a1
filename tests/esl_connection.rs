//! The ESL connection and node supervisor against a scripted TCP peer.
//!
//! The peer replays frames cut from the real captures (auth failure, api
//! replies, BACKGROUND_JOB, HEARTBEAT), so the client is tested against what
//! FreeSWITCH actually sends, over a real socket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fsgate::esl::api::ApiCommand;
use fsgate::esl::codec::FrameCodec;
use fsgate::esl::command::{EventName, Password};
use fsgate::esl::connection::{
    self, CloseReason, ConnectError, ConnectOptions, Delivery, RequestError,
};
use fsgate::esl::frame;
use fsgate::esl::node::{Node, NodeConfig, NodeEvent};
use fsgate::esl::request::{Request, RequestCodec};
use fsgate::esl::{event, EventFormat};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, FramedRead};

fn capture_frames(name: &str) -> Vec<Bytes> {
    let path = format!(
        "{}/tests/fixtures/captures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let data = std::fs::read(path).unwrap();
    // Re-cut the stream into the exact bytes of each frame.
    let mut buf = BytesMut::from(&data[..]);
    let mut out = Vec::new();
    let mut codec = FrameCodec::default();
    let mut consumed = 0;
    while let Some(_f) = codec.decode(&mut buf).unwrap() {
        let now = data.len() - buf.len();
        out.push(Bytes::copy_from_slice(&data[consumed..now]));
        consumed = now;
    }
    out
}

/// The frame of a capture whose bytes contain `needle`.
fn frame_with(name: &str, needle: &str) -> Bytes {
    capture_frames(name)
        .into_iter()
        .find(|f| f.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .unwrap_or_else(|| panic!("{name} has a frame with {needle:?}"))
}

struct Peer {
    reader: FramedRead<tokio::net::tcp::OwnedReadHalf, RequestCodec>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Peer {
    async fn accept(listener: &TcpListener) -> Peer {
        let (stream, _) = listener.accept().await.unwrap();
        let (r, w) = stream.into_split();
        Peer {
            reader: FramedRead::new(r, RequestCodec::default()),
            writer: w,
        }
    }

    async fn next(&mut self) -> Option<Request> {
        self.reader.next().await.and_then(Result::ok)
    }

    async fn send(&mut self, bytes: &[u8]) {
        let _ = self.writer.write_all(bytes).await;
    }

    async fn reply(&mut self, text: &str) {
        let mut b = BytesMut::new();
        frame::write_command_reply(&mut b, text, &[]);
        self.send(&b).await;
    }

    /// auth/request, expects `auth ClueCon`, accepts.
    async fn handshake(&mut self) {
        self.send(b"Content-Type: auth/request\n\n").await;
        let auth = self.next().await.unwrap();
        assert_eq!(auth.line, "auth ClueCon");
        self.reply("+OK accepted").await;
    }
}

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

fn opts(password: &str) -> ConnectOptions {
    let mut o = ConnectOptions::new(Password::new(password).unwrap());
    o.request_timeout = Duration::from_millis(500);
    o
}

fn heartbeat_event() -> Bytes {
    frame_with("plain-api-basics.s2c.bin", "Event-Name: HEARTBEAT")
}

#[tokio::test]
async fn wrong_password_is_a_distinct_non_retryable_error() {
    let (l, addr) = listener().await;
    let failure = capture_frames("plain-auth-failure.s2c.bin");
    tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        p.send(&failure[0]).await; // auth/request
        let auth = p.next().await.unwrap();
        assert_eq!(auth.line, "auth wrong-password");
        for f in &failure[1..] {
            p.send(f).await; // -ERR invalid, disconnect notice
        }
    });
    let err = connection::connect(&addr, &opts("wrong-password"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ConnectError::AuthFailed), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn unreachable_switch_is_retryable() {
    let (l, addr) = listener().await;
    drop(l);
    let err = connection::connect(&addr, &opts("ClueCon"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ConnectError::Io(_)));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn replies_match_requests_while_events_interleave() {
    let (l, addr) = listener().await;
    let status = frame_with("plain-api-basics.s2c.bin", "UP 0 years");
    let error = frame_with("plain-api-basics.s2c.bin", "-ERROR");
    let hb = heartbeat_event();
    tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        p.handshake().await;
        let a = p.next().await.unwrap();
        let b = p.next().await.unwrap();
        assert_eq!(a.line, "api status");
        assert!(b.line.starts_with("api uuid_answer "));
        // FreeSWITCH may flush queued events before a reply.
        p.send(&hb).await;
        p.send(&status).await;
        p.send(&hb).await;
        p.send(&error).await;
        let _ = p.next().await; // keep the socket open until the client is done
    });
    let (client, mut events) = connection::connect(&addr, &opts("ClueCon")).await.unwrap();
    let uuid = uuid::Uuid::nil();
    let (status_cmd, answer_cmd) = (ApiCommand::status(), ApiCommand::uuid_answer(uuid));
    let (r1, r2) = tokio::join!(client.api(&status_cmd), client.api(&answer_cmd));
    assert!(r1.unwrap().starts_with(b"UP 0 years"));
    assert_eq!(&r2.unwrap()[..], b"-ERROR\n");
    for _ in 0..2 {
        match events.recv().await.unwrap() {
            Delivery::Event(e) => assert!(e.is("HEARTBEAT")),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(client.stats().events_received.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn bgapi_results_are_delivered_by_job_uuid() {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        p.handshake().await;
        let req = p.next().await.unwrap();
        assert_eq!(req.line, "bgapi status");
        let job = req.header("Job-UUID").unwrap().to_owned();
        let mut b = BytesMut::new();
        frame::write_command_reply(
            &mut b,
            &format!("+OK Job-UUID: {job}"),
            &[("Job-UUID", &job)],
        );
        // Someone else's job first: it must reach the event stream instead.
        for id in ["11111111-2222-3333-4444-555555555555", job.as_str()] {
            let headers = [
                ("Event-Name", "BACKGROUND_JOB"),
                ("Job-UUID", id),
                ("Job-Command", "status"),
            ];
            event::write_event(
                &mut b,
                EventFormat::Plain,
                &headers,
                Some(format!("+OK {id}\n").as_bytes()),
            );
        }
        p.send(&b).await;
        let _ = p.next().await;
    });
    let (client, mut events) = connection::connect(&addr, &opts("ClueCon")).await.unwrap();
    let job = client.bgapi(&ApiCommand::status()).await.unwrap();
    let id = job.job_uuid();
    let result = job.result(Duration::from_secs(2)).await.unwrap();
    assert_eq!(result.body_text().unwrap(), format!("+OK {id}\n"));
    match events.recv().await.unwrap() {
        Delivery::Event(e) => assert_eq!(
            e.job_uuid().unwrap(),
            "11111111-2222-3333-4444-555555555555"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn disconnect_notice_fails_waiting_requests_and_ends_events() {
    let (l, addr) = listener().await;
    let goodbye = capture_frames("plain-api-basics.s2c.bin").pop().unwrap();
    tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        p.handshake().await;
        let _ = p.next().await.unwrap();
        p.send(&goodbye).await;
        let _ = p.next().await;
    });
    let (client, mut events) = connection::connect(&addr, &opts("ClueCon")).await.unwrap();
    let err = client.api(&ApiCommand::status()).await.unwrap_err();
    assert_eq!(err, RequestError::ConnectionLost);
    assert!(events.recv().await.is_none());
    assert_eq!(events.close_reason(), Some(CloseReason::PeerClosed));
    assert!(client.is_closed());
    assert_eq!(
        client.api(&ApiCommand::status()).await.unwrap_err(),
        RequestError::ConnectionLost
    );
}

#[tokio::test]
async fn a_peer_that_stops_answering_times_out() {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        p.handshake().await;
        while p.next().await.is_some() {} // reads, never answers
    });
    let (client, _events) = connection::connect(&addr, &opts("ClueCon")).await.unwrap();
    let err = client.api(&ApiCommand::status()).await.unwrap_err();
    assert!(matches!(err, RequestError::Timeout(_)));
}

#[tokio::test]
async fn silence_beyond_the_idle_limit_ends_the_connection() {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        p.handshake().await;
        while p.next().await.is_some() {}
    });
    let mut o = opts("ClueCon");
    o.idle_timeout = Some(Duration::from_millis(200));
    let (_client, mut events) = connection::connect(&addr, &o).await.unwrap();
    assert!(events.recv().await.is_none());
    assert!(matches!(events.close_reason(), Some(CloseReason::Idle(_))));
}

#[tokio::test]
async fn a_full_event_channel_drops_newest_and_reports_the_gap() {
    let (l, addr) = listener().await;
    let hb = heartbeat_event();
    tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        p.handshake().await;
        let mut burst = BytesMut::new();
        for _ in 0..100 {
            burst.extend_from_slice(&hb);
        }
        p.send(&burst).await;
        // One more event once the client asks (after it drained the channel).
        let _ = p.next().await.unwrap();
        let mut b = BytesMut::from(&hb[..]);
        frame::write_api_response(&mut b, b"+OK\n");
        p.send(&b).await;
        let _ = p.next().await;
    });
    let mut o = opts("ClueCon");
    o.event_capacity = 4;
    let (client, mut events) = connection::connect(&addr, &o).await.unwrap();
    while client.stats().events_received.load(Ordering::Relaxed) < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(client.stats().events_dropped.load(Ordering::Relaxed), 96);
    for _ in 0..4 {
        assert!(matches!(events.recv().await.unwrap(), Delivery::Event(_)));
    }
    client.api(&ApiCommand::status()).await.unwrap();
    assert!(matches!(events.recv().await.unwrap(), Delivery::Lagged(96)));
    assert!(matches!(events.recv().await.unwrap(), Delivery::Event(_)));
}

#[tokio::test]
async fn node_reconnects_and_resubscribes_after_the_peer_drops() {
    let (l, addr) = listener().await;
    let subscriptions = Arc::new(AtomicUsize::new(0));
    let seen = subscriptions.clone();
    tokio::spawn(async move {
        for round in 0..2 {
            let mut p = Peer::accept(&l).await;
            p.handshake().await;
            let sub = p.next().await.unwrap();
            assert_eq!(sub.line, "event json CHANNEL_ANSWER HEARTBEAT");
            seen.fetch_add(1, Ordering::SeqCst);
            p.reply("+OK event listener enabled json").await;
            if round == 0 {
                drop(p); // the switch goes away
            } else {
                let mut b = BytesMut::new();
                event::write_event(
                    &mut b,
                    EventFormat::Json,
                    &[("Event-Name", "HEARTBEAT")],
                    None,
                );
                p.send(&b).await;
                while p.next().await.is_some() {}
            }
        }
    });
    let mut config = NodeConfig::new("fs1", addr, opts("ClueCon"));
    config.events = vec![
        EventName::new("CHANNEL_ANSWER").unwrap(),
        EventName::new("HEARTBEAT").unwrap(),
    ];
    let (tx, mut rx) = mpsc::channel(16);
    let node = Node::spawn(config, tx);
    let started = std::time::Instant::now();
    assert!(matches!(
        rx.recv().await.unwrap(),
        NodeEvent::Connected { reconnects: 0, .. }
    ));
    assert!(matches!(
        rx.recv().await.unwrap(),
        NodeEvent::Disconnected { .. }
    ));
    // While disconnected, commands fail fast rather than hang.
    let handle = node.handle();
    let _ = handle.api(&ApiCommand::status()).await;
    assert!(matches!(
        rx.recv().await.unwrap(),
        NodeEvent::Connected { reconnects: 1, .. }
    ));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "back within 2 s"
    );
    match rx.recv().await.unwrap() {
        NodeEvent::Event { node, event } => {
            assert_eq!(&*node, "fs1");
            assert!(event.is("HEARTBEAT"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(subscriptions.load(Ordering::SeqCst), 2);
    node.shutdown().await;
}

#[tokio::test]
async fn node_commands_fail_fast_when_not_connected() {
    let (l, addr) = listener().await;
    drop(l);
    let (tx, _rx) = mpsc::channel(16);
    let node = Node::spawn(NodeConfig::new("fs1", addr, opts("ClueCon")), tx);
    let err = node.handle().api(&ApiCommand::status()).await.unwrap_err();
    assert!(err.to_string().contains("not connected"), "{err}");
    node.shutdown().await;
}

#[tokio::test]
async fn node_stops_on_a_refused_password() {
    let (l, addr) = listener().await;
    let failure = capture_frames("json-auth-failure.s2c.bin");
    tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        p.send(&failure[0]).await;
        let _ = p.next().await;
        for f in &failure[1..] {
            p.send(f).await;
        }
    });
    let (tx, mut rx) = mpsc::channel(16);
    let node = Node::spawn(NodeConfig::new("fs1", addr, opts("nope")), tx);
    match rx.recv().await.unwrap() {
        NodeEvent::Failed { error, .. } => assert!(error.contains("password"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        node.handle().state(),
        fsgate::esl::node::NodeState::Failed { .. }
    ));
}

/// The real switch rejects every client by ACL while mod_event_socket is
/// being reloaded: the node must come back once the switch accepts again,
/// not stop for good.
#[tokio::test]
async fn node_retries_after_an_acl_rejection() {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        p.send(
            b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n",
        )
        .await;
        drop(p);
        let mut p = Peer::accept(&l).await;
        p.handshake().await;
        let _sub = p.next().await.unwrap();
        p.reply("+OK event listener enabled json").await;
        while p.next().await.is_some() {}
    });
    let mut config = NodeConfig::new("fs1", addr, opts("ClueCon"));
    config.backoff_max = Duration::from_millis(50);
    let (tx, mut rx) = mpsc::channel(16);
    let node = Node::spawn(config, tx);
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(NodeEvent::Connected { .. })) => {}
        other => panic!("expected a connection after the rejection, got {other:?}"),
    }
    node.shutdown().await;
}
