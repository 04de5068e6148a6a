//! Property tests: whatever bytes arrive, every parser and decision function
//! returns a decision or an OpenAI-shaped error; none panics (a panic would
//! kill the Wasm VM and fail every request on that worker). Case counts are
//! bounded so `make test` stays fast.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use openai_gateway::endpoints::{BodyKind, Endpoint};
use openai_gateway::headers::Headers;
use openai_gateway::pipeline::{AfterBody, AfterHeaders, PendingBody, Reply};
use openai_gateway::{charger, ids, json, multipart, sse, usage, Gateway};
use proptest::prelude::*;
use serde_json::Value;

fn gateway() -> Gateway {
    let digest: String = sha2_hex(b"sk-prop");
    let config = serde_json::json!({
        "api_keys": [{"id": "prop", "sha256": digest}],
        "models": [
            {"id": "m", "category": "text", "backend": "a", "aliases": ["alias"], "upstream_model": "up/m",
             "capabilities": ["tool_use", "vision", "json_schema"]},
            {"id": "e", "category": "embeddings", "backend": "b"},
            {"id": "w", "category": "audio", "backend": "b"}
        ],
        "id_secret": "0123456789abcdef0123456789abcdef"
    });
    Gateway::try_from(config.to_string().as_bytes()).unwrap()
}

fn sha2_hex(data: &[u8]) -> String {
    openai_gateway::auth::key_digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A reply is always a JSON envelope (or the model list) with a real status.
fn check_reply(reply: &Reply) {
    assert!((200..600).contains(&reply.status));
    let v: Value = serde_json::from_slice(&reply.body).expect("a JSON body");
    if reply.status >= 400 {
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(v["error"]["type"].is_string());
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// JSON-ish bodies: mutations of valid requests, to get past the parser often.
fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let valid = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":1,"tools":[{"type":"function","function":{"name":"f"}}],"stream":true,"input":"x","response_format":{"type":"json_schema","json_schema":{"name":"s"}}}"#;
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        (0..valid.len(), any::<u8>()).prop_map(move |(i, b)| {
            let mut bytes = valid.as_bytes().to_vec();
            bytes[i] = b;
            bytes
        }),
        (0..valid.len(), 0..valid.len())
            .prop_map(move |(a, b)| valid.as_bytes()[..a.min(b)].to_vec()),
        "[ -~]{0,300}".prop_map(|s| s.into_bytes()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_body_is_a_decision_or_an_envelope(body in json_body(), which in 0usize..6) {
        let g = gateway();
        let endpoint = [Endpoint::ChatCompletions, Endpoint::Completions, Endpoint::Embeddings,
                        Endpoint::Responses, Endpoint::ImageGenerations, Endpoint::Speech][which];
        let pending = PendingBody { endpoint, kind: BodyKind::Json, key_index: 0, content_type: "application/json".into() };
        match g.on_request_body(&pending, &body) {
            AfterBody::Reply(reply) => {
                check_reply(&reply);
                prop_assert!(reply.status >= 400 && reply.status < 500, "client faults are 4xx: {}", reply.status);
            }
            AfterBody::Forward { new_body, .. } => {
                // Forwarded bodies are JSON objects without duplicate members.
                let sent = new_body.unwrap_or(body);
                prop_assert!(json::parse_document(&sent).is_ok());
            }
        }
    }

    #[test]
    fn any_headers_are_a_decision_or_an_envelope(
        method in "[A-Z]{1,8}",
        path in "/[ -~]{0,80}",
        extra in proptest::collection::vec(("[a-z-]{1,20}", proptest::collection::vec(any::<u8>(), 0..40)), 0..8),
        auth in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..60)),
        end in any::<bool>(),
    ) {
        let mut headers = vec![(":method".to_string(), method.into_bytes()), (":path".to_string(), path.into_bytes())];
        if let Some(a) = auth { headers.push(("authorization".to_string(), a)); }
        headers.extend(extra);
        let outcome = gateway().on_request_headers(&Headers::from(headers), end);
        if let AfterHeaders::Reply(reply) = &outcome.next { check_reply(reply); }
        // Gateway-internal headers from the client never survive.
        for name in ["x-gateway-key-id", "x-gateway-backend", "x-gateway-model", "x-gateway-token-cost"] {
            prop_assert!(outcome.edits.remove.iter().any(|n| n == name));
        }
    }

    #[test]
    fn any_configuration_loads_or_is_refused(bytes in json_body()) {
        let _ = Gateway::try_from(bytes.as_slice());
        let _ = charger::is_charger_config(&bytes);
    }

    #[test]
    fn any_stream_chunking_reassembles_the_bytes(data in proptest::collection::vec(any::<u8>(), 0..600), cuts in proptest::collection::vec(0usize..600, 0..12)) {
        let mut reader = sse::Reader::default();
        let mut out = Vec::new();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.sort_unstable();
        let mut last = 0;
        for cut in cuts.into_iter().chain(std::iter::once(data.len())) {
            let (events, unparsed) = reader.push(&data[last..cut]);
            for e in &events {
                let _ = e.data();
                let _ = usage::adjust_event(e, true);
                out.extend_from_slice(&e.raw);
            }
            out.extend_from_slice(&unparsed);
            last = cut;
        }
        out.extend(reader.finish());
        prop_assert_eq!(out, data);
    }

    #[test]
    fn any_form_or_response_or_id_is_handled(bytes in proptest::collection::vec(any::<u8>(), 0..400), text in "[ -~]{0,120}") {
        let _ = multipart::parts(&format!("multipart/form-data; boundary={}", text.chars().take(70).collect::<String>()), &bytes);
        let _ = multipart::parts("multipart/form-data; boundary=x", &bytes);
        let _ = usage::adjust(&bytes);
        let codec = ids::IdCodec::new(b"0123456789abcdef0123456789abcdef").unwrap();
        prop_assert!(codec.open("prop", &text).is_none() || text.contains('.'));
        let _ = ids::base64url_decode(&text);
    }
}
