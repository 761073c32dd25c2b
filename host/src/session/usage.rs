//! A session's usage task: meters the agent's transcripts (paths from its hooks) or its
//! event stream, counts the lines changed in its worktree, and reports the result to
//! the registry.
//!
//! It wakes on hook events, on file-system events (the transcripts' directories and
//! the worktree, through `notify`), and on its own timers: a debounce before counting
//! lines (a build touches thousands of files at once) and a floor between reports (a
//! streaming response appends many lines a second). Nothing polls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use canopy_protocol::session::Usage;
use notify::RecursiveMode;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::{Report, sleep_until};
use crate::clock::now_ms;
use crate::fswatch::{FsWatch, Subscription};
use crate::usage::opencode::OpenCodeUsage;
use crate::usage::tail::Tail;
use crate::usage::{Meter, Prices, transcript_for};

/// How long the worktree must stay quiet before its lines are counted again.
const LINES_DEBOUNCE: Duration = Duration::from_millis(300);
/// The least time between two usage reports of one session.
const REPORT_EVERY: Duration = Duration::from_millis(250);
/// Transcripts followed per session (the main one and its subagents').
const MAX_TRANSCRIPTS: usize = 64;
/// File-system events queued before further ones are dropped: one is enough to know
/// something changed.
const FS_BACKLOG: usize = 64;

/// What the session actor tells its usage task.
#[derive(Debug)]
pub enum ToUsage {
    /// A hook payload or an agent event.
    Hook(serde_json::Value),
    /// Time spent thinking or in tools so far.
    Active(u64),
}

/// What a session's usage starts from.
#[derive(Debug, Clone)]
pub struct UsageStart {
    pub agent: String,
    pub worktree: PathBuf,
    pub base_commit: String,
    /// When the session was created (wall time counts from it).
    pub created_at: u64,
    pub prices: Arc<Prices>,
    /// The usage recorded by earlier runs (a resumed session).
    pub earlier: Usage,
    /// Nudged after each count of the worktree's lines (its files changed, or the agent
    /// finished a step), so the conflict radar looks again.
    pub radar: Option<Arc<tokio::sync::Notify>>,
    /// The host's file-system watcher.
    pub fs: FsWatch,
}

/// Start the usage task of session `name`; it ends when `inputs` closes.
pub fn spawn(
    name: String,
    start: UsageStart,
    reports: mpsc::UnboundedSender<Report>,
) -> mpsc::UnboundedSender<ToUsage> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (fs_tx, fs_rx) = mpsc::channel(FS_BACKLOG);
    let mut meter = Meter::new(start.prices.clone());
    // Transcripts are read again from their start; OpenCode's stream is not replayed.
    if transcript_for(&start.agent).is_none() {
        meter.carry_on(&start.earlier);
    }
    let task = UsageTask {
        name,
        meter,
        transcripts: BTreeMap::new(),
        opencode: (start.agent == "opencode").then(OpenCodeUsage::default),
        fs_events: fs_tx,
        watched_dirs: Vec::new(),
        pending_dirs: Vec::new(),
        lines: (0, 0),
        lines_timer: None,
        counting: false,
        report_timer: None,
        last_report: None,
        dirty: false,
        active_ms: 0,
        start,
        reports,
    };
    tokio::spawn(task.run(rx, fs_rx));
    tx
}

struct UsageTask {
    name: String,
    start: UsageStart,
    meter: Meter,
    /// Followed transcripts by path.
    transcripts: BTreeMap<PathBuf, Tail>,
    opencode: Option<OpenCodeUsage>,
    /// Where the watches' events land.
    fs_events: mpsc::Sender<PathBuf>,
    /// Directories watched so far; their watches end with the task.
    watched_dirs: Vec<(PathBuf, Subscription)>,
    /// Transcript directories named before they exist (Claude creates its project
    /// directory with its first transcript line, after the hook that names the file):
    /// their nearest existing ancestor is watched until they appear.
    pending_dirs: Vec<PathBuf>,
    lines: (u64, u64),
    lines_timer: Option<Pin<Box<Sleep>>>,
    /// A count runs on a blocking thread.
    counting: bool,
    report_timer: Option<Pin<Box<Sleep>>>,
    last_report: Option<Instant>,
    /// Something changed since the last report.
    dirty: bool,
    active_ms: u64,
    reports: mpsc::UnboundedSender<Report>,
}

