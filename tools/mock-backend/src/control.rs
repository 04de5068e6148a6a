//! The mock's own endpoints under `/__mock/`, which are never recorded:
//! `GET /__mock/requests` (what the backend received), `DELETE
//! /__mock/requests` (forget it) and `GET /__mock/health`.

use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::body::MockBody;
use crate::common::base64_encode;
use crate::reply::{empty_response, error_response, json_response};
use crate::state::State;

/// Answer a request for a `/__mock/` path.
pub fn handle(state: &State, method: &Method, path: &str) -> Response<MockBody> {
    match (method, path) {
        (&Method::GET, "/__mock/requests") => json_response(StatusCode::OK, &recorded_json(state)),
        (&Method::DELETE, "/__mock/requests") => {
            state.clear();
            empty_response(StatusCode::NO_CONTENT)
        }
        (&Method::GET, "/__mock/health") => {
            json_response(StatusCode::OK, &json!({"backend": state.name}))
        }
        _ => error_response(
            StatusCode::NOT_FOUND,
            &format!("Unknown path {method} {path}"),
        ),
    }
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
