//! Latency arithmetic: what an exchange's clock readings say about the
//! request (its duration, its time to first token, its time per output
//! token) and which stream events carry generated content. Pure: the
//! exchange reads the host's clock and hands the readings here.

use crate::bytes;

/// The clock readings of one exchange, in nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    /// When the request's headers arrived.
    pub arrived_ns: u64,
    /// When the first response chunk carrying generated content arrived.
    pub first_content_ns: Option<u64>,
    /// When the last one did.
    pub last_content_ns: Option<u64>,
}

impl Marks {
    /// A response chunk carrying content arrived at `now_ns`.
    pub fn content_at(&mut self, now_ns: u64) {
        self.first_content_ns.get_or_insert(now_ns);
        self.last_content_ns = Some(now_ns);
    }
}

/// What one exchange adds to the latency histograms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Samples {
    /// From the request's arrival to its end, in milliseconds.
    pub duration_ms: u64,
    /// Streams: from the request's arrival to the first content event, in
    /// milliseconds.
    pub time_to_first_token_ms: Option<u64>,
    /// Streams: from the first to the last content event, divided by the
    /// tokens generated after the first (the completion tokens the usage
    /// reports, less one), in microseconds.
    pub time_per_output_token_us: Option<u64>,
}

/// The samples of an exchange that ended at `end_ns`. A clock that went
/// backwards gives 0, never a wrapped value. Time per output token needs
/// two content chunks apart in time and at least two completion tokens:
/// one chunk carrying every token says nothing about the pace.
pub fn samples(marks: &Marks, end_ns: u64, completion_tokens: Option<u64>) -> Samples {
    let since_arrival = |ns: u64| rounded(ns.saturating_sub(marks.arrived_ns), 1_000_000);
    let pace = match (
        marks.first_content_ns,
        marks.last_content_ns,
        completion_tokens,
    ) {
        (Some(first), Some(last), Some(tokens)) if last > first && tokens >= 2 => {
            let gaps = tokens.saturating_sub(1);
            Some(rounded(
                last.saturating_sub(first),
                gaps.saturating_mul(1_000),
            ))
        }
        _ => None,
    };
    Samples {
        duration_ms: since_arrival(end_ns),
        time_to_first_token_ms: marks.first_content_ns.map(since_arrival),
        time_per_output_token_us: pace,
    }
}

/// `amount / unit`, rounded to the nearest whole (`unit` > 0).
fn rounded(amount: u64, unit: u64) -> u64 {
    amount
        .saturating_add(unit / 2)
        .checked_div(unit)
        .unwrap_or_default()
}

/// The members whose non-empty string value is generated content: chat
/// deltas (`content`, `reasoning_content`, `refusal`, a tool call's
/// `arguments`), legacy completions' `text`, and the Responses API's and
/// transcriptions' `*.delta` events (`"delta": "…"`).
const CONTENT_MEMBERS: [&[u8]; 7] = [
    b"\"content\"",
    b"\"delta\"",
    b"\"text\"",
    b"\"reasoning_content\"",
    b"\"reasoning\"",
    b"\"refusal\"",
    b"\"arguments\"",
];

/// Whether a stream event's data carries generated content: a content
/// member (at any depth) with a non-empty string value. A role-only first
/// chunk, the finish chunk (`"delta": {}`), the usage chunk and `[DONE]`
/// do not.
pub fn carries_content(data: &[u8]) -> bool {
    CONTENT_MEMBERS
        .iter()
        .any(|name| has_nonempty_string_member(data, name))
}

