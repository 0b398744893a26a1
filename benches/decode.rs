//! Decoding recorded FreeSWITCH event streams, against a boundary-only baseline.
//!
//! The input is every event frame of the real captures (CHANNEL_* events with
//! all their variables, HEARTBEAT, BACKGROUND_JOB), repeated to about 100,000
//! events, fed to the decoder in 64 KiB chunks as socket reads would deliver
//! them. Two decoders run on the same bytes in the same process:
//!
//! - `boundaries`: finds each frame's end (the blank line, then
//!   `Content-Length` bytes) and skips it. Nothing is parsed. This is the
//!   floor any ESL client pays.
//! - `full`: fsgate's `EslCodec`: frames, outer headers, and the event body
//!   indexed header by header (plain or json), ready for lookups, plus reading
//!   `Event-Name` and `Unique-ID` as the daemon's pipeline does.
//!
//! Run: `cargo bench --bench decode`. Figures are in BENCHMARKS.md.

use bytes::{Buf, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fsgate::esl::codec::{EslCodec, FrameCodec, Message};
use fsgate::esl::ContentType;
use tokio_util::codec::Decoder;

const TARGET_EVENTS: usize = 100_000;
const CHUNK: usize = 64 * 1024;

/// The event frames of every capture of one format, repeated.
fn stream(format: &str) -> (Vec<u8>, usize) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/captures");
    let mut one_round = Vec::new();
    let mut events = 0;
    for scenario in [
        "api-basics",
        "originate-transfer-kill",
        "inbound-park-answer-kill",
        "inbound-bridge",
    ] {
        let data = std::fs::read(format!("{dir}/{format}-{scenario}.s2c.bin")).unwrap();
        let mut buf = BytesMut::from(&data[..]);
        let mut codec = FrameCodec::default();
        let mut at = 0;
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            let end = data.len() - buf.len();
            if matches!(
                frame.content_type(),
                ContentType::EventPlain | ContentType::EventJson
            ) {
                one_round.extend_from_slice(&data[at..end]);
                events += 1;
            }
            at = end;
        }
    }
    let rounds = TARGET_EVENTS.div_ceil(events);
    (one_round.repeat(rounds), events * rounds)
}

/// Finds frame boundaries only.
fn boundaries(src: &mut BytesMut) -> usize {
    let mut frames = 0;
    loop {
        let Some(end) = memchr::memmem::find(src, b"\n\n") else {
            return frames;
        };
        let head = &src[..end];
        let len = memchr::memmem::find(head, b"Content-Length: ")
            .map(|i| {
                let digits = &head[i + 16..];
                let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
                std::str::from_utf8(&digits[..n])
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            })
            .unwrap_or(0);
        if src.len() < end + 2 + len {
            return frames;
        }
        src.advance(end + 2 + len);
        frames += 1;
    }
}

fn feed<F: FnMut(&mut BytesMut) -> usize>(data: &[u8], mut step: F) -> usize {
    let mut buf = BytesMut::with_capacity(4 * CHUNK);
    let mut n = 0;
    for chunk in data.chunks(CHUNK) {
        buf.extend_from_slice(chunk);
        n += step(&mut buf);
    }
    n
}

fn full(codec: &mut EslCodec) -> impl FnMut(&mut BytesMut) -> usize + '_ {
    move |buf| {
        let mut n = 0;
        while let Some(m) = codec.decode(buf).unwrap() {
            if let Message::Event(e) = m {
                std::hint::black_box((e.is("CHANNEL_ANSWER"), e.unique_id()));
                n += 1;
            }
        }
        n
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.sample_size(10);
    for format in ["plain", "json"] {
        let (data, events) = stream(format);
        assert_eq!(feed(&data, boundaries), events);
        assert_eq!(feed(&data, full(&mut EslCodec::default())), events);
        eprintln!(
            "{format}: {events} events, {:.1} MB, {:.0} bytes per event",
            data.len() as f64 / 1e6,
            data.len() as f64 / events as f64
        );
        group.throughput(Throughput::Elements(events as u64));
        group.bench_with_input(BenchmarkId::new("boundaries", format), &data, |b, data| {
            b.iter(|| feed(data, boundaries))
        });
        group.bench_with_input(BenchmarkId::new("full", format), &data, |b, data| {
            b.iter(|| feed(data, full(&mut EslCodec::default())))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
