use super::*;
use serde_json::json;

// ---------------------------------------------------------------------------
// Fixtures

/// A probe of `path` every 1,000 ms, 100 ms timeout, thresholds as given.
fn probe(path: &str, unhealthy: u32, healthy: u32) -> ProbeConfig {
    ProbeConfig {
        interval_ms: 1_000,
        timeout_ms: 100,
        unhealthy_threshold: unhealthy,
        healthy_threshold: healthy,
        ..ProbeConfig::with_path(path)
    }
}

fn backend(name: &str, probe: Option<ProbeConfig>, models: &[&str]) -> Backend {
    Backend {
        name: name.into(),
        probe,
        upstream_models: models.iter().map(|m| m.to_string()).collect(),
    }
}

fn ok() -> Outcome {
    Outcome::Success { listed: None }
}

fn listing(ids: &[&str]) -> Outcome {
    Outcome::Success {
        listed: Some(ids.iter().map(|m| m.to_string()).collect()),
    }
}

fn failed(status: u16) -> Outcome {
    Outcome::Failure(FailureReason::Status(status))
}

/// Drives one backend's probes: each `round` ticks until its probe is due,
/// dispatches it under a fresh token and answers it.
struct Driver {
    prober: Prober,
    now: u64,
    next_token: u32,
}

impl Driver {
    fn new(backends: Vec<Backend>) -> Self {
        Driver {
            prober: Prober::new(backends, 42, 10_000_000),
            now: 10_000_000,
            next_token: 1,
        }
    }

    /// Ticks until backend `index` has a probe to send (never more than two
    /// intervals); dispatches it; returns its token.
    fn send(&mut self, index: usize) -> u32 {
        for _ in 0..2_400 {
            let tick = self.prober.tick(self.now);
            assert!(tick.changes.is_empty(), "{:?}", tick.changes);
            if let Some(request) = tick.probes.iter().find(|r| r.backend == index) {
                let token = self.next_token;
                self.next_token += 1;
                self.prober.dispatched(request.backend, token);
                return token;
            }
            self.now += 1;
        }
        panic!("backend {index} was never probed");
    }

    fn round(&mut self, index: usize, outcome: Outcome) -> Option<Change> {
        let token = self.send(index);
        self.now += 10;
        self.prober.answered(token, outcome, self.now)
    }
}

// ---------------------------------------------------------------------------
// Configuration

#[test]
fn config_defaults_apply_to_a_bare_path() {
    let config: ProbeConfig = serde_json::from_value(json!({"path": "/health"})).unwrap();
    assert_eq!(config, ProbeConfig::with_path("/health"));
    assert_eq!(config.interval_ms, 5_000);
    assert_eq!(config.timeout_ms, 1_000);
    assert_eq!(config.unhealthy_threshold, 2);
    assert_eq!(config.healthy_threshold, 1);
    assert_eq!((config.cluster, config.authority), (None, None));
    assert_eq!(ProbeConfig::with_path("/health").check("p"), Ok(()));
}

#[test]
fn config_reads_every_field() {
    let config: ProbeConfig = serde_json::from_value(json!({
        "path": "/v1/models", "cluster": "outbound|8000||vllm.ns.svc.cluster.local",
        "authority": "vllm.internal:8000", "interval_ms": 2000, "timeout_ms": 500,
        "unhealthy_threshold": 3, "healthy_threshold": 2
    }))
    .unwrap();
    assert_eq!(
        config,
        ProbeConfig {
            path: "/v1/models".into(),
            cluster: Some("outbound|8000||vllm.ns.svc.cluster.local".into()),
            authority: Some("vllm.internal:8000".into()),
            interval_ms: 2_000,
            timeout_ms: 500,
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        }
    );
    assert_eq!(config.check("backends[0].probe"), Ok(()));
}

#[test]
fn config_serde_refusals() {
    #[rustfmt::skip]
    let cases = [
        (json!({}), "missing field `path`"),
        (json!({"path": "/h", "intervall_ms": 5}), "unknown field `intervall_ms`"),
        (json!({"path": "/h", "interval_ms": -1}), "invalid value: integer `-1`"),
        (json!({"path": "/h", "timeout_ms": 1.5}), "invalid type: floating point `1.5`"),
        (json!({"path": "/h", "healthy_threshold": 4_294_967_296u64}), "invalid value: integer `4294967296`"),
        (json!({"path": "/h", "interval_ms": "5000"}), "invalid type: string"),
    ];
    for (value, expected) in cases {
        let err = serde_json::from_value::<ProbeConfig>(value.clone()).unwrap_err();
        assert!(err.to_string().contains(expected), "{value} -> {err}");
    }
}

