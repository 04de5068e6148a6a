//! What each finished exchange adds to the gateway's counters and
//! histograms. Envoy exports proxy-wasm metrics at `/stats/prometheus`; the
//! labels (`key_id`, `model`, `backend`, `status_class`, `error_code`,
//! `token_type`) are encoded in the stat name as `.label.value` pairs and
//! turned back into Prometheus labels by the `stats_tags` of the bootstrap
//! (see envoy/demo.yaml).

use crate::usage::Usage;

pub const PREFIX: &str = "openai_gateway";

/// Gauge: 1 while a backend is in service, 0 when its probes took it out.
pub const BACKEND_LIVE: &str = "backend_live";
/// Gauge: how many of a model's backends serve it.
pub const MODEL_SERVING_BACKENDS: &str = "model_serving_backends";
/// Counter: what the reported usage cost, in micro-units of money.
pub const SPEND_MICROS: &str = "spend_micros_total";
/// Histogram: a forwarded request's duration.
pub const REQUEST_DURATION: &str = "request_duration_milliseconds";
/// Histogram: a stream's time to its first content event.
pub const TIME_TO_FIRST_TOKEN: &str = "time_to_first_token_milliseconds";
/// Histogram: a stream's pace after its first content event.
pub const TIME_PER_OUTPUT_TOKEN: &str = "time_per_output_token_microseconds";
/// Histogram: the tokens a request used, by `token_type`.
pub const TOKEN_USAGE: &str = "token_usage";

/// What a metric counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

/// One metric the gateway exports, as `docs/metrics.md` documents it.
#[derive(Debug, Clone, Copy)]
pub struct MetricDoc {
    /// The name after [`PREFIX`] and `_`.
    pub name: &'static str,
    pub kind: MetricType,
    pub labels: &'static [&'static str],
    pub unit: &'static str,
    pub meaning: &'static str,
    /// The OpenTelemetry GenAI semantic convention it follows, if any.
    pub semconv: Option<&'static str>,
}

/// Every metric the gateway exports: the reference `docs/metrics.md` is
/// generated from it, and tests check that every stat name the code makes
/// is here.
pub const CATALOG: &[MetricDoc] = &[
    MetricDoc {
        name: "requests_total",
        kind: MetricType::Counter,
        labels: &["key_id", "model", "status_class", "error_code"],
        unit: "requests",
        meaning: "Every request the gateway saw, by the status its client received (`2xx`…`5xx`). \
                  `error_code` is OpenAI's `error.code` of the gateway's own errors \
                  (`invalid_api_key`, `model_not_found`, `rate_limit_exceeded`, …) or `none`.",
        semconv: None,
    },
    MetricDoc {
        name: "prompt_tokens_total",
        kind: MetricType::Counter,
        labels: &["key_id", "model"],
        unit: "tokens",
        meaning: "Prompt tokens the backends reported (`usage.prompt_tokens`, the Responses API's `input_tokens`).",
        semconv: None,
    },
    MetricDoc {
        name: "completion_tokens_total",
        kind: MetricType::Counter,
        labels: &["key_id", "model"],
        unit: "tokens",
        meaning: "Completion tokens the backends reported (`usage.completion_tokens`, `output_tokens`).",
        semconv: None,
    },
    MetricDoc {
        name: "cached_tokens_total",
        kind: MetricType::Counter,
        labels: &["key_id", "model"],
        unit: "tokens",
        meaning: "Prompt tokens served from a prompt cache (`prompt_tokens_details.cached_tokens`).",
        semconv: None,
    },
    MetricDoc {
        name: SPEND_MICROS,
        kind: MetricType::Counter,
        labels: &["key_id", "model"],
        unit: "micro-units of money (1,000,000 = 1.00)",
        meaning: "What the reported usage cost, for models with a `price`, rounded up per request.",
        semconv: None,
    },
    MetricDoc {
        name: BACKEND_LIVE,
        kind: MetricType::Gauge,
        labels: &["backend"],
        unit: "1 or 0",
        meaning: "1 while the backend is in service, 0 once its health probes took it out. \
                  Only backends with a probe.",
        semconv: None,
    },
    MetricDoc {
        name: MODEL_SERVING_BACKENDS,
        kind: MetricType::Gauge,
        labels: &["model"],
        unit: "backends",
        meaning: "How many of the model's backends serve it now (0: it is not listed, and its \
                  requests get a 503). Set while any backend has a probe.",
        semconv: None,
    },
    MetricDoc {
        name: REQUEST_DURATION,
        kind: MetricType::Histogram,
        labels: &["key_id", "model", "backend"],
        unit: "milliseconds",
        meaning: "From the request's arrival to the end of its response, for every request a \
                  backend answered (any status; refusals by the gateway, a limiter or Envoy \
                  are counted in `requests_total` only).",
        semconv: Some("gen_ai.server.request.duration"),
    },
    MetricDoc {
        name: TIME_TO_FIRST_TOKEN,
        kind: MetricType::Histogram,
        labels: &["key_id", "model", "backend"],
        unit: "milliseconds",
        meaning: "Streams: from the request's arrival to the first event carrying generated \
                  content (a non-empty `content`, `text`, `delta`, reasoning or tool-call \
                  `arguments`; a role-only first chunk does not count).",
        semconv: Some("gen_ai.server.time_to_first_token"),
    },
    MetricDoc {
        name: TIME_PER_OUTPUT_TOKEN,
        kind: MetricType::Histogram,
        labels: &["key_id", "model", "backend"],
        unit: "microseconds",
        meaning: "Streams: from the first to the last chunk carrying content, divided by the \
                  completion tokens the usage reports less one (the first token is the time \
                  to first token's). Needs the usage, two chunks apart in time and two tokens.",
        semconv: Some("gen_ai.server.time_per_output_token"),
    },
    MetricDoc {
        name: TOKEN_USAGE,
        kind: MetricType::Histogram,
        labels: &["key_id", "model", "backend", "token_type"],
        unit: "tokens",
        meaning: "The tokens one request used, as its usage reports them: `token_type` is \
                  `input` (prompt), `output` (completion; requests that generated some) or \
                  `cached` (prompt tokens from a prompt cache; requests with a cache hit).",
        semconv: Some("gen_ai.client.token.usage"),
    },
];

