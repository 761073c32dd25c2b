//! View-model tests: the state machine driven by inputs, and the frames it renders.

use std::collections::BTreeMap;

use crate::app::{App, Config, Effect, Input, Key, Mode, Permission};
use crate::model::StateKind;
use crate::text::plain;
use crate::view;

fn session(name: &str, kind: &str, cost: &str, issue: Option<&str>) -> String {
    remote_session("local", name, kind, cost, issue)
}

/// A session of `host` (`local`, or a remote host whose sessions are `HOST:NAME`).
fn remote_session(host: &str, name: &str, kind: &str, cost: &str, issue: Option<&str>) -> String {
    let task = issue.map(|i| {
        format!(",\"task\":{{\"tracker\":\"jira\",\"id\":\"{i}\",\"title\":\"t\",\"url\":\"u\"}}")
    });
    format!(
        "{{\"name\":\"{name}\",\"host\":\"{host}\",\"agent\":\"claude\",\"repo\":\"/r\",\"worktree\":\"/w\",\
         \"branch\":\"canopy/{name}\",\"base\":\"main\",\"created_at\":0,\"state\":{{\"kind\":\"{kind}\",\"since\":1,\"source\":\"hook\"}},\
         \"usage\":{{\"cost_usd\":{cost},\"context\":{{\"used\":50,\"window\":200,\"percent\":25.0}},\
         \"tokens\":{{\"input\":1200,\"output\":800}},\"wall_ms\":65000,\"lines_added\":3}}{}}}",
        task.unwrap_or_default()
    )
}

/// `canopy status --json` with these sessions at `seq`.
fn status(seq: u64, sessions: &[String]) -> String {
    format!(
        "{{\"protocol\":1,\"host\":{{\"pid\":1,\"version\":\"0\",\"socket\":\"/s\",\"started_at\":0}},\
         \"seq\":{seq},\"counts\":{{}},\"total_cost_usd\":0.0,\"sessions\":[{}]}}",
        sessions.join(",")
    )
}

fn ctx(op: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("canopy_op".to_string(), op.to_string())])
}

fn done(op: &str, stdout: &str) -> Input {
    Input::CommandDone {
        exit: Some(0),
        stdout: stdout.into(),
        stderr: vec![],
        ctx: ctx(op),
    }
}

fn argv(effects: &[Effect]) -> Vec<String> {
    match effects {
        [Effect::Run { argv, .. }] | [Effect::OpenPane { argv, .. }] => argv.clone(),
        other => panic!("expected one command, got {other:?}"),
    }
}

/// An app that has been granted and has read a table of three sessions at seq 10.
fn loaded() -> App {
    let mut app = App::default();
    app.handle(Input::Load(Config::default()));
    app.handle(Input::Permission { granted: true });
    let status = status(
        10,
        &[
            session("web", "idle", "0.5", None),
            session("api", "waiting_permission", "null", Some("KEY-12")),
            session("docs", "thinking", "1.25", None),
        ],
    );
    app.handle(done("status", &status));
    app
}

/// The visible width of a rendered line (ANSI escapes take no cells).
fn width(line: &str) -> usize {
    let mut n = 0;
    let mut esc = false;
    for c in line.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            _ => n += 1,
        }
    }
    n
}

#[test]
fn asks_for_permission_and_runs_nothing_before_the_grant() {
    let mut app = App::default();
    let (fx, _) = app.handle(Input::Load(Config::default()));
    assert_eq!(fx, vec![Effect::Subscribe, Effect::RequestPermissions]);
    // Keys before the grant issue nothing (an attach would read a reply and panic).
    assert_eq!(app.handle(Input::Key(Key::Enter)).0, vec![]);
    assert_eq!(app.handle(Input::Key(Key::Char('a'))).0, vec![]);
    assert_eq!(app.handle(Input::Timer).0, vec![]);
    let (fx, _) = app.handle(Input::Permission { granted: false });
    assert_eq!(fx, vec![]);
    assert_eq!(app.permission, Some(Permission::Denied));
    let frame = plain(&view::render(&app, 6, 40));
    assert!(frame.contains("permission denied"), "{frame}");
}

