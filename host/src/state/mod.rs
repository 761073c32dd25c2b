//! The state engine: signals in (hook events, screen cues), one [`State`] out, with
//! the evidence that produced it.
//!
//! Rules:
//! - Hook events are the authority: each one that implies a state sets it at once.
//! - Screen cues are a fallback with hysteresis: a new cue must hold for
//!   [`Timing::hold`] before it counts, and never overrides a hook event younger than
//!   [`Timing::fresh`]. Each cue appearance counts at most once, so text that stays on
//!   screen cannot fight later hook events.
//! - While hooks work, only cues hooks cannot see count: a permission dialog, a screen
//!   that waits for the user before any work, and the busy indicator going away while
//!   the agent works (an interrupt fires no hook): at rest → idle, with a new error
//!   notice → error. With no hooks (none configured, or none arrived), every cue counts:
//!   busy → thinking, at rest → idle.
//! - A state holds only while its evidence holds. `waiting_permission` ends the moment
//!   its request is answered anywhere: from Canopy ([`Engine::answered`]: approve →
//!   `tool`, deny → what the agent does next), or in the agent's terminal (the dialog
//!   that was on screen leaves it: busy → `tool`, at rest or interrupted → `idle`).
//!   That cue is about the request in hand, so it does not wait for a hook to grow
//!   stale; it still holds for [`Timing::hold`], so a redraw cannot fake it.
//! - An agent that should send hooks but sent none within [`Timing::grace`] has
//!   degraded integration health, shown apart from its state.
//!
//! Time is passed in, and the engine says when it next needs a [`Engine::tick`], so the
//! session arms one timer instead of polling.

mod background;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use canopy_protocol::params::Signal;
use canopy_protocol::{Health, State, StateKind, StateSource};

use crate::agents::{Cue, Effect, HookEvent, Reading};
use background::Background;
pub use background::Work;

/// Signals kept for `canopy explain`.
const SIGNALS_KEPT: usize = 20;

/// The engine's time constants.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a screen cue must hold before it counts.
    pub hold: Duration,
    /// How long a hook event outranks any screen cue.
    pub fresh: Duration,
    /// How long to wait for a first hook before calling integration degraded.
    pub grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            // Screen-evidenced changes reach subscribers within about this much; the
            // classifier already sees whole bursts, so a short hold is enough to ride
            // out a redraw.
            hold: Duration::from_millis(150),
            fresh: Duration::from_millis(1500),
            grace: Duration::from_secs(30),
        }
    }
}

/// A screen cue waiting out its hold time.
#[derive(Debug, Clone)]
struct Candidate {
    cue: Cue,
    /// The line behind it (an error's text, an input screen's question).
    line: Option<String>,
    since: Instant,
    /// The permission dialog this cue replaced was answered in the terminal.
    dialog_left: bool,
    /// A notice appeared that was not on screen when the current work began.
    news: bool,
    /// The agent's own screen is up (`Reading::ready`).
    ready: bool,
}

#[derive(Debug)]
pub struct Engine {
    state: State,
    timing: Timing,
    started: Instant,
    hooks_expected: bool,
    /// Whether any hook (or event) has arrived: integration health.
    hooks_arrived: bool,
    /// When evidence that outranks the screen last set or confirmed the state (a hook
    /// that implies a state, an answer from Canopy). Hooks that imply nothing (Gemini's
    /// BeforeModel, OpenCode's heartbeats) do not count: they arrive all through a turn
    /// and would keep every cue, an Esc among them, waiting.
    last_hook: Option<Instant>,
    /// The cue on screen now, if it has not counted yet.
    candidate: Option<Candidate>,
    /// The cue last seen (counted or not), to notice when it changes.
    seen: Option<Cue>,
    /// Whether the screen last seen was the agent's own (`Reading::ready`).
    seen_ready: bool,
    /// When the screen began or stopped saying that work runs in the background, until
    /// that has held long enough to move the state. Hooks do not cancel it: none
    /// reports that work.
    background_change: Option<Instant>,
    /// Notices (errors, interruptions) on screen now, and how many of them are old:
    /// on screen when the current work began, or already acted on.
    notices: usize,
    old_notices: usize,
    /// Whether the wait for a first hook has run out (noted once).
    grace_over: bool,
    /// The open permission request's dialog has been on screen, so its leaving the
    /// screen means the request was answered there (an agent may ask through a hook
    /// before it draws the dialog: until then, the screen proves nothing).
    dialog_seen: bool,
    signals: VecDeque<Signal>,
    /// Whether the agent's busy indicator shows all the while it works
    /// (`Cues::busy_while_working`).
    busy_while_working: bool,
    /// Work the agent left running when its turn ended, until it is seen to end.
    background: Background,
    /// Whether this screen has shown the busy indicator since Canopy began to watch
    /// it. A screen taken back from a keeper holds only what the agent drew since (a
    /// TUI that repaints only what changed leaves the rest blank): until the indicator
    /// shows there, its absence proves nothing.
    busy_drawn: bool,
}

impl Engine {
    pub fn new(state: State, hooks_expected: bool, timing: Timing, now: Instant) -> Self {
        Self {
            state,
            timing,
            started: now,
            hooks_expected,
            hooks_arrived: false,
            last_hook: None,
            candidate: None,
            seen: None,
            seen_ready: false,
            background_change: None,
            grace_over: false,
            notices: 0,
            old_notices: 0,
            dialog_seen: false,
            signals: VecDeque::new(),
            busy_while_working: true,
            busy_drawn: true,
            background: Background::default(),
        }
    }

    /// For agents whose busy indicator may go missing while they work: only an
    /// interrupted notice, not its absence, then says the work stopped.
    pub fn with_unsteady_busy(mut self) -> Self {
        self.busy_while_working = false;
        self
    }

