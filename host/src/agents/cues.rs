//! Screen cues: patterns on the visible screen that say what an agent is doing, the
//! fallback when hooks are missing or silent (an Esc interrupt fires no hook).

use regex::Regex;

/// What the screen shows, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue {
    /// A permission dialog is open.
    Permission,
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
            permission: compile(permission)?,
            interrupted: compile(interrupted)?,
            busy: compile(busy)?,
        })
    }

    /// Whether there is anything to look for.
    pub fn is_empty(&self) -> bool {
        self.permission.is_empty() && self.interrupted.is_empty() && self.busy.is_empty()
    }

    /// Classify the visible screen text.
    pub fn classify(&self, screen: &str) -> Cue {
        let any = |rs: &[Regex]| rs.iter().any(|r| r.is_match(screen));
        if any(&self.permission) {
            Cue::Permission
        } else if any(&self.interrupted) {
            Cue::Interrupted
        } else if any(&self.busy) {
            Cue::Busy
        } else {
            Cue::Quiet
        }
    }
}
