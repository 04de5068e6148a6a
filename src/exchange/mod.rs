//! One request/response exchange: the state a request carries from its
//! headers to its access-log line, and the host calls each stage makes.
//!
//! The adapter (`filter/`) calls one method per proxy-wasm callback and turns
//! the returned [`Flow`] into an `Action`; every decision is made here or in
//! [`crate::pipeline`], and every host call goes through [`Host`], so a test
//! drives a whole exchange through a recording host and counts its calls.

mod counters;
mod edits;
mod histograms;
#[cfg(test)]
pub mod recording;
mod response;
#[cfg(test)]
mod tests;

pub use counters::{Counters, FLUSH_EVERY_MS};
pub use response::{BodyStep, ResponseBody};

use crate::billing::{self, Ending, Settlement};
use crate::config::Gateway;
use crate::error::ApiError;
use crate::headers::Headers;
use crate::host::{Body, Call, HeaderMap, Host, HostError};
use crate::latency::{self, Marks};
use crate::metrics;
use crate::pipeline::{
    AfterBody, AfterHeaders, AfterResponseHeaders, HeaderEdits, PendingBody, Reply, RequestRecord,
};
use crate::usage::Usage;
use log::{debug, error, warn};
use std::rc::Rc;

/// What the adapter does after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Let the stream go on.
    Continue,
    /// Hold it (for the rest of the body, or after a local reply).
    Pause,
}

/// One request/response exchange.
pub struct Exchange {
    id: u32,
    gateway: Option<Rc<Gateway>>,
    counters: Rc<Counters>,
    key_id: Option<String>,
    /// The status the client received, and the error code of the gateway's own errors.
    status: u16,
    error_code: Option<&'static str>,
    /// The request as the response stage needs it.
    request: RequestRecord,
    /// Set while the headers are held for the body.
    pending: Option<PendingBody>,
    /// While the headers are held: the request headers as read, and the
    /// header stage's edits, applied with the body stage's in one pass.
    held_headers: Headers,
    held_edits: HeaderEdits,
    /// A header-stage answer that waits for the (small) body to arrive, so
    /// Envoy can keep the connection: answered before the body, it must close it.
    answer_after_body: Option<Reply>,
    /// The gateway has answered this request itself.
    replied: bool,
    response: ResponseBody,
    /// What the response reported, for accounting.
    usage: Option<Usage>,
    /// The backend answered (rather than Envoy, a limiter, or the gateway).
    from_backend: bool,
    /// The response body has ended (the client did not leave mid-way).
    response_complete: bool,
    /// The clock readings of a request that passed the header stage (none
    /// for refusals: they cost no clock call).
    marks: Option<Marks>,
}

/// The filter-state property that publishes an exchange's usage to Envoy's
/// access log, `%FILTER_STATE(wasm.openai_gateway_usage:PLAIN)%`, as
/// `prompt_tokens=12 completion_tokens=3 cached_tokens=0`. One property,
/// not one per count: each `set_property` costs Envoy a filter-state object.
pub const USAGE_PROPERTY: &str = "openai_gateway_usage";

/// The filter-state property holding the tokens an exchange owes the tokens
/// limit when it completes, a plain number for the `ratelimit` filter's
/// `apply_on_stream_done` rate limit:
/// `hits_addend: {format: "%FILTER_STATE(wasm.openai_gateway_settle_tokens:PLAIN)%"}`.
/// Set in `settle` and `reserve_then_settle` modes only (one host call).
pub const SETTLE_TOKENS_PROPERTY: &str = "openai_gateway_settle_tokens";

/// Like [`SETTLE_TOKENS_PROPERTY`], the spend (micro-units) an exchange of a
/// priced model owes the spend limit when it completes.
pub const SETTLE_SPEND_PROPERTY: &str = "openai_gateway_settle_spend";

impl Exchange {
    /// A new exchange. Without a gateway (an invalid configuration), every
    /// request is answered with an error.
    pub fn new(id: u32, gateway: Option<Rc<Gateway>>, counters: Rc<Counters>) -> Self {
        Exchange {
            id,
            gateway,
            counters,
            key_id: None,
            status: 0,
            error_code: None,
            request: RequestRecord::default(),
            pending: None,
            held_headers: Headers::default(),
            held_edits: HeaderEdits::default(),
            answer_after_body: None,
            replied: false,
            response: ResponseBody::default(),
            usage: None,
            from_backend: false,
            response_complete: false,
            marks: None,
        }
    }

