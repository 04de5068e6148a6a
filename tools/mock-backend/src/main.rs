//! A fast mock OpenAI-compatible model backend.
//!
//! Used as the upstream behind Envoy in the integration tests and benchmarks.
//! Every request (except `/__mock/*`) is recorded so tests can assert exactly
//! what the backend received; see `GET /__mock/requests`.
//!
//! Some objects are stateful, kept in memory per process (each kind capped at
//! `STORE_CAPACITY`, oldest dropped first): stored Responses API responses
//! (`GET`/`DELETE /v1/responses/{id}`), deferred chat completions
//! (`"deferred": true`, then `GET /v1/chat/deferred-completion/{id}`: 202
//! once, then 200) and video jobs (`GET /v1/videos/{id}`: `in_progress` once,
//! then `completed`).
//!
//! Usage: `mock-backend --name NAME --listen 127.0.0.1:PORT [--threads N]`

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How many recorded requests are kept.
const RECORD_CAPACITY: usize = 256;
/// How many objects of each stateful kind (stored responses, deferred
/// completions, video jobs) are kept; the oldest is dropped beyond that.
const STORE_CAPACITY: usize = 10_000;
/// Largest request body accepted (anything bigger gets a 413).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// A valid 1x1 RGBA PNG, already base64-encoded.
const PNG_1X1_B64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

// ---------------------------------------------------------------------------
// Response body: either a complete buffer or a channel fed by a task.
// ---------------------------------------------------------------------------

enum MockBody {
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<Bytes>),
}

impl MockBody {
    fn full(b: impl Into<Bytes>) -> Self {
        MockBody::Full(Some(b.into()))
    }
    fn empty() -> Self {
        MockBody::Full(None)
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            // An empty chunk on the channel means "reset": the body fails and
            // hyper aborts the connection mid-response.
            MockBody::Channel(rx) => rx.poll_recv(cx).map(|o| {
                o.map(|b| {
                    if b.is_empty() {
                        Err(std::io::Error::other("mock stream reset"))
                    } else {
                        Ok(Frame::data(b))
                    }
                })
            }),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(None) => true,
            MockBody::Full(Some(b)) => b.is_empty(),
            MockBody::Channel(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Channel(_) => SizeHint::default(),
        }
    }
}

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

struct Recorded {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

/// Objects by id, in insertion order, at most `capacity` of them (inserting
/// beyond that drops the oldest).
struct Store<V> {
    capacity: usize,
    seq: u64,
    map: HashMap<String, (u64, V)>,
    order: BTreeMap<u64, String>,
}

impl<V> Store<V> {
    fn new(capacity: usize) -> Self {
        Store {
            capacity: capacity.max(1),
            seq: 0,
            map: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    fn insert(&mut self, id: String, v: V) {
        self.remove(&id);
        while self.map.len() >= self.capacity {
            match self.order.pop_first() {
                Some((_, oldest)) => {
                    self.map.remove(&oldest);
                }
                None => break,
            }
        }
        self.seq += 1;
        self.order.insert(self.seq, id.clone());
        self.map.insert(id, (self.seq, v));
    }

    fn get(&self, id: &str) -> Option<&V> {
        self.map.get(id).map(|(_, v)| v)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        self.map.get_mut(id).map(|(_, v)| v)
    }

    fn contains(&self, id: &str) -> bool {
        self.map.contains_key(id)
    }

    fn remove(&mut self, id: &str) -> Option<V> {
        let (seq, v) = self.map.remove(id)?;
        self.order.remove(&seq);
        Some(v)
    }
}

/// A deferred chat completion: the completion to hand out, and whether it
/// has been polled once already (the first poll answers 202).
struct Deferred {
    polled: bool,
    completion: Value,
}

/// A video job as created (status `queued`) and how often it was fetched.
struct VideoJob {
    polls: u64,
    job: Value,
}

struct State {
    name: String,
    name_header: HeaderValue,
    ids: AtomicU64,
    recorded: Mutex<VecDeque<Recorded>>,
    responses: Mutex<Store<Value>>,
    deferred: Mutex<Store<Deferred>>,
    videos: Mutex<Store<VideoJob>>,
}

/// Lock a mutex, carrying on if a panicking thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn record(&self, r: Recorded) {
        let mut q = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= RECORD_CAPACITY {
            q.pop_front();
        }
        q.push_back(r);
    }

