//! The terminal model behind a session: what the agent's screen shows, kept by
//! alacritty's terminal emulator (fast, and it answers terminal queries).
//!
//! Three jobs beyond parsing: [`Screen::repaint`] turns the visible screen into bytes
//! that redraw it on a cleared terminal (for attaching clients); [`Screen::take_replies`]
//! hands back the answers to queries the agent sent (cursor position, device
//! attributes, colours), which matter while no real terminal is attached to answer
//! them; and the scrollback is kept compactly (see [`History`]) for
//! [`Screen::capture`].

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use alacritty_terminal::event::{Event, EventListener};
use alacritty_terminal::grid::{Dimensions, Row};
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

/// Lines scrolled into the emulator's history are moved to [`History`] once this many
/// have gathered, so the emulator holds few of them.
const HISTORY_BATCH: usize = 16;

/// Output is parsed this much at a time, so that rows are encoded into [`History`]
/// soon after they scroll off, while their cells (4.8 KB a row at 200 columns) are
/// still in the CPU's cache.
const PARSE_SLICE: usize = 1024;

/// A session's terminal screen and scrollback.
pub struct Screen {
    term: Term<Replies>,
    parser: Processor,
    replies: Replies,
    history: History,
}

/// Rows that scrolled off the top, oldest first, each as its text with the SGR
/// sequences its colours need. The emulator stores every cell of its history (24 bytes
/// a cell, some 1.9 KiB an 80-column row however short its text); this stores what the
/// row shows, packed into blocks: a row costs its text and four bytes, where a heap
/// allocation and a header per row (and a ring buffer rounded up to a power of two)
/// took 1.46 MiB for 10,000 lines of agent output.
struct History {
    /// Full blocks, oldest first, and the one being filled last.
    blocks: VecDeque<Block>,
    /// Rows at the front of the first block already dropped for the limit; their bytes
    /// go when the whole block does.
    dropped: usize,
    /// Rows kept.
    len: usize,
    limit: usize,
}

/// About this many bytes of rows share one allocation: a few hundred rows, so at most
/// that much is held for rows already dropped.
const BLOCK_BYTES: usize = 16 * 1024;

/// The row continues on the next one (a line longer than the terminal was wide): the
/// top bit of its end in [`Block::ends`].
const WRAPPED: u32 = 1 << 31;

#[derive(Default)]
struct Block {
    bytes: Vec<u8>,
    /// Where each row ends in `bytes`, with [`WRAPPED`] set for rows that wrap.
    ends: Vec<u32>,
}

impl Block {
    fn rows(&self) -> impl Iterator<Item = (&[u8], bool)> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|e| e & !WRAPPED));
        starts.zip(&self.ends).map(|(start, &end)| {
            let bytes = &self.bytes[start as usize..(end & !WRAPPED) as usize];
            (bytes, end & WRAPPED != 0)
        })
    }
}

impl History {
    fn new(limit: usize) -> Self {
        History {
            blocks: VecDeque::new(),
            dropped: 0,
            len: 0,
            limit,
        }
    }

    /// Keep a row: its text with SGR changes, ending in a reset when styled, no
    /// trailing blanks.
    fn push(&mut self, row: &[u8], wrapped: bool) {
        if self.limit == 0 {
            return;
        }
        if self.len == self.limit {
            self.dropped += 1;
            self.len -= 1;
            if self
                .blocks
                .front()
                .is_some_and(|b| b.ends.len() == self.dropped)
            {
                self.blocks.pop_front();
                self.dropped = 0;
            }
        }
        let full = self
            .blocks
            .back()
            .is_none_or(|b| !b.ends.is_empty() && b.bytes.len() + row.len() > BLOCK_BYTES);
        if full {
            if let Some(last) = self.blocks.back_mut() {
                last.ends.shrink_to_fit();
            }
            self.blocks.push_back(Block {
                bytes: Vec::with_capacity(BLOCK_BYTES.max(row.len())),
                ends: Vec::with_capacity(BLOCK_BYTES / 64),
            });
        }
        let Some(block) = self.blocks.back_mut() else {
            return;
        };
        block.bytes.extend_from_slice(row);
        // A block holds at most a row longer than BLOCK_BYTES, far below 2^31.
        let end = block.bytes.len() as u32;
        block.ends.push(if wrapped { end | WRAPPED } else { end });
        self.len += 1;
    }

    /// The rows kept, oldest first, each with whether it wraps.
    fn rows(&self) -> impl Iterator<Item = (&[u8], bool)> {
        self.blocks.iter().flat_map(Block::rows).skip(self.dropped)
    }

