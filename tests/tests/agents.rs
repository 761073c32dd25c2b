//! Agent adapters and the state engine, end to end: the real `canopy` binary launches
//! the fake agent CLIs (`fake-agent`, built from this crate, behaving as claude, codex
//! or gemini by the name it is run as), which call the injected hooks and draw the real
//! screen cues.

use std::path::PathBuf;
use std::time::Duration;

use canopy_protocol::{Health, Session, StateKind, StateSource};
use canopy_tests::{TestEnv, wait_for};

const WAIT: Duration = Duration::from_secs(15);

fn state_of(env: &TestEnv, name: &str) -> Session {
    env.session(name)
}

fn wait_state(env: &TestEnv, name: &str, kind: StateKind) -> Session {
    wait_for(&format!("{name} to be {kind}"), WAIT, || {
        let s = state_of(env, name);
        (s.state.kind == kind).then_some(s)
    })
}

/// The issue's scenario for one agent: prompt → thinking → tool → waiting_permission →
/// approve from Canopy → tool done → idle; then an API error; then exit — exactly that
/// sequence, no spurious flips.
fn scenario(agent: &str, tool: &str) {
    let env = TestEnv::with_fake_agents();
    let seq0 = env.seq();
    env.ok(&[
        "new",
        "a",
        "--agent",
        agent,
        "--prompt",
        "hello @tool:Bash:ls @ask:Bash:rm-x",
    ]);
    let s = wait_state(&env, "a", StateKind::WaitingPermission);
    assert_eq!(s.state.source, StateSource::Hook, "{agent}: {:?}", s.state);
    // The dialog must be drawn before Canopy answers it.
    wait_for("the dialog on screen", WAIT, || {
        let e = env.ok(&["explain", "a"]);
        e.contains("screen: permission dialog on screen")
            .then_some(())
    });
    env.ok(&["approve", "a"]);
    wait_state(&env, "a", StateKind::Idle);
    env.ok(&["send", "a", "@error", "--enter"]);
    let s = wait_state(&env, "a", StateKind::Error);
    assert!(
        s.state.detail.as_deref().unwrap_or("").contains("400"),
        "{agent}: {:?}",
        s.state
    );
    env.ok(&["send", "a", "@exit", "--enter"]);
    let s = wait_state(&env, "a", StateKind::Exited);
    assert_eq!(s.exit_code, Some(0), "{agent}");
    assert!(
        s.agent_session_id.is_some(),
        "{agent}: the conversation id is recorded"
    );

    let got = env.state_history("a", seq0);
    let expected = [
        "starting".to_owned(),
        "idle".to_owned(),
        "thinking".to_owned(),
        format!("tool({tool})"),
        "thinking".to_owned(),
        format!("tool({tool})"),
        format!("waiting_permission({tool})"),
        // Approved from Canopy: the tool runs at once.
        format!("tool({tool})"),
        "thinking".to_owned(),
        "idle".to_owned(),
        "thinking".to_owned(),
        "error".to_owned(),
        "thinking".to_owned(),
        "exited".to_owned(),
    ];
    assert_eq!(got, expected, "{agent}");
}

#[test]
fn claude_scenario() {
    scenario("claude", "Bash");
}

#[test]
fn codex_scenario() {
    scenario("codex", "Bash");
}

#[test]
fn gemini_scenario() {
    scenario("gemini", "run_shell_command");
}

#[test]
fn esc_interrupt_returns_to_idle_from_the_screen() {
    let env = TestEnv::with_fake_agents();
    env.ok(&["new", "i", "--agent", "claude", "--prompt", "@sleep:20000"]);
    wait_state(&env, "i", StateKind::Thinking);
    env.ok(&["send", "i", "\x1b"]);
    let s = wait_state(&env, "i", StateKind::Idle);
    assert_eq!(
        s.state.source,
        StateSource::Screen,
        "no Stop hook fires on Esc"
    );
}

