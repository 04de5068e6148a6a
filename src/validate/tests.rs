//! One row per case: endpoint, the field it covers, model, the members that
//! differ from a valid base body, and the expected outcome (`None` = accepted, `Some(param)` =
//! 400 with that `param`). A coverage test requires, for every validated
//! field of every table, at least one accepted and one refused row.

use super::*;
use crate::catalog::{Capability, Category, Model};
use crate::json::parse_document;
use crate::test_support::test_model;
use serde_json::{json, Value};
use std::collections::HashMap;

use Endpoint::{
    ChatCompletions as Chat, Completions as Legacy, Embeddings as Embed, ImageGenerations as Image,
    Responses as Resp, Speech, VideoGenerations as Video,
};

#[derive(Clone, Copy)]
enum M {
    Plain,
    Tools,
    Vision,
}

fn model(kind: M, endpoint: Endpoint) -> Model {
    let category = match endpoint {
        Embed => Category::Embeddings,
        Image => Category::Image,
        Speech => Category::Audio,
        Video => Category::Video,
        _ => Category::Text,
    };
    let mut m = test_model("m", category, "b");
    m.capabilities = match kind {
        M::Plain => vec![],
        M::Tools => vec![Capability::ToolUse, Capability::JsonSchema],
        M::Vision => vec![Capability::Vision],
    };
    m
}

fn base(endpoint: Endpoint) -> Value {
    match endpoint {
        Chat => json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        Legacy => json!({"model": "m", "prompt": "hi"}),
        Embed => json!({"model": "m", "input": "hi"}),
        Image | Video => json!({"model": "m", "prompt": "a cat"}),
        Speech => json!({"model": "m", "input": "hi", "voice": "alloy"}),
        Resp => json!({"model": "m", "input": "hi"}),
        _ => json!({"model": "m"}),
    }
}

/// (endpoint, field covered, model, members to set (`"<absent>"` removes one), expected param)
type Case = (Endpoint, &'static str, M, Value, Option<&'static str>);

