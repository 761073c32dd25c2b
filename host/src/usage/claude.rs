//! Claude Code's transcript JSONL (`~/.claude/projects/<dir>/<session>.jsonl`).
//!
//! Only assistant lines carry `message.usage`. One API response is written as one line
//! per content block, each with the same `message.id`, `requestId` and full usage, so
//! responses are de-duplicated the way ccusage does it (specs/agents.md §5): the key is
//! `message.id`+`requestId`; a sidechain replay matches a copy with the same
//! `message.id` and `timestamp` whatever its request id (checked black-box against
//! ccusage 20.0.24); when copies collide the non-sidechain one wins, then the larger
//! token total.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::LazyLock;

use memchr::memmem;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};

use super::{Meter, Tokens, Transcript};

/// Responses remembered for de-duplication. Copies of one response are written within a
/// few lines of each other (one per content block), so the most recent 4096 responses
/// are plenty; memory stays at a few hundred KB whatever the file's size.
const RECENT_RESPONSES: usize = 4096;
/// `tool_use` ids remembered so each tool call counts once (same reasoning).
const RECENT_TOOLS: usize = 4096;

/// Lines without this cannot carry usage; finding it is far cheaper than parsing.
static USAGE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"usage\""));

/// Reads a Claude Code transcript.
#[derive(Debug, Default)]
pub struct ClaudeTranscript {
    responses: Recent,
    tools: RecentIds,
}

impl Transcript for ClaudeTranscript {
    fn line(&mut self, line: &[u8], meter: &mut Meter) {
        if USAGE.find(line).is_none() {
            return;
        }
        let Ok(parsed) = serde_json::from_slice::<Line<'_>>(line) else {
            return;
        };
        self.assistant(&parsed, meter);
    }

    /// The dedup memory is kept: ids are unique, so a rewritten file's old responses
    /// are still recognised and not counted twice.
    fn restart(&mut self) {}
}

impl ClaudeTranscript {
    fn assistant(&mut self, line: &Line<'_>, meter: &mut Meter) {
        let Some(msg) = &line.message else { return };
        if line.kind.as_deref() != Some("assistant") || line.api_error {
            return;
        }
        let model = msg.model.as_deref().unwrap_or("");
        if model.is_empty() || model == "<synthetic>" {
            return;
        }
        for block in &msg.content.0 {
            if block.kind == "tool_use"
                && let (Some(id), Some(name)) = (&block.id, &block.name)
                && self.tools.insert(id)
            {
                meter.tool(name);
            }
        }
        let (Some(usage), Some(id)) = (&msg.usage, msg.id.as_deref()) else {
            return;
        };
        if id.is_empty() {
            return;
        }
        let response = Response {
            request: line.request_id.as_deref().unwrap_or("").into(),
            timestamp: line.timestamp.as_deref().unwrap_or("").into(),
            sidechain: line.sidechain,
            model: model.into(),
            tokens: usage.tokens(),
            fast: usage.speed.as_deref() == Some("fast"),
        };
        match self.responses.offer(id, response) {
            Offer::Duplicate => {}
            Offer::New(r) => add(meter, r),
            Offer::Replaces { old, new } => {
                meter.retract(&old.model, &old.tokens);
                add(meter, new);
            }
        }
    }
}

/// Meter one response (and the context, for the main chain).
fn add(meter: &mut Meter, r: &Response) {
    let fast = r
        .fast
        .then(|| meter.prices().get(&r.model).map(|p| p.cost_fast(&r.tokens)))
        .flatten();
    match fast {
        Some(cost) => meter.response_with_cost(&r.model, &r.tokens, cost),
        None => meter.response(&r.model, &r.tokens),
    }
    if !r.sidechain {
        meter.context(r.tokens.prompt(), None);
    }
}

