//! The `Session` record: one agent in one worktree, as every front end sees it.
//!
//! The same shape appears in `list`, `get`, events, `canopy ls --json`,
//! `canopy status --json`, `canopy watch --json` and the status snapshot file.
//! Times are Unix milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Unique name; also the branch suffix (`canopy/<name>`) and worktree directory.
    /// A session of another host is named `HOST:NAME` here (its own host calls it
    /// `NAME`); a colon never appears in a local name, as git refuses it in branches.
    pub name: String,
    /// The host the session runs on: [`LOCAL_HOST`], or a `[hosts.NAME]` of the config.
    /// Records from before remote hosts existed decode as local.
    #[serde(default = "local_host")]
    pub host: String,
    /// Since when (Unix ms) this record is the last one seen from a host whose link
    /// dropped: it may be out of date, and commands to it fail until the link is back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_since: Option<u64>,
    /// Which agent runs here: an adapter name (`claude`, …) or the program of a command.
    pub agent: String,
    /// The full command line the agent was started with.
    #[serde(default)]
    pub command: Vec<String>,
    /// The main working directory of the repository the worktree belongs to.
    pub repo: String,
    /// The session's worktree.
    pub worktree: String,
    /// The session's branch.
    pub branch: String,
    /// What the branch started from, as the user named it (`main`, a commit, …).
    pub base: String,
    /// The commit the branch started from.
    #[serde(default)]
    pub base_commit: String,
    pub created_at: u64,
    pub state: State,
    /// Whether Canopy's integration with the agent is working (hooks arriving).
    #[serde(default)]
    pub health: Health,
    /// The agent's process id while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The agent's own id for its conversation (from its hooks), used to resume it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session_id: Option<String>,
    /// The agent's exit code once it has exited (absent when killed by a signal or lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub usage: Usage,
    /// The issue the session works on, when it was started from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    /// What the session's processes get beside the worktree: ports, the dev server's
    /// URL, the browser profile, and the variables that name them.
    #[serde(default, skip_serializing_if = "Environment::is_empty")]
    pub env: Environment,
    /// Review comments not yet sent to the agent (`canopy review`). Records from before
    /// review existed decode with none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<Comment>,
    /// The pull or merge request opened for the branch (`canopy pr`), as last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr: Option<PullRequest>,
    /// What the conflict radar last found while the session runs: absent when it shares
    /// no file with another live session and its branch merges cleanly into its base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radar: Option<Radar>,
}

/// The conflict radar's finding for one session, refreshed on its worktree's changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Radar {
    /// Files it changes that other live sessions of the repository change too.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shared_files: Vec<String>,
    /// Those other sessions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<String>,
    /// Files that conflict in a dry-run merge of its branch into its base's tip.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
}

/// A GitHub pull request or GitLab merge request of a session's branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// `github` or `gitlab`.
    pub provider: String,
    /// The PR number (GitHub) or the MR's `iid` (GitLab): `#42` / `!42` to a person.
    pub number: u64,
    /// Where a person reads it.
    pub url: String,
    /// `open`, `draft`, `merged` or `closed`, as of the last `canopy pr`.
    pub state: String,
}

/// A review comment anchored to a line of the session's worktree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// The file, relative to the worktree.
    pub path: String,
    /// The line (1-based) it was made on.
    pub line: u32,
    /// That line's text, to find it again after the agent edits the file.
    pub code: String,
    pub text: String,
    pub created_at: u64,
}

/// The name of the machine a client talks to, in [`Session::host`].
pub const LOCAL_HOST: &str = "local";

fn local_host() -> String {
    LOCAL_HOST.to_owned()
}

impl Session {
    /// Whether the session runs on the host that serves this record.
    pub fn is_local(&self) -> bool {
        self.host == LOCAL_HOST
    }

    /// Whether the agent process is (as far as the host knows) alive.
    pub fn is_running(&self) -> bool {
        self.state.kind.is_live()
    }
}

/// What the agent is doing, and the evidence for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub kind: StateKind,
    /// The tool being run or asking for permission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// More about the state: the permission asked for, the error message, why it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When the session entered this state.
    pub since: u64,
    /// Which signal put it here.
    pub source: StateSource,
}

impl State {
    pub fn new(kind: StateKind, source: StateSource, since: u64) -> Self {
        Self {
            kind,
            tool: None,
            detail: None,
            since,
            source,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// The states an agent can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    Starting,
    Idle,
    Thinking,
    Tool,
    WaitingPermission,
    WaitingInput,
    Compacting,
    Error,
    Exited,
    /// A kind this build does not know (added by a newer host). The host never sends
    /// it; it lets an older client read the record instead of dropping it.
    #[serde(other)]
    Unknown,
}

impl StateKind {
    /// Every kind the host produces ([`StateKind::Unknown`] is only ever read).
    pub const ALL: [StateKind; 9] = [
        StateKind::Starting,
        StateKind::Idle,
        StateKind::Thinking,
        StateKind::Tool,
        StateKind::WaitingPermission,
        StateKind::WaitingInput,
        StateKind::Compacting,
        StateKind::Error,
        StateKind::Exited,
    ];

    /// The wire name (`waiting_permission`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Starting => "starting",
            StateKind::Idle => "idle",
            StateKind::Thinking => "thinking",
            StateKind::Tool => "tool",
            StateKind::WaitingPermission => "waiting_permission",
            StateKind::WaitingInput => "waiting_input",
            StateKind::Compacting => "compacting",
            StateKind::Error => "error",
            StateKind::Exited => "exited",
            StateKind::Unknown => "unknown",
        }
    }

