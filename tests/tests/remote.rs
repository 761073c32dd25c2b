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
use std::time::Duration;

use canopy_protocol::{Session, StateKind};
use canopy_tests::sshd::{Sshd, ssh_child, sshd};
use canopy_tests::{Term, TestEnv, canopy_bin, wait_for};

const WAIT: Duration = Duration::from_secs(20);

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

/// Start `alpha:a2` from the local CLI, a Claude asking to run Bash; wait until the hub
/// shows it asking. Returns what `new` printed.
fn new_asking_on_alpha(h: &Hub) -> String {
    h.local.ok(&["ls"]);
    wait_link(&h.local, "alpha", "live");
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
    wait_session(&h.local, "alpha:a2", |s| {
        s.state.kind == StateKind::WaitingPermission
    });
    out
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
    let out = new_asking_on_alpha(&h);
    assert!(out.starts_with("alpha:a2:"), "{out}");
    assert!(h.alpha.worktree("a2").is_dir());
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

/// A Neovim to drive (the first of `CANOPY_NVIM_BINS`, else `nvim` on PATH), or `None`
/// with a message (a failure under `CANOPY_REQUIRE_NVIM`).
fn nvim_bin(test: &str) -> Option<PathBuf> {
    let listed = std::env::var("CANOPY_NVIM_BINS").ok();
    let first = listed
        .as_deref()
        .and_then(|l| l.split(':').find(|p| !p.is_empty()))
        .map(PathBuf::from);
    let found = first.or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join("nvim"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CANOPY_REQUIRE_NVIM").is_none(),
            "{test}: no nvim, and CANOPY_REQUIRE_NVIM is set"
        );
        eprintln!("skipping {test}: no nvim on PATH");
    }
    found
}

/// Run Lua in `nvim` (a function body) and return its result through JSON.
async fn nvim_lua(
    nvim: &nvim_rs::Neovim<nvim_rs::compat::tokio::Compat<tokio::process::ChildStdin>>,
    body: &str,
) -> serde_json::Value {
    let code = format!(
        "local r = (function() {body} end)(); return vim.fn.json_encode(r == nil and vim.NIL or r)"
    );
    let out = nvim
        .exec_lua(&code, vec![])
        .await
        .unwrap_or_else(|e| panic!("lua failed: {e}\n{body}"));
    serde_json::from_str(out.as_str().unwrap_or("null")).unwrap_or_default()
}

#[test]
fn a_remote_permission_is_approved_from_neovim() {
    const TEST: &str = "a_remote_permission_is_approved_from_neovim";
    let Some(bin) = nvim_bin(TEST) else {
        return;
    };
    let Some(h) = hub(TEST, "") else {
        return;
    };
    h.local.ok(&["new", "l1", "--agent", "sh"]);
    new_asking_on_alpha(&h);
    canopy_tests::runtime().block_on(async {
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.args(["--embed", "--headless", "--clean"])
            .env_clear()
            .current_dir(&h.local.repo)
            .kill_on_drop(true);
        // Exactly the variables `canopy` runs with in the local environment.
        for (k, v) in h.local.canopy(&[]).get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        let handler = nvim_rs::rpc::handler::Dummy::new();
        let (nvim, _io, _child) = nvim_rs::create::tokio::new_child_cmd(&mut cmd, handler)
            .await
            .expect("start nvim");
        let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nvim-plugin");
        nvim_lua(
            &nvim,
            &format!(
                "vim.opt.rtp:prepend({:?}); vim.cmd('runtime plugin/canopy.lua'); \
                 require('canopy').setup({{ cmd = {:?} }}); return true",
                plugin.display().to_string(),
                canopy_bin().display().to_string(),
            ),
        )
        .await;
        nvim.command("Canopy").await.expect(":Canopy");
        // The sidebar shows the remote session under its host, the local one as local.
        let a2 = wait_lua(
            &nvim,
            "alpha:a2 in the sidebar",
            &sidebar_line("a2", "alpha"),
        )
        .await;
        assert!(a2.contains("waiting_permission"), "{a2}");
        let l1 = wait_lua(&nvim, "l1 in the sidebar", &sidebar_line("l1", "local")).await;
        assert!(l1.contains("sh"), "{l1}");

        nvim.command("Canopy approve alpha:a2")
            .await
            .expect(":Canopy approve alpha:a2");
        wait_session(&h.alpha, "a2", |s| s.state.kind == StateKind::Idle);
        wait_lua(
            &nvim,
            "alpha:a2 idle in the sidebar",
            &sidebar_line("a2", "idle"),
        )
        .await;
        let _ = nvim.command("qa!").await;
    });
}

