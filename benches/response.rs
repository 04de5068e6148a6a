//! Native microbenchmarks of the response path (`make bench-micro`), as
//! throughput: what the filter computes on a model's answer. Compiled with
//! the release profile's settings, as the `.wasm` is (`opt-level = "z"`).
//!
//! - `sse/*`: a streamed chat completion (1,000 `chat.completion.chunk`
//!   events, the usage-only chunk, `data: [DONE]`, about 300 KB) fed to the
//!   event reader in chunks, each event then adjusted as the host adapter does
//!   (`[DONE]` check, `usage::adjust_event`, re-assembly, comparison with the
//!   chunk). OpenAI-style chunks carry `system_fingerprint` (removed from
//!   every event: every event is rewritten); vLLM-style chunks do not (every
//!   event passes byte for byte). Chunked by 16 KiB (a backend writing faster
//!   than the client reads) or one event per chunk (a token stream in real
//!   time). `reader` is the framing alone.
//! - `event/*`: `usage::adjust_event` on one content chunk and on the
//!   usage-only chunk.
//! - `json/*`: `usage::adjust` on a whole 1 KB `chat.completion` and on an
//!   embeddings response (8 vectors of 1,024 floats).

// Bench code: a failed unwrap is a broken benchmark set-up.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

// criterion is a native-only dev-dependency: on wasm32 (clippy --all-targets)
// this bench is an empty program.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod common;

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(native::benches);

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::common::{config, Criterion};
    use criterion::{criterion_group, BenchmarkId, Throughput};
    use openai_gateway::sse::{Event, Reader};
    use openai_gateway::usage::{self, Usage};
    use std::hint::black_box;

    const EVENTS: usize = 1000;
    const WORDS: [&str; 8] = [
        " The",
        " gateway",
        " forwards",
        " tokens",
        " as",
        " they",
        " arrive",
        ".",
    ];

    /// One streamed chat completion, as the backend sends it.
    fn stream(fingerprint: bool) -> Vec<u8> {
        let fp = if fingerprint {
            r#""system_fingerprint":"fp_f9f4fb6dbf","#
        } else {
            ""
        };
        let head = format!(
            r#"data: {{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"meta-llama/Llama-3.1-8B-Instruct",{fp}"choices":["#
        );
        let mut out = Vec::new();
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(br#"{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"#);
        out.extend_from_slice(b"\n\n");
        for i in 0..EVENTS {
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(
                format!(
                    r#"{{"index":0,"delta":{{"content":"{}"}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#,
                    WORDS[i % WORDS.len()]
                )
                .as_bytes(),
            );
            out.extend_from_slice(b"\n\n");
        }
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(
            br#"{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
        );
        out.extend_from_slice(b"\n\n");
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(usage_tail().as_bytes());
        out.extend_from_slice(b"\n\n");
        out.extend_from_slice(b"data: [DONE]\n\n");
        out
    }

    fn usage_tail() -> String {
        format!(
            r#"],"usage":{{"prompt_tokens":1200,"completion_tokens":{},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":1024,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}}}"#,
            EVENTS + 2,
            EVENTS + 1202
        )
    }

    /// The stream cut every `size` bytes.
    fn by_size(stream: &[u8], size: usize) -> Vec<Vec<u8>> {
        stream.chunks(size).map(<[u8]>::to_vec).collect()
    }

    /// The stream cut after each event.
    fn by_event(stream: &[u8]) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        let mut start = 0;
        for (i, w) in stream.windows(2).enumerate() {
            if w == b"\n\n" {
                chunks.push(stream[start..i + 2].to_vec());
                start = i + 2;
            }
        }
        chunks
    }

    /// What the host adapter does with each response chunk of a stream
    /// (`host.rs`, `BodyMode::Events`), minus the host calls. Returns the
    /// bytes sent on and the last usage seen.
    fn adjust_stream(chunks: &[Vec<u8>], hide_usage_chunk: bool) -> (usize, Option<Usage>, bool) {
        let mut reader = Reader::default();
        let mut sent = 0usize;
        let mut last = None;
        let mut done = false;
        for chunk in chunks {
            let (events, unparsed) = reader.push(chunk);
            let mut out = Vec::with_capacity(chunk.len());
            for event in &events {
                if event.data().is_some_and(|d| d == b"[DONE]") {
                    done = true;
                }
                let (kept, usage) = usage::adjust_event(event, hide_usage_chunk);
                if usage.is_some() {
                    last = usage;
                }
                if let Some(bytes) = kept {
                    out.extend_from_slice(&bytes);
                }
            }
            out.extend_from_slice(&unparsed);
            // The host replaces the chunk only when it changed.
            sent += if out != *chunk {
                out.len()
            } else {
                chunk.len()
            };
        }
        sent += reader.finish().len();
        (sent, last, done)
    }

    fn read_only(chunks: &[Vec<u8>]) -> usize {
        let mut reader = Reader::default();
        let mut events = 0;
        for chunk in chunks {
            events += reader.push(chunk).0.len();
        }
        events
    }

    fn sse(c: &mut Criterion) {
        let mut group = c.benchmark_group("sse");
        for (style, fingerprint) in [("openai", true), ("vllm", false)] {
            let body = stream(fingerprint);
            group.throughput(Throughput::Bytes(body.len() as u64));
            for (chunking, chunks) in [
                ("16KiB", by_size(&body, 16 << 10)),
                ("per-event", by_event(&body)),
            ] {
                // The benchmark measures the path it claims.
                let (sent, usage, done) = adjust_stream(&chunks, false);
                assert!(done);
                assert_eq!(usage.map(|u| u.cached_tokens), Some(1024));
                let removed = if fingerprint {
                    (EVENTS + 3) * r#""system_fingerprint":"fp_f9f4fb6dbf","#.len()
                } else {
                    0
                };
                // Only the usage-only chunk gains the cache fields.
                let added =
                    r#","cache_read_input_tokens":1024,"cache_creation_input_tokens":0"#.len();
                assert_eq!(sent, body.len() - removed + added, "{style} {chunking}");
                if style == "openai" && chunking == "16KiB" {
                    group.bench_with_input(
                        BenchmarkId::new("reader", format!("{style}, {chunking}")),
                        &chunks,
                        |b, chunks| b.iter(|| read_only(black_box(chunks))),
                    );
                }
                group.bench_with_input(
                    BenchmarkId::new("adjust", format!("{style}, {chunking}")),
                    &chunks,
                    |b, chunks| b.iter(|| adjust_stream(black_box(chunks), false)),
                );
            }
        }
        // One 1 MiB event trickling in 256-byte chunks (a hostile or very slow
        // backend): the reader must stay linear in the bytes, not quadratic.
        let mut big = b"data: ".to_vec();
        big.resize((1 << 20) - 8, b'x');
        big.extend_from_slice(b"\n\n");
        let trickle = by_size(&big, 256);
        assert_eq!(read_only(&trickle), 1);
        group.throughput(Throughput::Bytes(big.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("reader", "one 1 MiB event, 256 B chunks"),
            &trickle,
            |b, chunks| b.iter(|| read_only(black_box(chunks))),
        );
        group.finish();
    }

    fn events(c: &mut Criterion) {
        let body = stream(true);
        let mut reader = Reader::default();
        let (all, _) = reader.push(&body);
        let content: &Event = &all[1];
        let usage_only: &Event = &all[all.len() - 2];
        assert!(usage::adjust_event(usage_only, true).0.is_none());
        let mut group = c.benchmark_group("event");
        for (name, event, hide) in [
            ("content chunk", content, false),
            ("usage-only chunk, shown", usage_only, false),
            ("usage-only chunk, hidden", usage_only, true),
        ] {
            group.throughput(Throughput::Bytes(event.raw.len() as u64));
            group.bench_with_input(
                BenchmarkId::new("adjust_event", format!("{name}, {} B", event.raw.len())),
                event,
                |b, event| b.iter(|| usage::adjust_event(black_box(event), hide)),
            );
        }
        group.finish();
    }

    /// A non-streamed chat completion of about 1 KB, OpenAI's shape.
    fn chat_completion() -> Vec<u8> {
        let content = "The gateway checked the request, routed it by model and forwarded it. \
            The backend answered; the gateway adjusted the usage and removed the fingerprint. "
            .repeat(4);
        format!(
            r#"{{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}","refusal":null,"annotations":[]}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}}"#
        )
        .into_bytes()
    }

    /// An embeddings response: 8 vectors of 1,024 floats.
    fn embeddings_response() -> Vec<u8> {
        let vector: Vec<String> = (0..1024)
            .map(|i| format!("{:.8}", ((i * 7919) % 2000) as f64 / 1000.0 - 1.0))
            .collect();
        let vector = vector.join(",");
        let data: Vec<String> = (0..8)
            .map(|i| format!(r#"{{"object":"embedding","index":{i},"embedding":[{vector}]}}"#))
            .collect();
        format!(
            r#"{{"object":"list","data":[{}],"model":"bge-m3","usage":{{"prompt_tokens":96,"total_tokens":96}}}}"#,
            data.join(",")
        )
        .into_bytes()
    }

    fn json_responses(c: &mut Criterion) {
        let mut group = c.benchmark_group("json");
        for (name, body) in [
            ("chat.completion", chat_completion()),
            ("embeddings", embeddings_response()),
        ] {
            let adjusted = usage::adjust(&body);
            assert!(
                adjusted.usage.is_some() && adjusted.bytes.is_some(),
                "{name}"
            );
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_with_input(
                BenchmarkId::new("adjust", format!("{name}, {} B", body.len())),
                &body,
                |b, body| b.iter(|| usage::adjust(black_box(body))),
            );
        }
        group.finish();
    }

    criterion_group! {
        name = benches;
        config = config();
        targets = sse, events, json_responses
    }
}
