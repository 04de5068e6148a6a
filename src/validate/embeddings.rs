//! POST /v1/embeddings.

use super::checks::{self, *};
use super::completions::strings_or_tokens;
use super::{Ctx, Effects, Field, Path};
use crate::json::Json;

pub const FIELDS: &[Field] = &[
    Field::routing("model", "a model id or alias from the catalog; picks the backend"),
    Field::required("input", input, "a non-empty string, an array of up to 2048 non-empty strings, a token array, or an array of token arrays"),
    Field::validated("dimensions", dimensions, "positive integer"),
    Field::validated("encoding_format", encoding_format, "`float` or `base64`; absent → sent as `float` (the backends require it); explicit null → 400")
        .with_default(r#""float""#),
    Field::validated("user", checks::user, "string"),
];

const MAX_INPUTS: usize = 2048;

fn input(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    match v {
        Json::String(_) => non_empty_string(v, p).map(drop),
        Json::Array(items) => {
            if items.is_empty() {
                return Err(invalid(p, "empty array. Expected at least one input."));
            }
            at_most(p, items.len(), MAX_INPUTS, "inputs")?;
            strings_or_tokens(v, items, p, |item, path| {
                non_empty_string(item, path).map(drop)
            })
        }
        other => Err(type_error(
            p,
            "a string, an array of strings, or token arrays",
            other,
        )),
    }
}

fn dimensions(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    positive_integer(v, p).map(drop)
}

fn encoding_format(v: &Json, p: &Path, _: &Ctx, _: &mut Effects) -> Result {
    if v.is_null() {
        return Err(invalid(p, "null is not an encoding format. Send 'float' or 'base64', or leave the field out for 'float'."));
    }
    one_of(v, p, &["float", "base64"]).map(drop)
}