    pub fn on_request_headers(&mut self, host: &impl Host, end_of_stream: bool) -> Flow {
        let Some(gateway) = self.gateway.clone() else {
            return self.fail(host, "the gateway has no valid configuration");
        };
        let headers = match host.headers(HeaderMap::Request) {
            Ok(headers) => headers,
            Err(status) => {
                return self.fail_call(host, Call::ReadHeaders(HeaderMap::Request), status)
            }
        };
        let outcome = gateway.on_request_headers(&headers, end_of_stream);
        let timed = matches!(
            outcome.next,
            AfterHeaders::ReadBody(_) | AfterHeaders::Route(_)
        );
        if timed && gateway.metrics.histograms {
            self.marks = self.now_ns(host).map(|arrived_ns| Marks {
                arrived_ns,
                ..Marks::default()
            });
        }
        self.request = outcome.request;
        self.key_id = outcome.key_id;
        if let AfterHeaders::ReadBody(pending) = outcome.next {
            // Nothing to tell the host yet: the edits wait for the body's.
            self.pending = Some(pending);
            self.held_headers = headers;
            self.held_edits = outcome.edits;
            return Flow::Pause;
        }
        if let Err(error) = apply(host, HeaderMap::Request, &headers, &[&outcome.edits]) {
            return self.fail(host, &error.to_string());
        }
        match outcome.next {
            AfterHeaders::Route(plan) => {
                self.request.plan = plan;
                self.clear_route_cache(host)
            }
            AfterHeaders::Reply(reply) if !end_of_stream && drains_quickly(&headers) => {
                self.answer_after_body = Some(reply);
                Flow::Pause
            }
            AfterHeaders::Reply(reply) => self.send(host, &reply),
            AfterHeaders::ReadBody(_) => Flow::Pause,
        }
    }

    pub fn on_request_body(
        &mut self,
        host: &impl Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if self.answer_after_body.is_some() {
            return self.answer_once_read(host, body_size, end_of_stream);
        }
        if self.pending.is_none() || self.replied {
            return Flow::Continue;
        }
        if !end_of_stream {
            // Buffer until the whole body is there, unless it is already too large.
            if let Some(reply) = self
                .gateway
                .as_ref()
                .and_then(|g| g.on_partial_body(body_size))
            {
                return self.send(host, &reply);
            }
            return Flow::Pause;
        }
        self.decide_body(host, body_size)
    }

    /// With trailers the body never ends with `end_of_stream`: decide here.
    pub fn on_request_trailers(&mut self, host: &impl Host) -> Flow {
        if self.answer_after_body.is_some() {
            return self.answer_once_read(host, 0, true);
        }
        if self.pending.is_none() || self.replied {
            return Flow::Continue;
        }
        let size = match host.body(Body::Request, 0, usize::MAX) {
            Ok(body) => body.map_or(0, |b| b.len()),
            Err(status) => return self.fail_call(host, Call::ReadBody(Body::Request), status),
        };
        self.decide_body(host, size)
    }

    /// The header stage's answer, once the body it waited for has arrived
    /// (or has grown past what it waits for).
    fn answer_once_read(&mut self, host: &impl Host, received: usize, end_of_stream: bool) -> Flow {
        let grown = u64::try_from(received).map_or(true, |r| r > ANSWER_AFTER_BODY_BYTES);
        if !end_of_stream && !grown {
            return Flow::Pause;
        }
        match self.answer_after_body.take() {
            Some(reply) => self.send(host, &reply),
            None => Flow::Continue,
        }
    }

