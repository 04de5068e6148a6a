//! Server-sent events: encoding one event, and streaming a list of them from
//! a task, paced by the `x-mock-stream-*` request headers.

use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::body::MockBody;

pub fn sse_event(v: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    // Serializing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, v);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// A named event, as the Responses API sends them: `event: NAME` then the
/// `data:` line.
pub fn sse_named_event(name: &str, v: &Value) -> Bytes {
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
pub struct Pace {
    delay: Duration,
    cut_after: Option<usize>,
    /// `x-mock-stream-reset-after: N`: abort the connection after N events.
    reset_after: Option<usize>,
}

/// The pace asked for by the request's `x-mock-stream-*` headers.
pub fn stream_pace(req: &Request<Incoming>) -> Pace {
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

/// Spawn a task that sends `events` (then `data: [DONE]`) paced by `pace`,
/// and return the streaming response reading from it.
pub fn sse_response(events: Vec<Bytes>, pace: Pace) -> Response<MockBody> {
    sse_stream(events, Some(Bytes::from_static(b"data: [DONE]\n\n")), pace)
}

/// Like `sse_response`, with `trailer` (if any) sent after `events` instead
/// of `data: [DONE]`. The trailer counts as an event for the pace hooks.
pub fn sse_stream(events: Vec<Bytes>, trailer: Option<Bytes>, pace: Pace) -> Response<MockBody> {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    tokio::spawn(send_paced(tx, events, trailer, pace));
    let mut resp = Response::new(MockBody::Channel(rx));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The streaming task: sends `events` then `trailer` on `tx`, waiting
/// `pace.delay` between them, stopping after `pace.cut_after` of them, or
/// sending the reset sentinel (an empty chunk) in place of event number
/// `pace.reset_after`.
async fn send_paced(
    tx: mpsc::Sender<Bytes>,
    events: Vec<Bytes>,
    trailer: Option<Bytes>,
    pace: Pace,
) {
    let delay = pace.delay;
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
}