#[test]
fn status_then_long_poll_chain() {
    let mut app = App::default();
    app.handle(Input::Load(Config {
        canopy: "/bin/canopy".into(),
        ..Config::default()
    }));
    let (fx, _) = app.handle(Input::Permission { granted: true });
    assert_eq!(argv(&fx), ["/bin/canopy", "status", "--json"]);
    // A second grant does not start a second chain.
    assert_eq!(app.handle(Input::Permission { granted: true }).0, vec![]);
    let (fx, render) = app.handle(done(
        "status",
        &status(10, &[session("a", "idle", "0", None)]),
    ));
    assert!(render);
    assert_eq!(
        argv(&fx),
        [
            "/bin/canopy",
            "watch",
            "--json",
            "--once",
            "--since",
            "10",
            "--timeout",
            "30"
        ]
    );
    // An event moves the table and the next poll starts after it.
    let line = format!(
        "{{\"seq\":11,\"kind\":\"session_changed\",\"session\":{}}}\n",
        session("a", "tool", "0", None)
    );
    let (fx, render) = app.handle(done("watch", &line));
    assert!(render);
    assert_eq!(argv(&fx)[5], "11");
    assert_eq!(app.sessions[0].state.kind, StateKind::Tool);
    // A timed-out poll (no output) re-issues with the same seq, no render.
    let (fx, render) = app.handle(done("watch", ""));
    assert!(!render);
    assert_eq!(argv(&fx)[5], "11");
    // A resync or garbage re-reads the status.
    let (fx, _) = app.handle(done("watch", "{\"seq\":11,\"kind\":\"resync\"}\n"));
    assert_eq!(argv(&fx)[1], "status");
    let (fx, _) = app.handle(done("watch", "{not json"));
    assert_eq!(argv(&fx)[1], "status");
}

#[test]
fn a_failing_host_is_reported_and_retried_once() {
    let mut app = App::default();
    app.handle(Input::Load(Config::default()));
    app.handle(Input::Permission { granted: true });
    let fail = |app: &mut App| {
        app.handle(Input::CommandDone {
            exit: Some(1),
            stdout: vec![],
            stderr: b"error: cannot start the host\n".to_vec(),
            ctx: ctx("status"),
        })
    };
    assert_eq!(fail(&mut app).0, vec![Effect::SetTimeout(2.0)]);
    assert_eq!(fail(&mut app).0, vec![], "one timer at a time");
    assert!(plain(&view::render(&app, 5, 60)).contains("cannot start the host"));
    assert_eq!(argv(&app.handle(Input::Timer).0)[1], "status");
}

#[test]
fn events_apply_in_order_and_keep_the_selection() {
    let mut app = loaded();
    assert_eq!(
        app.sessions
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["api", "docs", "web"]
    );
    app.handle(Input::Key(Key::Char('j')));
    assert_eq!(
        app.selected_session().map(|s| s.name.as_str()),
        Some("docs")
    );
    // A new session sorts before the selection; the selection stays on "docs".
    let added = format!(
        "{{\"seq\":11,\"kind\":\"session_added\",\"session\":{}}}",
        session("aaa", "starting", "0", None)
    );
    app.handle(done("watch", &added));
    assert_eq!(
        app.selected_session().map(|s| s.name.as_str()),
        Some("docs")
    );
    // Stale events (seq already applied, e.g. also pushed through a pipe) are ignored.
    let stale = format!(
        "{{\"seq\":11,\"kind\":\"session_removed\",\"session\":{}}}",
        session("aaa", "idle", "0", None)
    );
    let (_, changed) = app.handle(Input::Pipe {
        name: "canopy::event".into(),
        payload: stale,
    });
    assert!(!changed);
    assert_eq!(app.sessions.len(), 4);
    let removed = format!(
        "{{\"seq\":12,\"kind\":\"session_removed\",\"session\":{}}}",
        session("docs", "idle", "0", None)
    );
    let (_, changed) = app.handle(Input::Pipe {
        name: "canopy::event".into(),
        payload: removed,
    });
    assert!(changed);
    assert_eq!(app.sessions.len(), 3);
}

