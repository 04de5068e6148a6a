use super::request_body::model_member;
use super::rewrite::rewrite_json;
use super::*;
use crate::config::tests::gateway;
use crate::config::Gateway;
use crate::json;
use crate::validate::Rewrite;
use serde_json::Value;

fn headers(method: &str, path: &str, extra: &[(&str, &str)]) -> Headers {
    let mut h = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"gateway".to_vec()),
    ];
    h.extend(
        extra
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
    );
    Headers::from(h)
}

const DEMO: (&str, &str) = ("authorization", "Bearer sk-demo");
const EMBED: (&str, &str) = ("authorization", "Bearer sk-embed");
const JSON_CT: (&str, &str) = ("content-type", "application/json");

fn reply_of(outcome: &HeadersOutcome) -> &Reply {
    match &outcome.next {
        AfterHeaders::Reply(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn envelope(reply: &Reply) -> Value {
    assert!(reply
        .headers
        .contains(&("content-type".into(), "application/json".into())));
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert_eq!(v["error"]["doc_url"], "https://example.com/gateway-errors");
    v
}

/// Runs a whole request through both stages.
fn run(method: &str, path: &str, extra: &[(&str, &str)], body: &[u8]) -> (HeaderEdits, AfterBody) {
    let g = gateway();
    let h = headers(method, path, extra);
    let outcome = g.on_request_headers(&h, body.is_empty());
    let after = match outcome.next {
        AfterHeaders::Reply(r) => AfterBody::Reply(r),
        AfterHeaders::Route(plan) => AfterBody::Forward {
            edits: HeaderEdits::default(),
            new_body: None,
            response: plan,
        },
        AfterHeaders::ReadBody(p) => g.on_request_body(&p, body),
    };
    (outcome.edits, after)
}

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
fn calls_by_id_are_routed_by_the_id_for_its_key_only() {
    let g = gateway();
    let codec = g.ids.clone().unwrap();
    let id = codec.issue("demo", "backend-b", "resp_backend-b_7");
    let outcome = g.on_request_headers(
        &headers("GET", &format!("/v1/responses/{id}?include=x"), &[DEMO]),
        true,
    );
    let AfterHeaders::Route(plan) = outcome.next else {
        panic!("{:?}", outcome.next)
    };
    assert_eq!(
        set_value(&outcome.edits, ":path"),
        Some("/v1/responses/resp_backend-b_7?include=x")
    );
    assert_eq!(
        set_value(&outcome.edits, "x-gateway-backend"),
        Some("backend-b")
    );
    assert_eq!(
        set_value(&outcome.edits, "authorization"),
        Some("Bearer backend-b-token")
    );
    assert_eq!(plan.backend.as_deref(), Some("backend-b"));
    assert_eq!(
        plan.ids,
        Some(IdRewrite {
            issue: None,
            known: vec![("resp_backend-b_7".into(), id.clone())]
        })
    );
    // DELETE, deferred completions and video jobs alike.
    for (method, path) in [
        ("DELETE", format!("/v1/responses/{id}")),
        ("GET", format!("/v1/chat/deferred-completion/{id}")),
        ("GET", format!("/v1/videos/{id}")),
    ] {
        let outcome = g.on_request_headers(&headers(method, &path, &[DEMO]), true);
        assert!(
            matches!(outcome.next, AfterHeaders::Route(_)),
            "{method} {path}"
        );
    }
    // Another key, a forged id, an id never issued: 404, nothing routed.
    for (auth, path) in [
        (EMBED, format!("/v1/responses/{id}")),
        (DEMO, "/v1/responses/resp_backend-b_7".to_string()),
        (
            DEMO,
            format!("/v1/responses/{}", id.replace("resp_", "resp_x")),
        ),
    ] {
        let outcome = g.on_request_headers(&headers("GET", &path, &[auth]), true);
        let reply = reply_of(&outcome);
        assert_eq!(reply.status, 404, "{path}");
        assert!(envelope(reply)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("No response found"));
        assert_eq!(set_value(&outcome.edits, "x-gateway-backend"), None);
    }
}

#[test]
fn created_objects_get_routed_ids_and_previous_response_id_is_checked() {
    let g = gateway();
    let body = br#"{"model":"qwen2.5-coder-7b","input":"hi"}"#;
    let (_, after) = run("POST", "/v1/responses", &[DEMO, JSON_CT], body);
    let AfterBody::Forward { response, .. } = after else {
        panic!()
    };
    let Some(mut ids) = response.ids.clone() else {
        panic!("responses get routed ids")
    };
    let rewritten = g
        .rewrite_ids(
            &mut ids,
            br#"{"id":"resp_a_1","object":"response","output":[{"id":"msg_1"}]}"#,
        )
        .unwrap();
    assert_eq!(ids.issue, None);
    let (original, issued) = &ids.known[0];
    assert_eq!(original, "resp_a_1");
    assert!(String::from_utf8(rewritten)
        .unwrap()
        .contains(&format!(r#""id":"{issued}""#)));
    assert_eq!(
        g.ids.as_ref().unwrap().open("demo", issued),
        Some(("backend-a".into(), "resp_a_1".into()))
    );
    // previous_response_id: the backend gets its own id back.
    let body = format!(
        r#"{{"model":"qwen2.5-coder-7b","input":"more","previous_response_id":"{issued}"}}"#
    );
    let (_, after) = run("POST", "/v1/responses", &[DEMO, JSON_CT], body.as_bytes());
    let AfterBody::Forward { new_body, .. } = after else {
        panic!()
    };
    let sent: Value = serde_json::from_slice(&new_body.unwrap()).unwrap();
    assert_eq!(sent["previous_response_id"], "resp_a_1");
    // ... only for the key that made it, and on the same backend.
    let (_, after) = run("POST", "/v1/responses", &[EMBED, JSON_CT], body.as_bytes());
    assert!(matches!(after, AfterBody::Reply(Reply { status: 404, .. })));
    let other_backend = g
        .ids
        .as_ref()
        .unwrap()
        .issue("demo", "backend-b", "resp_b_1");
    let body = format!(
        r#"{{"model":"qwen2.5-coder-7b","input":"x","previous_response_id":"{other_backend}"}}"#
    );
    let (_, after) = run("POST", "/v1/responses", &[DEMO, JSON_CT], body.as_bytes());
    assert!(matches!(after, AfterBody::Reply(Reply { status: 400, .. })));
    // Deferred chat completions and video jobs issue ids too; plain chat does not.
    let deferred = br#"{"model":"qwen2.5-coder-7b","messages":[{"role":"user","content":"hi"}],"deferred":true}"#;
    let (_, after) = run("POST", "/v1/chat/completions", &[DEMO, JSON_CT], deferred);
    let AfterBody::Forward { response, .. } = after else {
        panic!()
    };
    assert_eq!(
        response.ids.and_then(|i| i.issue).map(|i| i.field),
        Some("request_id")
    );
    let plain = br#"{"model":"qwen2.5-coder-7b","messages":[{"role":"user","content":"hi"}]}"#;
    let (_, after) = run("POST", "/v1/chat/completions", &[DEMO, JSON_CT], plain);
    let AfterBody::Forward { response, .. } = after else {
        panic!()
    };
    assert_eq!(response.ids, None);
}

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

fn forwarded(after: AfterBody) -> (HeaderEdits, Option<Vec<u8>>) {
    match after {
        AfterBody::Forward {
            edits, new_body, ..
        } => (edits, new_body),
        AfterBody::Reply(r) => panic!(
            "rejected: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ),
    }
}

fn set_value<'a>(edits: &'a HeaderEdits, name: &str) -> Option<&'a str> {
    edits
        .set
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
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
fn local_replies_become_envelopes() {
    let g = gateway();
    let request = RequestRecord {
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        plan: ResponsePlan::default(),
    };
    let upstream_headers = Headers::from(vec![
        ("retry-after".to_string(), b"3".to_vec()),
        ("x-ratelimit-limit".to_string(), b"5".to_vec()),
    ]);
    let cases = [
        (404, "route_not_found", "No backend route"),
        (413, "request_payload_too_large", "larger than"),
        (408, "request_overall_timeout", "not received in time"),
        (503, "no_healthy_upstream", "unavailable"),
        (
            503,
            "upstream_reset_before_response_started{connection_failure}",
            "unavailable",
        ),
        (429, "request_rate_limited", "Rate limit"),
        (431, "header_overflow", "could not complete"),
        (
            503,
            "rate_limiter_error",
            "rate-limit service is unavailable",
        ),
    ];
    for (status, details, needle) in cases {
        let reply = g
            .rewrite_local_reply(status, details, &request, &upstream_headers)
            .unwrap();
        assert_eq!(reply.status, status);
        let v = envelope(&reply);
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{details}: {v}"
        );
        assert!(reply.headers.contains(&("retry-after".into(), "3".into())));
    }
    assert!(g
        .rewrite_local_reply(404, "via_upstream", &request, &Headers::default())
        .is_none());
    assert!(g
        .rewrite_local_reply(200, "route_not_found", &request, &Headers::default())
        .is_none());
    assert!(g
        .rewrite_local_reply(503, "", &request, &Headers::default())
        .is_none());
}

#[test]
fn responses_lose_cors_grants_and_draft_headers_and_gain_openai_names() {
    let g = gateway();
    let h = Headers::from(vec![
        (":status".to_string(), b"200".to_vec()),
        ("access-control-allow-origin".to_string(), b"*".to_vec()),
        (
            "Access-Control-Allow-Credentials".to_string(),
            b"true".to_vec(),
        ),
        ("content-type".to_string(), b"application/json".to_vec()),
        ("x-ratelimit-limit".to_string(), b"3".to_vec()),
        ("x-ratelimit-remaining".to_string(), b"2".to_vec()),
        ("x-ratelimit-reset".to_string(), b"0".to_vec()),
    ]);
    let request = RequestRecord::default();
    let AfterResponseHeaders::Edit { edits, body } =
        g.on_response_headers(200, "via_upstream", &request, &h)
    else {
        panic!("a backend response is not replaced")
    };
    assert_eq!(
        body,
        BodyMode::Untouched,
        "not a request whose body is adjusted"
    );
    for name in [
        "access-control-allow-origin",
        "Access-Control-Allow-Credentials",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(edits.remove.iter().any(|n| n == name), "{name}");
    }
    assert!(!edits.remove.iter().any(|n| n == "content-type"));
    assert_eq!(set_value(&edits, "x-ratelimit-limit-requests"), Some("3"));
    assert_eq!(
        set_value(&edits, "x-ratelimit-remaining-requests"),
        Some("2")
    );
    assert_eq!(set_value(&edits, "x-ratelimit-reset-requests"), Some("0ms"));
}

#[test]
fn limiter_429_becomes_a_rate_limit_envelope() {
    let g = gateway();
    let h = Headers::from(vec![
        ("x-ratelimit-limit".to_string(), b"3".to_vec()),
        ("x-ratelimit-remaining".to_string(), b"0".to_vec()),
        ("x-ratelimit-reset".to_string(), b"20".to_vec()),
        ("x-gateway-ratelimited-by".to_string(), b"requests".to_vec()),
    ]);
    let AfterResponseHeaders::Reply(reply) =
        g.on_response_headers(429, "local_rate_limited", &RequestRecord::default(), &h)
    else {
        panic!("a limiter's 429 is replaced")
    };
    assert_eq!(reply.status, 429);
    let v = envelope(&reply);
    assert_eq!(v["error"]["type"], "requests");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert!(reply.headers.contains(&("retry-after".into(), "20".into())));
    assert!(reply
        .headers
        .contains(&("retry-after-ms".into(), "20000".into())));
    assert!(reply
        .headers
        .contains(&("x-ratelimit-remaining-requests".into(), "0".into())));
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
fn adjusted_responses_choose_their_body_mode() {
    let g = gateway();
    let mut request = RequestRecord::default();
    request.plan.adjust_body = true;
    let with_type = |ct: &str| {
        Headers::from(vec![
            ("content-type".to_string(), ct.as_bytes().to_vec()),
            ("content-length".to_string(), b"10".to_vec()),
        ])
    };
    let mode = |status, ct: &str| match g.on_response_headers(
        status,
        "via_upstream",
        &request,
        &with_type(ct),
    ) {
        AfterResponseHeaders::Edit { edits, body } => {
            (body, edits.remove.contains(&"content-length".to_string()))
        }
        AfterResponseHeaders::Reply(_) => panic!("not replaced"),
    };
    assert_eq!(
        mode(200, "text/event-stream; charset=utf-8"),
        (BodyMode::Events, false)
    );
    assert_eq!(mode(200, "application/json"), (BodyMode::Json, true));
    assert_eq!(mode(400, "application/json"), (BodyMode::Untouched, false));
    assert_eq!(mode(200, "audio/mpeg"), (BodyMode::Untouched, false));
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

/// A gateway reading at most `max` body bytes.
fn gateway_with_max_body(max: u64) -> Gateway {
    let mut config = crate::config::tests::sample();
    config["limits"] = serde_json::json!({"max_request_bytes": max});
    Gateway::try_from(config.to_string().as_bytes()).unwrap()
}

/// The header stage's answer to a request whose body is still to come.
fn header_stage(g: &Gateway, path: &str, extra: &[(&str, &str)]) -> AfterHeaders {
    g.on_request_headers(&headers("POST", path, extra), false)
        .next
}

fn refused(next: &AfterHeaders, status: u16, needle: &str) {
    let AfterHeaders::Reply(reply) = next else {
        panic!("expected {status}, got {next:?}")
    };
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let v = envelope(reply);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["param"], Value::Null);
    assert_eq!(v["error"]["code"], Value::Null);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message}");
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
    let out = rewrite_json(body, &document, requested, model, &rewrites)
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
            plain,
            &[]
        )
        .unwrap(),
        None
    );
}
