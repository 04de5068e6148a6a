//! Envoy's rate-limit results in OpenAI's terms.
//!
//! Envoy's limiters (`local_ratelimit` on one Envoy, `ratelimit` with a
//! rate-limit service for a fleet) answer in the draft-03 headers
//! `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset`. The
//! gateway runs one limiter for requests and, after it, one for tokens; each
//! appends its own trio, so a response carries up to two. A trio is told
//! apart by the limit's name when the limiter gives one (`name="tokens"` in
//! the rate-limit service's quota policy) and by order otherwise: the tokens
//! limiter, running after the requests limiter, encodes first. A limiter's
//! 429 carries the marker header `x-gateway-ratelimited-by: requests|tokens`.

use crate::error::{ApiError, ErrorType};
use crate::headers::Headers;

/// Set by each limiter (`response_headers_to_add`) on the 429s it sends.
pub const MARKER_HEADER: &str = "x-gateway-ratelimited-by";
const DRAFT: [&str; 3] = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Requests,
    Tokens,
}

impl Kind {
    fn suffix(self) -> &'static str {
        match self {
            Kind::Requests => "requests",
            Kind::Tokens => "tokens",
        }
    }
}

/// One limiter's view of the request's closest limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the limiter resets (or, for token buckets, refills).
    pub reset_seconds: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub requests: Option<Limit>,
    pub tokens: Option<Limit>,
}

/// Reads the draft headers of every limiter that answered.
pub fn read(headers: &Headers) -> Limits {
    let values = |name: &'static str| -> Vec<&[u8]> { headers.values(name).collect() };
    let [limits, remainings, resets] = DRAFT.map(values);
    let trios: Vec<(Option<Kind>, Limit)> = limits
        .iter()
        .zip(&remainings)
        .zip(&resets)
        .filter_map(|((limit, remaining), reset)| {
            let (value, named) = parse_limit(limit)?;
            Some((
                named,
                Limit {
                    limit: value,
                    remaining: leading_number(remaining)?,
                    reset_seconds: leading_number(reset)?,
                },
            ))
        })
        .collect();
    let mut out = Limits::default();
    let count = trios.len();
    for (index, (named, limit)) in trios.into_iter().enumerate() {
        // Unnamed: with two trios the first is the tokens limiter's.
        let kind = named.unwrap_or(if count >= 2 && index == 0 {
            Kind::Tokens
        } else {
            Kind::Requests
        });
        let slot = match kind {
            Kind::Requests => &mut out.requests,
            Kind::Tokens => &mut out.tokens,
        };
        slot.get_or_insert(limit);
    }
    out
}

/// `3, 3;w=60;name="requests"` → (3, Some(Requests)).
fn parse_limit(value: &[u8]) -> Option<(u64, Option<Kind>)> {
    let text = std::str::from_utf8(value).ok()?;
    let limit = leading_number(value)?;
    let named = if text.contains("name=\"tokens") {
        Some(Kind::Tokens)
    } else if text.contains("name=\"requests") {
        Some(Kind::Requests)
    } else {
        None
    };
    Some((limit, named))
}

fn leading_number(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let digits = text.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

/// OpenAI's duration format: `1s`, `6m0s`, `1h2m3s`, `12ms`.
pub fn duration(milliseconds: u64) -> String {
    if milliseconds < 1000 {
        return format!("{milliseconds}ms");
    }
    let total = milliseconds / 1000;
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Response headers every client should see: OpenAI's names and nothing of
/// Envoy's draft headers or the gateway's markers.
pub fn headers_to_remove(headers: &Headers) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| {
            DRAFT
                .iter()
                .chain([&MARKER_HEADER, &"x-envoy-ratelimited"])
                .any(|known| n.eq_ignore_ascii_case(known))
        })
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect()
}

pub fn openai_headers(limits: &Limits) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (kind, limit) in [
        (Kind::Requests, limits.requests),
        (Kind::Tokens, limits.tokens),
    ] {
        if let Some(l) = limit {
            let suffix = kind.suffix();
            out.push((format!("x-ratelimit-limit-{suffix}"), l.limit.to_string()));
            out.push((
                format!("x-ratelimit-remaining-{suffix}"),
                l.remaining.to_string(),
            ));
            out.push((
                format!("x-ratelimit-reset-{suffix}"),
                duration(l.reset_seconds.saturating_mul(1000)),
            ));
        }
    }
    out
}

