//! Disk trouble: the state directory full or read-only. The host says so in one line,
//! keeps serving what it can, never tears the registry, and once the disk recovers
//! writes what it kept and loses nothing.
//!
//! Running as root does not stop writes with chmod, so the state directory is a real
//! small tmpfs, mounted in a private mount namespace (nothing leaks to the machine, and
//! it vanishes with the test) that a holder process keeps open; the host runs inside it.
//! Without the privileges for that the tests say so and pass, unless
//! `CANOPY_REQUIRE_PRIVILEGED=1`, which makes them fail.

// Mount namespaces, nsenter and /proc/PID/root: Linux only.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use canopy::store::Store;
use canopy_protocol::{Session, StateKind};
use canopy_tests::{TestEnv, wait_for};

const WAIT: Duration = Duration::from_secs(10);

/// A small tmpfs over `XDG_STATE_HOME`, private to a mount namespace.
struct SmallDisk {
    /// `sleep` in the namespace, holding it (and the tmpfs) alive; killed on drop, and
    /// by the kernel if the test dies first.
    holder: Child,
    /// Where the tmpfs is mounted, as seen inside the namespace.
    mountpoint: PathBuf,
}

impl SmallDisk {
    /// Mount `options` (tmpfs) over `env`'s state home; `None` (after saying why) when
    /// this machine does not allow it.
    fn mount(env: &TestEnv, test: &str, options: &str) -> Option<SmallDisk> {
        let mountpoint = env.dir.path().join("state");
        std::fs::create_dir_all(&mountpoint).expect("mkdir");
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg("mount -t tmpfs -o \"$1\" canopy-small-disk \"$2\" && echo mounted && exec sleep 3600")
            .args(["sh", options])
            .arg(&mountpoint)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; the holder dies with this test's thread.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mounted = cmd.spawn().ok().and_then(|mut holder| {
            let mut line = String::new();
            let stdout = holder.stdout.take()?;
            let _ = BufReader::new(stdout).read_line(&mut line);
            if line.trim() == "mounted" {
                Some(holder)
            } else {
                let _ = holder.kill();
                let _ = holder.wait();
                None
            }
        });
        match mounted {
            Some(holder) => Some(SmallDisk { holder, mountpoint }),
            None => {
                assert!(
                    std::env::var_os("CANOPY_REQUIRE_PRIVILEGED").is_none_or(|v| v != "1"),
                    "{test}: needs `unshare --mount` and `mount -t tmpfs` (root), and CANOPY_REQUIRE_PRIVILEGED=1"
                );
                eprintln!("skipping {test}: cannot mount a private tmpfs here");
                None
            }
        }
    }

    /// `rel` under the mount, reachable from outside the namespace.
    fn path(&self, rel: &str) -> PathBuf {
        let inside = self
            .mountpoint
            .strip_prefix("/")
            .unwrap_or(&self.mountpoint);
        Path::new(&format!("/proc/{}/root", self.holder.id()))
            .join(inside)
            .join(rel)
    }

    /// `cmd` run inside the namespace (so a host it starts sees the small disk).
    fn inside(&self, cmd: &Command) -> Command {
        let mut wrapped = Command::new("nsenter");
        wrapped.args(["-t", &self.holder.id().to_string(), "-m"]);
        // Entering a mount namespace starts at its root; go back where `cmd` runs.
        if let Some(dir) = cmd.get_current_dir() {
            wrapped.arg(format!("--wd={}", dir.display()));
        }
        wrapped
            .arg("--")
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .env_clear();
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                wrapped.env(k, v);
            }
        }
        wrapped
    }

    /// `canopy ARGS` inside the namespace.
    fn canopy(&self, env: &TestEnv, args: &[&str]) -> Output {
        self.inside(&env.canopy(args)).output().expect("run canopy")
    }

    /// Fill every block and every inode.
    fn fill(&self) {
        let dir = self.path("filler");
        std::fs::create_dir(&dir).expect("mkdir filler");
        let mut big = std::fs::File::create(dir.join("blocks")).expect("filler");
        let chunk = vec![0x5a_u8; 64 * 1024];
        while big.write_all(&chunk).is_ok() {}
        for i in 0.. {
            if std::fs::File::create(dir.join(format!("inode-{i}"))).is_err() {
                break;
            }
        }
        assert!(
            std::fs::create_dir(self.path("probe")).is_err(),
            "the disk is full"
        );
    }

    fn free(&self) {
        std::fs::remove_dir_all(self.path("filler")).expect("free the disk");
    }

    /// Remount read-only or read-write (`ro` / `rw`). A stopped host can still be closing
    /// its files for a moment after `host stop` returns ("mount point is busy"), so a
    /// busy mount point is retried for a while.
    fn remount(&self, how: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let out = loop {
            let out = Command::new("nsenter")
                .args(["-t", &self.holder.id().to_string(), "-m", "--"])
                .args(["mount", "-o", &format!("remount,{how}")])
                .arg(&self.mountpoint)
                .output()
                .expect("mount");
            let busy = String::from_utf8_lossy(&out.stderr).contains("busy");
            if out.status.success() || !busy || std::time::Instant::now() > deadline {
                break out;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert!(
            out.status.success(),
            "remount {how}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The sessions in the registry file as it is on disk now. Read from a copy:
    /// SQLite resolves the `/proc/PID/root` link to our own namespace's `/`.
    fn stored(&self) -> Vec<Session> {
        let copy = tempfile::tempdir().expect("tempdir");
        for file in ["registry.sqlite3", "registry.sqlite3-wal"] {
            let from = self.path(&format!("canopy/{file}"));
            if from.exists() {
                std::fs::copy(&from, copy.path().join(file)).expect("copy the registry");
            }
        }
        let (_store, sessions) =
            Store::open(&copy.path().join("registry.sqlite3")).expect("open the registry");
        sessions
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn state_of(sessions: &[Session], name: &str) -> Option<StateKind> {
    sessions
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.state.kind)
}

#[test]
fn a_full_disk_fails_new_cleanly_keeps_serving_and_loses_nothing() {
    let env = TestEnv::new();
    let Some(disk) = SmallDisk::mount(
        &env,
        "a_full_disk_fails_new_cleanly_keeps_serving_and_loses_nothing",
        "size=4m,nr_inodes=400,mode=0700",
    ) else {
        return;
    };
    ok(&disk.canopy(&env, &["new", "a", "--agent", "sh"]), "new a");
    ok(&disk.canopy(&env, &["new", "b", "--agent", "sh"]), "new b");
    wait_for("both records on disk", WAIT, || {
        (disk.stored().len() == 2).then_some(())
    });

    disk.fill();

    // Creating a session fails in one line, leaving nothing behind.
    let out = disk.canopy(&env, &["new", "c", "--agent", "sh"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "new on a full disk: {err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains("No space left on device"),
        "{err}"
    );
    assert!(
        err.lines().count() <= 2,
        "one line and a hint at most: {err}"
    );
    assert!(!env.worktree("c").exists());
    assert_eq!(
        env.git(&env.repo, &["branch", "--list", "canopy/c"]),
        "",
        "no branch left behind"
    );

    // What is running keeps working: ls, status, send, attach.
    let sessions = env.sessions();
    assert_eq!(sessions.len(), 2);
    env.ok(&["status"]);
    env.ok(&["send", "a", "echo still-$((6*7))", "--enter"]);
    wait_for("the agent's answer on an attached screen", WAIT, || {
        env.screen_text("a", 24, 80)
            .contains("still-42")
            .then_some(())
    });
    // A change the registry cannot write yet: the host serves it from memory.
    env.ok(&["stop", "b"]);
    assert_eq!(state_of(&env.sessions(), "b"), Some(StateKind::Exited));
    assert_ne!(
        state_of(&disk.stored(), "b"),
        Some(StateKind::Exited),
        "the disk was full, so the stop cannot be on it yet"
    );

    // The disk recovers: the kept change is written without anything else happening.
    disk.free();
    wait_for("the kept change on disk", Duration::from_secs(30), || {
        (state_of(&disk.stored(), "b") == Some(StateKind::Exited)).then_some(())
    });
    ok(&disk.canopy(&env, &["new", "c", "--agent", "sh"]), "new c");

    // Nothing lost: a new host finds every session as the last one knew it.
    env.ok(&["host", "stop"]);
    let listed: Vec<Session> =
        serde_json::from_str(&ok(&disk.canopy(&env, &["ls", "--json"]), "ls")).expect("json");
    let names: Vec<_> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["a", "b", "c"]);
    let b = listed.iter().find(|s| s.name == "b").expect("b");
    assert_eq!(b.state.kind, StateKind::Exited);
    assert!(
        !b.state
            .detail
            .as_deref()
            .unwrap_or_default()
            .starts_with("the host stopped"),
        "b's own stop was kept, not guessed after the restart: {:?}",
        b.state.detail
    );
    let log = std::fs::read_to_string(disk.path("canopy/host.log")).expect("log");
    assert!(
        log.contains("the session registry is writable again; kept changes written"),
        "{log}"
    );
}

#[test]
fn a_read_only_state_directory_is_a_clear_error_and_nothing_is_lost() {
    let env = TestEnv::new();
    let Some(disk) = SmallDisk::mount(
        &env,
        "a_read_only_state_directory_is_a_clear_error_and_nothing_is_lost",
        "size=4m,mode=0700",
    ) else {
        return;
    };
    ok(&disk.canopy(&env, &["new", "a", "--agent", "sh"]), "new a");
    env.ok(&["host", "stop"]);

    disk.remount("ro");
    let out = disk.canopy(&env, &["ls"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a host on a read-only state dir: {err}"
    );
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains("Read-only file system"),
        "{err}"
    );
    assert!(
        first.contains(&env.dir.path().join("state").display().to_string()),
        "it names the place: {err}"
    );
    assert!(
        err.lines().count() <= 2,
        "one line and a hint at most: {err}"
    );
    assert!(!env.paths.socket.exists(), "no host half-started");

    disk.remount("rw");
    let listed: Vec<Session> =
        serde_json::from_str(&ok(&disk.canopy(&env, &["ls", "--json"]), "ls")).expect("json");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "a");
    assert!(env.worktree("a").exists());
}
