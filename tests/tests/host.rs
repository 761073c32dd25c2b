//! The host process: auto-start, graceful stop, crash recovery, the status snapshot.

use std::time::Duration;

use canopy_protocol::StateKind;
use canopy_tests::{TestEnv, wait_for};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn any_command_starts_one_host_and_host_stop_ends_it() {
    let env = TestEnv::new();
    assert!(!env.paths.socket.exists());
    // Several clients at once still start exactly one host.
    let children: Vec<_> = (0..4)
        .map(|_| {
            env.canopy(&["ls"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success());
    }
    let pid = env.host_pid().expect("host running");
    let hosts = std::process::Command::new("pgrep")
        .args([
            "-f",
            &format!("{} host --daemon", canopy_tests::canopy_bin().display()),
        ])
        .output()
        .expect("pgrep");
    let ours: Vec<_> = String::from_utf8_lossy(&hosts.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(ours.contains(&pid.to_string()), "{ours:?}");

    let dir_mode = std::fs::metadata(&env.paths.runtime_dir).expect("stat");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&dir_mode.permissions()) & 0o777,
        0o700
    );

    env.ok(&["new", "a", "--agent", "sh"]);
    assert_eq!(env.ok(&["host", "stop"]).trim(), "host stopped");
    assert!(!env.paths.socket.exists(), "socket removed");
    assert!(!env.paths.snapshot_file().exists(), "snapshot removed");
    // The session record outlives the host; its agent was stopped with it.
    let s = env.session("a");
    assert_eq!(s.state.kind, StateKind::Exited);
    assert!(env.worktree("a").exists());
    assert_eq!(env.ok(&["host", "stop"]).trim(), "host stopped");
    assert_eq!(env.ok(&["host", "stop"]).trim(), "no host is running");
}

#[test]
fn host_stop_takes_a_host_gone_before_its_reply_as_stopped() {
    // A host with nothing to stop can exit before its writer sends the reply (seen once
    // in a full test run: "the host closed the connection"). A stand-in does exactly
    // that: it reads the request and hangs up.
    let env = TestEnv::new();
    let dir = env.paths.socket.parent().expect("socket dir");
    std::fs::create_dir_all(dir).expect("runtime dir");
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("0700");
    let listener = std::os::unix::net::UnixListener::bind(&env.paths.socket).expect("bind");
    let host = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut request = [0u8; 256];
        let n = std::io::Read::read(&mut conn, &mut request).expect("read the request");
        assert!(n > 0, "a shutdown request");
    });
    assert_eq!(env.ok(&["host", "stop"]).trim(), "host stopped");
    host.join().expect("stand-in host");
}

#[test]
fn a_second_foreground_host_is_refused() {
    let env = TestEnv::new();
    env.ok(&["status"]);
    let err = env.fails(&["host"]);
    assert!(err.contains("a Canopy host is already running"), "{err}");
}

