//! Attach relay throughput: `cat` of a large file in a session, drained by an attached
//! client in a PTY, against tmux doing the same, and against the limits of the machine:
//! the same `cat` into one PTY drained by a plain reader (nothing in between: the
//! ceiling for any relay, which adds at least a second PTY), into a unix socket, and
//! through a relay that only copies (the same two PTYs and socket as an attach, nothing
//! else: what any relay on this topology could reach).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use canopy_tests::{RawTerm, TestEnv};

use super::{Figure, Samples, Target, tmux_version};

/// Runs of each relay measurement: ratios are reported as min/median/max of the
/// per-run ratios (each run measures every path back to back, so they share the
/// machine's conditions).
const RUNS: usize = 5;

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

/// The ceiling: the same stream from `cat` in a PTY straight to a plain reader.
fn raw_pty(file: &Path, mb: usize) -> f64 {
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &stream_line(file)]);
    cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    let began = Instant::now();
    let mut term = RawTerm::spawn(&cmd, 50, 200);
    drain_until(&mut term.reader, b"END-MARKER");
    let secs = began.elapsed().as_secs_f64();
    let _ = term.child.wait();
    mb as f64 / secs
}

/// One unix-socket hop: the same stream from `cat` into a socket, drained at the other
/// end (what a relay's socket leg could do at most).
fn raw_socket(file: &Path, mb: usize) -> f64 {
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let began = Instant::now();
    let mut child = std::process::Command::new("sh")
        .args(["-c", &stream_line(file)])
        .stdout(std::os::fd::OwnedFd::from(theirs))
        .spawn()
        .expect("spawn cat");
    drain_until(&mut ours, b"END-MARKER");
    let secs = began.elapsed().as_secs_f64();
    let _ = child.wait();
    mb as f64 / secs
}

/// The attach topology with nothing but copies: `cat` in PTY A; a bench thread (the
/// host's place) reads A's master into a unix socket; a plain copier in PTY B (the
/// attach client's place: a Python loop of 64 KiB reads and writes, its terminal raw)
/// writes the socket to its terminal; the bench drains B's master. What any relay between two PTYs could
/// do on this machine, before a terminal model or a protocol costs anything.
fn copy_relay(dir: &Path, file: &Path, mb: usize) -> f64 {
    let sock = dir.join("copy-relay.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind copy relay");
    let mut client = std::process::Command::new("python3");
    client.args([
        "-c",
        // Raw like an attach client's terminal (no \n → \r\n on the way out).
        "import os,socket,sys,tty\ntty.setraw(1)\n\
         s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1])\n\
         while b:=s.recv(65536): os.write(1,b)",
        &sock.display().to_string(),
    ]);
    client.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    let mut out = RawTerm::spawn(&client, 50, 200);
    let (mut to_client, _) = listener.accept().expect("copier connects");
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &stream_line(file)]);
    cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    let began = Instant::now();
    let RawTerm {
        child: mut source,
        reader: mut from_source,
        master: _source_master,
    } = RawTerm::spawn(&cmd, 50, 200);
    let relay = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        // Ends with EIO once `cat` and its shell have exited.
        while let Ok(n @ 1..) = from_source.read(&mut buf) {
            if std::io::Write::write_all(&mut to_client, &buf[..n]).is_err() {
                break;
            }
        }
    });
    drain_until(&mut out.reader, b"END-MARKER");
    let secs = began.elapsed().as_secs_f64();
    let _ = source.wait();
    let _ = out.child.kill();
    let _ = relay.join();
    mb as f64 / secs
}

/// Min, median and max of `v`, as text.
fn spread(v: &[f64], unit: &str) -> String {
    let s = Samples::new(v.to_vec());
    format!(
        "min {:.2}{unit}, median {:.2}{unit}, max {:.2}{unit} over {}",
        s.p(0.0),
        s.median(),
        s.p(1.0),
        s.len()
    )
}

