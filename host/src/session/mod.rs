//! One session's runtime: two tasks per agent.
//!
//! - The session actor owns the PTY and the process: it relays output to attached
//!   clients the moment it arrives, writes input, handles commands and the exit.
//! - The screen task ([`feed`]) owns the terminal model and parses the same output
//!   behind it, up to a byte budget behind, so parsing never stalls the relay.
//!
//! - The usage task ([`usage`]) meters the agent's transcripts and the worktree's
//!   changed lines, fed hook events by the actor.
//!
//! They wake only on output, input, commands, the exit, or a stop's grace period. The
//! actor reports what happened to the registry through [`Report`]s; the registry owns
//! the record.

pub mod events;
mod feed;
pub mod keeper;
pub mod pty;
pub mod screen;
pub mod usage;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use canopy_protocol::params::Signal;
use canopy_protocol::{Health, State, StateKind, StateSource};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, Sleep};

use crate::agents::{Adapter, Cue, Reading};
use crate::clock::now_ms;
use crate::state::{Engine, Timing};
use feed::{Feed, FromScreen, Room};
pub use pty::{ExitStatus, Pty, SpawnSpec};
use screen::Screen;

/// Output chunks buffered per attached client before it counts as lagging and gets a
/// repaint instead.
const OUTPUT_BACKLOG: usize = 1024;
/// Input accepted but not yet written to the PTY, before further input is refused.
const MAX_PENDING_INPUT: usize = 4 * 1024 * 1024;
/// Bytes read from the PTY at a time. A read returns at most a few KiB (the tty's
/// buffer) and the actor takes what else is buffered up to this; the buffer stays
/// resident in every session, so 16 KiB rather than 64 (48 KiB a session, issue 22).
const READ_CHUNK: usize = 16 * 1024;

/// Requests to a session actor.
#[derive(Debug)]
pub enum Command {
    /// Attach a client: the current screen, and output from then on.
    Attach {
        rows: u16,
        cols: u16,
        reply: oneshot::Sender<Attachment>,
    },
    /// The scrollback and screen as text ([`screen::Screen::capture`]).
    Capture {
        lines: Option<usize>,
        colours: bool,
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// Bytes to type into the agent's terminal.
    Input(Vec<u8>),
    Resize {
        rows: u16,
        cols: u16,
    },
    /// Start a lagging client over: the current screen and a fresh output receiver,
    /// taken at the same moment so nothing is shown twice or missed.
    Reattach {
        reply: oneshot::Sender<Attachment>,
    },
    /// End the agent: SIGTERM and SIGHUP to its process group, SIGKILL after the grace
    /// period (at once with `force`). Replies when the process has exited.
    Stop {
        force: bool,
        reply: oneshot::Sender<()>,
    },
    /// One of the agent's hooks fired. The reply is what the hook prints; a permission
    /// hook the agent runs beside its dialog is held until the request is answered.
    Hook {
        payload: serde_json::Value,
        reply: oneshot::Sender<Option<String>>,
    },
    /// Type `text`, then press Enter as a keystroke of its own. Agents that detect
    /// pastes by timing (Codex's paste burst, Gemini) take text and Enter read together
    /// as a pasted newline, so Enter waits until the agent has echoed the text (or
    /// [`ENTER_WAIT`] at most). Text with line breaks is typed as one bracketed paste,
    /// since a line break typed is Enter to the agent. Replies once Enter is queued.
    Submit {
        text: Vec<u8>,
        reply: oneshot::Sender<()>,
    },
    /// The state and the evidence for it.
    Explain {
        reply: oneshot::Sender<Explained>,
    },
    /// Answer the permission dialog on screen.
    Answer {
        approve: bool,
        reason: Option<String>,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// A running session's answer to `explain`.
#[derive(Debug, Clone)]
pub struct Explained {
    pub state: State,
    pub health: Health,
    pub health_detail: String,
    pub screen: Option<Cue>,
    pub signals: Vec<Signal>,
}

/// What an attaching client receives.
#[derive(Debug)]
pub struct Attachment {
    /// Repaints the current screen on a cleared terminal.
    pub screen: Vec<u8>,
    /// Everything the agent prints from now on. Closed when the session ends.
    pub output: broadcast::Receiver<Bytes>,
}

/// What a session tells the registry.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// Something about the running agent changed; `None` fields did not.
    Update {
        name: String,
        state: Option<State>,
        health: Option<Health>,
        agent_session_id: Option<String>,
    },
    Exited {
        name: String,
        status: ExitStatus,
        state: State,
        /// The last signals, for `explain` after the fact.
        signals: Vec<Signal>,
    },
    /// The session's usage so far (also sent once more after the agent exits).
    Usage {
        name: String,
        usage: canopy_protocol::session::Usage,
    },
    /// The session's environment and state while no agent runs (setup failed).
    Env {
        name: String,
        env: Box<canopy_protocol::session::Environment>,
        state: State,
    },
}

/// The sending side of a session actor. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    tx: mpsc::Sender<Command>,
}

impl SessionHandle {
    /// Send a command; `false` when the session has ended.
    pub async fn send(&self, cmd: Command) -> bool {
        self.tx.send(cmd).await.is_ok()
    }

