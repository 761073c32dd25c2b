//! A headless Zellij host for the `canopy-zellij` plugin: loads the real `.wasm` in
//! wasmtime and speaks Zellij 0.45.1's plugin ABI to it (docs: shared spec §1.2):
//! protobuf messages as JSON byte arrays over WASI stdin/stdout, commands announced
//! through `zellij.host_run_plugin_command`. The seven WASI p1 calls a plugin makes are
//! implemented here rather than with wasmtime-wasi: smaller to build, and stdin is a
//! plain queue (wasmtime-wasi's adapter latches EOF the first time it is empty).
//!
//! Included with `#[path]` by tests/tests/zellij.rs and the bench (feature
//! `zellij-bench`), so wasmtime stays out of `cargo build`.

#![allow(dead_code)] // each includer uses a different part

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use prost::Message;
use wasmtime::{Caller, Engine, Extern, Instance, Linker, Module, Store, TypedFunc};

/// Protobuf messages of zellij-utils 0.45.1 (`src/plugin_api/*.proto`), the fields used.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NameAndValue {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PluginConfiguration {
        #[prost(message, repeated, tag = "1")]
        pub name_and_value: Vec<NameAndValue>,
    }
    /// Also `ContextItem` (same shape: name, value).
    pub type ContextItem = NameAndValue;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Event {
        #[prost(int32, tag = "1")]
        pub name: i32,
        #[prost(oneof = "EventPayload", tags = "5, 7, 12, 14, 16, 17")]
        pub payload: Option<EventPayload>,
    }
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum EventPayload {
        #[prost(message, tag = "5")]
        Key(Key),
        #[prost(float, tag = "7")]
        Timer(f32),
        #[prost(message, tag = "12")]
        Permission(PermissionResult),
        #[prost(message, tag = "14")]
        RunCommandResult(RunCommandResult),
        #[prost(message, tag = "16")]
        CommandPaneOpened(CommandPaneOpened),
        #[prost(message, tag = "17")]
        CommandPaneExited(CommandPaneExited),
    }
    /// EventType numbers (event.proto).
    pub const EV_KEY: i32 = 3;
    pub const EV_TIMER: i32 = 5;
    pub const EV_PERMISSION: i32 = 15;
    pub const EV_RUN_COMMAND_RESULT: i32 = 17;
    pub const EV_COMMAND_PANE_OPENED: i32 = 19;
    pub const EV_COMMAND_PANE_EXITED: i32 = 20;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Key {
        #[prost(int32, optional, tag = "1")]
        pub modifier: Option<i32>,
        #[prost(oneof = "MainKey", tags = "2, 3")]
        pub main_key: Option<MainKey>,
        #[prost(int32, repeated, tag = "4")]
        pub additional_modifiers: Vec<i32>,
    }
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum MainKey {
        /// NamedKey: Down 3, Up 4, Backspace 8, Tab 23, Esc 24, Enter 31.
        #[prost(int32, tag = "2")]
        Named(i32),
        /// The character's code.
        #[prost(int32, tag = "3")]
        Char(i32),
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PermissionResult {
        #[prost(bool, tag = "1")]
        pub granted: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RunCommandResult {
        #[prost(int32, optional, tag = "1")]
        pub exit_code: Option<i32>,
        #[prost(bytes = "vec", tag = "2")]
        pub stdout: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub stderr: Vec<u8>,
        #[prost(message, repeated, tag = "4")]
        pub context: Vec<ContextItem>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CommandPaneExited {
        #[prost(uint32, tag = "1")]
        pub terminal_pane_id: u32,
        #[prost(int32, optional, tag = "2")]
        pub exit_code: Option<i32>,
        #[prost(message, repeated, tag = "3")]
        pub context: Vec<ContextItem>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CommandPaneOpened {
        #[prost(uint32, tag = "1")]
        pub terminal_pane_id: u32,
        #[prost(message, repeated, tag = "2")]
        pub context: Vec<ContextItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PipeMessage {
        /// Cli 0, Plugin 1, Keybind 2.
        #[prost(int32, tag = "1")]
        pub source: i32,
        #[prost(string, optional, tag = "2")]
        pub cli_source_id: Option<String>,
        #[prost(uint32, optional, tag = "3")]
        pub plugin_source_id: Option<u32>,
        #[prost(string, tag = "4")]
        pub name: String,
        #[prost(string, optional, tag = "5")]
        pub payload: Option<String>,
        #[prost(bool, tag = "7")]
        pub is_private: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PluginCommand {
        #[prost(int32, tag = "1")]
        pub name: i32,
        #[prost(oneof = "CommandPayload", tags = "9, 10, 12, 30, 32, 38, 43")]
        pub payload: Option<CommandPayload>,
    }
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum CommandPayload {
        #[prost(message, tag = "9")]
        OpenCommandPane(OpenCommandPane),
        #[prost(message, tag = "10")]
        OpenCommandPaneFloating(OpenCommandPane),
        #[prost(message, tag = "12")]
        SetTimeout(SetTimeout),
        #[prost(uint32, tag = "30")]
        CloseTerminalPane(u32),
        #[prost(message, tag = "32")]
        FocusTerminalPane(PaneIdAndShouldFloat),
        #[prost(message, tag = "38")]
        RequestPermission(RequestPermission),
        #[prost(message, tag = "43")]
        RunCommand(RunCommand),
    }
    /// CommandName numbers (plugin_command.proto).
    pub const CMD_SUBSCRIBE: i32 = 0;
    pub const CMD_OPEN_COMMAND_PANE: i32 = 9;
    pub const CMD_OPEN_COMMAND_PANE_FLOATING: i32 = 10;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CommandToRun {
        #[prost(string, tag = "1")]
        pub path: String,
        #[prost(string, repeated, tag = "2")]
        pub args: Vec<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OpenCommandPane {
        #[prost(message, optional, tag = "1")]
        pub command_to_run: Option<CommandToRun>,
        #[prost(message, repeated, tag = "3")]
        pub context: Vec<ContextItem>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SetTimeout {
        #[prost(double, tag = "1")]
        pub seconds: f64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PaneIdAndShouldFloat {
        #[prost(uint32, tag = "1")]
        pub pane_id: u32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RequestPermission {
        #[prost(int32, repeated, tag = "1")]
        pub permissions: Vec<i32>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RunCommand {
        #[prost(string, repeated, tag = "1")]
        pub command_line: Vec<String>,
        #[prost(message, repeated, tag = "4")]
        pub context: Vec<ContextItem>,
    }
    /// `OpenCommandPane(Floating)Response { optional PaneId pane_id = 1 }`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OpenPaneResponse {
        #[prost(message, optional, tag = "1")]
        pub pane_id: Option<PaneId>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PaneId {
        /// Terminal 0, Plugin 1.
        #[prost(int32, tag = "1")]
        pub pane_type: i32,
        #[prost(uint32, tag = "2")]
        pub id: u32,
    }
}

/// A command the plugin issued, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Subscribe,
    RequestPermissions(Vec<i32>),
    /// `run_command`: an argv and the context echoed back with its result.
    Run {
        argv: Vec<String>,
        ctx: BTreeMap<String, String>,
    },
    OpenCommandPane {
        floating: bool,
        argv: Vec<String>,
        ctx: BTreeMap<String, String>,
        /// The terminal pane id the harness answered with.
        pane: u32,
    },
    FocusTerminalPane(u32),
    CloseTerminalPane(u32),
    SetTimeout(f64),
    Other(i32),
}

/// The guest's WASI world: one stdin queue, captured stdout/stderr.
#[derive(Default)]
struct Host {
    stdin: VecDeque<u8>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    commands: Vec<Command>,
    next_pane: u32,
}

fn ctx_map(items: &[proto::ContextItem]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|c| (c.name.clone(), c.value.clone()))
        .collect()
}

fn ctx_items(ctx: &BTreeMap<String, String>) -> Vec<proto::ContextItem> {
    ctx.iter()
        .map(|(k, v)| proto::ContextItem {
            name: k.clone(),
            value: v.clone(),
        })
        .collect()
}

impl Host {
    /// Host→guest framing: the protobuf bytes as a JSON array, one line.
    fn send(&mut self, bytes: &[u8]) {
        let line = serde_json::to_string(bytes).expect("bytes to json");
        self.stdin.extend(line.as_bytes());
        self.stdin.extend(b"\r\n");
    }

    /// `host_run_plugin_command`: drain stdout, decode the command, answer it if it
    /// expects an answer.
    fn run_plugin_command(&mut self) -> wasmtime::Result<()> {
        let out = std::mem::take(&mut self.stdout);
        let text = String::from_utf8_lossy(&out);
        let bytes: Vec<u8> = serde_json::from_str(text.trim()).map_err(|e| {
            wasmtime::format_err!("command is not a JSON byte array ({e}): {text:?}")
        })?;
        let cmd = proto::PluginCommand::decode(bytes.as_slice())
            .map_err(|e| wasmtime::format_err!("undecodable command: {e}"))?;
        use proto::CommandPayload as P;
        let decoded = match cmd.payload {
            Some(P::RunCommand(r)) => Command::Run {
                argv: r.command_line,
                ctx: ctx_map(&r.context),
            },
            Some(P::OpenCommandPane(p) | P::OpenCommandPaneFloating(p)) => {
                self.next_pane += 1;
                let pane = self.next_pane;
                let reply = proto::OpenPaneResponse {
                    pane_id: Some(proto::PaneId {
                        pane_type: 0,
                        id: pane,
                    }),
                };
                self.send(&reply.encode_to_vec());
                let c = p.command_to_run.unwrap_or_default();
                Command::OpenCommandPane {
                    floating: cmd.name == proto::CMD_OPEN_COMMAND_PANE_FLOATING,
                    argv: std::iter::once(c.path).chain(c.args).collect(),
                    ctx: ctx_map(&p.context),
                    pane,
                }
            }
            Some(P::SetTimeout(t)) => Command::SetTimeout(t.seconds),
            Some(P::FocusTerminalPane(p)) => Command::FocusTerminalPane(p.pane_id),
            Some(P::CloseTerminalPane(pane)) => Command::CloseTerminalPane(pane),
            Some(P::RequestPermission(p)) => Command::RequestPermissions(p.permissions),
            None if cmd.name == proto::CMD_SUBSCRIBE => Command::Subscribe,
            None => Command::Other(cmd.name),
        };
        self.commands.push(decoded);
        Ok(())
    }
}

/// A loaded plugin instance.
pub struct Plugin {
    store: Store<Host>,
    update: TypedFunc<(), i32>,
    pipe: TypedFunc<(), i32>,
    render: TypedFunc<(i32, i32), ()>,
}

fn memory(caller: &mut Caller<'_, Host>) -> wasmtime::Result<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => wasmtime::bail!("the plugin exports no memory"),
    }
}

fn read_u32(mem: &[u8], at: u32) -> wasmtime::Result<u32> {
    let at = at as usize;
    let b = mem
        .get(at..at + 4)
        .ok_or_else(|| wasmtime::format_err!("pointer out of bounds"))?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn write_u32(mem: &mut [u8], at: u32, v: u32) -> wasmtime::Result<()> {
    let at = at as usize;
    mem.get_mut(at..at + 4)
        .ok_or_else(|| wasmtime::format_err!("pointer out of bounds"))?
        .copy_from_slice(&v.to_le_bytes());
    Ok(())
}

/// The WASI p1 calls a zellij-tile plugin imports, over [`Host`].
fn add_wasi(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    const W: &str = "wasi_snapshot_preview1";
    const EBADF: i32 = 8;
    linker.func_wrap(
        W,
        "fd_write",
        |mut c: Caller<'_, Host>,
         fd: i32,
         iovs: u32,
         n: u32,
         written: u32|
         -> wasmtime::Result<i32> {
            let mem = memory(&mut c)?;
            let (data, host) = mem.data_and_store_mut(&mut c);
            let mut total = 0u32;
            for i in 0..n {
                let ptr = read_u32(data, iovs + i * 8)? as usize;
                let len = read_u32(data, iovs + i * 8 + 4)? as usize;
                let bytes = data
                    .get(ptr..ptr + len)
                    .ok_or_else(|| wasmtime::format_err!("iovec out of bounds"))?;
                match fd {
                    1 => host.stdout.extend_from_slice(bytes),
                    2 => host.stderr.extend_from_slice(bytes),
                    _ => return Ok(EBADF),
                }
                total += len as u32;
            }
            write_u32(data, written, total)?;
            Ok(0)
        },
    )?;
    linker.func_wrap(
        W,
        "fd_read",
        |mut c: Caller<'_, Host>, fd: i32, iovs: u32, n: u32, read: u32| -> wasmtime::Result<i32> {
            if fd != 0 {
                return Ok(EBADF);
            }
            let mem = memory(&mut c)?;
            let (data, host) = mem.data_and_store_mut(&mut c);
            let mut total = 0u32;
            for i in 0..n {
                let ptr = read_u32(data, iovs + i * 8)? as usize;
                let len = read_u32(data, iovs + i * 8 + 4)? as usize;
                let take = len.min(host.stdin.len());
                let buf = data
                    .get_mut(ptr..ptr + take)
                    .ok_or_else(|| wasmtime::format_err!("iovec out of bounds"))?;
                for (dst, src) in buf.iter_mut().zip(host.stdin.drain(..take)) {
                    *dst = src;
                }
                total += take as u32;
            }
            write_u32(data, read, total)?;
            Ok(0)
        },
    )?;
    linker.func_wrap(
        W,
        "environ_sizes_get",
        |mut c: Caller<'_, Host>, count: u32, size: u32| -> wasmtime::Result<i32> {
            let mem = memory(&mut c)?;
            let data = mem.data_mut(&mut c);
            write_u32(data, count, 0)?;
            write_u32(data, size, 0)?;
            Ok(0)
        },
    )?;
    linker.func_wrap(W, "environ_get", |_: Caller<'_, Host>, _: u32, _: u32| 0i32)?;
    linker.func_wrap(
        W,
        "random_get",
        |mut c: Caller<'_, Host>, buf: u32, len: u32| -> wasmtime::Result<i32> {
            let mem = memory(&mut c)?;
            let data = mem.data_mut(&mut c);
            let slice = data
                .get_mut(buf as usize..(buf + len) as usize)
                .ok_or_else(|| wasmtime::format_err!("buffer out of bounds"))?;
            // Deterministic bytes: only HashMap seeds use them.
            for (i, b) in slice.iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(31).wrapping_add(7);
            }
            Ok(0)
        },
    )?;
    linker.func_wrap(
        W,
        "clock_time_get",
        |mut c: Caller<'_, Host>, _clock: u32, _precision: u64, at: u32| -> wasmtime::Result<i32> {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let mem = memory(&mut c)?;
            let slot = mem
                .data_mut(&mut c)
                .get_mut(at as usize..at as usize + 8)
                .ok_or_else(|| wasmtime::format_err!("time out of bounds"))?;
            slot.copy_from_slice(&now.to_le_bytes());
            Ok(0)
        },
    )?;
    linker.func_wrap(
        W,
        "proc_exit",
        |_: Caller<'_, Host>, code: i32| -> wasmtime::Result<()> {
            wasmtime::bail!("the plugin called proc_exit({code})")
        },
    )?;
    linker.func_wrap(
        "zellij",
        "host_run_plugin_command",
        |mut c: Caller<'_, Host>| -> wasmtime::Result<()> { c.data_mut().run_plugin_command() },
    )?;
    Ok(())
}

impl Plugin {
    /// Compile and start `wasm`, then `load` it with `config` (what Zellij does).
    pub fn load(wasm: &Path, config: &[(&str, &str)]) -> wasmtime::Result<Plugin> {
        let engine = Engine::default();
        let module = Module::from_file(&engine, wasm)?;
        let mut linker = Linker::new(&engine);
        add_wasi(&mut linker)?;
        // Anything else the guest imports traps with its name if it is ever called.
        linker.define_unknown_imports_as_traps(&module)?;
        let mut store = Store::new(&engine, Host::default());
        let instance: Instance = linker.instantiate(&mut store, &module)?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        let load = instance.get_typed_func::<(), ()>(&mut store, "load")?;
        let mut plugin = Plugin {
            update: instance.get_typed_func(&mut store, "update")?,
            pipe: instance.get_typed_func(&mut store, "pipe")?,
            render: instance.get_typed_func(&mut store, "render")?,
            store,
        };
        start.call(&mut plugin.store, ())?;
        let cfg = proto::PluginConfiguration {
            name_and_value: config
                .iter()
                .map(|(k, v)| proto::NameAndValue {
                    name: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        };
        plugin.store.data_mut().send(&cfg.encode_to_vec());
        load.call(&mut plugin.store, ())
            .map_err(|e| plugin.explain(e))?;
        Ok(plugin)
    }

    /// A trap with the guest's stderr (its panic message) attached.
    fn explain(&self, e: wasmtime::Error) -> wasmtime::Error {
        let stderr = String::from_utf8_lossy(&self.store.data().stderr).into_owned();
        wasmtime::format_err!("{e:?}\nplugin stderr: {stderr}")
    }

    /// Send one event; returns whether the plugin asked to render.
    pub fn update(&mut self, name: i32, payload: proto::EventPayload) -> wasmtime::Result<bool> {
        let ev = proto::Event {
            name,
            payload: Some(payload),
        };
        self.store.data_mut().send(&ev.encode_to_vec());
        let r = self
            .update
            .call(&mut self.store, ())
            .map_err(|e| self.explain(e))?;
        Ok(r == 1)
    }

    pub fn grant(&mut self, granted: bool) -> wasmtime::Result<bool> {
        self.update(
            proto::EV_PERMISSION,
            proto::EventPayload::Permission(proto::PermissionResult { granted }),
        )
    }

    pub fn key_char(&mut self, c: char) -> wasmtime::Result<bool> {
        let key = proto::Key {
            main_key: Some(proto::MainKey::Char(c as i32)),
            ..Default::default()
        };
        self.update(proto::EV_KEY, proto::EventPayload::Key(key))
    }

    /// A named key (see [`proto::MainKey::Named`] for numbers).
    pub fn key_named(&mut self, named: i32) -> wasmtime::Result<bool> {
        let key = proto::Key {
            main_key: Some(proto::MainKey::Named(named)),
            ..Default::default()
        };
        self.update(proto::EV_KEY, proto::EventPayload::Key(key))
    }

    pub fn timer(&mut self, secs: f32) -> wasmtime::Result<bool> {
        self.update(proto::EV_TIMER, proto::EventPayload::Timer(secs))
    }

    /// Deliver a `RunCommandResult`.
    pub fn command_result(
        &mut self,
        exit: Option<i32>,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        ctx: &BTreeMap<String, String>,
    ) -> wasmtime::Result<bool> {
        let r = proto::RunCommandResult {
            exit_code: exit,
            stdout,
            stderr,
            context: ctx_items(ctx),
        };
        self.update(
            proto::EV_RUN_COMMAND_RESULT,
            proto::EventPayload::RunCommandResult(r),
        )
    }

    /// A command pane the plugin opened has exited (`exit` is `None` when killed).
    pub fn command_pane_exited(
        &mut self,
        pane: u32,
        exit: Option<i32>,
        ctx: &BTreeMap<String, String>,
    ) -> wasmtime::Result<bool> {
        self.update(
            proto::EV_COMMAND_PANE_EXITED,
            proto::EventPayload::CommandPaneExited(proto::CommandPaneExited {
                terminal_pane_id: pane,
                exit_code: exit,
                context: ctx_items(ctx),
            }),
        )
    }

    /// Deliver a pipe message (`zellij pipe --name NAME -- PAYLOAD`).
    pub fn pipe(&mut self, name: &str, payload: &str) -> wasmtime::Result<bool> {
        let msg = proto::PipeMessage {
            source: 0,
            cli_source_id: Some("harness".into()),
            name: name.into(),
            payload: Some(payload.into()),
            ..Default::default()
        };
        self.store.data_mut().send(&msg.encode_to_vec());
        let r = self
            .pipe
            .call(&mut self.store, ())
            .map_err(|e| self.explain(e))?;
        Ok(r == 1)
    }

    /// Call `render` and return the frame it printed.
    pub fn render(&mut self, rows: usize, cols: usize) -> wasmtime::Result<String> {
        self.store.data_mut().stdout.clear();
        self.render
            .call(&mut self.store, (rows as i32, cols as i32))
            .map_err(|e| self.explain(e))?;
        let out = std::mem::take(&mut self.store.data_mut().stdout);
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The commands issued since the last call.
    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.store.data_mut().commands)
    }

    /// What the plugin wrote to stderr (panics, logs).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.store.data().stderr).into_owned()
    }
}

/// Run a `RunCommand` as Zellij does (`Command::output()`, stdin null), with `env`
/// cleared-and-set, and return (exit, stdout, stderr).
pub fn execute(
    argv: &[String],
    env: &[(String, std::ffi::OsString)],
    cwd: &Path,
) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    let Some((prog, args)) = argv.split_first() else {
        return (None, vec![], b"empty command".to_vec());
    };
    match Process::new(prog)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(o) => (o.status.code(), o.stdout, o.stderr),
        Err(e) => (None, vec![], e.to_string().into_bytes()),
    }
}

/// The frame as the user reads it (the plugin's own helper).
pub use canopy_zellij::text::plain;

/// Build the plugin for wasm32-wasip1 in release, in its own target directory (so a
/// running `cargo test` never waits on its own lock), and return the `.wasm`. `None`
/// (said on stderr) when the wasm32-wasip1 target is not installed, unless
/// `CANOPY_REQUIRE_ZELLIJ` is set, as CI does: then that is a failure.
pub fn build_plugin() -> Option<PathBuf> {
    static WASM: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    WASM.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let sysroot = Process::new("rustc")
            .args(["--print", "sysroot"])
            .output()
            .expect("rustc");
        let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
        if !sysroot.join("lib/rustlib/wasm32-wasip1").exists() {
            let why = "the wasm32-wasip1 target is missing: run `rustup target add \
                       wasm32-wasip1` (the Zellij plugin's tests load the real .wasm)";
            assert!(std::env::var_os("CANOPY_REQUIRE_ZELLIJ").is_none(), "{why}");
            eprintln!("skipped: {why}");
            return None;
        }
        let target_dir = std::env::var_os("CANOPY_ZELLIJ_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/zellij-wasm"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Process::new(cargo)
            .current_dir(&root)
            .args([
                "build",
                "-p",
                "canopy-zellij",
                "--release",
                "--target",
                "wasm32-wasip1",
                "--target-dir",
            ])
            .arg(&target_dir)
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the Zellij plugin failed");
        Some(target_dir.join("wasm32-wasip1/release/canopy-zellij.wasm"))
    })
    .clone()
}
