//! Who may reach the host and what outside input can make it do: the socket is private
//! and another user's connection is refused (tested with a real second uid), a hook for
//! a session that does not exist changes nothing, tokens never surface, and a
//! repository's `.canopy.toml` cannot make Canopy run commands or spend tokens.
//!
//! The second-uid tests need root (or CAP_SETUID) and `setpriv`. Without them they
//! say so and pass, unless `CANOPY_REQUIRE_PRIVILEGED=1`, which makes them fail.

use std::process::Stdio;
#[cfg(target_os = "linux")]
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use canopy_protocol::StateSource;
use canopy_tests::{TestEnv, spawn_with_stdin, wait_for};

const WAIT: Duration = Duration::from_secs(10);

// The second-uid test runs `setpriv` (util-linux): Linux only, with its helpers.

/// The uid of `nobody`: a real user other than the test's.
#[cfg(target_os = "linux")]
const OTHER_UID: &str = "65534";

/// Whether this machine lets the test run a process as another uid. When it cannot,
/// the test is skipped, or fails when `CANOPY_REQUIRE_PRIVILEGED=1`.
#[cfg(target_os = "linux")]
fn can_switch_uid(test: &str) -> bool {
    let works = Command::new("setpriv")
        .args(["--reuid", OTHER_UID, "--regid", OTHER_UID, "--clear-groups"])
        .args(["--inh-caps=+dac_override", "--ambient-caps=+dac_override"])
        .args(["--", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        assert!(
            std::env::var_os("CANOPY_REQUIRE_PRIVILEGED").is_none_or(|v| v != "1"),
            "{test}: needs root and setpriv to run a process as uid {OTHER_UID}, and CANOPY_REQUIRE_PRIVILEGED=1"
        );
        eprintln!("skipping {test}: cannot run a process as uid {OTHER_UID} here");
    }
    works
}

/// `canopy ARGS` in `env`, run as uid 65534. With `bypass_permissions` it keeps
/// CAP_DAC_OVERRIDE, so file permissions do not stop it and only the host's own peer
/// check is left.
#[cfg(target_os = "linux")]
fn as_other_user(env: &TestEnv, args: &[&str], bypass_permissions: bool) -> Output {
    let plain = env.canopy(args);
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", OTHER_UID, "--regid", OTHER_UID, "--clear-groups"]);
    if bypass_permissions {
        cmd.args(["--inh-caps=+dac_override", "--ambient-caps=+dac_override"]);
    }
    cmd.arg("--")
        .arg(plain.get_program())
        .args(plain.get_args());
    cmd.env_clear();
    for (k, v) in plain.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    if let Some(dir) = plain.get_current_dir() {
        cmd.current_dir(dir);
    }
    let out = cmd.output().expect("run setpriv");
    // It must really have been the other user (setpriv fails rather than run as root).
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("setpriv:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[cfg(target_os = "linux")]
fn mode(path: &std::path::Path) -> u32 {
    let meta = std::fs::metadata(path).expect("stat");
    std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777
}

#[cfg(target_os = "linux")]
#[test]
fn another_user_is_kept_out_by_the_directory_and_by_the_peer_check() {
    if !can_switch_uid("another_user_is_kept_out_by_the_directory_and_by_the_peer_check") {
        return;
    }
    let env = TestEnv::new();
    env.ok(&["new", "mine", "--agent", "sh"]);
    assert_eq!(mode(&env.paths.runtime_dir), 0o700);
    assert_eq!(mode(&env.paths.socket), 0o600);
    assert_eq!(mode(&env.paths.snapshot_file()), 0o600);

    // Plain uid 65534: the 0700 directory stops it before the socket.
    let out = as_other_user(&env, &["ls", "--json"], false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "another user listed sessions: {err}");
    assert!(err.contains("ermission denied"), "{err}");
    assert!(out.stdout.is_empty());

    // With file permissions out of the way, the host's peer-uid check refuses it: the
    // connection is closed without a reply, and the host logs who and why.
    let out = as_other_user(&env, &["ls", "--json"], true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "another user listed sessions: {err}");
    assert!(out.stdout.is_empty(), "no session data reached it");
    assert!(!err.contains("mine"), "{err}");
    let out = as_other_user(&env, &["rm", "--force", "mine"], true);
    assert!(!out.status.success());
    let log = wait_for("the refusal in the host log", WAIT, || {
        let log = std::fs::read_to_string(env.paths.log_file()).ok()?;
        log.contains("refused a connection from another user")
            .then_some(log)
    });
    let line = log
        .lines()
        .find(|l| l.contains("refused a connection from another user"))
        .unwrap_or_default();
    assert!(line.contains("uid=65534"), "{line}");
    assert!(
        line.contains("only the host's own user may connect"),
        "{line}"
    );

    // The host is unharmed and nothing changed: the owner still gets through.
    let sessions = env.sessions();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].is_running());
    assert!(env.worktree("mine").exists());
}

#[test]
fn hooks_for_sessions_that_do_not_exist_change_nothing_and_return_at_once() {
    let env = TestEnv::new();
    env.ok(&["new", "real", "--agent", "sh"]);
    let before = env.session("real");
    let seq = env.seq();

    // Each shape of hook, including the one the host may hold open (a permission
    // request), under names that exist nowhere or try to escape.
    let payloads = [
        r#"{"hook_event_name":"PermissionRequest","tool_name":"Bash","tool_input":{"command":"rm -rf /"}}"#,
        r#"{"hook_event_name":"UserPromptSubmit","prompt":"hi"}"#,
        r#"{"hook_event_name":"Stop"}"#,
        "not json at all",
    ];
    for session in ["ghost", "../real", "real/../../x", ""] {
        for payload in payloads {
            let started = Instant::now();
            let child = spawn_with_stdin(
                env.hook_command(session, "claude")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped()),
                payload.as_bytes(),
            );
            let out = child.wait_with_output().expect("hook");
            let took = started.elapsed();
            assert!(out.status.success(), "{session:?}: the hook exits 0");
            assert!(
                out.stdout.is_empty(),
                "{session:?}: nothing for the agent to act on: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            assert!(took < Duration::from_secs(2), "{session:?}: took {took:?}");
        }
    }

    // Nothing was created or altered: no session, no directory, no branch, and no
    // event but the real session's own (its shell settling), none from a hook.
    let events = env.ok(&[
        "watch",
        "--json",
        "--once",
        "--since",
        &seq.to_string(),
        "--timeout",
        "0.5",
    ]);
    for line in events.lines() {
        let e: canopy_protocol::Event = serde_json::from_str(line).expect("event");
        let s = e.session.expect("a session event");
        assert_eq!(s.name, "real", "{line}");
        assert_ne!(s.state.source, StateSource::Hook, "{line}");
    }
    let after = env.sessions();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].created_at, before.created_at);
    assert_ne!(after[0].state.source, StateSource::Hook);
    let session_dirs: Vec<_> = std::fs::read_dir(env.paths.state_dir.join("sessions"))
        .expect("sessions dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(session_dirs, vec!["real"]);
    assert_eq!(
        env.git(&env.repo, &["branch", "--list", "canopy/*"])
            .lines()
            .count(),
        1
    );
    let log = std::fs::read_to_string(env.paths.log_file()).expect("log");
    assert!(
        log.contains("hook ignored") && log.contains("no session named \"ghost\""),
        "the host says why: {log}"
    );

    // With no host at all, a hook returns at once and starts none.
    env.ok(&["host", "stop"]);
    let started = Instant::now();
    let out = env
        .hook_command("real", "claude")
        .arg(r#"{"hook_event_name":"Stop"}"#)
        .output()
        .expect("hook");
    assert!(out.status.success());
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(!env.paths.socket.exists(), "a hook never starts a host");
}

const TOKENS: [&str; 4] = [
    "ghp_SECRETsecurityTEST000000000000000",
    "ATATT3xSECRETsecurityJIRA2222222",
    "perm:SECRETsecurityYOUTRACK3333",
    "SECRET-gh-enterprise-4444",
];

#[test]
fn tokens_never_reach_outputs_logs_snapshot_or_registry() {
    let mut env = TestEnv::new();
    for (var, token) in [
        "GH_TOKEN",
        "JIRA_API_TOKEN",
        "YOUTRACK_TOKEN",
        "GH_ENTERPRISE_TOKEN",
    ]
    .iter()
    .zip(TOKENS)
    {
        env.set_var(var, token);
    }
    // Trackers that cannot be reached: the fetch fails, and its error must not carry
    // the token either.
    env.write_config(
        "[trackers]\ntimeout_secs = 1.0\n\
         [trackers.github]\nbase_url = \"http://127.0.0.1:9\"\n\
         [trackers.jira]\nbase_url = \"http://127.0.0.1:9/jira\"\napi = \"cloud\"\nemail = \"me@acme.test\"\nprojects = [\"PROJ\"]\n\
         [trackers.youtrack]\nbase_url = \"http://127.0.0.1:9/yt\"\nprojects = [\"PRJ\"]\n",
    );
    let mut seen = Vec::new();
    let mut run = |args: &[&str]| {
        let out = env.run(args);
        seen.push((format!("canopy {args:?}"), out.stdout));
        seen.push((format!("canopy {args:?} (stderr)"), out.stderr));
    };
    for reference in ["PROJ-1", "PRJ-1", "o/r#1"] {
        run(&["issue", "show", reference]);
        run(&[
            "new",
            "--issue",
            reference,
            "--issue-optional",
            "--agent",
            "sh",
        ]);
    }
    for args in [
        &["ls", "--json"][..],
        &["status", "--json"],
        &["inspect", "PROJ-1", "--json"],
        &["explain", "PROJ-1", "--json"],
        &[
            "watch",
            "--json",
            "--once",
            "--since",
            "0",
            "--timeout",
            "0.5",
        ],
    ] {
        run(args);
    }
    let names: Vec<_> = env.sessions().into_iter().map(|s| s.name).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let snapshot = std::fs::read(env.paths.snapshot_file()).expect("status.json");
    env.ok(&["host", "stop"]);
    seen.push(("status.json".into(), snapshot));
    seen.push((
        "the host log".into(),
        std::fs::read(env.paths.log_file()).expect("log"),
    ));
    for suffix in ["", "-wal"] {
        let mut db = env.paths.registry_db().into_os_string();
        db.push(suffix);
        seen.push((
            format!("the registry{suffix}"),
            std::fs::read(&db).unwrap_or_default(),
        ));
    }
    for (what, bytes) in &seen {
        let text = String::from_utf8_lossy(bytes);
        for token in TOKENS {
            assert!(!text.contains(token), "a token reached {what}:\n{text}");
        }
    }
}

#[test]
fn a_repository_canopy_toml_cannot_set_agents_commands_or_tokens() {
    let env = TestEnv::new();
    let pwned = env.dir.path().join("pwned");
    // A committed `.canopy.toml`, as a cloned repository would bring it.
    std::fs::write(
        env.repo.join(".canopy.toml"),
        format!(
            "[agents.sh]\ncommand = \"touch {p}\"\n\
             [sessions]\nworktree_root = \"/\"\n\
             [trackers.jira]\nbase_url = \"http://127.0.0.1:9\"\ntoken_env = \"HOME\"\nprojects = [\"PROJ\"]\n",
            p = pwned.display()
        ),
    )
    .expect("write");
    env.git(&env.repo, &["add", ".canopy.toml"]);
    env.git(&env.repo, &["commit", "-qm", "hostile settings"]);

    // A session that does not use the file never reads it: `sh` is plain sh, and the
    // worktree goes where the user's settings say.
    env.ok(&["new", "plain", "--agent", "sh"]);
    env.ok(&["send", "plain", "echo ran > ran.txt", "--enter"]);
    wait_for("the agent to run", WAIT, || {
        env.worktree("plain").join("ran.txt").exists().then_some(())
    });
    assert!(!pwned.exists(), "a repository's file ran a command");
    assert_eq!(env.session("plain").command, vec!["sh"]);

    // Where the file is read (issue context), it is refused whole, saying why, and
    // nothing is created.
    for args in [
        &["issue", "show", "PROJ-1"][..],
        &["new", "--issue", "PROJ-1", "--agent", "sh"],
    ] {
        let err = env.fails(args);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: invalid ") && first.contains(".canopy.toml: unknown field"),
            "{args:?}: {err}"
        );
        assert!(
            first.contains("not trusted with agents, commands, tokens or where tokens go"),
            "{args:?}: {err}"
        );
        assert!(err.contains("hint: "), "{args:?}: {err}");
    }
    let names: Vec<_> = env.sessions().into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec!["plain"]);

    // With --issue-optional the session starts without the issue, and says why.
    let out = env.run(&[
        "new",
        "--issue",
        "PROJ-1",
        "--issue-optional",
        "--agent",
        "sh",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.starts_with("warning: invalid ")
            && err.contains("not trusted with agents, commands, tokens or where tokens go"),
        "{err}"
    );
    assert_eq!(env.session("PROJ-1").command, vec!["sh"]);
    assert!(env.session("PROJ-1").task.is_none());
    assert!(!pwned.exists(), "a repository's file ran a command");
}
