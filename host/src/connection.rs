//! One client connection: a reader that decodes frames and dispatches them, and one
//! writer task, the only thing that writes to the socket.
//!
//! Nothing here can hold up the host: replies queue for the writer; event and output
//! forwarders read bounded broadcast channels and, when this client falls behind, skip
//! ahead (a `resync` event, or a full repaint) instead of making anyone wait. What one
//! client can make the host hold is bounded: [`OUT_QUEUE`] frames, of which at most
//! [`OUTPUT_QUEUED`] bytes of terminal output, and [`SLOW_REQUESTS`] requests in
//! progress. Garbage bytes end this connection only.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use bytes::Bytes;
use canopy_protocol::frame::{encode_err, encode_notification};
use canopy_protocol::params::{
    AttachParams, AttachResult, DetachedParams, InputParams, NameParams, ResizeParams,
    SubscribeDelivery, SubscribeParams, SubscribeResult, Terminal,
};
use canopy_protocol::{ErrorCode, Event, EventKind, Message, RpcError, method};
use rmpv::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use crate::daemon::Daemon;
use crate::registry::{Published, Subscription};
use crate::remote::{AttachHandle, Relayed, RemoteAttachment};
use crate::rpc;
use crate::session::{Attachment, Command, SessionHandle};

/// Frames queued for the writer. When full, the reader waits: a client that sends
/// requests without reading replies only slows itself.
const OUT_QUEUE: usize = 256;
/// Most output bytes gathered into one `output` notification.
const OUTPUT_BATCH: usize = 256 * 1024;
/// Output bytes queued for the writer at most, over all of a connection's attachments.
/// Without it a client that stops reading would hold [`OUT_QUEUE`] full batches (64 MiB)
/// per connection; with it, its forwarders wait, fall behind the session's broadcast,
/// and are repainted once it reads again.
const OUTPUT_QUEUED: usize = 2 * OUTPUT_BATCH;
/// Slow requests (`new`, `stop`, `hook`, …) one connection may have in progress; further
/// ones wait to be read, so a client that sends them without reading the replies
/// cannot make the host hold unbounded tasks.
const SLOW_REQUESTS: usize = 64;

/// One encoded message for the writer, with the output budget it holds until written.
struct Frame {
    bytes: Vec<u8>,
    /// Returned to the connection's output budget when the frame is written or dropped.
    _budget: Option<OwnedSemaphorePermit>,
}

impl From<Vec<u8>> for Frame {
    fn from(bytes: Vec<u8>) -> Self {
        Frame {
            bytes,
            _budget: None,
        }
    }
}

/// Serve one client until it disconnects or sends garbage.
pub async fn serve(stream: UnixStream, daemon: Arc<Daemon>) {
    let (mut reader, writer) = stream.into_split();
    let (out, out_rx) = mpsc::channel(OUT_QUEUE);
    tokio::spawn(write_frames(writer, out_rx));
    let mut conn = Conn {
        daemon,
        out,
        output_budget: Arc::new(Semaphore::new(OUTPUT_QUEUED)),
        slow: Arc::new(Semaphore::new(SLOW_REQUESTS)),
        subscription: None,
        attached: HashMap::new(),
        hooks: JoinSet::new(),
    };
    let mut decoder = canopy_protocol::Decoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    // Whether the client is gone for good, not just done sending.
    let mut gone = true;
    'read: loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => {
                gone = hung_up(reader.as_ref());
                break;
            }
            Err(_) => break,
            Ok(n) => n,
        };
        decoder.feed(&buf[..n]);
        loop {
            match decoder.next_message() {
                Ok(Some(msg)) => conn.on_message(msg).await,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "closing a connection that sent bad bytes");
                    break 'read;
                }
            }
        }
    }
    conn.close(gone);
}

