//! Agent adapters: how to launch each agent CLI in a worktree with Canopy's hooks
//! injected for that launch only, how to read its hook payloads and its screen, and
//! how to answer its permission dialog.
//!
//! - [`claude`], [`codex`], [`gemini`], [`opencode`]: the built-in adapters.
//! - [`custom`]: agents defined in `config.toml` (`[agents.NAME]`), and plain commands.
//! - [`cues`]: screen-text patterns, shared by all adapters.
//!
//! No file of the user's (`~/.claude`, `~/.codex`, `~/.gemini`, opencode config, the
//! repository) is written: hooks travel in flags, environment variables, or files in
//! the session's own private directory under Canopy's state directory.

pub mod claude;
pub mod codex;
pub mod cues;
pub mod custom;
pub mod gemini;
pub mod opencode;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use canopy_protocol::StateKind;

pub use cues::{Cue, Cues, Reading};

/// What an adapter needs to know to launch its agent.
#[derive(Debug, Clone)]
pub struct LaunchCtx<'a> {
    pub session: &'a str,
    pub worktree: &'a Path,
    /// A private (0700) directory for this session's generated files.
    pub session_dir: &'a Path,
    /// The `canopy` executable, for hook commands.
    pub canopy_exe: &'a Path,
    /// The first prompt.
    pub prompt: Option<&'a str>,
    /// Continue this agent conversation instead of starting a new one.
    pub resume_id: Option<&'a str>,
    /// Extra arguments from the user (`canopy new … -- ARGS`).
    pub extra_args: &'a [String],
}

/// How to start the agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Launch {
    pub program: String,
    pub args: Vec<String>,
    /// Variables added to the caller's environment.
    pub env: Vec<(String, String)>,
    /// The agent's conversation id when it is chosen at launch.
    pub agent_session_id: Option<String>,
    /// A prompt to type into the terminal once it starts (agents with no prompt flag).
    pub type_prompt: Option<String>,
    /// The agent's own loopback server, for agents that have one (OpenCode).
    pub server: Option<String>,
}

/// Why an agent could not be launched.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
}

/// What one hook invocation means for the session.
#[derive(Debug, Clone, PartialEq)]
pub struct HookEvent {
    /// The event's name as the agent calls it (`PreToolUse`, `BeforeTool`, …).
    pub name: String,
    /// The agent's conversation id, when the payload carries it.
    pub agent_session_id: Option<String>,
    /// The id of a permission request it opens, for agents answered over HTTP.
    pub request_id: Option<String>,
    pub effect: Effect,
}

impl HookEvent {
    /// An event of a hook payload that names its conversation in `session_id`.
    pub fn of_payload(payload: &serde_json::Value, name: String, effect: Effect) -> Self {
        Self {
            name,
            agent_session_id: field(payload, "session_id").map(str::to_owned),
            request_id: None,
            effect,
        }
    }
}

/// What `PostCompact` means, for the CLIs that send it (Claude Code, Codex): an automatic
/// compaction happens inside a turn, which goes on; `/compact` is a command of its own,
/// and no Stop follows it. (Codex's payload schema, embedded in its binary as
/// `post-compact.command.input`, has `trigger: manual|auto` like Claude's.)
pub(crate) fn post_compact(payload: &serde_json::Value) -> Effect {
    if payload.get("trigger").and_then(serde_json::Value::as_str) == Some("auto") {
        Effect::state(StateKind::Thinking)
    } else {
        Effect::state(StateKind::Idle)
    }
}

/// `StopFailure` (Claude, Codex): the turn failed with an API error.
pub(crate) fn stop_failure(payload: &serde_json::Value) -> Effect {
    let error = field(payload, "error").unwrap_or("unknown");
    let message = field(payload, "last_assistant_message").unwrap_or("");
    Effect::tool(
        StateKind::Error,
        None,
        Some(one_line(&format!("{error}: {message}"), 300)),
    )
}

/// The state a hook event implies.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Move to this state.
    State {
        kind: StateKind,
        tool: Option<String>,
        detail: Option<String>,
    },
    /// The agent says its open permission request was answered (from anywhere):
    /// approved, the tool runs; refused, its turn ends.
    Answered { approve: bool },
    /// A tool call ended (`completed`: it ran to its end; else it failed, was refused or
    /// was cancelled). The model goes on with its result only if the turn still runs:
    /// an interrupted or refused tool reports its end after the turn is over.
    ToolEnded {
        completed: bool,
        tool: Option<String>,
    },
    /// A tool call ended by leaving its process running in the background (Gemini's
    /// `is_background` shell call: "Command moved to background (PID: N)"): the model
    /// goes on as after any tool, and the turn's end is not idle while `pid` runs.
    Backgrounded { tool: Option<String>, pid: u32 },
    /// A sub-agent started (`running`) or ended beside the turn (Codex's
    /// `SubagentStart`, `SubagentStop`): the turn's end is not idle while one runs, and
    /// its end wakes nobody.
    SubAgent { id: String, running: bool },
    /// The turn ended, but work the agent started goes on in the background and will
    /// wake it when done (Claude's `Stop` with `background_tasks`): not idle.
    Background { detail: String },
    /// The agent works, with nothing more specific said (OpenCode's `session.status
    /// busy`, sent again and again during a turn): `thinking` when it was at rest; it
    /// refines nothing when the state already says what the work is.
    Busy,
    /// Nothing changes; the text says why (shown by `canopy explain`).
    Ignore(String),
    /// Keep-alives and the like: not even worth a line in `canopy explain`.
    Noise,
}

