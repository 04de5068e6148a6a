//! docs/plugin-config.schema.json is generated from the Rust configuration
//! types (with the `schema` feature). `make schema` rewrites it; this test
//! fails when the committed copy is stale.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#![cfg(feature = "schema")]

use openai_gateway::PluginConfig;
use std::path::Path;

#[test]
fn plugin_config_schema_is_current() {
    let schema = schemars::schema_for!(PluginConfig);
    let mut expected = serde_json::to_string_pretty(&schema).unwrap();
    expected.push('\n');
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/plugin-config.schema.json");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "docs/plugin-config.schema.json is stale: run `make docs`"
    );
}

#[test]
fn the_schema_describes_the_demo_config_fields() {
    let schema = serde_json::to_value(schemars::schema_for!(PluginConfig)).unwrap();
    let properties = schema["properties"].as_object().unwrap();
    for field in [
        "api_keys",
        "models",
        "backends",
        "headers",
        "doc_url",
        "token_limits",
        "limits",
        "id_secret",
    ] {
        assert!(properties.contains_key(field), "{field}");
    }
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown fields are refused"
    );
    assert_eq!(
        schema["required"],
        serde_json::json!(["api_keys", "models"])
    );
}
