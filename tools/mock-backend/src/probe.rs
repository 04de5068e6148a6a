//! The probe paths a health checker calls, `GET /health` and `GET /v1/models`.
//! They are not recorded and ignore `x-mock-status`; they answer as the probe
//! mode says (`--probe-mode`, `PUT /__mock/probe`), which is read when the
//! request arrives. A hung probe is held until its client goes away (hyper
//! then drops the connection and this handler with it), so hung probes cost
//! nothing once their clients give up, and never block other connections.

use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::body::MockBody;
use crate::common::set_field;
use crate::reply::{bytes_response, error_response, json_response};
use crate::state::{ProbeMode, State};

/// How long a probe waits in `slow` mode before answering.
const SLOW_DELAY: Duration = Duration::from_secs(3);
/// How long the padding string is in `huge` mode (the whole body is a
/// little longer).
const HUGE_PADDING_BYTES: usize = 4 * 1024 * 1024;
/// The body in `garbage` mode, served as `application/json`.
const GARBAGE_BODY: &[u8] = b"<html>not json";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `GET /health`
    Health,
    /// `GET /v1/models`
    Models,
}

impl Probe {
    /// The probe `method` and `path` are for, if any.
    pub fn route(method: &Method, path: &str) -> Option<Self> {
        match (method, path) {
            (&Method::GET, "/health") => Some(Probe::Health),
            (&Method::GET, "/v1/models") => Some(Probe::Models),
            _ => None,
        }
    }

    /// The document the probe answers in `ok` mode.
    fn document(self, state: &State) -> Value {
        match self {
            Probe::Health => json!({"status": "ok"}),
            Probe::Models => {
                let data: Vec<Value> = state
                    .models()
                    .into_iter()
                    .map(|id| {
                        json!({"id": id, "object": "model", "created": 0, "owned_by": state.name})
                    })
                    .collect();
                json!({"object": "list", "data": data})
            }
        }
    }
}

/// Answer `probe` as the current probe mode says.
pub async fn answer(state: &State, probe: Probe) -> Response<MockBody> {
    match state.probe_mode() {
        ProbeMode::Ok => json_response(StatusCode::OK, &probe.document(state)),
        ProbeMode::Hang => std::future::pending().await,
        ProbeMode::Garbage => bytes_response(
            StatusCode::OK,
            "application/json",
            Bytes::from_static(GARBAGE_BODY),
        ),
        ProbeMode::Error => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "mock probe error: the backend is unavailable",
        ),
        ProbeMode::Huge => {
            let mut doc = probe.document(state);
            set_field(&mut doc, "padding", json!("x".repeat(HUGE_PADDING_BYTES)));
            json_response(StatusCode::OK, &doc)
        }
        ProbeMode::Slow => {
            tokio::time::sleep(SLOW_DELAY).await;
            json_response(StatusCode::OK, &probe.document(state))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use hyper::header::{HeaderValue, CONTENT_TYPE};

    fn state(mode: ProbeMode) -> State {
        State::new(
            "b1".to_string(),
            HeaderValue::from_static("b1"),
            vec!["m1".to_string(), "m2".to_string()],
            mode,
        )
    }

    async fn parts(resp: Response<MockBody>) -> (StatusCode, Option<HeaderValue>, Bytes) {
        let status = resp.status();
        let content_type = resp.headers().get(CONTENT_TYPE).cloned();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        (status, content_type, body)
    }

    fn json_of(body: &[u8]) -> Value {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    }

    fn json_type() -> Option<HeaderValue> {
        Some(HeaderValue::from_static("application/json"))
    }

    #[test]
    fn routes_only_get_probe_paths() {
        assert_eq!(Probe::route(&Method::GET, "/health"), Some(Probe::Health));
        assert_eq!(
            Probe::route(&Method::GET, "/v1/models"),
            Some(Probe::Models)
        );
        assert_eq!(Probe::route(&Method::POST, "/health"), None);
        assert_eq!(Probe::route(&Method::GET, "/v1/models/m1"), None);
        assert_eq!(Probe::route(&Method::GET, "/__mock/health"), None);
    }

    #[tokio::test]
    async fn ok_mode_answers_health_and_models() {
        let s = state(ProbeMode::Ok);
        let (status, ct, body) = parts(answer(&s, Probe::Health).await).await;
        assert_eq!((status, ct), (StatusCode::OK, json_type()));
        assert_eq!(json_of(&body), json!({"status": "ok"}));

        let (status, ct, body) = parts(answer(&s, Probe::Models).await).await;
        assert_eq!((status, ct), (StatusCode::OK, json_type()));
        assert_eq!(
            json_of(&body),
            json!({"object": "list", "data": [
                {"id": "m1", "object": "model", "created": 0, "owned_by": "b1"},
                {"id": "m2", "object": "model", "created": 0, "owned_by": "b1"},
            ]})
        );

        s.set_models(vec![]);
        let (_, _, body) = parts(answer(&s, Probe::Models).await).await;
        assert_eq!(json_of(&body), json!({"object": "list", "data": []}));
    }

    #[tokio::test]
    async fn garbage_mode_is_not_json() {
        let s = state(ProbeMode::Garbage);
        for probe in [Probe::Health, Probe::Models] {
            let (status, ct, body) = parts(answer(&s, probe).await).await;
            assert_eq!((status, ct), (StatusCode::OK, json_type()));
            assert_eq!(&body[..], GARBAGE_BODY);
            assert!(serde_json::from_slice::<Value>(&body).is_err());
        }
    }

    #[tokio::test]
    async fn error_mode_is_a_503_envelope() {
        let s = state(ProbeMode::Error);
        let (status, ct, body) = parts(answer(&s, Probe::Health).await).await;
        assert_eq!((status, ct), (StatusCode::SERVICE_UNAVAILABLE, json_type()));
        let v = json_of(&body);
        assert_eq!(v.pointer("/error/type"), Some(&json!("server_error")));
    }

    #[tokio::test]
    async fn huge_mode_pads_the_document() {
        let s = state(ProbeMode::Huge);
        let (status, ct, body) = parts(answer(&s, Probe::Models).await).await;
        assert_eq!((status, ct), (StatusCode::OK, json_type()));
        assert!(body.len() > HUGE_PADDING_BYTES);
        let v = json_of(&body);
        assert_eq!(v.pointer("/data/0/id"), Some(&json!("m1")));
        let padding = v.get("padding").and_then(Value::as_str).unwrap_or("");
        assert_eq!(padding.len(), HUGE_PADDING_BYTES);
    }

    #[tokio::test]
    async fn hang_mode_does_not_answer() {
        let s = state(ProbeMode::Hang);
        let waited =
            tokio::time::timeout(Duration::from_millis(50), answer(&s, Probe::Health)).await;
        assert!(waited.is_err());
    }
}
