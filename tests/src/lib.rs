//! Shared harness for Canopy's end-to-end tests.
//!
//! Every test gets a [`TestEnv`]: a temporary HOME, XDG directories and socket, a real
//! git repository with one commit, and the real `canopy` binary run with a cleared
//! environment. Dropping the environment stops its host.
//!
//! # Layout
//! - [`TestEnv`]: the hermetic environment and the `canopy` command in it.
//! - [`Term`]: a real PTY running a command (for `canopy attach`), with screen reads.
//! - [`dbus`]: a private session bus and a desktop notification server on it.
//! - [`sshd`]: a real OpenSSH server on loopback, for remote hosts.
//! - [`load`]: the hundred-session load scenario (`tests/load.rs` and the bench).
//! - [`wait_for`]: wait for a condition driven by real events, with a deadline.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use canopy::client::Client;
use canopy::paths::Paths;
use canopy_protocol::Session;

pub mod dbus;
pub mod http_mock;
pub mod load;
pub mod realcli;
pub mod sshd;
mod term;
pub use term::{RawTerm, Term};

/// Start `cmd` with `input` on its stdin, then close it, as an agent feeds a hook its
/// payload. A program that stops reading early (a broken pipe) is not an error here:
/// its exit status says what happened.
pub fn spawn_with_stdin(cmd: &mut Command, input: &[u8]) -> std::process::Child {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut stdin) = child.stdin.take()
        && let Err(e) = stdin.write_all(input)
    {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing stdin: {e}"
        );
    }
    child
}

/// A two-worker runtime for tests that drive async clients (Neovim, RPC) from a plain
/// `#[test]`.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The `canopy` binary under test: `$CANOPY_BIN`, else the one cargo built beside this
/// test executable.
pub fn canopy_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CANOPY_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/canopy
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("canopy"))
        .expect("target directory");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (which builds it) or set CANOPY_BIN",
        bin.display()
    );
    bin
}

/// Where test environments live: `$CANOPY_TEST_TMPDIR`, else `~/.cache/canopy-tests`
/// (private). Not the system temp directory: agents (Gemini) ignore configuration under
/// a directory others can write, and /tmp is one. Not inside this checkout either: the
/// tests need directories that are in no git repository.
fn test_tmp() -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::var_os("CANOPY_TEST_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/root".into());
            home.join(".cache/canopy-tests")
        });
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .expect("test tmp dir");
    dir
}

