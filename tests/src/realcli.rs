//! The real-CLI tier's shared harness: the pinned agent CLIs (`realcli/install.sh`),
//! the loopback mock model server (`realcli/mock_models.py`), each CLI's offline setup
//! (found by `realcli/probe.py`, see `realcli/FINDINGS.md`), and a subscriber that notes
//! when each state reached it. Used by `tests/realcli.rs` and the `truth` bench group.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use canopy::clock::now_ms;
use canopy_protocol::{Event, Session, StateSource};

use crate::TestEnv;

/// The sessions whose worktrees the CLIs are told they trust (as a user would have
/// answered their folder-trust question before).
pub const TRUSTED: [&str; 5] = ["a", "b", "c", "d", "k"];

/// The Anthropic API key Claude Code is given (and told is approved).
const CLAUDE_KEY: &str = "sk-mock-realcli-0123456789abcdefghijklmnopqrstuv";

pub fn realcli_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("realcli")
}

/// Whether to run the test for `cli`: false (with one line) when the tier is skipped;
/// a missing CLI fails the test.
pub fn should_run(cli: &str) -> bool {
    let bin = realcli_dir().join("bin").join(cli);
    // `CANOPY_REALCLI_ONLY=gemini,opencode`: the others are skipped (a partial bench run).
    if let Some(only) = std::env::var_os("CANOPY_REALCLI_ONLY")
        && !only.to_string_lossy().split(',').any(|c| c.trim() == cli)
    {
        eprintln!("skipping the real {cli} test: not in CANOPY_REALCLI_ONLY");
        return false;
    }
    if std::env::var_os("CANOPY_SKIP_REALCLI").is_some_and(|v| v == "1") {
        eprintln!(
            "skipping the real {cli} test: CANOPY_SKIP_REALCLI=1 ({} {})",
            bin.display(),
            if bin.exists() { "exists" } else { "is missing" }
        );
        return false;
    }
    if !bin.exists() {
        install_once();
    }
    assert!(
        bin.exists(),
        "{} is missing after `bash tests/realcli/install.sh` (or set CANOPY_SKIP_REALCLI=1 to \
         skip this tier)",
        bin.display()
    );
    true
}

/// Run the installer (npm, pinned by the lock file) once for all tests of this binary.
fn install_once() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let status = Command::new("bash")
            .arg(realcli_dir().join("install.sh"))
            .status()
            .expect("run tests/realcli/install.sh");
        assert!(status.success(), "tests/realcli/install.sh failed");
    });
}

