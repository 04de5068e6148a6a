//! The root context's part of the health probes, for one Envoy worker: it
//! sends the probes the [`Prober`] asks for (`dispatch_http_call`), reads
//! their answers, and after every change sets the gateway's [`Serving`]
//! flags, the gauges and one log line.
//!
//! Gauges (Envoy stats, exported like the counters):
//! - `openai_gateway_backend_live.backend.<name>`: 1 when the backend is in
//!   service, 0 when the probes took it out;
//! - `openai_gateway_model_serving_backends.model.<id>`: how many of the
//!   model's backends serve it (0: it is not listed, and requests for it get
//!   a 503).
//!
//! Every worker probes on its own and sets the same gauges. A change is
//! logged once for the whole Envoy, never once per probe: the first worker
//! to see it records the new state in the VMs' shared data and logs it; a
//! worker that finds that state already recorded stays silent.
//!
//! [`Serving`]: crate::serving::Serving

use crate::catalog::ModelIndex;
use crate::config::Gateway;
use crate::health::{classify, wants_body, Change, Liveness, Prober};
use crate::host::{Body, HeaderMap, Host, Status};
use crate::metrics::{self, PREFIX};
use log::{info, warn};
use std::rc::Rc;
use std::time::Duration;

/// One route of one model, as the probes see it.
#[derive(Debug, Clone)]
struct Watch {
    model: ModelIndex,
    route: usize,
    /// The backend's index in the prober.
    backend: usize,
    /// The backend's name for the model.
    upstream: String,
}

#[derive(Debug)]
pub struct Monitor {
    prober: Prober,
    gateway: Rc<Gateway>,
    watches: Vec<Watch>,
    /// Gauge ids by backend index, then by model index (defined on the
    /// first tick).
    backend_gauges: Vec<Option<u32>>,
    model_gauges: Vec<Option<u32>>,
    gauges_defined: bool,
}

impl Monitor {
    /// The probes of the gateway's backends, for one worker: `seed` draws
    /// its jitter (give each worker its own), `now_ms` starts the schedule.
    /// `None` when no backend has a probe (nothing to do).
    pub fn new(gateway: Rc<Gateway>, seed: u64, now_ms: u64) -> Option<Self> {
        let backends = gateway.probed_backends();
        if backends.iter().all(|b| b.probe.is_none()) {
            return None;
        }
        let prober = Prober::new(backends, seed, now_ms);
        let mut watches = Vec::new();
        for (model_index, model) in gateway.catalog.models() {
            for (route_index, route) in model.routes().enumerate() {
                if let Some(backend) = prober.index(&route.backend) {
                    watches.push(Watch {
                        model: model_index,
                        route: route_index,
                        backend,
                        upstream: model.upstream_name(route).to_string(),
                    });
                }
            }
        }
        Some(Monitor {
            prober,
            watches,
            backend_gauges: Vec::new(),
            model_gauges: Vec::new(),
            gauges_defined: false,
            gateway,
        })
    }

    /// The timer: probes given up on, probes due.
    pub fn on_tick<H: Host>(&mut self, host: &H, now_ms: u64) {
        if !self.gauges_defined {
            self.define_gauges(host);
            self.publish(host);
        }
        let tick = self.prober.tick(now_ms);
        let mut changes = tick.changes;
        for probe in tick.probes {
            let mut headers: Vec<(&str, &str)> = probe.headers().to_vec();
            let credential = self
                .prober
                .name(probe.backend)
                .and_then(|name| self.gateway.backend_credentials.get(name));
            if let Some(credential) = credential {
                headers.push(("authorization", credential));
            }
            let timeout = Duration::from_millis(probe.timeout_ms);
            match host.dispatch(&probe.cluster, &headers, timeout) {
                Ok(token) => self.prober.dispatched(probe.backend, token),
                Err(status) => {
                    let error = format!("cluster `{}`: {status:?}", probe.cluster);
                    changes.extend(self.prober.dispatch_failed(probe.backend, now_ms, &error));
                }
            }
        }
        self.apply(host, changes);
    }

