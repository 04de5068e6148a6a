//! `POST /v1/embeddings`: 8 deterministic floats per input, derived from a
//! hash of the input, as floats or base64.

use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::body::MockBody;
use crate::common::{base64_encode, model_of, prompt_tokens, set_field};
use crate::reply::{invalid_request, json_response};
use crate::usage::UsageOverride;

/// FNV-1a, 64 bit.
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// 8 deterministic floats in [-1, 1) derived from `seed` (splitmix64).
fn embedding_for(seed: u64) -> [f32; 8] {
    let mut state = seed;
    let mut out = [0f32; 8];
    for slot in out.iter_mut() {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // Top 24 bits -> [0, 1) -> [-1, 1)
        let unit = (z >> 40) as f32 / (1u64 << 24) as f32;
        *slot = unit * 2.0 - 1.0;
    }
    out
}

/// One embedding input item: its hash seed and its token count.
fn embedding_item(v: &Value) -> Option<(u64, u64)> {
    match v {
        Value::String(s) => Some((fnv1a(s.as_bytes()), prompt_tokens(s.len()))),
        Value::Array(toks) => {
            let mut bytes = Vec::with_capacity(toks.len() * 8);
            for t in toks {
                bytes.extend_from_slice(&t.as_i64()?.to_le_bytes());
            }
            Some((fnv1a(&bytes), toks.len() as u64))
        }
        _ => None,
    }
}

/// Parse `input` into items: a string, an array of strings, an array of
/// ints (one item), or an array of int arrays.
fn embedding_inputs(input: &Value) -> Option<Vec<(u64, u64)>> {
    match input {
        Value::String(_) => Some(vec![embedding_item(input)?]),
        Value::Array(items) => {
            if items.is_empty() {
                return None;
            }
            if items.iter().all(Value::is_number) {
                return Some(vec![embedding_item(input)?]);
            }
            items.iter().map(embedding_item).collect()
        }
        _ => None,
    }
}

/// The embedding as `encoding_format: "base64"` has it: the little-endian
/// f32s, base64-encoded.
fn embedding_base64(emb: [f32; 8]) -> Value {
    let mut raw = Vec::with_capacity(emb.len() * 4);
    for f in emb {
        raw.extend_from_slice(&f.to_le_bytes());
    }
    Value::String(base64_encode(&raw))
}

/// `POST /v1/embeddings`.
pub fn embeddings(req: &Value, usage: UsageOverride) -> Response<MockBody> {
    let Some(input) = req.get("input") else {
        return invalid_request("'input' is a required property");
    };
    let Some(items) = embedding_inputs(input) else {
        return invalid_request(
            "'input' must be a non-empty string, array of strings, array of integers, or array of integer arrays",
        );
    };
    let b64 = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut tokens = 0u64;
    let data: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, &(seed, toks))| {
            tokens += toks;
            let emb = embedding_for(seed);
            let embedding = if b64 {
                embedding_base64(emb)
            } else {
                json!(emb)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let mut v = json!({
        "object": "list",
        "data": data,
        "model": model_of(req),
    });
    if let Some(usage) = usage.embeddings(tokens) {
        set_field(&mut v, "usage", usage);
    }
    json_response(StatusCode::OK, &v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_inputs_shapes() {
        let one = |v: Value| embedding_inputs(&v).map(|x| x.len());
        assert_eq!(one(json!("a")), Some(1));
        assert_eq!(one(json!(["a", "b"])), Some(2));
        assert_eq!(one(json!([1, 2, 3])), Some(1));
        assert_eq!(one(json!([[1, 2], [3]])), Some(2));
        assert_eq!(one(json!([])), None);
        assert_eq!(one(json!(5)), None);
        assert_eq!(one(json!([{"x": 1}])), None);
    }

    #[test]
    fn embeddings_are_deterministic_and_bounded() {
        let a = embedding_for(fnv1a(b"x"));
        assert_eq!(a, embedding_for(fnv1a(b"x")));
        assert_ne!(a, embedding_for(fnv1a(b"y")));
        assert!(a.iter().all(|f| (-1.0..1.0).contains(f)));
    }
}
