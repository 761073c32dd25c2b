//! Codex's rollout JSONL: `{timestamp, ordinal, type, payload}` lines.
//!
//! Usage comes from `event_msg`/`token_count` only, as ccusage reads it:
//! - it is in every rollout version, carries the context window, and matches ccusage;
//! - the newer `token_usage_record` lines describe the same responses (same numbers,
//!   written just before the matching `token_count`), so reading both would double count
//!   and mixing them (records when present, else counts) risks counting a response twice
//!   at the switch-over. They are ignored.
//!
//! Codex re-emits `token_count` with unchanged totals (e.g. when only rate limits
//! change), so an event whose `total_token_usage` equals the previous one is skipped.

use serde::Deserialize;
use serde_json::Value;

use super::recent::Recent;
use super::{Meter, Tokens, Transcript};

/// The model ccusage assumes when a rollout names none.
const FALLBACK_MODEL: &str = "gpt-5";
/// Tool call ids remembered to count each call once; a call id is repeated only close to
/// its first appearance (a re-read or re-emitted item), so recent ones suffice.
const CALLS_REMEMBERED: usize = 1024;

/// Reads a Codex rollout.
#[derive(Debug)]
pub struct CodexRollout {
    /// The model of the current turn (`turn_context.model`).
    model: Option<String>,
    /// The context window Codex reported (`task_started` / `token_count`).
    window: Option<u64>,
    /// The last cumulative usage seen: the dedup key and the base for diffs.
    last_total: Option<Usage>,
    calls: Recent<()>,
}

impl Default for CodexRollout {
    fn default() -> Self {
        Self {
            model: None,
            window: None,
            last_total: None,
            calls: Recent::new(CALLS_REMEMBERED),
        }
    }
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Value,
}

/// Codex's token usage (`input_tokens` includes the cached tokens, `output_tokens`
/// includes the reasoning tokens).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
struct Usage {
    input_tokens: u64,
    cached_input_tokens: u64,
    cache_write_input_tokens: u64,
    output_tokens: u64,
    reasoning_output_tokens: u64,
}

impl Usage {
    fn minus(&self, base: &Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.saturating_sub(base.input_tokens),
            cached_input_tokens: self
                .cached_input_tokens
                .saturating_sub(base.cached_input_tokens),
            cache_write_input_tokens: self
                .cache_write_input_tokens
                .saturating_sub(base.cache_write_input_tokens),
            output_tokens: self.output_tokens.saturating_sub(base.output_tokens),
            reasoning_output_tokens: self
                .reasoning_output_tokens
                .saturating_sub(base.reasoning_output_tokens),
        }
    }

    /// `input_tokens` holds the whole prompt (its `total_tokens` is input + output), so
    /// the cache reads and writes are taken out of it.
    fn tokens(&self) -> Tokens {
        Tokens {
            input: self
                .input_tokens
                .saturating_sub(self.cached_input_tokens)
                .saturating_sub(self.cache_write_input_tokens),
            output: self.output_tokens,
            cache_write_5m: self.cache_write_input_tokens,
            cache_write_1h: 0,
            cache_read: self.cached_input_tokens,
            reasoning: self.reasoning_output_tokens,
        }
    }
}

#[derive(Deserialize)]
struct EventMsg {
    #[serde(rename = "type")]
    kind: String,
    info: Option<TokenInfo>,
    model_context_window: Option<u64>,
}

#[derive(Deserialize)]
struct TokenInfo {
    total_token_usage: Option<Usage>,
    last_token_usage: Option<Usage>,
    model_context_window: Option<u64>,
}

#[derive(Deserialize)]
struct TurnContext {
    model: Option<String>,
}

#[derive(Deserialize)]
struct ResponseItem {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    call_id: Option<String>,
    id: Option<String>,
}

impl Transcript for CodexRollout {
    fn line(&mut self, line: &[u8], meter: &mut Meter) {
        let line: Line = match serde_json::from_slice(line) {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "skipping unreadable codex rollout line");
                return;
            }
        };
        let result = match line.kind.as_str() {
            "turn_context" => parse(line.payload).map(|t: TurnContext| self.turn_context(t)),
            "event_msg" => parse(line.payload).map(|e| self.event(e, meter)),
            "response_item" => parse(line.payload).map(|i| self.response_item(i, meter)),
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!(kind = %line.kind, error = %e, "skipping unreadable codex rollout line");
        }
    }

    /// A rewritten file starts its cumulative totals again; call ids stay remembered (the
    /// same id is the same call).
    fn restart(&mut self) {
        self.last_total = None;
    }
}