/// A hermetic Canopy environment.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    /// A git repository with one commit on `main`.
    pub repo: PathBuf,
    pub paths: Paths,
    vars: Vec<(String, OsString)>,
    /// When each [`TestEnv::seq`] was read (Unix ms), so a history can leave out the
    /// state a session was already in then.
    seq_times: std::sync::Mutex<std::collections::HashMap<u64, u64>>,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("canopy-test-")
            .tempdir_in(test_tmp())
            .expect("tempdir");
        let root = dir.path().to_path_buf();
        let home = root.join("home");
        let runtime = root.join("run");
        for d in [&home, &runtime] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod");
        let vars: Vec<(String, OsString)> = vec![
            ("HOME".into(), home.clone().into()),
            ("XDG_RUNTIME_DIR".into(), runtime.into()),
            ("XDG_STATE_HOME".into(), root.join("state").into()),
            ("XDG_CONFIG_HOME".into(), root.join("config").into()),
            ("TMPDIR".into(), root.clone().into()),
            (
                "PATH".into(),
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            ),
            ("SHELL".into(), "/bin/sh".into()),
            ("TERM".into(), "xterm-256color".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("CANOPY_LOG".into(), "debug".into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ];
        let paths = Paths::from_lookup(|k| {
            vars.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        });
        let repo = root.join("proj");
        init_repo(&repo);
        TestEnv {
            dir,
            repo,
            paths,
            vars,
            seq_times: Default::default(),
        }
    }

    /// Set (or replace) a variable of this environment (before the host starts).
    pub fn set_var(&mut self, key: &str, value: impl Into<OsString>) {
        let value = value.into();
        match self.vars.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.vars.push((key.to_owned(), value)),
        }
        let vars = self.vars.clone();
        self.paths = Paths::from_lookup(|k| {
            vars.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        });
    }

    /// Put `dir` first on the PATH the host and its agents see (before the host starts).
    pub fn prepend_path(&mut self, dir: &Path) {
        if let Some((_, path)) = self.vars.iter_mut().find(|(k, _)| k == "PATH") {
            let mut joined = OsString::from(dir);
            joined.push(":");
            joined.push(&*path);
            *path = joined;
        }
    }

    /// An environment whose PATH has `claude`, `codex`, `gemini` and `opencode` as the
    /// fake agent (`src/bin/fake-agent`), which runs as whichever name it is called by.
    pub fn with_fake_agents() -> TestEnv {
        let mut env = TestEnv::new();
        let dir = env.dir.path().join("fake-bin");
        std::fs::create_dir_all(&dir).expect("mkdir");
        // `$CANOPY_FAKE_AGENT` for the bench, whose `canopy` is built apart.
        let fake = std::env::var_os("CANOPY_FAKE_AGENT")
            .map_or_else(|| canopy_bin().with_file_name("fake-agent"), PathBuf::from);
        assert!(
            fake.exists(),
            "{} is missing: build with `cargo test --workspace`",
            fake.display()
        );
        for name in ["claude", "codex", "gemini", "opencode"] {
            std::os::unix::fs::symlink(&fake, dir.join(name)).expect("symlink");
        }
        env.prepend_path(&dir);
        env
    }

    /// A directory of stand-in agent programs: each name is a shell script running
    /// `body`. Put it on the PATH with [`TestEnv::prepend_path`].
    pub fn stub_agents(&self, names: &[&str], body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.dir.path().join("stub-bin");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for name in names {
            let path = dir.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write stub");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        dir
    }

    /// Environment variables as an agent of session `name` would have them, for running
    /// `canopy hook` by hand.
    pub fn hook_command(&self, session: &str, agent: &str) -> Command {
        let mut cmd = self.canopy(&["hook", "--agent", agent]);
        cmd.env("CANOPY_SESSION", session)
            .env("CANOPY_SOCKET", &self.paths.socket);
        cmd
    }

    /// This environment's variables as `export K='V'` lines, for a script that runs
    /// `canopy` in it from elsewhere (a remote login in the ssh tests).
    pub fn exports(&self) -> String {
        self.vars
            .iter()
            .map(|(k, v)| {
                let v = v.to_string_lossy().replace('\'', "'\\''");
                format!("export {k}='{v}'\n")
            })
            .collect()
    }

    /// Write the user's config file.
    pub fn write_config(&self, toml: &str) {
        let path = &self.paths.config_file;
        std::fs::create_dir_all(path.parent().expect("config dir")).expect("mkdir");
        std::fs::write(path, toml).expect("write config");
    }

    /// `canopy ARGS` in the repository, with only this environment's variables.
    pub fn canopy(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(canopy_bin());
        cmd.env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .args(args)
            .current_dir(&self.repo);
        cmd
    }

    /// Run `canopy ARGS` and return its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.canopy(args).output().expect("run canopy")
    }

    /// Run `canopy ARGS`, insist on success, and return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "canopy {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `canopy ARGS`, insist on failure, and return stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "canopy {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Every session, through `canopy ls --json`.
    pub fn sessions(&self) -> Vec<Session> {
        serde_json::from_str(&self.ok(&["ls", "--json"])).expect("ls --json parses")
    }

    /// The seq of the host's last event (`canopy status --json`).
    pub fn seq(&self) -> u64 {
        let at = canopy::clock::now_ms();
        let st: serde_json::Value =
            serde_json::from_str(&self.ok(&["status", "--json"])).expect("json");
        let seq = st["seq"].as_u64().expect("seq");
        self.seq_times
            .lock()
            .expect("seq times")
            .entry(seq)
            .or_insert(at);
        seq
    }

    /// Every state session `name` entered after event `since`, from the event log
    /// (`tool(NAME)` for tool states). Events that change something else (usage) repeat
    /// the state: only a new `state.since` counts, and, when `since` came from
    /// [`TestEnv::seq`], only states entered after it was read.
    pub fn state_history(&self, name: &str, since: u64) -> Vec<String> {
        let out = self.ok(&[
            "watch",
            "--json",
            "--once",
            "--since",
            &since.to_string(),
            "--timeout",
            "0.5",
        ]);
        let after = self
            .seq_times
            .lock()
            .expect("seq times")
            .get(&since)
            .copied()
            .unwrap_or(0);
        let mut kinds: Vec<String> = Vec::new();
        let mut last: Option<(u64, String)> = None;
        for line in out.lines() {
            let e: canopy_protocol::Event = serde_json::from_str(line).expect("event json");
            let Some(s) = e.session.filter(|s| s.name == name) else {
                continue;
            };
            let label = match &s.state.tool {
                Some(t) => format!("{}({t})", s.state.kind),
                None => s.state.kind.to_string(),
            };
            let this = (s.state.since, label.clone());
            if s.state.since < after || last.as_ref() == Some(&this) {
                continue;
            }
            if kinds.last() != Some(&label) {
                kinds.push(label);
            }
            last = Some(this);
        }
        kinds
    }

    pub fn session(&self, name: &str) -> Session {
        self.sessions()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no session {name}"))
    }

    /// A protocol client on this environment's socket (the host must be running).
    pub async fn client(&self) -> Client {
        Client::connect(&self.paths.socket)
            .await
            .expect("connect to host")
    }

    /// The running host's pid, from the status snapshot. The host writes it just after
    /// it answers its first request, and a killed host leaves its own behind: this waits
    /// (10 s at most) for one that names a live process.
    pub fn host_pid(&self) -> Option<i32> {
        poll_for(Duration::from_secs(10), || self.snapshot_pid())
    }

    /// The pid the status snapshot names, if that process runs.
    fn snapshot_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.paths.snapshot_file()).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let pid = i32::try_from(v["host"]["pid"].as_i64()?).ok()?;
        alive(pid).then_some(pid)
    }

    /// The keepers (`canopy keep`) this environment's hosts started, which outlive a
    /// host: processes whose environment names this environment's runtime directory.
    #[cfg(target_os = "linux")]
    pub fn keepers(&self) -> Vec<i32> {
        let runtime = self
            .vars
            .iter()
            .find(|(k, _)| k.as_str() == "XDG_RUNTIME_DIR")
            .map(|(k, v)| format!("{k}={}", Path::new(v).display()));
        let Some(runtime) = runtime else {
            return Vec::new();
        };
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .filter_map(|p| p.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let read = |f: &str| std::fs::read(format!("/proc/{pid}/{f}")).unwrap_or_default();
                let cmdline = read("cmdline");
                let keep = cmdline.split(|b| *b == 0).nth(1) == Some(b"keep".as_slice());
                keep && read("environ")
                    .split(|b| *b == 0)
                    .any(|v| v == runtime.as_bytes())
            })
            .collect()
    }

    /// The prompts the fake Claude of this environment was given, in each transcript's
    /// order (the user messages of its transcripts).
    pub fn claude_prompts(&self) -> Vec<String> {
        let projects = self.dir.path().join("home/.claude/projects");
        let files = std::fs::read_dir(projects)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|project| {
                std::fs::read_dir(project.path())
                    .into_iter()
                    .flatten()
                    .flatten()
            });
        let mut prompts = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(file.path()).unwrap_or_default();
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                if v["type"] == "user"
                    && let Some(p) = v["message"]["content"].as_str()
                {
                    prompts.push(p.to_owned());
                }
            }
        }
        prompts
    }

    /// A path in the repository's worktree directory for session `name`.
    pub fn worktree(&self, name: &str) -> PathBuf {
        self.repo.with_file_name("proj.worktrees").join(name)
    }

    /// Run git in `dir`, hermetically.
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .args([
                "-c",
                "user.name=Test",
                "-c",
                "user.email=test@example.invalid",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.paths.socket.exists() {
            let _ = self.canopy(&["host", "stop"]).output();
        }
        if let Some(pid) = self.snapshot_pid() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // Agents a killed host left to their keepers: a keeper's end closes the
        // terminal, which hangs its agent up.
        #[cfg(target_os = "linux")]
        for pid in self.keepers() {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn init_repo(dir: &Path) {
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let repo = git2::Repository::init_opts(dir, &opts).expect("git init");
    std::fs::write(dir.join("README.md"), "# proj\n").expect("write");
    let mut index = repo.index().expect("index");
    index.add_path(Path::new("README.md")).expect("add");
    index.write().expect("write index");
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let sig = git2::Signature::new(
        "Test",
        "test@example.invalid",
        &git2::Time::new(1_700_000_000, 0),
    )
    .expect("signature");
    repo.commit(Some("HEAD"), &sig, &sig, "first", &tree, &[])
        .expect("commit");
}

/// Whether process `pid` runs (a zombie, gone but for its exit status, does not).
fn alive(pid: i32) -> bool {
    #[cfg(target_os = "linux")]
    {
        proc_stat_field(pid, 0).is_some_and(|state| state != "Z")
    }
    #[cfg(not(target_os = "linux"))]
    {
        // SAFETY: kill with signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }
}

/// Field `n` of /proc/PID/stat, counted after the command name (0: the state, 1: the
/// parent's pid). `None` where there is no /proc.
pub fn proc_stat_field(pid: i32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(n)?
            .to_owned(),
    )
}

/// Re-check `check` every 20 ms until it returns `Some`, or `None` after `timeout`.
pub fn poll_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until `check` returns `Some` ([`poll_for`]); panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
    poll_for(timeout, check).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

impl TestEnv {
    /// The visible screen of session `name` as text, for diagnostics: a protocol client
    /// attaches at rows×cols (which resizes the session to that size), reads the
    /// repaint, and disconnects. Never panics: a failure is described in the text.
    pub fn screen_text(&self, name: &str, rows: u16, cols: u16) -> String {
        use canopy_protocol::method;
        use canopy_protocol::params::{AttachParams, AttachResult};
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return format!("(no screen: {e})"),
        };
        runtime.block_on(async {
            let mut client = match Client::connect(&self.paths.socket).await {
                Ok(c) => c,
                Err(e) => return format!("(no screen: {e})"),
            };
            let params = AttachParams {
                name: name.to_owned(),
                rows,
                cols,
            };
            match client
                .call::<_, AttachResult>(method::ATTACH, &params)
                .await
            {
                Ok(attached) => {
                    let mut screen = canopy::session::screen::Screen::new(rows, cols, 0);
                    screen.process(&attached.screen);
                    screen.text()
                }
                Err(e) => format!("(no screen: {e})"),
            }
        })
    }
}
