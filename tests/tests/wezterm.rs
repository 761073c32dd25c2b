//! The WezTerm plugin (`wezterm-lua/plugin/init.lua`) run under mlua — Lua 5.4, as
//! WezTerm embeds — with a stub `wezterm` module (`tests/wezterm/wezterm.lua`), fed
//! snapshot files shaped exactly like the host's (serialised from the protocol types,
//! and one written by a real host). Also `canopy attach`'s OSC 1337 user variable and
//! `canopy setup wezterm`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use canopy_protocol::Session;
use canopy_protocol::params::{HostInfo, Status};
use canopy_tests::{Term, TestEnv, wait_for};
use mlua::serde::SerializeOptions;
use mlua::{Function, Lua, LuaSerdeExt, Table, Value};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// A Lua state with the stub `wezterm` module registered, as `require('wezterm')`.
fn lua_with_stub() -> Lua {
    let lua = Lua::new();
    // As WezTerm's json_parse: JSON null becomes nil, invalid JSON raises an error.
    let json_parse = lua
        .create_function(|lua, text: String| {
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(mlua::Error::external)?;
            lua.to_value_with(
                &v,
                SerializeOptions::new()
                    .serialize_none_to_null(false)
                    .serialize_unit_to_null(false),
            )
        })
        .expect("json_parse");
    let src = std::fs::read_to_string(repo_file("tests/wezterm/wezterm.lua")).expect("stub");
    let (wez, stub): (Table, Table) = lua
        .load(src)
        .set_name("@tests/wezterm/wezterm.lua")
        .call(json_parse)
        .expect("load the stub");
    lua.register_module("wezterm", wez).expect("register");
    lua.globals().set("stub", stub).expect("global stub");
    lua
}

/// The plugin loaded and applied with `opts` (a Lua table expression), reading `status`.
struct Harness {
    lua: Lua,
    _dir: tempfile::TempDir,
    status: PathBuf,
}

impl Harness {
    fn new(opts: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = dir.path().join("status.json");
        Self::with_file(opts, &status, dir)
    }

    fn with_file(opts: &str, status: &Path, dir: tempfile::TempDir) -> Self {
        let lua = lua_with_stub();
        let src =
            std::fs::read_to_string(repo_file("wezterm-lua/plugin/init.lua")).expect("plugin");
        let plugin: Table = lua
            .load(src)
            .set_name("@wezterm-lua/plugin/init.lua")
            .eval()
            .expect("load the plugin");
        lua.globals().set("canopy", plugin).expect("global");
        lua.globals()
            .set("config", lua.create_table().expect("t"))
            .expect("global");
        let opts: Table = lua.load(format!("return {opts}")).eval().expect("opts");
        if opts.get::<Value>("status_file").expect("get").is_nil() {
            opts.set("status_file", status.display().to_string())
                .expect("set");
        }
        let apply: Function = lua.load("canopy.apply_to_config").eval().expect("fn");
        let config: Table = lua.globals().get("config").expect("config");
        apply.call::<()>((config, opts)).expect("apply_to_config");
        Harness {
            lua,
            _dir: dir,
            status: status.to_path_buf(),
        }
    }

    /// Run Lua and return its value.
    fn eval<T: mlua::FromLuaMulti>(&self, code: &str) -> T {
        self.lua
            .load(code)
            .eval()
            .unwrap_or_else(|e| panic!("lua failed: {e}\n{code}"))
    }

    fn write(&self, status: &Status) {
        let json = serde_json::to_vec(status).expect("json");
        canopy::snapshot::write_atomically(&self.status, &json).expect("write");
    }

    /// The rendered title of a tab attached to `name` (None: WezTerm's own title).
    fn title(&self, name: &str) -> Option<String> {
        self.eval(&format!(
            "local t = stub.emit('format-tab-title', stub.tab_info({{ canopy_session = {name:?} }}), {{}}, {{}}, config, false, 32)
             return t and wezterm_format(t)"
        ))
    }
}

/// A session record as the host would hold it.
fn session(name: &str, kind: &str, cost: Option<f64>) -> Session {
    let mut v = json!({
        "name": name, "agent": "claude", "command": ["claude"], "repo": "/r",
        "worktree": format!("/r.worktrees/{name}"), "branch": format!("canopy/{name}"),
        "base": "main", "created_at": 1_700_000_000_000u64,
        "state": {"kind": kind, "since": 1_700_000_000_000u64, "source": "hook"},
    });
    if kind == "tool" || kind == "waiting_permission" {
        v["state"]["tool"] = json!("Bash");
    }
    if let Some(c) = cost {
        v["usage"] = json!({ "cost_usd": c });
    }
    serde_json::from_value(v).expect("session")
}

