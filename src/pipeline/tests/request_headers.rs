//! The header stage: refusals, the key, the models listing, and what the
//! headers say about the body.

use super::*;

#[test]
fn header_stage_errors() {
    let cases: &[(&str, &str, &[(&str, &str)], u16, Option<&str>, &str)] = &[
        (
            "POST",
            "/v1/chat/completions",
            &[],
            401,
            None,
            "didn't provide an API key",
        ),
        (
            "POST",
            "/v1/chat/completions",
            &[("authorization", "Bearer nope")],
            401,
            Some("invalid_api_key"),
            "Incorrect API key",
        ),
        (
            "POST",
            "/v1/chat/completions",
            &[("authorization", "Token sk-demo")],
            401,
            None,
            "Only bearer",
        ),
        (
            "GET",
            "/v1/chat/completions",
            &[DEMO],
            405,
            None,
            "use POST",
        ),
        (
            "POST",
            "/v1/nothing",
            &[DEMO],
            404,
            None,
            "Invalid URL (POST /v1/nothing)",
        ),
        ("GET", "/", &[DEMO], 404, None, "Invalid URL"),
        ("POST", "/v1/batches", &[DEMO], 404, None, "Fan out"),
        (
            "POST",
            "/v1/audio/translations",
            &[DEMO],
            404,
            None,
            "transcriptions",
        ),
        ("GET", "/v1/files", &[DEMO], 404, None, "inline"),
        (
            "GET",
            "/v1/models/unknown",
            &[DEMO],
            404,
            Some("model_not_found"),
            "`unknown` does not exist",
        ),
        (
            "GET",
            "/v1/models/llama-3.1-8b-instruct",
            &[EMBED],
            404,
            Some("model_not_found"),
            "does not exist",
        ),
        (
            "OPTIONS",
            "/v1/chat/completions",
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
            ],
            403,
            None,
            "server-to-server",
        ),
        (
            "OPTIONS",
            "/v1/chat/completions",
            &[DEMO],
            405,
            None,
            "OPTIONS is not allowed",
        ),
    ];
    let g = gateway();
    for (method, path, extra, status, code, needle) in cases {
        let outcome = g.on_request_headers(&headers(method, path, extra), true);
        let reply = reply_of(&outcome);
        assert_eq!(reply.status, *status, "{method} {path}");
        let v = envelope(reply);
        assert_eq!(v["error"]["code"].as_str(), *code, "{method} {path}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{method} {path}: {message}");
        assert!(!reply
            .headers
            .iter()
            .any(|(n, _)| n.starts_with("access-control-")));
    }
}

#[test]
fn method_not_allowed_carries_allow() {
    let g = gateway();
    let outcome = g.on_request_headers(&headers("DELETE", "/v1/models", &[DEMO]), true);
    assert!(reply_of(&outcome)
        .headers
        .contains(&("allow".into(), "GET".into())));
}

#[test]
fn internal_headers_are_always_stripped_and_key_id_set() {
    let g = gateway();
    let spoofed = [
        DEMO,
        JSON_CT,
        ("x-gateway-key-id", "admin"),
        ("x-gateway-backend", "backend-b"),
        ("x-gateway-model", "bge-m3"),
    ];
    let outcome = g.on_request_headers(&headers("POST", "/v1/chat/completions", &spoofed), false);
    for name in [
        "x-gateway-key-id",
        "x-gateway-backend",
        "x-gateway-model",
        "authorization",
    ] {
        assert!(outcome.edits.remove.iter().any(|n| n == name), "{name}");
    }
    assert_eq!(set_value(&outcome.edits, "x-gateway-key-id"), Some("demo"));
    assert_eq!(set_value(&outcome.edits, "x-gateway-token-cost"), Some("1"));
    assert_eq!(outcome.edits.set.len(), 2);
    assert!(matches!(outcome.next, AfterHeaders::ReadBody(_)));
    // Also on rejected requests.
    let outcome = g.on_request_headers(
        &headers(
            "POST",
            "/v1/chat/completions",
            &[("x-gateway-key-id", "admin")],
        ),
        false,
    );
    assert!(outcome.edits.remove.iter().any(|n| n == "x-gateway-key-id"));
}

