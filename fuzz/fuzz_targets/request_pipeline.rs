//! The request pipeline: arbitrary headers and body through the gateway's
//! header stage and (when it asks for the body) its body stage, against the
//! demo configuration.
//!
//! Input: a request line `METHOD PATH`, header lines `name: value` (raw
//! bytes), then, after a blank line, the body. Without a blank line the
//! request has no body (end of stream at the headers).
//!
//! Invariants (besides never panicking): every local reply is an envelope;
//! the gateway's own headers are always removed; only a configured key gets
//! past the header stage, and such a key is never refused as unknown; a
//! reply never picks a backend; a body is refused only with a 4xx; a
//! forwarded body names the upstream model of a model the key may use, that
//! serves the endpoint, on the backend the edits route to.

#![no_main]

use gateway_fuzz::{check_reply, debug, gateway, KEYS};
use libfuzzer_sys::fuzz_target;
use openai_gateway::endpoints::BodyKind;
use openai_gateway::headers::Headers;
use openai_gateway::pipeline::{AfterBody, AfterHeaders, HeaderEdits, PendingBody};
use openai_gateway::{json, multipart, Gateway};

/// The parsed header lines, checked by the target's own lookups (not the
/// gateway's) so the oracle stays independent of the code under test.
type RawHeaders = Vec<(String, Vec<u8>)>;

fn parse(data: &[u8]) -> (RawHeaders, Option<&[u8]>) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], Some(&data[at + 2..])),
        None => (data, None),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let line = lines.next().unwrap_or_default();
    let (method, path) = match line.iter().position(|b| *b == b' ') {
        Some(at) => (&line[..at], &line[at + 1..]),
        None => (line, &b""[..]),
    };
    let mut headers: RawHeaders = vec![
        (":method".into(), method.to_vec()),
        (":path".into(), path.to_vec()),
        (":authority".into(), b"gateway".to_vec()),
    ];
    for line in lines {
        if let Some(at) = line.iter().position(|b| *b == b':') {
            let name = String::from_utf8_lossy(&line[..at]).to_ascii_lowercase();
            let value = &line[at + 1..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            headers.push((name, value.to_vec()));
        }
    }
    (headers, body)
}

fn values<'a>(headers: &'a RawHeaders, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// The key id a request authenticates as, by the gateway's rule: exactly one
/// `Authorization: Bearer <key>` header naming a configured key.
fn expected_key(headers: &RawHeaders) -> Option<&'static str> {
    let all: Vec<&[u8]> = values(headers, "authorization").collect();
    let [value] = all.as_slice() else { return None };
    let value = value.trim_ascii();
    let at = value.iter().position(|b| *b == b' ')?;
    if !value[..at].eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = value[at + 1..].trim_ascii();
    KEYS.iter()
        .find(|(secret, _)| secret.as_bytes() == token)
        .map(|(_, id)| *id)
}

fn set<'a>(edits: &'a HeaderEdits, name: &str) -> Option<&'a str> {
    edits
        .set
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A reply never chooses a backend or sends a backend credential.
fn check_not_routed(g: &Gateway, edits: &HeaderEdits) {
    assert!(set(edits, &g.headers.backend).is_none(), "{edits:?}");
    assert!(set(edits, &g.headers.model).is_none(), "{edits:?}");
    assert!(set(edits, "authorization").is_none(), "{edits:?}");
}

/// Models answered by GET /v1/models(/id) are ones the key may use.
fn check_visible(g: &Gateway, key_id: &str, body: &serde_json::Value) {
    let key = (0..g.keys.len())
        .filter_map(|i| g.keys.get(i))
        .find(|k| k.id == key_id)
        .expect("the key exists");
    let listed: Vec<&serde_json::Value> = match body["object"].as_str() {
        Some("list") => body["data"].as_array().expect("data").iter().collect(),
        Some("model") => vec![body],
        other => panic!("a 200 reply that is not a model or a list: {other:?}"),
    };
    for model in listed {
        let id = model["id"].as_str().expect("an id");
        let (index, found) = g.catalog.resolve(id).expect("a catalog model");
        assert_eq!(found.id, id);
        assert!(key.may_use(index), "{key_id} may not see {id}");
    }
}

