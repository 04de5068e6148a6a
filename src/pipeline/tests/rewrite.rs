//! Splicing the body to forward.

use super::*;
use crate::json;
use crate::pipeline::request_body::model_member;
use crate::pipeline::rewrite::rewrite_json;
use crate::validate::Rewrite;

#[test]
fn rewrites_are_spliced_into_the_original_bytes() {
    let g = gateway();
    let (_, model) = g.catalog.resolve("gpt-4o-mini").unwrap();
    let body =
        br#"{"model":"gpt-4o-mini","stream":true,"previous_response_id":"old","messages":[]}"#;
    let document = json::parse_document(body).unwrap();
    let rewrites = [
        Rewrite::Insert {
            name: "a",
            json: "1",
        },
        Rewrite::ReplaceString {
            name: "previous_response_id",
            value: "new".to_string(),
        },
        Rewrite::Insert {
            name: "b",
            json: "2",
        },
        Rewrite::IncludeUsage,
    ];
    // The model name as the pipeline has it: borrowed from the body.
    let requested = model_member(&document).unwrap();
    let upstream = model.upstream_name(&model.route);
    let out = rewrite_json(body, &document, requested, upstream, &rewrites)
        .unwrap()
        .unwrap();
    // Insertions at the same offset: the last one made comes first.
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"stream_options":{"include_usage":true},"b":2,"a":1,"model":"meta-llama/Llama-3.1-8B-Instruct","stream":true,"previous_response_id":"new","messages":[]}"#
    );
    // Nothing to change: no copy.
    let (_, plain) = g.catalog.resolve("qwen2.5-coder-7b").unwrap();
    let body = br#"{"model":"qwen2.5-coder-7b"}"#;
    let document = json::parse_document(body).unwrap();
    assert_eq!(
        rewrite_json(
            body,
            &document,
            model_member(&document).unwrap(),
            plain.upstream_name(&plain.route),
            &[]
        )
        .unwrap(),
        None
    );
}