/// A status document as the host writes it, counts and total included.
fn status(sessions: Vec<Session>) -> Status {
    let mut counts = std::collections::BTreeMap::new();
    for s in &sessions {
        *counts.entry(s.state.kind.as_str().to_owned()).or_insert(0) += 1;
    }
    Status {
        protocol: 1,
        host: HostInfo {
            pid: 1,
            version: "0.1.0".into(),
            socket: "/run/canopy/canopy.sock".into(),
            started_at: 1,
        },
        seq: 1,
        counts,
        total_cost_usd: sessions.iter().filter_map(|s| s.usage.cost_usd).sum(),
        sessions,
    }
}

const KINDS: [(&str, &str, &str); 9] = [
    ("starting", "◌", "Grey"),
    ("idle", "●", "Green"),
    ("thinking", "◐", "Blue"),
    ("tool", "⚙", "Teal"),
    ("waiting_permission", "!", "Red"),
    ("waiting_input", "?", "Yellow"),
    ("compacting", "◑", "Purple"),
    ("error", "✗", "Red"),
    ("exited", "■", "Grey"),
];

fn every_state() -> Status {
    status(
        KINDS
            .iter()
            .map(|(k, _, _)| session(&format!("s-{k}"), k, None))
            .collect(),
    )
}

fn setup_format(h: &Harness) {
    h.lua
        .globals()
        .set(
            "wezterm_format",
            h.eval::<Function>("return require('wezterm').format"),
        )
        .expect("global");
}

fn harness(opts: &str) -> Harness {
    let h = Harness::new(opts);
    setup_format(&h);
    h.eval::<()>("w = stub.window()");
    h
}

fn update(h: &Harness) {
    h.eval::<()>("stub.emit('update-status', w, stub.pane())");
}

#[test]
fn badges_for_each_state_and_overrides() {
    let h = harness("{ states = { error = { symbol = 'E', color = '#ff0000' } } }");
    h.write(&every_state());
    update(&h);
    for (kind, symbol, color) in KINDS {
        let name = format!("s-{kind}");
        let (symbol, color) = if kind == "error" {
            ("E", "#ff0000")
        } else {
            (symbol, color)
        };
        assert_eq!(
            h.title(&name).as_deref(),
            Some(format!(" <{color}>{symbol}<reset> {name} ").as_str()),
            "{kind}"
        );
        // The exported badge, for other tab-bar plugins.
        let badge: String = h.eval(&format!(
            "return wezterm_format(canopy.badge(stub.tab_info({{ canopy_session = {name:?} }})))"
        ));
        assert_eq!(badge, format!("<{color}>{symbol}<reset>"));
    }
    // A pane that is not attached, or attached to a session the host doesn't know.
    assert_eq!(h.title("nope"), None);
    let plain: Option<String> =
        h.eval("return stub.emit('format-tab-title', stub.tab_info(), {}, {}, config, false, 32)");
    assert_eq!(plain, None);
    assert_eq!(h.eval::<usize>("return #canopy.badge(stub.tab_info())"), 0);
    // Long names are cut to the tab's width.
    let title: String = h.eval(
        "return wezterm_format(stub.emit('format-tab-title', stub.tab_info({ canopy_session = 's-waiting_permission' }), {}, {}, config, false, 10))",
    );
    assert_eq!(title, " <Red>!<reset> s-wait ");
}

#[test]
fn format_tab_title_never_touches_the_disk() {
    let h = harness("{}");
    h.write(&status(vec![session("a", "idle", None)]));
    update(&h);
    // Even with the file gone and io/os unusable, titles come from the cache.
    std::fs::remove_file(&h.status).expect("rm");
    h.eval::<()>(
        "local guard = function() error('I/O in format-tab-title') end
         saved = { io.open, os.getenv }
         io.open, os.getenv = guard, guard",
    );
    assert_eq!(h.title("a").as_deref(), Some(" <Green>●<reset> a "));
    h.eval::<()>("io.open, os.getenv = saved[1], saved[2]");
}

