//! The compatibility document (docs/compatibility.md), rendered from the same
//! tables the gateway enforces, so the two cannot drift. `make docs` writes
//! it; a test fails when the committed copy is stale.

use crate::catalog::Category;
use crate::endpoints::{Endpoint, Row, Support, MATRIX};
use crate::validate::{table, Field, Rule};
use std::fmt::Write;

const SDK: &str = "openai-python 1.109.1";

/// The whole document: an introduction, the endpoint matrix, then the
/// request-body rules and one field table per endpoint that has one.
pub fn markdown() -> String {
    let mut out = String::new();
    introduction(&mut out);
    endpoints(&mut out);
    request_bodies(&mut out);
    for row in MATRIX {
        if let Support::Supported(endpoint) = row.support {
            field_table(&mut out, row, endpoint);
        }
    }
    out
}

fn introduction(w: &mut String) {
    let _ = writeln!(w, "# Compatibility\n");
    let _ = writeln!(
        w,
        "<!-- Generated from src/endpoints.rs and src/validate/ by `make docs`. Do not edit by hand. -->\n"
    );
    let _ = writeln!(
        w,
        "What the gateway accepts, endpoint by endpoint and field by field, checked against the request \
         shapes of {SDK} (tests/sdk/openai-request-shapes.json). Every refusal is OpenAI's error envelope \
         with `param` naming the field.\n"
    );
}

/// The endpoint matrix: every known path, its methods and what the gateway does with it.
fn endpoints(w: &mut String) {
    let _ = writeln!(w, "## Endpoints\n");
    let _ = writeln!(w, "| Endpoint | Methods | Status | Notes |");
    let _ = writeln!(w, "|---|---|---|---|");
    for row in MATRIX {
        let methods = if row.methods.is_empty() {
            "any".to_string()
        } else {
            row.methods.join(", ")
        };
        match row.support {
            Support::Supported(endpoint) => {
                let categories: Vec<&str> = Category::for_endpoint(endpoint)
                    .iter()
                    .map(|c| c.as_str())
                    .collect();
                let models = if categories.is_empty() {
                    String::new()
                } else {
                    format!(" Models: {}.", categories.join(", "))
                };
                let _ = writeln!(
                    w,
                    "| `{}` | {methods} | supported | {}.{models} |",
                    row.pattern, row.note
                );
            }
            Support::Unsupported(message) => {
                let _ = writeln!(
                    w,
                    "| `{}` | {methods} | not supported (404) | {message} |",
                    row.pattern
                );
            }
        }
    }
    let _ = writeln!(
        w,
        "\nAny other path: 404 `Invalid URL`. A known path with another method: 405 with `allow`.\n"
    );
}

/// What holds for every request body, before the per-endpoint tables.
fn request_bodies(w: &mut String) {
    let _ = writeln!(w, "## Request bodies\n");
    let _ = writeln!(
        w,
        "For every JSON body: it must be one JSON object; a member name given twice anywhere in it, \
         nesting deeper than 128 levels, `NaN`/`Infinity` and numbers out of range (`1e400`) are refused \
         with 400. Integer fields take integers only: `1.0` and `-0` (which JSON parsers read as a \
         decimal) are refused there, and integers beyond 64 bits (`2^64`) are out of range; where any \
         number is allowed, `-0` is 0. Fields a table does not list are forwarded to the backend \
         untouched; so are the bytes of the body, except where a row below says the gateway rewrites it \
         (the rewrite is spliced in place and `content-length` fixed).\n\n\
         Before a body is read: it must be sent uncompressed (any `Content-Encoding` other than \
         `identity` is refused with 415), with `Content-Type: application/json` (any parameters; \
         a `charset` must be UTF-8) or, for audio transcriptions, `multipart/form-data` with a boundary \
         (otherwise 415); a `content-length` over `limits.max_request_bytes` (26 MiB by default) is \
         refused with 413, as is a chunked body once it grows past it.\n"
    );
}

/// One endpoint's field table (nothing for an endpoint without fields).
fn field_table(w: &mut String, row: &Row, endpoint: Endpoint) {
    let fields = table(endpoint);
    if fields.is_empty() {
        return;
    }
    let _ = writeln!(w, "### {} {}\n", row.methods.join("/"), row.pattern);
    let _ = writeln!(w, "| Field | Required | Status | Rule |");
    let _ = writeln!(w, "|---|---|---|---|");
    for field in fields {
        let _ = writeln!(
            w,
            "| `{}` | {} | {} | {} |",
            field.name,
            if field.required { "yes" } else { "" },
            status(field),
            rule_text(field)
        );
    }
    let _ = writeln!(w);
}

fn status(field: &Field) -> &'static str {
    match field.rule {
        Rule::Routing => "routing",
        Rule::Validated(_) => "validated",
        Rule::Forwarded if field.required => "required",
        Rule::Forwarded => "forwarded",
        Rule::Unsupported(_) => "rejected (400) unless null/false",
    }
}

fn rule_text(field: &Field) -> String {
    let mut text = field.doc.replace('|', "\\|");
    if let Some(default) = field.default {
        if !text.contains("absent") {
            let _ = write!(text, "; absent → sent as `{default}`");
        }
    }
    text
}
