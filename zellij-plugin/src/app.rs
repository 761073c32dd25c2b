//! The plugin's state machine. Zellij's events arrive as [`Input`]s; what the plugin
//! wants done comes back as [`Effect`]s, which `main.rs` turns into Zellij commands.
//! Keeping Zellij out of here lets native unit tests drive every path.
//!
//! Live updates are a long-poll the plugin drives: `canopy status --json` gives the
//! table and its `seq`, then `canopy watch --json --once --since SEQ --timeout T` is
//! re-issued each time its result arrives. Exactly one of those commands is in flight
//! at a time, so nothing polls while nothing changes.

use std::collections::BTreeMap;

use crate::model::{self, Event, EventKind, FileDiff, Session};

/// Settings from the plugin's configuration block in the layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The `canopy` executable (key `canopy`; default `canopy` on `$PATH`).
    pub canopy: String,
    /// Seconds one long-poll waits before returning empty (key `poll_timeout`).
    pub poll_timeout: f64,
    /// Passed to `canopy new --repo` (key `repo`); else the command's cwd decides.
    pub repo: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            canopy: "canopy".into(),
            poll_timeout: 30.0,
            repo: None,
        }
    }
}

impl Config {
    /// Read the layout's `key "value"` pairs; bad values fall back to the defaults.
    pub fn from_map(map: &BTreeMap<String, String>) -> Config {
        let d = Config::default();
        Config {
            canopy: map
                .get("canopy")
                .filter(|s| !s.is_empty())
                .cloned()
                .unwrap_or(d.canopy),
            poll_timeout: map
                .get("poll_timeout")
                .and_then(|s| s.parse().ok())
                .filter(|t: &f64| t.is_finite() && *t > 0.0)
                .unwrap_or(d.poll_timeout),
            repo: map.get("repo").filter(|s| !s.is_empty()).cloned(),
        }
    }
}

/// Keys the pane reacts to (modifier chords arrive as `Other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Up,
    Down,
    Enter,
    Esc,
    Backspace,
    Tab,
    Other,
}

/// Something that happened, as far as the plugin cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Load(Config),
    Permission {
        granted: bool,
    },
    /// `RunCommandResult`: exit code (`None` if killed), stdout, stderr, the context the
    /// command was issued with.
    CommandDone {
        exit: Option<i32>,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        ctx: BTreeMap<String, String>,
    },
    /// A command pane opened; `ctx` is the one given to [`Effect::OpenPane`].
    PaneOpened {
        pane: u32,
        ctx: BTreeMap<String, String>,
    },
    /// A command pane's command ended (`exit` is `None` when it was killed); Zellij
    /// keeps the pane, showing the exit code, until it is closed.
    PaneExited {
        pane: u32,
        exit: Option<i32>,
    },
    PaneClosed {
        pane: u32,
    },
    Key(Key),
    Timer,
    /// A `zellij pipe --name canopy::event -- LINES` push: the same lines as `watch --json`.
    Pipe {
        name: String,
        payload: String,
    },
}

/// What the plugin asks Zellij to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    RequestPermissions,
    Subscribe,
    /// Run a command in the background; its result comes back as [`Input::CommandDone`].
    Run {
        argv: Vec<String>,
        ctx: BTreeMap<String, String>,
    },
    /// Open a floating command pane running `argv`.
    OpenPane {
        argv: Vec<String>,
        ctx: BTreeMap<String, String>,
    },
    FocusPane(u32),
    ClosePane(u32),
    SetTimeout(f64),
}

/// Where the permission prompt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Pending,
    Granted,
    Denied,
}

/// Which screen the pane shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    List,
    /// Details of one session, with `canopy explain` output and its changed files once
    /// they arrive; its pending review comments come with its record.
    Details {
        name: String,
        explain: Option<String>,
        files: Files,
    },
    /// The `n` form: fields typed in the pane.
    New(NewForm),
}

