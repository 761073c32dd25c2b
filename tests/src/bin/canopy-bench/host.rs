//! The host process itself: `ls`/`status` latency, memory, and its cost at rest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use canopy_tests::{TestEnv, wait_for};

use super::{Figure, Samples, Target, ms_since, tmux, tmux_version};

/// Start `n` idle sessions (each `agent` in its own worktree), named `{prefix}NNN`.
fn sessions(env: &TestEnv, prefix: &str, agent: &str, n: usize) {
    for i in 0..n {
        env.ok(&["new", &format!("{prefix}{i:03}"), "--agent", agent]);
    }
}

fn host_pid(env: &TestEnv) -> i32 {
    env.ok(&["status"]);
    env.host_pid().expect("host pid")
}

/// VmRSS of `pid` in MiB.
pub fn rss_mib(pid: i32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// A memory field of /proc/PID/status (`VmRSS:`, `RssAnon:` …) in MiB.
fn status_mib(pid: i32, field: &str) -> f64 {
    let kb: u64 = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    kb as f64 / 1024.0
}

/// Wall time of `runs` runs of `canopy ARGS`, in ms.
pub fn wall_times(env: &TestEnv, args: &[&str], runs: usize) -> Samples {
    Samples::new(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                let ok = env
                    .canopy(args)
                    .stdout(Stdio::null())
                    .status()
                    .expect("run canopy")
                    .success();
                assert!(ok, "canopy {args:?} failed");
                ms_since(start)
            })
            .collect(),
    )
}

pub fn ls_latency(n: usize) -> Vec<Figure> {
    let env = TestEnv::new();
    sessions(&env, "s", "sh", n);
    let runs = 50;
    let ls = wall_times(&env, &["ls"], runs);
    let json = wall_times(&env, &["status", "--json"], runs);
    vec![
        Figure::new(
            format!("`canopy ls` wall time, {n} sessions (median)"),
            ls.median(),
            "ms",
            Target::Below(20.0),
            format!(
                "{runs} runs of the release binary, process start to exit, p95 {:.1} ms",
                ls.p(0.95)
            ),
        ),
        Figure::new(
            format!("`canopy status --json` wall time, {n} sessions (median)"),
            json.median(),
            "ms",
            Target::Below(20.0),
            format!("{runs} runs, p95 {:.1} ms", json.p(0.95)),
        ),
    ]
}

/// The agent that fills its scrollback: `lines` lines shorter than the 80 columns (each
/// is one row), a screenful more, then a marker, then it waits.
fn printer(env: &TestEnv, lines: usize) -> PathBuf {
    env.stub_agents(
        &["printer"],
        &format!(
            "seq 1 {} | sed 's/$/ of the build log: compiling crate, running tests, all fine/'\n\
             echo SCROLLBACK-FULL\nexec sleep 100000",
            lines + 100
        ),
    )
}

