//! The Neovim plugin (`nvim-plugin/`) in a real `nvim --embed --headless`, driven with
//! nvim-rs, against a real host running the fake agents: the sidebar follows sessions
//! live, every subcommand does what it says, `:checkhealth canopy` is clean, and the
//! plugin reconnects by itself when the host restarts. Also the host side of the push:
//! `subscribe {nvim_exec_lua}` frames events as `nvim_exec_lua` notifications.
//!
//! Without `nvim` on PATH the Neovim tests skip, unless `CANOPY_REQUIRE_NVIM` is set
//! (CI sets it, so a missing Neovim fails there).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use canopy_protocol::params::{SubscribeDelivery, SubscribeResult};
use canopy_protocol::{Message, method};
use canopy_tests::{TestEnv, wait_for};
use nvim_rs::compat::tokio::Compat;
use nvim_rs::rpc::handler::Dummy;
use serde_json::Value as Json;
use tokio::process::ChildStdin;

const WAIT: Duration = Duration::from_secs(15);

/// An environment whose PATH has `claude`, `codex`, `gemini` and `opencode` as the fake.
fn env_with_fakes() -> TestEnv {
    let mut env = TestEnv::new();
    let dir = env.dir.path().join("fake-bin");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let fake = canopy_tests::canopy_bin().with_file_name("fake-agent");
    assert!(fake.exists(), "{} is missing", fake.display());
    for name in ["claude", "codex", "gemini", "opencode"] {
        std::os::unix::fs::symlink(&fake, dir.join(name)).expect("symlink");
    }
    env.prepend_path(&dir);
    env
}

fn plugin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("nvim-plugin")
}

/// Whether to run: `nvim` is installed, or it is required (then its absence fails).
fn have_nvim() -> bool {
    let found = std::process::Command::new("nvim")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CANOPY_REQUIRE_NVIM").is_none(),
            "CANOPY_REQUIRE_NVIM is set but `nvim` is not installed"
        );
        eprintln!("skipping: nvim is not installed (set CANOPY_REQUIRE_NVIM=1 to require it)");
    }
    found
}

/// A headless Neovim with the plugin loaded and set up, in the environment's repository.
struct Nvim {
    nvim: nvim_rs::Neovim<Compat<ChildStdin>>,
    child: tokio::process::Child,
}

impl Nvim {
    async fn start(env: &TestEnv) -> Nvim {
        let mut cmd = tokio::process::Command::new("nvim");
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
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
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

    async fn quit(mut self) {
        let _ = self.nvim.command("qa!").await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn sidebar_shows_sessions_and_follows_state_changes() {
    if !have_nvim() {
        return;
    }
    let env = env_with_fakes();
    runtime().block_on(async {
        let nv = Nvim::start(&env).await;
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
        wait_for("the dialog on screen", WAIT, || {
            env.ok(&["explain", "a"]).contains("permission dialog on screen").then_some(())
        });
        let t0 = Instant::now();
        nv.cmd("Canopy approve a").await.expect(":Canopy approve");
        nv.wait_line("a", "idle").await;
        eprintln!("approve → idle shown in the sidebar in {:?}", t0.elapsed());
        // Toggle closes it.
        nv.cmd("Canopy").await.expect(":Canopy");
        assert_eq!(nv.lua("return require('canopy.sidebar').win() == nil").await, Json::Bool(true));
        nv.quit().await;
    });
}

#[test]
fn subcommands_do_what_they_say() {
    if !have_nvim() {
        return;
    }
    let env = env_with_fakes();
    runtime().block_on(async {
        let nv = Nvim::start(&env).await;
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
            .lua("local n = 0 for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do if vim.api.nvim_win_get_option(w, 'diff') then n = n + 1 end end return n")
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

        // approve/deny: the dialog is answered.
        nv.cmd("Canopy send s @ask:Bash:rm-x").await.expect("send ask");
        nv.wait_line("s", "waiting_permission").await;
        wait_for("the dialog on screen", WAIT, || {
            env.ok(&["explain", "s"]).contains("permission dialog on screen").then_some(())
        });
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
        nv.quit().await;
    });
}

#[test]
fn checkhealth_reports_ok() {
    if !have_nvim() {
        return;
    }
    let env = env_with_fakes();
    env.ok(&["status"]);
    runtime().block_on(async {
        let nv = Nvim::start(&env).await;
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
        nv.quit().await;
    });
}

#[test]
fn survives_a_host_restart() {
    if !have_nvim() {
        return;
    }
    let env = env_with_fakes();
    env.ok(&["new", "r", "--agent", "gemini"]);
    runtime().block_on(async {
        let nv = Nvim::start(&env).await;
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
