//! The HTTP/1 control API used by tests (JSON in, JSON out).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::limits::Limits;
use crate::service::{Mode, Shared};

/// Largest control request body accepted.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    reply(status, json!({"error": message.into()}))
}

/// Parses a `PUT /mode` body.
pub fn parse_mode(body: &[u8]) -> Result<Mode, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    match v.get("mode").and_then(Value::as_str) {
        Some("ok") => Ok(Mode::Ok),
        Some("unavailable") => Ok(Mode::Unavailable),
        Some("slow") => {
            let ms = v
                .get("delay_ms")
                .and_then(Value::as_u64)
                .ok_or("mode \"slow\" needs \"delay_ms\": a non-negative integer")?;
            Ok(Mode::Slow(Duration::from_millis(ms)))
        }
        _ => {
            Err("expected {\"mode\": \"ok\" | \"unavailable\" | \"slow\", \"delay_ms\": N}".into())
        }
    }
}

fn mode_json(mode: Mode) -> Value {
    match mode {
        Mode::Ok => json!({"mode": "ok"}),
        Mode::Unavailable => json!({"mode": "unavailable"}),
        Mode::Slow(d) => json!({"mode": "slow", "delay_ms": d.as_millis()}),
    }
}

pub async fn handle(
    shared: Shared,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(error(StatusCode::BAD_REQUEST, format!("body: {e}"))),
    };
    let resp = match (&method, path.as_str()) {
        (&Method::GET, "/health") => reply(StatusCode::OK, json!({"status": "ok"})),
        (&Method::PUT, "/config") => match Limits::parse(&body) {
            Ok(limits) => {
                let mut inner = shared.lock();
                inner.limits = limits;
                inner.counters.clear();
                reply(StatusCode::OK, json!({"status": "ok"}))
            }
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        (&Method::POST, "/reset") => {
            shared.lock().counters.clear();
            reply(StatusCode::OK, json!({"status": "ok"}))
        }
        (&Method::PUT, "/mode") => match parse_mode(&body) {
            Ok(mode) => {
                shared.lock().mode = mode;
                reply(StatusCode::OK, mode_json(mode))
            }
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        (&Method::GET, "/mode") => reply(StatusCode::OK, mode_json(shared.lock().mode)),
        (&Method::GET, "/requests") => {
            let requests: Vec<Value> = shared.lock().requests.iter().cloned().collect();
            reply(StatusCode::OK, json!({"requests": requests}))
        }
        (&Method::DELETE, "/requests") => {
            shared.lock().requests.clear();
            reply(StatusCode::OK, json!({"status": "ok"}))
        }
        (_, "/health" | "/config" | "/reset" | "/mode" | "/requests") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} not allowed on {path}"),
        ),
        _ => error(StatusCode::NOT_FOUND, format!("no route {path}")),
    };
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode(br#"{"mode": "ok"}"#), Ok(Mode::Ok));
        assert_eq!(
            parse_mode(br#"{"mode": "unavailable"}"#),
            Ok(Mode::Unavailable)
        );
        assert_eq!(
            parse_mode(br#"{"mode": "slow", "delay_ms": 250}"#),
            Ok(Mode::Slow(Duration::from_millis(250)))
        );
        assert!(parse_mode(br#"{"mode": "slow"}"#).is_err());
        assert!(parse_mode(br#"{"mode": "slow", "delay_ms": -1}"#).is_err());
        assert!(parse_mode(br#"{"mode": "fast"}"#).is_err());
        assert!(parse_mode(b"nope").is_err());
        assert_eq!(
            mode_json(Mode::Slow(Duration::from_millis(7))),
            json!({"mode": "slow", "delay_ms": 7})
        );
    }
}