#[test]
fn right_status_counts_and_cost() {
    let h = harness("{}");
    h.write(&status(vec![
        session("a", "idle", Some(0.5)),
        session("b", "idle", Some(0.25)),
        session("c", "waiting_permission", Some(1.0)),
        session("d", "thinking", None),
    ]));
    update(&h);
    let right: String = h.eval("return w.right_status");
    // Most urgent first, then the total cost.
    assert_eq!(
        right,
        "<Red>! 1<reset>  <Green>● 2<reset>  <Blue>◐ 1<reset>  $1.75  "
    );
    let h = harness("{ show_cost = false }");
    h.write(&status(vec![session("a", "error", Some(3.0))]));
    update(&h);
    assert_eq!(
        h.eval::<String>("return w.right_status"),
        "<Red>✗ 1<reset>  "
    );
}

#[test]
fn one_toast_per_transition() {
    let h = harness("{}");
    h.eval::<()>("w2 = stub.window()");
    let toasts = |h: &Harness| -> Vec<String> {
        h.eval::<Vec<Table>>("local t = {} for _, x in ipairs(w.toasts) do t[#t+1] = x end for _, x in ipairs(w2.toasts) do t[#t+1] = x end return t")
            .into_iter()
            .map(|t| {
                format!(
                    "{}: {}",
                    t.get::<String>("title").expect("title"),
                    t.get::<String>("message").expect("message")
                )
            })
            .collect()
    };
    let both = |h: &Harness| {
        update(h);
        h.eval::<()>("stub.emit('update-status', w2, stub.pane())");
    };
    // What is there at startup is not news.
    h.write(&status(vec![
        session("a", "waiting_permission", None),
        session("b", "thinking", None),
        session("c", "starting", None),
    ]));
    both(&h);
    assert_eq!(toasts(&h), Vec::<String>::new());
    // Transitions: b asks for permission, c starts (not a finish), then b finishes,
    // a fails, and a new session arrives already waiting.
    h.write(&status(vec![
        session("a", "waiting_permission", None),
        session("b", "waiting_permission", None),
        session("c", "idle", None),
    ]));
    both(&h);
    both(&h); // the same file again, in two windows: no repeat
    assert_eq!(toasts(&h), ["Canopy: b: waiting permission: Bash"]);
    // A new file with the same states (another field changed): no repeat either.
    h.write(&status(vec![
        session("a", "waiting_permission", None),
        session("b", "waiting_permission", Some(0.01)),
        session("c", "idle", None),
    ]));
    both(&h);
    assert_eq!(toasts(&h).len(), 1);
    let mut s = status(vec![
        session("a", "error", None),
        session("b", "idle", None),
        session("c", "idle", None),
        session("d", "waiting_permission", None),
    ]);
    s.sessions[0].state.detail = Some("API Error: 400".into());
    h.write(&s);
    both(&h);
    both(&h);
    assert_eq!(
        toasts(&h),
        [
            "Canopy: b: waiting permission: Bash",
            "Canopy: a: error: API Error: 400",
            "Canopy: b: finished",
            "Canopy: d: waiting permission: Bash",
        ]
    );
    // The agent exits: that is a finish too.
    h.write(&status(vec![session("c", "exited", None)]));
    both(&h);
    assert_eq!(
        toasts(&h).last().map(String::as_str),
        Some("Canopy: c: exited")
    );
    assert_eq!(toasts(&h).len(), 5);

    // Configurable: only errors, or none at all.
    let h = harness("{ notify = { on = { 'error' } } }");
    h.eval::<()>("w2 = stub.window()");
    h.write(&status(vec![session("a", "thinking", None)]));
    update(&h);
    h.write(&status(vec![session("a", "waiting_permission", None)]));
    update(&h);
    h.write(&status(vec![session("a", "error", None)]));
    update(&h);
    assert_eq!(toasts(&h), ["Canopy: a: error"]);
    let h = harness("{ notify = { enabled = false } }");
    h.eval::<()>("w2 = stub.window()");
    h.write(&status(vec![session("a", "thinking", None)]));
    update(&h);
    h.write(&status(vec![session("a", "error", None)]));
    update(&h);
    assert_eq!(toasts(&h), Vec::<String>::new());
}

