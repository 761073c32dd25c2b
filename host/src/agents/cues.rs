//! Screen cues: patterns on the visible screen that say what an agent is doing, the
//! fallback when hooks are missing or silent (an Esc interrupt fires no hook).

use regex::Regex;

/// What the screen shows, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue {
    /// A permission dialog is open.
    Permission,
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
            Cue::Error => "error message on screen",
            Cue::Interrupted => "interrupted notice on screen",
            Cue::Busy => "busy indicator on screen",
            Cue::Quiet => "no busy indicator or dialog on screen",
        }
    }
}

/// An adapter's screen patterns.
#[derive(Debug, Clone, Default)]
pub struct Cues {
    pub permission: Vec<Regex>,
    pub error: Vec<Regex>,
    pub interrupted: Vec<Regex>,
    pub busy: Vec<Regex>,
}

impl Cues {
    /// Build from pattern strings; patterns are the adapter's own or checked config.
    pub fn new(
        permission: &[&str],
        interrupted: &[&str],
        busy: &[&str],
    ) -> Result<Self, regex::Error> {
        let compile = |ps: &[&str]| {
            ps.iter()
                .map(|p| Regex::new(p))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            error: Vec::new(),
            permission: compile(permission)?,
            interrupted: compile(interrupted)?,
            busy: compile(busy)?,
        })
    }

    /// Add error patterns.
    pub fn with_errors(mut self, error: &[&str]) -> Result<Self, regex::Error> {
        self.error = error
            .iter()
            .map(|p| Regex::new(p))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// Classify the visible screen text.
    pub fn classify(&self, screen: &str) -> Cue {
        self.classify_with_line(screen).0
    }

    /// Classify the visible screen text; for an error, also the line that shows it.
    pub fn classify_with_line(&self, screen: &str) -> (Cue, Option<String>) {
        let any = |rs: &[Regex]| rs.iter().any(|r| r.is_match(screen));
        if any(&self.permission) {
            (Cue::Permission, None)
        } else if let Some(m) = self.error.iter().find_map(|r| r.find(screen)) {
            let start = screen[..m.start()].rfind('\n').map_or(0, |i| i + 1);
            let end = screen[m.end()..]
                .find('\n')
                .map_or(screen.len(), |i| m.end() + i);
            (Cue::Error, Some(super::one_line(&screen[start..end], 300)))
        } else if any(&self.interrupted) {
            (Cue::Interrupted, None)
        } else if any(&self.busy) {
            (Cue::Busy, None)
        } else {
            (Cue::Quiet, None)
        }
    }
}
