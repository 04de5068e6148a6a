//! What the mock keeps between requests: the recorded requests, the
//! stateful objects (stored responses, deferred completions, video jobs), the
//! model ids `GET /v1/models` lists and the probe mode.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use hyper::header::HeaderValue;
use serde_json::Value;

/// How many recorded requests are kept.
pub const RECORD_CAPACITY: usize = 256;
/// How many objects of each stateful kind (stored responses, deferred
/// completions, video jobs) are kept; the oldest is dropped beyond that.
pub const STORE_CAPACITY: usize = 10_000;

/// One request as the backend received it (see `GET /__mock/requests`).
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Objects by id, in insertion order, at most `capacity` of them (inserting
/// beyond that drops the oldest).
pub struct Store<V> {
    capacity: usize,
    seq: u64,
    map: HashMap<String, (u64, V)>,
    order: BTreeMap<u64, String>,
}

impl<V> Store<V> {
    pub fn new(capacity: usize) -> Self {
        Store {
            capacity: capacity.max(1),
            seq: 0,
            map: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    pub fn insert(&mut self, id: String, v: V) {
        self.remove(&id);
        while self.map.len() >= self.capacity {
            match self.order.pop_first() {
                Some((_, oldest)) => {
                    self.map.remove(&oldest);
                }
                None => break,
            }
        }
        self.seq += 1;
        self.order.insert(self.seq, id.clone());
        self.map.insert(id, (self.seq, v));
    }

    pub fn get(&self, id: &str) -> Option<&V> {
        self.map.get(id).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        self.map.get_mut(id).map(|(_, v)| v)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.map.contains_key(id)
    }

    pub fn remove(&mut self, id: &str) -> Option<V> {
        let (seq, v) = self.map.remove(id)?;
        self.order.remove(&seq);
        Some(v)
    }
}

/// A deferred chat completion: the completion to hand out, and whether it
/// has been polled once already (the first poll answers 202).
pub struct Deferred {
    pub polled: bool,
    pub completion: Value,
}

/// A video job as created (status `queued`) and how often it was fetched.
pub struct VideoJob {
    pub polls: u64,
    pub job: Value,
}

/// How the probe paths (`GET /health`, `GET /v1/models`) answer; every
/// other endpoint ignores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeMode {
    /// 200 with the path's JSON document.
    Ok,
    /// Never answer (the connection stays open).
    Hang,
    /// 200, `application/json`, a body that is not JSON.
    Garbage,
    /// 503 with an OpenAI error envelope.
    Error,
    /// 200 with the path's JSON document padded past 4 MiB.
    Huge,
    /// As `Ok`, after 3 seconds.
    Slow,
}

impl ProbeMode {
    pub const ALL: [ProbeMode; 6] = [
        ProbeMode::Ok,
        ProbeMode::Hang,
        ProbeMode::Garbage,
        ProbeMode::Error,
        ProbeMode::Huge,
        ProbeMode::Slow,
    ];

    /// The mode's name, as `--probe-mode` and `/__mock/probe` spell it.
    pub fn name(self) -> &'static str {
        match self {
            ProbeMode::Ok => "ok",
            ProbeMode::Hang => "hang",
            ProbeMode::Garbage => "garbage",
            ProbeMode::Error => "error",
            ProbeMode::Huge => "huge",
            ProbeMode::Slow => "slow",
        }
    }
}

impl fmt::Display for ProbeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProbeMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "unknown probe mode {s:?}; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}

pub struct State {
    pub name: String,
    pub name_header: HeaderValue,
    ids: AtomicU64,
    recorded: Mutex<VecDeque<Recorded>>,
    models: Mutex<Vec<String>>,
    probe_mode: Mutex<ProbeMode>,
    pub responses: Mutex<Store<Value>>,
    pub deferred: Mutex<Store<Deferred>>,
    pub videos: Mutex<Store<VideoJob>>,
}

/// Lock a mutex, carrying on if a panicking thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    pub fn new(
        name: String,
        name_header: HeaderValue,
        models: Vec<String>,
        probe_mode: ProbeMode,
    ) -> Self {
        State {
            name,
            name_header,
            ids: AtomicU64::new(0),
            recorded: Mutex::new(VecDeque::with_capacity(RECORD_CAPACITY)),
            models: Mutex::new(models),
            probe_mode: Mutex::new(probe_mode),
            responses: Mutex::new(Store::new(STORE_CAPACITY)),
            deferred: Mutex::new(Store::new(STORE_CAPACITY)),
            videos: Mutex::new(Store::new(STORE_CAPACITY)),
        }
    }

    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn record(&self, r: Recorded) {
        let mut q = lock(&self.recorded);
        if q.len() >= RECORD_CAPACITY {
            q.pop_front();
        }
        q.push_back(r);
    }

    /// The recorded requests, oldest first, while the lock is held.
    pub fn recorded(&self) -> MutexGuard<'_, VecDeque<Recorded>> {
        lock(&self.recorded)
    }

    pub fn clear(&self) {
        lock(&self.recorded).clear();
    }

    /// The model ids `GET /v1/models` lists, in order.
    pub fn models(&self) -> Vec<String> {
        lock(&self.models).clone()
    }

    pub fn set_models(&self, models: Vec<String>) {
        *lock(&self.models) = models;
    }

    pub fn probe_mode(&self) -> ProbeMode {
        *lock(&self.probe_mode)
    }

    pub fn set_probe_mode(&self, mode: ProbeMode) {
        *lock(&self.probe_mode) = mode;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_drops_oldest_beyond_capacity() {
        let mut s = Store::new(3);
        for i in 0..3 {
            s.insert(format!("k{i}"), i);
        }
        assert_eq!(s.remove("k1"), Some(1));
        s.insert("k3".to_string(), 3);
        s.insert("k4".to_string(), 4);
        // k0 was the oldest left when k4 came in.
        assert!(!s.contains("k0"));
        assert_eq!(s.get("k2"), Some(&2));
        assert_eq!(s.get("k3"), Some(&3));
        assert_eq!(s.get("k4"), Some(&4));
        assert_eq!(s.map.len(), 3);
        assert_eq!(s.order.len(), 3);
        // Re-inserting a key moves it to the back.
        s.insert("k2".to_string(), 22);
        s.insert("k5".to_string(), 5);
        assert!(!s.contains("k3"));
        assert_eq!(s.get("k2"), Some(&22));
    }

    #[test]
    fn probe_modes_parse_by_name() {
        for (name, mode) in [
            ("ok", ProbeMode::Ok),
            ("hang", ProbeMode::Hang),
            ("garbage", ProbeMode::Garbage),
            ("error", ProbeMode::Error),
            ("huge", ProbeMode::Huge),
            ("slow", ProbeMode::Slow),
        ] {
            assert_eq!(name.parse::<ProbeMode>(), Ok(mode));
            assert_eq!(mode.to_string(), name);
        }
        for bad in ["", "OK", " ok", "timeout", "hang "] {
            let err = bad.parse::<ProbeMode>().err();
            assert_eq!(
                err,
                Some(format!(
                    "unknown probe mode {bad:?}; expected one of: ok, hang, garbage, error, huge, slow"
                ))
            );
        }
    }
}
