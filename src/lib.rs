//! openai-gateway: a proxy-wasm filter that makes Envoy the front door of an
//! OpenAI-compatible inference API.
//!
//! Every decision (configuration, auth, the endpoint matrix, body checks,
//! routing, error rendering) is a plain function in the modules below, tested
//! natively; [`host`] is the only module that talks to the proxy-wasm host.

#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

pub mod auth;
pub mod body_headers;
pub mod catalog;
pub mod charger;
pub mod compat;
pub mod config;
pub mod endpoints;
pub mod error;
pub mod headers;
pub mod host;
pub mod ids;
pub mod json;
pub mod metrics;
pub mod multipart;
pub mod pipeline;
pub mod ratelimit;
pub mod sha256;
pub mod sse;
pub mod tokens;
pub mod usage;
pub mod validate;

pub use config::{Gateway, PluginConfig};
pub use error::ApiError;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    // Also installs a panic hook that logs at critical level.
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(host::Root::default())
    });
}}