    /// The answer to the HTTP call `token` (`body_size` bytes of body). A
    /// call that is not a probe in flight is ignored unread.
    pub fn on_answer<H: Host>(&mut self, host: &H, token: u32, body_size: usize, now_ms: u64) {
        let Some(kind) = self.prober.probe_kind(token) else {
            return;
        };
        // No headers (Envoy's timeout, a connection failure): no status.
        let status = host
            .headers(HeaderMap::CallResponse)
            .ok()
            .and_then(|headers| headers.status());
        let body = if wants_body(kind, status, body_size) {
            host.body(Body::CallResponse, 0, body_size).ok().flatten()
        } else {
            None
        };
        let outcome = classify(kind, status, body_size, body.as_deref());
        let change = self.prober.answered(token, outcome, now_ms);
        self.apply(host, change.into_iter().collect());
    }

    /// Whether the probes have the backend in service.
    #[cfg(test)]
    pub fn is_live(&self, backend: &str) -> bool {
        self.prober
            .index(backend)
            .is_none_or(|index| self.prober.is_live(index))
    }

    /// Logs each change once, then brings the serving flags and gauges in
    /// line with the probes.
    fn apply<H: Host>(&mut self, host: &H, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        for change in &changes {
            if !is_news(host, change) {
                continue;
            }
            if change.is_loss() {
                warn!("openai-gateway: {change}");
            } else {
                info!("openai-gateway: {change}");
            }
        }
        for watch in &self.watches {
            let serving = self.prober.serves(watch.backend, &watch.upstream);
            self.gateway.serving.set(watch.model, watch.route, serving);
        }
        self.publish(host);
    }

    fn define_gauges<H: Host>(&mut self, host: &H) {
        self.gauges_defined = true;
        let mut index = 0;
        while let Some(name) = self.prober.name(index) {
            let stat = format!(
                "{PREFIX}_{}.backend.{}",
                metrics::BACKEND_LIVE,
                metrics::label(name)
            );
            self.backend_gauges.push(host.define_gauge(&stat).ok());
            index = index.saturating_add(1);
        }
        for (_, model) in self.gateway.catalog.models() {
            let stat = format!(
                "{PREFIX}_{}.model.{}",
                metrics::MODEL_SERVING_BACKENDS,
                metrics::label(&model.id)
            );
            self.model_gauges.push(host.define_gauge(&stat).ok());
        }
    }

    /// Sets every gauge to what the probes say now.
    fn publish<H: Host>(&self, host: &H) {
        for (backend, id) in self.backend_gauges.iter().enumerate() {
            if let Some(id) = id {
                let _ = host.set_gauge(*id, u64::from(self.prober.is_live(backend)));
            }
        }
        for ((index, model), id) in self.gateway.catalog.models().zip(&self.model_gauges) {
            if let Some(id) = id {
                let count = self.gateway.serving.count(index, model);
                let _ = host.set_gauge(*id, u64::try_from(count).unwrap_or(u64::MAX));
            }
        }
    }
}

/// Whether no worker has logged this change yet: records each state it
/// reaches (the backend's liveness, each name's listing) in the shared data,
/// and is news if any of them was not recorded so. A host without shared
/// data logs everything.
fn is_news<H: Host>(host: &H, change: &Change) -> bool {
    let mut states: Vec<(String, &[u8])> = Vec::new();
    let key = |what: &str| format!("{PREFIX}.health.{}.{what}", change.name);
    if let Some(liveness) = &change.liveness {
        let live: &[u8] = if matches!(liveness, Liveness::Up { .. }) {
            b"1"
        } else {
            b"0"
        };
        states.push((key("live"), live));
    }
    for name in &change.unlisted {
        states.push((key(&format!("listed.{name}")), b"0"));
    }
    for name in &change.relisted {
        states.push((key(&format!("listed.{name}")), b"1"));
    }
    let mut news = false;
    for (key, state) in states {
        news |= record_state(host, &key, state);
    }
    news
}

/// Sets shared `key` to `state` unless it is so already; whether this call
/// set it (a host error counts as set: better a line twice than never).
fn record_state<H: Host>(host: &H, key: &str, state: &[u8]) -> bool {
    for _ in 0..2 {
        let Ok((current, cas)) = host.shared(key) else {
            return true;
        };
        if current.as_deref() == Some(state) {
            return false;
        }
        match host.set_shared(key, state, cas) {
            Ok(()) => return true,
            Err(Status::CasMismatch) => continue,
            Err(_) => return true,
        }
    }
    true
}

#[cfg(test)]
mod tests;
