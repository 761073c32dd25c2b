//! The host's in-process hot paths, each as the host runs it: a hook request applied to
//! a session's state, a transcript line metered, and a PTY read through the screen
//! model and the cue detector. `canopy-bench --only criterion` copies the estimates
//! into BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use canopy::agents::{Adapter, claude::Claude};
use canopy::session::screen::Screen;
use canopy::state::{Engine, Timing};
use canopy::usage::claude::ClaudeTranscript;
use canopy::usage::{Meter, Prices, Transcript};
use canopy_protocol::{State, StateKind, StateSource};
use criterion::{Criterion, criterion_group, criterion_main};

/// One response line as Claude Code writes it (tool_use with usage), about 1 KB.
const ASSISTANT: &str = r#"{"parentUuid":"p1","isSidechain":false,"userType":"external","cwd":"/home/dev/proj","sessionId":"0b7d3c5a-8e6f-4b2d-9c6a-8e0f2b4d6c8a","version":"2.1.332","gitBranch":"master","uuid":"b1","timestamp":"2026-11-25T10:00:01.000Z","type":"assistant","requestId":"req_1","requestedModel":"claude-sonnet-4-5","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"cargo test -- t1"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":2000,"cache_read_input_tokens":3000,"output_tokens":50,"output_tokens_details":{"thinking_tokens":0},"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard","cache_creation":{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":2000},"speed":"standard"}}}"#;

/// A tool result line (no usage): most of a transcript's bytes, skipped unparsed.
fn tool_result() -> String {
    let output = "src/lib.rs:12: fn main() { println!(\"hello\"); }\\n".repeat(40);
    format!(
        r#"{{"parentUuid":"b1","isSidechain":false,"userType":"external","cwd":"/home/dev/proj","sessionId":"0b7d3c5a-8e6f-4b2d-9c6a-8e0f2b4d6c8a","type":"user","message":{{"role":"user","content":[{{"tool_use_id":"toolu_1","type":"tool_result","content":"{output}","is_error":false}}]}},"toolUseResult":{{"stdout":"{output}","stderr":"","interrupted":false}}}}"#
    )
}

/// 4 KiB of agent output: coloured lines of text, as a PTY read delivers it.
fn output_chunk() -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    let mut i = 0;
    while out.len() < 4096 {
        out.extend_from_slice(
            format!("\x1b[32m  {i:4}\x1b[0m │ the agent reports progress on step {i}\r\n")
                .as_bytes(),
        );
        i += 1;
    }
    out.truncate(4096);
    out
}

fn benches(c: &mut Criterion) {
    // rpc.rs parses the payload, the session's adapter reads it, the engine applies it.
    let claude = Claude::new();
    let payloads = [
        r#"{"hook_event_name":"UserPromptSubmit","session_id":"s1","prompt":"fix the test"}"#,
        r#"{"hook_event_name":"PreToolUse","session_id":"s1","tool_name":"Bash","tool_input":{"command":"cargo test"}}"#,
        r#"{"hook_event_name":"Stop","session_id":"s1"}"#,
    ];
    let start = Instant::now();
    let mut engine = Engine::new(
        State::new(StateKind::Idle, StateSource::Hook, 0),
        true,
        Timing::default(),
        start,
    );
    let mut n = 0usize;
    let mut g = c.benchmark_group("state");
    g.bench_function("apply_hook", |b| {
        b.iter(|| {
            n += 1;
            let payload: serde_json::Value =
                serde_json::from_str(black_box(payloads[n % payloads.len()])).expect("json");
            let event = claude.hook(&payload, Some("s1"));
            engine.hook(&event, start, n as u64)
        })
    });

    g.finish();

    let mut meter = Meter::new(Arc::new(Prices::builtin()));
    let mut transcript = ClaudeTranscript::default();
    // Each response has its own id, as in a real transcript (repeats are deduplicated).
    let lines: Vec<String> = (0..1000)
        .map(|i| ASSISTANT.replace("msg_1", &format!("msg_{i}")))
        .collect();
    let mut i = 0usize;
    let mut g = c.benchmark_group("transcript");
    g.bench_function("assistant_line", |b| {
        b.iter(|| {
            i += 1;
            transcript.line(black_box(lines[i % lines.len()].as_bytes()), &mut meter)
        })
    });
    let result = tool_result();
    g.bench_function("tool_result_line", |b| {
        b.iter(|| transcript.line(black_box(result.as_bytes()), &mut meter))
    });

    g.finish();

    // The screen task's work per PTY read: parse, render the text, classify.
    let chunk = output_chunk();
    let cues = claude.cues();
    let mut screen = Screen::new(24, 80, 2000);
    let mut g = c.benchmark_group("screen");
    g.bench_function("output_4k_and_classify", |b| {
        b.iter(|| {
            screen.process(black_box(&chunk));
            cues.classify_with_line(&screen.text())
        })
    });
    let text = screen.text();
    g.bench_function("classify", |b| {
        b.iter(|| cues.classify_with_line(black_box(&text)))
    });
    g.finish();
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);
