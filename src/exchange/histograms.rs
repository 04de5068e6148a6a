//! The gateway's histograms as the host knows them. Unlike counters, a
//! histogram's samples cannot be summed in the VM: each is recorded in
//! Envoy when its exchange ends (one host call a sample, no data moved),
//! and Envoy computes the buckets. What the VM keeps is the ids: a
//! subject's stat names are formatted and defined once, the first time it
//! records.

use crate::host::{Call, Host, HostError};
use crate::metrics::{self, Series, Subject};
use log::warn;
use std::cell::RefCell;
use std::collections::HashMap;

/// Histogram ids by subject (key, model, backend), each defined on first use.
#[derive(Debug, Default)]
pub struct Histograms {
    by_subject: RefCell<HashMap<String, [Option<u32>; 6]>>,
}

/// Subjects remembered at most (bounded by the configuration already:
/// keys × models × backends; past the bound, ids are asked for again).
const SUBJECTS: usize = 4096;

impl Histograms {
    /// Records one exchange's samples in its subject's histograms.
    pub fn record(&self, host: &impl Host, subject: &Subject, samples: &[(Series, u64)]) {
        let Ok(mut cache) = self.by_subject.try_borrow_mut() else {
            return;
        };
        let key = format!(
            "{}\0{}\0{}",
            subject.key_id.unwrap_or("\0"),
            subject.model,
            subject.backend
        );
        if !cache.contains_key(&key) && cache.len() >= SUBJECTS {
            cache.clear();
        }
        let ids = cache.entry(key).or_default();
        let mut names: Option<[String; 6]> = None;
        for &(series, value) in samples {
            let Some(slot) = ids.get_mut(series.index()) else {
                continue;
            };
            if slot.is_none() {
                let names = names.get_or_insert_with(|| metrics::histogram_names(subject));
                let name = names.get(series.index()).map_or("", String::as_str);
                match host.define_histogram(name) {
                    Ok(id) => *slot = Some(id),
                    Err(status) => {
                        warn!(
                            "openai-gateway: {} {name}",
                            HostError::new(Call::DefineMetric, status)
                        );
                        continue;
                    }
                }
            }
            if let Some(id) = *slot {
                if let Err(status) = host.record(id, value) {
                    warn!(
                        "openai-gateway: {}",
                        HostError::new(Call::RecordHistogram(id), status)
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::recording::RecordingHost;

    const SUBJECT: Subject = Subject {
        key_id: Some("demo"),
        model: "llama-3.1-8b",
        backend: "backend-a",
    };

    #[test]
    fn a_sample_is_one_call_once_its_histogram_is_defined() {
        let histograms = Histograms::default();
        let host = RecordingHost::default();
        let samples = [(Series::Duration, 120), (Series::InputTokens, 30)];
        histograms.record(&host, &SUBJECT, &samples);
        assert_eq!(host.counts().get("define_histogram"), Some(&2));
        host.reset_calls();
        histograms.record(&host, &SUBJECT, &samples);
        assert_eq!(host.counts().get("record"), Some(&2));
        assert_eq!(host.total_calls(), 2, "ids are kept");
        assert_eq!(
            host.samples(
                "openai_gateway_request_duration_milliseconds.key_id.demo.model.llama-3_1-8b.backend.backend-a"
            ),
            Some(vec![120, 120])
        );
        assert_eq!(
            host.samples(
                "openai_gateway_token_usage.key_id.demo.model.llama-3_1-8b.backend.backend-a.token_type.input"
            ),
            Some(vec![30, 30])
        );
    }

    #[test]
    fn without_a_key_label_keys_share_their_histograms() {
        let histograms = Histograms::default();
        let host = RecordingHost::default();
        let no_key = Subject {
            key_id: None,
            ..SUBJECT
        };
        histograms.record(&host, &no_key, &[(Series::TimeToFirstToken, 7)]);
        histograms.record(&host, &no_key, &[(Series::TimeToFirstToken, 9)]);
        assert_eq!(
            host.samples(
                "openai_gateway_time_to_first_token_milliseconds.model.llama-3_1-8b.backend.backend-a"
            ),
            Some(vec![7, 9])
        );
        assert_eq!(host.counts().get("define_histogram"), Some(&1));
    }

    #[test]
    fn a_failed_definition_is_retried_and_records_nothing_meanwhile() {
        let histograms = Histograms::default();
        let host = RecordingHost::default();
        *host.failing.borrow_mut() = Some(("define_histogram", crate::host::Status::BadArgument));
        histograms.record(&host, &SUBJECT, &[(Series::Duration, 1)]);
        assert_eq!(host.counts().get("record"), None);
        *host.failing.borrow_mut() = None;
        histograms.record(&host, &SUBJECT, &[(Series::Duration, 2)]);
        assert_eq!(host.all_samples().len(), 1);
        assert_eq!(host.all_samples()[0].1, 2);
    }

    #[test]
    fn the_bound_on_subjects_forgets_ids_not_samples() {
        let histograms = Histograms::default();
        let host = RecordingHost::default();
        let models: Vec<String> = (0..=SUBJECTS).map(|i| format!("m{i}")).collect();
        for model in &models {
            let subject = Subject { model, ..SUBJECT };
            histograms.record(&host, &subject, &[(Series::Duration, 5)]);
        }
        assert_eq!(host.all_samples().len(), models.len());
        assert!(histograms.by_subject.borrow().len() <= SUBJECTS);
    }
}