/// A turn that ends with work still running in the background (Claude's `Stop` with
/// `background_tasks`) is not idle: `tool(background)`, though the screen is at rest and
/// the idle reminder comes.
#[test]
fn idle_prompt_while_background_tasks_run_changes_nothing() {
    let env = TestEnv::with_fake_agents();
    env.ok(&["new", "b", "--agent", "claude", "--prompt", "@bg"]);
    let s = wait_for("the turn to end with a background task", WAIT, || {
        let s = state_of(&env, "b");
        (s.state.kind == StateKind::Tool).then_some(s)
    });
    assert_eq!(s.state.tool.as_deref(), Some("background"));
    assert!(
        s.state
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("1 in the background: shell sleep 5"),
        "{:?}",
        s.state
    );
    let seq = env.seq();
    wait_for("the idle_prompt notification", WAIT, || {
        env.ok(&["explain", "b"])
            .contains("idle reminder")
            .then_some(())
    });
    assert_eq!(
        env.state_history("b", seq),
        Vec::<String>::new(),
        "no new state after idle_prompt"
    );
    // The task's end wakes the agent, whose turn ends with nothing left behind.
    wait_state(&env, "b", StateKind::Idle);
    let history = env.state_history("b", seq);
    assert_eq!(history, ["thinking", "idle"], "{history:?}");
}

/// Codex's work that outlives its turn (found on the real Codex 0.169.0, FINDINGS i):
/// a command left in a background terminal shows only in the footer, a sub-agent reports
/// only its start and stop, and neither wakes the agent. The session is
/// `tool(background)` from the turn's end until the work ends, then `idle`.
#[test]
fn codex_background_terminals_and_sub_agents_hold_the_turns_end() {
    let env = TestEnv::with_fake_agents();
    env.ok(&["new", "c", "--agent", "codex"]);
    wait_state(&env, "c", StateKind::Idle);
    for (directive, running, tool) in [
        ("@bg", "1 background terminal running", "tool(Bash)"),
        (
            "@agent",
            "1 in the background: sub-agent",
            "tool(collaborationspawn_agent)",
        ),
    ] {
        let seq = env.seq();
        env.ok(&["send", "c", directive, "--enter"]);
        let s = wait_for("the turn to end with work left running", WAIT, || {
            let s = state_of(&env, "c");
            (s.state.tool.as_deref() == Some("background")).then_some(s)
        });
        let detail = s.state.detail.unwrap_or_default();
        assert!(detail.contains(running), "{directive}: {detail}");
        wait_state(&env, "c", StateKind::Idle);
        let history = env.state_history("c", seq);
        let mut expected = vec!["thinking", tool];
        if directive == "@agent" {
            expected.push("thinking");
        }
        expected.extend(["tool(background)", "idle"]);
        assert_eq!(history, expected, "{directive}");
    }
}

#[test]
fn codex_notify_for_the_title_thread_is_ignored() {
    let env = TestEnv::with_fake_agents();
    env.ok(&["new", "c", "--agent", "codex", "--prompt", "hello"]);
    wait_for("both notifies", WAIT, || {
        env.ok(&["explain", "c"])
            .contains("turn of another thread")
            .then_some(())
    });
    assert_eq!(state_of(&env, "c").state.kind, StateKind::Idle);
}

#[test]
fn a_dialog_answered_in_the_terminal_is_not_answered_again() {
    let env = TestEnv::with_fake_agents();
    env.ok(&[
        "new",
        "t",
        "--agent",
        "claude",
        "--prompt",
        "@ask:Bash:rm-y @sleep:3000",
    ]);
    wait_state(&env, "t", StateKind::WaitingPermission);
    wait_for("the dialog on screen", WAIT, || {
        env.ok(&["explain", "t"])
            .contains("screen: permission dialog on screen")
            .then_some(())
    });
    // The user answers in the terminal.
    env.ok(&["send", "t", "1"]);
    wait_for("the answer to take effect", WAIT, || {
        (state_of(&env, "t").state.kind != StateKind::WaitingPermission).then_some(())
    });
    let err = env.fails(&["approve", "t"]);
    assert!(err.contains("not waiting for permission"), "{err}");
}

