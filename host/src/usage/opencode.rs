//! OpenCode's server events, `{type, properties}` (it keeps no transcript file).
//!
//! Usage comes from `message.part.updated` parts of type `step-finish`, one per API step,
//! each counted once by part id. `message.updated` is not summed: OpenCode 1.18.33 sets
//! an assistant message's `tokens` to its *latest* step's while adding up its `cost`
//! (`cost += step.cost; tokens = step.tokens`), and re-sends the message many times, so
//! neither a sum nor the last copy gives the message's usage when it has several steps.
//! Messages only tell which model a step's message used.
//!
//! Tokens: OpenCode's `input` excludes the cache and its `output` excludes `reasoning`
//! (`output = outputTokens − reasoningTokens` in its bundle), so output = output +
//! reasoning here. Cache writes are priced at the 5-minute rate (no 1-hour breakdown).
//! The step's `cost` is used when positive (OpenCode knows its provider's prices); a 0
//! cost means OpenCode had no price, so the price table decides (else unknown, not free).
//!
//! Events from every session arrive on `/global/event`: the caller routes them (by
//! `sessionID`) to each session's [`OpenCodeUsage`].

use serde::Deserialize;
use serde_json::Value;

use super::recent::Recent;
use super::{Meter, Tokens};

/// Ids remembered (message → model, step parts, tool calls). OpenCode re-sends a part or
/// message only while it is current, so the most recent ids are the only ones it repeats.
const IDS_REMEMBERED: usize = 1024;
/// Used when a step's message was never seen and no model was seen before.
const UNKNOWN_MODEL: &str = "unknown";

/// One OpenCode session's metering state.
#[derive(Debug)]
pub struct OpenCodeUsage {
    /// Assistant message id → its model.
    models: Recent<String>,
    /// `step-finish` part ids counted.
    steps: Recent<()>,
    /// Tool `callID`s counted.
    calls: Recent<()>,
    last_model: Option<String>,
}

