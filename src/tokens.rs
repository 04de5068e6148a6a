//! Estimates a request's token cost before it is forwarded, so a tokens-per-
//! minute limit can charge it up front (as the tokens limiter's `hits_addend`).
//!
//! The estimate reads no tokenizer: text counts one token per 4 ASCII bytes
//! plus one per non-ASCII character (for English prose and code that is within
//! about ±30 % of BPE tokenizers; for other scripts it errs high), each chat
//! message adds 4 tokens of framing and each image 85, and the completion is
//! counted at its `max_completion_tokens` / `max_tokens`, or at the configured
//! default when the client sets none. Usage is reconciled after the response
//! is read (not here): this number only decides admission.

use crate::endpoints::Endpoint;
use crate::json::{member, Json, Members};

/// Tokens of a text: ASCII bytes / 4 (rounded up) plus one per non-ASCII
/// character. Counted over bytes (a UTF-8 character starts with any byte that
/// is not a continuation byte `10xxxxxx`), without decoding.
pub fn text(s: &str) -> u64 {
    // Prompts are most of a request's bytes: count eight bytes at a time,
    // each byte of a word a counter, without popcount (which x86-64's
    // baseline lacks). Counted: bytes with the high bit set (not ASCII), and
    // among them continuation bytes (10xxxxxx; `w << 1` moves each byte's
    // bit 6 to its bit 7). Blocks of 31 words keep the eight counters'
    // total under 256, so one multiply sums them exactly.
    const ONES: u64 = 0x0101_0101_0101_0101;
    let total = |counters: u64| counters.wrapping_mul(ONES) >> 56;
    let (mut high, mut continuation) = (0u64, 0u64);
    for block in s.as_bytes().chunks(31 * 8) {
        let mut words = block.chunks_exact(8);
        let (mut h, mut c) = (0u64, 0u64);
        for word in &mut words {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            let w = u64::from_le_bytes(bytes);
            h += (w >> 7) & ONES;
            c += ((w & !(w << 1)) >> 7) & ONES;
        }
        high += total(h);
        continuation += total(c);
        for &b in words.remainder() {
            high += u64::from(b >= 0x80);
            continuation += u64::from(b & 0xc0 == 0x80);
        }
    }
    let ascii = s.len() as u64 - high;
    ascii.div_ceil(4) + (high - continuation)
}

/// Prompt tokens of any JSON value: the text of every string in it.
fn prompt(value: &Json) -> u64 {
    match value {
        Json::String(s) => text(s),
        // A token array (legacy completions, embeddings) is its length.
        Json::Array(items) if items.iter().all(|i| matches!(i, Json::Number(_))) => {
            items.len() as u64
        }
        Json::Array(items) => items.iter().map(prompt).fold(0, u64::saturating_add),
        Json::Object(members) => members
            .iter()
            .map(|(_, v)| prompt(v))
            .fold(0, u64::saturating_add),
        _ => 0,
    }
}

fn chat_messages(messages: &Json) -> u64 {
    let Json::Array(items) = messages else {
        return 0;
    };
    items
        .iter()
        .map(|m| {
            let images = match m.get("content") {
                Some(Json::Array(parts)) => parts
                    .iter()
                    .filter(|p| p.get("type").and_then(Json::as_str) == Some("image_url"))
                    .count() as u64,
                _ => 0,
            };
            let content = match m.get("content") {
                // Only text parts: audio and file payloads are base64, not prompt text.
                Some(Json::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text"))
                    .map(prompt)
                    .fold(0, u64::saturating_add),
                Some(other) => prompt(other),
                None => 0,
            };
            4 + content
                + images * 85
                + m.get("name").map_or(0, prompt)
                + m.get("tool_calls").map_or(0, prompt)
        })
        .fold(3, u64::saturating_add)
}

fn completion_limit(body: &Members, default: u64) -> u64 {
    ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|name| match member(body, name) {
            Some(Json::Number(n)) => n.as_u64(),
            _ => None,
        })
        .unwrap_or(default)
}

