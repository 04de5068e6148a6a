//! The documents generated from the code: each committed copy must be the
//! rendering of what the code says now. `make docs` (`UPDATE_DOCS=1 cargo
//! test --features schema --test generated_docs`) rewrites them.

// Test code: a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;

/// Fails unless `docs/<name>` is `expected`; with `UPDATE_DOCS` set, writes
/// it first.
fn assert_current(name: &str, expected: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, expected).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "docs/{name} is stale: run `make docs` and commit the result"
    );
}

#[test]
fn compatibility_document_is_current() {
    assert_current("compatibility.md", &openai_gateway::compat::markdown());
}

#[test]
fn metrics_reference_is_current() {
    assert_current("metrics.md", &openai_gateway::metrics::markdown());
}

/// docs/plugin-config.schema.json, from the Rust configuration types (with
/// the `schema` feature).
#[cfg(feature = "schema")]
mod schema {
    use super::assert_current;
    use openai_gateway::PluginConfig;

    #[test]
    fn plugin_config_schema_is_current() {
        let schema = schemars::schema_for!(PluginConfig);
        let mut expected = serde_json::to_string_pretty(&schema).unwrap();
        expected.push('\n');
        assert_current("plugin-config.schema.json", &expected);
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
}
