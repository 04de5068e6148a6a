//! Plugin configuration: the JSON an operator writes (Envoy's `configuration`
//! value, Istio's `pluginConfig`), parsed and checked once in `on_configure`
//! into an immutable [`Gateway`] shared by every request.

use crate::auth::{ApiKey, KeyDigest, KeyStore};
use crate::billing::{Price, PriceConfig, Settlement};
use crate::catalog::{Capability, Catalog, Category, Model, ModelIndex, ModelRoute};
use crate::health::{self, ProbeConfig};
use crate::ids::IdCodec;
use crate::serving::Serving;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// The configuration document, field for field as operators write it.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Who may call the API.
    pub api_keys: Vec<ApiKeyConfig>,
    /// The model catalog.
    pub models: Vec<ModelConfig>,
    /// Per-backend settings, by the backend names used in `models`.
    #[serde(default)]
    pub backends: Vec<BackendConfig>,
    /// Names of the request headers the gateway sets for Envoy.
    #[serde(default)]
    pub headers: HeaderNames,
    /// Added to every error envelope as `error.doc_url`.
    #[serde(default)]
    pub doc_url: Option<String>,
    /// How requests are charged against token-per-minute limits.
    #[serde(default)]
    pub token_limits: TokenLimits,
    /// What a request may carry.
    #[serde(default)]
    pub limits: Limits,
    /// Secret (at least 32 bytes) that authenticates the ids the gateway
    /// issues for stored responses, deferred completions and video jobs;
    /// every replica must share it. Without it, calls by id answer 404.
    #[serde(default)]
    pub id_secret: Option<String>,
    /// What the exported metrics carry.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Whether counters and histograms carry a `key_id` label (default
    /// true). Each key multiplies the series Envoy keeps and exports: with
    /// thousands of keys, set false and keep per-key usage in the access log.
    pub per_key: bool,
    /// Whether requests record the latency and token-usage histograms
    /// (default true). Each sample and clock read is a call into Envoy
    /// (about 1-2 % of a small request's cost); false saves them, the
    /// counters stay.
    pub histograms: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            per_key: true,
            histograms: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct TokenLimits {
    /// Completion tokens charged when a request sets no `max_tokens` /
    /// `max_completion_tokens`.
    pub default_max_tokens: u64,
    /// When the tokens limit is charged: `reserve` (the estimate, up
    /// front), `settle` (1 up front, the reported usage when the exchange
    /// completes) or `reserve_then_settle` (the estimate up front, the
    /// usage beyond it when the exchange completes). Settling needs Envoy's
    /// `ratelimit` filter with an `apply_on_stream_done` rate limit.
    pub settlement: Settlement,
}

