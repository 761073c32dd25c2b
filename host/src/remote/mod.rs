//! Remote hosts: one link task per `[hosts.NAME]` of the config, each running `ssh`
//! (or the configured command) to the far host's `canopy stdio`, and the routing of
//! `HOST:NAME` requests to it.
//!
//! The links feed the [`Registry`] as one more source of sessions (named `HOST:NAME`,
//! with their `host` field set); the registry stays the one owner of the table. `rpc`
//! and `connection` hand anything addressed to another host to [`Remotes`] and know
//! nothing of ssh. A link that is not live answers at once with an error: nothing is
//! queued for later, so no keystroke is ever replayed on a link that comes back.
//!
//! # Layout
//! - this file: [`Remotes`] (the handles, routing, attachments relayed through a link).
//! - [`link`]: the task per host: the child process, handshake, heartbeat, reconnect
//!   with backoff, resync.

mod link;

use std::collections::BTreeMap;
use std::time::Duration;

use canopy_protocol::params::{HostLink, LinkState};
use canopy_protocol::{ErrorCode, RpcError, method};
use rmpv::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::HostConfig;
use crate::paths::Paths;
use crate::registry::Registry;

/// The line `canopy stdio` prints before the protocol starts: everything a login shell
/// prints before it (a motd, a banner) is skipped by the hub.
pub const PREAMBLE: &str = "CANOPY1";

/// Commands queued for one link: few, since a link that is not live takes none.
const COMMAND_QUEUE: usize = 64;
/// Output chunks queued for one local client attached through a link. A client that
/// falls this far behind is detached (with a message) rather than slowing the link.
const RELAY_QUEUE: usize = 256;

/// Where a link stands, published by its task.
#[derive(Debug, Clone)]
struct Phase {
    link: HostLink,
    /// Counts connections; a command made for one is never run on a later one.
    generation: u64,
}

/// A request for a link's task.
enum Cmd {
    Call {
        generation: u64,
        method: String,
        params: Vec<Value>,
        reply: oneshot::Sender<Result<Value, RpcError>>,
    },
    Attach {
        generation: u64,
        /// The far host's name for the session.
        name: String,
        rows: u16,
        cols: u16,
        id: u64,
        relay: mpsc::Sender<Relayed>,
        reply: oneshot::Sender<Result<Vec<u8>, RpcError>>,
    },
    /// `input` or `resize` for an attached session.
    Notify {
        generation: u64,
        method: &'static str,
        params: Value,
    },
    /// One local client stopped watching `name` (attachment `id`).
    Detach { name: String, id: u64 },
}

/// What a link relays to a local client attached through it.
#[derive(Debug)]
pub enum Relayed {
    Output(Vec<u8>),
    /// The attachment ended, and why (the session ended, the link dropped).
    Ended(String),
}

/// A local client's attachment to a session on a remote host; dropping it detaches.
#[derive(Debug)]
pub struct RemoteAttachment {
    pub screen: Vec<u8>,
    pub output: mpsc::Receiver<Relayed>,
    pub handle: AttachHandle,
}

/// Input and resizes for a remote attachment.
#[derive(Debug)]
pub struct AttachHandle {
    name: String,
    id: u64,
    generation: u64,
    tx: mpsc::Sender<Cmd>,
}

impl AttachHandle {
    /// Keystrokes for the session; false when the link cannot take them now.
    pub fn input(&self, data: Vec<u8>) -> bool {
        let params = canopy_protocol::params::InputParams {
            name: self.name.clone(),
            data,
        };
        self.notify(method::INPUT, &params)
    }

    pub fn resize(&self, rows: u16, cols: u16) -> bool {
        let params = canopy_protocol::params::ResizeParams {
            name: self.name.clone(),
            rows,
            cols,
        };
        self.notify(method::RESIZE, &params)
    }

    fn notify(&self, method: &'static str, params: &impl serde::Serialize) -> bool {
        let Ok(params) = canopy_protocol::frame::to_value(params) else {
            return false;
        };
        self.tx
            .try_send(Cmd::Notify {
                generation: self.generation,
                method,
                params,
            })
            .is_ok()
    }
}

