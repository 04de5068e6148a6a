//! The probes through the recording host: what is sent, how answers move
//! the serving flags, the gauges and the routing, and that bad answers
//! cost no more than they must.

use crate::exchange::recording::RecordingHost;
use crate::host::Status;
use crate::pipeline::{AfterBody, AfterHeaders};
use crate::root::GatewayRoot;
use crate::test_support::{compile, header_list, sample};
use std::rc::Rc;

const START_NS: u64 = 1_700_000_000_000_000_000;

/// The sample gateway with backend-a probed on `/health` (every second,
/// out after two failures, back after one success) and llama served by
/// backend-a, then backend-b (probed on `/v1/models`, listing llama's name).
fn probed_root(host: &RecordingHost) -> GatewayRoot {
    let mut config = sample();
    config["backends"][0]["probe"] = serde_json::json!({
        "path": "/health", "interval_ms": 1000, "timeout_ms": 500, "unhealthy_threshold": 2
    });
    config["backends"][1]["probe"] = serde_json::json!({
        "path": "/v1/models", "interval_ms": 1000, "cluster": "cluster-b", "authority": "b.internal"
    });
    let llama = config["models"][0].as_object_mut().unwrap();
    llama.remove("backend");
    llama.insert(
        "backends".into(),
        serde_json::json!([{"name": "backend-a"}, {"name": "backend-b", "upstream_model": "llama3.1:8b"}]),
    );
    host.now_ns.set(START_NS);
    let root = GatewayRoot::new(host, Rc::new(compile(&config).unwrap()));
    // A root probes once it serves (Envoy's main thread never does).
    tick(&root, host, 2000);
    assert!(
        host.dispatched.borrow().is_empty(),
        "no probe before a request"
    );
    root.on_request(host);
    root
}

/// Moves the clock `ms` on and ticks.
fn tick(root: &GatewayRoot, host: &RecordingHost, ms: u64) {
    host.now_ns.set(host.now_ns.get() + ms * 1_000_000);
    root.on_tick(host);
}

/// Answers HTTP call `token` with `status` and `body`.
fn answer(root: &GatewayRoot, host: &RecordingHost, token: u32, status: &str, body: &[u8]) {
    *host.call_response_headers.borrow_mut() = if status.is_empty() {
        vec![]
    } else {
        vec![(":status".to_string(), status.as_bytes().to_vec())]
    };
    *host.call_response_body.borrow_mut() = body.to_vec();
    root.on_http_call_response(host, token, body.len());
}

/// The token of the last probe sent to `cluster`.
fn last_token(host: &RecordingHost, cluster: &str) -> u32 {
    let dispatched = host.dispatched.borrow();
    let at = dispatched
        .iter()
        .rposition(|(c, _, _)| c == cluster)
        .unwrap();
    at as u32 + 1
}

fn backend_of_chat(root: &GatewayRoot, model: &str) -> Result<String, u16> {
    let g = &root.gateway;
    let outcome = g.on_request_headers(
        &header_list(&[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("authorization", "Bearer sk-demo"),
            ("content-type", "application/json"),
        ]),
        false,
    );
    let AfterHeaders::ReadBody(pending) = outcome.next else {
        panic!("{:?}", outcome.next)
    };
    let body = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    match g.on_request_body(&pending, body.as_bytes()) {
        AfterBody::Forward { response, .. } => Ok(response.backend.unwrap()),
        AfterBody::Reply(reply) => Err(reply.status),
    }
}

const LISTS_LLAMA: &[u8] =
    br#"{"object":"list","data":[{"id":"llama3.1:8b"},{"id":"bge-m3"},{"id":"whisper-large-v3"}]}"#;