#[test]
fn list_models_is_filtered_by_key() {
    let g = gateway();
    let ids = |auth| {
        let outcome = g.on_request_headers(&headers("GET", "/v1/models?limit=5", &[auth]), true);
        let reply = reply_of(&outcome);
        assert_eq!(reply.status, 200);
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["object"], "list");
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(DEMO),
        [
            "llama-3.1-8b-instruct",
            "qwen2.5-coder-7b",
            "bge-m3",
            "whisper-large-v3"
        ]
    );
    assert_eq!(ids(EMBED), ["bge-m3"]);
    let outcome = g.on_request_headers(&headers("GET", "/v1/models/gpt-4o-mini", &[DEMO]), true);
    let v: Value = serde_json::from_slice(&reply_of(&outcome).body).unwrap();
    assert_eq!(v["id"], "llama-3.1-8b-instruct");
    assert_eq!(v["category"], "text");
}

#[test]
fn compressed_bodies_are_refused_before_they_are_read() {
    let g = gateway();
    let chat = "/v1/chat/completions";
    for coding in ["gzip", "GZIP", "br", "deflate", "zstd", "identity, gzip"] {
        let next = header_stage(&g, chat, &[DEMO, JSON_CT, ("content-encoding", coding)]);
        refused(&next, 415, "Send the body uncompressed");
    }
    for coding in ["identity", "Identity", ""] {
        let next = header_stage(&g, chat, &[DEMO, JSON_CT, ("content-encoding", coding)]);
        assert!(
            matches!(next, AfterHeaders::ReadBody(_)),
            "{coding}: {next:?}"
        );
    }
    // Multipart bodies too.
    let form = ("content-type", "multipart/form-data; boundary=b0");
    let next = header_stage(
        &g,
        "/v1/audio/transcriptions",
        &[DEMO, form, ("content-encoding", "gzip")],
    );
    refused(&next, 415, "uncompressed");
    // Without a body there is nothing to decompress: the empty body is the fault.
    let gzip = ("content-encoding", "gzip");
    let outcome = g.on_request_headers(&headers("POST", chat, &[DEMO, JSON_CT, gzip]), true);
    refused(&outcome.next, 400, "body is empty");
    let next = header_stage(&g, chat, &[DEMO, JSON_CT, gzip, ("content-length", "0")]);
    assert!(matches!(next, AfterHeaders::ReadBody(_)), "{next:?}");
    // Authentication comes first.
    let next = header_stage(&g, chat, &[JSON_CT, gzip]);
    refused(&next, 401, "API key");
}