impl Drop for AttachHandle {
    fn drop(&mut self) {
        // A full queue means the link is wedged; it forgets its attachers when it drops.
        let _ = self.tx.try_send(Cmd::Detach {
            name: std::mem::take(&mut self.name),
            id: self.id,
        });
    }
}

#[derive(Clone)]
struct LinkHandle {
    tx: mpsc::Sender<Cmd>,
    phase: watch::Receiver<Phase>,
    /// How long a call through this link may take.
    timeout: Duration,
}

/// The links to every configured remote host. Cheap to share (behind the daemon).
#[derive(Clone, Default)]
pub struct Remotes {
    links: BTreeMap<String, LinkHandle>,
}

impl std::fmt::Debug for Remotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.links.keys()).finish()
    }
}

/// `HOST` and `NAME` of a `HOST:NAME` (a local name never has a colon).
pub fn split(name: &str) -> Option<(&str, &str)> {
    name.split_once(':')
}

/// The host a request is for, when it is another one: its `name` param is `HOST:NAME`,
/// or (for `new`) its `host` param names one.
pub fn addressed_host(method: &str, params: &[Value]) -> Option<String> {
    let map = params.first()?.as_map()?;
    let field = |key: &str| {
        map.iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .and_then(|(_, v)| v.as_str())
    };
    if method == method::NEW {
        return field("host")
            .filter(|h| *h != canopy_protocol::LOCAL_HOST)
            .map(str::to_owned);
    }
    field("name")
        .and_then(split)
        .map(|(host, _)| host.to_owned())
}

/// The params as the far host expects them: its own session name, and for `new` no
/// host and no environment (the caller's shell is not on that machine: the far host
/// uses its own).
fn localise(method: &str, params: &[Value]) -> Vec<Value> {
    let mut params = params.to_vec();
    if let Some(Value::Map(map)) = params.first_mut() {
        if method == method::NEW {
            map.retain(|(k, _)| !matches!(k.as_str(), Some("host" | "env")));
        }
        for (k, v) in map.iter_mut() {
            if k.as_str() == Some("name")
                && let Some((_, name)) = v.as_str().and_then(split)
            {
                *v = Value::from(name);
            }
        }
    }
    params
}

/// A result as local clients expect it: a session (or explanation) named `HOST:NAME`.
fn globalise(host: &str, method: &str, mut result: Value) -> Value {
    let session = matches!(
        method,
        method::GET | method::NEW | method::STOP | method::RESUME
    );
    if let Value::Map(map) = &mut result
        && (session || method == method::EXPLAIN)
    {
        for (k, v) in map.iter_mut() {
            if k.as_str() == Some("name")
                && let Some(name) = v.as_str()
            {
                *v = Value::from(format!("{host}:{name}"));
            }
        }
        if session {
            map.retain(|(k, _)| k.as_str() != Some("host"));
            map.push((Value::from("host"), Value::from(host)));
        }
    }
    result
}

fn no_host(host: &str) -> RpcError {
    RpcError::new(ErrorCode::NotFound, format!("no host named {host:?}"))
        .with_hint("`canopy hosts` lists the hosts of [hosts.NAME] in the config")
}

/// The error for a command to a host whose link is not live.
fn not_live(link: &HostLink) -> RpcError {
    let why = link
        .detail
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    RpcError::new(
        ErrorCode::HostUnreachable,
        format!(
            "host {:?} is {} (since {}){why}; nothing was sent",
            link.name,
            link.state.as_str(),
            crate::clock::utc(link.since)
        ),
    )
    .with_hint("`canopy hosts` shows its link; commands are never queued for later")
}

impl Remotes {
    /// Start a link task per configured host.
    pub fn start(
        hosts: &BTreeMap<String, HostConfig>,
        paths: &Paths,
        registry: &Registry,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let links = hosts
            .iter()
            .map(|(name, config)| {
                let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
                let phase = link::start(
                    name.clone(),
                    config.clone(),
                    paths.control_path(name),
                    registry.clone(),
                    rx,
                    shutdown.clone(),
                );
                let handle = LinkHandle {
                    tx,
                    phase,
                    timeout: config.timeout(),
                };
                (name.clone(), handle)
            })
            .collect();
        Self { links }
    }

