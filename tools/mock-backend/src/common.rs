//! Small helpers the endpoint modules share: request fields, the clock, the
//! token estimate and base64.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

/// Standard base64, with padding.
pub fn base64_encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// `v[key] = value` for a JSON object `v`, without indexing (which panics
/// when `v` is not an object; here it leaves `v` as it is).
pub fn set_field(v: &mut Value, key: &str, value: Value) {
    if let Some(object) = v.as_object_mut() {
        object.insert(key.to_string(), value);
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Prompt "tokens": request body bytes / 4, at least 1.
pub fn prompt_tokens(body_len: usize) -> u64 {
    ((body_len / 4) as u64).max(1)
}

pub fn model_of(req: &Value) -> String {
    req.get("model")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string()
}

pub fn wants_stream(req: &Value) -> bool {
    req.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

pub fn wants_usage(req: &Value) -> bool {
    req.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_reference() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }
}
