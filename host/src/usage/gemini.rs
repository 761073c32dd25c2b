//! Gemini CLI's chat JSONL: a header line, `{"$set":{…}}` patches and message records
//! (`type` `user`, `gemini`, `info`, `error`, …).
//!
//! A `gemini` record is re-appended under the same `id` whenever it changes (its tool
//! calls progress), and a `{"$set":{"messages":[…]}}` patch rewrites the whole message
//! list (records already seen among them). The last copy of a record wins: the reader
//! remembers what it metered per id and replaces it (retract, then add) when it changes.
//!
//! Tokens: Gemini's `input` includes `cached`, its `output` excludes `thoughts` (billed as
//! output), and `tool` counts tool-use prompt tokens (billed as input). So input =
//! input − cached + tool, cache_read = cached, output = output + thoughts, reasoning =
//! thoughts, and [`Tokens::total`] equals the record's `total`.
//!
//! Context: the latest record's prompt as the model saw it (`input` + `tool`, cached
//! included), i.e. [`Tokens::prompt`]. The window comes from the price table.

use serde::Deserialize;
use serde_json::Value;

use super::recent::Recent;
use super::{Meter, Tokens, Transcript};

/// Records remembered by id. Gemini re-appends only the message in progress, so a small
/// number would do for appends; a `$set` rewrite of the whole list is handled by position
/// (see [`GeminiChat::snapshot`]), so forgetting old ids never counts them twice.
const RECORDS_REMEMBERED: usize = 1024;
/// Used when a record names no model and none was seen before.
const UNKNOWN_MODEL: &str = "unknown";

/// Reads a Gemini CLI chat file.
#[derive(Debug)]
pub struct GeminiChat {
    seen: Recent<Seen>,
    last_model: Option<String>,
}

impl Default for GeminiChat {
    fn default() -> Self {
        Self {
            seen: Recent::new(RECORDS_REMEMBERED),
            last_model: None,
        }
    }
}

