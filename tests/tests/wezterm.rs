//! The WezTerm plugin (`wezterm-lua/plugin/init.lua`) run under mlua — Lua 5.4, as
//! WezTerm embeds — against a model of WezTerm written from its source
//! (`tests/wezterm/model.rs`, `tests/wezterm/wezterm.lua`): userdata tab and pane
//! objects, first-handler-only `format-tab-title`, a tab bar drawn again only on
//! WezTerm's triggers, strict action constructors and colours. Fed snapshot files shaped
//! exactly like the host's (serialised from the protocol types, and one written by a real
//! host). Also `canopy attach`'s OSC 1337 user variable and `canopy setup wezterm`.

#[path = "../wezterm/model.rs"]
mod model;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use canopy_protocol::Session;
use canopy_protocol::params::{HostInfo, Status};
use canopy_tests::{Term, TestEnv, wait_for};
use mlua::{Function, Table, Value};
use model::{PaneSpec, Wez};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// A pane as `canopy attach NAME` leaves it: the `canopy_session` user var set.
fn attached(name: &str) -> PaneSpec {
    let mut p = PaneSpec {
        title: "canopy".into(),
        ..Default::default()
    };
    p.user_vars.insert("canopy_session".into(), name.into());
    p
}

fn shell() -> PaneSpec {
    PaneSpec {
        title: "zsh".into(),
        ..Default::default()
    }
}

/// WezTerm with the plugin applied with `opts` (a Lua table expression) after `before`
/// (Lua run first, e.g. another plugin's handler), reading `status`.
struct Harness {
    wez: Wez,
    _dir: tempfile::TempDir,
    status: PathBuf,
    config: Table,
}

impl Harness {
    fn new(opts: &str) -> Self {
        Self::with(opts, "", None)
    }

    fn with(opts: &str, before: &str, status: Option<&Path>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let wez = Wez::new(&home, &home.join(".config/wezterm")).expect("wezterm");
        let status = status.map_or_else(|| dir.path().join("status.json"), Path::to_path_buf);
        let lua = &wez.lua;
        // Wide tabs, so titles are not cut in these tests.
        lua.load("config = { tab_max_width = 32 }")
            .exec()
            .expect("config");
        lua.load(before).exec().expect("before");
        let src =
            std::fs::read_to_string(repo_file("wezterm-lua/plugin/init.lua")).expect("plugin");
        let plugin: Table = lua
            .load(src)
            .set_name("@wezterm-lua/plugin/init.lua")
            .eval()
            .expect("load the plugin");
        lua.globals().set("canopy", plugin).expect("global");
        let opts: Table = lua.load(format!("return {opts}")).eval().expect("opts");
        if opts.get::<Value>("status_file").expect("get").is_nil() {
            opts.set("status_file", status.display().to_string())
                .expect("set");
        }
        let config: Table = lua.globals().get("config").expect("config");
        lua.load("return canopy.apply_to_config")
            .eval::<Function>()
            .expect("fn")
            .call::<()>((config.clone(), opts))
            .expect("apply_to_config");
        Harness {
            wez,
            _dir: dir,
            status,
            config,
        }
    }

    fn eval<T: mlua::FromLuaMulti>(&self, code: &str) -> T {
        self.wez
            .lua
            .load(code)
            .eval()
            .unwrap_or_else(|e| panic!("lua failed: {e}\n{code}"))
    }

    fn write(&self, status: &Status) {
        let json = serde_json::to_vec(status).expect("json");
        canopy::snapshot::write_atomically(&self.status, &json).expect("write");
    }

    /// A window with one tab per name, each attached to that session.
    fn window(&self, names: &[&str]) -> u64 {
        self.wez
            .open_window(names.iter().map(|n| vec![attached(n)]).collect())
    }

    fn tick(&self, window: u64) {
        self.wez.tick(window).expect("update-status");
    }

    /// The tab bar as the user sees it now.
    fn bar(&self, window: u64) -> Vec<String> {
        self.wez.tab_bar(window)
    }

