//! The task behind one remote host: start the transport (`ssh … canopy stdio`), skip
//! to the preamble, `hello` (protocol version, boot id), `subscribe`, feed the registry;
//! keep the link honest with a heartbeat; on any failure kill the child, mark the
//! host's sessions stale, and reconnect with jittered backoff, resyncing from the last
//! event seen (or in full when the far host restarted).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use canopy_protocol::params::{
    AttachParams, AttachResult, DetachedParams, HelloParams, HelloResult, HostLink, LinkState,
    NameParams, OutputParams, SubscribeParams,
};
use canopy_protocol::{
    Decoder, ErrorCode, Event, EventKind, Message, PROTOCOL_VERSION, RpcError, Session, frame,
    method,
};
use rmpv::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};

use super::{Cmd, PREAMBLE, Phase, Relayed};
use crate::clock::now_ms;
use crate::config::HostConfig;
use crate::registry::{Registry, RemoteUpdate};

/// The shortest and longest wait before reconnecting.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Unanswered heartbeats after which the link counts as dead.
const MISSED_BEATS: u32 = 3;
/// Junk a login may print before the preamble, at most.
const JUNK_MAX: usize = 64 * 1024;
/// Lines of the child's stderr kept to say why it failed.
const STDERR_LINES: usize = 16;

/// The error for a request cut off by the link dropping.
pub(super) fn dropped(host: &str, why: &str) -> RpcError {
    RpcError::new(ErrorCode::HostUnreachable, format!("host {host:?}: {why}"))
        .with_hint("`canopy hosts` shows its link; nothing is retried for you")
}

/// Start the link task for `name`; the receiver follows its state.
pub(super) fn start(
    name: String,
    config: HostConfig,
    control_path: PathBuf,
    registry: Registry,
    cmds: mpsc::Receiver<Cmd>,
    shutdown: watch::Receiver<bool>,
) -> watch::Receiver<Phase> {
    let initial = Phase {
        link: HostLink {
            name: name.clone(),
            state: LinkState::Connecting,
            since: now_ms(),
            detail: None,
        },
        generation: 0,
    };
    let (phase, rx) = watch::channel(initial);
    let link = Link {
        name,
        config,
        control_path,
        registry,
        phase,
        cmds,
        shutdown,
        boot_id: None,
        seq: None,
        backoff: BACKOFF_MIN,
    };
    tokio::spawn(link.run());
    rx
}

/// Why a connection ended.
enum End {
    /// Refused at login: keys, agent, host key.
    Auth(String),
    /// The far host speaks another protocol.
    Version(String),
    /// Anything else: the child died, the link went quiet, junk on the wire.
    Dropped(String),
    /// The host is stopping, or nobody can send commands any more.
    Stop,
}

struct Link {
    name: String,
    config: HostConfig,
    control_path: PathBuf,
    registry: Registry,
    phase: watch::Sender<Phase>,
    cmds: mpsc::Receiver<Cmd>,
    shutdown: watch::Receiver<bool>,
    /// The far host's boot id at the last handshake: unchanged, the link resumes from
    /// `seq`; changed, it reloads every session.
    boot_id: Option<String>,
    /// The seq of the far host's last event seen.
    seq: Option<u64>,
    /// The next wait before reconnecting: doubled by each failure, reset by a live link.
    backoff: Duration,
}

