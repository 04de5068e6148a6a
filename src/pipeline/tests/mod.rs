//! The pipeline's tests, a file per stage as in the pipeline itself; the
//! helpers they share are here.

use super::*;
use crate::config::Gateway;
use crate::test_support::gateway;
use serde_json::Value;

mod failover;
mod request_body;
mod request_headers;
mod response;
mod rewrite;
mod routed_ids;

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

/// A gateway reading at most `max` body bytes.
fn gateway_with_max_body(max: u64) -> Gateway {
    let mut config = crate::test_support::sample();
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
