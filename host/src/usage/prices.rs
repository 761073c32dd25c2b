//! The price table: dollars per million tokens for each model, by token kind, with
//! tiers above a token threshold and the model's context window. Embedded as data
//! (`prices.toml`) and extended or overridden from `config.toml` (`[prices."model"]`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Tokens;

/// The embedded table (see the file's header for where each figure comes from).
const BUILTIN: &str = include_str!("prices.toml");

/// One model's prices, in US dollars per million tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Defaults to the input rate.
    pub cache_write_5m: Option<f64>,
    /// Defaults to 2 × the input rate (ccusage's rule).
    pub cache_write_1h: Option<f64>,
    /// Defaults to the input rate.
    pub cache_read: Option<f64>,
    pub context_window: Option<u64>,
    /// Multiplies the whole cost of a response made in fast mode.
    pub fast_multiplier: Option<f64>,
    /// Higher rates for the tokens of one kind beyond a threshold, in ascending order.
    #[serde(default)]
    pub tiers: Vec<Tier>,
}

/// Rates for the tokens of each kind beyond `above` in one response; a kind without a
/// rate here keeps the rate below.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub above: u64,
    pub input: Option<f64>,
    pub output: Option<f64>,
    pub cache_write_5m: Option<f64>,
    pub cache_write_1h: Option<f64>,
    pub cache_read: Option<f64>,
}

/// A token kind's rate in a [`Price`] and in each of its [`Tier`]s.
#[derive(Clone, Copy)]
enum Kind {
    Input,
    Output,
    Write5m,
    Write1h,
    Read,
}

impl Price {
    /// The cost of one API response. Tiers apply per response and per token kind, as
    /// ccusage prices them.
    pub fn cost(&self, t: &Tokens) -> f64 {
        self.kind_cost(Kind::Input, t.input)
            + self.kind_cost(Kind::Output, t.output)
            + self.kind_cost(Kind::Write5m, t.cache_write_5m)
            + self.kind_cost(Kind::Write1h, t.cache_write_1h)
            + self.kind_cost(Kind::Read, t.cache_read)
    }

    /// The cost of one response made in fast mode (`usage.speed == "fast"`).
    pub fn cost_fast(&self, t: &Tokens) -> f64 {
        self.cost(t) * self.fast_multiplier.unwrap_or(1.0)
    }

    fn base_rate(&self, kind: Kind) -> f64 {
        match kind {
            Kind::Input => self.input,
            Kind::Output => self.output,
            Kind::Write5m => self.cache_write_5m.unwrap_or(self.input),
            Kind::Write1h => self.cache_write_1h.unwrap_or(2.0 * self.input),
            Kind::Read => self.cache_read.unwrap_or(self.input),
        }
    }

    /// `tokens` of one kind: each band between tier thresholds at its own rate.
    fn kind_cost(&self, kind: Kind, tokens: u64) -> f64 {
        let mut rate = self.base_rate(kind);
        let mut cost = 0.0;
        let mut priced = 0;
        for tier in &self.tiers {
            if tokens <= tier.above {
                break;
            }
            cost += per_million(tier.above.saturating_sub(priced), rate);
            priced = priced.max(tier.above);
            rate = tier.rate(kind).unwrap_or(rate);
        }
        cost + per_million(tokens - priced, rate)
    }
}

impl Tier {
    fn rate(&self, kind: Kind) -> Option<f64> {
        match kind {
            Kind::Input => self.input,
            Kind::Output => self.output,
            Kind::Write5m => self.cache_write_5m,
            Kind::Write1h => self.cache_write_1h,
            Kind::Read => self.cache_read,
        }
    }
}

fn per_million(tokens: u64, rate: f64) -> f64 {
    tokens as f64 * rate / 1_000_000.0
}

/// Every known model's price.
#[derive(Debug, Clone, Default)]
pub struct Prices {
    models: BTreeMap<String, Price>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    models: BTreeMap<String, Price>,
}

impl Prices {
    /// The embedded table.
    pub fn builtin() -> Self {
        // The table is compiled in and checked by a unit test, so it always parses; an
        // empty table (every cost unknown) is the safe fallback all the same.
        match toml::from_str::<Table>(BUILTIN) {
            Ok(table) => Self::from_models(table.models),
            Err(e) => {
                tracing::error!("the built-in price table does not parse: {e}");
                Self::default()
            }
        }
    }