#[test]
fn keys_issue_the_right_commands() {
    let mut app = loaded();
    app.handle(Input::Key(Key::Down));
    app.handle(Input::Key(Key::Up));
    let (fx, _) = app.handle(Input::Key(Key::Char('a')));
    assert_eq!(argv(&fx), ["canopy", "approve", "api"]);
    assert_eq!(
        argv(&app.handle(Input::Key(Key::Char('d'))).0),
        ["canopy", "deny", "api"]
    );
    assert_eq!(
        argv(&app.handle(Input::Key(Key::Char('x'))).0),
        ["canopy", "stop", "api"]
    );
    let mut c = ctx("approve");
    c.insert("name".into(), "api".into());
    let (_, render) = app.handle(Input::CommandDone {
        exit: Some(0),
        stdout: vec![],
        stderr: vec![],
        ctx: c,
    });
    assert!(render);
    assert_eq!(app.flash.as_deref(), Some("approved api"));

    // Enter opens an attach pane the first time, then focuses it.
    let (fx, _) = app.handle(Input::Key(Key::Enter));
    assert_eq!(argv(&fx), ["canopy", "attach", "api"]);
    let Effect::OpenPane { ctx, .. } = &fx[0] else {
        unreachable!()
    };
    app.handle(Input::PaneOpened {
        pane: 7,
        ctx: ctx.clone(),
    });
    assert_eq!(
        app.handle(Input::Key(Key::Enter)).0,
        vec![Effect::FocusPane(7)]
    );
    app.handle(Input::PaneClosed { pane: 7 });
    assert_eq!(argv(&app.handle(Input::Key(Key::Enter)).0)[1], "attach");

    // `canopy attach` ending with 0 (a detach) closes its pane; a failure keeps it, and
    // a pane the plugin did not open is not its to close.
    let mut exits = |opened: Option<u32>, pane: u32, exit: i32| {
        if let Some(pane) = opened {
            app.handle(Input::PaneOpened {
                pane,
                ctx: ctx.clone(),
            });
        }
        let exit = Some(exit);
        app.handle(Input::PaneExited { pane, exit }).0
    };
    assert_eq!(exits(Some(8), 8, 0), vec![Effect::ClosePane(8)]);
    assert_eq!(exits(Some(9), 9, 1), vec![]);
    assert_eq!(exits(None, 3, 0), vec![]);
    assert_eq!(argv(&app.handle(Input::Key(Key::Enter)).0)[1], "attach");
}

#[test]
fn details_show_usage_and_explain() {
    let mut app = loaded();
    let (fx, _) = app.handle(Input::Key(Key::Char('i')));
    let [explain, diff] = fx.as_slice() else {
        panic!("{fx:?}")
    };
    assert_eq!(
        argv(std::slice::from_ref(explain)),
        ["canopy", "explain", "api"]
    );
    assert_eq!(
        argv(std::slice::from_ref(diff)),
        ["canopy", "diff", "api", "--stat", "--json"]
    );
    let mut c = ctx("explain");
    c.insert("name".into(), "api".into());
    app.handle(Input::CommandDone {
        exit: Some(0),
        stdout: b"waiting: hook said so\n".to_vec(),
        stderr: vec![],
        ctx: c,
    });
    let frame = plain(&view::render(&app, 20, 60));
    for want in [
        "in 1200 out 800",
        "cost    ?",
        "25%",
        "1m05s",
        "+3 -0",
        "KEY-12",
        "hook said so",
    ] {
        assert!(frame.contains(want), "{want} missing in\n{frame}");
    }
    // A running session's wall time goes on between usage reports.
    app.now_ms = 2 * 3600 * 1000 + 5 * 60 * 1000;
    let frame = plain(&view::render(&app, 20, 60));
    assert!(frame.contains("2h05m wall"), "{frame}");
    app.handle(Input::Key(Key::Esc));
    assert_eq!(app.mode(), &Mode::List);
}