    /// Whether the agent is at work: thinking, in a tool or compacting (the time that
    /// counts as active).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            StateKind::Thinking | StateKind::Tool | StateKind::Compacting
        )
    }

    /// Whether an agent in this state still has a live process.
    pub fn is_live(self) -> bool {
        self != StateKind::Exited
    }
}

impl std::fmt::Display for StateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which signal produced a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateSource {
    /// The host itself (spawn, stop, restart recovery).
    Host,
    /// An event from the agent's hooks.
    Hook,
    /// Text recognised on the agent's screen.
    Screen,
    /// The agent's transcript.
    Transcript,
    /// The agent process exited.
    Process,
}

/// Health of Canopy's integration with the agent, apart from the agent's own state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Hooks arrive (or the agent has no hooks and is read from its screen alone).
    #[default]
    Ok,
    /// No hook event arrived within the grace period; the state comes from the screen.
    Degraded,
}

/// Usage and cost of a session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// The model last used, when known.
    pub model: Option<String>,
    /// Cost in US dollars; `None` when the price of a model used is unknown.
    pub cost_usd: Option<f64>,
    /// Models used whose price is unknown (why `cost_usd` is `None`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unpriced_models: Vec<String>,
    pub tokens: Tokens,
    /// Tokens and cost per model.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_model: BTreeMap<String, ModelUsage>,
    pub context: Context,
    pub tool_calls: ToolCalls,
    /// Time since the session started.
    pub wall_ms: u64,
    /// Time spent thinking or running tools.
    pub active_ms: u64,
    pub lines_added: u64,
    pub lines_removed: u64,
}

/// Tokens by kind, the same for every agent: `input` excludes cache reads and writes
/// (Codex and Gemini count cached tokens inside input; Canopy takes them out), and
/// `output` includes `reasoning`, which is shown apart for information.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
    pub reasoning: u64,
}

/// One model's share of a session's usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelUsage {
    pub tokens: Tokens,
    /// `None` when the model's price is unknown.
    pub cost_usd: Option<f64>,
    /// API responses counted.
    pub responses: u64,
}

impl Tokens {
    /// Every kind added up (reasoning is part of output).
    pub fn total(&self) -> u64 {
        self.input + self.output + self.cache_write_5m + self.cache_write_1h + self.cache_read
    }

    /// The prompt's size: input with the cache reads and writes.
    pub fn prompt(&self) -> u64 {
        self.input + self.cache_write_5m + self.cache_write_1h + self.cache_read
    }

    pub fn add(&mut self, other: &Tokens) {
        self.input += other.input;
        self.output += other.output;
        self.cache_write_5m += other.cache_write_5m;
        self.cache_write_1h += other.cache_write_1h;
        self.cache_read += other.cache_read;
        self.reasoning += other.reasoning;
    }

    /// Take `other` away again (a record that was replaced), never below zero.
    pub fn sub(&mut self, other: &Tokens) {
        self.input = self.input.saturating_sub(other.input);
        self.output = self.output.saturating_sub(other.output);
        self.cache_write_5m = self.cache_write_5m.saturating_sub(other.cache_write_5m);
        self.cache_write_1h = self.cache_write_1h.saturating_sub(other.cache_write_1h);
        self.cache_read = self.cache_read.saturating_sub(other.cache_read);
        self.reasoning = self.reasoning.saturating_sub(other.reasoning);
    }
}

/// How full the context window is: the prompt of the latest response against the
/// model's window (0 when unknown).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Context {
    pub used: u64,
    pub window: u64,
    pub percent: f64,
}

/// Tool calls in total and by tool name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolCalls {
    pub total: u64,
    pub by_tool: BTreeMap<String, u64>,
}

/// The tracker issue a session works on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// `github`, `jira` or `youtrack`.
    pub tracker: String,
    /// The issue's key (`owner/repo#12`, `KEY-12`).
    pub id: String,
    pub title: String,
    pub url: String,
}

/// A session's environment (`canopy env NAME`): what its agent, setup commands and dev
/// server get, so sessions of one repository never share a port or a browser profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Environment {
    /// The session's block of ports, first and last; unique among the host's sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<[u16; 2]>,
    /// Where the dev server (`[run]`) answers, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The session's own browser profile directory (`canopy open`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browser_profile: Option<String>,
    /// The variables every process of the session gets (`CANOPY_PORT`, …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// The setup step that failed; `resume` runs the setup again before the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_failed: Option<String>,
    /// A repository `.canopy.toml` whose commands were skipped: it is not trusted
    /// (`canopy trust` approves it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untrusted: Option<String>,
}

impl Environment {
    pub fn is_empty(&self) -> bool {
        self == &Environment::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_kind_added_later_reads_as_unknown() {
        let s: State = serde_json::from_str(r#"{"kind":"daydreaming","since":1,"source":"hook"}"#)
            .expect("an unknown kind still parses");
        assert_eq!(s.kind, StateKind::Unknown);
        assert!(!StateKind::ALL.contains(&StateKind::Unknown));
        let known: State = serde_json::from_str(r#"{"kind":"tool","since":1,"source":"hook"}"#)
            .expect("a known kind");
        assert_eq!(known.kind, StateKind::Tool);
    }
}