fn run(endpoint: Endpoint, kind: M, patch: &Value) -> Result<Effects, ApiError> {
    let mut body = base(endpoint);
    for (k, v) in patch.as_object().unwrap() {
        if v == &json!("<absent>") {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    let text = body.to_string();
    let doc = parse_document(text.as_bytes()).unwrap();
    check(endpoint, &doc, &model(kind, endpoint))
}

fn user(content: Value) -> Value {
    json!([{"role": "user", "content": content}])
}

// One case per line: rustfmt would spread each over seven.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let tool = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let img = |url: &str| json!([{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": url}}]);
    vec![
        // messages
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]}), None),
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "developer", "content": [{"type": "text", "text": "x"}]}, {"role": "user", "content": "hi"}]}), None),
        (Chat, "messages", M::Plain, json!({"messages": "<absent>"}), Some("messages")),
        (Chat, "messages", M::Plain, json!({"messages": []}), Some("messages")),
        (Chat, "messages", M::Plain, json!({"messages": "hi"}), Some("messages")),
        (Chat, "messages", M::Plain, json!({"messages": [5]}), Some("messages[0]")),
        (Chat, "messages", M::Plain, json!({"messages": [{"content": "x"}]}), Some("messages[0].role")),
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "wizard", "content": "x"}]}), Some("messages[0].role")),
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "user"}]}), Some("messages[0].content")),
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "user", "content": 5}]}), Some("messages[0].content")),
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "user", "content": []}]}), Some("messages[0].content")),
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "user", "content": "x", "name": 1}]}), Some("messages[0].name")),
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}]}), Some("messages[0].content[0].type")),
        (Chat, "messages", M::Plain, json!({"messages": user(json!([{"type": "text"}]))}), Some("messages[0].content[0].text")),
        (Chat, "messages", M::Plain, json!({"messages": user(json!([{"text": "x"}]))}), Some("messages[0].content[0].type")),
        (Chat, "messages", M::Plain, json!({"messages": user(json!([{"type": "video", "video": {}}]))}), Some("messages[0].content[0].type")),
        // images only on vision models
        (Chat, "messages", M::Vision, json!({"messages": user(img("https://example.com/cat.png"))}), None),
        (Chat, "messages", M::Vision, json!({"messages": user(img("data:image/png;base64,iVBORw0KGgo="))}), None),
        (Chat, "messages", M::Plain, json!({"messages": user(img("https://example.com/cat.png"))}), Some("messages[0].content[1]")),
        (Chat, "messages", M::Vision, json!({"messages": user(img("ftp://x"))}), Some("messages[0].content[1].image_url.url")),
        (Chat, "messages", M::Vision, json!({"messages": user(img(""))}), Some("messages[0].content[1].image_url.url")),
        (Chat, "messages", M::Vision, json!({"messages": user(json!([{"type": "image_url", "image_url": {"url": "https://x", "detail": "ultra"}}]))}), Some("messages[0].content[0].image_url.detail")),
        (Chat, "messages", M::Plain, json!({"messages": user(json!([{"type": "input_audio", "input_audio": {"data": "AAA=", "format": "wav"}}]))}), None),
        (Chat, "messages", M::Plain, json!({"messages": user(json!([{"type": "input_audio", "input_audio": {"data": "AAA=", "format": "ogg"}}]))}), Some("messages[0].content[0].input_audio.format")),
        (Chat, "messages", M::Plain, json!({"messages": user(json!([{"type": "file", "file": {"file_data": "JVBERi0=", "filename": "a.pdf"}}]))}), None),
        (Chat, "messages", M::Plain, json!({"messages": user(json!([{"type": "file", "file": {"file_id": "file-1"}}]))}), Some("messages[0].content[0].file.file_id")),
        // assistant
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "c1", "content": "42"}]}), None),
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}]}), None),
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "assistant"}]}), Some("messages[0].content")),
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "assistant", "content": null, "tool_calls": []}]}), Some("messages[0].content")),
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f"}}]}]}), Some("messages[0].tool_calls[0].function.arguments")),
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}]}), Some("messages[0].content[0].type")),
        // tool and function messages
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "tool", "content": "42"}]}), Some("messages[0].tool_call_id")),
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "function", "name": "f", "content": null}]}), None),
        (Chat, "messages", M::Plain, json!({"messages": [{"role": "function", "content": "x"}]}), Some("messages[0].name")),
        // numbers
        (Chat, "temperature", M::Plain, json!({"temperature": 0.7}), None),
        (Chat, "temperature", M::Plain, json!({"temperature": null}), None),
        (Chat, "temperature", M::Plain, json!({"temperature": 3}), Some("temperature")),
        (Chat, "temperature", M::Plain, json!({"temperature": -0.1}), Some("temperature")),
        (Chat, "temperature", M::Plain, json!({"temperature": "0.5"}), Some("temperature")),
        (Chat, "top_p", M::Plain, json!({"top_p": 1}), None),
        (Chat, "top_p", M::Plain, json!({"top_p": 1.5}), Some("top_p")),
        (Chat, "presence_penalty", M::Plain, json!({"presence_penalty": -2}), None),
        (Chat, "presence_penalty", M::Plain, json!({"presence_penalty": 2.5}), Some("presence_penalty")),
        (Chat, "frequency_penalty", M::Plain, json!({"frequency_penalty": 1.2}), None),
        (Chat, "frequency_penalty", M::Plain, json!({"frequency_penalty": -3}), Some("frequency_penalty")),
        (Chat, "max_tokens", M::Plain, json!({"max_tokens": 100}), None),
        (Chat, "max_tokens", M::Plain, json!({"max_tokens": 0}), Some("max_tokens")),
        (Chat, "max_tokens", M::Plain, json!({"max_tokens": 10.5}), Some("max_tokens")),
        (Chat, "max_completion_tokens", M::Plain, json!({"max_completion_tokens": 1}), None),
        (Chat, "max_completion_tokens", M::Plain, json!({"max_completion_tokens": -1}), Some("max_completion_tokens")),
        (Chat, "max_completion_tokens", M::Plain, json!({"max_completion_tokens": 18446744073709551615u64}), Some("max_completion_tokens")),
        (Chat, "seed", M::Plain, json!({"seed": -42}), None),
        (Chat, "seed", M::Plain, json!({"seed": 1.5}), Some("seed")),
        (Chat, "n", M::Plain, json!({"n": 1}), None),
        (Chat, "n", M::Plain, json!({"n": null}), None),
        (Chat, "n", M::Plain, json!({"n": 2}), Some("n")),
        (Chat, "n", M::Plain, json!({"n": 0}), Some("n")),
        (Chat, "n", M::Plain, json!({"n": "1"}), Some("n")),
        // strings and flags
        (Chat, "user", M::Plain, json!({"user": "u-1"}), None),
        (Chat, "user", M::Plain, json!({"user": 7}), Some("user")),
        (Chat, "stop", M::Plain, json!({"stop": "\n"}), None),
        (Chat, "stop", M::Plain, json!({"stop": ["a", "b", "c", "d"]}), None),
        (Chat, "stop", M::Plain, json!({"stop": ["a", "b", "c", "d", "e"]}), Some("stop")),
        (Chat, "stop", M::Plain, json!({"stop": ["a", 1]}), Some("stop[1]")),
        (Chat, "stop", M::Plain, json!({"stop": 5}), Some("stop")),
        (Chat, "stream", M::Plain, json!({"stream": true}), None),
        (Chat, "stream", M::Plain, json!({"stream": "yes"}), Some("stream")),
        (Chat, "parallel_tool_calls", M::Tools, json!({"parallel_tool_calls": false}), None),
        (Chat, "parallel_tool_calls", M::Tools, json!({"parallel_tool_calls": 1}), Some("parallel_tool_calls")),
        (Chat, "stream_options", M::Plain, json!({"stream": true, "stream_options": {"include_usage": true}}), None),
        (Chat, "stream_options", M::Plain, json!({"stream_options": {"include_usage": true}}), Some("stream_options")),
        (Chat, "stream_options", M::Plain, json!({"stream": false, "stream_options": {"include_usage": true}}), Some("stream_options")),
        (Chat, "stream_options", M::Plain, json!({"stream": true, "stream_options": {"include_usage": "yes"}}), Some("stream_options.include_usage")),
        (Chat, "stream_options", M::Plain, json!({"stream": true, "stream_options": []}), Some("stream_options")),
        (Chat, "metadata", M::Plain, json!({"metadata": {"team": "search"}}), None),
        (Chat, "metadata", M::Plain, json!({"metadata": (0..17).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}), Some("metadata")),
        (Chat, "metadata", M::Plain, json!({"metadata": {"k".repeat(65): "v"}}), Some("metadata")),
        (Chat, "metadata", M::Plain, json!({"metadata": {"k": "v".repeat(513)}}), Some("metadata")),
        (Chat, "metadata", M::Plain, json!({"metadata": {"k": 1}}), Some("metadata")),
        (Chat, "logit_bias", M::Plain, json!({"logit_bias": {"50256": -100, "15": 5}}), None),
        (Chat, "logit_bias", M::Plain, json!({"logit_bias": {"50256": -101}}), Some("logit_bias")),
        (Chat, "logit_bias", M::Plain, json!({"logit_bias": {"abc": 1}}), Some("logit_bias")),
        // unsupported
        (Chat, "logprobs", M::Plain, json!({"logprobs": false}), None),
        (Chat, "logprobs", M::Plain, json!({"logprobs": true}), Some("logprobs")),
        (Chat, "top_logprobs", M::Plain, json!({"top_logprobs": null}), None),
        (Chat, "top_logprobs", M::Plain, json!({"top_logprobs": 3}), Some("top_logprobs")),
        // tools
        (Chat, "tools", M::Tools, json!({"tools": tool}), None),
        (Chat, "tools", M::Tools, json!({"tools": [{"type": "custom", "custom": {"name": "sql", "description": "run SQL"}}]}), None),
        (Chat, "tools", M::Plain, json!({"tools": tool}), Some("tools")),
        (Chat, "tools", M::Tools, json!({"tools": []}), Some("tools")),
        (Chat, "tools", M::Tools, json!({"tools": (0..129).map(|i| json!({"type": "function", "function": {"name": format!("f{i}")}})).collect::<Vec<_>>()}), Some("tools")),
        (Chat, "tools", M::Tools, json!({"tools": [{"type": "function", "function": {"name": "get weather"}}]}), Some("tools[0].function.name")),
        (Chat, "tools", M::Tools, json!({"tools": [{"type": "function", "function": {"name": "x".repeat(65)}}]}), Some("tools[0].function.name")),
        (Chat, "tools", M::Tools, json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]}), Some("tools[0].function.parameters")),
        (Chat, "tools", M::Tools, json!({"tools": [{"type": "retrieval"}]}), Some("tools[0].type")),
        (Chat, "tools", M::Tools, json!({"tools": [{"type": "function"}]}), Some("tools[0].function")),
        (Chat, "functions", M::Tools, json!({"functions": [{"name": "f", "parameters": {}}]}), None),
        (Chat, "functions", M::Tools, json!({"functions": [{"name": "bad name"}]}), Some("functions[0].name")),
        (Chat, "functions", M::Plain, json!({"functions": [{"name": "f"}]}), Some("functions")),
        (Chat, "tool_choice", M::Tools, json!({"tools": tool, "tool_choice": "required"}), None),
        (Chat, "tool_choice", M::Tools, json!({"tool_choice": "none"}), None),
        (Chat, "tool_choice", M::Tools, json!({"tools": tool, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}), None),
        (Chat, "tool_choice", M::Tools, json!({"tools": tool, "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}}), None),
        (Chat, "tool_choice", M::Tools, json!({"tool_choice": "auto"}), Some("tool_choice")),
        (Chat, "tool_choice", M::Tools, json!({"tools": tool, "tool_choice": "sometimes"}), Some("tool_choice")),
        (Chat, "tool_choice", M::Tools, json!({"tools": tool, "tool_choice": {"type": "function", "function": {"name": "get_time"}}}), Some("tool_choice.function.name")),
        (Chat, "tool_choice", M::Tools, json!({"tools": tool, "tool_choice": {"type": "custom", "custom": {"name": "get_weather"}}}), Some("tool_choice.custom.name")),
        (Chat, "tool_choice", M::Tools, json!({"tools": tool, "tool_choice": 3}), Some("tool_choice")),
        // response_format
        (Chat, "response_format", M::Plain, json!({"response_format": {"type": "json_object"}}), None),
        (Chat, "response_format", M::Tools, json!({"response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}}}), None),
        (Chat, "response_format", M::Plain, json!({"response_format": {"type": "xml"}}), Some("response_format.type")),
        (Chat, "response_format", M::Plain, json!({"response_format": "json"}), Some("response_format")),
        (Chat, "response_format", M::Tools, json!({"response_format": {"type": "json_schema"}}), Some("response_format.json_schema")),
        (Chat, "response_format", M::Tools, json!({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}), Some("response_format.json_schema.name")),
        (Chat, "response_format", M::Tools, json!({"response_format": {"type": "json_schema", "json_schema": {"name": "my schema"}}}), Some("response_format.json_schema.name")),
        (Chat, "response_format", M::Tools, json!({"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": []}}}), Some("response_format.json_schema.schema")),
        // legacy completions
        (Legacy, "prompt", M::Plain, json!({"prompt": ["a", "b"]}), None),
        (Legacy, "prompt", M::Plain, json!({"prompt": [1, 2, 3]}), None),
        (Legacy, "prompt", M::Plain, json!({"prompt": [[1, 2], [3]]}), None),
        (Legacy, "prompt", M::Plain, json!({"prompt": "<absent>"}), Some("prompt")),
        (Legacy, "prompt", M::Plain, json!({"prompt": []}), Some("prompt")),
        (Legacy, "prompt", M::Plain, json!({"prompt": ["a", 1]}), Some("prompt[1]")),
        (Legacy, "prompt", M::Plain, json!({"prompt": [[1], []]}), Some("prompt[1]")),
        (Legacy, "prompt", M::Plain, json!({"prompt": [1, -2]}), Some("prompt[1]")),
        (Legacy, "prompt", M::Plain, json!({"prompt": {"text": "x"}}), Some("prompt")),
        (Legacy, "n", M::Plain, json!({"n": 1}), None),
        (Legacy, "n", M::Plain, json!({"n": 3}), Some("n")),
        (Legacy, "logprobs", M::Plain, json!({"logprobs": null}), None),
        (Legacy, "logprobs", M::Plain, json!({"logprobs": 2}), Some("logprobs")),
        (Legacy, "temperature", M::Plain, json!({"temperature": 2}), None),
        (Legacy, "temperature", M::Plain, json!({"temperature": 2.01}), Some("temperature")),
        (Legacy, "top_p", M::Plain, json!({"top_p": 0}), None),
        (Legacy, "top_p", M::Plain, json!({"top_p": -1}), Some("top_p")),
        (Legacy, "presence_penalty", M::Plain, json!({"presence_penalty": 0}), None),
        (Legacy, "presence_penalty", M::Plain, json!({"presence_penalty": 9}), Some("presence_penalty")),
        (Legacy, "frequency_penalty", M::Plain, json!({"frequency_penalty": 0}), None),
        (Legacy, "frequency_penalty", M::Plain, json!({"frequency_penalty": -9}), Some("frequency_penalty")),
        (Legacy, "max_tokens", M::Plain, json!({"max_tokens": 16}), None),
        (Legacy, "max_tokens", M::Plain, json!({"max_tokens": "16"}), Some("max_tokens")),
        (Legacy, "seed", M::Plain, json!({"seed": 7}), None),
        (Legacy, "seed", M::Plain, json!({"seed": "7"}), Some("seed")),
        (Legacy, "stop", M::Plain, json!({"stop": ["\n"]}), None),
        (Legacy, "stop", M::Plain, json!({"stop": [1]}), Some("stop[0]")),
        (Legacy, "stream", M::Plain, json!({"stream": false}), None),
        (Legacy, "stream", M::Plain, json!({"stream": 1}), Some("stream")),
        (Legacy, "stream_options", M::Plain, json!({"stream": true, "stream_options": {"include_usage": false}}), None),
        (Legacy, "stream_options", M::Plain, json!({"stream_options": {"include_usage": true}}), Some("stream_options")),
        (Legacy, "user", M::Plain, json!({"user": "u"}), None),
        (Legacy, "user", M::Plain, json!({"user": null}), Some("user")),
        (Legacy, "logit_bias", M::Plain, json!({"logit_bias": {"1": 1}}), None),
        (Legacy, "logit_bias", M::Plain, json!({"logit_bias": {"1": 200}}), Some("logit_bias")),
        // embeddings
        (Embed, "input", M::Plain, json!({"input": ["a", "b"]}), None),
        (Embed, "input", M::Plain, json!({"input": [1, 2]}), None),
        (Embed, "input", M::Plain, json!({"input": [[1, 2], [3]]}), None),
        (Embed, "input", M::Plain, json!({"input": vec!["x"; 2048]}), None),
        (Embed, "input", M::Plain, json!({"input": "<absent>"}), Some("input")),
        (Embed, "input", M::Plain, json!({"input": ""}), Some("input")),
        (Embed, "input", M::Plain, json!({"input": []}), Some("input")),
        (Embed, "input", M::Plain, json!({"input": ["a", ""]}), Some("input[1]")),
        (Embed, "input", M::Plain, json!({"input": vec!["x"; 2049]}), Some("input")),
        (Embed, "input", M::Plain, json!({"input": null}), Some("input")),
        (Embed, "dimensions", M::Plain, json!({"dimensions": 256}), None),
        (Embed, "dimensions", M::Plain, json!({"dimensions": 0}), Some("dimensions")),
        (Embed, "encoding_format", M::Plain, json!({"encoding_format": "base64"}), None),
        (Embed, "encoding_format", M::Plain, json!({"encoding_format": "float"}), None),
        (Embed, "encoding_format", M::Plain, json!({"encoding_format": null}), Some("encoding_format")),
        (Embed, "encoding_format", M::Plain, json!({"encoding_format": "int8"}), Some("encoding_format")),
        (Embed, "user", M::Plain, json!({"user": "u"}), None),
        (Embed, "user", M::Plain, json!({"user": []}), Some("user")),
        // media
        (Image, "prompt", M::Plain, json!({"prompt": "a cat"}), None),
        (Image, "prompt", M::Plain, json!({"prompt": ""}), Some("prompt")),
        (Image, "response_format", M::Plain, json!({"response_format": "b64_json"}), None),
        (Image, "response_format", M::Plain, json!({"response_format": "url"}), Some("response_format")),
        (Image, "n", M::Plain, json!({"n": 10}), None),
        (Image, "n", M::Plain, json!({"n": 11}), Some("n")),
        (Image, "user", M::Plain, json!({"user": "u"}), None),
        (Image, "user", M::Plain, json!({"user": 1}), Some("user")),
        (Speech, "input", M::Plain, json!({"input": "hello"}), None),
        (Speech, "input", M::Plain, json!({"input": "x".repeat(4097)}), Some("input")),
        (Speech, "voice", M::Plain, json!({"voice": "nova"}), None),
        (Speech, "voice", M::Plain, json!({"voice": "<absent>"}), Some("voice")),
        (Speech, "response_format", M::Plain, json!({"response_format": "wav"}), None),
        (Speech, "response_format", M::Plain, json!({"response_format": "midi"}), Some("response_format")),
        (Speech, "speed", M::Plain, json!({"speed": 4}), None),
        (Speech, "speed", M::Plain, json!({"speed": 0.1}), Some("speed")),
        (Video, "prompt", M::Plain, json!({"prompt": "waves"}), None),
        (Video, "prompt", M::Plain, json!({"prompt": 3}), Some("prompt")),
        // responses
        (Resp, "input", M::Plain, json!({"input": [{"role": "user", "content": "hi"}]}), None),
        (Resp, "input", M::Plain, json!({"input": "<absent>"}), Some("input")),
        (Resp, "input", M::Plain, json!({"input": []}), Some("input")),
        (Resp, "input", M::Plain, json!({"input": [3]}), Some("input[0]")),
        (Resp, "background", M::Plain, json!({"background": true}), None),
        (Resp, "background", M::Plain, json!({"background": "yes"}), Some("background")),
        (Resp, "frequency_penalty", M::Plain, json!({"frequency_penalty": null}), None),
        (Resp, "frequency_penalty", M::Plain, json!({"frequency_penalty": 0.5}), Some("frequency_penalty")),
        (Resp, "presence_penalty", M::Plain, json!({"presence_penalty": null}), None),
        (Resp, "presence_penalty", M::Plain, json!({"presence_penalty": 0.5}), Some("presence_penalty")),
        (Resp, "instructions", M::Plain, json!({"instructions": "be brief"}), None),
        (Resp, "instructions", M::Plain, json!({"instructions": 1}), Some("instructions")),
        (Resp, "max_output_tokens", M::Plain, json!({"max_output_tokens": 16}), None),
        (Resp, "max_output_tokens", M::Plain, json!({"max_output_tokens": 0}), Some("max_output_tokens")),
        (Resp, "max_tool_calls", M::Plain, json!({"max_tool_calls": 2}), None),
        (Resp, "max_tool_calls", M::Plain, json!({"max_tool_calls": -1}), Some("max_tool_calls")),
        (Resp, "metadata", M::Plain, json!({"metadata": {"a": "b"}}), None),
        (Resp, "metadata", M::Plain, json!({"metadata": {"a": 1}}), Some("metadata")),
        (Resp, "parallel_tool_calls", M::Plain, json!({"parallel_tool_calls": true}), None),
        (Resp, "parallel_tool_calls", M::Plain, json!({"parallel_tool_calls": 1}), Some("parallel_tool_calls")),
        (Resp, "previous_response_id", M::Plain, json!({"previous_response_id": "resp_x"}), None),
        (Resp, "previous_response_id", M::Plain, json!({"previous_response_id": ""}), Some("previous_response_id")),
        (Resp, "store", M::Plain, json!({"store": false}), None),
        (Resp, "store", M::Plain, json!({"store": "no"}), Some("store")),
        (Resp, "stream", M::Plain, json!({"stream": true}), None),
        (Resp, "stream", M::Plain, json!({"stream": 1}), Some("stream")),
        (Resp, "stream_options", M::Plain, json!({"stream": true, "stream_options": {"include_obfuscation": false}}), None),
        (Resp, "stream_options", M::Plain, json!({"stream_options": {}}), Some("stream_options")),
        (Resp, "temperature", M::Plain, json!({"temperature": 1}), None),
        (Resp, "temperature", M::Plain, json!({"temperature": 5}), Some("temperature")),
        (Resp, "top_p", M::Plain, json!({"top_p": 0.5}), None),
        (Resp, "top_p", M::Plain, json!({"top_p": 2}), Some("top_p")),
        (Resp, "text", M::Plain, json!({"text": {"format": {"type": "json_object"}}}), None),
        (Resp, "text", M::Plain, json!({"text": {"format": {"type": "yaml"}}}), Some("text.format.type")),
        (Resp, "tool_choice", M::Tools, json!({"tool_choice": "auto"}), None),
        (Resp, "tool_choice", M::Tools, json!({"tool_choice": "often"}), Some("tool_choice")),
        (Resp, "tools", M::Tools, json!({"tools": [{"type": "function", "name": "get_weather", "parameters": {}}, {"type": "web_search"}]}), None),
        (Resp, "tools", M::Plain, json!({"tools": [{"type": "web_search"}]}), Some("tools")),
        (Resp, "tools", M::Tools, json!({"tools": [{"type": "file_search"}]}), Some("tools[0].type")),
        (Resp, "tools", M::Tools, json!({"tools": [{"type": "function", "name": "bad name"}]}), Some("tools[0].name")),
        (Resp, "tools", M::Tools, json!({"tools": (0..129).map(|i| json!({"type": "function", "name": format!("f{i}")})).collect::<Vec<_>>()}), Some("tools")),
        (Resp, "top_logprobs", M::Plain, json!({"top_logprobs": 8}), None),
        (Resp, "top_logprobs", M::Plain, json!({"top_logprobs": 9}), Some("top_logprobs")),
        (Resp, "truncation", M::Plain, json!({"truncation": "auto"}), None),
        (Resp, "truncation", M::Plain, json!({"truncation": "middle"}), Some("truncation")),
        (Resp, "user", M::Plain, json!({"user": "u"}), None),
        (Resp, "user", M::Plain, json!({"user": 5}), Some("user")),
    ]
}

#[test]
fn every_case() {
    for (i, (endpoint, field, kind, patch, expected)) in cases().into_iter().enumerate() {
        let outcome = run(endpoint, kind, &patch);
        match (&outcome, expected) {
            (Ok(_), None) => {}
            (Err(e), Some(param)) => {
                assert_eq!(e.status, 400, "case {i} ({field})");
                assert_eq!(e.param.as_deref(), Some(param), "case {i} ({field}) {patch}: {}", e.message);
                assert!(e.message.len() > 20, "case {i}: message too thin: {}", e.message);
            }
            _ => panic!("case {i} ({endpoint:?} {field}) {patch}: got {outcome:?}, expected param {expected:?}"),
        }
    }
}

#[test]
fn every_validated_field_has_a_passing_and_a_failing_case() {
    let mut seen: HashMap<(String, &str), (bool, bool)> = HashMap::new();
    for (endpoint, field, _, _, expected) in cases() {
        let entry = seen.entry((format!("{endpoint:?}"), field)).or_default();
        if expected.is_none() {
            entry.0 = true
        } else {
            entry.1 = true
        }
    }
    for endpoint in Endpoint::ALL {
        for field in table(endpoint) {
            if matches!(field.rule, Rule::Validated(_) | Rule::Unsupported(_)) {
                let key = (format!("{endpoint:?}"), field.name);
                assert_eq!(
                    seen.get(&key),
                    Some(&(true, true)),
                    "{key:?} needs an accepted and a refused case"
                );
            }
        }
    }
}

#[test]
fn json_schema_falls_back_on_models_without_the_label() {
    let format = json!({"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {}}}});
    let effects = run(Chat, M::Plain, &format).unwrap();
    assert_eq!(
        effects.rewrites,
        vec![Rewrite::Replace {
            name: "response_format",
            json: r#"{"type":"json_object"}"#
        }]
    );
    assert_eq!(
        effects.response_headers,
        vec![("x-gateway-response-format", "json_object")]
    );
    assert_eq!(run(Chat, M::Tools, &format).unwrap(), Effects::default());
}

#[test]
fn embeddings_default_to_float_only_when_absent() {
    let effects = run(Embed, M::Plain, &json!({})).unwrap();
    assert_eq!(
        effects.rewrites,
        vec![Rewrite::Insert {
            name: "encoding_format",
            json: r#""float""#
        }]
    );
    assert!(run(Embed, M::Plain, &json!({"encoding_format": "base64"}))
        .unwrap()
        .rewrites
        .is_empty());
}

#[test]
fn images_default_to_b64_json() {
    let effects = run(Image, M::Plain, &json!({})).unwrap();
    assert_eq!(
        effects.rewrites,
        vec![Rewrite::Insert {
            name: "response_format",
            json: r#""b64_json""#
        }]
    );
}

#[test]
fn unknown_fields_are_forwarded() {
    assert_eq!(
        run(
            Chat,
            M::Plain,
            &json!({"x_vendor_option": {"a": [1]}, "top_k": 5})
        )
        .unwrap(),
        Effects::default()
    );
}

#[test]
fn forms_need_their_required_fields() {
    assert!(check_form(Endpoint::Transcriptions, &[b"model", b"file"]).is_ok());
    let err = check_form(Endpoint::Transcriptions, &[b"model"]).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("file"));
}
