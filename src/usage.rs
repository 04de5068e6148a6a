//! Response bodies as the client should see them, and the usage they report.
//!
//! For a JSON response body or one SSE event's data: `system_fingerprint` is
//! removed, `usage.cache_read_input_tokens` and `usage.cache_creation_input_tokens`
//! are added (0, or the backend's `prompt_tokens_details.cached_tokens`) where
//! the backend left them out, and the usage is read for accounting. Edits are
//! spliced into the original bytes; everything else passes byte for byte.

use crate::json::{span_of_str, splice, JsonObject};
use crate::sse::Event;
use serde_json::value::RawValue;
use std::ops::Range;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
}

impl Usage {
    /// The counts as an access log prints them:
    /// `prompt_tokens=12 completion_tokens=3 cached_tokens=0`.
    pub fn log_fields(&self) -> String {
        format!(
            "prompt_tokens={} completion_tokens={} cached_tokens={}",
            self.prompt_tokens, self.completion_tokens, self.cached_tokens
        )
    }
}

/// The outcome of adjusting one JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adjusted {
    /// The new bytes, or None when nothing changed.
    pub bytes: Option<Vec<u8>>,
    pub usage: Option<Usage>,
    /// A stream's usage-only chunk (`"choices": []` with a `usage`).
    pub usage_only: bool,
}

/// A replacement of some bytes of the body: the range and its new bytes.
type Edit = (Range<usize>, Vec<u8>);

/// One JSON body (or one event's data) as the client should see it, as the
/// module documentation describes, with the usage it reports.
pub fn adjust(json: &[u8]) -> Adjusted {
    let Ok(object) = JsonObject::parse(json) else {
        return Adjusted::default();
    };
    let mut edits: Vec<Edit> = Vec::new();
    if let Some(span) = fingerprint_member(json, &object) {
        edits.push((span, Vec::new()));
    }
    let mut usage = None;
    let mut has_usage = false;
    // The Responses API's stream events carry it in their `response`.
    let nested = || {
        let response = JsonObject::parse(object.get("response")?.get().as_bytes()).ok()?;
        let raw = response.get("usage")?;
        read_usage(json, raw)
    };
    let found = object
        .get("usage")
        .and_then(|raw| read_usage(json, raw))
        .or_else(nested);
    if let Some((read, insertion)) = found {
        has_usage = true;
        usage = read;
        edits.extend(insertion);
    }
    let usage_only = has_usage
        && object
            .get("choices")
            .is_some_and(|c| c.get().trim() == "[]");
    Adjusted {
        bytes: apply_edits(json, edits),
        usage,
        usage_only,
    }
}

/// The span of the `system_fingerprint` member, to remove.
fn fingerprint_member(json: &[u8], object: &JsonObject) -> Option<Range<usize>> {
    let raw = object.get("system_fingerprint")?;
    member_span(json, span_of_str(json, raw.get())?)
}

/// The usage an object reports (None when its counts are not believable:
/// none at all, or one that is not a non-negative integer), and the edit that
/// adds the cache fields it lacks (None when it has both). None when `usage`
/// is not an object.
fn read_usage(json: &[u8], raw: &RawValue) -> Option<(Option<Usage>, Option<Edit>)> {
    // Read borrowed, member by member: no `Value` tree per response.
    let fields = JsonObject::parse(raw.get().as_bytes()).ok()?;
    let span = span_of_str(json, raw.get())?;
    // A count is a non-negative JSON integer; one that is not (negative,
    // fractional, a string) makes the whole usage unbelievable: None.
    let count = |raw: Option<&RawValue>| -> Result<Option<u64>, ()> {
        match raw {
            None => Ok(None),
            Some(v) => v.get().trim().parse::<u64>().map(Some).map_err(|_| ()),
        }
    };
    // Chat and completions name them prompt/completion, the Responses API
    // input/output.
    let either = |a: &str, b: &str| -> Result<Option<u64>, ()> {
        Ok(count(fields.get(a))?.or(count(fields.get(b))?))
    };
    let details = |name: &str| {
        fields
            .get(name)
            .and_then(|d| JsonObject::parse(d.get().as_bytes()).ok())
            .map(|details| count(details.get("cached_tokens")))
    };
    let cached = match details("prompt_tokens_details").or_else(|| details("input_tokens_details"))
    {
        Some(Ok(cached)) => Ok(cached.unwrap_or(0)),
        Some(Err(())) => Err(()),
        None => Ok(0),
    };
    let counts = (|| {
        let cached = cached?;
        let prompt = either("prompt_tokens", "input_tokens")?;
        let completion = either("completion_tokens", "output_tokens")?;
        let total = count(fields.get("total_tokens"))?;
        if prompt.is_none() && completion.is_none() && total.is_none() {
            return Err(());
        }
        Ok(Usage {
            prompt_tokens: prompt.unwrap_or(0),
            completion_tokens: completion.unwrap_or(0),
            total_tokens: total.unwrap_or(0),
            cached_tokens: cached,
        })
    })();
    let usage = counts.ok();
    let cached = usage.map_or(0, |u| u.cached_tokens);
    let added = missing_cache_fields(&fields, cached);
    // Before the usage object's closing brace.
    let close = span.end.saturating_sub(1);
    let insertion = (!added.is_empty()).then(|| (close..close, added.into_bytes()));
    Some((usage, insertion))
}

