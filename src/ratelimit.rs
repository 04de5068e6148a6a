//! Envoy's rate-limit results in OpenAI's terms.
//!
//! Envoy's limiters (`local_ratelimit` on one Envoy, `ratelimit` with a
//! rate-limit service for a fleet) answer in the draft-03 headers
//! `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset`. The
//! gateway runs one limiter for requests, after it one for tokens and, last,
//! one for spend (money, in micro-units: 1,000,000 = 1.00); each limiter that
//! has a limit for the request appends its own trio, so a response carries up
//! to three (a `local_ratelimit` whose descriptors do not match adds none: keys
//! without a spend budget get two). A trio is told apart by the limit's name
//! when the limiter gives one (`name="tokens"` in the rate-limit service's
//! quota policy) and by position otherwise: the limiter that runs last encodes
//! first, so the last trio is the requests limiter's, the one before it the
//! tokens limiter's and the one before that the spend limiter's. A limiter's
//! 429 carries the marker header `x-gateway-ratelimited-by: requests|tokens|spend`.

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
    /// Money per key and window, in micro-units (1,000,000 = 1.00).
    Spend,
}

impl Kind {
    fn suffix(self) -> &'static str {
        match self {
            Kind::Requests => "requests",
            Kind::Tokens => "tokens",
            Kind::Spend => "spend",
        }
    }

    /// The limiter at this position counted from the last trio (0): the
    /// limiter that runs last encodes first. None beyond the three limiters.
    fn from_last(position: usize) -> Option<Kind> {
        match position {
            0 => Some(Kind::Requests),
            1 => Some(Kind::Tokens),
            2 => Some(Kind::Spend),
            _ => None,
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
    /// Micro-units of money (1,000,000 = 1.00).
    pub spend: Option<Limit>,
}

impl Limits {
    fn of(&self, kind: Kind) -> Option<Limit> {
        match kind {
            Kind::Requests => self.requests,
            Kind::Tokens => self.tokens,
            Kind::Spend => self.spend,
        }
    }

    fn slot(&mut self, kind: Kind) -> &mut Option<Limit> {
        match kind {
            Kind::Requests => &mut self.requests,
            Kind::Tokens => &mut self.tokens,
            Kind::Spend => &mut self.spend,
        }
    }
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
        // Unnamed: by position from the last trio (requests, tokens, spend),
        // so two trios are tokens then requests, three spend, tokens, requests.
        let from_last = count.saturating_sub(index).saturating_sub(1);
        if let Some(kind) = named.or(Kind::from_last(from_last)) {
            out.slot(kind).get_or_insert(limit);
        }
    }
    out
}

