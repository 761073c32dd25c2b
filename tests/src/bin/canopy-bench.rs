//! Whole-system benchmarks of the real `canopy` binary (release build), written to
//! `BENCHMARKS.md` and `benchmarks.json` at the workspace root.
//!
//! Run: `cargo run --release -p canopy-tests --bin canopy-bench` (it builds the release
//! `canopy` first). `--quick` uses smaller sizes for a smoke run; `--only GROUP` (`ls`,
//! `idle`, `relay`, `hook`, `ingest`, `nvim`) measures one group and updates just its figures.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use canopy_tests::{RawTerm, TestEnv};
use serde::Serialize;

#[path = "canopy-bench/ingest.rs"]
mod ingest;
#[path = "canopy-bench/nvim.rs"]
mod nvim;
#[path = "canopy-bench/zellij.rs"]
mod zellij;

#[derive(Debug, Serialize, serde::Deserialize)]
struct Figure {
    name: String,
    value: f64,
    unit: String,
    target: String,
    met: bool,
    method: String,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let root = workspace_root();
    build_release_canopy(&root);
    // SAFETY: setting our own environment before any threads start.
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    unsafe { std::env::set_var("CANOPY_BIN", target.join("release/canopy")) };

    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let run = |group: &str| only.as_deref().is_none_or(|o| o == group);
    let mut measured = Vec::new();
    if run("ls") {
        measured.extend(ls_latency(if quick { 20 } else { 100 }));
    }
    if run("idle") {
        measured.extend(idle_host(20, if quick { 3 } else { 10 }));
    }
    if run("relay") {
        measured.extend(relay_throughput(if quick { 20 } else { 100 }));
    }
    if run("hook") {
        measured.extend(hook_figures(
            if quick { 10 } else { 50 },
            if quick { 50 } else { 300 },
        ));
    }
    if run("ingest") {
        measured.extend(ingest::figures(if quick { 30 } else { 300 }));
    }
    if run("nvim") {
        measured.extend(nvim::figures(5, if quick { 20 } else { 200 }));
    }
    if run("zellij") {
        measured.extend(zellij::figures(if quick { 10 } else { 100 }));
    }
    // A partial run replaces its own figures and keeps the others.
    let mut figures: Vec<Figure> = if only.is_some() {
        std::fs::read_to_string(root.join("benchmarks.json"))
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
        root.join("benchmarks.json"),
        serde_json::to_string_pretty(&json).expect("json") + "\n",
    )
    .expect("write benchmarks.json");
    let md = markdown(&machine, &figures);
    std::fs::write(root.join("BENCHMARKS.md"), &md).expect("write BENCHMARKS.md");
    print!("{md}");
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn build_release_canopy(root: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let ok = Command::new(cargo)
        .args(["build", "--release", "-p", "canopy"])
        .current_dir(root)
        .status()
        .expect("run cargo")
        .success();
    assert!(ok, "building the release canopy failed");
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
    format!(
        "{cpu}, {cores} cores, {} GiB RAM, Linux {}",
        mem_kb / 1024 / 1024,
        kernel()
    )
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Start `n` idle sessions (each `sh` in its own worktree).
fn sessions(env: &TestEnv, n: usize) {
    for i in 0..n {
        env.ok(&["new", &format!("s{i:03}"), "--agent", "sh"]);
    }
}

fn ls_latency(n: usize) -> Vec<Figure> {
    let env = TestEnv::new();
    sessions(&env, n);
    let runs = 50;
    let mut ms = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let out = env
            .canopy(&["ls"])
            .stdout(Stdio::null())
            .status()
            .expect("ls");
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
        assert!(out.success());
    }
    let mut json_ms = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        env.canopy(&["status", "--json"])
            .stdout(Stdio::null())
            .status()
            .expect("status");
        json_ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    json_ms.sort_by(f64::total_cmp);
    let rss = host_rss_kb(&env) as f64 / 1024.0;
    vec![
        Figure {
            name: format!("`canopy ls` wall time, {n} sessions (median)"),
            value: percentile(&ms, 0.5),
            unit: "ms".into(),
            target: "< 20 ms".into(),
            met: percentile(&ms, 0.5) < 20.0,
            method: format!(
                "{runs} runs of the release binary, process start to exit, p95 {:.1} ms",
                percentile(&ms, 0.95)
            ),
        },
        Figure {
            name: format!("`canopy status --json` wall time, {n} sessions (median)"),
            value: percentile(&json_ms, 0.5),
            unit: "ms".into(),
            target: "< 20 ms".into(),
            met: percentile(&json_ms, 0.5) < 20.0,
            method: format!("{runs} runs, p95 {:.1} ms", percentile(&json_ms, 0.95)),
        },
        Figure {
            name: format!("host RSS with {n} idle sessions"),
            value: rss,
            unit: "MiB".into(),
            target: "(informational)".into(),
            met: true,
            method: "VmRSS from /proc after the ls runs".into(),
        },
    ]
}

fn host_pid(env: &TestEnv) -> i32 {
    env.ok(&["status"]);
    env.host_pid().expect("host pid")
}

fn host_rss_kb(env: &TestEnv) -> u64 {
    proc_field(host_pid(env), "VmRSS:")
}

fn proc_field(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Context switches per thread of `pid`, and its CPU time in clock ticks.
fn wakeups_and_ticks(pid: i32) -> (std::collections::BTreeMap<String, u64>, u64) {
    let mut switches = std::collections::BTreeMap::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let n: u64 = status
                .lines()
                .filter(|l| {
                    l.starts_with("voluntary_ctxt_switches:")
                        || l.starts_with("nonvoluntary_ctxt_switches:")
                })
                .filter_map(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
                .sum();
            switches.insert(t.file_name().to_string_lossy().into_owned(), n);
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    // After the comm: state is field 0; utime and stime are fields 11 and 12.
    let ticks = fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    (switches, ticks)
}

fn idle_host(n: usize, secs: u64) -> Vec<Figure> {
    let env = TestEnv::new();
    let pid = host_pid(&env);
    let start_rss = proc_field(pid, "VmRSS:") as f64 / 1024.0;
    sessions(&env, n);
    // Let start-up settle, including the blocking-pool threads the git work used, which
    // exit once after 10 s unused.
    std::thread::sleep(Duration::from_secs(if secs >= 10 { 11 } else { 1 }));
    let rss = proc_field(pid, "VmRSS:") as f64 / 1024.0;
    let (w0, t0) = wakeups_and_ticks(pid);
    std::thread::sleep(Duration::from_secs(secs));
    let (w1, t1) = wakeups_and_ticks(pid);
    // Threads that appeared count whole; threads that exited count nothing more.
    let woke: u64 = w1
        .iter()
        .map(|(tid, n)| n - w0.get(tid).copied().unwrap_or(0).min(*n))
        .sum();
    vec![
        Figure {
            name: "host RSS at start (no sessions)".into(),
            value: start_rss,
            unit: "MiB".into(),
            target: "(informational)".into(),
            met: true,
            method: "VmRSS from /proc".into(),
        },
        Figure {
            name: format!("host RSS with {n} idle sessions"),
            value: rss,
            unit: "MiB".into(),
            target: "< 30 MiB".into(),
            met: rss < 30.0,
            method: format!("VmRSS from /proc, {n} sessions each running sh"),
        },
        Figure {
            name: format!("host wakeups in {secs} s idle with {n} sessions"),
            value: woke as f64,
            unit: "context switches".into(),
            target: "0 (no periodic wakeups)".into(),
            met: woke == 0,
            method: format!(
                "sum of voluntary+nonvoluntary switches over all host threads; CPU time {} ticks",
                t1 - t0
            ),
        },
    ]
}

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
    if Command::new("tmux").arg("-V").output().is_err() {
        return None;
    }
    let sock = dir.join("tmux.sock");
    let tmux = |args: &[&str]| {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S")
            .arg(&sock)
            .args(["-f", "/dev/null"])
            .args(args)
            .env("TERM", "xterm-256color")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        cmd
    };
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

/// Runs of each relay measurement; the median is reported.
const RELAY_RUNS: usize = 3;

fn relay_throughput(mb: usize) -> Vec<Figure> {
    let env = TestEnv::new();
    let file = make_stream_file(env.dir.path(), mb);
    // Alternate the two, three runs each, and take each one's median.
    let mut runs_canopy = Vec::new();
    let mut runs_tmux = Vec::new();
    for run in 0..RELAY_RUNS {
        runs_canopy.push(canopy_relay(&env, &format!("relay{run}"), &file, mb));
        runs_tmux.extend(tmux_relay(env.dir.path(), &file, mb));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| percentile(&v, 0.5))
    };
    let canopy = median(runs_canopy).unwrap_or(0.0);
    let tmux = median(runs_tmux);
    let mut figures = vec![Figure {
        name: format!("attach relay of `cat` on a {mb} MB file"),
        value: canopy,
        unit: "MB/s".into(),
        target: "≥ tmux".into(),
        met: tmux.is_none_or(|t| canopy >= t),
        method: format!(
            "median of {RELAY_RUNS}: session `sh` runs cat; a `canopy attach` client in a 200×50 PTY is drained until an end marker arrives"
        ),
    }];
    if let Some(t) = tmux {
        figures.push(Figure {
            name: format!("tmux relay of the same {mb} MB stream"),
            value: t,
            unit: "MB/s".into(),
            target: "(baseline)".into(),
            met: true,
            method: format!(
                "median of {RELAY_RUNS}: {} with -f /dev/null; a `tmux attach` client in a PTY, drained the same way",
                tmux_version()
            ),
        });
        figures.push(Figure {
            name: "relay ratio Canopy / tmux".into(),
            value: canopy / t,
            unit: "×".into(),
            target: "≥ 1".into(),
            met: canopy >= t,
            method: "same run, same file, same terminal size (200×50)".into(),
        });
    }
    figures
}

/// `canopy hook` wall time (host up and down), and hook → state change at a subscribed
/// client with `sessions` sessions.
fn hook_figures(sessions: usize, samples: usize) -> Vec<Figure> {
    let mut env = TestEnv::new();
    let stubs = env.stub_agents(&["claude"], "exec sleep 100000");
    env.prepend_path(&stubs);
    for i in 0..sessions {
        env.ok(&["new", &format!("h{i:03}"), "--agent", "claude"]);
    }
    let payload = |event: &str| format!("{{\"hook_event_name\":\"{event}\",\"session_id\":\"x\"}}");
    let time_hook = |cmd: &mut Command, body: &str| {
        use std::io::Write;
        let start = Instant::now();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("hook");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("payload");
        assert!(child.wait().expect("wait").success());
        start.elapsed().as_secs_f64() * 1000.0
    };
    let mut up: Vec<f64> = (0..samples.min(100))
        .map(|i| {
            time_hook(
                &mut env.hook_command("h000", "claude"),
                &payload(if i % 2 == 0 {
                    "UserPromptSubmit"
                } else {
                    "Stop"
                }),
            )
        })
        .collect();
    let mut down: Vec<f64> = (0..samples.min(100))
        .map(|_| {
            let mut cmd = env.hook_command("h000", "claude");
            cmd.env("CANOPY_SOCKET", env.dir.path().join("no-host.sock"));
            time_hook(&mut cmd, &payload("Stop"))
        })
        .collect();
    up.sort_by(f64::total_cmp);
    down.sort_by(f64::total_cmp);

    // In-process: a subscriber sees the state change a hook request causes.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut lat: Vec<f64> = runtime.block_on(async {
        use canopy_protocol::params::{HookParams, HookResult, SubscribeParams, SubscribeResult};
        use canopy_protocol::{Message, method};
        let mut sub = env.client().await;
        let _: SubscribeResult = sub
            .call(method::SUBSCRIBE, &SubscribeParams::default())
            .await
            .expect("subscribe");
        let mut hooks = env.client().await;
        let mut out = Vec::new();
        for i in 0..samples {
            // Each session alternates, so every hook changes its state.
            let event = if (i / sessions).is_multiple_of(2) {
                "UserPromptSubmit"
            } else {
                "Stop"
            };
            let name = format!("h{:03}", i % sessions);
            let start = Instant::now();
            let _: HookResult = hooks
                .call(
                    method::HOOK,
                    &HookParams {
                        session: name.clone(),
                        agent: "claude".into(),
                        payload: payload(event),
                    },
                )
                .await
                .expect("hook");
            loop {
                match sub.reader.next().await.expect("read") {
                    Some(Message::Notification { method, params }) if method == method::EVENT => {
                        let e: canopy_protocol::Event =
                            canopy_protocol::frame::params(&params).expect("event");
                        if e.session.is_some_and(|s| s.name == name) {
                            break;
                        }
                    }
                    Some(_) => {}
                    None => panic!("host went away"),
                }
            }
            out.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        out
    });
    lat.sort_by(f64::total_cmp);
    vec![
        Figure {
            name: "`canopy hook` wall time, host up (median)".into(),
            value: percentile(&up, 0.5),
            unit: "ms".into(),
            target: "< 5 ms".into(),
            met: percentile(&up, 0.5) < 5.0,
            method: format!(
                "{} runs of the release binary with a Claude payload on stdin; p95 {:.1} ms",
                up.len(),
                percentile(&up, 0.95)
            ),
        },
        Figure {
            name: "`canopy hook` wall time, host down (median)".into(),
            value: percentile(&down, 0.5),
            unit: "ms".into(),
            target: "< 100 ms".into(),
            met: percentile(&down, 0.95) < 100.0,
            method: format!(
                "{} runs against a socket nobody serves; p95 {:.1} ms; always exit 0",
                down.len(),
                percentile(&down, 0.95)
            ),
        },
        Figure {
            name: format!("hook → state change at a subscriber, {sessions} sessions (p99)"),
            value: percentile(&lat, 0.99),
            unit: "ms".into(),
            target: "< 5 ms".into(),
            met: percentile(&lat, 0.99) < 5.0,
            method: format!(
                "{samples} `hook` requests alternating UserPromptSubmit/Stop over the sessions; time to the `event` at another connection; p50 {:.2} ms",
                percentile(&lat, 0.5)
            ),
        },
    ]
}

fn tmux_version() -> String {
    Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn markdown(machine: &str, figures: &[Figure]) -> String {
    let mut md = String::from("# Benchmarks\n\n");
    md.push_str("Generated by `cargo run --release -p canopy-tests --features zellij-bench --bin canopy-bench` (without the feature the Zellij figures are skipped: it builds wasmtime); raw figures in `benchmarks.json`.\n\n");
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
