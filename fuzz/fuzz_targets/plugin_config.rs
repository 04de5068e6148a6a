//! Plugin configuration parsing (src/config.rs, src/charger.rs): whatever
//! bytes `on_configure` receives, the gateway loads or refuses them.
//!
//! Invariants: a charger's configuration is never a gateway's; a loaded
//! gateway has keys and models, four distinct header names, every model id
//! and alias resolving to its model, backend names fit for headers; and it
//! answers a request without a key with a 401 envelope that carries its
//! `doc_url`.

#![no_main]

use gateway_fuzz::check_reply;
use libfuzzer_sys::fuzz_target;
use openai_gateway::headers::Headers;
use openai_gateway::pipeline::AfterHeaders;
use openai_gateway::{charger, Gateway};

fuzz_target!(|data: &[u8]| {
    let is_charger = charger::is_charger_config(data);
    let Ok(g) = Gateway::try_from(data) else {
        return;
    };
    assert!(!is_charger, "a charger configuration loaded as a gateway");
    assert!(!g.keys.is_empty() && !g.catalog.is_empty());
    let names = g.headers.all();
    for (i, name) in names.iter().enumerate() {
        assert!(!name.is_empty() && !names[..i].contains(name), "{names:?}");
    }
    for (index, model) in g.catalog.models() {
        for name in std::iter::once(&model.id).chain(&model.aliases) {
            let (found, _) = g.catalog.resolve(name).expect("a configured name resolves");
            assert_eq!(found, index, "{name}");
        }
        assert!(model
            .backend
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c)));
    }
    let headers = vec![
        (":method".to_string(), b"GET".to_vec()),
        (":path".to_string(), b"/v1/models".to_vec()),
    ];
    let outcome = g.on_request_headers(&Headers::from(headers), true);
    match &outcome.next {
        AfterHeaders::Reply(reply) => {
            check_reply(reply, g.doc_url.as_deref());
            assert_eq!(reply.status, 401);
        }
        other => panic!("no key, yet {other:?}"),
    }
});
