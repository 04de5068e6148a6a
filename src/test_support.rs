//! Fixtures the crate's unit tests share: the sample configuration and its
//! compiled [`Gateway`], a catalog model, header lists, hex digests.
//!
//! The integration tests (tests/), benches and fuzz targets are separate
//! crates and cannot see this module; they carry their own configurations.

use crate::catalog::{Category, Model};
use crate::config::{ConfigError, Gateway};

/// Lower-case hex of some bytes (a digest as the configuration writes it).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex SHA-256 digest of an API key, as `api_keys[].sha256` expects it.
pub fn key_digest(secret: &str) -> String {
    hex(&crate::auth::key_digest(secret.as_bytes()))
}

/// A valid configuration used across the crate's tests: the keys `sk-demo`
/// (every model) and `sk-embed` (`bge-m3` only), four models on two
/// backends (one with an alias, capabilities and an upstream name; one
/// backend with a credential), ids on, a `doc_url`.
pub fn sample() -> serde_json::Value {
    serde_json::json!({
        "api_keys": [
            {"id": "demo", "sha256": key_digest("sk-demo")},
            {"id": "embed-only", "sha256": key_digest("sk-embed"), "models": ["bge-m3"]}
        ],
        "models": [
            {"id": "llama-3.1-8b-instruct", "category": "text", "backend": "backend-a", "aliases": ["gpt-4o-mini"], "capabilities": ["tool_use", "json_schema"], "upstream_model": "meta-llama/Llama-3.1-8B-Instruct"},
            {"id": "qwen2.5-coder-7b", "category": "code", "backend": "backend-a"},
            {"id": "bge-m3", "category": "embeddings", "backend": "backend-b"},
            {"id": "whisper-large-v3", "category": "audio", "backend": "backend-b"}
        ],
        "backends": [{"name": "backend-a"}, {"name": "backend-b", "authorization": "Bearer backend-b-token"}],
        "id_secret": "test-secret-test-secret-test-secret-0123",
        "doc_url": "https://example.com/gateway-errors"
    })
}

/// A configuration document compiled as `on_configure` compiles it.
pub fn compile(config: &serde_json::Value) -> Result<Gateway, ConfigError> {
    Gateway::try_from(config.to_string().as_bytes())
}

/// The [`sample`] configuration, compiled.
pub fn gateway() -> Gateway {
    compile(&sample()).unwrap()
}

/// A catalog model with nothing but its id, category and backend.
pub fn test_model(id: &str, category: Category, backend: &str) -> Model {
    Model {
        id: id.into(),
        category,
        route: crate::catalog::ModelRoute::new(backend),
        fallbacks: vec![],
        aliases: vec![],
        capabilities: vec![],
        context_window: None,
        max_output_tokens: None,
        price: None,
        owned_by: "system".into(),
        created: 0,
    }
}

/// A header list as the host hands it over, from (name, value) pairs.
pub fn header_list(pairs: &[(&str, &str)]) -> crate::headers::Headers {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect()
}
