//! The response stage: Envoy's own replies as envelopes, response header
//! edits, body modes.

use super::*;

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
    // A forwarded request's idle timeout is the backend's silence, not the
    // client's: a 504 the SDKs retry.
    let forwarded = RequestRecord {
        plan: ResponsePlan {
            backend: Some("backend-a".into()),
            ..ResponsePlan::default()
        },
        ..request.clone()
    };
    let reply = g
        .rewrite_local_reply(408, "stream_idle_timeout", &forwarded, &upstream_headers)
        .unwrap();
    assert_eq!(reply.status, 504);
    let message = envelope(&reply)["error"]["message"].to_string();
    assert!(message.contains("backend sent nothing"), "{message}");
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
