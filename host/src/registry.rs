//! The session table: an actor that owns every session record, persists changes to the
//! [`Store`], publishes them as numbered [`Event`]s, and keeps the status snapshot
//! current.
//!
//! Everything here is in memory and quick; slow work (git, spawning, stopping) happens
//! in request handlers, which tell the registry the outcome.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use canopy_protocol::params::{HostInfo, HostLink, LinkState, Signal, Status};
use canopy_protocol::{
    ErrorCode, Event, EventKind, PROTOCOL_VERSION, RpcError, Session, State, StateKind, StateSource,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, Sleep};

use crate::clock::now_ms;
use crate::session::{Report, SessionHandle, sleep_until};
use crate::store::Store;

/// Events buffered per subscriber before it lags and is told to resync.
const EVENT_BACKLOG: usize = 4096;
/// Recent events kept for `subscribe {since}`.
const REPLAY_EVENTS: usize = 1024;
/// Reports applied in one turn at most, so requests waiting behind them get their turn.
const REPORT_BATCH: usize = 256;
/// The least time between two status snapshots. Each one copies every record and has
/// `status.json` rewritten; a hundred sessions reporting usage four times a second would
/// otherwise rewrite it hundreds of times a second. Events are not delayed.
const STATUS_EVERY: Duration = Duration::from_millis(100);

/// An event as published, shared by every subscriber.
#[derive(Debug)]
pub struct Published {
    pub event: Event,
    /// The event's encoded notification, made once by the first subscriber that sends
    /// it and copied by the others: twenty subscribers cost one encoding, not twenty.
    /// `OnceLock` blocks only a subscriber encoding the same event at the same moment,
    /// and never across an await.
    frame: OnceLock<Vec<u8>>,
}

impl Published {
    fn new(event: Event) -> Self {
        Self {
            event,
            frame: OnceLock::new(),
        }
    }

    /// The encoded notification, made by `encode` if no subscriber has made it yet.
    pub fn frame(&self, encode: impl FnOnce(&Event) -> Vec<u8>) -> &[u8] {
        self.frame.get_or_init(|| encode(&self.event))
    }
}

/// A new subscription: replayed events, then live ones.
#[derive(Debug)]
pub struct Subscription {
    /// The seq of the last event before the live stream starts.
    pub seq: u64,
    /// Events after the requested `since`, oldest first.
    pub replay: Vec<Arc<Published>>,
    /// The requested `since` is older than what is kept: the client must `list`.
    pub resync: bool,
    pub live: broadcast::Receiver<Arc<Published>>,
}

enum Msg {
    List(oneshot::Sender<Vec<Session>>),
    Get(
        String,
        oneshot::Sender<Option<(Session, Option<SessionHandle>)>>,
    ),
    Reserve(String, oneshot::Sender<Result<(), RpcError>>),
    Release(String),
    Insert(
        Box<Session>,
        Option<SessionHandle>,
        oneshot::Sender<Session>,
    ),
    Remove(String, oneshot::Sender<Option<Session>>),
    Subscribe(Option<u64>, oneshot::Sender<Subscription>),
    Status(oneshot::Sender<Status>),
    Running(oneshot::Sender<Vec<(String, SessionHandle)>>),
    Flush(oneshot::Sender<()>),
    Handle(
        String,
        oneshot::Sender<Result<Option<SessionHandle>, RpcError>>,
    ),
    Spawned(String, SessionHandle),
    Signals(String, oneshot::Sender<Vec<Signal>>),
    Relaunched(
        Box<Session>,
        SessionHandle,
        oneshot::Sender<Option<Session>>,
    ),
    Remote(String, RemoteUpdate),
    Edit(String, ReviewEdit, oneshot::Sender<Option<Session>>),
}

/// A change to a session's review comments, made inside the actor so two edits never
/// overwrite each other.
pub type CommentEdit = Box<dyn FnOnce(&mut Vec<canopy_protocol::session::Comment>) + Send>;

