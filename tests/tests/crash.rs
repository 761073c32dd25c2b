//! Crashes: the host killed with SIGKILL in the middle of heavy output, hook traffic and
//! usage reports, and agents killed from outside the host.
//!
//! What must hold: every agent goes on through the host's death (its keeper holds its
//! terminal) and the next host takes it back; every session record and the usage it
//! had persisted come back; worktrees are untouched; when the keepers die too (a
//! reboot), every session resumes in its own worktree; an agent killed by a signal is
//! `exited` saying which signal.

#[cfg(target_os = "linux")]
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
use canopy_protocol::Session;
use canopy_protocol::StateKind;
use canopy_tests::{TestEnv, wait_for};

const WAIT: Duration = Duration::from_secs(20);

// The kill -9 test reads /proc (liveness, an agent's cwd): Linux only, with the
// helpers only it uses.

/// A prompt that keeps a fake Claude busy for about `cycles` × 0.4 s: each cycle is one
/// tool call (PreToolUse and PostToolUse hooks, two API responses) and a reply
/// streamed in five responses (transcript lines and screen output, no hooks).
#[cfg(target_os = "linux")]
fn busy_prompt(cycles: usize) -> String {
    vec!["@tool:Bash:ls @stream:5"; cycles].join(" ")
}

/// Kill the host with SIGKILL and wait until its socket refuses connections.
#[cfg(target_os = "linux")]
fn kill_host(env: &TestEnv) -> i32 {
    let pid = env.host_pid().expect("host running");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // A killed process can linger as a zombie while its other threads still hold its
    // files: the socket refusing connections is the sign it is gone.
    wait_for("the host to die", WAIT, || {
        std::os::unix::net::UnixStream::connect(&env.paths.socket)
            .err()
            .filter(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
            .map(|_| ())
    });
    pid
}

/// The records as they are on disk, read without a host.
#[cfg(target_os = "linux")]
fn persisted(env: &TestEnv) -> Vec<Session> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let (_store, sessions) =
        canopy::store::Store::open(&env.paths.registry_db()).expect("open the registry");
    sessions
}

#[cfg(target_os = "linux")]
fn process_alive(pid: u32) -> bool {
    // Zombies are dead: /proc/PID/stat's state after the command name is `Z`.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[cfg(target_os = "linux")]
fn cwd_of(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/cwd")).expect("agent's cwd")
}

#[cfg(target_os = "linux")]
fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().expect("canonical path")
}