impl Default for TokenLimits {
    fn default() -> Self {
        TokenLimits {
            default_max_tokens: 1024,
            settlement: Settlement::Reserve,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The largest request body the gateway reads, in bytes (default 26 MiB:
    /// a 25 MB audio upload with its form framing). A larger `content-length`
    /// is refused with 413 before the body is read; a chunked body is refused
    /// once it grows past it. Envoy buffers the body too: its buffer limit
    /// (the listener's `per_connection_buffer_limit_bytes`) must be at least
    /// this, or Envoy answers 413 first (also as an OpenAI error envelope).
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub max_request_bytes: u64,
}

/// 26 MiB, the demo listener's `per_connection_buffer_limit_bytes`.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 26 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Public name of the key: sent to Envoy and backends in the key-id header.
    pub id: String,
    /// Hex SHA-256 digest of the secret key (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    /// Models (ids or aliases) the key may use; absent means all.
    #[serde(default)]
    pub models: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub id: String,
    pub category: Category,
    /// The backend that serves the model: written into the backend header;
    /// an Envoy route matches it. Give this or `backends`.
    #[serde(default)]
    pub backend: Option<String>,
    /// Several backends that serve the model, in priority order: a request
    /// goes to the first that is serving (see `backends[].probe`). Give this
    /// or `backend`.
    #[serde(default)]
    pub backends: Vec<ModelBackendConfig>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// The model name the backend expects, when it differs from `id` (with
    /// `backends`: for those that do not give their own).
    #[serde(default)]
    pub upstream_model: Option<String>,
    #[serde(default = "default_owned_by")]
    pub owned_by: String,
    /// Unix time shown as `created` by `GET /v1/models`.
    #[serde(default)]
    pub created: u64,
    /// The model's context window in tokens (prompt and output together).
    /// A request that provably cannot fit it is refused with 400
    /// `context_length_exceeded` before it reaches the backend.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 100_000_000)))]
    pub context_window: Option<u64>,
    /// The most output tokens the model produces per request; a larger
    /// `max_tokens` / `max_completion_tokens` / `max_output_tokens` is
    /// refused with 400 on that field. Without it, the context window bounds
    /// the output.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 100_000_000)))]
    pub max_output_tokens: Option<u64>,
    /// What the model's tokens cost, in units of money per million tokens:
    /// the spend a request is charged against its key's spend budget.
    /// Without it the model costs nothing.
    #[serde(default)]
    pub price: Option<PriceConfig>,
}

/// One of the backends that serve a model.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ModelBackendConfig {
    /// The backend's name, as in the backend header.
    pub name: String,
    /// The name this backend knows the model by, when it differs from the
    /// model's `upstream_model` (or `id`).
    #[serde(default)]
    pub upstream_model: Option<String>,
}

fn default_owned_by() -> String {
    "system".to_string()
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub name: String,
    /// Sent upstream as the `Authorization` header (for example
    /// `Bearer <backend token>`); without it no `Authorization` is sent.
    #[serde(default)]
    pub authorization: Option<String>,
    /// How the gateway checks that the backend is serving; without it the
    /// backend always counts as serving.
    #[serde(default)]
    pub probe: Option<ProbeConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct HeaderNames {
    /// Carries the backend name of the resolved model (route match).
    pub backend: String,
    /// Carries the id of the authenticated key.
    pub key_id: String,
    /// Carries the canonical id of the resolved model.
    pub model: String,
    /// Carries the request's estimated token cost (the tokens limiter's
    /// `hits_addend`).
    pub token_cost: String,
    /// Set to `true` on requests whose response streams (`"stream": true`),
    /// so an Envoy route can bound them by an idle timeout instead of an
    /// overall deadline.
    pub stream: String,
    /// Carries the request's spend charged up front, in micro-units (the
    /// spend limiter's `hits_addend`), for models with a price.
    pub spend_cost: String,
}

impl Default for HeaderNames {
    fn default() -> Self {
        HeaderNames {
            backend: "x-gateway-backend".into(),
            key_id: "x-gateway-key-id".into(),
            model: "x-gateway-model".into(),
            token_cost: "x-gateway-token-cost".into(),
            stream: "x-gateway-stream".into(),
            spend_cost: "x-gateway-spend-cost".into(),
        }
    }
}

impl HeaderNames {
    /// Every header the gateway owns; client-supplied copies are removed.
    pub fn all(&self) -> [&str; 6] {
        [
            &self.backend,
            &self.key_id,
            &self.model,
            &self.token_cost,
            &self.stream,
            &self.spend_cost,
        ]
    }
}

/// The compiled configuration every request is decided against.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub keys: KeyStore,
    pub catalog: Catalog,
    /// Backend name → the `Authorization` value to send it.
    pub backend_credentials: HashMap<String, String>,
    pub headers: HeaderNames,
    pub doc_url: Option<String>,
    pub token_limits: TokenLimits,
    pub limits: Limits,
    pub ids: Option<IdCodec>,
    /// Backend name → its health probe, for the backends that have one.
    pub probes: HashMap<String, ProbeConfig>,
    /// Which backends serve each model now (see [`Serving`]).
    pub serving: Serving,
    pub metrics: MetricsConfig,
}

impl Gateway {
    /// How often the backend is probed, if it is.
    pub fn probe_interval_ms(&self, backend: &str) -> Option<u64> {
        self.probes.get(backend).map(|probe| probe.interval_ms)
    }

    /// Every backend the catalog names, in first-use order, with its probe
    /// and the names its models have there: what the health probes watch.
    pub fn probed_backends(&self) -> Vec<health::Backend> {
        let mut backends: Vec<health::Backend> = Vec::new();
        for (_, model) in self.catalog.models() {
            for route in model.routes() {
                let upstream = model.upstream_name(route).to_string();
                match backends.iter_mut().find(|b| b.name == route.backend) {
                    Some(backend) => backend.upstream_models.push(upstream),
                    None => backends.push(health::Backend {
                        name: route.backend.clone(),
                        probe: self.probes.get(&route.backend).cloned(),
                        upstream_models: vec![upstream],
                    }),
                }
            }
        }
        backends
    }
}

/// A configuration the gateway refuses to run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl TryFrom<&[u8]> for Gateway {
    type Error = ConfigError;

    fn try_from(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: PluginConfig = serde_json::from_slice(bytes)
            .map_err(|e| ConfigError(format!("not valid configuration JSON: {e}")))?;
        Gateway::try_from(config)
    }
}