/// What was metered for one record id.
#[derive(Debug, Default)]
struct Seen {
    usage: Option<(String, Tokens)>,
    /// Tool call ids counted for this record.
    tools: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Record {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    model: Option<String>,
    tokens: Option<GeminiTokens>,
    #[serde(default, rename = "toolCalls")]
    tool_calls: Vec<ToolCall>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GeminiTokens {
    input: u64,
    output: u64,
    cached: u64,
    thoughts: u64,
    tool: u64,
}

impl GeminiTokens {
    fn tokens(&self) -> Tokens {
        Tokens {
            input: self.input.saturating_sub(self.cached) + self.tool,
            output: self.output + self.thoughts,
            cache_write_5m: 0,
            cache_write_1h: 0,
            cache_read: self.cached,
            reasoning: self.thoughts,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ToolCall {
    id: Option<String>,
    name: Option<String>,
}

impl Transcript for GeminiChat {
    fn line(&mut self, line: &[u8], meter: &mut Meter) {
        let value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, "skipping unreadable gemini chat line");
                return;
            }
        };
        if let Some(set) = value.get("$set") {
            if let Some(Value::Array(messages)) = set.get("messages") {
                self.snapshot(messages, meter);
            }
        } else if value.get("type").and_then(Value::as_str) == Some("gemini")
            && let Some(record) = parse(value)
        {
            self.record(record, meter);
        }
    }

    // Records are keyed by id, so a re-read file replaces rather than adds: nothing to reset.
}

fn parse(value: Value) -> Option<Record> {
    serde_json::from_value(value)
        .map_err(|e| tracing::debug!(error = %e, "skipping unreadable gemini record"))
        .ok()
}

impl GeminiChat {
    /// A `$set` of the whole message list. Ids not remembered that come before the first
    /// remembered one are older than the memory: they were counted, then forgotten, so
    /// they are skipped once anything has been forgotten. Later unknown ids are new.
    fn snapshot(&mut self, messages: &[Value], meter: &mut Meter) {
        let records: Vec<Record> = messages
            .iter()
            .filter(|m| m.get("type").and_then(Value::as_str) == Some("gemini"))
            .filter_map(|m| parse(m.clone()))
            .collect();
        let first_known = records
            .iter()
            .position(|r| r.id.as_deref().is_some_and(|id| self.seen.contains(id)));
        for (i, record) in records.into_iter().enumerate() {
            let known = record
                .id
                .as_deref()
                .is_some_and(|id| self.seen.contains(id));
            let older = first_known.is_none_or(|first| i < first);
            if !known && older && self.seen.has_evicted() {
                continue;
            }
            self.record(record, meter);
        }
    }

    fn record(&mut self, record: Record, meter: &mut Meter) {
        if record.kind.as_deref() != Some("gemini") {
            return;
        }
        let model = match record.model.filter(|m| !m.is_empty()) {
            Some(m) => m,
            None => self
                .last_model
                .clone()
                .unwrap_or_else(|| UNKNOWN_MODEL.to_owned()),
        };
        let usage = record.tokens.map(|t| (model.clone(), t.tokens()));
        self.last_model = Some(model);
        let Some(id) = record.id else {
            // No id to dedup by: count it as it stands.
            let mut seen = Seen::default();
            Self::meter_usage(None, usage.as_ref(), meter);
            Self::count_tools(&mut seen, &record.tool_calls, meter);
            return;
        };
        if self.seen.get(&id).is_none() {
            self.seen.insert(&id, Seen::default());
        }
        let Some(seen) = self.seen.get_mut(&id) else {
            return;
        };
        if seen.usage != usage {
            Self::meter_usage(seen.usage.as_ref(), usage.as_ref(), meter);
            seen.usage = usage;
        }
        Self::count_tools(seen, &record.tool_calls, meter);
    }

    /// Replace what a record metered before (`old`) by its latest copy (`new`).
    fn meter_usage(
        old: Option<&(String, Tokens)>,
        new: Option<&(String, Tokens)>,
        meter: &mut Meter,
    ) {
        if let Some((model, tokens)) = old {
            meter.retract(model, tokens);
        }
        if let Some((model, tokens)) = new {
            meter.response(model, tokens);
            meter.context(tokens.prompt(), None);
        }
    }

    /// Count the record's tool calls not counted before (by tool call id).
    fn count_tools(seen: &mut Seen, calls: &[ToolCall], meter: &mut Meter) {
        for call in calls {
            let name = call.name.as_deref().unwrap_or("unknown");
            match &call.id {
                Some(id) if seen.tools.contains(id) => {}
                Some(id) => {
                    seen.tools.push(id.clone());
                    meter.tool(name);
                }
                // Without an id a call can only be told apart by its place in the record.
                None => {
                    let key = format!("#{}", seen.tools.len());
                    seen.tools.push(key);
                    meter.tool(name);
                }
            }
        }
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

    fn feed(r: &mut GeminiChat, m: &mut Meter, lines: &[&str]) {
        for l in lines {
            r.line(l.as_bytes(), m);
        }
    }

    // Trimmed from a real Gemini CLI 0.61.0 chat file (tests/realcli probe against the mock).
    const HEADER: &str = r#"{"sessionId":"21cd7699-6cbe-4cbd-91d8-c8a0f379f243","projectHash":"a95b","startTime":"2026-11-25T15:04:32.261Z","lastUpdated":"2026-11-25T15:04:32.261Z","kind":"main"}"#;
    const SET_FIRST: &str = r#"{"$set":{"messages":[{"id":"d049","timestamp":"2026-11-25T15:04:32.261Z","type":"user","content":[{"text":"<session_context>…"}]}],"lastUpdated":"2026-11-25T15:04:32.261Z"}}"#;
    const USER: &str = r#"{"id":"ea52","timestamp":"2026-11-25T15:04:33.241Z","type":"user","content":[{"text":"please RUN_TOOL touch probe.txt"}]}"#;
    const PATCH: &str = r#"{"$set":{"lastUpdated":"2026-11-25T15:04:33.241Z"}}"#;
    const STEP: &str = r#"{"id":"b251","timestamp":"2026-11-25T15:04:34.497Z","type":"gemini","content":"","thoughts":[],"tokens":{"input":1500,"output":40,"cached":500,"thoughts":50,"tool":0,"total":1590},"model":"gemini-3.1-pro-preview"}"#;
    const STEP_AGAIN: &str = r#"{"id":"b251","timestamp":"2026-11-25T15:04:34.497Z","type":"gemini","content":"","tokens":{"input":1500,"output":40,"cached":500,"thoughts":50,"tool":0,"total":1590},"model":"gemini-3.1-pro-preview","toolCalls":[{"id":"run_shell_command__run_shell_command_1795619074401_0","name":"run_shell_command","args":{"command":"touch probe.txt"},"result":[{"functionResponse":{"id":"run_shell_command__run_shell_command_1795619074401_0","name":"run_shell_command","response":{"output":"Output: (empty)"}}}],"status":"success","timestamp":"2026-11-25T15:04:36.936Z"}]}"#;
    const REPLY: &str = r#"{"id":"06d0","timestamp":"2026-11-25T15:04:38.726Z","type":"gemini","content":"done","tokens":{"input":1500,"output":40,"cached":500,"thoughts":50,"tool":0,"total":1590},"model":"gemini-3.1-pro-preview"}"#;
    // Gemini rewrote the whole list after the API error turn.
    const SET_ALL: &str = r#"{"$set":{"messages":[{"id":"d049","type":"user","content":[]},{"id":"ea52","type":"user","content":[]},{"id":"b251","type":"gemini","content":"","tokens":{"input":1500,"output":40,"cached":500,"thoughts":50,"tool":0,"total":1590},"model":"gemini-3.1-pro-preview","toolCalls":[{"id":"run_shell_command__run_shell_command_1795619074401_0","name":"run_shell_command","status":"success"}]},{"id":"a01b","type":"user","content":[]},{"id":"06d0","type":"gemini","content":"done","tokens":{"input":1500,"output":40,"cached":500,"thoughts":50,"tool":0,"total":1590},"model":"gemini-3.1-pro-preview"}],"lastUpdated":"2026-11-25T15:04:41.270Z"}}"#;
    const ERROR: &str = r#"{"id":"a2de","timestamp":"2026-11-25T15:04:41.448Z","type":"error","content":"[API Error: mock bad request]"}"#;

    fn one_response() -> Tokens {
        Tokens {
            input: 1000,
            output: 90,
            cache_read: 500,
            reasoning: 50,
            ..Tokens::default()
        }
    }

    #[test]
    fn meters_a_real_chat_file() {
        let (mut r, mut m) = (GeminiChat::default(), meter());
        feed(
            &mut r,
            &mut m,
            &[
                HEADER, SET_FIRST, USER, PATCH, STEP, PATCH, STEP_AGAIN, REPLY, PATCH, SET_ALL,
                ERROR, PATCH,
            ],
        );
        let u = m.usage();
        let mut two = one_response();
        two.add(&one_response());
        assert_eq!(u.tokens, two);
        assert_eq!(u.tokens.total(), 2 * 1590);
        let g = &u.by_model["gemini-3.1-pro-preview"];
        assert_eq!(g.responses, 2);
        assert_eq!(u.tool_calls.total, 1);
        assert_eq!(u.tool_calls.by_tool["run_shell_command"], 1);
        assert_eq!(u.context.used, 1500);
    }

    #[test]
    fn a_reappended_record_replaces_the_old_one() {
        let (mut r, mut m) = (GeminiChat::default(), meter());
        let first = r#"{"id":"x","type":"gemini","model":"gemini-3.5-flash","tokens":{"input":100,"output":0,"cached":0,"thoughts":0,"tool":0,"total":100},"toolCalls":[{"id":"a","name":"read_file","status":"scheduled"}]}"#;
        let later = r#"{"id":"x","type":"gemini","model":"gemini-3.5-flash","tokens":{"input":120,"output":30,"cached":20,"thoughts":5,"tool":10,"total":165},"toolCalls":[{"id":"a","name":"read_file","status":"success"},{"id":"b","name":"glob","status":"success"}]}"#;
        feed(&mut r, &mut m, &[first, later, later]);
        let u = m.usage();
        assert_eq!(u.by_model["gemini-3.5-flash"].responses, 1);
        assert_eq!(
            u.tokens,
            Tokens {
                input: 110,
                output: 35,
                cache_read: 20,
                reasoning: 5,
                ..Tokens::default()
            }
        );
        assert_eq!(u.tokens.total(), 165);
        assert_eq!(u.context.used, 130);
        assert_eq!(u.tool_calls.total, 2);
    }

    #[test]
    fn forgotten_ids_in_a_rewrite_are_not_counted_again() {
        let (mut r, mut m) = (GeminiChat::default(), meter());
        let rec = |id: usize| {
            format!(
                r#"{{"id":"r{id}","type":"gemini","model":"m","tokens":{{"input":10,"output":1}},"toolCalls":[{{"id":"t{id}","name":"glob"}}]}}"#
            )
        };
        let n = RECORDS_REMEMBERED + 10;
        for id in 0..n {
            r.line(rec(id).as_bytes(), &mut m);
        }
        // The whole list again, plus one new record at the end.
        let all: Vec<String> = (0..=n).map(rec).collect();
        let set = format!(r#"{{"$set":{{"messages":[{}]}}}}"#, all.join(","));
        r.line(set.as_bytes(), &mut m);
        let u = m.usage();
        assert_eq!(u.by_model["m"].responses, n as u64 + 1);
        assert_eq!(u.tool_calls.total, n as u64 + 1);
    }

    #[test]
    fn a_first_snapshot_counts_its_records() {
        let (mut r, mut m) = (GeminiChat::default(), meter());
        feed(&mut r, &mut m, &[SET_ALL, STEP_AGAIN, REPLY]);
        let u = m.usage();
        assert_eq!(u.by_model["gemini-3.1-pro-preview"].responses, 2);
        assert_eq!(u.tool_calls.total, 1);
    }

    #[test]
    fn bad_lines_and_odd_records_are_skipped() {
        let (mut r, mut m) = (GeminiChat::default(), meter());
        feed(
            &mut r,
            &mut m,
            &[
                "{not json",
                r#"{"id":"q","type":"gemini","tokens":"lots"}"#,
                r#"{"$set":{"messages":"nope"}}"#,
                r#"{"id":"u","type":"user","tokens":{"input":5}}"#,
                // No model: the previous one, else "unknown".
                r#"{"id":"n","type":"gemini","tokens":{"input":7,"output":1}}"#,
            ],
        );
        let u = m.usage();
        assert_eq!(u.by_model["unknown"].tokens.input, 7);
        assert_eq!(u.tokens.input, 7);
    }

    #[test]
    fn the_fake_agents_lines_parse() {
        // The shape tests/src/bin/fake-agent/gemini.rs writes: the step record, then the
        // same id again as its tool call progresses, each followed by a `$set` patch.
        let (mut r, mut m) = (GeminiChat::default(), meter());
        let step = |status: &str| {
            format!(
                r#"{{"id":"0b6c","timestamp":"2026-11-25T10:00:00.000Z","type":"gemini","content":"","thoughts":[],"tokens":{{"input":4000,"output":50,"cached":3000,"thoughts":0,"tool":0,"total":4050}},"model":"gemini-3.1-pro-preview","toolCalls":[{{"id":"run_shell_command-t1","name":"run_shell_command","args":{{"command":"ls"}},"status":"{status}","timestamp":"2026-11-25T10:00:00.000Z"}}]}}"#
            )
        };
        for l in [
            step("scheduled"),
            PATCH.to_owned(),
            step("awaiting_approval"),
            step("success"),
        ] {
            r.line(l.as_bytes(), &mut m);
        }
        let u = m.usage();
        assert_eq!(
            u.tokens,
            Tokens {
                input: 1000,
                output: 50,
                cache_read: 3000,
                ..Tokens::default()
            }
        );
        assert_eq!(u.tool_calls.total, 1);
    }
}
