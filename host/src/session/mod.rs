//! One session's runtime: two tasks per agent.
//!
//! - The session actor owns the PTY and the process: it relays output to attached
//!   clients the moment it arrives, writes input, handles commands and the exit.
//! - The screen task owns the terminal model and parses the same output behind it, so
//!   parsing never stalls the agent's output (a PTY buffers only a few KB).
//!
//! Both wake only on output, input, commands, the exit, or a stop's grace period. The
//! actor reports what happened to the registry through [`Report`]s; the registry owns
//! the record.

pub mod pty;
pub mod screen;

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use canopy_protocol::{State, StateKind, StateSource};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, Sleep};

use crate::clock::now_ms;
pub use pty::{ExitStatus, SpawnSpec};
use screen::Screen;

/// Output chunks buffered per attached client before it counts as lagging and gets a
/// repaint instead.
const OUTPUT_BACKLOG: usize = 1024;
/// Input accepted but not yet written to the PTY, before further input is refused.
const MAX_PENDING_INPUT: usize = 4 * 1024 * 1024;
/// Bytes read from the PTY at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Output chunks the screen task may fall behind by before the agent's output waits.
const SCREEN_BACKLOG: usize = 64;

/// Requests to a session actor.
#[derive(Debug)]
pub enum Command {
    /// Attach a client: the current screen, and output from then on.
    Attach {
        rows: u16,
        cols: u16,
        reply: oneshot::Sender<Attachment>,
    },
    /// Bytes to type into the agent's terminal.
    Input(Vec<u8>),
    /// The terminal model's answers to the agent's queries (cursor position, colours).
    Reply(Vec<u8>),
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
    State {
        name: String,
        state: State,
    },
    Exited {
        name: String,
        status: ExitStatus,
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
}

/// Start the agent and its actor. Returns the handle and the agent's pid.
pub fn start(
    name: String,
    spec: &SpawnSpec,
    settings: Settings,
    reports: mpsc::UnboundedSender<Report>,
) -> std::io::Result<(SessionHandle, u32)> {
    let (pty, exit) = pty::spawn(spec)?;
    let pid = pty.pid;
    let (tx, rx) = mpsc::channel(256);
    let (output, _) = broadcast::channel(OUTPUT_BACKLOG);
    let (screen_tx, screen_rx) = mpsc::channel(SCREEN_BACKLOG);
    let screen = Screen::new(spec.rows, spec.cols, settings.scrollback_lines);
    tokio::spawn(screen_task(screen, screen_rx, output.clone(), tx.clone()));
    let actor = Actor {
        name,
        pty,
        screen: screen_tx,
        size: (spec.rows, spec.cols),
        output,
        pending_input: VecDeque::new(),
        reports,
        settings,
        seen_output: false,
        stopping: None,
        stop_waiters: Vec::new(),
    };
    tokio::spawn(actor.run(rx, exit));
    Ok((SessionHandle { tx }, pid))
}

struct Actor {
    name: String,
    pty: pty::Pty,
    /// The screen task, fed the same output in the same order.
    screen: mpsc::Sender<ToScreen>,
    /// The PTY's size.
    size: (u16, u16),
    /// Live output for attached clients; lagging receivers are repainted instead.
    output: broadcast::Sender<Bytes>,
    /// Input accepted from clients, not yet taken by the PTY.
    pending_input: VecDeque<u8>,
    reports: mpsc::UnboundedSender<Report>,
    settings: Settings,
    /// Whether the agent has printed anything (it has left `starting`).
    seen_output: bool,
    /// When a stop's grace period ends and SIGKILL follows.
    stopping: Option<Pin<Box<Sleep>>>,
    stop_waiters: Vec<oneshot::Sender<()>>,
}

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut exit: oneshot::Receiver<ExitStatus>,
    ) {
        let mut buf = vec![0u8; READ_CHUNK];
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
                read = self.pty.read(&mut buf), if pty_open => match read {
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
                        self.on_output(&buf[..len]).await;
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
                    Some(cmd) => self.on_command(cmd).await,
                    None => commands_open = false,
                },
                () = sleep_until(&mut self.stopping) => {
                    self.stopping = None;
                    self.pty.signal_group(libc::SIGKILL);
                },
                status = &mut exit => break status.unwrap_or(ExitStatus { code: None, signal: None }),
            }
        };
        // Output written just before exiting is still in the terminal: keep it.
        loop {
            let n = self.pty.read_now(&mut buf);
            if n == 0 {
                break;
            }
            self.on_output(&buf[..n]).await;
        }
        let detail = if self.stop_waiters.is_empty() {
            status.describe()
        } else {
            format!("stopped by canopy: {}", status.describe())
        };
        let state =
            State::new(StateKind::Exited, StateSource::Process, now_ms()).with_detail(detail);
        let _ = self.reports.send(Report::Exited {
            name: self.name.clone(),
            status,
            state,
        });
        for w in self.stop_waiters.drain(..) {
            let _ = w.send(());
        }
        // Dropping `output` tells attached clients the session is gone.
    }

    async fn on_output(&mut self, data: &[u8]) {
        let chunk = Bytes::copy_from_slice(data);
        let _ = self.output.send(chunk.clone());
        let _ = self.screen.send(ToScreen::Output(chunk)).await;
        if !self.seen_output {
            self.seen_output = true;
            let state = State::new(StateKind::Idle, StateSource::Screen, now_ms())
                .with_detail("the agent printed its first output");
            let _ = self.reports.send(Report::State {
                name: self.name.clone(),
                state,
            });
        }
    }

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Attach { rows, cols, reply } => {
                self.resize(rows, cols).await;
                self.attachment(reply).await;
            }
            Command::Reattach { reply } => self.attachment(reply).await,
            Command::Reply(data) => {
                // Only while no real terminal is attached to answer instead.
                if self.output.receiver_count() == 0 {
                    self.pending_input.extend(data);
                }
            }
            Command::Input(data) => {
                if self.pending_input.len() + data.len() > MAX_PENDING_INPUT {
                    tracing::warn!(session = %self.name, "agent is not reading its input; dropping {} bytes", data.len());
                } else {
                    self.pending_input.extend(data);
                }
            }
            Command::Resize { rows, cols } => self.resize(rows, cols).await,
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

    async fn resize(&mut self, rows: u16, cols: u16) {
        if rows == 0 || cols == 0 || self.size == (rows, cols) {
            return;
        }
        if let Err(e) = self.pty.resize(rows, cols) {
            tracing::warn!(session = %self.name, error = %e, "resize failed");
            return;
        }
        self.size = (rows, cols);
        let _ = self.screen.send(ToScreen::Resize { rows, cols }).await;
    }

    /// Subscribe a client to output from this point of the stream and have the screen
    /// task, once it has parsed up to the same point, add the matching repaint.
    async fn attachment(&mut self, reply: oneshot::Sender<Attachment>) {
        let output = self.output.subscribe();
        let _ = self.screen.send(ToScreen::Attach { output, reply }).await;
    }
}