#[test]
fn config_checks_name_the_field() {
    type Edit = fn(&mut ProbeConfig);
    let long = format!("/{}", "a".repeat(256));
    #[rustfmt::skip]
    let cases: Vec<(Edit, String)> = vec![
        (|c| c.path = String::new(), "backends[1].probe.path: must start with `/` and be 1-256 visible ASCII characters without `#` (got ``)".into()),
        (|c| c.path = "health".into(), "backends[1].probe.path: must start with `/` and be 1-256 visible ASCII characters without `#` (got `health`)".into()),
        (|c| c.path = "/a b".into(), "backends[1].probe.path: must start with `/` and be 1-256 visible ASCII characters without `#` (got `/a b`)".into()),
        (|c| c.path = "/a\r\nx: y".into(), "backends[1].probe.path: must start with `/` and be 1-256 visible ASCII characters without `#` (got `/a\\r\\nx: y`)".into()),
        (|c| c.path = "/héalth".into(), "backends[1].probe.path: must start with `/` and be 1-256 visible ASCII characters without `#` (got `/héalth`)".into()),
        (|c| c.path = "/health#top".into(), "backends[1].probe.path: must start with `/` and be 1-256 visible ASCII characters without `#` (got `/health#top`)".into()),
        (|c| c.path = format!("/{}", "a".repeat(256)), format!("backends[1].probe.path: must start with `/` and be 1-256 visible ASCII characters without `#` (got `{}…`)", &long[..64])),
        (|c| c.cluster = Some(String::new()), "backends[1].probe.cluster: must be 1-256 visible ASCII characters (got ``)".into()),
        (|c| c.cluster = Some("my cluster".into()), "backends[1].probe.cluster: must be 1-256 visible ASCII characters (got `my cluster`)".into()),
        (|c| c.authority = Some("a/b".into()), "backends[1].probe.authority: must be a host name or address with an optional port, 1-256 of A-Z a-z 0-9 . - _ : [ ] (got `a/b`)".into()),
        (|c| c.authority = Some("user@host".into()), "backends[1].probe.authority: must be a host name or address with an optional port, 1-256 of A-Z a-z 0-9 . - _ : [ ] (got `user@host`)".into()),
        (|c| c.authority = Some(String::new()), "backends[1].probe.authority: must be a host name or address with an optional port, 1-256 of A-Z a-z 0-9 . - _ : [ ] (got ``)".into()),
        (|c| c.interval_ms = 0, "backends[1].probe.interval_ms: must be between 100 and 3600000 (got 0)".into()),
        (|c| c.interval_ms = 99, "backends[1].probe.interval_ms: must be between 100 and 3600000 (got 99)".into()),
        (|c| c.interval_ms = 3_600_001, "backends[1].probe.interval_ms: must be between 100 and 3600000 (got 3600001)".into()),
        (|c| c.timeout_ms = 0, "backends[1].probe.timeout_ms: must be between 10 and 60000 (got 0)".into()),
        (|c| c.timeout_ms = 9, "backends[1].probe.timeout_ms: must be between 10 and 60000 (got 9)".into()),
        (|c| { c.interval_ms = 120_000; c.timeout_ms = 60_001 }, "backends[1].probe.timeout_ms: must be between 10 and 60000 (got 60001)".into()),
        (|c| c.timeout_ms = 5_001, "backends[1].probe.timeout_ms: must not be more than interval_ms (5000) (got 5001)".into()),
        (|c| c.unhealthy_threshold = 0, "backends[1].probe.unhealthy_threshold: must be between 1 and 100 (got 0)".into()),
        (|c| c.unhealthy_threshold = 101, "backends[1].probe.unhealthy_threshold: must be between 1 and 100 (got 101)".into()),
        (|c| c.healthy_threshold = 0, "backends[1].probe.healthy_threshold: must be between 1 and 100 (got 0)".into()),
        (|c| c.healthy_threshold = u32::MAX, "backends[1].probe.healthy_threshold: must be between 1 and 100 (got 4294967295)".into()),
        // The first problem in field order is the one reported.
        (|c| { c.path = "x".into(); c.interval_ms = 0 }, "backends[1].probe.path: must start with `/` and be 1-256 visible ASCII characters without `#` (got `x`)".into()),
        (|c| { c.interval_ms = 0; c.healthy_threshold = 0 }, "backends[1].probe.interval_ms: must be between 100 and 3600000 (got 0)".into()),
    ];
    for (i, (edit, expected)) in cases.into_iter().enumerate() {
        let mut config = ProbeConfig::with_path("/health");
        edit(&mut config);
        assert_eq!(config.check("backends[1].probe"), Err(expected), "case {i}");
    }
}

#[test]
fn config_checks_accept_the_bounds() {
    type Edit = fn(&mut ProbeConfig);
    #[rustfmt::skip]
    let cases: [Edit; 14] = [
        |c| c.path = "/".into(),
        |c| c.path = "/v1/models?limit=10&x=%20".into(),
        |c| c.path = format!("/{}", "a".repeat(255)),
        |c| c.cluster = Some("outbound|443||api.openai.com".into()),
        |c| c.cluster = Some("c".repeat(256)),
        |c| c.authority = Some("[::1]:8080".into()),
        |c| c.authority = Some("api.openai.com".into()),
        |c| { c.interval_ms = 100; c.timeout_ms = 10 },
        |c| { c.interval_ms = 3_600_000; c.timeout_ms = 60_000 },
        |c| { c.interval_ms = 1_000; c.timeout_ms = 1_000 },
        |c| c.unhealthy_threshold = 1,
        |c| c.unhealthy_threshold = 100,
        |c| c.healthy_threshold = 1,
        |c| c.healthy_threshold = 100,
    ];
    for (i, edit) in cases.into_iter().enumerate() {
        let mut config = ProbeConfig::with_path("/health");
        edit(&mut config);
        assert_eq!(config.check("p"), Ok(()), "case {i}: {config:?}");
    }
}

// ---------------------------------------------------------------------------
// Probe kinds and answers

#[test]
fn probe_kind_comes_from_the_path() {
    let cases = [
        ("/v1/models", ProbeKind::Models),
        ("/v1/models?limit=5", ProbeKind::Models),
        ("/v1/models?", ProbeKind::Models),
        ("/v1/models/", ProbeKind::Status),
        ("/v1/models/gpt-4o", ProbeKind::Status),
        ("/V1/models", ProbeKind::Status),
        ("/health", ProbeKind::Status),
        ("/health?v1/models", ProbeKind::Status),
        ("/", ProbeKind::Status),
    ];
    for (path, kind) in cases {
        assert_eq!(ProbeKind::of_path(path), kind, "{path}");
    }
}

#[test]
fn wants_body_only_for_a_2xx_models_list_within_the_cap() {
    use ProbeKind::{Models, Status};
    let cases = [
        (Models, Some(200), 10, true),
        (Models, Some(299), 0, true),
        (Models, Some(200), MAX_MODELS_BODY_BYTES, true),
        (Models, Some(200), MAX_MODELS_BODY_BYTES + 1, false),
        (Models, Some(200), usize::MAX, false),
        (Models, Some(503), 10, false),
        (Models, Some(199), 10, false),
        (Models, Some(300), 10, false),
        (Models, None, 10, false),
        (Status, Some(200), 10, false),
    ];
    for (kind, status, size, expected) in cases {
        assert_eq!(
            wants_body(kind, status, size),
            expected,
            "{kind:?} {status:?} {size}"
        );
    }
}