/// Host memory at start and with `n` sessions whose scrollback is full at `lines`
/// lines, and tmux's with the same windows.
pub fn rss(n: usize, lines: usize) -> Vec<Figure> {
    let mut env = TestEnv::new();
    env.write_config(&format!("[sessions]\nscrollback_lines = {lines}\n"));
    let stubs = printer(&env, lines);
    env.prepend_path(&stubs);
    let pid = host_pid(&env);
    // Let the start settle (the first status request's work).
    std::thread::sleep(Duration::from_secs(1));
    let start = rss_mib(pid);
    let start_anon = status_mib(pid, "RssAnon:");
    sessions(&env, "r", "printer", n);
    for i in 0..n {
        let name = format!("r{i:03}");
        // At the session's own size (24×80), so looking does not resize it.
        wait_for(
            "a session's scrollback to fill",
            Duration::from_secs(300),
            || {
                env.screen_text(&name, 24, 80)
                    .contains("SCROLLBACK-FULL")
                    .then_some(())
            },
        );
    }
    // At rest, as sessions spend most of their time.
    std::thread::sleep(Duration::from_secs(3));
    let full = rss_mib(pid);
    let per = (full - start) / n as f64;
    let tmux = tmux_rss(&stubs.join("printer"), n, lines);
    let mut figures = vec![
        Figure::new(
            "host RSS at start (no sessions)",
            start,
            "MiB",
            Target::Below(8.0),
            "VmRSS from /proc, 1 s after the first `status`: mostly pages of the binary \
             (BENCHMARKS.md, Memory)",
        ),
        Figure::new(
            "host anonymous RSS at start (no sessions)",
            start_anon,
            "MiB",
            Target::Info,
            "RssAnon from /proc at the same moment: the heap and stacks, the part of the \
             RSS no other process shares",
        ),
        Figure::new(
            format!("host RSS with {n} sessions, each with {lines} lines of scrollback"),
            full,
            "MiB",
            Target::Info,
            format!(
                "VmRSS from /proc 3 s after every session's agent has printed {} lines of ~75 characters (24×80 screens, `scrollback_lines = {lines}`; the default is 2000)",
                lines + 100
            ),
        ),
        Figure::new(
            format!("host RSS per session with {lines} lines of scrollback"),
            per,
            "MiB",
            Target::Compared {
                text: "≤ tmux",
                met: tmux.as_ref().is_none_or(|(_, t)| per <= *t),
            },
            format!("(RSS with {n} sessions − RSS at start) / {n}, same run"),
        ),
    ];
    if let Some((version, tmux_per)) = tmux {
        figures.push(Figure::new(
            format!("tmux server RSS per window with {lines} lines of history"),
            tmux_per,
            "MiB",
            Target::Baseline,
            format!(
                "{version}, -f /dev/null, history-limit {lines}: (RSS with {n} more 80×24 windows running the same agent − RSS with one idle window) / {n}"
            ),
        ));
        figures.push(Figure::new(
            "scrollback memory ratio tmux / Canopy",
            tmux_per / per,
            "×",
            Target::AtLeast(1.0),
            "same run, same agent output, same scrollback depth",
        ));
    }
    figures
}

