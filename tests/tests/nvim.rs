//! The Neovim plugin (`nvim-plugin/`) in a real `nvim --embed --headless`, driven with
//! nvim-rs, against a real host running the fake agents: the sidebar follows sessions
//! live, every subcommand and sidebar key does what it says, `:checkhealth canopy` is
//! clean, and the plugin reconnects by itself when the host restarts. Also the host side
//! of the push: `subscribe {nvim_exec_lua}` frames events as `nvim_exec_lua`
//! notifications.
//!
//! Every Neovim test runs once per Neovim in `CANOPY_NVIM_BINS` (colon-separated paths;
//! default: `nvim` on PATH), and a failure names the version. CI lists Debian's 0.7.2 and
//! 0.11.4. Each run also fails when `:messages` shows a deprecation or an error, or when
//! the plugin calls an API its Neovim deprecates.
//!
//! Without `nvim` on PATH (and no `CANOPY_NVIM_BINS`) the Neovim tests skip, unless
//! `CANOPY_REQUIRE_NVIM` is set (CI sets it, so a missing Neovim fails there). A listed
//! binary that does not run always fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use canopy_protocol::params::{SubscribeDelivery, SubscribeResult};
use canopy_protocol::{Message, method};
use canopy_tests::{TestEnv, runtime, wait_for};
use nvim_rs::compat::tokio::Compat;
use nvim_rs::rpc::handler::Dummy;
use serde_json::Value as Json;
use tokio::process::ChildStdin;

const WAIT: Duration = Duration::from_secs(15);

fn plugin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("nvim-plugin")
}

/// A Neovim binary to test against.
#[derive(Debug, Clone)]
struct NvimBin {
    path: PathBuf,
    /// The first line of `--version`, e.g. `NVIM v0.7.2`.
    version: String,
}

/// `name` as PATH finds it (a path with a slash is kept as it is).
fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn version_of(path: &Path) -> Option<String> {
    let out = std::process::Command::new(path)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.lines().next().unwrap_or("NVIM ?").trim().to_owned())
}

/// The Neovims to test: those in `CANOPY_NVIM_BINS`, else `nvim` on PATH; empty (skip)
/// when there is none and none is required.
fn nvims() -> &'static [NvimBin] {
    static BINS: std::sync::OnceLock<Vec<NvimBin>> = std::sync::OnceLock::new();
    BINS.get_or_init(|| {
        let listed = std::env::var("CANOPY_NVIM_BINS").unwrap_or_default();
        let listed: Vec<&str> = listed.split(':').filter(|p| !p.trim().is_empty()).collect();
        if listed.is_empty() {
            let found = which("nvim").and_then(|p| Some((version_of(&p)?, p)));
            return match found {
                Some((version, path)) => vec![NvimBin { path, version }],
                None => {
                    assert!(
                        std::env::var_os("CANOPY_REQUIRE_NVIM").is_none(),
                        "CANOPY_REQUIRE_NVIM is set but `nvim` is not installed"
                    );
                    Vec::new()
                }
            };
        }
        listed
            .into_iter()
            .map(|p| {
                let path = which(p.trim()).unwrap_or_else(|| PathBuf::from(p));
                let version = version_of(&path).unwrap_or_else(|| {
                    panic!("CANOPY_NVIM_BINS lists {p}, which does not run (`--version` failed)")
                });
                NvimBin { path, version }
            })
            .collect()
    })
}

