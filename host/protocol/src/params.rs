//! Typed parameters and results of the methods in [`crate::method`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Session;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HelloParams {
    /// Who is calling (`canopy-cli`, `nvim`, …), for the host's log.
    pub client: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloResult {
    pub protocol: u32,
    pub host_version: String,
    pub capabilities: Vec<String>,
    pub pid: u32,
    /// How many tasks the host is running now (each connection, subscription and
    /// attachment holds a few, each session a handful): a figure for leak checks, which
    /// compare it before and after many clients come and go. Absent from older hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u64>,
    /// Different every time a host process starts: a hub that sees it change knows the
    /// host restarted, so its event numbers start over and a full `list` is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

/// `new`: create a worktree on a new branch and start an agent in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewParams {
    pub name: String,
    /// A path inside the repository.
    pub repo: String,
    /// The program to run (for now any command).
    pub agent: String,
    pub args: Vec<String>,
    /// What to branch from; default the repository's HEAD.
    pub base: Option<String>,
    /// The first prompt for the agent.
    pub prompt: Option<String>,
    /// The tracker issue the session works on, kept in its record. Clients fetch the
    /// issue themselves (they hold the user's tokens) and put it in `prompt`.
    pub task: Option<crate::session::Task>,
    /// The issue context to write to `.canopy/task.md` in the worktree (kept out of git
    /// by `.canopy/.gitignore`).
    pub task_context: Option<String>,
    /// Environment for the agent, normally the calling shell's. Empty: the host's own.
    pub env: BTreeMap<String, String>,
    /// Terminal size to start with; default 24×80.
    pub rows: Option<u16>,
    pub cols: Option<u16>,
    /// Start it on this `[hosts.NAME]` instead of here (`repo` is then a path there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Params of methods that name one session (`get`, `detach`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NameParams {
    pub name: String,
}

/// `shutdown`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShutdownParams {
    /// Leave the agents running under their keepers, for the next host to take back
    /// (`canopy host restart`); else they are stopped.
    pub keep_agents: bool,
}

/// `stop` and `rm`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StopParams {
    pub name: String,
    /// `rm`: remove even if work would be lost. `stop`: SIGKILL at once.
    pub force: bool,
}

/// The result of `rm`: what it kept so that no commit is lost (all absent: the worktree
/// and the branch are gone).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RemoveResult {
    /// The session's branch, kept because it has commits found nowhere else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_branch: Option<String>,
    /// A branch made to keep commits of the worktree's detached HEAD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_head: Option<String>,
    /// Something other than the session's worktree found at its path, left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_alone: Option<String>,
    /// The teardown step that failed (the worktree was removed all the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teardown_failed: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SendParams {
    pub name: String,
    pub text: String,
    /// Press Enter after the text.
    pub enter: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscribeParams {
    /// Replay events after this seq first, when the host still has them; otherwise a
    /// `resync` event arrives first.
    pub since: Option<u64>,
}

/// How `subscribe` delivers events, read from the same params map as
/// [`SubscribeParams`]. A struct of its own so that `SubscribeParams { since }` literals
/// keep compiling.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscribeDelivery {
    /// Deliver each event as `[2, "nvim_exec_lua", [code, [event]]]` instead of
    /// `[2, "event", [event]]`: Neovim runs incoming notifications as calls to its own
    /// API and rejects any other method name, so this is how a plugin that opened the
    /// socket with `sockconnect` gets pushes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvim_exec_lua: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeResult {
    /// The seq of the last event that happened before the subscription.
    pub seq: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttachParams {
    pub name: String,
    pub rows: u16,
    pub cols: u16,
}

/// Which of a session's terminals a request means, read from the same params map as
/// `AttachParams`: `{run: true}` is the dev server (`[run]`), else the agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Terminal {
    pub run: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachResult {
    /// Bytes that repaint the current screen on a cleared terminal.
    #[serde(with = "serde_bytes")]
    pub screen: Vec<u8>,
}

/// `input` from an attached client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InputParams {
    pub name: String,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// `resize` from an attached client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResizeParams {
    pub name: String,
    pub rows: u16,
    pub cols: u16,
}

/// `output` notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputParams {
    pub name: String,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// `output` notification as a reader takes it: borrowed from the frame, so terminal
/// bytes go from the socket's buffer to wherever they are written without a copy.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct OutputData<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