/// One metered API response, as remembered for de-duplication.
#[derive(Debug, Clone)]
struct Response {
    request: Box<str>,
    timestamp: Box<str>,
    sidechain: bool,
    model: Box<str>,
    tokens: Tokens,
    fast: bool,
}

impl Response {
    /// Whether this copy should be counted instead of `old` (ccusage's preference).
    fn beats(&self, old: &Response) -> bool {
        (old.sidechain && !self.sidechain)
            || (old.sidechain == self.sidechain && self.tokens.total() > old.tokens.total())
    }

    /// Whether this is a copy of `old` (same `message.id`): same request, or a sidechain
    /// replay written with the same timestamp.
    fn same_as(&self, old: &Response) -> bool {
        self.request == old.request
            || ((self.sidechain || old.sidechain) && self.timestamp == old.timestamp)
    }
}

enum Offer<'a> {
    Duplicate,
    New(&'a Response),
    Replaces { old: Response, new: &'a Response },
}

/// The most recent responses by `message.id`, bounded by [`RECENT_RESPONSES`].
#[derive(Debug, Default)]
struct Recent {
    by_id: HashMap<Box<str>, Vec<Response>>,
    order: VecDeque<Box<str>>,
}

impl Recent {
    fn offer(&mut self, id: &str, new: Response) -> Offer<'_> {
        if !self.by_id.contains_key(id) {
            self.evict();
            self.order.push_back(id.into());
        }
        let copies = self.by_id.entry(id.into()).or_default();
        match copies.iter().position(|old| new.same_as(old)) {
            Some(i) if new.beats(&copies[i]) => {
                let old = std::mem::replace(&mut copies[i], new);
                Offer::Replaces {
                    old,
                    new: &copies[i],
                }
            }
            Some(_) => Offer::Duplicate,
            None => {
                copies.push(new);
                Offer::New(&copies[copies.len() - 1])
            }
        }
    }

    fn evict(&mut self) {
        while self.order.len() >= RECENT_RESPONSES {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }
}

/// The most recent ids, bounded by [`RECENT_TOOLS`].
#[derive(Debug, Default)]
struct RecentIds {
    set: HashSet<Box<str>>,
    order: VecDeque<Box<str>>,
}

impl RecentIds {
    /// False when `id` was seen recently.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        while self.order.len() >= RECENT_TOOLS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.into());
        self.order.push_back(id.into());
        true
    }
}

// The parts of a line that are read; serde skips everything else without allocating.

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(rename = "isSidechain", default)]
    sidechain: bool,
    #[serde(rename = "isApiErrorMessage", default)]
    api_error: bool,
    #[serde(rename = "requestId", borrow, default)]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Message<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    usage: Option<Usage<'a>>,
    #[serde(borrow, default)]
    content: Blocks<'a>,
}

#[derive(Deserialize)]
struct Usage<'a> {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation: Option<CacheCreation>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
    #[serde(borrow, default)]
    speed: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: Option<u64>,
    #[serde(default)]
    ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct OutputDetails {
    #[serde(default)]
    thinking_tokens: Option<u64>,
}

impl Usage<'_> {
    /// Claude's usage as [`Tokens`]: cache writes split by TTL when the breakdown is
    /// there (any remainder, and everything without it, at the 5-minute rate, as ccusage
    /// does); thinking is inside output.
    fn tokens(&self) -> Tokens {
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        let (w5, w1) = match &self.cache_creation {
            Some(c) => {
                let w5 = c.ephemeral_5m_input_tokens.unwrap_or(0);
                let w1 = c.ephemeral_1h_input_tokens.unwrap_or(0);
                (w5 + written.saturating_sub(w5 + w1), w1)
            }
            None => (written, 0),
        };
        Tokens {
            input: self.input_tokens.unwrap_or(0),
            output: self.output_tokens.unwrap_or(0),
            cache_write_5m: w5,
            cache_write_1h: w1,
            cache_read: self.cache_read_input_tokens.unwrap_or(0),
            reasoning: self
                .output_tokens_details
                .as_ref()
                .and_then(|d| d.thinking_tokens)
                .unwrap_or(0),
        }
    }
}

