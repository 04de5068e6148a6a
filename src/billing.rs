//! What a request costs: tokens, and money in integer micro-units (one
//! millionth of the currency's unit), from the model's prices; and what is
//! charged when, by settlement mode.
//!
//! Every amount is an integer and every step saturates: an absurd price or
//! usage can cap a charge, never wrap it, panic, or make it zero.

use crate::tokens::MAX_COST;
use crate::usage::Usage;
use serde::Deserialize;

/// Micro-units of money: 1,000,000 = one unit of the currency (1.00).
pub type Micros = u64;

/// Micro-units per unit of money.
pub const MICROS_PER_UNIT: u64 = 1_000_000;

/// The largest price accepted, per million tokens (in units of money): more
/// is a typo, not a model.
pub const MAX_PRICE: f64 = 1_000_000.0;

/// The most one request is charged in money: a million units (caps absurd
/// usage, as [`MAX_COST`] caps tokens).
pub const MAX_SPEND: Micros = 1_000_000 * MICROS_PER_UNIT;

/// A model's prices as the operator writes them: units of money per million
/// tokens (`{"input": 0.15, "cached_input": 0.075, "output": 0.60}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// Per million prompt tokens not read from a cache.
    #[cfg_attr(feature = "schema", schemars(range(min = 0.0, max = 1_000_000.0)))]
    pub input: f64,
    /// Per million prompt tokens read from a cache; default: `input`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 0.0, max = 1_000_000.0)))]
    pub cached_input: Option<f64>,
    /// Per million output tokens.
    #[cfg_attr(feature = "schema", schemars(range(min = 0.0, max = 1_000_000.0)))]
    pub output: f64,
}

/// A model's prices, compiled: micro-units per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    pub input: u64,
    pub cached_input: u64,
    pub output: u64,
}

impl Price {
    /// The compiled prices, or what is wrong with them (`at` names the field).
    pub fn compile(config: &PriceConfig, at: &str) -> Result<Price, String> {
        let micros = |value: f64, field: &str| -> Result<u64, String> {
            if !value.is_finite() || !(0.0..=MAX_PRICE).contains(&value) {
                return Err(format!(
                    "{at}.{field}: must be a price from 0 to {MAX_PRICE} per million tokens (got {value})"
                ));
            }
            // In range, so the product is below 2^53 and exact enough.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok((value * 1_000_000.0).round() as u64)
        };
        let input = micros(config.input, "input")?;
        Ok(Price {
            input,
            cached_input: match config.cached_input {
                Some(value) => micros(value, "cached_input")?,
                None => input,
            },
            output: micros(config.output, "output")?,
        })
    }

    /// What `usage` costs, rounded up to a whole micro-unit, at most
    /// [`MAX_SPEND`].
    pub fn spend(&self, usage: &Usage) -> Micros {
        let cached = usage.cached_tokens.min(usage.prompt_tokens);
        let uncached = usage.prompt_tokens.saturating_sub(cached);
        self.of(uncached, cached, usage.completion_tokens)
    }

    /// What an estimate of `tokens` (prompt and output together, before the
    /// response) costs: each token at the dearer of the input and output
    /// prices, so an estimate never charges less than the tokens could cost.
    pub fn estimate(&self, tokens: u64) -> Micros {
        let dearest = self.input.max(self.output);
        to_micros(u128::from(tokens).saturating_mul(u128::from(dearest)))
    }

    fn of(&self, uncached: u64, cached: u64, output: u64) -> Micros {
        let total = u128::from(uncached)
            .saturating_mul(u128::from(self.input))
            .saturating_add(u128::from(cached).saturating_mul(u128::from(self.cached_input)))
            .saturating_add(u128::from(output).saturating_mul(u128::from(self.output)));
        to_micros(total)
    }
}

/// Micro-units per million tokens × tokens → micro-units, rounded up, capped.
fn to_micros(per_million: u128) -> Micros {
    let micros = per_million.div_ceil(1_000_000);
    u64::try_from(micros).unwrap_or(u64::MAX).min(MAX_SPEND)
}

/// How the tokens (and spend) limits are charged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    /// The estimate, up front; the response's usage changes nothing.
    #[default]
    Reserve,
    /// One token (a cent's millionth of spend) up front, so a key without
    /// budget left is refused; the usage the response reports when the
    /// exchange completes.
    Settle,
    /// The estimate up front; when the response reports more, the
    /// difference when the exchange completes.
    ReserveThenSettle,
}

/// Usage a response reports that is believable: at most [`MAX_COST`] tokens
/// in all. Anything else (absurd, or missing) is charged as estimated.
pub fn believable(usage: Option<&Usage>) -> Option<&Usage> {
    usage.filter(|u| u.prompt_tokens.saturating_add(u.completion_tokens) <= MAX_COST)
}

/// What to charge up front: the estimate (`reserve`, `reserve_then_settle`)
/// or the least charge (`settle`: 1, so that a key without budget left is
/// refused).
pub fn up_front(mode: Settlement, estimate: u64) -> u64 {
    match mode {
        Settlement::Reserve | Settlement::ReserveThenSettle => estimate.max(1),
        Settlement::Settle => 1,
    }
}