impl Effect {
    pub fn state(kind: StateKind) -> Self {
        Effect::State {
            kind,
            tool: None,
            detail: None,
        }
    }

    pub fn tool(kind: StateKind, tool: Option<String>, detail: Option<String>) -> Self {
        Effect::State { kind, tool, detail }
    }

    pub fn ignore(why: impl Into<String>) -> Self {
        Effect::Ignore(why.into())
    }
}

/// One agent CLI's integration.
pub trait Adapter: Send + Sync + std::fmt::Debug {
    /// The name users pass to `--agent`.
    fn name(&self) -> &str;
    /// How to start it (or resume it).
    fn launch(&self, ctx: &LaunchCtx<'_>) -> Result<Launch, AgentError>;
    /// Whether the agent reports through hooks (if none arrive, health degrades).
    fn has_hooks(&self) -> bool;
    /// What a hook payload means. `known_session` is the conversation id recorded so
    /// far, for agents that report about other conversations too.
    fn hook(&self, payload: &serde_json::Value, known_session: Option<&str>) -> HookEvent;
    /// Screen patterns for the fallback detector.
    fn cues(&self) -> &Cues;
    /// Keys that answer the permission dialog on screen.
    fn answer_keys(&self, approve: bool) -> Vec<u8>;
    /// The installation hint shown when the program is missing.
    fn install_hint(&self) -> String;
    /// Whether text with line breaks is typed as one bracketed paste even while the
    /// program has not turned bracketed paste on. The agents' input parsers take the
    /// markers whatever the mode (real Claude Code turns it off again after its start);
    /// a plain program (a shell) would show them as text.
    fn reads_pastes(&self) -> bool {
        true
    }
    /// The path of the agent's event stream on its server, when it has one.
    fn events_path(&self) -> Option<&str> {
        None
    }
    /// A path on the agent's server that answers once it is ready for the event stream.
    fn ready_path(&self) -> Option<&str> {
        None
    }
    /// Events describing the agent's current state, read over its server (`get` takes a
    /// path), for what happened before its event stream was connected.
    fn catch_up(&self, _get: &dyn Fn(&str) -> Option<serde_json::Value>) -> Vec<serde_json::Value> {
        Vec::new()
    }
    /// How to answer permission request `id` over the agent's server: a path and a JSON
    /// body. `None`: answer on screen.
    fn answer_request(&self, _id: &str, _approve: bool) -> Option<(String, serde_json::Value)> {
        None
    }
    /// For agents that run hook `event` beside their permission dialog and take the
    /// first answer (terminal or hook): what the hook prints to approve or deny. Canopy
    /// then holds that hook open until it is answered. `None`: the hook is answered at
    /// once, and approvals go through the dialog or the agent's server.
    fn hook_decision(&self, _event: &str, _approve: bool, _reason: Option<&str>) -> Option<String> {
        None
    }
}

/// The adapter for `--agent NAME`: a built-in agent, a custom one from the config, or
/// (anything else) a plain command watched through its screen only.
pub fn resolve(
    name: &str,
    custom: &std::collections::BTreeMap<String, custom::CustomAgent>,
) -> Arc<dyn Adapter> {
    if let Some(c) = custom.get(name) {
        return Arc::new(custom::Custom::new(name, c.clone()));
    }
    match name {
        "claude" => Arc::new(claude::Claude::new()),
        "codex" => Arc::new(codex::Codex::new()),
        "gemini" => Arc::new(gemini::Gemini::new()),
        "opencode" => Arc::new(opencode::OpenCode::new()),
        _ => Arc::new(custom::Custom::command(name)),
    }
}

/// A JSON string field of a payload.
pub(crate) fn field<'a>(payload: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    payload.get(key).and_then(|v| v.as_str())
}

/// A short, one-line description of a tool call's input: the command for shells, the
/// path for file tools, else compact JSON.
pub(crate) fn tool_detail(input: Option<&serde_json::Value>) -> Option<String> {
    let input = input?;
    let text = ["command", "cmd", "file_path", "path", "pattern", "url"]
        .iter()
        .find_map(|k| input.get(*k).and_then(|v| v.as_str()).map(str::to_owned))
        .unwrap_or_else(|| input.to_string());
    Some(one_line(&text, 200))
}

/// Collapse whitespace and cut to `max` characters.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// The command `canopy hook` runs as, for hook configurations (shell-quoted).
pub(crate) fn hook_command(canopy: &Path, agent: &str) -> String {
    format!(
        "{} hook --agent {agent}",
        shell_words::quote(&canopy.display().to_string())
    )
}

/// Write a generated file readable only by the user.
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), AgentError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| AgentError::Write {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(contents.as_bytes()).map_err(err)
}

/// A random RFC 4122 version 4 UUID, for agents that take a conversation id at launch.
pub(crate) fn new_uuid() -> String {
    let mut b = [0u8; 16];
    // getrandom via /dev/urandom; a failure leaves zeros, still a valid (if poor) id.
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_v4_shaped_and_differ() {
        let a = new_uuid();
        let b = new_uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn tool_details_prefer_the_command() {
        let v = serde_json::json!({"command": "ls   -la\n/tmp", "description": "x"});
        assert_eq!(tool_detail(Some(&v)).as_deref(), Some("ls -la /tmp"));
        let v = serde_json::json!({"file_path": "/a/b.rs"});
        assert_eq!(tool_detail(Some(&v)).as_deref(), Some("/a/b.rs"));
        assert_eq!(one_line("abcdef", 4), "abc…");
    }
}
