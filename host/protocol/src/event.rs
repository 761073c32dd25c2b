//! What subscribers receive in `event` notifications.

use serde::{Deserialize, Serialize};

use crate::Session;

/// One change to the session table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Increases by one per event. A client that sees a gap (or a `resync`) re-reads the
    /// table with `list`.
    pub seq: u64,
    pub kind: EventKind,
    /// The session as it is after the change (as it was, for `session_removed`). Absent
    /// for `resync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
    /// The link as it is now, for `host_changed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<crate::params::HostLink>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    SessionAdded,
    SessionChanged,
    SessionRemoved,
    /// The client fell behind and events were dropped for it: call `list` again.
    Resync,
    /// The link to a remote host changed state (`host`); its sessions' `stale_since`
    /// follow in their own `session_changed` events.
    HostChanged,
}
