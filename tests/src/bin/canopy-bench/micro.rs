//! The criterion benches of in-process hot paths (`host/benches/hot_paths.rs`,
//! `host/protocol/benches/frame.rs`): run through `cargo bench`, then each estimate is
//! read from criterion's `estimates.json` and reported as a figure.

use std::path::Path;

use super::{Figure, Run, Target};

/// The benches reported: criterion's `group/function` id, and what one iteration does.
const BENCHES: &[(&str, &str)] = &[
    (
        "state/apply_hook",
        "one Claude hook payload (UserPromptSubmit, PreToolUse or Stop in turn): JSON parse, adapter, state engine",
    ),
    (
        "transcript/assistant_line",
        "one ~1 KB Claude assistant line with usage through ClaudeTranscript into the Meter (priced, deduplicated)",
    ),
    (
        "transcript/tool_result_line",
        "one ~4 KB tool-result line (no usage): skipped by the prefilter without parsing",
    ),
    (
        "screen/output_4k_and_classify",
        "one 4 KiB PTY read of coloured lines into a 24×80 screen with 2000 lines of scrollback, then the screen text through Claude's cue patterns (the screen task's work per read)",
    ),
    (
        "screen/classify",
        "Claude's cue patterns on one 24×80 screen of text",
    ),
    (
        "frame/encode_event",
        "a `session_changed` event (one session mid-task, usage on two models) to msgpack-RPC bytes",
    ),
    (
        "frame/decode_event",
        "those bytes through the incremental Decoder back to a typed Event",
    ),
    (
        "frame/output_4k_direct",
        "an `output` notification of 4 KiB written directly (the host's way)",
    ),
    (
        "frame/output_4k_generic",
        "the same notification through the generic value-tree encoder",
    ),
];

pub fn figures(run: &Run) -> Vec<Figure> {
    let home = run.target.join("criterion");
    let mut cmd = super::cargo();
    cmd.args(["bench", "-p", "canopy", "-p", "canopy-protocol"])
        .args(["--bench", "hot_paths", "--bench", "frame", "--"])
        .env("CRITERION_HOME", &home)
        .current_dir(&run.root);
    if run.quick {
        cmd.args(["--warm-up-time", "1", "--measurement-time", "2"]);
    }
    assert!(
        cmd.status().expect("run cargo bench").success(),
        "cargo bench failed"
    );
    let settings = if run.quick {
        "1 s warm-up, 2 s measurement"
    } else {
        "3 s warm-up, 5 s measurement"
    };
    let mut figures: Vec<Figure> = BENCHES
        .iter()
        .map(|(id, what)| {
            let ns = median_ns(&home, id);
            // Sub-microsecond figures in ns, so two decimals still say something.
            let (value, unit) = if ns < 1000.0 {
                (ns, "ns")
            } else {
                (ns / 1000.0, "µs")
            };
            Figure::new(
                format!("in-process: {id} (criterion median)"),
                value,
                unit,
                Target::Info,
                format!("{what}; criterion, release profile, {settings}"),
            )
        })
        .collect();
    figures.push(Figure::new(
        "in-process: direct `output` frame vs generic encoder",
        median_ns(&home, "frame/output_4k_generic") / median_ns(&home, "frame/output_4k_direct"),
        "×",
        Target::AtLeast(1.0),
        "generic time / direct time, both from the same criterion run",
    ));
    figures
}

/// The median estimate of bench `id`, in ns, from its latest run.
fn median_ns(home: &Path, id: &str) -> f64 {
    let path = home.join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("criterion's {}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("estimates.json");
    v["median"]["point_estimate"]
        .as_f64()
        .unwrap_or_else(|| panic!("no median in {}", path.display()))
}
