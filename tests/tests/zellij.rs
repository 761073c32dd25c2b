//! The Zellij plugin as Zellij runs it: the release `.wasm` loaded in wasmtime through
//! the real plugin ABI (tests/src/zellij_harness.rs), its commands run for real against
//! a hermetic host, their results fed back as `RunCommandResult`s.

#[path = "../src/zellij_harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::process::{Command as Process, Output, Stdio};
use std::time::Duration;

use canopy_tests::{TestEnv, canopy_bin, spawn_with_stdin, wait_for};
use harness::{Command, Plugin, plain};

/// RunCommands = 3 in plugin_permission.proto.
const RUN_COMMANDS: i32 = 3;
const ENTER: i32 = 31;

fn env_with_claude() -> TestEnv {
    let mut env = TestEnv::new();
    let stubs = env.stub_agents(&["claude"], "exec sleep 100000");
    env.prepend_path(&stubs);
    env
}

/// The plugin, loaded; `None` when it cannot be built here (see `build_plugin`).
fn load(env: &TestEnv) -> Option<Plugin> {
    let wasm = harness::build_plugin()?;
    let bin = canopy_bin();
    let plugin = Plugin::load(
        &wasm,
        &[
            ("canopy", bin.to_str().expect("utf-8 path")),
            ("poll_timeout", "20"),
        ],
    );
    let _ = env;
    Some(plugin.expect("load the plugin"))
}

/// The plugin's command as a process in the test's environment (argv[0] is the canopy
/// binary the plugin was configured with).
fn process(env: &TestEnv, argv: &[String]) -> Process {
    assert_eq!(argv[0], canopy_bin().to_string_lossy(), "{argv:?}");
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    let mut cmd = env.canopy(&args);
    cmd.stdin(Stdio::null());
    cmd
}

fn feed(p: &mut Plugin, out: Output, ctx: &BTreeMap<String, String>) -> bool {
    p.command_result(out.status.code(), out.stdout, out.stderr, ctx)
        .expect("update")
}

/// Run the plugin's commands and feed their results back until only a long-poll
/// (`watch`) is pending; return it unrun. Other commands are returned too.
/// A `run_command` not yet run: its argv and context.
type Pending = (Vec<String>, BTreeMap<String, String>);

fn settle(p: &mut Plugin, env: &TestEnv) -> (Option<Pending>, Vec<Command>) {
    let mut watch = None;
    let mut others = vec![];
    loop {
        let cmds = p.take_commands();
        if cmds.is_empty() {
            return (watch, others);
        }
        for c in cmds {
            match c {
                Command::Run { argv, ctx } if argv.get(1).is_some_and(|a| a == "watch") => {
                    assert!(watch.is_none(), "two long-polls in flight");
                    watch = Some((argv, ctx));
                }
                Command::Run { argv, ctx } => {
                    let out = process(env, &argv).output().expect("run");
                    feed(p, out, &ctx);
                }
                other => others.push(other),
            }
        }
    }
}

/// Start the pending long-poll, make `change` happen, and feed the poll's result back.
fn poll_through(
    p: &mut Plugin,
    env: &TestEnv,
    watch: (Vec<String>, BTreeMap<String, String>),
    change: impl FnOnce(),
) -> bool {
    let mut cmd = process(env, &watch.0);
    let poll = std::thread::spawn(move || cmd.output().expect("watch"));
    change();
    let out = poll.join().expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty(), "the long-poll timed out");
    feed(p, out, &watch.1)
}

fn hook(env: &TestEnv, name: &str, payload: &str) -> std::process::Child {
    spawn_with_stdin(
        env.hook_command(name, "claude").stdout(Stdio::null()),
        payload.as_bytes(),
    )
}