    /// Send without waiting, for input and resizes from attached clients; `false` when
    /// the session has ended or is too far behind.
    pub fn try_send(&self, cmd: Command) -> bool {
        self.tx.try_send(cmd).is_ok()
    }

    /// Ask something and wait for the answer; `None` when the session has ended.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)).await {
            return None;
        }
        rx.await.ok()
    }
}

/// Settings a session runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub scrollback_lines: usize,
    pub stop_grace: Duration,
    pub timing: Timing,
}

/// Where a session's terminal comes from.
#[derive(Debug)]
pub enum Terminal {
    /// A new keeper starts the agent.
    Spawn(keeper::Order),
    /// The keeper of an agent an earlier host started.
    Kept(keeper::Kept),
}

/// Everything a session starts from.
#[derive(Debug)]
pub struct Start {
    pub name: String,
    pub terminal: Terminal,
    pub adapter: Arc<dyn Adapter>,
    /// The agent's conversation id, when known at launch.
    pub agent_session_id: Option<String>,
    /// The state the record starts in.
    pub state: State,
    pub settings: Settings,
    pub usage: usage::UsageStart,
    /// Time already spent thinking or in tools (a resumed session's earlier runs).
    pub active_ms: u64,
}

/// Start the agent (or take back a kept one) and its actor. Returns the handle and the
/// agent's pid.
pub async fn start(
    start: Start,
    reports: mpsc::UnboundedSender<Report>,
) -> std::io::Result<(SessionHandle, u32)> {
    let Start {
        name,
        terminal,
        adapter,
        agent_session_id,
        state,
        settings,
        usage: usage_start,
        active_ms,
    } = start;
    let adopted = matches!(terminal, Terminal::Kept(_));
    let kept = match terminal {
        Terminal::Spawn(order) => tokio::task::spawn_blocking(move || keeper::start(&order))
            .await
            .map_err(std::io::Error::other)??,
        Terminal::Kept(kept) => kept,
    };
    let keeper::Kept {
        master,
        pid,
        meta,
        exit,
    } = kept;
    let server = meta.server;
    let pty = Pty::new(master, pid)?;
    let (rows, cols) = pty.size()?;
    let (tx, rx) = mpsc::channel(256);
    let (output, _) = broadcast::channel(OUTPUT_BACKLOG);
    let (from_screen_tx, from_screen) = mpsc::unbounded_channel();
    let screen = Feed::start(
        Screen::new(rows, cols, settings.scrollback_lines),
        adapter.cues().clone(),
        output.clone(),
        from_screen_tx,
    );
    let mut engine = Engine::new(
        state,
        adapter.has_hooks(),
        settings.timing,
        Instant::now().into_std(),
    );
    if !adapter.cues().busy_while_working {
        engine = engine.with_unsteady_busy();
    }
    if adopted {
        engine = engine.taken_back((Instant::now() + REDRAW_PAUSE).into_std());
    }
    let (agent_events_tx, agent_events) = mpsc::unbounded_channel();
    if let (Some(server), Some(path)) = (&server, adapter.events_path()) {
        let for_catch_up = adapter.clone();
        events::follow(
            server.clone(),
            path.to_owned(),
            adapter.ready_path().map(str::to_owned),
            Box::new(move |get| for_catch_up.catch_up(get)),
            agent_events_tx,
        );
    }
    let usage = usage::spawn(name.clone(), usage_start, reports.clone());
    let (background_ended, background) = mpsc::unbounded_channel();
    let actor = Actor {
        background_ended,
        usage,
        active_ms,
        active_since: None,
        name,
        pty,
        screen,
        size: (rows, cols),
        output,
        pending_input: VecDeque::new(),
        reports,
        settings,
        adapter,
        engine,
        engine_timer: None,
        agent_session_id,
        health: Health::Ok,
        dialog_answered: false,
        bracketed_paste: adopted,
        after_dialog: None,
        server,
        pending_request: None,
        held_hook: None,
        submit: None,
        submit_timer: None,
        stopping: None,
        stop_waiters: Vec::new(),
    };
    tokio::spawn(actor.run(rx, from_screen, agent_events, background, exit));
    let handle = SessionHandle { tx };
    if adopted {
        tokio::spawn(redraw(handle.clone(), rows, cols));
    }
    Ok((handle, pid))
}