/// The details view's changed files, read with `canopy diff NAME --stat --json` when the
/// view opens and again whenever the session's line counts move, one read at a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Files {
    /// The last answer: the files with their counts, or why they could not be read.
    pub last: Option<Result<Vec<FileDiff>, String>>,
    /// The session's (added, removed) line counts when the last read was asked for.
    asked: (u64, u64),
    /// A read is in flight.
    reading: bool,
}

/// The `n` form: name, agent and an optional issue, edited one at a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewForm {
    pub fields: [String; 3],
    /// Index into `fields` being edited.
    pub at: usize,
}

pub const NEW_FIELDS: [&str; 3] = ["name", "agent", "issue"];

/// Context key naming which command a `RunCommandResult` answers.
const OP: &str = "canopy_op";
/// Seconds before retrying after the host could not be read.
const RETRY_SECS: f64 = 2.0;

/// The whole plugin state.
#[derive(Debug, Default)]
pub struct App {
    pub config: Config,
    pub permission: Option<Permission>,
    /// Sessions in [`model::order`] (local first, then by host and name), as of `seq`.
    pub sessions: Vec<Session>,
    /// The last event seq applied; `None` until the first status read.
    pub seq: Option<u64>,
    /// Index into `sessions` of the highlighted row.
    pub selected: usize,
    pub mode: Option<Mode>,
    /// One line above the footer: the last action's outcome or the host's error.
    pub flash: Option<String>,
    /// Attach panes this instance opened, by session name (Enter focuses them again).
    pub panes: BTreeMap<String, u32>,
    /// The wall clock (ms since the epoch) as of this render, set by the entry point;
    /// 0 when unknown. A running session's wall time is counted from it, not taken from
    /// its last usage report.
    pub now_ms: u64,
    /// A retry timer is armed (one at a time: Zellij timers cannot be cancelled).
    retry_armed: bool,
}

fn ctx(op: &str, name: Option<&str>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::from([(OP.to_string(), op.to_string())]);
    if let Some(n) = name {
        m.insert("name".into(), n.to_string());
    }
    m
}

impl App {
    pub fn mode(&self) -> &Mode {
        self.mode.as_ref().unwrap_or(&Mode::List)
    }

    pub fn selected_session(&self) -> Option<&Session> {
        self.sessions.get(self.selected)
    }

    /// Apply one input; returns the effects and whether to re-render.
    pub fn handle(&mut self, input: Input) -> (Vec<Effect>, bool) {
        match input {
            Input::Load(config) => {
                self.config = config;
                self.permission = Some(Permission::Pending);
                (vec![Effect::Subscribe, Effect::RequestPermissions], true)
            }
            Input::Permission { granted } => {
                if !granted {
                    self.permission = Some(Permission::Denied);
                    return (vec![], true);
                }
                let first = self.permission != Some(Permission::Granted);
                self.permission = Some(Permission::Granted);
                // A repeated grant must not start a second poll chain.
                (
                    if first {
                        vec![self.status_cmd()]
                    } else {
                        vec![]
                    },
                    true,
                )
            }
            Input::CommandDone {
                exit,
                stdout,
                stderr,
                ctx,
            } => self.command_done(exit, &stdout, &stderr, &ctx),
            Input::PaneOpened { pane, ctx } => {
                if let (Some("attach"), Some(name)) =
                    (ctx.get(OP).map(String::as_str), ctx.get("name"))
                {
                    self.panes.insert(name.clone(), pane);
                }
                (vec![], false)
            }
            // A detach (or the session ending) exits `canopy attach` with 0: its pane
            // has nothing more to show. A failure stays open so its message can be read.
            Input::PaneExited { pane, exit } => {
                let ours = self.panes.values().any(|p| *p == pane);
                self.panes.retain(|_, p| *p != pane);
                if ours && exit == Some(0) {
                    (vec![Effect::ClosePane(pane)], false)
                } else {
                    (vec![], false)
                }
            }
            Input::PaneClosed { pane } => {
                self.panes.retain(|_, p| *p != pane);
                (vec![], false)
            }
            Input::Key(key) => self.key(key),
            Input::Timer => {
                self.retry_armed = false;
                if self.permission == Some(Permission::Granted) {
                    (vec![self.status_cmd()], false)
                } else {
                    (vec![], false)
                }
            }
            Input::Pipe { name, payload } => {
                if name != "canopy::event" {
                    return (vec![], false);
                }
                let (events, _) = model::parse_events(payload.as_bytes());
                // A resync pushed here is left to the poll chain, which re-reads status.
                let events: Vec<Event> = events
                    .into_iter()
                    .filter(|e| e.kind != EventKind::Resync)
                    .collect();
                let changed = self.apply_all(&events);
                (self.files_due().into_iter().collect(), changed)
            }
        }
    }

