//! The mock's own endpoints under `/__mock/`, which are never recorded:
//! `GET /__mock/requests` (what the backend received), `DELETE
//! /__mock/requests` (forget it), `GET /__mock/health`, `GET`/`PUT
//! /__mock/models` (the ids `GET /v1/models` lists) and `GET`/`PUT
//! /__mock/probe` (how the probe paths answer; see `probe`).

use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::body::MockBody;
use crate::common::base64_encode;
use crate::reply::{empty_response, error_response, invalid_request, json_response};
use crate::state::{ProbeMode, State};

/// Answer a request for a `/__mock/` path with request body `body`.
pub fn handle(state: &State, method: &Method, path: &str, body: &[u8]) -> Response<MockBody> {
    match (method, path) {
        (&Method::GET, "/__mock/requests") => json_response(StatusCode::OK, &recorded_json(state)),
        (&Method::DELETE, "/__mock/requests") => {
            state.clear();
            empty_response(StatusCode::NO_CONTENT)
        }
        (&Method::GET, "/__mock/health") => {
            json_response(StatusCode::OK, &json!({"backend": state.name}))
        }
        (&Method::GET, "/__mock/models") => {
            json_response(StatusCode::OK, &json!({"models": state.models()}))
        }
        (&Method::PUT, "/__mock/models") => match models_body(body) {
            Ok(models) => {
                state.set_models(models);
                empty_response(StatusCode::NO_CONTENT)
            }
            Err(e) => invalid_request(&e),
        },
        (&Method::GET, "/__mock/probe") => {
            json_response(StatusCode::OK, &json!({"mode": state.probe_mode().name()}))
        }
        (&Method::PUT, "/__mock/probe") => match probe_body(body) {
            Ok(mode) => {
                state.set_probe_mode(mode);
                empty_response(StatusCode::NO_CONTENT)
            }
            Err(e) => invalid_request(&e),
        },
        _ => error_response(
            StatusCode::NOT_FOUND,
            &format!("Unknown path {method} {path}"),
        ),
    }
}

/// The field `key` of the JSON object in `body`.
fn body_field(body: &[u8], key: &str, shape: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the body must be the JSON object {shape}: {e}"))?;
    v.get(key)
        .cloned()
        .ok_or_else(|| format!("the body must be the JSON object {shape}"))
}

/// The mode in a `PUT /__mock/probe` body, `{"mode": MODE}`.
fn probe_body(body: &[u8]) -> Result<ProbeMode, String> {
    const SHAPE: &str = r#"{"mode": MODE}"#;
    let mode = body_field(body, "mode", SHAPE)?;
    mode.as_str()
        .ok_or_else(|| format!("the body must be the JSON object {SHAPE}, MODE a string"))?
        .parse()
}

/// The ids in a `PUT /__mock/models` body, `{"models": [ID, ...]}`: each a
/// non-empty string; the list may be empty.
fn models_body(body: &[u8]) -> Result<Vec<String>, String> {
    const SHAPE: &str = r#"{"models": [ID, ...]}"#;
    let not_ids =
        || format!("the body must be the JSON object {SHAPE}, each ID a non-empty string");
    let models = body_field(body, "models", SHAPE)?;
    models
        .as_array()
        .ok_or_else(not_ids)?
        .iter()
        .map(|id| match id.as_str() {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(not_ids()),
        })
        .collect()
}

/// The recorded requests, oldest first: method, path with query, headers as
/// `[name, value]` pairs, and the body in base64 (and as text if UTF-8).
fn recorded_json(state: &State) -> Value {
    let q = state.recorded();
    let requests: Vec<Value> = q
        .iter()
        .map(|r| {
            let headers: Vec<Value> = r.headers.iter().map(|(n, v)| json!([n, v])).collect();
            json!({
                "method": r.method,
                "path": r.path,
                "headers": headers,
                "body_base64": base64_encode(&r.body),
                "body_utf8": std::str::from_utf8(&r.body).ok(),
            })
        })
        .collect();
    json!({"backend": state.name, "requests": requests})
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn state() -> State {
        State::new(
            "b1".to_string(),
            HeaderValue::from_static("b1"),
            vec!["mock".to_string()],
            ProbeMode::Ok,
        )
    }

    #[test]
    fn probe_bodies() {
        assert_eq!(probe_body(br#"{"mode": "hang"}"#), Ok(ProbeMode::Hang));
        assert_eq!(probe_body(br#"{"mode": "ok", "x": 1}"#), Ok(ProbeMode::Ok));
        for (body, error) in [
            (
                &br#"{"mode": "nap"}"#[..],
                "unknown probe mode \"nap\"; expected one of: ok, hang, garbage, error, huge, slow",
            ),
            (
                br#"{"mode": 1}"#,
                r#"the body must be the JSON object {"mode": MODE}, MODE a string"#,
            ),
            (
                br#"{}"#,
                r#"the body must be the JSON object {"mode": MODE}"#,
            ),
            (
                br#"[]"#,
                r#"the body must be the JSON object {"mode": MODE}"#,
            ),
        ] {
            assert_eq!(probe_body(body), Err(error.to_string()));
        }
        assert!(
            probe_body(b"hang").err().is_some_and(
                |e| e.starts_with(r#"the body must be the JSON object {"mode": MODE}: "#)
            )
        );
    }

    #[test]
    fn models_bodies() {
        assert_eq!(
            models_body(br#"{"models": ["a", "b"]}"#),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(models_body(br#"{"models": []}"#), Ok(vec![]));
        let not_ids =
            r#"the body must be the JSON object {"models": [ID, ...]}, each ID a non-empty string"#;
        for body in [
            &br#"{"models": "a"}"#[..],
            br#"{"models": ["a", 1]}"#,
            br#"{"models": [""]}"#,
        ] {
            assert_eq!(models_body(body), Err(not_ids.to_string()));
        }
        assert_eq!(
            models_body(br#"{"model": ["a"]}"#),
            Err(r#"the body must be the JSON object {"models": [ID, ...]}"#.to_string())
        );
    }

    /// The JSON body `GET path` answers.
    fn get(s: &State, path: &str) -> Value {
        match handle(s, &Method::GET, path, b"").into_body() {
            MockBody::Full(Some(b)) => serde_json::from_slice(&b).unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    #[test]
    fn put_sets_and_get_reads() {
        let s = state();
        assert_eq!(get(&s, "/__mock/probe"), json!({"mode": "ok"}));
        assert_eq!(get(&s, "/__mock/models"), json!({"models": ["mock"]}));
        let put = |path: &str, body: &[u8]| handle(&s, &Method::PUT, path, body).status();
        assert_eq!(
            put("/__mock/probe", br#"{"mode": "slow"}"#),
            StatusCode::NO_CONTENT
        );
        assert_eq!(s.probe_mode(), ProbeMode::Slow);
        assert_eq!(
            put("/__mock/probe", br#"{"mode": "nap"}"#),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(s.probe_mode(), ProbeMode::Slow);
        assert_eq!(
            put("/__mock/models", br#"{"models": ["x"]}"#),
            StatusCode::NO_CONTENT
        );
        assert_eq!(s.models(), vec!["x".to_string()]);
        assert_eq!(
            put("/__mock/models", br#"{"models": [2]}"#),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(s.models(), vec!["x".to_string()]);
        assert_eq!(put("/__mock/requests", b""), StatusCode::NOT_FOUND);
        assert_eq!(get(&s, "/__mock/probe"), json!({"mode": "slow"}));
        assert_eq!(get(&s, "/__mock/models"), json!({"models": ["x"]}));
    }
}