    /// The right status without the badge hash (the colour of its last space).
    fn right(&self, window: u64) -> String {
        strip_hash(&self.wez.right_status(window))
    }
}

fn strip_hash(s: &str) -> String {
    match s.rfind("<#") {
        Some(i) if s.ends_with("> ") && s.len() - i == 10 => s[..i].to_owned(),
        _ => s.to_owned(),
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
        // An empty f64 sum is -0.0; the host starts from 0.
        total_cost_usd: sessions
            .iter()
            .filter_map(|s| s.usage.cost_usd)
            .sum::<f64>()
            + 0.0,
        sessions,
        hosts: Vec::new(),
        notices: Vec::new(),
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

/// Bug 1: WezTerm passes TabInformation/PaneInformation as userdata; every attached tab
/// gets its badge, and `badge(tab)` works on them for other plugins.
#[test]
fn badges_show_on_wezterms_userdata_tabs() {
    let h = Harness::new("{ states = { error = { symbol = 'E', color = '#ff0000' } } }");
    h.write(&status(
        KINDS
            .iter()
            .map(|(k, _, _)| session(&format!("s-{k}"), k, None))
            .collect(),
    ));
    let names: Vec<String> = KINDS.iter().map(|(k, _, _)| format!("s-{k}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let w = h.window(&refs);
    h.tick(w);
    let bar = h.bar(w);
    for (i, (kind, symbol, color)) in KINDS.iter().enumerate() {
        let (symbol, color) = if *kind == "error" {
            ("E", "#ff0000")
        } else {
            (*symbol, *color)
        };
        assert_eq!(
            bar[i],
            format!(" <{color}>{symbol}<reset> s-{kind} "),
            "{kind}"
        );
    }
    // A tab with no pane, and one whose pane is not attached: WezTerm's own titles.
    let w = h.wez.open_window(vec![vec![], vec![shell()]]);
    h.tick(w);
    assert_eq!(h.bar(w), [" no pane ", "2: zsh"]);
    assert!(h.wez.logs("warn").is_empty(), "{:?}", h.wez.logs("warn"));
}

/// Bug 3, and the README's route for tab-bar plugins: only the first `format-tab-title`
/// handler runs. A tabline.wez-like handler registered first calls `canopy.badge(tab)`
/// from a component (a function given the TabInformation, its result wrapped in Text).
#[test]
fn another_title_plugin_registered_first() {
    let tabline = "wezterm = require('wezterm')
        tabline_components = {}
        wezterm.on('format-tab-title', function(tab)
          local items = { { Text = ' ' .. (tab.tab_index + 1) .. ' ' } }
          for _, c in ipairs(tabline_components) do items[#items + 1] = { Text = c(tab) } end
          return items
        end)";
    let h = Harness::with("{ tab_title = false }", tabline, None);
    h.eval::<()>(
        "tabline_components[1] = function(tab) return wezterm.format(canopy.badge(tab)) end",
    );
    h.write(&status(vec![session("a", "waiting_permission", None)]));
    let w = h.window(&["a", "b"]);
    h.tick(w);
    assert_eq!(h.bar(w), [" 1 <Red>!<reset>", " 2 "]);
    assert!(h.wez.logs("warn").is_empty(), "{:?}", h.wez.logs("warn"));

    // With Canopy's own handler registered second, WezTerm never calls it: the plugin
    // says so once, instead of silently showing no badge.
    let h = Harness::with("{}", tabline, None);
    h.write(&status(vec![session("a", "idle", None)]));
    let w = h.window(&["a"]);
    for _ in 0..3 {
        h.tick(w);
    }
    assert_eq!(h.bar(w), [" 1 "]);
    let warns = h.wez.logs("warn");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(
        warns[0].contains("another format-tab-title handler"),
        "{warns:?}"
    );
    assert_eq!(h.wez.handlers("format-tab-title"), 2);
}

/// Bug 4: two sessions swap states (same counts, same cost): the badges follow, with the
/// right status on or off, and the tab bar is drawn again only when a badge changed.
#[test]
fn badges_follow_changes_that_leave_the_status_alone() {
    for opts in ["{}", "{ right_status = false }"] {
        let h = Harness::new(opts);
        let w = h.window(&["a", "b"]);
        let swap = |flip: bool| {
            let (x, y) = if flip {
                ("thinking", "idle")
            } else {
                ("idle", "thinking")
            };
            h.write(&status(vec![session("a", x, None), session("b", y, None)]));
        };
        swap(false);
        h.tick(w);
        assert_eq!(
            h.bar(w),
            [" <Green>●<reset> a ", " <Blue>◐<reset> b "],
            "{opts}"
        );
        swap(true);
        h.tick(w);
        assert_eq!(
            h.bar(w),
            [" <Blue>◐<reset> a ", " <Green>●<reset> b "],
            "{opts}"
        );

        // Measured: 100 ticks with nothing new draw nothing; 20 swaps draw 20 times.
        let before = h.wez.redraws(w);
        for _ in 0..100 {
            h.tick(w);
        }
        assert_eq!(h.wez.redraws(w), before, "{opts}: idle ticks redrew");
        for i in 0..20 {
            swap(i % 2 == 1);
            h.tick(w);
        }
        assert_eq!(h.wez.redraws(w) - before, 20, "{opts}");
        eprintln!(
            "{opts}: {} redraws for 100 idle ticks and 20 badge changes",
            h.wez.redraws(w) - before
        );
    }
}

/// The cost of an update that must hash: 200 sessions, their file changing every time.
#[test]
fn badge_hash_is_cheap() {
    let h = Harness::new("{}");
    let w = h.window(&["s0"]);
    let n = 50;
    let start = Instant::now();
    for i in 0..n {
        let sessions = (0..200)
            .map(|j| {
                session(
                    &format!("s{j}"),
                    if (i + j) % 2 == 0 { "idle" } else { "tool" },
                    None,
                )
            })
            .collect();
        h.write(&status(sessions));
        h.tick(w);
    }
    let per = start.elapsed() / n;
    eprintln!("update-status with 200 sessions, file changed each time: {per:?}");
    // Generous: a debug build, and most of it is reading and parsing the file.
    assert!(per < Duration::from_millis(500), "{per:?}");
}

#[test]
fn right_status_counts_and_cost() {
    let h = Harness::new("{}");
    h.write(&status(vec![
        session("a", "idle", Some(0.5)),
        session("b", "idle", Some(0.25)),
        session("c", "waiting_permission", Some(1.0)),
        session("d", "thinking", None),
    ]));
    let w = h.window(&["a"]);
    h.tick(w);
    assert_eq!(
        h.right(w),
        "<Red>! 1<reset>  <Green>● 2<reset>  <Blue>◐ 1<reset>  $1.75  "
    );
    let h = Harness::new("{ show_cost = false }");
    h.write(&status(vec![session("a", "error", Some(3.0))]));
    let w = h.window(&["a"]);
    h.tick(w);
    assert_eq!(h.right(w), "<Red>✗ 1<reset>  ");
}

#[test]
fn format_tab_title_never_touches_the_disk() {
    let h = Harness::new("{}");
    h.write(&status(vec![session("a", "idle", None)]));
    let w = h.window(&["a"]);
    h.tick(w);
    std::fs::remove_file(&h.status).expect("rm");
    h.eval::<()>(
        "local guard = function() error('I/O in format-tab-title') end
         saved = { io.open, os.getenv }
         io.open, os.getenv = guard, guard",
    );
    h.wez.set_user_var(w, 0, "other", "x").expect("user var");
    h.eval::<()>("io.open, os.getenv = saved[1], saved[2]");
    assert_eq!(h.bar(w), [" <Green>●<reset> a "]);
    assert!(h.wez.logs("warn").is_empty(), "{:?}", h.wez.logs("warn"));
}

fn toasts(h: &Harness, windows: &[u64]) -> Vec<String> {
    windows
        .iter()
        .flat_map(|w| h.wez.toasts(*w))
        .map(|t| format!("{}: {}", t.title, t.message))
        .collect()
}

#[test]
fn one_toast_per_transition() {
    let h = Harness::new("{}");
    let (w1, w2) = (h.window(&["a"]), h.window(&["b"]));
    let both = |h: &Harness| {
        h.tick(w1);
        h.tick(w2);
    };
    h.write(&status(vec![
        session("a", "waiting_permission", None),
        session("b", "thinking", None),
        session("c", "starting", None),
    ]));
    both(&h);
    assert_eq!(toasts(&h, &[w1, w2]), Vec::<String>::new());
    h.write(&status(vec![
        session("a", "waiting_permission", None),
        session("b", "waiting_permission", None),
        session("c", "idle", None),
    ]));
    both(&h);
    both(&h);
    assert_eq!(
        toasts(&h, &[w1, w2]),
        ["Canopy: b: waiting permission: Bash"]
    );
    let mut s = status(vec![
        session("a", "error", None),
        session("b", "idle", None),
        session("c", "idle", None),
        session("d", "waiting_permission", None),
    ]);
    s.sessions[0].state.detail = Some("API Error: 400".into());
    h.write(&s);
    both(&h);
    assert_eq!(
        toasts(&h, &[w1, w2]),
        [
            "Canopy: b: waiting permission: Bash",
            "Canopy: a: error: API Error: 400",
            "Canopy: b: finished",
            "Canopy: d: waiting permission: Bash",
        ]
    );
    h.write(&status(vec![session("c", "exited", None)]));
    both(&h);
    assert_eq!(
        toasts(&h, &[w1, w2]).last().map(String::as_str),
        Some("Canopy: c: exited")
    );
    assert_eq!(h.wez.toasts(w1)[0].timeout_ms, Some(5000));

    let h = Harness::new("{ notify = { on = { 'error' }, timeout_ms = 2000 } }");
    let w = h.window(&["a"]);
    for kind in ["thinking", "waiting_permission", "error"] {
        h.write(&status(vec![session("a", kind, None)]));
        h.tick(w);
    }
    assert_eq!(toasts(&h, &[w]), ["Canopy: a: error"]);
    assert_eq!(h.wez.toasts(w)[0].timeout_ms, Some(2000));
    let h = Harness::new("{ notify = { enabled = false } }");
    let w = h.window(&["a"]);
    for kind in ["thinking", "error"] {
        h.write(&status(vec![session("a", kind, None)]));
        h.tick(w);
    }
    assert_eq!(toasts(&h, &[w]), Vec::<String>::new());
}

/// Bug 5: options are checked when the config loads, every bad one named in one
/// `log_error` line, and the rest of the plugin keeps working with the defaults for them.
#[test]
fn options_are_checked_at_config_time() {
    // Colours as WezTerm parses them: an ANSI name, a CSS name, the #, rgb and hsl forms.
    let h = Harness::new(
        "{ states = { idle = { color = 'orange' }, error = { color = 'rgb(255, 0, 0)' },
                      thinking = { color = 'hsl:120 50 50' }, tool = { color = '#0af' } } }",
    );
    h.write(&status(vec![session("a", "idle", Some(1.0))]));
    let w = h.window(&["a"]);
    h.tick(w);
    assert_eq!(h.bar(w), [" <orange>●<reset> a "]);
    assert_eq!(h.right(w), "<orange>● 1<reset>  $1.00  ");
    assert!(h.wez.logs("error").is_empty(), "{:?}", h.wez.logs("error"));

    let h = Harness::new(
        "{ states = { idle = { color = 'orang' }, error = { color = 'Pinkish' } },
           notify = { timeout_ms = -1 }, picker = { key = 'S', mods = 'CTRL|SHIFTY' },
           colour = 1, tab_title = 'yes' }",
    );
    let errors = h.wez.logs("error");
    assert_eq!(errors.len(), 1, "{errors:?}");
    for want in [
        "opts.states.idle.color is not a colour WezTerm knows: \"orang\"",
        "opts.states.error.color is not a colour WezTerm knows: \"Pinkish\"",
        "opts.notify.timeout_ms must be a whole number of milliseconds from 0 to 600000, not -1",
        "opts.picker.mods has an unknown modifier \"SHIFTY\"",
        "opts.colour is not an option",
        "opts.tab_title must be a boolean, not string",
    ] {
        assert!(errors[0].contains(want), "{want}: {}", errors[0]);
    }
    assert!(errors[0].starts_with("canopy.wezterm: "), "{}", errors[0]);
    // Still working, with the defaults for what was bad.
    h.write(&status(vec![session("a", "thinking", None)]));
    let w = h.window(&["a"]);
    h.tick(w);
    h.write(&status(vec![session("a", "error", None)]));
    h.tick(w);
    assert_eq!(h.bar(w), [" <Red>✗<reset> a "]);
    assert_eq!(h.right(w), "<Red>✗ 1<reset>  $0.00  ");
    assert_eq!(h.wez.toasts(w)[0].timeout_ms, Some(5000));

    for (src, want) in [
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
            "opts.notify.on [1] must be one of",
        ),
        (
            "{ notify = { timeout_ms = 1.5 } }",
            "opts.notify.timeout_ms must be a whole number",
        ),
        (
            "{ picker = { mods = 'CTRL' } }",
            "opts.picker.mods needs picker.key",
        ),
        (
            "{ picker = { keys = 'x' } }",
            "opts.picker has an unknown field keys",
        ),
        ("{ canopy = '' }", "opts.canopy must not be empty"),
    ] {
        let h = Harness::new(src);
        let errors = h.wez.logs("error");
        assert!(
            errors.len() == 1 && errors[0].contains(want),
            "{src}: {errors:?}"
        );
    }
    let h = Harness::new("{}");
    h.eval::<()>("canopy.setup('x') canopy.setup(nil) canopy.setup(nil)");
    assert!(h.wez.logs("error")[0].contains("opts must be a table, not string"));
    assert_eq!(h.wez.handlers("update-status"), 1);
    assert_eq!(h.wez.handlers("format-tab-title"), 1);
    let h = Harness::new("{ tab_title = false }");
    assert_eq!(h.wez.handlers("format-tab-title"), 0);
}

/// WezTerm's default key assignments (docs/config/default-keys.md, plus CTRL+SHIFT+P, the
/// command palette in wezterm-gui/src/commands.rs), as `MODS+KEY` with letters upper-case.
fn wezterm_default_keys() -> Vec<String> {
    let mut keys = vec![];
    for k in "CVNTWRKLPUFXZ".chars().chain("123456789".chars()) {
        keys.push(format!("CTRL|SHIFT+{k}"));
    }
    for k in "CVMNTWRHKF0123456789".chars() {
        keys.push(format!("SUPER+{k}"));
    }
    for k in [
        "Tab",
        "PageUp",
        "PageDown",
        "Space",
        "LeftArrow",
        "RightArrow",
        "UpArrow",
        "DownArrow",
    ] {
        keys.push(format!("CTRL|SHIFT+{k}"));
    }
    keys
}

fn normal_key(mods: &str, key: &str) -> String {
    let mut mods: Vec<&str> = mods.split('|').map(str::trim).collect();
    mods.sort_by_key(|m| match *m {
        "CTRL" => 0,
        "SHIFT" => 1,
        _ => 2,
    });
    format!("{}+{}", mods.join("|"), key.to_uppercase())
}

/// Bug 2: the key the snippet and README suggest is none of WezTerm's defaults (Copy
/// was CTRL|SHIFT+C); the plugin binds nothing unless asked.
#[test]
fn picker_key_collides_with_no_wezterm_default() {
    let defaults = wezterm_default_keys();
    let env = TestEnv::new();
    let snippet = String::from_utf8_lossy(&env.run(&["setup", "wezterm"]).stdout).into_owned();
    assert!(snippet.contains("picker = { key ="), "{snippet}");
    let readme = std::fs::read_to_string(repo_file("README.md")).expect("README");
    for text in [snippet.as_str(), readme.as_str()] {
        for line in text.lines().filter(|l| l.contains("picker = { key =")) {
            let key = line.split('\'').nth(1).expect("key");
            let mods = line.split('\'').nth(3).expect("mods");
            let k = normal_key(mods, key);
            assert!(!defaults.contains(&k), "{k} is a WezTerm default: {line}");
        }
    }
    let h = Harness::new("{}");
    assert_eq!(h.eval::<Option<Table>>("return config.keys"), None);
}

/// A picker label ends with the session's PR or MR (when the host has one in the record),
/// its pending review comments and the conflict radar's mark.
#[test]
fn picker_shows_the_pr_pending_comments_and_conflicts() {
    let h = Harness::new("{}");
    let mut reviewed = session("rev", "idle", None);
    reviewed.comments = ["a", "b"]
        .map(|text| canopy_protocol::session::Comment {
            path: "src/a.rs".into(),
            line: 3,
            code: "x".into(),
            text: text.into(),
            created_at: 1,
        })
        .into();
    let mut doc =
        serde_json::to_value(status(vec![reviewed, session("web", "idle", None)])).expect("json");
    doc["sessions"][0]["radar"] = json!({"conflicts": ["src/a.rs"]});
    doc["sessions"][1]["pr"] = json!({"provider": "github", "number": 12, "url": "https://github.com/o/r/pull/12", "state": "draft"});
    canopy::snapshot::write_atomically(&h.status, doc.to_string().as_bytes()).expect("write");
    let w = h.wez.open_window(vec![vec![shell()]]);
    h.tick(w);
    let labels: Vec<String> = h.eval(
        "local out = {} for _, c in ipairs(canopy.choices()) do out[#out + 1] = c.label end return out",
    );
    assert_eq!(
        labels[..2],
        [
            "● rev  idle  claude  2 comments  ⚠ conflicts",
            "● web  idle  claude  PR #12 draft"
        ]
    );
}

/// Sessions of a remote host: the picker groups them by host (local first), each label
/// leads with its host, and a dropped host's sessions say `(stale)`; the choice's id is
/// still the full `HOST:NAME` the CLI takes.
#[test]
fn picker_groups_sessions_by_host() {
    let h = Harness::new("{ picker = { key = 'S', mods = 'CTRL|SHIFT', new_session = false } }");
    let remote = |name: &str, kind: &str, stale: bool| {
        let mut s = session(&format!("devbox:{name}"), kind, None);
        s.host = "devbox".into();
        s.stale_since = stale.then_some(1_700_000_000_000);
        s
    };
    h.write(&status(vec![
        remote("api", "waiting_permission", false),
        session("web", "idle", None),
        remote("db", "idle", true),
    ]));
    let w = h.wez.open_window(vec![vec![shell()]]);
    h.tick(w);
    let choices: Vec<String> = h.eval(
        "local out = {} for _, c in ipairs(canopy.choices()) do out[#out + 1] = c.id .. ' | ' .. c.label end return out",
    );
    assert_eq!(
        choices,
        [
            "web | ● local  web  idle  claude",
            "devbox:api | ! devbox  api  waiting_permission: Bash  claude",
            "devbox:db | ● devbox  db  idle (stale)  claude",
        ]
    );
    // One machine: no host in the labels.
    h.write(&status(vec![session("web", "idle", None)]));
    h.tick(w);
    let label: String = h.eval("return canopy.choices()[1].label");
    assert_eq!(label, "● web  idle  claude");
}

#[test]
fn picker_orders_by_attention_and_spawns_or_activates() {
    let h = Harness::new(
        "{ canopy = '/opt/bin/canopy', picker = { key = 'S', mods = 'CTRL|SHIFT', agent = 'claude' } }",
    );
    h.write(&status(vec![
        session("zeta", "idle", None),
        session("alpha", "thinking", Some(0.1234)),
        session("mid", "error", None),
        session("ask", "waiting_permission", None),
        session("done", "exited", None),
    ]));
    let mut here = shell();
    here.cwd = Some("/home/u/proj".into());
    // Tab 2 already shows `zeta`.
    let w = h
        .wez
        .open_window(vec![vec![here], vec![shell(), attached("zeta")]]);
    h.tick(w);
    let key: String = h.eval("return config.keys[1].key .. ' ' .. config.keys[1].mods");
    assert_eq!(key, "S CTRL|SHIFT");
    h.wez.press(w, &h.config, 1).expect("press");
    let selector = h
        .wez
        .actions(w)
        .into_iter()
        .rev()
        .find_map(|a| a.get("InputSelector").cloned())
        .expect("selector");
    let choices = selector["choices"].as_array().expect("choices");
    let ids: Vec<&str> = choices
        .iter()
        .map(|c| c["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        ids,
        ["ask", "mid", "zeta", "alpha", "done", " new session "]
    );
    assert_eq!(
        choices[0]["label"],
        "! ask  waiting_permission: Bash  claude"
    );
    assert_eq!(choices[3]["label"], "◐ alpha  thinking  claude  $0.12");

    let last = |name: &str| {
        h.wez
            .actions(w)
            .into_iter()
            .rev()
            .find_map(|a| a.get(name).cloned())
    };
    h.wez
        .answer(w, "InputSelector", &[Some("alpha"), Some("x")])
        .expect("choose");
    let spawn = last("SpawnCommandInNewTab").expect("spawned");
    assert_eq!(spawn["args"], json!(["/opt/bin/canopy", "attach", "alpha"]));
    assert_eq!(spawn["cwd"], "/r.worktrees/alpha");
    let n = h.wez.actions(w).len();
    h.wez
        .answer(w, "InputSelector", &[Some("zeta"), Some("x")])
        .expect("choose");
    assert_eq!(h.wez.actions(w)[n..], [json!({ "ActivateTab": 1 })]);
    let n = h.wez.actions(w).len();
    h.wez
        .answer(w, "InputSelector", &[None, None])
        .expect("cancel");
    assert_eq!(h.wez.actions(w).len(), n);
    h.wez
        .answer(w, "InputSelector", &[Some(" new session "), Some("x")])
        .expect("choose");
    h.wez
        .answer(w, "PromptInputLine", &[Some("feat-x")])
        .expect("answer");
    let spawn = last("SpawnCommandInNewTab").expect("spawned");
    assert_eq!(
        spawn["args"],
        json!([
            "sh",
            "-c",
            "\"$0\" new \"$1\" --agent \"$2\" && exec \"$0\" attach \"$1\" || { echo \"[press Enter]\"; read -r _; }",
            "/opt/bin/canopy",
            "feat-x",
            "claude"
        ])
    );
    assert_eq!(spawn["cwd"], "/home/u/proj");
}

#[test]
fn quiet_without_a_host_and_with_a_torn_file() {
    let h = Harness::new("{}");
    let w = h.window(&["a"]);
    h.tick(w);
    assert_eq!(h.bar(w), ["1: canopy"]);
    assert_eq!(h.wez.right_status(w), "");
    assert_eq!(h.eval::<usize>("return #canopy.choices()"), 1);
    h.write(&status(vec![session("a", "idle", Some(0.5))]));
    h.tick(w);
    let good = std::fs::read_to_string(&h.status).expect("read");
    for torn in [&good[..good.len() / 2], "", "\0\0garbage", "null", "[1,2]"] {
        std::fs::write(&h.status, torn).expect("write");
        h.tick(w);
        assert_eq!(h.bar(w), [" <Green>●<reset> a "], "{torn:?}");
        assert_eq!(h.right(w), "<Green>● 1<reset>  $0.50  ");
    }
    // The host stops (the file goes): everything disappears, quietly.
    std::fs::remove_file(&h.status).expect("rm");
    h.tick(w);
    assert_eq!(h.bar(w), ["1: canopy"]);
    assert_eq!(h.wez.right_status(w), "");
    assert!(h.wez.toasts(w).is_empty());
    assert!(h.wez.logs("warn").is_empty() && h.wez.logs("error").is_empty());
}

/// The plugin reads what a real host writes.
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
    let h = Harness::with("{}", "", Some(&file));
    let w = h.window(&["live", "gone"]);
    h.tick(w);
    assert_eq!(
        h.bar(w),
        [" <Green>●<reset> live ", " <Grey>■<reset> gone "]
    );
    assert_eq!(
        h.right(w),
        format!(
            "<Green>● 1<reset>  <Grey>■ 1<reset>  ${:.2}  ",
            st.total_cost_usd
        )
    );
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

/// `canopy setup wezterm --write` with a temporary HOME and XDG_CONFIG_HOME, then the
/// printed snippet in a `wezterm.lua` loaded as WezTerm loads it (its package.path):
/// badged tabs, and the installed file watched for reloads.
#[test]
fn setup_wezterm_write_then_the_snippet_as_wezterm_loads_it() {
    let env = TestEnv::new();
    let out = env.ok(&["setup", "wezterm", "--write"]);
    let config_dir = env.dir.path().join("config/wezterm");
    let installed = config_dir.join("canopy/init.lua");
    let source = std::fs::read_to_string(repo_file("wezterm-lua/plugin/init.lua")).expect("src");
    let text = std::fs::read_to_string(&installed).expect("installed");
    assert!(
        text.trim_end() == source.trim_end(),
        "the embedded plugin is not the repository's"
    );
    assert!(
        out.contains("require('canopy')") && !out.contains("package.path"),
        "{out}"
    );

    let file = env.paths.snapshot_file();
    let wezterm_lua = config_dir.join("wezterm.lua");
    std::fs::write(
        &wezterm_lua,
        format!(
            "local wezterm = require('wezterm')\nlocal config = wezterm.config_builder()\n{out}\
             config.tab_max_width = 32\nreturn config"
        ),
    )
    .expect("wezterm.lua");
    let wez = Wez::new(env.dir.path(), &config_dir).expect("wezterm");
    // WezTerm started in the same session as the host: the host's runtime dir.
    let runtime = file.parent().and_then(Path::parent).expect("runtime dir");
    wez.set_env(&[("XDG_RUNTIME_DIR", runtime.display().to_string())])
        .expect("env");
    let config = wez.load_config(&wezterm_lua).expect("config loads");
    wez.lua
        .globals()
        .set("config", config.clone())
        .expect("global");
    assert!(
        wez.watched().contains(&installed.display().to_string()),
        "{:?}",
        wez.watched()
    );
    assert_eq!(
        config
            .get::<Table>("keys")
            .expect("keys")
            .len()
            .expect("len"),
        1
    );
    assert!(wez.logs("error").is_empty(), "{:?}", wez.logs("error"));

    env.ok(&["new", "demo", "--agent", "sh"]);
    wait_for("demo in status.json", WAIT, || {
        std::fs::read_to_string(&file)
            .ok()?
            .contains("\"demo\"")
            .then_some(())
    });
    let w = wez.open_window(vec![vec![shell()], vec![attached("demo")]]);
    wez.tick(w).expect("tick");
    let bar = wez.tab_bar(w);
    assert_eq!(bar[0], "1: zsh");
    assert!(bar[1].ends_with("<reset> demo "), "{bar:?}");

    // Elsewhere than WezTerm's config dir, the snippet puts the parent on package.path.
    let dir = env.dir.path().join("plugins/canopy-dev");
    let out = env.ok(&[
        "setup",
        "wezterm",
        "--write",
        "--dir",
        &dir.display().to_string(),
    ]);
    assert!(dir.join("init.lua").is_file());
    let parent = env.dir.path().join("plugins");
    assert!(
        out.contains(&format!(
            "package.path = '{}/?/init.lua;' .. package.path",
            parent.display()
        )) && out.contains("require('canopy-dev')"),
        "{out}"
    );
    let err = env.run(&["setup", "wezterm", "--dir", "/tmp/a.b"]);
    assert!(!err.status.success());
    // Without --write it only prints, and says where the plugin would be.
    let env = TestEnv::new();
    let out = env.run(&["setup", "wezterm"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--write") && stderr.contains("config/wezterm/canopy/init.lua"),
        "{stderr}"
    );
}