/// `docs/metrics.md`: the reference of every metric, from [`CATALOG`].
pub fn markdown() -> String {
    let mut out = String::from(
        "# Metrics reference\n\n\
         Generated from `src/metrics.rs` (`make docs`); a test fails when it is stale.\n\n\
         Envoy serves them at its admin endpoint's `/stats/prometheus`, named \
         `openai_gateway_<name>`. The labels are encoded in the stat names \
         (`.label.value` pairs) and restored by the bootstrap's \
         `stats_config.stats_tags` (copy that block from `envoy/demo.yaml`). \
         Label values are bounded by the configuration (key ids, catalog model \
         ids, backend names; `none` when not known yet) and keep \
         `A-Z a-z 0-9 _ -`: other characters become `_` \
         (`llama-3.1-8b-instruct` is `llama-3_1-8b-instruct`). With \
         `metrics.per_key: false` in the plugin configuration, no metric has a \
         `key_id` label (for large key sets); with `metrics.histograms: false`, \
         requests record no histogram (saving their calls into Envoy). Counters are summed in each worker \
         and handed to Envoy once a second. Histograms are recorded in Envoy \
         (one host call a sample), which computes their buckets (`_bucket`, \
         `_sum`, `_count`); the bootstrap's `stats_config.histogram_bucket_settings` \
         sets the buckets (`envoy/demo.yaml` has buckets fit for each). Envoy merges \
         its workers' histograms at each stats flush (`stats_flush_interval`, 5 s by \
         default) and keeps about two significant digits a sample: bucket counts \
         and `_count` are exact, `_sum` is close (the counters are the exact \
         token totals).\n\n\
         Names follow OpenTelemetry's GenAI semantic conventions where one \
         exists (last column), in Prometheus form: Envoy's histograms hold \
         integers, so times are in milliseconds (microseconds for the time per \
         output token) instead of the conventions' seconds, and the unit is in \
         the name.\n\n\
         | metric | type | labels | unit | meaning | GenAI convention |\n|---|---|---|---|---|---|\n",
    );
    for m in CATALOG {
        let kind = match m.kind {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        };
        let labels: Vec<String> = m.labels.iter().map(|l| format!("`{l}`")).collect();
        let semconv = m.semconv.map_or(String::new(), |c| format!("`{c}`"));
        out.push_str(&format!(
            "| `{PREFIX}_{}` | {kind} | {} | {} | {} | {semconv} |\n",
            m.name,
            labels.join(", "),
            m.unit,
            m.meaning
        ));
    }
    out
}