/// A fake Claude session `name` waiting for permission to run `touch-x`.
fn claude_asking_to_touch(name: &str) -> TestEnv {
    let env = TestEnv::with_fake_agents();
    env.ok(&[
        "new",
        name,
        "--agent",
        "claude",
        "--prompt",
        "@ask:Bash:touch-x",
    ]);
    wait_state(&env, name, StateKind::WaitingPermission);
    env
}

/// Claude runs its PermissionRequest hook beside the dialog: Canopy's answer goes back
/// through that hook, and no key is typed.
#[test]
fn claude_approval_goes_through_its_permission_hook() {
    let env = claude_asking_to_touch("h");
    env.ok(&["approve", "h"]);
    let s = wait_state(&env, "h", StateKind::Idle);
    assert_eq!(
        s.state.source,
        StateSource::Hook,
        "the turn ended with Stop"
    );
    let explained = env.ok(&["explain", "h"]);
    assert!(
        explained.contains("answered through the agent's PermissionRequest hook"),
        "{explained}"
    );
    assert!(
        explained.contains("PostToolUse"),
        "the tool ran: {explained}"
    );
    let screen = env.screen_text("h", 40, 120);
    assert!(screen.contains("fake output of touch-x"), "{screen}");
    assert!(!screen.contains("> 1"), "no key was typed: {screen}");
    let err = env.fails(&["approve", "h"]);
    assert!(err.contains("not waiting for permission"), "{err}");
}

/// A permission hook whose process dies while held (the agent timed it out) carries no
/// answer: `approve` types into the dialog instead of reporting a success nobody saw.
#[test]
fn a_held_permission_hook_that_dies_does_not_swallow_the_answer() {
    let env = claude_asking_to_touch("h");
    // A second run of the hook for the same request takes over the hold (the agent's
    // own is released without a decision), then dies before any answer.
    let payload = r#"{"hook_event_name":"PermissionRequest","session_id":"x","tool_name":"Bash","tool_input":{"command":"touch-x"}}"#;
    let mut hook = canopy_tests::spawn_with_stdin(
        env.hook_command("h", "claude")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
        payload.as_bytes(),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        hook.try_wait().expect("hook").is_none(),
        "the host holds the hook open"
    );
    hook.kill().expect("kill the hook");
    let _ = hook.wait();

    env.ok(&["approve", "h"]);
    wait_state(&env, "h", StateKind::Idle);
    let explained = env.ok(&["explain", "h"]);
    assert!(
        explained.contains("keys typed into the dialog"),
        "{explained}"
    );
    let screen = env.screen_text("h", 40, 120);
    assert!(screen.contains("fake output of touch-x"), "{screen}");
}

/// A deny's reason reaches the model through the hook, and the turn goes on.
#[test]
fn claude_deny_reason_reaches_the_model_through_its_hook() {
    let env = TestEnv::with_fake_agents();
    env.ok(&[
        "new",
        "d",
        "--agent",
        "claude",
        "--prompt",
        "@ask:Bash:rm-rf-build",
    ]);
    wait_state(&env, "d", StateKind::WaitingPermission);
    env.ok(&["deny", "d", "use cargo clean instead"]);
    let s = wait_state(&env, "d", StateKind::Idle);
    assert_eq!(
        s.state.source,
        StateSource::Hook,
        "the turn ended with Stop"
    );
    let screen = env.screen_text("d", 40, 120);
    assert!(screen.contains("use cargo clean instead"), "{screen}");
    assert!(!screen.contains("fake output of rm-rf-build"), "{screen}");
}

