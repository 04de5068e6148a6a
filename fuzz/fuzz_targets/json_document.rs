//! The request-body JSON parsers (src/json.rs), differentially against
//! serde_json's own `Value`.
//!
//! Invariants: `parse_document` accepts exactly the JSON objects serde_json
//! accepts that have no duplicate member at any depth, and reads the same
//! values; it calls a body empty only when it is whitespace, not an object
//! only when it is other JSON, and a syntax error only when serde_json
//! refuses it too. A document it accepts is also accepted by `JsonObject`
//! (the pipeline splices rewrites with it), whose raw member spans point
//! into the body at the exact bytes of each value.
//!
//! `JsonObject` alone is laxer than `Value` in one way (lone UTF-16
//! surrogates in escapes, see below); harmless, as requests are checked by
//! `parse_document` first and responses are passed on as the backend wrote them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use openai_gateway::json::{self, Json, JsonError, JsonObject, Members};
use serde_json::{Map, Value};

/// The document as a serde_json value; panics on a duplicate member.
fn to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Number(n.clone()),
        Json::String(s) => Value::String(s.to_string()),
        Json::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        Json::Object(members) => object(members),
    }
}

fn object(members: &Members) -> Value {
    let map: Map<String, Value> = members
        .iter()
        .map(|(k, v)| (k.to_string(), to_value(v)))
        .collect();
    assert_eq!(map.len(), members.len(), "a duplicate member was accepted");
    Value::Object(map)
}

fuzz_target!(|data: &[u8]| {
    let theirs = serde_json::from_slice::<Value>(data);
    match json::parse_document(data) {
        Ok(members) => {
            let theirs = theirs.expect("serde_json accepts what parse_document accepts");
            assert_eq!(object(&members), theirs);
            let raw =
                JsonObject::parse(data).expect("JsonObject accepts what parse_document accepts");
            let names: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
            assert_eq!(raw.keys().collect::<Vec<_>>(), names);
        }
        Err(JsonError::Empty) => assert!(data.iter().all(u8::is_ascii_whitespace)),
        Err(JsonError::NotAnObject) => {
            assert!(matches!(theirs, Ok(ref v) if !v.is_object()), "{theirs:?}")
        }
        Err(JsonError::Syntax(message)) => {
            assert!(theirs.is_err(), "refused valid JSON: {message}")
        }
        Err(JsonError::DuplicateKey(_)) => {}
    }
    if let Ok(raw) = JsonObject::parse(data) {
        for name in raw.keys() {
            let value = raw.get(name).expect("a listed member");
            let span = json::span_of_str(data, value.get()).expect("the value is inside the body");
            assert_eq!(&data[span], value.get().as_bytes());
            // (serde_json skips a raw value without pairing UTF-16
            // surrogates: `"\ud83d)"` is a raw value but not a `Value`.
            // parse_document, which requests go through first, refuses it.)
        }
    }
});
