//! Whole-system benchmarks of the real `canopy` binary (release build), and the
//! criterion benches of the in-process hot paths, written to `BENCHMARKS.md` and
//! `benchmarks.json` at the workspace root.
//!
//! Run: `cargo run --release -p canopy-tests --features zellij-bench --bin canopy-bench`
//! (it builds the release `canopy` first). `--quick` uses smaller sizes for a smoke run;
//! `--only GROUP[,GROUP…]` measures those groups (see [`GROUPS`]) and updates just their
//! figures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

#[path = "canopy-bench/hook.rs"]
mod hook;
#[path = "canopy-bench/host.rs"]
mod host;
#[path = "canopy-bench/ingest.rs"]
mod ingest;
#[path = "canopy-bench/load.rs"]
mod load;
#[path = "canopy-bench/micro.rs"]
mod micro;
#[path = "canopy-bench/notify.rs"]
mod notify;
#[path = "canopy-bench/nvim.rs"]
mod nvim;
#[path = "canopy-bench/relay.rs"]
mod relay;
#[path = "canopy-bench/remote.rs"]
mod remote;
#[path = "canopy-bench/review.rs"]
mod review;
#[path = "canopy-bench/truth.rs"]
mod truth;
#[path = "canopy-bench/zellij.rs"]
mod zellij;

/// One measured figure, as written to `benchmarks.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Figure {
    name: String,
    value: f64,
    unit: String,
    target: String,
    met: bool,
    method: String,
}