    fn recorded_json(&self) -> Value {
        let q = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
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
        json!({"backend": self.name, "requests": requests})
    }

    fn clear(&self) {
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0) as u32;
        let b1 = chunk.get(1).copied().unwrap_or(0) as u32;
        let b2 = chunk.get(2).copied().unwrap_or(0) as u32;
        let n = (b0 << 16) | (b1 << 8) | b2;
        let sym = |shift: u32| ALPHABET[((n >> shift) & 63) as usize] as char;
        out.push(sym(18));
        out.push(sym(12));
        out.push(if chunk.len() > 1 { sym(6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(0) } else { '=' });
    }
    out
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

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

fn not_found(message: &str, param: Option<&str>) -> Response<MockBody> {
    let mut env = error_envelope(message, "invalid_request_error");
    if let Some(param) = param {
        env["error"]["param"] = json!(param);
    }
    json_response(StatusCode::NOT_FOUND, &env)
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

fn json_response(status: StatusCode, v: &Value) -> Response<MockBody> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut resp = Response::new(MockBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn error_response(status: StatusCode, message: &str) -> Response<MockBody> {
    json_response(status, &error_envelope(message, error_type_for(status)))
}

fn invalid_request(message: &str) -> Response<MockBody> {
    json_response(
        StatusCode::BAD_REQUEST,
        &error_envelope(message, "invalid_request_error"),
    )
}

fn bytes_response(
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

/// Prompt "tokens": request body bytes / 4, at least 1.
fn prompt_tokens(body_len: usize) -> u64 {
    ((body_len / 4) as u64).max(1)
}

fn model_of(req: &Value) -> String {
    req.get("model")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string()
}

fn wants_stream(req: &Value) -> bool {
    req.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

fn wants_usage(req: &Value) -> bool {
    req.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The function name to call if the request asks for tools (and does not
/// disable them with `tool_choice: "none"`).
fn tool_to_call(req: &Value) -> Option<String> {
    if req.get("tool_choice").and_then(Value::as_str) == Some("none") {
        return None;
    }
    let first = req.get("tools")?.as_array()?.first()?;
    let name = first
        .get("function")
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("tool");
    Some(name.to_string())
}

/// Words of `content`, each but the first prefixed with its space, so that
/// concatenating the pieces gives back the content.
fn word_pieces(content: &str) -> Vec<String> {
    content
        .split(' ')
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_string()
            } else {
                format!(" {w}")
            }
        })
        .collect()
}

fn sse_event(v: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    // Serializing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, v);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// A named event, as the Responses API sends them: `event: NAME` then the
/// `data:` line.
fn sse_named_event(name: &str, v: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Serializing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, v);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// How a stream is paced: `x-mock-stream-delay-ms` between events, and
/// `x-mock-stream-cut-after: N` to end the response cleanly after N events,
/// without `[DONE]` (a backend that gives up mid-stream).
#[derive(Clone, Copy, Default)]
struct Pace {
    delay: Duration,
    cut_after: Option<usize>,
    /// `x-mock-stream-reset-after: N`: abort the connection after N events.
    reset_after: Option<usize>,
}

/// Spawn a task that sends `events` (then `data: [DONE]`) paced by `pace`,
/// and return the streaming response reading from it.
fn sse_response(events: Vec<Bytes>, pace: Pace) -> Response<MockBody> {
    sse_stream(events, Some(Bytes::from_static(b"data: [DONE]\n\n")), pace)
}

/// Like `sse_response`, with `trailer` (if any) sent after `events` instead
/// of `data: [DONE]`. The trailer counts as an event for the pace hooks.
fn sse_stream(events: Vec<Bytes>, trailer: Option<Bytes>, pace: Pace) -> Response<MockBody> {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let delay = pace.delay;
    tokio::spawn(async move {
        let mut first = true;
        let all = events.into_iter().chain(trailer);
        let reset = pace.reset_after.map(|n| {
            (n, Bytes::new()) // the reset sentinel
        });
        for (index, ev) in all.take(pace.cut_after.unwrap_or(usize::MAX)).enumerate() {
            if let Some((n, sentinel)) = &reset {
                if index == *n {
                    let _ = tx.send(sentinel.clone()).await;
                    return;
                }
            }
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            first = false;
            if tx.send(ev).await.is_err() {
                return; // client went away
            }
        }
    });
    let mut resp = Response::new(MockBody::Channel(rx));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn stream_pace(req: &Request<Incoming>) -> Pace {
    let number = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    Pace {
        delay: Duration::from_millis(number("x-mock-stream-delay-ms").unwrap_or(0)),
        cut_after: number("x-mock-stream-cut-after").and_then(|n| usize::try_from(n).ok()),
        reset_after: number("x-mock-stream-reset-after").and_then(|n| usize::try_from(n).ok()),
    }
}

fn mock_status(req: &Request<Incoming>) -> Option<StatusCode> {
    let v = req.headers().get("x-mock-status")?.to_str().ok()?;
    let code = v.trim().parse::<u16>().ok()?;
    StatusCode::from_u16(code).ok()
}

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

fn transcription_wants_text(body: &[u8]) -> bool {
    const KEY: &[u8] = b"name=\"response_format\"";
    let Some(pos) = body.windows(KEY.len()).position(|w| w == KEY) else {
        return false;
    };
    let rest = body.get(pos + KEY.len()..).unwrap_or_default();
    // Skip to the end of the part headers (blank line), then read the value.
    let Some(hdr_end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let value = rest.get(hdr_end + 4..).unwrap_or_default();
    value.starts_with(b"text") && !value.starts_with(b"text_")
}

// ---------------------------------------------------------------------------
// Model endpoints
// ---------------------------------------------------------------------------

fn chat_completions(
    state: &State,
    req: &Value,
    body_len: usize,
    delay: Pace,
) -> Response<MockBody> {
    let model = model_of(req);
    let id = format!("chatcmpl-{}-{}", state.name, state.next_id());
    let created = now_secs();
    let content = format!("Hello from {}.", state.name);
    let tool = tool_to_call(req);
    let p = prompt_tokens(body_len);
    let c = if tool.is_some() {
        1
    } else {
        content.split_whitespace().count() as u64
    };
    let usage = json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
    let call_id = if tool.is_some() {
        format!("call_{}_{}", state.name, state.next_id())
    } else {
        String::new()
    };

    // `"deferred": true` (xAI): answer with a request id now and hand out the
    // (non-streamed) completion from GET /v1/chat/deferred-completion/{id}.
    let deferred = req.get("deferred").and_then(Value::as_bool) == Some(true);
    if deferred || !wants_stream(req) {
        let (message, finish) = match &tool {
            Some(name) => (
                json!({
                    "role": "assistant",
                    "content": null,
                    "refusal": null,
                    "tool_calls": [{
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": "{}"},
                    }],
                }),
                "tool_calls",
            ),
            None => (
                json!({"role": "assistant", "content": content, "refusal": null}),
                "stop",
            ),
        };
        let completion = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish,
            }],
            "usage": usage,
        });
        if deferred {
            let request_id = format!("defer_{}_{}", state.name, state.next_id());
            lock(&state.deferred).insert(
                request_id.clone(),
                Deferred {
                    polled: false,
                    completion,
                },
            );
            return json_response(StatusCode::OK, &json!({"request_id": request_id}));
        }
        return json_response(StatusCode::OK, &completion);
    }

    let include_usage = wants_usage(req);
    let chunk = |delta: Value, finish: Value| {
        let mut v = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            v["usage"] = Value::Null;
        }
        sse_event(&v)
    };
    let mut events = Vec::new();
    match &tool {
        Some(name) => {
            events.push(chunk(
                json!({
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [{
                        "index": 0,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }],
                }),
                Value::Null,
            ));
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
                Value::Null,
            ));
            events.push(chunk(json!({}), json!("tool_calls")));
        }
        None => {
            for (i, piece) in word_pieces(&content).into_iter().enumerate() {
                let delta = if i == 0 {
                    json!({"role": "assistant", "content": piece})
                } else {
                    json!({"content": piece})
                };
                events.push(chunk(delta, Value::Null));
            }
            events.push(chunk(json!({}), json!("stop")));
        }
    }
    if include_usage {
        events.push(usage_chunk(
            &id,
            "chat.completion.chunk",
            created,
            &model,
            &usage,
        ));
    }
    sse_response(events, delay)
}

/// The last event of a stream with `include_usage`: no choices, only usage.
fn usage_chunk(id: &str, object: &str, created: u64, model: &str, usage: &Value) -> Bytes {
    sse_event(&json!({
        "id": id,
        "object": object,
        "created": created,
        "model": model,
        "system_fingerprint": "fp_mock",
        "choices": [],
        "usage": usage,
    }))
}

fn completions(state: &State, req: &Value, body_len: usize, delay: Pace) -> Response<MockBody> {
    let model = model_of(req);
    let id = format!("cmpl-{}-{}", state.name, state.next_id());
    let created = now_secs();
    let text = format!("Hello from {}.", state.name);
    let p = prompt_tokens(body_len);
    let c = text.split_whitespace().count() as u64;
    let usage = json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});

    if !wants_stream(req) {
        return json_response(
            StatusCode::OK,
            &json!({
                "id": id,
                "object": "text_completion",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_mock",
                "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": "stop"}],
                "usage": usage,
            }),
        );
    }

    let include_usage = wants_usage(req);
    let chunk = |text: &str, finish: Value| {
        let mut v = json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            v["usage"] = Value::Null;
        }
        sse_event(&v)
    };
    let mut events: Vec<Bytes> = word_pieces(&text)
        .iter()
        .map(|p| chunk(p, Value::Null))
        .collect();
    events.push(chunk("", json!("stop")));
    if include_usage {
        events.push(usage_chunk(&id, "text_completion", created, &model, &usage));
    }
    sse_response(events, delay)
}

