//! The host interface: everything an exchange asks of Envoy, as a small
//! trait. The adapter crate (`filter/`) implements it with
//! `proxy_wasm::hostcalls`; tests implement it with a recording host
//! (`crate::exchange::recording`) that answers from memory and counts every
//! call. This crate never depends on `proxy-wasm`: the build keeps the
//! decisions apart from the host.
//!
//! Every method is one host call, so the calls an exchange makes (the
//! filter's main cost: each one that moves data re-enters the VM) are exactly
//! the calls made through this trait.

use crate::headers::Headers;
use std::fmt;

/// A header map of the exchange (or, for the root context, of the answer
/// to an HTTP call it made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderMap {
    Request,
    Response,
    CallResponse,
}

/// A body buffer of the exchange (or of an HTTP call's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Body {
    Request,
    Response,
    CallResponse,
}

/// Why the host refused a call (proxy-wasm's status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    NotFound,
    BadArgument,
    SerializationFailure,
    ParseFailure,
    Empty,
    CasMismatch,
    InternalFailure,
    /// A status this interface does not know.
    Other(u32),
}

/// The host call that failed, for the one log line that reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    ReadHeaders(HeaderMap),
    ReadHeader(HeaderMap),
    SetHeader(HeaderMap, String),
    RemoveHeader(HeaderMap, String),
    ReadBody(Body),
    ReplaceBody(Body),
    ReadProperty(&'static str),
    SetProperty(&'static str),
    SendReply,
    Foreign(&'static str),
    DefineMetric,
    IncrementMetric(u32),
    SetGauge(u32),
    RecordHistogram(u32),
    /// An HTTP call to this cluster.
    Dispatch(String),
    ReadClock,
    SharedData(String),
}

/// A host call that failed: what was asked, and the host's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    pub call: Call,
    pub status: Status,
}

impl HostError {
    pub fn new(call: Call, status: Status) -> Self {
        HostError { call, status }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map = |m: &HeaderMap| match m {
            HeaderMap::Request => "request",
            HeaderMap::Response => "response",
            HeaderMap::CallResponse => "HTTP call's response",
        };
        let body = |b: &Body| match b {
            Body::Request => "request",
            Body::Response => "response",
            Body::CallResponse => "HTTP call's response",
        };
        match &self.call {
            Call::ReadHeaders(m) => write!(f, "cannot read the {} headers", map(m)),
            Call::ReadHeader(m) => write!(f, "cannot read a {} header", map(m)),
            Call::SetHeader(m, name) => write!(f, "cannot set {} header {name}", map(m)),
            Call::RemoveHeader(m, name) => write!(f, "cannot remove {} header {name}", map(m)),
            Call::ReadBody(b) => write!(f, "cannot read the {} body", body(b)),
            Call::ReplaceBody(b) => write!(f, "cannot replace the {} body", body(b)),
            Call::ReadProperty(name) => write!(f, "cannot read property {name}"),
            Call::SetProperty(name) => write!(f, "cannot set property {name}"),
            Call::SendReply => f.write_str("cannot send the local reply"),
            Call::Foreign(name) => write!(f, "cannot call foreign function {name}"),
            Call::DefineMetric => f.write_str("cannot define a metric"),
            Call::IncrementMetric(id) => write!(f, "cannot count metric {id}"),
            Call::SetGauge(id) => write!(f, "cannot set gauge {id}"),
            Call::RecordHistogram(id) => write!(f, "cannot record in histogram {id}"),
            Call::Dispatch(cluster) => write!(f, "cannot call cluster {cluster}"),
            Call::ReadClock => f.write_str("cannot read the clock"),
            Call::SharedData(key) => write!(f, "cannot use shared data {key}"),
        }?;
        write!(f, " ({:?})", self.status)
    }
}

impl std::error::Error for HostError {}

/// What the exchange asks of the host. Each method is one host call; a
/// refusal is the host's [`Status`].
pub trait Host {
    /// All headers of a map, names lower-case, values raw.
    fn headers(&self, map: HeaderMap) -> Result<Headers, Status>;
    /// One header's value.
    fn header(&self, map: HeaderMap, name: &str) -> Result<Option<Vec<u8>>, Status>;
    /// Sets (replaces) a header, or removes it with `None`.
    fn set_header(&self, map: HeaderMap, name: &str, value: Option<&str>) -> Result<(), Status>;
    /// `size` bytes of a body from `start` (None: no body).
    fn body(&self, which: Body, start: usize, size: usize) -> Result<Option<Vec<u8>>, Status>;
    /// Replaces `size` bytes of a body from `start` with `bytes`.
    fn set_body(&self, which: Body, start: usize, size: usize, bytes: &[u8]) -> Result<(), Status>;
    /// A property of the stream (for example `response.code_details`).
    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, Status>;
    /// Sets a filter-state property (Envoy stores it under `wasm.`).
    fn set_property(&self, path: &[&str], value: &[u8]) -> Result<(), Status>;
    /// Answers the request locally; nothing more reaches a backend.
    fn send_reply(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), Status>;
    /// One of Envoy's foreign functions (`clear_route_cache`, `set_envoy_filter_state`).
    fn call_foreign(&self, name: &str, args: Option<&[u8]>) -> Result<Option<Vec<u8>>, Status>;
    /// Defines a counter, returning its id.
    fn define_counter(&self, name: &str) -> Result<u32, Status>;
    /// Adds `amount` to a counter.
    fn increment(&self, id: u32, amount: i64) -> Result<(), Status>;
    /// Defines a gauge, returning its id.
    fn define_gauge(&self, name: &str) -> Result<u32, Status>;
    /// Sets a gauge.
    fn set_gauge(&self, id: u32, value: u64) -> Result<(), Status>;
    /// Defines a histogram (Envoy computes its buckets and quantiles),
    /// returning its id.
    fn define_histogram(&self, name: &str) -> Result<u32, Status>;
    /// Records one sample in a histogram.
    fn record(&self, id: u32, value: u64) -> Result<(), Status>;
    /// Sends `GET` (the `headers` name method, path and authority) to an
    /// Envoy cluster, answered later by the root context's call-response
    /// callback with the returned token. Root context only.
    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout: std::time::Duration,
    ) -> Result<u32, Status>;
    /// The host's wall clock, in nanoseconds since the Unix epoch.
    fn now_ns(&self) -> Result<u64, Status>;
    /// A value the plugin's VMs share (every worker's), with its version
    /// for [`Host::set_shared`]; `None` when it was never set.
    fn shared(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), Status>;
    /// Sets a shared value if its version is still `cas` (`None`: whatever
    /// it is); [`Status::CasMismatch`] when another VM set it first.
    fn set_shared(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status>;
}