/// Have a kept agent draw its whole screen again for this host's (empty) screen: TUIs
/// redraw when their size changes (Node's `resize` fires only on a real change).
async fn redraw(handle: SessionHandle, rows: u16, cols: u16) {
    let narrower = cols.saturating_sub(1).max(1);
    handle
        .send(Command::Resize {
            rows,
            cols: narrower,
        })
        .await;
    tokio::time::sleep(REDRAW_PAUSE).await;
    handle.send(Command::Resize { rows, cols }).await;
}

/// Between the two sizes of [`redraw`]: long enough for the agent to see each.
const REDRAW_PAUSE: Duration = Duration::from_millis(150);

/// Enter's pause after the agent echoed the submitted text.
const ENTER_AFTER_ECHO: Duration = Duration::from_millis(150);
/// The longest Enter waits for the echo (an agent that draws its input differently).
const ENTER_WAIT: Duration = Duration::from_secs(5);
/// How much of the text's end is looked for in the agent's output.
const ECHO_TAIL: usize = 12;
/// Bracketed paste's markers, around a multi-line [`Command::Submit`].
const PASTE_START: &[u8] = b"\x1b[200~";
const PASTE_END: &[u8] = b"\x1b[201~";

/// A line typed by `send --enter`, waiting for its Enter.
struct Submit {
    /// The end of the text, as the agent will echo it; found in its output means the
    /// agent has read the text, so Enter arrives as a read of its own.
    tail: Vec<u8>,
    echoed: bool,
    /// Told once Enter is queued (a deny's reason typed by the host has no one to tell).
    reply: Option<oneshot::Sender<()>>,
}

impl Submit {
    fn new(text: &[u8], reply: Option<oneshot::Sender<()>>) -> Self {
        let line = text
            .rsplit(|b| *b == b'\n')
            .next()
            .unwrap_or(text)
            .trim_ascii();
        let start = line.len().saturating_sub(ECHO_TAIL);
        // Start on a character boundary, so a multi-byte character is looked for whole.
        let start = (start..line.len())
            .find(|&i| line[i] & 0xC0 != 0x80)
            .unwrap_or(line.len());
        Self {
            tail: line[start..].to_vec(),
            echoed: false,
            reply,
        }
    }

    /// Whether `output` shows the text echoed.
    fn echoed_in(&self, output: &[u8]) -> bool {
        self.tail.is_empty() || memchr::memmem::find(output, &self.tail).is_some()
    }
}

