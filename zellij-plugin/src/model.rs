//! The host's records as the plugin reads them from `canopy status --json` and
//! `canopy watch --json` (docs/protocol.md §5–6). Every field defaults, so a host that
//! adds fields or omits optional ones still parses; a line that does not parse at all
//! is skipped, never unwrapped.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One session (protocol §6.1), the fields the pane shows.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Session {
    /// `HOST:NAME` for a remote host's session.
    pub name: String,
    /// Set while its remote host's link is down: the record may be out of date.
    pub stale_since: Option<u64>,
    pub agent: String,
    pub state: State,
    pub health: String,
    pub created_at: u64,
    pub exit_code: Option<i32>,
    pub usage: Usage,
    pub task: Option<Task>,
    pub env: Env,
}

/// The session's environment (protocol §6.1 Environment), the part the pane shows.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Env {
    /// The dev server's URL.
    pub url: Option<String>,
}

/// What the agent is doing (protocol §6.1 State).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct State {
    pub kind: String,
    pub tool: Option<String>,
    pub detail: Option<String>,
    pub since: u64,
}

/// Usage and cost (protocol §6.1 Usage).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub model: Option<String>,
    /// `None`: a model's price is unknown (shown as `?`, never as `$0`).
    pub cost_usd: Option<f64>,
    pub tokens: Tokens,
    pub context: Context,
    pub tool_calls: ToolCalls,
    pub wall_ms: u64,
    pub active_ms: u64,
    pub lines_added: u64,
    pub lines_removed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
    pub reasoning: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Context {
    pub used: u64,
    /// `0` when unknown.
    pub window: u64,
    pub percent: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ToolCalls {
    pub total: u64,
    pub by_tool: BTreeMap<String, u64>,
}

/// The tracker issue a session works on.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Task {
    pub id: String,
    pub title: String,
}

/// `canopy status --json`: the table and the `seq` it reflects.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Status {
    pub seq: u64,
    pub sessions: Vec<Session>,
}

/// One line of `canopy watch --json` (protocol §5.1).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub kind: String,
    #[serde(default)]
    pub session: Option<Session>,
}

/// Parse `canopy status --json`.
pub fn parse_status(stdout: &[u8]) -> Result<Status, String> {
    serde_json::from_slice(stdout).map_err(|e| format!("unreadable status: {e}"))
}

/// Parse the lines of `canopy watch --json` (or a pipe payload), skipping blank lines.
/// Malformed lines are counted, not fatal: the next status read repairs the table.
pub fn parse_events(stdout: &[u8]) -> (Vec<Event>, usize) {
    let mut bad = 0;
    let events = String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let e = serde_json::from_str(l).ok();
            bad += usize::from(e.is_none());
            e
        })
        .collect();
    (events, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_watch_line_and_skips_garbage() {
        let out = b"{\"seq\":7,\"kind\":\"session_changed\",\"session\":{\"name\":\"p\",\"agent\":\"claude\",\
            \"state\":{\"kind\":\"tool\",\"tool\":\"Bash\",\"since\":1,\"source\":\"hook\"},\"new_field\":1,\
            \"usage\":{\"cost_usd\":null,\"context\":{\"used\":1,\"window\":0,\"percent\":0.0}}}}\n\
            not json\n\n{\"seq\":8,\"kind\":\"resync\"}\n";
        let (events, bad) = parse_events(out);
        assert_eq!(bad, 1);
        assert_eq!(events.len(), 2);
        let s = events[0].session.as_ref().expect("a session");
        assert_eq!((s.name.as_str(), s.state.kind.as_str()), ("p", "tool"));
        assert_eq!(s.usage.cost_usd, None);
        assert_eq!(events[1].kind, "resync");
        assert!(events[1].session.is_none());
    }

    #[test]
    fn status_errors_are_values() {
        assert!(parse_status(b"error: no host").is_err());
        assert_eq!(parse_status(b"{\"seq\":3}").map(|s| s.seq), Ok(3));
    }
}
