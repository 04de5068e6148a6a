//! POST /v1/completions (legacy).

use super::checks::{self, *};
use super::{Ctx, Effects, Field, Path};
use crate::json::Json;

pub const FIELDS: &[Field] = &[
    Field::routing("model", "a model id or alias from the catalog; picks the backend"),
    Field::required("prompt", prompt, "a string, an array of strings, a token array, or an array of token arrays"),
    Field::forwarded("best_of", "forwarded"),
    Field::forwarded("echo", "forwarded"),
    Field::validated("frequency_penalty", checks::penalty, "number from -2 to 2"),
    Field::validated("logit_bias", checks::logit_bias, "token id → integer from -100 to 100"),
    Field::unsupported("logprobs", "logprobs is not supported by this gateway: its backends do not return token log probabilities. Remove 'logprobs'."),
    Field::validated("max_tokens", checks::token_limit, "positive integer"),
    Field::validated("n", checks::n, "1 or absent: the gateway returns a single choice (n > 1 → 400)"),
    Field::validated("presence_penalty", checks::penalty, "number from -2 to 2"),
    Field::validated("seed", checks::seed, "integer"),
    Field::validated("stop", checks::stop, "a string or up to 4 strings"),
    Field::validated("stream", checks::optional_bool, "boolean"),
    Field::validated("stream_options", checks::stream_options, "object, only with `stream: true`; `include_usage` boolean"),
    Field::forwarded("suffix", "forwarded"),
    Field::validated("temperature", checks::temperature, "number from 0 to 2"),
    Field::validated("top_p", checks::top_p, "number from 0 to 1"),
    Field::validated("user", checks::user, "string"),
];

fn prompt(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    match v {
        Json::Null | Json::String(_) => Ok(()),
        Json::Array(items) => {
            if items.is_empty() {
                return Err(invalid(
                    p,
                    "empty array. Expected a string, strings, or tokens.",
                ));
            }
            strings_or_tokens(v, items, p, |item, path| string(item, path).map(drop))
        }
        other => Err(type_error(
            p,
            "a string, an array of strings, or token arrays",
            other,
        )),
    }
}

/// A non-empty array `items` (the value `v`) of strings (each checked by
/// `string_item`), of token arrays, or itself one token array.
pub fn strings_or_tokens(
    v: &Json,
    items: &[Json],
    p: &Path,
    string_item: impl Fn(&Json, &Path) -> Result,
) -> Result {
    match items.first() {
        Some(Json::String(_)) => {
            for (i, item) in items.iter().enumerate() {
                string_item(item, &p.index(i))?;
            }
            Ok(())
        }
        Some(Json::Array(_)) => {
            for (i, item) in items.iter().enumerate() {
                tokens(item, &p.index(i))?;
            }
            Ok(())
        }
        _ => tokens(v, p),
    }
}

/// A non-empty array of non-negative integer token ids.
pub fn tokens(v: &Json, p: &Path) -> Result {
    let items = array(v, p)?;
    if items.is_empty() {
        return Err(invalid(p, "empty token array."));
    }
    for (i, item) in items.iter().enumerate() {
        let ip = p.index(i);
        if integer(item, &ip)? < 0 {
            return Err(invalid(&ip, "token ids are non-negative integers."));
        }
    }
    Ok(())
}