    fn canopy(&self, args: &[&str]) -> Vec<String> {
        std::iter::once(self.config.canopy.clone())
            .chain(args.iter().map(|s| s.to_string()))
            .collect()
    }

    fn status_cmd(&self) -> Effect {
        Effect::Run {
            argv: self.canopy(&["status", "--json"]),
            ctx: ctx("status", None),
        }
    }

    fn watch_cmd(&self, since: u64) -> Effect {
        let since = since.to_string();
        let timeout = self.config.poll_timeout.to_string();
        Effect::Run {
            argv: self.canopy(&[
                "watch",
                "--json",
                "--once",
                "--since",
                &since,
                "--timeout",
                &timeout,
            ]),
            ctx: ctx("watch", None),
        }
    }

    /// After a failed read: say why, and try again in a moment (once).
    fn retry(&mut self, why: String) -> Vec<Effect> {
        self.flash = Some(why);
        if std::mem::replace(&mut self.retry_armed, true) {
            vec![]
        } else {
            vec![Effect::SetTimeout(RETRY_SECS)]
        }
    }

    fn command_done(
        &mut self,
        exit: Option<i32>,
        stdout: &[u8],
        stderr: &[u8],
        ctx: &BTreeMap<String, String>,
    ) -> (Vec<Effect>, bool) {
        let name = ctx.get("name").cloned().unwrap_or_default();
        let failed = exit != Some(0);
        let why = || last_line(stderr).unwrap_or_else(|| format!("exit {exit:?}"));
        match ctx.get(OP).map(String::as_str) {
            Some("status") => {
                if failed {
                    let w = format!("canopy status: {}", why());
                    return (self.retry(w), true);
                }
                match model::parse_status(stdout) {
                    Ok(status) => {
                        self.set_table(status.sessions, status.seq);
                        self.flash = None;
                        let mut effects = vec![self.watch_cmd(status.seq)];
                        effects.extend(self.files_due());
                        (effects, true)
                    }
                    Err(e) => (self.retry(e), true),
                }
            }
            Some("watch") => {
                let Some(seq) = self.seq else {
                    return (vec![self.status_cmd()], false);
                };
                if failed {
                    let w = format!("canopy watch: {}", why());
                    return (self.retry(w), true);
                }
                let (events, bad) = model::parse_events(stdout);
                if bad > 0 || events.iter().any(|e| e.kind == EventKind::Resync) {
                    // Missed or unreadable events: re-read the whole table.
                    return (vec![self.status_cmd()], false);
                }
                let changed = self.apply_all(&events);
                let next = self.seq.unwrap_or(seq);
                let mut effects = vec![self.watch_cmd(next)];
                effects.extend(self.files_due());
                (effects, changed)
            }
            Some("explain") => {
                let text = String::from_utf8_lossy(if failed { stderr } else { stdout });
                if let Some(Mode::Details {
                    name: n, explain, ..
                }) = &mut self.mode
                    && *n == name
                {
                    *explain = Some(text.trim_end().to_string());
                    return (vec![], true);
                }
                (vec![], false)
            }
            Some("diffstat") => {
                if let Some(Mode::Details { name: n, files, .. }) = &mut self.mode
                    && *n == name
                {
                    files.reading = false;
                    files.last = Some(if failed {
                        Err(why())
                    } else {
                        model::parse_diff(stdout).map(|d| d.files)
                    });
                    // The worktree may have changed while this read ran.
                    return (self.files_due().into_iter().collect(), true);
                }
                (vec![], false)
            }
            Some(verb @ ("approve" | "deny" | "stop" | "new")) => {
                self.flash = Some(if failed {
                    format!("{verb} {name}: {}", why())
                } else {
                    format!("{} {name}", past(verb))
                });
                (vec![], true)
            }
            _ => (vec![], false),
        }
    }