/// tmux's version and its server's RSS per window (MiB) with `n` windows running
/// `agent` with a history of `lines` lines, or `None` without tmux.
fn tmux_rss(agent: &Path, n: usize, lines: usize) -> Option<(String, f64)> {
    let version = tmux_version()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("tmux.sock");
    let limit = lines.to_string();
    let run = |args: &[&str]| {
        let out = tmux(&sock, args).output().expect("run tmux");
        assert!(out.status.success(), "tmux {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The limit applies to windows created after it is set.
    run(&["new-session", "-d", "-s", "b", "-x", "80", "-y", "24", "sh"]);
    run(&["set-option", "-g", "history-limit", &limit]);
    let pid: i32 = run(&["display-message", "-p", "#{pid}"])
        .trim()
        .parse()
        .expect("tmux server pid");
    std::thread::sleep(Duration::from_secs(1));
    let start = rss_mib(pid);
    let agent = agent.to_string_lossy();
    for _ in 0..n {
        run(&["new-window", "-d", "-t", "b:", &agent]);
    }
    for w in 1..=n {
        let target = format!("b:{w}");
        wait_for(
            "a tmux window's history to fill",
            Duration::from_secs(300),
            || {
                run(&["capture-pane", "-p", "-t", &target])
                    .contains("SCROLLBACK-FULL")
                    .then_some(())
            },
        );
    }
    let full = rss_mib(pid);
    run(&["kill-server"]);
    Some((version, (full - start) / n as f64))
}

/// Context switches per thread of `pid`, and its CPU time (all threads, living and
/// exited) in ms.
pub fn wakeups_and_cpu(pid: i32) -> (BTreeMap<String, u64>, f64) {
    let mut switches = BTreeMap::new();
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
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (switches, (tick(11) + tick(12)) as f64 * 1000.0 / hz)
}

/// Context switches of all of `pid`'s threads and its CPU time (ms) over `secs`
/// seconds from now.
fn at_rest(pid: i32, secs: u64) -> (u64, f64) {
    let (w0, cpu0) = wakeups_and_cpu(pid);
    std::thread::sleep(Duration::from_secs(secs));
    let (w1, cpu1) = wakeups_and_cpu(pid);
    // Threads that appeared count whole; threads that exited count nothing more.
    let woke = w1
        .iter()
        .map(|(tid, n)| n - w0.get(tid).copied().unwrap_or(0).min(*n))
        .sum();
    (woke, cpu1 - cpu0)
}

/// Wakeups and CPU time of a host with `n` idle sessions over `secs` seconds.
pub fn idle(n: usize, secs: u64) -> Vec<Figure> {
    let env = TestEnv::new();
    let pid = host_pid(&env);
    sessions(&env, "i", "sh", n);
    // Let start-up settle, including the blocking-pool threads the git work used, which
    // exit once after 10 s unused.
    std::thread::sleep(Duration::from_secs(if secs >= 10 { 11 } else { 1 }));
    let (woke, cpu) = at_rest(pid, secs);
    let what = format!("{secs} s with {n} idle sessions (each `sh`), 11 s after the last start");
    vec![
        Figure::new(
            format!("host wakeups in {secs} s idle with {n} sessions"),
            woke as f64,
            "context switches",
            Target::Zero("no periodic wakeups"),
            format!("sum of voluntary+nonvoluntary switches over all host threads, {what}"),
        ),
        Figure::new(
            format!("host CPU time in {secs} s idle with {n} sessions"),
            cpu,
            "ms",
            Target::Zero("no periodic work"),
            format!(
                "utime+stime of the host process from /proc/PID/stat (clock-tick resolution), {what}"
            ),
        ),
    ]
}

/// The host with `n` idle sessions (each `sh`, made `step` at a time): how `new` and
/// `ls` scale from the first `step` sessions to all `n` (work per session linear in the
/// table would show as a `new` getting slower and `ls` growing faster than the table),
/// host RSS, and wakeups at rest.
pub fn scale(n: usize, step: usize, idle_secs: u64) -> Vec<Figure> {
    let env = TestEnv::new();
    let pid = host_pid(&env);
    let runs = 20;
    let mut new_ms = Vec::new();
    let mut ls_first = 0.0;
    for start in (0..n).step_by(step) {
        let began = Instant::now();
        for i in start..(start + step).min(n) {
            env.ok(&["new", &format!("n{i:04}"), "--agent", "sh"]);
        }
        new_ms.push(ms_since(began) / step as f64);
        if start == 0 {
            ls_first = wall_times(&env, &["ls"], runs).median();
        }
    }
    let ls = wall_times(&env, &["ls"], runs);
    let json = wall_times(&env, &["status", "--json"], runs);
    std::thread::sleep(Duration::from_secs(11));
    let rss = rss_mib(pid);
    let (woke, _) = at_rest(pid, idle_secs);
    let (first_new, last_new) = (new_ms[0], new_ms[new_ms.len() - 1]);
    vec![
        Figure::new(
            format!("scale: `canopy ls` wall time, {n} sessions (median)"),
            ls.median(),
            "ms",
            Target::Below(20.0),
            format!(
                "{runs} runs, process start to exit, p95 {:.1} ms; {ls_first:.1} ms at {step} sessions ({:.2}× for {}× the sessions)",
                ls.p(0.95),
                ls.median() / ls_first,
                n / step
            ),
        ),
        Figure::new(
            format!("scale: `canopy status --json` wall time, {n} sessions (median)"),
            json.median(),
            "ms",
            Target::Below(20.0),
            format!("{runs} runs, p95 {:.1} ms", json.p(0.95)),
        ),
        Figure::new(
            format!(
                "scale: `canopy new` with {} sessions already / with none",
                n - step
            ),
            last_new / first_new,
            "×",
            Target::Info,
            format!(
                "mean wall time of `canopy new NAME --agent sh` over the last {step} ({last_new:.1} ms) against the first {step} ({first_new:.1} ms): flat when nothing in `new` walks the whole table"
            ),
        ),
        Figure::new(
            format!("scale: host RSS with {n} idle sessions"),
            rss,
            "MiB",
            Target::Info,
            "VmRSS from /proc 11 s after the last `new` (each session `sh` at 24×80, little scrollback)",
        ),
        Figure::new(
            format!("scale: host wakeups in {idle_secs} s idle with {n} sessions"),
            woke as f64,
            "context switches",
            Target::Zero("no periodic wakeups"),
            "sum of voluntary+nonvoluntary switches over all host threads (/proc/PID/task/*/status), 11 s after the last start",
        ),
    ]
}
