//! The terminal: raw mode on stdin, a key reader thread, and full-screen repaints.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;

/// One thing from the outside world for the main loop.
#[derive(Debug, Clone)]
pub enum Input {
    Key(Key),
    /// A prompt submitted over HTTP (OpenCode `prompt_async`).
    Prompt(String),
    /// An HTTP permission reply (OpenCode): request id and `once|always|reject`.
    PermissionReply(String, String),
    /// An HTTP abort (OpenCode `POST /session/{id}/abort`).
    Abort,
    /// A permission hook that ran beside the dialog decided (claude): allow, or deny
    /// with a reason.
    HookDecision {
        tool_id: String,
        deny: Option<String>,
    },
    /// The terminal went away.
    Eof,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Paste(String),
    Enter,
    Esc,
    Backspace,
    Tab,
    CtrlC,
    CtrlD,
    CtrlU,
    Up,
    Down,
    Left,
    Right,
    Other,
}

static SAVED: OnceLock<libc::termios> = OnceLock::new();
/// Rows used by the last [`paint`].
static PAINTED: AtomicUsize = AtomicUsize::new(0);

/// Put stdin in raw mode (no-op when it is not a terminal).
pub fn enter_raw() {
    // SAFETY: isatty/tcgetattr/tcsetattr on fd 0 with a valid termios buffer.
    unsafe {
        if libc::isatty(0) != 1 {
            return;
        }
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            return;
        }
        let _ = SAVED.set(t);
        libc::cfmakeraw(&mut t);
        libc::tcsetattr(0, libc::TCSANOW, &t);
    }
}

/// Restore the terminal mode saved by [`enter_raw`].
pub fn leave_raw() {
    if let Some(t) = SAVED.get() {
        // SAFETY: restoring a termios value read from the same fd.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, t);
        }
    }
}

/// Terminal size (rows, cols), 24×80 when unknown.
pub fn size() -> (usize, usize) {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        for fd in [1, 0] {
            if libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0 {
                return (usize::from(ws.ws_row), usize::from(ws.ws_col));
            }
        }
    }
    (24, 80)
}

/// Write bytes to the terminal; a hung-up terminal ends the process quietly.
pub fn write_out(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
        leave_raw();
        std::process::exit(0);
    }
}

/// Repaint the whole screen with `lines` (cut to the terminal width; the bottom of the
/// list wins when it does not fit), leaving the cursor at (`cursor_row`, `cursor_col`)
/// of the visible lines when given.
pub fn paint(lines: &[String], cursor: Option<(usize, usize)>) {
    let (rows, cols) = size();
    let skip = lines.len().saturating_sub(rows);
    PAINTED.store(lines.len() - skip, Ordering::Relaxed);
    let mut out = String::from("\x1b[?25l\x1b[H\x1b[2J");
    for (i, line) in lines.iter().skip(skip).enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        // Control characters (e.g. pasted newlines) are shown as spaces.
        out.extend(
            line.chars()
                .take(cols.saturating_sub(1))
                .map(|c| if c.is_control() { ' ' } else { c }),
        );
    }
    if let Some((r, c)) = cursor
        && r >= skip
    {
        out.push_str(&format!("\x1b[{};{}H\x1b[?25h", r - skip + 1, c + 1));
    }
    write_out(out.as_bytes());
}

/// Put the cursor on the line below the last painted screen.
pub fn below_screen() {
    let n = PAINTED.load(Ordering::Relaxed);
    let (rows, _) = size();
    if n < rows {
        write_out(format!("\x1b[{};1H", n + 1).as_bytes());
    } else {
        write_out(format!("\x1b[{rows};1H\r\n").as_bytes());
    }
}

/// Read keys from stdin on a thread until EOF.
pub fn spawn_reader(tx: Sender<Input>) {
    std::thread::spawn(move || {
        let mut parser = KeyParser::default();
        let mut buf = [0u8; 4096];
        loop {
            let timeout = if parser.pending() { 25 } else { -1 };
            let mut pfd = libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: polling one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, timeout) };
            if r < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                let _ = tx.send(Input::Eof);
                return;
            }
            if r == 0 {
                for k in parser.flush() {
                    if tx.send(Input::Key(k)).is_err() {
                        return;
                    }
                }
                continue;
            }
            // SAFETY: reading into a buffer we own, within its length.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = std::io::Error::last_os_error().kind();
                if matches!(
                    e,
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) {
                    continue;
                }
            }
            if n <= 0 {
                let _ = tx.send(Input::Eof);
                return;
            }
            for k in parser.feed(&buf[..n as usize]) {
                if tx.send(Input::Key(k)).is_err() {
                    return;
                }
            }
        }
    });
}

/// Turns terminal input bytes into keys, keeping incomplete sequences for later.
#[derive(Debug, Default)]
pub struct KeyParser {
    buf: Vec<u8>,
    paste: Option<Vec<u8>>,
}