impl TryFrom<PluginConfig> for Gateway {
    type Error = ConfigError;

    /// Checks the document section by section, in the order written here,
    /// and reports the first problem with the field that has it.
    fn try_from(config: PluginConfig) -> Result<Self, ConfigError> {
        let PluginConfig {
            api_keys,
            models,
            backends,
            headers,
            doc_url,
            token_limits,
            limits,
            id_secret,
            metrics,
        } = config;
        check_headers(&headers)?;
        // The backends named by `models[].backends` lists (even of one),
        // which must be declared.
        let listed: Vec<(usize, usize, String)> = models
            .iter()
            .enumerate()
            .flat_map(|(i, m)| {
                m.backends
                    .iter()
                    .enumerate()
                    .map(move |(j, b)| (i, j, b.name.clone()))
            })
            .collect();
        let catalog = compile_catalog(models)?;
        let keys = compile_keys(api_keys, &catalog)?;
        let (backend_credentials, probes) = compile_backends(backends, &catalog, &listed)?;
        check_settings(id_secret.as_deref(), &limits, doc_url.as_deref())?;
        // HMAC takes keys of any length: this never fails.
        let Ok(ids) = id_secret
            .as_deref()
            .map(|s| IdCodec::new(s.as_bytes()))
            .transpose()
        else {
            return Err(ConfigError(
                "id_secret: not usable as an HMAC-SHA256 key".into(),
            ));
        };
        Ok(Gateway {
            keys: KeyStore::new(keys),
            serving: Serving::new(&catalog),
            catalog,
            probes,
            backend_credentials,
            headers,
            doc_url,
            token_limits,
            limits,
            ids,
            metrics,
        })
    }
}

/// `models`: at least one, each with valid names and backend, no name used twice.
fn compile_catalog(configs: Vec<ModelConfig>) -> Result<Catalog, ConfigError> {
    if configs.is_empty() {
        return Err(ConfigError(
            "`models` is empty: configure at least one model".into(),
        ));
    }
    let mut models = Vec::with_capacity(configs.len());
    for (i, m) in configs.into_iter().enumerate() {
        let at = format!("models[{i}]");
        check_name(&m.id, &format!("{at}.id"))?;
        for (j, alias) in m.aliases.iter().enumerate() {
            check_name(alias, &format!("{at}.aliases[{j}]"))?;
        }
        if let Some(upstream) = &m.upstream_model {
            check_name(upstream, &format!("{at}.upstream_model"))?;
        }
        let (route, fallbacks) = compile_routes(m.backend, m.backends, &m.upstream_model, &at)?;
        check_windows(m.context_window, m.max_output_tokens, &at)?;
        let price = m
            .price
            .as_ref()
            .map(|p| Price::compile(p, &format!("{at}.price")))
            .transpose()
            .map_err(ConfigError)?;
        models.push(Model {
            id: m.id,
            category: m.category,
            route,
            fallbacks,
            aliases: m.aliases,
            capabilities: m.capabilities,
            owned_by: m.owned_by,
            created: m.created,
            context_window: m.context_window,
            max_output_tokens: m.max_output_tokens,
            price,
        });
    }
    Catalog::new(models).map_err(ConfigError)
}

/// The most backends one model may name.
const MAX_MODEL_BACKENDS: usize = 16;

/// A model's `backend` or `backends`: exactly one of them, each backend
/// once. Returns the first route and the fallbacks.
fn compile_routes(
    backend: Option<String>,
    backends: Vec<ModelBackendConfig>,
    upstream: &Option<String>,
    at: &str,
) -> Result<(ModelRoute, Vec<ModelRoute>), ConfigError> {
    let routes: Vec<ModelRoute> = match (backend, backends.is_empty()) {
        (Some(name), true) => {
            check_token(&name, &format!("{at}.backend"))?;
            vec![ModelRoute {
                backend: name,
                upstream_model: upstream.clone(),
            }]
        }
        (None, false) if backends.len() <= MAX_MODEL_BACKENDS => {
            let mut routes: Vec<ModelRoute> = Vec::with_capacity(backends.len());
            for (j, b) in backends.into_iter().enumerate() {
                let at = format!("{at}.backends[{j}]");
                check_token(&b.name, &format!("{at}.name"))?;
                if let Some(name) = &b.upstream_model {
                    check_name(name, &format!("{at}.upstream_model"))?;
                }
                if routes.iter().any(|r| r.backend == b.name) {
                    return Err(ConfigError(format!(
                        "{at}.name: backend `{}` is listed twice for this model",
                        b.name
                    )));
                }
                routes.push(ModelRoute {
                    backend: b.name,
                    upstream_model: b.upstream_model.or_else(|| upstream.clone()),
                });
            }
            routes
        }
        (None, false) => {
            return Err(ConfigError(format!(
                "{at}.backends: at most {MAX_MODEL_BACKENDS} backends per model"
            )))
        }
        (Some(_), false) => {
            return Err(ConfigError(format!(
                "{at}: give `backend` or `backends`, not both"
            )))
        }
        (None, true) => {
            return Err(ConfigError(format!(
                "{at}: missing `backend` (or `backends`): the backend that serves the model"
            )))
        }
    };
    let mut routes = routes.into_iter();
    let first = routes
        .next()
        .ok_or_else(|| ConfigError(format!("{at}.backends: empty")))?;
    Ok((first, routes.collect()))
}