/// How an exchange that was forwarded ended, for what it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Answered by Envoy or a limiter (a 429, a connection failure, a
    /// timeout before any answer), or by the backend with an error status:
    /// nothing was generated, only the up-front charge stands.
    Unserved,
    /// The backend answered; the usage it reported, if believable (`None`:
    /// missing, absurd, or the client left before it arrived — the
    /// estimate stands in for it).
    Served(Option<u64>),
}

/// What to charge when the exchange completes, given what was charged up
/// front and the estimate.
pub fn at_completion(mode: Settlement, charged: u64, estimate: u64, ending: Ending) -> u64 {
    let used = match ending {
        Ending::Unserved => return 0,
        Ending::Served(actual) => actual.unwrap_or(estimate),
    };
    match mode {
        Settlement::Reserve => 0,
        Settlement::Settle | Settlement::ReserveThenSettle => used.saturating_sub(charged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: f64, cached: Option<f64>, output: f64) -> Price {
        Price::compile(
            &PriceConfig {
                input,
                cached_input: cached,
                output,
            },
            "models[0].price",
        )
        .unwrap()
    }

    fn usage(prompt: u64, completion: u64, cached: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            cached_tokens: cached,
        }
    }

    #[test]
    fn prices_become_micro_units_per_million_tokens() {
        let p = price(0.15, Some(0.075), 0.60);
        assert_eq!(
            p,
            Price {
                input: 150_000,
                cached_input: 75_000,
                output: 600_000
            }
        );
        assert_eq!(price(2.5, None, 10.0).cached_input, 2_500_000);
    }

    #[test]
    fn spend_is_exact_rounded_up_and_cached_tokens_are_cheaper() {
        let p = price(0.15, Some(0.075), 0.60);
        // 1,000,000 prompt + 1,000,000 output = 0.15 + 0.60 = 0.75.
        assert_eq!(p.spend(&usage(1_000_000, 1_000_000, 0)), 750_000);
        // Half the prompt from the cache: 0.075 + 0.0375 + 0.60.
        assert_eq!(p.spend(&usage(1_000_000, 1_000_000, 500_000)), 712_500);
        // 10 prompt tokens at 0.15/M = 1.5 micro-units → 2.
        assert_eq!(p.spend(&usage(10, 0, 0)), 2);
        assert_eq!(p.spend(&usage(0, 0, 0)), 0);
        // More cached than prompt tokens (a confused backend): all cached.
        assert_eq!(p.spend(&usage(10, 0, 99)), 1);
        assert_eq!(Price::default().spend(&usage(5, 5, 0)), 0, "free model");
    }

    #[test]
    fn estimates_charge_the_dearer_price_and_everything_saturates() {
        let p = price(0.15, None, 0.60);
        assert_eq!(p.estimate(1_000_000), 600_000);
        assert_eq!(p.estimate(1), 1);
        let dear = price(MAX_PRICE, None, MAX_PRICE);
        assert_eq!(dear.spend(&usage(u64::MAX, u64::MAX, 0)), MAX_SPEND);
        assert_eq!(dear.estimate(u64::MAX), MAX_SPEND);
    }

    #[test]
    fn bad_prices_are_refused_with_the_field_named() {
        for (input, cached, output, needle) in [
            (-0.01, None, 1.0, "models[0].price.input"),
            (f64::NAN, None, 1.0, "models[0].price.input"),
            (
                1.0,
                Some(f64::INFINITY),
                1.0,
                "models[0].price.cached_input",
            ),
            (1.0, None, 1e7, "models[0].price.output"),
        ] {
            let err = Price::compile(
                &PriceConfig {
                    input,
                    cached_input: cached,
                    output,
                },
                "models[0].price",
            )
            .unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn settlement_charges_up_front_and_at_completion() {
        use Settlement::*;
        // reserve: the estimate, nothing after.
        assert_eq!(up_front(Reserve, 300), 300);
        let served = |n| Ending::Served(Some(n));
        assert_eq!(at_completion(Reserve, 300, 300, served(900)), 0);
        // settle: 1 up front, the rest of the real usage after.
        assert_eq!(up_front(Settle, 300), 1);
        assert_eq!(at_completion(Settle, 1, 300, served(120)), 119);
        assert_eq!(
            at_completion(Settle, 1, 300, Ending::Served(None)),
            299,
            "no usage: the estimate"
        );
        assert_eq!(at_completion(Settle, 1, 300, Ending::Unserved), 0);
        // reserve then settle: top up only.
        assert_eq!(up_front(ReserveThenSettle, 300), 300);
        assert_eq!(at_completion(ReserveThenSettle, 300, 300, served(900)), 600);
        assert_eq!(at_completion(ReserveThenSettle, 300, 300, served(10)), 0);
        assert_eq!(
            at_completion(ReserveThenSettle, 300, 300, Ending::Served(None)),
            0
        );
        assert_eq!(up_front(Reserve, 0), 1, "never zero");
    }

    #[test]
    fn absurd_usage_is_not_believed() {
        assert!(believable(Some(&usage(10, 10, 0))).is_some());
        assert!(believable(Some(&usage(MAX_COST, 1, 0))).is_none());
        assert!(believable(Some(&usage(u64::MAX, u64::MAX, 0))).is_none());
        assert!(believable(None).is_none());
    }
}
