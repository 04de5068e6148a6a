//! The proxy-wasm adapter: the only code that talks to Envoy. It implements
//! the core's [`Host`] with `proxy_wasm::hostcalls`, reads the plugin
//! configuration, and forwards each callback to the core's [`Exchange`] (or
//! the token [`Charger`]), turning the [`Flow`] it returns into an `Action`.
//! No decision is made here. (Its items are public only so that the native
//! build, which has no `proxy_wasm::main!`, does not call them dead code.)

#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

use log::error;
use openai_gateway::charger::Charger;
use openai_gateway::exchange::{Counters, Exchange, Flow};
use openai_gateway::headers::Headers;
use openai_gateway::host::{Body, HeaderMap, Host, Status};
use openai_gateway::plugin::{self, Plugin};
use openai_gateway::root::GatewayRoot;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};
use std::rc::Rc;
use std::time::Duration;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    // Also installs a panic hook that logs at critical level.
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root::default())
    });
}}

/// The host, through `proxy_wasm::hostcalls`: one host call per method.
pub struct Envoy;

fn status(status: proxy_wasm::types::Status) -> Status {
    use proxy_wasm::types::Status as S;
    match status {
        S::NotFound => Status::NotFound,
        S::BadArgument => Status::BadArgument,
        S::SerializationFailure => Status::SerializationFailure,
        S::ParseFailure => Status::ParseFailure,
        S::Empty => Status::Empty,
        S::CasMismatch => Status::CasMismatch,
        S::InternalFailure => Status::InternalFailure,
        other => Status::Other(other as u32),
    }
}

fn map_type(map: HeaderMap) -> MapType {
    match map {
        HeaderMap::Request => MapType::HttpRequestHeaders,
        HeaderMap::Response => MapType::HttpResponseHeaders,
        HeaderMap::CallResponse => MapType::HttpCallResponseHeaders,
    }
}

fn buffer_type(body: Body) -> BufferType {
    match body {
        Body::Request => BufferType::HttpRequestBody,
        Body::Response => BufferType::HttpResponseBody,
        Body::CallResponse => BufferType::HttpCallResponseBody,
    }
}

impl Host for Envoy {
    fn headers(&self, map: HeaderMap) -> Result<Headers, Status> {
        hostcalls::get_map_bytes(map_type(map))
            .map(Headers::from)
            .map_err(status)
    }

    fn header(&self, map: HeaderMap, name: &str) -> Result<Option<Vec<u8>>, Status> {
        hostcalls::get_map_value_bytes(map_type(map), name).map_err(status)
    }

    fn set_header(&self, map: HeaderMap, name: &str, value: Option<&str>) -> Result<(), Status> {
        hostcalls::set_map_value(map_type(map), name, value).map_err(status)
    }

    fn body(&self, which: Body, start: usize, size: usize) -> Result<Option<Vec<u8>>, Status> {
        hostcalls::get_buffer(buffer_type(which), start, size).map_err(status)
    }

