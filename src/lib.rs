//! openai-gateway: a proxy-wasm filter that makes Envoy the front door of an
//! OpenAI-compatible inference API.
//!
//! This crate is the core: every decision (configuration, auth, the endpoint
//! matrix, body checks, routing, ids, rate-limit headers, streams, usage,
//! error rendering) as plain functions, tested natively, and the state of an
//! [`exchange`], driven through the [`host::Host`] interface. It does not
//! depend on `proxy-wasm`: the adapter crate in `filter/` implements the host
//! interface with proxy-wasm's host calls and is the `.wasm` Envoy loads.
//! docs/architecture.md maps the modules.

#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

pub mod auth;
pub mod billing;
pub mod body_headers;
pub mod bytes;
pub mod catalog;
pub mod charger;
pub mod compat;
pub mod config;
pub mod context;
pub mod endpoints;
pub mod error;
pub mod exchange;
pub mod headers;
pub mod health;
pub mod host;
pub mod ids;
pub mod json;
pub mod latency;
pub mod metrics;
pub mod model_names;
pub mod monitor;
pub mod multipart;
pub mod pipeline;
pub mod plugin;
pub mod ratelimit;
pub mod root;
pub mod serving;
pub mod sse;
#[cfg(test)]
pub(crate) mod test_support;
pub mod tokens;
pub mod usage;
pub mod validate;

pub use config::{Gateway, PluginConfig};
pub use error::ApiError;