#[test]
fn details_list_pending_comments_and_changed_files() {
    let mut app = loaded();
    let commented = session("api", "idle", "null", None).replace(
        "\"usage\"",
        "\"comments\":[{\"path\":\"src/a.rs\",\"line\":4,\"code\":\"x\",\"text\":\"why\\nnot\",\"created_at\":1}],\
         \"pr\":{\"provider\":\"gitlab\",\"number\":7,\"url\":\"https://gitlab.example/p/-/merge_requests/7\",\"state\":\"draft\"},\
         \"radar\":{\"shared_files\":[\"src/a.rs\"],\"shared_with\":[\"web\"]},\"usage\"",
    );
    app.handle(done(
        "watch",
        &format!("{{\"seq\":11,\"kind\":\"session_changed\",\"session\":{commented}}}\n"),
    ));
    app.handle(Input::Key(Key::Char('i')));
    assert!(plain(&view::render(&app, 30, 60)).contains("files …"));
    let mut c = ctx("diffstat");
    c.insert("name".into(), "api".into());
    let diff = "{\"base_commit\":\"abc\",\"files\":[        {\"path\":\"src/a.rs\",\"status\":\"modified\",\"added\":3,\"removed\":1,\"binary\":false,\"hunks\":[]},        {\"path\":\"new.txt\",\"status\":\"untracked\",\"added\":2,\"removed\":0,\"binary\":false,\"hunks\":[]}]}";
    let (_, render) = app.handle(Input::CommandDone {
        exit: Some(0),
        stdout: diff.into(),
        stderr: vec![],
        ctx: c.clone(),
    });
    assert!(render);
    let frame = plain(&view::render(&app, 30, 60));
    for want in [
        "request !7 draft",
        "⚠ shared with web: src/a.rs",
        "comments 1 pending",
        "  src/a.rs:4 why not",
        "files   2 changed",
        "  M +3 -1 src/a.rs",
        "  ? +2 -0 new.txt",
    ] {
        assert!(
            frame.lines().any(|l| l.starts_with(want)),
            "{want:?} missing in\n{frame}"
        );
    }
    // A failed read says why, in the same place.
    app.handle(Input::CommandDone {
        exit: Some(1),
        stdout: vec![],
        stderr: b"error: no session named \"api\"\n".to_vec(),
        ctx: c,
    });
    let frame = plain(&view::render(&app, 30, 60));
    assert!(frame.contains("files: no session named"), "{frame}");
}

#[test]
fn details_read_the_files_again_when_the_line_counts_move() {
    let mut app = loaded();
    let moved = |seq: u64, added: u64| {
        let s = session("api", "waiting_permission", "null", Some("KEY-12"))
            .replace("\"lines_added\":3", &format!("\"lines_added\":{added}"));
        done(
            "watch",
            &format!("{{\"seq\":{seq},\"kind\":\"session_changed\",\"session\":{s}}}\n"),
        )
    };
    let answer = || {
        let mut c = ctx("diffstat");
        c.insert("name".into(), "api".into());
        Input::CommandDone {
            exit: Some(0),
            stdout: b"{\"base_commit\":\"abc\",\"files\":[]}".to_vec(),
            stderr: vec![],
            ctx: c,
        }
    };
    let is_diff =
        |fx: &[Effect]| matches!(fx.last(), Some(Effect::Run { argv, .. }) if argv[1] == "diff");
    let (fx, _) = app.handle(Input::Key(Key::Char('i')));
    assert!(fx.len() == 2 && is_diff(&fx), "{fx:?}");
    // The worktree changes while the read runs: no second read in flight...
    let (fx, _) = app.handle(moved(11, 5));
    assert_eq!(fx.len(), 1, "the long-poll only: {fx:?}");
    // ...but once it answers, one more, for the counts it did not see.
    let (fx, _) = app.handle(answer());
    assert!(fx.len() == 1 && is_diff(&fx), "{fx:?}");
    let (fx, _) = app.handle(answer());
    assert_eq!(fx, vec![]);
    // Counts that stay put ask for nothing; counts that move ask again.
    let (fx, _) = app.handle(moved(12, 5));
    assert_eq!(fx.len(), 1, "{fx:?}");
    let (fx, _) = app.handle(moved(13, 6));
    assert!(fx.len() == 2 && is_diff(&fx), "{fx:?}");
}