    fn clear(&mut self) {
        *self = History::new(self.limit);
    }
}

/// Encode `row` into `out` (cleared first): its text with SGR changes, ending in a
/// reset when styled, no trailing blanks. Returns whether the row wraps. Runs once per
/// line of output that scrolls off, so it works on the row's cells as a slice and
/// writes an SGR sequence only where the look changes.
fn encode_row(row: &Row<Cell>, out: &mut Vec<u8>) -> bool {
    out.clear();
    let cells = &row[..];
    if write_cells(out, content(cells), &mut Look::default()) {
        out.extend_from_slice(b"\x1b[0m");
    }
    cells
        .last()
        .is_some_and(|cell| cell.flags.contains(Flags::WRAPLINE))
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
            history: History::new(scrollback_lines),
        }
    }

    /// Feed output from the agent.
    pub fn process(&mut self, bytes: &[u8]) {
        // "Erase saved lines" (CSI 3J, sent by `clear`): the emulator drops its own
        // history; what was already moved out goes too.
        if memchr::memmem::find(bytes, b"\x1b[3J").is_some() {
            self.history.clear();
        }
        for slice in bytes.chunks(PARSE_SLICE) {
            self.parser.advance(&mut self.term, slice);
            if self.term.grid().history_size() >= HISTORY_BATCH {
                self.keep_history(false);
            }
        }
    }

    /// The output has paused: move the rest of the emulator's history out and free the
    /// rows it keeps spare. The emulator allocates a thousand again at the next scroll
    /// (some 0.3 ms at 80 columns); holding them instead would cost every session that
    /// has scrolled 1.9 MiB (measured: 100 streaming sessions took 238 MiB instead of
    /// 73, for 13 % of a core less). So the screen task calls this once the output has
    /// paused for a while, not whenever it catches up with a flood.
    pub fn trim(&mut self) {
        self.keep_history(true);
    }

    fn keep_history(&mut self, free: bool) {
        let grid = self.term.grid_mut();
        let scrolled = grid.history_size();
        // Allocates only once a row is written: most bursts end with nothing scrolled.
        let mut scratch = Vec::new();
        for i in (1..=scrolled).rev() {
            let wrapped = encode_row(&grid[Line(-(i as i32))], &mut scratch);
            self.history.push(&scratch, wrapped);
        }
        if scrolled > 0 {
            grid.clear_history();
        }
        if free {
            grid.truncate();
        }
    }

    /// The last `lines` rows of scrollback and screen (all when `None`), oldest first,
    /// one line per row but for rows that wrap, which are joined; trailing blank rows
    /// are left out. With `colours`, the text carries the SGR sequences of its look.
    pub fn capture(&mut self, lines: Option<usize>, colours: bool) -> Vec<u8> {
        self.keep_history(false);
        let grid = self.term.grid();
        let mut scratch = Vec::new();
        let mut screen: Vec<(Vec<u8>, bool)> = (0..grid.screen_lines())
            .map(|line| {
                let wrapped = encode_row(&grid[Line(line as i32)], &mut scratch);
                (scratch.clone(), wrapped)
            })
            .collect();
        while screen.last().is_some_and(|(bytes, _)| bytes.is_empty()) {
            screen.pop();
        }
        let total = self.history.len + screen.len();
        let skip = lines.map_or(0, |n| total.saturating_sub(n));
        let screen = screen.iter().map(|(bytes, wrapped)| (&bytes[..], *wrapped));
        let mut out = Vec::new();
        for (bytes, wrapped) in self.history.rows().chain(screen).skip(skip) {
            if colours {
                out.extend_from_slice(bytes);
            } else {
                strip_sgr(bytes, &mut out);
            }
            if !wrapped {
                out.push(b'\n');
            }
        }
        out
    }

    /// Answers to the agent's queries produced by the output processed so far.
    pub fn take_replies(&mut self) -> Vec<u8> {
        self.replies
            .0
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }

    /// Whether the program has turned bracketed paste on (`CSI ? 2004 h`).
    pub fn bracketed_paste(&self) -> bool {
        self.term.mode().contains(TermMode::BRACKETED_PASTE)
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
        let mut out = Vec::with_capacity(grid.screen_lines() * grid.columns() + 256);
        out.extend_from_slice(b"\x1b[0m\x1b[H\x1b[2J");
        let mut pen = Look::default();
        for line in 0..grid.screen_lines() {
            let cells = content(&grid[Line(line as i32)][..]);
            if cells.is_empty() {
                continue;
            }
            let _ = write!(out, "\x1b[{};1H", line + 1);
            write_cells(&mut out, cells, &mut pen);
        }
        let cursor = &grid.cursor;
        Look::of(&cursor.template).write_sgr(&mut out);
        let _ = write!(
            out,
            "\x1b[{};{}H",
            cursor.point.line.0 + 1,
            cursor.point.column.0 + 1
        );
        out.extend_from_slice(modes(*self.term.mode()).as_bytes());
        out
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

/// A row's cells up to its last one a cleared screen would not show.
fn content(cells: &[Cell]) -> &[Cell] {
    let end = cells
        .iter()
        .rposition(|c| !is_blank(c))
        .map_or(0, |i| i + 1);
    &cells[..end]
}

/// Append `cells`, with an SGR sequence wherever the look differs from `pen` (which
/// follows along). Returns whether the pen ends styled.
fn write_cells(out: &mut Vec<u8>, cells: &[Cell], pen: &mut Look) -> bool {
    out.reserve(cells.len());
    for cell in cells {
        if cell
            .flags
            .intersects(Flags::WIDE_CHAR_SPACER | Flags::LEADING_WIDE_CHAR_SPACER)
        {
            continue;
        }
        // Most cells look like the one before: compare in place, build a look only
        // where it changes.
        if !pen.is_of(cell) {
            *pen = Look::of(cell);
            pen.write_sgr(out);
        }
        push_char(out, cell.c);
        for &c in cell.zerowidth().into_iter().flatten() {
            push_char(out, c);
        }
    }
    *pen != Look::default()
}

/// Append `c` as UTF-8.
fn push_char(out: &mut Vec<u8>, c: char) {
    if c.is_ascii() {
        out.push(c as u8);
    } else {
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    }
}

/// Copy text, leaving out its SGR sequences (the only escapes [`write_cells`] writes).
fn strip_sgr(text: &[u8], out: &mut Vec<u8>) {
    let mut rest = text;
    while let Some(at) = memchr::memchr(0x1b, rest) {
        out.extend_from_slice(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after
            .iter()
            .position(|b| (0x40..=0x7e).contains(b) && *b != b'[')
            .map_or(after.len(), |i| i + 1);
        rest = &after[end..];
    }
    out.extend_from_slice(rest);
}

/// What a cell looks like, apart from its character.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Look {
    flags: Flags,
    fg: Color,
    bg: Color,
}

impl Default for Look {
    fn default() -> Self {
        Look {
            flags: Flags::empty(),
            fg: Color::Named(NamedColor::Foreground),
            bg: Color::Named(NamedColor::Background),
        }
    }
}

/// The flags that change how a cell looks, each with its SGR code.
const STYLES: [(Flags, &str); 8] = [
    (Flags::BOLD, "1"),
    (Flags::DIM, "2"),
    (Flags::ITALIC, "3"),
    (Flags::UNDERLINE, "4"),
    (Flags::DOUBLE_UNDERLINE, "21"),
    (Flags::INVERSE, "7"),
    (Flags::HIDDEN, "8"),
    (Flags::STRIKEOUT, "9"),
];

/// [`STYLES`]' flags as one mask.
const STYLE_FLAGS: Flags = {
    let mut all = Flags::empty();
    let mut i = 0;
    while i < STYLES.len() {
        all = all.union(STYLES[i].0);
        i += 1;
    }
    all
};

impl Look {
    fn of(cell: &Cell) -> Self {
        Look {
            flags: cell.flags.intersection(STYLE_FLAGS),
            fg: cell.fg,
            bg: cell.bg,
        }
    }

    /// Whether `cell` looks like this.
    fn is_of(&self, cell: &Cell) -> bool {
        cell.fg == self.fg
            && cell.bg == self.bg
            && cell.flags.intersection(STYLE_FLAGS) == self.flags
    }

    /// The SGR sequence (from a reset) that gives this look.
    fn write_sgr(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\x1b[0");
        for (flag, code) in STYLES {
            if self.flags.contains(flag) {
                out.push(b';');
                out.extend_from_slice(code.as_bytes());
            }
        }
        color(out, self.fg, 30, 90, 38);
        color(out, self.bg, 40, 100, 48);
        out.push(b'm');
    }
}

fn color(s: &mut Vec<u8>, c: Color, base: u8, bright: u8, extended: u8) {
    match c {
        Color::Named(n) => match n as usize {
            i @ 0..8 => param(s, base + i as u8),
            i @ 8..16 => param(s, bright + i as u8 - 8),
            // Dim variants carry the DIM flag; the colour is the plain one.
            _ => {
                if let Some(i) = dim_base(n) {
                    param(s, base + i as u8);
                }
            }
        },
        Color::Indexed(i) => {
            param(s, extended);
            param(s, 5);
            param(s, i);
        }
        Color::Spec(rgb) => {
            param(s, extended);
            param(s, 2);
            for v in [rgb.r, rgb.g, rgb.b] {
                param(s, v);
            }
        }
    }
}

/// `;N`, without the formatting machinery: history rows are encoded by the thousand.
fn param(s: &mut Vec<u8>, n: u8) {
    s.push(b';');
    if n >= 100 {
        s.push(b'0' + n / 100);
    }
    if n >= 10 {
        s.push(b'0' + n / 10 % 10);
    }
    s.push(b'0' + n % 10);
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
    fn cells(screen: &Screen) -> Vec<(char, Look)> {
        let grid = screen.term.grid();
        let mut v = Vec::new();
        for line in 0..grid.screen_lines() {
            for col in 0..grid.columns() {
                let cell = &grid[Line(line as i32)][Column(col)];
                v.push((cell.c, Look::of(cell)));
            }
        }
        v
    }

    #[test]
    fn history_keeps_the_newest_rows_across_blocks() {
        let mut h = History::new(1000);
        let row = |i: usize| format!("row {i} {}", "x".repeat(i % 90));
        for i in 0..5000 {
            h.push(row(i).as_bytes(), i % 7 == 0);
        }
        let kept: Vec<(String, bool)> = h
            .rows()
            .map(|(b, w)| (String::from_utf8_lossy(b).into_owned(), w))
            .collect();
        let want: Vec<(String, bool)> = (4000..5000).map(|i| (row(i), i % 7 == 0)).collect();
        assert_eq!(kept, want);
        assert_eq!(h.len, 1000);
        // Dropped rows go with their block: at most one block's worth is held for them.
        let held: usize = h.blocks.iter().map(|b| b.bytes.len()).sum();
        let live: usize = want.iter().map(|(r, _)| r.len()).sum();
        assert!(held <= live + BLOCK_BYTES, "{held} bytes for {live}");
        let mut none = History::new(0);
        none.push(b"x", false);
        assert_eq!(none.rows().count(), 0);
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

    fn captured(s: &mut Screen, lines: Option<usize>, colours: bool) -> String {
        String::from_utf8(s.capture(lines, colours)).expect("utf8")
    }

    #[test]
    fn scrollback_keeps_text_colours_and_wrapping_compactly() {
        let mut s = Screen::new(3, 10, 100);
        s.process(b"one\r\n\x1b[31mred\x1b[0m\r\n0123456789abc\r\nfour\r\nfive");
        s.trim();
        assert_eq!(
            captured(&mut s, None, false),
            "one\nred\n0123456789abc\nfour\nfive\n"
        );
        assert_eq!(captured(&mut s, Some(2), false), "four\nfive\n");
        let coloured = captured(&mut s, None, true);
        assert!(coloured.contains("\x1b[0;31mred\x1b[0m\n"), "{coloured:?}");
        // The emulator holds the screen's rows only; the rest is in the compact history.
        assert_eq!(s.term.grid().history_size(), 0);
        assert_eq!(s.history.len, 3);
    }

    #[test]
    fn scrollback_is_bounded_and_survives_bursts_longer_than_a_batch() {
        let mut s = Screen::new(4, 20, 1000);
        let burst: String = (0..5000).map(|i| format!("line {i}\r\n")).collect();
        s.process(burst.as_bytes());
        s.trim();
        let text = captured(&mut s, None, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1000 + 3, "the limit plus the screen's text");
        assert_eq!(lines.first(), Some(&"line 3997"));
        assert_eq!(lines.last(), Some(&"line 4999"));
    }

    #[test]
    fn erasing_saved_lines_clears_the_scrollback() {
        let mut s = Screen::new(2, 10, 100);
        s.process(b"a\r\nb\r\nc\r\nd");
        s.trim();
        s.process(b"\x1b[H\x1b[2J\x1b[3Je");
        assert_eq!(captured(&mut s, None, false), "e\n");
    }

    #[test]
    fn sgr_stripping_leaves_the_text() {
        let mut out = Vec::new();
        strip_sgr(b"\x1b[0;1;38;5;208mhot\x1b[0m cold", &mut out);
        assert_eq!(out, b"hot cold");
    }
}