/// Whether the peer has closed its end entirely (POLLHUP), as a killed process does,
/// rather than only shut down its writing side while it waits for replies.
fn hung_up(stream: &UnixStream) -> bool {
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, and a zero timeout: a status check that never waits.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n == 1 && fd.revents & libc::POLLHUP != 0
}

struct Conn {
    daemon: Arc<Daemon>,
    out: mpsc::Sender<Frame>,
    /// Output bytes that may be queued for the writer ([`OUTPUT_QUEUED`]).
    output_budget: Arc<Semaphore>,
    /// Slow requests that may still start ([`SLOW_REQUESTS`]).
    slow: Arc<Semaphore>,
    /// The task forwarding events, while subscribed.
    subscription: Option<JoinHandle<()>>,
    /// Sessions this client is attached to: the output forwarder and where input goes
    /// (straight to the session, not through the registry, or to a remote host's link).
    attached: HashMap<String, (JoinHandle<()>, Target)>,
    /// Hook requests in progress. A permission hook may be held open until the user
    /// answers; when its client is gone (the agent killed or timed out its hook),
    /// dropping the set ends the wait, and the session answers some other way.
    hooks: JoinSet<()>,
}

impl Conn {
    async fn on_message(&mut self, msg: Message) {
        match msg {
            Message::Request { id, method, params } => match method.as_str() {
                // Requests for another host wait on its link: never hold up this reader.
                m if rpc::is_slow(m)
                    || (m != method::ATTACH
                        && crate::remote::addressed_host(m, &params).is_some()) =>
                {
                    // The semaphore is never closed.
                    let Ok(permit) = self.slow.clone().acquire_owned().await else {
                        return;
                    };
                    let (daemon, out) = (self.daemon.clone(), self.out.clone());
                    let hook = m == method::HOOK;
                    let task = async move {
                        let result = rpc::handle(&daemon, &method, &params).await;
                        let _ = out.send(response(id, result).into()).await;
                        drop(permit);
                    };
                    if hook {
                        while self.hooks.try_join_next().is_some() {}
                        self.hooks.spawn(task);
                    } else {
                        // `new`, `rm`, `stop`… finish even if their client has gone:
                        // stopping one halfway could leave a worktree without a record.
                        tokio::spawn(task);
                    }
                }
                // These reply and then start forwarding, so the reply precedes every
                // notification it leads to.
                method::SUBSCRIBE => self.subscribe(id, &params).await,
                method::ATTACH => self.attach(id, &params).await,
                _ => {
                    let result = self.request(&method, &params).await;
                    self.reply(id, result).await;
                }
            },
            Message::Notification { method, params } => {
                if let Err(e) = self.notification(&method, &params).await {
                    tracing::debug!(%method, error = %e, "notification failed");
                }
            }
            // The host sends no requests, so there is nothing to match a response to.
            Message::Response { .. } => {}
        }
    }

    async fn reply(&self, id: u32, result: Result<Value, RpcError>) {
        let _ = self.out.send(response(id, result).into()).await;
    }

    async fn request(&mut self, method: &str, params: &[Value]) -> Result<Value, RpcError> {
        match method {
            method::UNSUBSCRIBE => {
                if let Some(task) = self.subscription.take() {
                    task.abort();
                }
                Ok(Value::Nil)
            }
            method::INPUT | method::RESIZE | method::DETACH => {
                self.notification(method, params).await.map(|()| Value::Nil)
            }
            _ => rpc::handle(&self.daemon, method, params).await,
        }
    }

