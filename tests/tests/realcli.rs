//! The real-CLI tier: the same scenario as `agents.rs`, but the real `canopy` binary
//! launches the REAL agent CLIs (Claude Code, Codex, Gemini CLI, OpenCode, installed by
//! `tests/realcli/install.sh` into `tests/realcli/bin`), which talk to the loopback mock
//! model server `tests/realcli/mock_models.py` instead of the internet.
//!
//! Each test: prompt → thinking → tool → waiting_permission → `canopy approve` → tool
//! done → idle; then `canopy send … "API_ERROR now" --enter` → error; then the CLI's own
//! exit command → exited. The state history from the event log must be exactly the
//! expected sequence for that CLI.
//!
//! The per-CLI setup (environment, pre-seeded config files in the temporary HOME, flags)
//! is the one `tests/realcli/probe.py` found to work offline; see
//! `tests/realcli/FINDINGS.md`.
//!
//! Missing CLIs are installed first (`tests/realcli/install.sh`, npm, pinned versions);
//! `CANOPY_SKIP_REALCLI=1` skips this tier with one line per test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use canopy_protocol::{Session, StateKind};
use canopy_tests::TestEnv;

/// From `canopy new` to the permission request (OpenCode's server alone takes ~10 s to
/// come up on a loaded machine).
const START: Duration = Duration::from_secs(90);
/// Any other step of the scenario.
const STEP: Duration = Duration::from_secs(60);

/// The first prompt: the mock model answers it with one shell tool call.
const PROMPT: &str = "please RUN_TOOL touch probe.txt";
/// Makes the mock model answer HTTP 400 "mock bad request".
const API_ERROR: &str = "API_ERROR now";
/// The Anthropic API key Claude Code is given (and told is approved).
const CLAUDE_KEY: &str = "sk-mock-realcli-0123456789abcdefghijklmnopqrstuv";

fn realcli_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("realcli")
}