fn embeddings(req: &Value) -> Response<MockBody> {
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
                let mut raw = Vec::with_capacity(emb.len() * 4);
                for f in emb {
                    raw.extend_from_slice(&f.to_le_bytes());
                }
                Value::String(base64_encode(&raw))
            } else {
                json!(emb)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": data,
            "model": model_of(req),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }),
    )
}

fn images(req: &Value) -> Response<MockBody> {
    let n = req
        .get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 4);
    let prompt = req.get("prompt").cloned().unwrap_or(Value::Null);
    let data: Vec<Value> = (0..n)
        .map(|_| json!({"b64_json": PNG_1X1_B64, "revised_prompt": prompt}))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"created": now_secs(), "data": data}),
    )
}

fn speech() -> Response<MockBody> {
    // An ID3v2.4 tag header declaring 54 bytes of padding: 64 bytes in all.
    let mut b = vec![0u8; 64];
    b[..10].copy_from_slice(&[b'I', b'D', b'3', 4, 0, 0, 0, 0, 0, 54]);
    bytes_response(StatusCode::OK, "audio/mpeg", Bytes::from(b))
}

fn transcriptions(state: &State, body: &[u8]) -> Response<MockBody> {
    let text = format!("Transcribed by {}.", state.name);
    if transcription_wants_text(body) {
        return bytes_response(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            Bytes::from(format!("{text}\n")),
        );
    }
    json_response(StatusCode::OK, &json!({"text": text}))
}

