//! The gateway's counters as the host knows them. A finished exchange adds
//! its amounts in the VM, without a host call; [`Counters::flush`] (on the
//! root context's tick, once a second, and when the VM is done) hands the
//! sums to Envoy: each stat name is defined once (the host gives it an id)
//! and then incremented by id. Increments are sums, so nothing is lost by
//! adding them later; a scrape sees an exchange at most one tick late.

use super::histograms::Histograms;
use crate::host::{Call, Host, HostError};
use crate::metrics;
use log::warn;
use std::cell::RefCell;
use std::collections::HashMap;

/// How often the adapter flushes, in milliseconds.
pub const FLUSH_EVERY_MS: u64 = 1000;

/// One outcome's counters: their names, the ids the host gave them (once
/// defined), and what exchanges added since the last flush.
#[derive(Debug)]
struct Counted {
    names: Vec<String>,
    ids: Vec<Option<u32>>,
    pending: Vec<u64>,
}

/// Counters by the exchange outcome that names them: a repeated outcome (the
/// common case) costs no name formatting. One per VM (root context), shared
/// by its exchanges.
#[derive(Debug, Default)]
pub struct Counters {
    by_outcome: RefCell<HashMap<metrics::OutcomeKey, Counted>>,
    /// Backends already reported for answering without believable usage.
    usage_warned: RefCell<std::collections::HashSet<String>>,
    /// The histograms' ids (their samples go to Envoy as they come).
    histograms: Histograms,
}

/// Distinct outcomes remembered at most (key × model × status × code is
/// bounded by the configuration, but backends choose the status).
const METRIC_OUTCOMES: usize = 4096;

impl Counters {
    /// Whether `backend` has not yet been reported for usage it failed to
    /// report (once per backend and worker: a log line, not one per request).
    pub fn first_usage_warning(&self, backend: &str) -> bool {
        let mut warned = self.usage_warned.borrow_mut();
        // Backends come from the configuration: the set stays small.
        !warned.contains(backend) && warned.insert(backend.to_string())
    }

    /// Records one finished exchange's samples in its histograms (one host
    /// call a sample).
    pub fn observe(
        &self,
        host: &impl Host,
        subject: &metrics::Subject,
        samples: &[(metrics::Series, u64)],
    ) {
        self.histograms.record(host, subject, samples);
    }

    /// Adds one finished exchange to its counters. Makes no host call, but
    /// flushes first when the outcomes remembered reach their bound.
    pub fn record(&self, host: &impl Host, outcome: &metrics::Outcome) {
        let key = outcome.key();
        let full = match self.by_outcome.try_borrow() {
            Ok(cache) => !cache.contains_key(&key) && cache.len() >= METRIC_OUTCOMES,
            Err(_) => return,
        };
        if full {
            self.flush(host);
            if let Ok(mut cache) = self.by_outcome.try_borrow_mut() {
                cache.clear();
            }
        }
        let Ok(mut cache) = self.by_outcome.try_borrow_mut() else {
            return;
        };
        let counted = cache.entry(key).or_insert_with(|| {
            let names = metrics::names(outcome);
            Counted {
                ids: vec![None; names.len()],
                pending: vec![0; names.len()],
                names,
            }
        });
        for (sum, amount) in counted.pending.iter_mut().zip(metrics::amounts(outcome)) {
            *sum = sum.saturating_add(amount);
        }
    }

    /// Hands every pending sum to the host, defining counters on first use.
    pub fn flush(&self, host: &impl Host) {
        let Ok(mut cache) = self.by_outcome.try_borrow_mut() else {
            return;
        };
        for counted in cache.values_mut() {
            let Counted {
                names,
                ids,
                pending,
            } = counted;
            for ((name, id), sum) in names.iter().zip(ids.iter_mut()).zip(pending.iter_mut()) {
                // Defined even at 0, so a scrape shows it; but Envoy refuses
                // an increment of 0 (BadArgument): nothing to add.
                let (Some(defined), false) = (define(host, name, id), *sum == 0) else {
                    continue;
                };
                let amount = i64::try_from(*sum).unwrap_or(i64::MAX);
                match host.increment(defined, amount) {
                    Ok(()) => *sum = 0,
                    Err(status) => warn!(
                        "openai-gateway: {}",
                        HostError::new(Call::IncrementMetric(defined), status)
                    ),
                }
            }
        }
    }
}