impl Default for OpenCodeUsage {
    fn default() -> Self {
        Self {
            models: Recent::new(IDS_REMEMBERED),
            steps: Recent::new(IDS_REMEMBERED),
            calls: Recent::new(IDS_REMEMBERED),
            last_model: None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct MessageInfo {
    id: Option<String>,
    role: Option<String>,
    #[serde(rename = "modelID")]
    model_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Part {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "messageID")]
    message_id: Option<String>,
    #[serde(rename = "callID")]
    call_id: Option<String>,
    tool: Option<String>,
    cost: Option<f64>,
    tokens: Option<StepTokens>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StepTokens {
    input: u64,
    output: u64,
    reasoning: u64,
    cache: CacheTokens,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CacheTokens {
    read: u64,
    write: u64,
}

impl StepTokens {
    fn tokens(&self) -> Tokens {
        Tokens {
            input: self.input,
            output: self.output + self.reasoning,
            cache_write_5m: self.cache.write,
            cache_write_1h: 0,
            cache_read: self.cache.read,
            reasoning: self.reasoning,
        }
    }
}

impl OpenCodeUsage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Meter one event of OpenCode's stream (`{type, properties}`, already unwrapped from
    /// `/global/event`'s `payload`). Other event types are ignored.
    pub fn on_event(&mut self, event: &Value, meter: &mut Meter) {
        let props = &event["properties"];
        match event.get("type").and_then(Value::as_str) {
            Some("message.updated") => {
                if let Some(info) = parse::<MessageInfo>(&props["info"]) {
                    self.message(info);
                }
            }
            Some("message.part.updated") => {
                if let Some(part) = parse::<Part>(&props["part"]) {
                    self.part(part, meter);
                }
            }
            _ => {}
        }
    }

    fn message(&mut self, info: MessageInfo) {
        if info.role.as_deref() != Some("assistant") {
            return;
        }
        let Some(model) = info.model_id.filter(|m| !m.is_empty()) else {
            return;
        };
        if let Some(id) = info.id {
            self.models.insert(&id, model.clone());
        }
        self.last_model = Some(model);
    }

    fn part(&mut self, part: Part, meter: &mut Meter) {
        match part.kind.as_str() {
            "step-finish" => self.step(part, meter),
            "tool" => {
                let name = part.tool.as_deref().unwrap_or("unknown");
                // Each state change re-sends the part: count its call once.
                match part.call_id.as_deref().or(part.id.as_deref()) {
                    Some(id) if self.calls.insert(id, ()).is_some() => {}
                    _ => meter.tool(name),
                }
            }
            _ => {}
        }
    }

    fn step(&mut self, part: Part, meter: &mut Meter) {
        if let Some(id) = part.id.as_deref()
            && self.steps.insert(id, ()).is_some()
        {
            return;
        }
        let tokens = part.tokens.unwrap_or_default().tokens();
        let cost = part.cost.filter(|c| c.is_finite() && *c > 0.0);
        if tokens == Tokens::default() && cost.is_none() {
            return; // an aborted step: nothing was spent
        }
        let model = part
            .message_id
            .as_deref()
            .and_then(|id| self.models.get(id))
            .or(self.last_model.as_ref())
            .map_or(UNKNOWN_MODEL, String::as_str);
        match cost {
            Some(cost) => meter.response_with_cost(model, &tokens, cost),
            None => meter.response(model, &tokens),
        }
        meter.context(tokens.prompt(), None);
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> Option<T> {
    if value.is_null() {
        return None;
    }
    T::deserialize(value)
        .map_err(|e| tracing::debug!(error = %e, "skipping unreadable opencode event"))
        .ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::usage::Prices;

    fn meter() -> Meter {
        Meter::new(Arc::new(Prices::builtin()))
    }

    fn feed(o: &mut OpenCodeUsage, m: &mut Meter, events: &[&str]) {
        for e in events {
            let v: Value = serde_json::from_str(e).expect("test event is JSON");
            o.on_event(&v, m);
        }
    }

    // Trimmed from real OpenCode 1.18.33 events (tests/realcli probe against the mock).
    const USER: &str = r#"{"id":"evt_1","type":"message.updated","properties":{"info":{"id":"msg_u","sessionID":"ses_1","role":"user","time":{"created":1795619104000},"agent":"build","model":{"providerID":"anthropic","modelID":"claude-sonnet-4-5"}}}}"#;
    const STARTED: &str = r#"{"id":"evt_2","type":"message.updated","properties":{"info":{"id":"msg_a","sessionID":"ses_1","role":"assistant","time":{"created":1795619105000},"parentID":"msg_u","modelID":"claude-sonnet-4-5","providerID":"anthropic","mode":"build","cost":0,"tokens":{"input":0,"output":0,"reasoning":0,"cache":{"read":0,"write":0}}}}}"#;
    const TOOL_PENDING: &str = r#"{"id":"evt_3","type":"message.part.updated","properties":{"part":{"id":"prt_t","sessionID":"ses_1","messageID":"msg_a","type":"tool","callID":"toolu_1","tool":"bash","state":{"status":"pending","input":{},"raw":""}}}}"#;
    const TOOL_DONE: &str = r#"{"id":"evt_4","type":"message.part.updated","properties":{"part":{"id":"prt_t","sessionID":"ses_1","messageID":"msg_a","type":"tool","callID":"toolu_1","tool":"bash","state":{"status":"completed","input":{"command":"touch probe.txt"},"output":"","time":{"start":1,"end":2},"metadata":{"exit":0}}}}}"#;
    const STEP_1: &str = r#"{"id":"evt_5","type":"message.part.updated","properties":{"part":{"id":"prt_s1","sessionID":"ses_1","messageID":"msg_a","type":"step-finish","reason":"tool-calls","cost":0.01215,"tokens":{"total":6050,"input":1000,"output":50,"reasoning":0,"cache":{"write":2000,"read":3000}}}}}"#;
    const DONE: &str = r#"{"id":"evt_6","type":"message.updated","properties":{"info":{"id":"msg_a","sessionID":"ses_1","role":"assistant","modelID":"claude-sonnet-4-5","providerID":"anthropic","cost":0.01215,"tokens":{"total":6050,"input":1000,"output":50,"reasoning":0,"cache":{"write":2000,"read":3000}},"finish":"tool-calls","time":{"created":1795619105000,"completed":1795619125630}}}}"#;
    const STEP_2: &str = r#"{"id":"evt_7","type":"message.part.updated","properties":{"part":{"id":"prt_s2","sessionID":"ses_1","messageID":"msg_b","type":"step-finish","reason":"stop","cost":0.01215,"tokens":{"total":6050,"input":1000,"output":50,"reasoning":0,"cache":{"write":2000,"read":3000}}}}}"#;

    fn one_step() -> Tokens {
        Tokens {
            input: 1000,
            output: 50,
            cache_write_5m: 2000,
            cache_read: 3000,
            ..Tokens::default()
        }
    }

    #[test]
    fn meters_real_events_once_each() {
        let (mut o, mut m) = (OpenCodeUsage::new(), meter());
        feed(
            &mut o,
            &mut m,
            &[
                USER,
                STARTED,
                USER,
                TOOL_PENDING,
                TOOL_DONE,
                TOOL_DONE,
                STEP_1,
                DONE,
                DONE,
                STEP_2,
                STEP_2,
            ],
        );
        let u = m.usage();
        let mut two = one_step();
        two.add(&one_step());
        assert_eq!(u.tokens, two);
        let s = &u.by_model["claude-sonnet-4-5"];
        assert_eq!(s.responses, 2);
        let cost = s.cost_usd.expect("OpenCode reported the cost");
        assert!((cost - 0.0243).abs() < 1e-9, "{cost}");
        assert_eq!(u.context.used, 6000);
        assert_eq!(u.tool_calls.total, 1);
        assert_eq!(u.tool_calls.by_tool["bash"], 1);
    }

    #[test]
    fn reasoning_is_added_to_output_and_zero_cost_is_not_free() {
        let (mut o, mut m) = (OpenCodeUsage::new(), meter());
        feed(
            &mut o,
            &mut m,
            &[
                r#"{"type":"message.updated","properties":{"info":{"id":"m1","role":"assistant","modelID":"no-such-model"}}}"#,
                r#"{"type":"message.part.updated","properties":{"part":{"id":"p1","messageID":"m1","type":"step-finish","cost":0,"tokens":{"input":10,"output":5,"reasoning":7,"cache":{"read":0,"write":0}}}}}"#,
            ],
        );
        let u = m.usage();
        let t = &u.by_model["no-such-model"];
        assert_eq!(t.tokens.output, 12);
        assert_eq!(t.tokens.reasoning, 7);
        assert_eq!(t.cost_usd, None);
        assert_eq!(u.unpriced_models, vec!["no-such-model".to_owned()]);
    }

    #[test]
    fn steps_of_an_unseen_message_use_the_last_model() {
        let (mut o, mut m) = (OpenCodeUsage::new(), meter());
        feed(&mut o, &mut m, &[STEP_2]);
        assert_eq!(m.usage().by_model["unknown"].responses, 1);
        feed(&mut o, &mut m, &[STARTED, STEP_1]);
        assert_eq!(m.usage().by_model["claude-sonnet-4-5"].responses, 1);
    }

    #[test]
    fn odd_events_are_ignored() {
        let (mut o, mut m) = (OpenCodeUsage::new(), meter());
        feed(
            &mut o,
            &mut m,
            &[
                r#"{"type":"server.heartbeat","properties":{}}"#,
                r#"{"type":"message.part.updated","properties":{}}"#,
                r#"{"type":"message.part.updated","properties":{"part":{"type":"step-finish","tokens":"x"}}}"#,
                r#"{"type":"message.part.updated","properties":{"part":{"id":"p","type":"step-finish","cost":0,"tokens":{}}}}"#,
                r#"{"type":"message.updated","properties":{"info":[]}}"#,
                r#"{"type":"session.idle","properties":{"sessionID":"ses_1"}}"#,
                r#"[]"#,
            ],
        );
        let u = m.usage();
        assert_eq!(u.tokens, Tokens::default());
        assert!(u.by_model.is_empty());
        assert_eq!(u.tool_calls.total, 0);
    }
}