fn videos(state: &State, req: &Value) -> Response<MockBody> {
    let id = format!("video_{}_{}", state.name, state.next_id());
    let job = json!({
        "id": id,
        "object": "video.generation",
        "status": "queued",
        "model": model_of(req),
        "created": now_secs(),
    });
    let resp = json_response(StatusCode::OK, &job);
    lock(&state.videos).insert(id, VideoJob { polls: 0, job });
    resp
}

/// `GET /v1/videos/{id}`: `in_progress` the first time, `completed` (with a
/// `url`) after that.
fn video_job(state: &State, id: &str) -> Response<MockBody> {
    let job = {
        let mut videos = lock(&state.videos);
        let Some(entry) = videos.get_mut(id) else {
            drop(videos);
            return not_found(&format!("No video found with id '{id}'."), None);
        };
        entry.polls = entry.polls.saturating_add(1);
        let mut job = entry.job.clone();
        if entry.polls == 1 {
            job["status"] = json!("in_progress");
        } else {
            job["status"] = json!("completed");
            job["url"] = json!(format!("https://example.invalid/videos/{id}.mp4"));
        }
        job
    };
    json_response(StatusCode::OK, &job)
}

/// `GET /v1/chat/deferred-completion/{id}`: 202 with no body the first time,
/// then 200 with the completion.
fn deferred_completion(state: &State, id: &str) -> Response<MockBody> {
    let completion = {
        let mut deferred = lock(&state.deferred);
        let Some(entry) = deferred.get_mut(id) else {
            drop(deferred);
            return not_found(
                &format!("No deferred completion found with request_id '{id}'."),
                None,
            );
        };
        if !entry.polled {
            entry.polled = true;
            None
        } else {
            Some(entry.completion.clone())
        }
    };
    match completion {
        Some(c) => json_response(StatusCode::OK, &c),
        None => {
            let mut r = Response::new(MockBody::empty());
            *r.status_mut() = StatusCode::ACCEPTED;
            r
        }
    }
}