    fn set_body(&self, which: Body, start: usize, size: usize, bytes: &[u8]) -> Result<(), Status> {
        hostcalls::set_buffer(buffer_type(which), start, size, bytes).map_err(status)
    }

    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
        hostcalls::get_property(path.to_vec()).map_err(status)
    }

    fn set_property(&self, path: &[&str], value: &[u8]) -> Result<(), Status> {
        hostcalls::set_property(path.to_vec(), Some(value)).map_err(status)
    }

    fn send_reply(&self, code: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), Status> {
        hostcalls::send_http_response(u32::from(code), headers.to_vec(), Some(body)).map_err(status)
    }

    fn call_foreign(&self, name: &str, args: Option<&[u8]>) -> Result<Option<Vec<u8>>, Status> {
        hostcalls::call_foreign_function(name, args).map_err(status)
    }

    fn define_counter(&self, name: &str) -> Result<u32, Status> {
        hostcalls::define_metric(MetricType::Counter, name).map_err(status)
    }

    fn increment(&self, id: u32, amount: i64) -> Result<(), Status> {
        hostcalls::increment_metric(id, amount).map_err(status)
    }

    fn define_gauge(&self, name: &str) -> Result<u32, Status> {
        hostcalls::define_metric(MetricType::Gauge, name).map_err(status)
    }

    fn set_gauge(&self, id: u32, value: u64) -> Result<(), Status> {
        hostcalls::record_metric(id, value).map_err(status)
    }

    fn define_histogram(&self, name: &str) -> Result<u32, Status> {
        hostcalls::define_metric(MetricType::Histogram, name).map_err(status)
    }

    fn record(&self, id: u32, value: u64) -> Result<(), Status> {
        hostcalls::record_metric(id, value).map_err(status)
    }

    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<u32, Status> {
        hostcalls::dispatch_http_call(cluster, headers.to_vec(), None, Vec::new(), timeout)
            .map_err(status)
    }

    fn shared(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), Status> {
        hostcalls::get_shared_data(key).map_err(status)
    }

    fn set_shared(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(status)
    }

    fn now_ns(&self) -> Result<u64, Status> {
        let now = hostcalls::get_current_time().map_err(status)?;
        let since = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| Status::InternalFailure)?;
        Ok(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }
}

pub fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

/// The plugin's root context: holds what `on_configure` made of the
/// configuration (the gateway's root: counters and probes), or the charger.
#[derive(Default)]
pub struct Root {
    gateway: Option<GatewayRoot>,
    charger: Option<Rc<Charger>>,
    /// The counters of exchanges without a configuration (never flushed:
    /// they answer errors only).
    unconfigured: Rc<Counters>,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if let Some(root) = &mut self.gateway {
            root.on_http_call_response(&Envoy, token_id, body_size);
        }
    }

    /// The VM is going away: its last counts go to Envoy first.
    fn on_done(&mut self) -> bool {
        if let Some(root) = &self.gateway {
            root.on_done(&Envoy);
        }
        true
    }
}

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
        match plugin::configure(&bytes) {
            Ok(Plugin::Gateway(gateway)) => {
                let root = GatewayRoot::new(&Envoy, Rc::from(gateway));
                // Exchanges add to the counters in the VM; the tick hands
                // the sums to Envoy (see exchange::Counters) and sends the
                // health probes.
                if let Err(status) = hostcalls::set_tick_period(root.tick_period()) {
                    error!("openai-gateway: cannot set the timer ({status:?}); refusing to start");
                    return false;
                }
                self.gateway = Some(root);
            }
            Ok(Plugin::Charger(charger)) => self.charger = Some(Rc::new(charger)),
            Err(err) => {
                error!("openai-gateway: {err}");
                return false;
            }
        }
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        if let Some(charger) = &self.charger {
            return Some(Box::new(ChargeTokens(charger.clone())));
        }
        // Returning None would make the SDK panic: a context without a
        // configuration answers every request with an error instead.
        let (gateway, counters) = match &self.gateway {
            Some(root) => {
                root.on_request(&Envoy);
                (Some(root.gateway.clone()), root.counters.clone())
            }
            None => (None, self.unconfigured.clone()),
        };
        Some(Box::new(HttpExchange(Exchange::new(
            context_id, gateway, counters,
        ))))
    }

    fn on_tick(&mut self) {
        if let Some(root) = &mut self.gateway {
            root.on_tick(&Envoy);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The token charger's request context.
pub struct ChargeTokens(Rc<Charger>);

impl Context for ChargeTokens {}

impl HttpContext for ChargeTokens {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.0.on_request_headers(&Envoy);
        Action::Continue
    }
}

/// The gateway's request context: each callback is the core exchange's.
pub struct HttpExchange(Exchange);

impl Context for HttpExchange {}

impl HttpContext for HttpExchange {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_headers(&Envoy, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_body(&Envoy, body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        action(self.0.on_request_trailers(&Envoy))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        action(self.0.on_response_headers(&Envoy))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.0.on_response_body(&Envoy, body_size, end_of_stream))
    }

    fn on_log(&mut self) {
        self.0.on_log(&Envoy);
    }
}