/// A change to the review part of a record (comments, pull request, radar) made inside the
/// actor; says whether anything changed, so an edit that changes nothing publishes
/// nothing.
type ReviewEdit = Box<dyn FnOnce(&mut Session) -> bool + Send>;

/// What a link to a remote host tells the table about that host's sessions. Records
/// arrive as the far host names them; the table names them `HOST:NAME`.
#[derive(Debug)]
pub enum RemoteUpdate {
    /// Every session there, replacing whatever was known of that host.
    Snapshot(Vec<Session>),
    /// One change there.
    Event(Box<Event>),
    /// The link changed state; unless live, the host's sessions are marked stale.
    Link(HostLink),
}

/// Handle to the registry actor. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

/// The registry has stopped (the host is shutting down).
fn gone() -> RpcError {
    RpcError::new(ErrorCode::ShuttingDown, "the host is shutting down")
}

impl Registry {
    /// Start the actor over the sessions loaded from `store`. Sessions that were live
    /// when the previous host ended are marked exited: their terminals died with it.
    /// `running`: the live sessions whose agents still run (their keepers outlived the
    /// previous host); any other session it left live has ended.
    pub fn start(
        store: Store,
        loaded: Vec<Session>,
        running: &BTreeSet<String>,
        host: HostInfo,
    ) -> (
        Registry,
        mpsc::UnboundedSender<Report>,
        watch::Receiver<Status>,
    ) {
        let (tx, rx) = mpsc::channel(1024);
        let (report_tx, report_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let mut actor = Actor {
            sessions: BTreeMap::new(),
            reserved: BTreeMap::new(),
            // Numbering starts from the start time, so a seq from an earlier host is
            // always older than any of this one's: a client resuming across a restart
            // gets a resync, never a silent gap.
            seq: host.started_at.saturating_mul(1000),
            events,
            recent: VecDeque::new(),
            store,
            host,
            links: BTreeMap::new(),
            snapshot: watch::channel(empty_status()).0,
            status_timer: None,
            last_status: None,
        };
        for mut s in loaded {
            if s.state.kind.is_live() && !running.contains(&s.name) {
                recover(&mut s);
                actor.store.put(&s);
            }
            actor.sessions.insert(
                s.name.clone(),
                Entry {
                    record: s,
                    handle: None,
                    signals: Vec::new(),
                },
            );
        }
        actor.publish_status();
        let snapshot = actor.snapshot.subscribe();
        tokio::spawn(actor.run(rx, report_rx));
        (Registry { tx }, report_tx, snapshot)
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Result<T, RpcError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    pub async fn list(&self) -> Result<Vec<Session>, RpcError> {
        self.ask(Msg::List).await
    }

    /// The record and, while the agent runs, its handle.
    pub async fn get(&self, name: &str) -> Result<(Session, Option<SessionHandle>), RpcError> {
        self.ask(|tx| Msg::Get(name.to_owned(), tx))
            .await?
            .ok_or_else(|| not_found(name))
    }

    /// Claim a name for a session being created.
    pub async fn reserve(&self, name: &str) -> Result<(), RpcError> {
        self.ask(|tx| Msg::Reserve(name.to_owned(), tx)).await?
    }

    /// Give up a reserved name (creation failed).
    pub async fn release(&self, name: &str) {
        let _ = self.tx.send(Msg::Release(name.to_owned())).await;
    }

    /// Add a started session under its reserved name.
    pub async fn insert(
        &self,
        session: Session,
        handle: SessionHandle,
    ) -> Result<Session, RpcError> {
        self.ask(|tx| Msg::Insert(Box::new(session), Some(handle), tx))
            .await
    }

    /// Add a session under its reserved name before its agent starts (while its setup
    /// runs); [`Registry::relaunched`] gives it the agent.
    pub async fn insert_pending(&self, session: Session) -> Result<Session, RpcError> {
        self.ask(|tx| Msg::Insert(Box::new(session), None, tx))
            .await
    }

    pub async fn remove(&self, name: &str) -> Result<Session, RpcError> {
        self.ask(|tx| Msg::Remove(name.to_owned(), tx))
            .await?
            .ok_or_else(|| not_found(name))
    }

    pub async fn subscribe(&self, since: Option<u64>) -> Result<Subscription, RpcError> {
        self.ask(|tx| Msg::Subscribe(since, tx)).await
    }

    pub async fn status(&self) -> Result<Status, RpcError> {
        self.ask(Msg::Status).await
    }

    /// The handle of a running session, `None` when it has exited. For a session being
    /// created, waits until its agent is spawned (its hooks may be that quick).
    pub async fn handle(&self, name: &str) -> Result<Option<SessionHandle>, RpcError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Handle(name.to_owned(), tx))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| not_found(name))?
    }

    /// A reserved session's agent is running: hooks may reach it before it is inserted.
    pub async fn spawned(&self, name: &str, handle: SessionHandle) {
        let _ = self.tx.send(Msg::Spawned(name.to_owned(), handle)).await;
    }

    /// The last signals of an exited session (empty for running ones: ask the session).
    pub async fn signals(&self, name: &str) -> Result<Vec<Signal>, RpcError> {
        self.ask(|tx| Msg::Signals(name.to_owned(), tx)).await
    }

    /// Put a relaunched (resumed) session's new record and handle in place.
    pub async fn relaunched(
        &self,
        session: Session,
        handle: SessionHandle,
    ) -> Result<Session, RpcError> {
        let name = session.name.clone();
        self.ask(|tx| Msg::Relaunched(Box::new(session), handle, tx))
            .await?
            .ok_or_else(|| not_found(&name))
    }

    /// News from the link to remote host `host`.
    pub async fn remote(&self, host: &str, update: RemoteUpdate) {
        let _ = self.tx.send(Msg::Remote(host.to_owned(), update)).await;
    }

    /// Change a session's review comments; the record is saved and published.
    pub async fn edit_comments(&self, name: &str, edit: CommentEdit) -> Result<Session, RpcError> {
        self.edit(
            name,
            Box::new(move |s| {
                let before = s.comments.clone();
                edit(&mut s.comments);
                s.comments != before
            }),
        )
        .await
    }

    /// Record a session's pull or merge request; the record is saved and published.
    pub async fn set_pr(
        &self,
        name: &str,
        pr: canopy_protocol::PullRequest,
    ) -> Result<Session, RpcError> {
        self.edit(
            name,
            Box::new(move |s| s.pr.replace(pr.clone()).as_ref() != Some(&pr)),
        )
        .await
    }

    /// Put what the conflict radar found into a session's record; published only when it
    /// changed.
    pub async fn set_radar(
        &self,
        name: &str,
        radar: Option<canopy_protocol::session::Radar>,
    ) -> Result<Session, RpcError> {
        self.edit(
            name,
            Box::new(move |s| {
                let changed = s.radar != radar;
                s.radar = radar;
                changed
            }),
        )
        .await
    }

    async fn edit(&self, name: &str, edit: ReviewEdit) -> Result<Session, RpcError> {
        self.ask(|tx| Msg::Edit(name.to_owned(), edit, tx))
            .await?
            .ok_or_else(|| not_found(name))
    }

    /// Wait until every report and change so far is on disk.
    pub async fn flush(&self) {
        // A registry that is gone has nothing left to write.
        let _ = self.ask(Msg::Flush).await;
    }

    /// Every session whose agent is still running.
    pub async fn running(&self) -> Result<Vec<(String, SessionHandle)>, RpcError> {
        self.ask(Msg::Running).await
    }
}