impl Link {
    async fn run(mut self) {
        loop {
            let end = self.connect().await;
            let (state, detail, wait) = match end {
                End::Stop => break,
                // Retried slowly: only the user can fix these.
                End::Auth(d) => (LinkState::AuthFailed, d, BACKOFF_MAX),
                End::Version(d) => (LinkState::VersionMismatch, d, BACKOFF_MAX),
                End::Dropped(d) => (LinkState::Stale, d, self.backoff),
            };
            tracing::info!(host = %self.name, state = state.as_str(), detail = %detail, "remote link down");
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            self.set(state, Some(detail)).await;
            if !self.wait(jitter(wait)).await {
                break;
            }
            self.set(LinkState::Reconnecting, None).await;
        }
        // The connection master outlives its clients by ControlPersist: end it now.
        if self.config.command.is_none() && self.control_path.exists() {
            let exit = tokio::process::Command::new("ssh")
                .arg("-o")
                .arg(format!("ControlPath={}", self.control_path.display()))
                .args(["-O", "exit", "canopy-link"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .status();
            let _ = timeout(Duration::from_secs(2), exit).await;
        }
    }

    /// Publish a new state (and tell the registry, which marks sessions stale).
    async fn set(&mut self, state: LinkState, detail: Option<String>) {
        let mut link = self.phase.borrow().link.clone();
        if link.state == state && link.detail == detail {
            return;
        }
        link.state = state;
        link.detail = detail;
        link.since = now_ms();
        self.phase.send_modify(|p| {
            p.link = link.clone();
            if state == LinkState::Live {
                p.generation += 1;
            }
        });
        self.registry
            .remote(&self.name, RemoteUpdate::Link(link))
            .await;
    }

    /// Wait before reconnecting, failing any command that arrives meanwhile; false
    /// when the host is stopping.
    async fn wait(&mut self, pause: Duration) -> bool {
        let until = Instant::now() + pause;
        loop {
            tokio::select! {
                () = sleep_until(until) => return true,
                cmd = self.cmds.recv() => match cmd {
                    Some(cmd) => refuse(&self.name, cmd, "the link is down"),
                    None => return false,
                },
                _ = self.shutdown.changed() => return false,
            }
        }
    }

    /// One connection, from spawning the child until it ends.
    async fn connect(&mut self) -> End {
        let argv = self.config.argv(&self.control_path);
        if let Some(dir) = self.control_path.parent()
            && let Err(e) = crate::daemon::ensure_private_dir(dir)
        {
            return End::Dropped(e.to_string());
        }
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => return End::Dropped(format!("cannot run {}: {e}", argv[0])),
        };
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return End::Dropped("no pipes to the child".into());
        };
        let errors = stderr_tail(stderr);
        let mut wire = Wire {
            stdin,
            stdout,
            decoder: Decoder::new(),
            buf: vec![0; 64 * 1024],
            next_id: 1,
        };
        let mut shutdown = self.shutdown.clone();
        let end = tokio::select! {
            end = self.session(&mut wire) => end,
            _ = shutdown.changed() => End::Stop,
        };
        let end = match end {
            // Say what the child said: ssh's reason is on its stderr.
            End::Dropped(why) => classify(why, &errors),
            other => other,
        };
        if matches!(end, End::Dropped(_)) && self.config.command.is_none() {
            // A master that hangs (stopped, wedged) would hang every later attempt too;
            // a fresh one is made next time. A dead one ssh skips by itself.
            let _ = std::fs::remove_file(&self.control_path);
        }
        reap(child, wire);
        end
    }

    /// Handshake, then serve until the link ends.
    async fn session(&mut self, wire: &mut Wire) -> End {
        let limit = self.config.timeout();
        let hello = match timeout(limit, self.handshake(wire)).await {
            Ok(Ok(hello)) => hello,
            Ok(Err(end)) => return end,
            Err(_) => {
                return End::Dropped(format!("no handshake within {}s", limit.as_secs_f64()));
            }
        };
        let resume = self.boot_id.is_some() && self.boot_id == hello.boot_id;
        self.boot_id = hello.boot_id;
        if !resume {
            self.seq = None;
        }
        let mut pending: HashMap<u32, Pending> = HashMap::new();
        let since = self.seq;
        if wire
            .request(method::SUBSCRIBE, &SubscribeParams { since })
            .await
            .is_err()
        {
            return End::Dropped("the link closed while subscribing".into());
        }
        if since.is_none() {
            match wire.request(method::LIST, &NameParams::default()).await {
                Ok(id) => pending.insert(id, Pending::List),
                Err(_) => return End::Dropped("the link closed while listing".into()),
            };
        }
        self.set(LinkState::Live, None).await;
        self.backoff = BACKOFF_MIN;
        let generation = self.phase.borrow().generation;
        let mut served = Served {
            pending,
            attached: HashMap::new(),
        };
        let end = self.serve(wire, &mut served, generation).await;
        let why = match &end {
            End::Stop => "the host is stopping".to_owned(),
            End::Dropped(why) | End::Auth(why) | End::Version(why) => why.clone(),
        };
        served.fail(&self.name, &why);
        end
    }

