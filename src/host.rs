//! The only module that talks to the proxy-wasm host. It moves headers and
//! bodies between Envoy and the pure decisions in [`crate::pipeline`], and
//! turns host errors into logged, non-panicking outcomes.

use crate::charger::{self, Charger, ChargerConfig};
use crate::config::Gateway;
use crate::error::ApiError;
use crate::headers::Headers;
use crate::ids;
use crate::metrics;
use crate::pipeline::{
    AfterBody, AfterHeaders, AfterResponseHeaders, BodyMode, HeaderEdits, PendingBody, Reply,
    RequestRecord,
};
use crate::sse;
use crate::usage::{self, Usage};
use log::{debug, error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The plugin's root context: holds the configuration compiled in
/// `on_configure`, for the gateway or for the token charger (see
/// [`crate::charger`]).
#[derive(Default)]
pub struct Root {
    gateway: Option<Rc<Gateway>>,
    charger: Option<Rc<Charger>>,
    metrics: Rc<Metrics>,
}

/// Metric ids, defined on first use, by the exchange outcome that names
/// them: a repeated outcome (the common case) costs no name formatting.
#[derive(Default)]
struct Metrics {
    by_outcome: RefCell<HashMap<metrics::OutcomeKey, Vec<Option<u32>>>>,
}

/// Distinct outcomes remembered at most (key × model × status × code is
/// bounded by the configuration, but backends choose the status).
const METRIC_OUTCOMES: usize = 4096;

impl Metrics {
    fn record(&self, outcome: &metrics::Outcome) {
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
                .map(
                    |name| match hostcalls::define_metric(MetricType::Counter, name) {
                        Ok(id) => Some(id),
                        Err(status) => {
                            warn!("openai-gateway: cannot define metric {name} ({status:?})");
                            None
                        }
                    },
                )
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
            if let Err(status) = hostcalls::increment_metric(*id, amount) {
                warn!("openai-gateway: cannot count metric {id} ({status:?})");
            }
        }
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        // Log at the level Envoy runs the `wasm` component at (`debug!` lines
        // are formatted only when that level asks for them).
        if let Ok(level) = hostcalls::get_log_level() {
            proxy_wasm::set_log_level(level);
        }
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                error!("openai-gateway: cannot read the plugin configuration ({status:?}); refusing to start");
                return false;
            }
        };
        if charger::is_charger_config(&bytes) {
            return match serde_json::from_slice::<ChargerConfig>(&bytes) {
                Ok(config) => {
                    info!(
                        "openai-gateway: token charger for header {}",
                        config.token_charger.header
                    );
                    self.charger = Some(Rc::new(config.token_charger));
                    true
                }
                Err(err) => {
                    error!("openai-gateway: invalid token charger configuration, refusing to start: {err}");
                    false
                }
            };
        }
        match Gateway::try_from(bytes.as_slice()) {
            Ok(gateway) => {
                info!(
                    "openai-gateway: configured {} models, {} API keys",
                    gateway.catalog.len(),
                    gateway.keys.len()
                );
                self.gateway = Some(Rc::new(gateway));
                true
            }
            Err(err) => {
                error!("openai-gateway: invalid plugin configuration, refusing to start: {err}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        if let Some(charger) = &self.charger {
            return Some(Box::new(ChargeTokens {
                charger: charger.clone(),
            }));
        }
        // Returning None would make the SDK panic: a context without a
        // configuration answers every request with an error instead.
        Some(Box::new(Exchange {
            id: context_id,
            metrics: self.metrics.clone(),
            key_id: None,
            status: 0,
            error_code: None,
            gateway: self.gateway.clone(),
            line: RequestRecord::default(),
            pending: None,
            replied: false,
            body_mode: BodyMode::Untouched,
            events: sse::Reader::default(),
            usage: None,
            stream_done: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The token charger's request context.
struct ChargeTokens {
    charger: Rc<Charger>,
}

impl Context for ChargeTokens {}

impl HttpContext for ChargeTokens {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let value =
            match hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, &self.charger.header)
            {
                Ok(Some(value)) => value,
                _ => return Action::Continue,
            };
        if let Some(cost) = charger::cost(&value) {
            let args = charger::filter_state_arguments(charger::HITS_ADDEND, &cost.to_string());
            if let Err(status) =
                hostcalls::call_foreign_function("set_envoy_filter_state", Some(&args))
            {
                warn!("openai-gateway: cannot charge {cost} tokens ({status:?}); the request counts as 1");
            }
        }
        Action::Continue
    }
}

/// One request/response exchange.
struct Exchange {
    id: u32,
    metrics: Rc<Metrics>,
    key_id: Option<String>,
    /// The status the client received, and the error code of the gateway's own errors.
    status: u16,
    error_code: Option<&'static str>,
    gateway: Option<Rc<Gateway>>,
    line: RequestRecord,
    /// Set while the headers are held for the body.
    pending: Option<PendingBody>,
    /// The gateway has answered this request itself.
    replied: bool,
    body_mode: BodyMode,
    events: sse::Reader,
    /// What the response reported, for accounting.
    usage: Option<Usage>,
    /// The stream's `[DONE]` has passed.
    stream_done: bool,
}

impl Context for Exchange {}

impl HttpContext for Exchange {
    fn on_log(&mut self) {
        if self.gateway.is_none() {
            return;
        }
        let outcome = metrics::Outcome {
            key_id: self.key_id.as_deref(),
            model: self.line.plan.model.as_deref(),
            status: self.status,
            error_code: self.error_code,
            usage: self.usage,
        };
        self.metrics.record(&outcome);
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Continue;
        }
        self.adjust_response_body(body_size, end_of_stream)
    }

    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(gateway) = self.gateway.clone() else {
            return self.fail("the gateway has no valid configuration");
        };
        let headers = match hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            Ok(headers) => Headers::from(headers),
            Err(status) => return self.fail(&format!("cannot read request headers ({status:?})")),
        };
        let outcome = gateway.on_request_headers(&headers, end_of_stream);
        self.line = outcome.request.clone();
        self.key_id = outcome.key_id.clone();
        if let Err(message) = apply(MapType::HttpRequestHeaders, &outcome.edits) {
            return self.fail(&message);
        }
        match outcome.next {
            AfterHeaders::Reply(reply) => self.send(&reply),
            AfterHeaders::Route(plan) => {
                self.line.plan = plan;
                if let Err(status) = hostcalls::call_foreign_function("clear_route_cache", None) {
                    return self.fail(&format!("cannot clear the route cache ({status:?})"));
                }
                Action::Continue
            }
            AfterHeaders::ReadBody(pending) => {
                self.pending = Some(pending);
                Action::Pause
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.pending.is_none() || self.replied {
            return Action::Continue;
        }
        if !end_of_stream {
            // Buffer until the whole body is there, unless it is already too large.
            if let Some(reply) = self
                .gateway
                .as_ref()
                .and_then(|g| g.on_partial_body(body_size))
            {
                return self.send(&reply);
            }
            return Action::Pause;
        }
        self.decide_body(body_size)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // With trailers the body never ends with end_of_stream: decide here.
        if self.pending.is_none() || self.replied {
            return Action::Continue;
        }
        let size = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, usize::MAX) {
            Ok(body) => body.map_or(0, |b| b.len()),
            Err(status) => return self.fail(&format!("cannot read the request body ({status:?})")),
        };
        self.decide_body(size)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Continue;
        }
        let Some(gateway) = self.gateway.clone() else {
            return Action::Continue;
        };
        let headers = match hostcalls::get_map_bytes(MapType::HttpResponseHeaders) {
            Ok(headers) => Headers::from(headers),
            Err(status) => {
                warn!("[{}] cannot read response headers ({status:?})", self.id);
                return Action::Continue;
            }
        };
        let status = headers.status().unwrap_or(0);
        // Only error statuses can be Envoy's own replies: skip the host call
        // (a round trip into the VM to allocate the answer) for the rest.
        let details = match status {
            400.. => match hostcalls::get_property(vec!["response", "code_details"]) {
                Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                Ok(None) => String::new(),
                Err(status) => {
                    // Without the details an Envoy reply passes as the backend's.
                    warn!(
                        "[{}] cannot read response.code_details ({status:?})",
                        self.id
                    );
                    String::new()
                }
            },
            _ => String::new(),
        };
        self.status = status;
        match gateway.on_response_headers(status, &details, &self.line, &headers) {
            AfterResponseHeaders::Reply(reply) => {
                debug!(
                    "[{}] rewriting Envoy's local reply {status} ({details})",
                    self.id
                );
                self.send(&reply)
            }
            AfterResponseHeaders::Edit { mut edits, body } => {
                edits.set.extend(self.line.plan.headers.iter().cloned());
                self.body_mode = body;
                if let Err(message) = apply(MapType::HttpResponseHeaders, &edits) {
                    warn!("[{}] {message}", self.id);
                }
                Action::Continue
            }
        }
    }
}