fn responses(state: &State, req: &Value, body_len: usize, pace: Pace) -> Response<MockBody> {
    let previous = match req.get("previous_response_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            let mut env = error_envelope(
                "Invalid type for 'previous_response_id': expected a string.",
                "invalid_request_error",
            );
            env["error"]["param"] = json!("previous_response_id");
            return json_response(StatusCode::BAD_REQUEST, &env);
        }
    };
    if let Some(prev) = &previous {
        if !lock(&state.responses).contains(prev) {
            return not_found(
                &format!("Previous response with id '{prev}' not found."),
                Some("previous_response_id"),
            );
        }
    }

    let text = format!("Hello from {}.", state.name);
    let input = prompt_tokens(body_len);
    let output = text.split_whitespace().count() as u64;
    let id = format!("resp_{}_{}", state.name, state.next_id());
    let msg_id = format!("msg_{}_{}", state.name, state.next_id());
    let mut response = json!({
        "id": id,
        "object": "response",
        "created_at": now_secs(),
        "status": "completed",
        "model": model_of(req),
        "output": [{
            "type": "message",
            "id": msg_id,
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }],
        "usage": {"input_tokens": input, "output_tokens": output, "total_tokens": input + output},
    });
    if let Some(prev) = previous {
        response["previous_response_id"] = json!(prev);
    }
    // Stored as completed before any streaming starts, so that a GET right
    // after the stream ends finds it.
    if req.get("store").and_then(Value::as_bool) != Some(false) {
        lock(&state.responses).insert(id, response.clone());
    }

    if !wants_stream(req) {
        return json_response(StatusCode::OK, &response);
    }

    let mut in_progress = response.clone();
    in_progress["status"] = json!("in_progress");
    in_progress["output"] = json!([]);
    in_progress["usage"] = Value::Null;
    let events = vec![
        sse_named_event(
            "response.created",
            &json!({"type": "response.created", "sequence_number": 0, "response": in_progress}),
        ),
        sse_named_event(
            "response.output_text.delta",
            &json!({
                "type": "response.output_text.delta",
                "sequence_number": 1,
                "item_id": msg_id,
                "output_index": 0,
                "content_index": 0,
                "delta": text,
                "logprobs": [],
            }),
        ),
        sse_named_event(
            "response.completed",
            &json!({"type": "response.completed", "sequence_number": 2, "response": response}),
        ),
    ];
    // The Responses API ends the stream without `data: [DONE]`.
    sse_stream(events, None, pace)
}