#[test]
fn sidebar_follows_the_host_and_drives_it_with_keys() {
    let env = env_with_claude();
    env.ok(&["new", "alpha", "--agent", "claude"]);
    env.ok(&["new", "beta", "--agent", "claude"]);
    let Some(mut p) = load(&env) else { return };

    // On load: subscribe and ask for permission, and run nothing else before the grant.
    let cmds = p.take_commands();
    assert!(cmds.contains(&Command::Subscribe), "{cmds:?}");
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::RequestPermissions(p) if p.contains(&RUN_COMMANDS))),
        "{cmds:?}"
    );
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    p.key_named(ENTER).expect("key before the grant");
    assert_eq!(p.take_commands(), vec![]);
    assert!(plain(&p.render(8, 50).expect("render")).contains("Waiting for permission"));

    // Granted: the status read fills the table, then one long-poll is pending.
    assert!(p.grant(true).expect("grant"));
    let (watch, _) = settle(&mut p, &env);
    let watch = watch.expect("a long-poll after the status read");
    let seq = env.seq().to_string();
    assert!(
        watch.0.windows(2).any(|w| w[0] == "--since" && w[1] == seq),
        "{watch:?} since {seq}"
    );
    let frame = plain(&p.render(10, 60).expect("render"));
    let lines: Vec<&str> = frame.lines().collect();
    assert!(lines[0].starts_with("canopy 2"), "{frame}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("alpha") && l.contains("claude")),
        "{frame}"
    );
    assert!(frame.lines().all(|l| l.chars().count() <= 60), "{frame}");

    // A permission request in the host reaches the pane through the long-poll.
    let mut asking = None;
    let rendered = poll_through(&mut p, &env, watch, || {
        asking = Some(hook(
            &env,
            "alpha",
            r#"{"hook_event_name":"PermissionRequest","session_id":"x","tool_name":"Bash","tool_input":{"command":"rm x"}}"#,
        ));
    });
    assert!(rendered, "an event re-renders");
    // Other changes (e.g. `starting` → `idle`) may come first: poll until it shows.
    let mut watch = settle(&mut p, &env).0;
    let frame = wait_for("alpha asks in the pane", Duration::from_secs(15), || {
        let frame = plain(&p.render(10, 60).expect("render"));
        if frame.lines().any(|l| l.starts_with("! alpha")) {
            return Some(frame);
        }
        let w = watch.take().expect("pending poll");
        poll_through(&mut p, &env, w, || {});
        watch = settle(&mut p, &env).0;
        None
    });
    assert!(
        frame.lines().next().is_some_and(|h| h.contains("!1")),
        "{frame}"
    );
    let watch = watch.expect("the long-poll is re-issued");

    // `a` on the selected row (alpha, the first) approves through the CLI; the
    // waiting hook gets its answer.
    p.key_char('a').expect("key");
    let cmds = p.take_commands();
    let [Command::Run { argv, ctx }] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    assert_eq!(&argv[1..], ["approve", "alpha"]);
    let out = process(&env, argv).output().expect("approve");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    feed(&mut p, out, ctx);
    assert!(plain(&p.render(10, 60).expect("render")).contains("approved alpha"));
    let status = asking.expect("hook").wait().expect("hook exits");
    assert!(status.success());
    // The agent's next hook (its turn ends) moves alpha on; the pane follows. (The stub
    // agent sends no hooks itself, so the test sends the one a real agent would.)
    let mut watch = Some(watch);
    let mut stop = Some(());
    wait_for(
        "alpha leaves waiting_permission in the pane",
        Duration::from_secs(10),
        || {
            let w = watch.take().expect("pending poll");
            poll_through(&mut p, &env, w, || {
                if stop.take().is_some() {
                    let mut h = hook(
                        &env,
                        "alpha",
                        r#"{"hook_event_name":"Stop","session_id":"x"}"#,
                    );
                    assert!(h.wait().expect("hook").success());
                }
            });
            watch = settle(&mut p, &env).0;
            let frame = plain(&p.render(10, 60).expect("render"));
            frame.contains("○ alpha").then_some(())
        },
    );

    // Enter opens a floating command pane running `canopy attach alpha`, then focuses it.
    p.key_named(ENTER).expect("enter");
    let cmds = p.take_commands();
    let [
        Command::OpenCommandPane {
            floating: true,
            argv,
            pane,
            ..
        },
    ] = cmds.as_slice()
    else {
        panic!("{cmds:?}")
    };
    assert_eq!(&argv[1..], ["attach", "alpha"]);
    let pane = *pane;
    p.key_named(ENTER).expect("enter");
    assert_eq!(p.take_commands(), vec![Command::FocusTerminalPane(pane)]);

    // Detaching ends `canopy attach` with 0: the plugin closes its pane (Zellij would
    // keep it, showing the exit code), and Enter opens a new one. A failed attach keeps
    // its pane, so its message can be read.
    let no_ctx = BTreeMap::new();
    p.command_pane_exited(pane, Some(0), &no_ctx)
        .expect("exited");
    assert_eq!(p.take_commands(), vec![Command::CloseTerminalPane(pane)]);
    p.key_named(ENTER).expect("enter");
    let cmds = p.take_commands();
    let [Command::OpenCommandPane { pane: again, .. }] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    p.command_pane_exited(*again, Some(1), &no_ctx)
        .expect("exited");
    assert_eq!(p.take_commands(), vec![]);

    // j moves to beta; i shows its details with `canopy explain` output.
    p.key_char('j').expect("j");
    p.key_char('i').expect("i");
    let (_, others) = settle(&mut p, &env);
    assert_eq!(others, vec![]);
    let frame = plain(&p.render(24, 70).expect("render"));
    assert!(
        frame.contains("beta") && frame.contains("tokens") && frame.contains("explain"),
        "{frame}"
    );
    assert!(
        frame.lines().filter(|l| l.starts_with("  ")).count() > 1,
        "explain output: {frame}"
    );
}

