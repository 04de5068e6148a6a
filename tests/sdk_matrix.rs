//! The validator's field tables against the pinned SDK's request shapes
//! (tests/sdk/openai-request-shapes.json, written by scripts/sdk_snapshot.py):
//! every field the SDK can send is classified, and the tables name no field
//! the SDK does not have.

// Test code: a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use openai_gateway::endpoints::Endpoint;
use openai_gateway::validate::{table, Rule};

const SHAPES: [(&str, Endpoint); 4] = [
    ("POST /v1/chat/completions", Endpoint::ChatCompletions),
    ("POST /v1/completions", Endpoint::Completions),
    ("POST /v1/embeddings", Endpoint::Embeddings),
    ("POST /v1/responses", Endpoint::Responses),
];
use serde_json::Value;
use std::collections::BTreeSet;

const SNAPSHOT: &str = include_str!("sdk/openai-request-shapes.json");

fn shape(endpoint: &str) -> BTreeSet<String> {
    let snapshot: Value = serde_json::from_str(SNAPSHOT).unwrap();
    assert_eq!(
        snapshot["version"], "1.109.1",
        "the snapshot is of another SDK version than the pin"
    );
    snapshot["shapes"][endpoint]["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("no shape for {endpoint} in the snapshot"))
        .keys()
        .cloned()
        .collect()
}

fn classified(endpoint: Endpoint) -> BTreeSet<String> {
    table(endpoint).iter().map(|f| f.name.to_string()).collect()
}

#[test]
fn every_sdk_field_is_classified_and_no_table_field_is_invented() {
    for (path, endpoint) in SHAPES {
        let sdk = shape(path);
        let ours = classified(endpoint);
        let unclassified: Vec<_> = sdk.difference(&ours).collect();
        // A refusal row may name a field the SDK lacks (raw clients send it:
        // presence_penalty on the Responses API); nothing else may.
        let refused: BTreeSet<String> = table(endpoint)
            .iter()
            .filter(|f| matches!(f.rule, Rule::Unsupported(_)))
            .map(|f| f.name.to_string())
            .collect();
        let invented: Vec<_> = ours
            .difference(&sdk)
            .filter(|f| !refused.contains(*f))
            .collect();
        assert!(
            unclassified.is_empty(),
            "{path}: SDK fields the table does not classify: {unclassified:?}"
        );
        assert!(
            invented.is_empty(),
            "{path}: table fields the SDK does not have: {invented:?}"
        );
    }
}

#[test]
fn required_sdk_fields_are_required_by_the_tables() {
    let snapshot: Value = serde_json::from_str(SNAPSHOT).unwrap();
    for (path, endpoint) in SHAPES {
        for (name, spec) in snapshot["shapes"][path]["fields"].as_object().unwrap() {
            let field = table(endpoint).iter().find(|f| f.name == name).unwrap();
            if spec["required"] == Value::Bool(true) {
                assert!(
                    field.required,
                    "{path}: `{name}` is required by the SDK but not by the table"
                );
            }
            if let Rule::Unsupported(message) = field.rule {
                assert!(
                    message.contains(name.as_str()),
                    "{path}: the refusal of `{name}` should name it"
                );
            }
        }
    }
}
