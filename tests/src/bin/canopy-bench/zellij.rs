//! Zellij: state change → plugin re-render latency. The release plugin `.wasm` runs in
//! the wasmtime harness (tests/src/zellij_harness.rs) with its long-poll
//! (`canopy watch --json --once --since SEQ`) actually executed against the real host;
//! a `canopy hook` changes a session's state; the time is taken until the plugin's
//! next rendered frame shows the new badge. The path measured: hook → registry → the
//! waiting `watch` process prints and exits → `RunCommandResult` → plugin → render.
//! Needs `--features zellij-bench` (wasmtime is otherwise only a dev-dependency).

#[cfg(feature = "zellij-bench")]
#[path = "../../zellij_harness.rs"]
mod harness;

use super::Figure;

#[cfg(not(feature = "zellij-bench"))]
pub fn figures(_samples: usize) -> Vec<Figure> {
    eprintln!("zellij: skipped; run with `--features zellij-bench`");
    vec![]
}

#[cfg(feature = "zellij-bench")]
pub fn figures(samples: usize) -> Vec<Figure> {
    use std::collections::BTreeMap;
    use std::process::Stdio;
    use std::time::Instant;

    use canopy_tests::{TestEnv, canopy_bin, spawn_with_stdin};
    use harness::{Command, Plugin, plain};

    let mut env = TestEnv::new();
    let stubs = env.stub_agents(&["claude"], "exec sleep 100000");
    env.prepend_path(&stubs);
    env.ok(&["new", "z", "--agent", "claude"]);
    let bin = canopy_bin();
    let bin_str = bin.to_string_lossy().into_owned();
    let mut p = Plugin::load(
        &harness::build_plugin()
            .expect("the wasm32-wasip1 target (rustup target add wasm32-wasip1)"),
        &[("canopy", &bin_str)],
    )
    .expect("load");
    p.grant(true).expect("grant");

    let run = |argv: &[String]| {
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        let mut cmd = env.canopy(&args);
        cmd.stdin(Stdio::null());
        cmd
    };
    // Run non-poll commands to completion; return the pending poll.
    let settle = |p: &mut Plugin| -> (Vec<String>, BTreeMap<String, String>) {
        let mut watch = None;
        loop {
            let cmds = p.take_commands();
            if cmds.is_empty() {
                return watch.expect("a pending long-poll");
            }
            for c in cmds {
                if let Command::Run { argv, ctx } = c {
                    if argv[1] == "watch" {
                        watch = Some((argv, ctx));
                    } else {
                        let o = run(&argv).output().expect("run");
                        p.command_result(o.status.code(), o.stdout, o.stderr, &ctx)
                            .expect("feed");
                    }
                }
            }
        }
    };
    let mut pending = settle(&mut p);
    let mut lat = Vec::new();
    for i in 0..samples {
        let (event, badge) = if i % 2 == 0 {
            ("UserPromptSubmit", "● z")
        } else {
            ("Stop", "○ z")
        };
        let mut poll = run(&pending.0);
        let child = std::thread::spawn(move || poll.output().expect("watch"));
        // Let the poll subscribe first, as it has in steady state.
        std::thread::sleep(std::time::Duration::from_millis(30));
        let start = Instant::now();
        let mut hook = spawn_with_stdin(
            env.hook_command("z", "claude").stdout(Stdio::null()),
            format!("{{\"hook_event_name\":\"{event}\",\"session_id\":\"x\"}}").as_bytes(),
        );
        // Other changes (usage reports) may come first: follow the plugin's polls until
        // the frame shows the new state.
        let mut child = child;
        let mut rounds = 0;
        let elapsed = loop {
            let out = child.join().expect("join");
            p.command_result(out.status.code(), out.stdout, out.stderr, &pending.1)
                .expect("feed");
            let frame = plain(&p.render(20, 60).expect("render"));
            if frame.contains(badge) {
                break super::ms_since(start);
            }
            rounds += 1;
            assert!(rounds < 20, "expected {badge} in\n{frame}");
            pending = settle(&mut p);
            let mut poll = run(&pending.0);
            child = std::thread::spawn(move || poll.output().expect("watch"));
        };
        hook.wait().expect("hook");
        lat.push(elapsed);
        pending = settle(&mut p);
    }
    let lat = super::Samples::new(lat);
    vec![
        Figure::new(
            "Zellij plugin: state change → re-render (median)",
            lat.median(),
            "ms",
            super::Target::Below(100.0),
            format!(
                "{samples} hook-driven state changes; release .wasm in wasmtime through the real plugin ABI; \
                 its `canopy watch --once` long-poll run as a real process; until the rendered frame shows the new badge"
            ),
        ),
        Figure::new(
            "Zellij plugin: state change → re-render (p95)",
            lat.p(0.95),
            "ms",
            super::Target::Below(100.0),
            "same run",
        ),
    ]
}