#[test]
fn picker_orders_by_attention_and_spawns_or_activates() {
    let h = harness(
        "{ canopy = '/opt/bin/canopy', picker = { key = 'C', mods = 'CTRL|SHIFT', agent = 'claude' } }",
    );
    h.write(&status(vec![
        session("zeta", "idle", None),
        session("alpha", "thinking", Some(0.1234)),
        session("mid", "error", None),
        session("ask", "waiting_permission", None),
        session("done", "exited", None),
    ]));
    update(&h);
    // The key binding is added to config.keys.
    let key: String = h.eval("return config.keys[1].key .. ' ' .. config.keys[1].mods");
    assert_eq!(key, "C CTRL|SHIFT");
    // Tab 1 (index 1) already shows `zeta`.
    h.eval::<()>(
        "w = stub.window({ { stub.pane() }, { stub.pane(), stub.pane({ canopy_session = 'zeta' }) } })
         here = stub.pane({}, '/home/u/proj')
         w:perform_action(config.keys[1].action, here)",
    );
    let choices: Vec<(String, String)> = h
        .eval::<Vec<Table>>("return stub.last(w, 'InputSelector').choices")
        .into_iter()
        .map(|c| (c.get("id").expect("id"), c.get("label").expect("label")))
        .collect();
    let ids: Vec<&str> = choices.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["ask", "mid", "zeta", "alpha", "done", " new session "]
    );
    assert_eq!(choices[0].1, "! ask  waiting_permission: Bash  claude");
    assert_eq!(choices[3].1, "◐ alpha  thinking  claude  $0.12");
    assert_eq!(choices[5].1, "+ new session…");

    // A session with no tab: a new tab attaches to it, in its worktree.
    h.eval::<()>("stub.choose(w, here, 'alpha', 'x')");
    let spawned: String =
        h.eval("local s = stub.last(w, 'SpawnCommandInNewTab') return table.concat(s.args, ' ') .. ' @ ' .. s.cwd");
    assert_eq!(spawned, "/opt/bin/canopy attach alpha @ /r.worktrees/alpha");
    // A session already in a tab: that tab is activated, nothing spawned.
    h.eval::<()>("n = #w.actions stub.choose(w, here, 'zeta', 'x')");
    assert_eq!(h.eval::<i64>("return stub.last(w, 'ActivateTab')"), 1);
    assert_eq!(
        h.eval::<i64>("return #w.actions - n"),
        1,
        "ActivateTab only"
    );
    // Cancelling does nothing.
    h.eval::<()>("n = #w.actions stub.choose(w, here, nil, nil)");
    assert_eq!(h.eval::<i64>("return #w.actions - n"), 0);
    // A new session: asks for a name, then one tab runs `canopy new` and attaches.
    h.eval::<()>("stub.choose(w, here, ' new session ', 'x') stub.answer(w, here, 'feat-x')");
    let spawned: Vec<String> = h.eval("return stub.last(w, 'SpawnCommandInNewTab').args");
    assert_eq!(
        spawned,
        [
            "sh",
            "-c",
            "\"$0\" new \"$1\" --agent \"$2\" && exec \"$0\" attach \"$1\" || { echo \"[press Enter]\"; read -r _; }",
            "/opt/bin/canopy",
            "feat-x",
            "claude"
        ]
    );
    assert_eq!(
        h.eval::<String>("return stub.last(w, 'SpawnCommandInNewTab').cwd"),
        "/home/u/proj"
    );
    // Without picker.key no binding is added.
    let h = harness("{}");
    assert_eq!(h.eval::<Option<Table>>("return config.keys"), None);
}