    async fn notification(&mut self, method: &str, params: &[Value]) -> Result<(), RpcError> {
        match method {
            method::INPUT => {
                let p: InputParams = rpc::parse(params)?;
                if let Some((_, Target::Remote(remote))) = self.attached.get(&p.name) {
                    return remote
                        .input(p.data)
                        .then_some(())
                        .ok_or_else(not_taking_input);
                }
                let handle = self.handle_for(&p.name).await?;
                if self.attached.contains_key(&p.name) {
                    self.daemon.notify.typed(&p.name);
                }
                if !handle.try_send(Command::Input(p.data)) {
                    return Err(not_taking_input());
                }
                Ok(())
            }
            method::RESIZE => {
                let p: ResizeParams = rpc::parse(params)?;
                if let Some((_, Target::Remote(remote))) = self.attached.get(&p.name) {
                    remote.resize(p.rows, p.cols);
                    return Ok(());
                }
                let handle = self.handle_for(&p.name).await?;
                handle.try_send(Command::Resize {
                    rows: p.rows,
                    cols: p.cols,
                });
                Ok(())
            }
            method::DETACH => {
                let p: NameParams = rpc::parse(params)?;
                if let Some((task, _)) = self.attached.remove(&p.name) {
                    task.abort();
                }
                Ok(())
            }
            _ => Err(RpcError::new(
                ErrorCode::UnknownMethod,
                format!("unknown notification {method:?}"),
            )),
        }
    }

    async fn handle_for(&self, name: &str) -> Result<SessionHandle, RpcError> {
        match self.attached.get(name) {
            Some((_, Target::Local(handle))) => Ok(handle.clone()),
            _ => rpc::running(&self.daemon, name).await,
        }
    }

    async fn subscribe(&mut self, id: u32, params: &[Value]) {
        if let Some(task) = self.subscription.take() {
            task.abort();
        }
        let parsed = rpc::parse::<SubscribeParams>(params)
            .and_then(|p| Ok((p, rpc::parse::<SubscribeDelivery>(params)?)));
        let (sub, delivery) = match parsed {
            Ok((p, d)) => match self.daemon.registry.subscribe(p.since).await {
                Ok(sub) => (sub, Delivery::from(d)),
                Err(e) => return self.reply(id, Err(e)).await,
            },
            Err(e) => return self.reply(id, Err(e)).await,
        };
        self.reply(id, rpc::encode(&SubscribeResult { seq: sub.seq }))
            .await;
        self.subscription = Some(tokio::spawn(forward_events(
            sub,
            delivery,
            self.out.clone(),
        )));
    }

    async fn attach(&mut self, id: u32, params: &[Value]) {
        if let Ok(p) = rpc::parse::<AttachParams>(params)
            && crate::remote::split(&p.name).is_some()
        {
            return self.attach_remote(id, p).await;
        }
        let attached = match rpc::parse::<AttachParams>(params)
            .and_then(|p| Ok((p, rpc::parse::<Terminal>(params)?)))
        {
            Ok((p, terminal)) => self.start_attachment(p, terminal).await,
            Err(e) => Err(e),
        };
        let (name, handle, attachment) = match attached {
            Ok(a) => a,
            Err(e) => return self.reply(id, Err(e)).await,
        };
        let Attachment { screen, output } = attachment;
        self.reply(id, rpc::encode(&AttachResult { screen })).await;
        let task = tokio::spawn(forward_output(
            name.clone(),
            output,
            handle.clone(),
            self.out.clone(),
            self.output_budget.clone(),
        ));
        if let Some((old, _)) = self.attached.insert(name, (task, Target::Local(handle))) {
            old.abort();
        }
    }

    /// Attach to a session on another host, relayed through its link. The reply waits
    /// for the far host, as long as the link's timeout at most.
    async fn attach_remote(&mut self, id: u32, p: AttachParams) {
        let attachment = match self.daemon.remotes.attach(&p.name, p.rows, p.cols).await {
            Ok(a) => a,
            Err(e) => return self.reply(id, Err(e)).await,
        };
        let RemoteAttachment {
            screen,
            output,
            handle,
        } = attachment;
        self.reply(id, rpc::encode(&AttachResult { screen })).await;
        let task = tokio::spawn(relay_output(
            p.name.clone(),
            output,
            self.out.clone(),
            self.output_budget.clone(),
        ));
        if let Some((old, _)) = self.attached.insert(p.name, (task, Target::Remote(handle))) {
            old.abort();
        }
    }