struct Actor {
    /// Told the pid of each process the agent left in the background once it exits.
    background_ended: mpsc::UnboundedSender<u32>,
    /// The usage task (its channel closing ends it).
    usage: mpsc::UnboundedSender<usage::ToUsage>,
    /// Time spent thinking or in tools, and since when the current such state runs.
    active_ms: u64,
    active_since: Option<Instant>,
    name: String,
    pty: pty::Pty,
    /// The screen task, fed the same output in the same order.
    screen: Feed,
    /// The PTY's size.
    size: (u16, u16),
    /// Live output for attached clients; lagging receivers are repainted instead.
    output: broadcast::Sender<Bytes>,
    /// Input accepted from clients, not yet taken by the PTY.
    pending_input: VecDeque<u8>,
    reports: mpsc::UnboundedSender<Report>,
    settings: Settings,
    adapter: Arc<dyn Adapter>,
    /// Hook events and screen cues in, the session's state out.
    engine: Engine,
    /// When the engine next needs a tick (a cue's hold time, the hook grace period).
    engine_timer: Option<Pin<Box<Sleep>>>,
    /// The agent's conversation id, as last reported.
    agent_session_id: Option<String>,
    /// Health as last reported.
    health: Health,
    /// The dialog on screen was answered from Canopy; don't answer it twice.
    dialog_answered: bool,
    /// Whether the program has bracketed paste on, as its output said (a terminal taken
    /// back from a keeper: as it may have said before this host saw it).
    bracketed_paste: bool,
    /// Submitted as a prompt once the answered dialog has gone (a deny's reason).
    after_dialog: Option<Vec<u8>>,
    /// The agent's own loopback server, when it has one.
    server: Option<String>,
    /// The open permission request, for agents answered over their server.
    pending_request: Option<String>,
    /// A permission hook held open to carry Canopy's answer: its event name and reply.
    held_hook: Option<(String, oneshot::Sender<Option<String>>)>,
    /// A submitted line waiting for its Enter, and when Enter is typed.
    submit: Option<Submit>,
    submit_timer: Option<Pin<Box<Sleep>>>,
    /// When a stop's grace period ends and SIGKILL follows.
    stopping: Option<Pin<Box<Sleep>>>,
    stop_waiters: Vec<oneshot::Sender<()>>,
}

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut from_screen: mpsc::UnboundedReceiver<FromScreen>,
        mut events: mpsc::UnboundedReceiver<serde_json::Value>,
        mut background: mpsc::UnboundedReceiver<u32>,
        mut exit: oneshot::Receiver<ExitStatus>,
    ) {
        self.arm_engine_timer();
        let mut buf = vec![0u8; READ_CHUNK];
        // Room in the screen's budget for the next read, taken before reading.
        let mut room: Option<Room> = None;
        let mut pty_open = true;
        let mut commands_open = true;
        let status = loop {
            let pending: Vec<u8> = if self.pending_input.is_empty() {
                Vec::new()
            } else {
                let (a, _) = self.pending_input.as_slices();
                a.to_vec()
            };
            tokio::select! {
                got = self.screen.room(READ_CHUNK), if pty_open && room.is_none() => room = got,
                read = self.pty.read(&mut buf), if pty_open && room.is_some() => match read {
                    Ok(0) | Err(_) => pty_open = false,
                    Ok(n) => {
                        // Take what else is already buffered, so bursts go through in
                        // large chunks.
                        let mut len = n;
                        while len < buf.len() {
                            match self.pty.read_now(&mut buf[len..]) {
                                0 => break,
                                m => len += m,
                            }
                        }
                        if let Some(room) = room.take() {
                            self.on_output(&buf[..len], room);
                        }
                    }
                },
                written = self.pty.write(&pending), if !pending.is_empty() => match written {
                    Ok(n) => { self.pending_input.drain(..n); }
                    Err(e) => {
                        tracing::warn!(session = %self.name, error = %e, "dropping input the agent's terminal refused");
                        self.pending_input.clear();
                    }
                },
                cmd = commands.recv(), if commands_open => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => commands_open = false,
                },
                Some(event) = events.recv() => { self.on_hook(&event); }
                Some(pid) = background.recv() => {
                    let changed = self.engine.work_ended(
                        &crate::state::Work::Process(pid),
                        StateSource::Process,
                        "background process exit",
                        now_ms(),
                    );
                    self.publish(changed);
                },
                Some(msg) = from_screen.recv() => match msg {
                    FromScreen::Cue(reading) => self.on_cue(reading),
                    // Only while no real terminal is attached to answer instead.
                    FromScreen::Reply(data) => if self.output.receiver_count() == 0 {
                        self.pending_input.extend(data);
                    },
                    FromScreen::Paste(on) => self.bracketed_paste = on,
                },
                () = sleep_until(&mut self.engine_timer) => {
                    self.engine_timer = None;
                    let now = Instant::now().into_std();
                    let changed = self.engine.tick(now, now_ms());
                    self.publish(changed);
                },
                () = sleep_until(&mut self.submit_timer) => self.press_enter(),
                () = sleep_until(&mut self.stopping) => {
                    self.stopping = None;
                    self.pty.signal_group(libc::SIGKILL);
                },
                status = &mut exit => break status.unwrap_or(ExitStatus { code: None, signal: None }),
            }
        };
        // Output written just before exiting is still in the terminal: keep it.
        loop {
            let room = match room.take() {
                Some(room) => room,
                None => match self.screen.room(READ_CHUNK).await {
                    Some(room) => room,
                    None => break,
                },
            };
            let n = self.pty.read_now(&mut buf);
            if n == 0 {
                break;
            }
            self.on_output(&buf[..n], room);
        }
        let detail = if self.stop_waiters.is_empty() {
            status.describe()
        } else {
            format!("stopped by canopy: {}", status.describe())
        };
        let state =
            State::new(StateKind::Exited, StateSource::Process, now_ms()).with_detail(detail);
        self.engine.set(state.clone(), "process exit");
        self.track_active(StateKind::Exited);
        let _ = self.reports.send(Report::Exited {
            name: self.name.clone(),
            status,
            state,
            signals: self.engine.signals(),
        });
        for w in self.stop_waiters.drain(..) {
            let _ = w.send(());
        }
        // Dropping `output` tells attached clients the session is gone.
    }

    fn on_output(&mut self, data: &[u8], room: Room) {
        // The agent echoed the submitted text: it has read it.
        if let Some(submit) = &mut self.submit
            && !submit.echoed
            && self.pending_input.is_empty()
            && submit.echoed_in(data)
        {
            submit.echoed = true;
            self.submit_timer = Some(Box::pin(tokio::time::sleep(ENTER_AFTER_ECHO)));
        }
        self.screen.output(data, room, &self.output);
    }

    fn on_cue(&mut self, reading: Reading) {
        if reading.cue != Cue::Permission {
            self.dialog_answered = false;
            if let Some(reason) = self.after_dialog.take() {
                self.submit(reason, None);
            }
        }
        let now = Instant::now().into_std();
        let changed = self.engine.screen_changed(reading, now, now_ms());
        self.publish(changed);
    }

    /// Apply a hook event; returns its name.
    fn on_hook(&mut self, payload: &serde_json::Value) -> String {
        let _ = self.usage.send(usage::ToUsage::Hook(payload.clone()));
        let event = self.adapter.hook(payload, self.agent_session_id.as_deref());
        if let Some(id) = &event.request_id {
            self.pending_request = Some(id.clone());
        }
        if matches!(
            &event.effect,
            crate::agents::Effect::State {
                kind: StateKind::WaitingPermission,
                ..
            }
        ) {
            // A new request: a new dialog to answer.
            self.dialog_answered = false;
        }
        let new_id = event
            .agent_session_id
            .clone()
            .filter(|id| self.agent_session_id.as_deref() != Some(id.as_str()));
        if let Some(id) = &new_id {
            self.agent_session_id = Some(id.clone());
        }
        if let crate::agents::Effect::Backgrounded { pid, .. } = event.effect {
            let ended = self.background_ended.clone();
            tokio::spawn(async move {
                pty::exited(pid).await;
                let _ = ended.send(pid);
            });
        }
        let now = Instant::now().into_std();
        let changed = self.engine.hook(&event, now, now_ms());
        if new_id.is_some() {
            let _ = self.reports.send(Report::Update {
                name: self.name.clone(),
                state: None,
                health: None,
                agent_session_id: new_id,
            });
        }
        self.publish(changed);
        event.name
    }

    /// Hold a permission hook open to answer it later, when the agent runs it beside its
    /// dialog; reply to any other hook at once.
    fn reply_to_hook(&mut self, event: String, reply: oneshot::Sender<Option<String>>) {
        let holds = self.adapter.hook_decision(&event, true, None).is_some()
            && self.engine.state().kind == StateKind::WaitingPermission;
        if holds {
            // An older request's hook has nothing more to wait for.
            self.release_held_hook();
            self.held_hook = Some((event, reply));
        } else {
            let _ = reply.send(None);
        }
    }

    /// Add up the time spent thinking, in tools or compacting, and tell the usage task.
    fn track_active(&mut self, kind: StateKind) {
        let now = Instant::now();
        if let Some(since) = self.active_since.take() {
            self.active_ms += now.duration_since(since).as_millis() as u64;
            let _ = self.usage.send(usage::ToUsage::Active(self.active_ms));
        }
        if kind.is_active() {
            self.active_since = Some(now);
        }
    }

    /// Type the Enter of the submitted line, if one waits.
    fn press_enter(&mut self) {
        self.submit_timer = None;
        if let Some(submit) = self.submit.take() {
            self.pending_input.push_back(b'\r');
            if let Some(reply) = submit.reply {
                let _ = reply.send(());
            }
        }
    }

    /// Type `text` and press Enter as a keystroke of its own once the agent has echoed
    /// it ([`Command::Submit`]).
    fn submit(&mut self, text: Vec<u8>, reply: Option<oneshot::Sender<()>>) {
        // One line at a time: an earlier one gets its Enter now.
        self.press_enter();
        if text.is_empty() {
            self.pending_input.push_back(b'\r');
            if let Some(reply) = reply {
                let _ = reply.send(());
            }
            return;
        }
        // A line break typed outside a bracketed paste would submit each line to an agent
        // as a prompt of its own (a review's comments as several). A program that reads
        // no pastes (a shell) would show the markers as text.
        let paste = self.bracketed_paste || self.adapter.reads_pastes();
        if paste && text.contains(&b'\n') {
            // A paste is shown collapsed, not echoed (Claude Code draws "[Pasted text #1
            // +3 lines]"): the agent's first output after it shows it was read.
            self.submit = Some(Submit::new(b"", reply));
            self.pending_input.extend(PASTE_START);
            self.pending_input.extend(text);
            self.pending_input.extend(PASTE_END);
        } else {
            self.submit = Some(Submit::new(&text, reply));
            self.pending_input.extend(text);
        }
        self.submit_timer = Some(Box::pin(tokio::time::sleep(ENTER_WAIT)));
    }

    /// Let a held hook return without a decision (the request was answered elsewhere).
    fn release_held_hook(&mut self) {
        if let Some((_, reply)) = self.held_hook.take() {
            let _ = reply.send(None);
        }
    }

    /// Answer the pending permission request once: over the agent's server when it
    /// has one, else by typing into the dialog on screen.
    fn answer(
        &mut self,
        approve: bool,
        reason: Option<String>,
        reply: oneshot::Sender<Result<(), String>>,
    ) {
        let kind = self.engine.state().kind;
        if kind != StateKind::WaitingPermission {
            let _ = reply.send(Err(format!(
                "it is not waiting for permission (it is {kind})"
            )));
            return;
        }
        // A hook whose client has gone (the agent timed it out) can carry nothing.
        if let Some((event, held)) = self.held_hook.take().filter(|(_, h)| !h.is_closed())
            && let Some(decision) = self
                .adapter
                .hook_decision(&event, approve, reason.as_deref())
        {
            // The agent closes its dialog itself; typing into it now would answer twice.
            self.dialog_answered = true;
            let sent = held.send(Some(decision)).map_err(|_| {
                "its permission hook had already ended; answer in its terminal".to_owned()
            });
            if sent.is_ok() {
                // A model told "no" through the hook goes on with its turn.
                self.answered(
                    approve,
                    &format!("answered through the agent's {event} hook"),
                    StateKind::Thinking,
                );
            }
            let _ = reply.send(sent);
            return;
        }
        if let (Some(server), Some(id)) = (&self.server, self.pending_request.clone())
            && let Some((path, body)) = self.adapter.answer_request(&id, approve)
        {
            self.pending_request = None;
            let url = format!("{server}{path}");
            // A refused request ends the agent's turn.
            self.answered(
                approve,
                &format!("request {id} answered over the agent's server"),
                StateKind::Idle,
            );
            tokio::task::spawn_blocking(move || {
                let _ = reply.send(events::post_json(&url, &body));
            });
            return;
        }
        let _ = reply.send(self.answer_on_screen(approve, reason));
    }

    /// Type the adapter's answer keys into the dialog on screen, once.
    fn answer_on_screen(&mut self, approve: bool, reason: Option<String>) -> Result<(), String> {
        if self.engine.screen() != Some(Cue::Permission) {
            return Err(
                "no permission dialog is on its screen (was it answered in the terminal?)".into(),
            );
        }
        if self.dialog_answered {
            return Err("the dialog on its screen was already answered".into());
        }
        self.dialog_answered = true;
        self.pending_input.extend(self.adapter.answer_keys(approve));
        if let Some(reason) = reason.filter(|r| !r.trim().is_empty()).filter(|_| !approve) {
            self.after_dialog = Some(reason.into_bytes());
        }
        // A refused dialog ends the agent's turn (the reason, if any, is a new prompt).
        self.answered(approve, "keys typed into the dialog", StateKind::Idle);
        Ok(())
    }

    /// The open request was answered from Canopy: the state follows at once.
    fn answered(&mut self, approve: bool, how: &str, on_deny: StateKind) {
        let now = Instant::now().into_std();
        let changed = self.engine.answered(approve, how, on_deny, now, now_ms());
        self.publish(changed);
    }

    /// Tell the registry about a state or health change and re-arm the engine's timer.
    fn publish(&mut self, changed: Option<State>) {
        // A request is open exactly while the state waits for permission.
        if self.engine.state().kind != StateKind::WaitingPermission {
            self.release_held_hook();
            self.pending_request = None;
        }
        if let Some(state) = &changed {
            self.track_active(state.kind);
        }
        let (health, _) = self.engine.health(Instant::now().into_std());
        let health_changed = (health != self.health).then_some(health);
        self.health = health;
        if changed.is_some() || health_changed.is_some() {
            let _ = self.reports.send(Report::Update {
                name: self.name.clone(),
                state: changed,
                health: health_changed,
                agent_session_id: None,
            });
        }
        self.arm_engine_timer();
    }

    fn arm_engine_timer(&mut self) {
        self.engine_timer = self
            .engine
            .deadline()
            .map(|at| Box::pin(tokio::time::sleep_until(Instant::from_std(at))));
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Attach { rows, cols, reply } => {
                self.resize(rows, cols);
                self.attachment(reply);
            }
            Command::Reattach { reply } => self.attachment(reply),
            Command::Capture {
                lines,
                colours,
                reply,
            } => {
                self.screen.capture(lines, colours, reply);
            }
            Command::Hook { payload, reply } => {
                let event = self.on_hook(&payload);
                self.reply_to_hook(event, reply);
            }
            Command::Submit { text, reply } => self.submit(text, Some(reply)),
            Command::Explain { reply } => {
                let (health, health_detail) = self.engine.health(Instant::now().into_std());
                let _ = reply.send(Explained {
                    state: self.engine.state().clone(),
                    health,
                    health_detail,
                    screen: self.engine.screen(),
                    signals: self.engine.signals(),
                });
            }
            Command::Answer {
                approve,
                reason,
                reply,
            } => self.answer(approve, reason, reply),
            Command::Input(data) => {
                if self.pending_input.len() + data.len() > MAX_PENDING_INPUT {
                    tracing::warn!(session = %self.name, "agent is not reading its input; dropping {} bytes", data.len());
                } else {
                    self.pending_input.extend(data);
                }
            }
            Command::Resize { rows, cols } => self.resize(rows, cols),
            Command::Stop { force, reply } => {
                self.stop_waiters.push(reply);
                if force {
                    self.pty.signal_group(libc::SIGKILL);
                } else if self.stopping.is_none() {
                    // SIGHUP is what closing a terminal sends; interactive shells ignore
                    // SIGTERM but not that.
                    self.pty.signal_group(libc::SIGTERM);
                    self.pty.signal_group(libc::SIGHUP);
                    self.stopping = Some(Box::pin(tokio::time::sleep_until(
                        Instant::now() + self.settings.stop_grace,
                    )));
                }
            }
        }
    }

    fn resize(&mut self, rows: u16, cols: u16) {
        if rows == 0 || cols == 0 || self.size == (rows, cols) {
            return;
        }
        if let Err(e) = self.pty.resize(rows, cols) {
            tracing::warn!(session = %self.name, error = %e, "resize failed");
            return;
        }
        self.size = (rows, cols);
        self.screen.resize(rows, cols);
    }

    /// Output from this point of the stream, with the repaint of everything before it.
    fn attachment(&mut self, reply: oneshot::Sender<Attachment>) {
        self.screen.attach(&self.output, reply);
    }
}

/// Completes when the optional deadline passes; never when there is none.
pub(crate) async fn sleep_until(deadline: &mut Option<Pin<Box<Sleep>>>) {
    match deadline {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}
