//! Backend liveness from health probes, for one Envoy worker.
//!
//! A [`Prober`] holds every backend's state. It does no I/O and reads no
//! clock: the adapter passes the time (`now_ms`, milliseconds of any clock)
//! and the host's answers in, and sends the probes it asks for:
//!
//! 1. on its timer, [`Prober::tick`]: log each [`Change`], send each
//!    [`ProbeRequest`] (`dispatch_http_call` with its headers and timeout),
//!    then report [`Prober::dispatched`] (the call's token) or
//!    [`Prober::dispatch_failed`]; wake again at [`Prober::next_wakeup`];
//! 2. on an HTTP call's answer: [`Prober::probe_kind`] (`None`: not a live
//!    probe, ignore it), [`wants_body`] to decide whether to read the body,
//!    [`classify`], then [`Prober::answered`] and log the [`Change`] if any.
//!
//! Rules:
//! - A backend without a probe is always live. A probed backend is live
//!   until `unhealthy_threshold` probes in a row fail (so the gateway serves
//!   at start-up, and a backend down from the start leaves service after
//!   that many probes); out of service, it is back after `healthy_threshold`
//!   successes in a row. Each result resets the opposite count, so
//!   alternating results never flip a backend whose thresholds are above 1.
//! - At most one probe per backend is in flight. The first probe of each
//!   backend is sent at a random time in `[now, now + min(interval, 1 s))`;
//!   each next one `interval ± 10 %` after the previous answer. Every worker
//!   probes on its own (a backend gets one probe per worker per interval);
//!   the jitter, drawn from each worker's seed, keeps them out of step.
//! - A probe whose answer has not arrived `timeout_ms` +
//!   [`EXPIRY_GRACE_MS`] after it was sent fails (a lost callback cannot
//!   wedge a backend); an answer after that is ignored.
//! - A `/v1/models` probe's listing decides which of the backend's upstream
//!   model names it serves; a change of that set is reported once, as is a
//!   change of liveness: a [`Change`] is one log line, never one per probe.
//! - If the clock goes back, waits longer than the configured ones are cut
//!   short (a probe falls due at once, a deadline restarts).

mod answer;
mod change;
mod probe_config;

pub use answer::{
    classify, wants_body, FailureReason, Outcome, ProbeKind, MAX_LISTED_MODELS,
    MAX_MODELS_BODY_BYTES, MODELS_PATH,
};
pub use change::{Change, Liveness};
pub use probe_config::{
    ProbeConfig, DEFAULT_HEALTHY_THRESHOLD, DEFAULT_INTERVAL_MS, DEFAULT_TIMEOUT_MS,
    DEFAULT_UNHEALTHY_THRESHOLD, INTERVAL_MS, MAX_TEXT_BYTES, THRESHOLD, TIMEOUT_MS,
};

/// How long past its timeout an unanswered probe is waited for before it
/// counts as failed (Envoy's own timeout normally answers first).
pub const EXPIRY_GRACE_MS: u64 = 1_000;
/// The first probes are spread over at most this many milliseconds.
pub const FIRST_PROBE_SPREAD_MS: u64 = 1_000;

/// One backend as the prober needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The backend's name (the models' `backend`).
    pub name: String,
    /// Its probe; `None`: never probed, always live.
    pub probe: Option<ProbeConfig>,
    /// The upstream names of the catalog models routed to it: what a models
    /// probe's listing is checked against (duplicates are ignored).
    pub upstream_models: Vec<String>,
}

/// A probe to send now: `GET path` to `cluster` with [`ProbeRequest::headers`],
/// plus the backend's `Authorization` when it has one (the backend's
/// credential is configuration the prober does not hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    /// The backend's index (its place in [`Prober::new`]'s list).
    pub backend: usize,
    /// The Envoy cluster to call (`dispatch_http_call`'s upstream).
    pub cluster: String,
    /// The `:authority` header.
    pub authority: String,
    /// The `:path` header.
    pub path: String,
    /// The call's timeout for `dispatch_http_call`.
    pub timeout_ms: u64,
}

impl ProbeRequest {
    /// The request's headers: `:method`, `:path` and `:authority`.
    pub fn headers(&self) -> [(&str, &str); 3] {
        [
            (":method", "GET"),
            (":path", &self.path),
            (":authority", &self.authority),
        ]
    }
}

/// What a timer tick asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    /// Changes from probes that were given up on (to log).
    pub changes: Vec<Change>,
    /// Probes to send now, each now in flight.
    pub probes: Vec<ProbeRequest>,
}