#[test]
fn probes_go_out_on_the_timer_with_their_headers_and_the_backends_credential() {
    let host = RecordingHost::default();
    let root = probed_root(&host);
    assert_eq!(root.tick_period().as_millis(), 100);
    // The first probes fall due within a second of start.
    tick(&root, &host, 1000);
    let dispatched = host.dispatched.borrow().clone();
    assert_eq!(dispatched.len(), 2, "{dispatched:?}");
    let (cluster, headers, timeout) = &dispatched[0];
    assert_eq!(cluster, "backend-a");
    assert_eq!(*timeout, 500);
    assert!(headers.contains(&(":path".into(), "/health".into())));
    assert!(headers.contains(&(":method".into(), "GET".into())));
    assert!(headers.contains(&(":authority".into(), "backend-a".into())));
    assert!(!headers.iter().any(|(n, _)| n == "authorization"));
    let (cluster, headers, _) = &dispatched[1];
    assert_eq!(cluster, "cluster-b");
    assert!(headers.contains(&(":authority".into(), "b.internal".into())));
    assert!(headers.contains(&("authorization".into(), "Bearer backend-b-token".into())));
    // One probe in flight per backend: nothing more until they answer.
    for _ in 0..5 {
        tick(&root, &host, 100);
    }
    assert_eq!(host.dispatched.borrow().len(), 2);
    // Every gauge is set from the first tick: all live.
    assert_eq!(
        host.gauge("openai_gateway_backend_live.backend.backend-a"),
        Some(1)
    );
    assert_eq!(
        host.gauge("openai_gateway_backend_live.backend.backend-b"),
        Some(1)
    );
    assert_eq!(
        host.gauge("openai_gateway_model_serving_backends.model.llama-3_1-8b-instruct"),
        Some(2)
    );
}

#[test]
fn failures_past_the_threshold_fail_over_and_one_success_brings_it_back() {
    let host = RecordingHost::default();
    let root = probed_root(&host);
    assert_eq!(
        backend_of_chat(&root, "gpt-4o-mini"),
        Ok("backend-a".into())
    );
    tick(&root, &host, 1000);
    answer(
        &root,
        &host,
        last_token(&host, "cluster-b"),
        "200",
        LISTS_LLAMA,
    );
    answer(&root, &host, last_token(&host, "backend-a"), "503", b"");
    assert!(
        root.is_live("backend-a"),
        "one failure is below the threshold"
    );
    assert_eq!(
        backend_of_chat(&root, "gpt-4o-mini"),
        Ok("backend-a".into())
    );

    tick(&root, &host, 1200);
    // No headers at all: Envoy's timeout or a refused connection.
    answer(&root, &host, last_token(&host, "backend-a"), "", b"");
    assert!(!root.is_live("backend-a"));
    // llama fails over to backend-b; qwen (backend-a only) is unavailable.
    assert_eq!(
        backend_of_chat(&root, "gpt-4o-mini"),
        Ok("backend-b".into())
    );
    assert_eq!(backend_of_chat(&root, "qwen2.5-coder-7b"), Err(503));
    assert_eq!(
        host.gauge("openai_gateway_backend_live.backend.backend-a"),
        Some(0)
    );
    assert_eq!(
        host.gauge("openai_gateway_model_serving_backends.model.llama-3_1-8b-instruct"),
        Some(1)
    );
    assert_eq!(
        host.gauge("openai_gateway_model_serving_backends.model.qwen2_5-coder-7b"),
        Some(0)
    );

    tick(&root, &host, 1200);
    answer(&root, &host, last_token(&host, "backend-a"), "204", b"");
    assert!(root.is_live("backend-a"));
    assert_eq!(
        backend_of_chat(&root, "qwen2.5-coder-7b"),
        Ok("backend-a".into())
    );
    assert_eq!(
        host.gauge("openai_gateway_backend_live.backend.backend-a"),
        Some(1)
    );
}

#[test]
fn a_models_probe_that_stops_listing_a_name_takes_that_route_out() {
    let host = RecordingHost::default();
    let root = probed_root(&host);
    tick(&root, &host, 1000);
    // backend-a out (two failures), backend-b lists no llama.
    answer(&root, &host, last_token(&host, "backend-a"), "500", b"");
    tick(&root, &host, 1200);
    answer(&root, &host, last_token(&host, "backend-a"), "500", b"");
    answer(
        &root,
        &host,
        last_token(&host, "cluster-b"),
        "200",
        br#"{"data":[{"id":"bge-m3"},{"id":"whisper-large-v3"}]}"#,
    );
    assert!(root.is_live("backend-b"), "live, but not serving llama");
    assert_eq!(backend_of_chat(&root, "gpt-4o-mini"), Err(503));
    assert_eq!(
        host.gauge("openai_gateway_model_serving_backends.model.llama-3_1-8b-instruct"),
        Some(0)
    );
    // Listed again: served again.
    tick(&root, &host, 1200);
    answer(
        &root,
        &host,
        last_token(&host, "cluster-b"),
        "200",
        LISTS_LLAMA,
    );
    assert_eq!(
        backend_of_chat(&root, "gpt-4o-mini"),
        Ok("backend-b".into())
    );
}

