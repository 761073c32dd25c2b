//! Hook payloads: every agent adapter's `hook` on arbitrary bytes read as JSON (what
//! `rpc::handle` accepts: any JSON object), and each resulting event through the state
//! engine, interleaved with screen cues and ticks.
//!
//! Checks: nothing panics, and the engine's deadline is never in the past after a tick.

#![no_main]

use std::time::{Duration, Instant};

use canopy::agents::{self, Cue};
use canopy::state::{Engine, Timing};
use canopy_protocol::{State, StateKind, StateSource};
use libfuzzer_sys::fuzz_target;

const AGENTS: &[&str] = &["claude", "codex", "gemini", "opencode", "sh"];
const CUES: &[Cue] = &[
    Cue::Quiet,
    Cue::Busy,
    Cue::Permission,
    Cue::Interrupted,
    Cue::Error,
];

fuzz_target!(|data: &[u8]| {
    // The first byte steers time and cues; the rest is the payload, one JSON value per
    // line, as a session would receive them one hook at a time.
    let Some((&steer, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let payloads: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let custom = Default::default();
    for name in AGENTS {
        let adapter = agents::resolve(name, &custom);
        let start = Instant::now();
        let mut engine = Engine::new(
            State::new(StateKind::Starting, StateSource::Host, 0),
            adapter.has_hooks(),
            Timing::default(),
            start,
        );
        let mut known: Option<String> = None;
        // What an agent's server answers for its catch-up reads (OpenCode).
        let served = |path: &str| payloads.get(path.len() % payloads.len().max(1)).cloned();
        let caught_up = adapter.catch_up(&served);
        for (i, payload) in caught_up.iter().chain(&payloads).enumerate() {
            // `rpc::handle` refuses anything but an object; the adapters see only those.
            if !payload.is_object() {
                continue;
            }
            let step = u64::from(steer.rotate_left(i as u32 % 8)) * 10;
            let now = start + Duration::from_millis(step * (i as u64 + 1));
            let wall = step * (i as u64 + 1);
            let event = adapter.hook(payload, known.as_deref());
            if let Some(id) = &event.agent_session_id {
                known = Some(id.clone());
            }
            if let Some(event_name) = payload.get("hook_event_name").and_then(|v| v.as_str()) {
                let _ = adapter.hook_decision(event_name, steer & 1 == 0, Some("fuzz"));
            }
            engine.hook(&event, now, wall);
            let cue = CUES[(usize::from(steer) + i) % CUES.len()];
            engine.screen_changed(cue, Some(payload.to_string()), now, wall);
            if let Some(at) = engine.deadline() {
                engine.tick(at, wall + 1);
            }
            let _ = engine.health(now);
        }
        let _ = engine.signals();
    }
});