/// Every backend's liveness and probe schedule, for one worker.
#[derive(Debug, Clone)]
pub struct Prober {
    backends: Vec<State>,
    rng: SplitMix64,
}

#[derive(Debug, Clone)]
struct State {
    name: String,
    probe: Option<Probe>,
    live: bool,
    failures: u32,
    successes: u32,
    /// The backend's upstream model names, sorted, unique.
    watched: Vec<Watched>,
    /// Whether a models list has been read (before that, every name counts
    /// as listed).
    listing_known: bool,
}

#[derive(Debug, Clone)]
struct Watched {
    name: String,
    listed: bool,
}

/// A backend's probe settings (within the checked ranges) and schedule.
#[derive(Debug, Clone)]
struct Probe {
    cluster: String,
    authority: String,
    path: String,
    kind: ProbeKind,
    interval_ms: u64,
    timeout_ms: u64,
    unhealthy_threshold: u32,
    healthy_threshold: u32,
    /// When the next probe is due (while none is in flight).
    next_at: u64,
    in_flight: Option<InFlight>,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// The host's call id, once [`Prober::dispatched`] gave it.
    token: Option<u32>,
    /// When the probe is given up on.
    deadline: u64,
}

impl Probe {
    fn new(config: &ProbeConfig, backend: &str, rng: &mut SplitMix64, now_ms: u64) -> Self {
        let interval_ms = config
            .interval_ms
            .clamp(*INTERVAL_MS.start(), *INTERVAL_MS.end());
        let first_delay = rng.below(interval_ms.min(FIRST_PROBE_SPREAD_MS));
        Probe {
            cluster: config.cluster_or(backend).to_string(),
            authority: config.authority_or(backend).to_string(),
            path: config.path.clone(),
            kind: ProbeKind::of_path(&config.path),
            interval_ms,
            timeout_ms: config
                .timeout_ms
                .clamp(*TIMEOUT_MS.start(), *TIMEOUT_MS.end()),
            unhealthy_threshold: config.unhealthy_threshold.max(1),
            healthy_threshold: config.healthy_threshold.max(1),
            next_at: now_ms.saturating_add(first_delay),
            in_flight: None,
        }
    }

    /// How long an unanswered probe is waited for.
    fn patience(&self) -> u64 {
        self.timeout_ms.saturating_add(EXPIRY_GRACE_MS)
    }

    /// Schedules the next probe `interval ± 10 %` after `now_ms`.
    fn schedule_next(&mut self, rng: &mut SplitMix64, now_ms: u64) {
        let jitter = jitter_of(self.interval_ms);
        let wait = self
            .interval_ms
            .saturating_sub(jitter)
            .saturating_add(rng.below(jitter.saturating_mul(2).saturating_add(1)));
        self.next_at = now_ms.saturating_add(wait);
    }

    /// The longest wait [`Probe::schedule_next`] sets.
    fn longest_wait(&self) -> u64 {
        self.interval_ms.saturating_add(jitter_of(self.interval_ms))
    }

    /// When something is next due for this probe.
    fn wakeup(&self) -> u64 {
        self.in_flight.map_or(self.next_at, |f| f.deadline)
    }
}

/// How far a wait moves either way: 10 % of the interval.
fn jitter_of(interval_ms: u64) -> u64 {
    interval_ms.checked_div(10).unwrap_or(0)
}

impl State {
    fn new(backend: Backend, rng: &mut SplitMix64, now_ms: u64) -> Self {
        let probe = backend
            .probe
            .as_ref()
            .map(|config| Probe::new(config, &backend.name, rng, now_ms));
        let mut names = backend.upstream_models;
        names.sort_unstable();
        names.dedup();
        State {
            name: backend.name,
            probe,
            live: true,
            failures: 0,
            successes: 0,
            watched: names
                .into_iter()
                .map(|name| Watched { name, listed: true })
                .collect(),
            listing_known: false,
        }
    }

    fn in_flight_token(&self) -> Option<u32> {
        self.probe
            .as_ref()
            .and_then(|p| p.in_flight)
            .and_then(|f| f.token)
    }
}

