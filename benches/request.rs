//! Native microbenchmarks of the request decision path (`make bench-micro`):
//! what the filter computes between "the whole body has arrived" and "forward
//! it" or "reply", per body size, as throughput. The same functions run
//! inside the `.wasm`. Compiled with the release profile's settings, as the
//! `.wasm` is (`opt-level = "z"`); `CARGO_PROFILE_BENCH_OPT_LEVEL=3 make
//! bench-micro` shows what speed-first code generation would give.
//!
//! - `headers/chat`: the header stage (authentication, endpoint, edits).
//! - `chat_single/body`: the body stage for `bench/run.py`'s chat body (one
//!   user message of ASCII filler), so it compares with `make bench`.
//! - `chat_conversation/*`: a conversation as chat clients send it (system
//!   prompt, a tool, turns with tool calls, escapes and non-ASCII text, a
//!   model alias, `stream: true` without `stream_options`, so the body gets
//!   two edits): the whole decision (headers + body), the body stage, then
//!   its steps alone: the JSON parse, the field validation, the token estimate.
//! - `embeddings/whole`: an embeddings request (default `encoding_format` added).

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
    use openai_gateway::endpoints::Endpoint;
    use openai_gateway::headers::Headers;
    use openai_gateway::pipeline::{AfterBody, AfterHeaders, PendingBody};
    use openai_gateway::{json, tokens, validate, Gateway};
    use serde_json::{json, Value};
    use std::hint::black_box;

    const KEY: &str = "sk-bench";
    const SIZES: [(&str, usize); 3] = [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)];

    /// The demo's catalog (`envoy/demo.yaml`): an alias, an upstream name,
    /// capabilities, a backend credential, ids on.
    fn gateway() -> Gateway {
        let digest: String = openai_gateway::auth::key_digest(KEY.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let config = json!({
            "api_keys": [{"id": "bench", "sha256": digest}],
            "models": [
                {"id": "llama-3.1-8b-instruct", "category": "text", "backend": "backend-a",
                 "aliases": ["gpt-4o-mini"], "capabilities": ["tool_use", "json_schema"],
                 "upstream_model": "meta-llama/Llama-3.1-8B-Instruct"},
                {"id": "qwen2.5-coder-7b", "category": "code", "backend": "backend-a"},
                {"id": "bge-m3", "category": "embeddings", "backend": "backend-b"},
                {"id": "whisper-large-v3", "category": "audio", "backend": "backend-b"}
            ],
            "backends": [{"name": "backend-b", "authorization": "Bearer backend-b-token"}],
            "id_secret": "bench-id-secret-bench-id-secret-0123456789"
        });
        Gateway::try_from(config.to_string().as_bytes()).unwrap()
    }

    fn headers(path: &str) -> Headers {
        [
            (":method", "POST"),
            (":path", path),
            (":authority", "gateway"),
            (":scheme", "http"),
            ("authorization", "Bearer sk-bench"),
            ("content-type", "application/json"),
            ("user-agent", "OpenAI/Python 1.109.1"),
            ("accept", "application/json"),
            ("x-stainless-lang", "python"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect()
    }

    /// `bench/run.py`'s chat body: one user message of "lorem ipsum " filler.
    fn chat_single(size: usize) -> Vec<u8> {
        let mut base = json!({"model": "llama-3.1-8b-instruct",
            "messages": [{"role": "user", "content": ""}], "max_tokens": 16});
        let filler = size.saturating_sub(base.to_string().len());
        base["messages"][0]["content"] = Value::from("lorem ipsum ".repeat(filler / 12));
        serde_json::to_vec(&base).unwrap()
    }

    const PROSE: &str = "The gateway reads every request before a backend sees it. \
        It checks each field against OpenAI's rules, counts the prompt's tokens, \
        and routes by model.\nCafé, naïve, 日本語 and emoji 🚀 appear in real prompts too; \
        so do \"quoted\" words and \\backslashes\\.\n";

    /// One turn of a conversation: a question, a tool call and its result,
    /// an answer, a question in content parts.
    fn turn(turn: usize) -> Value {
        match turn % 5 {
            0 => json!({"role": "user", "content": format!("Question {turn}: {PROSE}")}),
            1 => json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": format!("call_{turn:08}"), "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}}]}),
            2 => json!({"role": "tool", "tool_call_id": format!("call_{:08}", turn - 1),
                "content": "{\"temperature\": 21, \"sky\": \"clear\", \"wind_kmh\": 12}"}),
            3 => json!({"role": "assistant", "content": format!("Answer {turn}: {PROSE}{PROSE}")}),
            _ => json!({"role": "user", "content": [
                {"type": "text", "text": PROSE},
                {"type": "text", "text": "Thanks, and one more thing."}]}),
        }
    }

    /// A chat conversation of exactly `size` bytes (at least about 600): a
    /// system prompt, a tool, as many whole turns as fit, then a last user
    /// question padded to the size.
    fn chat_conversation(size: usize) -> Vec<u8> {
        let tools = json!([{"type": "function", "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                "required": ["city"]}}}]);
        let mut messages = vec![json!({"role": "system",
            "content": "You are a helpful assistant. Answer briefly and cite the tools you used."})];
        let mut body = json!({"model": "gpt-4o-mini", "stream": true, "temperature": 0.7,
            "max_tokens": 512, "tools": tools, "messages": messages});
        // Lengths as serialized: each further message adds itself and a comma.
        let mut len = body.to_string().len();
        let last = |text: &str| json!({"role": "user", "content": text});
        let last_overhead = last("").to_string().len() + 1;
        for first in (0..).step_by(5) {
            let five: Vec<Value> = (first..first + 5).map(turn).collect();
            let added: usize = five.iter().map(|m| m.to_string().len() + 1).sum();
            if len + added + last_overhead > size {
                break;
            }
            len += added;
            messages.extend(five);
        }
        let filler = size.saturating_sub(len + last_overhead);
        let text = format!(
            "{}{}",
            "lorem ipsum ".repeat(filler / 12),
            ".".repeat(filler % 12)
        );
        messages.push(last(&text));
        body["messages"] = Value::from(messages);
        serde_json::to_vec(&body).unwrap()
    }

    fn embeddings(inputs: usize) -> Vec<u8> {
        let input: Vec<String> = (0..inputs)
            .map(|i| format!("Sentence number {i} to embed, about the weather in Paris."))
            .collect();
        serde_json::to_vec(&json!({"model": "bge-m3", "input": input})).unwrap()
    }

    /// The body stage's input, from a real header stage.
    fn pending(g: &Gateway, path: &str) -> PendingBody {
        match g.on_request_headers(&headers(path), false).next {
            AfterHeaders::ReadBody(p) => p,
            other => panic!("expected ReadBody, got {other:?}"),
        }
    }

    /// The whole decision the filter takes for one request.
    fn decide(g: &Gateway, headers: &Headers, body: &[u8]) -> AfterBody {
        let outcome = g.on_request_headers(headers, false);
        match &outcome.next {
            AfterHeaders::ReadBody(p) => g.on_request_body(p, body),
            other => panic!("expected ReadBody, got {other:?}"),
        }
    }

    /// A benchmark measures the path it claims: the request is forwarded,
    /// and rewritten when `rewritten`.
    fn assert_forwarded(after: &AfterBody, rewritten: bool) {
        match after {
            AfterBody::Forward { new_body, .. } => assert_eq!(new_body.is_some(), rewritten),
            AfterBody::Reply(r) => panic!(
                "the bench body was refused: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
        }
    }

    fn chat_single_body(c: &mut Criterion) {
        let g = gateway();
        let p = pending(&g, "/v1/chat/completions");
        let mut group = c.benchmark_group("chat_single");
        for (label, size) in SIZES {
            let body = chat_single(size);
            // The model has an upstream name: the body is rewritten.
            assert_forwarded(&g.on_request_body(&p, &body), true);
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_with_input(BenchmarkId::new("body", label), &body, |b, body| {
                b.iter(|| g.on_request_body(black_box(&p), black_box(body)))
            });
        }
        group.finish();
    }

    fn chat_conversation_steps(c: &mut Criterion) {
        let g = gateway();
        let h = headers("/v1/chat/completions");
        let p = pending(&g, "/v1/chat/completions");
        let (_, model) = g.catalog.resolve("gpt-4o-mini").unwrap();
        let mut group = c.benchmark_group("chat_conversation");
        for (label, size) in SIZES {
            let body = chat_conversation(size);
            assert_eq!(body.len(), size);
            assert_forwarded(&decide(&g, &h, &body), true);
            let document = json::parse_document(&body).unwrap();
            validate::check(Endpoint::ChatCompletions, &document, model).unwrap();
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_with_input(BenchmarkId::new("whole", label), &body, |b, body| {
                b.iter(|| decide(&g, black_box(&h), black_box(body)))
            });
            group.bench_with_input(BenchmarkId::new("body", label), &body, |b, body| {
                b.iter(|| g.on_request_body(black_box(&p), black_box(body)))
            });
            group.bench_with_input(BenchmarkId::new("parse", label), &body, |b, body| {
                b.iter(|| json::parse_document(black_box(body)))
            });
            group.bench_with_input(
                BenchmarkId::new("validate", label),
                &document,
                |b, document| {
                    b.iter(|| {
                        validate::check(Endpoint::ChatCompletions, black_box(document), model)
                    })
                },
            );
            group.bench_with_input(
                BenchmarkId::new("estimate", label),
                &document,
                |b, document| {
                    b.iter(|| {
                        tokens::estimate(Endpoint::ChatCompletions, black_box(document), 4096)
                    })
                },
            );
        }
        group.finish();
    }

    fn header_stage(c: &mut Criterion) {
        let g = gateway();
        let h = headers("/v1/chat/completions");
        let mut group = c.benchmark_group("headers");
        group.bench_function("chat", |b| {
            b.iter(|| g.on_request_headers(black_box(&h), false))
        });
        group.finish();
    }

    fn embeddings_whole(c: &mut Criterion) {
        let g = gateway();
        let h = headers("/v1/embeddings");
        let mut group = c.benchmark_group("embeddings");
        // bench/run.py's 8 inputs, and a 1,024-input batch (~64 KiB).
        for inputs in [8usize, 1024] {
            let body = embeddings(inputs);
            // `encoding_format` is added: the body is rewritten.
            assert_forwarded(&decide(&g, &h, &body), true);
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_with_input(
                BenchmarkId::new("whole", format!("{inputs} inputs, {} B", body.len())),
                &body,
                |b, body| b.iter(|| decide(&g, black_box(&h), black_box(body))),
            );
        }
        group.finish();
    }

    criterion_group! {
        name = benches;
        config = config();
        targets = header_stage, chat_single_body, chat_conversation_steps, embeddings_whole
    }
}