/// `3, 3;w=60;name="requests"` → (3, Some(Requests)).
fn parse_limit(value: &[u8]) -> Option<(u64, Option<Kind>)> {
    let text = std::str::from_utf8(value).ok()?;
    let limit = leading_number(value)?;
    let named = [
        ("name=\"tokens", Kind::Tokens),
        ("name=\"requests", Kind::Requests),
        ("name=\"spend", Kind::Spend),
    ]
    .into_iter()
    .find(|(pattern, _)| text.contains(pattern))
    .map(|(_, kind)| kind);
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
    for kind in [Kind::Requests, Kind::Tokens, Kind::Spend] {
        if let Some(l) = limits.of(kind) {
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

/// Waits longer than this (seconds) are not worth the SDKs' automatic
/// retries: a spent budget that resets later gets `x-should-retry: false`.
const RETRY_HORIZON_SECONDS: u64 = 60;

/// The 429 the client receives when a limiter refused the request.
/// `token_cost` is what the gateway charged the tokens limiter.
///
/// A refusal by the spend limiter is OpenAI's exhausted-quota answer
/// (`insufficient_quota`, which openai-python raises as `RateLimitError`).
pub fn too_many_requests(headers: &Headers, token_cost: u64) -> ApiError {
    let limits = read(headers);
    let kind = refused_by(headers, &limits, token_cost);
    let limit = limits.of(kind);
    let wait = wait_seconds(headers, limit);
    let hopeless = match kind {
        Kind::Tokens => limit.is_some_and(|l| token_cost > l.limit),
        Kind::Spend => wait > RETRY_HORIZON_SECONDS,
        Kind::Requests => false,
    };
    let message = message(kind, limit, token_cost, wait, hopeless);
    let mut error = match kind {
        Kind::Requests => ApiError::with_status(429, message),
        Kind::Tokens => {
            let mut error = ApiError::with_status(429, message);
            error.error_type = ErrorType::Tokens;
            error
        }
        Kind::Spend => ApiError::insufficient_quota(message),
    };
    error.headers.push(("retry-after", wait.to_string()));
    error
        .headers
        .push(("retry-after-ms", wait.saturating_mul(1000).to_string()));
    if hopeless {
        error.headers.push(("x-should-retry", "false".to_string()));
    }
    for (name, value) in openai_headers(&limits) {
        // `ApiError` headers are static names: map the nine known ones.
        if let Some(static_name) = OPENAI_NAMES.iter().find(|n| **n == name) {
            error.headers.push((static_name, value));
        }
    }
    error
}

/// Which limiter refused: the one the marker header names; without a
/// marker, spend when the spend limiter answered (it runs only once the
/// others have admitted the request, and a limiter's 429 stops the chain),
/// else tokens when the request costs more than the tokens that remain.
fn refused_by(headers: &Headers, limits: &Limits, token_cost: u64) -> Kind {
    match headers.first(MARKER_HEADER) {
        Some(b"tokens") => Kind::Tokens,
        Some(b"spend") => Kind::Spend,
        Some(_) => Kind::Requests,
        None if limits.spend.is_some() => Kind::Spend,
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
        (Kind::Spend, _) => spend_message(limit, wait),
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

/// The spend 429's message, in OpenAI's words for an exhausted quota. A
/// limiter without a reset (a `local_ratelimit` token bucket that still
/// holds less than the request costs) refills gradually instead.
fn spend_message(limit: Option<Limit>, wait: u64) -> String {
    const ASK: &str = "Ask your platform team for a larger budget.";
    let Some(l) = limit else {
        return format!("You exceeded your current quota: this key's spend budget is spent. {ASK}");
    };
    let state = if l.remaining == 0 {
        "is spent".to_string()
    } else {
        format!(
            "has {} left, less than this request may cost",
            money(l.remaining)
        )
    };
    let when = if l.reset_seconds > 0 {
        format!("resets in {}", duration(wait.saturating_mul(1000)))
    } else {
        "it refills gradually over the window".to_string()
    };
    format!(
        "You exceeded your current quota: this key's spend budget of {} per window {state} ({when}). {ASK}",
        money(l.limit)
    )
}

/// Micro-units (1,000,000 = 1.00) as money: two decimals, or as many as it
/// takes to show a non-zero amount (`0.005`). Digits beyond are dropped, never
/// rounded up, so a budget is never shown larger than it is.
pub fn money(micros: u64) -> String {
    let (units, fraction) = (micros / 1_000_000, micros % 1_000_000);
    let digits = format!("{fraction:06}");
    let shown = if units == 0 && (1..10_000).contains(&fraction) {
        // `0.00` would hide it: down to its first non-zero digit.
        digits
            .find(|c: char| c != '0')
            .map_or(2, |zeros| zeros.saturating_add(1))
    } else {
        2
    };
    format!("{units}.{}", digits.get(..shown).unwrap_or("00"))
}

const OPENAI_NAMES: [&str; 9] = [
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-limit-spend",
    "x-ratelimit-remaining-spend",
    "x-ratelimit-reset-spend",
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

    fn strings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// What Envoy 1.40 sent for a key with a spend budget: three
    /// `local_ratelimit` filters (requests, tokens, spend), spend's trio first.
    const THREE_TRIOS: [(&str, &str); 9] = [
        ("x-ratelimit-limit", "5000000"),
        ("x-ratelimit-remaining", "3765433"),
        ("x-ratelimit-reset", "0"),
        ("x-ratelimit-limit", "5000"),
        ("x-ratelimit-remaining", "4983"),
        ("x-ratelimit-reset", "0"),
        ("x-ratelimit-limit", "3"),
        ("x-ratelimit-remaining", "2"),
        ("x-ratelimit-reset", "0"),
    ];

    #[test]
    fn three_unnamed_trios_are_spend_tokens_then_requests() {
        let limits = read(&header_list(&THREE_TRIOS));
        let limit = |limit, remaining| {
            Some(Limit {
                limit,
                remaining,
                reset_seconds: 0,
            })
        };
        assert_eq!(
            limits,
            Limits {
                requests: limit(3, 2),
                tokens: limit(5000, 4983),
                spend: limit(5_000_000, 3_765_433),
            }
        );
        assert_eq!(
            openai_headers(&limits),
            strings(&[
                ("x-ratelimit-limit-requests", "3"),
                ("x-ratelimit-remaining-requests", "2"),
                ("x-ratelimit-reset-requests", "0ms"),
                ("x-ratelimit-limit-tokens", "5000"),
                ("x-ratelimit-remaining-tokens", "4983"),
                ("x-ratelimit-reset-tokens", "0ms"),
                ("x-ratelimit-limit-spend", "5000000"),
                ("x-ratelimit-remaining-spend", "3765433"),
                ("x-ratelimit-reset-spend", "0ms"),
            ])
        );
        // A key without a budget: the spend limiter adds no trio.
        let two = read(&header_list(&THREE_TRIOS[3..]));
        assert_eq!(two.spend, None);
        assert_eq!(two.tokens.map(|l| l.limit), Some(5000));
        assert_eq!(two.requests.map(|l| l.limit), Some(3));
        // More trios than limiters: the ones before spend's are not read.
        let mut four = vec![
            ("x-ratelimit-limit", "7"),
            ("x-ratelimit-remaining", "7"),
            ("x-ratelimit-reset", "7"),
        ];
        four.extend(THREE_TRIOS);
        assert_eq!(read(&header_list(&four)), limits);
    }

    #[test]
    fn named_trios_in_any_number_and_order() {
        let spend_only = read(&header_list(&[
            (
                "x-ratelimit-limit",
                "5000000, 5000000;w=86400;name=\"spend\"",
            ),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "3600"),
        ]));
        assert_eq!(spend_only.requests, None);
        assert_eq!(spend_only.tokens, None);
        assert_eq!(
            spend_only.spend,
            Some(Limit {
                limit: 5_000_000,
                remaining: 0,
                reset_seconds: 3600
            })
        );
        let named = read(&header_list(&[
            ("x-ratelimit-limit", "3, 3;w=60;name=\"requests\""),
            ("x-ratelimit-remaining", "1"),
            ("x-ratelimit-reset", "42"),
            ("x-ratelimit-limit", "20000, 20000;w=60;name=\"tokens\""),
            ("x-ratelimit-remaining", "19000"),
            ("x-ratelimit-reset", "42"),
            (
                "x-ratelimit-limit",
                "9000000, 9000000;w=86400;name=\"spend\"",
            ),
            ("x-ratelimit-remaining", "8000000"),
            ("x-ratelimit-reset", "900"),
        ]));
        assert_eq!(named.requests.map(|l| l.remaining), Some(1));
        assert_eq!(named.tokens.map(|l| l.remaining), Some(19000));
        assert_eq!(named.spend.map(|l| l.remaining), Some(8_000_000));
        assert_eq!(
            openai_headers(&named).get(6..),
            Some(
                &strings(&[
                    ("x-ratelimit-limit-spend", "9000000"),
                    ("x-ratelimit-remaining-spend", "8000000"),
                    ("x-ratelimit-reset-spend", "15m0s"),
                ])[..]
            )
        );
    }

    #[test]
    fn money_from_micro_units() {
        for (micros, text) in [
            (0, "0.00"),
            (5_000_000, "5.00"),
            (1_234_567, "1.23"),
            (4_999_999, "4.99"),
            (10_000, "0.01"),
            (9_999, "0.009"),
            (5_000, "0.005"),
            (1_234, "0.001"),
            (10, "0.00001"),
            (1, "0.000001"),
            (1_000_001, "1.00"),
            (u64::MAX, "18446744073709.55"),
        ] {
            assert_eq!(money(micros), text, "{micros}");
        }
    }

    fn spend_429(remaining: &str, reset: &str) -> ApiError {
        too_many_requests(
            &header_list(&[
                ("x-ratelimit-limit", "5000000"),
                ("x-ratelimit-remaining", remaining),
                ("x-ratelimit-reset", reset),
                ("x-ratelimit-limit", "5000"),
                ("x-ratelimit-remaining", "4983"),
                ("x-ratelimit-reset", "0"),
                ("x-ratelimit-limit", "3"),
                ("x-ratelimit-remaining", "2"),
                ("x-ratelimit-reset", "0"),
                (MARKER_HEADER, "spend"),
            ]),
            17,
        )
    }

    #[test]
    fn spend_429_is_insufficient_quota() {
        let e = spend_429("0", "46925");
        assert_eq!(e.status, 429);
        assert_eq!(e.error_type, ErrorType::InsufficientQuota);
        assert_eq!(e.code, Some(ErrorCode::InsufficientQuota));
        assert_eq!(
            e.message,
            "You exceeded your current quota: this key's spend budget of 5.00 per window is spent \
             (resets in 13h2m5s). Ask your platform team for a larger budget."
        );
        let body: serde_json::Value = serde_json::from_slice(&e.body(None)).unwrap();
        assert_eq!(body["error"]["type"], "insufficient_quota");
        assert_eq!(body["error"]["code"], "insufficient_quota");
        assert_eq!(body["error"]["param"], serde_json::Value::Null);
        assert_eq!(header(&e, "retry-after"), Some("46925"));
        assert_eq!(header(&e, "retry-after-ms"), Some("46925000"));
        // The SDKs should not retry for 13 hours.
        assert_eq!(header(&e, "x-should-retry"), Some("false"));
        for (name, value) in [
            ("x-ratelimit-limit-spend", "5000000"),
            ("x-ratelimit-remaining-spend", "0"),
            ("x-ratelimit-reset-spend", "13h2m5s"),
            ("x-ratelimit-remaining-tokens", "4983"),
            ("x-ratelimit-remaining-requests", "2"),
        ] {
            assert_eq!(header(&e, name), Some(value), "{name}");
        }
    }

    #[test]
    fn spend_429_retries_only_within_a_minute() {
        for (reset, should_retry) in [("1", None), ("60", None), ("61", Some("false"))] {
            let e = spend_429("0", reset);
            assert_eq!(header(&e, "x-should-retry"), should_retry, "{reset}");
            assert_eq!(header(&e, "retry-after"), Some(reset));
        }
        // A token bucket (local_ratelimit) that holds less than the request
        // costs: no reset, it refills as it goes.
        let e = spend_429("3765433", "0");
        assert_eq!(e.error_type, ErrorType::InsufficientQuota);
        assert_eq!(header(&e, "retry-after"), Some("1"));
        assert_eq!(header(&e, "x-should-retry"), None);
        assert_eq!(
            e.message,
            "You exceeded your current quota: this key's spend budget of 5.00 per window has 3.76 left, \
             less than this request may cost (it refills gradually over the window). \
             Ask your platform team for a larger budget."
        );
    }

    #[test]
    fn spend_429_without_marker_or_trio() {
        // The spend limiter answered, so it is the one that refused.
        let e = too_many_requests(&header_list(&THREE_TRIOS), 17);
        assert_eq!(e.code, Some(ErrorCode::InsufficientQuota));
        // Two trios: still tokens or requests, as before.
        let e = too_many_requests(&header_list(&THREE_TRIOS[3..]), 17);
        assert_eq!(e.error_type, ErrorType::Requests);
        // A marker without any trio.
        let e = too_many_requests(&header_list(&[(MARKER_HEADER, "spend")]), 17);
        assert_eq!(e.error_type, ErrorType::InsufficientQuota);
        assert_eq!(
            e.message,
            "You exceeded your current quota: this key's spend budget is spent. \
             Ask your platform team for a larger budget."
        );
        assert_eq!(header(&e, "retry-after"), Some("1"));
        assert_eq!(header(&e, "x-should-retry"), None);
    }

    #[test]
    fn huge_spend_waits_saturate() {
        let max = u64::MAX.to_string();
        let e = spend_429(&max, &max);
        assert_eq!(header(&e, "retry-after"), Some(max.as_str()));
        assert_eq!(header(&e, "retry-after-ms"), Some(max.as_str()));
        assert_eq!(header(&e, "x-should-retry"), Some("false"));
        assert_eq!(
            header(&e, "x-ratelimit-remaining-spend"),
            Some(max.as_str())
        );
        assert!(
            e.message.contains("has 18446744073709.55 left"),
            "{}",
            e.message
        );
    }

    /// Every header `openai_headers` writes has a static name for the 429.
    #[test]
    fn every_openai_header_name_is_known() {
        let names: Vec<String> = openai_headers(&read(&header_list(&THREE_TRIOS)))
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, OPENAI_NAMES);
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
        let removed = headers_to_remove(&header_list(&[(MARKER_HEADER, "spend")]));
        assert_eq!(removed, [MARKER_HEADER]);
    }
}