/// Lua that returns the sidebar line of session `name` (shown without its `HOST:`) once
/// it contains `text`.
fn sidebar_line(name: &str, text: &str) -> String {
    format!(
        "local b = require('canopy.sidebar').buf(); if not b then return nil end \
         for _, l in ipairs(vim.api.nvim_buf_get_lines(b, 0, -1, false)) do \
           if l:find(' ' .. {name:?} .. '  ', 1, true) and l:find({text:?}, 1, true) then return l end end"
    )
}

/// Wait until Lua `body` returns a string; return it.
async fn wait_lua(
    nvim: &nvim_rs::Neovim<nvim_rs::compat::tokio::Compat<tokio::process::ChildStdin>>,
    what: &str,
    body: &str,
) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let serde_json::Value::String(s) = nvim_lua(nvim, body).await {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A stopped process, continued when this goes (also when a test fails): it then finds
/// its link closed and exits.
struct Stopped(i32);

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// The pid of the `canopy stdio` that serves a link into `env` (run in its repository).
fn far_stdio(env: &TestEnv) -> Option<i32> {
    let bin = canopy_bin();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let ours = args.first() == Some(&bin.as_os_str().as_encoded_bytes())
            && args.get(1) == Some(&&b"stdio"[..])
            && std::fs::read_link(e.path().join("cwd")).ok()? == env.repo;
        ours.then_some(pid)
    })
}

#[test]
fn a_silent_link_is_caught_by_the_heartbeat() {
    let Some(h) = hub("a_silent_link_is_caught_by_the_heartbeat", "") else {
        return;
    };
    // A quick heartbeat: a silent link is noticed after about 4 × 0.3 s.
    let config = std::fs::read_to_string(&h.local.paths.config_file).expect("config");
    h.local
        .write_config(&config.replace("[hosts.alpha]\n", "[hosts.alpha]\nheartbeat_secs = 0.3\n"));
    h.alpha.ok(&["new", "a1", "--agent", "sh"]);
    h.local.ok(&["ls"]);
    wait_session(&h.local, "alpha:a1", |s| s.stale_since.is_none());
    wait_link(&h.local, "alpha", "live");
    // Reconnecting fails while the far canopy is away, so the stale state stays visible.
    let wrapper = h.sshd.dir.join("alpha.sh");
    let aside = h.sshd.dir.join("alpha.sh.aside");
    std::fs::rename(&wrapper, &aside).expect("move the wrapper aside");
    // The link goes silent without closing: the far `canopy stdio` is stopped, so its
    // pipes (and ssh) stay open and nothing answers. (Stopping the local ssh would not
    // do: a multiplexed ssh hands its stdio to the connection master.)
    let control = h.local.paths.control_path("alpha");
    let ssh = ssh_child(&h.local, &control).expect("the ssh child of alpha's link");
    let far = far_stdio(&h.alpha).expect("alpha's `canopy stdio`");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(far, libc::SIGSTOP) };
    let stopped = Stopped(far);
    let stale = wait_session(&h.local, "alpha:a1", |s| s.stale_since.is_some());
    drop(stopped);
    assert!(stale.stale_since.is_some());
    let hosts = h.local.ok(&["hosts", "--json"]);
    assert!(hosts.contains("no answer for"), "{hosts}");
    // The silent link's ssh was killed and reaped (not left a zombie of the host).
    wait_for("the silent link's ssh reaped", WAIT, || {
        (!Path::new(&format!("/proc/{ssh}")).exists()).then_some(())
    });
    wait_link(&h.local, "beta", "live");

    std::fs::rename(&aside, &wrapper).expect("put the wrapper back");
    wait_link(&h.local, "alpha", "live");
    let back = wait_session(&h.local, "alpha:a1", |s| s.stale_since.is_none());
    assert!(back.is_running());
}
