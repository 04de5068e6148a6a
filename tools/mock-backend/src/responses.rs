//! The Responses API: `POST /v1/responses` (stored unless `"store": false`,
//! chained by `previous_response_id`), `GET` and `DELETE /v1/responses/{id}`.

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::body::MockBody;
use crate::common::{model_of, now_secs, prompt_tokens, set_field, wants_stream};
use crate::reply::{invalid_request_error, json_response, not_found};
use crate::sse::{sse_named_event, sse_stream, Pace};
use crate::state::{lock, State};
use crate::usage::UsageOverride;

/// `POST /v1/responses`.
pub fn responses(
    state: &State,
    req: &Value,
    body_len: usize,
    pace: Pace,
    usage: UsageOverride,
) -> Response<MockBody> {
    let previous = match previous_response_id(state, req) {
        Ok(previous) => previous,
        Err(resp) => return *resp,
    };
    let ResponseAnswer {
        id,
        msg_id,
        text,
        response,
    } = ResponseAnswer::new(state, req, body_len, previous, usage);
    // Stored as completed before any streaming starts, so that a GET right
    // after the stream ends finds it.
    if req.get("store").and_then(Value::as_bool) != Some(false) {
        lock(&state.responses).insert(id, response.clone());
    }
    if !wants_stream(req) {
        return json_response(StatusCode::OK, &response);
    }
    // The Responses API ends the stream without `data: [DONE]`.
    sse_stream(stream_events(&response, &msg_id, &text), None, pace)
}

/// The request's `previous_response_id`, if any: a 400 if it is not a
/// string, a 404 if no such response is stored.
fn previous_response_id(
    state: &State,
    req: &Value,
) -> Result<Option<String>, Box<Response<MockBody>>> {
    let previous = match req.get("previous_response_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(Box::new(invalid_request_error(
                StatusCode::BAD_REQUEST,
                "Invalid type for 'previous_response_id': expected a string.",
                Some("previous_response_id"),
            )));
        }
    };
    if let Some(prev) = &previous {
        if !lock(&state.responses).contains(prev) {
            return Err(Box::new(not_found(
                &format!("Previous response with id '{prev}' not found."),
                Some("previous_response_id"),
            )));
        }
    }
    Ok(previous)
}

/// A completed response (one message with the greeting), with its id and
/// what its stream needs.
struct ResponseAnswer {
    id: String,
    msg_id: String,
    text: String,
    response: Value,
}

impl ResponseAnswer {
    fn new(
        state: &State,
        req: &Value,
        body_len: usize,
        previous: Option<String>,
        usage: UsageOverride,
    ) -> Self {
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
            "usage": usage.responses(input, output),
        });
        if let Some(prev) = previous {
            set_field(&mut response, "previous_response_id", json!(prev));
        }
        ResponseAnswer {
            id,
            msg_id,
            text,
            response,
        }
    }
}

/// The stream of `response`: `response.created` (in progress, no output
/// yet), one text delta with the whole `text`, then `response.completed`.
fn stream_events(response: &Value, msg_id: &str, text: &str) -> Vec<Bytes> {
    let mut in_progress = response.clone();
    set_field(&mut in_progress, "status", json!("in_progress"));
    set_field(&mut in_progress, "output", json!([]));
    set_field(&mut in_progress, "usage", Value::Null);
    vec![
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
    ]
}

/// `GET /v1/responses/{id}`.
pub fn get_response(state: &State, id: &str) -> Response<MockBody> {
    let stored = lock(&state.responses).get(id).cloned();
    match stored {
        Some(v) => json_response(StatusCode::OK, &v),
        None => not_found(&format!("No response found with id '{id}'."), None),
    }
}

/// `DELETE /v1/responses/{id}`.
pub fn delete_response(state: &State, id: &str) -> Response<MockBody> {
    let removed = lock(&state.responses).remove(id);
    match removed {
        Some(_) => json_response(
            StatusCode::OK,
            &json!({"id": id, "object": "response.deleted", "deleted": true}),
        ),
        None => not_found(&format!("No response found with id '{id}'."), None),
    }
}
