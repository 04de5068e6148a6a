//! Bearer-key authentication against SHA-256 digests from the configuration.

use crate::catalog::ModelIndex;
use crate::error::ApiError;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The SHA-256 digest of an API key: what the configuration holds instead of the key.
pub type KeyDigest = [u8; 32];

/// The digest the configuration holds for `secret` (hex: `printf %s "$KEY" | sha256sum`).
pub fn key_digest(secret: &[u8]) -> KeyDigest {
    Sha256::digest(secret).into()
}

/// A configured API key. Only its digest is known to the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Names the key in headers, logs and stats; never the secret itself.
    pub id: String,
    pub digest: KeyDigest,
    /// The models the key may use; None means every model.
    pub models: Option<Vec<ModelIndex>>,
}

impl ApiKey {
    pub fn may_use(&self, model: ModelIndex) -> bool {
        self.models
            .as_ref()
            .is_none_or(|allowed| allowed.contains(&model))
    }
}

/// Index into the key store.
pub type KeyIndex = usize;

#[derive(Debug, Clone, Default)]
pub struct KeyStore {
    keys: Vec<ApiKey>,
}

impl KeyStore {
    pub fn new(keys: Vec<ApiKey>) -> Self {
        KeyStore { keys }
    }

    pub fn get(&self, index: KeyIndex) -> Option<&ApiKey> {
        self.keys.get(index)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks the request's `Authorization` header values (all of them, in
    /// order) and returns the key they name.
    pub fn authenticate(&self, authorization: &[&[u8]]) -> Result<KeyIndex, ApiError> {
        let value = match authorization {
            [] => return Err(ApiError::unauthorized(MISSING)),
            // Envoy joins a repeated header into one value with commas; no
            // bearer token contains one.
            [one] if !one.contains(&b',') => *one,
            _ => return Err(ApiError::unauthorized(ONE_HEADER)),
        };
        let token = bearer_token(value)?;
        let digest = key_digest(token);
        // Compare against every key, without stopping early, so the time taken
        // does not depend on which key (if any) matched; each comparison is
        // constant-time too (subtle), whatever byte first differs.
        let mut found = None;
        for (index, key) in self.keys.iter().enumerate() {
            if bool::from(digest.as_slice().ct_eq(key.digest.as_slice())) && found.is_none() {
                found = Some(index);
            }
        }
        found.ok_or_else(|| ApiError::invalid_api_key(incorrect_key_message(token)))
    }
}

const ONE_HEADER: &str =
    "Send exactly one Authorization header: `Authorization: Bearer YOUR_API_KEY`.";

const MISSING: &str = "You didn't provide an API key. Send it in the Authorization header as \
    `Authorization: Bearer YOUR_API_KEY` (the OpenAI SDKs do this when you set `api_key`).";

/// The token of a `Bearer <token>` header value.
fn bearer_token(value: &[u8]) -> Result<&[u8], ApiError> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return Err(ApiError::unauthorized(MISSING));
    }
    let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
        Some(at) => (
            value.get(..at).unwrap_or_default(),
            value.get(at.saturating_add(1)..).unwrap_or_default(),
        ),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(ApiError::unauthorized(
            "Only bearer API keys are accepted: send `Authorization: Bearer YOUR_API_KEY`.",
        ));
    }
    let token = rest.trim_ascii();
    if token.is_empty() {
        return Err(ApiError::unauthorized(
            "The Authorization header has no API key after `Bearer`. Send `Authorization: Bearer YOUR_API_KEY`.",
        ));
    }
    Ok(token)
}