#[test]
fn status_probes_succeed_on_any_2xx_and_never_read_the_body() {
    for status in [200, 204, 299] {
        assert_eq!(classify(ProbeKind::Status, Some(status), 5, None), ok());
        assert_eq!(
            classify(ProbeKind::Status, Some(status), 9, Some(b"not json")),
            ok()
        );
    }
    let huge = classify(ProbeKind::Status, Some(200), usize::MAX, None);
    assert_eq!(huge, ok());
}

#[test]
fn every_failure_class_of_classify() {
    use FailureReason as F;
    use ProbeKind::{Models, Status};
    let over = vec![b' '; MAX_MODELS_BODY_BYTES + 1];
    #[rustfmt::skip]
    let cases: Vec<(ProbeKind, Option<u16>, usize, Option<&[u8]>, FailureReason)> = vec![
        (Status, None, 0, None, F::NoResponse),
        (Models, None, 0, None, F::NoResponse),
        (Status, Some(503), 0, None, F::Status(503)),
        (Status, Some(404), 0, None, F::Status(404)),
        (Status, Some(301), 0, None, F::Status(301)),
        (Status, Some(199), 0, None, F::Status(199)),
        (Models, Some(500), 2, Some(&b"{}"[..]), F::Status(500)),
        (Models, Some(200), MAX_MODELS_BODY_BYTES + 1, None, F::TooLarge { size: MAX_MODELS_BODY_BYTES + 1 }),
        (Models, Some(200), usize::MAX, None, F::TooLarge { size: usize::MAX }),
        // The body handed over is larger than announced.
        (Models, Some(200), 10, Some(over.as_slice()), F::TooLarge { size: MAX_MODELS_BODY_BYTES + 1 }),
        (Models, Some(200), 10, None, F::BodyUnavailable),
    ];
    for (kind, status, size, body, reason) in cases {
        assert_eq!(
            classify(kind, status, size, body),
            Outcome::Failure(reason.clone()),
            "{kind:?} {status:?} {size}"
        );
    }
}

/// The failure class of a models list body (announced at its own size).
fn models_failure(body: &[u8]) -> FailureReason {
    match classify(ProbeKind::Models, Some(200), body.len(), Some(body)) {
        Outcome::Failure(reason) => reason,
        success => panic!("{:?} -> {success:?}", String::from_utf8_lossy(body)),
    }
}

#[test]
fn malformed_models_lists_fail() {
    let not_json: [&[u8]; 7] = [
        b"",
        b"   ",
        b"<html>ok</html>",
        b"{\"data\":[",
        b"{\"data\":[]} trailing",
        b"{\"data\":[{\"id\":\"\xff\"}]}",
        b"OK",
    ];
    for body in not_json {
        let reason = models_failure(body);
        assert!(
            matches!(reason, FailureReason::NotJson(_)),
            "{:?} -> {reason:?}",
            String::from_utf8_lossy(body)
        );
    }
    // An empty body the host hands over as nothing is not JSON either.
    assert!(matches!(
        classify(ProbeKind::Models, Some(204), 0, None),
        Outcome::Failure(FailureReason::NotJson(_))
    ));
    let wrong_shape: [&[u8]; 14] = [
        b"[]",
        // The array forms serde accepts for structs are not models lists.
        br#"[[{"id":"m"}]]"#,
        br#"{"data":[["m"]]}"#,
        br#"{"data":[{"id":"m","id":"n"}]}"#,
        br#"{"data":[{"id":null}]}"#,
        b"null",
        b"{}",
        br#"{"object":"list"}"#,
        br#"{"data":{}}"#,
        br#"{"data":null}"#,
        br#"{"data":["gpt-4o"]}"#,
        br#"{"data":[{"name":"gpt-4o"}]}"#,
        br#"{"data":[{"id":7}]}"#,
        br#"{"data":[],"data":[]}"#,
    ];
    for body in wrong_shape {
        let reason = models_failure(body);
        assert!(
            matches!(reason, FailureReason::NotAModelsList(_)),
            "{:?} -> {reason:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn a_models_list_keeps_its_ids_in_order() {
    let body = br#"{"object":"list","data":[
        {"id":"gpt-4o","object":"model","created":1,"owned_by":"x","extra":{"a":[1]}},
        {"id":"llama\u002f3","object":"model"},
        {"id":""}
    ]}"#;
    assert_eq!(
        classify(ProbeKind::Models, Some(200), body.len(), Some(body)),
        listing(&["gpt-4o", "llama/3", ""])
    );
    let empty = br#"{"data":[]}"#;
    assert_eq!(
        classify(ProbeKind::Models, Some(200), empty.len(), Some(empty)),
        listing(&[])
    );
}

