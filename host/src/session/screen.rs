//! The terminal model behind a session: what the agent's screen shows, kept by
//! alacritty's terminal emulator (fast, and it answers terminal queries).
//!
//! Two jobs beyond parsing: [`Screen::repaint`] turns the visible screen into bytes
//! that redraw it on a cleared terminal (for attaching clients), and
//! [`Screen::take_replies`] hands back the answers to queries the agent sent (cursor
//! position, device attributes, colours), which matter while no real terminal is
//! attached to answer them.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use alacritty_terminal::event::{Event, EventListener};
use alacritty_terminal::grid::Dimensions;
use alacritty_terminal::index::{Column, Line};
use alacritty_terminal::term::cell::{Cell, Flags};
use alacritty_terminal::term::{Config, Term, TermMode};
use alacritty_terminal::vte::ansi::{Color, NamedColor, Processor, Rgb};

/// Answers the emulator wants written back to the agent.
#[derive(Clone, Default)]
struct Replies(Arc<Mutex<Vec<u8>>>);

impl EventListener for Replies {
    fn send_event(&self, event: Event) {
        let text = match event {
            Event::PtyWrite(text) => text,
            // Theme detection (OSC 10/11): answer as a dark terminal would.
            Event::ColorRequest(index, format) => {
                let rgb = if index == NamedColor::Background as usize {
                    Rgb { r: 0, g: 0, b: 0 }
                } else {
                    Rgb {
                        r: 0xd0,
                        g: 0xd0,
                        b: 0xd0,
                    }
                };
                format(rgb)
            }
            _ => return,
        };
        // The lock is held only for this append.
        if let Ok(mut replies) = self.0.lock() {
            replies.extend_from_slice(text.as_bytes());
        }
    }
}

/// Grid size in the form alacritty's terminal takes.
struct Size {
    rows: usize,
    cols: usize,
}

impl Dimensions for Size {
    fn total_lines(&self) -> usize {
        self.rows
    }
    fn screen_lines(&self) -> usize {
        self.rows
    }
    fn columns(&self) -> usize {
        self.cols
    }
}

/// A session's terminal screen and scrollback.
pub struct Screen {
    term: Term<Replies>,
    parser: Processor,
    replies: Replies,
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rows, cols) = self.size();
        f.debug_struct("Screen")
            .field("rows", &rows)
            .field("cols", &cols)
            .finish()
    }
}

impl Screen {
    pub fn new(rows: u16, cols: u16, scrollback_lines: usize) -> Self {
        let replies = Replies::default();
        let config = Config {
            scrolling_history: scrollback_lines,
            ..Config::default()
        };
        let size = Size {
            rows: rows.max(1) as usize,
            cols: cols.max(2) as usize,
        };
        Screen {
            term: Term::new(config, &size, replies.clone()),
            parser: Processor::new(),
            replies,
        }
    }

    /// Feed output from the agent.
    pub fn process(&mut self, bytes: &[u8]) {
        self.parser.advance(&mut self.term, bytes);
    }

    /// Answers to the agent's queries produced by the output processed so far.
    pub fn take_replies(&mut self) -> Vec<u8> {
        self.replies
            .0
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }

    pub fn size(&self) -> (u16, u16) {
        let grid = self.term.grid();
        (grid.screen_lines() as u16, grid.columns() as u16)
    }

    pub fn resize(&mut self, rows: u16, cols: u16) {
        self.term.resize(Size {
            rows: rows.max(1) as usize,
            cols: cols.max(2) as usize,
        });
    }