/// Whether `json` has a member `name` (quoted) whose value is a string
/// with at least one character.
fn has_nonempty_string_member(json: &[u8], name: &[u8]) -> bool {
    let mut from = 0;
    while let Some(start) = bytes::member_value(json, name, from) {
        from = start;
        let mut value = json.get(start..).unwrap_or_default().iter();
        if value.next() == Some(&b'"') && value.next().is_some_and(|c| *c != b'"') {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_stream_gives_all_three() {
        let mut marks = Marks {
            arrived_ns: 10 * MS,
            ..Marks::default()
        };
        // Content at 610 ms, then every 300 ms, four more chunks.
        for i in 0..5 {
            marks.content_at(610 * MS + i * 300 * MS);
        }
        let got = samples(&marks, 1_900 * MS, Some(5));
        assert_eq!(
            got,
            Samples {
                duration_ms: 1_890,
                time_to_first_token_ms: Some(600),
                // 1,200 ms over the 4 tokens after the first.
                time_per_output_token_us: Some(300_000),
            }
        );
    }

    #[test]
    fn a_whole_answer_has_only_a_duration() {
        let marks = Marks {
            arrived_ns: 5 * MS,
            ..Marks::default()
        };
        let got = samples(&marks, 5 * MS + 1_499_999, Some(40));
        assert_eq!(got.duration_ms, 1, "rounded to the nearest millisecond");
        assert_eq!(got.time_to_first_token_ms, None);
        assert_eq!(got.time_per_output_token_us, None);
    }

    #[test]
    fn the_pace_needs_two_chunks_and_two_tokens() {
        let mut one_chunk = Marks::default();
        one_chunk.content_at(7 * MS);
        assert_eq!(
            samples(&one_chunk, 9 * MS, Some(50)).time_per_output_token_us,
            None
        );
        let mut two = Marks::default();
        two.content_at(7 * MS);
        two.content_at(9 * MS);
        assert_eq!(
            samples(&two, 9 * MS, Some(1)).time_per_output_token_us,
            None
        );
        assert_eq!(samples(&two, 9 * MS, None).time_per_output_token_us, None);
        assert_eq!(
            samples(&two, 9 * MS, Some(3)).time_per_output_token_us,
            Some(1_000)
        );
        // Rounded to the nearest microsecond: 2 ms over 2,999 tokens.
        assert_eq!(
            samples(&two, 9 * MS, Some(3_000)).time_per_output_token_us,
            Some(1)
        );
    }

    #[test]
    fn a_clock_that_goes_back_gives_zero() {
        let mut marks = Marks {
            arrived_ns: 100 * MS,
            ..Marks::default()
        };
        marks.content_at(50 * MS);
        let got = samples(&marks, 20 * MS, Some(3));
        assert_eq!(got.duration_ms, 0);
        assert_eq!(got.time_to_first_token_ms, Some(0));
    }

    #[test]
    fn extreme_readings_do_not_overflow() {
        let mut marks = Marks::default();
        marks.content_at(0);
        marks.content_at(u64::MAX);
        let got = samples(&marks, u64::MAX, Some(u64::MAX));
        assert_eq!(got.duration_ms, u64::MAX / MS);
        assert!(got.time_per_output_token_us.is_some());
    }

    #[test]
    fn content_events_are_told_apart() {
        let content: &[&[u8]] = &[
            br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}"#,
            br#"{"choices":[{"delta":{"content": "x"}}]}"#,
            br#"{"choices":[{"delta":{"reasoning_content":"hmm"}}]}"#,
            br#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#,
            br#"{"choices":[{"text":" world","index":0}]}"#,
            br#"{"type":"response.output_text.delta","delta":"Hel"}"#,
            br#"{"type":"transcript.text.delta","delta" : " so"}"#,
        ];
        for data in content {
            assert!(carries_content(data), "{}", String::from_utf8_lossy(data));
        }
        let other: &[&[u8]] = &[
            b"[DONE]",
            br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            br#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
            br#"{"choices":[{"delta":{"content":null,"refusal":null}}]}"#,
            br#"{"type":"response.created","response":{"text":{"format":{"type":"text"}},"reasoning":{}}}"#,
            // The name inside a string value is not a member.
            br#"{"choices":[{"delta":{"role":"assistant","name":"\"content\":\"x"}}]}"#,
            br#"{"type":"text","x":"delta"}"#,
        ];
        for data in other {
            assert!(!carries_content(data), "{}", String::from_utf8_lossy(data));
        }
    }
}