    async fn start_attachment(
        &self,
        p: AttachParams,
        terminal: Terminal,
    ) -> Result<(String, SessionHandle, Attachment), RpcError> {
        let handle = if terminal.run {
            rpc::run_handle(&self.daemon, &p.name).await?
        } else {
            rpc::running(&self.daemon, &p.name).await?
        };
        let attachment = handle
            .ask(|reply| Command::Attach {
                rows: p.rows,
                cols: p.cols,
                reply,
            })
            .await
            .ok_or_else(|| {
                RpcError::new(
                    ErrorCode::InvalidState,
                    format!("session {:?} has exited", p.name),
                )
            })?;
        Ok((p.name, handle, attachment))
    }

    /// The connection is closing; `gone` when the client cannot read replies any more.
    fn close(mut self, gone: bool) {
        if !gone {
            // A client that only stopped sending still gets its hooks' replies.
            self.hooks.detach_all();
        }
        if let Some(task) = self.subscription {
            task.abort();
        }
        for (task, _) in self.attached.into_values() {
            task.abort();
        }
    }
}

/// How a subscription frames its events.
enum Delivery {
    /// `[2, "event", [event]]`.
    Event,
    /// `[2, "nvim_exec_lua", [code, [event]]]`, for Neovim, which runs notifications as
    /// calls to its own API (`SubscribeDelivery::nvim_exec_lua`).
    NvimExecLua(Value),
}

impl From<SubscribeDelivery> for Delivery {
    fn from(d: SubscribeDelivery) -> Self {
        match d.nvim_exec_lua {
            Some(code) => Delivery::NvimExecLua(Value::from(code)),
            None => Delivery::Event,
        }
    }
}

