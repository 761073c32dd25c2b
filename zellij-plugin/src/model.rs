//! The host's records as the plugin reads them from `canopy status --json` and
//! `canopy watch --json` (docs/protocol.md §5–6): the shared `canopy-protocol` types,
//! so the pane cannot drift from the host. Unknown fields are ignored and a state kind
//! added later reads as [`StateKind::Unknown`]; a line that does not parse at all is
//! skipped, never unwrapped.

pub use canopy_protocol::params::Status;
pub use canopy_protocol::review::{Diff, FileDiff};
pub use canopy_protocol::{Event, EventKind, LOCAL_HOST, Session, StateKind};

/// Parse `canopy status --json`.
pub fn parse_status(stdout: &[u8]) -> Result<Status, String> {
    serde_json::from_slice(stdout).map_err(|e| format!("unreadable status: {e}"))
}

/// Parse `canopy diff NAME --stat --json`: the changed files with their counts.
pub fn parse_diff(stdout: &[u8]) -> Result<Diff, String> {
    serde_json::from_slice(stdout).map_err(|e| format!("unreadable diff: {e}"))
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

/// The order of the pane's rows: local sessions first, then each remote host's
/// together, by name within a host.
pub fn order(s: &Session) -> (bool, &str, &str) {
    (s.host != LOCAL_HOST, s.host.as_str(), s.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_watch_line_and_skips_garbage() {
        let out = b"{\"seq\":7,\"kind\":\"session_changed\",\"session\":{\"name\":\"p\",\"agent\":\"claude\",\
            \"repo\":\"/r\",\"worktree\":\"/w\",\"branch\":\"canopy/p\",\"base\":\"main\",\"created_at\":1,\
            \"state\":{\"kind\":\"tool\",\"tool\":\"Bash\",\"since\":1,\"source\":\"hook\"},\"new_field\":1,\
            \"usage\":{\"cost_usd\":null,\"context\":{\"used\":1,\"window\":0,\"percent\":0.0}}}}\n\
            not json\n\n{\"seq\":8,\"kind\":\"resync\"}\n";
        let (events, bad) = parse_events(out);
        assert_eq!(bad, 1);
        assert_eq!(events.len(), 2);
        let s = events[0].session.as_ref().expect("a session");
        assert_eq!((s.name.as_str(), s.state.kind), ("p", StateKind::Tool));
        assert_eq!(s.host, LOCAL_HOST);
        assert_eq!(s.usage.cost_usd, None);
        assert_eq!(events[1].kind, EventKind::Resync);
        assert!(events[1].session.is_none());
    }

    #[test]
    fn a_state_added_later_keeps_the_record() {
        let out = b"{\"seq\":7,\"kind\":\"session_added\",\"session\":{\"name\":\"devbox:p\",\
            \"host\":\"devbox\",\"agent\":\"claude\",\"repo\":\"/r\",\"worktree\":\"/w\",\
            \"branch\":\"canopy/p\",\"base\":\"main\",\"created_at\":1,\
            \"state\":{\"kind\":\"daydreaming\",\"since\":1,\"source\":\"hook\"}}}\n";
        let (events, bad) = parse_events(out);
        assert_eq!(bad, 0);
        let s = events[0].session.as_ref().expect("a session");
        assert_eq!(
            (s.host.as_str(), s.state.kind),
            ("devbox", StateKind::Unknown)
        );
    }

    #[test]
    fn status_errors_are_values() {
        assert!(parse_status(b"error: no host").is_err());
        let st = b"{\"protocol\":1,\"host\":{\"pid\":1,\"version\":\"0\",\"socket\":\"/s\",\
            \"started_at\":0},\"seq\":3,\"counts\":{},\"total_cost_usd\":0.0,\"sessions\":[]}";
        assert_eq!(parse_status(st).map(|s| s.seq), Ok(3));
    }
}