#[test]
fn records_survive_kill_9_and_worktrees_are_untouched() {
    let env = TestEnv::new();
    env.ok(&["new", "alive", "--agent", "sh"]);
    env.ok(&["new", "done", "--agent", "sh -c 'exit 7'"]);
    // Ends while no host runs: its keeper keeps the status for the next one.
    env.ok(&["new", "later", "--agent", "sh -c 'sleep 1; exit 3'"]);
    wait_for("done to exit", WAIT, || {
        (!env.session("done").is_running()).then_some(())
    });
    let wt = env.worktree("alive");
    std::fs::write(wt.join("work.txt"), "unsaved\n").expect("write");
    let before = env.session("alive");
    let old = env.host_pid().expect("host");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(old, libc::SIGKILL) };
    // Its listening socket is gone once connecting is refused (a killed process can
    // show as a zombie while its other threads still hold its files).
    wait_for("the host to die", WAIT, || {
        std::os::unix::net::UnixStream::connect(&env.paths.socket)
            .err()
            .filter(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
            .map(|_| ())
    });

    std::thread::sleep(Duration::from_millis(1500));

    // The next command starts a new host, which finds every session; the agent that
    // still runs goes on in it, the one that ended meanwhile has its exit code.
    let sessions = env.sessions();
    assert_ne!(env.host_pid(), Some(old));
    assert_eq!(sessions.len(), 3);
    let alive = sessions.iter().find(|s| s.name == "alive").expect("alive");
    assert!(alive.state.kind.is_live(), "{:?}", alive.state);
    assert_eq!(alive.pid, before.pid);
    let later = wait_for("later's exit from its keeper", WAIT, || {
        let s = env.session("later");
        (!s.is_running()).then_some(s)
    });
    assert_eq!(later.exit_code, Some(3));
    assert_eq!(alive.created_at, before.created_at);
    assert_eq!(alive.worktree, before.worktree);
    let done = sessions.iter().find(|s| s.name == "done").expect("done");
    assert_eq!(done.exit_code, Some(7));
    assert_eq!(
        std::fs::read_to_string(wt.join("work.txt")).expect("kept"),
        "unsaved\n"
    );
    // Unsaved work is still protected after the crash.
    assert!(
        env.fails(&["rm", "alive"])
            .contains("untracked file: work.txt")
    );
}

#[test]
fn the_status_snapshot_follows_every_change() {
    let env = TestEnv::new();
    env.ok(&["new", "snap", "--agent", "sh"]);
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(env.paths.snapshot_file()).expect("snapshot"))
            .expect("json")
    };
    let snap = wait_for("snapshot with the session", WAIT, || {
        let v = read();
        (v["sessions"][0]["name"] == "snap").then_some(v)
    });
    assert_eq!(snap["protocol"], 1);
    let mode = std::fs::metadata(env.paths.snapshot_file()).expect("stat");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    env.ok(&["stop", "snap"]);
    wait_for("snapshot shows the stop", WAIT, || {
        (read()["sessions"][0]["state"]["kind"] == "exited").then_some(())
    });
    // `status --json` is the same document.
    let status: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "--json"])).expect("json");
    assert_eq!(status["sessions"], read()["sessions"]);
    assert_eq!(status["counts"]["exited"], 1);
}

#[test]
fn a_socket_directory_open_to_others_is_refused() {
    let env = TestEnv::new();
    std::fs::create_dir_all(&env.paths.runtime_dir).expect("mkdir");
    std::fs::set_permissions(
        &env.paths.runtime_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let err = env.fails(&["ls"]);
    assert!(
        err.contains("must be a directory owned by you with mode 0700"),
        "{err}"
    );
}

#[test]
fn a_broken_config_is_a_one_line_error() {
    let env = TestEnv::new();
    env.write_config("[attach]\ndetach_key = \"meta-x\"\n");
    // The host will not start on a configuration it cannot read, and says why.
    let err = env.fails(&["new", "c", "--agent", "sh"]);
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.contains("invalid config ") && first.contains("detach_key \"meta-x\""),
        "{err}"
    );
    assert!(!env.worktree("c").exists(), "nothing created");
}

/// `canopy host restart` (how an upgrade takes effect): a new host, the same agents.
#[test]
fn a_restart_keeps_every_agent() {
    let env = TestEnv::new();
    env.ok(&["new", "a", "--agent", "sh"]);
    let before = env.session("a");
    let old = env.host_pid().expect("host");
    let out = env.ok(&["host", "restart"]);
    assert!(out.contains("host restarted"), "{out}");
    assert!(out.contains("1 sessions kept"), "{out}");
    let after = env.session("a");
    assert_ne!(env.host_pid(), Some(old));
    assert!(after.state.kind.is_live(), "{:?}", after.state);
    assert_eq!(after.pid, before.pid);
    // It still takes input and shows output through the new host.
    env.ok(&["send", "a", "echo kept-$((6*7))", "--enter"]);
    wait_for("the echo on screen", WAIT, || {
        env.screen_text("a", 24, 80)
            .contains("kept-42")
            .then_some(())
    });
}
