use super::*;
use serde_json::json;

use crate::test_support::{compile, gateway, sample};

#[test]
fn sample_compiles() {
    let g = gateway();
    assert_eq!(g.catalog.len(), 4);
    assert_eq!(g.keys.len(), 2);
    assert_eq!(g.keys.get(1).unwrap().models, Some(vec![2]));
    assert_eq!(
        g.backend_credentials.get("backend-b").map(String::as_str),
        Some("Bearer backend-b-token")
    );
    assert_eq!(g.headers, HeaderNames::default());
    assert_eq!(g.limits.max_request_bytes, 27_262_976);
}

#[test]
fn limits_are_read_and_checked() {
    let mut config = sample();
    config["limits"] = json!({"max_request_bytes": 1024});
    let g = compile(&config).unwrap();
    assert_eq!(g.limits.max_request_bytes, 1024);
    config["limits"] = json!({});
    let g = compile(&config).unwrap();
    assert_eq!(g.limits, Limits::default());
}

#[test]
fn invalid_configurations_are_refused_with_the_field_named() {
    type Edit = fn(&mut serde_json::Value);
    #[rustfmt::skip]
    let cases: &[(Edit, &str)] = &[
        (|c| c["surprise"] = json!(1), "unknown field `surprise`"),
        (|c| c["api_keys"][0]["key"] = json!("sk-demo"), "unknown field `key`"),
        (|c| c["api_keys"] = json!([]), "`api_keys` is empty"),
        (|c| c["models"] = json!([]), "`models` is empty"),
        (|c| c["api_keys"][0]["sha256"] = json!("sk-demo"), "api_keys[0].sha256"),
        (|c| c["api_keys"][1]["id"] = json!("demo"), "used twice"),
        (|c| c["api_keys"][1]["sha256"] = c["api_keys"][0]["sha256"].clone(), "configured twice"),
        (|c| c["api_keys"][1]["models"] = json!(["nope"]), "api_keys[1].models[0]"),
        (|c| c["api_keys"][0]["id"] = json!("has space"), "api_keys[0].id"),
        (|c| c["models"][0]["category"] = json!("poetry"), "unknown variant `poetry`"),
        (|c| c["models"][0]["capabilities"] = json!(["flying"]), "unknown variant `flying`"),
        (|c| c["models"][1]["id"] = json!("gpt-4o-mini"), "used twice"),
        (|c| c["models"][1]["backend"] = json!("bad/backend"), "models[1].backend"),
        (|c| c["models"][1]["id"] = json!(""), "models[1].id"),
        (|c| c["backends"].as_array_mut().unwrap().push(json!({"name": "backend-z"})), "backends[2].name: no model uses backend `backend-z`"),
        (|c| { c["models"][1].as_object_mut().unwrap().remove("backend"); c["models"][1]["backends"] = json!([{"name": "backend-a"}, {"name": "backend-q"}]) }, "models[1].backends[1].name: backend `backend-q` is not in `backends`"),
        // A list of one is a list: its backend must be declared too.
        (|c| { c["models"][1].as_object_mut().unwrap().remove("backend"); c["models"][1]["backends"] = json!([{"name": "backend-q"}]) }, "models[1].backends[0].name: backend `backend-q` is not in `backends`"),
        (|c| c["backends"][0]["probe"] = json!({"path": "/health", "interval_ms": 0}), "backends[0].probe.interval_ms: must be between 100 and 3600000 (got 0)"),
        (|c| c["backends"][0]["probe"] = json!({"path": "/health", "interval_ms": -5}), "invalid value"),
        (|c| c["backends"][0]["probe"] = json!({"path": "/health", "interval_ms": 1_000_000_000_000u64}), "backends[0].probe.interval_ms: must be between"),
        (|c| c["backends"][0]["probe"] = json!({"path": "/health", "timeout_ms": 10_000, "interval_ms": 1000}), "backends[0].probe.timeout_ms"),
        (|c| c["backends"][0]["probe"] = json!({"path": "/health", "unhealthy_threshold": 0}), "backends[0].probe.unhealthy_threshold"),
        (|c| c["backends"][0]["probe"] = json!({"path": "health"}), "backends[0].probe.path"),
        (|c| c["backends"][0]["probe"] = json!({"interval_ms": 1000}), "missing field `path`"),
        (|c| c["backends"][0]["probe"] = json!({"path": "/health", "every": 1}), "unknown field `every`"),
        (|c| c["models"][0]["price"] = json!({"input": -1.0, "output": 1.0}), "models[0].price.input: must be a price from 0 to"),
        (|c| c["models"][1]["price"] = json!({"input": 1.0, "output": 1e300}), "models[1].price.output"),
        (|c| c["models"][1]["price"] = json!({"input": 1.0, "cached_input": -0.5, "output": 1.0}), "models[1].price.cached_input"),
        (|c| c["models"][1]["price"] = json!({"input": 1.0}), "missing field `output`"),
        (|c| c["models"][1]["price"] = json!({"input": "1", "output": 1.0}), "invalid type"),
        (|c| c["models"][1]["price"] = json!({"input": 1.0, "output": 1.0, "currency": "EUR"}), "unknown field `currency`"),
        (|c| c["token_limits"] = json!({"settlement": "later"}), "unknown variant `later`"),
        (|c| c["backends"][0]["authorization"] = json!("Bearer x\r\nevil: 1"), "backends[0].authorization"),
        (|c| c["headers"] = json!({"backend": "Authorization"}), "headers.backend"),
        (|c| c["headers"] = json!({"backend": "authorization"}), "reserved"),
        (|c| c["headers"] = json!({"model": "x-gateway-backend"}), "two purposes"),
        (|c| c["headers"] = json!({"color": "x"}), "unknown field `color`"),
        (|c| c["doc_url"] = json!(""), "doc_url"),
        (|c| c["id_secret"] = json!("short"), "id_secret"),
        (|c| c["limits"] = json!({"max_request_bytes": 0}), "limits.max_request_bytes"),
        (|c| c["limits"] = json!({"max_request_bytes": -1}), "invalid value"),
        (|c| c["limits"] = json!({"max_body": 1}), "unknown field `max_body`"),
        (|c| c["models"][0]["context_window"] = json!(0), "models[0].context_window: must be 1 to"),
        (|c| c["models"][1]["max_output_tokens"] = json!(100_000_001), "models[1].max_output_tokens"),
        (|c| c["models"][0]["context_window"] = json!(-1), "invalid value"),
        (|c| { c["models"][0]["context_window"] = json!(100); c["models"][0]["max_output_tokens"] = json!(200) }, "more than the context window"),
        (|c| c["models"][1]["backends"] = json!([{"name": "backend-b"}]), "models[1]: give `backend` or `backends`, not both"),
        (|c| { c["models"][1].as_object_mut().unwrap().remove("backend"); }, "models[1]: missing `backend`"),
        (|c| { c["models"][1].as_object_mut().unwrap().remove("backend"); c["models"][1]["backends"] = json!([{"name": "backend-a"}, {"name": "backend-a"}]) }, "models[1].backends[1].name: backend `backend-a` is listed twice"),
        (|c| { c["models"][1].as_object_mut().unwrap().remove("backend"); c["models"][1]["backends"] = json!([{"name": "a", "upstream_model": ""}]) }, "models[1].backends[0].upstream_model"),
        (|c| { c["models"][1].as_object_mut().unwrap().remove("backend"); c["models"][1]["backends"] = json!([{"name": "a b"}]) }, "models[1].backends[0].name"),
        (|c| { c["models"][1].as_object_mut().unwrap().remove("backend"); c["models"][1]["backends"] = json!([{"name": "a", "weight": 1}]) }, "unknown field `weight`"),
    ];
    for (edit, needle) in cases {
        let mut config = sample();
        edit(&mut config);
        let err = compile(&config).unwrap_err();
        assert!(err.0.contains(needle), "expected `{needle}` in: {err}");
    }
}

#[test]
fn garbage_is_refused() {
    for bytes in [
        &b""[..],
        b"null",
        b"[]",
        b"{",
        b"\xff",
        b"{\"api_keys\": 5}",
    ] {
        assert!(Gateway::try_from(bytes).is_err());
    }
}

#[test]
fn hex_digests_round_trip_and_rejects() {
    let d = crate::auth::key_digest(b"sk-demo");
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(parse_hex_digest(&hex), Some(d));
    assert_eq!(parse_hex_digest(&hex.to_uppercase()), Some(d));
    assert_eq!(parse_hex_digest("abc"), None);
    assert_eq!(parse_hex_digest(&"g".repeat(64)), None);
    assert_eq!(parse_hex_digest(&"é".repeat(32)), None);
}

#[test]
fn configurations_written_before_backend_lists_still_load() {
    // `backends` names only the backend with a credential; the models'
    // other backend is undeclared: neither probed nor given a credential.
    let mut config = sample();
    config["backends"] = json!([{"name": "backend-b", "authorization": "Bearer b"}]);
    let g = compile(&config).unwrap();
    assert!(g.probes.is_empty());
    assert_eq!(g.probed_backends()[0].name, "backend-a");
    assert!(g.probed_backends()[0].probe.is_none());
}
