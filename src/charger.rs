//! The token charger: a second role of the same `.wasm`, placed between the
//! requests and the tokens `ratelimit` filters of a fleet. It copies the
//! gateway's token-cost header into Envoy's `envoy.ratelimit.hits_addend`
//! filter state, which Envoy's global `ratelimit` filter sends as the
//! request's `hits_addend`. Set there, it charges only the tokens stage: the
//! requests stage has already asked the rate-limit service. (Envoy 1.40's
//! global filter ignores `hits_addend` on route-level `rate_limits`;
//! `local_ratelimit` honours it, so one Envoy needs no charger.)

use crate::host::{Call, HeaderMap, Host, HostError};
use crate::tokens::MAX_COST;
use log::warn;
use serde::Deserialize;
use std::num::IntErrorKind;

/// `{"token_charger": {"header": "x-gateway-token-cost"}}`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ChargerConfig {
    pub token_charger: Charger,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Charger {
    /// The header the gateway writes the estimated cost into.
    pub header: String,
}

/// Whether a plugin configuration is a charger's (rather than the gateway's).
pub fn is_charger_config(bytes: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes),
        Ok(map) if map.contains_key("token_charger")
    )
}

pub const HITS_ADDEND: &str = "envoy.ratelimit.hits_addend";

/// The cost in the header value, if it is a positive integer; at most
/// [`MAX_COST`] (a bigger one, even beyond u64, is charged that: Envoy
/// would refuse it, and the request would count as 1).
pub fn cost(value: &[u8]) -> Option<u64> {
    let n = match std::str::from_utf8(value).ok()?.trim().parse::<u64>() {
        Ok(n) => n,
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => u64::MAX,
        Err(_) => return None,
    };
    (n > 0).then_some(n.min(MAX_COST))
}

/// The argument of Envoy's `set_envoy_filter_state` foreign function: a
/// `SetEnvoyFilterStateArguments { path = 1; value = 2; }` protobuf message
/// (span defaults to the request).
pub fn filter_state_arguments(path: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len().saturating_add(value.len()).saturating_add(8));
    for (tag, field) in [(0x0a, path.as_bytes()), (0x12, value.as_bytes())] {
        out.push(tag);
        put_varint(&mut out, field.len() as u64);
        out.extend_from_slice(field);
    }
    out
}

impl Charger {
    /// On the request headers: charge the cost the gateway wrote, if any.
    /// Never stops the request (a failed charge counts it as 1).
    pub fn on_request_headers(&self, host: &impl Host) {
        let Ok(Some(value)) = host.header(HeaderMap::Request, &self.header) else {
            return;
        };
        let Some(cost) = cost(&value) else {
            return;
        };
        let args = filter_state_arguments(HITS_ADDEND, &cost.to_string());
        if let Err(status) = host.call_foreign("set_envoy_filter_state", Some(&args)) {
            let error = HostError::new(Call::Foreign("set_envoy_filter_state"), status);
            warn!("openai-gateway: {error}: {cost} tokens not charged; the request counts as 1");
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_arguments() {
        let args = filter_state_arguments(HITS_ADDEND, "3");
        let mut expected = vec![0x0a, 27];
        expected.extend_from_slice(b"envoy.ratelimit.hits_addend");
        expected.extend_from_slice(&[0x12, 1, b'3']);
        assert_eq!(args, expected);
        // Lengths of 128 and more take two varint bytes.
        let long = "x".repeat(300);
        let args = filter_state_arguments(&long, "1");
        assert_eq!(&args[..3], &[0x0a, 0xac, 0x02]);
    }

    #[test]
    fn costs_and_configs() {
        assert_eq!(cost(b"109"), Some(109));
        assert_eq!(cost(b"0"), None);
        assert_eq!(cost(b"-1"), None);
        assert_eq!(cost(b"abc"), None);
        assert_eq!(cost(b"\xff"), None);
        // Envoy's ceiling, even for a number beyond u64: never "counts as 1".
        assert_eq!(cost(b"1000000000"), Some(MAX_COST));
        assert_eq!(cost(b"1000000001"), Some(MAX_COST));
        assert_eq!(cost(u64::MAX.to_string().as_bytes()), Some(MAX_COST));
        assert_eq!(cost(b"99999999999999999999999"), Some(MAX_COST));
        assert_eq!(cost(b"-99999999999999999999999"), None);
        assert!(is_charger_config(
            br#"{"token_charger": {"header": "x-gateway-token-cost"}}"#
        ));
        assert!(!is_charger_config(br#"{"api_keys": []}"#));
        assert!(!is_charger_config(b"garbage"));
        assert!(serde_json::from_slice::<ChargerConfig>(
            br#"{"token_charger": {"header": "h", "x": 1}}"#
        )
        .is_err());
    }
}