/// `GET /v1/responses/{id}`.
fn get_response(state: &State, id: &str) -> Response<MockBody> {
    let stored = lock(&state.responses).get(id).cloned();
    match stored {
        Some(v) => json_response(StatusCode::OK, &v),
        None => not_found(&format!("No response found with id '{id}'."), None),
    }
}

/// `DELETE /v1/responses/{id}`.
fn delete_response(state: &State, id: &str) -> Response<MockBody> {
    let removed = lock(&state.responses).remove(id);
    match removed {
        Some(_) => json_response(
            StatusCode::OK,
            &json!({"id": id, "object": "response.deleted", "deleted": true}),
        ),
        None => not_found(&format!("No response found with id '{id}'."), None),
    }
}

fn models(state: &State) -> Response<MockBody> {
    json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": [{"id": "mock", "object": "model", "created": 0, "owned_by": state.name}],
        }),
    )
}

// ---------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------

enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Images,
    Speech,
    Transcriptions,
    Videos,
    Responses,
    Models,
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
            (&Method::GET, "/v1/models") => Endpoint::Models,
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

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<MockBody> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();

    if path.starts_with("/__mock/") {
        return match (&method, path.as_str()) {
            (&Method::GET, "/__mock/requests") => {
                json_response(StatusCode::OK, &state.recorded_json())
            }
            (&Method::DELETE, "/__mock/requests") => {
                state.clear();
                let mut r = Response::new(MockBody::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            (&Method::GET, "/__mock/health") => {
                json_response(StatusCode::OK, &json!({"backend": state.name}))
            }
            _ => error_response(
                StatusCode::NOT_FOUND,
                &format!("Unknown path {method} {path}"),
            ),
        };
    }

    let endpoint = Endpoint::route(&method, &path);
    let status_override = mock_status(&req);
    let delay = stream_pace(&req);
    let full_path = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| path.clone());
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

    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let too_large = e.is::<http_body_util::LengthLimitError>();
            let resp = if too_large {
                error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
            } else {
                invalid_request(&format!("failed to read request body: {e}"))
            };
            return resp;
        }
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

    if let Some(code) = status_override {
        return error_response(code, &format!("mock error {}", code.as_u16()));
    }

    let json = if endpoint.needs_json() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => v,
            Err(e) => {
                return invalid_request(&format!(
                    "We could not parse the JSON body of your request: {e}"
                ))
            }
        }
    } else {
        Value::Null
    };

    match endpoint {
        Endpoint::Chat => chat_completions(&state, &json, body.len(), delay),
        Endpoint::Completions => completions(&state, &json, body.len(), delay),
        Endpoint::Embeddings => embeddings(&json),
        Endpoint::Images => images(&json),
        Endpoint::Speech => speech(),
        Endpoint::Transcriptions => transcriptions(&state, &body),
        Endpoint::Videos => videos(&state, &json),
        Endpoint::Responses => responses(&state, &json, body.len(), delay),
        Endpoint::Models => models(&state),
        Endpoint::GetResponse(id) => get_response(&state, &id),
        Endpoint::DeleteResponse(id) => delete_response(&state, &id),
        Endpoint::DeferredCompletion(id) => deferred_completion(&state, &id),
        Endpoint::GetVideo(id) => video_job(&state, &id),
    }
}

