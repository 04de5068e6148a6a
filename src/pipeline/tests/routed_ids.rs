//! Ids that route themselves: calls by id, `previous_response_id`, ids
//! issued in responses.

use super::*;

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
    assert_eq!(set_value(&outcome.edits, "x-gateway-stream"), None);
    // The object names its model as the backend knows it; every model of
    // that backend is given its catalog id.
    assert!(plan.adjust_body);
    assert_eq!(
        plan.renames
            .apply(br#"{"model":"meta-llama/Llama-3.1-8B-Instruct"}"#),
        None,
        "a model of another backend is not renamed"
    );
    let id_a = codec.issue("demo", "backend-a", "resp_a_1");
    let outcome = g.on_request_headers(
        &headers("GET", &format!("/v1/responses/{id_a}?stream=true"), &[DEMO]),
        true,
    );
    let AfterHeaders::Route(plan) = outcome.next else {
        panic!("{:?}", outcome.next)
    };
    assert_eq!(set_value(&outcome.edits, "x-gateway-stream"), Some("true"));
    assert_eq!(
        plan.renames
            .apply(br#"{"model":"meta-llama/Llama-3.1-8B-Instruct"}"#),
        Some(br#"{"model":"llama-3.1-8b-instruct"}"#.to_vec())
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