/// Label values: `A-Z a-z 0-9 _ -`, others (dots included) become `_`, so a
/// value can never be mistaken for a name separator; empty becomes `none`.
pub fn label(value: &str) -> String {
    if value.is_empty() {
        return "none".to_string();
    }
    value
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One finished exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome<'a> {
    pub key_id: Option<&'a str>,
    pub model: Option<&'a str>,
    pub status: u16,
    /// OpenAI's `error.code` when the gateway answered with an error.
    pub error_code: Option<&'a str>,
    pub usage: Option<Usage>,
    /// What the usage cost, in micro-units, for a model with prices.
    pub spend: Option<u64>,
    /// The configuration drops the `key_id` label (`metrics.per_key: false`).
    pub without_key: bool,
}

/// What the stat names of an outcome depend on: outcomes with equal keys
/// increment the same counters (by their own amounts).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutcomeKey {
    key_id: Option<String>,
    model: Option<String>,
    status: u16,
    error_code: Option<String>,
    with_usage: bool,
    with_spend: bool,
    without_key: bool,
}

impl Outcome<'_> {
    pub fn key(&self) -> OutcomeKey {
        OutcomeKey {
            key_id: self.key_id.map(str::to_string),
            model: self.model.map(str::to_string),
            status: self.status,
            error_code: self.error_code.map(str::to_string),
            with_usage: self.usage.is_some(),
            with_spend: self.spend.is_some(),
            without_key: self.without_key,
        }
    }
}

const TOKEN_COUNTERS: [&str; 3] = [
    "prompt_tokens_total",
    "completion_tokens_total",
    "cached_tokens_total",
];

/// The stat names an outcome increments, in the order of [`amounts`].
pub fn names(outcome: &Outcome) -> Vec<String> {
    let key = key_label(outcome.key_id, outcome.without_key);
    let model = label(outcome.model.unwrap_or_default());
    let class = match outcome.status {
        100..=599 => format!("{}xx", outcome.status / 100),
        _ => "none".to_string(),
    };
    let code = label(outcome.error_code.unwrap_or_default());
    let mut out = vec![format!(
        "{PREFIX}_requests_total{key}.model.{model}.status_class.{class}.error_code.{code}"
    )];
    if outcome.usage.is_some() {
        out.extend(
            TOKEN_COUNTERS
                .iter()
                .map(|counter| format!("{PREFIX}_{counter}{key}.model.{model}")),
        );
    }
    if outcome.spend.is_some() {
        out.push(format!("{PREFIX}_{SPEND_MICROS}{key}.model.{model}"));
    }
    out
}

/// The amounts to add, in the order of [`names`].
pub fn amounts(outcome: &Outcome) -> impl Iterator<Item = u64> {
    let tokens = outcome
        .usage
        .map(|u| [u.prompt_tokens, u.completion_tokens, u.cached_tokens]);
    std::iter::once(1)
        .chain(tokens.into_iter().flatten())
        .chain(outcome.spend)
}

/// The `.key_id.<id>` part of a stat name, or nothing without the label.
fn key_label(key_id: Option<&str>, without_key: bool) -> String {
    if without_key {
        String::new()
    } else {
        format!(".key_id.{}", label(key_id.unwrap_or_default()))
    }
}

/// One histogram of a [`Subject`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    Duration,
    TimeToFirstToken,
    TimePerOutputToken,
    InputTokens,
    OutputTokens,
    CachedTokens,
}

impl Series {
    /// Every series, in the order of [`histogram_names`].
    pub const ALL: [Series; 6] = [
        Series::Duration,
        Series::TimeToFirstToken,
        Series::TimePerOutputToken,
        Series::InputTokens,
        Series::OutputTokens,
        Series::CachedTokens,
    ];

    /// Its place in [`Series::ALL`] and [`histogram_names`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Whose samples these are: the histograms' labels, bounded by the
/// configuration (a key id, a catalog model, a backend it names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    /// None: no `key_id` label (`metrics.per_key: false`).
    pub key_id: Option<&'a str>,
    pub model: &'a str,
    pub backend: &'a str,
}

/// The stat names of a subject's histograms, in the order of [`Series::ALL`].
pub fn histogram_names(subject: &Subject) -> [String; 6] {
    let labels = format!(
        "{}.model.{}.backend.{}",
        key_label(subject.key_id, subject.key_id.is_none()),
        label(subject.model),
        label(subject.backend)
    );
    let tokens = |kind: &str| format!("{PREFIX}_{TOKEN_USAGE}{labels}.token_type.{kind}");
    [
        format!("{PREFIX}_{REQUEST_DURATION}{labels}"),
        format!("{PREFIX}_{TIME_TO_FIRST_TOKEN}{labels}"),
        format!("{PREFIX}_{TIME_PER_OUTPUT_TOKEN}{labels}"),
        tokens("input"),
        tokens("output"),
        tokens("cached"),
    ]
}

