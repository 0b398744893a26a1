//! Fuzzes the ESL stream decoder: arbitrary bytes, split at an arbitrary point,
//! must decode to frames or a typed error, never a panic, and reading every
//! header of every event must not panic either.
#![no_main]

use bytes::BytesMut;
use fsgate::esl::codec::{EslCodec, Message};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| b as usize % (data.len().max(1)));
    let mut codec = EslCodec::with_limits(4096, 1 << 20);
    let mut buf = BytesMut::new();
    for part in [&data[..split], &data[split..]] {
        buf.extend_from_slice(part);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Message::Event(e))) => {
                    for (name, value) in e.headers() {
                        std::hint::black_box((name, value));
                    }
                    std::hint::black_box((e.body_text(), e.sequence(), e.hangup_cause(), e.get_array("x")));
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