/// `message.content`: the blocks of an array; a plain string (user text) has none.
#[derive(Default)]
struct Blocks<'a>(Vec<Block<'a>>);

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Blocks<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Blocks<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("content blocks or text")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut blocks = Vec::new();
                while let Some(b) = seq.next_element::<BlockOrOther<'a>>()? {
                    if let BlockOrOther::Block(b) = b {
                        blocks.push(b);
                    }
                }
                Ok(Blocks(blocks))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Blocks::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Blocks::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// An array element: a block object, or anything else (ignored).
enum BlockOrOther<'a> {
    Block(Block<'a>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for BlockOrOther<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = BlockOrOther<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a content block")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Block::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(BlockOrOther::Block)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(BlockOrOther::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(BlockOrOther::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(BlockOrOther::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(BlockOrOther::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(BlockOrOther::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
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

    fn line(msg: &str, req: &str, side: bool, model: &str, usage: &str, content: &str) -> String {
        format!(
            r#"{{"parentUuid":null,"isSidechain":{side},"type":"assistant","requestId":"{req}","message":{{"id":"{msg}","type":"message","role":"assistant","model":"{model}","content":[{content}],"usage":{usage}}},"uuid":"u"}}"#
        )
    }

    const U1: &str = r#"{"input_tokens":1000,"cache_creation_input_tokens":2000,"cache_read_input_tokens":3000,"output_tokens":50,"output_tokens_details":{"thinking_tokens":7},"cache_creation":{"ephemeral_1h_input_tokens":500,"ephemeral_5m_input_tokens":1500},"speed":"standard"}"#;
    const U2: &str = r#"{"input_tokens":2000,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}"#;
    const TEXT: &str = r#"{"type":"text","text":"hi \"usage\""}"#;

    fn feed(t: &mut ClaudeTranscript, m: &mut Meter, lines: &[String]) {
        for l in lines {
            t.line(l.as_bytes(), m);
        }
    }

    #[test]
    fn one_response_over_several_lines_counts_once() {
        let (mut t, mut m) = (ClaudeTranscript::default(), meter());
        let tool = r#"{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"echo"}}"#;
        feed(
            &mut t,
            &mut m,
            &[
                line("msg_1", "req_1", false, "claude-sonnet-4-5", U1, TEXT),
                line("msg_1", "req_1", false, "claude-sonnet-4-5", U1, tool),
            ],
        );
        let u = m.usage();
        let want = Tokens {
            input: 1000,
            output: 50,
            cache_write_5m: 1500,
            cache_write_1h: 500,
            cache_read: 3000,
            reasoning: 7,
        };
        assert_eq!(u.tokens, want);
        assert_eq!(u.by_model["claude-sonnet-4-5"].responses, 1);
        assert_eq!(u.context.used, 6000);
        assert_eq!(u.context.window, 200_000);
        assert_eq!(u.tool_calls.total, 1);
        assert_eq!(u.tool_calls.by_tool["Bash"], 1);
    }

    #[test]
    fn copies_resolve_as_ccusage_does() {
        let (mut t, mut m) = (ClaudeTranscript::default(), meter());
        let s = "claude-sonnet-4-5";
        feed(
            &mut t,
            &mut m,
            &[
                // A sidechain copy, then the main one with more tokens: main wins.
                line(
                    "a",
                    "side",
                    true,
                    s,
                    U2.replace("2000", "1000").as_str(),
                    TEXT,
                ),
                line("a", "r1", false, s, U2, TEXT),
                // Main, then a bigger sidechain copy: main stays.
                line(
                    "b",
                    "r2",
                    false,
                    s,
                    U2.replace("2000", "1000").as_str(),
                    TEXT,
                ),
                line("b", "other", true, s, U2, TEXT),
                // Same id, another request: a different response.
                line("c", "r3", false, s, U2, TEXT),
                line("c", "r4", false, s, U2, TEXT),
            ],
        );
        let u = m.usage();
        assert_eq!(u.tokens.input, 2000 + 1000 + 2000 + 2000);
        assert_eq!(u.by_model[s].responses, 4);
        let cost = u.cost_usd.expect("priced");
        assert!((cost - 7000.0 * 3.0 / 1e6).abs() < 1e-12, "{cost}");
    }

    #[test]
    fn skips_errors_synthetic_empty_ids_and_other_lines() {
        let (mut t, mut m) = (ClaudeTranscript::default(), meter());
        let err = r#"{"type":"assistant","isApiErrorMessage":true,"requestId":"r","message":{"id":"x","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":5}}}"#;
        feed(
            &mut t,
            &mut m,
            &[
                line("s", "r", false, "<synthetic>", U2, TEXT),
                line("", "r", false, "claude-sonnet-4-5", U2, TEXT),
                err.to_owned(),
                r#"{"type":"user","message":{"role":"user","content":"what is \"usage\"?"}}"#
                    .into(),
                "not json \"usage\"".into(),
                String::new(),
            ],
        );
        assert!(m.usage().by_model.is_empty());
    }

    #[test]
    fn unknown_models_have_unknown_cost_and_fast_mode_multiplies() {
        let (mut t, mut m) = (ClaudeTranscript::default(), meter());
        let fast = r#"{"input_tokens":100000,"output_tokens":0,"speed":"fast"}"#;
        feed(
            &mut t,
            &mut m,
            &[
                line("f", "r", false, "claude-opus-4-6", fast, TEXT),
                line("n", "r", false, "claude-new-9", U2, TEXT),
            ],
        );
        let u = m.usage();
        assert!((u.by_model["claude-opus-4-6"].cost_usd.expect("priced") - 3.0).abs() < 1e-9);
        assert_eq!(u.by_model["claude-new-9"].cost_usd, None);
        assert_eq!(u.cost_usd, None);
        assert_eq!(u.unpriced_models, vec!["claude-new-9".to_owned()]);
    }

    #[test]
    fn no_breakdown_puts_all_writes_at_5m_and_sidechains_leave_context() {
        let (mut t, mut m) = (ClaudeTranscript::default(), meter());
        let u = r#"{"input_tokens":1,"cache_creation_input_tokens":400,"output_tokens":2}"#;
        feed(
            &mut t,
            &mut m,
            &[
                line("m", "r", false, "claude-haiku-4-5-20251001", u, TEXT),
                line("side", "r", true, "claude-haiku-4-5-20251001", U2, TEXT),
            ],
        );
        let usage = m.usage();
        assert_eq!(usage.tokens.cache_write_5m, 400);
        assert_eq!(usage.tokens.cache_write_1h, 0);
        assert_eq!(usage.context.used, 401);
    }

    #[test]
    fn dedup_memory_is_bounded() {
        let (mut t, mut m) = (ClaudeTranscript::default(), meter());
        for i in 0..(RECENT_RESPONSES * 3) {
            let tool = format!(r#"{{"type":"tool_use","id":"t{i}","name":"Read","input":{{}}}}"#);
            let l = line(&format!("m{i}"), "r", false, "claude-haiku-4-5", U2, &tool);
            t.line(l.as_bytes(), &mut m);
        }
        assert!(t.responses.order.len() <= RECENT_RESPONSES);
        assert!(t.responses.by_id.len() <= RECENT_RESPONSES);
        assert!(t.tools.set.len() <= RECENT_TOOLS);
        let u = m.usage();
        assert_eq!(
            u.by_model["claude-haiku-4-5"].responses,
            3 * RECENT_RESPONSES as u64
        );
        assert_eq!(u.tool_calls.total, 3 * RECENT_TOOLS as u64);
    }
}
