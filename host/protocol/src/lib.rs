//! Canopy's wire contract: the types every client and the host agree on, and the
//! msgpack-RPC framing they travel in. No I/O and no async runtime, so the same crate
//! builds for the host, the CLI, the tests and the `wasm32-wasip1` Zellij plugin.
//!
//! # Layout
//! - [`frame`]: msgpack-RPC messages (`[0,id,method,params]`, `[1,id,error,result]`,
//!   `[2,method,params]`), their encoding and an incremental decoder.
//! - [`method`]: method and notification names, so no string is typed twice.
//! - [`session`]: the `Session` record and its parts (state, usage, task).
//! - [`params`]: typed parameters and results of every method.
//! - [`review`]: diffs, review comments, merge and the conflict radar.
//! - [`event`]: what subscribers receive.
//! - [`error`]: the error object (`{code, message, hint?}`) with stable codes.
//!
//! `docs/protocol.md` describes the same contract for people writing clients.

pub mod error;
pub mod event;
pub mod frame;
pub mod method;
pub mod params;
pub mod review;
mod scan;
pub mod session;

pub use error::{ErrorCode, RpcError};
pub use event::{Event, EventKind};
pub use frame::{Decoder, FrameError, Message};
pub use session::{Health, LOCAL_HOST, PullRequest, Session, State, StateKind, StateSource};

/// Version of this contract, returned by `hello`. Bumped on any incompatible change;
/// additions (new optional fields, methods, event kinds) do not bump it.
pub const PROTOCOL_VERSION: u32 = 1;