pub fn not_found(name: &str) -> RpcError {
    RpcError::new(ErrorCode::NotFound, format!("no session named {name:?}"))
        .with_hint("`canopy ls` lists sessions")
}

/// Mark a session the previous host left running as exited, saying why.
fn recover(s: &mut Session) {
    let detail = match s.pid {
        Some(pid) if process_alive(pid) => format!(
            "the host stopped while the agent ran; pid {pid} is still running but detached from Canopy"
        ),
        _ => format!(
            "the host stopped while the agent ran; its process is gone (`canopy resume {}` relaunches it)",
            s.name
        ),
    };
    s.state = State::new(StateKind::Exited, StateSource::Host, now_ms()).with_detail(detail);
    s.pid = None;
}

/// Whether `pid` is a live process (a zombie, dead but not yet reaped, is not).
fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    let exists = r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !is_zombie(pid)
}

#[cfg(target_os = "linux")]
fn is_zombie(pid: u32) -> bool {
    // /proc/<pid>/stat: "pid (comm) S ..."; comm may contain spaces and parentheses.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[cfg(target_os = "macos")]
fn is_zombie(pid: u32) -> bool {
    // SAFETY: all-zero is a valid proc_bsdshortinfo (integers and a char array).
    let mut info: libc::proc_bsdshortinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_bsdshortinfo>() as libc::c_int;
    // SAFETY: proc_pidinfo writes at most `size` bytes into `info` and returns how many.
    let written = unsafe {
        libc::proc_pidinfo(
            pid as libc::c_int,
            libc::PROC_PIDT_SHORTBSDINFO,
            0,
            (&raw mut info).cast(),
            size,
        )
    };
    written == size && info.pbsi_status == libc::SZOMB
}

/// No portable way to tell a zombie: `process_alive` counts it as alive.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn is_zombie(_pid: u32) -> bool {
    false
}

