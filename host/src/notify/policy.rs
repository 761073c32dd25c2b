//! The notification policy: session events in, at most one operation out per event.
//!
//! Pure and synchronous (time is passed in), so the host's policy task and
//! `canopy watch --notify` decide alike and the rules are tested without a bus.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use canopy_protocol::{EventKind, Session, StateKind};
use serde::Serialize;

use super::settings::{NotifyConfig, Reason, Urgency, secs};

/// The rate windows.
const MINUTE: Duration = Duration::from_secs(60);

/// One notification, as every target shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Note {
    pub reason: Reason,
    pub urgency: Urgency,
    /// One line: "api-retry wants to run Bash", "docs finished after 4m12s, $0.31".
    pub summary: String,
    /// What the request is about ("npm test"), or empty.
    pub body: String,
    /// The session as it is now.
    pub session: Session,
}

impl Note {
    /// Summary and body on one line, for targets with a single text.
    pub fn text(&self) -> String {
        if self.body.is_empty() {
            self.summary.clone()
        } else {
            format!("{}: {}", self.summary, self.body)
        }
    }

    pub fn name(&self) -> &str {
        &self.session.name
    }
}

/// What the targets should do for one session.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Show this, replacing the session's live notification.
    Show(Box<Note>),
    /// Take down the session's live notification: what it asked was answered or its
    /// state moved on.
    Withdraw(String),
}

impl Op {
    pub fn session(&self) -> &str {
        match self {
            Op::Show(note) => note.name(),
            Op::Withdraw(name) => name,
        }
    }
}

/// What the policy remembers of a session.
#[derive(Debug, Default)]
struct Tracked {
    /// The state last seen (kind, tool, detail, since): usage-only changes repeat it.
    state: Option<(StateKind, Option<String>, Option<String>, u64)>,
    /// When the current turn's work began (ms), for "finished after".
    busy_since: Option<u64>,
    /// A notification of this session is showing.
    live: bool,
    /// When its recent notifications were shown, for the per-session rate.
    shown: VecDeque<Instant>,
}

/// The policy over all sessions.
#[derive(Debug)]
pub struct Policy {
    config: NotifyConfig,
    sessions: HashMap<String, Tracked>,
    /// When recent notifications of any session were shown, for the global rate.
    shown: VecDeque<Instant>,
}

impl Policy {
    pub fn new(config: NotifyConfig) -> Self {
        Self {
            config,
            sessions: HashMap::new(),
            shown: VecDeque::new(),
        }
    }

    /// The operation one event calls for. `typed_at` is when the user last typed into
    /// the session from an attached terminal.
    pub fn on_event(
        &mut self,
        kind: EventKind,
        s: &Session,
        now: Instant,
        typed_at: Option<Instant>,
    ) -> Option<Op> {
        if kind == EventKind::SessionRemoved {
            let tracked = self.sessions.remove(&s.name)?;
            return tracked.live.then(|| Op::Withdraw(s.name.clone()));
        }
        if kind == EventKind::Resync {
            return None;
        }
        let t = self.sessions.entry(s.name.clone()).or_default();
        let key = (
            s.state.kind,
            s.state.tool.clone(),
            s.state.detail.clone(),
            s.state.since,
        );
        if t.state.as_ref() == Some(&key) {
            return None;
        }
        t.state = Some(key);
        let worked_ms = match s.state.kind {
            StateKind::Idle => t.busy_since.take().map(|b| s.state.since.saturating_sub(b)),
            StateKind::Thinking | StateKind::Tool | StateKind::Compacting => {
                t.busy_since.get_or_insert(s.state.since);
                None
            }
            // Waiting for an answer is part of the turn.
            StateKind::WaitingPermission => None,
            StateKind::Starting
            | StateKind::WaitingInput
            | StateKind::Error
            | StateKind::Exited
            | StateKind::Unknown => {
                t.busy_since = None;
                None
            }
        };
        let Some(note) = note_for(&self.config, s, worked_ms) else {
            return std::mem::take(&mut t.live).then(|| Op::Withdraw(s.name.clone()));
        };
        let quiet = secs(self.config.quiet_after_typing_secs, Duration::ZERO);
        let why_not = if typed_at.is_some_and(|at| now.saturating_duration_since(at) < quiet) {
            Some("the user is typing in it")
        } else if !under_rate(&mut t.shown, self.config.per_session_per_minute, now) {
            Some("per-session rate reached")
        } else if !under_rate(&mut self.shown, self.config.per_minute, now) {
            Some("global rate reached")
        } else {
            None
        };
        match why_not {
            None => {
                t.shown.push_back(now);
                self.shown.push_back(now);
                t.live = true;
                Some(Op::Show(Box::new(note)))
            }
            Some(why) => {
                tracing::debug!(session = %s.name, reason = note.reason.as_str(), why, "notification held back");
                // What is showing is about an earlier state: not true any more.
                std::mem::take(&mut t.live).then(|| Op::Withdraw(s.name.clone()))
            }
        }
    }
}