    /// The live link to `host`, and its generation; an error saying why not otherwise.
    fn live(&self, host: &str) -> Result<(&LinkHandle, u64), RpcError> {
        let link = self.links.get(host).ok_or_else(|| no_host(host))?;
        let phase = link.phase.borrow();
        if phase.link.state != LinkState::Live {
            return Err(not_live(&phase.link));
        }
        Ok((link, phase.generation))
    }

    /// Run a request addressed to another host there (see [`addressed_host`]).
    pub async fn call(
        &self,
        host: &str,
        method: &str,
        params: &[Value],
    ) -> Result<Value, RpcError> {
        let (link, generation) = self.live(host)?;
        let (reply, rx) = oneshot::channel();
        let cmd = Cmd::Call {
            generation,
            method: method.to_owned(),
            params: localise(method, params),
            reply,
        };
        let result = ask(link, host, cmd, rx).await?;
        Ok(globalise(host, method, result))
    }

    /// Attach to session `name` (`HOST:NAME`) through its host's link.
    pub async fn attach(
        &self,
        name: &str,
        rows: u16,
        cols: u16,
    ) -> Result<RemoteAttachment, RpcError> {
        let (host, far_name) = split(name).ok_or_else(|| no_host(name))?;
        let (link, generation) = self.live(host)?;
        let (relay, output) = mpsc::channel(RELAY_QUEUE);
        let id = next_attachment_id();
        let (reply, rx) = oneshot::channel();
        let cmd = Cmd::Attach {
            generation,
            name: far_name.to_owned(),
            rows,
            cols,
            id,
            relay,
            reply,
        };
        let screen = ask(link, host, cmd, rx).await?;
        Ok(RemoteAttachment {
            screen,
            output,
            handle: AttachHandle {
                name: far_name.to_owned(),
                id,
                generation,
                tx: link.tx.clone(),
            },
        })
    }
}

/// Send `cmd` to a link and wait, at most its timeout, for the answer.
async fn ask<T>(
    link: &LinkHandle,
    host: &str,
    cmd: Cmd,
    rx: oneshot::Receiver<Result<T, RpcError>>,
) -> Result<T, RpcError> {
    let dropped = || link::dropped(host, "the link dropped before it answered");
    link.tx.send(cmd).await.map_err(|_| dropped())?;
    match tokio::time::timeout(link.timeout, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(dropped()),
        Err(_) => Err(RpcError::new(
            ErrorCode::HostUnreachable,
            format!(
                "host {host:?} did not answer within {}s",
                link.timeout.as_secs_f64()
            ),
        )
        .with_hint("`canopy hosts` shows its link")),
    }
}

fn next_attachment_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Value)]) -> Vec<Value> {
        vec![Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (Value::from(*k), v.clone()))
                .collect(),
        )]
    }

    #[test]
    fn requests_are_routed_by_host_and_renamed_both_ways() {
        let p = map(&[("name", Value::from("devbox:fix")), ("enter", true.into())]);
        assert_eq!(addressed_host(method::SEND, &p).as_deref(), Some("devbox"));
        assert_eq!(
            localise(method::SEND, &p),
            map(&[("name", Value::from("fix")), ("enter", true.into())])
        );
        assert_eq!(
            addressed_host(method::SEND, &map(&[("name", "fix".into())])),
            None
        );
        let new = map(&[
            ("name", "fix".into()),
            ("host", "devbox".into()),
            ("env", Value::Map(vec![])),
        ]);
        assert_eq!(addressed_host(method::NEW, &new).as_deref(), Some("devbox"));
        assert_eq!(localise(method::NEW, &new), map(&[("name", "fix".into())]));
        let got = globalise(
            "devbox",
            method::GET,
            map(&[("name", "fix".into()), ("host", "local".into())]).remove(0),
        );
        assert_eq!(
            got,
            map(&[("name", "devbox:fix".into()), ("host", "devbox".into())]).remove(0)
        );
    }
}