fn empty_status() -> Status {
    Status {
        protocol: PROTOCOL_VERSION,
        host: HostInfo {
            pid: 0,
            version: String::new(),
            socket: String::new(),
            started_at: 0,
        },
        seq: 0,
        counts: BTreeMap::new(),
        total_cost_usd: 0.0,
        sessions: Vec::new(),
        hosts: Vec::new(),
        notices: Vec::new(),
    }
}

/// A name being created.
#[derive(Default)]
struct Reservation {
    /// Reports its agent sent before the record was inserted (an agent can exit that
    /// fast).
    early: Vec<Report>,
    /// Its agent, once spawned.
    handle: Option<SessionHandle>,
    /// `handle` requests waiting for the spawn.
    waiters: Vec<oneshot::Sender<Result<Option<SessionHandle>, RpcError>>>,
}

impl Reservation {
    /// Answer every waiter: the handle, or (creation failed) not found.
    fn wake(&mut self, name: &str, handle: Option<&SessionHandle>) {
        for w in self.waiters.drain(..) {
            let _ = w.send(
                handle
                    .map(|h| Some(h.clone()))
                    .ok_or_else(|| not_found(name)),
            );
        }
    }
}

struct Entry {
    record: Session,
    /// Present while the agent runs.
    handle: Option<SessionHandle>,
    /// The state engine's last signals once the agent has exited (in memory only).
    signals: Vec<Signal>,
}

struct Actor {
    sessions: BTreeMap<String, Entry>,
    /// Names being created: not yet in `sessions`, but taken.
    reserved: BTreeMap<String, Reservation>,
    /// The seq of the last event.
    seq: u64,
    events: broadcast::Sender<Arc<Published>>,
    /// The last [`REPLAY_EVENTS`] events, for subscribers resuming from a seq.
    recent: VecDeque<Arc<Published>>,
    store: Store,
    host: HostInfo,
    /// The links to remote hosts, by host name, as last reported.
    links: BTreeMap<String, HostLink>,
    /// The latest status, for the snapshot file writer.
    snapshot: watch::Sender<Status>,
    /// When the next snapshot is due, while changes wait for one.
    status_timer: Option<Pin<Box<Sleep>>>,
    /// When the last snapshot was published.
    last_status: Option<Instant>,
}

