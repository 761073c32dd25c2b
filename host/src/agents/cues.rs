//! Screen cues: patterns on the visible screen that say what an agent is doing, the
//! fallback when hooks are missing or silent (an Esc interrupt fires no hook).

use regex::Regex;

/// What the screen shows, in the order they are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue {
    /// A permission dialog is open.
    Permission,
    /// A screen that waits for the user before any work: a model-upgrade menu, a
    /// folder-trust dialog, a login or update prompt. No hook fires for these.
    Input,
    /// The agent shows an error (an API error that fires no hook, for some agents).
    Error,
    /// The agent says it was interrupted and waits for the user.
    Interrupted,
    /// A busy indicator (spinner, "esc to interrupt").
    Busy,
    /// None of the above: at rest.
    Quiet,
}

impl Cue {
    pub fn as_str(self) -> &'static str {
        match self {
            Cue::Permission => "permission dialog on screen",
            Cue::Input => "a question for the user on screen",
            Cue::Error => "error message on screen",
            Cue::Interrupted => "interrupted notice on screen",
            Cue::Busy => "busy indicator on screen",
            Cue::Quiet => "no busy indicator or dialog on screen",
        }
    }
}

fn compile(patterns: &[&str]) -> Result<Vec<Regex>, regex::Error> {
    patterns.iter().map(|p| Regex::new(p)).collect()
}

/// What one look at the screen found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub cue: Cue,
    /// The line behind the cue (an error's text, an input screen's question).
    pub line: Option<String>,
    /// How many error and interrupted notices are on screen. They stay in the
    /// transcript through later turns, so only a new one (the count going up) is news.
    pub notices: usize,
    /// What the screen says runs in the background (the match, without the line's
    /// changing rest: Codex puts it after a timer), whatever the cue.
    pub background: Option<String>,
    /// Whether the agent's own screen is up (its input prompt drawn), not only text
    /// printed before it (Codex's launcher warns first, and keys typed then are lost).
    pub ready: bool,
}

/// An adapter's screen patterns.
#[derive(Debug, Clone, Default)]
pub struct Cues {
    /// Whether the busy patterns show for as long as the agent works, so their going
    /// away means the work stopped (true for every agent measured but Gemini, whose busy
    /// line goes missing under load: FINDINGS h).
    pub busy_while_working: bool,
    pub permission: Vec<Regex>,
    pub input: Vec<Regex>,
    pub error: Vec<Regex>,
    pub interrupted: Vec<Regex>,
    pub busy: Vec<Regex>,
    /// Text that says work goes on in the background after the turn (Codex's "1
    /// background terminal running"): no hook reports that work or its end.
    pub background: Vec<Regex>,
    /// Text that shows once the agent's screen is up (none: any text will do).
    pub ready: Vec<Regex>,
}

impl Cues {
    /// Build from pattern strings; patterns are the adapter's own or checked config.
    pub fn new(
        permission: &[&str],
        interrupted: &[&str],
        busy: &[&str],
    ) -> Result<Self, regex::Error> {
        Ok(Self {
            busy_while_working: true,
            input: Vec::new(),
            error: Vec::new(),
            background: Vec::new(),
            ready: Vec::new(),
            permission: compile(permission)?,
            interrupted: compile(interrupted)?,
            busy: compile(busy)?,
        })
    }

    /// Add error patterns.
    pub fn with_errors(mut self, error: &[&str]) -> Result<Self, regex::Error> {
        self.error = compile(error)?;
        Ok(self)
    }

    /// The busy patterns may be missing while the agent works.
    pub fn with_unsteady_busy(mut self) -> Self {
        self.busy_while_working = false;
        self
    }

    /// Add patterns of screens that wait for the user before any work; the line a
    /// pattern matches is what the screen asks, shown as the state's detail.
    pub fn with_inputs(mut self, input: &[&str]) -> Result<Self, regex::Error> {
        self.input = compile(input)?;
        Ok(self)
    }

    /// Add patterns of text that shows once the agent's screen is up.
    pub fn with_ready(mut self, ready: &[&str]) -> Result<Self, regex::Error> {
        self.ready = compile(ready)?;
        Ok(self)
    }

    /// Add patterns of text that says work runs in the background.
    pub fn with_background(mut self, background: &[&str]) -> Result<Self, regex::Error> {
        self.background = compile(background)?;
        Ok(self)
    }

    /// Classify the visible screen text.
    pub fn classify(&self, screen: &str) -> Cue {
        self.classify_with_line(screen).0
    }

    /// Classify the visible screen text and count its notices. A blank screen is no
    /// reading at all: nothing has been drawn yet (OpenCode's TUI takes seconds to draw
    /// its first screen while its server already sends events), or a TUI cleared it
    /// before a repaint; it says neither that the agent rests nor that it works.
    pub fn read(&self, screen: &str) -> Option<Reading> {
        if screen.trim().is_empty() {
            return None;
        }
        let (cue, line) = self.classify_with_line(screen);
        let notices = self
            .error
            .iter()
            .chain(&self.interrupted)
            .map(|r| r.find_iter(screen).count())
            .sum();
        let background = self
            .background
            .iter()
            .find_map(|r| r.find(screen))
            .map(|m| m.as_str().to_owned());
        let ready = self.ready.is_empty() || self.ready.iter().any(|r| r.is_match(screen));
        Some(Reading {
            cue,
            line,
            notices,
            background,
            ready,
        })
    }

    /// Classify the visible screen text; for an error or a question, also the line
    /// that shows it.
    pub fn classify_with_line(&self, screen: &str) -> (Cue, Option<String>) {
        let any = |rs: &[Regex]| rs.iter().any(|r| r.is_match(screen));
        // The whole line where a pattern's match starts, for the state's detail.
        let line_of = |rs: &[Regex]| {
            rs.iter().find_map(|r| r.find(screen)).map(|m| {
                let start = screen[..m.start()].rfind('\n').map_or(0, |i| i + 1);
                let end = screen[m.start()..]
                    .find('\n')
                    .map_or(screen.len(), |i| m.start() + i);
                super::one_line(&screen[start..end], 300)
            })
        };
        // A busy indicator outranks an error or interrupted notice: such notices stay in
        // the transcript after the agent has gone back to work.
        if any(&self.permission) {
            (Cue::Permission, None)
        } else if let Some(line) = line_of(&self.input) {
            (Cue::Input, Some(line))
        } else if any(&self.busy) {
            (Cue::Busy, None)
        } else if let Some(line) = line_of(&self.error) {
            (Cue::Error, Some(line))
        } else if any(&self.interrupted) {
            (Cue::Interrupted, None)
        } else {
            (Cue::Quiet, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found through Canopy on the real OpenCode 1.18.33 in the soak: its server sends
    /// events seconds before its TUI draws anything, and the blank screen read as "at
    /// rest" made a starting session `idle`; a prompt typed then was lost.
    #[test]
    fn a_blank_screen_is_no_reading() {
        let cues = Cues::new(&["Allow"], &["Interrupted"], &["esc to interrupt"]).expect("cues");
        assert_eq!(cues.read(""), None);
        assert_eq!(cues.read("   \n\n  \t\n"), None);
        let r = cues.read("\n  > Ask anything\n").expect("drawn");
        assert_eq!(r.cue, Cue::Quiet);
    }
}