/// The estimated cost of a JSON request body; at least 1.
pub fn estimate(endpoint: Endpoint, body: &Members, default_max_tokens: u64) -> u64 {
    let cost = match endpoint {
        Endpoint::ChatCompletions => {
            let tools = member(body, "tools").map_or(0, prompt);
            member(body, "messages")
                .map_or(0, chat_messages)
                .saturating_add(tools)
                .saturating_add(completion_limit(body, default_max_tokens))
        }
        // OpenAI's default max_tokens for legacy completions is 16.
        Endpoint::Completions => member(body, "prompt")
            .map_or(0, prompt)
            .saturating_add(completion_limit(body, 16)),
        Endpoint::Embeddings => member(body, "input").map_or(0, prompt),
        Endpoint::Responses => member(body, "input")
            .map_or(0, prompt)
            .saturating_add(member(body, "instructions").map_or(0, prompt))
            .saturating_add(completion_limit(body, default_max_tokens)),
        Endpoint::Speech => member(body, "input").map_or(0, prompt),
        Endpoint::ImageGenerations | Endpoint::VideoGenerations => {
            member(body, "prompt").map_or(0, prompt)
        }
        _ => 0,
    };
    cost.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_document;

    fn cost(endpoint: Endpoint, body: &str) -> u64 {
        estimate(endpoint, &parse_document(body.as_bytes()).unwrap(), 1000)
    }

    #[test]
    fn text_estimate() {
        assert_eq!(text(""), 0);
        assert_eq!(text("abcd"), 1);
        assert_eq!(text("abcde"), 2);
        assert_eq!(text("日本語"), 3);
        // About 4 characters per token for English prose.
        let prose = "The quick brown fox jumps over the lazy dog. ".repeat(20);
        assert_eq!(text(&prose), 225);
    }

    #[test]
    fn text_counts_characters_whatever_the_alignment_and_length() {
        // The definition, one character at a time.
        let reference = |s: &str| {
            let ascii = s.chars().filter(char::is_ascii).count() as u64;
            ascii.div_ceil(4) + (s.chars().count() as u64 - ascii)
        };
        let sample = "héllo wörld, 日本語 text 🚀 and plain ASCII words; ñ€\u{10FFFF}\n";
        for start in (0..sample.len()).filter(|&i| sample.is_char_boundary(i)) {
            for end in (start..=sample.len()).filter(|&i| sample.is_char_boundary(i)) {
                let part = &sample[start..end];
                assert_eq!(text(part), reference(part), "{part:?}");
            }
        }
        // Across several blocks of words, all non-ASCII or mixed.
        for long in [
            "é".repeat(1000),
            "日本語 and ASCII ".repeat(300),
            "a".repeat(5000),
        ] {
            assert_eq!(text(&long), reference(&long));
        }
    }

    #[test]
    fn chat_counts_messages_images_and_the_completion() {
        let base = cost(
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"user","content":"abcd"}]}"#,
        );
        assert_eq!(base, 3 + 4 + 1 + 1000);
        let capped = cost(
            Endpoint::ChatCompletions,
            r#"{"model":"m","messages":[{"role":"user","content":"abcd"}],"max_tokens":10}"#,
        );
        assert_eq!(capped, 3 + 4 + 1 + 10);
        let image = cost(
            Endpoint::ChatCompletions,
            r#"{"model":"m","max_completion_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":"abcd"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}"#,
        );
        assert_eq!(image, 3 + 4 + 85 + 1 + 1);
    }

    #[test]
    fn other_endpoints() {
        assert_eq!(
            cost(Endpoint::Completions, r#"{"model":"m","prompt":[1,2,3]}"#),
            3 + 16
        );
        assert_eq!(
            cost(
                Endpoint::Embeddings,
                r#"{"model":"m","input":["abcd","abcd"]}"#
            ),
            2
        );
        assert_eq!(
            cost(Endpoint::Embeddings, r#"{"model":"m","input":[[1,2],[3]]}"#),
            3
        );
        assert_eq!(cost(Endpoint::ImageGenerations, r#"{"model":"m"}"#), 1);
        let huge = format!(r#"{{"model":"m","messages":[],"max_tokens":{}}}"#, u64::MAX);
        assert_eq!(cost(Endpoint::ChatCompletions, &huge), u64::MAX);
    }
}