impl Actor {
    async fn run(
        mut self,
        mut msgs: mpsc::Receiver<Msg>,
        mut reports: mpsc::UnboundedReceiver<Report>,
    ) {
        loop {
            tokio::select! {
                // Reports first: a request sent after a session reported sees the report.
                biased;
                Some(report) = reports.recv() => self.on_reports(report, &mut reports),
                msg = msgs.recv() => match msg {
                    Some(msg) => self.on_msg(msg),
                    None => break,
                },
                () = sleep_until(&mut self.status_timer) => self.publish_status(),
            }
        }
        if self.status_timer.is_some() {
            self.publish_status();
        }
        self.store.flush().await;
    }

    fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::List(reply) => {
                let _ = reply.send(self.sessions.values().map(|e| e.record.clone()).collect());
            }
            Msg::Get(name, reply) => {
                let found = self
                    .sessions
                    .get(&name)
                    .map(|e| (e.record.clone(), e.handle.clone()));
                let _ = reply.send(found);
            }
            Msg::Reserve(name, reply) => {
                let result =
                    if self.sessions.contains_key(&name) || self.reserved.contains_key(&name) {
                        Err(RpcError::new(
                            ErrorCode::Exists,
                            format!("a session named {name:?} already exists"),
                        )
                        .with_hint("pick another name, or `canopy rm` the old session"))
                    } else {
                        self.reserved.insert(name, Reservation::default());
                        Ok(())
                    };
                let _ = reply.send(result);
            }
            Msg::Release(name) => {
                if let Some(mut r) = self.reserved.remove(&name) {
                    r.wake(&name, None);
                }
            }
            Msg::Insert(session, handle, reply) => {
                let mut reservation = self.reserved.remove(&session.name).unwrap_or_default();
                reservation.wake(&session.name, handle.as_ref());
                let early = reservation.early;
                let record = *session;
                self.sessions.insert(
                    record.name.clone(),
                    Entry {
                        record: record.clone(),
                        handle,
                        signals: Vec::new(),
                    },
                );
                self.changed(EventKind::SessionAdded, &record);
                for report in early {
                    self.on_report(report);
                }
                let record = self
                    .sessions
                    .get(&record.name)
                    .map_or(record, |e| e.record.clone());
                let _ = reply.send(record);
            }
            Msg::Remove(name, reply) => {
                let removed = self.sessions.remove(&name).map(|e| e.record);
                if let Some(record) = &removed {
                    self.changed(EventKind::SessionRemoved, record);
                }
                let _ = reply.send(removed);
            }
            Msg::Subscribe(since, reply) => {
                let _ = reply.send(self.subscription(since));
            }
            Msg::Status(reply) => {
                // A snapshot waiting for its turn is published now, so `status` shows
                // every change so far and agrees with the file about to be written.
                if self.status_timer.is_some() {
                    self.publish_status();
                }
                let _ = reply.send(self.snapshot.borrow().clone());
            }
            Msg::Handle(name, reply) => {
                if let Some(e) = self.sessions.get(&name) {
                    let _ = reply.send(Ok(e.handle.clone()));
                } else if let Some(r) = self.reserved.get_mut(&name) {
                    match &r.handle {
                        Some(h) => {
                            let _ = reply.send(Ok(Some(h.clone())));
                        }
                        None => r.waiters.push(reply),
                    }
                } else {
                    let _ = reply.send(Err(not_found(&name)));
                }
            }
            Msg::Spawned(name, handle) => {
                if let Some(r) = self.reserved.get_mut(&name) {
                    r.wake(&name, Some(&handle));
                    r.handle = Some(handle);
                } else if let Some(e) = self.sessions.get_mut(&name) {
                    // Resumed: its hooks may arrive before the new record does.
                    e.handle = Some(handle);
                }
            }
            Msg::Signals(name, reply) => {
                let _ = reply.send(
                    self.sessions
                        .get(&name)
                        .map(|e| e.signals.clone())
                        .unwrap_or_default(),
                );
            }
            Msg::Relaunched(session, handle, reply) => {
                let record = *session;
                let updated = self.sessions.get_mut(&record.name).map(|entry| {
                    entry.record = record;
                    entry.handle = Some(handle);
                    entry.signals.clear();
                    entry.record.clone()
                });
                if let Some(record) = &updated {
                    self.changed(EventKind::SessionChanged, record);
                }
                let _ = reply.send(updated);
            }
            Msg::Flush(reply) => {
                let store = self.store.clone();
                tokio::spawn(async move {
                    store.flush().await;
                    let _ = reply.send(());
                });
            }
            Msg::Remote(host, update) => self.on_remote(host, update),
            Msg::Edit(name, edit, reply) => {
                let updated = self.sessions.get_mut(&name).map(|entry| {
                    let changed = edit(&mut entry.record);
                    (changed, entry.record.clone())
                });
                if let Some((true, record)) = &updated {
                    self.changed(EventKind::SessionChanged, record);
                }
                let _ = reply.send(updated.map(|(_, r)| r));
            }
            Msg::Running(reply) => {
                let running = self
                    .sessions
                    .iter()
                    .filter_map(|(n, e)| e.handle.clone().map(|h| (n.clone(), h)))
                    .collect();
                let _ = reply.send(running);
            }
        }
    }

    /// Apply a report and those queued behind it. Of a session's usage reports only the
    /// newest is applied: each replaces the last whole, and when the registry falls
    /// behind (a hundred sessions streaming) the older ones would only publish events
    /// that are stale on arrival. State reports are all applied, in order: each
    /// transition is news to someone (a notification, a badge).
    fn on_reports(&mut self, first: Report, more: &mut mpsc::UnboundedReceiver<Report>) {
        let mut batch = vec![first];
        while batch.len() < REPORT_BATCH
            && let Ok(report) = more.try_recv()
        {
            batch.push(report);
        }
        let mut newest: HashMap<&str, usize> = HashMap::new();
        for (i, report) in batch.iter().enumerate() {
            if let Report::Usage { name, .. } = report {
                newest.insert(name, i);
            }
        }
        let keep: Vec<bool> = batch
            .iter()
            .enumerate()
            .map(|(i, report)| match report {
                Report::Usage { name, .. } => newest.get(name.as_str()) == Some(&i),
                _ => true,
            })
            .collect();
        for (report, keep) in batch.into_iter().zip(keep) {
            if keep {
                self.on_report(report);
            }
        }
    }

    fn on_report(&mut self, report: Report) {
        let name = match &report {
            Report::Update { name, .. }
            | Report::Exited { name, .. }
            | Report::Usage { name, .. }
            | Report::Env { name, .. } => name.clone(),
        };
        let Some(entry) = self.sessions.get_mut(&name) else {
            if let Some(r) = self.reserved.get_mut(&name) {
                r.early.push(report);
            }
            return;
        };
        match report {
            Report::Update {
                state,
                health,
                agent_session_id,
                ..
            } => {
                if !entry.record.state.kind.is_live() {
                    return;
                }
                if let Some(state) = state {
                    entry.record.state = state;
                }
                if let Some(health) = health {
                    entry.record.health = health;
                }
                if let Some(id) = agent_session_id {
                    entry.record.agent_session_id = Some(id);
                }
            }
            Report::Exited {
                status,
                state,
                signals,
                ..
            } => {
                entry.record.state = state;
                entry.record.exit_code = status.code;
                entry.record.pid = None;
                entry.handle = None;
                entry.signals = signals;
            }
            Report::Env { env, state, .. } => {
                entry.record.env = *env;
                entry.record.state = state;
            }
            // Also after the exit: the last transcript lines are read then.
            Report::Usage { usage, .. } => {
                if entry.record.usage == usage {
                    return;
                }
                entry.record.usage = usage;
            }
        }
        let record = entry.record.clone();
        self.changed(EventKind::SessionChanged, &record);
    }

    fn subscription(&self, since: Option<u64>) -> Subscription {
        let live = self.events.subscribe();
        let (replay, resync) = match since {
            None => (Vec::new(), false),
            Some(since) if since == self.seq => (Vec::new(), false),
            // A seq this host never issued: the client's view is from elsewhere.
            Some(since) if since > self.seq => (Vec::new(), true),
            Some(since) => {
                let oldest_kept = self.recent.front().map_or(self.seq + 1, |e| e.event.seq);
                if since + 1 < oldest_kept {
                    (Vec::new(), true)
                } else {
                    (
                        self.recent
                            .iter()
                            .filter(|e| e.event.seq > since)
                            .cloned()
                            .collect(),
                        false,
                    )
                }
            }
        };
        Subscription {
            seq: self.seq,
            replay,
            resync,
            live,
        }
    }

    /// Record a change: persist it (a remote host keeps its own records), number it,
    /// publish it, refresh the snapshot.
    fn changed(&mut self, kind: EventKind, record: &Session) {
        if record.is_local() {
            match kind {
                EventKind::SessionRemoved => self.store.delete(&record.name),
                _ => self.store.put(record),
            }
        }
        self.publish(Event {
            seq: 0,
            kind,
            session: Some(record.clone()),
            host: None,
        });
    }

    /// Number an event, publish it, refresh the snapshot.
    fn publish(&mut self, mut event: Event) {
        self.seq += 1;
        event.seq = self.seq;
        let event = Arc::new(Published::new(event));
        if self.recent.len() == REPLAY_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back(event.clone());
        // No receivers is fine: nobody is subscribed.
        let _ = self.events.send(event);
        self.status_changed();
    }

    /// Publish a snapshot now, or once [`STATUS_EVERY`] has passed since the last.
    fn status_changed(&mut self) {
        if self.status_timer.is_some() {
            return;
        }
        let due = self
            .last_status
            .map_or_else(Instant::now, |at| at + STATUS_EVERY);
        self.status_timer = Some(Box::pin(tokio::time::sleep_until(due)));
    }

    fn publish_status(&mut self) {
        self.status_timer = None;
        self.last_status = Some(Instant::now());
        let status = self.status();
        self.snapshot.send_replace(status);
    }

    fn status(&self) -> Status {
        let sessions: Vec<Session> = self.sessions.values().map(|e| e.record.clone()).collect();
        let mut counts = BTreeMap::new();
        for s in &sessions {
            *counts.entry(s.state.kind.as_str().to_owned()).or_insert(0) += 1;
        }
        // Folded from +0.0: an empty f64 sum is -0.0, which prints as "$-0.00".
        let total_cost_usd = sessions
            .iter()
            .filter_map(|s| s.usage.cost_usd)
            .fold(0.0, |a, b| a + b);
        Status {
            protocol: PROTOCOL_VERSION,
            host: self.host.clone(),
            seq: self.seq,
            counts,
            total_cost_usd,
            sessions,
            hosts: self.links.values().cloned().collect(),
            notices: Vec::new(),
        }
    }

    fn on_remote(&mut self, host: String, update: RemoteUpdate) {
        match update {
            RemoteUpdate::Snapshot(sessions) => {
                let fresh: BTreeMap<String, Session> = sessions
                    .into_iter()
                    .filter(Session::is_local)
                    .map(|s| {
                        let s = addressed(&host, s);
                        (s.name.clone(), s)
                    })
                    .collect();
                let gone: Vec<String> = self
                    .sessions
                    .iter()
                    .filter(|(name, e)| e.record.host == host && !fresh.contains_key(*name))
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in gone {
                    if let Some(e) = self.sessions.remove(&name) {
                        self.changed(EventKind::SessionRemoved, &e.record);
                    }
                }
                for record in fresh.into_values() {
                    self.put_remote(record);
                }
            }
            RemoteUpdate::Event(event) => {
                let Event { kind, session, .. } = *event;
                // A far host's own remote sessions are not relayed: one hop only.
                let Some(session) = session.filter(Session::is_local) else {
                    return;
                };
                let record = addressed(&host, session);
                match kind {
                    EventKind::SessionAdded | EventKind::SessionChanged => self.put_remote(record),
                    EventKind::SessionRemoved => {
                        if let Some(e) = self.sessions.remove(&record.name) {
                            self.changed(EventKind::SessionRemoved, &e.record);
                        }
                    }
                    EventKind::Resync | EventKind::HostChanged => {}
                }
            }
            RemoteUpdate::Link(link) => {
                let stale = link.state != LinkState::Live;
                let since = link.since;
                self.links.insert(host.clone(), link.clone());
                self.publish(Event {
                    seq: 0,
                    kind: EventKind::HostChanged,
                    session: None,
                    host: Some(link),
                });
                // Live again: the records are current once more (a resumed link replays
                // what changed meanwhile; a restarted host sends everything).
                let mark = stale.then_some(since);
                let marked: Vec<Session> = self
                    .sessions
                    .values_mut()
                    .filter(|e| e.record.host == host && e.record.stale_since.is_none() == stale)
                    .map(|e| {
                        e.record.stale_since = mark;
                        e.record.clone()
                    })
                    .collect();
                for record in marked {
                    self.changed(EventKind::SessionChanged, &record);
                }
            }
        }
    }

    /// Add or replace a remote record; unchanged ones publish nothing.
    fn put_remote(&mut self, record: Session) {
        let kind = match self.sessions.get_mut(&record.name) {
            Some(e) if e.record == record => return,
            Some(e) => {
                e.record = record.clone();
                EventKind::SessionChanged
            }
            None => {
                self.sessions.insert(
                    record.name.clone(),
                    Entry {
                        record: record.clone(),
                        handle: None,
                        signals: Vec::new(),
                    },
                );
                EventKind::SessionAdded
            }
        };
        self.changed(kind, &record);
    }
}