/// What a figure is held to: it gives the figure's `target` text and decides `met`.
enum Target {
    /// Less than this, in the figure's unit.
    Below(f64),
    /// At least this.
    AtLeast(f64),
    /// Exactly zero; the text says what zero means.
    Zero(&'static str),
    /// Against another tool measured in the same run (`≥ tmux`): the caller decides, as
    /// "better" runs either way (MB/s up, memory down).
    Compared { text: &'static str, met: bool },
    /// The other tool's figure that a `Compared` is held to.
    Baseline,
    /// Reported, not held to anything.
    Info,
}

impl Figure {
    /// Each figure is declared once, here: name, value, target and how it was measured.
    fn new(
        name: impl Into<String>,
        value: f64,
        unit: &str,
        target: Target,
        method: impl Into<String>,
    ) -> Self {
        let (target, met) = match target {
            Target::Below(x) => (format!("< {x} {unit}"), value < x),
            Target::AtLeast(x) => (format!("≥ {x}"), value >= x),
            Target::Zero(what) => (format!("0 ({what})"), value == 0.0),
            Target::Compared { text, met } => (text.to_owned(), met),
            Target::Baseline => ("(baseline)".into(), true),
            Target::Info => ("(informational)".into(), true),
        };
        Figure {
            name: name.into(),
            value,
            unit: unit.into(),
            target,
            met,
            method: method.into(),
        }
    }
}

/// Samples of one measurement, sorted, for percentiles.
struct Samples(Vec<f64>);

impl Samples {
    fn new(mut v: Vec<f64>) -> Self {
        assert!(!v.is_empty(), "a measurement without samples");
        v.sort_by(f64::total_cmp);
        Samples(v)
    }

    /// The `p` quantile (0..=1), nearest rank.
    fn p(&self, p: f64) -> f64 {
        let idx = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[idx.min(self.0.len() - 1)]
    }

    fn median(&self) -> f64 {
        self.p(0.5)
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Milliseconds since `start`.
fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// How a run is sized and where it writes.
struct Run {
    quick: bool,
    root: PathBuf,
    target: PathBuf,
}

type Group = (&'static str, fn(&Run) -> Vec<Figure>);

/// Every group, in the order of BENCHMARKS.md: `--only NAME[,NAME…]` runs some.
const GROUPS: &[Group] = &[
    ("ls", |r| host::ls_latency(if r.quick { 20 } else { 100 })),
    ("rss", |r| host::rss(if r.quick { 10 } else { 100 }, 10_000)),
    ("idle", |r| {
        host::idle(if r.quick { 10 } else { 50 }, if r.quick { 3 } else { 30 })
    }),
    ("relay", |r| relay::figures(if r.quick { 20 } else { 100 })),
    ("load", load::figures),
    ("scale", |r| {
        if r.quick {
            host::scale(100, 50, 3)
        } else {
            host::scale(500, 100, 10)
        }
    }),
    ("hook", |r| {
        hook::figures(
            if r.quick { &[1, 10][..] } else { &[1, 10, 100] },
            if r.quick { 50 } else { 300 },
        )
    }),
    ("ingest", |r| {
        ingest::figures(if r.quick { 30 } else { 300 })
    }),
    ("nvim", |r| nvim::figures(5, if r.quick { 20 } else { 200 })),
    ("zellij", |r| {
        zellij::figures(if r.quick { 10 } else { 100 })
    }),
    ("notify", |r| {
        notify::figures(if r.quick { 20 } else { 200 })
    }),
    ("remote", |r| {
        if r.quick {
            remote::figures(20, 2, 3)
        } else {
            remote::figures(200, 5, 30)
        }
    }),
    ("diff", |r| {
        if r.quick {
            review::figures(2_000, 200, 5)
        } else {
            review::figures(20_000, 200, 20)
        }
    }),
    ("criterion", micro::figures),
    ("truth", |r| truth::figures(if r.quick { 2 } else { 25 })),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').map(str::to_owned).collect());
    for o in only.iter().flatten() {
        if !GROUPS.iter().any(|(name, _)| name == o) {
            let names: Vec<&str> = GROUPS.iter().map(|(name, _)| *name).collect();
            eprintln!("canopy-bench: no group {o:?}; groups: {}", names.join(", "));
            std::process::exit(2);
        }
    }
    let root = workspace_root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let shipped = build_release_canopy(&root, &target);
    // SAFETY: setting our own environment before any threads start.
    unsafe { std::env::set_var("CANOPY_BIN", shipped) };
    let run = Run {
        quick,
        root,
        target,
    };

    let began = Instant::now();
    let mut measured = Vec::new();
    let mut failed = Vec::new();
    for (name, group) in GROUPS {
        if only.as_ref().is_none_or(|o| o.iter().any(|o| o == name)) {
            let start = Instant::now();
            // A group that fails (a missing tool, a timeout) must not throw away the
            // minutes of figures the others took: it is named at the end instead.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| group(&run))) {
                Ok(figures) => measured.extend(figures),
                Err(_) => failed.push(*name),
            }
            eprintln!(
                "canopy-bench: {name} took {:.0} s",
                start.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "canopy-bench: all took {:.0} s",
        began.elapsed().as_secs_f64()
    );

    // A partial run replaces its own figures and keeps the others.
    let mut figures: Vec<Figure> = if only.is_some() {
        std::fs::read_to_string(run.root.join("benchmarks.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| serde_json::from_value(v["figures"].clone()).ok())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    for f in measured {
        match figures.iter_mut().find(|old| old.name == f.name) {
            Some(old) => *old = f,
            None => figures.push(f),
        }
    }

    let machine = machine();
    let json = serde_json::json!({ "machine": machine, "figures": figures });
    std::fs::write(
        run.root.join("benchmarks.json"),
        serde_json::to_string_pretty(&json).expect("json") + "\n",
    )
    .expect("write benchmarks.json");
    // The hand-written notes under the table (what a profile showed, where the bytes
    // go, how noisy the machine was) outlive the figures they explain.
    let notes = std::fs::read_to_string(run.root.join("BENCHMARKS.md"))
        .ok()
        .and_then(|old| old.find(NOTES).map(|at| old[at..].to_owned()))
        .unwrap_or_default();
    let md = markdown(&machine, &figures) + &notes;
    std::fs::write(run.root.join("BENCHMARKS.md"), &md).expect("write BENCHMARKS.md");
    print!("{md}");
    if !failed.is_empty() {
        eprintln!(
            "canopy-bench: failed (their figures are missing): {}",
            failed.join(", ")
        );
        std::process::exit(1);
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `tmux ARGS` on its own server at `sock`, with no user config.
fn tmux(sock: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("tmux");
    cmd.arg("-S")
        .arg(sock)
        .args(["-f", "/dev/null"])
        .args(args)
        .env("TERM", "xterm-256color")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

/// `tmux -V`, or `None` when tmux is not installed.
fn tmux_version() -> Option<String> {
    Command::new("tmux")
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// Build `canopy` as `cargo install` would, in a target directory of its own: built
/// beside this binary, its dependencies' features would be unified with the benches'
/// (a different binary), and each of the two builds would invalidate the other.
fn build_release_canopy(root: &Path, target: &Path) -> PathBuf {
    let dir = target.join("shipped");
    let ok = cargo()
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "canopy",
            "--target-dir",
        ])
        .arg(&dir)
        .current_dir(root)
        .status()
        .expect("run cargo")
        .success();
    assert!(ok, "building the release canopy failed");
    dir.join("release/canopy")
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, {} GiB RAM, Linux {kernel}",
        mem_kb / 1024 / 1024
    )
}

/// Where the hand-written part of BENCHMARKS.md begins.
const NOTES: &str = "\n## Notes";

fn markdown(machine: &str, figures: &[Figure]) -> String {
    let mut md = String::from("# Benchmarks\n\n");
    md.push_str("Generated by `cargo run --release -p canopy-tests --features zellij-bench --bin canopy-bench` (without the feature the Zellij figures are skipped: it builds wasmtime); raw figures in `benchmarks.json`. The in-process figures come from the criterion benches (`host/benches`, `host/protocol/benches`), which that command runs; `cargo bench -p canopy -p canopy-protocol --bench hot_paths --bench frame` runs them alone.\n\n");
    md.push_str(&format!("Machine: {machine}.\n\n"));
    md.push_str("| figure | value | target | met | method |\n|---|---|---|---|---|\n");
    for f in figures {
        md.push_str(&format!(
            "| {} | {:.2} {} | {} | {} | {} |\n",
            f.name,
            f.value,
            f.unit,
            f.target,
            if f.met { "yes" } else { "**no**" },
            f.method
        ));
    }
    md
}