fn body_stage(g: &Gateway, pending: &PendingBody, body: &[u8]) {
    let key = g.keys.get(pending.key_index).expect("the pending key exists");
    let after = g.on_request_body(pending, body);
    if debug() {
        eprintln!("body stage: {after:?}");
    }
    match after {
        AfterBody::Reply(reply) => {
            check_reply(&reply, g.doc_url.as_deref());
            assert!(
                (400..500).contains(&reply.status),
                "a body is refused with a 4xx, not {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
        }
        AfterBody::Forward {
            edits,
            new_body,
            response,
        } => {
            let model_id = set(&edits, &g.headers.model).expect("the model header");
            let (index, model) = g.catalog.resolve(model_id).expect("a catalog model");
            assert_eq!(model.id, model_id);
            assert!(key.may_use(index), "{} forwarded to {model_id}", key.id);
            assert!(model.category.serves(pending.endpoint));
            assert_eq!(
                set(&edits, &g.headers.backend),
                Some(model.backend.as_str())
            );
            assert_eq!(response.backend.as_deref(), Some(model.backend.as_str()));
            let cost: u64 = set(&edits, &g.headers.token_cost)
                .and_then(|c| c.parse().ok())
                .expect("a token cost");
            assert!(cost >= 1);
            assert_eq!(cost, response.token_cost);
            let sent = new_body.as_deref().unwrap_or(body);
            match pending.kind {
                BodyKind::Json => {
                    let original = json::parse_document(body).expect("the client's body parsed");
                    let forwarded = json::parse_document(sent).expect("the forwarded body parses");
                    let name = json::member(&forwarded, "model").and_then(|m| m.as_str());
                    assert_eq!(name, Some(model.upstream_name()));
                    for (member, _) in &original {
                        assert!(
                            json::member(&forwarded, member).is_some(),
                            "{member} lost in {}",
                            String::from_utf8_lossy(sent)
                        );
                    }
                }
                BodyKind::Multipart => {
                    let parts = multipart::parts(&pending.content_type, sent)
                        .expect("the forwarded form parses");
                    assert_eq!(
                        multipart::text_field(&parts, "model"),
                        Ok(model.upstream_name())
                    );
                }
                BodyKind::None => panic!("a body stage for an endpoint without a body"),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let g = gateway();
    let (headers, body) = parse(data);
    let outcome = g.on_request_headers(&Headers::from(headers.clone()), body.is_none());
    if debug() {
        eprintln!("header stage: {outcome:?}");
    }
    for name in g.headers.all() {
        assert!(
            outcome.edits.remove.iter().any(|n| n == name),
            "{name} kept"
        );
    }
    let method = headers[0].1.as_slice();
    let preflight = method == b"OPTIONS"
        && values(&headers, "origin").next().is_some()
        && values(&headers, "access-control-request-method")
            .next()
            .is_some();
    let key = expected_key(&headers);
    if !preflight {
        assert_eq!(outcome.key_id.as_deref(), key, "authenticated as");
    }
    match &outcome.next {
        AfterHeaders::Reply(reply) => {
            let v = check_reply(reply, g.doc_url.as_deref());
            check_not_routed(g, &outcome.edits);
            match (preflight, key) {
                (true, _) => assert_eq!(reply.status, 403),
                (false, None) => assert_eq!(reply.status, 401),
                (false, Some(id)) => {
                    assert!(reply.status != 401, "a configured key refused: {v}");
                    assert!(reply.status == 200 || (400..500).contains(&reply.status));
                    if reply.status == 200 {
                        check_visible(g, id, &v);
                    }
                }
            }
        }
        AfterHeaders::Route(plan) => {
            assert!(key.is_some() && !preflight);
            let backend = plan
                .backend
                .as_deref()
                .expect("a routed id names its backend");
            assert_eq!(set(&outcome.edits, &g.headers.backend), Some(backend));
            assert!(set(&outcome.edits, ":path").is_some_and(|p| p.starts_with("/v1/")));
        }
        AfterHeaders::ReadBody(pending) => {
            assert!(key.is_some() && !preflight);
            let body = body.expect("the body is read only when one comes");
            body_stage(g, pending, body);
        }
    }
});