impl KeyParser {
    /// Whether an incomplete escape sequence (or lone Esc) is waiting.
    pub fn pending(&self) -> bool {
        !self.buf.is_empty() && self.paste.is_none()
    }

    /// Whatever is pending after a pause: a lone ESC is the Esc key.
    pub fn flush(&mut self) -> Vec<Key> {
        if self.paste.is_some() {
            return Vec::new();
        }
        let mut keys = Vec::new();
        if self.buf.first() == Some(&0x1b) {
            keys.push(Key::Esc);
            self.buf.remove(0);
        }
        let rest = std::mem::take(&mut self.buf);
        if !rest.is_empty() {
            keys.extend(self.feed(&rest));
            if !self.buf.is_empty() {
                self.buf.clear();
                keys.push(Key::Other);
            }
        }
        keys
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Key> {
        self.buf.extend_from_slice(bytes);
        let mut keys = Vec::new();
        loop {
            if let Some(paste) = self.paste.as_mut() {
                const END: &[u8] = b"\x1b[201~";
                match find(&self.buf, END) {
                    Some(i) => {
                        paste.extend_from_slice(&self.buf[..i]);
                        let text = String::from_utf8_lossy(paste).into_owned();
                        self.paste = None;
                        self.buf.drain(..i + END.len());
                        keys.push(Key::Paste(text));
                        continue;
                    }
                    None => {
                        // Keep a possible partial end marker in the buffer.
                        let keep = (1..END.len())
                            .rev()
                            .find(|&n| self.buf.ends_with(&END[..n]))
                            .unwrap_or(0);
                        let take = self.buf.len() - keep;
                        paste.extend(self.buf.drain(..take));
                        return keys;
                    }
                }
            }
            let Some(&b) = self.buf.first() else {
                return keys;
            };
            let (key, used) = match b {
                0x1b => match self.escape() {
                    Some(x) => x,
                    None => return keys,
                },
                b'\r' | b'\n' => (Some(Key::Enter), 1),
                0x7f | 0x08 => (Some(Key::Backspace), 1),
                0x03 => (Some(Key::CtrlC), 1),
                0x04 => (Some(Key::CtrlD), 1),
                0x15 => (Some(Key::CtrlU), 1),
                b'\t' => (Some(Key::Tab), 1),
                c if c < 0x20 => (Some(Key::Other), 1),
                c => {
                    let len = match c {
                        0xc0..=0xdf => 2,
                        0xe0..=0xef => 3,
                        0xf0..=0xf7 => 4,
                        _ => 1,
                    };
                    if self.buf.len() < len {
                        return keys;
                    }
                    let s = String::from_utf8_lossy(&self.buf[..len]).into_owned();
                    (s.chars().next().map(Key::Char), len)
                }
            };
            self.buf.drain(..used);
            if let Some(k) = key {
                keys.push(k);
            }
        }
    }

    /// Parse an escape sequence at the start of the buffer; `None` = incomplete.
    fn escape(&mut self) -> Option<(Option<Key>, usize)> {
        let b = &self.buf;
        match b.get(1) {
            None => None,
            Some(b'[') => {
                let end = b[2..].iter().position(|&c| (0x40..=0x7e).contains(&c))? + 2;
                let seq = &b[2..=end];
                let key = match seq {
                    b"A" => Some(Key::Up),
                    b"B" => Some(Key::Down),
                    b"C" => Some(Key::Right),
                    b"D" => Some(Key::Left),
                    b"200~" => {
                        self.paste = Some(Vec::new());
                        None
                    }
                    _ => Some(Key::Other),
                };
                Some((key, end + 1))
            }
            Some(b'O') => {
                let c = *b.get(2)?;
                let key = match c {
                    b'A' => Key::Up,
                    b'B' => Key::Down,
                    b'C' => Key::Right,
                    b'D' => Key::Left,
                    _ => Key::Other,
                };
                Some((Some(key), 3))
            }
            // ESC followed by anything else: the Esc key, then that byte on its own.
            Some(_) => Some((Some(Key::Esc), 1)),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let mut p = KeyParser::default();
        assert_eq!(
            p.feed(b"hi\r"),
            vec![Key::Char('h'), Key::Char('i'), Key::Enter]
        );
        assert_eq!(p.feed(b"\x1b"), vec![]);
        assert!(p.pending());
        assert_eq!(p.flush(), vec![Key::Esc]);
        assert_eq!(p.feed(b"\x1b[A\x1b\x1b"), vec![Key::Up, Key::Esc]);
        assert_eq!(p.flush(), vec![Key::Esc]);
        assert_eq!(p.feed(b"\x1b[200~a\rb\x1b[20"), vec![]);
        assert_eq!(p.feed(b"1~\r"), vec![Key::Paste("a\rb".into()), Key::Enter]);
        assert_eq!(p.feed("❯".as_bytes()), vec![Key::Char('❯')]);
    }
}