#[test]
fn prose_that_says_proceed_is_not_a_dialog() {
    let env = TestEnv::with_fake_agents();
    let seq = env.seq();
    env.ok(&["new", "p", "--agent", "claude", "--prompt", "@proceed"]);
    wait_state(&env, "p", StateKind::Idle);
    std::thread::sleep(Duration::from_millis(2000));
    let kinds = env.state_history("p", seq);
    assert!(
        !kinds.iter().any(|k| k.starts_with("waiting_permission")),
        "{kinds:?}"
    );
    let err = env.fails(&["approve", "p"]);
    assert!(err.contains("not waiting for permission"), "{err}");
}

#[test]
fn an_agent_that_crashes_at_start_is_exited_with_its_code() {
    let env = TestEnv::with_fake_agents();
    env.ok(&["new", "x", "--agent", "claude", "--prompt", "@crash"]);
    let s = wait_state(&env, "x", StateKind::Exited);
    assert_eq!(s.exit_code, Some(1));
    assert_eq!(s.state.source, StateSource::Process);
    let explain = env.ok(&["explain", "x"]);
    assert!(explain.contains("process exit"), "{explain}");
}

#[test]
fn a_missing_agent_binary_is_a_one_line_error_with_an_install_hint() {
    let env = TestEnv::new();
    let err = env.fails(&["new", "m", "--agent", "claude"]);
    assert!(
        err.starts_with("error: agent command \"claude\" not found\n"),
        "{err}"
    );
    assert!(err.contains("hint: install Claude Code"), "{err}");
    assert!(env.sessions().is_empty());
    assert!(!env.worktree("m").exists());
}

#[test]
fn no_hooks_within_the_grace_period_is_degraded_health() {
    let mut env = TestEnv::new();
    let stubs = env.stub_agents(&["claude"], "echo mute agent; exec sleep 1000");
    env.prepend_path(&stubs);
    env.write_config("[sessions]\nhook_grace_secs = 0.5\n");
    env.ok(&["new", "d", "--agent", "claude"]);
    let s = wait_for("health to degrade", WAIT, || {
        let s = state_of(&env, "d");
        (s.health == Health::Degraded).then_some(s)
    });
    assert!(s.is_running());
    assert!(
        env.ok(&["explain", "d"])
            .contains("health: degraded — no hook arrived within")
    );
}

#[test]
fn hooks_for_unknown_sessions_are_refused_and_never_fail_the_agent() {
    let env = TestEnv::new();
    env.ok(&["status"]);
    let out = env
        .hook_command("nope", "claude")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("hook");
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    // With no host at all it exits 0 at once, without starting one.
    env.ok(&["host", "stop"]);
    let start = std::time::Instant::now();
    let out = env.hook_command("nope", "claude").output().expect("hook");
    assert!(out.status.success());
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(!env.paths.socket.exists(), "a hook never starts a host");
}

#[test]
fn resume_relaunches_the_same_conversation() {
    let env = TestEnv::with_fake_agents();
    env.ok(&["new", "r", "--agent", "claude", "--prompt", "@exit"]);
    let before = wait_state(&env, "r", StateKind::Exited);
    let id = before.agent_session_id.clone().expect("id");
    let out = env.ok(&["resume", "r"]);
    assert!(out.starts_with("r: resumed claude (pid "), "{out}");
    let after = wait_state(&env, "r", StateKind::Idle);
    assert_eq!(after.agent_session_id.as_deref(), Some(id.as_str()));
    assert!(
        after.command.iter().any(|a| a == "--resume"),
        "{:?}",
        after.command
    );
    assert_eq!(after.created_at, before.created_at);
    let err = env.fails(&["resume", "r"]);
    assert!(err.contains("is running"), "{err}");
}