/// Messages to the screen task, in stream order.
enum ToScreen {
    Output(Bytes),
    Resize {
        rows: u16,
        cols: u16,
    },
    /// Reply with the screen as of now and this receiver, subscribed at the same point.
    Attach {
        output: broadcast::Receiver<Bytes>,
        reply: oneshot::Sender<Attachment>,
    },
}

/// Parse the agent's output into the screen model, behind the relay.
async fn screen_task(
    mut screen: Screen,
    mut inbox: mpsc::Receiver<ToScreen>,
    output: broadcast::Sender<Bytes>,
    session: mpsc::Sender<Command>,
) {
    while let Some(msg) = inbox.recv().await {
        match msg {
            ToScreen::Output(chunk) => {
                screen.process(&chunk);
                let replies = screen.take_replies();
                // Answers to the agent's queries go back through the actor, which
                // writes them only while no attached terminal answers instead.
                if !replies.is_empty() && output.receiver_count() == 0 {
                    let _ = session.try_send(Command::Reply(replies));
                }
            }
            ToScreen::Resize { rows, cols } => screen.resize(rows, cols),
            ToScreen::Attach { output, reply } => {
                let _ = reply.send(Attachment {
                    screen: screen.repaint(),
                    output,
                });
            }
        }
    }
}

/// Completes when the optional deadline passes; never when there is none.
async fn sleep_until(deadline: &mut Option<Pin<Box<Sleep>>>) {
    match deadline {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}