#[test]
fn content_type_must_match_the_endpoint() {
    let g = gateway();
    let chat = "/v1/chat/completions";
    let transcriptions = "/v1/audio/transcriptions";
    let accepted: &[(&str, &str)] = &[
        (chat, "application/json"),
        (chat, "Application/JSON"),
        (chat, "application/json; charset=utf-8"),
        (chat, "application/json;charset=\"UTF-8\""),
        (chat, " application/json ; charset=utf8"),
        ("/v1/embeddings", "application/json; foo=bar"),
        (transcriptions, "multipart/form-data; boundary=b0"),
        (transcriptions, "Multipart/Form-Data; boundary=\"x y\""),
    ];
    for (path, content_type) in accepted {
        let next = header_stage(&g, path, &[DEMO, ("content-type", content_type)]);
        assert!(
            matches!(next, AfterHeaders::ReadBody(_)),
            "{path} {content_type}: {next:?}"
        );
    }
    let refusals: &[(&str, Option<&str>, &str)] = &[
        (chat, None, "has no content type"),
        (chat, Some(""), "has no content type"),
        (chat, Some("text/plain"), "has `text/plain`"),
        (
            chat,
            Some("application/x-www-form-urlencoded"),
            "Content-Type: application/json",
        ),
        (
            chat,
            Some("application/jsonx"),
            "Content-Type: application/json",
        ),
        (chat, Some("text/json"), "Content-Type: application/json"),
        // Two Content-Type headers, as Envoy joins them.
        (
            chat,
            Some("application/json,text/plain"),
            "Content-Type: application/json",
        ),
        (
            chat,
            Some("application/json; charset=utf-16"),
            "must be UTF-8",
        ),
        (
            chat,
            Some("multipart/form-data; boundary=b0"),
            "takes a JSON body",
        ),
        (transcriptions, None, "multipart/form-data; boundary="),
        (
            transcriptions,
            Some("application/json"),
            "has `application/json`",
        ),
        (transcriptions, Some("multipart/form-data"), "boundary="),
        (
            transcriptions,
            Some("multipart/mixed; boundary=b0"),
            "multipart/form-data",
        ),
    ];
    for (path, content_type, needle) in refusals {
        let mut extra = vec![DEMO];
        if let Some(value) = content_type {
            extra.push(("content-type", value));
        }
        let next = header_stage(&g, path, &extra);
        refused(&next, 415, needle);
        // Also when no body follows.
        let outcome = g.on_request_headers(&headers("POST", path, &extra), true);
        refused(&outcome.next, 415, needle);
    }
    // Control characters in the value are not echoed.
    let next = header_stage(&g, chat, &[DEMO, ("content-type", "text/x\u{1b}[31m")]);
    let AfterHeaders::Reply(reply) = next else {
        panic!()
    };
    assert!(!String::from_utf8_lossy(&reply.body).contains('\u{1b}'));
    // Requests without a body are not concerned.
    let outcome = g.on_request_headers(&headers("GET", "/v1/models", &[DEMO]), true);
    assert_eq!(reply_of(&outcome).status, 200);
}

#[test]
fn bodies_over_the_limit_are_413_before_or_while_they_arrive() {
    let g = gateway_with_max_body(100);
    let chat = "/v1/chat/completions";
    // An announced length over the limit: refused before the body is read.
    let next = header_stage(&g, chat, &[DEMO, JSON_CT, ("content-length", "101")]);
    refused(&next, 413, "at most 100 bytes");
    for length in ["100", "0", "not-a-number"] {
        let next = header_stage(&g, chat, &[DEMO, JSON_CT, ("content-length", length)]);
        assert!(
            matches!(next, AfterHeaders::ReadBody(_)),
            "{length}: {next:?}"
        );
    }
    // A chunked body: refused as soon as more than the limit has arrived.
    assert_eq!(g.on_partial_body(0), None);
    assert_eq!(g.on_partial_body(100), None);
    let reply = g.on_partial_body(101).unwrap();
    assert_eq!(reply.status, 413);
    assert!(envelope(&reply)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("larger than this gateway accepts"));
    // The whole body, as the last check.
    let AfterHeaders::ReadBody(pending) = header_stage(&g, chat, &[DEMO, JSON_CT]) else {
        panic!()
    };
    let body = format!(
        r#"{{"model":"qwen2.5-coder-7b","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(100)
    );
    let AfterBody::Reply(reply) = g.on_request_body(&pending, body.as_bytes()) else {
        panic!("forwarded")
    };
    assert_eq!(reply.status, 413);
    // The default limit is 26 MiB, and the message says so.
    let g = gateway();
    let next = header_stage(&g, chat, &[DEMO, JSON_CT, ("content-length", "27262977")]);
    refused(&next, 413, "at most 27262976 bytes (26 MiB)");
    let next = header_stage(&g, chat, &[DEMO, JSON_CT, ("content-length", "27262976")]);
    assert!(matches!(next, AfterHeaders::ReadBody(_)));
    assert_eq!(g.on_partial_body(27_262_976), None);
    assert!(g.on_partial_body(27_262_977).is_some());
}
