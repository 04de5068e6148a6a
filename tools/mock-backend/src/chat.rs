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
use crate::usage::UsageOverride;

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
    /// `None` when `x-mock-usage: missing` asks for no usage.
    usage: Option<Value>,
}

impl ChatAnswer {
    fn new(state: &State, req: &Value, body_len: usize, usage: UsageOverride) -> Self {
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
        let usage = usage.chat(p, c);
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
        let mut v = json!({
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
        });
        if let Some(usage) = &self.usage {
            set_field(&mut v, "usage", usage.clone());
        }
        v
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
        if let (true, Some(usage)) = (include_usage, &self.usage) {
            events.push(usage_chunk(
                &self.id,
                "chat.completion.chunk",
                self.created,
                &self.model,
                usage,
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
    usage: UsageOverride,
) -> Response<MockBody> {
    let answer = ChatAnswer::new(state, req, body_len, usage);
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
pub fn completions(
    state: &State,
    req: &Value,
    body_len: usize,
    pace: Pace,
    usage: UsageOverride,
) -> Response<MockBody> {
    let model = model_of(req);
    let id = format!("cmpl-{}-{}", state.name, state.next_id());
    let created = now_secs();
    let text = format!("Hello from {}.", state.name);
    let p = prompt_tokens(body_len);
    let c = text.split_whitespace().count() as u64;
    let usage = usage.chat(p, c);

    if !wants_stream(req) {
        let mut v = json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": "stop"}],
        });
        if let Some(usage) = usage {
            set_field(&mut v, "usage", usage);
        }
        return json_response(StatusCode::OK, &v);
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
    if let (true, Some(usage)) = (include_usage, &usage) {
        events.push(usage_chunk(&id, "text_completion", created, &model, usage));
    }
    sse_response(events, pace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ProbeMode;
    use hyper::header::HeaderValue;
    use hyper::HeaderMap;

    fn state() -> State {
        State::new(
            "a".to_string(),
            HeaderValue::from_static("a"),
            vec!["mock".to_string()],
            ProbeMode::Ok,
        )
    }

    fn usage(pairs: &[(&'static str, &'static str)]) -> UsageOverride {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        UsageOverride::from_headers(&headers)
    }

    /// The JSON of each `data:` event.
    fn events(chunks: &[Bytes]) -> Vec<Value> {
        chunks
            .iter()
            .filter_map(|c| std::str::from_utf8(c).ok())
            .filter_map(|c| c.strip_prefix("data: "))
            .filter_map(|c| serde_json::from_str(c.trim_end()).ok())
            .collect()
    }

    #[test]
    fn counted_usage_without_headers() {
        let answer = ChatAnswer::new(&state(), &json!({"model": "m"}), 40, usage(&[]));
        let expected = json!({"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13});
        assert_eq!(answer.completion().get("usage"), Some(&expected));
        let streamed = events(&answer.chunks(true));
        assert_eq!(
            streamed.last().and_then(|e| e.get("usage")),
            Some(&expected)
        );
        assert!(events(&answer.chunks(false))
            .iter()
            .all(|e| e.get("usage").is_none()));
    }

    #[test]
    fn completion_tokens_header_keeps_the_content() {
        let req = json!({"model": "m"});
        let answer = ChatAnswer::new(
            &state(),
            &req,
            40,
            usage(&[("x-mock-completion-tokens", "500")]),
        );
        let completion = answer.completion();
        assert_eq!(
            completion.get("usage"),
            Some(&json!({"prompt_tokens": 10, "completion_tokens": 500, "total_tokens": 510}))
        );
        assert_eq!(
            completion.pointer("/choices/0/message/content"),
            Some(&json!("Hello from a."))
        );
        let streamed = events(&answer.chunks(true));
        assert_eq!(
            streamed
                .last()
                .and_then(|e| e.pointer("/usage/completion_tokens")),
            Some(&json!(500))
        );
    }

    #[test]
    fn missing_usage_drops_the_member_and_the_usage_chunk() {
        let answer = ChatAnswer::new(
            &state(),
            &json!({"model": "m"}),
            40,
            usage(&[("x-mock-usage", "missing")]),
        );
        assert_eq!(answer.completion().get("usage"), None);
        let with = events(&answer.chunks(true));
        let without = events(&answer.chunks(false));
        // Only the content chunks (with `usage: null`), no usage chunk.
        assert_eq!(with.len(), without.len());
        assert!(with
            .iter()
            .all(|e| e.get("usage") == Some(&Value::Null) && e.get("choices") != Some(&json!([]))));
    }

    #[test]
    fn broken_usage_in_json_and_stream() {
        let answer = ChatAnswer::new(
            &state(),
            &json!({"model": "m"}),
            40,
            usage(&[("x-mock-usage", "string")]),
        );
        let expected =
            json!({"prompt_tokens": "12", "completion_tokens": "3", "total_tokens": "15"});
        assert_eq!(answer.completion().get("usage"), Some(&expected));
        let streamed = events(&answer.chunks(true));
        assert_eq!(
            streamed.last().and_then(|e| e.get("usage")),
            Some(&expected)
        );
    }

    #[test]
    fn word_pieces_rejoin() {
        let pieces = word_pieces("Hello from a.");
        assert_eq!(pieces, vec!["Hello", " from", " a."]);
        assert_eq!(pieces.concat(), "Hello from a.");
    }
}