async fn service(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let name_header = state.name_header.clone();
    let mut resp = handle(state, req).await;
    let h = resp.headers_mut();
    h.insert(HeaderName::from_static("x-mock-backend"), name_header);
    h.insert(
        HeaderName::from_static("access-control-allow-origin"),
        HeaderValue::from_static("*"),
    );
    h.insert(
        HeaderName::from_static("access-control-allow-credentials"),
        HeaderValue::from_static("true"),
    );
    Ok(resp)
}

// ---------------------------------------------------------------------------
// Start-up
// ---------------------------------------------------------------------------

struct Args {
    name: String,
    listen: SocketAddr,
    threads: usize,
}

const USAGE: &str = "usage: mock-backend --name NAME --listen ADDR:PORT [--threads N]";

fn parse_args() -> Result<Args, String> {
    let mut name = None;
    let mut listen = None;
    let mut threads = 2usize;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |flag: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--name" => name = Some(value("--name")?),
            "--listen" => {
                let v = value("--listen")?;
                listen = Some(
                    v.parse::<SocketAddr>()
                        .map_err(|e| format!("bad --listen address {v:?}: {e}"))?,
                );
            }
            "--threads" => {
                let v = value("--threads")?;
                threads = v
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("bad --threads value {v:?}"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        name: name.ok_or("--name is required")?,
        listen: listen.ok_or("--listen is required")?,
        threads,
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let name_header = HeaderValue::from_str(&args.name)
        .map_err(|_| format!("--name {:?} is not a valid header value", args.name))?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().unwrap_or(args.listen);
    let state = Arc::new(State {
        name: args.name,
        name_header,
        ids: AtomicU64::new(0),
        recorded: Mutex::new(VecDeque::with_capacity(RECORD_CAPACITY)),
        responses: Mutex::new(Store::new(STORE_CAPACITY)),
        deferred: Mutex::new(Store::new(STORE_CAPACITY)),
        videos: Mutex::new(Store::new(STORE_CAPACITY)),
    });

    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "mock-backend {} listening on {addr}", state.name);
        let _ = out.flush();
    }

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(_) => {
                        // E.g. EMFILE: back off briefly instead of spinning.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| service(state.clone(), req));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
    eprintln!("mock-backend {} shutting down", state.name);
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mock-backend: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mock-backend: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(serve(args));
    // Don't wait for open keep-alive connections or streams.
    runtime.shutdown_timeout(Duration::from_millis(100));
    if let Err(e) = result {
        eprintln!("mock-backend: {e}");
        std::process::exit(1);
    }
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

    #[test]
    fn word_pieces_rejoin() {
        let pieces = word_pieces("Hello from a.");
        assert_eq!(pieces, vec!["Hello", " from", " a."]);
        assert_eq!(pieces.concat(), "Hello from a.");
    }

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

    #[test]
    fn transcription_text_format_detection() {
        let body =
            b"--b\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\ntext\r\n--b--";
        assert!(transcription_wants_text(body));
        let body =
            b"--b\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\njson\r\n--b--";
        assert!(!transcription_wants_text(body));
        assert!(!transcription_wants_text(b"garbage"));
    }

    #[test]
    fn store_drops_oldest_beyond_capacity() {
        let mut s = Store::new(3);
        for i in 0..3 {
            s.insert(format!("k{i}"), i);
        }
        assert_eq!(s.remove("k1"), Some(1));
        s.insert("k3".to_string(), 3);
        s.insert("k4".to_string(), 4);
        // k0 was the oldest left when k4 came in.
        assert!(!s.contains("k0"));
        assert_eq!(s.get("k2"), Some(&2));
        assert_eq!(s.get("k3"), Some(&3));
        assert_eq!(s.get("k4"), Some(&4));
        assert_eq!(s.map.len(), 3);
        assert_eq!(s.order.len(), 3);
        // Re-inserting a key moves it to the back.
        s.insert("k2".to_string(), 22);
        s.insert("k5".to_string(), 5);
        assert!(!s.contains("k3"));
        assert_eq!(s.get("k2"), Some(&22));
    }

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