/// `mock_models.py` on a free loopback port, killed on drop.
pub struct MockModels {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl MockModels {
    pub fn start(dir: &Path) -> Self {
        let log = dir.join("mock.log");
        let stderr = std::fs::File::create(&log).expect("create mock.log");
        let mut child = Command::new("python3")
            .arg(realcli_dir().join("mock_models.py"))
            .args(["--port", "0", "--log-bodies"])
            .arg(dir.join("mock_bodies.jsonl"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start python3 tests/realcli/mock_models.py (is python3 installed?)");
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().expect("mock stdout")).read_line(&mut line);
        let port = line
            .trim()
            .strip_prefix("PORT=")
            .and_then(|p| p.parse::<u16>().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mock_models.py did not print PORT=<n> ({read:?}, {line:?}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        MockModels {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// The request log (one line per request), for failure reports.
    pub fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for MockModels {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to drive one real CLI.
pub struct Cli {
    pub agent: &'static str,
    /// Arguments Canopy does not add (after `--`).
    pub args: Vec<String>,
    /// What to type (with Enter) to make it exit.
    pub exit: &'static str,
    /// Whether `exit` is sent with Enter.
    pub exit_enter: bool,
    /// How Canopy's approval reaches it, as `explain` words it.
    pub answered: &'static str,
    /// Its shell tool's name.
    pub tool: &'static str,
    /// Keys that approve and refuse its dialog in the terminal (FINDINGS d).
    pub yes: &'static [u8],
    pub no: &'static [u8],
    /// Keystrokes (typed apart) that interrupt it while it works.
    pub interrupt: &'static [&'static [u8]],
}

fn home(env: &TestEnv) -> PathBuf {
    env.dir.path().join("home")
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write config");
}

/// Claude Code: Anthropic API at the mock, onboarding and the worktree's trust dialog
/// pre-accepted in `~/.claude.json`, the API key pre-approved; manual permission mode
/// (it refuses bypassPermissions as root).
pub fn claude(env: &mut TestEnv, url: &str) -> Cli {
    let projects: serde_json::Map<String, serde_json::Value> = TRUSTED
        .iter()
        .map(|name| {
            let trusted = serde_json::json!({
                "hasTrustDialogAccepted": true, "hasCompletedProjectOnboarding": true
            });
            (env.worktree(name).display().to_string(), trusted)
        })
        .collect();
    let key_tail = &CLAUDE_KEY[CLAUDE_KEY.len() - 20..];
    let state = serde_json::json!({
        "hasCompletedOnboarding": true,
        "numStartups": 1,
        "projects": projects,
        "customApiKeyResponses": {"approved": [key_tail], "rejected": []},
    });
    write(&home(env).join(".claude.json"), &state.to_string());
    env.set_var("ANTHROPIC_BASE_URL", url);
    env.set_var("ANTHROPIC_API_KEY", CLAUDE_KEY);
    env.set_var("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
    env.set_var("DISABLE_AUTOUPDATER", "1");
    Cli {
        agent: "claude",
        // Settings allow plain `sleep`: scenario 8's tool needs no permission.
        args: [
            "--permission-mode",
            "manual",
            "--allowedTools",
            "Bash(sleep:*)",
        ]
        .map(String::from)
        .to_vec(),
        exit: "/exit",
        exit_enter: true,
        answered: "through the agent's PermissionRequest hook",
        tool: "Bash",
        yes: b"\r",
        no: b"\x1b",
        interrupt: &[b"\x1b"],
    }
}

/// Codex: a custom Responses provider at the mock in `$CODEX_HOME/config.toml`, the
/// worktree trusted, and the model-upgrade prompt for gpt-5.5 marked as seen (else it
/// covers the first screen); on-request approvals in the workspace-write sandbox.
pub fn codex(env: &mut TestEnv, url: &str) -> Cli {
    let codex_home = home(env).join(".codex");
    let trusted: String = TRUSTED
        .iter()
        .map(|name| {
            let path = toml::Value::String(env.worktree(name).display().to_string());
            format!("[projects.{path}]\ntrust_level = \"trusted\"\n\n")
        })
        .collect();
    let config = format!(
        r#"model = "gpt-5.5"
model_provider = "mock"
approval_policy = "on-request"
sandbox_mode = "workspace-write"
check_for_update_on_startup = false

[model_providers.mock]
name = "Mock"
base_url = "{url}/v1"
wire_api = "responses"
env_key = "MOCK_API_KEY"
# A user's retry settings: a 429 is retried (scenario 10); a 400 never is.
request_max_retries = 2
stream_max_retries = 0

[features]
enable_request_compression = false
# Sub-agents (`spawn_agent`), off by default in 0.169.0, for scenario 11.
multi_agent_v2 = true

{trusted}[notice.model_migrations]
"gpt-5.5" = "gpt-6-sol"
"#
    );
    write(&codex_home.join("config.toml"), &config);
    env.set_var("CODEX_HOME", &codex_home);
    env.set_var("MOCK_API_KEY", "mock");
    Cli {
        agent: "codex",
        args: [
            "--no-alt-screen",
            "-a",
            "on-request",
            "-s",
            "workspace-write",
        ]
        .map(String::from)
        .to_vec(),
        exit: "/quit",
        exit_enter: true,
        answered: "keys typed into the dialog",
        tool: "Bash",
        yes: b"y",
        no: b"\x1b",
        interrupt: &[b"\x1b"],
    }
}

/// Gemini CLI: API-key auth at the mock (`GOOGLE_GEMINI_BASE_URL`), no relaunch, no
/// update checks; default approval mode, folder trust skipped.
pub fn gemini(env: &mut TestEnv, url: &str) -> Cli {
    let settings = serde_json::json!({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "ui": {"theme": "Default"},
        "general": {"disableAutoUpdate": true, "disableUpdateNag": true},
        "privacy": {"usageStatisticsEnabled": false},
    });
    write(
        &home(env).join(".gemini/settings.json"),
        &settings.to_string(),
    );
    // Plain `sleep` allowed by the user's policy (scenario 8): the policy engine's rule
    // format (`~/.gemini/policies/*.toml`); `--allowed-tools` would deny every other
    // shell command instead of asking.
    write(
        &home(env).join(".gemini/policies/canopy-tests.toml"),
        "[[rule]]\ntoolName = \"run_shell_command\"\ncommandPrefix = \"sleep\"\n\
         decision = \"allow\"\npriority = 100\n",
    );
    env.set_var("GEMINI_API_KEY", "mock-key");
    env.set_var("GOOGLE_GEMINI_BASE_URL", url);
    env.set_var("GEMINI_CLI_NO_RELAUNCH", "true");
    Cli {
        agent: "gemini",
        args: ["--approval-mode", "default", "--skip-trust"]
            .map(String::from)
            .to_vec(),
        exit: "/quit",
        exit_enter: true,
        answered: "keys typed into the dialog",
        tool: "run_shell_command",
        yes: b"\r",
        no: b"\x1b",
        interrupt: &[b"\x1b"],
    }
}

/// OpenCode: its Anthropic provider at the mock through `OPENCODE_CONFIG_CONTENT`, bash
/// and edits asking for permission, no model fetch, update or LSP download.
pub fn opencode(env: &mut TestEnv, url: &str) -> Cli {
    let config = serde_json::json!({
        "$schema": "https://opencode.ai/config.json",
        "model": "anthropic/claude-sonnet-4-5",
        "autoupdate": false,
        "share": "disabled",
        "provider": {"anthropic": {"options": {"baseURL": format!("{url}/v1"), "apiKey": "mock-key"}}},
        "permission": {"bash": {"*": "ask", "sleep *": "allow"}, "edit": "ask"},
    });
    env.set_var("OPENCODE_CONFIG_CONTENT", config.to_string());
    env.set_var("OPENCODE_DISABLE_MODELS_FETCH", "1");
    env.set_var("OPENCODE_DISABLE_AUTOUPDATE", "1");
    env.set_var("OPENCODE_DISABLE_LSP_DOWNLOAD", "1");
    Cli {
        agent: "opencode",
        args: Vec::new(),
        exit: "\x03",
        exit_enter: false,
        answered: "over the agent's server",
        tool: "bash",
        yes: b"\r",
        no: b"\x1b",
        // The first Esc arms ("esc again to interrupt"), the second interrupts.
        interrupt: &[b"\x1b", b"\x1b"],
    }
}

/// A subscriber (`canopy watch --json`) that notes when each state reached it.
pub struct Watch {
    pub child: Child,
    /// Session `a`'s states as they arrived: (wall ms at arrival, label, source).
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub at: u64,
    pub session: String,
    pub label: String,
    pub source: StateSource,
}

pub fn label(s: &Session) -> String {
    match &s.state.tool {
        Some(t) => format!("{}({t})", s.state.kind),
        None => s.state.kind.to_string(),
    }
}

impl Watch {
    pub fn start(env: &TestEnv) -> Watch {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let child = Self::subscribe(env, seen.clone());
        Watch { child, seen }
    }

    /// Subscribe again, after the host went away, adding to the same record.
    pub fn reconnect(&mut self, env: &TestEnv) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::subscribe(env, self.seen.clone());
    }

    fn subscribe(env: &TestEnv, sink: Arc<Mutex<Vec<Seen>>>) -> Child {
        let mut child = env
            .canopy(&["watch", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start canopy watch --json");
        let out = child.stdout.take().expect("watch stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let at = now_ms();
                let Ok(event) = serde_json::from_str::<Event>(&line) else {
                    continue;
                };
                let Some(s) = event.session else { continue };
                let mut seen = sink.lock().expect("watch lock");
                let label = label(&s);
                // Usage updates repeat the state: only a change of state counts.
                let last = seen.iter().rev().find(|x: &&Seen| x.session == s.name);
                if last.is_none_or(|x| x.label != label) {
                    seen.push(Seen {
                        at,
                        session: s.name.clone(),
                        label,
                        source: s.state.source,
                    });
                }
            }
        });
        child
    }

    pub fn mark(&self) -> usize {
        self.seen.lock().expect("watch lock").len()
    }

    /// Session `name`'s states since `mark`.
    pub fn since(&self, mark: usize, name: &str) -> Vec<Seen> {
        self.seen.lock().expect("watch lock")[mark..]
            .iter()
            .filter(|s| s.session == name)
            .cloned()
            .collect()
    }

    /// Session `name`'s latest state label.
    pub fn now(&self, name: &str) -> Option<String> {
        let seen = self.seen.lock().expect("watch lock");
        seen.iter()
            .rev()
            .find(|s| s.session == name)
            .map(|s| s.label.clone())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CLI's offline setup: configures the environment for the mock at `url`.
pub type Setup = fn(&mut TestEnv, &str) -> Cli;

/// Every CLI of the tier, with its setup.
pub const CLIS: [(&str, Setup); 4] = [
    ("claude", claude),
    ("codex", codex),
    ("gemini", gemini),
    ("opencode", opencode),
];

/// What a soak run found.
#[derive(Debug, Default)]
pub struct Soak {
    /// Rounds run (one prompt → long tool → permission → approve → idle each).
    pub rounds: usize,
    /// Rounds that did not end `idle`.
    pub wrong_final: usize,
    /// States seen that the round's expected sequence does not have.
    pub spurious: usize,
    /// From `approve` to `tool(NAME)` at the subscriber, ms.
    pub approve_lag: Vec<f64>,
    /// What the first rounds that went wrong looked like: the states seen, and the
    /// session's `canopy explain` and screen right after.
    pub examples: Vec<String>,
}

/// The core scenario `rounds` times in each of `sessions` sessions of one real CLI at
/// once: every round must show exactly `thinking → tool → waiting_permission → tool →
/// thinking → idle`.
pub fn soak(agent: &str, setup: Setup, sessions: usize, rounds: usize, tool_secs: u64) -> Soak {
    use std::time::{Duration, Instant};
    let mut env = TestEnv::new();
    let mock = MockModels::start(env.dir.path());
    env.prepend_path(&realcli_dir().join("bin"));
    let cli = setup(&mut env, &mock.url);
    env.ok(&["status"]);
    let watch = Watch::start(&env);
    let names = &TRUSTED[..sessions.min(4)];
    let wait = |name: &str, label: &str, timeout: Duration| -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let now = watch.now(name).unwrap_or_default();
            if now == label || now.starts_with(&format!("{label}(")) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    };
    for name in names {
        let mut new = vec!["new", name, "--agent", agent];
        if !cli.args.is_empty() {
            new.push("--");
            new.extend(cli.args.iter().map(String::as_str));
        }
        env.ok(&new);
    }
    let text = |args: &[&str]| String::from_utf8_lossy(&env.run(args).stdout).into_owned();
    for name in names {
        assert!(
            wait(name, "idle", Duration::from_secs(90)),
            "{agent}: {name} did not come up\n--- canopy explain\n{}\n--- screen\n{}",
            text(&["explain", name]),
            non_blank(&text(&["capture", name, "-n", "40"]))
        );
        if agent == "opencode" {
            // Its states come from its event stream: be sure that is connected.
            let deadline = Instant::now() + Duration::from_secs(90);
            while !env.ok(&["explain", name]).contains("hooks are arriving")
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let tool = format!("tool({})", cli.tool);
    let expected = [
        "thinking".to_owned(),
        tool.clone(),
        format!("waiting_permission({})", cli.tool),
        tool.clone(),
        "thinking".to_owned(),
        "idle".to_owned(),
    ];
    let out = Mutex::new(Soak::default());
    std::thread::scope(|scope| {
        for name in names {
            let (env, watch, out, expected, tool) = (&env, &watch, &out, &expected, &tool);
            let (wait, text) = (&wait, &text);
            scope.spawn(move || {
                for round in 0..rounds {
                    let mark = watch.mark();
                    env.ok(&[
                        "send",
                        name,
                        &format!("please RUN_TOOL touch r{round} && sleep {tool_secs}"),
                        "--enter",
                    ]);
                    let mut lag = None;
                    let asked = wait(name, "waiting_permission", Duration::from_secs(60));
                    if asked {
                        // Answered only once the dialog is drawn, as a user would.
                        let deadline = Instant::now() + Duration::from_secs(30);
                        while !env
                            .ok(&["explain", name])
                            .contains("permission dialog on screen")
                            && Instant::now() < deadline
                        {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        let at = now_ms();
                        env.ok(&["approve", name]);
                        if wait(name, "tool", Duration::from_secs(10)) {
                            lag = watch
                                .since(mark, name)
                                .iter()
                                .rev()
                                .find(|s| &s.label == tool && s.at >= at)
                                .map(|s| (s.at - at) as f64);
                        }
                    }
                    let ended = wait(name, "idle", Duration::from_secs(60));
                    // A flip after the end would show within this.
                    std::thread::sleep(Duration::from_millis(500));
                    let seen: Vec<String> = watch
                        .since(mark, name)
                        .into_iter()
                        .map(|s| s.label)
                        .collect();
                    let extra = seen.len().saturating_sub(common(&seen, expected));
                    let wrong = !ended || seen.last().map(String::as_str) != Some("idle");
                    // Taken before the lock: the other sessions go on meanwhile.
                    let evidence = (wrong || extra > 0).then(|| {
                        let explain = text(&["explain", name]);
                        let screen = text(&["capture", name, "-n", "40"]);
                        format!(
                            "{agent} {name} round {round}: seen {seen:?} (asked: {asked})\n\
                             --- canopy explain\n{}\n--- screen\n{}",
                            explain.trim_end(),
                            non_blank(&screen)
                        )
                    });
                    let mut o = out.lock().expect("soak lock");
                    o.rounds += 1;
                    o.approve_lag.extend(lag);
                    o.spurious += extra;
                    o.wrong_final += usize::from(wrong);
                    if let Some(e) = evidence
                        && o.examples.len() < 5
                    {
                        o.examples.push(e);
                    }
                }
            });
        }
    });
    drop(mock);
    out.into_inner().expect("soak lock")
}

/// A screen's lines that are not blank.
fn non_blank(screen: &str) -> String {
    let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.join("\n")
}

/// The length of the longest common subsequence of two state sequences.
fn common(a: &[String], b: &[String]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut prev = 0;
        for (j, y) in b.iter().enumerate() {
            let keep = row[j + 1];
            row[j + 1] = if x == y {
                prev + 1
            } else {
                row[j + 1].max(row[j])
            };
            prev = keep;
        }
    }
    row[b.len()]
}
