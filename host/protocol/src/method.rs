//! Names of methods (client → host requests) and notifications, in one place.

/// Handshake: `{client, version}` → `{protocol, host_version, capabilities}`.
pub const HELLO: &str = "hello";
/// All sessions: `{}` → `[Session]`.
pub const LIST: &str = "list";
/// One session: `{name}` → `Session`.
pub const GET: &str = "get";
/// Create a worktree and start an agent in it: `NewParams` → `Session`.
pub const NEW: &str = "new";
/// Type into a session: `{name, text, enter?}` → nil.
pub const SEND: &str = "send";
/// Stop a session's agent (SIGTERM, then SIGKILL): `{name}` → `Session`.
pub const STOP: &str = "stop";
/// Remove a session, its worktree and branch: `{name, force?}` → nil.
pub const RM: &str = "rm";
/// Host summary, the same document as the status snapshot file: `{}` → `Status`.
pub const STATUS: &str = "status";
/// Start receiving `event` notifications: `{since?}` → `{seq}`.
pub const SUBSCRIBE: &str = "subscribe";
/// Stop receiving `event` notifications: `{}` → nil.
pub const UNSUBSCRIBE: &str = "unsubscribe";
/// Attach to a session's terminal: `{name, rows, cols}` → `{screen}`; then `output`.
pub const ATTACH: &str = "attach";
/// A running session's scrollback and screen as text: `{name, lines?, colours?}` →
/// `{text}`.
pub const CAPTURE: &str = "capture";
/// Keystrokes for an attached session: `{name, data}` (request or notification).
pub const INPUT: &str = "input";
/// The attached terminal changed size: `{name, rows, cols}` (request or notification).
pub const RESIZE: &str = "resize";
/// Stop receiving a session's output: `{name}`.
pub const DETACH: &str = "detach";
/// An agent's hook fired (sent by `canopy hook`): `HookParams` → `HookResult`.
pub const HOOK: &str = "hook";
/// Why a session is in its state, with the last signals: `{name}` → `Explanation`.
pub const EXPLAIN: &str = "explain";
/// Answer a pending permission request with yes: `{name}` → nil.
pub const APPROVE: &str = "approve";
/// Answer a pending permission request with no: `{name, reason?}` → nil.
pub const DENY: &str = "deny";
/// Relaunch an exited session's agent, continuing its conversation: `{name}` → `Session`.
pub const RESUME: &str = "resume";
/// Start a session's dev server (`[run]`) if it is not running: `{name}` → `Session`.
pub const RUN: &str = "run";
/// Send a test notification through every configured target: `{}` →
/// `NotifyTestResult`.
pub const NOTIFY_TEST: &str = "notify_test";
/// A session's change against its base: `DiffParams` → `Diff`.
pub const DIFF: &str = "diff";
/// A session's review comments, re-anchored: `{name}` → `[Anchored]`.
pub const REVIEW_LIST: &str = "review_list";
/// Add a review comment: `CommentParams` → `Anchored`.
pub const REVIEW_ADD: &str = "review_add";
/// Send every comment to the agent as one prompt, then clear them: `{name}` →
/// `SentComments`.
pub const REVIEW_SEND: &str = "review_send";
/// Merge a session's branch into its base in the main checkout: `MergeParams` →
/// `MergeResult`.
pub const MERGE: &str = "merge";
/// Files shared by live sessions and branches that no longer merge: `{}` → `Conflicts`.
pub const CONFLICTS: &str = "conflicts";
/// Record the pull or merge request the CLI opened or refreshed for a session (the
/// CLI talks to GitHub or GitLab itself): `PrParams` → `Session`.
pub const SET_PR: &str = "set_pr";
/// Shut the host down gracefully: `{}` → nil.
pub const SHUTDOWN: &str = "shutdown";

/// Notification: a session was added, changed or removed (`Event`).
pub const EVENT: &str = "event";
/// Notification: terminal bytes from an attached session: `{name, data}`.
pub const OUTPUT: &str = "output";
/// Notification: the host ended an attachment (session exited, removed, host stopping):
/// `{name, reason}`.
pub const DETACHED: &str = "detached";
