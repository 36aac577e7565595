//! What an arm's answers cost: the built-in prices of common hosted models (so a spec need not
//! state them), the batch-API discount, and [`ArmPricing`], the one rule that says how an arm is
//! priced. The plan resolves each arm's pricing with it once; the runner records calls with it
//! and the store keeps it per arm, so the report prices arms exactly as the run did.
//!
//! These are the providers' published list prices per million tokens (standard tier, no cached
//! input, no discounts) as they stood on [`PRICES_AS_OF`]. Prices change: a spec's `pricing:`
//! always wins, and reports should say which prices they used. Names are matched after
//! lower-casing, dropping a `vendor/` prefix, and then, if there is no exact entry, dropping a
//! dated snapshot suffix (`-2024-08-06`, `-20241022`) or `-latest`. A dated snapshot with its own
//! price (the first `gpt-4o`) has its own entry.

use serde::{Deserialize, Serialize};

use crate::Pricing;

/// The date the built-in prices were copied from the providers' pricing pages.
pub const PRICES_AS_OF: &str = "2025-08-15";

/// (model name, input $/Mtok, output $/Mtok).
const PRICES: &[(&str, f64, f64)] = &[
    // OpenAI
    ("gpt-5", 1.25, 10.00),
    ("gpt-5-mini", 0.25, 2.00),
    ("gpt-5-nano", 0.05, 0.40),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-2024-05-13", 5.00, 15.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4-turbo", 10.00, 30.00),
    ("gpt-3.5-turbo", 0.50, 1.50),
    ("o3", 2.00, 8.00),
    ("o3-mini", 1.10, 4.40),
    ("o4-mini", 1.10, 4.40),
    // Anthropic, through OpenAI-compatible gateways (both spellings gateways use)
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3.5-haiku", 0.80, 4.00),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3.5-sonnet", 3.00, 15.00),
    ("claude-3-7-sonnet", 3.00, 15.00),
    ("claude-3.7-sonnet", 3.00, 15.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-3-haiku", 0.25, 1.25),
    // Groq
    ("llama-3.1-8b-instant", 0.05, 0.08),
    ("llama-3.3-70b-versatile", 0.59, 0.79),
    // Together
    ("meta-llama-3.1-8b-instruct-turbo", 0.18, 0.18),
    ("llama-3.1-8b-instruct-turbo", 0.18, 0.18),
    ("meta-llama-3.1-70b-instruct-turbo", 0.88, 0.88),
    ("llama-3.3-70b-instruct-turbo", 0.88, 0.88),
    // Google, through its OpenAI-compatible endpoint
    ("gemini-2.0-flash", 0.10, 0.40),
    ("gemini-2.0-flash-lite", 0.075, 0.30),
];

/// The list price of `model`, if it is a model this table knows (see the module docs for how
/// names are matched).
pub fn builtin_pricing(model: &str) -> Option<Pricing> {
    let lower = model.trim().to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    lookup(name).or_else(|| lookup(strip_snapshot(name)))
}

/// Batch-API calls cost this share of the interactive price, as OpenAI, Anthropic and Together
/// charge for asynchronous batches.
pub const BATCH_API_PRICE_FACTOR: f64 = 0.5;

impl Pricing {
    /// The batch-API price: [`BATCH_API_PRICE_FACTOR`] of this one.
    pub fn at_batch_rates(self) -> Pricing {
        Pricing {
            input_per_mtok: self.input_per_mtok * BATCH_API_PRICE_FACTOR,
            output_per_mtok: self.output_per_mtok * BATCH_API_PRICE_FACTOR,
        }
    }
}

/// How one arm is paid for. Resolved once, when the plan lists its arms (with
/// [`resolve_pricing`] for hosted ones); stored with the arm, so the report never re-derives it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ArmPricing {
    /// An API priced per token. `pricing` is `None` when the price is unknown (calls are then
    /// recorded at $0, and the report uses their recorded cost); `batch_api` says the provider
    /// is to be priced at batch-API rates in production.
    Hosted {
        pricing: Option<Pricing>,
        batch_api: bool,
    },
    /// A machine priced per hour: local prompt arms and fine-tunes (training and answering).
    Compute { cost_per_hour: f64 },
}