/// The members `cache_read_input_tokens` (the cached prompt tokens) and
/// `cache_creation_input_tokens` (0) where the usage object lacks them,
/// comma-separated as they are to be inserted at its end.
fn missing_cache_fields(fields: &JsonObject, cached: u64) -> String {
    let mut added = String::new();
    let mut members = fields.keys().count();
    for (name, value) in [
        ("cache_read_input_tokens", cached),
        ("cache_creation_input_tokens", 0),
    ] {
        if fields.get(name).is_none() {
            if members > 0 {
                added.push(',');
            }
            added.push('"');
            added.push_str(name);
            added.push_str("\":");
            added.push_str(&value.to_string());
            members = members.saturating_add(1);
        }
    }
    added
}

/// The body with the edits made, last first so earlier ranges stay valid;
/// None when there is nothing to change or a range does not fit.
fn apply_edits(json: &[u8], mut edits: Vec<Edit>) -> Option<Vec<u8>> {
    if edits.is_empty() {
        return None;
    }
    edits.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    let mut out = json.to_vec();
    for (range, replacement) in edits {
        out = splice(&out, range, &replacement)?;
    }
    Some(out)
}

/// The span of a whole top-level member (`"name": value`) with one adjoining
/// comma, given the span of its value.
fn member_span(json: &[u8], value: Range<usize>) -> Option<Range<usize>> {
    let before = json.get(..value.start)?;
    let colon = before.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if before.get(colon) != Some(&b':') {
        return None;
    }
    let key_end = before
        .get(..colon)?
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())?;
    if before.get(key_end) != Some(&b'"') {
        return None;
    }
    let key_start = before.get(..key_end)?.iter().rposition(|b| *b == b'"')?;
    let after = json.get(value.end..)?;
    let next = after.iter().position(|b| !b.is_ascii_whitespace())?;
    if after.get(next) == Some(&b',') {
        return Some(key_start..value.end.saturating_add(next).saturating_add(1));
    }
    // The last member: take the comma before it instead.
    let head = json.get(..key_start)?;
    let prev = head.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if head.get(prev) == Some(&b',') {
        Some(prev..value.end)
    } else {
        Some(key_start..value.end)
    }
}

/// One SSE event as the client should see it: None to drop it (the
/// usage-only chunk the client did not ask for), with the usage it carried.
pub fn adjust_event(event: &Event, drop_usage_only: bool) -> (Option<Vec<u8>>, Option<Usage>) {
    let Some(span) = event.single_data_span() else {
        // Multi-line data is rare in model streams: account for it, pass it on.
        let usage = event.data().and_then(|d| adjust(&d).usage);
        return (Some(event.raw.clone()), usage);
    };
    let Some(data) = event.raw.get(span.clone()) else {
        return (Some(event.raw.clone()), None);
    };
    let adjusted = adjust(data);
    if adjusted.usage_only && drop_usage_only {
        return (None, adjusted.usage);
    }
    let raw = match adjusted.bytes {
        Some(bytes) => splice(&event.raw, span, &bytes).unwrap_or_else(|| event.raw.clone()),
        None => event.raw.clone(),
    };
    (Some(raw), adjusted.usage)
}