/// The 401 text for a key that is not known. It shows at most the last four
/// characters, and only of a key long enough that they give nothing away.
fn incorrect_key_message(token: &[u8]) -> String {
    let hint = match token.len() {
        n if n >= 20 && token.iter().all(|b| b.is_ascii_graphic()) => token
            .get(n.saturating_sub(4)..)
            .and_then(|tail| std::str::from_utf8(tail).ok())
            .map(|tail| format!(" (ending in `{tail}`)"))
            .unwrap_or_default(),
        _ => String::new(),
    };
    format!(
        "Incorrect API key provided{hint}. Check the key you send as `Authorization: Bearer YOUR_API_KEY`, \
         or ask your platform team for a valid one."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn store() -> KeyStore {
        KeyStore::new(vec![
            ApiKey {
                id: "demo".into(),
                digest: key_digest(b"sk-demo"),
                models: None,
            },
            ApiKey {
                id: "limited".into(),
                digest: key_digest(b"sk-limited-0123456789abcdef"),
                models: Some(vec![1]),
            },
        ])
    }

    #[test]
    fn accepted_forms() {
        let s = store();
        for value in [
            "Bearer sk-demo",
            "bearer sk-demo",
            "BEARER  sk-demo ",
            " Bearer sk-demo",
        ] {
            assert_eq!(s.authenticate(&[value.as_bytes()]), Ok(0), "{value}");
        }
        assert_eq!(
            s.authenticate(&[b"Bearer sk-limited-0123456789abcdef"]),
            Ok(1)
        );
    }

    #[test]
    fn refusals() {
        let s = store();
        type Case<'a> = (&'a [&'a [u8]], Option<ErrorCode>, &'a str);
        let cases: &[Case] = &[
            (&[], None, "didn't provide an API key"),
            (&[b""], None, "didn't provide an API key"),
            (&[b"Bearer"], None, "no API key after"),
            (&[b"Bearer   "], None, "no API key after"),
            (&[b"Basic c2stZGVtbzo="], None, "Only bearer"),
            (&[b"sk-demo"], None, "Only bearer"),
            (&[b"Bearer sk-demo", b"Bearer sk-demo"], None, "exactly one"),
            // How Envoy hands over a repeated header.
            (&[b"Bearer sk-demo,Bearer sk-demo"], None, "exactly one"),
            (&[b"Bearer sk-demo, Bearer sk-other"], None, "exactly one"),
            (
                &[b"Bearer sk-dem0"],
                Some(ErrorCode::InvalidApiKey),
                "Incorrect API key",
            ),
            (
                &[b"Bearer \xff\xfe"],
                Some(ErrorCode::InvalidApiKey),
                "Incorrect API key",
            ),
            // A Cyrillic look-alike of `sk-demo` is a different key.
            (
                &["Bearer ѕk-demo".as_bytes()],
                Some(ErrorCode::InvalidApiKey),
                "Incorrect API key",
            ),
            // Fullwidth letters and a zero-width space are different keys too.
            (
                &["Bearer ｓｋ-ｄｅｍｏ".as_bytes()],
                Some(ErrorCode::InvalidApiKey),
                "Incorrect API key",
            ),
            (
                &["Bearer sk-\u{200b}demo".as_bytes()],
                Some(ErrorCode::InvalidApiKey),
                "Incorrect API key",
            ),
        ];
        for (values, code, needle) in cases {
            let err = s.authenticate(values).unwrap_err();
            assert_eq!(err.status, 401, "{values:?}");
            assert_eq!(err.code, *code, "{values:?}");
            assert!(err.message.contains(needle), "{values:?}: {}", err.message);
        }
    }

    #[test]
    fn messages_never_echo_the_key() {
        let s = store();
        let short = s.authenticate(&[b"Bearer sk-wrong"]).unwrap_err();
        assert!(!short.message.contains("sk-wrong") && !short.message.contains("rong"));
        let long_key = "sk-live-abcdefghijklmnop-WXYZ";
        let long = s
            .authenticate(&[format!("Bearer {long_key}").as_bytes()])
            .unwrap_err();
        assert!(!long.message.contains(long_key));
        assert!(!long.message.contains("abcdefgh"));
        assert!(long.message.contains("`WXYZ`"), "{}", long.message);
    }

    fn hex(d: &[u8]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn key_digests_are_sha256_known_vectors() {
        assert_eq!(
            hex(&key_digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&key_digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&key_digest(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn key_digests_match_reference_for_every_padding_length() {
        // The digest of the 300 digests of data[..0], data[..1], …, data[..299],
        // computed independently (Python's hashlib): every padding case at once.
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        let all: Vec<u8> = (0..data.len())
            .flat_map(|len| key_digest(&data[..len]))
            .collect();
        assert_eq!(
            hex(&key_digest(&all)),
            "7b074096cabb18dd0d1b468a173cb2f97f80e952525bca29542e606fd6d0753a"
        );
    }

    #[test]
    fn digests_differing_in_one_bit_do_not_match() {
        let mut digest = key_digest(b"sk-demo");
        let same = KeyStore::new(vec![ApiKey {
            id: "demo".into(),
            digest,
            models: None,
        }]);
        assert_eq!(same.authenticate(&[b"Bearer sk-demo"]), Ok(0));
        digest[31] ^= 1;
        let other = KeyStore::new(vec![ApiKey {
            id: "demo".into(),
            digest,
            models: None,
        }]);
        assert!(other.authenticate(&[b"Bearer sk-demo"]).is_err());
    }

    #[test]
    fn model_restrictions() {
        let s = store();
        assert!(s.get(0).unwrap().may_use(7));
        assert!(s.get(1).unwrap().may_use(1));
        assert!(!s.get(1).unwrap().may_use(0));
    }
}
