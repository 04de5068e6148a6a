//! The gateway's counters as the host knows them: each stat name is defined
//! once (the host gives it an id) and then incremented by id.

use crate::host::{Call, Host, HostError};
use crate::metrics;
use log::warn;
use std::cell::RefCell;
use std::collections::HashMap;

/// Metric ids, defined on first use, by the exchange outcome that names
/// them: a repeated outcome (the common case) costs no name formatting.
/// One per VM (root context), shared by its exchanges.
#[derive(Debug, Default)]
pub struct Counters {
    by_outcome: RefCell<HashMap<metrics::OutcomeKey, Vec<Option<u32>>>>,
}

/// Distinct outcomes remembered at most (key × model × status × code is
/// bounded by the configuration, but backends choose the status).
const METRIC_OUTCOMES: usize = 4096;

impl Counters {
    /// Adds one finished exchange to its counters.
    pub fn record(&self, host: &impl Host, outcome: &metrics::Outcome) {
        let Ok(mut cache) = self.by_outcome.try_borrow_mut() else {
            return;
        };
        let key = outcome.key();
        if !cache.contains_key(&key) {
            if cache.len() >= METRIC_OUTCOMES {
                cache.clear();
            }
            let ids = metrics::names(outcome)
                .iter()
                .map(|name| match host.define_counter(name) {
                    Ok(id) => Some(id),
                    Err(status) => {
                        warn!(
                            "openai-gateway: {} {name}",
                            HostError::new(Call::DefineMetric, status)
                        );
                        None
                    }
                })
                .collect();
            cache.insert(key.clone(), ids);
        }
        let Some(ids) = cache.get(&key) else {
            return;
        };
        for (id, amount) in ids.iter().zip(metrics::amounts(outcome)) {
            // Envoy refuses an increment of 0 (BadArgument): nothing to count.
            let (Some(id), false) = (id, amount == 0) else {
                continue;
            };
            let amount = i64::try_from(amount).unwrap_or(i64::MAX);
            if let Err(status) = host.increment(*id, amount) {
                warn!(
                    "openai-gateway: {}",
                    HostError::new(Call::IncrementMetric(*id), status)
                );
            }
        }
    }
}