    /// The details view's next read of its changed files, when one is due: none is in
    /// flight, and none was made yet or the session's line counts moved since.
    fn files_due(&mut self) -> Option<Effect> {
        let Some(Mode::Details { name, files, .. }) = &mut self.mode else {
            return None;
        };
        let s = self.sessions.iter().find(|s| s.name == *name)?;
        let counts = (s.usage.lines_added, s.usage.lines_removed);
        if files.reading || (files.last.is_some() && files.asked == counts) {
            return None;
        }
        files.reading = true;
        files.asked = counts;
        let name = name.clone();
        Some(Effect::Run {
            argv: self.canopy(&["diff", &name, "--stat", "--json"]),
            ctx: ctx("diffstat", Some(&name)),
        })
    }

    /// Replace the table (after a status read), keeping the selection on the same name.
    fn set_table(&mut self, mut sessions: Vec<Session>, seq: u64) {
        let keep = self.selected_session().map(|s| s.name.clone());
        sessions.sort_by(|a, b| model::order(a).cmp(&model::order(b)));
        self.sessions = sessions;
        self.seq = Some(seq);
        self.reselect(keep);
    }

    /// Apply every event (no short-circuit); returns whether any changed the table.
    fn apply_all(&mut self, events: &[Event]) -> bool {
        let mut changed = false;
        for e in events {
            changed |= self.apply(e);
        }
        changed
    }

    /// Apply one event in order; stale ones (seq already seen) are ignored. Returns
    /// whether the table changed.
    pub fn apply(&mut self, e: &Event) -> bool {
        if self.seq.is_some_and(|s| e.seq <= s) {
            return false;
        }
        let Some(session) = &e.session else {
            return false;
        };
        self.seq = Some(e.seq);
        let keep = self.selected_session().map(|s| s.name.clone());
        let at = self
            .sessions
            .binary_search_by(|s| model::order(s).cmp(&model::order(session)));
        match (e.kind, at) {
            (EventKind::SessionRemoved, Ok(i)) => {
                self.sessions.remove(i);
            }
            (EventKind::SessionRemoved, Err(_)) => return false,
            (_, Ok(i)) => self.sessions[i] = session.clone(),
            (_, Err(i)) => self.sessions.insert(i, session.clone()),
        }
        self.reselect(keep);
        true
    }

    fn reselect(&mut self, name: Option<String>) {
        if let Some(i) = name.and_then(|n| self.sessions.iter().position(|s| s.name == n)) {
            self.selected = i;
        }
        self.selected = self.selected.min(self.sessions.len().saturating_sub(1));
    }

    fn key(&mut self, key: Key) -> (Vec<Effect>, bool) {
        // Nothing that runs a command (or reads a reply) before the grant.
        if self.permission != Some(Permission::Granted) {
            return (vec![], false);
        }
        match self.mode.take().unwrap_or(Mode::List) {
            Mode::New(form) => self.form_key(form, key),
            details @ Mode::Details { .. } => {
                if !matches!(key, Key::Esc | Key::Char('i' | 'q')) {
                    self.mode = Some(details);
                    return (vec![], false);
                }
                (vec![], true)
            }
            Mode::List => self.list_key(key),
        }
    }