    pub fn on_response_headers(&mut self, host: &impl Host) -> Flow {
        if self.replied {
            return Flow::Continue;
        }
        let Some(gateway) = self.gateway.clone() else {
            return Flow::Continue;
        };
        let headers = match host.headers(HeaderMap::Response) {
            Ok(headers) => headers,
            Err(status) => {
                let error = HostError::new(Call::ReadHeaders(HeaderMap::Response), status);
                warn!("[{}] {error}", self.id);
                return Flow::Continue;
            }
        };
        let status = headers.status().unwrap_or(0);
        let details = self.code_details(host, status);
        self.status = status;
        match gateway.on_response_headers(status, &details, &self.request, &headers) {
            AfterResponseHeaders::Reply(reply) => {
                debug!(
                    "[{}] rewriting Envoy's local reply {status} ({details})",
                    self.id
                );
                self.send(host, &reply)
            }
            AfterResponseHeaders::Edit { mut edits, body } => {
                self.from_backend = details.is_empty() || details == "via_upstream";
                edits.set.extend(self.request.plan.headers.iter().cloned());
                self.response = ResponseBody::new(body);
                if let Err(error) = apply(host, HeaderMap::Response, &headers, &[&edits]) {
                    warn!("[{}] {error}", self.id);
                }
                Flow::Continue
            }
        }
    }

    /// Envoy's `response.code_details`. Only error statuses can be Envoy's
    /// own replies: the host call (a round trip into the VM to allocate the
    /// answer) is skipped for the rest.
    fn code_details(&self, host: &impl Host, status: u16) -> String {
        if status < 400 {
            return String::new();
        }
        match host.property(&["response", "code_details"]) {
            Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(None) => String::new(),
            Err(status) => {
                // Without the details an Envoy reply passes as the backend's.
                let error = HostError::new(Call::ReadProperty("response.code_details"), status);
                warn!("[{}] {error}", self.id);
                String::new()
            }
        }
    }

    /// Adjusts a JSON response (whole) or a stream (event by event, holding
    /// back only an unfinished event), recording the usage it reports.
    pub fn on_response_body(
        &mut self,
        host: &impl Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if self.replied {
            return Flow::Continue;
        }
        self.response_complete |= end_of_stream;
        match self.response.before_read(end_of_stream) {
            BodyStep::Pass => return Flow::Continue,
            BodyStep::Wait => return Flow::Pause,
            BodyStep::Read => {}
        }
        let body = match host.body(Body::Response, 0, body_size) {
            Ok(body) => body.unwrap_or_default(),
            Err(status) => {
                warn!(
                    "[{}] {}",
                    self.id,
                    HostError::new(Call::ReadBody(Body::Response), status)
                );
                return Flow::Continue;
            }
        };
        let adjusted = self.response.adjust(
            &body,
            end_of_stream,
            self.gateway.as_deref(),
            &mut self.request.plan,
        );
        for usage in adjusted.usage {
            self.record_usage(host, usage);
        }
        if adjusted.content && self.marks.is_some() {
            if let (Some(now), Some(marks)) = (self.now_ns(host), self.marks.as_mut()) {
                marks.content_at(now);
            }
        }
        if adjusted.ended_early {
            // The backend ended the stream early: the stream says so, as
            // OpenAI's does, instead of a silent cut.
            warn!("[{}] the backend ended a stream without [DONE]", self.id);
        }
        if let Some(bytes) = adjusted.replacement {
            if let Err(status) = host.set_body(Body::Response, 0, body_size, &bytes) {
                warn!(
                    "[{}] {}",
                    self.id,
                    HostError::new(Call::ReplaceBody(Body::Response), status)
                );
            }
        }
        Flow::Continue
    }

    /// Counts the finished exchange and says what it owes the tokens limit.
    pub fn on_log(&mut self, host: &impl Host) {
        let Some(gateway) = self.gateway.clone() else {
            return;
        };
        self.settle(host, gateway.token_limits.settlement);
        let outcome = metrics::Outcome {
            key_id: self.key_id.as_deref(),
            model: self.request.plan.model.as_deref(),
            status: self.status,
            error_code: self.error_code,
            usage: self.usage,
            spend: self.spend(),
            without_key: !gateway.metrics.per_key,
        };
        self.counters.record(host, &outcome);
        self.observe(host, gateway.metrics.per_key);
    }