/// The largest token count a window or output limit may be (a larger one is
/// a typo, not a model).
const MAX_WINDOW_TOKENS: u64 = 100_000_000;

/// `context_window` and `max_output_tokens`: 1 to 10^8 tokens, the output
/// limit within the window.
fn check_windows(window: Option<u64>, output: Option<u64>, at: &str) -> Result<(), ConfigError> {
    for (value, field) in [(window, "context_window"), (output, "max_output_tokens")] {
        if value.is_some_and(|n| n == 0 || n > MAX_WINDOW_TOKENS) {
            return Err(ConfigError(format!(
                "{at}.{field}: must be 1 to {MAX_WINDOW_TOKENS} tokens"
            )));
        }
    }
    match (window, output) {
        (Some(w), Some(o)) if o > w => Err(ConfigError(format!(
            "{at}.max_output_tokens: {o} is more than the context window ({w})"
        ))),
        _ => Ok(()),
    }
}

/// `api_keys`: at least one; ids and digests unique; digests (never keys) in
/// hex; the models a key is limited to resolved against the catalog.
fn compile_keys(configs: Vec<ApiKeyConfig>, catalog: &Catalog) -> Result<Vec<ApiKey>, ConfigError> {
    if configs.is_empty() {
        return Err(ConfigError(
            "`api_keys` is empty: configure at least one key (its SHA-256 digest)".into(),
        ));
    }
    let mut keys = Vec::with_capacity(configs.len());
    let mut ids = HashSet::new();
    let mut digests = HashSet::new();
    for (i, k) in configs.into_iter().enumerate() {
        let at = format!("api_keys[{i}]");
        check_token(&k.id, &format!("{at}.id"))?;
        if !ids.insert(k.id.clone()) {
            return Err(ConfigError(format!(
                "{at}.id: key id `{}` is used twice",
                k.id
            )));
        }
        let Some(digest) = parse_hex_digest(&k.sha256) else {
            return Err(ConfigError(format!(
                "{at}.sha256: expected the key's SHA-256 digest as 64 hex digits, never the key itself"
            )));
        };
        if !digests.insert(digest) {
            return Err(ConfigError(format!(
                "{at}.sha256: the same key digest is configured twice"
            )));
        }
        let models = match k.models {
            None => None,
            Some(names) => Some(resolve_allowed_models(&names, catalog, &at)?),
        };
        keys.push(ApiKey {
            id: k.id,
            digest,
            models,
        });
    }
    Ok(keys)
}

/// `api_keys[i].models`: every name is a model of the catalog.
fn resolve_allowed_models(
    names: &[String],
    catalog: &Catalog,
    at: &str,
) -> Result<Vec<ModelIndex>, ConfigError> {
    let mut allowed = Vec::with_capacity(names.len());
    for (j, name) in names.iter().enumerate() {
        let Some((index, _)) = catalog.resolve(name) else {
            return Err(ConfigError(format!(
                "{at}.models[{j}]: `{name}` is not a model of the catalog"
            )));
        };
        allowed.push(index);
    }
    Ok(allowed)
}

/// Backend name → credential, and backend name → probe.
type BackendSettings = (HashMap<String, String>, HashMap<String, ProbeConfig>);