impl UsageTask {
    async fn run(
        mut self,
        mut inputs: mpsc::UnboundedReceiver<ToUsage>,
        mut fs: mpsc::Receiver<PathBuf>,
    ) {
        self.watch(&self.start.worktree.clone(), RecursiveMode::Recursive);
        self.schedule_lines();
        let (counted_tx, mut counted) = mpsc::unbounded_channel();
        loop {
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(ToUsage::Hook(payload)) => self.on_hook(&payload),
                    Some(ToUsage::Active(ms)) => {
                        self.active_ms = ms;
                        self.changed();
                    }
                    None => break,
                },
                Some(path) = fs.recv() => self.on_fs(&path),
                () = sleep_until(&mut self.lines_timer) => {
                    self.lines_timer = None;
                    self.count_lines(&counted_tx);
                },
                Some(lines) = counted.recv() => {
                    self.counting = false;
                    self.nudge_radar();
                    if let Some(lines) = lines
                        && lines != self.lines
                    {
                        self.lines = lines;
                        self.changed();
                    }
                },
                () = sleep_until(&mut self.report_timer) => {
                    self.report_timer = None;
                    self.report();
                },
            }
        }
        // The agent has exited: read what it wrote last, count once more, report.
        self.read_transcripts();
        let (worktree, base) = (self.start.worktree.clone(), self.start.base_commit.clone());
        if let Ok(Some(lines)) = tokio::task::spawn_blocking(move || count(&worktree, &base)).await
        {
            self.lines = lines;
            self.dirty = true;
        }
        self.report();
        // A stopped session leaves the radar.
        self.nudge_radar();
    }

    fn nudge_radar(&self) {
        if let Some(radar) = &self.start.radar {
            radar.notify_one();
        }
    }

    fn on_hook(&mut self, payload: &serde_json::Value) {
        if let Some(opencode) = &mut self.opencode {
            let event = payload.get("payload").unwrap_or(payload);
            opencode.on_event(event, &mut self.meter);
            self.changed();
            return;
        }
        for key in ["transcript_path", "agent_transcript_path"] {
            if let Some(path) = payload.get(key).and_then(|v| v.as_str()) {
                self.follow(expand_home(path));
            }
        }
        // Hooks mark steps (a tool finished, a turn ended): read what was written and
        // count the worktree again.
        self.read_transcripts();
        self.schedule_lines();
    }

    /// Start following a transcript the agent named.
    fn follow(&mut self, path: PathBuf) {
        if self.transcripts.contains_key(&path) || self.transcripts.len() >= MAX_TRANSCRIPTS {
            return;
        }
        let Some(reader) = transcript_for(&self.start.agent) else {
            return;
        };
        if let Some(dir) = path.parent() {
            // The directory, not the file: a rotated file is a new inode.
            self.watch_transcript_dir(dir.to_owned());
        }
        self.transcripts
            .insert(path.clone(), Tail::new(path, reader));
    }

    fn watch(&mut self, dir: &Path, mode: RecursiveMode) {
        if self.watched(dir) {
            return;
        }
        let subscription = self.start.fs.watch(dir, mode, self.fs_events.clone());
        self.watched_dirs.push((dir.to_owned(), subscription));
    }

    fn watched(&self, dir: &Path) -> bool {
        self.watched_dirs.iter().any(|(d, _)| d == dir)
    }

    /// Watch a transcript directory or, while it does not exist yet, its nearest
    /// existing ancestor, so that its creation is seen and it is watched then. Without
    /// this, a long reply's transcript lines would be read only at the next hook.
    fn watch_transcript_dir(&mut self, dir: PathBuf) {
        if dir.is_dir() {
            self.watch(&dir, RecursiveMode::NonRecursive);
            return;
        }
        if let Some(ancestor) = dir.ancestors().skip(1).find(|a| a.is_dir()) {
            self.watch(ancestor, RecursiveMode::NonRecursive);
        }
        if !self.pending_dirs.contains(&dir) {
            self.pending_dirs.push(dir);
        }
    }

    fn on_fs(&mut self, path: &Path) {
        // A directory on the way to a pending transcript directory appeared.
        if self.pending_dirs.iter().any(|d| d.starts_with(path)) {
            for dir in std::mem::take(&mut self.pending_dirs) {
                self.watch_transcript_dir(dir);
            }
            // Lines written before the watch was in place.
            self.read_transcripts();
            return;
        }
        // A transcript, or a transcript directory whose watch is now in place (lines
        // written before it are read then).
        if self.transcripts.contains_key(path)
            || (path != self.start.worktree && self.watched(path))
        {
            self.read_transcripts();
        } else if path.starts_with(&self.start.worktree) && !in_git_dir(&self.start.worktree, path)
        {
            self.schedule_lines();
        }
    }

    fn read_transcripts(&mut self) {
        let mut read = false;
        for tail in self.transcripts.values_mut() {
            match tail.read_new(&mut self.meter) {
                Ok(new) => read |= new,
                Err(e) => {
                    tracing::debug!(path = %tail.path().display(), error = %e, "transcript unreadable for now");
                }
            }
        }
        if read {
            self.changed();
        }
    }

    fn schedule_lines(&mut self) {
        self.lines_timer = Some(Box::pin(tokio::time::sleep(LINES_DEBOUNCE)));
    }

    /// Count on a blocking thread; one count at a time (a later change re-arms the timer).
    fn count_lines(&mut self, done: &mpsc::UnboundedSender<Option<(u64, u64)>>) {
        if self.counting {
            self.schedule_lines();
            return;
        }
        self.counting = true;
        let (worktree, base) = (self.start.worktree.clone(), self.start.base_commit.clone());
        let done = done.clone();
        tokio::task::spawn_blocking(move || {
            let _ = done.send(count(&worktree, &base));
        });
    }

    /// Something changed: report now, or once the report floor has passed.
    fn changed(&mut self) {
        self.dirty = true;
        if self.report_timer.is_some() {
            return;
        }
        let due = self
            .last_report
            .map_or_else(Instant::now, |at| at + REPORT_EVERY);
        self.report_timer = Some(Box::pin(tokio::time::sleep_until(due)));
    }

    fn report(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        self.last_report = Some(Instant::now());
        let usage = Usage {
            wall_ms: now_ms().saturating_sub(self.start.created_at),
            active_ms: self.active_ms,
            lines_added: self.lines.0,
            lines_removed: self.lines.1,
            ..self.meter.usage()
        };
        let _ = self.reports.send(Report::Usage {
            name: self.name.clone(),
            usage,
        });
    }
}

fn count(worktree: &Path, base: &str) -> Option<(u64, u64)> {
    match crate::git::lines_changed(worktree, base) {
        Ok(lines) => Some(lines),
        Err(e) => {
            tracing::debug!(worktree = %worktree.display(), error = %e, "cannot count changed lines");
            None
        }
    }
}

/// Whether `path` is inside the worktree's git metadata (a worktree's `.git` is a file,
/// but tools may still create `.git/…` paths in it).
fn in_git_dir(worktree: &Path, path: &Path) -> bool {
    path.strip_prefix(worktree)
        .ok()
        .and_then(|rel| rel.components().next())
        .is_some_and(|c| c.as_os_str() == ".git")
}

/// Agents may report `~/…` paths (Codex does).
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}