/// Run `test` once per Neovim to test, each in its own environment; then fail with every
/// failure, each prefixed with the Neovim it happened on. Skips without Neovim.
fn each_nvim(test: impl Fn(&NvimBin)) {
    let bins = nvims();
    if bins.is_empty() {
        eprintln!("skipping: nvim is not installed (set CANOPY_REQUIRE_NVIM=1 to require it)");
        return;
    }
    let mut failures = Vec::new();
    for bin in bins {
        eprintln!("== on {} ({})", bin.version, bin.path.display());
        let t0 = Instant::now();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(bin)));
        match run {
            Ok(()) => eprintln!("== {} passed in {:?}", bin.version, t0.elapsed()),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "(panic without a message)".into());
                failures.push(format!(
                    "on {} ({}): {msg}",
                    bin.version,
                    bin.path.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Lua run before the plugin loads: where this Neovim deprecates an API the plugin could
/// still call (the option functions and `vim.loop` from 0.10; `nvim_buf_add_highlight`
/// and `termopen()` from 0.11), record each call made from the plugin's files in
/// `_G.canopy_test_deprecated` (a set). They print nothing, so `:messages` would not tell.
const DEPRECATION_TRAP: &str = r#"
_G.canopy_test_deprecated = {}
local function from_plugin(level)
  local info = debug.getinfo(level, 'S')
  return info and info.source:find('nvim-plugin', 1, true) ~= nil
end
local function trap(tbl, names, label)
  for _, n in ipairs(names) do
    local orig = tbl[n]
    if orig then
      tbl[n] = function(...)
        if from_plugin(3) then _G.canopy_test_deprecated[label .. n] = true end
        return orig(...)
      end
    end
  end
end
if vim.fn.has('nvim-0.10') == 1 then
  trap(vim.api, { 'nvim_buf_set_option', 'nvim_buf_get_option', 'nvim_win_set_option',
    'nvim_win_get_option', 'nvim_set_option', 'nvim_get_option' }, 'vim.api.')
  local uv = vim.uv
  vim.loop = setmetatable({}, { __index = function(_, k)
    if from_plugin(3) then _G.canopy_test_deprecated['vim.loop.' .. k] = true end
    return uv[k]
  end })
end
if vim.fn.has('nvim-0.11') == 1 then
  trap(vim.api, { 'nvim_buf_add_highlight' }, 'vim.api.')
  trap(vim.fn, { 'termopen' }, 'vim.fn.')
end
return true
"#;

/// Whether a `:messages` line reports a problem: a deprecation, an error, a warning.
fn bad_message(line: &str) -> bool {
    let lower = line.to_lowercase();
    let error_code = line.match_indices('E').any(|(i, _)| {
        let digits: String = line[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        !digits.is_empty() && line[i + 1 + digits.len()..].starts_with(':')
    });
    error_code
        || [
            "deprecat",
            "error",
            "warning",
            "traceback",
            "failed",
            "invalid",
            "not found",
        ]
        .iter()
        .any(|w| lower.contains(w))
}

/// Wait until session `name`'s permission dialog is on its screen (so that an answer
/// reaches it); on timeout, fail with what `canopy explain` shows.
fn wait_dialog(env: &TestEnv, name: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let explain = env.ok(&["explain", name]);
        if explain.contains("permission dialog on screen") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name}'s permission dialog on screen:\n{explain}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A headless Neovim with the plugin loaded and set up, in the environment's repository.
struct Nvim {
    nvim: nvim_rs::Neovim<Compat<ChildStdin>>,
    child: tokio::process::Child,
}

impl Nvim {
    async fn start(env: &TestEnv, bin: &NvimBin) -> Nvim {
        let mut cmd = tokio::process::Command::new(&bin.path);
        cmd.args(["--embed", "--headless", "--clean"])
            .env_clear()
            .current_dir(&env.repo)
            .kill_on_drop(true);
        // Exactly the variables `canopy` runs with in this environment.
        let std_cmd = env.canopy(&[]);
        for (k, v) in std_cmd.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        let (nvim, _io, child) = nvim_rs::create::tokio::new_child_cmd(&mut cmd, Dummy::new())
            .await
            .expect("start nvim");
        let nv = Nvim { nvim, child };
        nv.lua(DEPRECATION_TRAP).await;
        nv.lua(&format!(
            "vim.opt.rtp:prepend({:?}); vim.cmd('runtime plugin/canopy.lua'); \
             require('canopy').setup({{ cmd = {:?} }}); return true",
            plugin_dir().display().to_string(),
            canopy_tests::canopy_bin().display().to_string(),
        ))
        .await;
        nv
    }

    /// Run Lua (a function body) and return its result through JSON.
    async fn lua(&self, body: &str) -> Json {
        let code = format!(
            "local r = (function() {body} end)(); return vim.fn.json_encode(r == nil and vim.NIL or r)"
        );
        let out = self
            .nvim
            .exec_lua(&code, vec![])
            .await
            .unwrap_or_else(|e| panic!("lua failed: {e}\n{body}"));
        serde_json::from_str(out.as_str().expect("a string")).expect("json")
    }

    /// An Ex command; errors come back as Err (e.g. a failed `:Canopy` subcommand).
    async fn cmd(&self, cmd: &str) -> Result<(), String> {
        self.nvim.command(cmd).await.map_err(|e| e.to_string())
    }

    /// Wait until `body` returns something truthy; return it.
    async fn wait(&self, what: &str, body: &str) -> Json {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.lua(body).await;
            if !(v.is_null() || v == Json::Bool(false)) {
                return v;
            }
            if Instant::now() >= deadline {
                let messages = self.lua("return vim.fn.execute('messages')").await;
                panic!(
                    "timed out waiting for {what}\nsidebar: {:#?}\n:messages: {}",
                    self.sidebar().await,
                    messages.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn sidebar(&self) -> Vec<String> {
        let v = self
            .lua("local b = require('canopy.sidebar').buf(); return b and vim.api.nvim_buf_get_lines(b, 0, -1, false) or {}")
            .await;
        serde_json::from_value(v).unwrap_or_default()
    }

    /// Wait for a sidebar line that starts with session `name` and contains `text`.
    async fn wait_line(&self, name: &str, text: &str) -> String {
        let v = self
            .wait(
                &format!("sidebar line {name} with {text}"),
                &format!(
                    "local b = require('canopy.sidebar').buf(); if not b then return nil end \
                     for _, l in ipairs(vim.api.nvim_buf_get_lines(b, 0, -1, false)) do \
                       if l:find(' ' .. {name:?} .. '  ', 1, true) and l:find({text:?}, 1, true) then return l end \
                     end"
                ),
            )
            .await;
        v.as_str().expect("line").to_owned()
    }

    /// Press keys as typed, through the mappings; returns once Neovim has processed them
    /// all (prompts they open read the keys that follow).
    async fn press(&self, keys: &str) {
        self.lua(&format!(
            "vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes({keys:?}, true, false, true), 'mtx', false)"
        ))
        .await;
    }

    /// Type keys with `nvim_input`: queued, processed after this returns.
    async fn type_keys(&self, keys: &str) {
        self.nvim.input(keys).await.expect("nvim_input");
    }

    /// Make the sidebar the current window with the cursor on session `name`'s line.
    async fn cursor_on(&self, name: &str) {
        let ok = self
            .lua(&format!(
                "local sb = require('canopy.sidebar'); local w = sb.win(); if not w then return false end \
                 vim.cmd('stopinsert'); vim.api.nvim_set_current_win(w) \
                 for i, l in ipairs(vim.api.nvim_buf_get_lines(sb.buf(), 0, -1, false)) do \
                   if l:find(' ' .. {name:?} .. '  ', 1, true) then \
                     vim.api.nvim_win_set_cursor(w, {{i, 0}}); return sb.name_at_cursor() == {name:?} end \
                 end return false"
            ))
            .await;
        assert_eq!(
            ok,
            Json::Bool(true),
            "no sidebar line for {name}: {:?}",
            self.sidebar().await
        );
    }

    /// The float that is the current window: its lines, after closing it with `q`.
    async fn take_float(&self) -> Vec<String> {
        let v = self
            .lua("local w = vim.api.nvim_get_current_win(); if vim.api.nvim_win_get_config(w).relative == '' then return nil end \
                  return vim.api.nvim_buf_get_lines(0, 0, -1, false)")
            .await;
        let lines: Vec<String> =
            serde_json::from_value(v.clone()).unwrap_or_else(|_| panic!("no float: {v}"));
        self.press("q").await;
        let closed = self
            .lua("return vim.api.nvim_win_get_config(0).relative == ''")
            .await;
        assert_eq!(closed, Json::Bool(true), "q closes the float");
        lines
    }

    /// Fail on a deprecation or error in `:messages` (lines containing one of `expected`
    /// excepted) or on a deprecated API the plugin called; then quit.
    async fn quit(self) {
        self.quit_expecting(&[]).await;
    }

    async fn quit_expecting(mut self, expected: &[&str]) {
        let messages = self.lua("return vim.fn.execute('messages')").await;
        let messages = messages.as_str().unwrap_or("").to_owned();
        let bad: Vec<&str> = messages
            .lines()
            .filter(|l| bad_message(l) && !expected.iter().any(|e| l.contains(e)))
            .collect();
        assert!(
            bad.is_empty(),
            "unexpected in :messages: {bad:#?}\n\nall of :messages:\n{messages}"
        );
        let deprecated = self
            .lua("local t = vim.tbl_keys(_G.canopy_test_deprecated); table.sort(t); return t")
            .await;
        assert_eq!(
            deprecated,
            serde_json::json!([]),
            "the plugin called deprecated APIs"
        );
        let _ = self.nvim.command("qa!").await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

#[test]
fn sidebar_shows_sessions_and_follows_state_changes() {
    each_nvim(|bin| {
        let env = TestEnv::with_fake_agents();
        runtime().block_on(async {
            let nv = Nvim::start(&env, bin).await;
            // `:Canopy` starts the host (none runs yet) and opens the sidebar.
            nv.cmd("Canopy").await.expect(":Canopy");
            assert_eq!(nv.lua("return require('canopy.sidebar').win() ~= nil").await, Json::Bool(true));
            env.ok(&["new", "a", "--agent", "claude", "--prompt", "hello @ask:Bash:rm-x"]);
            nv.cmd("Canopy new b codex").await.expect(":Canopy new");
            let a = nv.wait_line("a", "waiting_permission(Bash)").await;
            assert!(a.contains("claude") && a.contains("canopy/a"), "{a}");
            let b = nv.wait_line("b", "idle").await;
            assert!(b.contains("codex") && b.contains("canopy/b"), "{b}");
            // The badge's highlight group is the state's (users override CanopyPermission).
            let hl = nv
                .lua("local b = require('canopy.sidebar').buf(); local ns = vim.api.nvim_get_namespaces().canopy_sidebar; \
                      for _, m in ipairs(vim.api.nvim_buf_get_extmarks(b, ns, 0, -1, {details = true})) do \
                        if m[4].hl_group == 'CanopyPermission' then return true end end return false")
                .await;
            assert_eq!(hl, Json::Bool(true), "{:?}", nv.sidebar().await);
            let status = nv.lua("return require('canopy').statusline()").await;
            assert!(status.as_str().unwrap_or("").contains('$'), "{status}");

            // A state change reaches the sidebar: approve from Canopy; the tool runs, then idle.
            wait_dialog(&env, "a");
            let t0 = Instant::now();
            nv.cmd("Canopy approve a").await.expect(":Canopy approve");
            nv.wait_line("a", "idle").await;
            eprintln!("approve → idle shown in the sidebar in {:?}", t0.elapsed());
            // Notifications: the dialog, and the end of the turn.
            let messages = nv.lua("return vim.fn.execute('messages')").await;
            let messages = messages.as_str().unwrap_or("");
            assert!(messages.contains("canopy: a wants to run Bash"), "{messages}");
            nv.wait(
                "the end-of-turn notification",
                "return vim.fn.execute('messages'):find('canopy: a finished its turn', 1, true) ~= nil",
            )
            .await;
            // Toggle closes it.
            nv.cmd("Canopy").await.expect(":Canopy");
            assert_eq!(nv.lua("return require('canopy.sidebar').win() == nil").await, Json::Bool(true));
            nv.quit().await;
        });
    });
}

/// With sessions of a remote host the sidebar gets a host column (local rows first, the
/// name without its `HOST:`) and marks a dropped host's sessions stale; the cursor still
/// names the full `HOST:NAME`. The remote records are pushed the way the host pushes
/// them (the real link over ssh is tests/tests/remote.rs).
#[test]
fn sidebar_shows_the_host_of_remote_sessions() {
    each_nvim(|bin| {
        let env = TestEnv::with_fake_agents();
        runtime().block_on(async {
            let nv = Nvim::start(&env, bin).await;
            nv.cmd("Canopy").await.expect(":Canopy");
            env.ok(&["new", "l1", "--agent", "codex"]);
            let only_local = nv.wait_line("l1", "idle").await;
            assert!(!only_local.contains("local"), "{only_local}");
            let pushed = nv
                .lua(
                    "local st = require('canopy.state'); local l1 = st.sessions['l1'] \
                     for i, n in ipairs({ 'devbox:api', 'devbox:db' }) do \
                       local s = {} for k, v in pairs(l1) do s[k] = v end s.name = n; s.host = 'devbox' \
                       if i == 2 then s.stale_since = 1 end \
                       st.on_event({ seq = st.seq + 1, kind = 'session_added', session = s }) \
                     end return st.seq",
                )
                .await;
            assert!(pushed.is_number(), "{pushed}");
            let api = nv.wait_line("api", "devbox").await;
            assert!(api.starts_with("○ devbox  api "), "{api}");
            let db = nv.wait_line("db", "(stale)").await;
            assert!(db.contains("devbox"), "{db}");
            let lines = nv.sidebar().await;
            assert!(lines[1].starts_with("○ local   l1 "), "local first: {lines:#?}");
            let at = nv
                .lua(
                    "local sb = require('canopy.sidebar'); local w = sb.win() \
                     vim.api.nvim_set_current_win(w); vim.api.nvim_win_set_cursor(w, { 3, 0 }) \
                     return sb.name_at_cursor()",
                )
                .await;
            assert_eq!(at, Json::String("devbox:api".into()));
            nv.quit().await;
        });
    });
}

#[test]
fn subcommands_do_what_they_say() {
    each_nvim(|bin| {
        let env = TestEnv::with_fake_agents();
        runtime().block_on(async {
            let nv = Nvim::start(&env, bin).await;
            nv.cmd("Canopy new s claude").await.expect("new");
            nv.cmd("Canopy").await.expect("sidebar");
            nv.wait_line("s", "idle").await;

            // Completion: subcommands, session names, agents.
            let subs = nv.lua("return require('canopy.commands').complete('ap', 'Canopy ap')").await;
            assert_eq!(subs, serde_json::json!(["approve"]));
            let names = nv.lua("return require('canopy.commands').complete('', 'Canopy attach ')").await;
            assert_eq!(names, serde_json::json!(["s"]));
            let agents = nv.lua("return require('canopy.commands').complete('co', 'Canopy new x co')").await;
            assert_eq!(agents, serde_json::json!(["codex"]));

            // send: the text reaches the agent, which works on it and runs the tool.
            nv.cmd("Canopy send s run @tool:Bash:ls").await.expect("send");
            wait_for("the tool call", WAIT, || {
                let s = env.session("s");
                (s.usage.tool_calls.total >= 1).then_some(())
            });

            // inspect: a float with the usage.
            nv.cmd("Canopy inspect s").await.expect("inspect");
            let float = nv
                .lua("local w = vim.api.nvim_get_current_win(); if vim.api.nvim_win_get_config(w).relative == '' then return nil end \
                      local l = vim.api.nvim_buf_get_lines(0, 0, -1, false); vim.api.nvim_win_close(w, true); return l")
                .await;
            let text = float.to_string();
            for want in ["cost", "tokens", "context", "tools", "time", "lines"] {
                assert!(text.contains(want), "{want} missing: {text}");
            }

            // explain: a float with the signals.
            nv.cmd("Canopy explain s").await.expect("explain");
            let float = nv
                .lua("local l = vim.api.nvim_buf_get_lines(0, 0, -1, false); vim.api.nvim_win_close(0, true); return l")
                .await;
            assert!(float.to_string().contains("signals"), "{float}");

            // diff: changed and new files in the quickfix list; an entry opens as a diff.
            let wt = env.worktree("s");
            std::fs::write(wt.join("README.md"), "changed\n").expect("write");
            std::fs::write(wt.join("new.txt"), "new\n").expect("write");
            nv.cmd("Canopy diff s").await.expect("diff");
            let qf = nv
                .lua("local out = {} for _, e in ipairs(vim.fn.getqflist()) do table.insert(out, vim.fn.fnamemodify(vim.fn.bufname(e.bufnr), ':t') .. ' ' .. e.text) end return out")
                .await;
            assert_eq!(qf, serde_json::json!(["README.md modified", "new.txt untracked"]), "{qf}");
            nv.lua("require('canopy.diff').open_entry(); return true").await;
            let diffed = nv
                .lua("local n = 0 for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do if vim.wo[w].diff then n = n + 1 end end return n")
                .await;
            assert_eq!(diffed, Json::from(2), "the file and its base version in diff mode");
            nv.cmd("diffoff! | only").await.expect("close diff");

            // attach: a terminal running `canopy attach`, reused when asked again.
            nv.cmd("Canopy attach s").await.expect("attach");
            let first = nv.lua("return {vim.api.nvim_buf_get_name(0), vim.bo.buftype, vim.api.nvim_get_current_buf()}").await;
            assert!(first[0].as_str().unwrap_or("").ends_with("canopy://attach/s"), "{first}");
            assert_eq!(first[1], "terminal");
            nv.cmd("stopinsert | wincmd p").await.expect("leave");
            nv.cmd("Canopy attach s").await.expect("attach again");
            let again = nv.lua("return vim.api.nvim_get_current_buf()").await;
            assert_eq!(again, first[2], "the attach buffer is reused");
            nv.cmd("stopinsert | only").await.expect("leave");

            // capture: the scrollback and screen as text in a scratch buffer, at its end.
            nv.cmd("Canopy capture s").await.expect("capture");
            let captured = nv
                .lua("return {vim.api.nvim_buf_get_name(0), vim.bo.modifiable, table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\\n'), vim.fn.line('.') == vim.fn.line('$')}")
                .await;
            assert!(captured[0].as_str().unwrap_or("").ends_with("canopy://capture/s"), "{captured}");
            assert_eq!(captured[1], Json::Bool(false));
            assert!(captured[2].as_str().unwrap_or("").contains("fake output of ls"), "{captured}");
            assert_eq!(captured[3], Json::Bool(true), "the cursor at the end");
            nv.cmd("normal q").await.expect("q closes it");
            let wins = nv.lua("return #vim.api.nvim_tabpage_list_wins(0)").await;
            assert_eq!(wins, Json::from(1));

            // approve/deny: the dialog is answered.
            nv.cmd("Canopy send s @ask:Bash:rm-x").await.expect("send ask");
            nv.wait_line("s", "waiting_permission").await;
            wait_dialog(&env, "s");
            nv.cmd("Canopy deny s").await.expect("deny");
            wait_for("the dialog answered", WAIT, || {
                (env.session("s").state.kind != canopy_protocol::StateKind::WaitingPermission).then_some(())
            });

            // stop, then rm (the worktree has changes: refused without --force).
            nv.cmd("Canopy stop s").await.expect("stop");
            nv.wait_line("s", "exited").await;
            nv.cmd("Canopy rm s").await.expect("rm");
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(env.sessions().iter().any(|s| s.name == "s"), "rm without --force kept unsaved work");
            nv.cmd("Canopy rm s --force").await.expect("rm --force");
            nv.wait("s removed", "return require('canopy.state').sessions.s == nil").await;
            assert!(env.sessions().is_empty());
            assert!(!wt.exists());

            // setup validates with a clear error.
            let err = nv.lua("local ok, e = pcall(require('canopy').setup, { sidebar = { width = 'wide' } }); return e").await;
            assert!(err.as_str().unwrap_or("").contains("`sidebar.width` should be a number"), "{err}");
            let err = nv.lua("local ok, e = pcall(require('canopy').setup, { sidebar = { widht = 40 } }); return e").await;
            assert!(err.as_str().unwrap_or("").contains("unknown option `sidebar.widht`"), "{err}");
            let ok = nv.lua("return pcall(require('canopy').setup, { socket = '/x', notify = { finished = false } })").await;
            assert_eq!(ok, Json::Bool(true));
            // The refusal of `rm` without --force is the one error this run shows.
            nv.quit_expecting(&["would lose work"]).await;
        });
    });
}

/// The prompts recorded since the last call (see `sidebar_keys_do_what_they_say`).
async fn take_prompts(nv: &Nvim) -> Json {
    nv.lua("local p = _G.prompts; _G.prompts = {}; return p")
        .await
}

/// The sidebar's keys, pressed on a session's line: `?` help, `i` inspect, `D` diff,
/// `<CR>` attach (reused), `a` approve, `d` deny, `n` new (three prompts), `x` stop and
/// `r` remove (asks; only Remove removes).
#[test]
fn sidebar_keys_do_what_they_say() {
    each_nvim(|bin| {
        let env = TestEnv::with_fake_agents();
        env.ok(&["new", "k", "--agent", "claude"]);
        runtime().block_on(async {
            let nv = Nvim::start(&env, bin).await;
            nv.cmd("Canopy").await.expect(":Canopy");
            nv.wait_line("k", "idle").await;
            // Notifications are configurable per kind: no permission ones in this run.
            nv.lua(&format!(
                "require('canopy').setup({{ cmd = {:?}, notify = {{ permission = false }} }})",
                canopy_tests::canopy_bin().display().to_string()
            ))
            .await;
            // Record the prompts the keys open, still answered by the built-in UI.
            nv.lua(
                "_G.prompts = {} \
                 local input, select = vim.ui.input, vim.ui.select \
                 vim.ui.input = function(o, cb) table.insert(_G.prompts, o.prompt); return input(o, cb) end \
                 vim.ui.select = function(items, o, cb) table.insert(_G.prompts, o.prompt); return select(items, o, cb) end",
            )
            .await;

            // ?: the keys.
            nv.cursor_on("k").await;
            nv.press("?").await;
            let help = nv.take_float().await.join("\n");
            for want in [
                "<CR>", "attach", "approve", "deny", "stop", "inspect", "new", "remove", "diff",
                "help",
            ] {
                assert!(help.contains(want), "{want} missing from the help: {help}");
            }

            // i: the usage float of the session under the cursor.
            nv.cursor_on("k").await;
            nv.press("i").await;
            let inspect = nv.take_float().await.join("\n");
            assert!(inspect.starts_with("k — claude"), "{inspect}");
            for want in ["cost", "tokens", "context", "tools", "time", "lines"] {
                assert!(inspect.contains(want), "{want} missing: {inspect}");
            }

            // D: its changes in the quickfix list.
            std::fs::write(env.worktree("k").join("new.txt"), "new\n").expect("write");
            nv.cursor_on("k").await;
            nv.press("D").await;
            let qf = nv
                .lua("local l = vim.fn.getqflist({ title = 0, items = 0 }) local out = { l.title } \
                      for _, e in ipairs(l.items) do table.insert(out, vim.fn.fnamemodify(vim.fn.bufname(e.bufnr), ':t') .. ' ' .. e.text) end \
                      vim.cmd('cclose') return out")
                .await;
            assert_eq!(qf, serde_json::json!(["canopy diff k", "new.txt untracked"]));
            std::fs::remove_file(env.worktree("k").join("new.txt")).expect("rm");

            // a / d: answer a permission dialog.
            for (key, said) in [("a", "approved k"), ("d", "denied k")] {
                nv.cmd("Canopy send k @ask:Bash:rm-x").await.expect("send");
                nv.wait_line("k", "waiting_permission").await;
                wait_dialog(&env, "k");
                nv.cursor_on("k").await;
                nv.press(key).await;
                wait_for("the dialog answered", WAIT, || {
                    (env.session("k").state.kind != canopy_protocol::StateKind::WaitingPermission)
                        .then_some(())
                });
                let messages = nv.lua("return vim.fn.execute('messages')").await;
                let messages = messages.as_str().unwrap_or("");
                assert!(messages.contains(said), "{key}: {messages}");
                assert!(!messages.contains("wants to run"), "notify.permission = false: {messages}");
                if key == "a" {
                    // The tool runs, then the agent is ready for the next dialog.
                    nv.wait_line("k", "idle").await;
                }
            }

            // <CR>: a terminal in a split running `canopy attach k`; pressed again, the same
            // buffer, in the same (only) window.
            // Typed with nvim_input, as a user would (the attach window enters Terminal mode,
            // which would wait for more keys inside a feedkeys call).
            nv.cursor_on("k").await;
            nv.type_keys("<CR>").await;
            nv.wait(
                "the attach window",
                "return vim.api.nvim_buf_get_name(0):find('canopy://attach/k', 1, true) ~= nil",
            )
            .await;
            let attach = "local b = vim.api.nvim_get_current_buf() local n = 0 \
                 for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do if vim.api.nvim_win_get_buf(w) == b then n = n + 1 end end \
                 return { vim.api.nvim_buf_get_name(b), vim.bo.buftype, b, vim.api.nvim_get_chan_info(vim.bo.channel).argv, n, \
                          vim.fn.jobwait({ vim.bo.channel }, 0)[1] }";
            let first = nv.lua(attach).await;
            assert!(first[0].as_str().unwrap_or("").ends_with("canopy://attach/k"), "{first}");
            assert_eq!(first[1], "terminal", "{first}");
            let bin_path = canopy_tests::canopy_bin().display().to_string();
            assert_eq!(first[3], serde_json::json!([bin_path, "attach", "k"]), "{first}");
            assert_eq!(first[5], Json::from(-1), "`canopy attach k` is running: {first}");
            nv.cursor_on("k").await;
            nv.type_keys("<CR>").await;
            nv.wait(
                "the attach window again",
                &format!("return vim.api.nvim_get_current_buf() == {}", first[2]),
            )
            .await;
            let again = nv.lua(attach).await;
            assert_eq!(again[2], first[2], "the attach buffer is reused: {again}");
            assert_eq!(again[4], Json::from(1), "in the window already showing it: {again}");
            // Wiping the buffer ends `canopy attach`.
            nv.cmd("stopinsert | bwipeout!").await.expect("close the attach window");

            // n: name, agent, issue (empty: none), typed into the prompts.
            nv.cursor_on("k").await;
            nv.press("nk2<CR>codex<CR><CR>").await;
            assert_eq!(
                take_prompts(&nv).await,
                serde_json::json!(["New session name: ", "Agent: ", "Issue (optional): "])
            );
            let line = nv.wait_line("k2", "idle").await;
            assert!(line.contains("codex") && line.contains("canopy/k2"), "{line}");
            // Escape at the name: nothing is created.
            nv.cursor_on("k").await;
            nv.press("n<Esc>").await;
            assert_eq!(take_prompts(&nv).await, serde_json::json!(["New session name: "]));

            // x: stop.
            nv.cursor_on("k2").await;
            nv.press("x").await;
            nv.wait_line("k2", "exited").await;

            // r: asks; Cancel (or Escape) keeps the session, Remove removes it.
            let question = serde_json::json!(["Remove session k2 (its worktree and branch)?"]);
            for no in ["r2<CR>", "r<Esc>"] {
                nv.cursor_on("k2").await;
                nv.press(no).await;
                assert_eq!(take_prompts(&nv).await, question, "{no}");
                tokio::time::sleep(Duration::from_millis(300)).await;
                assert!(env.sessions().iter().any(|s| s.name == "k2"), "{no} removed k2");
            }
            nv.cursor_on("k2").await;
            nv.press("r1<CR>").await;
            assert_eq!(take_prompts(&nv).await, question);
            nv.wait("k2 removed", "return require('canopy.state').sessions.k2 == nil").await;
            assert!(!env.sessions().iter().any(|s| s.name == "k2"));
            assert!(!env.worktree("k2").exists());
            assert!(env.sessions().iter().any(|s| s.name == "k"), "only k2 is removed");
            nv.quit().await;
        });
    });
}

/// `:Canopy review` on the session whose worktree holds the current file: the changed
/// files with counts, a diff buffer in the file's filetype, `c` twice (two comments,
/// shown as extmarks and counted in the sidebar), `S` sends them to the agent as one
/// prompt with file, line and code, `q` closes the tab. A session's PR shows in the
/// sidebar when the host sends one.
#[test]
fn review_comments_reach_the_agent_as_one_prompt() {
    each_nvim(|bin| {
        let env = TestEnv::with_fake_agents();
        env.ok(&["new", "rv", "--agent", "claude"]);
        wait_for("rv to be idle", WAIT, || {
            (env.session("rv").state.kind == canopy_protocol::StateKind::Idle).then_some(())
        });
        let wt = env.worktree("rv");
        std::fs::write(wt.join("lib.rs"), "pub fn answer() -> u32 {\n    41\n}\n").expect("write");
        std::fs::write(wt.join("README.md"), "# proj\nmore\n").expect("write");
        runtime().block_on(async {
            let nv = Nvim::start(&env, bin).await;
            nv.cmd("Canopy").await.expect(":Canopy");
            nv.wait_line("rv", "idle").await;
            nv.cmd(&format!("wincmd l | edit {}", wt.join("lib.rs").display())).await.expect("edit");
            nv.cmd("Canopy review").await.expect(":Canopy review");
            let tab = nv
                .lua("local r = {} for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do \
                        local b = vim.api.nvim_win_get_buf(w) \
                        table.insert(r, { name = vim.api.nvim_buf_get_name(b), ft = vim.bo[b].filetype, \
                          lines = vim.api.nvim_buf_get_lines(b, 0, -1, false) }) end \
                      return { tabs = #vim.api.nvim_list_tabpages(), wins = r }")
                .await;
            assert_eq!(tab["tabs"], 2, "a tab of its own: {tab}");
            let list = &tab["wins"][0];
            assert!(list["name"].as_str().unwrap_or("").ends_with("canopy://review/rv"), "{tab}");
            assert_eq!(list["lines"][0], "rv  2 files  +4 -0", "{tab}");
            assert_eq!(list["lines"][2], "M +1 -0  README.md", "{tab}");
            assert_eq!(list["lines"][3], "? +3 -0  lib.rs", "{tab}");
            // The first file shows; <CR> on lib.rs shows it, as rust code.
            assert_eq!(tab["wins"][1]["lines"][0], "@@ -1 +1,2 @@", "{tab}");
            nv.lua("local w = vim.fn.bufwinid('canopy://review/rv') vim.api.nvim_set_current_win(w) \
                    vim.api.nvim_win_set_cursor(w, { 4, 0 })")
                .await;
            nv.press("<CR>").await;
            let shown = nv
                .lua("vim.cmd('wincmd l') return { vim.bo.filetype, vim.api.nvim_buf_get_lines(0, 0, -1, false), \
                      #vim.api.nvim_buf_get_extmarks(0, vim.api.nvim_get_namespaces().canopy_review, 0, -1, {}) }")
                .await;
            assert_eq!(
                shown,
                serde_json::json!(["rust", ["@@ -0,0 +1,3 @@", "pub fn answer() -> u32 {", "    41", "}"], 4]),
                "the hunk as rust code, its header and three `+` lines marked"
            );

            // c: two comments, on `41` (line 2 of lib.rs) and on the first line.
            nv.lua("vim.api.nvim_win_set_cursor(0, { 3, 0 })").await;
            nv.press("cshould be 42<CR>").await;
            nv.lua("vim.api.nvim_win_set_cursor(0, { 2, 0 })").await;
            nv.press("cname it for what it answers<CR>").await;
            let marks = nv
                .wait(
                    "two comment extmarks",
                    "local ns = vim.api.nvim_get_namespaces().canopy_review_comments \
                     local out = {} for _, m in ipairs(vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })) do \
                       table.insert(out, { m[2], m[4].virt_text[1][1] }) end \
                     return #out == 2 and out or nil",
                )
                .await;
            assert_eq!(
                marks,
                serde_json::json!([[1, "✎ name it for what it answers"], [2, "✎ should be 42"]])
            );
            let sidebar = nv.wait_line("rv", "2 comments").await;
            assert!(sidebar.contains("canopy/rv"), "{sidebar}");
            // A removed line or a hunk header takes no comment.
            nv.lua("vim.api.nvim_win_set_cursor(0, { 1, 0 })").await;
            nv.press("c").await;
            assert_eq!(env.session("rv").comments.len(), 2);

            // S: both, one prompt; the marks and the count go.
            nv.press("S").await;
            let prompt = wait_for("the review prompt", WAIT, || {
                let prompts = env.claude_prompts();
                prompts.iter().any(|p| p.starts_with("Review comments")).then_some(prompts)
            });
            assert_eq!(prompt.len(), 1, "one prompt: {prompt:#?}");
            for want in [
                "1. lib.rs:2: `41`\n   should be 42",
                "2. lib.rs:1: `pub fn answer() -> u32 {`\n   name it for what it answers",
            ] {
                assert!(prompt[0].contains(want), "{want:?} in {:?}", prompt[0]);
            }
            nv.wait(
                "the comment marks cleared",
                "return #vim.api.nvim_buf_get_extmarks(0, vim.api.nvim_get_namespaces().canopy_review_comments, 0, -1, {}) == 0",
            )
            .await;
            nv.wait(
                "no count in the sidebar",
                "for _, l in ipairs(vim.api.nvim_buf_get_lines(require('canopy.sidebar').buf(), 0, -1, false)) do \
                   if l:find('comment', 1, true) then return false end end return true",
            )
            .await;

            // The agent fixes it; R computes the diff again, on the same file.
            std::fs::write(wt.join("lib.rs"), "pub fn answer() -> u32 {\n    42\n}\n").expect("write");
            nv.press("R").await;
            let lines = nv.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)").await;
            assert_eq!(lines, serde_json::json!(["@@ -0,0 +1,3 @@", "pub fn answer() -> u32 {", "    42", "}"]));

            // A PR in the record (from `canopy pr`) shows in the sidebar and the review, a
            // mark of the conflict radar in the sidebar.
            nv.lua(
                "local st = require('canopy.state'); local s = {} for k, v in pairs(st.sessions.rv) do s[k] = v end \
                 s.pr = { provider = 'gitlab', number = 7, url = 'https://gitlab.example/p/-/merge_requests/7', state = 'draft' } \
                 s.radar = { shared_files = { 'lib.rs' }, shared_with = { 'other' } } \
                 st.on_event({ seq = st.seq + 1, kind = 'session_changed', session = s })",
            )
            .await;
            nv.wait_line("rv", "MR !7 draft ⚠ shared: 1 file with other").await;
            nv.cmd("Canopy inspect rv").await.expect("inspect");
            let inspect = nv.take_float().await.join("\n");
            for want in [
                "pr        MR !7 draft  https://gitlab.example/p/-/merge_requests/7",
                "radar     ⚠ shared: 1 file with other\n          lib.rs",
            ] {
                assert!(inspect.contains(want), "{want:?} in {inspect}");
            }
            let header = nv.lua("return vim.api.nvim_buf_get_lines(vim.fn.bufnr('canopy://review/rv'), 1, 2, false)[1]").await;
            assert_eq!(header, "MR !7 draft  ⚠ shared: 1 file with other");

            // q: the tab closes; R on the sidebar's line opens it again.
            nv.press("q").await;
            assert_eq!(nv.lua("return #vim.api.nvim_list_tabpages()").await, Json::from(1));
            nv.cursor_on("rv").await;
            nv.press("R").await;
            let opened = nv
                .lua("return { #vim.api.nvim_list_tabpages(), vim.fn.bufwinid('canopy://review/rv') ~= -1 }")
                .await;
            assert_eq!(opened, serde_json::json!([2, true]));
            nv.press("q").await;
            nv.quit_expecting(&["comment on a line of the new version"]).await;
        });
    });
}

#[test]
fn checkhealth_reports_ok() {
    each_nvim(|bin| {
        let env = TestEnv::with_fake_agents();
        env.ok(&["status"]);
        runtime().block_on(async {
            let nv = Nvim::start(&env, bin).await;
            nv.cmd("checkhealth canopy").await.expect("checkhealth");
            let text = nv
                .lua("return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\\n')")
                .await;
            let text = text.as_str().expect("text");
            assert!(text.contains("OK") && text.contains("connected"), "{text}");
            assert!(
                !text.contains("ERROR") && !text.contains("WARNING"),
                "{text}"
            );
            // Where Neovim tracks deprecated calls (0.10+), none are the plugin's.
            let tracked = nv.lua("return vim.fn.has('nvim-0.10') == 1").await;
            if tracked == Json::Bool(true) {
                nv.cmd("checkhealth vim.deprecated")
                    .await
                    .expect("checkhealth vim.deprecated");
                let text = nv
                    .lua("return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\\n')")
                    .await;
                let text = text.as_str().expect("text");
                assert!(
                    !text.contains("canopy") && !text.contains("WARNING"),
                    "{text}"
                );
            }
            nv.quit().await;
        });
    });
}

#[test]
fn survives_a_host_restart() {
    each_nvim(|bin| {
        let env = TestEnv::with_fake_agents();
        env.ok(&["new", "r", "--agent", "gemini"]);
        runtime().block_on(async {
            let nv = Nvim::start(&env, bin).await;
            nv.cmd("Canopy").await.expect("sidebar");
            nv.wait_line("r", "idle").await;
            let pid = nv.lua("return require('canopy.state').host_pid").await;
            env.ok(&["host", "stop"]);
            nv.wait(
                "the disconnect",
                "return require('canopy.state').connected == false",
            )
            .await;
            let lines = nv.sidebar().await;
            assert!(lines[0].contains("disconnected"), "{lines:?}");
            // A new host (started by the CLI); the plugin finds it by itself.
            env.ok(&["status"]);
            nv.wait(
                "the reconnect",
                "return require('canopy.state').connected == true",
            )
            .await;
            let pid2 = nv.lua("return require('canopy.state').host_pid").await;
            assert_ne!(pid, pid2);
            nv.wait_line("r", "exited").await;
            // And live updates flow again.
            env.ok(&["new", "r2", "--agent", "gemini"]);
            nv.wait_line("r2", "idle").await;
            nv.quit().await;
        });
    });
}

/// The host side, no Neovim needed: `subscribe {nvim_exec_lua}` delivers each event as
/// `[2, "nvim_exec_lua", [code, [event]]]`.
#[test]
fn subscribe_can_deliver_events_as_nvim_exec_lua() {
    let env = TestEnv::new();
    env.ok(&["status"]);
    runtime().block_on(async {
        let mut client = env.client().await;
        let code = "return require('canopy.state').on_event(...)";
        let _: SubscribeResult = client
            .call(
                method::SUBSCRIBE,
                &SubscribeDelivery {
                    nvim_exec_lua: Some(code.into()),
                },
            )
            .await
            .expect("subscribe");
        env.ok(&["new", "p"]);
        let msg = tokio::time::timeout(WAIT, client.reader.next())
            .await
            .expect("an event in time")
            .expect("read")
            .expect("a frame");
        let Message::Notification { method, params } = msg else {
            panic!("not a notification: {msg:?}")
        };
        assert_eq!(method, "nvim_exec_lua");
        assert_eq!(params.len(), 2, "{params:?}");
        assert_eq!(params[0].as_str(), Some(code));
        let events = params[1].as_array().expect("args array");
        assert_eq!(events.len(), 1);
        let event: canopy_protocol::Event =
            canopy_protocol::frame::from_value(events[0].clone()).expect("an Event");
        assert_eq!(event.kind, canopy_protocol::EventKind::SessionAdded);
        assert_eq!(event.session.expect("session").name, "p");
    });
}
