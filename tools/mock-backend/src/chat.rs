//! Chat completions (`POST /v1/chat/completions`, with tool calls, streaming
//! and xAI's deferred completions) and legacy completions
//! (`POST /v1/completions`).

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::body::MockBody;
use crate::common::{model_of, now_secs, prompt_tokens, set_field, wants_stream, wants_usage};
use crate::reply::{empty_response, json_response, not_found};
use crate::sse::{sse_event, sse_response, Pace};
use crate::state::{lock, Deferred, State};

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

/// The answer to one chat completion request: a greeting, or a call of the
/// first tool offered.
struct ChatAnswer {
    id: String,
    created: u64,
    model: String,
    content: String,
    /// The function to call, if the request offered tools.
    tool: Option<String>,
    /// The tool call's id (empty without a tool).
    call_id: String,
    usage: Value,
}

impl ChatAnswer {
    fn new(state: &State, req: &Value, body_len: usize) -> Self {
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
        ChatAnswer {
            id,
            created,
            model,
            content,
            tool,
            call_id,
            usage,
        }
    }

    /// The whole (non-streamed) `chat.completion` object.
    fn completion(&self) -> Value {
        let (message, finish) = match &self.tool {
            Some(name) => (
                json!({
                    "role": "assistant",
                    "content": null,
                    "refusal": null,
                    "tool_calls": [{
                        "id": self.call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": "{}"},
                    }],
                }),
                "tool_calls",
            ),
            None => (
                json!({"role": "assistant", "content": self.content, "refusal": null}),
                "stop",
            ),
        };
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_mock",
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish,
            }],
            "usage": self.usage,
        })
    }

    /// One `chat.completion.chunk` event.
    fn chunk(&self, delta: Value, finish: Value, include_usage: bool) -> Bytes {
        let mut v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            set_field(&mut v, "usage", Value::Null);
        }
        sse_event(&v)
    }

    /// The stream's events, before `[DONE]`.
    fn chunks(&self, include_usage: bool) -> Vec<Bytes> {
        let mut events = Vec::new();
        match &self.tool {
            Some(name) => self.push_tool_call_chunks(&mut events, name, include_usage),
            None => self.push_content_chunks(&mut events, include_usage),
        }
        if include_usage {
            events.push(usage_chunk(
                &self.id,
                "chat.completion.chunk",
                self.created,
                &self.model,
                &self.usage,
            ));
        }
        events
    }

    /// The tool call streamed: name, then arguments, then the finish reason.
    fn push_tool_call_chunks(&self, events: &mut Vec<Bytes>, name: &str, include_usage: bool) {
        events.push(self.chunk(
            json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "index": 0,
                    "id": self.call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }],
            }),
            Value::Null,
            include_usage,
        ));
        events.push(self.chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
            Value::Null,
            include_usage,
        ));
        events.push(self.chunk(json!({}), json!("tool_calls"), include_usage));
    }

    /// The content streamed one word per chunk, then the finish reason.
    fn push_content_chunks(&self, events: &mut Vec<Bytes>, include_usage: bool) {
        for (i, piece) in word_pieces(&self.content).into_iter().enumerate() {
            let delta = if i == 0 {
                json!({"role": "assistant", "content": piece})
            } else {
                json!({"content": piece})
            };
            events.push(self.chunk(delta, Value::Null, include_usage));
        }
        events.push(self.chunk(json!({}), json!("stop"), include_usage));
    }
}

/// `POST /v1/chat/completions`.
pub fn chat_completions(
    state: &State,
    req: &Value,
    body_len: usize,
    pace: Pace,
) -> Response<MockBody> {
    let answer = ChatAnswer::new(state, req, body_len);
    // `"deferred": true` (xAI): answer with a request id now and hand out the
    // (non-streamed) completion from GET /v1/chat/deferred-completion/{id}.
    if req.get("deferred").and_then(Value::as_bool) == Some(true) {
        return defer(state, answer.completion());
    }
    if !wants_stream(req) {
        return json_response(StatusCode::OK, &answer.completion());
    }
    sse_response(answer.chunks(wants_usage(req)), pace)
}

/// Keep `completion` for `GET /v1/chat/deferred-completion/{id}` and answer
/// with its request id.
fn defer(state: &State, completion: Value) -> Response<MockBody> {
    let request_id = format!("defer_{}_{}", state.name, state.next_id());
    lock(&state.deferred).insert(
        request_id.clone(),
        Deferred {
            polled: false,
            completion,
        },
    );
    json_response(StatusCode::OK, &json!({"request_id": request_id}))
}

/// `GET /v1/chat/deferred-completion/{id}`: 202 with no body the first time,
/// then 200 with the completion.
pub fn deferred_completion(state: &State, id: &str) -> Response<MockBody> {
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
        None => empty_response(StatusCode::ACCEPTED),
    }
}

/// `POST /v1/completions` (legacy): the greeting as `text_completion`.
pub fn completions(state: &State, req: &Value, body_len: usize, pace: Pace) -> Response<MockBody> {
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
            set_field(&mut v, "usage", Value::Null);
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
    sse_response(events, pace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_pieces_rejoin() {
        let pieces = word_pieces("Hello from a.");
        assert_eq!(pieces, vec!["Hello", " from", " a."]);
        assert_eq!(pieces.concat(), "Hello from a.");
    }
}
