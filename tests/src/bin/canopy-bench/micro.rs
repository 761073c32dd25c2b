//! The criterion benches of in-process hot paths (`host/benches/hot_paths.rs`,
//! `host/protocol/benches/frame.rs`): run through `cargo bench`, then each estimate is
//! read from criterion's `estimates.json` and reported as a figure.

use std::path::Path;

use super::{Figure, Run, Target};

/// The benches reported: criterion's `group/function` id, what one iteration does, and
/// the most it may take in µs (`None`: informational).
const BENCHES: &[(&str, &str, Option<f64>)] = &[
    (
        "state/apply_hook",
        "one Claude hook payload (UserPromptSubmit, PreToolUse or Stop in turn): JSON parse, adapter, state engine",
        None,
    ),
    (
        "transcript/assistant_line",
        "one ~1 KB Claude assistant line with usage through ClaudeTranscript into the Meter (priced, deduplicated)",
        None,
    ),
    (
        "transcript/tool_result_line",
        "one ~4 KB tool-result line (no usage): skipped by the prefilter without parsing",
        None,
    ),
    (
        "screen/output_4k_and_classify",
        "one 4 KiB PTY read of coloured lines into a 24×80 screen with 2000 lines of scrollback, then the screen text through Claude's cue patterns (the screen task's work per read)",
        None,
    ),
    (
        "screen/classify",
        "Claude's cue patterns on one 24×80 screen of text",
        None,
    ),
    (
        "frame/encode_event",
        "a `session_changed` event (one session mid-task, usage on two models) serialized typed straight into msgpack-RPC bytes",
        Some(3.0),
    ),
    (
        "frame/decode_event",
        "those bytes through the incremental Decoder, deserialized typed from the frame back to an Event",
        Some(3.0),
    ),
    (
        "frame/encode_event_value_tree",
        "the same event through a msgpack value tree (the way before issue 22; generic `Message`s still go so)",
        None,
    ),
    (
        "frame/decode_event_value_tree",
        "the same bytes to a value tree, then to an Event (the way before issue 22)",
        None,
    ),
    (
        "frame/output_4k_direct",
        "an `output` notification of 4 KiB written directly (the host's way)",
        None,
    ),
    (
        "frame/output_4k_generic",
        "the same notification through the generic value-tree encoder",
        None,
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
        .map(|&(id, what, most)| {
            let ns = median_ns(&home, id);
            // Sub-microsecond figures in ns, so two decimals still say something.
            let (value, unit) = if ns < 1000.0 {
                (ns, "ns")
            } else {
                (ns / 1000.0, "µs")
            };
            let target = match most {
                Some(us) if unit == "ns" => Target::Below(us * 1000.0),
                Some(us) => Target::Below(us),
                None => Target::Info,
            };
            Figure::new(
                format!("in-process: {id} (criterion median)"),
                value,
                unit,
                target,
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
    for (way, typed, tree) in [
        (
            "encode",
            "frame/encode_event",
            "frame/encode_event_value_tree",
        ),
        (
            "decode",
            "frame/decode_event",
            "frame/decode_event_value_tree",
        ),
    ] {
        figures.push(Figure::new(
            format!("in-process: typed event {way} vs value tree"),
            median_ns(&home, tree) / median_ns(&home, typed),
            "×",
            Target::AtLeast(1.0),
            "value-tree time / typed time, both from the same criterion run (same bytes: `host/protocol/tests/wire.rs`)",
        ));
    }
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
