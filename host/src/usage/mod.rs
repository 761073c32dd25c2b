//! Usage metering: what each session's agent spent (tokens by kind, cost, context, tool
//! calls), read from the agent's own records.
//!
//! - [`prices`]: the price table (embedded data, extended or overridden from config).
//! - [`tail`]: follows a transcript file by its appended bytes only, through partial
//!   lines, truncation and rotation.
//! - [`claude`], [`codex`], [`gemini`]: each agent's transcript lines → [`Meter`].
//! - [`opencode`]: OpenCode's server events → [`Meter`] (it keeps no transcript file).
//!
//! A [`Meter`] prices every API response as it is added (tiers apply per response, as
//! the providers bill), so totals never need a second pass.

pub mod claude;
pub mod codex;
pub mod gemini;
pub mod opencode;
pub mod prices;
mod recent;
pub mod tail;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use canopy_protocol::session::Tokens;
use canopy_protocol::session::{Context, ModelUsage, ToolCalls, Usage};

pub use prices::{Price, Prices};

/// One agent's transcript format, read line by line.
pub trait Transcript: Send {
    /// One complete line, without its newline.
    fn line(&mut self, line: &[u8], meter: &mut Meter);
    /// The file was truncated or replaced: what follows is read from its start. Totals
    /// already metered stand (that usage was spent).
    fn restart(&mut self) {}
}

/// The transcript reader for an agent, when it writes one Canopy can read.
pub fn transcript_for(agent: &str) -> Option<Box<dyn Transcript>> {
    match agent {
        "claude" => Some(Box::new(claude::ClaudeTranscript::default())),
        "codex" => Some(Box::new(codex::CodexRollout::default())),
        "gemini" => Some(Box::new(gemini::GeminiChat::default())),
        _ => None,
    }
}

/// A session's usage so far.
#[derive(Debug, Clone)]
pub struct Meter {
    prices: Arc<Prices>,
    by_model: BTreeMap<String, ModelUsage>,
    /// The model of the latest response.
    model: Option<String>,
    /// The latest response's prompt size, and the window the agent reported.
    context_used: u64,
    context_window: Option<u64>,
    tools: ToolCalls,
}

impl Meter {
    pub fn new(prices: Arc<Prices>) -> Self {
        Self {
            prices,
            by_model: BTreeMap::new(),
            model: None,
            context_used: 0,
            context_window: None,
            tools: ToolCalls::default(),
        }
    }

    /// Carry on from an earlier run's totals (for agents whose records Canopy cannot
    /// read again from the start, such as OpenCode's event stream).
    pub fn carry_on(&mut self, earlier: &Usage) {
        self.by_model = earlier.by_model.clone();
        self.model = earlier.model.clone();
        self.tools = earlier.tool_calls.clone();
    }

    /// One API response, priced from the table.
    pub fn response(&mut self, model: &str, tokens: &Tokens) {
        let cost = self.prices.get(model).map(|p| p.cost(tokens));
        self.add(model, tokens, cost, 1);
    }

    /// The price table this meter uses.
    pub fn prices(&self) -> &Prices {
        &self.prices
    }

    /// One API response whose cost the agent reported itself (OpenCode).
    pub fn response_with_cost(&mut self, model: &str, tokens: &Tokens, cost_usd: f64) {
        self.add(model, tokens, Some(cost_usd), 1);
    }

    /// Take back a response added earlier (a record the agent rewrote).
    pub fn retract(&mut self, model: &str, tokens: &Tokens) {
        let Some(entry) = self.by_model.get_mut(model) else {
            return;
        };
        entry.tokens.sub(tokens);
        entry.responses = entry.responses.saturating_sub(1);
        if let (Some(total), Some(price)) = (entry.cost_usd.as_mut(), self.prices.get(model)) {
            *total = (*total - price.cost(tokens)).max(0.0);
        }
    }

    fn add(&mut self, model: &str, tokens: &Tokens, cost: Option<f64>, responses: u64) {
        let first = !self.by_model.contains_key(model);
        let entry = self.by_model.entry(model.to_owned()).or_default();
        entry.tokens.add(tokens);
        entry.responses += responses;
        entry.cost_usd = match (first, entry.cost_usd, cost) {
            (true, _, c) => c,
            (false, Some(total), Some(c)) => Some(total + c),
            _ => None,
        };
        self.model = Some(model.to_owned());
    }

    /// The latest response's prompt size; `window` when the agent reports it (else the
    /// price table's window for the model is used).
    pub fn context(&mut self, used: u64, window: Option<u64>) {
        self.context_used = used;
        if window.is_some() {
            self.context_window = window;
        }
    }

    /// A tool call.
    pub fn tool(&mut self, name: &str) {
        self.tools.total += 1;
        *self.tools.by_tool.entry(name.to_owned()).or_default() += 1;
    }

    /// The usage so far: model, tokens, cost, context and tool calls. (Wall and active
    /// time and lines changed come from elsewhere.)
    pub fn usage(&self) -> Usage {
        let mut tokens = Tokens::default();
        let mut cost = Some(0.0);
        let mut unpriced = Vec::new();
        for (model, m) in &self.by_model {
            tokens.add(&m.tokens);
            match m.cost_usd {
                Some(c) => cost = cost.map(|total| total + c),
                None => {
                    cost = None;
                    unpriced.push(model.clone());
                }
            }
        }
        let window = self.context_window.or_else(|| {
            self.model
                .as_deref()
                .and_then(|m| self.prices.get(m))
                .and_then(|p| p.context_window)
        });
        let context = match window {
            Some(window) if window > 0 => Context {
                used: self.context_used,
                window,
                percent: self.context_used as f64 * 100.0 / window as f64,
            },
            _ => Context {
                used: self.context_used,
                ..Context::default()
            },
        };
        Usage {
            model: self.model.clone(),
            cost_usd: cost,
            unpriced_models: unpriced,
            tokens,
            by_model: self.by_model.clone(),
            context,
            tool_calls: self.tools.clone(),
            ..Usage::default()
        }
    }
}