fn parse<T: serde::de::DeserializeOwned>(payload: Value) -> serde_json::Result<T> {
    serde_json::from_value(payload)
}

impl CodexRollout {
    fn turn_context(&mut self, t: TurnContext) {
        if let Some(model) = t.model.filter(|m| !m.is_empty()) {
            self.model = Some(model);
        }
    }

    fn event(&mut self, e: EventMsg, meter: &mut Meter) {
        match e.kind.as_str() {
            "task_started" => self.window = e.model_context_window.or(self.window),
            // `info` is null on events that only carry rate limits.
            "token_count" => {
                if let Some(info) = e.info {
                    self.token_count(info, meter);
                }
            }
            _ => {}
        }
    }

    fn token_count(&mut self, info: TokenInfo, meter: &mut Meter) {
        self.window = info.model_context_window.or(self.window);
        if info.total_token_usage.is_some() && info.total_token_usage == self.last_total {
            return; // a re-emitted event: this response is counted already
        }
        let request = match (info.last_token_usage, info.total_token_usage) {
            (Some(last), _) => last,
            (None, Some(total)) => total.minus(&self.last_total.unwrap_or_default()),
            (None, None) => return,
        };
        if info.total_token_usage.is_some() {
            self.last_total = info.total_token_usage;
        }
        if request == Usage::default() {
            return;
        }
        let tokens = request.tokens();
        let model = self.model.as_deref().unwrap_or(FALLBACK_MODEL);
        meter.response(model, &tokens);
        meter.context(tokens.prompt(), self.window);
    }