    fn list_key(&mut self, key: Key) -> (Vec<Effect>, bool) {
        let n = self.sessions.len();
        match key {
            Key::Char('j') | Key::Down if n > 0 => {
                self.selected = (self.selected + 1).min(n - 1);
                (vec![], true)
            }
            Key::Char('k') | Key::Up => {
                self.selected = self.selected.saturating_sub(1);
                (vec![], true)
            }
            Key::Char('n') => {
                self.mode = Some(Mode::New(NewForm::default()));
                (vec![], true)
            }
            Key::Enter => match self.selected_session().map(|s| s.name.clone()) {
                Some(name) => match self.panes.get(&name) {
                    Some(pane) => (vec![Effect::FocusPane(*pane)], false),
                    None => (
                        vec![Effect::OpenPane {
                            argv: self.canopy(&["attach", &name]),
                            ctx: ctx("attach", Some(&name)),
                        }],
                        false,
                    ),
                },
                None => (vec![], false),
            },
            Key::Char(c @ ('a' | 'd' | 'x' | 'i')) => {
                let Some(name) = self.selected_session().map(|s| s.name.clone()) else {
                    return (vec![], false);
                };
                let verb = match c {
                    'a' => "approve",
                    'd' => "deny",
                    'x' => "stop",
                    _ => {
                        self.mode = Some(Mode::Details {
                            name: name.clone(),
                            explain: None,
                            files: Files::default(),
                        });
                        let mut effects = vec![Effect::Run {
                            argv: self.canopy(&["explain", &name]),
                            ctx: ctx("explain", Some(&name)),
                        }];
                        effects.extend(self.files_due());
                        return (effects, true);
                    }
                };
                self.flash = Some(format!("{verb} {name}…"));
                let argv = self.canopy(&[verb, &name]);
                (
                    vec![Effect::Run {
                        argv,
                        ctx: ctx(verb, Some(&name)),
                    }],
                    true,
                )
            }
            _ => (vec![], false),
        }
    }

    fn form_key(&mut self, mut form: NewForm, key: Key) -> (Vec<Effect>, bool) {
        match key {
            Key::Esc => return (vec![], true),
            Key::Char(c) => form.fields[form.at].push(c),
            Key::Backspace => {
                form.fields[form.at].pop();
            }
            Key::Tab | Key::Down => form.at = (form.at + 1) % NEW_FIELDS.len(),
            Key::Up => form.at = (form.at + NEW_FIELDS.len() - 1) % NEW_FIELDS.len(),
            Key::Enter if form.at + 1 < NEW_FIELDS.len() => form.at += 1,
            Key::Enter => {
                let [name, agent, issue] = form.fields.clone().map(|f| f.trim().to_string());
                if name.is_empty() && issue.is_empty() {
                    self.flash = Some("new: a name or an issue is needed".into());
                    form.at = 0;
                    self.mode = Some(Mode::New(form));
                    return (vec![], true);
                }
                let mut argv = self.canopy(&["new"]);
                for (flag, value) in [
                    ("", &name),
                    ("--agent", &agent),
                    ("--issue", &issue),
                    ("--repo", &self.config.repo.clone().unwrap_or_default()),
                ] {
                    if !value.is_empty() {
                        if !flag.is_empty() {
                            argv.push(flag.into());
                        }
                        argv.push(value.clone());
                    }
                }
                let label = if name.is_empty() { &issue } else { &name };
                self.flash = Some(format!("new {label}…"));
                return (
                    vec![Effect::Run {
                        argv,
                        ctx: ctx("new", Some(label)),
                    }],
                    true,
                );
            }
            Key::Other => {}
        }
        self.mode = Some(Mode::New(form));
        (vec![], true)
    }
}

/// The last non-empty line of a command's stderr, without `error: `.
fn last_line(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    Some(line.trim().trim_start_matches("error: ").to_string())
}

fn past(verb: &str) -> &'static str {
    match verb {
        "approve" => "approved",
        "deny" => "denied",
        "stop" => "stopped",
        _ => "started",
    }
}
