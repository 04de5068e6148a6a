//! The rate-limit logic of envoyproxy/ratelimit, without any networking:
//! the limits configuration, descriptor matching, fixed windows and counting.
//!
//! Everything here is a pure function of its inputs (the current time is a
//! parameter), so it is unit-tested directly.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

/// A limit's time unit, with the same fixed window lengths as
/// envoyproxy/ratelimit (`utils.UnitToDivider`): a month is 30 days, a year
/// 365 days, and every window is aligned to the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    /// Parses a unit name the way envoyproxy/ratelimit does (case-insensitive).
    pub fn from_name(name: &str) -> Option<Unit> {
        Some(match name.to_ascii_uppercase().as_str() {
            "SECOND" => Unit::Second,
            "MINUTE" => Unit::Minute,
            "HOUR" => Unit::Hour,
            "DAY" => Unit::Day,
            "WEEK" => Unit::Week,
            "MONTH" => Unit::Month,
            "YEAR" => Unit::Year,
            _ => return None,
        })
    }

    /// From the numeric value of `envoy.type.v3.RateLimitUnit` (same numbering
    /// as `RateLimitResponse.RateLimit.Unit`).
    pub fn from_proto(value: i32) -> Option<Unit> {
        Some(match value {
            1 => Unit::Second,
            2 => Unit::Minute,
            3 => Unit::Hour,
            4 => Unit::Day,
            5 => Unit::Month,
            6 => Unit::Year,
            7 => Unit::Week,
            _ => return None,
        })
    }

    /// The numeric value of `RateLimitResponse.RateLimit.Unit`.
    pub fn to_proto(self) -> i32 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 2,
            Unit::Hour => 3,
            Unit::Day => 4,
            Unit::Month => 5,
            Unit::Year => 6,
            Unit::Week => 7,
        }
    }

    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => 86_400,
            Unit::Week => 604_800,
            Unit::Month => 2_592_000,
            Unit::Year => 31_536_000,
        }
    }
}

/// The fixed window containing `now_ms`: its number (`floor(now / unit)`)
/// and the milliseconds left until it ends (in `1..=unit`).
pub fn window(unit: Unit, now_ms: u64) -> (u64, u64) {
    let unit_ms = unit.seconds() * 1000;
    (now_ms / unit_ms, unit_ms - now_ms % unit_ms)
}

/// A limit that applies to a descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    pub requests_per_unit: u32,
    pub unit: Unit,
    pub name: String,
    /// Report OVER_LIMIT as OK (counters still move): `shadow_mode: true`.
    pub shadow_mode: bool,
}

/// What a config node says about the descriptors that end on it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NodeLimit {
    None,
    Unlimited,
    Limited(Limit),
}

#[derive(Debug, Default)]
struct Level {
    /// In configuration order.
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    key: String,
    /// `None`: the default for any value of `key`.
    value: Option<String>,
    limit: NodeLimit,
    children: Level,
}

impl Level {
    /// envoyproxy/ratelimit's order: the node with this exact key and value,
    /// else the first wildcard value (`*` in the value) that matches, else the
    /// node with this key and no value.
    fn find(&self, key: &str, value: &str) -> Option<&Node> {
        let same_key = || self.nodes.iter().filter(move |n| n.key == key);
        same_key()
            .find(|n| n.value.as_deref() == Some(value))
            .or_else(|| {
                same_key().find(|n| {
                    n.value
                        .as_deref()
                        .is_some_and(|p| p.contains('*') && glob_match(p, value))
                })
            })
            .or_else(|| same_key().find(|n| n.value.is_none()))
    }
}

/// `*` matches any run of characters (possibly empty); everything else is literal.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let middle_and_last: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle_and_last.split_last() else {
        // No `*` at all: the whole value must be the literal.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = rest.get(at + part.len()..).unwrap_or(""),
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// What the configuration resolves for one request descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Unknown domain, no matching node, or a node without `rate_limit`.
    NoLimit,
    /// `unlimited: true`.
    Unlimited,
    Limited(Limit),
}

