//! One session's runtime: an actor owning the agent's PTY, its screen model and the
//! clients attached to it.
//!
//! The actor wakes only when the PTY has output or accepts input, a command arrives,
//! the process exits, or a stop's grace period ends. It reports what happened to the
//! registry through [`Report`]s; the registry owns the record.

pub mod pty;

use std::collections::VecDeque;
use std::num::NonZeroU16;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use canopy_protocol::{State, StateKind, StateSource};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, Sleep};

use crate::clock::now_ms;
pub use pty::{ExitStatus, SpawnSpec};

/// Output chunks buffered per attached client before it counts as lagging and gets a
/// repaint instead.
const OUTPUT_BACKLOG: usize = 1024;
/// Input accepted but not yet written to the PTY, before further input is refused.
const MAX_PENDING_INPUT: usize = 4 * 1024 * 1024;
/// Bytes read from the PTY at a time.
const READ_CHUNK: usize = 64 * 1024;

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
    Resize {
        rows: u16,
        cols: u16,
    },
    /// The bytes that repaint the current screen (for a client that lagged).
    Repaint {
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// The screen as plain text.
    Contents {
        reply: oneshot::Sender<String>,
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
    let size = |n: u16| NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN);
    let actor = Actor {
        name,
        pty,
        screen: vt100::Parser::new(size(spec.rows), size(spec.cols), settings.scrollback_lines),
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
    /// The terminal model: what an attaching client is shown.
    screen: vt100::Parser,
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
                    Ok(n) => self.on_output(&buf[..n]),
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
            self.on_output(&buf[..n]);
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

    fn on_output(&mut self, data: &[u8]) {
        self.screen.process(data);
        let _ = self.output.send(Bytes::copy_from_slice(data));
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

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Attach { rows, cols, reply } => {
                self.resize(rows, cols);
                let _ = reply.send(Attachment {
                    screen: self.repaint(),
                    output: self.output.subscribe(),
                });
            }
            Command::Input(data) => {
                if self.pending_input.len() + data.len() > MAX_PENDING_INPUT {
                    tracing::warn!(session = %self.name, "agent is not reading its input; dropping {} bytes", data.len());
                } else {
                    self.pending_input.extend(data);
                }
            }
            Command::Resize { rows, cols } => self.resize(rows, cols),
            Command::Repaint { reply } => {
                let _ = reply.send(self.repaint());
            }
            Command::Contents { reply } => {
                let _ = reply.send(self.screen.screen().contents());
            }
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
        if rows == 0 || cols == 0 {
            return;
        }
        let (cur_rows, cur_cols) = self.screen.screen().size();
        if (cur_rows.get(), cur_cols.get()) == (rows, cols) {
            return;
        }
        if let Err(e) = self.pty.resize(rows, cols) {
            tracing::warn!(session = %self.name, error = %e, "resize failed");
            return;
        }
        if let (Some(r), Some(c)) = (NonZeroU16::new(rows), NonZeroU16::new(cols)) {
            self.screen.set_size(r, c);
        }
    }

    fn repaint(&self) -> Vec<u8> {
        self.screen.screen().state_formatted().into_bytes()
    }
}

/// Completes when the optional deadline passes; never when there is none.
async fn sleep_until(deadline: &mut Option<Pin<Box<Sleep>>>) {
    match deadline {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}