    /// Skip to the preamble and shake hands.
    async fn handshake(&mut self, wire: &mut Wire) -> Result<HelloResult, End> {
        wire.skip_preamble().await?;
        let hello = HelloParams {
            client: "canopy-link".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        let id = wire
            .request(method::HELLO, &hello)
            .await
            .map_err(|_| End::Dropped("the link closed before hello".into()))?;
        loop {
            match wire.next().await? {
                Message::Response {
                    id: rid,
                    error,
                    result,
                } if rid == id => {
                    if !error.is_nil() {
                        return Err(End::Dropped(format!("hello failed: {error}")));
                    }
                    let hello: HelloResult = frame::from_value(result).map_err(|e| {
                        End::Version(format!("cannot read the far host's hello: {e}"))
                    })?;
                    if hello.protocol != PROTOCOL_VERSION {
                        return Err(End::Version(format!(
                            "it speaks protocol {} (Canopy {}), this host {PROTOCOL_VERSION} (Canopy {})",
                            hello.protocol,
                            hello.host_version,
                            env!("CARGO_PKG_VERSION")
                        )));
                    }
                    return Ok(hello);
                }
                _ => {}
            }
        }
    }

    /// Relay between the far host, the registry and local callers until the link ends.
    async fn serve(&mut self, wire: &mut Wire, served: &mut Served, generation: u64) -> End {
        let beat = self.config.heartbeat();
        let mut heard = Instant::now();
        let mut missed = 0u32;
        loop {
            let next_beat = heard + beat * (missed + 1);
            tokio::select! {
                msg = wire.next() => {
                    let msg = match msg {
                        Ok(msg) => msg,
                        Err(end) => return end,
                    };
                    heard = Instant::now();
                    missed = 0;
                    if let Err(end) = self.on_message(wire, served, msg).await {
                        return end;
                    }
                }
                cmd = self.cmds.recv() => {
                    let Some(cmd) = cmd else { return End::Stop };
                    if let Err(why) = self.on_command(wire, served, generation, cmd).await {
                        return End::Dropped(why);
                    }
                }
                () = sleep_until(next_beat) => {
                    if missed == MISSED_BEATS {
                        return End::Dropped(format!(
                            "no answer for {}s",
                            (beat * (missed + 1)).as_secs_f64()
                        ));
                    }
                    missed += 1;
                    // Any message counts as a beat; `hello` is the cheapest question.
                    let ping = HelloParams { client: "canopy-link".into(), version: String::new() };
                    match wire.request(method::HELLO, &ping).await {
                        Ok(id) => { served.pending.insert(id, Pending::Ping); }
                        Err(_) => return End::Dropped("the link closed".into()),
                    }
                }
            }
        }
    }

    async fn on_message(
        &mut self,
        wire: &mut Wire,
        served: &mut Served,
        msg: Message,
    ) -> Result<(), End> {
        match msg {
            Message::Response { id, error, result } => {
                let outcome = if error.is_nil() {
                    Ok(result)
                } else {
                    Err(crate::client::rpc_error(error))
                };
                match served.pending.remove(&id) {
                    Some(Pending::Call(reply)) => {
                        let _ = reply.send(outcome);
                    }
                    Some(Pending::Attach {
                        name,
                        id,
                        relay,
                        reply,
                    }) => {
                        let screen = outcome.and_then(|v| {
                            frame::from_value::<AttachResult>(v)
                                .map(|a| a.screen)
                                .map_err(|e| RpcError::new(ErrorCode::Internal, e.to_string()))
                        });
                        if screen.is_ok() {
                            served.attached.entry(name).or_default().push((id, relay));
                        }
                        let _ = reply.send(screen);
                    }
                    Some(Pending::List) => match outcome.and_then(|v| {
                        frame::from_value::<Vec<Session>>(v)
                            .map_err(|e| RpcError::new(ErrorCode::Internal, e.to_string()))
                    }) {
                        Ok(sessions) => {
                            self.registry
                                .remote(&self.name, RemoteUpdate::Snapshot(sessions))
                                .await;
                        }
                        Err(e) => return Err(End::Dropped(format!("list failed: {}", e.message))),
                    },
                    Some(Pending::Ping) | None => {}
                }
            }
            Message::Notification { method, params } => match method.as_str() {
                method::EVENT => {
                    let event: Event = frame::params(&params)
                        .map_err(|e| End::Dropped(format!("bad event: {e}")))?;
                    self.seq = Some(event.seq);
                    if event.kind == EventKind::Resync {
                        // Events were missed (there or on the way): read the table again.
                        let id = wire
                            .request(method::LIST, &NameParams::default())
                            .await
                            .map_err(|_| End::Dropped("the link closed".into()))?;
                        served.pending.insert(id, Pending::List);
                    } else {
                        self.registry
                            .remote(&self.name, RemoteUpdate::Event(Box::new(event)))
                            .await;
                    }
                }
                method::OUTPUT => {
                    if let Ok(out) = frame::params::<OutputParams>(&params) {
                        served.relay(&out.name, || Relayed::Output(out.data.clone()));
                    }
                }
                method::DETACHED => {
                    if let Ok(d) = frame::params::<DetachedParams>(&params) {
                        served.end(&d.name, &d.reason);
                    }
                }
                _ => {}
            },
            // The far host asks nothing of its hub.
            Message::Request { .. } => {}
        }
        Ok(())
    }

    /// Forward a local command; an error ends the link (the write failed).
    async fn on_command(
        &mut self,
        wire: &mut Wire,
        served: &mut Served,
        generation: u64,
        cmd: Cmd,
    ) -> Result<(), String> {
        let closed = |_| "the link closed".to_owned();
        match cmd {
            Cmd::Call {
                generation: g,
                method,
                params,
                reply,
            } if g == generation => {
                let id = wire.next_id();
                let msg = Message::Request { id, method, params };
                wire.send(&msg).await.map_err(closed)?;
                served.pending.insert(id, Pending::Call(reply));
            }
            Cmd::Attach {
                generation: g,
                name,
                rows,
                cols,
                id,
                relay,
                reply,
            } if g == generation => {
                let params = AttachParams {
                    name: name.clone(),
                    rows,
                    cols,
                };
                let rid = wire
                    .request(method::ATTACH, &params)
                    .await
                    .map_err(closed)?;
                served.pending.insert(
                    rid,
                    Pending::Attach {
                        name,
                        id,
                        relay,
                        reply,
                    },
                );
            }
            Cmd::Notify {
                generation: g,
                method,
                params,
            } if g == generation => {
                let msg = Message::Notification {
                    method: method.to_owned(),
                    params: vec![params],
                };
                wire.send(&msg).await.map_err(closed)?;
            }
            Cmd::Detach { name, id } => {
                if let Some(list) = served.attached.get_mut(&name) {
                    list.retain(|(i, _)| *i != id);
                    if list.is_empty() {
                        served.attached.remove(&name);
                        let bytes =
                            frame::encode_notification(method::DETACH, &NameParams { name })
                                .map_err(|e| e.to_string())?;
                        wire.write(&bytes).await.map_err(closed)?;
                    }
                }
            }
            // Made for an earlier connection: never run on this one.
            stale => refuse(&self.name, stale, "the link dropped and came back"),
        }
        Ok(())
    }
}

/// Answer a command that will not run.
fn refuse(host: &str, cmd: Cmd, why: &str) {
    match cmd {
        Cmd::Call { reply, .. } => {
            let _ = reply.send(Err(dropped(host, why)));
        }
        Cmd::Attach { reply, .. } => {
            let _ = reply.send(Err(dropped(host, why)));
        }
        Cmd::Notify { .. } | Cmd::Detach { .. } => {}
    }
}

/// A request in flight on the link.
enum Pending {
    Call(oneshot::Sender<Result<Value, RpcError>>),
    Attach {
        name: String,
        id: u64,
        relay: mpsc::Sender<Relayed>,
        reply: oneshot::Sender<Result<Vec<u8>, RpcError>>,
    },
    List,
    Ping,
}

/// What one connection serves: requests in flight and local attachers, by far name.
struct Served {
    pending: HashMap<u32, Pending>,
    attached: HashMap<String, Vec<(u64, mpsc::Sender<Relayed>)>>,
}

impl Served {
    /// Give output to every local attacher of `name`; one that cannot keep up is
    /// detached, never waited for.
    fn relay(&mut self, name: &str, make: impl Fn() -> Relayed) {
        if let Some(list) = self.attached.get_mut(name) {
            list.retain(|(_, tx)| match tx.try_send(make()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let _ = tx.try_send(Relayed::Ended(
                        "this terminal fell behind the link; attach again".into(),
                    ));
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
    }

    /// End every local attachment to `name`.
    fn end(&mut self, name: &str, reason: &str) {
        for (_, tx) in self.attached.remove(name).unwrap_or_default() {
            let _ = tx.try_send(Relayed::Ended(reason.to_owned()));
        }
    }

    /// The link ended: fail what waits and end every attachment, saying why.
    fn fail(&mut self, host: &str, why: &str) {
        for (_, p) in self.pending.drain() {
            match p {
                Pending::Call(reply) => {
                    let _ = reply.send(Err(dropped(host, why)));
                }
                Pending::Attach { reply, .. } => {
                    let _ = reply.send(Err(dropped(host, why)));
                }
                Pending::List | Pending::Ping => {}
            }
        }
        let names: Vec<String> = self.attached.keys().cloned().collect();
        for name in names {
            self.end(&name, &format!("the link to {host} dropped: {why}"));
        }
    }
}

/// The child's stdin and stdout as msgpack-RPC.
struct Wire {
    stdin: ChildStdin,
    stdout: ChildStdout,
    decoder: Decoder,
    buf: Vec<u8>,
    next_id: u32,
}

impl Wire {
    fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    async fn send(&mut self, msg: &Message) -> std::io::Result<()> {
        self.write(&msg.encode()).await
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stdin.write_all(bytes).await?;
        self.stdin.flush().await
    }

    async fn request<P: serde::Serialize>(
        &mut self,
        method: &str,
        params: &P,
    ) -> std::io::Result<u32> {
        let id = self.next_id();
        let bytes = frame::encode_request(id, method, params)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        self.write(&bytes).await?;
        Ok(id)
    }

    /// Read up to and past the preamble line; what follows is protocol.
    async fn skip_preamble(&mut self) -> Result<(), End> {
        let mut seen: Vec<u8> = Vec::new();
        loop {
            let n = self
                .stdout
                .read(&mut self.buf)
                .await
                .map_err(|e| End::Dropped(e.to_string()))?;
            if n == 0 {
                return Err(End::Dropped(
                    "it closed the connection before `canopy stdio` answered".into(),
                ));
            }
            seen.extend_from_slice(&self.buf[..n]);
            let marker = format!("{PREAMBLE}\n");
            let at = seen
                .windows(marker.len())
                .position(|w| w == marker.as_bytes())
                .filter(|&i| i == 0 || seen[i - 1] == b'\n');
            if let Some(i) = at {
                self.decoder.feed(&seen[i + marker.len()..]);
                return Ok(());
            }
            if seen.len() > JUNK_MAX {
                return Err(End::Dropped(format!(
                    "no {PREAMBLE} line in the first {JUNK_MAX} bytes: is `canopy stdio` at the other end?"
                )));
            }
        }
    }

    /// The next message; the link's end when the child closed or sent garbage.
    async fn next(&mut self) -> Result<Message, End> {
        loop {
            match self.decoder.next_message() {
                Ok(Some(msg)) => return Ok(msg),
                Ok(None) => {}
                Err(e) => return Err(End::Dropped(format!("bad bytes on the link: {e}"))),
            }
            let n = self
                .stdout
                .read(&mut self.buf)
                .await
                .map_err(|e| End::Dropped(e.to_string()))?;
            if n == 0 {
                return Err(End::Dropped("the connection closed".into()));
            }
            self.decoder.feed(&self.buf[..n]);
        }
    }
}

/// The last lines the child wrote to stderr, kept by a task of their own; never waited
/// for (an ssh master that lives on may hold the pipe open).
type StderrTail = std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>;

fn stderr_tail(stderr: tokio::process::ChildStderr) -> StderrTail {
    use tokio::io::AsyncBufReadExt;
    let tail: StderrTail = Default::default();
    let kept = tail.clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            // The lock is held for a push, never across an await.
            if let Ok(mut kept) = kept.lock() {
                if kept.len() == STDERR_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        }
    });
    tail
}

/// Add what the child said to `why`, and tell a refused login apart.
fn classify(why: String, errors: &StderrTail) -> End {
    let said: Vec<String> = errors
        .lock()
        .map(|l| l.iter().filter(|l| !l.trim().is_empty()).cloned().collect())
        .unwrap_or_default();
    let auth = said.iter().any(|l| {
        l.contains("Permission denied")
            || l.contains("Host key verification failed")
            || l.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
    });
    let why = match said.last() {
        Some(last) => format!("{why} ({last})"),
        None => why,
    };
    if auth {
        End::Auth(why)
    } else {
        End::Dropped(why)
    }
}

/// Kill the child and reap it in the background: its pipes are closed first, and the
/// wait is for the process alone, never for a pipe a forked ssh master may hold.
fn reap(mut child: Child, wire: Wire) {
    drop(wire);
    let _ = child.start_kill();
    tokio::spawn(async move {
        let _ = timeout(Duration::from_secs(10), child.wait()).await;
    });
}

/// `base` ± 25 %, so links dropped together do not reconnect in step.
fn jitter(base: Duration) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let r = RandomState::new().hash_one(now_ms()) % 1000;
    base.mul_f64(0.75 + r as f64 / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(4));
            assert!(
                j >= Duration::from_secs(3) && j <= Duration::from_secs(5),
                "{j:?}"
            );
        }
    }

    #[test]
    fn a_refused_login_is_auth_failed() {
        let tail: StderrTail = Default::default();
        tail.lock()
            .expect("lock")
            .push_back("root@127.0.0.1: Permission denied (publickey).".into());
        assert!(
            matches!(classify("closed".into(), &tail), End::Auth(w) if w.contains("Permission denied"))
        );
        let quiet: StderrTail = Default::default();
        assert!(matches!(classify("closed".into(), &quiet), End::Dropped(_)));
    }

    #[tokio::test]
    async fn junk_before_the_preamble_is_skipped() {
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "printf 'Welcome!\\nCANOPY1 is not it\\nCANOPY1\\n\\223\\002\\245event\\220'; sleep 5"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("sh");
        let mut wire = Wire {
            stdin: child.stdin.take().expect("stdin"),
            stdout: child.stdout.take().expect("stdout"),
            decoder: Decoder::new(),
            buf: vec![0; 1024],
            next_id: 1,
        };
        assert!(wire.skip_preamble().await.is_ok());
        let msg = wire.next().await.ok().expect("a message");
        assert!(matches!(msg, Message::Notification { method, .. } if method == "event"));
    }
}
