//! Session lifecycle through the real binary: new, ls, send, attach, stop, rm.

use std::time::Duration;

use canopy_protocol::params::{AttachParams, AttachResult};
use canopy_protocol::{Message, StateKind, method};
use canopy_tests::{Term, TestEnv, wait_for};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_ls_send_attach_stop_rm() {
    let env = TestEnv::new();
    let out = env.ok(&["new", "demo", "--agent", "sh"]);
    assert!(out.starts_with("demo: sh in "), "{out}");
    let wt = env.worktree("demo");
    assert!(wt.join("README.md").exists(), "worktree checked out");
    assert_eq!(
        env.git(&wt, &["branch", "--show-current"]).trim(),
        "canopy/demo"
    );

    let s = env.session("demo");
    assert_eq!(s.branch, "canopy/demo");
    assert_eq!(s.base, "main");
    assert!(s.pid.is_some());
    let table = env.ok(&["ls"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("demo ") && l.contains("canopy/demo")),
        "{table}"
    );

    // An attached protocol client sees what `send` makes the agent print.
    let mut client = env.client().await;
    let _: AttachResult = client
        .call(
            method::ATTACH,
            &AttachParams {
                name: "demo".into(),
                rows: 24,
                cols: 80,
            },
        )
        .await
        .expect("attach");
    env.ok(&[
        "send",
        "demo",
        "echo canopy-$((6*7)) > marker; echo done-$((1+1))",
        "--enter",
    ]);
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        while !String::from_utf8_lossy(&seen).contains("done-2") {
            match client.reader.next().await.expect("read") {
                Some(Message::Notification { method, params }) if method == method::OUTPUT => {
                    let p: canopy_protocol::params::OutputParams =
                        canopy_protocol::frame::params(&params).expect("output params");
                    assert_eq!(p.name, "demo");
                    seen.extend(p.data);
                }
                Some(_) => {}
                None => panic!("host closed the connection"),
            }
        }
    })
    .await
    .expect("output reaches the attached client");
    assert_eq!(
        std::fs::read_to_string(wt.join("marker"))
            .expect("marker")
            .trim(),
        "canopy-42"
    );
    // The agent ran in the worktree, with the session's identity in its environment.
    env.ok(&[
        "send",
        "demo",
        "echo \"$CANOPY_SESSION:$PWD\" > whoami",
        "--enter",
    ]);
    wait_for("whoami", WAIT, || {
        std::fs::read_to_string(wt.join("whoami"))
            .ok()
            .filter(|t| t.ends_with('\n'))
    });
    let whoami = std::fs::read_to_string(wt.join("whoami")).expect("whoami");
    assert_eq!(whoami.trim(), format!("demo:{}", wt.display()));

    let stopped = env.ok(&["stop", "demo"]);
    assert!(stopped.contains("stopped by canopy"), "{stopped}");
    let s = env.session("demo");
    assert_eq!(s.state.kind, StateKind::Exited);
    assert!(s.pid.is_none());

    // The files the agent made are untracked work: rm refuses and names them.
    let err = env.fails(&["rm", "demo"]);
    assert!(err.contains("would lose work"), "{err}");
    assert!(err.contains("untracked file: marker"), "{err}");
    assert!(err.contains("untracked file: whoami"), "{err}");
    std::fs::remove_file(wt.join("marker")).expect("rm");
    std::fs::remove_file(wt.join("whoami")).expect("rm");
    env.ok(&["rm", "demo"]);
    assert!(!wt.exists(), "worktree removed");
    assert!(
        !env.git(&env.repo, &["branch", "--list"])
            .contains("canopy/demo"),
        "branch removed"
    );
    assert!(env.sessions().is_empty());
}

#[test]
fn attach_in_a_real_terminal_relays_both_ways_and_detaches() {
    let env = TestEnv::new();
    env.ok(&["new", "demo", "--agent", "sh"]);
    let mut term = Term::spawn(&env.canopy(&["attach", "demo"]), 30, 100);
    // The alternate screen is entered and the agent's prompt repainted.
    term.expect("\x1b[?1049h", WAIT);
    term.write(b"echo attached-$((20+3))\r");
    term.expect("attached-23", WAIT);
    // The window size reached the agent's terminal.
    term.write(b"stty size\r");
    term.expect("30 100", WAIT);
    term.write(b"\x1c");
    term.expect("[detached from demo]", WAIT);
    assert_eq!(term.wait(WAIT), 0);
    // Detaching left the agent running.
    assert!(env.session("demo").is_running());

    // A second attach repaints the screen as it is now.
    let mut again = Term::spawn(&env.canopy(&["attach", "demo"]), 30, 100);
    again.expect("attached-23", WAIT);
    again.write(b"exit\r");
    again.expect("[demo: the session ended]", WAIT);
    assert_eq!(again.wait(WAIT), 0);
    let s = wait_for("exit recorded", WAIT, || {
        let s = env.session("demo");
        (!s.is_running()).then_some(s)
    });
    assert_eq!(s.exit_code, Some(0));
}

#[test]
fn the_detach_key_is_configurable() {
    let env = TestEnv::new();
    env.write_config("[attach]\ndetach_key = \"ctrl-]\"\n");
    env.ok(&["new", "demo", "--agent", "sh"]);
    let mut term = Term::spawn(&env.canopy(&["attach", "demo"]), 24, 80);
    term.expect("\x1b[?1049h", WAIT);
    term.write(b"\x1c"); // ctrl-\ is now typed through, not a detach
    term.write(b"echo still-here\r");
    term.expect("still-here", WAIT);
    term.write(b"\x1d");
    term.expect("[detached from demo]", WAIT);
    assert_eq!(term.wait(WAIT), 0);
}