#[cfg(target_os = "linux")]
#[test]
fn kill_9_during_heavy_traffic_loses_nothing_and_every_agent_goes_on() {
    let env = TestEnv::with_fake_agents();
    let busy = ["c1", "c2", "c3"];
    for name in busy {
        env.ok(&[
            "new",
            name,
            "--agent",
            "claude",
            "--prompt",
            &busy_prompt(300),
        ]);
    }
    // Output as fast as the terminal takes it (`echo` is a shell builtin: no forks).
    env.ok(&[
        "new",
        "flood",
        "--agent",
        "sh -c 'i=0; while :; do i=$((i+1)); echo \"flood line $i 0123456789abcdefghijklmnopqrstuvwxyz\"; done'",
    ]);
    // Unsaved work in a worktree must come through untouched.
    let notes = env.worktree("c1").join("notes.txt");
    std::fs::write(&notes, "unsaved\n").expect("write");

    // Hooks have fired (tool calls counted) and usage is flowing in every busy session.
    wait_for("tool calls and usage in every busy session", WAIT, || {
        let sessions = env.sessions();
        busy.iter()
            .all(|name| {
                sessions.iter().any(|s| {
                    s.name == *name && s.usage.tool_calls.total >= 2 && s.usage.tokens.input > 0
                })
            })
            .then_some(())
    });
    let before = env.sessions();
    // Let the store writer catch up with what `ls` showed; traffic goes on meanwhile.
    std::thread::sleep(Duration::from_millis(300));
    let old = kill_host(&env);

    let on_disk = persisted(&env);
    assert_eq!(on_disk.len(), before.len(), "{on_disk:#?}");
    for b in &before {
        let d = on_disk
            .iter()
            .find(|s| s.name == b.name)
            .expect("persisted");
        assert_eq!((&d.worktree, d.created_at), (&b.worktree, b.created_at));
        // Usage only grows: what a client saw before the crash is on disk.
        assert!(
            d.usage.tokens.input >= b.usage.tokens.input,
            "{}: {:?} < {:?}",
            b.name,
            d.usage,
            b.usage
        );
        assert!(
            d.usage.tool_calls.total >= b.usage.tool_calls.total,
            "{}",
            b.name
        );
        assert!(d.usage.cost_usd >= b.usage.cost_usd, "{}", b.name);
    }

    // The next command starts a new host, which takes every agent back from its
    // keeper: the same processes go on, from the records and usage as persisted.
    let after = env.sessions();
    assert_ne!(env.host_pid(), Some(old));
    assert_eq!(after.len(), on_disk.len());
    for a in &after {
        let d = on_disk
            .iter()
            .find(|s| s.name == a.name)
            .expect("persisted");
        assert!(a.state.kind.is_live(), "{}: {:?}", a.name, a.state);
        assert_eq!(a.pid, d.pid, "{}: the same agent goes on", a.name);
        assert!(a.pid.is_some_and(process_alive), "{}", a.name);
        assert!(a.usage.tokens.input >= d.usage.tokens.input, "{}", a.name);
        assert_eq!(a.agent_session_id, d.agent_session_id, "{}", a.name);
    }
    // Their hooks, output and usage reach the new host.
    wait_for("hooks and usage through the new host", WAIT, || {
        let sessions = env.sessions();
        busy.iter()
            .all(|name| {
                let d = on_disk.iter().find(|s| s.name == *name).expect("persisted");
                sessions
                    .iter()
                    .any(|s| s.name == *name && s.usage.tool_calls.total > d.usage.tool_calls.total)
            })
            .then_some(())
    });
    wait_for("the flood on the new host's screen", WAIT, || {
        env.screen_text("flood", 24, 80)
            .contains("flood line")
            .then_some(())
    });

    // A machine that restarts takes the keepers and their agents too: then every
    // record comes back exited, saying why.
    let before_reboot = env.sessions();
    let old = kill_host(&env);
    for keeper in env.keepers() {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(keeper, libc::SIGKILL) };
    }
    for b in &before_reboot {
        let pid = b.pid.expect("pid");
        wait_for(&format!("{} gone with its keeper", b.name), WAIT, || {
            (!process_alive(pid)).then_some(())
        });
    }
    let on_disk = persisted(&env);
    let after = env.sessions();
    assert_ne!(env.host_pid(), Some(old));
    for a in &after {
        let d = on_disk
            .iter()
            .find(|s| s.name == a.name)
            .expect("persisted");
        assert_eq!(a.state.kind, StateKind::Exited, "{}", a.name);
        let detail = a.state.detail.as_deref().unwrap_or("");
        assert!(
            detail.starts_with("the host stopped while the agent ran"),
            "{detail}"
        );
        assert_eq!(a.usage, d.usage, "{}: usage as persisted", a.name);
        assert_eq!(a.agent_session_id, d.agent_session_id, "{}", a.name);
        assert!(Path::new(&a.worktree).is_dir(), "{}: worktree kept", a.name);
    }
    assert_eq!(std::fs::read_to_string(&notes).expect("kept"), "unsaved\n");
    let status = env.git(&env.worktree("c1"), &["status", "--porcelain"]);
    assert!(status.contains("?? notes.txt"), "{status}");

    // Every session resumes, running in its own worktree; Claude's usage carries on
    // from its transcript.
    for a in &after {
        env.ok(&["resume", &a.name]);
    }
    for a in &after {
        let s = wait_for(&format!("{} running again", a.name), WAIT, || {
            let s = env.session(&a.name);
            s.pid.filter(|pid| process_alive(*pid)).map(|_| s)
        });
        let pid = s.pid.expect("pid");
        assert_eq!(
            canonical(&cwd_of(pid)),
            canonical(Path::new(&a.worktree)),
            "{} runs in its worktree",
            a.name
        );
    }
    let c1 = after.iter().find(|s| s.name == "c1").expect("c1");
    wait_for("c1's usage read again from its transcript", WAIT, || {
        let s = env.session("c1");
        (s.usage.tokens.input >= c1.usage.tokens.input
            && s.usage.tool_calls.total >= c1.usage.tool_calls.total)
            .then_some(())
    });
}