    /// For an agent taken back from its keeper by a new host: its hooks worked before
    /// (they were what set the recorded state); the new screen is blank until the agent
    /// has drawn itself again by `redrawn`, so screen cues wait as after a hook, and a
    /// missing busy indicator means nothing until one has been drawn.
    pub fn taken_back(mut self, redrawn: Instant) -> Self {
        self.hooks_arrived = self.hooks_expected;
        self.last_hook = Some(redrawn);
        self.busy_drawn = false;
        self
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Whether the agent waits for work of its own in the background.
    fn in_background(&self) -> bool {
        self.state.kind == StateKind::Tool && self.state.tool.as_deref() == Some(BACKGROUND)
    }

    /// The current cue on screen (as last reported).
    pub fn screen(&self) -> Option<Cue> {
        self.seen
    }

    /// Integration health and why.
    pub fn health(&self, now: Instant) -> (Health, String) {
        match (self.hooks_expected, self.hooks_arrived) {
            (false, _) => (
                Health::Ok,
                "no hooks for this agent; state comes from its screen".into(),
            ),
            (true, true) => (Health::Ok, "hooks are arriving".into()),
            (true, false) if now.duration_since(self.started) < self.timing.grace => {
                (Health::Ok, "waiting for the agent's first hook".into())
            }
            (true, false) => (
                Health::Degraded,
                format!(
                    "no hook arrived within {}s; state comes from the screen",
                    self.timing.grace.as_secs()
                ),
            ),
        }
    }

    /// The last signals, oldest first.
    pub fn signals(&self) -> Vec<Signal> {
        self.signals.iter().cloned().collect()
    }

    fn note(
        &mut self,
        wall: u64,
        source: StateSource,
        event: &str,
        detail: Option<String>,
        outcome: String,
    ) {
        if self.signals.len() == SIGNALS_KEPT {
            self.signals.pop_front();
        }
        self.signals.push_back(Signal {
            at: wall,
            source,
            event: event.to_owned(),
            detail,
            outcome,
        });
    }

    /// Set a state directly (exit, host actions), with its evidence.
    pub fn set(&mut self, state: State, event: &str) {
        let outcome = format!("→ {}", state.kind);
        let (wall, source, detail) = (state.since, state.source, state.detail.clone());
        self.enter(state);
        self.note(wall, source, event, detail, outcome);
    }

    /// The tool whose permission is asked for, running.
    fn tool_state(&self, source: StateSource, wall: u64) -> State {
        State {
            kind: StateKind::Tool,
            tool: self.state.tool.clone(),
            detail: self.state.detail.clone(),
            since: wall,
            source,
        }
    }

    /// Move to `state`, keeping what is known about the permission dialog and the
    /// notices on screen in step.
    fn enter(&mut self, state: State) -> State {
        // A turn that ends while processes it left in the background still run is not
        // idle (Gemini does not wake for them; their exit is watched instead).
        let state = match self.background_state(state.since, state.source) {
            Some(background) if state.kind == StateKind::Idle => {
                self.note(
                    state.since,
                    state.source,
                    "turn end",
                    background.detail.clone(),
                    format!("→ {}", label(&background)),
                );
                background
            }
            _ => state,
        };
        if state.kind.is_active() && !self.state.kind.is_active() {
            // Work begins: whatever notices are on screen now belong to the past.
            self.old_notices = self.notices;
        }
        if state.kind == StateKind::WaitingPermission {
            if self.state.kind != StateKind::WaitingPermission {
                self.dialog_seen = self.seen == Some(Cue::Permission);
            }
        } else {
            self.dialog_seen = false;
        }
        self.state = state;
        self.state.clone()
    }

    /// The open permission request was answered from Canopy (`how`: through a hook,
    /// the agent's server, keys typed into its dialog). An approval lets the tool run
    /// at once; after a denial the agent goes on to `on_deny` (a model told "no" goes
    /// on thinking; an agent whose dialog was refused ends its turn). Returns the new
    /// state.
    pub fn answered(
        &mut self,
        approve: bool,
        how: &str,
        on_deny: StateKind,
        now: Instant,
        wall: u64,
    ) -> Option<State> {
        if self.state.kind != StateKind::WaitingPermission {
            return None;
        }
        let next = if approve {
            self.tool_state(StateSource::Host, wall)
        } else {
            State::new(on_deny, StateSource::Host, wall)
        };
        let event = if approve {
            "approved from canopy"
        } else {
            "denied from canopy"
        };
        self.note(
            wall,
            StateSource::Host,
            event,
            Some(how.to_owned()),
            format!("→ {}", label(&next)),
        );
        // The screen that follows shows the answer taking effect; it is no new evidence.
        self.candidate = None;
        // Like a hook, the answer outranks screen cues for a while (when hooks work at
        // all: without them the screen is the only evidence there is).
        if self.hooks_arrived {
            self.last_hook = Some(now);
        }
        Some(self.enter(next))
    }

    /// A hook event. Returns the new state when it changed.
    pub fn hook(&mut self, ev: &HookEvent, now: Instant, wall: u64) -> Option<State> {
        self.hooks_arrived = true;
        if matches!(
            ev.effect,
            Effect::State { .. } | Effect::Answered { .. } | Effect::Background { .. }
        ) {
            self.last_hook = Some(now);
        }
        match &ev.effect {
            Effect::Noise => None,
            Effect::Answered { approve } if self.state.kind == StateKind::WaitingPermission => {
                let next = if *approve {
                    self.tool_state(StateSource::Hook, wall)
                } else {
                    State::new(StateKind::Idle, StateSource::Hook, wall)
                };
                let what = if *approve { "approved" } else { "refused" };
                self.moved_by_hook(
                    &ev.name,
                    Some(format!("the request was {what}")),
                    next,
                    wall,
                )
            }
            Effect::Answered { .. } => {
                self.unchanged_by_hook(&ev.name, "the request was answered already", wall)
            }
            // Some agents mark the tool running while its permission is asked (OpenCode's
            // part "running"): only an answer ends the wait.
            Effect::State {
                kind: StateKind::Tool,
                ..
            } if self.state.kind == StateKind::WaitingPermission => {
                self.unchanged_by_hook(&ev.name, "its permission is not answered yet", wall)
            }
            Effect::Background { detail } => {
                let next = State {
                    kind: StateKind::Tool,
                    tool: Some(BACKGROUND.to_owned()),
                    detail: Some(detail.clone()),
                    since: wall,
                    source: StateSource::Hook,
                };
                if same(&self.state, &next) {
                    return self.unchanged_by_hook(&ev.name, "already there", wall);
                }
                self.moved_by_hook(&ev.name, Some(detail.clone()), next, wall)
            }
            Effect::Busy if works(self.state.kind) => {
                self.unchanged_by_hook(&ev.name, "the state says what the work is", wall)
            }
            Effect::Busy => {
                self.last_hook = Some(now);
                let next = State::new(StateKind::Thinking, StateSource::Hook, wall);
                self.moved_by_hook(&ev.name, Some("the agent works".into()), next, wall)
            }
            Effect::Backgrounded { tool, pid } => {
                self.background.start(Work::Process(*pid));
                self.tool_ended(&ev.name, true, tool.as_ref(), now, wall)
            }
            Effect::SubAgent { id, running: true } => {
                self.background.start(Work::SubAgent(id.clone()));
                self.unchanged_by_hook(&ev.name, "a sub-agent works beside the turn", wall)
            }
            Effect::SubAgent { id, running: false } => {
                let work = Work::SubAgent(id.clone());
                let ended = self.work_ended(&work, StateSource::Hook, &ev.name, wall);
                if ended.is_none() {
                    return self.unchanged_by_hook(&ev.name, "the turn still runs", wall);
                }
                ended
            }
            Effect::ToolEnded { completed, tool } => {
                self.tool_ended(&ev.name, *completed, tool.as_ref(), now, wall)
            }
            Effect::Ignore(why) => self.unchanged_by_hook(&ev.name, why, wall),
            Effect::State {
                kind: StateKind::Idle,
                ..
            } if self.state.kind == StateKind::Error => {
                // The turn that failed ends as well (OpenCode follows session.error with
                // idle): the error stands until the agent works again.
                self.unchanged_by_hook(
                    &ev.name,
                    "the error stands until the agent works again",
                    wall,
                )
            }
            Effect::State { kind, tool, detail } => {
                // A permission request or tool run that names no tool is about the one
                // in hand.
                let tool = match (kind, tool, self.state.kind) {
                    (
                        StateKind::WaitingPermission | StateKind::Tool,
                        None,
                        StateKind::Tool | StateKind::WaitingPermission,
                    ) => self.state.tool.clone(),
                    _ => tool.clone(),
                };
                let next = State {
                    kind: *kind,
                    tool,
                    detail: detail.clone(),
                    since: wall,
                    source: StateSource::Hook,
                };
                if same(&self.state, &next) {
                    self.note(
                        wall,
                        StateSource::Hook,
                        &ev.name,
                        detail.clone(),
                        "no change: already there".into(),
                    );
                    return None;
                }
                self.moved_by_hook(&ev.name, detail.clone(), next, wall)
            }
        }
    }

    /// A tool call ended: the model goes on with its result only while its turn runs.
    fn tool_ended(
        &mut self,
        event: &str,
        completed: bool,
        tool: Option<&String>,
        now: Instant,
        wall: u64,
    ) -> Option<State> {
        let goes_on = match self.state.kind {
            StateKind::Tool => true,
            // The asked tool ran to its end, so it was approved; a refused one ends in
            // error, and another tool's end (calls run side by side) answers nothing.
            StateKind::WaitingPermission => {
                completed
                    && match (tool, &self.state.tool) {
                        (Some(ended), Some(asked)) => ended == asked,
                        _ => true,
                    }
            }
            _ => false,
        };
        if !goes_on {
            let why = match self.state.kind {
                StateKind::Thinking => "already there",
                StateKind::WaitingPermission => "its permission is not answered yet",
                _ => "the turn ended before the tool did (refused or interrupted)",
            };
            return self.unchanged_by_hook(event, why, wall);
        }
        self.last_hook = Some(now);
        let next = State::new(StateKind::Thinking, StateSource::Hook, wall);
        self.moved_by_hook(
            event,
            Some("the tool ended; the model goes on".into()),
            next,
            wall,
        )
    }

    /// Work the agent left in the background has ended (`event` says how Canopy knows:
    /// a process exit, a sub-agent's stop hook). Returns the new state when the session
    /// was waiting for it.
    pub fn work_ended(
        &mut self,
        work: &Work,
        source: StateSource,
        event: &str,
        wall: u64,
    ) -> Option<State> {
        if !self.background.end(work) || !self.in_background() {
            return None;
        }
        Some(self.background_moved(source, event, format!("{work} ended"), wall))
    }

    /// After a change in what runs in the background: `tool(background)` with what
    /// still runs, else `idle`.
    fn background_moved(
        &mut self,
        source: StateSource,
        event: &str,
        why: String,
        wall: u64,
    ) -> State {
        let next = self
            .background_state(wall, source)
            .unwrap_or_else(|| State::new(StateKind::Idle, source, wall));
        self.note(
            wall,
            source,
            event,
            Some(why),
            format!("→ {}", label(&next)),
        );
        self.enter(next)
    }

    /// `tool(background)` for the work the agent left running, if any.
    fn background_state(&self, wall: u64, source: StateSource) -> Option<State> {
        Some(State {
            kind: StateKind::Tool,
            tool: Some(BACKGROUND.to_owned()),
            detail: Some(self.background.describe()?),
            since: wall,
            source,
        })
    }

    /// A hook event leaves the state as it is, for the reason given.
    fn unchanged_by_hook(&mut self, event: &str, why: &str, wall: u64) -> Option<State> {
        self.note(
            wall,
            StateSource::Hook,
            event,
            None,
            format!("no change: {why}"),
        );
        None
    }

    /// A hook event moves the state, for the reason given.
    fn moved_by_hook(
        &mut self,
        event: &str,
        why: Option<String>,
        next: State,
        wall: u64,
    ) -> Option<State> {
        self.note(
            wall,
            StateSource::Hook,
            event,
            why,
            format!("→ {}", label(&next)),
        );
        // A hook supersedes whatever cue was waiting.
        self.candidate = None;
        Some(self.enter(next))
    }

    /// The screen's cue changed (or was first read). `line` is the text behind it.
    pub fn screen_changed(&mut self, reading: Reading, now: Instant, wall: u64) -> Option<State> {
        let Reading {
            cue,
            line,
            notices,
            background,
            ready,
        } = reading;
        // Notices that scrolled away leave fewer to tell a new one from.
        self.old_notices = self.old_notices.min(notices);
        let news = notices > self.old_notices;
        let notices_changed = notices != self.notices;
        self.notices = notices;
        // What the screen says runs counts at once for a turn's end (its hook may be on
        // its way); a state change of its own waits out the hold.
        if self.background.set_on_screen(background) {
            self.background_change = Some(now);
        }
        if self.seen == Some(cue) && self.seen_ready == ready && !(news && notices_changed) {
            return None;
        }
        self.seen = Some(cue);
        self.seen_ready = ready;
        self.busy_drawn |= cue == Cue::Busy;
        let waiting = self.state.kind == StateKind::WaitingPermission;
        if waiting && cue == Cue::Permission {
            self.dialog_seen = true;
        }
        self.candidate = Some(Candidate {
            cue,
            line,
            since: now,
            dialog_left: waiting && self.dialog_seen && cue != Cue::Permission,
            news,
            ready,
        });
        self.tick(now, wall)
    }

    /// When [`Engine::tick`] should next run, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        let cue = self.candidate.as_ref().map(|c| {
            let held = c.since + self.timing.hold;
            match self.last_hook {
                Some(h) if !c.dialog_left => held.max(h + self.timing.fresh),
                _ => held,
            }
        });
        let grace = (self.hooks_expected && !self.hooks_arrived && !self.grace_over)
            .then_some(self.started + self.timing.grace);
        let background = self.background_change.map(|since| since + self.timing.hold);
        [cue, grace, background].into_iter().flatten().min()
    }

    /// Apply a cue that has held long enough. Returns the new state when it changed.
    pub fn tick(&mut self, now: Instant, wall: u64) -> Option<State> {
        if self.hooks_expected
            && !self.hooks_arrived
            && !self.grace_over
            && now >= self.started + self.timing.grace
        {
            self.grace_over = true;
            let why = self.health(now).1;
            self.note(
                wall,
                StateSource::Host,
                "no hook yet",
                None,
                format!("health degraded: {why}"),
            );
        }
        // No hook says when background work ends (or that it runs): the screen counts
        // however fresh the last hook is.
        if let Some(since) = self.background_change
            && now >= since + self.timing.hold
        {
            self.background_change = None;
            if let Some(next) = self.background_on_screen(wall) {
                return Some(next);
            }
        }
        let c = self.candidate.clone()?;
        if now < c.since + self.timing.hold {
            return None;
        }
        if let Some(h) = self.last_hook
            && now < h + self.timing.fresh
            && !c.dialog_left
        {
            return None;
        }
        self.candidate = None;
        if !self.state.kind.is_live() {
            return None;
        }
        if c.dialog_left && self.state.kind == StateKind::WaitingPermission {
            return self.dialog_answered_on_screen(&c, wall);
        }
        let hooks_working = self.hooks_arrived;
        let working = self.state.kind.is_active();
        // Notices stay in the transcript through later turns: only one that appeared
        // since the work began is news.
        let new_error = c.cue == Cue::Error && c.news;
        if matches!(c.cue, Cue::Error | Cue::Interrupted) {
            self.old_notices = self.notices;
        }
        let next_kind = match c.cue {
            // A starting agent rests only once its own screen is up: text printed before
            // it is no idle screen, and a prompt typed then is lost.
            Cue::Quiet if self.state.kind == StateKind::Starting && !c.ready => None,
            Cue::Permission => Some(StateKind::WaitingPermission),
            // Hooks cannot see a screen that waits for the user before any work.
            Cue::Input => Some(StateKind::WaitingInput),
            // Some agents report an API error nowhere but on screen.
            Cue::Error if !hooks_working || (working && new_error) => Some(StateKind::Error),
            // Every agent shows a busy indicator for as long as it works: one that went
            // away means the work stopped, though no hook says so (Esc fires none, and
            // Claude takes an interrupted prompt back without a notice). So has an agent
            // at rest that was starting, or compacting (Gemini fires nothing after it).
            Cue::Error | Cue::Interrupted | Cue::Quiet
                if hooks_working
                    && ((working
                        && !self.in_background()
                        && (self.busy_while_working && self.busy_drawn || c.news))
                        || matches!(
                            self.state.kind,
                            StateKind::Starting | StateKind::Compacting
                        )) =>
            {
                Some(StateKind::Idle)
            }
            Cue::Interrupted | Cue::Quiet if !hooks_working => Some(StateKind::Idle),
            Cue::Busy if !hooks_working => Some(StateKind::Thinking),
            Cue::Error | Cue::Interrupted | Cue::Busy | Cue::Quiet => None,
        };
        // Busy states agree with a busy screen; keep the more specific one.
        let agrees = matches!(
            (c.cue, self.state.kind),
            (
                Cue::Busy,
                StateKind::Thinking | StateKind::Tool | StateKind::Compacting
            ) | (Cue::Permission, StateKind::WaitingPermission)
                | (Cue::Error, StateKind::Error)
                | (Cue::Input, StateKind::WaitingInput)
                | (Cue::Quiet | Cue::Interrupted, StateKind::Idle)
        );
        match next_kind {
            Some(kind) if !agrees => {
                let next = State::new(kind, StateSource::Screen, wall)
                    .with_detail(c.line.clone().unwrap_or_else(|| c.cue.as_str().to_owned()));
                self.note(
                    wall,
                    StateSource::Screen,
                    c.cue.as_str(),
                    None,
                    format!("→ {}", label(&next)),
                );
                Some(self.enter(next))
            }
            _ => {
                let why = if agrees {
                    "agrees with the current state"
                } else if matches!(c.cue, Cue::Error | Cue::Interrupted | Cue::Quiet) {
                    "the agent was not working"
                } else {
                    "hooks are the authority for this"
                };
                self.note(
                    wall,
                    StateSource::Screen,
                    c.cue.as_str(),
                    None,
                    format!("no change: {why}"),
                );
                None
            }
        }
    }
}

