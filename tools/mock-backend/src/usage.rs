//! The usage a response reports, as the `x-mock-completion-tokens` and
//! `x-mock-usage` request headers ask for it (for tests of a gateway that
//! charges token limits with the reported usage).
//!
//! - `x-mock-completion-tokens: N` (u64): the completion (output) token count
//!   is N, whatever the content; the total stays prompt + N (saturating).
//! - `x-mock-usage: MODE`: `missing` (no usage), `negative` (-5, -7, -12),
//!   `absurd` (10^15, 10^15, 2×10^15), `fractional` (12.5, 3.25, 15.75) or
//!   `string` ("12", "3", "15"), as (prompt, completion, total); it wins over
//!   `x-mock-completion-tokens`. Another MODE is ignored.
//!
//! Both values are trimmed; a header that is not valid is ignored.

use hyper::HeaderMap;
use serde_json::{json, Value};

/// A broken usage `x-mock-usage` asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UsageMode {
    /// No usage at all.
    Missing,
    /// Negative counts.
    Negative,
    /// Counts no request could have: 10^15.
    Absurd,
    /// Counts that are not integers.
    Fractional,
    /// Counts as JSON strings.
    String,
}

impl UsageMode {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "missing" => Some(UsageMode::Missing),
            "negative" => Some(UsageMode::Negative),
            "absurd" => Some(UsageMode::Absurd),
            "fractional" => Some(UsageMode::Fractional),
            "string" => Some(UsageMode::String),
            _ => None,
        }
    }

    /// The (prompt, completion, total) counts of this mode; `None` for
    /// `Missing`.
    fn counts(self) -> Option<(Value, Value, Value)> {
        const ABSURD: u64 = 1_000_000_000_000_000;
        const ABSURD_TOTAL: u64 = 2_000_000_000_000_000;
        match self {
            UsageMode::Missing => None,
            UsageMode::Negative => Some((json!(-5), json!(-7), json!(-12))),
            UsageMode::Absurd => Some((json!(ABSURD), json!(ABSURD), json!(ABSURD_TOTAL))),
            UsageMode::Fractional => Some((json!(12.5), json!(3.25), json!(15.75))),
            UsageMode::String => Some((json!("12"), json!("3"), json!("15"))),
        }
    }
}

/// What the request's usage headers ask for (the default: nothing, the
/// usage is counted as usual).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UsageOverride {
    /// `x-mock-completion-tokens`.
    completion_tokens: Option<u64>,
    /// `x-mock-usage`, if it names a known mode.
    mode: Option<UsageMode>,
}