#[test]
fn quiet_without_a_host_and_with_a_torn_file() {
    let h = harness("{}");
    // No file: no errors, no badges, an empty right status, no picker entries but "new".
    update(&h);
    assert_eq!(h.title("a"), None);
    assert_eq!(h.eval::<String>("return w.right_status"), "");
    assert_eq!(h.eval::<usize>("return #canopy.choices()"), 1);
    assert_eq!(h.eval::<usize>("return #stub.logs"), 0);
    // A good file, then a half-written one and garbage: the last good one stays.
    h.write(&status(vec![session("a", "idle", Some(0.5))]));
    update(&h);
    let good = std::fs::read_to_string(&h.status).expect("read");
    for torn in [&good[..good.len() / 2], "", "\0\0garbage", "null", "[1,2]"] {
        std::fs::write(&h.status, torn).expect("write");
        update(&h);
        assert_eq!(
            h.title("a").as_deref(),
            Some(" <Green>●<reset> a "),
            "{torn:?}"
        );
        assert_eq!(
            h.eval::<String>("return w.right_status"),
            "<Green>● 1<reset>  $0.50  "
        );
    }
    // The host stops (the file goes): everything disappears, quietly.
    std::fs::remove_file(&h.status).expect("rm");
    update(&h);
    assert_eq!(h.title("a"), None);
    assert_eq!(h.eval::<String>("return w.right_status"), "");
    assert_eq!(h.eval::<usize>("return #w.toasts"), 0);
    let errors: usize = h.eval("local n = 0 for _, l in ipairs(stub.logs) do if l.level ~= 'info' then n = n + 1 end end return n");
    assert_eq!(errors, 0);
    // A status_file in a directory that doesn't exist is just as quiet.
    let h = harness("{ status_file = '/nonexistent/canopy/status.json' }");
    update(&h);
    assert_eq!(h.eval::<String>("return w.right_status"), "");
}

#[test]
fn options_are_validated_with_clear_errors() {
    let lua = lua_with_stub();
    let src = std::fs::read_to_string(repo_file("wezterm-lua/plugin/init.lua")).expect("plugin");
    let plugin: Table = lua.load(src).eval().expect("load");
    let setup: Function = plugin.get("setup").expect("setup");
    for (src, want) in [
        ("{ colour = 1 }", "opts.colour is not an option"),
        (
            "{ tab_title = 'yes' }",
            "opts.tab_title must be a boolean, not string",
        ),
        (
            "{ states = { busy = {} } }",
            "opts.states has an unknown state busy",
        ),
        (
            "{ states = { idle = { symbol = 1 } } }",
            "opts.states.idle.symbol must be a string",
        ),
        (
            "{ notify = { on = { 'done' } } }",
            "opts.notify.on[1] must be one of",
        ),
        (
            "{ picker = { mods = 'CTRL' } }",
            "opts.picker.mods needs picker.key",
        ),
        (
            "{ picker = { keys = 'x' } }",
            "opts.picker has an unknown field keys",
        ),
        ("'x'", "opts must be a table"),
    ] {
        let opts: Value = lua.load(format!("return {src}")).eval().expect("opts");
        let err = setup.call::<()>(opts).expect_err(src);
        assert!(err.to_string().contains(want), "{src}: {err}");
        assert!(err.to_string().contains("canopy.wezterm:"), "{err}");
    }
    // setup twice registers each handler once.
    setup.call::<()>(Value::Nil).expect("setup");
    setup.call::<()>(Value::Nil).expect("setup");
    let stub: Table = lua.globals().get("stub").expect("stub");
    let count: Function = stub.get("count").expect("count");
    assert_eq!(count.call::<i64>("update-status").expect("n"), 1);
    assert_eq!(count.call::<i64>("format-tab-title").expect("n"), 1);
    // tab_title = false: no format-tab-title handler (another plugin owns titles).
    let lua = lua_with_stub();
    let src = std::fs::read_to_string(repo_file("wezterm-lua/plugin/init.lua")).expect("plugin");
    let plugin: Table = lua.load(src).eval().expect("load");
    let opts: Table = lua
        .load("return { tab_title = false }")
        .eval()
        .expect("opts");
    plugin
        .get::<Function>("setup")
        .expect("setup")
        .call::<()>(opts)
        .expect("setup");
    let stub: Table = lua.globals().get("stub").expect("stub");
    let count: Function = stub.get("count").expect("count");
    assert_eq!(count.call::<i64>("format-tab-title").expect("n"), 0);
}