impl Engine {
    /// The screen's line saying that work runs in the background (Codex's "1 background
    /// terminal running") came or went, and held: the turn's end is `tool(background)`
    /// while it shows, and `idle` once it has gone (if nothing else runs).
    fn background_on_screen(&mut self, wall: u64) -> Option<State> {
        if !self.hooks_arrived || !self.state.kind.is_live() {
            return None;
        }
        if self.background.on_screen() {
            (self.state.kind == StateKind::Idle).then(|| {
                self.background_moved(
                    StateSource::Screen,
                    "background work on screen",
                    "the screen says it runs".into(),
                    wall,
                )
            })
        } else {
            self.in_background().then(|| {
                self.background_moved(
                    StateSource::Screen,
                    "background work left the screen",
                    "the screen no longer says it runs".into(),
                    wall,
                )
            })
        }
    }

    /// The permission dialog left the screen without an answer from Canopy: the user
    /// answered it in the terminal. A busy screen means the tool runs; a screen at rest
    /// (or one that says it was interrupted) means the user refused and the agent
    /// stopped, which fires no hook in Claude, Codex or Gemini.
    fn dialog_answered_on_screen(&mut self, c: &Candidate, wall: u64) -> Option<State> {
        let next = match c.cue {
            Cue::Busy => self.tool_state(StateSource::Screen, wall),
            Cue::Error => State::new(StateKind::Error, StateSource::Screen, wall)
                .with_detail(c.line.clone().unwrap_or_else(|| c.cue.as_str().to_owned())),
            Cue::Input => State::new(StateKind::WaitingInput, StateSource::Screen, wall)
                .with_detail(c.line.clone().unwrap_or_else(|| c.cue.as_str().to_owned())),
            Cue::Quiet | Cue::Interrupted | Cue::Permission => {
                State::new(StateKind::Idle, StateSource::Screen, wall)
            }
        };
        self.note(
            wall,
            StateSource::Screen,
            "permission dialog left the screen",
            Some(format!("answered in the terminal; now {}", c.cue.as_str())),
            format!("→ {}", label(&next)),
        );
        Some(self.enter(next))
    }
}