/// `backends`: each names a backend some model uses, once; its credential
/// is a valid header value; its probe is within range. A model's list of
/// backends (`models[].backends`) may only name backends declared here (a
/// typo is caught at start, not by a failover); a single `backend` may be
/// undeclared (as before lists existed: it is then neither probed nor given
/// a credential).
fn compile_backends(
    configs: Vec<BackendConfig>,
    catalog: &Catalog,
    listed: &[(usize, usize, String)],
) -> Result<BackendSettings, ConfigError> {
    let used_backends: HashSet<&str> = catalog
        .models()
        .flat_map(|(_, m)| m.routes())
        .map(|r| r.backend.as_str())
        .collect();
    if let Some((i, j, name)) = listed
        .iter()
        .find(|(_, _, name)| !configs.iter().any(|b| &b.name == name))
    {
        return Err(ConfigError(format!(
            "models[{i}].backends[{j}].name: backend `{name}` is not in `backends`: a model's list of backends may only name declared ones"
        )));
    }
    let mut backend_credentials = HashMap::new();
    let mut probes = HashMap::new();
    let mut seen = HashSet::new();
    for (i, b) in configs.into_iter().enumerate() {
        let at = format!("backends[{i}]");
        if !used_backends.contains(b.name.as_str()) {
            return Err(ConfigError(format!(
                "{at}.name: no model uses backend `{}`",
                b.name
            )));
        }
        if let Some(value) = &b.authorization {
            if value.is_empty() || value.bytes().any(|c| c.is_ascii_control()) {
                return Err(ConfigError(format!("{at}.authorization: must be a non-empty header value without control characters")));
            }
        }
        if !seen.insert(b.name.clone()) {
            return Err(ConfigError(format!(
                "{at}.name: backend `{}` is listed twice",
                b.name
            )));
        }
        if let Some(probe) = b.probe {
            probe.check(&format!("{at}.probe")).map_err(ConfigError)?;
            probes.insert(b.name.clone(), probe);
        }
        if let Some(value) = b.authorization {
            backend_credentials.insert(b.name, value);
        }
    }
    Ok((backend_credentials, probes))
}

/// `id_secret`, `limits` and `doc_url`.
fn check_settings(
    id_secret: Option<&str>,
    limits: &Limits,
    doc_url: Option<&str>,
) -> Result<(), ConfigError> {
    if id_secret.is_some_and(|secret| secret.len() < 32) {
        return Err(ConfigError(
            "id_secret: must be at least 32 bytes (for example `openssl rand -hex 32`)".into(),
        ));
    }
    if limits.max_request_bytes == 0 {
        return Err(ConfigError(
            "limits.max_request_bytes: must be at least 1".into(),
        ));
    }
    if doc_url.is_some_and(|url| url.is_empty() || url.chars().any(char::is_control)) {
        return Err(ConfigError("doc_url: must be a non-empty URL".into()));
    }
    Ok(())
}

/// Header names the gateway must never take over.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
];

fn check_headers(h: &HeaderNames) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for (field, name) in [
        ("headers.backend", &h.backend),
        ("headers.key_id", &h.key_id),
        ("headers.model", &h.model),
        ("headers.token_cost", &h.token_cost),
        ("headers.stream", &h.stream),
        ("headers.spend_cost", &h.spend_cost),
    ] {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if !valid {
            return Err(ConfigError(format!(
                "{field}: `{name}` must be a lower-case header name (a-z, 0-9, -)"
            )));
        }
        if RESERVED_HEADERS.contains(&name.as_str()) || name.starts_with("x-envoy-") {
            return Err(ConfigError(format!(
                "{field}: `{name}` is reserved by HTTP or Envoy"
            )));
        }
        if !seen.insert(name.as_str()) {
            return Err(ConfigError(format!(
                "{field}: `{name}` is used for two purposes"
            )));
        }
    }
    Ok(())
}

/// Values that travel in headers: 1–128 of `A-Z a-z 0-9 . _ -`.
fn check_token(value: &str, field: &str) -> Result<(), ConfigError> {
    let valid = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "{field}: `{value}` must be 1-128 characters of A-Z a-z 0-9 . _ -"
        )))
    }
}

/// Model names: 1–256 visible characters (they are quoted in messages and sent in headers).
fn check_name(value: &str, field: &str) -> Result<(), ConfigError> {
    let valid =
        !value.is_empty() && value.len() <= 256 && value.bytes().all(|c| c.is_ascii_graphic());
    if valid {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "{field}: `{value}` must be 1-256 visible ASCII characters"
        )))
    }
}

/// An API key's digest from 64 hex digits (either case).
fn parse_hex_digest(text: &str) -> Option<KeyDigest> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (dst, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = hex_value(*pair.first()?)?;
        let lo = hex_value(*pair.get(1)?)?;
        *dst = (hi << 4) | lo;
    }
    Some(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        // In range by the match arms: no overflow.
        b'0'..=b'9' => c.checked_sub(b'0'),
        b'a'..=b'f' => c.checked_sub(b'a' - 10),
        b'A'..=b'F' => c.checked_sub(b'A' - 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