/// `detached` notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetachedParams {
    pub name: String,
    pub reason: String,
}

/// The host and its sessions: the `status` result and the status snapshot file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub protocol: u32,
    pub host: HostInfo,
    /// The seq of the last event reflected here.
    pub seq: u64,
    /// Sessions per state kind (only kinds with at least one session).
    pub counts: BTreeMap<String, u64>,
    /// Sum of the known session costs.
    pub total_cost_usd: f64,
    pub sessions: Vec<Session>,
    /// The links to the configured remote hosts (none configured: empty, and absent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostLink>,
    /// Conditions the user should know about that stop nothing (e.g. no D-Bus session
    /// bus for desktop notifications). Only in the `status` result, not the snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

/// `notify_test`: the host's notification settings, and what each target did with a
/// test notification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifyTestResult {
    /// The effective `[notify]` settings, one `key = value` per line.
    pub settings: Vec<String>,
    /// One line per target: its name and the outcome.
    pub targets: Vec<String>,
}

/// The link to one remote host, as `status`, `status.json` and `host_changed` events
/// show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostLink {
    /// The `[hosts.NAME]` of the config: the `HOST` in `HOST:NAME`.
    pub name: String,
    pub state: LinkState,
    /// When the link entered this state (Unix ms).
    pub since: u64,
    /// Why: the error that dropped it, what the far side said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Where a link to a remote host stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// The first connection is being made.
    Connecting,
    /// Connected, handshaken and subscribed: its sessions are current.
    Live,
    /// The link dropped and a new connection is being made; its sessions are stale.
    Reconnecting,
    /// The link is down, waiting to try again; its sessions are the last seen.
    Stale,
    /// ssh refused the login (keys, agent, `BatchMode`): retried, but needs the user.
    AuthFailed,
    /// The far host speaks another protocol version: upgrade one side.
    VersionMismatch,
}

impl LinkState {
    /// The wire name (`auth_failed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Live => "live",
            LinkState::Reconnecting => "reconnecting",
            LinkState::Stale => "stale",
            LinkState::AuthFailed => "auth_failed",
            LinkState::VersionMismatch => "version_mismatch",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub pid: u32,
    pub version: String,
    pub socket: String,
    pub started_at: u64,
}

/// `hook`: one hook invocation of an agent, relayed by `canopy hook`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HookParams {
    /// `$CANOPY_SESSION` of the agent that ran the hook.
    pub session: String,
    /// Which adapter's hook this is (`claude`, `codex`, `gemini`, `opencode`).
    pub agent: String,
    /// The payload exactly as the agent gave it (JSON text).
    pub payload: String,
}

/// What `canopy hook` should hand back to the agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HookResult {
    /// Printed on stdout (e.g. a decision JSON), when present.
    pub stdout: Option<String>,
}

/// `capture`: a running session's scrollback and screen as text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureParams {
    pub name: String,
    /// Only the last this many lines (all that are kept when absent).
    pub lines: Option<u32>,
    /// Keep the SGR sequences that colour the text.
    pub colours: bool,
    /// The session's dev server (`[run]`) instead of its agent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub run: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureResult {
    /// UTF-8 text, one line per terminal row (rows that wrap are joined), each ending in
    /// a newline; oldest first.
    #[serde(with = "serde_bytes")]
    pub text: Vec<u8>,
}

/// `approve` and `deny`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DecisionParams {
    pub name: String,
    /// `deny`: what the agent should do instead.
    pub reason: Option<String>,
}

/// `explain`: a session's state and the signals that led to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub name: String,
    pub state: crate::State,
    pub health: crate::Health,
    /// Why the health is what it is.
    pub health_detail: String,
    /// What the agent's screen shows now (`permission dialog on screen`, …), when it
    /// is running and its screen has been read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<String>,
    /// The most recent signals, oldest first.
    pub signals: Vec<Signal>,
}

/// One thing the state engine saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub at: u64,
    pub source: crate::StateSource,
    /// The hook event, screen cue or process event.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The state it led to, or why it changed nothing.
    pub outcome: String,
}

/// `resume`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResumeParams {
    pub name: String,
    /// Environment for the agent, normally the calling shell's. Empty: the host's own.
    pub env: BTreeMap<String, String>,
    pub rows: Option<u16>,
    pub cols: Option<u16>,
}