pub fn figures(mb: usize) -> Vec<Figure> {
    let env = TestEnv::new();
    let file = make_stream_file(env.dir.path(), mb);
    // Every path once per run, in turn, so all see the same machine conditions.
    let mut canopy = Vec::new();
    let mut tmux = Vec::new();
    let mut pty = Vec::new();
    let mut socket = Vec::new();
    let mut copy = Vec::new();
    for run in 0..RUNS {
        canopy.push(canopy_relay(&env, &format!("relay{run}"), &file, mb));
        tmux.extend(tmux_relay(env.dir.path(), &file, mb));
        pty.push(raw_pty(&file, mb));
        socket.push(raw_socket(&file, mb));
        copy.push(copy_relay(env.dir.path(), &file, mb));
    }
    let of_pty: Vec<f64> = canopy.iter().zip(&pty).map(|(c, p)| c / p).collect();
    let copy_of_pty: Vec<f64> = copy.iter().zip(&pty).map(|(c, p)| c / p).collect();
    let of_copy: Vec<f64> = canopy.iter().zip(&copy).map(|(c, p)| c / p).collect();
    let mut figures = vec![
        Figure::new(
            format!("raw PTY limit: `cat` of the {mb} MB file to a plain reader"),
            Samples::new(pty.clone()).median(),
            "MB/s",
            Target::Baseline,
            format!(
                "median of {RUNS}: `cat` in a 200×50 PTY, its master drained by the bench directly ({})",
                spread(&pty, " MB/s")
            ),
        ),
        Figure::new(
            format!("raw unix-socket limit: `cat` of the {mb} MB file into a socket"),
            Samples::new(socket.clone()).median(),
            "MB/s",
            Target::Baseline,
            format!(
                "median of {RUNS}: `cat` writing to one end of a socketpair, the other drained by the bench ({})",
                spread(&socket, " MB/s")
            ),
        ),
        Figure::new(
            format!("copy-only relay limit: the {mb} MB file through two PTYs and a socket"),
            Samples::new(copy.clone()).median(),
            "MB/s",
            Target::Baseline,
            format!(
                "median of {RUNS}: the attach topology with plain copies in the host's and the client's places ({}); as a fraction of the raw PTY limit per run: {}",
                spread(&copy, " MB/s"),
                spread(&copy_of_pty, "")
            ),
        ),
        Figure::new(
            format!("attach relay of `cat` on a {mb} MB file"),
            Samples::new(canopy.clone()).median(),
            "MB/s",
            Target::Info,
            format!(
                "median of {RUNS}: session `sh` runs cat; a `canopy attach` client in a 200×50 PTY is drained until an end marker arrives ({})",
                spread(&canopy, " MB/s")
            ),
        ),
        Figure::new(
            "attach relay as a fraction of the raw PTY limit (worst run)",
            Samples::new(of_pty.clone()).p(0.0),
            "×",
            Target::AtLeast(0.7),
            format!(
                "Canopy MB/s / raw PTY MB/s per run ({})",
                spread(&of_pty, "")
            ),
        ),
        Figure::new(
            "attach relay as a fraction of the copy-only relay limit (worst run)",
            Samples::new(of_copy.clone()).p(0.0),
            "×",
            Target::Info,
            format!(
                "Canopy MB/s / copy-only relay MB/s per run ({})",
                spread(&of_copy, "")
            ),
        ),
    ];
    if !tmux.is_empty() {
        let of_tmux: Vec<f64> = canopy.iter().zip(&tmux).map(|(c, t)| c / t).collect();
        figures.push(Figure::new(
            format!("tmux relay of the same {mb} MB stream"),
            Samples::new(tmux.clone()).median(),
            "MB/s",
            Target::Baseline,
            format!(
                "median of {RUNS}: {} with -f /dev/null; a `tmux attach` client in a PTY, drained the same way ({})",
                tmux_version().unwrap_or_default(),
                spread(&tmux, " MB/s")
            ),
        ));
        figures.push(Figure::new(
            "relay ratio Canopy / tmux (worst run)",
            Samples::new(of_tmux.clone()).p(0.0),
            "×",
            Target::AtLeast(1.5),
            format!(
                "per run, same file, same terminal size (200×50) ({})",
                spread(&of_tmux, "")
            ),
        ));
    }
    figures
}
