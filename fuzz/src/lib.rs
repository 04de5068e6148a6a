//! What the fuzz targets share: the demo configuration as a compiled
//! [`Gateway`], the keys it knows, and the reply invariant of
//! tests/properties.rs. A failed assertion is a finding (libFuzzer saves the
//! input under fuzz/artifacts/<target>/).

use openai_gateway::pipeline::Reply;
use openai_gateway::Gateway;
use serde_json::Value;
use std::sync::OnceLock;

/// The plugin configuration of envoy/demo.yaml (written by make_seeds.py).
pub const DEMO_CONFIG: &str = include_str!("../seeds/plugin_config/demo");

/// (secret, key id) of every key the fuzzed gateway knows: the demo's two
/// keys, plus one limited to the embeddings model so key-by-model
/// permissions are exercised too.
pub const KEYS: [(&str, &str); 3] = [
    ("sk-demo", "demo"),
    ("sk-demo-limited", "demo-limited"),
    ("sk-embed", "embed-only"),
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The demo configuration with the `embed-only` key added.
pub fn demo_config() -> Value {
    let mut config: Value =
        serde_json::from_str(DEMO_CONFIG).expect("the demo configuration is JSON");
    for (secret, id) in KEYS {
        let digest = hex(&openai_gateway::auth::key_digest(secret.as_bytes()));
        let keys = config["api_keys"].as_array_mut().expect("api_keys");
        match keys.iter().find(|k| k["id"] == id) {
            Some(k) => assert_eq!(k["sha256"], digest.as_str(), "{id}'s digest in demo.yaml"),
            None => {
                keys.push(serde_json::json!({"id": id, "sha256": digest, "models": ["bge-m3"]}))
            }
        }
    }
    config
}

/// The compiled demo gateway, built once per process.
pub fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        Gateway::try_from(demo_config().to_string().as_bytes())
            .expect("the demo configuration loads")
    })
}

/// The demo's id secret, as the gateway's id codec uses it.
pub fn id_secret() -> String {
    demo_config()["id_secret"]
        .as_str()
        .expect("id_secret")
        .to_string()
}

/// A local reply is a JSON body with a real status; an error is OpenAI's
/// envelope with a message and a type (and the configured doc_url).
pub fn check_reply(reply: &Reply, doc_url: Option<&str>) -> Value {
    assert!(
        (200..600).contains(&reply.status),
        "status {}",
        reply.status
    );
    assert!(reply
        .headers
        .iter()
        .any(|(n, v)| n == "content-type" && v == "application/json"));
    let v: Value = serde_json::from_slice(&reply.body).expect("a JSON body");
    if reply.status >= 400 {
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{v}");
        assert!(v["error"]["type"].is_string(), "{v}");
        assert_eq!(v["error"]["doc_url"].as_str(), doc_url, "{v}");
        assert_eq!(reply.error_code, v["error"]["code"].as_str(), "{v}");
    }
    v
}

/// Whether to print what a target decided (`FUZZ_DEBUG=1`, when replaying
/// one input: `fuzz/target/.../<target> <file>`).
pub fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("FUZZ_DEBUG").is_some())
}
