//! Routing: which endpoint a request is for, and `handle`, which sends the
//! control API and the probe paths to their modules, and for anything else
//! records the request, applies `x-mock-delay-ms` and `x-mock-status` and
//! calls the endpoint (with the stream pace and the usage override the
//! request's headers ask for).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use crate::body::MockBody;
use crate::probe::{self, Probe};
use crate::reply::{error_response, invalid_request};
use crate::sse::{stream_pace, Pace};
use crate::state::{Recorded, State};
use crate::usage::UsageOverride;
use crate::{chat, control, embeddings, media, responses};

/// What `Limited` fails with.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Largest request body accepted (anything bigger gets a 413).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Images,
    Speech,
    Transcriptions,
    Videos,
    Responses,
    /// `GET /v1/responses/{id}`
    GetResponse(String),
    /// `DELETE /v1/responses/{id}`
    DeleteResponse(String),
    /// `GET /v1/chat/deferred-completion/{id}`
    DeferredCompletion(String),
    /// `GET /v1/videos/{id}`
    GetVideo(String),
}

impl Endpoint {
    fn route(method: &Method, path: &str) -> Option<Self> {
        let ep = match (method, path) {
            (&Method::POST, "/v1/chat/completions") => Endpoint::Chat,
            (&Method::POST, "/v1/completions") => Endpoint::Completions,
            (&Method::POST, "/v1/embeddings") => Endpoint::Embeddings,
            (&Method::POST, "/v1/images/generations") => Endpoint::Images,
            (&Method::POST, "/v1/audio/speech") => Endpoint::Speech,
            (&Method::POST, "/v1/audio/transcriptions") => Endpoint::Transcriptions,
            (&Method::POST, "/v1/videos/generations") => Endpoint::Videos,
            (&Method::POST, "/v1/responses") => Endpoint::Responses,
            (&Method::GET, _) => {
                if let Some(id) = path_id(path, "/v1/responses/") {
                    Endpoint::GetResponse(id)
                } else if let Some(id) = path_id(path, "/v1/chat/deferred-completion/") {
                    Endpoint::DeferredCompletion(id)
                } else if let Some(id) = path_id(path, "/v1/videos/") {
                    Endpoint::GetVideo(id)
                } else {
                    return None;
                }
            }
            (&Method::DELETE, _) => Endpoint::DeleteResponse(path_id(path, "/v1/responses/")?),
            _ => return None,
        };
        Some(ep)
    }

    fn needs_json(&self) -> bool {
        matches!(
            self,
            Endpoint::Chat
                | Endpoint::Completions
                | Endpoint::Embeddings
                | Endpoint::Images
                | Endpoint::Speech
                | Endpoint::Videos
                | Endpoint::Responses
        )
    }
}

/// The id in `path` after `prefix`: one non-empty path segment,
/// percent-decoded.
fn path_id(path: &str, prefix: &str) -> Option<String> {
    let raw = path.strip_prefix(prefix)?;
    if raw.is_empty() || raw.contains('/') {
        return None;
    }
    Some(percent_decode(raw))
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex);
            let lo = bytes.get(i + 2).copied().and_then(hex);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status asked for by `x-mock-status`, answered instead of the
/// endpoint's response.
fn mock_status(req: &Request<Incoming>) -> Option<StatusCode> {
    let v = req.headers().get("x-mock-status")?.to_str().ok()?;
    let code = v.trim().parse::<u16>().ok()?;
    StatusCode::from_u16(code).ok()
}

/// `x-mock-delay-ms: N`: wait N ms (at most a minute) before answering, as
/// a backend still generating a response that is not streamed.
fn mock_delay(req: &Request<Incoming>) -> Option<Duration> {
    let v = req.headers().get("x-mock-delay-ms")?.to_str().ok()?;
    let ms = v.trim().parse::<u64>().ok()?;
    Some(Duration::from_millis(ms.min(60_000)))
}

/// The path with its query (or `path` if there is none) and the headers, as
/// they will be recorded.
fn recorded_head(req: &Request<Incoming>, path: &str) -> (String, Vec<(String, String)>) {
    let full_path = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| path.to_string());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    (full_path, headers)
}

