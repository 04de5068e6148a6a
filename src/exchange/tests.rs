//! Whole exchanges through a recording host: what the client and the
//! backend see, and the exact host calls each stage makes.

use super::recording::RecordingHost;
use super::*;
use crate::host::Status;
use crate::test_support::gateway;
use serde_json::Value;
use std::collections::BTreeMap;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn counts(list: &[(&'static str, usize)]) -> BTreeMap<&'static str, usize> {
    list.iter().copied().collect()
}

fn exchange() -> Exchange {
    Exchange::new(7, Some(Rc::new(gateway())), Rc::new(Counters::default()))
}

fn chat_request(host: &RecordingHost, body: &str) {
    *host.request_headers.borrow_mut() = pairs(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gateway"),
        ("authorization", "Bearer sk-demo"),
        ("content-type", "application/json"),
        ("content-length", &body.len().to_string()),
    ]);
}

/// Delivers a request body in chunks as Envoy does while the headers are
/// held: the buffer grows, each call sees the total so far.
fn deliver_request_body(
    ex: &mut Exchange,
    host: &RecordingHost,
    body: &[u8],
    chunks: usize,
) -> Vec<Flow> {
    let step = body.len().div_ceil(chunks).max(1);
    let mut flows = Vec::new();
    for (i, chunk) in body.chunks(step).enumerate() {
        host.request_body.borrow_mut().extend_from_slice(chunk);
        let size = host.request_body.borrow().len();
        flows.push(ex.on_request_body(host, size, i + 1 == body.chunks(step).count()));
    }
    flows
}

/// Delivers response chunks: a held (paused) body accumulates in the
/// buffer; a passed one is what the client receives, as the exchange left it.
fn deliver_response_body(ex: &mut Exchange, host: &RecordingHost, chunks: &[&[u8]]) -> Vec<u8> {
    let mut client = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        host.response_body.borrow_mut().extend_from_slice(chunk);
        let size = host.response_body.borrow().len();
        let last = i + 1 == chunks.len();
        if ex.on_response_body(host, size, last) == Flow::Continue {
            client.extend(host.response_body.borrow_mut().drain(..));
        }
    }
    client
}

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}"#;

const CHAT_RESPONSE: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"meta-llama/Llama-3.1-8B-Instruct","system_fingerprint":"fp_1","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;

fn ok_response_headers(host: &RecordingHost, content_type: &str) {
    *host.response_headers.borrow_mut() = pairs(&[
        (":status", "200"),
        ("content-type", content_type),
        ("content-length", "300"),
        ("x-ratelimit-limit", "60, 60;w=60"),
        ("x-ratelimit-remaining", "59"),
        ("x-ratelimit-reset", "60"),
    ]);
}