impl Exchange {
    /// Adjusts a JSON response (whole) or a stream (event by event, holding
    /// back only an unfinished event), recording the usage it reports.
    fn adjust_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.body_mode {
            BodyMode::Untouched => Action::Continue,
            BodyMode::Json if !end_of_stream => Action::Pause,
            BodyMode::Json => {
                let body = match hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size) {
                    Ok(body) => body.unwrap_or_default(),
                    Err(status) => {
                        warn!("[{}] cannot read the response body ({status:?})", self.id);
                        return Action::Continue;
                    }
                };
                let adjusted = usage::adjust(&body);
                if let Some(usage) = adjusted.usage {
                    self.record_usage(usage);
                }
                let mut changed = adjusted.bytes;
                if let (Some(gateway), Some(ids)) =
                    (self.gateway.clone(), self.line.plan.ids.as_mut())
                {
                    let current = changed.as_deref().unwrap_or(&body);
                    if let Some(bytes) = gateway.rewrite_ids(ids, current) {
                        changed = Some(bytes);
                    }
                }
                if let Some(bytes) = changed {
                    self.replace_response_body(body_size, &bytes);
                }
                Action::Continue
            }
            BodyMode::Events => {
                let chunk = match hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size)
                {
                    Ok(chunk) => chunk.unwrap_or_default(),
                    Err(status) => {
                        warn!("[{}] cannot read the stream ({status:?})", self.id);
                        return Action::Continue;
                    }
                };
                let (events, unparsed) = self.events.push(&chunk);
                let mut out = Vec::with_capacity(chunk.len());
                for event in &events {
                    if event.data().is_some_and(|d| d == b"[DONE]") {
                        self.stream_done = true;
                    }
                    let (kept, usage) = usage::adjust_event(event, self.line.plan.hide_usage_chunk);
                    if let Some(usage) = usage {
                        self.record_usage(usage);
                    }
                    if let Some(bytes) = kept {
                        out.extend_from_slice(&self.rewrite_event_ids(event, bytes));
                    }
                }
                out.extend_from_slice(&unparsed);
                if end_of_stream {
                    out.extend_from_slice(&self.events.finish());
                    if self.line.plan.ends_with_done && !self.stream_done {
                        // The backend ended the stream early: say so in the
                        // stream, as OpenAI does, instead of a silent cut.
                        warn!("[{}] the backend ended a stream without [DONE]", self.id);
                        out.extend_from_slice(&usage::stream_error_event());
                    }
                }
                if out != chunk {
                    self.replace_response_body(body_size, &out);
                }
                Action::Continue
            }
        }
    }

    /// A stream event with the gateway's ids: the first event naming the
    /// object issues its id; every event then carries it.
    fn rewrite_event_ids(&mut self, event: &sse::Event, bytes: Vec<u8>) -> Vec<u8> {
        let (Some(gateway), Some(ids)) = (self.gateway.clone(), self.line.plan.ids.as_mut()) else {
            return bytes;
        };
        if ids.issue.is_some() {
            if let Some(data) = event.data() {
                let _ = gateway.rewrite_ids(ids, &data);
            }
        }
        let mut out = bytes;
        for (original, issued) in &ids.known {
            if let Some(next) = ids::replace_quoted(&out, original, issued) {
                out = next;
            }
        }
        out
    }

    /// Keeps the usage for the metrics and publishes it to Envoy's access
    /// log as filter state (`%FILTER_STATE(wasm.openai_gateway_prompt_tokens:PLAIN)%`).
    fn record_usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
        for (name, value) in [
            ("openai_gateway_prompt_tokens", usage.prompt_tokens),
            ("openai_gateway_completion_tokens", usage.completion_tokens),
            ("openai_gateway_cached_tokens", usage.cached_tokens),
        ] {
            if let Err(status) =
                hostcalls::set_property(vec![name], Some(value.to_string().as_bytes()))
            {
                warn!("[{}] cannot publish {name} ({status:?})", self.id);
            }
        }
    }

    fn replace_response_body(&self, size: usize, bytes: &[u8]) {
        if let Err(status) = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, bytes) {
            warn!(
                "[{}] cannot replace the response body ({status:?})",
                self.id
            );
        }
    }

    fn decide_body(&mut self, body_size: usize) -> Action {
        let (Some(gateway), Some(pending)) = (self.gateway.clone(), self.pending.take()) else {
            return Action::Continue;
        };
        let body = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size) {
            Ok(body) => body.unwrap_or_default(),
            Err(status) => return self.fail(&format!("cannot read the request body ({status:?})")),
        };
        match gateway.on_request_body(&pending, &body) {
            AfterBody::Reply(reply) => self.send(&reply),
            AfterBody::Forward {
                edits,
                new_body,
                response,
            } => {
                self.line.plan = response;
                if let Err(message) = apply(MapType::HttpRequestHeaders, &edits) {
                    return self.fail(&message);
                }
                if let Some(new_body) = new_body {
                    if let Err(status) =
                        hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body.len(), &new_body)
                    {
                        return self.fail(&format!("cannot replace the request body ({status:?})"));
                    }
                    // A stale content-length would make Envoy send a truncated body.
                    let length = new_body.len().to_string();
                    if let Err(status) = hostcalls::set_map_value(
                        MapType::HttpRequestHeaders,
                        "content-length",
                        Some(&length),
                    ) {
                        return self.fail(&format!("cannot set content-length ({status:?})"));
                    }
                }
                if let Err(status) = hostcalls::call_foreign_function("clear_route_cache", None) {
                    return self.fail(&format!("cannot clear the route cache ({status:?})"));
                }
                Action::Continue
            }
        }
    }

    fn send(&mut self, reply: &Reply) -> Action {
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
            self.id, self.line.method, self.line.path, reply.status
        );
        if let Err(status) =
            hostcalls::send_http_response(u32::from(reply.status), headers, Some(&reply.body))
        {
            error!("[{}] cannot send the local reply ({status:?})", self.id);
        }
        Action::Pause
    }

    /// Fails closed: a host error becomes a 500 envelope, never a forwarded request.
    fn fail(&mut self, reason: &str) -> Action {
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
        self.send(&reply)
    }
}

/// Applies header edits: removals first, then sets.
fn apply(map: MapType, edits: &HeaderEdits) -> Result<(), String> {
    for name in &edits.remove {
        hostcalls::set_map_value(map, name, None)
            .map_err(|s| format!("cannot remove header {name} ({s:?})"))?;
    }
    for (name, value) in &edits.set {
        hostcalls::set_map_value(map, name, Some(value))
            .map_err(|s| format!("cannot set header {name} ({s:?})"))?;
    }
    Ok(())
}
