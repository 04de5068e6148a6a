//! docs/compatibility.md is the rendering of the gateway's own tables.
//! `UPDATE_DOCS=1 cargo test --test compat_doc` (or `make docs`) rewrites it.

// Test code: a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;

#[test]
fn compatibility_document_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/compatibility.md");
    let expected = openai_gateway::compat::markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &expected).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "docs/compatibility.md is stale: run `make docs` and commit the result"
    );
}
