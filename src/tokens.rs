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
/// character. Counted over bytes (a non-ASCII UTF-8 character starts with a
/// byte `11xxxxxx`), without decoding, eight bytes at a time: this runs over
/// every prompt byte of every request.
pub fn count_text(s: &str) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let bytes = s.as_bytes();
    let mut words = bytes.chunks_exact(8);
    let (mut ascii, mut other) = (0u64, 0u64);
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let w = u64::from_le_bytes(eight);
        let high = w & HIGH;
        // Bytes with the top bit clear are ASCII; bytes with the two top
        // bits set (bit 6 shifted onto bit 7) start a non-ASCII character.
        ascii = ascii.saturating_add(u64::from(8u32.saturating_sub(high.count_ones())));
        other = other.saturating_add(u64::from((high & (w << 1)).count_ones()));
    }
    for &b in words.remainder() {
        if b < 0x80 {
            ascii = ascii.saturating_add(1);
        } else if b & 0xc0 == 0xc0 {
            other = other.saturating_add(1);
        }
    }
    ascii.div_ceil(4).saturating_add(other)
}

/// Prompt tokens of any JSON value: the text of every string in it.
fn prompt_tokens(value: &Json) -> u64 {
    match value {
        Json::String(s) => count_text(s),
        // A token array (legacy completions, embeddings) is its length.
        Json::Array(items) if value.is_token_array() => items.len() as u64,
        Json::Array(items) => items.iter().map(prompt_tokens).fold(0, u64::saturating_add),
        Json::Object(members) => members
            .iter()
            .map(|(_, v)| prompt_tokens(v))
            .fold(0, u64::saturating_add),
        _ => 0,
    }
}

/// A chat conversation's prompt tokens: 3 that prime the reply, and for each
/// message 4 of framing, its text, 85 per image, its name and tool calls.
fn chat_prompt_tokens(messages: &Json) -> u64 {
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
                    .map(prompt_tokens)
                    .fold(0, u64::saturating_add),
                Some(other) => prompt_tokens(other),
                None => 0,
            };
            [
                4,
                content,
                images.saturating_mul(85),
                m.get("name").map_or(0, prompt_tokens),
                m.get("tool_calls").map_or(0, prompt_tokens),
            ]
            .into_iter()
            .fold(0, u64::saturating_add)
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

/// The largest cost a request is charged: Envoy's own ceiling for a
/// `hits_addend` (`MAX_HITS_ADDEND`, 10^9). Above it `local_ratelimit` drops
/// the descriptor, and above u32::MAX the `envoy.ratelimit.hits_addend`
/// filter state refuses the value: either way the request would pass the
/// tokens limiter unlimited. Charged 10^9 instead, it exceeds any real limit
/// and is refused as hopeless.
pub const MAX_COST: u64 = 1_000_000_000;

