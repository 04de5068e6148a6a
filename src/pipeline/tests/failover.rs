//! Models served by several backends: a request goes to the first serving
//! one; a model none serves is refused with a 503 and is not listed.

use super::*;
use crate::test_support::{compile, sample};

/// The sample gateway with `llama-3.1-8b-instruct` served by backend-a, then
/// backend-b under another name (backend-b has a credential).
fn failover_gateway() -> Gateway {
    let mut config = sample();
    let llama = config["models"][0].as_object_mut().unwrap();
    llama.remove("backend");
    llama.insert(
        "backends".into(),
        serde_json::json!([
            {"name": "backend-a"},
            {"name": "backend-b", "upstream_model": "llama3.1:8b"}
        ]),
    );
    compile(&config).unwrap()
}

const CHAT: &[u8] = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

fn chat(g: &Gateway, body: &[u8]) -> (HeadersOutcome, AfterBody) {
    let outcome = g.on_request_headers(
        &headers("POST", "/v1/chat/completions", &[DEMO, JSON_CT]),
        false,
    );
    let AfterHeaders::ReadBody(pending) = &outcome.next else {
        panic!("{:?}", outcome.next)
    };
    let after = g.on_request_body(pending, body);
    (outcome, after)
}

/// The edits, body and plan of `CHAT` forwarded (a refusal fails the test).
fn forwarded_chat(g: &Gateway) -> (HeaderEdits, Option<Vec<u8>>, ResponsePlan) {
    match chat(g, CHAT).1 {
        AfterBody::Forward {
            edits,
            new_body,
            response,
        } => (edits, new_body, response),
        AfterBody::Reply(reply) => panic!("refused: {reply:?}"),
    }
}

fn listed(g: &Gateway) -> Vec<String> {
    let outcome = g.on_request_headers(&headers("GET", "/v1/models", &[DEMO]), true);
    let body: Value = serde_json::from_slice(&reply_of(&outcome).body).unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn requests_go_to_the_first_serving_backend_with_its_name_and_credential() {
    let g = failover_gateway();
    let (edits, new_body, response) = forwarded_chat(&g);
    assert_eq!(set_value(&edits, "x-gateway-backend"), Some("backend-a"));
    assert_eq!(set_value(&edits, "authorization"), None);
    // backend-a has no name of its own for it: the model's upstream_model.
    let body: Value = serde_json::from_slice(&new_body.unwrap()).unwrap();
    assert_eq!(body["model"], "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(response.backend.as_deref(), Some("backend-a"));

    // backend-a is out of service: the same request goes to backend-b.
    assert!(g.serving.set(0, 0, false));
    let (edits, new_body, response) = forwarded_chat(&g);
    assert_eq!(set_value(&edits, "x-gateway-backend"), Some("backend-b"));
    assert_eq!(
        set_value(&edits, "authorization"),
        Some("Bearer backend-b-token")
    );
    let body: Value = serde_json::from_slice(&new_body.unwrap()).unwrap();
    assert_eq!(body["model"], "llama3.1:8b");
    assert_eq!(response.backend.as_deref(), Some("backend-b"));
    assert_eq!(
        response.renames.apply(br#"{"model":"llama3.1:8b"}"#),
        Some(br#"{"model":"llama-3.1-8b-instruct"}"#.to_vec())
    );
    assert!(listed(&g).contains(&"llama-3.1-8b-instruct".to_string()));
}

#[test]
fn a_model_no_backend_serves_is_a_503_with_retry_after_and_is_not_listed() {
    let g = failover_gateway();
    assert_eq!(listed(&g).len(), 4);
    g.serving.set(0, 0, false);
    g.serving.set(0, 1, false);
    let (_, after) = chat(&g, CHAT);
    let AfterBody::Reply(reply) = after else {
        panic!("{after:?}")
    };
    assert_eq!(reply.status, 503);
    assert!(reply
        .headers
        .iter()
        .any(|(n, v)| n == "retry-after" && v.parse::<u64>().unwrap() >= 1));
    let v = envelope(&reply);
    assert_eq!(v["error"]["type"], "server_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`llama-3.1-8b-instruct` is temporarily unavailable"));

    // Listed no more, by id or alias; the other models still are.
    assert_eq!(
        listed(&g),
        ["qwen2.5-coder-7b", "bge-m3", "whisper-large-v3"]
    );
    for name in ["llama-3.1-8b-instruct", "gpt-4o-mini"] {
        let outcome = g.on_request_headers(
            &headers("GET", &format!("/v1/models/{name}"), &[DEMO]),
            true,
        );
        assert_eq!(reply_of(&outcome).status, 404, "{name}");
    }
    // Serving again: back in the list and served.
    g.serving.set(0, 1, true);
    assert_eq!(listed(&g).len(), 4);
    assert!(matches!(chat(&g, CHAT).1, AfterBody::Forward { .. }));
}

#[test]
fn a_previous_response_pins_its_backend() {
    let g = failover_gateway();
    let codec = g.ids.clone().unwrap();
    let previous = codec.issue("demo", "backend-b", "resp_b_1");
    let body = format!(
        r#"{{"model":"llama-3.1-8b-instruct","input":"more","previous_response_id":"{previous}"}}"#
    );
    let respond = |g: &Gateway| {
        let outcome =
            g.on_request_headers(&headers("POST", "/v1/responses", &[DEMO, JSON_CT]), false);
        let AfterHeaders::ReadBody(pending) = &outcome.next else {
            panic!("{:?}", outcome.next)
        };
        g.on_request_body(pending, body.as_bytes())
    };
    // backend-a serves first, but the stored response is on backend-b.
    let AfterBody::Forward { edits, .. } = respond(&g) else {
        panic!("refused")
    };
    assert_eq!(set_value(&edits, "x-gateway-backend"), Some("backend-b"));
    // backend-b out of service: no other backend holds it.
    g.serving.set(0, 1, false);
    let AfterBody::Reply(reply) = respond(&g) else {
        panic!("forwarded")
    };
    assert_eq!(reply.status, 503);
}
