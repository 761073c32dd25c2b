//! Attach relay throughput: `cat` of a large file in a session, drained by an attached
//! client in a PTY, against tmux doing the same.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use canopy_tests::{RawTerm, TestEnv};

use super::{Figure, Samples, Target, tmux_version};

/// Runs of each relay measurement; the median is reported.
const RUNS: usize = 3;

/// Read `reader` until `marker` appears; bytes read.
fn drain_until(reader: &mut dyn Read, marker: &[u8]) -> u64 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).expect("read terminal");
        assert!(n > 0, "terminal closed before the marker");
        total += n as u64;
        tail.extend_from_slice(&buf[..n]);
        if tail.windows(marker.len()).any(|w| w == marker) {
            return total;
        }
        let keep = tail.len().saturating_sub(marker.len());
        tail.drain(..keep);
    }
}

fn make_stream_file(dir: &Path, mb: usize) -> PathBuf {
    let path = dir.join(format!("stream-{mb}mb.txt"));
    let mut text = String::with_capacity(mb * 1024 * 1024);
    let mut i = 0u64;
    while text.len() < mb * 1024 * 1024 {
        text.push_str(&format!(
            "{i:08} the quick brown fox jumps over the lazy dog; agent output line {i:08}\n"
        ));
        i += 1;
    }
    std::fs::write(&path, text).expect("write stream file");
    path
}

/// Seconds from `start()` until `marker` reaches the attached client in `term`.
fn time_until(term: &mut RawTerm, marker: &[u8], start: impl FnOnce()) -> f64 {
    let began = Instant::now();
    start();
    drain_until(&mut term.reader, marker);
    let secs = began.elapsed().as_secs_f64();
    let _ = term.child.kill();
    secs
}

/// The shell line that streams `file` and then prints the end marker (typed, it does
/// not contain the marker itself).
fn stream_line(file: &Path) -> String {
    format!("cat {}; printf 'END-%s\\n' MARKER", file.display())
}

/// Time for `cat FILE` in a session to reach an attached client, in MB/s.
fn canopy_relay(env: &TestEnv, name: &str, file: &Path, mb: usize) -> f64 {
    env.ok(&["new", name, "--agent", "sh"]);
    let mut term = RawTerm::spawn(&env.canopy(&["attach", name]), 50, 200);
    drain_until(&mut term.reader, b"\x1b[?1049h");
    let secs = time_until(&mut term, b"END-MARKER", || {
        env.ok(&["send", name, &stream_line(file), "--enter"]);
    });
    mb as f64 / secs
}

/// The same stream through tmux, to a tmux client attached in a PTY.
fn tmux_relay(dir: &Path, file: &Path, mb: usize) -> Option<f64> {
    tmux_version()?;
    let sock = dir.join("tmux.sock");
    let tmux = |args: &[&str]| super::tmux(&sock, args);
    tmux(&["new-session", "-d", "-x", "200", "-y", "50", "sh"])
        .status()
        .expect("tmux");
    let mut term = RawTerm::spawn(&tmux(&["attach"]), 50, 200);
    std::thread::sleep(Duration::from_millis(500));
    let secs = time_until(&mut term, b"END-MARKER", || {
        tmux(&["send-keys", &stream_line(file), "Enter"])
            .status()
            .expect("tmux send-keys");
    });
    tmux(&["kill-server"]).status().expect("tmux kill-server");
    Some(mb as f64 / secs)
}

pub fn figures(mb: usize) -> Vec<Figure> {
    let env = TestEnv::new();
    let file = make_stream_file(env.dir.path(), mb);
    // Alternate the two, so both see the same machine conditions.
    let mut runs_canopy = Vec::new();
    let mut runs_tmux = Vec::new();
    for run in 0..RUNS {
        runs_canopy.push(canopy_relay(&env, &format!("relay{run}"), &file, mb));
        runs_tmux.extend(tmux_relay(env.dir.path(), &file, mb));
    }
    let canopy = Samples::new(runs_canopy).median();
    let tmux = (!runs_tmux.is_empty()).then(|| Samples::new(runs_tmux).median());
    let mut figures = vec![Figure::new(
        format!("attach relay of `cat` on a {mb} MB file"),
        canopy,
        "MB/s",
        Target::Compared {
            text: "≥ tmux",
            met: tmux.is_none_or(|t| canopy >= t),
        },
        format!(
            "median of {RUNS}: session `sh` runs cat; a `canopy attach` client in a 200×50 PTY is drained until an end marker arrives"
        ),
    )];
    if let Some(t) = tmux {
        figures.push(Figure::new(
            format!("tmux relay of the same {mb} MB stream"),
            t,
            "MB/s",
            Target::Baseline,
            format!(
                "median of {RUNS}: {} with -f /dev/null; a `tmux attach` client in a PTY, drained the same way",
                tmux_version().unwrap_or_default()
            ),
        ));
        figures.push(Figure::new(
            "relay ratio Canopy / tmux",
            canopy / t,
            "×",
            Target::AtLeast(1.0),
            "same run, same file, same terminal size (200×50)",
        ));
    }
    figures
}