#[test]
fn bad_requests_fail_in_one_line_and_create_nothing() {
    let env = TestEnv::new();
    env.ok(&["new", "demo", "--agent", "sh"]);

    let err = env.fails(&["new", "demo", "--agent", "sh"]);
    assert!(
        err.starts_with("error: a session named \"demo\" already exists\n"),
        "{err}"
    );

    let err = env.fails(&["new", "other", "--agent", "sh", "--base", "no-such-branch"]);
    assert!(
        err.starts_with("error: base \"no-such-branch\" does not name a commit"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");

    let err = env.fails(&["new", "other", "--agent", "no-such-agent-binary"]);
    assert!(
        err.starts_with("error: agent command \"no-such-agent-binary\" not found\n"),
        "{err}"
    );

    let elsewhere = env.dir.path().join("not-a-repo");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let err = env.fails(&[
        "new",
        "other",
        "--agent",
        "sh",
        "--repo",
        elsewhere.to_str().expect("utf8"),
    ]);
    assert!(
        err.starts_with("error: ") && err.contains("is not inside a git repository"),
        "{err}"
    );

    let err = env.fails(&["new", "../escape", "--agent", "sh"]);
    assert!(err.starts_with("error: invalid session name"), "{err}");

    // Nothing half-created: one session, one canopy branch, one worktree.
    assert_eq!(env.sessions().len(), 1);
    let branches = env.git(&env.repo, &["branch", "--list", "canopy/*"]);
    assert_eq!(branches.lines().count(), 1, "{branches}");
    let worktrees = std::fs::read_dir(env.repo.with_file_name("proj.worktrees"))
        .expect("ls")
        .count();
    assert_eq!(worktrees, 1);

    let err = env.fails(&["attach", "nope"]);
    assert!(
        err.starts_with("error: no session named \"nope\"\n"),
        "{err}"
    );
    let err = env.fails(&["send", "nope", "x"]);
    assert!(err.contains("hint: `canopy ls` lists sessions"), "{err}");
}

#[test]
fn an_agent_that_exits_at_once_is_recorded_with_its_code() {
    let env = TestEnv::new();
    env.ok(&["new", "quick", "--agent", "sh -c 'echo bye; exit 3'"]);
    let s = wait_for("exit", WAIT, || {
        let s = env.session("quick");
        (!s.is_running()).then_some(s)
    });
    assert_eq!(s.exit_code, Some(3));
    assert_eq!(s.state.detail.as_deref(), Some("exited with code 3"));
    let err = env.fails(&["attach", "quick"]);
    assert!(err.contains("is not running"), "{err}");
}

/// `capture` prints what scrolled off and what is on screen, bounded by the configured
/// scrollback, with colours only when asked; the reader going away is no error.
#[test]
fn capture_prints_the_scrollback_and_screen() {
    let env = TestEnv::new();
    env.write_config("[sessions]\nscrollback_lines = 500\n");
    env.ok(&[
        "new",
        "talk",
        "--agent",
        "sh -c 'seq 1 3000; printf \"\\033[31mred\\033[0m done\\n\"; sleep 600'",
    ]);
    let text = wait_for("the output", WAIT, || {
        let t = env.ok(&["capture", "talk"]);
        t.contains("red done").then_some(t)
    });
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"red done"), "plain by default");
    // 500 rows of scrollback and the screen's rows of text, with nothing missing.
    let numbers: Vec<u32> = lines[..lines.len() - 1]
        .iter()
        .map(|l| l.parse().expect("a number"))
        .collect();
    assert!((500..600).contains(&numbers.len()), "{}", numbers.len());
    assert_eq!(numbers.last(), Some(&3000));
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "contiguous");
    assert_eq!(env.ok(&["capture", "talk", "-n", "2"]), "3000\nred done\n");
    let coloured = env.ok(&["capture", "talk", "-e", "--lines", "1"]);
    assert!(
        coloured.contains("\x1b[0;31mred\x1b[0m done"),
        "{coloured:?}"
    );

    // Its reader gone before it writes (`| head`): it ends quietly, as `cat` would.
    let mut child = env
        .canopy(&["capture", "talk"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("capture");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let err = env.fails(&["capture", "nope"]);
    assert!(err.contains("no session named"), "{err}");
}

#[test]
fn a_configured_worktree_root_is_used() {
    let env = TestEnv::new();
    env.write_config("[sessions]\nworktree_root = \"~/trees\"\n");
    env.ok(&["new", "rooted", "--agent", "sh"]);
    let s = env.session("rooted");
    let expected = env.dir.path().join("home/trees/proj/rooted");
    assert_eq!(s.worktree, expected.display().to_string());
    assert!(expected.join("README.md").exists());
    env.ok(&["rm", "rooted"]);
    assert!(!expected.exists());
}

/// Text with line breaks goes as one bracketed paste only to a program that turned
/// bracketed paste on (every agent's TUI does); a plain shell gets it typed, each line
/// run, and never sees the paste markers as text.
#[test]
fn several_lines_reach_a_plain_shell_as_typed_lines() {
    let env = TestEnv::new();
    env.ok(&["new", "demo", "--agent", "sh"]);
    env.ok(&[
        "send",
        "demo",
        "echo one-$((1))\necho two-$((2))",
        "--enter",
    ]);
    let screen = wait_for("both lines run", WAIT, || {
        let screen = env.screen_text("demo", 24, 80);
        (screen.contains("one-1") && screen.contains("two-2")).then_some(screen)
    });
    assert!(!screen.contains("200~"), "{screen}");
}