/// The member names of a usage object: (prompt, completion, total).
type Names = (&'static str, &'static str, &'static str);

/// Chat and legacy completions.
const CHAT_NAMES: Names = ("prompt_tokens", "completion_tokens", "total_tokens");
/// The Responses API.
const RESPONSES_NAMES: Names = ("input_tokens", "output_tokens", "total_tokens");

impl UsageOverride {
    /// The override the `x-mock-completion-tokens` and `x-mock-usage`
    /// headers of a request ask for.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let value = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        UsageOverride {
            completion_tokens: value("x-mock-completion-tokens").and_then(|s| s.parse().ok()),
            mode: value("x-mock-usage").and_then(UsageMode::parse),
        }
    }

    /// The usage of a chat or legacy completion that counted `prompt` and
    /// `completion` tokens; `None` if it must be missing.
    pub fn chat(&self, prompt: u64, completion: u64) -> Option<Value> {
        self.usage(CHAT_NAMES, prompt, completion)
    }

    /// The usage of a Responses API response that counted `input` and
    /// `output` tokens; `Value::Null` if it must be missing.
    pub fn responses(&self, input: u64, output: u64) -> Value {
        self.usage(RESPONSES_NAMES, input, output)
            .unwrap_or(Value::Null)
    }

    /// The usage of embeddings that counted `prompt` tokens
    /// (`x-mock-completion-tokens` does not apply); `None` if it must be
    /// missing. The broken modes give their prompt count as the total too.
    pub fn embeddings(&self, prompt: u64) -> Option<Value> {
        let prompt = match self.mode {
            None => json!(prompt),
            Some(mode) => mode.counts()?.0,
        };
        Some(json!({"prompt_tokens": prompt, "total_tokens": prompt}))
    }

    fn usage(&self, names: Names, prompt: u64, completion: u64) -> Option<Value> {
        let (p, c, t) = match self.mode {
            None => {
                let c = self.completion_tokens.unwrap_or(completion);
                (json!(prompt), json!(c), json!(prompt.saturating_add(c)))
            }
            Some(mode) => mode.counts()?,
        };
        let (pn, cn, tn) = names;
        Some(json!({pn: p, cn: c, tn: t}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn from(pairs: &[(&'static str, &'static str)]) -> UsageOverride {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        UsageOverride::from_headers(&headers)
    }

    #[test]
    fn headers_parse() {
        assert_eq!(from(&[]), UsageOverride::default());
        assert_eq!(
            from(&[("x-mock-completion-tokens", " 42 ")]),
            UsageOverride {
                completion_tokens: Some(42),
                mode: None
            }
        );
        for bad in ["-1", "1.5", "", "x", "18446744073709551616"] {
            assert_eq!(
                from(&[("x-mock-completion-tokens", bad)]),
                UsageOverride::default(),
                "{bad:?}"
            );
        }
        for (value, mode) in [
            ("missing", UsageMode::Missing),
            ("negative", UsageMode::Negative),
            (" absurd", UsageMode::Absurd),
            ("fractional ", UsageMode::Fractional),
            ("string", UsageMode::String),
        ] {
            assert_eq!(from(&[("x-mock-usage", value)]).mode, Some(mode), "{value}");
        }
        for unknown in ["", "Missing", "zero", "none"] {
            assert_eq!(from(&[("x-mock-usage", unknown)]), UsageOverride::default());
        }
    }

    #[test]
    fn counted_usage_by_default() {
        let none = UsageOverride::default();
        assert_eq!(
            none.chat(10, 3),
            Some(json!({"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}))
        );
        assert_eq!(
            none.responses(10, 3),
            json!({"input_tokens": 10, "output_tokens": 3, "total_tokens": 13})
        );
        assert_eq!(
            none.embeddings(9),
            Some(json!({"prompt_tokens": 9, "total_tokens": 9}))
        );
    }

    #[test]
    fn completion_tokens_override() {
        let n = from(&[("x-mock-completion-tokens", "1000")]);
        assert_eq!(
            n.chat(10, 3),
            Some(json!({"prompt_tokens": 10, "completion_tokens": 1000, "total_tokens": 1010}))
        );
        assert_eq!(
            n.responses(10, 3),
            json!({"input_tokens": 10, "output_tokens": 1000, "total_tokens": 1010})
        );
        // Embeddings have no completion.
        assert_eq!(
            n.embeddings(9),
            Some(json!({"prompt_tokens": 9, "total_tokens": 9}))
        );
        let max = from(&[("x-mock-completion-tokens", "18446744073709551615")]);
        assert_eq!(
            max.chat(10, 3),
            Some(json!({
                "prompt_tokens": 10,
                "completion_tokens": u64::MAX,
                "total_tokens": u64::MAX,
            }))
        );
    }

    #[test]
    fn broken_usage_modes() {
        let mode = |m: &'static str| from(&[("x-mock-usage", m)]);
        let missing = mode("missing");
        assert_eq!(missing.chat(10, 3), None);
        assert_eq!(missing.responses(10, 3), Value::Null);
        assert_eq!(missing.embeddings(9), None);
        for (m, p, c, t) in [
            ("negative", json!(-5), json!(-7), json!(-12)),
            (
                "absurd",
                json!(1_000_000_000_000_000u64),
                json!(1_000_000_000_000_000u64),
                json!(2_000_000_000_000_000u64),
            ),
            ("fractional", json!(12.5), json!(3.25), json!(15.75)),
            ("string", json!("12"), json!("3"), json!("15")),
        ] {
            let u = mode(m);
            assert_eq!(
                u.chat(10, 3),
                Some(json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": t})),
                "{m}"
            );
            assert_eq!(
                u.responses(10, 3),
                json!({"input_tokens": p, "output_tokens": c, "total_tokens": t}),
                "{m}"
            );
            assert_eq!(
                u.embeddings(9),
                Some(json!({"prompt_tokens": p, "total_tokens": p})),
                "{m}"
            );
        }
        // The mode wins over x-mock-completion-tokens; an unknown one lets
        // it apply.
        let both = from(&[
            ("x-mock-usage", "negative"),
            ("x-mock-completion-tokens", "1000"),
        ]);
        assert_eq!(
            both.chat(10, 3),
            Some(json!({"prompt_tokens": -5, "completion_tokens": -7, "total_tokens": -12}))
        );
        let unknown = from(&[
            ("x-mock-usage", "bogus"),
            ("x-mock-completion-tokens", "1000"),
        ]);
        assert_eq!(
            unknown.chat(10, 3),
            Some(json!({"prompt_tokens": 10, "completion_tokens": 1000, "total_tokens": 1010}))
        );
    }

    #[test]
    fn serialized_numbers() {
        let text = |m: &'static str| {
            from(&[("x-mock-usage", m)])
                .chat(10, 3)
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        let fractional = text("fractional");
        for member in [
            r#""prompt_tokens":12.5"#,
            r#""completion_tokens":3.25"#,
            r#""total_tokens":15.75"#,
        ] {
            assert!(fractional.contains(member), "{fractional}");
        }
        let absurd = text("absurd");
        for member in [
            r#""prompt_tokens":1000000000000000"#,
            r#""completion_tokens":1000000000000000"#,
            r#""total_tokens":2000000000000000"#,
        ] {
            assert!(absurd.contains(member), "{absurd}");
        }
    }
}