#[test]
fn bad_answers_count_as_failures_and_huge_ones_are_never_read() {
    for (status, body, reads_body) in [
        ("200", b"<html>not json".to_vec(), true),
        ("200", br#"{"data":"nope"}"#.to_vec(), true),
        ("503", LISTS_LLAMA.to_vec(), false),
        ("200", vec![b' '; 2 * 1024 * 1024], false),
        ("abc", LISTS_LLAMA.to_vec(), false),
    ] {
        let host = RecordingHost::default();
        let root = probed_root(&host);
        for _ in 0..2 {
            tick(&root, &host, 1200);
            host.reset_calls();
            answer(&root, &host, last_token(&host, "cluster-b"), status, &body);
            assert_eq!(
                host.counts().contains_key("body"),
                reads_body,
                "{status} {}",
                body.len()
            );
        }
        assert!(!root.is_live("backend-b"), "{status} {}", body.len());
    }
}

#[test]
fn lost_answers_time_out_and_refused_dispatches_fail() {
    let host = RecordingHost::default();
    let root = probed_root(&host);
    tick(&root, &host, 1000);
    // backend-a never answers: given up on after timeout + grace, twice.
    tick(&root, &host, 1600);
    tick(&root, &host, 1200);
    tick(&root, &host, 1600);
    assert!(!root.is_live("backend-a"));
    // A late answer to a probe given up on changes nothing.
    let late = last_token(&host, "backend-a");
    answer(&root, &host, late - 2, "200", b"");
    assert!(!root.is_live("backend-a"));

    // The host refuses to send (an unknown cluster): failures too.
    let host = RecordingHost::default();
    let root = probed_root(&host);
    *host.failing.borrow_mut() = Some(("dispatch", Status::BadArgument));
    tick(&root, &host, 1000);
    tick(&root, &host, 1200);
    assert!(!root.is_live("backend-a"));
    assert!(!root.is_live("backend-b"));
}

#[test]
fn calls_that_are_not_probes_in_flight_are_ignored_unread() {
    let host = RecordingHost::default();
    let root = probed_root(&host);
    tick(&root, &host, 1000);
    host.reset_calls();
    answer(&root, &host, 999, "200", b"{}");
    // Only the clock was read.
    assert_eq!(
        host.counts().keys().copied().collect::<Vec<_>>(),
        ["now_ns"]
    );
}

#[test]
fn a_gateway_without_probes_has_no_monitor_and_flushes_every_second() {
    let host = RecordingHost::default();
    host.now_ns.set(START_NS);
    let root = GatewayRoot::new(&host, Rc::new(compile(&sample()).unwrap()));
    assert_eq!(root.tick_period().as_millis(), 1000);
    tick(&root, &host, 1000);
    assert!(host.dispatched.borrow().is_empty());
    assert!(host.gauges.borrow().is_empty());
    assert!(root.is_live("backend-a"));
}

#[test]
fn a_change_is_news_once_for_all_workers() {
    use crate::health::{Change, FailureReason, Liveness};
    let host = RecordingHost::default(); // its shared data is every worker's
    let down = Change {
        backend: 0,
        name: "backend-a".into(),
        liveness: Some(Liveness::Down {
            failures: 2,
            last: FailureReason::Status(503),
        }),
        unlisted: vec![],
        relisted: vec![],
    };
    assert!(super::is_news(&host, &down), "the first worker logs it");
    assert!(!super::is_news(&host, &down), "the second stays silent");
    let up = Change {
        liveness: Some(Liveness::Up { successes: 1 }),
        ..down.clone()
    };
    assert!(super::is_news(&host, &up));
    assert!(!super::is_news(&host, &up));
    assert!(super::is_news(&host, &down), "down again is news again");
    // A listing change is news on its own.
    let unlisted = Change {
        liveness: None,
        unlisted: vec!["bge-m3".into()],
        ..down.clone()
    };
    assert!(super::is_news(&host, &unlisted));
    assert!(!super::is_news(&host, &unlisted));
    // Without shared data, everything is news.
    *host.failing.borrow_mut() = Some(("shared", Status::InternalFailure));
    assert!(super::is_news(&host, &unlisted));
}
