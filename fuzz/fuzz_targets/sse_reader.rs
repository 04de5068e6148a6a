//! The server-sent-events reader (src/sse.rs) over arbitrary chunkings, with
//! the per-event usage adjustment the response path applies.
//!
//! Input: a byte n (at most 15 cuts), n cut offsets (u16, little-endian,
//! taken modulo the stream length), then the stream.
//!
//! Invariants: reassembly is byte-exact (events + unparsed + finish give the
//! stream back); the events do not depend on the chunking; every event is
//! one complete event on its own; an event's single data span is its data;
//! an adjusted event is still exactly one event, and it is dropped only when
//! asked and it is usage-only.

#![no_main]

use libfuzzer_sys::fuzz_target;
use openai_gateway::sse::{Event, Reader};
use openai_gateway::usage;

fn input(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let n = usize::from(n % 16).min(rest.len() / 2);
    let (cuts, stream) = rest.split_at(2 * n);
    let mut cuts: Vec<usize> = cuts
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    (cuts, stream)
}

/// Reads `bytes` as one complete stream: its events, what was left over.
fn read_whole(bytes: &[u8]) -> (Vec<Event>, Vec<u8>) {
    let mut reader = Reader::default();
    let (events, unparsed) = reader.push(bytes);
    assert!(unparsed.is_empty());
    (events, reader.finish())
}

/// `bytes` followed by the start of another event read as exactly one event.
/// (The follower settles a trailing CR: alone it could be half a CRLF.)
fn one_event(bytes: &[u8]) -> Event {
    let (mut events, rest) = read_whole(&[bytes, b"x"].concat());
    assert_eq!(events.len(), 1, "{:?}", String::from_utf8_lossy(bytes));
    assert_eq!(rest, b"x");
    events.remove(0)
}

fn check_event(event: &Event) {
    assert_eq!(&one_event(&event.raw), event, "an event is one event");
    if let Some(span) = event.single_data_span() {
        let data = event.data().expect("a data line is data");
        let joined: Vec<u8> = data.into_iter().filter(|b| *b != b'\n').collect();
        assert_eq!(joined.as_slice(), &event.raw[span]);
    }
    for drop_usage_only in [false, true] {
        let (kept, used) = usage::adjust_event(event, drop_usage_only);
        assert_eq!(used, event.data().and_then(|d| usage::adjust(&d).usage));
        match kept {
            Some(bytes) => {
                one_event(&bytes);
            }
            None => assert!(drop_usage_only && used.is_some()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (cuts, stream) = input(data);
    let mut reader = Reader::default();
    let mut out = Vec::with_capacity(stream.len());
    let mut events = Vec::new();
    let mut last = 0;
    for cut in cuts.into_iter().chain(std::iter::once(stream.len())) {
        let (some, unparsed) = reader.push(&stream[last..cut]);
        assert!(
            unparsed.is_empty(),
            "short streams are never passed on unparsed"
        );
        for event in &some {
            out.extend_from_slice(&event.raw);
        }
        events.extend(some);
        last = cut;
    }
    let tail = reader.finish();
    out.extend_from_slice(&tail);
    assert_eq!(out, stream, "byte-exact reassembly");
    let (whole, whole_tail) = read_whole(stream);
    assert_eq!(events, whole, "events do not depend on the chunking");
    assert_eq!(tail, whole_tail);
    for event in &events {
        check_event(event);
    }
});