/// Whether one more fits in `limit` per minute; forgets times older than a minute.
fn under_rate(times: &mut VecDeque<Instant>, limit: u32, now: Instant) -> bool {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
    {
        times.pop_front();
    }
    times.len() < limit as usize
}

/// The note for a session's new state, if its reason is on.
fn note_for(config: &NotifyConfig, s: &Session, worked_ms: Option<u64>) -> Option<Note> {
    let name = &s.name;
    let detail = s.state.detail.clone().unwrap_or_default();
    let (reason, summary, body) = match s.state.kind {
        StateKind::WaitingPermission => (
            Reason::WaitingPermission,
            match &s.state.tool {
                Some(tool) => format!("{name} wants to run {tool}"),
                None => format!("{name} asks for permission"),
            },
            detail,
        ),
        StateKind::WaitingInput => (
            Reason::WaitingInput,
            format!("{name} is waiting for input"),
            detail,
        ),
        StateKind::Error => (Reason::Error, format!("{name} hit an error"), detail),
        StateKind::Idle => {
            let worked = worked_ms?;
            if Duration::from_millis(worked)
                < secs(config.finished_after_secs, Duration::from_secs(60))
            {
                return None;
            }
            let cost = s
                .usage
                .cost_usd
                .map(|c| format!(", ${c:.2}"))
                .unwrap_or_default();
            (
                Reason::Finished,
                format!("{name} finished after {}{cost}", duration(worked)),
                String::new(),
            )
        }
        StateKind::Exited if unexpected_exit(s) => (
            Reason::Exited,
            match s.exit_code {
                Some(code) => format!("{name} exited with code {code}"),
                None => format!("{name} exited"),
            },
            detail,
        ),
        _ => return None,
    };
    config.on.contains(&reason).then(|| Note {
        reason,
        urgency: reason.urgency(),
        summary,
        body,
        session: s.clone(),
    })
}

/// An exit nobody asked for: a failure code or a signal, not `canopy stop`.
fn unexpected_exit(s: &Session) -> bool {
    let stopped = s
        .state
        .detail
        .as_deref()
        .is_some_and(|d| d.starts_with("stopped by canopy"));
    s.exit_code != Some(0) && !stopped
}