#[test]
fn a_chat_exchange_end_to_end() {
    let host = RecordingHost::default();
    host.now_ns.set(1_000 * MS);
    let mut ex = exchange();
    chat_request(&host, CHAT);
    host.request_headers
        .borrow_mut()
        .push(("x-gateway-backend".into(), b"spoofed".to_vec()));

    assert_eq!(ex.on_request_headers(&host, false), Flow::Pause);
    let flows = deliver_request_body(&mut ex, &host, CHAT.as_bytes(), 2);
    assert_eq!(flows, [Flow::Pause, Flow::Continue]);

    // What the backend receives: no client key, the gateway's routing
    // headers, the upstream model name, and a content-length that fits.
    let request = |name| host.header_value(HeaderMap::Request, name);
    assert_eq!(request("authorization"), None);
    assert_eq!(request("x-gateway-backend").as_deref(), Some("backend-a"));
    assert_eq!(
        request("x-gateway-model").as_deref(),
        Some("llama-3.1-8b-instruct")
    );
    assert_eq!(request("x-gateway-key-id").as_deref(), Some("demo"));
    let forwarded: Value = serde_json::from_slice(&host.request_body.borrow()).unwrap();
    assert_eq!(forwarded["model"], "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(
        request("content-length"),
        Some(host.request_body.borrow().len().to_string())
    );
    assert_eq!(host.foreign_calls.borrow().len(), 1);
    assert_eq!(host.foreign_calls.borrow()[0].0, "clear_route_cache");
    assert!(host.reply.borrow().is_none());
    let request_calls = host.counts();

    host.reset_calls();
    ok_response_headers(&host, "application/json");
    assert_eq!(ex.on_response_headers(&host), Flow::Continue);
    let response = |name| host.header_value(HeaderMap::Response, name);
    assert_eq!(
        response("content-length"),
        None,
        "the adjusted body is re-framed"
    );
    assert_eq!(response("x-ratelimit-limit"), None);
    assert_eq!(
        response("x-ratelimit-limit-requests").as_deref(),
        Some("60")
    );
    let (head, tail) = CHAT_RESPONSE.as_bytes().split_at(100);
    let client = deliver_response_body(&mut ex, &host, &[head, tail]);
    let client: Value = serde_json::from_slice(&client).unwrap();
    assert!(client.get("system_fingerprint").is_none());
    assert_eq!(client["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(client["choices"][0]["message"]["content"], "Hello!");
    assert_eq!(
        client["model"], "llama-3.1-8b-instruct",
        "the client sees the catalog id, not the backend's name"
    );
    let response_calls = host.counts();

    host.reset_calls();
    host.now_ns.set(1_250 * MS);
    ex.on_log(&host);
    // Counting costs no host call; the histograms cost the clock and one
    // call a sample (and their definitions, once).
    assert_eq!(
        host.counts(),
        counts(&[("now_ns", 1), ("define_histogram", 3), ("record", 3)])
    );
    let labels = ".key_id.demo.model.llama-3_1-8b-instruct.backend.backend-a";
    assert_eq!(
        host.all_samples(),
        vec![
            (
                format!("openai_gateway_request_duration_milliseconds{labels}"),
                250
            ),
            (
                format!("openai_gateway_token_usage{labels}.token_type.input"),
                12
            ),
            (
                format!("openai_gateway_token_usage{labels}.token_type.output"),
                3
            ),
        ],
        "a whole answer has no time to first token"
    );
    host.reset_calls();
    ex.counters.flush(&host);
    assert_eq!(
        host.counter("openai_gateway_requests_total.key_id.demo.model.llama-3_1-8b-instruct.status_class.2xx.error_code.none"),
        Some(1)
    );
    assert_eq!(
        host.counter("openai_gateway_prompt_tokens_total.key_id.demo.model.llama-3_1-8b-instruct"),
        Some(12)
    );
    assert_eq!(
        host.properties
            .borrow()
            .get("openai_gateway_usage")
            .map(Vec::as_slice),
        Some(&b"prompt_tokens=12 completion_tokens=3 cached_tokens=0"[..])
    );

    // The host calls of each stage, exactly. The request's header edits:
    // the client's key out; the key's id, the cost, the backend (over the
    // spoofed one), the model and content-length in; the internal headers
    // the client did not send are not removed one by one. The response's:
    // Envoy's three draft rate-limit headers and content-length out,
    // OpenAI's three in.
    assert_eq!(
        request_calls,
        counts(&[
            ("headers", 1),
            ("now_ns", 1),
            ("body", 1),
            ("set_body", 1),
            ("remove_header", 1),
            ("set_header", 5),
            ("call_foreign", 1),
        ])
    );
    assert_eq!(
        response_calls,
        counts(&[
            ("headers", 1),
            ("remove_header", 4),
            ("set_header", 3),
            ("body", 1),
            ("set_body", 1),
            ("set_property", 1),
        ])
    );
    // At the flush, three increments: no cached tokens, and Envoy refuses
    // an increment of 0.
    assert_eq!(
        host.counts(),
        counts(&[("define_counter", 4), ("increment", 3)])
    );
}

const MS: u64 = 1_000_000;

/// The calls an exchange made, less the clock and the histograms'.
fn without_histograms(host: &RecordingHost) -> BTreeMap<&'static str, usize> {
    let mut calls = host.counts();
    for name in ["now_ns", "define_histogram", "record"] {
        calls.remove(name);
    }
    calls
}

/// A stream whose events arrive one a chunk, at known times: the
/// histograms get its time to first token and its pace.
#[test]
fn a_stream_records_its_latency_from_the_clock() {
    let body = r#"{"model":"llama-3.1-8b-instruct","messages":[{"role":"user","content":"Count."}],"stream":true}"#;
    let host = RecordingHost::default();
    let mut ex = exchange();
    host.now_ns.set(10_000 * MS);
    chat_request(&host, body);
    ex.on_request_headers(&host, false);
    host.now_ns.set(10_002 * MS);
    deliver_request_body(&mut ex, &host, body.as_bytes(), 1);
    ok_response_headers(&host, "text/event-stream");
    host.now_ns.set(10_400 * MS);
    ex.on_response_headers(&host);
    // A role-only first chunk is not content: it leaves no mark.
    let role = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
    deliver_response_body(&mut ex, &host, &[role.as_bytes()]);
    host.reset_calls();
    // Twenty content events: the first at 10,500 ms, then one every 50 ms.
    let stream = stream_events(true);
    let text = std::str::from_utf8(&stream).unwrap();
    let events: Vec<&str> = text.split_inclusive("\n\n").collect();
    for (i, event) in events.iter().enumerate() {
        let at = 10_500 + 50 * (i.min(19) as u64);
        host.now_ns.set(at * MS + 123);
        let last = i + 1 == events.len();
        host.response_body
            .borrow_mut()
            .extend_from_slice(event.as_bytes());
        let size = host.response_body.borrow().len();
        ex.on_response_body(&host, size, last);
        host.response_body.borrow_mut().clear();
    }
    // One clock read a chunk with content, none for the usage and [DONE].
    assert_eq!(host.counts().get("now_ns"), Some(&20));
    host.reset_calls();
    host.now_ns.set(11_600 * MS);
    ex.on_log(&host);
    let labels = ".key_id.demo.model.llama-3_1-8b-instruct.backend.backend-a";
    let sample = |name: &str| host.samples(&format!("openai_gateway_{name}{labels}"));
    assert_eq!(sample("request_duration_milliseconds"), Some(vec![1_600]));
    assert_eq!(sample("time_to_first_token_milliseconds"), Some(vec![500]));
    // 19 gaps of 50 ms over the 19 tokens after the first.
    assert_eq!(
        sample("time_per_output_token_microseconds"),
        Some(vec![50_000])
    );
    assert_eq!(
        host.samples(&format!(
            "openai_gateway_token_usage{labels}.token_type.output"
        )),
        Some(vec![20])
    );
}

/// Only requests a backend answered are timed: a refusal reads no clock, a
/// limiter's 429 and Envoy's own 503 record nothing.
#[test]
fn refusals_and_local_replies_are_not_timed() {
    let host = RecordingHost::default();
    let mut ex = exchange();
    chat_request(&host, CHAT);
    host.request_headers.borrow_mut()[3].1 = b"Bearer sk-wrong".to_vec();
    ex.on_request_headers(&host, false);
    deliver_request_body(&mut ex, &host, CHAT.as_bytes(), 1);
    ex.on_log(&host);
    assert_eq!(host.counts().get("now_ns"), None);
    assert!(host.all_samples().is_empty());

    for (status, details) in [
        ("429", "local_rate_limited"),
        (
            "503",
            "upstream_reset_before_response_started{connection_failure}",
        ),
    ] {
        let mut ex = exchange();
        let (host, _) = settled(&mut ex, status, details, "");
        assert!(host.all_samples().is_empty(), "{status}");
    }
    // The backend's own error is timed (its latency is the backend's).
    let mut ex = exchange();
    let (host, _) = settled(
        &mut ex,
        "500",
        "via_upstream",
        r#"{"error":{"message":"x"}}"#,
    );
    let names: Vec<String> = host.all_samples().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("openai_gateway_request_duration_milliseconds."));
}

