//! docs/metrics.md is the rendering of the gateway's metrics catalog.
//! `UPDATE_DOCS=1 cargo test --test metrics_doc` (or `make docs`) rewrites it.

// Test code: a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;

#[test]
fn metrics_reference_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md");
    let expected = openai_gateway::metrics::markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "docs/metrics.md is stale: run `make docs` and commit the result"
    );
}
