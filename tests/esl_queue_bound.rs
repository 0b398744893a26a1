//! The connection's event queue is bounded by bytes, over a real socket.
//!
//! A scripted peer pushes far more event bytes than the queue may hold to a
//! consumer that does not read. The reader must keep draining the socket (no
//! back-pressure towards FreeSWITCH), hold no more than the bound, count every
//! event it dropped, and report them with one `Delivery::Lagged` before the
//! next event the consumer gets. This test has its own process so that its
//! memory figures are its own.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use fsgate::esl::api::ApiCommand;
use fsgate::esl::command::Password;
use fsgate::esl::connection::{self, queue_charge, ConnectOptions, Delivery};
use fsgate::esl::event::{self, EventFormat};
use fsgate::esl::frame;
use fsgate::esl::request::RequestCodec;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::codec::FramedRead;

/// A plain channel event of about 6 kB, like FreeSWITCH's.
fn event_frame(seq: usize) -> BytesMut {
    let mut headers = vec![
        ("Event-Name".to_owned(), "CHANNEL_EXECUTE".to_owned()),
        ("Event-Sequence".to_owned(), seq.to_string()),
    ];
    for i in 0..60 {
        headers.push((format!("variable_pad_{i}"), "x".repeat(90)));
    }
    let mut b = BytesMut::new();
    event::write_event(&mut b, EventFormat::Plain, &headers, None);
    b
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_does_not_read_costs_the_bound_not_the_stream() {
    const BOUND: usize = 512 * 1024;
    const BURST: usize = 8_000; // ~48 MB of events: ~100 times the bound
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let one = event_frame(0);
    let frame_len = one.len();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let mut requests = FramedRead::new(r, RequestCodec::default());
        w.write_all(b"Content-Type: auth/request\n\n")
            .await
            .unwrap();
        let _auth = requests.next().await.unwrap().unwrap();
        let mut b = BytesMut::new();
        frame::write_command_reply(&mut b, "+OK accepted", &[]);
        w.write_all(&b).await.unwrap();
        // The burst, 100 events per write.
        let mut block = BytesMut::new();
        for _ in 0..100 {
            block.extend_from_slice(&one);
        }
        for _ in 0..BURST / 100 {
            w.write_all(&block).await.unwrap();
        }
        // Once the client asks, one more event, then the answer.
        let _api = requests.next().await.unwrap().unwrap();
        let mut b = event_frame(BURST);
        frame::write_api_response(&mut b, b"+OK\n");
        w.write_all(&b).await.unwrap();
        while requests.next().await.is_some() {}
    });

    let mut o = ConnectOptions::new(Password::new("ClueCon").unwrap());
    o.event_queue_bytes = BOUND;
    let before = vm_rss_kib();
    let (client, mut events) = connection::connect(&addr, &o).await.unwrap();
    let stats = client.stats();
    // The reader takes the whole burst while nobody reads the queue.
    tokio::time::timeout(Duration::from_secs(60), async {
        while stats.events_received.load(Ordering::Relaxed) < BURST as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the reader drained the socket although the consumer did not read");
    let grown_kib = vm_rss_kib().saturating_sub(before);

    let dropped = stats.events_dropped.load(Ordering::Relaxed);
    let queued = stats.queued_bytes.load(Ordering::Relaxed) as usize;
    let peak = stats.peak_queued_bytes.load(Ordering::Relaxed) as usize;
    assert!(peak <= BOUND, "the queue held {peak} bytes, over {BOUND}");
    assert!(queued <= BOUND && queued > BOUND / 2, "queued {queued}");
    assert!(dropped > 0);
    // The stream was ~48 MB; what stays must be near the bound (and the
    // events that wait must not keep their whole read buffers alive).
    assert!(
        grown_kib < 16 * 1024,
        "RSS grew by {grown_kib} KiB for a {BOUND}-byte queue ({} MB pushed)",
        BURST * frame_len / 1_000_000
    );

    // The consumer gets what was kept, then the gap, then the next event.
    let mut kept = 0u64;
    let mut batch = Vec::new();
    while (kept + dropped) < BURST as u64 {
        assert!(events.recv_many(&mut batch, 64).await > 0);
        for d in batch.drain(..) {
            match d {
                Delivery::Event(e) => {
                    assert!(e.is("CHANNEL_EXECUTE"));
                    kept += 1;
                }
                Delivery::Lagged(n) => panic!("Lagged({n}) before the kept events"),
            }
        }
    }
    assert_eq!(kept + dropped, BURST as u64);
    assert_eq!(stats.queued_bytes.load(Ordering::Relaxed), 0);
    client.api(&ApiCommand::status()).await.unwrap();
    match events.recv().await.unwrap() {
        Delivery::Lagged(n) => assert_eq!(n, dropped),
        other => panic!("expected the gap first, got {other:?}"),
    }
    match events.recv().await.unwrap() {
        Delivery::Event(e) => {
            assert_eq!(e.sequence(), Some(BURST as u64));
            assert!(queue_charge(&e) > frame_len - 100);
        }
        other => panic!("{other:?}"),
    }
}
