//! Context windows: a request is refused before it reaches the backend only
//! when it provably cannot fit the model.
//!
//! Two checks, for models whose catalog entry declares the limits:
//!
//! - the requested output (`max_completion_tokens` / `max_tokens` for chat,
//!   `max_tokens` for legacy completions, `max_output_tokens` for the
//!   Responses API) above `max_output_tokens` (or, undeclared, above the whole
//!   `context_window`) is a 400 on that field, as OpenAI answers it;
//! - a prompt whose token count is provably more than the window leaves for
//!   the requested output is a 400 `context_length_exceeded`.
//!
//! The gateway has no tokenizer, so the prompt is measured by a **lower
//! bound** that holds for the tokenizers of today's models: their tokens
//! never span whitespace (byte-level BPE tokenizers split the text into
//! pre-tokens at whitespace before merging — GPT-2, tiktoken, Llama 3, Qwen,
//! Mistral's Tekken; SentencePiece models split on whitespace too), so a text
//! has at least as many tokens as it has whitespace-separated words. A token
//! array counts exactly its length. Chat framing, names, tool calls, images
//! and audio count nothing. Requests closer to the limit than this bound can
//! tell go to the backend, whose own error reaches the client as an envelope.

use crate::catalog::Model;
use crate::endpoints::Endpoint;
use crate::error::{ApiError, ErrorCode};
use crate::json::{member, Json, Members};

/// Refuses a request that asks for more output than the model gives, or
/// whose prompt provably leaves too little of the window for that output.
pub fn check(endpoint: Endpoint, body: &Members, model: &Model) -> Result<(), ApiError> {
    let Some(shape) = Shape::of(endpoint) else {
        return Ok(());
    };
    let output = requested_output(body, shape.output_fields);
    if let Some((field, requested)) = output {
        let limit = model.max_output_tokens.or(model.context_window);
        if let Some(limit) = limit.filter(|l| requested > *l) {
            return Err(ApiError::bad_request(format!(
                "{field} is too large: {requested}. This model supports at most {limit} completion tokens, \
                 whereas you provided {requested}."
            ))
            .with_param(field));
        }
    }
    let Some(window) = model.context_window else {
        return Ok(());
    };
    let prompt = member(body, shape.prompt_field).map_or(0, |p| (shape.prompt_tokens)(p));
    let prompt = prompt.saturating_add(member(body, "instructions").map_or(0, text_tokens));
    let output = output.map_or(0, |(_, n)| n);
    let total = prompt.saturating_add(output);
    if total <= window {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "This model's maximum context length is {window} tokens. However, you requested at least {total} tokens \
         (at least {prompt} in the {what}, {output} in the completion). Please reduce the length of the {what} \
         or completion.",
        what = shape.prompt_field
    ))
    .with_param(shape.prompt_field)
    .with_code(ErrorCode::ContextLengthExceeded))
}

/// Where an endpoint's prompt and output limit are.
struct Shape {
    prompt_field: &'static str,
    prompt_tokens: fn(&Json) -> u64,
    output_fields: &'static [&'static str],
}

impl Shape {
    fn of(endpoint: Endpoint) -> Option<Shape> {
        let (prompt_field, prompt_tokens, output_fields): (_, fn(&Json) -> u64, _) = match endpoint
        {
            Endpoint::ChatCompletions => (
                "messages",
                text_tokens,
                &["max_completion_tokens", "max_tokens"][..],
            ),
            Endpoint::Completions => ("prompt", longest_sequence, &["max_tokens"][..]),
            Endpoint::Embeddings => ("input", longest_sequence, &[][..]),
            Endpoint::Responses => ("input", text_tokens, &["max_output_tokens"][..]),
            _ => return None,
        };
        Some(Shape {
            prompt_field,
            prompt_tokens,
            output_fields,
        })
    }
}

