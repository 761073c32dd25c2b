//! Width-safe text: every cell the view prints goes through here, so a line never
//! grows past the pane (which Zellij would wrap into garbage).

/// Display width of one char: control chars are replaced (see [`clean`]) and
/// everything else counts as one cell. East-Asian wide characters are rare in session
/// names; counting them as one keeps this dependency-free at the cost of a ragged edge.
fn cell(c: char) -> char {
    if c.is_control() { '·' } else { c }
}

/// `s` without control characters (a name or stderr line must not move the cursor).
pub fn clean(s: &str) -> String {
    s.chars().map(cell).collect()
}

/// `s` cut to at most `width` cells, with `…` marking the cut.
pub fn truncate(s: &str, width: usize) -> String {
    let count = s.chars().count();
    if count <= width {
        return clean(s);
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).map(cell).collect();
    out.push('…');
    out
}

/// `s` truncated or padded with spaces to exactly `width` cells.
pub fn fit(s: &str, width: usize) -> String {
    let mut out = truncate(s, width);
    let n = out.chars().count();
    out.extend(std::iter::repeat_n(' ', width - n));
    out
}

/// `s` right-aligned in exactly `width` cells.
pub fn fit_right(s: &str, width: usize) -> String {
    let t = truncate(s, width);
    let n = t.chars().count();
    let mut out: String = std::iter::repeat_n(' ', width - n).collect();
    out.push_str(&t);
    out
}

/// A rendered frame without its colour (SGR) sequences: what the user reads. For
/// tests and the README frame.
pub fn plain(frame: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in frame.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_with_ellipsis_and_pads() {
        assert_eq!(truncate("parser", 4), "par…");
        assert_eq!(truncate("parser", 0), "");
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(fit_right("ab", 4), "  ab");
        assert_eq!(fit("a\x1b[2Jb", 3), "a·…");
    }
}
