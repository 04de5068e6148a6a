//! The body stage: the model, the fields, where the request goes and what
//! it costs.

use super::*;
use crate::json;

#[test]
fn body_stage_table() {
    let chat = |body: &str| {
        run(
            "POST",
            "/v1/chat/completions",
            &[DEMO, JSON_CT],
            body.as_bytes(),
        )
    };
    let msgs = r#"[{"role":"user","content":"hi"}]"#;
    let cases: Vec<((HeaderEdits, AfterBody), u16, Option<&str>, Option<&str>)> = vec![
        (chat("{not json"), 400, None, None),
        (chat("[1,2]"), 400, None, None),
        (chat(r#"{"messages":[]}"#), 400, Some("model"), None),
        (
            chat(r#"{"model":5,"messages":[]}"#),
            400,
            Some("model"),
            None,
        ),
        (
            chat(&format!(r#"{{"model":"gpt-5","messages":{msgs}}}"#)),
            404,
            Some("model"),
            Some("model_not_found"),
        ),
        (
            chat(&format!(r#"{{"model":"bge-m3","messages":{msgs}}}"#)),
            400,
            Some("model"),
            None,
        ),
        (
            chat(r#"{"model":"qwen2.5-coder-7b"}"#),
            400,
            Some("messages"),
            None,
        ),
        (
            chat(&format!(
                r#"{{"model":"qwen2.5-coder-7b","messages":{msgs},"n":2}}"#
            )),
            400,
            Some("n"),
            None,
        ),
        (
            chat(&format!(
                r#"{{"model":"qwen2.5-coder-7b","model":"bge-m3","messages":{msgs}}}"#
            )),
            400,
            Some("model"),
            None,
        ),
        (
            run("POST", "/v1/chat/completions", &[DEMO, JSON_CT], b""),
            400,
            None,
            None,
        ),
        (
            run(
                "POST",
                "/v1/embeddings",
                &[EMBED, JSON_CT],
                br#"{"model":"qwen2.5-coder-7b","input":"x"}"#,
            ),
            404,
            Some("model"),
            Some("model_not_found"),
        ),
        (
            run(
                "POST",
                "/v1/embeddings",
                &[DEMO, JSON_CT],
                br#"{"model":"whisper-large-v3","input":"x"}"#,
            ),
            400,
            Some("model"),
            None,
        ),
        (
            run(
                "POST",
                "/v1/audio/transcriptions",
                &[DEMO, ("content-type", "application/json")],
                b"{}",
            ),
            415,
            None,
            None,
        ),
    ];
    for (i, ((_, after), status, param, code)) in cases.iter().enumerate() {
        let AfterBody::Reply(reply) = after else {
            panic!("case {i}: forwarded")
        };
        assert_eq!(
            reply.status,
            *status,
            "case {i}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        let v = envelope(reply);
        assert_eq!(v["error"]["param"].as_str(), *param, "case {i}: {v}");
        assert_eq!(v["error"]["code"].as_str(), *code, "case {i}: {v}");
    }
}

#[test]
fn routes_to_the_model_backend_and_keeps_the_body() {
    let body = br#"{"model":"qwen2.5-coder-7b","messages":[{"role":"user","content":"hi"}],"n":1,"extra":{"kept":true}}"#;
    let (_, after) = run("POST", "/v1/chat/completions", &[DEMO, JSON_CT], body);
    let (edits, new_body) = forwarded(after);
    assert_eq!(set_value(&edits, "x-gateway-backend"), Some("backend-a"));
    assert_eq!(
        set_value(&edits, "x-gateway-model"),
        Some("qwen2.5-coder-7b")
    );
    assert_eq!(set_value(&edits, "authorization"), None);
    assert_eq!(new_body, None, "an unchanged body is not rewritten");
}

#[test]
fn alias_is_rewritten_to_the_upstream_name_by_splicing() {
    let body = br#"{ "messages":[{"role":"user","content":"hi"}], "model" : "gpt-4o-mini", "x":1}"#;
    let (_, after) = run("POST", "/v1/chat/completions", &[DEMO, JSON_CT], body);
    let (edits, new_body) = forwarded(after);
    assert_eq!(
        set_value(&edits, "x-gateway-model"),
        Some("llama-3.1-8b-instruct")
    );
    assert_eq!(
        String::from_utf8(new_body.unwrap()).unwrap(),
        r#"{ "messages":[{"role":"user","content":"hi"}], "model" : "meta-llama/Llama-3.1-8B-Instruct", "x":1}"#
    );
}

#[test]
fn streams_are_marked_for_their_route_and_responses_renamed() {
    let plan = |body: &str| match run(
        "POST",
        "/v1/chat/completions",
        &[DEMO, JSON_CT],
        body.as_bytes(),
    )
    .1
    {
        AfterBody::Forward {
            edits, response, ..
        } => (edits, response),
        AfterBody::Reply(r) => panic!("rejected: {}", String::from_utf8_lossy(&r.body)),
    };
    let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
    let (edits, response) = plan(&format!(
        r#"{{"model":"gpt-4o-mini",{msgs},"stream":true}}"#
    ));
    assert_eq!(set_value(&edits, "x-gateway-stream"), Some("true"));
    // The alias's model is known upstream by another name: responses are
    // read and renamed to the canonical id.
    assert!(response.adjust_body);
    assert_eq!(
        response
            .renames
            .apply(br#"{"model":"meta-llama/Llama-3.1-8B-Instruct"}"#),
        Some(br#"{"model":"llama-3.1-8b-instruct"}"#.to_vec())
    );
    for body in [
        format!(r#"{{"model":"qwen2.5-coder-7b",{msgs}}}"#),
        format!(r#"{{"model":"qwen2.5-coder-7b",{msgs},"stream":false}}"#),
    ] {
        let (edits, response) = plan(&body);
        assert_eq!(set_value(&edits, "x-gateway-stream"), None, "{body}");
        assert!(response.renames.is_empty(), "same name: nothing to rename");
    }
}

#[test]
fn backend_credential_replaces_the_client_key() {
    let (head, after) = run(
        "POST",
        "/v1/embeddings",
        &[EMBED, JSON_CT],
        br#"{"model":"bge-m3","input":"x"}"#,
    );
    assert!(head.remove.iter().any(|n| n == "authorization"));
    let (edits, _) = forwarded(after);
    assert_eq!(
        set_value(&edits, "authorization"),
        Some("Bearer backend-b-token")
    );
    assert_eq!(set_value(&edits, "x-gateway-backend"), Some("backend-b"));
}

#[test]
fn transcriptions_read_the_model_from_the_form() {
    let body = b"--b0\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-large-v3\r\n--b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF\r\n--b0--\r\n";
    let ct = ("content-type", "multipart/form-data; boundary=b0");
    let (_, after) = run("POST", "/v1/audio/transcriptions", &[DEMO, ct], body);
    let (edits, new_body) = forwarded(after);
    assert_eq!(set_value(&edits, "x-gateway-backend"), Some("backend-b"));
    assert_eq!(new_body, None);
    let wrong = String::from_utf8_lossy(body).replace("whisper-large-v3", "qwen2.5-coder-7b");
    let (_, after) = run(
        "POST",
        "/v1/audio/transcriptions",
        &[DEMO, ct],
        wrong.as_bytes(),
    );
    assert!(matches!(after, AfterBody::Reply(Reply { status: 400, .. })));
}

#[test]
fn every_forwarded_request_carries_its_token_cost() {
    let g = gateway();
    let outcome = g.on_request_headers(&headers("GET", "/v1/responses/r1", &[DEMO]), true);
    assert_eq!(set_value(&outcome.edits, "x-gateway-token-cost"), Some("1"));
    let body = br#"{"model":"qwen2.5-coder-7b","messages":[{"role":"user","content":"abcdabcd"}],"max_tokens":100}"#;
    let (_, after) = run("POST", "/v1/chat/completions", &[DEMO, JSON_CT], body);
    let (edits, _) = forwarded(after);
    assert_eq!(set_value(&edits, "x-gateway-token-cost"), Some("109"));
    // A client cannot pick its own cost.
    let outcome = g.on_request_headers(
        &headers(
            "POST",
            "/v1/chat/completions",
            &[DEMO, ("x-gateway-token-cost", "0")],
        ),
        false,
    );
    assert!(outcome
        .edits
        .remove
        .iter()
        .any(|n| n == "x-gateway-token-cost"));
}

#[test]
fn streams_always_ask_the_backend_for_usage() {
    let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
    let cases = [
        // (body, what the backend gets for stream_options, hide the usage chunk)
        (
            format!(r#"{{"model":"qwen2.5-coder-7b",{msgs},"stream":true}}"#),
            Some(r#"{"include_usage":true}"#),
            true,
        ),
        (
            format!(
                r#"{{"model":"qwen2.5-coder-7b",{msgs},"stream":true,"stream_options":{{"include_obfuscation":false}}}}"#
            ),
            Some(r#"{"include_usage":true,"include_obfuscation":false}"#),
            true,
        ),
        (
            format!(
                r#"{{"model":"qwen2.5-coder-7b",{msgs},"stream":true,"stream_options":{{"include_usage":false}}}}"#
            ),
            Some(r#"{"include_usage":true}"#),
            true,
        ),
        (
            format!(r#"{{"model":"qwen2.5-coder-7b",{msgs},"stream":true,"stream_options":{{}}}}"#),
            Some(r#"{"include_usage":true}"#),
            true,
        ),
        // null is "not set": replaced, never a second member beside it.
        (
            format!(r#"{{"model":"qwen2.5-coder-7b",{msgs},"stream":true,"stream_options":null}}"#),
            Some(r#"{"include_usage":true}"#),
            true,
        ),
        (
            format!(
                r#"{{"model":"qwen2.5-coder-7b",{msgs},"stream":true,"stream_options":{{"include_usage":true}}}}"#
            ),
            Some(r#"{"include_usage":true}"#),
            false,
        ),
        (
            format!(r#"{{"model":"qwen2.5-coder-7b",{msgs}}}"#),
            None,
            false,
        ),
    ];
    for (body, expected, hide) in cases {
        let (_, after) = run(
            "POST",
            "/v1/chat/completions",
            &[DEMO, JSON_CT],
            body.as_bytes(),
        );
        let AfterBody::Forward {
            new_body, response, ..
        } = after
        else {
            panic!("{body}")
        };
        let sent = new_body.unwrap_or_else(|| body.clone().into_bytes());
        // Forwarded bodies never carry a duplicate member.
        assert!(json::parse_document(&sent).is_ok(), "{body}");
        let v: Value = serde_json::from_slice(&sent).unwrap();
        match expected {
            Some(options) => assert_eq!(
                v["stream_options"],
                serde_json::from_str::<Value>(options).unwrap(),
                "{body}"
            ),
            None => assert!(v.get("stream_options").is_none()),
        }
        assert_eq!(response.hide_usage_chunk, hide, "{body}");
        assert!(response.adjust_body);
    }
}

#[test]
fn numbers_at_the_edges_of_json() {
    let chat = |extra: &str| {
        let body = format!(
            r#"{{"model":"qwen2.5-coder-7b","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#
        );
        run(
            "POST",
            "/v1/chat/completions",
            &[DEMO, JSON_CT],
            body.as_bytes(),
        )
        .1
    };
    // (member, status, param, words of the message)
    let cases: &[(&str, u16, Option<&str>, &str)] = &[
        (r#","max_tokens":1e400"#, 400, None, "could not parse"),
        (r#","temperature":-1e400"#, 400, None, "could not parse"),
        (r#","temperature":NaN"#, 400, None, "could not parse"),
        (r#","temperature":Infinity"#, 400, None, "could not parse"),
        (r#","temperature":-Infinity"#, 400, None, "could not parse"),
        // 2^64 does not fit any integer type; 2^63 only an unsigned one.
        (
            r#","max_tokens":18446744073709551616"#,
            400,
            Some("max_tokens"),
            "out of the integer range",
        ),
        (
            r#","max_tokens":9223372036854775808"#,
            400,
            Some("max_tokens"),
            "out of the integer range",
        ),
        (
            r#","seed":-18446744073709551616"#,
            400,
            Some("seed"),
            "out of the integer range",
        ),
        (
            r#","temperature":18446744073709551616"#,
            400,
            Some("temperature"),
            "out of range",
        ),
        // JSON parsers read -0 as a decimal: refused where an integer is expected...
        (
            r#","max_tokens":-0"#,
            400,
            Some("max_tokens"),
            "expected an integer",
        ),
        (
            r#","max_tokens":1.0"#,
            400,
            Some("max_tokens"),
            "expected an integer",
        ),
    ];
    for (member, status, param, needle) in cases {
        let AfterBody::Reply(reply) = chat(member) else {
            panic!("{member}: forwarded")
        };
        assert_eq!(reply.status, *status, "{member}");
        let v = envelope(&reply);
        assert_eq!(v["error"]["param"].as_str(), *param, "{member}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{member}: {message}");
    }
    // ...and accepted, forwarded as sent, where any number in range is.
    for member in [
        r#","temperature":-0"#,
        r#","temperature":-0.0"#,
        r#","top_p":1e-400"#,
        r#","max_tokens":9223372036854775807"#,
    ] {
        let (_, new_body) = forwarded(chat(member));
        assert_eq!(new_body, None, "{member}");
    }
}