/// `i` shows a session's pending review comments (from its record) and its changed
/// files with counts (the plugin runs `canopy diff NAME --stat --json`).
#[test]
fn details_list_pending_comments_and_changed_files() {
    let env = env_with_claude();
    env.ok(&["new", "delta", "--agent", "claude"]);
    let wt = env.worktree("delta");
    std::fs::write(wt.join("README.md"), "# proj\nmore\n").expect("write");
    std::fs::write(wt.join("lib.rs"), "fn a() {}\nfn b() {}\n").expect("write");
    env.ok(&["review", "delta", "--comment", "lib.rs:2", "b needs a doc"]);
    let Some(mut p) = load(&env) else { return };
    p.take_commands();
    p.grant(true).expect("grant");
    let (watch, _) = settle(&mut p, &env);
    assert!(watch.is_some(), "a long-poll after the status read");
    p.key_char('i').expect("i");
    let (_, others) = settle(&mut p, &env);
    assert_eq!(others, vec![]);
    let frame = plain(&p.render(30, 60).expect("render"));
    for want in [
        "comments 1 pending",
        "  lib.rs:2 b needs a doc",
        "files   2 changed",
        "  M +1 -0 README.md",
        "  ? +2 -0 lib.rs",
    ] {
        assert!(
            frame.lines().any(|l| l.starts_with(want)),
            "{want:?} missing in\n{frame}"
        );
    }
    assert!(frame.lines().all(|l| l.chars().count() <= 60), "{frame}");

    // The agent writes another file: its line counts move, and the list is read again.
    let mut watch = watch;
    let mut write = Some(());
    let frame = wait_for("new.txt in the details", Duration::from_secs(15), || {
        let w = watch.take().expect("pending poll");
        poll_through(&mut p, &env, w, || {
            if write.take().is_some() {
                std::fs::write(wt.join("new.txt"), "n\n").expect("write");
            }
        });
        watch = settle(&mut p, &env).0;
        let frame = plain(&p.render(30, 60).expect("render"));
        frame.contains("? +1 -0 new.txt").then_some(frame)
    });
    assert!(frame.contains("files   3 changed"), "{frame}");
    assert_eq!(p.stderr(), "", "no panic");
}

#[test]
fn denied_permission_is_said_in_the_pane_and_runs_nothing() {
    let env = env_with_claude();
    let Some(mut p) = load(&env) else { return };
    p.take_commands();
    assert!(p.grant(false).expect("deny"));
    for c in ['a', 'x', 'n', 'j'] {
        p.key_char(c).expect("key");
    }
    p.key_named(ENTER).expect("enter");
    p.timer(2.0).expect("timer");
    assert_eq!(p.take_commands(), vec![]);
    let frame = plain(&p.render(6, 40).expect("render"));
    assert!(frame.contains("permission denied"), "{frame}");
    assert_eq!(p.stderr(), "", "no panic");
}

