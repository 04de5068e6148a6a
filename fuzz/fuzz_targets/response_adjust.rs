//! The response-side JSON adjustment (src/usage.rs) and id rewriting
//! (Gateway::rewrite_ids), on arbitrary response bodies.
//!
//! Invariants: a body that is not a JSON object is left alone; an adjusted
//! body is the same JSON minus a top-level `system_fingerprint`, plus the
//! two cache fields in `usage` when it is an object, and adjusting it again
//! changes nothing; the usage read is the body's; as a stream event the
//! adjusted body is still one event; an issued id replaces the backend's
//! and opens back to it.

#![no_main]

use gateway_fuzz::gateway;
use libfuzzer_sys::fuzz_target;
use openai_gateway::json::{self, JsonObject};
use openai_gateway::pipeline::{IdRewrite, IssueId};
use openai_gateway::sse::{Event, Reader};
use openai_gateway::usage::{self, Adjusted, Usage};
use serde_json::Value;

fn expected(input: &Value) -> (Value, Option<Usage>) {
    let mut out = input.clone();
    let object = out.as_object_mut().expect("an object");
    object.remove("system_fingerprint");
    let mut read = None;
    if let Some(Value::Object(fields)) = object.get_mut("usage") {
        let number = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
        let cached = number(
            fields
                .get("prompt_tokens_details")
                .and_then(|d| d.get("cached_tokens")),
        );
        read = Some(Usage {
            prompt_tokens: number(fields.get("prompt_tokens")),
            completion_tokens: number(fields.get("completion_tokens")),
            total_tokens: number(fields.get("total_tokens")),
            cached_tokens: cached,
        });
        fields
            .entry("cache_read_input_tokens")
            .or_insert(cached.into());
        fields
            .entry("cache_creation_input_tokens")
            .or_insert(0.into());
    }
    (out, read)
}

fn check_event(body: &[u8], adjusted: &Adjusted) {
    if body.iter().any(|b| *b == b'\n' || *b == b'\r') {
        return;
    }
    let event = Event {
        raw: [b"data: ", body, b"\n\n"].concat(),
    };
    let (kept, used) = usage::adjust_event(&event, true);
    assert_eq!(used, adjusted.usage);
    match kept {
        None => assert!(adjusted.usage_only),
        Some(raw) => {
            let mut reader = Reader::default();
            let (events, _) = reader.push(&raw);
            assert_eq!(events.len(), 1);
            assert!(reader.finish().is_empty());
            let expected = adjusted.bytes.as_deref().unwrap_or(body);
            assert_eq!(events[0].data().as_deref(), Some(expected));
        }
    }
}

/// An id the backend returned, under `id` (or `response.id` without one).
fn check_ids(body: &[u8], value: &Value) {
    let g = gateway();
    let mut plan = IdRewrite {
        issue: Some(IssueId {
            field: "id",
            key_id: "demo".into(),
            backend: "backend-a".into(),
        }),
        known: Vec::new(),
    };
    let rewritten = g.rewrite_ids(&mut plan, body);
    let top = value.get("id");
    let original = match top {
        Some(id) => id.as_str(),
        None => value["response"]["id"].as_str(),
    };
    let Some(original) = original.filter(|_| json::parse_document(body).is_ok()) else {
        assert!(plan.issue.is_some() && rewritten.is_none());
        return;
    };
    assert!(plan.issue.is_none(), "the id was issued");
    let [(backend_id, issued)] = plan.known.as_slice() else {
        panic!("one known pair: {:?}", plan.known)
    };
    assert_eq!(backend_id, original);
    let codec = g.ids.as_ref().expect("the demo has an id secret");
    assert_eq!(
        codec.open("demo", issued),
        (issued.len() <= 2048).then(|| ("backend-a".to_string(), original.to_string()))
    );
    if let Some(out) = &rewritten {
        serde_json::from_slice::<Value>(out).expect("still JSON");
    }
    // A plain id written plainly at the top level is replaced there.
    let raw = JsonObject::parse(body)
        .ok()
        .and_then(|o| o.get("id"))
        .map(|r| r.get().to_string());
    let plain = original
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if plain && raw == Some(format!("\"{original}\"")) {
        let out = rewritten.expect("the id is replaced");
        let out: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(out["id"].as_str(), Some(issued.as_str()));
    }
}

fuzz_target!(|data: &[u8]| {
    let adjusted = usage::adjust(data);
    let Ok(_) = JsonObject::parse(data) else {
        assert_eq!(adjusted, Adjusted::default());
        return;
    };
    // JsonObject reads raw values as serde_json skips them, which lets a lone
    // UTF-16 surrogate escape through (`"\ud83d"`): such a body is not JSON
    // to check against, and is passed on as the backend wrote it, adjusted.
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let out = adjusted.bytes.as_deref().unwrap_or(data);
    let got: Value = serde_json::from_slice(out).expect("an adjusted body is JSON");
    let (want, read) = expected(&input);
    assert_eq!(got, want);
    assert_eq!(adjusted.usage, read);
    if adjusted.usage_only {
        assert!(read.is_some() && input["choices"] == Value::Array(Vec::new()));
    }
    let again = usage::adjust(out);
    assert_eq!(again.bytes, None, "adjusting twice changes nothing");
    assert_eq!(again.usage, adjusted.usage);
    check_event(data, &adjusted);
    check_ids(out, &got);
});