    fn from_models(models: BTreeMap<String, Price>) -> Self {
        let mut prices = Self { models };
        for price in prices.models.values_mut() {
            price.tiers.sort_by_key(|t| t.above);
        }
        prices
    }

    /// The table with the user's entries added or replacing built-in ones.
    pub fn with(mut self, overrides: BTreeMap<String, Price>) -> Self {
        for (model, mut price) in overrides {
            price.tiers.sort_by_key(|t| t.above);
            self.models.insert(model, price);
        }
        self
    }

    /// The price of `model`, when known: the exact name first, then the name without a
    /// provider prefix (`anthropic/…`, `us.anthropic.…`), a Bedrock version suffix
    /// (`-v1:0`), a context suffix (`[1m]`) and a trailing date (`-20251001`,
    /// `@20251001`, `-2025-10-01`).
    pub fn get(&self, model: &str) -> Option<&Price> {
        if let Some(p) = self.models.get(model) {
            return Some(p);
        }
        let base = normalise(model);
        self.models.get(base.as_str())
    }
}

/// `model` without the decorations providers and agents add around a model's name.
fn normalise(model: &str) -> String {
    let mut name = model.trim();
    // `anthropic/claude-…`, `openrouter/anthropic/claude-…`, `models/gemini-…`.
    if let Some((_, rest)) = name.rsplit_once('/') {
        name = rest;
    }
    // Bedrock: `us.anthropic.claude-…-v1:0`.
    if let Some(i) = name.find("anthropic.") {
        name = &name[i + "anthropic.".len()..];
    }
    if let Some(i) = name.rfind("-v") {
        let tail = &name[i + 2..];
        if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit() || b == b':') {
            name = &name[..i];
        }
    }
    if let Some(i) = name.find('[') {
        name = &name[..i];
    }
    strip_date(name).to_ascii_lowercase()
}

