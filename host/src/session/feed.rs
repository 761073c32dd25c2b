//! The screen task, and how the session actor feeds it.
//!
//! The actor relays each PTY read to attached clients at once and queues the same bytes
//! here; the screen task parses them at its own pace. The queue is bounded in bytes
//! ([`SCREEN_BUDGET`]), not in messages: before each read the actor takes room for a
//! whole read, so when the screen is that far behind the *reader* waits (the agent's
//! output stays in its PTY) while the actor goes on serving commands. Nothing read is
//! ever held back from the screen, which is what keeps attaching exact (see
//! [`Feed::attach`]).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot};
use tokio::time::{Instant, Sleep};

use super::screen::Screen;
use super::{Attachment, sleep_until};
use crate::agents::{Cues, Reading};

/// Output bytes the screen task may fall behind the relay by. A flood relays at the
/// reader's pace while the screen lags up to this much; a few tens of milliseconds of
/// parsing, enough to ride out the screen task being descheduled.
pub const SCREEN_BUDGET: usize = 4 * 1024 * 1024;

/// How long the output must pause before the screen gives back its spare rows
/// ([`Screen::trim`]). A flood pauses between reads whenever the screen catches up with
/// the reader; trimming at each such pause made the emulator free and allocate a
/// thousand rows (4.8 MB at 200 columns) again and again, halving the screen's pace.
const TRIM_AFTER: Duration = Duration::from_millis(100);

/// The actor's side of the screen task's inbox.
pub struct Feed {
    inbox: mpsc::UnboundedSender<ToScreen>,
    /// Room for output not yet parsed, in bytes.
    budget: Arc<Semaphore>,
}

/// Room for one read of up to the permits' number of bytes.
pub struct Room(OwnedSemaphorePermit);

/// Messages to the screen task, in stream order. Only output takes room: the others
/// come one per command the actor serves and are a few bytes each.
enum ToScreen {
    /// Output, holding its room in the budget until parsed.
    Output(Bytes, OwnedSemaphorePermit),
    Resize {
        rows: u16,
        cols: u16,
    },
    /// Reply with the screen as of now and this receiver, subscribed at the same point.
    Attach {
        output: broadcast::Receiver<Bytes>,
        reply: oneshot::Sender<Attachment>,
    },
    /// Reply with the scrollback and screen ([`Screen::capture`]).
    Capture {
        lines: Option<usize>,
        colours: bool,
        reply: oneshot::Sender<Vec<u8>>,
    },
}

/// What the screen task tells the session actor. Unbounded: cues are sent only when
/// they change and replies only when the agent asks, and the actor must never wait on
/// the task it feeds.
pub enum FromScreen {
    /// What the screen shows changed.
    Cue(Reading),
    /// The terminal model's answers to the agent's queries (cursor position, colours).
    Reply(Vec<u8>),
    /// The program turned bracketed paste on or off.
    Paste(bool),
}

impl Feed {
    /// Start the screen task on `screen`; it reports to `session` and ends when the
    /// returned feed is dropped.
    pub fn start(
        screen: Screen,
        cues: Cues,
        output: broadcast::Sender<Bytes>,
        session: mpsc::UnboundedSender<FromScreen>,
    ) -> Feed {
        let (inbox, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(screen, cues, rx, output, session));
        Feed {
            inbox,
            budget: Arc::new(Semaphore::new(SCREEN_BUDGET)),
        }
    }

    /// Wait for room to read up to `bytes` (at most [`SCREEN_BUDGET`]). `None` only
    /// if the budget were closed, which it never is.
    pub async fn room(&self, bytes: usize) -> Option<Room> {
        let bytes = bytes.min(SCREEN_BUDGET) as u32;
        self.budget
            .clone()
            .acquire_many_owned(bytes)
            .await
            .ok()
            .map(Room)
    }

    /// Relay `data` to attached clients and queue it for the screen, in one step: no
    /// attachment can be taken between the two. `room` must hold at least its length.
    pub fn output(&self, data: &[u8], mut room: Room, clients: &broadcast::Sender<Bytes>) {
        // Give back the room the read did not use.
        drop(
            room.0
                .split(room.0.num_permits().saturating_sub(data.len())),
        );
        let chunk = Bytes::copy_from_slice(data);
        let _ = clients.send(chunk.clone());
        let _ = self.inbox.send(ToScreen::Output(chunk, room.0));
    }

    /// Subscribe a client to `clients` from this point of the stream and have the screen
    /// task, once it has parsed every byte queued before this point, answer with the
    /// matching repaint: the client sees each byte once, in the repaint or live. Exact
    /// because [`Feed::output`] relays and queues in one step, and reads wait for room
    /// *before* reading, never holding read bytes back from the screen.
    pub fn attach(&self, clients: &broadcast::Sender<Bytes>, reply: oneshot::Sender<Attachment>) {
        let output = clients.subscribe();
        let _ = self.inbox.send(ToScreen::Attach { output, reply });
    }

    pub fn resize(&self, rows: u16, cols: u16) {
        let _ = self.inbox.send(ToScreen::Resize { rows, cols });
    }

    pub fn capture(&self, lines: Option<usize>, colours: bool, reply: oneshot::Sender<Vec<u8>>) {
        let _ = self.inbox.send(ToScreen::Capture {
            lines,
            colours,
            reply,
        });
    }
}

/// Parse the agent's output into the screen model, behind the relay, and classify the
/// screen for the state engine.
async fn run(
    mut screen: Screen,
    cues: Cues,
    mut inbox: mpsc::UnboundedReceiver<ToScreen>,
    output: broadcast::Sender<Bytes>,
    session: mpsc::UnboundedSender<FromScreen>,
) {
    let mut last_reading: Option<Reading> = None;
    let mut paste = screen.bracketed_paste();
    // When the output has been quiet long enough to give back the emulator's spare rows.
    let mut trim: Option<Pin<Box<Sleep>>> = None;
    loop {
        let msg = tokio::select! {
            msg = inbox.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
            () = sleep_until(&mut trim) => {
                trim = None;
                screen.trim();
                crate::heap::freed();
                continue;
            }
        };
        match msg {
            ToScreen::Output(chunk, room) => {
                screen.process(&chunk);
                drop(room);
                if screen.bracketed_paste() != paste {
                    paste = !paste;
                    let _ = session.send(FromScreen::Paste(paste));
                }
                let replies = screen.take_replies();
                if !replies.is_empty() && output.receiver_count() == 0 {
                    let _ = session.send(FromScreen::Reply(replies));
                }
                // Only when nothing else is queued: a burst is classified once, at its end.
                if inbox.is_empty() {
                    if let Some(reading) = cues.read(&screen.text())
                        && last_reading.as_ref() != Some(&reading)
                    {
                        last_reading = Some(reading.clone());
                        let _ = session.send(FromScreen::Cue(reading));
                    }
                    let quiet = Instant::now() + TRIM_AFTER;
                    match &mut trim {
                        Some(sleep) => sleep.as_mut().reset(quiet),
                        None => trim = Some(Box::pin(tokio::time::sleep_until(quiet))),
                    }
                }
            }
            ToScreen::Resize { rows, cols } => screen.resize(rows, cols),
            ToScreen::Capture {
                lines,
                colours,
                reply,
            } => {
                let _ = reply.send(screen.capture(lines, colours));
            }
            ToScreen::Attach { output, reply } => {
                let _ = reply.send(Attachment {
                    screen: screen.repaint(),
                    output,
                });
            }
        }
    }
}