/// Whether to run the test for `cli`: false (with one line) when the tier is skipped;
/// a missing CLI fails the test.
fn should_run(cli: &str) -> bool {
    let bin = realcli_dir().join("bin").join(cli);
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
struct MockModels {
    child: Child,
    url: String,
    log: PathBuf,
}

impl MockModels {
    fn start(dir: &Path) -> Self {
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
    fn requests(&self) -> String {
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
struct Cli {
    agent: &'static str,
    /// Arguments Canopy does not add (after `--`).
    args: Vec<String>,
    /// What to type (with Enter) to make it exit.
    exit: &'static str,
    /// Whether `exit` is sent with Enter.
    exit_enter: bool,
    /// How Canopy's approval reaches it, as `explain` words it.
    answered: &'static str,
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
fn claude(env: &mut TestEnv, url: &str) -> Cli {
    let worktree = env.worktree("a").display().to_string();
    let key_tail = &CLAUDE_KEY[CLAUDE_KEY.len() - 20..];
    let state = serde_json::json!({
        "hasCompletedOnboarding": true,
        "numStartups": 1,
        "projects": {
            worktree: {"hasTrustDialogAccepted": true, "hasCompletedProjectOnboarding": true}
        },
        "customApiKeyResponses": {"approved": [key_tail], "rejected": []},
    });
    write(&home(env).join(".claude.json"), &state.to_string());
    env.set_var("ANTHROPIC_BASE_URL", url);
    env.set_var("ANTHROPIC_API_KEY", CLAUDE_KEY);
    env.set_var("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
    env.set_var("DISABLE_AUTOUPDATER", "1");
    Cli {
        agent: "claude",
        args: vec!["--permission-mode".into(), "manual".into()],
        exit: "/exit",
        exit_enter: true,
        answered: "through the agent's PermissionRequest hook",
    }
}

/// Codex: a custom Responses provider at the mock in `$CODEX_HOME/config.toml`, the
/// worktree trusted, and the model-upgrade prompt for gpt-5.5 marked as seen (else it
/// covers the first screen); on-request approvals in the workspace-write sandbox.
fn codex(env: &mut TestEnv, url: &str) -> Cli {
    let codex_home = home(env).join(".codex");
    let worktree = toml::Value::String(env.worktree("a").display().to_string());
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
request_max_retries = 0
stream_max_retries = 0

[features]
enable_request_compression = false

[projects.{worktree}]
trust_level = "trusted"

[notice.model_migrations]
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
    }
}

/// Gemini CLI: API-key auth at the mock (`GOOGLE_GEMINI_BASE_URL`), no relaunch, no
/// update checks; default approval mode, folder trust skipped.
fn gemini(env: &mut TestEnv, url: &str) -> Cli {
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
    }
}

/// OpenCode: its Anthropic provider at the mock through `OPENCODE_CONFIG_CONTENT`, bash
/// and edits asking for permission, no model fetch, update or LSP download.
fn opencode(env: &mut TestEnv, url: &str) -> Cli {
    let config = serde_json::json!({
        "$schema": "https://opencode.ai/config.json",
        "model": "anthropic/claude-sonnet-4-5",
        "autoupdate": false,
        "share": "disabled",
        "provider": {"anthropic": {"options": {"baseURL": format!("{url}/v1"), "apiKey": "mock-key"}}},
        "permission": {"bash": "ask", "edit": "ask"},
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
    }
}

/// A running scenario: the environment, the mock, and what to show when a step fails.
struct Run {
    env: TestEnv,
    mock: MockModels,
    started: Instant,
}

impl Run {
    fn session(&self) -> Session {
        self.env.session("a")
    }

    /// `canopy explain a`, the screen and the mock's requests.
    fn diagnostics(&self) -> String {
        let explain = self.env.run(&["explain", "a"]);
        format!(
            "after {:.1}s\n--- canopy explain a:\n{}{}\n--- screen:\n{}\n--- mock requests:\n{}",
            self.started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&explain.stdout),
            String::from_utf8_lossy(&explain.stderr),
            self.env.screen_text("a", 24, 80),
            self.mock.requests()
        )
    }

    /// Wait until `check` holds for session a, re-reading `canopy ls --json`.
    fn wait(&self, what: &str, timeout: Duration, check: impl Fn(&Session) -> bool) -> Session {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.session();
            if check(&s) {
                return s;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what} (state {:?})\n{}",
                    s.state,
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_state(&self, kind: StateKind, timeout: Duration) -> Session {
        self.wait(&format!("a to be {kind}"), timeout, |s| {
            s.state.kind == kind
        })
    }

    /// Wait until `canopy explain a` mentions `needle`.
    fn wait_explained(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.env.ok(&["explain", "a"]).contains(needle) {
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {needle:?} in canopy explain\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The issue's scenario against the real CLI; `expected` is the exact state history.
fn scenario(agent: &str, setup: fn(&mut TestEnv, &str) -> Cli, expected: &[&str]) {
    if !should_run(agent) {
        return;
    }
    let started = Instant::now();
    let mut env = TestEnv::new();
    let mock = MockModels::start(env.dir.path());
    env.prepend_path(&realcli_dir().join("bin"));
    let cli = setup(&mut env, &mock.url);
    assert_eq!(cli.agent, agent);
    let run = Run { env, mock, started };
    let env = &run.env;
    let seq0 = env.seq();

    // 1. The first prompt asks for a shell command that needs permission.
    let mut new = vec!["new", "a", "--agent", agent, "--prompt", PROMPT];
    if !cli.args.is_empty() {
        new.push("--");
        new.extend(cli.args.iter().map(String::as_str));
    }
    env.ok(&new);
    run.wait_state(StateKind::WaitingPermission, START);
    // Canopy answers only a dialog that is drawn.
    run.wait_explained("permission dialog on screen", STEP);
    assert!(
        !env.worktree("a").join("probe.txt").exists(),
        "the tool ran before it was approved"
    );

    // 2. Approve from Canopy: the tool runs and the turn ends.
    env.ok(&["approve", "a"]);
    run.wait_state(StateKind::Idle, STEP);
    run.wait_explained(cli.answered, STEP);
    assert!(
        env.worktree("a").join("probe.txt").exists(),
        "the approved tool ran\n{}",
        run.diagnostics()
    );

    // 3. An API error.
    env.ok(&["send", "a", API_ERROR, "--enter"]);
    let s = run.wait_state(StateKind::Error, STEP);
    assert!(
        s.state.detail.as_deref().unwrap_or("").contains("mock bad"),
        "{agent}: {:?}\n{}",
        s.state,
        run.diagnostics()
    );

    // 4. Exit through the CLI's own command.
    if cli.exit_enter {
        env.ok(&["send", "a", cli.exit, "--enter"]);
    } else {
        env.ok(&["send", "a", cli.exit]);
    }
    let s = run.wait_state(StateKind::Exited, STEP);
    assert_eq!(s.exit_code, Some(0), "{agent}\n{}", run.diagnostics());

    let got = env.state_history("a", seq0);
    assert_eq!(
        got,
        expected,
        "{agent}: state history\n{}",
        run.diagnostics()
    );
    eprintln!(
        "real {agent}: scenario passed in {:.1}s",
        run.started.elapsed().as_secs_f64()
    );
}

/// SessionStart → idle, UserPromptSubmit → thinking, PreToolUse → tool(Bash),
/// PermissionRequest → waiting_permission(Bash), approve, PostToolUse → thinking,
/// Stop → idle; UserPromptSubmit → thinking, StopFailure → error; `/exit` fires only
/// SessionEnd (no state), then the process exit.
#[test]
fn real_claude_scenario() {
    scenario(
        "claude",
        claude,
        &[
            "starting",
            "idle",
            "thinking",
            "tool(Bash)",
            "waiting_permission(Bash)",
            "thinking",
            "idle",
            "thinking",
            "error",
            "exited",
        ],
    );
}

/// The screen at rest → idle (Codex sends SessionStart only with the first prompt),
/// UserPromptSubmit → thinking, PreToolUse → tool(Bash), PermissionRequest (before the
/// dialog is drawn) → waiting_permission(Bash), approve, PostToolUse → thinking, Stop →
/// idle (its notify agrees; the title thread's notify is ignored); UserPromptSubmit →
/// thinking, and the API error fires no hook: the `■ {"error": …}` line on screen →
/// error; `/quit` → SessionEnd, process exit.
#[test]
fn real_codex_scenario() {
    scenario(
        "codex",
        codex,
        &[
            "starting",
            "idle",
            "thinking",
            "tool(Bash)",
            "waiting_permission(Bash)",
            "thinking",
            "idle",
            "thinking",
            "error",
            "exited",
        ],
    );
}

/// SessionStart → idle, BeforeAgent → thinking, BeforeTool → tool(run_shell_command),
/// Notification(ToolPermission) → waiting_permission(run_shell_command), approve,
/// AfterTool → thinking, AfterAgent → idle; BeforeAgent → thinking, AfterAgent with no
/// response is ignored and the `✕ [API Error …` line on screen → error; `/quit` →
/// SessionEnd ×2, process exit.
#[test]
fn real_gemini_scenario() {
    scenario(
        "gemini",
        gemini,
        &[
            "starting",
            "idle",
            "thinking",
            "tool(run_shell_command)",
            "waiting_permission(run_shell_command)",
            "thinking",
            "idle",
            "thinking",
            "error",
            "exited",
        ],
    );
}

/// The drawn TUI at rest → idle (no stream event before the prompt), session.status
/// busy → thinking, the tool part running → tool(bash), permission.asked →
/// waiting_permission(bash), approve over `POST /permission/{id}/reply`,
/// permission.replied → thinking, the tool part running again → tool(bash), completed →
/// thinking, session.status idle → idle; busy → thinking, session.error → error (the
/// turn's closing idle does not erase it); Ctrl-C → process exit.
#[test]
fn real_opencode_scenario() {
    scenario(
        "opencode",
        opencode,
        &[
            "starting",
            "idle",
            "thinking",
            "tool(bash)",
            "waiting_permission(bash)",
            "thinking",
            "tool(bash)",
            "thinking",
            "idle",
            "thinking",
            "error",
            "exited",
        ],
    );
}