/// The 429 the client receives when a limiter refused the request.
/// `token_cost` is what the gateway charged the tokens limiter.
pub fn too_many_requests(headers: &Headers, token_cost: u64) -> ApiError {
    let limits = read(headers);
    let kind = refused_by(headers, &limits, token_cost);
    let limit = match kind {
        Kind::Requests => limits.requests,
        Kind::Tokens => limits.tokens,
    };
    let wait = wait_seconds(headers, limit);
    let hopeless = kind == Kind::Tokens && limit.is_some_and(|l| token_cost > l.limit);
    let mut error = ApiError::with_status(429, message(kind, limit, token_cost, wait, hopeless));
    error.error_type = match kind {
        Kind::Requests => ErrorType::Requests,
        Kind::Tokens => ErrorType::Tokens,
    };
    error.headers.push(("retry-after", wait.to_string()));
    error
        .headers
        .push(("retry-after-ms", wait.saturating_mul(1000).to_string()));
    if hopeless {
        error.headers.push(("x-should-retry", "false".to_string()));
    }
    for (name, value) in openai_headers(&limits) {
        // `ApiError` headers are static names: map the six known ones.
        if let Some(static_name) = OPENAI_NAMES.iter().find(|n| **n == name) {
            error.headers.push((static_name, value));
        }
    }
    error
}

/// Which limiter refused: the one the marker header names; without a
/// marker, tokens when the request costs more than the tokens that remain.
fn refused_by(headers: &Headers, limits: &Limits, token_cost: u64) -> Kind {
    match headers.first(MARKER_HEADER) {
        Some(b"tokens") => Kind::Tokens,
        Some(_) => Kind::Requests,
        None => match limits.tokens {
            Some(t) if t.remaining < token_cost => Kind::Tokens,
            _ => Kind::Requests,
        },
    }
}

/// Seconds the client should wait: the `retry-after` it was given, never
/// shorter than the limiter's own reset, and at least a second.
fn wait_seconds(headers: &Headers, limit: Option<Limit>) -> u64 {
    let retry_after_header = headers
        .first("retry-after")
        .and_then(leading_number)
        .unwrap_or(0);
    retry_after_header
        .max(limit.map_or(0, |l| l.reset_seconds))
        .max(1)
}

/// The 429's message; `hopeless` when the request alone exceeds the whole
/// tokens limit, so waiting cannot help.
fn message(kind: Kind, limit: Option<Limit>, token_cost: u64, wait: u64, hopeless: bool) -> String {
    match (kind, limit) {
        (Kind::Tokens, Some(l)) if hopeless => format!(
            "This request needs about {token_cost} tokens, more than your whole limit of {} tokens per window. \
             Waiting will not help: reduce max_tokens (or max_completion_tokens) or the prompt.",
            l.limit
        ),
        (Kind::Tokens, Some(l)) => format!(
            "Rate limit reached for tokens: limit {}, remaining {}, this request needs about {token_cost}. \
             Please try again in {}.",
            l.limit,
            l.remaining,
            duration(wait.saturating_mul(1000))
        ),
        (Kind::Requests, Some(l)) => format!(
            "Rate limit reached for requests: limit {} per window, remaining {}. Please try again in {}.",
            l.limit,
            l.remaining,
            duration(wait.saturating_mul(1000))
        ),
        (_, None) => format!("Rate limit reached. Please try again in {}.", duration(wait.saturating_mul(1000))),
    }
}