/// The pricing rule of a hosted model: the spec's price, else the built-in table's, else
/// unknown.
pub fn resolve_pricing(declared: Option<Pricing>, model: &str) -> Option<Pricing> {
    declared.or_else(|| builtin_pricing(model))
}

fn lookup(name: &str) -> Option<Pricing> {
    PRICES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, input, output)| Pricing {
            input_per_mtok: input,
            output_per_mtok: output,
        })
}

/// `gpt-4o-2024-08-06` → `gpt-4o`, `claude-3-5-haiku-20241022` → `claude-3-5-haiku`,
/// `claude-3-5-haiku-latest` → `claude-3-5-haiku`; anything else unchanged.
fn strip_snapshot(name: &str) -> &str {
    if let Some(base) = name.strip_suffix("-latest") {
        return base;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = name.rsplitn(4, '-').collect();
    // `-YYYY-MM-DD`: the last three dash-separated parts are 4, 2 and 2 digits.
    if parts.len() == 4
        && parts[0].len() == 2
        && parts[1].len() == 2
        && parts[2].len() == 4
        && parts[..3].iter().all(|p| digits(p))
    {
        return parts[3];
    }
    // `-YYYYMMDD`
    match name.rsplit_once('-') {
        Some((base, date)) if date.len() == 8 && digits(date) => base,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(model: &str) -> Option<(f64, f64)> {
        builtin_pricing(model).map(|p| (p.input_per_mtok, p.output_per_mtok))
    }

    #[test]
    fn matches_names_vendors_and_snapshots() {
        assert_eq!(price("gpt-4o-mini"), Some((0.15, 0.60)));
        assert_eq!(price("gpt-4o"), Some((2.50, 10.00)));
        assert_eq!(price("gpt-4o-2024-08-06"), Some((2.50, 10.00)));
        assert_eq!(price("gpt-4o-2024-05-13"), Some((5.00, 15.00)));
        assert_eq!(price("gpt-4o-mini-2024-07-18"), Some((0.15, 0.60)));
        assert_eq!(price("claude-3-5-haiku-20241022"), Some((0.80, 4.00)));
        assert_eq!(price("anthropic/claude-3.5-sonnet"), Some((3.00, 15.00)));
        assert_eq!(price("claude-3-5-sonnet-latest"), Some((3.00, 15.00)));
        assert_eq!(price("llama-3.1-8b-instant"), Some((0.05, 0.08)));
        assert_eq!(
            price("meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"),
            Some((0.18, 0.18))
        );
        assert_eq!(price("GPT-4.1-nano"), Some((0.10, 0.40)));
        assert_eq!(price("o4-mini"), Some((1.10, 4.40)));
        assert_eq!(price("smollm2-135m-instruct"), None);
        assert_eq!(price("gpt-4o-minimal"), None);
    }

    #[test]
    fn batch_is_half_price() {
        let p = Pricing {
            input_per_mtok: 0.15,
            output_per_mtok: 0.60,
        }
        .at_batch_rates();
        assert_eq!((p.input_per_mtok, p.output_per_mtok), (0.075, 0.30));
    }

    #[test]
    fn the_spec_price_wins_over_the_table() {
        let declared = Pricing {
            input_per_mtok: 1.0,
            output_per_mtok: 2.0,
        };
        assert_eq!(
            resolve_pricing(Some(declared), "gpt-4o-mini"),
            Some(declared)
        );
        assert_eq!(
            resolve_pricing(None, "gpt-4o-mini"),
            builtin_pricing("gpt-4o-mini")
        );
        assert!(builtin_pricing("gpt-4o-mini").is_some());
        assert_eq!(resolve_pricing(None, "my-model"), None);
    }

    #[test]
    fn prices_are_sane() {
        for (name, input, output) in PRICES {
            assert!(*input > 0.0 && *output >= *input, "{name}");
            assert_eq!(*name, name.to_ascii_lowercase());
        }
    }
}