/// A far host's record as this host shows it: `HOST:NAME`, current.
fn addressed(host: &str, mut s: Session) -> Session {
    s.name = format!("{host}:{}", s.name);
    s.host = host.to_owned();
    s.stale_since = None;
    s
}

#[cfg(test)]
mod tests {
    use canopy_protocol::session::Usage;

    use super::*;
    use crate::store::tests::session;

    fn usage(wall_ms: u64) -> Report {
        Report::Usage {
            name: "a".into(),
            usage: Usage {
                wall_ms,
                ..Default::default()
            },
        }
    }

    /// Reports queued while the registry was busy: one event with the newest usage,
    /// but every state change.
    #[tokio::test]
    async fn queued_usage_reports_collapse_to_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(&dir.path().join("r.sqlite3")).expect("open");
        let host = HostInfo {
            pid: 1,
            version: "0".into(),
            socket: "s".into(),
            started_at: 1,
        };
        let (registry, reports, _) =
            Registry::start(store, vec![session("a")], &BTreeSet::new(), host);
        let mut sub = registry.subscribe(None).await.expect("subscribe");
        for wall in 1..=50 {
            reports.send(usage(wall)).expect("send");
        }
        reports
            .send(Report::Exited {
                name: "a".into(),
                status: crate::session::ExitStatus {
                    code: Some(3),
                    signal: None,
                },
                state: State::new(StateKind::Exited, StateSource::Process, 2),
                signals: Vec::new(),
            })
            .expect("send");
        for wall in 51..=60 {
            reports.send(usage(wall)).expect("send");
        }
        registry.flush().await;
        let mut seen = Vec::new();
        while let Ok(e) = sub.live.try_recv() {
            let s = e.event.session.clone().expect("session");
            seen.push((s.exit_code, s.usage.wall_ms));
        }
        assert_eq!(seen, [(Some(3), 0), (Some(3), 60)]);
    }
}