/// `metrics.histograms: false`: no clock read, no sample; the counters stay.
#[test]
fn the_histograms_can_be_turned_off() {
    let mut config = crate::test_support::sample();
    config["metrics"] = serde_json::json!({"histograms": false});
    let gateway = crate::test_support::compile(&config).unwrap();
    let mut ex = Exchange::new(7, Some(Rc::new(gateway)), Rc::new(Counters::default()));
    let host = RecordingHost::default();
    chat_request(&host, CHAT);
    ex.on_request_headers(&host, false);
    deliver_request_body(&mut ex, &host, CHAT.as_bytes(), 1);
    ok_response_headers(&host, "application/json");
    ex.on_response_headers(&host);
    deliver_response_body(&mut ex, &host, &[CHAT_RESPONSE.as_bytes()]);
    ex.on_log(&host);
    assert!(host.all_samples().is_empty());
    assert_eq!(host.counts().get("now_ns"), None, "{:?}", host.counts());
    assert_eq!(host.total_calls(), 21, "the budget before the histograms");
    ex.counters.flush(&host);
    assert!(host
        .counters
        .borrow()
        .iter()
        .any(|(n, v)| n.starts_with("openai_gateway_prompt_tokens_total.") && *v == 12));
}

/// `metrics.per_key: false`: no metric names a key.
#[test]
fn the_key_label_can_be_dropped() {
    let mut config = crate::test_support::sample();
    config["metrics"] = serde_json::json!({"per_key": false});
    let gateway = crate::test_support::compile(&config).unwrap();
    let mut ex = Exchange::new(7, Some(Rc::new(gateway)), Rc::new(Counters::default()));
    let (host, _) = settled(&mut ex, "200", "", CHAT_RESPONSE);
    ex.counters.flush(&host);
    let samples = host.all_samples();
    assert!(!samples.is_empty());
    assert!(
        samples.iter().all(|(n, _)| !n.contains("key_id")),
        "{samples:?}"
    );
    let counters = host.counters.borrow();
    assert!(!counters.is_empty());
    assert!(
        counters.iter().all(|(n, _)| !n.contains("key_id")),
        "{counters:?}"
    );
    // An unknown field is refused, naming it.
    config["metrics"] = serde_json::json!({"per_key": false, "per_model": false});
    let error = crate::test_support::compile(&config).unwrap_err();
    assert!(error.to_string().contains("per_model"), "{error}");
}