#[test]
fn pipe_pushes_and_malformed_results_never_panic() {
    let env = env_with_claude();
    env.ok(&["new", "gamma", "--agent", "claude"]);
    let Some(mut p) = load(&env) else { return };
    p.take_commands();
    p.grant(true).expect("grant");
    let (watch, _) = settle(&mut p, &env);
    let (_, ctx) = watch.expect("poll");
    // Garbage from a broken host: the plugin re-reads the status instead of panicking.
    p.command_result(Some(0), b"\xff{not json".to_vec(), vec![], &ctx)
        .expect("garbage");
    let (watch, _) = settle(&mut p, &env);
    assert!(watch.is_some());
    // A push with `zellij pipe --name canopy::event -- LINE` applies like a watch line.
    let mut s = env.session("gamma");
    let line = {
        let mut v = serde_json::to_value(&s).expect("json");
        v["state"]["kind"] = "error".into();
        s = serde_json::from_value(v.clone()).expect("session");
        let _ = &s;
        serde_json::json!({"seq": env.seq() + 1000, "kind": "session_changed", "session": v})
            .to_string()
    };
    assert!(p.pipe("canopy::event", &line).expect("pipe"));
    assert!(plain(&p.render(6, 40).expect("render")).contains("✗ gamma"));
    // A remote host's sessions, as the hub relays them: a host column appears, the
    // dropped host's session says stale, and a state added later still shows a row.
    for (i, (name, kind, stale)) in [
        ("devbox:api", "tool", false),
        ("devbox:db", "hibernating", true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut v = serde_json::to_value(&s).expect("json");
        v["name"] = name.into();
        v["host"] = "devbox".into();
        v["state"]["kind"] = kind.into();
        if stale {
            v["stale_since"] = 1.into();
        }
        let seq = env.seq() + 1001 + i as u64;
        let line = serde_json::json!({"seq": seq, "kind": "session_added", "session": v});
        assert!(p.pipe("canopy::event", &line.to_string()).expect("pipe"));
    }
    let frame = plain(&p.render(6, 60).expect("render"));
    let rows: Vec<&str> = frame.lines().collect();
    assert!(
        rows[1].starts_with("✗ gamma") && rows[1].contains("local"),
        "{frame}"
    );
    assert!(
        rows[2].starts_with("◆ api") && rows[2].contains("devbox"),
        "{frame}"
    );
    assert!(
        rows[3].starts_with("· db (stale)") && rows[3].contains("devbox"),
        "{frame}"
    );
    assert!(!p.pipe("other::name", "x").expect("pipe"));
    assert_eq!(p.stderr(), "");
}

#[test]
fn setup_zellij_prints_and_writes_the_layout() {
    let env = env_with_claude();
    let out = env.ok(&["setup", "zellij"]);
    let config = env
        .paths
        .config_file
        .parent()
        .and_then(|p| p.parent())
        .expect("config home");
    let wasm = config.join("zellij/plugins/canopy-zellij.wasm");
    assert!(
        out.contains(&format!("plugin location=\"file:{}\"", wasm.display())),
        "{out}"
    );
    assert!(
        out.contains("default_tab_template") && out.contains("LaunchOrFocusPlugin"),
        "{out}"
    );
    // --write without a built plugin says where to get one.
    let err = env.fails(&["setup", "zellij", "--write"]);
    assert!(
        err.contains("canopy-zellij.wasm") && err.contains("wasm32-wasip1"),
        "{err}"
    );
    // With one: the plugin and the layout are installed.
    let built = env.dir.path().join("built.wasm");
    std::fs::write(&built, b"\0asm").expect("write");
    let dir = env.dir.path().join("zj");
    let out = env
        .canopy(&[
            "setup",
            "zellij",
            "--write",
            "--dir",
            dir.to_str().expect("utf-8"),
        ])
        .env("CANOPY_ZELLIJ_WASM", &built)
        .output()
        .expect("setup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.join("plugins/canopy-zellij.wasm")).expect("wasm"),
        b"\0asm"
    );
    let layout = std::fs::read_to_string(dir.join("layouts/canopy.kdl")).expect("layout");
    assert!(
        layout.contains("pane focus=true") && layout.contains("canopy-zellij.wasm"),
        "{layout}"
    );
}
