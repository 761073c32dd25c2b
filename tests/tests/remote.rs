//! Remote hosts over a real OpenSSH server on loopback: each test starts `sshd` on
//! 127.0.0.1 with its own host key and `authorized_keys`, and a client config passed
//! with `-F` (never `~/.ssh`). Two aliases log in to the same machine and run wrapper
//! scripts that point `canopy stdio` at two separate environments, so one machine plays
//! two remote hosts beside the local one.
//!
//! Where sshd cannot run these tests say so and pass, unless `CANOPY_REQUIRE_SSHD=1`
//! (CI), which makes them fail.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use canopy_protocol::{Session, StateKind};
use canopy_tests::{Term, TestEnv, canopy_bin, wait_for};

const WAIT: Duration = Duration::from_secs(20);

/// A running sshd and the client side of it.
struct Sshd {
    child: Child,
    /// The client config for `ssh -F`.
    config: PathBuf,
    dir: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Start sshd in `dir`, or say why not (and fail under `CANOPY_REQUIRE_SSHD=1`).
fn sshd(test: &str, dir: &Path) -> Option<Sshd> {
    match start_sshd(dir) {
        Ok(sshd) => Some(sshd),
        Err(why) => {
            assert!(
                std::env::var_os("CANOPY_REQUIRE_SSHD").is_none_or(|v| v != "1"),
                "{test}: sshd cannot run here ({why}), and CANOPY_REQUIRE_SSHD=1"
            );
            eprintln!("skipping {test}: sshd cannot run here ({why})");
            None
        }
    }
}

fn start_sshd(dir: &Path) -> Result<Sshd, String> {
    let sshd_bin = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or("no sshd (apt install openssh-server)")?;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("sshd's privilege separation needs root".into());
    }
    // Privilege separation's empty directory, which a container may lack.
    std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    for key in ["host_key", "id", "other_id"] {
        let made = run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join(key)));
        if !made {
            return Err("ssh-keygen failed (apt install openssh-client)".into());
        }
    }
    std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let d = dir.display();
    let server = dir.join("sshd_config");
    std::fs::write(
        &server,
        format!(
            "ListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile none\n\
             PrintMotd no\nLogLevel ERROR\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new(sshd_bin)
        .args(["-D", "-e", "-f"])
        .arg(&server)
        .args(["-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start sshd: {e}"))?;
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let config = dir.join("ssh_config");
    let host = |alias: &str, key: &str| {
        format!(
            "Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/{key}\n  \
             IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        )
    };
    let text = host("alpha", "id") + &host("beta", "id") + &host("stranger", "other_id");
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let mut sshd = Sshd {
        child,
        config,
        dir: dir.to_owned(),
    };
    // Up when a login answers.
    for _ in 0..100 {
        let ok = run(Command::new("ssh").arg("-F").arg(&sshd.config).args([
            "-o",
            "BatchMode=yes",
            "alpha",
            "true",
        ]));
        if ok {
            return Ok(sshd);
        }
        if let Ok(Some(status)) = sshd.child.try_wait() {
            return Err(format!("sshd exited: {status}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("no login through sshd within 10s".into())
}

impl Sshd {
    /// A script the far side runs as its `canopy`: a login banner (junk before the
    /// preamble), then `canopy` in `remote`'s environment.
    fn wrapper(&self, name: &str, remote: &TestEnv) -> PathBuf {
        let path = self.dir.join(format!("{name}.sh"));
        let body = format!(
            "#!/bin/sh\necho 'Welcome to {name}! (a banner before the preamble)'\n{}cd '{}'\nexec '{}' \"$@\"\n",
            remote.exports(),
            remote.repo.display(),
            canopy_bin().display()
        );
        std::fs::write(&path, body).expect("write wrapper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// `[hosts.NAME]` reaching ssh alias `alias` and running `canopy` there.
    fn host_config(&self, name: &str, alias: &str, canopy: &Path) -> String {
        format!(
            "[hosts.{name}]\nssh = \"{alias}\"\nssh_args = [\"-F\", \"{}\"]\ncanopy = \"{}\"\ntimeout_secs = 5\n",
            self.config.display(),
            canopy.display()
        )
    }
}

/// The local environment and two remote ones, `alpha` and `beta`, linked over ssh.
struct Hub {
    local: TestEnv,
    alpha: TestEnv,
    beta: TestEnv,
    sshd: Sshd,
}

fn hub(test: &str, extra: &str) -> Option<Hub> {
    let local = TestEnv::with_fake_agents();
    let sshd = sshd(test, &local.dir.path().join("sshd"))?;
    let (alpha, beta) = (TestEnv::with_fake_agents(), TestEnv::with_fake_agents());
    let config = sshd.host_config("alpha", "alpha", &sshd.wrapper("alpha", &alpha))
        + &sshd.host_config("beta", "beta", &sshd.wrapper("beta", &beta))
        + extra;
    local.write_config(&config);
    Some(Hub {
        local,
        alpha,
        beta,
        sshd,
    })
}

fn link_state(env: &TestEnv, host: &str) -> Option<String> {
    let hosts: serde_json::Value = serde_json::from_str(&env.ok(&["hosts", "--json"])).ok()?;
    hosts
        .as_array()?
        .iter()
        .find(|h| h["name"] == host)
        .and_then(|h| h["state"].as_str())
        .map(str::to_owned)
}

fn wait_link(env: &TestEnv, host: &str, state: &str) {
    wait_for(&format!("host {host} {state}"), WAIT, || {
        (link_state(env, host).as_deref() == Some(state)).then_some(())
    });
}

fn find(env: &TestEnv, name: &str) -> Option<Session> {
    env.sessions().into_iter().find(|s| s.name == name)
}

fn wait_session(env: &TestEnv, name: &str, check: impl Fn(&Session) -> bool) -> Session {
    wait_for(&format!("{name} as expected"), WAIT, || {
        find(env, name).filter(|s| check(s))
    })
}

#[test]
fn both_hosts_are_listed_together_and_steered_from_here() {
    let Some(h) = hub("both_hosts_are_listed_together_and_steered_from_here", "") else {
        return;
    };
    h.alpha.ok(&["new", "a1", "--agent", "sh"]);
    h.beta.ok(&["new", "b1", "--agent", "sh"]);
    h.local.ok(&["new", "l1", "--agent", "sh"]);
    wait_link(&h.local, "alpha", "live");
    wait_link(&h.local, "beta", "live");
    let a1 = wait_session(&h.local, "alpha:a1", |_| true);
    assert_eq!(a1.host, "alpha");
    assert_eq!(wait_session(&h.local, "beta:b1", |_| true).host, "beta");
    assert_eq!(find(&h.local, "l1").expect("l1").host, "local");
    let table = h.local.ok(&["ls"]);
    assert!(table.starts_with("HOST"), "{table}");
    assert!(
        table.contains("alpha:a1") && table.contains("beta:b1"),
        "{table}"
    );

    // A new session on alpha, started from here; its events arrive here.
    let alpha_repo = h.alpha.repo.display().to_string();
    let out = h.local.ok(&[
        "new",
        "a2",
        "--host",
        "alpha",
        "--repo",
        &alpha_repo,
        "--agent",
        "claude",
        "--prompt",
        "@ask:Bash:touch-x",
    ]);
    assert!(out.starts_with("alpha:a2:"), "{out}");
    assert!(h.alpha.worktree("a2").is_dir());
    wait_session(&h.local, "alpha:a2", |s| {
        s.state.kind == StateKind::WaitingPermission
    });
    // Its permission, approved from here, is answered there.
    h.local.ok(&["approve", "alpha:a2"]);
    wait_session(&h.alpha, "a2", |s| s.state.kind == StateKind::Idle);
    wait_session(&h.local, "alpha:a2", |s| s.state.kind == StateKind::Idle);

    // Typed text, a capture, an explanation and a stop cross the link too.
    h.local
        .ok(&["send", "alpha:a1", "echo typed-$((40+2))", "--enter"]);
    wait_for("the typed command's output", WAIT, || {
        h.local
            .ok(&["capture", "alpha:a1"])
            .contains("typed-42")
            .then_some(())
    });
    assert!(
        h.local
            .ok(&["explain", "alpha:a1"])
            .starts_with("alpha:a1:")
    );
    let unknown = h.local.fails(&["send", "gamma:x", "hi"]);
    assert!(unknown.contains("no host named \"gamma\""), "{unknown}");

    // Attached through the link: keystrokes there, output here, the same detach key.
    let mut term = Term::spawn(&h.local.canopy(&["attach", "beta:b1"]), 30, 100);
    term.expect("\x1b[?1049h", WAIT);
    term.write(b"echo remote-$((20+3))\r");
    term.expect("remote-23", WAIT);
    term.write(b"stty size\r");
    term.expect("30 100", WAIT);
    term.write(b"\x1c");
    term.expect("[detached from beta:b1]", WAIT);
    assert_eq!(term.wait(WAIT), 0);
    assert!(find(&h.beta, "b1").expect("b1").is_running());

    h.local.ok(&["stop", "beta:b1"]);
    wait_session(&h.local, "beta:b1", |s| !s.is_running());
    let report = h.local.ok(&["report", "--by", "host"]);
    for host in ["alpha", "beta", "local", "total"] {
        assert!(report.contains(host), "{report}");
    }
}

/// The pid of the local host's ssh child for `host`.
fn ssh_child(env: &TestEnv, control: &Path) -> Option<i32> {
    let host = env.host_pid()?;
    let wanted = format!("ControlPath={}", control.display());
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let ppid: i32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let cmdline = std::fs::read_to_string(e.path().join("cmdline")).ok()?;
        (ppid == host && cmdline.contains(&wanted)).then_some(pid)
    })
}

#[test]
fn a_killed_link_goes_stale_refuses_commands_and_comes_back() {
    let Some(h) = hub(
        "a_killed_link_goes_stale_refuses_commands_and_comes_back",
        "",
    ) else {
        return;
    };
    h.alpha.ok(&["new", "a1", "--agent", "sh"]);
    h.local.ok(&["ls"]);
    wait_session(&h.local, "alpha:a1", |_| true);
    // The far side's canopy is gone for a while: reconnecting fails until it is back.
    let wrapper = h.sshd.dir.join("alpha.sh");
    let aside = h.sshd.dir.join("alpha.sh.aside");
    std::fs::rename(&wrapper, &aside).expect("move the wrapper aside");
    let control = h.local.paths.control_path("alpha");
    let pid = ssh_child(&h.local, &control).expect("the ssh child of alpha's link");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let stale = wait_session(&h.local, "alpha:a1", |s| s.stale_since.is_some());
    assert!(stale.stale_since.is_some());
    assert!(h.local.ok(&["ls"]).contains("(stale"), "ls marks it");
    let started = std::time::Instant::now();
    let err = h
        .local
        .fails(&["send", "alpha:a1", "never-replayed", "--enter"]);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "it failed at once"
    );
    assert!(err.contains("host \"alpha\" is"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    // The other host is untouched.
    wait_link(&h.local, "beta", "live");

    std::fs::rename(&aside, &wrapper).expect("put the wrapper back");
    wait_link(&h.local, "alpha", "live");
    let back = wait_session(&h.local, "alpha:a1", |s| s.stale_since.is_none());
    assert!(back.is_running());
    // Nothing typed while it was stale reached the session.
    let screen = h.local.ok(&["capture", "alpha:a1"]);
    assert!(!screen.contains("never-replayed"), "{screen}");
}

#[test]
fn a_restarted_remote_host_is_resynced() {
    let Some(h) = hub("a_restarted_remote_host_is_resynced", "") else {
        return;
    };
    h.beta.ok(&["new", "b1", "--agent", "sh"]);
    h.local.ok(&["ls"]);
    wait_session(&h.local, "beta:b1", |s| s.is_running());
    h.beta.ok(&["host", "stop"]);
    // The link drops with the far host and starts it again (`canopy stdio` does): its
    // sessions come back as it recovered them, and new ones appear.
    wait_session(&h.local, "beta:b1", |s| {
        !s.is_running() && s.stale_since.is_none()
    });
    wait_link(&h.local, "beta", "live");
    h.beta.ok(&["new", "b2", "--agent", "sh"]);
    wait_session(&h.local, "beta:b2", |s| s.is_running());
}

#[test]
fn a_refused_login_and_a_version_mismatch_are_reported() {
    let Some(probe) = hub("a_refused_login_and_a_version_mismatch_are_reported", "") else {
        return;
    };
    let sshd = &probe.sshd;
    // A far side that answers hello with a protocol from the future.
    let hello = canopy_protocol::Message::Response {
        id: 1,
        error: rmpv::Value::Nil,
        result: canopy_protocol::frame::to_value(&canopy_protocol::params::HelloResult {
            protocol: 999,
            host_version: "99.0.0".into(),
            capabilities: Vec::new(),
            pid: 1,
            tasks: None,
            boot_id: None,
        })
        .expect("hello"),
    };
    let answer = sshd.dir.join("future.bin");
    let mut bytes = b"CANOPY1\n".to_vec();
    bytes.extend(hello.encode());
    std::fs::write(&answer, bytes).expect("write");
    let future = sshd.dir.join("future.sh");
    std::fs::write(
        &future,
        format!("#!/bin/sh\ncat '{}'\nexec sleep 60\n", answer.display()),
    )
    .expect("write");
    std::fs::set_permissions(&future, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let extra = sshd.host_config("future", "alpha", &future)
        + &sshd.host_config("locked", "stranger", Path::new("canopy"));
    let config = std::fs::read_to_string(&probe.local.paths.config_file).expect("config");
    probe.local.write_config(&(config + &extra));
    probe.local.ok(&["ls"]);
    wait_link(&probe.local, "future", "version_mismatch");
    wait_link(&probe.local, "locked", "auth_failed");
    let hosts = probe.local.ok(&["hosts"]);
    assert!(hosts.contains("protocol 999"), "{hosts}");
    assert!(hosts.contains("Permission denied"), "{hosts}");
    let err = probe.local.fails(&["send", "future:x", "hi"]);
    assert!(err.contains("version_mismatch"), "{err}");
}

#[test]
fn a_dead_control_path_does_not_hang_the_link() {
    let Some(h) = hub("a_dead_control_path_does_not_hang_the_link", "") else {
        return;
    };
    // A control socket whose "master" accepts and never says a word.
    let control = h.local.paths.control_path("alpha");
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .recursive(true)
        .create(control.parent().expect("dir"))
        .expect("mkdir");
    let listener = std::os::unix::net::UnixListener::bind(&control).expect("bind");
    let held = std::thread::spawn(move || {
        let conns: Vec<_> = listener.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(30));
        drop(conns);
    });
    h.alpha.ok(&["new", "a1", "--agent", "sh"]);
    h.local.ok(&["ls"]);
    // The first attempt times out (5 s), the next makes a fresh master.
    wait_session(&h.local, "alpha:a1", |_| true);
    wait_link(&h.local, "alpha", "live");
    drop(held);
}