/// The plugin reads what a real host writes: sessions in different states, from the
/// real `status.json`.
#[test]
fn reads_the_real_hosts_snapshot() {
    let env = TestEnv::new();
    env.ok(&["new", "live", "--agent", "sh"]);
    env.ok(&["new", "gone", "--agent", "sh"]);
    env.ok(&["stop", "gone", "--force"]);
    let file = env.paths.snapshot_file();
    let st: Status = wait_for("live idle and gone exited in status.json", WAIT, || {
        let st: Status = serde_json::from_str(&std::fs::read_to_string(&file).ok()?).ok()?;
        let kind = |n: &str| {
            st.sessions
                .iter()
                .find(|s| s.name == n)
                .map(|s| s.state.kind.as_str())
        };
        (kind("live") == Some("idle") && kind("gone") == Some("exited")).then_some(st)
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let h = Harness::with_file("{}", &file, dir);
    setup_format(&h);
    h.eval::<()>("w = stub.window()");
    update(&h);
    assert_eq!(h.title("live").as_deref(), Some(" <Green>●<reset> live "));
    assert_eq!(h.title("gone").as_deref(), Some(" <Grey>■<reset> gone "));
    assert_eq!(
        h.eval::<String>("return w.right_status"),
        format!(
            "<Green>● 1<reset>  <Grey>■ 1<reset>  ${:.2}  ",
            st.total_cost_usd
        )
    );
    let ids: Vec<String> =
        h.eval("local t = {} for _, c in ipairs(canopy.choices()) do t[#t+1] = c.id end return t");
    assert_eq!(ids, ["live", "gone", " new session "]);
}

#[test]
fn attach_sets_the_wezterm_user_var() {
    let env = TestEnv::new();
    env.ok(&["new", "demo", "--agent", "sh"]);
    let mut cmd = env.canopy(&["attach", "demo"]);
    cmd.env("TERM_PROGRAM", "WezTerm");
    let mut term = Term::spawn(&cmd, 24, 80);
    // base64("demo") = "ZGVtbw=="
    term.expect("\x1b]1337;SetUserVar=canopy_session=ZGVtbw==\x07", WAIT);
    term.write(b"\x1c"); // ctrl-\ detaches
    assert_eq!(term.wait(WAIT), 0);
    term.expect("\x1b]1337;SetUserVar=canopy_session=\x07", WAIT);

    // Other terminals never see the sequence.
    let mut term = Term::spawn(&env.canopy(&["attach", "demo"]), 24, 80);
    term.expect("\x1b[?1049h", WAIT);
    term.write(b"\x1c");
    assert_eq!(term.wait(WAIT), 0);
    assert!(!term.output().contains("1337"), "{:?}", term.output());
}

#[test]
fn setup_wezterm_installs_a_plugin_the_snippet_loads() {
    let env = TestEnv::new();
    let dir = env.dir.path().join("wez");
    let out = env.ok(&[
        "setup",
        "wezterm",
        "--write",
        "--dir",
        &dir.display().to_string(),
    ]);
    let installed = std::fs::read_to_string(dir.join("plugin/init.lua")).expect("installed");
    let source = std::fs::read_to_string(repo_file("wezterm-lua/plugin/init.lua")).expect("src");
    assert!(
        installed == source,
        "the embedded plugin is not the repository's"
    );
    assert!(out.contains("dofile("), "{out}");
    // The snippet works as printed, in a wezterm.lua.
    let lua = lua_with_stub();
    let config: Table = lua
        .load(format!(
            "local wezterm = require('wezterm')\nlocal config = {{}}\n{out}\nreturn config"
        ))
        .eval()
        .unwrap_or_else(|e| panic!("snippet failed: {e}\n{out}"));
    let keys: Table = config.get("keys").expect("keys");
    assert_eq!(keys.len().expect("len"), 1);
    // Without --write it only prints, and says where the plugin would be.
    let out = env.run(&["setup", "wezterm"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--write"),
        "{out:?}"
    );
    let default = env.dir.path().join("config/wezterm/canopy/plugin/init.lua");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&default.display().to_string()),
        "{out:?}"
    );
}

#[test]
fn loads_through_package_path() {
    let lua = lua_with_stub();
    let root = repo_file("").display().to_string();
    let loaded: bool = lua
        .load(format!(
            "package.path = {:?} .. '/?/plugin/init.lua;' .. package.path
             local before = {{}}
             for k in pairs(_G) do before[k] = true end
             local canopy = require('wezterm-lua')
             canopy.apply_to_config({{}}, {{ status_file = '/nonexistent/status.json' }})
             stub.emit('update-status', stub.window(), stub.pane())
             for k in pairs(_G) do assert(before[k], 'the plugin set a global: ' .. k) end
             return type(canopy.apply_to_config) == 'function' and type(canopy.setup) == 'function'
                and type(canopy.badge) == 'function'",
            root.trim_end_matches('/')
        ))
        .eval()
        .expect("require");
    assert!(loaded);
}