impl Prober {
    /// The prober for `backends` (their indexes are their places in this
    /// list), its jitter drawn from `seed` (give each worker its own), the
    /// first probes due within [`FIRST_PROBE_SPREAD_MS`] of `now_ms`. Probe
    /// settings are expected checked ([`ProbeConfig::check`]); values outside
    /// the allowed ranges are clamped into them.
    pub fn new(backends: Vec<Backend>, seed: u64, now_ms: u64) -> Self {
        let mut rng = SplitMix64(seed);
        let backends = backends
            .into_iter()
            .map(|b| State::new(b, &mut rng, now_ms))
            .collect();
        Prober { backends, rng }
    }

    /// Gives up on probes past their deadline (each a failure) and returns
    /// the probes due now, each marked in flight.
    pub fn tick(&mut self, now_ms: u64) -> Tick {
        let mut tick = Tick::default();
        for index in 0..self.backends.len() {
            if let Some(change) = self.expire(index, now_ms) {
                tick.changes.push(change);
            }
            if let Some(request) = self.send_if_due(index, now_ms) {
                tick.probes.push(request);
            }
        }
        tick
    }

    /// Fails backend `index`'s probe if its deadline has passed (restarting
    /// a deadline the clock went back from).
    fn expire(&mut self, index: usize, now_ms: u64) -> Option<Change> {
        let probe = self.backends.get_mut(index)?.probe.as_mut()?;
        let patience = probe.patience();
        let in_flight = probe.in_flight.as_mut()?;
        if in_flight.deadline > now_ms.saturating_add(patience) {
            in_flight.deadline = now_ms.saturating_add(patience);
        }
        if now_ms < in_flight.deadline {
            return None;
        }
        let reason = FailureReason::TimedOut { after_ms: patience };
        self.finish(index, Outcome::Failure(reason), now_ms)
    }

    /// Backend `index`'s probe, if one is due and none is in flight.
    fn send_if_due(&mut self, index: usize, now_ms: u64) -> Option<ProbeRequest> {
        let probe = self.backends.get_mut(index)?.probe.as_mut()?;
        if probe.in_flight.is_some() {
            return None;
        }
        if probe.next_at > now_ms.saturating_add(probe.longest_wait()) {
            probe.next_at = now_ms;
        }
        if probe.next_at > now_ms {
            return None;
        }
        probe.in_flight = Some(InFlight {
            token: None,
            deadline: now_ms.saturating_add(probe.patience()),
        });
        Some(ProbeRequest {
            backend: index,
            cluster: probe.cluster.clone(),
            authority: probe.authority.clone(),
            path: probe.path.clone(),
            timeout_ms: probe.timeout_ms,
        })
    }

    /// Records the host's call id for backend `backend`'s probe in flight.
    /// Another probe still holding the same id is stale (the host reuses ids
    /// only of finished calls): it forgets the id and will time out.
    pub fn dispatched(&mut self, backend: usize, token: u32) {
        for state in &mut self.backends {
            if let Some(in_flight) = state.probe.as_mut().and_then(|p| p.in_flight.as_mut()) {
                if in_flight.token == Some(token) {
                    in_flight.token = None;
                }
            }
        }
        let in_flight = self
            .backends
            .get_mut(backend)
            .and_then(|s| s.probe.as_mut())
            .and_then(|p| p.in_flight.as_mut());
        if let Some(in_flight) = in_flight {
            in_flight.token = Some(token);
        }
    }

    /// The host refused to send backend `backend`'s probe: a failure.
    /// `None` also when that backend has no probe in flight.
    pub fn dispatch_failed(&mut self, backend: usize, now_ms: u64, error: &str) -> Option<Change> {
        let state = self.backends.get(backend)?;
        state.probe.as_ref()?.in_flight?;
        let reason = FailureReason::DispatchFailed(error.to_string());
        self.finish(backend, Outcome::Failure(reason), now_ms)
    }

    /// The kind of the probe in flight under the host's call id `token`;
    /// `None` when no probe waits for it (an answer given up on, or not a
    /// probe): ignore that answer.
    pub fn probe_kind(&self, token: u32) -> Option<ProbeKind> {
        let state = self
            .backends
            .iter()
            .find(|s| s.in_flight_token() == Some(token))?;
        state.probe.as_ref().map(|p| p.kind)
    }

    /// The answer to the probe in flight under `token`: updates the
    /// backend, schedules its next probe (`interval ± 10 %` from now) and
    /// returns the change to log, if any. An unknown or stale token: `None`,
    /// nothing changes.
    pub fn answered(&mut self, token: u32, outcome: Outcome, now_ms: u64) -> Option<Change> {
        let index = self
            .backends
            .iter()
            .position(|s| s.in_flight_token() == Some(token))?;
        self.finish(index, outcome, now_ms)
    }