/// `4m12s`, `45s`, `1h03m`.
fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use canopy_protocol::{State, StateSource};

    use super::*;

    fn session(name: &str, kind: StateKind, since: u64) -> Session {
        let mut s = crate::store::tests::session(name);
        s.state = State::new(kind, StateSource::Hook, since);
        s
    }

    fn asking(name: &str, since: u64) -> Session {
        let mut s = session(name, StateKind::WaitingPermission, since);
        s.state.tool = Some("Bash".into());
        s.state.detail = Some("npm test".into());
        s
    }

    fn changed(p: &mut Policy, s: &Session, now: Instant) -> Option<Op> {
        p.on_event(EventKind::SessionChanged, s, now, None)
    }

    #[test]
    fn a_permission_request_shows_once_and_is_withdrawn_when_answered() {
        let mut p = Policy::new(NotifyConfig::default());
        let now = Instant::now();
        let s = asking("api-retry", 1);
        let Some(Op::Show(note)) = changed(&mut p, &s, now) else {
            panic!("no note");
        };
        assert_eq!(note.text(), "api-retry wants to run Bash: npm test");
        assert_eq!(note.urgency, Urgency::Critical);
        // A usage change repeats the state: nothing new.
        assert_eq!(changed(&mut p, &s, now), None);
        let tool = session("api-retry", StateKind::Tool, 2);
        assert_eq!(
            changed(&mut p, &tool, now),
            Some(Op::Withdraw("api-retry".into()))
        );
        assert_eq!(
            changed(&mut p, &session("api-retry", StateKind::Thinking, 3), now),
            None
        );
    }

    #[test]
    fn a_long_turn_notifies_when_it_finishes_a_short_one_does_not() {
        let mut p = Policy::new(NotifyConfig::default());
        let now = Instant::now();
        changed(&mut p, &session("docs", StateKind::Thinking, 1_000), now);
        changed(&mut p, &session("docs", StateKind::Tool, 2_000), now);
        let mut done = session("docs", StateKind::Idle, 1_000 + 252_000);
        done.usage.cost_usd = Some(0.312);
        let Some(Op::Show(note)) = changed(&mut p, &done, now) else {
            panic!("no note");
        };
        assert_eq!(note.text(), "docs finished after 4m12s, $0.31");
        assert_eq!(
            changed(&mut p, &session("docs", StateKind::Thinking, 300_000), now),
            Some(Op::Withdraw("docs".into())),
            "the next prompt makes the old note stale"
        );
        assert_eq!(
            changed(&mut p, &session("docs", StateKind::Idle, 310_000), now),
            None,
            "a 10 s turn is not news"
        );
    }

    #[test]
    fn only_unexpected_exits_notify() {
        let mut p = Policy::new(NotifyConfig::default());
        let now = Instant::now();
        let mut stopped = session("a", StateKind::Exited, 1);
        stopped.exit_code = None;
        stopped.state.detail = Some("stopped by canopy: signal 15".into());
        assert_eq!(changed(&mut p, &stopped, now), None);
        let mut crashed = session("b", StateKind::Exited, 1);
        crashed.exit_code = Some(3);
        assert!(matches!(changed(&mut p, &crashed, now), Some(Op::Show(_))));
        let mut fine = session("c", StateKind::Exited, 1);
        fine.exit_code = Some(0);
        assert_eq!(changed(&mut p, &fine, now), None);
    }

    #[test]
    fn the_flood_guard_holds_each_session_and_all_sessions() {
        let mut p = Policy::new(NotifyConfig {
            per_session_per_minute: 3,
            per_minute: 5,
            ..NotifyConfig::default()
        });
        let now = Instant::now();
        let mut shown = 0;
        for i in 0..50 {
            let s = if i % 2 == 0 {
                asking("a", i)
            } else {
                session("a", StateKind::Tool, i)
            };
            if let Some(Op::Show(_)) = changed(&mut p, &s, now) {
                shown += 1;
            }
        }
        assert_eq!(shown, 3);
        let others = (0..10)
            .filter(|i| {
                matches!(
                    changed(&mut p, &asking(&format!("s{i}"), 1), now),
                    Some(Op::Show(_))
                )
            })
            .count();
        assert_eq!(others, 2, "five a minute over all sessions");
        // A minute later the windows are open again.
        let later = now + MINUTE;
        assert!(matches!(
            changed(&mut p, &asking("a", 99), later),
            Some(Op::Show(_))
        ));
    }

    #[test]
    fn typing_in_an_attached_session_keeps_it_quiet() {
        let mut p = Policy::new(NotifyConfig::default());
        let now = Instant::now();
        let typed = Some(now - Duration::from_secs(2));
        assert_eq!(
            p.on_event(EventKind::SessionChanged, &asking("a", 1), now, typed),
            None
        );
        let long_ago = Some(now - Duration::from_secs(60));
        assert!(matches!(
            p.on_event(EventKind::SessionChanged, &asking("a", 2), now, long_ago),
            Some(Op::Show(_))
        ));
    }

    #[test]
    fn reasons_that_are_off_stay_quiet_and_removal_withdraws() {
        let mut p = Policy::new(NotifyConfig {
            on: vec![Reason::Error],
            ..NotifyConfig::default()
        });
        let now = Instant::now();
        assert_eq!(changed(&mut p, &asking("a", 1), now), None);
        let err = session("a", StateKind::Error, 2);
        assert!(matches!(changed(&mut p, &err, now), Some(Op::Show(_))));
        assert_eq!(
            p.on_event(EventKind::SessionRemoved, &err, now, None),
            Some(Op::Withdraw("a".into()))
        );
    }
}