/// Send replayed, then live, events to one subscriber; a lagging subscriber gets a
/// `resync` in place of what it missed.
async fn forward_events(sub: Subscription, delivery: Delivery, out: mpsc::Sender<Frame>) {
    let mut last = sub.seq;
    if sub.resync {
        send_event(&out, &delivery, &resync(sub.seq)).await;
    }
    for event in sub.replay {
        send_published(&out, &delivery, &event).await;
    }
    let mut live = sub.live;
    loop {
        match live.recv().await {
            Ok(event) => {
                last = event.event.seq;
                if !send_published(&out, &delivery, &event).await {
                    break;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "subscriber fell behind; resyncing it");
                if !send_event(&out, &delivery, &resync(last)).await {
                    break;
                }
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// Relay a session's output to one client, batching what has piled up, and repainting
/// instead of replaying when the client fell behind. Each batch waits for room in the
/// connection's output `budget`, so a client that stops reading holds little.
async fn forward_output(
    name: String,
    mut output: broadcast::Receiver<Bytes>,
    handle: SessionHandle,
    out: mpsc::Sender<Frame>,
    budget: Arc<Semaphore>,
) {
    let mut batch = Vec::with_capacity(OUTPUT_BATCH);
    let reason = loop {
        batch.clear();
        match output.recv().await {
            Ok(chunk) => batch.extend_from_slice(&chunk),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                match handle.ask(|reply| Command::Reattach { reply }).await {
                    Some(fresh) => {
                        batch.extend_from_slice(&fresh.screen);
                        output = fresh.output;
                    }
                    None => break "the session ended",
                }
            }
            Err(broadcast::error::RecvError::Closed) => break "the session ended",
        }
        while batch.len() < OUTPUT_BATCH {
            match output.try_recv() {
                Ok(chunk) => batch.extend_from_slice(&chunk),
                // Lagged is handled by the next recv (with a repaint).
                Err(_) => break,
            }
        }
        if !send_output(&name, &batch, &out, &budget).await {
            return;
        }
    };
    detached(name, reason.to_owned(), &out).await;
}

/// Queue one `output` notification within the connection's output budget; `false` when
/// the client is gone.
async fn send_output(
    name: &str,
    data: &[u8],
    out: &mpsc::Sender<Frame>,
    budget: &Arc<Semaphore>,
) -> bool {
    let bytes = canopy_protocol::frame::output_frame(name, data);
    // At most the whole budget: a repaint can exceed one batch. The semaphore is never
    // closed.
    let cost = bytes.len().min(OUTPUT_QUEUED) as u32;
    let Ok(permit) = budget.clone().acquire_many_owned(cost).await else {
        return false;
    };
    let frame = Frame {
        bytes,
        _budget: Some(permit),
    };
    out.send(frame).await.is_ok()
}

/// Tell the client its attachment ended, and why.
async fn detached(name: String, reason: String, out: &mpsc::Sender<Frame>) {
    if let Ok(bytes) = encode_notification(method::DETACHED, &DetachedParams { name, reason }) {
        let _ = out.send(bytes.into()).await;
    }
}

/// Relay a remote session's output, as its link hands it over, to one client.
async fn relay_output(
    name: String,
    mut output: mpsc::Receiver<Relayed>,
    out: mpsc::Sender<Frame>,
    budget: Arc<Semaphore>,
) {
    let reason = loop {
        match output.recv().await {
            Some(Relayed::Output(data)) => {
                if !send_output(&name, &data, &out, &budget).await {
                    return;
                }
            }
            Some(Relayed::Ended(reason)) => break reason,
            None => break "the link to its host dropped".to_owned(),
        }
    };
    detached(name, reason, &out).await;
}

fn not_taking_input() -> RpcError {
    RpcError::new(ErrorCode::InvalidState, "session is not taking input")
}

/// Where an attached session's input goes.
enum Target {
    Local(SessionHandle),
    /// Through a remote host's link; dropping it detaches there.
    Remote(AttachHandle),
}

fn resync(seq: u64) -> Event {
    Event {
        seq,
        kind: EventKind::Resync,
        session: None,
        host: None,
    }
}

/// Queue a published event, encoded once for every plain subscriber; false when the
/// connection is gone.
async fn send_published(out: &mpsc::Sender<Frame>, delivery: &Delivery, p: &Published) -> bool {
    match delivery {
        Delivery::Event => {
            let frame = p.frame(|event| match encode_notification(method::EVENT, event) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode event");
                    Vec::new()
                }
            });
            frame.is_empty() || out.send(frame.to_vec().into()).await.is_ok()
        }
        Delivery::NvimExecLua(_) => send_event(out, delivery, &p.event).await,
    }
}

/// Queue an event notification; false when the connection is gone.
async fn send_event(out: &mpsc::Sender<Frame>, delivery: &Delivery, event: &Event) -> bool {
    let bytes = match delivery {
        Delivery::Event => encode_notification(method::EVENT, event),
        Delivery::NvimExecLua(code) => canopy_protocol::frame::to_value(event).map(|event| {
            Message::Notification {
                method: "nvim_exec_lua".to_owned(),
                params: vec![code.clone(), Value::Array(vec![event])],
            }
            .encode()
        }),
    };
    match bytes {
        Ok(bytes) => out.send(bytes.into()).await.is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode event");
            true
        }
    }
}

fn response(id: u32, result: Result<Value, RpcError>) -> Vec<u8> {
    match result {
        Ok(result) => Message::Response {
            id,
            error: Value::Nil,
            result,
        }
        .encode(),
        Err(e) => encode_err(id, &e),
    }
}

/// Write queued frames, coalescing whatever is already queued into one flush.
async fn write_frames(writer: OwnedWriteHalf, mut frames: mpsc::Receiver<Frame>) {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(frame) = frames.recv().await {
        if writer.write_all(&frame.bytes).await.is_err() {
            return;
        }
        while let Ok(frame) = frames.try_recv() {
            if writer.write_all(&frame.bytes).await.is_err() {
                return;
            }
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
}