    fn response_item(&mut self, item: ResponseItem, meter: &mut Meter) {
        let name = match item.kind.as_str() {
            "function_call" | "custom_tool_call" => item.name.as_deref().unwrap_or("unknown"),
            "local_shell_call" => "local_shell",
            _ => return,
        };
        if let Some(id) = item.call_id.as_deref().or(item.id.as_deref())
            && self.calls.insert(id, ()).is_some()
        {
            return;
        }
        meter.tool(name);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::usage::Prices;

    fn meter() -> Meter {
        Meter::new(Arc::new(Prices::builtin()))
    }

    fn feed(r: &mut CodexRollout, m: &mut Meter, lines: &[&str]) {
        for l in lines {
            r.line(l.as_bytes(), m);
        }
    }

    // Trimmed from a real Codex 0.169.0 rollout (tests/realcli probe against the mock).
    const TASK_STARTED: &str = r#"{"timestamp":"2026-11-25T15:04:21.624Z","ordinal":1,"type":"event_msg","payload":{"type":"task_started","turn_id":"t1","started_at":1795619061,"model_context_window":258400,"collaboration_mode_kind":"default"}}"#;
    const TURN_CONTEXT: &str = r#"{"timestamp":"2026-11-25T15:04:21.668Z","ordinal":5,"type":"turn_context","payload":{"turn_id":"t1","cwd":"/p","approval_policy":"on-request","model":"gpt-5.5"}}"#;
    const FUNCTION_CALL: &str = r#"{"timestamp":"2026-11-25T15:04:21.941Z","ordinal":9,"type":"response_item","payload":{"type":"function_call","status":"completed","id":"fc_1","name":"exec_command","arguments":"{\"cmd\": \"touch probe.txt\"}","call_id":"call_1"},"metadata":{"history_sequence":4}}"#;
    const RECORD_1: &str = r#"{"timestamp":"2026-11-25T15:04:21.952Z","ordinal":10,"type":"token_usage_record","payload":{"thread_id":"th","turn_id":"t1","response_id":"resp_1","usage":{"input_tokens":2400,"cached_input_tokens":1600,"cache_write_input_tokens":0,"output_tokens":120,"reasoning_output_tokens":40,"total_tokens":2520},"turn_token_usage":{"input_tokens":2400,"cached_input_tokens":1600,"cache_write_input_tokens":0,"output_tokens":120,"reasoning_output_tokens":40,"total_tokens":2520}}}"#;
    const COUNT_1: &str = r#"{"timestamp":"2026-11-25T15:04:22.769Z","ordinal":13,"type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":2400,"cached_input_tokens":1600,"cache_write_input_tokens":0,"output_tokens":120,"reasoning_output_tokens":40,"total_tokens":2520},"last_token_usage":{"input_tokens":2400,"cached_input_tokens":1600,"cache_write_input_tokens":0,"output_tokens":120,"reasoning_output_tokens":40,"total_tokens":2520},"last_usage_includes_reasoning":false,"model_context_window":258400},"rate_limits":{"limit_id":"codex","primary":null}}}"#;
    const COUNT_2: &str = r#"{"timestamp":"2026-11-25T15:04:22.951Z","ordinal":17,"type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":4800,"cached_input_tokens":3200,"cache_write_input_tokens":0,"output_tokens":240,"reasoning_output_tokens":80,"total_tokens":5040},"last_token_usage":{"input_tokens":2400,"cached_input_tokens":1600,"cache_write_input_tokens":0,"output_tokens":120,"reasoning_output_tokens":40,"total_tokens":2520},"last_usage_includes_reasoning":false,"model_context_window":258400},"rate_limits":null}}"#;

    fn one_request() -> Tokens {
        Tokens {
            input: 800,
            output: 120,
            cache_write_5m: 0,
            cache_write_1h: 0,
            cache_read: 1600,
            reasoning: 40,
        }
    }

    #[test]
    fn meters_a_real_rollout() {
        let (mut r, mut m) = (CodexRollout::default(), meter());
        feed(
            &mut r,
            &mut m,
            &[
                TASK_STARTED,
                TURN_CONTEXT,
                FUNCTION_CALL,
                RECORD_1,
                COUNT_1,
                COUNT_2,
            ],
        );
        let u = m.usage();
        let mut two = one_request();
        two.add(&one_request());
        assert_eq!(u.tokens, two);
        assert_eq!(u.model.as_deref(), Some("gpt-5.5"));
        assert_eq!(u.by_model["gpt-5.5"].responses, 2);
        assert_eq!(u.context.used, 2400);
        assert_eq!(u.context.window, 258400);
        assert_eq!(u.tool_calls.total, 1);
        assert_eq!(u.tool_calls.by_tool["exec_command"], 1);
    }

    #[test]
    fn repeated_token_counts_and_calls_count_once() {
        let (mut r, mut m) = (CodexRollout::default(), meter());
        feed(
            &mut r,
            &mut m,
            &[
                TURN_CONTEXT,
                FUNCTION_CALL,
                FUNCTION_CALL,
                COUNT_1,
                COUNT_1,
                COUNT_2,
                COUNT_2,
            ],
        );
        let u = m.usage();
        assert_eq!(u.by_model["gpt-5.5"].responses, 2);
        assert_eq!(u.tokens.cache_read, 3200);
        assert_eq!(u.tool_calls.total, 1);
    }

    #[test]
    fn diffs_totals_when_last_is_absent() {
        let (mut r, mut m) = (CodexRollout::default(), meter());
        let total = |input: u64, cached: u64, out: u64, reasoning: u64| {
            format!(
                r#"{{"type":"event_msg","payload":{{"type":"token_count","info":{{"total_token_usage":{{"input_tokens":{input},"cached_input_tokens":{cached},"output_tokens":{out},"reasoning_output_tokens":{reasoning}}},"model_context_window":272000}}}}}}"#
            )
        };
        for l in [
            total(1000, 0, 10, 0),
            total(1000, 0, 10, 0),
            total(3000, 1500, 30, 5),
        ] {
            r.line(l.as_bytes(), &mut m);
        }
        let u = m.usage();
        // No turn_context: ccusage's fallback model.
        let g = &u.by_model["gpt-5"];
        assert_eq!(g.responses, 2);
        assert_eq!(
            g.tokens,
            Tokens {
                input: 1500,
                output: 30,
                cache_read: 1500,
                reasoning: 5,
                ..Tokens::default()
            }
        );
        // The second request's prompt: 2000 in, of which 1500 cached.
        assert_eq!(u.context.used, 2000);
        assert_eq!(u.context.window, 272000);
    }

    #[test]
    fn restart_resets_the_total_baseline() {
        let (mut r, mut m) = (CodexRollout::default(), meter());
        let total = r#"{"type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":100,"output_tokens":10}}}}"#;
        feed(&mut r, &mut m, &[total]);
        r.restart();
        // The rewritten file starts again: its first total is a whole new request.
        feed(&mut r, &mut m, &[total]);
        assert_eq!(m.usage().tokens.input, 200);
    }

    #[test]
    fn token_usage_records_alone_are_not_counted() {
        let (mut r, mut m) = (CodexRollout::default(), meter());
        feed(&mut r, &mut m, &[TURN_CONTEXT, RECORD_1]);
        assert_eq!(m.usage().tokens, Tokens::default());
    }

    #[test]
    fn other_tool_kinds_and_bad_lines() {
        let (mut r, mut m) = (CodexRollout::default(), meter());
        feed(
            &mut r,
            &mut m,
            &[
                r#"{"type":"response_item","payload":{"type":"custom_tool_call","name":"apply_patch","call_id":"c2","input":"*** Begin Patch"}}"#,
                r#"{"type":"response_item","payload":{"type":"local_shell_call","call_id":"c3","status":"completed","action":{"type":"exec","command":["ls"]}}}"#,
                r#"{"type":"response_item","payload":{"type":"function_call_output","call_id":"c2","output":"ok"}}"#,
                r#"{"type":"event_msg","payload":{"type":"token_count","info":null,"rate_limits":{}}}"#,
                r#"{"type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":"bad"}}}"#,
                "not json",
                r#"{"type":"turn_context","payload":{"model":7}}"#,
                "",
            ],
        );
        let u = m.usage();
        assert_eq!(u.tool_calls.total, 2);
        assert_eq!(u.tool_calls.by_tool["apply_patch"], 1);
        assert_eq!(u.tool_calls.by_tool["local_shell"], 1);
        assert_eq!(u.tokens, Tokens::default());
    }

    #[test]
    fn the_fake_agents_lines_parse() {
        // The shape tests/src/bin/fake-agent/codex.rs writes: cumulative totals, the
        // last request, then a `token_usage_record` for the same response.
        let (mut r, mut m) = (CodexRollout::default(), meter());
        let usage = |n: u64| {
            format!(
                r#"{{"input_tokens":{},"cached_input_tokens":{},"cache_write_input_tokens":0,"output_tokens":{},"reasoning_output_tokens":0,"total_tokens":{}}}"#,
                4000 * n,
                3000 * n,
                50 * n,
                4050 * n
            )
        };
        let count = |n: u64| {
            format!(
                r#"{{"timestamp":"2026-11-25T10:00:01.000Z","ordinal":9,"type":"event_msg","payload":{{"type":"token_count","info":{{"total_token_usage":{},"last_token_usage":{},"model_context_window":258400}},"rate_limits":null}}}}"#,
                usage(n),
                usage(1)
            )
        };
        let record = format!(
            r#"{{"timestamp":"2026-11-25T10:00:01.000Z","ordinal":10,"type":"token_usage_record","payload":{{"response_id":"resp_x","usage":{},"turn_token_usage":{}}}}}"#,
            usage(1),
            usage(1)
        );
        let lines = [
            r#"{"timestamp":"2026-11-25T10:00:00.000Z","ordinal":3,"type":"turn_context","payload":{"turn_id":"t","cwd":"/w","approval_policy":"never","sandbox_policy":{"type":"workspace-write"},"model":"gpt-5.5","effort":"medium","summary":"auto"}}"#.to_owned(),
            count(1),
            record.clone(),
            count(2),
            record,
        ];
        for l in &lines {
            r.line(l.as_bytes(), &mut m);
        }
        let u = m.usage();
        assert_eq!(u.by_model["gpt-5.5"].responses, 2);
        assert_eq!(
            u.tokens,
            Tokens {
                input: 2000,
                output: 100,
                cache_read: 6000,
                ..Tokens::default()
            }
        );
        assert_eq!(u.context.used, 4000);
    }
}