/// The event that ends a stream the backend cut short: OpenAI's error
/// envelope as an SSE event, which the SDKs raise as `APIError`.
pub fn stream_error_event() -> Vec<u8> {
    let error = crate::error::ApiError::with_status(
        502,
        "The model backend ended the stream before it was complete. Retry the request.",
    );
    let mut event = b"data: ".to_vec();
    event.extend_from_slice(&error.body(None));
    event.extend_from_slice(b"\n\n");
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn text(a: &Adjusted) -> String {
        String::from_utf8(a.bytes.clone().unwrap()).unwrap()
    }

    #[test]
    fn removes_system_fingerprint_wherever_it_is() {
        let cases = [
            (
                r#"{"id":"x","system_fingerprint":"fp_1","choices":[]}"#,
                r#"{"id":"x","choices":[]}"#,
            ),
            (r#"{"id":"x","system_fingerprint":"fp_1"}"#, r#"{"id":"x"}"#),
            (r#"{"system_fingerprint":"fp_1","id":"x"}"#, r#"{"id":"x"}"#),
            (r#"{"system_fingerprint":null}"#, r#"{}"#),
            (
                "{ \"id\" : 1 ,\n \"system_fingerprint\" : \"fp\" \n}",
                "{ \"id\" : 1  \n}",
            ),
        ];
        for (input, expected) in cases {
            let a = adjust(input.as_bytes());
            assert_eq!(text(&a), expected, "{input}");
            assert!(serde_json::from_str::<Value>(&text(&a)).is_ok());
        }
    }

    #[test]
    fn adds_cache_fields_and_reads_usage() {
        let a = adjust(
            br#"{"id":"x","usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#,
        );
        assert_eq!(
            text(&a),
            r#"{"id":"x","usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}"#
        );
        assert_eq!(
            a.usage,
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 3,
                total_tokens: 8,
                cached_tokens: 0
            })
        );
        assert!(!a.usage_only);
        let cached =
            adjust(br#"{"usage":{"prompt_tokens":5,"prompt_tokens_details":{"cached_tokens":4}}}"#);
        assert!(text(&cached)
            .contains(r#""cache_read_input_tokens":4,"cache_creation_input_tokens":0}"#));
        assert_eq!(cached.usage.unwrap().cached_tokens, 4);
        let empty = adjust(br#"{"usage":{}}"#);
        assert_eq!(
            text(&empty),
            r#"{"usage":{"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}"#
        );
        let present = adjust(br#"{"usage":{"prompt_tokens":1,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}"#);
        assert_eq!(present.bytes, None, "nothing to change");
    }

    #[test]
    fn counts_that_are_not_non_negative_integers_are_not_usage() {
        for usage in [
            r#"{"prompt_tokens":-5,"completion_tokens":-7,"total_tokens":-12}"#,
            r#"{"prompt_tokens":12.5,"completion_tokens":3.25,"total_tokens":15.75}"#,
            r#"{"prompt_tokens":"12","completion_tokens":"3","total_tokens":"15"}"#,
            r#"{"prompt_tokens":5,"prompt_tokens_details":{"cached_tokens":-1}}"#,
            r#"{}"#,
        ] {
            let body = format!(r#"{{"choices":[],"usage":{usage}}}"#);
            let a = adjust(body.as_bytes());
            assert_eq!(a.usage, None, "{usage}");
            // Still a usage-only chunk: dropped for a client that did not ask.
            assert!(a.usage_only, "{usage}");
        }
    }

    #[test]
    fn responses_api_stream_events_report_the_usage_of_their_response() {
        let a = adjust(
            br#"{"type":"response.completed","response":{"id":"r","usage":{"input_tokens":20,"output_tokens":7,"total_tokens":27}}}"#,
        );
        assert_eq!(a.usage.map(|u| u.completion_tokens), Some(7));
        assert!(!a.usage_only);
    }

    #[test]
    fn responses_api_usage_is_read() {
        let a = adjust(
            br#"{"id":"resp_1","usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":5},"output_tokens":7,"total_tokens":27}}"#,
        );
        assert_eq!(
            a.usage,
            Some(Usage {
                prompt_tokens: 20,
                completion_tokens: 7,
                total_tokens: 27,
                cached_tokens: 5
            })
        );
    }

    #[test]
    fn the_stream_error_event_is_an_envelope() {
        let event = stream_error_event();
        let text = String::from_utf8(event).unwrap();
        let data = text
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["error"]["type"], "server_error");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended the stream"));
    }

    #[test]
    fn unrelated_bytes_are_kept_and_garbage_passes() {
        let body = br#"{"id":"x",  "choices":[{"delta":{"content":"caf\u00e9"}}],"usage":null}"#;
        assert_eq!(adjust(body), Adjusted::default());
        assert_eq!(adjust(b"not json"), Adjusted::default());
        assert_eq!(adjust(b"[DONE]"), Adjusted::default());
    }

    #[test]
    fn usage_only_chunks_are_recognised_and_dropped_on_request() {
        let event = Event {
            raw: br#"data: {"id":"c","object":"chat.completion.chunk","system_fingerprint":"fp","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#
                .iter()
                .chain(b"\n\n")
                .copied()
                .collect(),
        };
        let (kept, usage) = adjust_event(&event, false);
        let kept = String::from_utf8(kept.unwrap()).unwrap();
        assert!(
            kept.starts_with("data: {") && kept.ends_with("}}\n\n"),
            "{kept}"
        );
        assert!(!kept.contains("system_fingerprint"));
        assert!(kept.contains(r#""total_tokens":11,"cache_read_input_tokens":0"#));
        assert_eq!(usage.unwrap().total_tokens, 11);
        let (dropped, usage) = adjust_event(&event, true);
        assert_eq!(dropped, None);
        assert_eq!(usage.unwrap().prompt_tokens, 9);
        let content = Event {
            raw: b"data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n".to_vec(),
        };
        assert_eq!(
            adjust_event(&content, true),
            (Some(content.raw.clone()), None)
        );
        let done = Event {
            raw: b"data: [DONE]\n\n".to_vec(),
        };
        assert_eq!(adjust_event(&done, true).0, Some(done.raw.clone()));
    }
}