/// The counter's id, defining it with the host the first time.
fn define(host: &impl Host, name: &str, id: &mut Option<u32>) -> Option<u32> {
    if id.is_none() {
        match host.define_counter(name) {
            Ok(defined) => *id = Some(defined),
            Err(status) => warn!(
                "openai-gateway: {} {name}",
                HostError::new(Call::DefineMetric, status)
            ),
        }
    }
    *id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::recording::RecordingHost;
    use crate::usage::Usage;

    fn outcome(status: u16, usage: Option<Usage>) -> metrics::Outcome<'static> {
        metrics::Outcome {
            key_id: Some("demo"),
            model: Some("m"),
            status,
            error_code: None,
            usage,
            spend: None,
            without_key: false,
        }
    }

    #[test]
    fn exchanges_cost_no_host_call_and_flushes_lose_nothing() {
        let counters = Counters::default();
        let host = RecordingHost::default();
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 2,
            total_tokens: 12,
            cached_tokens: 0,
        };
        for _ in 0..1000 {
            counters.record(&host, &outcome(200, Some(usage)));
        }
        counters.record(&host, &outcome(503, None));
        assert_eq!(host.total_calls(), 0);
        counters.flush(&host);
        let requests =
            "openai_gateway_requests_total.key_id.demo.model.m.status_class.2xx.error_code.none";
        assert_eq!(host.counter(requests), Some(1000));
        assert_eq!(
            host.counter("openai_gateway_prompt_tokens_total.key_id.demo.model.m"),
            Some(10_000)
        );
        assert_eq!(
            host.counter("openai_gateway_completion_tokens_total.key_id.demo.model.m"),
            Some(2000)
        );
        assert_eq!(
            host.counter("openai_gateway_requests_total.key_id.demo.model.m.status_class.5xx.error_code.none"),
            Some(1)
        );
        // Zero sums (cached tokens) are never sent: Envoy refuses them.
        assert_eq!(host.counts().get("increment"), Some(&4));
        // A flush with nothing pending makes no call; the next one adds on.
        host.reset_calls();
        counters.flush(&host);
        assert_eq!(host.total_calls(), 0);
        counters.record(&host, &outcome(200, Some(usage)));
        counters.flush(&host);
        assert_eq!(host.counter(requests), Some(1001));
        assert_eq!(host.counts().get("define_counter"), None, "ids are kept");
    }

    #[test]
    fn a_failed_increment_is_retried_at_the_next_flush() {
        let counters = Counters::default();
        let host = RecordingHost::default();
        counters.record(&host, &outcome(200, None));
        *host.failing.borrow_mut() = Some(("increment", crate::host::Status::InternalFailure));
        counters.flush(&host);
        *host.failing.borrow_mut() = None;
        counters.record(&host, &outcome(200, None));
        counters.flush(&host);
        let requests =
            "openai_gateway_requests_total.key_id.demo.model.m.status_class.2xx.error_code.none";
        assert_eq!(host.counter(requests), Some(2));
    }

    #[test]
    fn the_bound_on_outcomes_flushes_before_forgetting() {
        let counters = Counters::default();
        let host = RecordingHost::default();
        let codes: Vec<String> = (0..=METRIC_OUTCOMES).map(|i| format!("c{i}")).collect();
        for code in &codes {
            counters.record(
                &host,
                &metrics::Outcome {
                    error_code: Some(code),
                    ..outcome(400, None)
                },
            );
        }
        counters.flush(&host);
        let total: i64 = host.counters.borrow().iter().map(|(_, v)| v).sum();
        assert_eq!(total, codes.len() as i64);
    }
}
