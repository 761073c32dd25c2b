//! Work an agent leaves running when its turn ends, which keeps the session from being
//! `idle` (`tool(background)`) until Canopy sees it end. Each kind is known by the
//! evidence of its end: a process by its pid exiting (Gemini's backgrounded shell call),
//! a sub-agent by its stop hook (Codex's `SubagentStart` … `SubagentStop`), and a
//! background terminal by the screen line that says it runs going away (Codex's
//! "1 background terminal running", which no hook, notify or program status reports).

use std::collections::BTreeSet;
use std::fmt;

/// One piece of work Canopy was told of and waits to see end.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Work {
    /// A process, until its pid exits.
    Process(u32),
    /// A sub-agent, by its id, until its stop hook.
    SubAgent(String),
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Work::Process(pid) => write!(f, "pid {pid}"),
            Work::SubAgent(id) => write!(f, "sub-agent {id}"),
        }
    }
}

/// What runs in the background now.
#[derive(Debug, Default)]
pub struct Background {
    /// Work reported by hooks or process events, until its end is reported too.
    running: BTreeSet<Work>,
    /// What the screen says still runs, for as long as it says so.
    on_screen: Option<String>,
}

impl Background {
    pub fn start(&mut self, work: Work) {
        self.running.insert(work);
    }

    /// Whether `work` was running (and now is not).
    pub fn end(&mut self, work: &Work) -> bool {
        self.running.remove(work)
    }

    /// What the screen says runs now. Returns whether it went from something to nothing
    /// or back.
    pub fn set_on_screen(&mut self, line: Option<String>) -> bool {
        let changed = self.on_screen.is_some() != line.is_some();
        self.on_screen = line;
        changed
    }

    /// Whether the screen says something runs.
    pub fn on_screen(&self) -> bool {
        self.on_screen.is_some()
    }

    /// What runs, in one line for the state's detail; `None` when nothing does.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.running.is_empty() {
            let each: Vec<String> = self.running.iter().map(Work::to_string).collect();
            parts.push(format!(
                "{} in the background: {}",
                each.len(),
                each.join(", ")
            ));
        }
        parts.extend(self.on_screen.clone());
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_what_runs_until_it_all_ends() {
        let mut b = Background::default();
        assert_eq!(b.describe(), None);
        b.start(Work::Process(42));
        b.start(Work::SubAgent("a1".into()));
        assert!(b.set_on_screen(Some("1 background terminal running".into())));
        assert!(!b.set_on_screen(Some("2 background terminals running".into())));
        assert_eq!(
            b.describe().as_deref(),
            Some("2 in the background: pid 42, sub-agent a1; 2 background terminals running")
        );
        assert!(b.end(&Work::Process(42)));
        assert!(!b.end(&Work::Process(42)));
        assert!(b.end(&Work::SubAgent("a1".into())));
        assert!(b.set_on_screen(None));
        assert_eq!(b.describe(), None);
    }
}