#[test]
fn the_new_form_builds_the_command() {
    let mut app = loaded();
    app.handle(Input::Key(Key::Char('n')));
    for c in "fix-1".chars() {
        app.handle(Input::Key(Key::Char(c)));
    }
    app.handle(Input::Key(Key::Enter));
    for c in "codex".chars() {
        app.handle(Input::Key(Key::Char(c)));
    }
    app.handle(Input::Key(Key::Tab));
    for c in "KEY-9".chars() {
        app.handle(Input::Key(Key::Char(c)));
    }
    assert!(plain(&view::render(&app, 10, 40)).contains("issue: KEY-9"));
    let (fx, _) = app.handle(Input::Key(Key::Enter));
    assert_eq!(
        argv(&fx),
        [
            "canopy", "new", "fix-1", "--agent", "codex", "--issue", "KEY-9"
        ]
    );
    assert_eq!(app.mode(), &Mode::List);
}

#[test]
fn rows_show_badge_name_agent_cost_context_issue() {
    let app = loaded();
    let frame = plain(&view::render(&app, 8, 60));
    let lines: Vec<&str> = frame.lines().collect();
    assert_eq!(lines[0], "canopy 3 !1 ●1 ○1");
    assert!(lines[1].starts_with("! api"), "{frame}");
    assert!(
        lines[1].contains("claude")
            && lines[1].contains("?")
            && lines[1].contains("25%")
            && lines[1].contains("KEY-12")
    );
    assert!(lines[2].contains("$1.25"));
    // The selected row is drawn in reverse video.
    assert!(
        view::render(&app, 8, 60)
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("\x1b[7m"))
    );
}

#[test]
fn every_frame_fits_the_pane_exactly() {
    let mut app = loaded();
    for mode in 0..3 {
        match mode {
            1 => drop(app.handle(Input::Key(Key::Char('i')))),
            2 => {
                app.handle(Input::Key(Key::Esc));
                app.handle(Input::Key(Key::Char('n')));
            }
            _ => {}
        }
        for cols in 0..90 {
            for rows in 0..12 {
                let frame = view::render(&app, rows, cols);
                let lines: Vec<&str> = if frame.is_empty() {
                    vec![]
                } else {
                    frame.split('\n').collect()
                };
                assert_eq!(
                    lines.len(),
                    if cols == 0 { 0 } else { rows },
                    "rows {rows} cols {cols}"
                );
                for l in lines {
                    assert!(width(l) <= cols, "{cols} cols, {} wide: {l:?}", width(l));
                }
            }
        }
    }
}

#[test]
fn a_second_host_gets_a_column_and_a_stale_marker() {
    let mut app = App::default();
    app.handle(Input::Load(Config::default()));
    app.handle(Input::Permission { granted: true });
    let stale = remote_session("devbox", "devbox:db", "idle", "0", None).replacen(
        "\"host\":",
        "\"stale_since\":5,\"host\":",
        1,
    );
    app.handle(done(
        "status",
        &status(
            10,
            &[
                remote_session("devbox", "devbox:api", "waiting_permission", "0", None),
                stale,
                session("web", "idle", "0", None),
            ],
        ),
    ));
    // Local first, then each host's sessions together.
    let names: Vec<&str> = app.sessions.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["web", "devbox:api", "devbox:db"]);
    let frame = plain(&view::render(&app, 8, 60));
    let lines: Vec<&str> = frame.lines().collect();
    assert!(
        lines[1].starts_with("○ web ") && lines[1].contains("local"),
        "{frame}"
    );
    assert!(
        lines[2].starts_with("! api ") && lines[2].contains("devbox"),
        "{frame}"
    );
    assert!(
        lines[3].contains("db (stale)") && lines[3].contains("devbox"),
        "{frame}"
    );
    // Approving acts on the full name.
    app.handle(Input::Key(Key::Char('j')));
    let (fx, _) = app.handle(Input::Key(Key::Char('a')));
    assert_eq!(argv(&fx)[1..], ["approve", "devbox:api"]);
    // A pushed change keeps the host's group.
    let line = format!(
        "{{\"seq\":11,\"kind\":\"session_changed\",\"session\":{}}}\n",
        remote_session("devbox", "devbox:api", "tool", "0", None)
    );
    app.handle(done("watch", &line));
    assert_eq!(app.sessions[1].state.kind, StateKind::Tool);
    assert_eq!(app.sessions.len(), 3);
}

#[test]
fn one_machine_shows_no_host_column() {
    let frame = plain(&view::render(&loaded(), 8, 60));
    assert!(!frame.contains("local"), "{frame}");
}