    /// Ends backend `index`'s probe with `outcome`.
    fn finish(&mut self, index: usize, outcome: Outcome, now_ms: u64) -> Option<Change> {
        let Prober { backends, rng } = self;
        let state = backends.get_mut(index)?;
        let probe = state.probe.as_mut()?;
        probe.in_flight = None;
        probe.schedule_next(rng, now_ms);
        let (unhealthy_threshold, healthy_threshold) =
            (probe.unhealthy_threshold, probe.healthy_threshold);
        let mut change = Change {
            backend: index,
            name: state.name.clone(),
            liveness: None,
            unlisted: Vec::new(),
            relisted: Vec::new(),
        };
        match outcome {
            Outcome::Success { listed } => {
                state.failures = 0;
                state.successes = state.successes.saturating_add(1);
                if !state.live && state.successes >= healthy_threshold {
                    state.live = true;
                    change.liveness = Some(Liveness::Up {
                        successes: state.successes,
                    });
                }
                if let Some(listed) = listed {
                    (change.unlisted, change.relisted) = state.update_listing(&listed);
                }
            }
            Outcome::Failure(reason) => {
                state.successes = 0;
                state.failures = state.failures.saturating_add(1);
                if state.live && state.failures >= unhealthy_threshold {
                    state.live = false;
                    change.liveness = Some(Liveness::Down {
                        failures: state.failures,
                        last: reason,
                    });
                }
            }
        }
        let changed =
            change.liveness.is_some() || !change.unlisted.is_empty() || !change.relisted.is_empty();
        changed.then_some(change)
    }

    /// Whether backend `backend` is in service (an index the prober does not
    /// know is an unprobed backend: live).
    pub fn is_live(&self, backend: usize) -> bool {
        self.backends.get(backend).is_none_or(|s| s.live)
    }

    /// Whether backend `backend` serves the model it knows as
    /// `upstream_model`: it is live, and it listed that name in its last
    /// models list (before the first one, every name counts as listed). Once
    /// a list is known, a name not given in [`Backend::upstream_models`]
    /// counts as not listed: only those names are remembered.
    pub fn serves(&self, backend: usize, upstream_model: &str) -> bool {
        let Some(state) = self.backends.get(backend) else {
            return true;
        };
        state.live
            && (!state.listing_known
                || state
                    .watched
                    .binary_search_by(|w| w.name.as_str().cmp(upstream_model))
                    .ok()
                    .and_then(|i| state.watched.get(i))
                    .is_some_and(|w| w.listed))
    }

    /// The earliest time [`Prober::tick`] has something to do (a probe due
    /// or given up on); `None` when no backend is probed.
    pub fn next_wakeup(&self) -> Option<u64> {
        self.backends
            .iter()
            .filter_map(|s| s.probe.as_ref().map(Probe::wakeup))
            .min()
    }

    /// The index of the backend named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.backends.iter().position(|s| s.name == name)
    }

    /// The name of backend `backend`.
    pub fn name(&self, backend: usize) -> Option<&str> {
        self.backends.get(backend).map(|s| s.name.as_str())
    }
}

impl State {
    /// Marks which watched names `listed` has; returns the names that
    /// stopped and started counting as listed.
    fn update_listing(&mut self, listed: &[String]) -> (Vec<String>, Vec<String>) {
        let mut seen = vec![false; self.watched.len()];
        for id in listed {
            if let Ok(i) = self.watched.binary_search_by(|w| w.name.cmp(id)) {
                if let Some(flag) = seen.get_mut(i) {
                    *flag = true;
                }
            }
        }
        let (mut unlisted, mut relisted) = (Vec::new(), Vec::new());
        for (watched, now_listed) in self.watched.iter_mut().zip(seen) {
            let was_listed = !self.listing_known || watched.listed;
            if was_listed && !now_listed {
                unlisted.push(watched.name.clone());
            } else if !was_listed && now_listed {
                relisted.push(watched.name.clone());
            }
            watched.listed = now_listed;
        }
        self.listing_known = true;
        (unlisted, relisted)
    }
}

/// A small deterministic generator (splitmix64) for the jitter.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ z.wrapping_shr(30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ z.wrapping_shr(27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ z.wrapping_shr(31)
    }

    /// A number in `[0, n)` (`0` when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next().checked_rem(n).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