/// The whole request body, at most `MAX_BODY_BYTES` of it.
async fn read_body(body: Incoming) -> Result<Bytes, BoxError> {
    let collected = Limited::new(body, MAX_BODY_BYTES).collect().await?;
    Ok(collected.to_bytes())
}

/// The answer to a body `read_body` could not read: 413 if it is too
/// large, 400 otherwise.
fn unreadable_body(e: &BoxError) -> Response<MockBody> {
    if e.is::<LengthLimitError>() {
        error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
    } else {
        invalid_request(&format!("failed to read request body: {e}"))
    }
}

/// The body as JSON for endpoints that take JSON (`Null` for the others).
fn parse_json(endpoint: &Endpoint, body: &[u8]) -> serde_json::Result<Value> {
    if !endpoint.needs_json() {
        return Ok(Value::Null);
    }
    serde_json::from_slice::<Value>(body)
}

/// Answer one request: `/__mock/*` paths are the control API and the probe
/// paths (`GET /health`, `GET /v1/models`) answer as the probe mode says,
/// neither recorded; anything else is recorded first, then answered by
/// `x-mock-status` or by its endpoint.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<MockBody> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();

    if path.starts_with("/__mock/") {
        return match read_body(req.into_body()).await {
            Ok(body) => control::handle(&state, &method, &path, &body),
            Err(e) => unreadable_body(&e),
        };
    }
    if let Some(probe) = Probe::route(&method, &path) {
        return probe::answer(&state, probe).await;
    }

    let endpoint = Endpoint::route(&method, &path);
    let status_override = mock_status(&req);
    let delay = mock_delay(&req);
    let pace = stream_pace(&req);
    let usage = UsageOverride::from_headers(req.headers());
    let (full_path, headers) = recorded_head(&req, &path);
    let body = match read_body(req.into_body()).await {
        Ok(body) => body,
        Err(e) => return unreadable_body(&e),
    };

    state.record(Recorded {
        method: method.to_string(),
        path: full_path,
        headers,
        body: body.clone(),
    });

    let Some(endpoint) = endpoint else {
        return error_response(
            StatusCode::NOT_FOUND,
            &format!("Unknown path {method} {path}"),
        );
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(code) = status_override {
        return error_response(code, &format!("mock error {}", code.as_u16()));
    }
    match parse_json(&endpoint, &body) {
        Ok(json) => dispatch(&state, endpoint, &json, &body, pace, usage),
        Err(e) => invalid_request(&format!(
            "We could not parse the JSON body of your request: {e}"
        )),
    }
}

/// Call the endpoint's handler.
fn dispatch(
    state: &State,
    endpoint: Endpoint,
    json: &Value,
    body: &Bytes,
    pace: Pace,
    usage: UsageOverride,
) -> Response<MockBody> {
    match endpoint {
        Endpoint::Chat => chat::chat_completions(state, json, body.len(), pace, usage),
        Endpoint::Completions => chat::completions(state, json, body.len(), pace, usage),
        Endpoint::Embeddings => embeddings::embeddings(json, usage),
        Endpoint::Images => media::images(json),
        Endpoint::Speech => media::speech(),
        Endpoint::Transcriptions => media::transcriptions(state, body),
        Endpoint::Videos => media::videos(state, json),
        Endpoint::Responses => responses::responses(state, json, body.len(), pace, usage),
        Endpoint::GetResponse(id) => responses::get_response(state, &id),
        Endpoint::DeleteResponse(id) => responses::delete_response(state, &id),
        Endpoint::DeferredCompletion(id) => chat::deferred_completion(state, &id),
        Endpoint::GetVideo(id) => media::video_job(state, &id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_ids() {
        assert_eq!(
            path_id("/v1/responses/resp_a_1", "/v1/responses/"),
            Some("resp_a_1".to_string())
        );
        assert_eq!(
            path_id("/v1/responses/a%20b%2", "/v1/responses/"),
            Some("a b%2".to_string())
        );
        assert_eq!(path_id("/v1/responses/", "/v1/responses/"), None);
        assert_eq!(
            path_id("/v1/responses/x/input_items", "/v1/responses/"),
            None
        );
        assert_eq!(path_id("/v1/responsesx", "/v1/responses/"), None);
        assert_eq!(percent_decode("%ff%zz"), "\u{fffd}%zz");
    }
}
