//! A backend's probe as the operator writes it, and its checks.

use serde::Deserialize;
use std::ops::RangeInclusive;

/// How one backend is probed: part of the backend's entry in the
/// configuration. Only `path` is required.
///
/// Numbers are JSON integers: serde already refuses a negative number, a
/// fraction or a string for them ("invalid value: integer `-1`, expected
/// u64"); [`ProbeConfig::check`] refuses the rest (zero, out of range).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// The path probed with `GET`: 1-256 visible ASCII characters starting
    /// with `/`, without `#`. `/v1/models` (with or without a query string)
    /// must answer a 2xx models list, and a catalog model whose upstream name
    /// it does not list is not served by this backend; any other path only
    /// needs a 2xx status (its body is not read).
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1, max = 256), pattern(r#"^/[!"$-~]*$"#))
    )]
    pub path: String,
    /// The Envoy cluster the probe is sent to (1-256 visible ASCII
    /// characters); default: the backend's name.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 256)))]
    pub cluster: Option<String>,
    /// The `:authority` the probe carries: a host name or address with an
    /// optional port; default: the cluster's name.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 256)))]
    pub authority: Option<String>,
    /// Milliseconds from one probe's answer to the next probe (each time
    /// moved by up to 10 % either way, so workers do not probe in step):
    /// 100 to 3,600,000; default 5,000.
    #[serde(default = "default_interval_ms")]
    #[cfg_attr(feature = "schema", schemars(range(min = 100, max = 3_600_000)))]
    pub interval_ms: u64,
    /// Milliseconds a probe may take before it counts as failed: 10 to
    /// 60,000 and no more than `interval_ms`; default 1,000.
    #[serde(default = "default_timeout_ms")]
    #[cfg_attr(feature = "schema", schemars(range(min = 10, max = 60_000)))]
    pub timeout_ms: u64,
    /// Consecutive failed probes that take a live backend out of service:
    /// 1 to 100; default 2.
    #[serde(default = "default_unhealthy_threshold")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 100)))]
    pub unhealthy_threshold: u32,
    /// Consecutive successful probes that put a backend out of service back
    /// in: 1 to 100; default 1.
    #[serde(default = "default_healthy_threshold")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 100)))]
    pub healthy_threshold: u32,
}

/// Default [`ProbeConfig::interval_ms`].
pub const DEFAULT_INTERVAL_MS: u64 = 5_000;
/// Default [`ProbeConfig::timeout_ms`].
pub const DEFAULT_TIMEOUT_MS: u64 = 1_000;
/// Default [`ProbeConfig::unhealthy_threshold`].
pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 2;
/// Default [`ProbeConfig::healthy_threshold`].
pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 1;

/// Allowed [`ProbeConfig::interval_ms`].
pub const INTERVAL_MS: RangeInclusive<u64> = 100..=3_600_000;
/// Allowed [`ProbeConfig::timeout_ms`] (and never more than the interval).
pub const TIMEOUT_MS: RangeInclusive<u64> = 10..=60_000;
/// Allowed thresholds.
pub const THRESHOLD: RangeInclusive<u32> = 1..=100;
/// Longest `path`, `cluster` and `authority`, in bytes.
pub const MAX_TEXT_BYTES: usize = 256;

fn default_interval_ms() -> u64 {
    DEFAULT_INTERVAL_MS
}
fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn default_unhealthy_threshold() -> u32 {
    DEFAULT_UNHEALTHY_THRESHOLD
}
fn default_healthy_threshold() -> u32 {
    DEFAULT_HEALTHY_THRESHOLD
}

impl ProbeConfig {
    /// A probe of `path` with every other field at its default.
    pub fn with_path(path: impl Into<String>) -> Self {
        ProbeConfig {
            path: path.into(),
            cluster: None,
            authority: None,
            interval_ms: DEFAULT_INTERVAL_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            unhealthy_threshold: DEFAULT_UNHEALTHY_THRESHOLD,
            healthy_threshold: DEFAULT_HEALTHY_THRESHOLD,
        }
    }

    /// The first problem of this probe, in field order, as one message that
    /// starts with the field's place: `at` is where the probe sits in the
    /// document, for example `backends[1].probe`.
    pub fn check(&self, at: &str) -> Result<(), String> {
        if !is_probe_path(&self.path) {
            return Err(format!(
                "{at}.path: must start with `/` and be 1-{MAX_TEXT_BYTES} visible ASCII characters without `#` (got `{}`)",
                shown(&self.path)
            ));
        }
        if let Some(cluster) = self.cluster.as_deref().filter(|c| !is_cluster_name(c)) {
            return Err(format!(
                "{at}.cluster: must be 1-{MAX_TEXT_BYTES} visible ASCII characters (got `{}`)",
                shown(cluster)
            ));
        }
        if let Some(authority) = self.authority.as_deref().filter(|a| !is_authority(a)) {
            return Err(format!(
                "{at}.authority: must be a host name or address with an optional port, 1-{MAX_TEXT_BYTES} of A-Z a-z 0-9 . - _ : [ ] (got `{}`)",
                shown(authority)
            ));
        }
        let numbers = [
            ("interval_ms", self.interval_ms, &INTERVAL_MS),
            ("timeout_ms", self.timeout_ms, &TIMEOUT_MS),
        ];
        for (field, value, range) in numbers {
            if !range.contains(&value) {
                return Err(out_of_range(at, field, value, range));
            }
        }
        if self.timeout_ms > self.interval_ms {
            return Err(format!(
                "{at}.timeout_ms: must not be more than interval_ms ({}) (got {})",
                self.interval_ms, self.timeout_ms
            ));
        }
        let thresholds = [
            ("unhealthy_threshold", self.unhealthy_threshold),
            ("healthy_threshold", self.healthy_threshold),
        ];
        for (field, value) in thresholds {
            if !THRESHOLD.contains(&value) {
                return Err(out_of_range(at, field, value, &THRESHOLD));
            }
        }
        Ok(())
    }

    /// The cluster probes go to.
    pub(super) fn cluster_or<'a>(&'a self, backend: &'a str) -> &'a str {
        self.cluster.as_deref().unwrap_or(backend)
    }

    /// The `:authority` probes carry.
    pub(super) fn authority_or<'a>(&'a self, backend: &'a str) -> &'a str {
        self.authority
            .as_deref()
            .unwrap_or_else(|| self.cluster_or(backend))
    }
}

fn out_of_range<T: std::fmt::Display>(
    at: &str,
    field: &str,
    value: T,
    range: &RangeInclusive<T>,
) -> String {
    let (min, max) = (range.start(), range.end());
    format!("{at}.{field}: must be between {min} and {max} (got {value})")
}

fn is_probe_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= MAX_TEXT_BYTES
        && path.bytes().all(|c| c.is_ascii_graphic() && c != b'#')
}

fn is_cluster_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_TEXT_BYTES && name.bytes().all(|c| c.is_ascii_graphic())
}

fn is_authority(authority: &str) -> bool {
    !authority.is_empty()
        && authority.len() <= MAX_TEXT_BYTES
        && authority.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        })
}

/// A value quoted in a message: control characters escaped, at most 64
/// characters.
fn shown(value: &str) -> String {
    const MAX_CHARS: usize = 64;
    let mut out: String = value
        .chars()
        .take(MAX_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(MAX_CHARS).is_some() {
        out.push('…');
    }
    out
}