#[test]
fn models_lists_are_bounded() {
    let list = |n: usize| {
        let entries: Vec<String> = (0..n).map(|i| format!(r#"{{"id":"m{i}"}}"#)).collect();
        format!(r#"{{"data":[{}]}}"#, entries.join(","))
    };
    let at_limit = list(MAX_LISTED_MODELS);
    match classify(
        ProbeKind::Models,
        Some(200),
        at_limit.len(),
        Some(at_limit.as_bytes()),
    ) {
        Outcome::Success { listed: Some(ids) } => {
            assert_eq!(ids.len(), MAX_LISTED_MODELS);
            assert_eq!(ids.last().map(String::as_str), Some("m9999"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        models_failure(list(MAX_LISTED_MODELS + 1).as_bytes()),
        FailureReason::TooManyModels {
            count: MAX_LISTED_MODELS + 1
        }
    );
    // 100,000 entries, most of them not even model objects: counted, not kept.
    let mut body = list(MAX_LISTED_MODELS).into_bytes();
    body.truncate(body.len() - 2);
    for _ in 0..90_000 {
        body.extend_from_slice(b",1");
    }
    body.extend_from_slice(b"]}");
    assert!(body.len() <= MAX_MODELS_BODY_BYTES);
    assert_eq!(
        models_failure(&body),
        FailureReason::TooManyModels { count: 100_000 }
    );
}

#[test]
fn failure_reasons_print_for_a_log_line() {
    use FailureReason as F;
    let cases = [
        (
            F::NoResponse,
            "no response (Envoy's timeout, a connection failure or no healthy upstream host)",
        ),
        (F::Status(503), "status 503"),
        (
            F::TooLarge { size: 2_000_000 },
            "models list too large (2000000 bytes; the limit is 1048576)",
        ),
        (F::BodyUnavailable, "models list not readable from the host"),
        (
            F::NotJson("expected value at line 1 column 1".into()),
            "models list not JSON: expected value at line 1 column 1",
        ),
        (
            F::NotAModelsList("missing field `data`".into()),
            "not a models list `{\"data\":[{\"id\":…}]}`: missing field `data`",
        ),
        (
            F::TooManyModels { count: 10_001 },
            "models list too long (10001 models; the limit is 10000)",
        ),
        (F::TimedOut { after_ms: 1_100 }, "no answer within 1100 ms"),
        (
            F::DispatchFailed("BadArgument".into()),
            "dispatch failed: BadArgument",
        ),
    ];
    for (reason, text) in cases {
        assert_eq!(reason.to_string(), text);
    }
    assert_eq!(
        models_failure(b"{}").to_string(),
        "not a models list `{\"data\":[{\"id\":…}]}`: missing field `data` at line 1 column 2"
    );
    assert_eq!(
        models_failure(br#"{"data":[{"id":7}]}"#).to_string(),
        "not a models list `{\"data\":[{\"id\":…}]}`: invalid type: integer `7`, expected a string at line 1 column 16"
    );
}

#[test]
fn parser_messages_quoting_the_body_are_shortened() {
    let body = format!(r#"{{"data":"{}"}}"#, "x".repeat(5_000));
    let FailureReason::NotAModelsList(message) = models_failure(body.as_bytes()) else {
        panic!()
    };
    assert_eq!(message.chars().count(), 161);
    assert!(message.starts_with("invalid type: string \"xxx"));
    assert!(message.ends_with('…'));
}

// ---------------------------------------------------------------------------
// Start-up and scheduling

#[test]
fn a_backend_without_a_probe_is_always_live_and_never_probed() {
    let mut prober = Prober::new(vec![backend("plain", None, &["m"])], 1, 0);
    assert_eq!(prober.next_wakeup(), None);
    for now in [0, 1_000, 10_000_000, u64::MAX] {
        assert_eq!(prober.tick(now), Tick::default());
    }
    assert!(prober.is_live(0));
    assert!(prober.serves(0, "m"));
    assert!(prober.serves(0, "anything"));
    assert_eq!(prober.dispatch_failed(0, 5, "x"), None);
    assert!(prober.is_live(0));
}

#[test]
fn backends_are_live_before_the_first_answer() {
    let mut prober = Prober::new(
        vec![backend("a", Some(probe("/v1/models", 1, 1)), &["m"])],
        7,
        0,
    );
    assert!(prober.is_live(0));
    assert!(prober.serves(0, "m"));
    let mut sent = Vec::new();
    for now in 0..1_000 {
        sent.extend(prober.tick(now).probes);
    }
    assert_eq!(sent.len(), 1);
    assert!(prober.is_live(0));
    assert!(prober.serves(0, "m"));
}

#[test]
fn first_probes_are_spread_over_the_first_second() {
    let backends: Vec<Backend> = (0..200)
        .map(|i| backend(&format!("b{i}"), Some(probe("/health", 2, 1)), &[]))
        .collect();
    let start = 50_000;
    let mut prober = Prober::new(backends, 2024, start);
    let mut first = vec![None; 200];
    for now in start..start + 1_000 {
        for request in prober.tick(now).probes {
            assert!(first[request.backend].is_none());
            first[request.backend] = Some(now - start);
        }
    }
    let delays: Vec<u64> = first.iter().map(|d| d.unwrap()).collect();
    assert!(delays.iter().all(|&d| d < 1_000));
    // Spread: every tenth of the second has some, none has most.
    for tenth in 0..10 {
        let n = delays.iter().filter(|&&d| d / 100 == tenth).count();
        assert!((5..=50).contains(&n), "tenth {tenth}: {n}");
    }
}

#[test]
fn a_short_interval_bounds_the_first_delay() {
    let config = ProbeConfig {
        interval_ms: 100,
        timeout_ms: 10,
        ..ProbeConfig::with_path("/health")
    };
    for seed in 0..50 {
        let prober = Prober::new(vec![backend("a", Some(config.clone()), &[])], seed, 10);
        let at = prober.next_wakeup().unwrap();
        assert!((10..110).contains(&at), "seed {seed}: {at}");
    }
}

#[test]
fn jitter_is_deterministic_per_seed() {
    let schedule = |seed: u64| {
        let backends: Vec<Backend> = (0..20)
            .map(|i| backend(&format!("b{i}"), Some(probe("/health", 2, 1)), &[]))
            .collect();
        let prober = Prober::new(backends, seed, 0);
        prober
            .backends
            .iter()
            .map(|s| s.probe.as_ref().unwrap().next_at)
            .collect::<Vec<_>>()
    };
    assert_eq!(schedule(9), schedule(9));
    assert_ne!(schedule(9), schedule(10));
}

#[test]
fn next_probe_comes_an_interval_plus_or_minus_ten_percent_after_the_answer() {
    let mut d = Driver::new(vec![backend("a", Some(probe("/health", 2, 1)), &[])]);
    let mut waits = Vec::new();
    for _ in 0..200 {
        let token = d.send(0);
        d.now += 10;
        let answered_at = d.now;
        assert_eq!(d.prober.answered(token, ok(), d.now), None);
        let next = d.prober.next_wakeup().unwrap();
        waits.push(next - answered_at);
        // Nothing is sent before then.
        assert!(d.prober.tick(next - 1).probes.is_empty());
        d.now = next;
    }
    assert!(waits.iter().all(|w| (900..=1_100).contains(w)), "{waits:?}");
    assert!(waits.iter().any(|&w| w < 950));
    assert!(waits.iter().any(|&w| w > 1_050));
}

#[test]
fn one_probe_in_flight_per_backend() {
    let mut prober = Prober::new(
        vec![
            backend("a", Some(probe("/health", 2, 1)), &[]),
            backend("b", Some(probe("/health", 2, 1)), &[]),
        ],
        3,
        0,
    );
    let mut sent = Vec::new();
    // Timeout 100 + grace 1,000: nothing expires before 1,000 + 1,100.
    for now in 0..2_000 {
        for request in prober.tick(now).probes {
            prober.dispatched(request.backend, request.backend as u32 + 10);
            sent.push(request.backend);
        }
    }
    sent.sort_unstable();
    assert_eq!(sent, [0, 1]);
}

#[test]
fn probe_requests_carry_cluster_authority_path_and_timeout() {
    let explicit = ProbeConfig {
        cluster: Some("vllm_cluster".into()),
        authority: Some("vllm.internal:8000".into()),
        ..probe("/v1/models?x=1", 2, 1)
    };
    let cluster_only = ProbeConfig {
        cluster: Some("c2".into()),
        ..probe("/health", 2, 1)
    };
    let mut prober = Prober::new(
        vec![
            backend("plain", Some(probe("/health", 2, 1)), &[]),
            backend("b", Some(explicit), &[]),
            backend("c", Some(cluster_only), &[]),
        ],
        5,
        0,
    );
    let mut requests: Vec<ProbeRequest> = (0..1_000).flat_map(|t| prober.tick(t).probes).collect();
    requests.sort_by_key(|r| r.backend);
    let summary: Vec<(usize, &str, &str, &str, u64)> = requests
        .iter()
        .map(|r| {
            let (c, a, p) = (r.cluster.as_str(), r.authority.as_str(), r.path.as_str());
            (r.backend, c, a, p, r.timeout_ms)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, "plain", "plain", "/health", 100),
            (
                1,
                "vllm_cluster",
                "vllm.internal:8000",
                "/v1/models?x=1",
                100
            ),
            (2, "c2", "c2", "/health", 100),
        ]
    );
    assert_eq!(
        requests[1].headers(),
        [
            (":method", "GET"),
            (":path", "/v1/models?x=1"),
            (":authority", "vllm.internal:8000")
        ]
    );
}

#[test]
fn next_wakeup_is_the_earliest_due_probe_or_deadline() {
    let slow = ProbeConfig {
        interval_ms: 60_000,
        timeout_ms: 5_000,
        ..ProbeConfig::with_path("/health")
    };
    let mut prober = Prober::new(
        vec![
            backend("a", Some(probe("/health", 2, 1)), &[]),
            backend("b", Some(slow), &[]),
            backend("none", None, &[]),
        ],
        11,
        0,
    );
    let first = prober.next_wakeup().unwrap();
    assert!(first < 1_000);
    let mut t = 0;
    let mut in_flight = Vec::new();
    while in_flight.len() < 2 {
        in_flight.extend(prober.tick(t).probes.into_iter().map(|r| (r.backend, t)));
        t += 1;
    }
    // Both in flight: the earliest deadline (sent + timeout + grace).
    let deadlines: Vec<u64> = in_flight
        .iter()
        .map(|&(b, sent)| sent + if b == 0 { 100 } else { 5_000 } + EXPIRY_GRACE_MS)
        .collect();
    assert_eq!(prober.next_wakeup(), deadlines.iter().min().copied());
}

// ---------------------------------------------------------------------------
// Thresholds

#[test]
fn unhealthy_threshold_failures_in_a_row_take_a_backend_out() {
    let mut d = Driver::new(vec![backend("a", Some(probe("/health", 3, 1)), &[])]);
    assert_eq!(d.round(0, failed(503)), None);
    assert_eq!(d.round(0, failed(503)), None);
    assert!(d.prober.is_live(0));
    let change = d.round(0, failed(502)).unwrap();
    assert_eq!(
        change,
        Change {
            backend: 0,
            name: "a".into(),
            liveness: Some(Liveness::Down {
                failures: 3,
                last: FailureReason::Status(502)
            }),
            unlisted: vec![],
            relisted: vec![],
        }
    );
    assert!(!d.prober.is_live(0));
    // Reported once: further failures change nothing.
    for _ in 0..5 {
        assert_eq!(d.round(0, failed(503)), None);
    }
    assert!(!d.prober.is_live(0));
}

#[test]
fn a_backend_down_from_the_start_leaves_after_the_threshold() {
    let mut d = Driver::new(vec![backend("a", Some(probe("/health", 2, 1)), &[])]);
    let reason = Outcome::Failure(FailureReason::NoResponse);
    assert_eq!(d.round(0, reason.clone()), None);
    assert!(d.prober.is_live(0));
    let change = d.round(0, reason).unwrap();
    assert!(matches!(
        change.liveness,
        Some(Liveness::Down { failures: 2, .. })
    ));
    assert!(!d.prober.is_live(0));
}

#[test]
fn healthy_threshold_successes_in_a_row_bring_it_back() {
    let mut d = Driver::new(vec![backend("a", Some(probe("/health", 1, 3)), &[])]);
    assert!(d.round(0, failed(500)).is_some());
    assert_eq!(d.round(0, ok()), None);
    assert_eq!(d.round(0, ok()), None);
    assert!(!d.prober.is_live(0));
    let change = d.round(0, ok()).unwrap();
    assert_eq!(change.liveness, Some(Liveness::Up { successes: 3 }));
    assert!(d.prober.is_live(0));
    assert_eq!(d.round(0, ok()), None);
}

#[test]
fn thresholds_of_one_flip_on_every_opposite_result() {
    let mut d = Driver::new(vec![backend("a", Some(probe("/health", 1, 1)), &[])]);
    for _ in 0..3 {
        assert!(d.round(0, failed(500)).is_some());
        assert!(!d.prober.is_live(0));
        assert!(d.round(0, ok()).is_some());
        assert!(d.prober.is_live(0));
    }
}

#[test]
fn alternating_results_never_flip_thresholds_above_one() {
    let mut d = Driver::new(vec![backend("a", Some(probe("/health", 2, 2)), &[])]);
    for _ in 0..20 {
        assert_eq!(d.round(0, failed(503)), None);
        assert_eq!(d.round(0, ok()), None);
        assert!(d.prober.is_live(0));
    }
    // Once out, alternating results keep it out.
    assert_eq!(d.round(0, failed(503)), None);
    assert!(d.round(0, failed(503)).is_some());
    for _ in 0..20 {
        assert_eq!(d.round(0, ok()), None);
        assert_eq!(d.round(0, failed(503)), None);
        assert!(!d.prober.is_live(0));
    }
    assert_eq!(d.round(0, ok()), None);
    assert!(d.round(0, ok()).is_some());
    assert!(d.prober.is_live(0));
}

#[test]
fn backends_are_independent() {
    let mut d = Driver::new(vec![
        backend("a", Some(probe("/health", 1, 1)), &[]),
        backend("b", Some(probe("/health", 1, 1)), &[]),
        backend("c", None, &[]),
    ]);
    let change = d.round(1, failed(500)).unwrap();
    assert_eq!((change.backend, change.name.as_str()), (1, "b"));
    assert!(d.prober.is_live(0));
    assert!(!d.prober.is_live(1));
    assert!(d.prober.is_live(2));
}

// ---------------------------------------------------------------------------
// Expiry, dispatch failures, tokens

#[test]
fn an_unanswered_probe_fails_after_timeout_and_grace() {
    let mut d = Driver::new(vec![backend("a", Some(probe("/health", 1, 1)), &[])]);
    let token = d.send(0);
    let sent = d.now;
    let deadline = sent + 100 + EXPIRY_GRACE_MS;
    assert_eq!(d.prober.next_wakeup(), Some(deadline));
    assert_eq!(d.prober.tick(deadline - 1), Tick::default());
    assert!(d.prober.is_live(0));
    let tick = d.prober.tick(deadline);
    assert!(tick.probes.is_empty(), "the next probe waits an interval");
    assert_eq!(
        tick.changes,
        [Change {
            backend: 0,
            name: "a".into(),
            liveness: Some(Liveness::Down {
                failures: 1,
                last: FailureReason::TimedOut { after_ms: 1_100 }
            }),
            unlisted: vec![],
            relisted: vec![],
        }]
    );
    assert!(!d.prober.is_live(0));
    // The late answer is ignored: the backend stays out.
    assert_eq!(d.prober.probe_kind(token), None);
    assert_eq!(d.prober.answered(token, ok(), deadline + 5), None);
    assert!(!d.prober.is_live(0));
    // And probing goes on.
    d.now = deadline;
    assert!(d.round(0, ok()).is_some());
    assert!(d.prober.is_live(0));
}

#[test]
fn a_probe_never_reported_dispatched_also_expires() {
    let mut prober = Prober::new(vec![backend("a", Some(probe("/health", 1, 1)), &[])], 1, 0);
    let sent = (0..1_000)
        .find(|&t| !prober.tick(t).probes.is_empty())
        .unwrap();
    let tick = prober.tick(sent + 1_100);
    assert_eq!(tick.changes.len(), 1);
    assert!(!prober.is_live(0));
    // A dispatch report after it was given up on records nothing.
    prober.dispatched(0, 77);
    assert_eq!(prober.probe_kind(77), None);
    assert_eq!(prober.answered(77, ok(), sent + 1_200), None);
}

#[test]
fn a_failed_dispatch_is_a_failure() {
    let mut prober = Prober::new(vec![backend("a", Some(probe("/health", 1, 1)), &[])], 1, 0);
    let request = (0..1_000)
        .find_map(|t| prober.tick(t).probes.pop())
        .unwrap();
    let change = prober
        .dispatch_failed(request.backend, 900, "BadArgument")
        .unwrap();
    assert_eq!(
        change.to_string(),
        "backend `a`: out of service after 1 failed probe in a row (last: dispatch failed: BadArgument)"
    );
    // Nothing in flight any more: a second report, or one for another
    // backend, changes nothing.
    assert_eq!(prober.dispatch_failed(0, 901, "again"), None);
    assert_eq!(prober.dispatch_failed(5, 901, "unknown"), None);
    // The next probe comes an interval later.
    assert!(prober.tick(1_700).probes.is_empty());
    assert_eq!(prober.tick(2_100).probes.len(), 1);
}

#[test]
fn unknown_and_stale_tokens_are_ignored() {
    let mut d = Driver::new(vec![backend("a", Some(probe("/health", 1, 1)), &[])]);
    assert_eq!(d.prober.answered(12345, failed(500), d.now), None);
    assert_eq!(d.prober.probe_kind(12345), None);
    let token = d.send(0);
    assert_eq!(d.prober.probe_kind(token), Some(ProbeKind::Status));
    assert_eq!(d.prober.answered(token, ok(), d.now + 1), None);
    // Answered twice: the second is stale.
    assert_eq!(d.prober.answered(token, failed(500), d.now + 2), None);
    assert!(d.prober.is_live(0));
}

#[test]
fn a_reused_token_belongs_to_the_newest_probe() {
    let mut prober = Prober::new(
        vec![
            backend("a", Some(probe("/health", 1, 1)), &[]),
            backend("b", Some(probe("/v1/models", 1, 1)), &[]),
        ],
        8,
        0,
    );
    let mut t = 0;
    let mut seen = 0;
    while seen < 2 {
        for request in prober.tick(t).probes {
            // The host hands out call id 7 twice (the first call finished
            // without its answer reaching the gateway).
            prober.dispatched(request.backend, 7);
            seen += 1;
        }
        t += 1;
    }
    let newest = if prober.probe_kind(7) == Some(ProbeKind::Models) {
        1
    } else {
        0
    };
    let change = prober.answered(7, failed(500), t).unwrap();
    assert_eq!(change.backend, newest);
    // The older probe lost its id and times out instead.
    assert_eq!(prober.answered(7, failed(500), t), None);
    let changes: Vec<Change> = (t..t + 1_200)
        .flat_map(|n| prober.tick(n).changes)
        .collect();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].backend, 1 - newest);
    assert!(matches!(
        changes[0].liveness,
        Some(Liveness::Down {
            last: FailureReason::TimedOut { .. },
            ..
        })
    ));
}

#[test]
fn an_expired_token_may_be_reused_by_another_backend() {
    let patient = ProbeConfig {
        interval_ms: 10_000,
        timeout_ms: 5_000,
        ..probe("/health", 1, 1)
    };
    let mut prober = Prober::new(
        vec![
            backend("a", Some(probe("/health", 2, 1)), &[]),
            backend("b", Some(patient), &[]),
        ],
        4,
        0,
    );
    let mut t = 0;
    let mut sent = Vec::new();
    while sent.len() < 2 {
        sent.extend(prober.tick(t).probes.into_iter().map(|r| r.backend));
        t += 1;
    }
    prober.dispatched(0, 9);
    // `a` is given up on (by 2,100 ms) while `b` still waits (until 6,000).
    while prober.probe_kind(9).is_some() {
        prober.tick(t);
        t += 1;
    }
    assert!(t <= 2_101);
    prober.dispatched(1, 9);
    let change = prober.answered(9, failed(503), t).unwrap();
    assert_eq!(change.backend, 1);
    assert!(prober.is_live(0));
}

// ---------------------------------------------------------------------------
// Models listings

#[test]
fn a_status_probe_never_restricts_models() {
    let mut d = Driver::new(vec![backend("a", Some(probe("/health", 2, 1)), &["m"])]);
    assert_eq!(d.round(0, ok()), None);
    assert!(d.prober.serves(0, "m"));
    assert!(d.prober.serves(0, "other"));
}

#[test]
fn listing_changes_are_reported_once_each_way() {
    let mut d = Driver::new(vec![backend(
        "vllm",
        Some(probe("/v1/models", 2, 1)),
        &["c", "a", "b"],
    )]);
    for m in ["a", "b", "c", "not-watched"] {
        assert!(d.prober.serves(0, m), "before any listing: {m}");
    }
    // The first list lacks `c`.
    let change = d.round(0, listing(&["b", "a", "zeta"])).unwrap();
    assert_eq!(change.liveness, None);
    assert_eq!(change.unlisted, ["c"]);
    assert!(change.relisted.is_empty());
    assert!(change.is_loss());
    assert_eq!(
        change.to_string(),
        "backend `vllm`: does not list `c`: models sent there under that name are not served"
    );
    assert!(d.prober.serves(0, "a"));
    assert!(!d.prober.serves(0, "c"));
    assert!(!d.prober.serves(0, "not-watched"));
    // The same list again: nothing to report.
    assert_eq!(d.round(0, listing(&["a", "b"])), None);
    // `c` is back.
    let change = d.round(0, listing(&["c", "a", "b"])).unwrap();
    assert_eq!(
        (change.unlisted.len(), change.relisted.clone()),
        (0, vec!["c".to_string()])
    );
    assert!(!change.is_loss());
    assert_eq!(change.to_string(), "backend `vllm`: lists `c` again");
    assert!(d.prober.serves(0, "c"));
    // Two leave at once, in one report.
    let change = d.round(0, listing(&["c"])).unwrap();
    assert_eq!(change.unlisted, ["a", "b"]);
    assert_eq!(
        change.to_string(),
        "backend `vllm`: does not list `a`, `b`: models sent there under those names are not served"
    );
    // One back, one gone, in one report.
    let change = d.round(0, listing(&["a"])).unwrap();
    assert_eq!(
        (change.unlisted, change.relisted),
        (vec!["c".to_string()], vec!["a".to_string()])
    );
}

#[test]
fn a_complete_first_listing_reports_nothing() {
    let mut d = Driver::new(vec![backend(
        "a",
        Some(probe("/v1/models", 2, 1)),
        &["m1", "m2"],
    )]);
    assert_eq!(d.round(0, listing(&["m2", "m1", "other"])), None);
    assert!(d.prober.serves(0, "m1") && d.prober.serves(0, "m2"));
}

#[test]
fn duplicate_upstream_names_are_reported_once() {
    let mut d = Driver::new(vec![backend(
        "a",
        Some(probe("/v1/models", 2, 1)),
        &["m", "m", "n"],
    )]);
    let change = d.round(0, listing(&["n"])).unwrap();
    assert_eq!(change.unlisted, ["m"]);
}

#[test]
fn failures_keep_the_last_listing() {
    let mut d = Driver::new(vec![backend(
        "a",
        Some(probe("/v1/models", 3, 1)),
        &["m", "n"],
    )]);
    assert!(d.round(0, listing(&["m"])).is_some());
    assert_eq!(d.round(0, failed(503)), None);
    assert!(d.prober.serves(0, "m"));
    assert!(!d.prober.serves(0, "n"));
    // The same listing after the failure is no news.
    assert_eq!(d.round(0, listing(&["m"])), None);
}

#[test]
fn a_backend_out_of_service_serves_nothing() {
    let mut d = Driver::new(vec![backend("a", Some(probe("/v1/models", 1, 1)), &["m"])]);
    assert_eq!(d.round(0, listing(&["m"])), None);
    assert!(d.round(0, failed(500)).is_some());
    assert!(!d.prober.serves(0, "m"));
}

#[test]
fn coming_back_with_a_changed_listing_is_one_report() {
    let mut d = Driver::new(vec![backend(
        "a",
        Some(probe("/v1/models", 1, 1)),
        &["m", "n"],
    )]);
    let down = d.round(0, Outcome::Failure(FailureReason::NotJson("x".into())));
    assert!(down.is_some());
    let change = d.round(0, listing(&["n"])).unwrap();
    assert_eq!(change.liveness, Some(Liveness::Up { successes: 1 }));
    assert_eq!(change.unlisted, ["m"]);
    assert!(change.is_loss());
    assert_eq!(
        change.to_string(),
        "backend `a`: back in service after 1 successful probe in a row; does not list `m`: models sent there under that name are not served"
    );
    assert!(d.prober.serves(0, "n"));
    assert!(!d.prober.serves(0, "m"));
}

#[test]
fn a_listing_read_while_out_of_service_is_reported_then() {
    let mut d = Driver::new(vec![backend("a", Some(probe("/v1/models", 1, 2)), &["m"])]);
    assert!(d.round(0, failed(500)).is_some());
    // One success of two needed: still out, but the listing is news.
    let change = d.round(0, listing(&[])).unwrap();
    assert_eq!(
        (change.liveness, change.unlisted),
        (None, vec!["m".to_string()])
    );
    let change = d.round(0, listing(&[])).unwrap();
    assert_eq!(change.liveness, Some(Liveness::Up { successes: 2 }));
    assert!(change.unlisted.is_empty());
    assert!(!d.prober.serves(0, "m"));
}

#[test]
fn probe_kind_of_a_models_probe() {
    let mut d = Driver::new(vec![backend(
        "a",
        Some(probe("/v1/models?limit=100", 2, 1)),
        &[],
    )]);
    let token = d.send(0);
    assert_eq!(d.prober.probe_kind(token), Some(ProbeKind::Models));
}

// ---------------------------------------------------------------------------
// Log lines, lookups, robustness

#[test]
fn changes_print_as_one_log_line() {
    let down = Change {
        backend: 0,
        name: "b".into(),
        liveness: Some(Liveness::Down {
            failures: 2,
            last: FailureReason::Status(503),
        }),
        unlisted: vec![],
        relisted: vec![],
    };
    assert_eq!(
        down.to_string(),
        "backend `b`: out of service after 2 failed probes in a row (last: status 503)"
    );
    assert!(down.is_loss());
    let up = Change {
        liveness: Some(Liveness::Up { successes: 2 }),
        ..down.clone()
    };
    assert_eq!(
        up.to_string(),
        "backend `b`: back in service after 2 successful probes in a row"
    );
    assert!(!up.is_loss());
    let all = Change {
        unlisted: vec!["x".into()],
        relisted: vec!["y".into(), "z".into()],
        ..down
    };
    assert_eq!(
        all.to_string(),
        "backend `b`: out of service after 2 failed probes in a row (last: status 503); does not list `x`: models sent there under that name are not served; lists `y`, `z` again"
    );
    assert!(!all.to_string().contains('\n'));
}

#[test]
fn lookups_by_name_and_index() {
    let prober = Prober::new(
        vec![
            backend("a", None, &[]),
            backend("b", Some(probe("/h", 2, 1)), &[]),
        ],
        0,
        0,
    );
    assert_eq!(prober.index("b"), Some(1));
    assert_eq!(prober.index("c"), None);
    assert_eq!(prober.name(0), Some("a"));
    assert_eq!(prober.name(2), None);
    // An index the prober does not know is an unprobed backend.
    assert!(prober.is_live(99));
    assert!(prober.serves(99, "m"));
}

#[test]
fn an_empty_prober_does_nothing() {
    let mut prober = Prober::new(vec![], 0, 0);
    assert_eq!(prober.tick(5), Tick::default());
    assert_eq!(prober.next_wakeup(), None);
    prober.dispatched(0, 1);
    assert_eq!(prober.answered(1, ok(), 5), None);
}

#[test]
fn a_clock_that_goes_back_does_not_stall_probing() {
    let mut d = Driver::new(vec![backend("a", Some(probe("/health", 1, 1)), &[])]);
    assert_eq!(d.round(0, ok()), None);
    let due = d.prober.next_wakeup().unwrap();
    // An hour back: the probe is due at once rather than in an hour.
    let back = due - 3_600_000;
    assert_eq!(d.prober.tick(back).probes.len(), 1);
    // In flight, the clock goes back again: the deadline restarts from now.
    let back_again = back - 3_600_000;
    assert!(d.prober.tick(back_again).changes.is_empty());
    assert_eq!(d.prober.next_wakeup(), Some(back_again + 1_100));
    assert_eq!(d.prober.tick(back_again + 1_100).changes.len(), 1);
}

#[test]
fn time_near_the_end_of_u64_does_not_overflow() {
    let start = u64::MAX - 500;
    let mut prober = Prober::new(
        vec![backend("a", Some(probe("/v1/models", 1, 1)), &["m"])],
        u64::MAX,
        start,
    );
    let mut t = start;
    let request = loop {
        if let Some(r) = prober.tick(t).probes.pop() {
            break r;
        }
        t += 1;
    };
    prober.dispatched(request.backend, u32::MAX);
    assert!(prober.next_wakeup().unwrap() >= t);
    assert!(prober.answered(u32::MAX, listing(&[]), u64::MAX).is_some());
    assert_eq!(prober.next_wakeup(), Some(u64::MAX));
    let tick = prober.tick(u64::MAX);
    assert_eq!(tick.probes.len(), 1);
}

#[test]
fn unchecked_settings_are_clamped_not_stormed() {
    let config = ProbeConfig {
        interval_ms: 0,
        timeout_ms: 0,
        unhealthy_threshold: 0,
        healthy_threshold: 0,
        ..ProbeConfig::with_path("/health")
    };
    let mut d = Driver::new(vec![backend("a", Some(config), &[])]);
    let token = d.send(0);
    let requests = d.prober.tick(d.now).probes;
    assert!(requests.is_empty());
    // A zero threshold behaves as one.
    assert!(d.prober.answered(token, failed(500), d.now).is_some());
    let wait = d.prober.next_wakeup().unwrap() - d.now;
    assert!((90..=110).contains(&wait), "{wait}");
}

#[test]
fn thresholds_of_a_hundred_hold() {
    let config = ProbeConfig {
        unhealthy_threshold: 100,
        ..probe("/health", 1, 1)
    };
    let mut d = Driver::new(vec![backend("a", Some(config), &[])]);
    for _ in 0..99 {
        assert_eq!(d.round(0, failed(500)), None);
    }
    assert!(d.round(0, failed(500)).is_some());
}