    /// Records the latency and usage of a request a backend answered in the
    /// histograms of its key, model and backend: one clock read and one
    /// host call a sample.
    fn observe(&self, host: &impl Host, per_key: bool) {
        let plan = &self.request.plan;
        let (true, Some(marks), Some(model), Some(backend)) = (
            self.from_backend,
            self.marks.as_ref(),
            plan.model.as_deref(),
            plan.backend.as_deref(),
        ) else {
            return;
        };
        let Some(end) = self.now_ns(host) else {
            return;
        };
        let usage = billing::believable(self.usage.as_ref());
        let samples = latency::samples(marks, end, usage.map(|u| u.completion_tokens));
        let subject = metrics::Subject {
            key_id: per_key.then(|| self.key_id.as_deref().unwrap_or_default()),
            model,
            backend,
        };
        self.counters
            .observe(host, &subject, &metrics::observations(&samples, usage));
    }

    /// The host's clock; None (said at debug level) when it cannot be read.
    fn now_ns(&self, host: &impl Host) -> Option<u64> {
        host.now_ns()
            .map_err(|status| debug!("[{}] {}", self.id, HostError::new(Call::ReadClock, status)))
            .ok()
    }

    /// What the usage the response reported cost, for a priced model.
    fn spend(&self) -> Option<u64> {
        let price = self.request.plan.price?;
        Some(price.spend(billing::believable(self.usage.as_ref())?))
    }

    /// Publishes the tokens the exchange owes the tokens limit now that it
    /// is complete (see [`SETTLE_TOKENS_PROPERTY`]): only for a request that
    /// was forwarded (the limiters saw it), and only when settling.
    fn settle(&self, host: &impl Host, mode: Settlement) {
        let plan = &self.request.plan;
        if mode == Settlement::Reserve || plan.backend.is_none() {
            return;
        }
        let ending = if self.from_backend && (200..300).contains(&self.status) {
            let used = billing::believable(self.usage.as_ref())
                .map(|u| u.prompt_tokens.saturating_add(u.completion_tokens));
            if used.is_none() && self.response_complete && plan.reports_usage {
                self.warn_usage(plan.backend.as_deref().unwrap_or_default());
            }
            Ending::Served(used)
        } else {
            Ending::Unserved
        };
        let due = billing::at_completion(mode, plan.token_cost, plan.estimate, ending);
        self.publish(host, SETTLE_TOKENS_PROPERTY, due);
        if plan.price.is_some() {
            // The same ending, in money: what the reported usage cost.
            let spent = match ending {
                Ending::Served(Some(_)) => Ending::Served(self.spend()),
                other => other,
            };
            let due = billing::at_completion(mode, plan.spend_cost, plan.spend_estimate, spent);
            self.publish(host, SETTLE_SPEND_PROPERTY, due);
        }
    }

    /// Sets a numeric filter-state property (one host call).
    fn publish(&self, host: &impl Host, property: &'static str, value: u64) {
        if let Err(status) = host.set_property(&[property], value.to_string().as_bytes()) {
            let error = HostError::new(Call::SetProperty(property), status);
            warn!("[{}] {error}", self.id);
        }
    }

    /// A backend answered without usage the gateway can believe (missing,
    /// negative, fractional, or absurd): charged the estimate; said once.
    fn warn_usage(&self, backend: &str) {
        if self.counters.first_usage_warning(backend) {
            warn!(
                "openai-gateway: backend `{backend}` answered without believable usage (missing, \
                 not a non-negative integer, or more than {} tokens); such answers are charged \
                 their estimate (said once per backend)",
                crate::tokens::MAX_COST
            );
        }
    }

    /// Keeps the usage for the metrics and publishes it to Envoy's access log.
    fn record_usage(&mut self, host: &impl Host, usage: Usage) {
        self.usage = Some(usage);
        let mut fields = usage.log_fields();
        if let Some(spend) = self.spend() {
            fields.push_str(&format!(" spend_micros={spend}"));
        }
        if let Err(status) = host.set_property(&[USAGE_PROPERTY], fields.as_bytes()) {
            let error = HostError::new(Call::SetProperty(USAGE_PROPERTY), status);
            warn!("[{}] {error}", self.id);
        }
    }