/// The estimated cost of a JSON request body; at least 1, at most [`MAX_COST`].
pub fn estimate(endpoint: Endpoint, body: &Members, default_max_tokens: u64) -> u64 {
    let cost = match endpoint {
        Endpoint::ChatCompletions => {
            let tools = member(body, "tools").map_or(0, prompt_tokens);
            member(body, "messages")
                .map_or(0, chat_prompt_tokens)
                .saturating_add(tools)
                .saturating_add(completion_limit(body, default_max_tokens))
        }
        // OpenAI's default max_tokens for legacy completions is 16.
        Endpoint::Completions => member(body, "prompt")
            .map_or(0, prompt_tokens)
            .saturating_add(completion_limit(body, 16)),
        Endpoint::Embeddings => member(body, "input").map_or(0, prompt_tokens),
        Endpoint::Responses => member(body, "input")
            .map_or(0, prompt_tokens)
            .saturating_add(member(body, "instructions").map_or(0, prompt_tokens))
            .saturating_add(completion_limit(body, default_max_tokens)),
        Endpoint::Speech => member(body, "input").map_or(0, prompt_tokens),
        Endpoint::ImageGenerations | Endpoint::VideoGenerations => {
            member(body, "prompt").map_or(0, prompt_tokens)
        }
        _ => 0,
    };
    cost.clamp(1, MAX_COST)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_document;

    fn cost(endpoint: Endpoint, body: &str) -> u64 {
        estimate(endpoint, &parse_document(body.as_bytes()).unwrap(), 1000)
    }

    /// The README's worked example ("Usage, limits and budgets").
    #[test]
    fn the_readme_example() {
        let chat = |extra: &str| {
            let body = format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"Say hello"}}]{extra}}}"#
            );
            estimate(
                Endpoint::ChatCompletions,
                &parse_document(body.as_bytes()).unwrap(),
                1024,
            )
        };
        assert_eq!(chat(""), 1034);
        assert_eq!(chat(r#","max_tokens":10"#), 20);
    }

    #[test]
    fn text_estimate() {
        assert_eq!(count_text(""), 0);
        assert_eq!(count_text("abcd"), 1);
        assert_eq!(count_text("abcde"), 2);
        assert_eq!(count_text("日本語"), 3);
        // About 4 characters per token for English prose.
        let prose = "The quick brown fox jumps over the lazy dog. ".repeat(20);
        assert_eq!(count_text(&prose), 225);
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
                assert_eq!(count_text(part), reference(part), "{part:?}");
            }
        }
        // Across several blocks of words, all non-ASCII or mixed.
        for long in [
            "é".repeat(1000),
            "日本語 and ASCII ".repeat(300),
            "a".repeat(5000),
        ] {
            assert_eq!(count_text(&long), reference(&long));
        }
    }

    /// The word-at-a-time count equals a plain byte-by-byte count, with
    /// multi-byte characters at every offset across word boundaries.
    #[test]
    fn text_estimate_matches_a_byte_count() {
        fn slow(s: &str) -> u64 {
            let ascii = s.bytes().filter(|b| *b < 0x80).count() as u64;
            let other = s.chars().filter(|c| !c.is_ascii()).count() as u64;
            ascii.div_ceil(4) + other
        }
        for pad in 0..17 {
            for sample in [
                "日本語 text",
                "é",
                "a\u{1F600}b",
                "ünïcödé and ascii",
                "\u{7f}\u{80}\u{7ff}\u{800}",
            ] {
                let s = format!("{}{}{}", "x".repeat(pad), sample, "y".repeat(pad / 2));
                assert_eq!(count_text(&s), slow(&s), "{s:?}");
            }
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
        assert_eq!(cost(Endpoint::ChatCompletions, &huge), MAX_COST);
    }

    /// `max_tokens` is the client's number (validation lets through up to
    /// i64::MAX; the estimate reads up to u64::MAX): the sum with the prompt
    /// must neither wrap nor exceed what Envoy accepts as a `hits_addend`.
    #[test]
    fn huge_completion_limits_are_charged_the_ceiling() {
        let chat = |max_tokens: u64| {
            cost(
                Endpoint::ChatCompletions,
                &format!(
                    r#"{{"model":"m","messages":[{{"role":"user","content":"abcd"}}],"max_tokens":{max_tokens}}}"#
                ),
            )
        };
        assert_eq!(chat(MAX_COST - 8), MAX_COST);
        assert_eq!(chat(MAX_COST - 7), MAX_COST);
        assert_eq!(chat(u64::from(u32::MAX) + 5), MAX_COST);
        assert_eq!(chat(u64::MAX), MAX_COST);
        assert_eq!(
            cost(
                Endpoint::Responses,
                &format!(
                    r#"{{"model":"m","input":"abcd","max_output_tokens":{}}}"#,
                    u64::MAX
                )
            ),
            MAX_COST
        );
        assert_eq!(
            cost(
                Endpoint::Completions,
                &format!(
                    r#"{{"model":"m","prompt":"abcd","max_tokens":{}}}"#,
                    u64::MAX
                )
            ),
            MAX_COST
        );
    }
}
