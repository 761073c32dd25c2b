//! Canopy's host and CLI: supervises coding agents in PTYs, one per git worktree, and
//! publishes their state over msgpack-RPC on a unix socket.
//!
//! # Layout
//! - [`cli`]: the `canopy` command line (clap); each command is a thin [`client`].
//! - [`client`]: connect to the host (auto-starting it), call methods, read notifications.
//! - [`daemon`]: socket setup (private dir, lock, peer uid), accept loop, graceful stop.
//! - [`connection`]: one client: frame reader, single writer task, subscriptions and
//!   attachments with bounded, lag-tolerant forwarding.
//! - [`rpc`]: method handlers that do not depend on the connection (`new`, `rm`, …).
//! - [`registry`]: the session table actor: records, numbered events, status snapshot.
//! - [`store`]: the registry on disk (SQLite), written from its own thread.
//! - [`session`]: per agent, an actor (PTY, commands, exit) and a screen task; the
//!   agent's keeper (`canopy keep`) holds its terminal, so agents outlive the host.
//! - [`fswatch`]: the one file-system watcher, shared by every session's usage task.
//! - [`heap`]: freed heap handed back to the system once the host is at rest.
//! - [`agents`]: one adapter per agent CLI: launch with hooks, read hooks and screens.
//! - [`state`]: the state engine: hooks and screen cues in, state and evidence out.
//! - [`usage`]: tokens, cost, context and tool calls from each agent's transcript.
//! - [`remote`]: links to remote hosts (ssh to `canopy stdio`), routing `HOST:NAME`.
//! - [`notify`]: one notification policy over the event bus; desktop (D-Bus), ntfy,
//!   command and terminal (OSC) targets.
//! - [`tracker`]: issue context from GitHub, Jira and YouTrack for `new --issue`.
//! - [`env`]: what a worktree gets before its agent: included files, trusted setup and
//!   teardown commands, a port block, the dev server, a browser profile.
//! - [`forge`]: `canopy pr`: push with the system git, open or refresh a GitHub pull
//!   request or GitLab merge request (in the CLI, with the user's tokens).
//! - [`git`]: worktrees with git2: create, check for unsaved work, remove.
//! - [`review`]: a session's diff, review comments, merge, the conflict radar.
//! - [`snapshot`]: the atomically written `status.json` for front ends without a socket.
//! - [`config`], [`paths`], [`clock`]: settings, file locations, time.
//!
//! Wire types and framing live in the `canopy-protocol` crate.

pub mod agents;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod connection;
pub mod daemon;
pub mod env;
pub mod forge;
pub mod fswatch;
pub mod git;
pub mod heap;
pub mod notify;
pub mod paths;
pub mod registry;
pub mod remote;
pub mod review;
pub mod rpc;
pub mod session;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod tracker;
pub mod usage;