/// The first output limit the body sets, with its field.
fn requested_output(body: &Members, fields: &[&'static str]) -> Option<(&'static str, u64)> {
    fields.iter().find_map(|field| match member(body, field) {
        Some(Json::Number(n)) => n.as_u64().map(|n| (*field, n)),
        _ => None,
    })
}

/// Whitespace-separated words of a text: a lower bound of its tokens.
pub fn min_tokens(text: &str) -> u64 {
    let mut words = 0u64;
    let mut in_word = false;
    for b in text.bytes() {
        let space = matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c');
        if !space && !in_word {
            words = words.saturating_add(1);
        }
        in_word = !space;
    }
    words
}

/// The words of every text in a value: a chat conversation or a Responses
/// input is one sequence (messages, their content and text parts).
fn text_tokens(value: &Json) -> u64 {
    match value {
        Json::String(s) => min_tokens(s),
        Json::Array(items) => items.iter().map(text_tokens).fold(0, u64::saturating_add),
        Json::Object(members) => members
            .iter()
            // Only text: image, audio and file payloads are not prompt text here.
            .filter(|(name, _)| matches!(name.as_ref(), "content" | "text"))
            .map(|(_, v)| text_tokens(v))
            .fold(0, u64::saturating_add),
        _ => 0,
    }
}

/// A prompt or embeddings input: a text, a token array, or a batch of either,
/// each item its own sequence (the longest must fit).
fn longest_sequence(value: &Json) -> u64 {
    match value {
        Json::String(s) => min_tokens(s),
        Json::Array(items) if value.is_token_array() => items.len() as u64,
        Json::Array(items) => items.iter().map(longest_sequence).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Category;
    use crate::json::parse_document;
    use crate::test_support::test_model;

    fn model(window: Option<u64>, output: Option<u64>) -> Model {
        let mut m = test_model("m", Category::Text, "a");
        m.context_window = window;
        m.max_output_tokens = output;
        m
    }

    fn run(endpoint: Endpoint, body: &str, m: &Model) -> Result<(), ApiError> {
        let document = parse_document(body.as_bytes()).unwrap();
        check(endpoint, &document, m)
    }

    #[test]
    fn words_bound_tokens_from_below() {
        assert_eq!(min_tokens(""), 0);
        assert_eq!(min_tokens("  "), 0);
        assert_eq!(min_tokens("Hello, world!"), 2);
        assert_eq!(min_tokens(" a\tb\nc\r\nd  "), 4);
        // Scripts without spaces are one word: the bound stays safe, if weak.
        assert_eq!(min_tokens("日本語のテキスト"), 1);
    }

    #[test]
    fn outputs_above_the_models_limit_name_their_field() {
        let m = model(Some(8192), Some(4096));
        let chat = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":5000}"#;
        let err = run(Endpoint::ChatCompletions, chat, &m).unwrap_err();
        assert_eq!(
            (err.status, err.param.as_deref(), err.code),
            (400, Some("max_completion_tokens"), None)
        );
        assert!(
            err.message
                .contains("max_completion_tokens is too large: 5000"),
            "{}",
            err.message
        );
        let old = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":4097}"#;
        assert_eq!(
            run(Endpoint::ChatCompletions, old, &m)
                .unwrap_err()
                .param
                .as_deref(),
            Some("max_tokens")
        );
        let responses = r#"{"model":"m","input":"hi","max_output_tokens":9000}"#;
        assert_eq!(
            run(Endpoint::Responses, responses, &m)
                .unwrap_err()
                .param
                .as_deref(),
            Some("max_output_tokens")
        );
        // Without a declared output limit the window bounds the output.
        let m = model(Some(8192), None);
        let chat = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":8193}"#;
        assert_eq!(
            run(Endpoint::ChatCompletions, chat, &m)
                .unwrap_err()
                .param
                .as_deref(),
            Some("max_tokens")
        );
        let fits = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":8190}"#;
        assert!(run(Endpoint::ChatCompletions, fits, &m).is_ok());
    }

    #[test]
    fn a_prompt_that_provably_cannot_fit_is_context_length_exceeded() {
        let m = model(Some(100), None);
        let words = "word ".repeat(60);
        let chat = format!(
            r#"{{"model":"m","messages":[{{"role":"system","content":"{words}"}},{{"role":"user","content":[{{"type":"text","text":"{words}"}}]}}]}}"#
        );
        let err = run(Endpoint::ChatCompletions, &chat, &m).unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(err.param.as_deref(), Some("messages"));
        assert_eq!(err.code, Some(ErrorCode::ContextLengthExceeded));
        assert!(
            err.message.contains("maximum context length is 100 tokens"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("at least 120 in the messages"),
            "{}",
            err.message
        );
        // 60 words fit, but not with 50 tokens of output.
        let one = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{words}"}}]}}"#);
        assert!(run(Endpoint::ChatCompletions, &one, &m).is_ok());
        let with_output = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"{words}"}}],"max_tokens":50}}"#
        );
        assert!(run(Endpoint::ChatCompletions, &with_output, &m).is_err());
        // The Responses API counts its instructions too.
        let responses = format!(r#"{{"model":"m","input":"{words}","instructions":"{words}"}}"#);
        assert_eq!(
            run(Endpoint::Responses, &responses, &m)
                .unwrap_err()
                .param
                .as_deref(),
            Some("input")
        );
    }

    #[test]
    fn batches_fit_item_by_item_and_token_arrays_count_exactly() {
        let m = model(Some(8), None);
        let nine = "a b c d e f g h i";
        let eight = "a b c d e f g h";
        let batch = format!(r#"{{"model":"m","input":["{eight}","{eight}","{eight}"]}}"#);
        assert!(
            run(Endpoint::Embeddings, &batch, &m).is_ok(),
            "each item fits"
        );
        let over = format!(r#"{{"model":"m","input":["{eight}","{nine}"]}}"#);
        let err = run(Endpoint::Embeddings, &over, &m).unwrap_err();
        assert_eq!(
            (err.param.as_deref(), err.code),
            (Some("input"), Some(ErrorCode::ContextLengthExceeded))
        );
        let tokens = r#"{"model":"m","prompt":[1,2,3,4,5,6,7,8,9]}"#;
        assert_eq!(
            run(Endpoint::Completions, tokens, &m)
                .unwrap_err()
                .param
                .as_deref(),
            Some("prompt")
        );
        let token_batch = r#"{"model":"m","input":[[1,2,3],[1,2,3,4,5,6,7,8]]}"#;
        assert!(run(Endpoint::Embeddings, token_batch, &m).is_ok());
    }

    #[test]
    fn models_without_limits_and_other_endpoints_are_never_refused() {
        let huge = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}],"max_tokens":99999999}}"#,
            "w ".repeat(10_000)
        );
        assert!(run(Endpoint::ChatCompletions, &huge, &model(None, None)).is_ok());
        let m = model(Some(4), None);
        assert!(run(
            Endpoint::ImageGenerations,
            r#"{"model":"m","prompt":"a b c d e f"}"#,
            &m
        )
        .is_ok());
        // Images and audio are not words.
        let image = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA BBBB CCCC DDDD EEEE"}}]}]}"#;
        assert!(run(Endpoint::ChatCompletions, image, &m).is_ok());
    }
}
