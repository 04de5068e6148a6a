//! Building responses: JSON, raw bytes, empty, and OpenAI's error envelope.

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::body::MockBody;
use crate::common::set_field;

fn error_type_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}

fn error_envelope(message: &str, typ: &str) -> Value {
    json!({"error": {"message": message, "type": typ, "param": null, "code": null}})
}

pub fn json_response(status: StatusCode, v: &Value) -> Response<MockBody> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut resp = Response::new(MockBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub fn bytes_response(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<MockBody> {
    let mut resp = Response::new(MockBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `status` with no body and no content type.
pub fn empty_response(status: StatusCode) -> Response<MockBody> {
    let mut r = Response::new(MockBody::empty());
    *r.status_mut() = status;
    r
}

/// The error envelope with the `type` that goes with `status`.
pub fn error_response(status: StatusCode, message: &str) -> Response<MockBody> {
    json_response(status, &error_envelope(message, error_type_for(status)))
}

pub fn invalid_request(message: &str) -> Response<MockBody> {
    json_response(
        StatusCode::BAD_REQUEST,
        &error_envelope(message, "invalid_request_error"),
    )
}

/// An `invalid_request_error` with `status`, naming `param` if given.
pub fn invalid_request_error(
    status: StatusCode,
    message: &str,
    param: Option<&str>,
) -> Response<MockBody> {
    let mut env = error_envelope(message, "invalid_request_error");
    if let (Some(param), Some(error)) = (param, env.get_mut("error")) {
        set_field(error, "param", json!(param));
    }
    json_response(status, &env)
}

/// A 404 `invalid_request_error`, naming `param` if given.
pub fn not_found(message: &str, param: Option<&str>) -> Response<MockBody> {
    invalid_request_error(StatusCode::NOT_FOUND, message, param)
}