/// `name` without a trailing `-YYYYMMDD`, `@YYYYMMDD` or `-YYYY-MM-DD`.
fn strip_date(name: &str) -> &str {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let b = name.as_bytes();
    if b.len() > 9 {
        let (head, tail) = name.split_at(name.len() - 9);
        if matches!(tail.as_bytes()[0], b'-' | b'@') && digits(&tail[1..]) && !head.is_empty() {
            return head;
        }
    }
    if b.len() > 11 {
        let (head, tail) = name.split_at(name.len() - 11);
        let t = tail.as_bytes();
        if t[0] == b'-'
            && t[5] == b'-'
            && t[8] == b'-'
            && digits(&tail[1..5])
            && digits(&tail[6..8])
            && digits(&tail[9..])
        {
            return head;
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(input: u64, output: u64, w5: u64, w1: u64, read: u64) -> Tokens {
        Tokens {
            input,
            output,
            cache_write_5m: w5,
            cache_write_1h: w1,
            cache_read: read,
            reasoning: 0,
        }
    }

    fn cents(x: f64) -> i64 {
        (x * 100.0).round() as i64
    }

    #[test]
    fn the_builtin_table_parses_and_covers_the_spec_models() {
        let table: Table = toml::from_str(BUILTIN).expect("prices.toml parses");
        for model in [
            "claude-opus-5-5",
            "claude-opus-5",
            "claude-opus-4-8",
            "claude-opus-4-7",
            "claude-opus-4-6",
            "claude-opus-4-5",
            "claude-sonnet-5",
            "claude-sonnet-5-5",
            "claude-sonnet-4-6",
            "claude-sonnet-4-5",
            "claude-haiku-4-5",
            "claude-haiku-5-5",
            "gpt-5.5",
            "gpt-5.4",
            "gpt-6-sol",
            "gpt-6-luna",
            "gpt-6-astra",
            "gpt-5.6-sol",
            "gpt-5.6-terra",
            "gpt-5.3-codex",
            "gpt-5.2",
            "gpt-5.1",
            "gpt-5",
            "gemini-3.1-pro-preview",
            "gemini-2.5-pro",
            "gemini-3.5-flash",
            "gemini-3.8-flash",
            "gemini-flash-latest",
            "gemini-3.1-flash-lite",
            "gemini-3.5-flash-lite",
        ] {
            let p = table.models.get(model).unwrap_or_else(|| panic!("{model}"));
            assert!(p.context_window.is_some(), "{model} has a window");
        }
    }

    #[test]
    fn the_spec_example_costs_what_claude_code_and_ccusage_say() {
        let p = Prices::builtin();
        let t = tokens(1000, 50, 2000, 0, 3000);
        // specs/agents.md §1: $0.0156 on Opus 5.5; §8: ccusage $0.01215 on Sonnet 4.5.
        let opus = p.get("claude-opus-5-5").expect("priced").cost(&t);
        assert!((opus - 0.0156).abs() < 1e-9, "{opus}");
        let sonnet = p.get("claude-sonnet-4-5").expect("priced").cost(&t);
        assert!((sonnet - 0.01215).abs() < 1e-9, "{sonnet}");
    }

    #[test]
    fn tiers_apply_per_kind_above_the_threshold() {
        let p = Prices::builtin();
        let sonnet = p.get("claude-sonnet-4-5").expect("priced");
        // 150k input + 150k read: neither kind is above 200k (ccusage: 0.495).
        assert_eq!(cents(sonnet.cost(&tokens(150_000, 0, 0, 0, 150_000))), 50);
        assert!((sonnet.cost(&tokens(150_000, 0, 0, 0, 150_000)) - 0.495).abs() < 1e-9);
        // 300k input: 200k at 3 + 100k at 6.
        assert!((sonnet.cost(&tokens(300_000, 0, 0, 0, 0)) - 1.2).abs() < 1e-9);
        // 300k 1h writes: 200k at 6 + 100k at 12.
        assert!((sonnet.cost(&tokens(0, 0, 0, 300_000, 0)) - 2.4).abs() < 1e-9);
        // Sonnet 4.6 has no tier in ccusage.
        let s46 = p.get("claude-sonnet-4-6").expect("priced");
        assert!((s46.cost(&tokens(300_000, 0, 0, 0, 0)) - 0.9).abs() < 1e-9);
    }

    #[test]
    fn missing_rates_fall_back_as_ccusage_does() {
        let price: Price = toml::from_str("input = 2.0\noutput = 8.0").expect("parses");
        let c = price.cost(&tokens(0, 0, 1_000_000, 1_000_000, 1_000_000));
        assert!((c - (2.0 + 4.0 + 2.0)).abs() < 1e-9, "{c}");
    }

    #[test]
    fn fast_mode_multiplies() {
        let p = Prices::builtin();
        let t = tokens(100_000, 0, 0, 0, 0);
        let opus46 = p.get("claude-opus-4-6").expect("priced");
        assert!((opus46.cost_fast(&t) - 3.0).abs() < 1e-9);
        let sonnet = p.get("claude-sonnet-4-5").expect("priced");
        assert!((sonnet.cost_fast(&t) - 0.3).abs() < 1e-9);
    }

    #[test]
    fn names_are_normalised() {
        let p = Prices::builtin();
        let haiku = p.get("claude-haiku-4-5").expect("priced");
        for name in [
            "claude-haiku-4-5-20251001",
            "anthropic/claude-haiku-4-5",
            "anthropic/claude-haiku-4-5-20251001",
            "us.anthropic.claude-haiku-4-5-20251001-v1:0",
            "claude-haiku-4-5@20251001",
            "claude-haiku-4-5-2025-10-01",
            "claude-haiku-4-5[1m]",
        ] {
            assert_eq!(p.get(name), Some(haiku), "{name}");
        }
        assert!(p.get("openai/gpt-5.5").is_some());
        assert!(p.get("models/gemini-2.5-pro").is_some());
        assert!(p.get("<synthetic>").is_none());
        assert!(p.get("some-unknown-model").is_none());
        // gpt-5 must not be mistaken for a dated name.
        assert!(p.get("gpt-5").is_some());
    }

    #[test]
    fn overrides_replace_and_extend() {
        let mut extra = BTreeMap::new();
        let price: Price = toml::from_str(
            "input = 1.0\noutput = 2.0\ncontext_window = 8192\n\
             [[tiers]]\nabove = 10\ninput = 3.0",
        )
        .expect("parses");
        extra.insert("my-model".to_owned(), price);
        let p = Prices::builtin().with(extra);
        let mine = p.get("my-model").expect("added");
        assert_eq!(mine.context_window, Some(8192));
        assert!((mine.cost(&tokens(20, 0, 0, 0, 0)) - (10.0 + 30.0) / 1e6).abs() < 1e-12);
        assert!(toml::from_str::<Price>("input = 1.0\noutput = 2.0\nbogus = 1").is_err());
    }
}