#[test]
fn hooks_are_injected_for_the_launch_only() {
    let env = TestEnv::with_fake_agents();
    env.ok(&["new", "h", "--agent", "gemini", "--prompt", "hello"]);
    wait_state(&env, "h", StateKind::Idle);
    // Nothing under HOME or in the repository was written to configure the agent
    // (the fake writes only its own transcripts, as the real one does).
    let home = env.dir.path().join("home");
    for forbidden in [
        ".claude/settings.json",
        ".codex/config.toml",
        ".gemini/settings.json",
    ] {
        assert!(!home.join(forbidden).exists(), "{forbidden} was written");
    }
    let settings: PathBuf = env
        .dir
        .path()
        .join("state/canopy/sessions/h/gemini-settings.json");
    let mode = std::fs::metadata(&settings)
        .expect("settings")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert!(
        env.git(&env.worktree("h"), &["status", "--porcelain"])
            .is_empty()
    );
}

/// OpenCode reports through its server's event stream, and `approve` answers over
/// `POST /permission/{id}/reply`.
#[test]
fn opencode_scenario_through_its_event_stream() {
    let env = TestEnv::with_fake_agents();
    env.ok(&["new", "o", "--agent", "opencode"]);
    wait_state(&env, "o", StateKind::Idle);
    let seq0 = env.seq();
    env.ok(&["send", "o", "hello @tool:Bash:ls @ask:Bash:rm-x", "--enter"]);
    let s = wait_state(&env, "o", StateKind::WaitingPermission);
    assert_eq!(s.state.source, StateSource::Hook);
    env.ok(&["approve", "o"]);
    wait_state(&env, "o", StateKind::Idle);
    assert!(
        env.ok(&["explain", "o"])
            .contains("answered over the agent's server")
    );
    env.ok(&["send", "o", "@error", "--enter"]);
    let s = wait_state(&env, "o", StateKind::Error);
    assert!(
        s.state
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("mock bad request"),
        "{:?}",
        s.state
    );
    // The turn's closing idle does not erase the error.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state_of(&env, "o").state.kind, StateKind::Error);
    // The state at seq0 was idle; a later idle from another source is not a flip.
    let mut got = env.state_history("o", seq0);
    if got.first().map(String::as_str) == Some("idle") {
        got.remove(0);
    }
    assert_eq!(
        got,
        [
            "thinking",
            "tool(bash)",
            "thinking",
            "tool(bash)",
            "waiting_permission(bash)",
            "tool(bash)",
            "thinking",
            "idle",
            "thinking",
            "error"
        ],
    );
}