/// Twenty content events, the usage chunk the gateway asked for, `[DONE]`.
fn stream_events(done: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..20 {
        out.extend_from_slice(
            format!(
                "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"meta-llama/Llama-3.1-8B-Instruct\",\"system_fingerprint\":\"fp\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"w{i} \"}}}}]}}\n\n"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":20,\"total_tokens\":29}}\n\n");
    if done {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
    out
}

fn streamed_exchange(done: bool) -> (RecordingHost, Exchange, Vec<u8>) {
    let body = r#"{"model":"llama-3.1-8b-instruct","messages":[{"role":"user","content":"Count."}],"stream":true}"#;
    let host = RecordingHost::default();
    let mut ex = exchange();
    chat_request(&host, body);
    assert_eq!(ex.on_request_headers(&host, false), Flow::Pause);
    assert_eq!(
        deliver_request_body(&mut ex, &host, body.as_bytes(), 1),
        [Flow::Continue]
    );
    // The gateway always asks for usage (billing).
    let forwarded: Value = serde_json::from_slice(&host.request_body.borrow()).unwrap();
    assert_eq!(forwarded["stream_options"]["include_usage"], true);

    host.reset_calls();
    ok_response_headers(&host, "text/event-stream");
    assert_eq!(ex.on_response_headers(&host), Flow::Continue);
    // Chunks that split events anywhere, as a network does.
    let stream = stream_events(done);
    let chunks: Vec<&[u8]> = stream.chunks(97).collect();
    let client = deliver_response_body(&mut ex, &host, &chunks);
    (host, ex, client)
}

#[test]
fn a_streamed_exchange_end_to_end() {
    let (host, mut ex, client) = streamed_exchange(true);
    let text = String::from_utf8(client).unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    // Every content event, in order, without system_fingerprint; the usage
    // chunk the client did not ask for is hidden; [DONE] ends it.
    assert_eq!(events.len(), 21, "{text}");
    for (i, event) in events.iter().take(20).enumerate() {
        assert!(event.contains(&format!("\"w{i} \"")), "{event}");
        assert!(!event.contains("system_fingerprint"));
        // The catalog id, also in the events split across chunks.
        assert!(
            event.contains(r#""model":"llama-3.1-8b-instruct""#),
            "{event}"
        );
    }
    assert_eq!(events[20], "data: [DONE]");
    assert!(!text.contains("\"usage\""));
    let calls = host.counts();
    // One read per chunk; a replacement only where the chunk changed.
    let chunks = stream_events(true).len().div_ceil(97);
    assert_eq!(calls["body"], chunks);
    assert!(calls["set_body"] <= chunks);
    assert_eq!(calls["set_property"], 1);
    assert_eq!(calls["headers"], 1);

    host.reset_calls();
    ex.on_log(&host);
    ex.counters.flush(&host);
    assert_eq!(
        host.counter(
            "openai_gateway_completion_tokens_total.key_id.demo.model.llama-3_1-8b-instruct"
        ),
        Some(20)
    );
}

#[test]
fn a_stream_cut_short_ends_with_an_error_event() {
    let (_, _, client) = streamed_exchange(false);
    let text = String::from_utf8(client).unwrap();
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let error: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ended the stream"));
}

#[test]
fn a_rejected_request_is_answered_without_reaching_a_backend() {
    let host = RecordingHost::default();
    let mut ex = exchange();
    chat_request(&host, CHAT);
    host.request_headers.borrow_mut()[3].1 = b"Bearer sk-wrong".to_vec();
    assert_eq!(ex.on_request_headers(&host, false), Flow::Pause);
    // The small body is read first, so Envoy can keep the connection.
    assert!(host.reply.borrow().is_none());
    assert_eq!(
        deliver_request_body(&mut ex, &host, CHAT.as_bytes(), 2),
        [Flow::Pause, Flow::Pause]
    );
    let reply = host.reply.borrow().clone().unwrap();
    assert_eq!(reply.status, 401);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    // Nothing more happens on this exchange: no body read, no routing.
    assert_eq!(ex.on_response_headers(&host), Flow::Continue);
    assert!(host.foreign_calls.borrow().is_empty());
    // No internal header to strip, no key to name: no header edit at all,
    // and the body is never read into the VM.
    assert_eq!(host.counts(), counts(&[("headers", 1), ("send_reply", 1)]));
    host.reset_calls();
    ex.on_log(&host);
    ex.counters.flush(&host);
    assert_eq!(
        host.counter("openai_gateway_requests_total.key_id.none.model.none.status_class.4xx.error_code.invalid_api_key"),
        Some(1)
    );
}

#[test]
fn a_refusal_does_not_wait_for_a_large_or_unannounced_body() {
    for length in [Some("65537"), None] {
        let host = RecordingHost::default();
        let mut ex = exchange();
        chat_request(&host, CHAT);
        host.request_headers.borrow_mut()[3].1 = b"Bearer sk-wrong".to_vec();
        host.request_headers
            .borrow_mut()
            .retain(|(n, _)| n != "content-length");
        if let Some(length) = length {
            host.request_headers
                .borrow_mut()
                .push(("content-length".into(), length.as_bytes().to_vec()));
        }
        assert_eq!(ex.on_request_headers(&host, false), Flow::Pause);
        assert_eq!(host.reply.borrow().as_ref().map(|r| r.status), Some(401));
    }
    // A body announced small that keeps growing is refused once it passes the bound.
    let host = RecordingHost::default();
    let mut ex = exchange();
    chat_request(&host, CHAT);
    host.request_headers.borrow_mut()[3].1 = b"Bearer sk-wrong".to_vec();
    ex.on_request_headers(&host, false);
    assert_eq!(ex.on_request_body(&host, 70_000, false), Flow::Pause);
    assert_eq!(host.reply.borrow().as_ref().map(|r| r.status), Some(401));
}

#[test]
fn listing_models_is_answered_by_the_gateway() {
    let host = RecordingHost::default();
    let mut ex = exchange();
    *host.request_headers.borrow_mut() = pairs(&[
        (":method", "GET"),
        (":path", "/v1/models"),
        ("authorization", "Bearer sk-demo"),
    ]);
    assert_eq!(ex.on_request_headers(&host, true), Flow::Pause);
    let reply = host.reply.borrow().clone().unwrap();
    assert_eq!(reply.status, 200);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"].as_array().unwrap().len(), 4);
    assert_eq!(
        host.counts(),
        // The key's id for the access log, the client's key stripped.
        counts(&[
            ("headers", 1),
            ("remove_header", 1),
            ("set_header", 2),
            ("send_reply", 1)
        ])
    );
}

#[test]
fn a_host_failure_fails_closed_with_a_500_envelope() {
    let host = RecordingHost::default();
    let mut ex = exchange();
    chat_request(&host, CHAT);
    assert_eq!(ex.on_request_headers(&host, false), Flow::Pause);
    *host.failing.borrow_mut() = Some(("body", Status::InternalFailure));
    assert_eq!(
        deliver_request_body(&mut ex, &host, CHAT.as_bytes(), 1),
        [Flow::Pause]
    );
    let reply = host.reply.borrow().clone().unwrap();
    assert_eq!(reply.status, 500);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Retry later"));
    assert!(host.foreign_calls.borrow().is_empty(), "never routed");
}

#[test]
fn failing_to_clear_the_route_cache_fails_closed() {
    let host = RecordingHost::default();
    let mut ex = exchange();
    chat_request(&host, CHAT);
    *host.failing.borrow_mut() = Some(("call_foreign", Status::BadArgument));
    ex.on_request_headers(&host, false);
    deliver_request_body(&mut ex, &host, CHAT.as_bytes(), 1);
    assert_eq!(host.reply.borrow().as_ref().map(|r| r.status), Some(500));
}

#[test]
fn without_a_configuration_every_request_gets_a_500() {
    let host = RecordingHost::default();
    let mut ex = Exchange::new(1, None, Rc::new(Counters::default()));
    chat_request(&host, CHAT);
    assert_eq!(ex.on_request_headers(&host, false), Flow::Pause);
    assert_eq!(host.reply.borrow().as_ref().map(|r| r.status), Some(500));
    host.reset_calls();
    ex.on_log(&host);
    assert_eq!(host.total_calls(), 0, "an unconfigured VM counts nothing");
}

#[test]
fn envoys_own_error_replies_become_envelopes() {
    let host = RecordingHost::default();
    let mut ex = exchange();
    chat_request(&host, CHAT);
    ex.on_request_headers(&host, false);
    deliver_request_body(&mut ex, &host, CHAT.as_bytes(), 1);
    *host.response_headers.borrow_mut() =
        pairs(&[(":status", "503"), ("content-type", "text/plain")]);
    host.properties.borrow_mut().insert(
        "response.code_details".into(),
        b"upstream_reset_before_response_started{connection_failure}".to_vec(),
    );
    host.reset_calls();
    assert_eq!(ex.on_response_headers(&host), Flow::Pause);
    let reply = host.reply.borrow().clone().unwrap();
    assert_eq!(reply.status, 503);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unavailable"));
    assert_eq!(
        host.counts(),
        counts(&[("headers", 1), ("property", 1), ("send_reply", 1)])
    );
    // The reply's body is the gateway's: the exchange does not touch it again.
    assert_eq!(ex.on_response_body(&host, 10, true), Flow::Continue);
}

#[test]
fn a_backend_response_skips_the_code_details_lookup() {
    let host = RecordingHost::default();
    let mut ex = exchange();
    chat_request(&host, CHAT);
    ex.on_request_headers(&host, false);
    deliver_request_body(&mut ex, &host, CHAT.as_bytes(), 1);
    host.reset_calls();
    ok_response_headers(&host, "application/json");
    ex.on_response_headers(&host);
    assert_eq!(host.counts().get("property"), None);
}

#[test]
fn the_charger_copies_the_cost_into_envoys_filter_state() {
    let charger = crate::charger::Charger {
        header: "x-gateway-token-cost".into(),
    };
    let host = RecordingHost::default();
    *host.request_headers.borrow_mut() = pairs(&[("x-gateway-token-cost", "42")]);
    charger.on_request_headers(&host);
    let calls = host.foreign_calls.borrow();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "set_envoy_filter_state");
    assert_eq!(
        calls[0].1,
        crate::charger::filter_state_arguments(crate::charger::HITS_ADDEND, "42")
    );
    drop(calls);
    // No header, no charge.
    let host = RecordingHost::default();
    charger.on_request_headers(&host);
    assert!(host.foreign_calls.borrow().is_empty());
    assert_eq!(host.counts(), counts(&[("header", 1)]));
}

#[test]
fn plugin_configurations_are_told_apart_and_checked() {
    use crate::plugin::{configure, Plugin};
    let gateway = crate::test_support::sample().to_string();
    assert!(matches!(
        configure(gateway.as_bytes()),
        Ok(Plugin::Gateway(_))
    ));
    assert!(matches!(
        configure(br#"{"token_charger": {"header": "x-gateway-token-cost"}}"#),
        Ok(Plugin::Charger(_))
    ));
    let err = configure(br#"{"api_keys": []}"#).unwrap_err().to_string();
    assert!(
        err.starts_with("invalid plugin configuration, not loaded: "),
        "{err}"
    );
    let err = configure(br#"{"token_charger": {}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid token charger configuration, not loaded: "),
        "{err}"
    );
}

/// A whole exchange, log included, on a VM whose counters are `counters`.
/// Returns the host calls it made.
fn whole_exchange(counters: &Rc<Counters>, kind: &str) -> usize {
    let host = RecordingHost::default();
    let mut ex = Exchange::new(9, Some(Rc::new(gateway())), counters.clone());
    match kind {
        "chat 1 KB" => {
            let body = format!(
                r#"{{"model":"llama-3.1-8b-instruct","messages":[{{"role":"user","content":"{}"}}],"max_tokens":16}}"#,
                "lorem ipsum ".repeat(80)
            );
            chat_request(&host, &body);
            ex.on_request_headers(&host, false);
            deliver_request_body(&mut ex, &host, body.as_bytes(), 1);
            ok_response_headers(&host, "application/json");
            ex.on_response_headers(&host);
            deliver_response_body(&mut ex, &host, &[CHAT_RESPONSE.as_bytes()]);
        }
        "streamed chat, 20 events" => {
            let body = r#"{"model":"llama-3.1-8b-instruct","messages":[{"role":"user","content":"Count."}],"stream":true}"#;
            chat_request(&host, body);
            ex.on_request_headers(&host, false);
            deliver_request_body(&mut ex, &host, body.as_bytes(), 1);
            ok_response_headers(&host, "text/event-stream");
            ex.on_response_headers(&host);
            // One upstream chunk per event, as model servers send them.
            let stream = stream_events(true);
            let text = std::str::from_utf8(&stream).unwrap();
            let events: Vec<String> = text.split_inclusive("\n\n").map(str::to_string).collect();
            let chunks: Vec<&[u8]> = events.iter().map(|e| e.as_bytes()).collect();
            deliver_response_body(&mut ex, &host, &chunks);
        }
        "rejected: bad key" => {
            chat_request(&host, CHAT);
            host.request_headers.borrow_mut()[3].1 = b"Bearer sk-wrong".to_vec();
            ex.on_request_headers(&host, false);
            deliver_request_body(&mut ex, &host, CHAT.as_bytes(), 1);
        }
        "GET /v1/models" => {
            *host.request_headers.borrow_mut() = pairs(&[
                (":method", "GET"),
                (":path", "/v1/models"),
                ("authorization", "Bearer sk-demo"),
            ]);
            ex.on_request_headers(&host, true);
        }
        other => panic!("no exchange {other}"),
    }
    ex.on_log(&host);
    host.total_calls()
}

/// Host calls are the filter's main cost: each whole exchange stays within
/// its budget (counters are flushed on the root context's tick, outside any
/// exchange). The counts before the budgets were set are in BENCHMARKS.md.
#[test]
fn host_call_budgets() {
    let counters = Rc::new(Counters::default());
    let budgets = [
        ("chat 1 KB", 26),
        ("streamed chat, 20 events", 88),
        ("rejected: bad key", 2),
        ("GET /v1/models", 5),
    ];
    for (kind, budget) in budgets {
        whole_exchange(&counters, kind);
        let calls = whole_exchange(&counters, kind);
        assert!(
            calls <= budget,
            "{kind}: {calls} host calls, over its budget of {budget}"
        );
    }
}

/// An exchange of a gateway charging the tokens limit as `settlement` says.
fn settling_exchange(settlement: &str) -> Exchange {
    let mut config = crate::test_support::sample();
    config["token_limits"] = serde_json::json!({"settlement": settlement});
    let gateway = crate::test_support::compile(&config).unwrap();
    Exchange::new(7, Some(Rc::new(gateway)), Rc::new(Counters::default()))
}

/// A chat through `ex`, answered by the backend with `status` and `body`
/// (or by Envoy when `details` says so); the settle property it left.
fn settled(
    ex: &mut Exchange,
    status: &str,
    details: &str,
    body: &str,
) -> (RecordingHost, Option<String>) {
    let host = RecordingHost::default();
    chat_request(&host, CHAT);
    ex.on_request_headers(&host, false);
    deliver_request_body(ex, &host, CHAT.as_bytes(), 1);
    *host.response_headers.borrow_mut() =
        pairs(&[(":status", status), ("content-type", "application/json")]);
    if !details.is_empty() {
        host.properties
            .borrow_mut()
            .insert("response.code_details".into(), details.as_bytes().to_vec());
    }
    if ex.on_response_headers(&host) == Flow::Continue {
        deliver_response_body(ex, &host, &[body.as_bytes()]);
    }
    host.reset_calls();
    ex.on_log(&host);
    let value = host
        .properties
        .borrow()
        .get(SETTLE_TOKENS_PROPERTY)
        .map(|v| String::from_utf8(v.clone()).unwrap());
    (host, value)
}

#[test]
fn completed_exchanges_owe_the_tokens_limit_what_the_settlement_mode_says() {
    // CHAT's estimate: what `reserve` charges up front.
    let estimate = {
        let mut ex = exchange();
        let host = RecordingHost::default();
        chat_request(&host, CHAT);
        ex.on_request_headers(&host, false);
        deliver_request_body(&mut ex, &host, CHAT.as_bytes(), 1);
        ex.request.plan.estimate
    };
    assert!(estimate > 15, "{estimate}");
    // settle: 1 up front, then the 15 tokens the response reports, less that 1.
    let mut ex = settling_exchange("settle");
    let (host, due) = settled(&mut ex, "200", "", CHAT_RESPONSE);
    assert_eq!(due.as_deref(), Some("14"));
    assert_eq!(ex.request.plan.token_cost, 1);
    assert_eq!(
        without_histograms(&host),
        counts(&[("set_property", 1)]),
        "one host call"
    );
    // No usage in the answer: the estimate stands in for it.
    let mut ex = settling_exchange("settle");
    let no_usage = r#"{"id":"x","object":"chat.completion","choices":[]}"#;
    let (_, due) = settled(&mut ex, "200", "", no_usage);
    assert_eq!(due, Some((estimate - 1).to_string()));
    // Absurd usage is not believed either.
    let absurd = CHAT_RESPONSE.replace(r#""prompt_tokens":12"#, r#""prompt_tokens":1000000000000"#);
    let (_, due) = settled(&mut settling_exchange("settle"), "200", "", &absurd);
    assert_eq!(due, Some((estimate - 1).to_string()));
    // A backend error or Envoy's own reply generated nothing: 0 more.
    let (_, due) = settled(
        &mut settling_exchange("settle"),
        "500",
        "via_upstream",
        "{}",
    );
    assert_eq!(due.as_deref(), Some("0"));
    let (_, due) = settled(
        &mut settling_exchange("settle"),
        "429",
        "request_rate_limited",
        "",
    );
    assert_eq!(due.as_deref(), Some("0"));

    // reserve then settle: the estimate up front, only usage beyond it after.
    let mut ex = settling_exchange("reserve_then_settle");
    let (_, due) = settled(&mut ex, "200", "", CHAT_RESPONSE);
    assert_eq!(ex.request.plan.token_cost, estimate);
    assert_eq!(due.as_deref(), Some("0"));
    let long = CHAT_RESPONSE.replace(r#""completion_tokens":3"#, r#""completion_tokens":5000"#);
    let (_, due) = settled(
        &mut settling_exchange("reserve_then_settle"),
        "200",
        "",
        &long,
    );
    assert_eq!(due, Some((12 + 5000 - estimate).to_string()));

    // reserve: nothing to publish, no host call.
    let (host, due) = settled(&mut exchange(), "200", "", CHAT_RESPONSE);
    assert_eq!(due, None);
    assert!(without_histograms(&host).is_empty());
    // A request the gateway refused itself never met the limiters: nothing.
    let mut ex = settling_exchange("settle");
    let host = RecordingHost::default();
    chat_request(&host, r#"{"model":"nope","messages":[]}"#);
    ex.on_request_headers(&host, false);
    deliver_request_body(&mut ex, &host, br#"{"model":"nope","messages":[]}"#, 1);
    host.reset_calls();
    ex.on_log(&host);
    assert_eq!(host.properties.borrow().get(SETTLE_TOKENS_PROPERTY), None);
}

#[test]
fn a_priced_model_is_charged_spend_up_front_and_at_completion_and_counted() {
    let mut config = crate::test_support::sample();
    config["token_limits"] = serde_json::json!({"settlement": "settle"});
    config["models"][0]["price"] = serde_json::json!({"input": 1.0, "output": 2.0});
    let gateway = crate::test_support::compile(&config).unwrap();
    let counters = Rc::new(Counters::default());
    let mut ex = Exchange::new(7, Some(Rc::new(gateway)), counters.clone());
    let (host, due) = settled(&mut ex, "200", "", CHAT_RESPONSE);
    assert_eq!(due.as_deref(), Some("14"));
    // 12 prompt tokens at 1.00 and 3 output tokens at 2.00 per million:
    // 18 micro-units; 1 was charged up front.
    let spend_due = host
        .properties
        .borrow()
        .get(SETTLE_SPEND_PROPERTY)
        .map(|v| String::from_utf8(v.clone()).unwrap());
    assert_eq!(spend_due.as_deref(), Some("17"));
    assert_eq!(ex.request.plan.spend_cost, 1);
    counters.flush(&host);
    assert_eq!(
        host.counter("openai_gateway_spend_micros_total.key_id.demo.model.llama-3_1-8b-instruct"),
        Some(18)
    );

    // Up front, in reserve mode: the estimate at the dearer price, in its
    // own header; the access log's usage carries the spend.
    let mut config = crate::test_support::sample();
    config["models"][0]["price"] = serde_json::json!({"input": 1.0, "output": 2.0});
    let gateway = crate::test_support::compile(&config).unwrap();
    let mut ex = Exchange::new(7, Some(Rc::new(gateway)), Rc::new(Counters::default()));
    let host = RecordingHost::default();
    chat_request(&host, CHAT);
    ex.on_request_headers(&host, false);
    deliver_request_body(&mut ex, &host, CHAT.as_bytes(), 1);
    let estimate = ex.request.plan.estimate;
    assert_eq!(
        host.header_value(HeaderMap::Request, "x-gateway-spend-cost"),
        Some((estimate * 2).to_string())
    );
    ok_response_headers(&host, "application/json");
    ex.on_response_headers(&host);
    deliver_response_body(&mut ex, &host, &[CHAT_RESPONSE.as_bytes()]);
    assert_eq!(
        host.properties
            .borrow()
            .get(USAGE_PROPERTY)
            .map(Vec::as_slice),
        Some(&b"prompt_tokens=12 completion_tokens=3 cached_tokens=0 spend_micros=18"[..])
    );
    // An unpriced model sends no spend header.
    let host = RecordingHost::default();
    let mut ex = exchange();
    chat_request(&host, CHAT);
    ex.on_request_headers(&host, false);
    deliver_request_body(&mut ex, &host, CHAT.as_bytes(), 1);
    assert_eq!(
        host.header_value(HeaderMap::Request, "x-gateway-spend-cost"),
        None
    );
}