/// The samples one exchange records: its latency, and the tokens its usage
/// reports (output and cached ones only when there are some: an embedding
/// has no output, most prompts no cache hit).
pub fn observations(
    samples: &crate::latency::Samples,
    usage: Option<&Usage>,
) -> Vec<(Series, u64)> {
    let mut out = vec![(Series::Duration, samples.duration_ms)];
    out.extend(
        samples
            .time_to_first_token_ms
            .map(|v| (Series::TimeToFirstToken, v)),
    );
    out.extend(
        samples
            .time_per_output_token_us
            .map(|v| (Series::TimePerOutputToken, v)),
    );
    if let Some(usage) = usage {
        out.push((Series::InputTokens, usage.prompt_tokens));
        for (series, value) in [
            (Series::OutputTokens, usage.completion_tokens),
            (Series::CachedTokens, usage.cached_tokens),
        ] {
            if value > 0 {
                out.push((series, value));
            }
        }
    }
    out
}

/// The counters to increment: (stat name, amount).
pub fn increments(outcome: &Outcome) -> Vec<(String, u64)> {
    names(outcome).into_iter().zip(amounts(outcome)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_safe() {
        assert_eq!(label("llama-3.1-8b"), "llama-3_1-8b");
        assert_eq!(label("meta-llama/Llama 3"), "meta-llama_Llama_3");
        assert_eq!(label(""), "none");
        assert_eq!(label(&"x".repeat(300)).len(), 128);
    }

    #[test]
    fn a_successful_call_counts_the_request_and_its_tokens() {
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 4,
            total_tokens: 14,
            cached_tokens: 2,
        };
        let got = increments(&Outcome {
            key_id: Some("demo"),
            model: Some("flux.1-schnell"),
            status: 200,
            error_code: None,
            usage: Some(usage),
            spend: Some(4_200),
            without_key: false,
        });
        assert_eq!(
            got,
            vec![
                ("openai_gateway_requests_total.key_id.demo.model.flux_1-schnell.status_class.2xx.error_code.none".to_string(), 1),
                ("openai_gateway_prompt_tokens_total.key_id.demo.model.flux_1-schnell".to_string(), 10),
                ("openai_gateway_completion_tokens_total.key_id.demo.model.flux_1-schnell".to_string(), 4),
                ("openai_gateway_cached_tokens_total.key_id.demo.model.flux_1-schnell".to_string(), 2),
                ("openai_gateway_spend_micros_total.key_id.demo.model.flux_1-schnell".to_string(), 4_200),
            ]
        );
    }

    /// The host caches counter ids by `Outcome::key`: outcomes with the same
    /// key must name the same counters, whatever their amounts.
    #[test]
    fn names_depend_only_on_the_outcome_key() {
        let usage = |prompt| Usage {
            prompt_tokens: prompt,
            completion_tokens: 1,
            total_tokens: prompt + 1,
            cached_tokens: 0,
        };
        let a = Outcome {
            key_id: Some("demo"),
            model: Some("m"),
            status: 200,
            usage: Some(usage(5)),
            ..Outcome::default()
        };
        let b = Outcome {
            usage: Some(usage(900)),
            ..a.clone()
        };
        assert_eq!(a.key(), b.key());
        assert_eq!(names(&a), names(&b));
        assert_eq!(amounts(&a).collect::<Vec<_>>(), vec![1, 5, 1, 0]);
        assert_eq!(amounts(&b).collect::<Vec<_>>(), vec![1, 900, 1, 0]);
        let other = Outcome {
            status: 201,
            ..a.clone()
        };
        assert_ne!(a.key(), other.key());
        let without_usage = Outcome { usage: None, ..a };
        assert_eq!(names(&without_usage).len(), 1);
        assert_eq!(amounts(&without_usage).collect::<Vec<_>>(), vec![1]);
    }

    /// Every stat name the code makes is in the reference, with its labels
    /// in order.
    #[test]
    fn every_stat_name_is_documented() {
        let usage = Usage {
            prompt_tokens: 1,
            completion_tokens: 1,
            total_tokens: 2,
            cached_tokens: 1,
        };
        let mut made = names(&Outcome {
            key_id: Some("k"),
            model: Some("m"),
            status: 200,
            error_code: None,
            usage: Some(usage),
            spend: Some(1),
            without_key: false,
        });
        made.extend(histogram_names(&Subject {
            key_id: Some("k"),
            model: "m",
            backend: "b",
        }));
        made.push(format!("{PREFIX}_{BACKEND_LIVE}.backend.b"));
        made.push(format!("{PREFIX}_{MODEL_SERVING_BACKENDS}.model.m"));
        for name in &made {
            let rest = name.strip_prefix(&format!("{PREFIX}_")).unwrap();
            let mut parts = rest.split('.');
            let base = parts.next().unwrap();
            let labels: Vec<&str> = parts.step_by(2).collect();
            let doc = CATALOG
                .iter()
                .find(|m| m.name == base)
                .unwrap_or_else(|| panic!("{base}"));
            assert_eq!(doc.labels, labels.as_slice(), "{name}");
        }
        assert!(markdown().contains("`openai_gateway_backend_live` | gauge | `backend`"));
        assert!(markdown().contains(
            "`openai_gateway_time_to_first_token_milliseconds` | histogram | `key_id`, `model`, `backend`"
        ));
        // Every documented metric is made by the code.
        for doc in CATALOG {
            let base = format!("{PREFIX}_{}.", doc.name);
            assert!(made.iter().any(|n| n.starts_with(&base)), "{}", doc.name);
        }
    }

    #[test]
    fn without_the_key_label_no_name_has_one() {
        let usage = Usage {
            prompt_tokens: 1,
            completion_tokens: 1,
            total_tokens: 2,
            cached_tokens: 0,
        };
        let with = Outcome {
            key_id: Some("k"),
            model: Some("m"),
            status: 200,
            usage: Some(usage),
            spend: Some(3),
            ..Outcome::default()
        };
        let without = Outcome {
            without_key: true,
            ..with.clone()
        };
        assert_ne!(with.key(), without.key());
        assert!(names(&with).iter().all(|n| n.contains(".key_id.k.")));
        let names = names(&without);
        assert_eq!(
            names.first().map(String::as_str),
            Some("openai_gateway_requests_total.model.m.status_class.2xx.error_code.none")
        );
        assert!(names.iter().all(|n| !n.contains("key_id")), "{names:?}");
        let histograms = histogram_names(&Subject {
            key_id: None,
            model: "m",
            backend: "b",
        });
        assert!(histograms.iter().all(|n| !n.contains("key_id")));
        assert_eq!(
            histograms[5],
            "openai_gateway_token_usage.model.m.backend.b.token_type.cached"
        );
    }

    #[test]
    fn observations_skip_what_is_not_there() {
        let samples = crate::latency::Samples {
            duration_ms: 800,
            time_to_first_token_ms: Some(120),
            time_per_output_token_us: Some(25_000),
        };
        let usage = Usage {
            prompt_tokens: 12,
            completion_tokens: 27,
            total_tokens: 39,
            cached_tokens: 4,
        };
        assert_eq!(
            observations(&samples, Some(&usage)),
            vec![
                (Series::Duration, 800),
                (Series::TimeToFirstToken, 120),
                (Series::TimePerOutputToken, 25_000),
                (Series::InputTokens, 12),
                (Series::OutputTokens, 27),
                (Series::CachedTokens, 4),
            ]
        );
        // An embedding: no stream, no output, no cache hit.
        let embedding = Usage {
            prompt_tokens: 8,
            completion_tokens: 0,
            total_tokens: 8,
            cached_tokens: 0,
        };
        let whole = crate::latency::Samples {
            duration_ms: 3,
            ..Default::default()
        };
        assert_eq!(
            observations(&whole, Some(&embedding)),
            vec![(Series::Duration, 3), (Series::InputTokens, 8)]
        );
        assert_eq!(observations(&whole, None), vec![(Series::Duration, 3)]);
        // The order of the names is the order of the series.
        let names = histogram_names(&Subject {
            key_id: Some("k"),
            model: "m",
            backend: "b",
        });
        for series in Series::ALL {
            assert!(names[series.index()].starts_with("openai_gateway_"));
        }
        assert!(names[Series::TimePerOutputToken.index()].contains("time_per_output_token"));
        assert!(names[Series::OutputTokens.index()].ends_with("token_type.output"));
    }

    #[test]
    fn refusals_count_with_their_code() {
        let got = increments(&Outcome {
            status: 401,
            error_code: Some("invalid_api_key"),
            ..Outcome::default()
        });
        assert_eq!(
            got,
            vec![("openai_gateway_requests_total.key_id.none.model.none.status_class.4xx.error_code.invalid_api_key".to_string(), 1)]
        );
    }
}
