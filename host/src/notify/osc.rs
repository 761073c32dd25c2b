//! Terminal notifications for `canopy watch --notify`: the OSC sequence the terminal
//! turns into a system notification, chosen from `TERM_PROGRAM` and `TERM`.

use super::Note;

/// The escape sequence families terminals understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Osc {
    /// `OSC 9 ; text`: iTerm2, WezTerm, Ghostty, Windows Terminal (one text).
    Nine,
    /// `OSC 777 ; notify ; title ; body`: foot, Ghostty, WezTerm, urxvt, Konsole.
    SevenSevenSeven,
    /// `OSC 99`: kitty's protocol (title and body as separate chunks).
    NinetyNine,
}

impl Osc {
    /// The family for this terminal: kitty speaks 99, foot and urxvt only 777; OSC 9
    /// is the most widely understood otherwise.
    pub fn for_terminal(term_program: Option<&str>, term: Option<&str>) -> Osc {
        let term = term.unwrap_or("");
        match term_program.unwrap_or("") {
            "WezTerm" | "ghostty" => Osc::SevenSevenSeven,
            "iTerm.app" | "vscode" => Osc::Nine,
            _ if term == "xterm-kitty" => Osc::NinetyNine,
            _ if term.starts_with("foot") || term.starts_with("rxvt") => Osc::SevenSevenSeven,
            _ if term == "xterm-ghostty" => Osc::SevenSevenSeven,
            _ => Osc::Nine,
        }
    }

    /// The bytes to write for `note`; `id` names it for terminals that replace (kitty).
    pub fn sequence(self, note: &Note, id: u32) -> String {
        let title = clean(&note.summary);
        let body = clean(&note.body);
        match self {
            Osc::Nine => format!("\x1b]9;{}\x07", clean(&note.text())),
            // `;` separates the fields: inside one it would cut the text.
            Osc::SevenSevenSeven => format!(
                "\x1b]777;notify;{};{}\x07",
                title.replace(';', ","),
                body.replace(';', ",")
            ),
            Osc::NinetyNine => format!(
                "\x1b]99;i={id}:d=0:p=title;{title}\x1b\\\x1b]99;i={id}:d=1:p=body;{body}\x1b\\"
            ),
        }
    }
}

/// Control characters would end or corrupt the sequence.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_terminal_picks_the_sequence() {
        assert_eq!(
            Osc::for_terminal(Some("WezTerm"), None),
            Osc::SevenSevenSeven
        );
        assert_eq!(
            Osc::for_terminal(None, Some("xterm-kitty")),
            Osc::NinetyNine
        );
        assert_eq!(Osc::for_terminal(None, Some("foot")), Osc::SevenSevenSeven);
        assert_eq!(Osc::for_terminal(Some("iTerm.app"), None), Osc::Nine);
        assert_eq!(Osc::for_terminal(None, Some("xterm-256color")), Osc::Nine);
    }

    #[test]
    fn sequences_carry_clean_text() {
        let mut s = crate::store::tests::session("a");
        s.state.detail = None;
        let note = Note {
            reason: super::super::Reason::WaitingPermission,
            urgency: super::super::Urgency::Critical,
            summary: "a wants to run Bash".into(),
            body: "rm x; ls\x07".into(),
            session: s,
        };
        assert_eq!(
            Osc::Nine.sequence(&note, 1),
            "\x1b]9;a wants to run Bash: rm x; ls \x07"
        );
        assert_eq!(
            Osc::SevenSevenSeven.sequence(&note, 1),
            "\x1b]777;notify;a wants to run Bash;rm x, ls \x07"
        );
        assert!(
            Osc::NinetyNine
                .sequence(&note, 7)
                .starts_with("\x1b]99;i=7:d=0:p=title;")
        );
    }
}