/// Same state, ignoring when and from where.
fn same(a: &State, b: &State) -> bool {
    a.kind == b.kind && a.tool == b.tool && a.detail == b.detail
}

/// The tool of the state that says the agent's turn is over but work it started goes
/// on in the background (`tool(background)`): no busy indicator shows for it.
pub const BACKGROUND: &str = "background";

/// Whether the state says the agent works, and at what.
fn works(kind: StateKind) -> bool {
    matches!(
        kind,
        StateKind::Thinking
            | StateKind::Tool
            | StateKind::WaitingPermission
            | StateKind::Compacting
    )
}

fn label(s: &State) -> String {
    match &s.tool {
        Some(t) => format!("{}({t})", s.kind),
        None => s.kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(hooks: bool) -> (Engine, Instant) {
        let t0 = Instant::now();
        let s = State::new(StateKind::Starting, StateSource::Host, 0);
        (Engine::new(s, hooks, Timing::default(), t0), t0)
    }

    fn hook(kind: StateKind, name: &str) -> HookEvent {
        HookEvent {
            name: name.into(),
            agent_session_id: None,
            request_id: None,
            effect: Effect::state(kind),
        }
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// A screen showing `cue`, with one notice when it is one.
    fn read(cue: Cue) -> Reading {
        Reading {
            cue,
            line: None,
            notices: usize::from(matches!(cue, Cue::Error | Cue::Interrupted)),
            background: None,
            ready: true,
        }
    }

    /// A screen showing `cue` and Codex's line saying a background terminal runs.
    fn read_with_terminal(cue: Cue) -> Reading {
        Reading {
            background: Some("1 background terminal running".into()),
            ..read(cue)
        }
    }

    fn ended(completed: bool, tool: &str) -> HookEvent {
        HookEvent {
            name: "PostToolUse".into(),
            agent_session_id: None,
            request_id: None,
            effect: Effect::ToolEnded {
                completed,
                tool: Some(tool.into()),
            },
        }
    }

    /// A tool's end means the model goes on only while its turn runs: OpenCode reports
    /// a refused or aborted call as failed after the turn ended (found on the real
    /// OpenCode: `idle → thinking → idle` after every refusal).
    #[test]
    fn a_tool_ends_into_thinking_only_while_its_turn_runs() {
        let (mut e, t0) = start(true);
        e.hook(&hook(StateKind::Tool, "PreToolUse"), t0, 0);
        assert_eq!(
            e.hook(&ended(true, "Bash"), t0, 0).map(|s| s.kind),
            Some(StateKind::Thinking)
        );
        e.hook(&hook(StateKind::Idle, "Stop"), t0, 0);
        assert_eq!(e.hook(&ended(false, "Bash"), t0, 0), None);
        assert_eq!(e.state().kind, StateKind::Idle);

        // Asking for Bash: another call's end answers nothing, a refused call's end
        // neither; the asked tool run to its end was approved.
        asked(&mut e, t0);
        assert_eq!(e.hook(&ended(true, "Read"), t0, 0), None);
        assert_eq!(e.hook(&ended(false, "Bash"), t0, 0), None);
        assert_eq!(e.state().kind, StateKind::WaitingPermission);
        assert_eq!(
            e.hook(&ended(true, "Bash"), t0, 0).map(|s| s.kind),
            Some(StateKind::Thinking)
        );
    }

    /// A new host's screen is blank until the agent it took back redraws: that blank is
    /// no evidence the work stopped; the redrawn screen is.
    #[test]
    fn a_taken_back_agent_keeps_its_state_while_it_redraws() {
        let t0 = Instant::now();
        let tool = State::new(StateKind::Tool, StateSource::Hook, 0);
        let mut e = Engine::new(tool, true, Timing::default(), t0).taken_back(t0 + MS(150));
        e.screen_changed(read(Cue::Quiet), t0 + MS(10), 0);
        assert_eq!(e.tick(t0 + MS(400), 0), None);
        // Redrawn in part (OpenCode repaints only what changed): still no indicator.
        assert_eq!(e.tick(t0 + MS(5000), 0), None);
        assert_eq!(e.state().kind, StateKind::Tool);
        // Once the indicator has shown, its going away means the work stopped again.
        e.screen_changed(read(Cue::Busy), t0 + MS(5100), 0);
        e.screen_changed(read(Cue::Quiet), t0 + MS(6000), 0);
        assert_eq!(
            e.tick(t0 + MS(6200), 0).map(|s| s.kind),
            Some(StateKind::Idle)
        );
        assert_eq!(e.health(t0 + MS(60_000)).0, Health::Ok);
    }

    /// Work left running in the background shows no busy indicator: the screen at rest
    /// does not end it; the agent's wake-up turn does.
    #[test]
    fn background_work_outlasts_a_quiet_screen() {
        let (mut e, t0) = start(true);
        e.hook(&hook(StateKind::Thinking, "UserPromptSubmit"), t0, 0);
        let stop = HookEvent {
            effect: Effect::Background {
                detail: "1 in the background: shell sleep 6".into(),
            },
            ..hook(StateKind::Idle, "Stop")
        };
        let s = e.hook(&stop, t0, 0).expect("moved");
        assert_eq!(
            (s.kind, s.tool.as_deref()),
            (StateKind::Tool, Some(BACKGROUND))
        );
        e.screen_changed(read(Cue::Quiet), t0 + MS(100), 0);
        assert_eq!(e.tick(t0 + MS(5000), 0), None);
        e.hook(
            &hook(StateKind::Thinking, "UserPromptSubmit"),
            t0 + MS(6000),
            0,
        );
        assert_eq!(
            e.hook(&hook(StateKind::Idle, "Stop"), t0 + MS(6100), 0)
                .map(|s| s.kind),
            Some(StateKind::Idle)
        );
    }

    /// A process the agent left in the background (Gemini's `is_background`): the turn's
    /// end is `tool(background)` until that process exits; no wake-up turn comes.
    #[test]
    fn a_background_process_holds_the_turns_end_until_it_exits() {
        let (mut e, t0) = start(true);
        e.hook(&hook(StateKind::Tool, "BeforeTool"), t0, 0);
        let moved = HookEvent {
            effect: Effect::Backgrounded {
                tool: None,
                pid: 4242,
            },
            ..hook(StateKind::Thinking, "AfterTool")
        };
        assert_eq!(
            e.hook(&moved, t0, 0).map(|s| s.kind),
            Some(StateKind::Thinking)
        );
        let s = e
            .hook(&hook(StateKind::Idle, "AfterAgent"), t0, 0)
            .expect("moved");
        assert_eq!(
            (s.kind, s.tool.as_deref()),
            (StateKind::Tool, Some(BACKGROUND))
        );
        assert!(s.detail.unwrap_or_default().contains("pid 4242"));
        e.screen_changed(read(Cue::Quiet), t0 + MS(100), 0);
        assert_eq!(e.tick(t0 + MS(5000), 0), None);
        let exit = |e: &mut Engine, pid| {
            e.work_ended(&Work::Process(pid), StateSource::Process, "exit", 0)
                .map(|s| s.kind)
        };
        assert_eq!(exit(&mut e, 1), None);
        assert_eq!(exit(&mut e, 4242), Some(StateKind::Idle));
    }

    /// Codex leaves a command that outlasts its yield time running in a "background
    /// terminal" after the turn: no hook reports it or its end, only the footer "1
    /// background terminal running" until it ends (found on the real Codex 0.169.0).
    #[test]
    fn a_background_terminal_on_screen_holds_the_turns_end_until_it_leaves() {
        let (mut e, t0) = start(true);
        e.hook(&hook(StateKind::Tool, "PreToolUse"), t0, 0);
        // The footer shows beside the busy line while the turn goes on.
        e.screen_changed(read_with_terminal(Cue::Busy), t0 + MS(500), 0);
        assert_eq!(e.tick(t0 + MS(700), 0), None);
        assert_eq!(e.state().kind, StateKind::Tool);
        let s = e
            .hook(&hook(StateKind::Idle, "Stop"), t0 + MS(800), 0)
            .expect("moved");
        assert_eq!(
            (s.kind, s.tool.as_deref(), s.detail.as_deref()),
            (
                StateKind::Tool,
                Some(BACKGROUND),
                Some("1 background terminal running")
            )
        );
        e.screen_changed(read_with_terminal(Cue::Quiet), t0 + MS(900), 0);
        assert_eq!(e.tick(t0 + MS(5000), 0), None);
        // The command ends: its line goes, however fresh the last hook.
        e.hook(&hook(StateKind::Idle, "Stop"), t0 + MS(6000), 0);
        e.screen_changed(read(Cue::Quiet), t0 + MS(6100), 0);
        assert_eq!(e.deadline(), Some(t0 + MS(6250)));
        let s = e.tick(t0 + MS(6250), 0).expect("moved");
        assert_eq!((s.kind, s.source), (StateKind::Idle, StateSource::Screen));
        // A line drawn only after the turn's end still counts.
        e.hook(
            &hook(StateKind::Thinking, "UserPromptSubmit"),
            t0 + MS(7000),
            0,
        );
        e.hook(&hook(StateKind::Idle, "Stop"), t0 + MS(7100), 0);
        e.screen_changed(read_with_terminal(Cue::Quiet), t0 + MS(7200), 0);
        assert_eq!(
            e.tick(t0 + MS(7350), 0).map(|s| s.tool),
            Some(Some(BACKGROUND.into()))
        );
    }

    /// Codex's launcher prints a warning before its TUI is up, and a prompt typed then
    /// is lost (found by the truth soak on the real Codex 0.169.0): that text is no idle
    /// screen; the composer is.
    #[test]
    fn a_starting_agent_rests_only_once_its_screen_is_up() {
        let (mut e, t0) = start(false);
        let warning = Reading {
            ready: false,
            ..read(Cue::Quiet)
        };
        e.screen_changed(warning, t0, 0);
        assert_eq!(e.tick(t0 + MS(500), 0), None);
        assert_eq!(e.state().kind, StateKind::Starting);
        e.screen_changed(read(Cue::Quiet), t0 + MS(600), 0);
        assert_eq!(
            e.tick(t0 + MS(800), 0).map(|s| s.kind),
            Some(StateKind::Idle)
        );
    }

    /// Codex's sub-agents (`features.multi_agent_v2`) run beside the turn: the parent's
    /// Stop comes while one works, and its SubagentStop wakes nobody (found on the real
    /// Codex 0.169.0).
    #[test]
    fn a_sub_agent_holds_the_turns_end_until_its_stop() {
        let (mut e, t0) = start(true);
        let sub = |running| HookEvent {
            effect: Effect::SubAgent {
                id: "a1".into(),
                running,
            },
            ..hook(
                StateKind::Idle,
                if running {
                    "SubagentStart"
                } else {
                    "SubagentStop"
                },
            )
        };
        e.hook(&hook(StateKind::Thinking, "UserPromptSubmit"), t0, 0);
        assert_eq!(e.hook(&sub(true), t0, 0), None);
        let s = e
            .hook(&hook(StateKind::Idle, "Stop"), t0, 0)
            .expect("moved");
        assert_eq!(
            (s.kind, s.detail.as_deref()),
            (StateKind::Tool, Some("1 in the background: sub-agent a1"))
        );
        let s = e.hook(&sub(false), t0 + MS(5000), 0).expect("moved");
        assert_eq!((s.kind, s.source), (StateKind::Idle, StateSource::Hook));
        // One that ends inside the turn changes nothing.
        e.hook(
            &hook(StateKind::Thinking, "UserPromptSubmit"),
            t0 + MS(6000),
            0,
        );
        e.hook(&sub(true), t0 + MS(6000), 0);
        assert_eq!(e.hook(&sub(false), t0 + MS(6500), 0), None);
        assert_eq!(
            e.hook(&hook(StateKind::Idle, "Stop"), t0 + MS(7000), 0)
                .map(|s| s.kind),
            Some(StateKind::Idle)
        );
    }

    /// Notices stay in the transcript: only a new one ends work (found with the real
    /// Codex: an old API error line read as new while it retried a 429).
    #[test]
    fn an_old_notice_is_not_news() {
        let (mut e, t0) = start(true);
        e.hook(&hook(StateKind::Thinking, "UserPromptSubmit"), t0, 0);
        e.screen_changed(read(Cue::Error), t0 + MS(2000), 0);
        assert_eq!(
            e.tick(t0 + MS(2200), 0).map(|s| s.kind),
            Some(StateKind::Error)
        );
        // The next turn: busy, then a moment with no busy indicator and the old line.
        e.hook(
            &hook(StateKind::Thinking, "UserPromptSubmit"),
            t0 + MS(3000),
            0,
        );
        // The old line stays on screen all along.
        e.screen_changed(
            Reading {
                notices: 1,
                ..read(Cue::Busy)
            },
            t0 + MS(3100),
            0,
        );
        // The busy indicator goes away with only the old line on screen: the work
        // stopped, with no new error.
        e.screen_changed(read(Cue::Error), t0 + MS(5000), 0);
        assert_eq!(
            e.tick(t0 + MS(5200), 0).map(|s| s.kind),
            Some(StateKind::Idle)
        );
        // The next turn fails: a second error line is news.
        e.hook(
            &hook(StateKind::Thinking, "UserPromptSubmit"),
            t0 + MS(5500),
            0,
        );
        e.screen_changed(
            Reading {
                notices: 1,
                ..read(Cue::Busy)
            },
            t0 + MS(5600),
            0,
        );
        e.screen_changed(
            Reading {
                notices: 2,
                ..read(Cue::Error)
            },
            t0 + MS(7100),
            0,
        );
        assert_eq!(
            e.tick(t0 + MS(7300), 0).map(|s| s.kind),
            Some(StateKind::Error)
        );
    }

    #[test]
    fn hooks_set_state_at_once() {
        let (mut e, t0) = start(true);
        assert_eq!(
            e.hook(&hook(StateKind::Thinking, "UserPromptSubmit"), t0, 1)
                .map(|s| s.kind),
            Some(StateKind::Thinking)
        );
        assert_eq!(
            e.hook(&hook(StateKind::Thinking, "PostToolUse"), t0, 2),
            None,
            "no change, no event"
        );
        assert_eq!(e.signals().len(), 2);
    }

    #[test]
    fn a_cue_must_hold_and_never_beats_a_fresh_hook() {
        let (mut e, t0) = start(true);
        e.hook(&hook(StateKind::Thinking, "UserPromptSubmit"), t0, 0);
        // The dialog appears 100 ms after the hook: it waits out hold and freshness.
        assert_eq!(
            e.screen_changed(read(Cue::Permission), t0 + MS(100), 0),
            None
        );
        assert_eq!(e.deadline(), Some(t0 + MS(1500)));
        assert_eq!(e.tick(t0 + MS(400), 0), None);
        let s = e
            .tick(t0 + MS(1500), 0)
            .expect("applies once fresh has passed");
        assert_eq!(
            (s.kind, s.source),
            (StateKind::WaitingPermission, StateSource::Screen)
        );
        assert_eq!(e.deadline(), None);
    }

    #[test]
    fn an_error_is_not_erased_by_the_turn_ending() {
        let (mut e, t0) = start(true);
        e.hook(&hook(StateKind::Error, "session.error"), t0, 0);
        assert_eq!(e.hook(&hook(StateKind::Idle, "session.idle"), t0, 0), None);
        assert_eq!(
            e.hook(&hook(StateKind::Thinking, "session.status"), t0, 0)
                .map(|s| s.kind),
            Some(StateKind::Thinking)
        );
    }

    #[test]
    fn a_flicker_shorter_than_hold_changes_nothing() {
        let (mut e, t0) = start(false);
        e.screen_changed(read(Cue::Busy), t0, 0);
        e.screen_changed(read(Cue::Quiet), t0 + MS(100), 0);
        e.screen_changed(read(Cue::Busy), t0 + MS(200), 0);
        assert_eq!(
            e.tick(t0 + MS(300), 0),
            None,
            "Busy since 200 ms has not held the hold time"
        );
        assert_eq!(
            e.tick(t0 + MS(500), 0).map(|s| s.kind),
            Some(StateKind::Thinking)
        );
    }

    #[test]
    fn with_hooks_working_a_busy_screen_changes_nothing() {
        let (mut e, t0) = start(true);
        e.hook(&hook(StateKind::Idle, "Stop"), t0, 0);
        e.screen_changed(read(Cue::Busy), t0 + MS(2000), 0);
        assert_eq!(e.tick(t0 + MS(2400), 0), None);
        assert_eq!(e.state().kind, StateKind::Idle);
    }

    /// Claude takes a prompt interrupted by Esc back into its input: no hook, no
    /// notice, only the busy indicator gone (found with the real 2.1.332).
    #[test]
    fn a_busy_indicator_that_goes_away_while_working_is_idle() {
        let (mut e, t0) = start(true);
        e.hook(&hook(StateKind::Thinking, "UserPromptSubmit"), t0, 0);
        e.screen_changed(read(Cue::Busy), t0 + MS(100), 0);
        e.screen_changed(read(Cue::Quiet), t0 + MS(3000), 0);
        let s = e.tick(t0 + MS(3200), 0).expect("stopped");
        assert_eq!((s.kind, s.source), (StateKind::Idle, StateSource::Screen));
    }

    #[test]
    fn an_interrupt_with_no_hook_returns_to_idle() {
        let (mut e, t0) = start(true);
        e.hook(&hook(StateKind::Tool, "PreToolUse"), t0, 0);
        e.screen_changed(read(Cue::Interrupted), t0 + MS(3000), 0);
        assert_eq!(
            e.tick(t0 + MS(3300), 0).map(|s| s.kind),
            Some(StateKind::Idle)
        );
    }

    #[test]
    fn a_cue_that_stays_on_screen_counts_once() {
        let (mut e, t0) = start(true);
        e.hook(&hook(StateKind::Idle, "Stop"), t0, 0);
        e.screen_changed(read(Cue::Permission), t0 + MS(2000), 0);
        e.tick(t0 + MS(2300), 0);
        assert_eq!(e.state().kind, StateKind::WaitingPermission);
        e.hook(&hook(StateKind::Thinking, "PostToolUse"), t0 + MS(2500), 0);
        // The same cue reported again is not a new appearance.
        assert_eq!(
            e.screen_changed(read(Cue::Permission), t0 + MS(5000), 0),
            None
        );
        assert_eq!(e.tick(t0 + MS(6000), 0), None);
        assert_eq!(e.state().kind, StateKind::Thinking);
    }

    fn asked(e: &mut Engine, t0: Instant) {
        e.hook(&hook(StateKind::Thinking, "UserPromptSubmit"), t0, 0);
        let ask = HookEvent {
            effect: Effect::tool(
                StateKind::WaitingPermission,
                Some("Bash".into()),
                Some("make".into()),
            ),
            ..hook(StateKind::WaitingPermission, "PermissionRequest")
        };
        e.hook(&ask, t0, 0);
    }

    #[test]
    fn an_answer_from_canopy_moves_on_at_once() {
        let (mut e, t0) = start(true);
        asked(&mut e, t0);
        let s = e
            .answered(true, "keys", StateKind::Idle, t0 + MS(10), 1)
            .expect("approved");
        assert_eq!(
            (s.kind, s.tool.as_deref(), s.detail.as_deref()),
            (StateKind::Tool, Some("Bash"), Some("make"))
        );
        assert_eq!(
            e.answered(false, "keys", StateKind::Idle, t0, 2),
            None,
            "nothing is open any more"
        );
        let (mut e, t0) = start(true);
        asked(&mut e, t0);
        let s = e.answered(false, "hook", StateKind::Thinking, t0, 1);
        assert_eq!(s.map(|s| s.kind), Some(StateKind::Thinking));
    }

    #[test]
    fn a_dialog_answered_in_the_terminal_ends_the_wait_without_waiting_for_a_hook() {
        let (mut e, t0) = start(true);
        asked(&mut e, t0);
        e.screen_changed(read(Cue::Permission), t0 + MS(50), 0);
        // The user presses Enter 100 ms later; the tool runs and the screen is busy.
        assert_eq!(e.screen_changed(read(Cue::Busy), t0 + MS(150), 0), None);
        assert_eq!(e.deadline(), Some(t0 + MS(300)), "hold only, not freshness");
        let s = e.tick(t0 + MS(300), 0).expect("the tool runs");
        assert_eq!(
            (s.kind, s.tool.as_deref(), s.source),
            (StateKind::Tool, Some("Bash"), StateSource::Screen)
        );
        // Refused instead: the dialog gives way to the interrupted notice.
        let (mut e, t0) = start(true);
        asked(&mut e, t0);
        e.screen_changed(read(Cue::Permission), t0, 0);
        e.screen_changed(read(Cue::Interrupted), t0 + MS(100), 0);
        assert_eq!(
            e.tick(t0 + MS(300), 0).map(|s| s.kind),
            Some(StateKind::Idle)
        );
    }

    #[test]
    fn a_screen_before_the_dialog_is_drawn_proves_nothing() {
        // Codex asks through its hook before it draws the dialog: the busy screen that
        // follows the request is not an answer.
        let (mut e, t0) = start(true);
        e.screen_changed(read(Cue::Busy), t0, 0);
        asked(&mut e, t0 + MS(10));
        e.screen_changed(read(Cue::Quiet), t0 + MS(20), 0);
        assert_eq!(e.tick(t0 + MS(400), 0), None);
        assert_eq!(e.state().kind, StateKind::WaitingPermission);
        // Drawn, then answered: now it counts.
        e.screen_changed(read(Cue::Permission), t0 + MS(500), 0);
        e.screen_changed(read(Cue::Busy), t0 + MS(600), 0);
        assert_eq!(
            e.tick(t0 + MS(800), 0).map(|s| s.kind),
            Some(StateKind::Tool)
        );
    }

    #[test]
    fn a_question_before_any_work_is_waiting_input_even_with_hooks() {
        let (mut e, t0) = start(true);
        e.hook(&hook(StateKind::Idle, "SessionStart"), t0, 0);
        e.screen_changed(
            Reading {
                line: Some("Meet GPT-6 Sol".into()),
                ..read(Cue::Input)
            },
            t0 + MS(2000),
            0,
        );
        let s = e.tick(t0 + MS(2200), 0).expect("waiting for the user");
        assert_eq!(
            (s.kind, s.detail.as_deref()),
            (StateKind::WaitingInput, Some("Meet GPT-6 Sol"))
        );
    }

    #[test]
    fn hooks_that_imply_nothing_do_not_hold_back_the_screen() {
        // Gemini fires BeforeModel/AfterModel all through a turn: an Esc on screen must
        // still count once it has held.
        let (mut e, t0) = start(true);
        e.hook(&hook(StateKind::Thinking, "BeforeAgent"), t0, 0);
        let noise = HookEvent {
            effect: Effect::Noise,
            ..hook(StateKind::Thinking, "AfterModel")
        };
        e.hook(&noise, t0 + MS(3000), 0);
        e.screen_changed(read(Cue::Interrupted), t0 + MS(3100), 0);
        assert_eq!(
            e.tick(t0 + MS(3250), 0).map(|s| s.kind),
            Some(StateKind::Idle)
        );
        assert_eq!(e.health(t0).0, Health::Ok);
    }

    /// OpenCode marks the tool part running while its permission is asked; only the
    /// answer (its `permission.replied`) ends the wait.
    #[test]
    fn a_tool_marked_running_while_asking_waits_for_the_answer() {
        let (mut e, t0) = start(true);
        asked(&mut e, t0);
        assert_eq!(
            e.hook(&hook(StateKind::Tool, "message.part.updated"), t0, 0),
            None
        );
        assert_eq!(e.state().kind, StateKind::WaitingPermission);
        let replied = HookEvent {
            effect: Effect::Answered { approve: true },
            ..hook(StateKind::Tool, "permission.replied")
        };
        let s = e.hook(&replied, t0, 0).expect("answered");
        assert_eq!((s.kind, s.tool.as_deref()), (StateKind::Tool, Some("Bash")));
        assert_eq!(e.hook(&replied, t0, 0), None, "answered once");
    }

    /// Gemini fires no hook when `/compress` is over: its screen at rest ends it.
    #[test]
    fn compaction_ends_when_the_screen_is_at_rest() {
        let (mut e, t0) = start(true);
        e.hook(&hook(StateKind::Compacting, "PreCompress"), t0, 0);
        e.screen_changed(read(Cue::Quiet), t0 + MS(2000), 0);
        assert_eq!(
            e.tick(t0 + MS(2200), 0).map(|s| s.kind),
            Some(StateKind::Idle)
        );
    }

    /// Gemini's busy line can go missing while it works (4 sessions at once, the soak):
    /// only a new interrupted notice ends its work.
    #[test]
    fn an_unsteady_busy_indicator_needs_a_notice() {
        let t0 = Instant::now();
        let s = State::new(StateKind::Starting, StateSource::Host, 0);
        let mut e = Engine::new(s, true, Timing::default(), t0).with_unsteady_busy();
        e.hook(&hook(StateKind::Thinking, "BeforeAgent"), t0, 0);
        e.screen_changed(read(Cue::Busy), t0 + MS(100), 0);
        e.screen_changed(read(Cue::Quiet), t0 + MS(2000), 0);
        assert_eq!(e.tick(t0 + MS(2200), 0), None);
        e.screen_changed(read(Cue::Interrupted), t0 + MS(3000), 0);
        assert_eq!(
            e.tick(t0 + MS(3200), 0).map(|s| s.kind),
            Some(StateKind::Idle)
        );
    }

    #[test]
    fn health_degrades_only_after_the_grace_period() {
        let (mut e, t0) = start(true);
        assert_eq!(e.health(t0).0, Health::Ok);
        assert_eq!(e.deadline(), Some(t0 + Duration::from_secs(30)));
        e.tick(t0 + Duration::from_secs(30), 0);
        assert_eq!(e.deadline(), None, "the grace timer fires once");
        assert_eq!(e.health(t0 + Duration::from_secs(31)).0, Health::Degraded);
        let (e, t0) = start(false);
        assert_eq!(e.health(t0 + Duration::from_secs(31)).0, Health::Ok);
    }
}