/// The loaded limits: one tree per domain.
#[derive(Debug, Default)]
pub struct Limits {
    domains: HashMap<String, Level>,
}

// --- the configuration document (envoyproxy/ratelimit's YAML, as JSON) ---

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDocument {
    One(RawDomain),
    Many(Vec<RawDomain>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    domain: String,
    #[serde(default)]
    descriptors: Vec<RawDescriptor>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDescriptor {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    rate_limit: Option<RawRateLimit>,
    #[serde(default)]
    descriptors: Vec<RawDescriptor>,
    #[serde(default)]
    shadow_mode: bool,
    // Stats-only options of envoyproxy/ratelimit: accepted, no effect here.
    #[serde(default, rename = "detailed_metric")]
    _detailed_metric: bool,
    #[serde(default, rename = "value_to_metric")]
    _value_to_metric: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    requests_per_unit: u32,
    #[serde(default)]
    unlimited: bool,
    #[serde(default)]
    name: Option<String>,
}

impl Limits {
    /// Parses a config document: one `{"domain", "descriptors"}` object, or a
    /// list of them (one per domain, like several envoyproxy/ratelimit files).
    /// Rejects what envoyproxy/ratelimit rejects at load time.
    pub fn parse(json: &[u8]) -> Result<Limits, String> {
        let doc: RawDocument = serde_json::from_slice(json).map_err(|e| {
            // `untagged` hides the real reason: retry as a single object for it.
            match serde_json::from_slice::<RawDomain>(json) {
                Err(single) => format!("invalid config: {single}"),
                Ok(_) => format!("invalid config: {e}"),
            }
        })?;
        let raw = match doc {
            RawDocument::One(d) => vec![d],
            RawDocument::Many(v) => v,
        };
        let mut domains = HashMap::new();
        for d in raw {
            if d.domain.is_empty() {
                return Err("config error: config file cannot have empty domain".into());
            }
            if domains.contains_key(&d.domain) {
                return Err(format!("config error: duplicate domain '{}'", d.domain));
            }
            let level = build_level(&d.domain, d.descriptors)?;
            domains.insert(d.domain, level);
        }
        Ok(Limits { domains })
    }

    /// The limit for one descriptor, walking the tree entry by entry like
    /// envoyproxy/ratelimit's `GetLimit`: only the node reached by the last
    /// entry counts; a request deeper or shallower than the config gets none.
    pub fn resolve(&self, domain: &str, entries: &[(String, String)]) -> Resolved {
        let Some(mut level) = self.domains.get(domain) else {
            return Resolved::NoLimit;
        };
        let mut resolved = Resolved::NoLimit;
        for (i, (key, value)) in entries.iter().enumerate() {
            let Some(node) = level.find(key, value) else {
                break;
            };
            if i + 1 == entries.len() {
                resolved = match &node.limit {
                    NodeLimit::None => Resolved::NoLimit,
                    NodeLimit::Unlimited => Resolved::Unlimited,
                    NodeLimit::Limited(l) => Resolved::Limited(l.clone()),
                };
            }
            if node.children.nodes.is_empty() {
                break;
            }
            level = &node.children;
        }
        resolved
    }

    pub fn has_domain(&self, domain: &str) -> bool {
        self.domains.contains_key(domain)
    }
}

fn build_level(parent: &str, raw: Vec<RawDescriptor>) -> Result<Level, String> {
    let mut seen = HashSet::new();
    let mut nodes = Vec::with_capacity(raw.len());
    for d in raw {
        if d.key.is_empty() {
            return Err(format!(
                "config error: descriptor has empty key (under '{parent}')"
            ));
        }
        let value = d.value.filter(|v| !v.is_empty());
        let composite = match &value {
            Some(v) => format!("{}_{}", d.key, v),
            None => d.key.clone(),
        };
        let path = format!("{parent}.{composite}");
        if !seen.insert(composite) {
            return Err(format!(
                "config error: duplicate descriptor composite key '{path}'"
            ));
        }
        let limit = match d.rate_limit {
            None => NodeLimit::None,
            Some(rl) if rl.unlimited => {
                if rl.unit.is_some() {
                    return Err(format!(
                        "config error: should not specify rate limit unit when unlimited ('{path}')"
                    ));
                }
                NodeLimit::Unlimited
            }
            Some(rl) => {
                let unit_name = rl.unit.unwrap_or_default();
                let unit = Unit::from_name(&unit_name).ok_or_else(|| {
                    format!("config error: invalid rate limit unit '{unit_name}' ('{path}')")
                })?;
                NodeLimit::Limited(Limit {
                    requests_per_unit: rl.requests_per_unit,
                    unit,
                    name: rl.name.unwrap_or_default(),
                    shadow_mode: d.shadow_mode,
                })
            }
        };
        let children = build_level(&path, d.descriptors)?;
        nodes.push(Node {
            key: d.key,
            value,
            limit,
            children,
        });
    }
    Ok(Level { nodes })
}

// --- counting ---

/// Hits a descriptor adds, like envoyproxy/ratelimit's `GetHitsAddends`: the
/// descriptor's own `hits_addend` when present (0 allowed: check without
/// counting), else the request's `hits_addend`, at least 1.
pub fn hits_for(descriptor_hits: Option<u64>, request_hits: u32) -> u64 {
    descriptor_hits.unwrap_or_else(|| u64::from(request_hits.max(1)))
}

/// The counter key: domain, every entry, and the window start, like
/// envoyproxy/ratelimit's cache key `domain_k1_v1_k2_v2_<window start>`.
pub fn counter_key(domain: &str, entries: &[(String, String)], unit: Unit, window: u64) -> String {
    let mut key = String::from(domain);
    for (k, v) in entries {
        key.push('_');
        key.push_str(k);
        key.push('_');
        key.push_str(v);
    }
    key.push('_');
    key.push_str(&(window * unit.seconds()).to_string());
    key
}

/// Fixed-window counters. Expired windows are dropped as the map grows.
#[derive(Debug, Default)]
pub struct Counters {
    /// key -> (the window's end in ms, count)
    map: HashMap<String, (u64, u64)>,
}

const PRUNE_ABOVE: usize = 4096;

impl Counters {
    /// Adds `hits` to `key` (a key from [`counter_key`]) and returns the new value.
    pub fn add(&mut self, key: String, window_end_ms: u64, hits: u64, now_ms: u64) -> u64 {
        if self.map.len() > PRUNE_ABOVE && !self.map.contains_key(&key) {
            self.map.retain(|_, (end, _)| *end > now_ms);
        }
        let slot = self.map.entry(key).or_insert((window_end_ms, 0));
        slot.1 = slot.1.saturating_add(hits);
        slot.1
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

// --- one ShouldRateLimit call, as plain data ---

/// A request descriptor, as far as the limiter cares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    pub entries: Vec<(String, String)>,
    pub hits_addend: Option<u64>,
    /// `RateLimitDescriptor.limit` (requests_per_unit, unit enum value).
    pub limit_override: Option<(u32, i32)>,
}

/// The answer for one descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// OK with no `current_limit`.
    NoLimit,
    Limited {
        over_limit: bool,
        limit: Limit,
        remaining: u32,
        reset_ms: u64,
    },
}

/// Evaluates every descriptor of a request in order, counting as it goes.
/// Errors are what envoyproxy/ratelimit answers with a gRPC error.
pub fn evaluate(
    limits: &Limits,
    counters: &mut Counters,
    domain: &str,
    request_hits: u32,
    descriptors: &[Descriptor],
    now_ms: u64,
) -> Result<Vec<Outcome>, String> {
    if domain.is_empty() {
        return Err("rate limit domain must not be empty".into());
    }
    if descriptors.is_empty() {
        return Err("rate limit descriptor list must not be empty".into());
    }
    let mut resolved = Vec::with_capacity(descriptors.len());
    for d in descriptors {
        // A limit override in the request replaces the config (known domains only).
        let r = match d.limit_override {
            Some((rpu, unit)) if limits.has_domain(domain) => {
                let unit = Unit::from_proto(unit)
                    .ok_or_else(|| format!("invalid rate limit unit {unit} in limit override"))?;
                Resolved::Limited(Limit {
                    requests_per_unit: rpu,
                    unit,
                    name: String::new(),
                    shadow_mode: false,
                })
            }
            _ => limits.resolve(domain, &d.entries),
        };
        resolved.push(r);
    }
    let mut out = Vec::with_capacity(descriptors.len());
    for (d, r) in descriptors.iter().zip(resolved) {
        let limit = match r {
            Resolved::NoLimit | Resolved::Unlimited => {
                out.push(Outcome::NoLimit);
                continue;
            }
            Resolved::Limited(l) => l,
        };
        let (win, reset_ms) = window(limit.unit, now_ms);
        let key = counter_key(domain, &d.entries, limit.unit, win);
        let hits = hits_for(d.hits_addend, request_hits);
        let after = counters.add(key, now_ms + reset_ms, hits, now_ms);
        let per_unit = u64::from(limit.requests_per_unit);
        let (over, remaining) = if after > per_unit {
            (true, 0)
        } else {
            // after <= per_unit <= u32::MAX
            (false, u32::try_from(per_unit - after).unwrap_or(0))
        };
        out.push(Outcome::Limited {
            over_limit: over && !limit.shadow_mode,
            limit,
            remaining,
            reset_ms,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"domain": "openai-gateway",
     "descriptors": [
       {"key": "limit", "value": "requests", "descriptors": [
           {"key": "key_id", "rate_limit": {"unit": "minute", "requests_per_unit": 60, "name": "requests"}},
           {"key": "key_id", "value": "demo-limited", "rate_limit": {"unit": "minute", "requests_per_unit": 3, "name": "requests"}}
       ]},
       {"key": "limit", "value": "tokens", "descriptors": [
           {"key": "key_id", "rate_limit": {"unit": "minute", "requests_per_unit": 20000, "name": "tokens"}}
       ]}
     ]}"#;

    fn e(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn d(pairs: &[(&str, &str)]) -> Descriptor {
        Descriptor {
            entries: e(pairs),
            ..Default::default()
        }
    }

    fn limited(rpu: u32, unit: Unit, name: &str) -> Resolved {
        Resolved::Limited(Limit {
            requests_per_unit: rpu,
            unit,
            name: name.into(),
            shadow_mode: false,
        })
    }

    #[test]
    fn exact_value_beats_default() {
        let l = Limits::parse(EXAMPLE.as_bytes()).unwrap();
        let dom = "openai-gateway";
        assert_eq!(
            l.resolve(
                dom,
                &e(&[("limit", "requests"), ("key_id", "demo-limited")])
            ),
            limited(3, Unit::Minute, "requests")
        );
        assert_eq!(
            l.resolve(dom, &e(&[("limit", "requests"), ("key_id", "other")])),
            limited(60, Unit::Minute, "requests")
        );
        assert_eq!(
            l.resolve(dom, &e(&[("limit", "tokens"), ("key_id", "demo-limited")])),
            limited(20000, Unit::Minute, "tokens")
        );
    }

    #[test]
    fn depth_must_match_and_unknowns_have_no_limit() {
        let l = Limits::parse(EXAMPLE.as_bytes()).unwrap();
        let dom = "openai-gateway";
        // Shallower than the config: the "limit" node has no rate_limit.
        assert_eq!(
            l.resolve(dom, &e(&[("limit", "requests")])),
            Resolved::NoLimit
        );
        // Deeper than the config.
        assert_eq!(
            l.resolve(
                dom,
                &e(&[("limit", "requests"), ("key_id", "a"), ("x", "y")])
            ),
            Resolved::NoLimit
        );
        // Unknown first value (no default for "limit").
        assert_eq!(
            l.resolve(dom, &e(&[("limit", "other"), ("key_id", "a")])),
            Resolved::NoLimit
        );
        assert_eq!(
            l.resolve(dom, &e(&[("other", "requests"), ("key_id", "a")])),
            Resolved::NoLimit
        );
        assert_eq!(
            l.resolve("nope", &e(&[("limit", "requests"), ("key_id", "a")])),
            Resolved::NoLimit
        );
        assert_eq!(l.resolve(dom, &[]), Resolved::NoLimit);
    }

    #[test]
    fn intermediate_limit_applies_only_at_last_entry() {
        let cfg = r#"{"domain": "d", "descriptors": [
            {"key": "a", "rate_limit": {"unit": "second", "requests_per_unit": 5}, "descriptors": [
                {"key": "b", "value": "x", "rate_limit": {"unit": "HOUR", "requests_per_unit": 7, "name": "bx"}},
                {"key": "b", "value": "free", "rate_limit": {"unlimited": true}},
                {"key": "b", "value": "none"}
            ]}
        ]}"#;
        let l = Limits::parse(cfg.as_bytes()).unwrap();
        assert_eq!(
            l.resolve("d", &e(&[("a", "1")])),
            limited(5, Unit::Second, "")
        );
        assert_eq!(
            l.resolve("d", &e(&[("a", "1"), ("b", "x")])),
            limited(7, Unit::Hour, "bx")
        );
        assert_eq!(
            l.resolve("d", &e(&[("a", "1"), ("b", "free")])),
            Resolved::Unlimited
        );
        assert_eq!(
            l.resolve("d", &e(&[("a", "1"), ("b", "none")])),
            Resolved::NoLimit
        );
        // "a" has children but no default for "b": nothing at depth 2.
        assert_eq!(
            l.resolve("d", &e(&[("a", "1"), ("b", "y")])),
            Resolved::NoLimit
        );
    }

    #[test]
    fn wildcard_values() {
        let cfg = r#"{"domain": "d", "descriptors": [
            {"key": "path", "value": "/v1/*", "rate_limit": {"unit": "day", "requests_per_unit": 2}},
            {"key": "path", "value": "/v1/models", "rate_limit": {"unit": "day", "requests_per_unit": 9}},
            {"key": "path", "rate_limit": {"unit": "day", "requests_per_unit": 1}}
        ]}"#;
        let l = Limits::parse(cfg.as_bytes()).unwrap();
        assert_eq!(
            l.resolve("d", &e(&[("path", "/v1/models")])),
            limited(9, Unit::Day, "")
        );
        assert_eq!(
            l.resolve("d", &e(&[("path", "/v1/chat")])),
            limited(2, Unit::Day, "")
        );
        assert_eq!(
            l.resolve("d", &e(&[("path", "/v2/x")])),
            limited(1, Unit::Day, "")
        );
        assert!(glob_match("a*c*e", "abcde"));
        assert!(glob_match("a*", "a"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*c", "ab"));
        assert!(!glob_match("abc", "abcd"));
        assert!(glob_match("abc", "abc"));
        assert!(!glob_match("a*b*b", "ab"));
    }

    #[test]
    fn config_errors() {
        let bad = [
            (r#"{"domain": "", "descriptors": []}"#, "empty domain"),
            (
                r#"{"domain": "d", "descriptors": [{"key": ""}]}"#,
                "empty key",
            ),
            (
                r#"{"domain": "d", "descriptors": [{"key": "a"}, {"key": "a", "value": ""}]}"#,
                "duplicate",
            ),
            (
                r#"{"domain": "d", "descriptors": [{"key": "a", "rate_limit": {"requests_per_unit": 1}}]}"#,
                "invalid rate limit unit",
            ),
            (
                r#"{"domain": "d", "descriptors": [{"key": "a", "rate_limit": {"unit": "fortnight"}}]}"#,
                "invalid rate limit unit",
            ),
            (
                r#"{"domain": "d", "descriptors": [{"key": "a", "rate_limit": {"unlimited": true, "unit": "second"}}]}"#,
                "unlimited",
            ),
            (
                r#"{"domain": "d", "descriptors": [{"key": "a", "rate_limit": {"unit": "second", "request_per_unit": 1}}]}"#,
                "unknown field",
            ),
            (r#"[{"domain": "d"}, {"domain": "d"}]"#, "duplicate domain"),
            (r#"{"descriptors": []}"#, "missing field `domain`"),
            ("not json", "invalid config"),
        ];
        for (cfg, want) in bad {
            let err = Limits::parse(cfg.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{cfg}: {err}");
        }
        let two = Limits::parse(br#"[{"domain": "a"}, {"domain": "b"}]"#).unwrap();
        assert!(two.has_domain("a") && two.has_domain("b"));
    }

    #[test]
    fn windows_are_aligned_to_the_unit() {
        // 1_700_000_000 s is 20 s into its minute (1_699_999_980 = 60 * 28_333_333).
        let now = 1_700_000_000_250;
        assert_eq!(window(Unit::Minute, now), (28_333_333, 39_750));
        assert_eq!(window(Unit::Second, now), (1_700_000_000, 750));
        assert_eq!(window(Unit::Minute, 60_000), (1, 60_000));
        assert_eq!(window(Unit::Minute, 59_999), (0, 1));
        assert_eq!(window(Unit::Hour, 3_600_000 * 5 + 1), (5, 3_599_999));
        assert_eq!(window(Unit::Day, 0), (0, 86_400_000));
        assert_eq!(
            counter_key("d", &e(&[("a", "1"), ("b", "2")]), Unit::Minute, 28_333_333),
            "d_a_1_b_2_1699999980"
        );
    }

    #[test]
    fn hits_addend_precedence() {
        assert_eq!(hits_for(None, 0), 1);
        assert_eq!(hits_for(None, 5), 5);
        assert_eq!(hits_for(Some(7), 5), 7);
        // A descriptor's explicit 0 checks without counting, like envoyproxy/ratelimit.
        assert_eq!(hits_for(Some(0), 5), 0);
    }

    #[test]
    fn counting_over_a_window() {
        let l = Limits::parse(EXAMPLE.as_bytes()).unwrap();
        let mut c = Counters::default();
        let dom = "openai-gateway";
        let desc = [d(&[("limit", "requests"), ("key_id", "demo-limited")])];
        let t0 = 1_700_000_000_250; // 39.75 s left in the minute
        let mut got = Vec::new();
        for i in 0..5 {
            let out = evaluate(&l, &mut c, dom, 0, &desc, t0 + i * 1000).unwrap();
            let Outcome::Limited {
                over_limit,
                remaining,
                reset_ms,
                ref limit,
            } = out[0]
            else {
                panic!("no limit")
            };
            assert_eq!(limit.requests_per_unit, 3);
            assert_eq!(reset_ms, 39_750 - i * 1000);
            got.push((over_limit, remaining));
        }
        assert_eq!(
            got,
            [(false, 2), (false, 1), (false, 0), (true, 0), (true, 0)]
        );
        // The next window starts afresh.
        let out = evaluate(&l, &mut c, dom, 0, &desc, t0 + 39_750).unwrap();
        assert!(matches!(
            out[0],
            Outcome::Limited {
                over_limit: false,
                remaining: 2,
                reset_ms: 60_000,
                ..
            }
        ));
        // Other key ids have their own counters and the default limit.
        let other = [d(&[("limit", "requests"), ("key_id", "k2")])];
        let out = evaluate(&l, &mut c, dom, 0, &other, t0).unwrap();
        assert!(matches!(
            out[0],
            Outcome::Limited {
                over_limit: false,
                remaining: 59,
                ..
            }
        ));
    }

    #[test]
    fn hits_and_several_descriptors() {
        let l = Limits::parse(EXAMPLE.as_bytes()).unwrap();
        let mut c = Counters::default();
        let dom = "openai-gateway";
        let now = 1_000;
        let mut tokens = d(&[("limit", "tokens"), ("key_id", "k")]);
        tokens.hits_addend = Some(19_999);
        let reqs = d(&[("limit", "requests"), ("key_id", "demo-limited")]);
        let unknown = d(&[("x", "y")]);
        let out = evaluate(
            &l,
            &mut c,
            dom,
            2,
            &[reqs.clone(), tokens.clone(), unknown],
            now,
        )
        .unwrap();
        let remaining: Vec<Option<(bool, u32)>> = out
            .iter()
            .map(|o| match o {
                Outcome::NoLimit => None,
                Outcome::Limited {
                    over_limit,
                    remaining,
                    ..
                } => Some((*over_limit, *remaining)),
            })
            .collect();
        // Request hits_addend 2 for the requests descriptor, its own 19999 for tokens.
        assert_eq!(remaining, [Some((false, 1)), Some((false, 1)), None]);
        // Counters go up even when over the limit.
        tokens.hits_addend = Some(5);
        let out = evaluate(&l, &mut c, dom, 0, &[tokens.clone()], now).unwrap();
        assert!(matches!(
            out[0],
            Outcome::Limited {
                over_limit: true,
                remaining: 0,
                ..
            }
        ));
        // hits_addend 0 on the descriptor: a check that does not count.
        tokens.hits_addend = Some(0);
        let out = evaluate(&l, &mut c, dom, 0, &[tokens], now).unwrap();
        assert!(matches!(
            out[0],
            Outcome::Limited {
                over_limit: true,
                ..
            }
        ));
        let out = evaluate(&l, &mut c, dom, 0, &[reqs], now).unwrap();
        assert!(matches!(
            out[0],
            Outcome::Limited {
                over_limit: false,
                remaining: 0,
                ..
            }
        ));
    }

    #[test]
    fn unknown_domain_unlimited_override_shadow_and_errors() {
        let cfg = r#"{"domain": "d", "descriptors": [
            {"key": "u", "rate_limit": {"unlimited": true}},
            {"key": "s", "shadow_mode": true, "rate_limit": {"unit": "second", "requests_per_unit": 0}}
        ]}"#;
        let l = Limits::parse(cfg.as_bytes()).unwrap();
        let mut c = Counters::default();
        let out = evaluate(&l, &mut c, "other", 0, &[d(&[("u", "1")])], 0).unwrap();
        assert_eq!(out, [Outcome::NoLimit]);
        let out = evaluate(&l, &mut c, "d", 0, &[d(&[("u", "1")])], 0).unwrap();
        assert_eq!(out, [Outcome::NoLimit]);
        // Shadow mode: reported OK, remaining 0.
        let out = evaluate(&l, &mut c, "d", 0, &[d(&[("s", "1")])], 0).unwrap();
        assert!(matches!(
            out[0],
            Outcome::Limited {
                over_limit: false,
                remaining: 0,
                ..
            }
        ));
        // A limit override replaces the config for a known domain.
        let mut o = d(&[("nothing", "configured")]);
        o.limit_override = Some((1, 1));
        let out = evaluate(&l, &mut c, "d", 0, &[o.clone(), o.clone()], 500).unwrap();
        let codes: Vec<bool> = out
            .iter()
            .map(|x| {
                matches!(
                    x,
                    Outcome::Limited {
                        over_limit: true,
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(codes, [false, true]);
        // ... but not for an unknown one.
        let out = evaluate(&l, &mut c, "other", 0, &[o.clone()], 500).unwrap();
        assert_eq!(out, [Outcome::NoLimit]);
        o.limit_override = Some((1, 0));
        assert!(evaluate(&l, &mut c, "d", 0, &[o], 0).is_err());
        assert!(evaluate(&l, &mut c, "", 0, &[d(&[("u", "1")])], 0).is_err());
        assert!(evaluate(&l, &mut c, "d", 0, &[], 0).is_err());
    }

    #[test]
    fn counters_prune_expired_windows() {
        let mut c = Counters::default();
        for i in 0..=PRUNE_ABOVE {
            c.add(format!("old{i}"), 1_000, 1, 0);
        }
        assert_eq!(c.add("new".into(), 5_000, 1, 2_000), 1);
        assert_eq!(c.map.len(), 1);
    }
}
