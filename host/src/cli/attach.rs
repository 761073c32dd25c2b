//! `canopy attach`: the local terminal becomes the session's terminal until the detach
//! key. Raw mode and the alternate screen are restored on every way out.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;

use canopy_protocol::params::{
    AttachParams, AttachResult, DetachedParams, NameParams, OutputData, ResizeParams, Terminal,
};
use canopy_protocol::{Session, method};
use crossterm::terminal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::error::CliError;
use crate::client::Client;

/// Puts the terminal in raw mode on the alternate screen; puts it back when dropped.
struct RawTerminal;

impl RawTerminal {
    fn enter() -> std::io::Result<Self> {
        terminal::enable_raw_mode()?;
        let mut out = std::io::stdout();
        crossterm::execute!(out, terminal::EnterAlternateScreen)?;
        Ok(RawTerminal)
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let mut out = std::io::stdout();
        // Undo modes the agent may have turned on, then leave the alternate screen.
        let _ = out.write_all(b"\x1b[0m\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1006l\x1b[?2004l");
        let _ = crossterm::execute!(out, terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

/// Tells WezTerm (through its `canopy_session` user variable, OSC 1337 SetUserVar) that
/// this pane shows session `name`, so the Canopy WezTerm plugin can badge the tab and
/// find it again; clears the variable when dropped. Nothing is written elsewhere: other
/// terminals would print or mangle the sequence.
struct WezTermSession(bool);

impl WezTermSession {
    fn set(name: &str) -> Self {
        let inside = std::env::var_os("TERM_PROGRAM").is_some_and(|p| p == "WezTerm");
        if inside {
            write_user_var(name);
        }
        WezTermSession(inside)
    }
}

impl Drop for WezTermSession {
    fn drop(&mut self) {
        if self.0 {
            write_user_var("");
        }
    }
}

/// The OSC 1337 sequence setting WezTerm's `canopy_session` user variable to `value`.
pub fn user_var_sequence(value: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(value);
    format!("\x1b]1337;SetUserVar=canopy_session={encoded}\x07")
}

fn write_user_var(value: &str) {
    let mut out = std::io::stdout();
    // Best effort: the badge is a nicety, never a reason to fail an attach.
    let _ = out.write_all(user_var_sequence(value).as_bytes());
    let _ = out.flush();
}

/// Attach until detached or the session ends; returns the line to print afterwards.
/// `attach` params naming the agent's terminal or, with `run`, the dev server's.
#[derive(serde::Serialize)]
struct AttachTo {
    #[serde(flatten)]
    attach: AttachParams,
    #[serde(flatten)]
    terminal: Terminal,
}

pub async fn run(
    mut client: Client,
    name: &str,
    detach_key: u8,
    run: bool,
) -> Result<String, CliError> {
    // Say "no such session" or "not running" before complaining about the terminal.
    let session: Session = client
        .call(
            method::GET,
            &NameParams {
                name: name.to_owned(),
            },
        )
        .await?;
    if !session.is_running() {
        return Err(CliError::new(format!(
            "session {name:?} is not running ({})",
            session.state.detail.as_deref().unwrap_or("exited")
        ))
        .with_hint(format!("`canopy rm {name}` removes it")));
    }
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(CliError::new("attach needs a terminal").with_hint(format!(
            "use `canopy send {name} TEXT` to type into a session from a script"
        )));
    }
    let (cols, rows) = terminal::size()?;
    let attached: AttachResult = client
        .call(
            method::ATTACH,
            &AttachTo {
                attach: AttachParams {
                    name: name.to_owned(),
                    rows,
                    cols,
                },
                terminal: Terminal { run },
            },
        )
        .await?;

    // Dropped after `guard`, so the variable is cleared on every way out, too.
    let _user_var = WezTermSession::set(name);
    let guard = RawTerminal::enter()?;
    // Output goes to the terminal unbuffered, each batch in one write: stdout's line
    // buffering would split a batch at its last newline into two writes and copy the
    // rest.
    let mut terminal_out = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    terminal_out.write_all(&attached.screen)?;

    let mut keys = stdin_chunks();
    let mut winch = signal(SignalKind::window_change())?;
    let Client {
        mut reader,
        mut writer,
        ..
    } = client;
    let reason = loop {
        tokio::select! {
            frame = reader.next_frame() => match frame? {
                Some(frame) => match frame.method() {
                    // Straight from the socket's buffer to the terminal, one write.
                    Some(method::OUTPUT) => {
                        if let Ok(output) = frame.params::<OutputData>() {
                            terminal_out.write_all(output.data)?;
                        }
                    }
                    Some(method::DETACHED) => {
                        let why = frame
                            .params::<DetachedParams>()
                            .map_or_else(|_| "the session ended".to_owned(), |d| d.reason);
                        break format!("[{name}: {why}]");
                    }
                    _ => {}
                },
                None => break format!("[{name}: the host went away]"),
            },
            chunk = keys.recv() => {
                let Some(chunk) = chunk else { break format!("[detached from {name}]") };
                let (before, detach) = match chunk.iter().position(|&b| b == detach_key) {
                    Some(i) => (&chunk[..i], true),
                    None => (&chunk[..], false),
                };
                if !before.is_empty() {
                    let params = canopy_protocol::params::InputParams { name: name.to_owned(), data: before.to_vec() };
                    writer.notify(method::INPUT, &params).await?;
                }
                if detach {
                    writer.notify(method::DETACH, &NameParams { name: name.to_owned() }).await?;
                    break format!("[detached from {name}]");
                }
            },
            _ = winch.recv() => {
                let (cols, rows) = terminal::size()?;
                writer.notify(method::RESIZE, &ResizeParams { name: name.to_owned(), rows, cols }).await?;
            }
        }
    };
    drop(guard);
    Ok(reason)
}

/// Keystrokes from stdin, read on a thread (terminal reads block).
fn stdin_chunks() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}