    fn decide_body(&mut self, host: &impl Host, body_size: usize) -> Flow {
        let (Some(gateway), Some(pending)) = (self.gateway.clone(), self.pending.take()) else {
            return Flow::Continue;
        };
        let body = match host.body(Body::Request, 0, body_size) {
            Ok(body) => body.unwrap_or_default(),
            Err(status) => return self.fail_call(host, Call::ReadBody(Body::Request), status),
        };
        let held = std::mem::take(&mut self.held_edits);
        let headers = std::mem::take(&mut self.held_headers);
        match gateway.on_request_body(&pending, &body) {
            AfterBody::Reply(reply) => {
                // Applied for the access log (the key's id), never forwarded.
                if let Err(error) = apply(host, HeaderMap::Request, &headers, &[&held]) {
                    return self.fail(host, &error.to_string());
                }
                self.send(host, &reply)
            }
            AfterBody::Forward {
                edits,
                new_body,
                response,
            } => {
                self.request.plan = response;
                // A stale content-length would make Envoy send a truncated body.
                let mut length = HeaderEdits::default();
                if let Some(new_body) = &new_body {
                    if let Err(status) = host.set_body(Body::Request, 0, body.len(), new_body) {
                        return self.fail_call(host, Call::ReplaceBody(Body::Request), status);
                    }
                    length
                        .set
                        .push(("content-length".to_string(), new_body.len().to_string()));
                }
                let all = [&held, &edits, &length];
                if let Err(error) = apply(host, HeaderMap::Request, &headers, &all) {
                    return self.fail(host, &error.to_string());
                }
                self.clear_route_cache(host)
            }
        }
    }

    /// The request's headers changed what it routes on: Envoy picks the route again.
    fn clear_route_cache(&mut self, host: &impl Host) -> Flow {
        match host.call_foreign("clear_route_cache", None) {
            Ok(_) => Flow::Continue,
            Err(status) => self.fail_call(host, Call::Foreign("clear_route_cache"), status),
        }
    }

    fn send(&mut self, host: &impl Host, reply: &Reply) -> Flow {
        self.replied = true;
        self.status = reply.status;
        self.error_code = reply.error_code;
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        debug!(
            "[{}] {} {} -> {} (answered by the gateway)",
            self.id, self.request.method, self.request.path, reply.status
        );
        if let Err(status) = host.send_reply(reply.status, &headers, &reply.body) {
            error!("[{}] {}", self.id, HostError::new(Call::SendReply, status));
        }
        Flow::Pause
    }

    fn fail_call(&mut self, host: &impl Host, call: Call, status: crate::host::Status) -> Flow {
        self.fail(host, &HostError::new(call, status).to_string())
    }

    /// Fails closed: a host error becomes a 500 envelope, never a forwarded request.
    fn fail(&mut self, host: &impl Host, reason: &str) -> Flow {
        error!("[{}] {reason}", self.id);
        let error = ApiError::with_status(
            500,
            "The gateway failed to process the request. Retry later.",
        );
        let reply = match &self.gateway {
            Some(gateway) => gateway.error_reply(&error),
            None => Reply {
                status: 500,
                headers: vec![("content-type".into(), "application/json".into())],
                body: error.body(None),
                error_code: None,
            },
        };
        self.send(host, &reply)
    }
}

/// Bodies up to this size are read before a header-stage refusal (a bad
/// key, a wrong content type) is sent, so the client keeps its connection,
/// as with OpenAI's API. Larger or unannounced ones are refused at once:
/// Envoy then closes the connection rather than read them.
pub const ANSWER_AFTER_BODY_BYTES: u64 = 64 * 1024;

/// The request announces a body small enough to read before refusing it.
fn drains_quickly(headers: &Headers) -> bool {
    crate::body_headers::declared_length(headers).is_some_and(|n| n <= ANSWER_AFTER_BODY_BYTES)
}

/// Makes the headers `current` (as read) what `edits` say, one host call per
/// header that changes: none when nothing does. (Replacing the whole map in
/// one `set_map_bytes` call measured slower: Envoy removes and re-adds every
/// header.)
fn apply(
    host: &impl Host,
    map: HeaderMap,
    current: &Headers,
    edits: &[&HeaderEdits],
) -> Result<(), HostError> {
    for change in edits::changes(current, edits) {
        match change {
            edits::Change::Set(name, value) => host
                .set_header(map, name, Some(value))
                .map_err(|s| HostError::new(Call::SetHeader(map, name.to_string()), s))?,
            edits::Change::Remove(name) => host
                .set_header(map, name, None)
                .map_err(|s| HostError::new(Call::RemoveHeader(map, name.to_string()), s))?,
        }
    }
    Ok(())
}
