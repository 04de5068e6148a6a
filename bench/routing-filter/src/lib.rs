//! The bare routing filter: the cheapest useful thing a model gateway must do
//! per request, as a floor for `make bench` beside the no-op filter.
//!
//! It holds the request headers, reads the whole body once at its end, parses
//! only `model` (borrowed, every other field skipped), sets the route header
//! `x-gateway-backend` to that model's backend, asks Envoy to pick the route
//! again (`clear_route_cache`) and lets the request go. No key check, no
//! validation, no rewriting, nothing on the response. A request whose model it
//! does not know (or whose body is no JSON object with a string `model`) loses
//! the header, so no route matches and Envoy answers 404: a client never picks
//! the backend itself. Every host call's error is handled, never unwrapped.
//! (Requests that end with trailers are left alone: no benchmark sends any.)

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType};
use serde::Deserialize;
use std::borrow::Cow;

/// The header `envoy/demo.yaml`'s routes match on to pick the cluster.
const ROUTE_HEADER: &str = "x-gateway-backend";

/// The only field read; serde skips the others without building them.
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
}

/// The backend of each model (and alias) of `envoy/demo.yaml`'s catalog, so
/// the benchmark's requests go where the gateway sends them.
fn backend(model: &str) -> Option<&'static str> {
    match model {
        "llama-3.1-8b-instruct" | "gpt-4o-mini" | "qwen2.5-coder-7b-instruct" => Some("backend-a"),
        "deepseek-r1-distill-qwen-7b"
        | "qwen2-vl-7b-instruct"
        | "bge-m3"
        | "flux.1-schnell"
        | "whisper-large-v3"
        | "whisper-1"
        | "kokoro-82m"
        | "tts-1"
        | "wan2.1-t2v-1.3b" => Some("backend-b"),
        _ => None,
    }
}

/// The route header's value for a request body; None: no route.
fn route(body: &[u8]) -> Option<&'static str> {
    let request: Request = serde_json::from_slice(body).ok()?;
    backend(&request.model)
}

struct Root;
struct Routing;

impl Context for Root {}
impl Context for Routing {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Routing))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Routing {
    /// Sets (or, with None, removes) the route header and has Envoy match the
    /// routes again. A host call that fails leaves the request as it is.
    fn set_route(backend: Option<&str>) -> Action {
        if hostcalls::set_map_value(MapType::HttpRequestHeaders, ROUTE_HEADER, backend).is_ok() {
            // Failing to clear the cache only means the route chosen before stays.
            let _ = hostcalls::call_foreign_function("clear_route_cache", None);
        }
        Action::Continue
    }
}

impl HttpContext for Routing {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            // No body, no model.
            return Self::set_route(None);
        }
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause; // Envoy buffers until the end
        }
        let backend = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size) {
            Ok(Some(body)) => route(&body),
            Ok(None) | Err(_) => None,
        };
        Self::set_route(backend)
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

#[cfg(test)]
mod tests {
    use super::route;

    #[test]
    fn routes_by_model_only() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"model":"llama-3.1-8b-instruct","messages":[{"role":"user","content":"hi"}]}"#,
                Some("backend-a"),
            ),
            (
                r#"{"messages":[],"model":"bge-m3","n":2}"#,
                Some("backend-b"),
            ),
            (r#"{"model":"gpt-4o-\u006dini"}"#, Some("backend-a")),
            (r#"{"model":"unknown"}"#, None),
            (r#"{"model":7}"#, None),
            (r#"{"messages":[]}"#, None),
            (r#"not json"#, None),
        ];
        for (body, expected) in cases {
            assert_eq!(route(body.as_bytes()), *expected, "{body}");
        }
    }
}
