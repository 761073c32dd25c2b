//! Neovim: state change → sidebar re-render latency. A headless `nvim --embed` with the
//! plugin's sidebar open; a `hook` request changes a session's state; the time is taken
//! until Neovim reports (over its stdio channel, from the plugin's `User CanopyRender`
//! autocmd) a render whose line shows the new state. The path measured: hook → registry
//! → `nvim_exec_lua` push → plugin state → sidebar buffer.
//!
//! The bench drives Neovim with a few hand-written msgpack-RPC frames (rmpv), not
//! nvim-rs: nvim-rs is LGPL and only a dev-dependency, which binaries cannot use.

use std::io::{BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use canopy_protocol::method;
use canopy_protocol::params::{HookParams, HookResult};
use canopy_tests::TestEnv;
use rmpv::Value;

use super::{Figure, Samples, Target, ms_since};

struct Nvim {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u32,
}

impl Nvim {
    fn request(&mut self, method: &str, args: Vec<Value>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let frame = Value::Array(vec![0.into(), id.into(), method.into(), Value::Array(args)]);
        rmpv::encode::write_value(&mut self.stdin, &frame).expect("write to nvim");
        self.stdin.flush().expect("flush");
        loop {
            let msg = self.read();
            if msg[0].as_u64() == Some(1) && msg[1].as_u64() == Some(id.into()) {
                assert!(msg[2].is_nil(), "nvim {method} failed: {}", msg[2]);
                return msg[3].clone();
            }
        }
    }

    fn lua(&mut self, code: &str) -> Value {
        self.request("nvim_exec_lua", vec![code.into(), Value::Array(vec![])])
    }

    fn read(&mut self) -> Vec<Value> {
        match rmpv::decode::read_value(&mut self.stdout).expect("read from nvim") {
            Value::Array(a) => a,
            other => panic!("not a message: {other}"),
        }
    }

    /// Wait for a `rendered` notification with a line that contains both strings.
    fn wait_render(&mut self, name: &str, state: &str) {
        loop {
            let msg = self.read();
            if msg[0].as_u64() != Some(2) || msg[1].as_str() != Some("rendered") {
                continue;
            }
            let lines = msg[2][0].as_array().cloned().unwrap_or_default();
            if lines
                .iter()
                .filter_map(Value::as_str)
                .any(|l| l.contains(&format!(" {name}  ")) && l.contains(&format!("  {state}  ")))
            {
                return;
            }
        }
    }
}

impl Drop for Nvim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn figures(sessions: usize, samples: usize) -> Vec<Figure> {
    if Command::new("nvim").arg("--version").output().is_err() {
        eprintln!("nvim: not installed; skipping the Neovim figure");
        return Vec::new();
    }
    let mut env = TestEnv::new();
    let stubs = env.stub_agents(&["claude"], "exec sleep 100000");
    env.prepend_path(&stubs);
    for i in 0..sessions {
        env.ok(&["new", &format!("n{i:02}"), "--agent", "claude"]);
    }
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nvim-plugin");
    let template = env.canopy(&[]);
    let mut cmd = Command::new("nvim");
    cmd.args(["--embed", "--headless", "--clean"])
        .env_clear()
        .current_dir(&env.repo)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn().expect("start nvim");
    let mut nv = Nvim {
        stdin: child.stdin.take().expect("stdin"),
        stdout: BufReader::new(child.stdout.take().expect("stdout")),
        child,
        next_id: 0,
    };
    let chan = nv.request("nvim_get_api_info", vec![])[0]
        .as_u64()
        .expect("channel id");
    nv.lua(&format!(
        "vim.opt.rtp:prepend({:?}); vim.cmd('runtime plugin/canopy.lua'); \
         require('canopy').setup({{ cmd = {:?} }}); vim.cmd('Canopy'); \
         vim.api.nvim_create_autocmd('User', {{ pattern = 'CanopyRender', callback = function() \
           vim.rpcnotify({chan}, 'rendered', vim.api.nvim_buf_get_lines(require('canopy.sidebar').buf(), 0, -1, false)) end }})",
        plugin.display().to_string(),
        canopy_tests::canopy_bin().display().to_string(),
    ));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut hooks = runtime.block_on(env.client());
    let payload = |event: &str| format!("{{\"hook_event_name\":\"{event}\",\"session_id\":\"x\"}}");
    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples {
        let (event, state) = if (i / sessions).is_multiple_of(2) {
            ("UserPromptSubmit", "thinking")
        } else {
            ("Stop", "idle")
        };
        let name = format!("n{:02}", i % sessions);
        let start = Instant::now();
        let _: HookResult = runtime
            .block_on(hooks.call(
                method::HOOK,
                &HookParams {
                    session: name.clone(),
                    agent: "claude".into(),
                    payload: payload(event),
                },
            ))
            .expect("hook");
        nv.wait_render(&name, state);
        lat.push(ms_since(start));
    }
    let lat = Samples::new(lat);
    let version = Command::new("nvim")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default();
    vec![Figure::new(
        format!("state change → Neovim sidebar re-render, {sessions} sessions (p99)"),
        lat.p(0.99),
        "ms",
        Target::Below(200.0),
        format!(
            "{samples} `hook` requests alternating UserPromptSubmit/Stop; time until headless {version} (`--embed`, sidebar open) reports a render showing the new state; p50 {:.2} ms",
            lat.median()
        ),
    )]
}