/// SIGKILL and SIGTERM from outside the host: the session is `exited`, says by which
/// signal, and `explain` shows it.
#[test]
fn an_agent_killed_from_outside_is_exited_with_its_signal() {
    let env = TestEnv::with_fake_agents();
    for name in ["k9", "term"] {
        env.ok(&["new", name, "--agent", "claude", "--prompt", "hello"]);
    }
    let pids: Vec<(&str, u32, i32)> = [("k9", libc::SIGKILL), ("term", libc::SIGTERM)]
        .into_iter()
        .map(|(name, signal)| {
            let s = wait_for(&format!("{name} idle"), WAIT, || {
                let s = env.session(name);
                (s.state.kind == StateKind::Idle).then_some(s)
            });
            (name, s.pid.expect("pid"), signal)
        })
        .collect();
    let killed_at = Instant::now();
    for (_, pid, signal) in &pids {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(*pid as i32, *signal) };
    }
    for (name, _, signal) in &pids {
        let s = wait_for(&format!("{name} exited"), WAIT, || {
            let s = env.session(name);
            (s.state.kind == StateKind::Exited).then_some(s)
        });
        let (number, abbrev) = match *signal {
            libc::SIGKILL => (9, "SIGKILL"),
            _ => (15, "SIGTERM"),
        };
        let want = format!("killed by signal {number} ({abbrev})");
        assert_eq!(s.state.detail.as_deref(), Some(want.as_str()), "{name}");
        assert_eq!(s.exit_code, None, "{name}: no exit code after a signal");
        assert_eq!(s.pid, None, "{name}");
        let explain = env.ok(&["explain", name]);
        assert!(explain.contains(&want), "{name}: {explain}");
    }
    eprintln!(
        "agents killed from outside seen exited within {:?}",
        killed_at.elapsed()
    );
}

/// Keepers that do not answer (here stopped with SIGSTOP: their sockets still accept)
/// are reached at the same time, so the next host serves after one hello's wait, not
/// one per keeper, and takes back the agents whose keepers do answer.
#[cfg(target_os = "linux")]
#[test]
fn keepers_that_do_not_answer_delay_the_next_host_once() {
    let env = TestEnv::with_fake_agents();
    let names = ["hung1", "hung2", "hung3", "fine"];
    for name in names {
        env.ok(&["new", name, "--agent", "claude", "--prompt", "hello"]);
    }
    for name in names {
        wait_for(&format!("{name} idle"), WAIT, || {
            (env.session(name).state.kind == StateKind::Idle).then_some(())
        });
    }
    let fine_pid = env.session("fine").pid.expect("pid");
    let hung: Vec<i32> = names[..3]
        .iter()
        .map(|name| keeper_of(&env, env.session(name).pid.expect("pid")))
        .collect();
    kill_host(&env);
    for &keeper in &hung {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(keeper, libc::SIGSTOP) };
    }
    let started = Instant::now();
    let fine = env.session("fine");
    let waited = started.elapsed();
    for &keeper in &hung {
        // SAFETY: as above.
        unsafe { libc::kill(keeper, libc::SIGCONT) };
    }
    assert_eq!(fine.pid, Some(fine_pid), "{fine:?}");
    assert_eq!(fine.state.kind, StateKind::Idle, "{fine:?}");
    // One hello's wait is 5 s; three in a row would be 15.
    assert!(
        waited < Duration::from_secs(10),
        "the host served after {waited:?}"
    );
    eprintln!("three silent keepers delayed the next host by {waited:?}");
}

/// The pid of the keeper that started `agent`.
#[cfg(target_os = "linux")]
fn keeper_of(env: &TestEnv, agent: u32) -> i32 {
    let parent: i32 = canopy_tests::proc_stat_field(agent as i32, 1)
        .and_then(|p| p.parse().ok())
        .expect("the agent's parent");
    assert!(env.keepers().contains(&parent), "{agent}'s parent {parent}");
    parent
}