/// Events from before Canopy connected to OpenCode's stream are caught up from its
/// server's current state.
/// Found on the real OpenCode 1.18.33 in the truth soak: its server sends events
/// seconds before its TUI draws anything, and keys typed meanwhile are lost. The blank
/// screen is no sign of rest: the session stays `starting` until the agent has drawn it.
#[test]
fn a_screen_not_drawn_yet_is_not_idle() {
    let mut env = TestEnv::with_fake_agents();
    env.set_var("FAKE_FIRST_PAINT_MS", "2500");
    env.ok(&["new", "o", "--agent", "opencode"]);
    wait_for("its events", WAIT, || {
        env.ok(&["explain", "o"])
            .contains("hooks are arriving")
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state_of(&env, "o").state.kind, StateKind::Starting);
    wait_state(&env, "o", StateKind::Idle);
    env.ok(&["send", "o", "hello", "--enter"]);
    wait_state(&env, "o", StateKind::Idle);
    wait_for("the prompt to run", WAIT, || {
        env.ok(&["capture", "o"]).contains("hello").then_some(())
    });
}

#[test]
fn opencode_state_from_before_the_stream_connected_is_caught_up() {
    let env = TestEnv::with_fake_agents();
    env.ok(&[
        "new",
        "q",
        "--agent",
        "opencode",
        "--prompt",
        "@ask:Bash:rm-z",
    ]);
    wait_state(&env, "q", StateKind::WaitingPermission);
    env.ok(&["deny", "q"]);
    wait_for("the denial to take effect", WAIT, || {
        (state_of(&env, "q").state.kind != StateKind::WaitingPermission).then_some(())
    });
}

/// A fake agent asking to run a tool that takes `tool_ms` once approved, with the dialog
/// drawn: `(env, the session's name)`.
fn asking_for_a_long_tool(agent: &str, tool_ms: u64) -> TestEnv {
    let mut env = TestEnv::with_fake_agents();
    env.set_var("FAKE_TOOL_MS", tool_ms.to_string());
    env.ok(&[
        "new",
        "l",
        "--agent",
        agent,
        "--prompt",
        "@ask:Bash:make-all",
    ]);
    wait_state(&env, "l", StateKind::WaitingPermission);
    wait_for("the dialog on screen", WAIT, || {
        env.ok(&["explain", "l"])
            .contains("screen: permission dialog on screen")
            .then_some(())
    });
    env
}

/// The state while the approved tool runs: it must say the tool runs for the whole run,
/// not "waiting for permission" until the tool ends.
fn assert_runs_the_tool(env: &TestEnv, agent: &str, tool: &str) {
    let s = wait_for("the tool state", Duration::from_secs(2), || {
        let s = state_of(env, "l");
        (s.state.kind != StateKind::WaitingPermission).then_some(s)
    });
    assert_eq!(
        (s.state.kind, s.state.tool.as_deref()),
        (StateKind::Tool, Some(tool)),
        "{agent}: {:?}\n{}",
        s.state,
        env.ok(&["explain", "l"])
    );
    // Well inside the tool's run: still the tool.
    std::thread::sleep(Duration::from_secs(2));
    let s = state_of(env, "l");
    assert_eq!(s.state.kind, StateKind::Tool, "{agent}: {:?}", s.state);
}

/// Approved from Canopy, a tool that runs for seconds is `tool(NAME)` at once and all
/// along (it was `waiting_permission` until PostToolUse).
#[test]
fn a_long_tool_approved_from_canopy_is_a_tool_at_once() {
    for (agent, tool) in [
        ("claude", "Bash"),
        ("codex", "Bash"),
        ("gemini", "run_shell_command"),
    ] {
        let env = asking_for_a_long_tool(agent, 6000);
        env.ok(&["approve", "l"]);
        assert_runs_the_tool(&env, agent, tool);
        // The request is answered: a late deny is refused, not reported as done.
        let err = env.fails(&["deny", "l", "stop that"]);
        assert!(err.contains("not waiting for permission"), "{agent}: {err}");
        wait_state(&env, "l", StateKind::Idle);
    }
}

/// Approved in the agent's own terminal: the dialog leaves the screen, the tool runs,
/// and the state follows within the hold time, naming that evidence in `explain`.
#[test]
fn a_long_tool_approved_in_the_terminal_is_a_tool_at_once() {
    for (agent, tool, yes) in [
        ("claude", "Bash", "1"),
        ("codex", "Bash", "y"),
        ("gemini", "run_shell_command", "1"),
    ] {
        let env = asking_for_a_long_tool(agent, 6000);
        env.ok(&["send", "l", yes]);
        assert_runs_the_tool(&env, agent, tool);
        let explained = env.ok(&["explain", "l"]);
        assert!(
            explained.contains("permission dialog left the screen"),
            "{agent}: {explained}"
        );
        // Claude's held hook was let go: a deny now is refused.
        let err = env.fails(&["deny", "l", "stop that"]);
        assert!(err.contains("not waiting for permission"), "{agent}: {err}");
        wait_state(&env, "l", StateKind::Idle);
    }
}

/// Refused in the terminal: no hook fires, the dialog leaves, and the session is idle.
#[test]
fn a_dialog_refused_in_the_terminal_is_idle() {
    for agent in ["claude", "codex", "gemini"] {
        let env = asking_for_a_long_tool(agent, 6000);
        env.ok(&["send", "l", "\x1b"]);
        let s = wait_for("idle", Duration::from_secs(2), || {
            let s = state_of(&env, "l");
            (s.state.kind == StateKind::Idle).then_some(s)
        });
        assert_eq!(s.state.source, StateSource::Screen, "{agent}");
        assert!(
            !env.worktree("l").join("make-all").exists(),
            "{agent}: nothing ran"
        );
    }
}

/// An interrupted notice stays in the transcript: it must neither hide the next turn's
/// busy screen nor end a later turn that finished normally (found with the real Claude:
/// Esc in the second turn left the badge on `thinking`).
#[test]
fn an_old_interrupted_notice_hides_nothing() {
    let env = asking_for_a_long_tool("claude", 6000);
    env.ok(&["send", "l", "\x1b"]);
    wait_state(&env, "l", StateKind::Idle);
    env.ok(&["send", "l", "@sleep:20000", "--enter"]);
    wait_state(&env, "l", StateKind::Thinking);
    std::thread::sleep(Duration::from_secs(2));
    env.ok(&["send", "l", "\x1b"]);
    let s = wait_for("idle after Esc", Duration::from_secs(3), || {
        let s = state_of(&env, "l");
        (s.state.kind == StateKind::Idle).then_some(s)
    });
    assert_eq!(s.state.source, StateSource::Screen);
    let seq = env.seq();
    env.ok(&["send", "l", "hello", "--enter"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(env.state_history("l", seq), ["thinking", "idle"]);
}

/// Claude's `--allowedTools` takes every value after it: the first prompt goes after
/// `--`, or a user's `canopy new … -- --allowedTools …` swallows it (found with the
/// real 2.1.332: "was read as a value of --allowedTools, not as a prompt").
#[test]
fn the_first_prompt_survives_options_that_take_many_values() {
    let env = TestEnv::with_fake_agents();
    env.ok(&[
        "new",
        "v",
        "--agent",
        "claude",
        "--prompt",
        "@tool:Bash:ls",
        "--",
        "--allowedTools",
        "Bash(ls:*)",
    ]);
    wait_for("the prompt's tool to run", WAIT, || {
        env.ok(&["explain", "v"])
            .contains("PostToolUse")
            .then_some(())
    });
}

/// The host killed while an approved tool runs, then started again: the agent goes on
/// (its keeper holds its terminal), the new host takes it back in the state it
/// recorded, and the tool's end (a hook the new host receives) moves the badge on.
#[cfg(target_os = "linux")]
#[test]
fn a_host_restarted_mid_turn_takes_the_agent_back() {
    for agent in ["claude", "codex", "gemini", "opencode"] {
        let env = asking_for_a_long_tool(agent, 3000);
        env.ok(&["approve", "l"]);
        wait_state(&env, "l", StateKind::Tool);
        let before = state_of(&env, "l");
        let old = env.host_pid().expect("host");
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(old, libc::SIGKILL) };
        wait_for("the host to die", WAIT, || {
            std::os::unix::net::UnixStream::connect(&env.paths.socket)
                .is_err()
                .then_some(())
        });
        let s = state_of(&env, "l");
        assert_ne!(env.host_pid(), Some(old));
        assert_eq!(s.pid, before.pid, "{agent}: the same agent goes on");
        assert_eq!(s.state.kind, StateKind::Tool, "{agent}: {:?}", s.state);
        // The turn ends on the new host, through its hooks (OpenCode: its server).
        let s = wait_state(&env, "l", StateKind::Idle);
        assert_eq!(s.state.source, StateSource::Hook, "{agent}: {:?}", s.state);
        // And it still takes prompts.
        env.ok(&["send", "l", "hello again", "--enter"]);
        wait_state(&env, "l", StateKind::Thinking);
        wait_state(&env, "l", StateKind::Idle);
    }
}
