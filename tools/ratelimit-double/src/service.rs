//! Shared state and the gRPC `envoy.service.ratelimit.v3.RateLimitService`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use serde_json::{json, Value};
use tonic::{Request, Response, Status};

use crate::limits::{evaluate, Counters, Descriptor, Limits, Outcome};

/// How many received requests `GET /requests` keeps.
pub const RECORD_CAPACITY: usize = 1000;

/// How the gRPC service answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Ok,
    /// Every call fails with UNAVAILABLE.
    Unavailable,
    /// Answer after this long.
    Slow(Duration),
}

pub struct Inner {
    pub limits: Limits,
    pub counters: Counters,
    pub mode: Mode,
    pub requests: VecDeque<Value>,
}

#[derive(Clone)]
pub struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    pub fn new(limits: Limits) -> Self {
        Shared(Arc::new(Mutex::new(Inner {
            limits,
            counters: Counters::default(),
            mode: Mode::Ok,
            requests: VecDeque::with_capacity(RECORD_CAPACITY),
        })))
    }

    /// The state; a panic elsewhere while holding it does not wedge the double.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn to_descriptors(req: &RateLimitRequest) -> Vec<Descriptor> {
    req.descriptors
        .iter()
        .map(|d| Descriptor {
            entries: d
                .entries
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect(),
            hits_addend: d.hits_addend.as_ref().map(|h| h.value),
            limit_override: d.limit.as_ref().map(|l| (l.requests_per_unit, l.unit)),
        })
        .collect()
}

/// The `GET /requests` form of a received request.
pub fn record_json(domain: &str, hits_addend: u32, descriptors: &[Descriptor]) -> Value {
    let descriptors: Vec<Value> = descriptors
        .iter()
        .map(|d| {
            json!({
                "entries": d.entries.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                "hits_addend": d.hits_addend,
            })
        })
        .collect();
    json!({"domain": domain, "hits_addend": hits_addend, "descriptors": descriptors})
}

fn to_status(outcome: Outcome) -> DescriptorStatus {
    match outcome {
        Outcome::NoLimit => DescriptorStatus {
            code: Code::Ok as i32,
            ..Default::default()
        },
        Outcome::Limited {
            over_limit,
            limit,
            remaining,
            reset_ms,
        } => DescriptorStatus {
            code: if over_limit {
                Code::OverLimit as i32
            } else {
                Code::Ok as i32
            },
            current_limit: Some(RateLimit {
                name: limit.name,
                requests_per_unit: limit.requests_per_unit,
                unit: limit.unit.to_proto(),
            }),
            limit_remaining: remaining,
            duration_until_reset: Some(PbDuration {
                seconds: i64::try_from(reset_ms / 1000).unwrap_or(i64::MAX),
                // < 1000 ms, so this fits.
                nanos: i32::try_from((reset_ms % 1000) * 1_000_000).unwrap_or(0),
            }),
            quota: None,
        },
    }
}

pub struct RateLimitDouble {
    pub shared: Shared,
}

#[tonic::async_trait]
impl RateLimitService for RateLimitDouble {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let req = request.into_inner();
        let descriptors = to_descriptors(&req);
        let mode = {
            let mut inner = self.shared.lock();
            if inner.requests.len() >= RECORD_CAPACITY {
                inner.requests.pop_front();
            }
            inner
                .requests
                .push_back(record_json(&req.domain, req.hits_addend, &descriptors));
            inner.mode
        };
        match mode {
            Mode::Ok => {}
            Mode::Unavailable => {
                return Err(Status::unavailable("ratelimit-double: mode unavailable"))
            }
            // If the caller gives up first, this future is dropped and nothing is counted.
            Mode::Slow(delay) => tokio::time::sleep(delay).await,
        }
        let outcomes = {
            let mut guard = self.shared.lock();
            let inner = &mut *guard;
            evaluate(
                &inner.limits,
                &mut inner.counters,
                &req.domain,
                req.hits_addend,
                &descriptors,
                now_ms(),
            )
        }
        .map_err(Status::unknown)?;
        let statuses: Vec<DescriptorStatus> = outcomes.into_iter().map(to_status).collect();
        let overall = if statuses.iter().any(|s| s.code == Code::OverLimit as i32) {
            Code::OverLimit
        } else {
            Code::Ok
        };
        Ok(Response::new(RateLimitResponse {
            overall_code: overall as i32,
            statuses,
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{Limit, Unit};

    #[test]
    fn status_carries_limit_and_millisecond_reset() {
        let s = to_status(Outcome::Limited {
            over_limit: true,
            limit: Limit {
                requests_per_unit: 3,
                unit: Unit::Minute,
                name: "requests".into(),
                shadow_mode: false,
            },
            remaining: 0,
            reset_ms: 39_750,
        });
        assert_eq!(s.code, Code::OverLimit as i32);
        let l = s.current_limit.unwrap();
        assert_eq!(
            (l.requests_per_unit, l.unit, l.name.as_str()),
            (3, 2, "requests")
        );
        let r = s.duration_until_reset.unwrap();
        assert_eq!((r.seconds, r.nanos), (39, 750_000_000));
        let s = to_status(Outcome::NoLimit);
        assert_eq!(s.code, Code::Ok as i32);
        assert!(s.current_limit.is_none() && s.duration_until_reset.is_none());
    }

    #[test]
    fn record_shape() {
        let d = Descriptor {
            entries: vec![("limit".into(), "tokens".into())],
            hits_addend: Some(12),
            limit_override: None,
        };
        let plain = Descriptor {
            entries: vec![],
            ..Default::default()
        };
        assert_eq!(
            record_json("dom", 0, &[d, plain]),
            json!({"domain": "dom", "hits_addend": 0, "descriptors": [
                {"entries": [["limit", "tokens"]], "hits_addend": 12},
                {"entries": [], "hits_addend": null}
            ]})
        );
    }
}