    /// The visible screen as text, one line per row, trailing blanks trimmed.
    pub fn text(&self) -> String {
        let grid = self.term.grid();
        let mut out = String::new();
        for line in 0..grid.screen_lines() {
            let row = &grid[Line(line as i32)];
            let mut text = String::new();
            for col in 0..grid.columns() {
                let cell = &row[Column(col)];
                if !cell.flags.contains(Flags::WIDE_CHAR_SPACER) {
                    text.push(cell.c);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }

    /// Bytes that redraw the visible screen, cursor and input modes on a terminal of
    /// the same size.
    pub fn repaint(&self) -> Vec<u8> {
        let grid = self.term.grid();
        let mut out = String::with_capacity(grid.screen_lines() * grid.columns() + 256);
        out.push_str("\x1b[0m\x1b[H\x1b[2J");
        let mut pen = String::from("0");
        for line in 0..grid.screen_lines() {
            let row = &grid[Line(line as i32)];
            let Some(last) = (0..grid.columns())
                .rev()
                .find(|&c| !is_blank(&row[Column(c)]))
            else {
                continue;
            };
            let _ = write!(out, "\x1b[{};1H", line + 1);
            for col in 0..=last {
                let cell = &row[Column(col)];
                if cell
                    .flags
                    .intersects(Flags::WIDE_CHAR_SPACER | Flags::LEADING_WIDE_CHAR_SPACER)
                {
                    continue;
                }
                let style = sgr(cell);
                if style != pen {
                    let _ = write!(out, "\x1b[{style}m");
                    pen = style;
                }
                out.push(cell.c);
                if let Some(extra) = cell.zerowidth() {
                    out.extend(extra);
                }
            }
        }
        let cursor = &grid.cursor;
        let _ = write!(
            out,
            "\x1b[{}m\x1b[{};{}H",
            sgr(&cursor.template),
            cursor.point.line.0 + 1,
            cursor.point.column.0 + 1
        );
        out.push_str(&modes(*self.term.mode()));
        out.into_bytes()
    }
}

/// A cell a cleared screen already shows.
fn is_blank(cell: &Cell) -> bool {
    cell.c == ' '
        && cell.bg == Color::Named(NamedColor::Background)
        && !cell
            .flags
            .intersects(Flags::INVERSE | Flags::ALL_UNDERLINES | Flags::STRIKEOUT)
        && cell.zerowidth().is_none()
}

/// The SGR parameters (after a reset) that give a cell its look.
fn sgr(cell: &Cell) -> String {
    let mut s = String::from("0");
    for (flag, code) in [
        (Flags::BOLD, "1"),
        (Flags::DIM, "2"),
        (Flags::ITALIC, "3"),
        (Flags::UNDERLINE, "4"),
        (Flags::DOUBLE_UNDERLINE, "21"),
        (Flags::INVERSE, "7"),
        (Flags::HIDDEN, "8"),
        (Flags::STRIKEOUT, "9"),
    ] {
        if cell.flags.contains(flag) {
            s.push(';');
            s.push_str(code);
        }
    }
    color(&mut s, cell.fg, 30, 90, 38);
    color(&mut s, cell.bg, 40, 100, 48);
    s
}

fn color(s: &mut String, c: Color, base: u8, bright: u8, extended: u8) {
    let _ = match c {
        Color::Named(n) => match n as usize {
            i @ 0..8 => write!(s, ";{}", base as usize + i),
            i @ 8..16 => write!(s, ";{}", bright as usize + i - 8),
            // Dim variants carry the DIM flag; the colour is the plain one.
            _ => match dim_base(n) {
                Some(i) => write!(s, ";{}", base as usize + i),
                None => Ok(()),
            },
        },
        Color::Indexed(i) => write!(s, ";{extended};5;{i}"),
        Color::Spec(rgb) => write!(s, ";{extended};2;{};{};{}", rgb.r, rgb.g, rgb.b),
    };
}

fn dim_base(n: NamedColor) -> Option<usize> {
    Some(match n {
        NamedColor::DimBlack => 0,
        NamedColor::DimRed => 1,
        NamedColor::DimGreen => 2,
        NamedColor::DimYellow => 3,
        NamedColor::DimBlue => 4,
        NamedColor::DimMagenta => 5,
        NamedColor::DimCyan => 6,
        NamedColor::DimWhite => 7,
        _ => return None,
    })
}

/// Escape sequences that put a terminal into the agent's input modes.
fn modes(mode: TermMode) -> String {
    let mut s = String::new();
    s.push_str(if mode.contains(TermMode::SHOW_CURSOR) {
        "\x1b[?25h"
    } else {
        "\x1b[?25l"
    });
    for (flag, seq) in [
        (TermMode::APP_CURSOR, "\x1b[?1h"),
        (TermMode::APP_KEYPAD, "\x1b="),
        (TermMode::BRACKETED_PASTE, "\x1b[?2004h"),
        (TermMode::MOUSE_REPORT_CLICK, "\x1b[?1000h"),
        (TermMode::MOUSE_DRAG, "\x1b[?1002h"),
        (TermMode::MOUSE_MOTION, "\x1b[?1003h"),
        (TermMode::FOCUS_IN_OUT, "\x1b[?1004h"),
        (TermMode::UTF8_MOUSE, "\x1b[?1005h"),
        (TermMode::SGR_MOUSE, "\x1b[?1006h"),
    ] {
        if mode.contains(flag) {
            s.push_str(seq);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visible cell's character and look.
    fn cells(screen: &Screen) -> Vec<(char, String)> {
        let grid = screen.term.grid();
        let mut v = Vec::new();
        for line in 0..grid.screen_lines() {
            for col in 0..grid.columns() {
                let cell = &grid[Line(line as i32)][Column(col)];
                v.push((cell.c, sgr(cell)));
            }
        }
        v
    }

    #[test]
    fn repaint_reproduces_text_colours_and_cursor() {
        let mut a = Screen::new(6, 30, 100);
        a.process(b"plain \x1b[1;31mbold red\x1b[0m \x1b[38;5;208morange\x1b[0m\r\n");
        a.process(b"\x1b[48;2;10;20;30mtruecolour bg\x1b[0m \x1b[4;3munder italic\x1b[0m\r\n");
        a.process("wide: \u{4e16}\u{754c} e\u{301}\r\n".as_bytes());
        a.process(b"\x1b[7minverse\x1b[0m\x1b[5;10Hx\x1b[2;3H");
        let mut b = Screen::new(6, 30, 100);
        b.process(&a.repaint());
        assert_eq!(cells(&a), cells(&b));
        assert_eq!(a.text(), b.text());
        assert_eq!(a.term.grid().cursor.point, b.term.grid().cursor.point);
    }

    #[test]
    fn repaint_restores_input_modes() {
        let mut a = Screen::new(4, 20, 0);
        a.process(b"\x1b[?1h\x1b[?2004h\x1b[?1000h\x1b[?1006h\x1b[?25l");
        let mut b = Screen::new(4, 20, 0);
        b.process(&a.repaint());
        assert_eq!(
            *a.term.mode() & TermMode::ANY,
            *b.term.mode() & TermMode::ANY
        );
    }

    #[test]
    fn answers_cursor_position_and_colour_queries() {
        let mut s = Screen::new(10, 40, 0);
        s.process(b"abc\x1b[6n");
        assert_eq!(s.take_replies(), b"\x1b[1;4R");
        assert!(s.take_replies().is_empty());
        s.process(b"\x1b]11;?\x07");
        let reply = String::from_utf8(s.take_replies()).expect("utf8");
        assert!(reply.starts_with("\x1b]11;rgb:0000/0000/0000"), "{reply:?}");
    }

    #[test]
    fn text_follows_scrolling_and_resizing() {
        let mut s = Screen::new(3, 10, 10);
        s.process(b"one\r\ntwo\r\nthree\r\nfour");
        assert_eq!(s.text(), "two\nthree\nfour\n");
        s.resize(4, 12);
        assert_eq!(s.size(), (4, 12));
    }
}