const OPENAI_NAMES: [&str; 6] = [
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::test_support::header_list;

    fn header<'a>(e: &'a ApiError, name: &str) -> Option<&'a str> {
        e.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn durations_in_openai_format() {
        for (ms, text) in [
            (0, "0ms"),
            (12, "12ms"),
            (1000, "1s"),
            (59_999, "59s"),
            (360_000, "6m0s"),
            (3_723_000, "1h2m3s"),
        ] {
            assert_eq!(duration(ms), text);
        }
    }

    #[test]
    fn two_unnamed_trios_are_tokens_then_requests() {
        let limits = read(&header_list(&[
            ("x-ratelimit-limit", "1000"),
            ("x-ratelimit-remaining", "700"),
            ("x-ratelimit-reset", "0"),
            ("x-ratelimit-limit", "3"),
            ("x-ratelimit-remaining", "2"),
            ("x-ratelimit-reset", "20"),
        ]));
        assert_eq!(
            limits.tokens,
            Some(Limit {
                limit: 1000,
                remaining: 700,
                reset_seconds: 0
            })
        );
        assert_eq!(
            limits.requests,
            Some(Limit {
                limit: 3,
                remaining: 2,
                reset_seconds: 20
            })
        );
        assert_eq!(
            openai_headers(&limits),
            [
                ("x-ratelimit-limit-requests", "3"),
                ("x-ratelimit-remaining-requests", "2"),
                ("x-ratelimit-reset-requests", "20s"),
                ("x-ratelimit-limit-tokens", "1000"),
                ("x-ratelimit-remaining-tokens", "700"),
                ("x-ratelimit-reset-tokens", "0ms"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn one_unnamed_trio_is_requests_and_names_win() {
        let one = read(&header_list(&[
            ("x-ratelimit-limit", "5"),
            ("x-ratelimit-remaining", "4"),
            ("x-ratelimit-reset", "60"),
        ]));
        assert_eq!(one.requests.map(|l| l.limit), Some(5));
        assert_eq!(one.tokens, None);
        let named = read(&header_list(&[
            ("x-ratelimit-limit", "3, 3;w=60;name=\"requests\""),
            ("x-ratelimit-remaining", "1"),
            ("x-ratelimit-reset", "42"),
            ("x-ratelimit-limit", "20000, 20000;w=60;name=\"tokens\""),
            ("x-ratelimit-remaining", "19000"),
            ("x-ratelimit-reset", "42"),
        ]));
        assert_eq!(named.requests.map(|l| l.remaining), Some(1));
        assert_eq!(named.tokens.map(|l| l.remaining), Some(19000));
        assert_eq!(
            read(&header_list(&[("x-ratelimit-limit", "garbage")])),
            Limits::default()
        );
    }

    #[test]
    fn request_429() {
        let e = too_many_requests(
            &header_list(&[
                ("x-ratelimit-limit", "3"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "20"),
                (MARKER_HEADER, "requests"),
            ]),
            50,
        );
        assert_eq!(e.status, 429);
        assert_eq!(e.error_type, ErrorType::Requests);
        assert_eq!(e.code, Some(ErrorCode::RateLimitExceeded));
        assert_eq!(header(&e, "retry-after"), Some("20"));
        assert_eq!(header(&e, "retry-after-ms"), Some("20000"));
        assert_eq!(header(&e, "x-ratelimit-remaining-requests"), Some("0"));
        assert_eq!(header(&e, "x-should-retry"), None);
        assert!(e.message.contains("try again in 20s"), "{}", e.message);
    }

    /// A huge retry-after (a misbehaving backend or rate-limit service)
    /// saturates in the millisecond header instead of wrapping around.
    #[test]
    fn huge_waits_saturate() {
        let max = u64::MAX.to_string();
        let e = too_many_requests(
            &header_list(&[
                ("retry-after", max.as_str()),
                ("x-ratelimit-limit", "3"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "9"),
            ]),
            u64::MAX,
        );
        assert_eq!(header(&e, "retry-after"), Some(max.as_str()));
        assert_eq!(header(&e, "retry-after-ms"), Some(max.as_str()));
        assert!(e.message.contains("try again in"), "{}", e.message);
    }

    #[test]
    fn retry_after_is_never_shorter_than_the_reset_nor_zero() {
        let e = too_many_requests(
            &header_list(&[
                ("retry-after", "5"),
                ("x-ratelimit-limit", "3"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "9"),
            ]),
            1,
        );
        assert_eq!(header(&e, "retry-after"), Some("9"));
        let e = too_many_requests(
            &header_list(&[
                ("retry-after", "30"),
                ("x-ratelimit-limit", "3"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "9"),
            ]),
            1,
        );
        assert_eq!(header(&e, "retry-after"), Some("30"));
        let e = too_many_requests(&header_list(&[]), 1);
        assert_eq!(header(&e, "retry-after"), Some("1"));
        assert_eq!(e.error_type, ErrorType::Requests);
    }

    #[test]
    fn token_429_and_hopeless_requests() {
        let trios = [
            ("x-ratelimit-limit", "1000"),
            ("x-ratelimit-remaining", "400"),
            ("x-ratelimit-reset", "0"),
            ("x-ratelimit-limit", "3"),
            ("x-ratelimit-remaining", "2"),
            ("x-ratelimit-reset", "0"),
        ];
        let mut with_marker = trios.to_vec();
        with_marker.push((MARKER_HEADER, "tokens"));
        let e = too_many_requests(&header_list(&with_marker), 600);
        assert_eq!(e.error_type, ErrorType::Tokens);
        assert_eq!(header(&e, "x-should-retry"), None);
        assert_eq!(header(&e, "x-ratelimit-remaining-tokens"), Some("400"));
        // Without the marker, a cost above what remains still names tokens.
        assert_eq!(
            too_many_requests(&header_list(&trios), 600).error_type,
            ErrorType::Tokens
        );
        // More than the whole budget: waiting cannot help.
        let e = too_many_requests(&header_list(&with_marker), 1500);
        assert_eq!(header(&e, "x-should-retry"), Some("false"));
        assert!(e.message.contains("Waiting will not help"), "{}", e.message);
    }

    #[test]
    fn internal_and_draft_headers_are_removed() {
        let removed = headers_to_remove(&header_list(&[
            ("X-RateLimit-Limit", "3"),
            ("x-ratelimit-remaining", "1"),
            ("x-ratelimit-reset", "1"),
            (MARKER_HEADER, "requests"),
            ("x-envoy-ratelimited", "true"),
            ("content-type", "x"),
        ]));
        assert_eq!(removed.len(), 5);
    }
}
