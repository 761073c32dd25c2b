//! Notifications: one policy over the event bus, and targets behind one small trait.
//!
//! The policy task follows the registry's events and decides what notifies, when and
//! how often ([`policy`]). Each target (D-Bus desktop, ntfy, a command) runs in its own
//! task behind a [`Mailbox`] that keeps one pending operation per session: a slow bus,
//! server or program delays only its own notifications, and never the registry.
//! Desktop actions come back as the same `approve`/`deny` calls any client makes.
//!
//! - `settings.rs`: `[notify]` in the config.
//! - `policy.rs`: events in, show/withdraw out (pure; `canopy watch --notify` uses it too).
//! - `desktop.rs`, `ntfy.rs`, `command.rs`: the targets.
//! - `osc.rs`: terminal notifications for `canopy watch --notify`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use canopy_protocol::params::{DecisionParams, NotifyTestResult};
use canopy_protocol::{Session, State, StateKind, StateSource, method};
use tokio::sync::{broadcast::error::RecvError, mpsc, oneshot};

use crate::daemon::Daemon;
use crate::registry::Registry;

mod command;
mod desktop;
mod ntfy;
pub mod osc;
pub mod policy;
mod settings;

pub use policy::{Note, Op, Policy};
pub use settings::{CommandConfig, NotifyConfig, NtfyConfig, Reason, Urgency};

/// Sessions with an operation waiting per target at most; past that the oldest is
/// dropped (a target that far behind is not keeping up anyway).
const MAILBOX_SESSIONS: usize = 64;
/// How long `canopy notify test` waits for the targets.
const TEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a target could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A D-Bus call failed (no server, the bus went away).
    #[error("D-Bus: {0}")]
    Dbus(#[from] zbus::Error),
    /// The ntfy server could not be reached or refused the message.
    #[error("ntfy: {0}")]
    Ntfy(String),
    /// The command could not start, failed or was killed at its timeout.
    #[error("command: {0}")]
    Command(String),
}

/// Where notifications go. Each target runs in its own task, one operation at a time.
pub trait Target: Send + 'static {
    /// Show a notification, replacing the session's live one.
    fn show(&mut self, note: &Note) -> impl Future<Output = Result<(), TargetError>> + Send;
    /// Take down the session's live notification, if the target can.
    fn withdraw(&mut self, session: &str) -> impl Future<Output = Result<(), TargetError>> + Send;
}

/// An operation waiting for a target.
enum Item {
    Op(Op),
    /// `canopy notify test`: show this and say how it went.
    Test(Box<Note>, oneshot::Sender<String>),
}

/// A target's queue: one pending operation per session (a newer one replaces it in
/// place), bounded.
#[derive(Default)]
struct Mailbox {
    /// Never held across an await.
    queue: Mutex<VecDeque<Item>>,
    ready: tokio::sync::Notify,
}

impl Mailbox {
    fn push(&self, item: Item) {
        let Ok(mut queue) = self.queue.lock() else {
            return;
        };
        let pending = match &item {
            Item::Op(op) => queue
                .iter()
                .position(|i| matches!(i, Item::Op(o) if o.session() == op.session())),
            Item::Test(..) => None,
        };
        match pending {
            Some(i) => queue[i] = item,
            None => {
                if queue.len() >= MAILBOX_SESSIONS {
                    queue.pop_front();
                    tracing::debug!("a notification target is behind: dropped its oldest");
                }
                queue.push_back(item);
            }
        }
        drop(queue);
        self.ready.notify_one();
    }

    async fn next(&self) -> Item {
        loop {
            if let Some(item) = self.queue.lock().ok().and_then(|mut q| q.pop_front()) {
                return item;
            }
            self.ready.notified().await;
        }
    }
}

/// What the policy task and the request handlers share.
#[derive(Default)]
struct Shared {
    /// When the user last typed into each session from an attached terminal.
    typed: Mutex<HashMap<String, Instant>>,
    /// Said once each in `canopy status` (e.g. no session bus).
    notices: Mutex<Vec<String>>,
}

impl Shared {
    fn notice(&self, text: String) {
        tracing::warn!("{text}");
        if let Ok(mut notices) = self.notices.lock()
            && !notices.contains(&text)
        {
            notices.push(text);
        }
    }
}

/// A desktop action pressed on a session's notification.
#[derive(Debug)]
struct Action {
    session: String,
    /// `approve`, `deny` or `open`.
    key: String,
}

/// The host's notifications, held by the [`Daemon`].
pub struct Notifier {
    config: NotifyConfig,
    shared: Arc<Shared>,
    targets: Vec<(&'static str, Arc<Mailbox>)>,
    /// Taken by [`Notifier::answer_actions`] once the daemon exists.
    actions: Mutex<Option<mpsc::Receiver<Action>>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifier")
    }
}

impl Notifier {
    /// Start the targets the config names and the policy task over `registry`'s events.
    pub fn start(config: NotifyConfig, registry: Registry) -> Notifier {
        let shared = Arc::new(Shared::default());
        let (actions_tx, actions) = mpsc::channel(16);
        let mut targets = Vec::new();
        if config.enabled {
            if config.desktop {
                let mailbox = Arc::new(Mailbox::default());
                tokio::spawn(desktop::run(mailbox.clone(), shared.clone(), actions_tx));
                targets.push(("desktop", mailbox));
            }
            if let Some(ntfy) = &config.ntfy {
                let target = ntfy::Ntfy::new(ntfy, &shared);
                targets.push(("ntfy", spawn_target(target)));
            }
            if let Some(command) = &config.command {
                targets.push(("command", spawn_target(command::Command::new(command))));
            }
            let mailboxes = targets.iter().map(|(_, m)| m.clone()).collect();
            tokio::spawn(follow(
                Policy::new(config.clone()),
                registry,
                shared.clone(),
                mailboxes,
            ));
        }
        Notifier {
            config,
            shared,
            targets,
            actions: Mutex::new(Some(actions)),
        }
    }

    /// Answer desktop actions from now on, as the `approve`/`deny` handlers would.
    pub fn answer_actions(&self, daemon: Weak<Daemon>) {
        if let Some(actions) = self.actions.lock().ok().and_then(|mut a| a.take()) {
            tokio::spawn(answer(daemon, actions, self.config.open_command.clone()));
        }
    }

    /// The user typed into `session` from an attached terminal.
    pub fn typed(&self, session: &str) {
        if let Ok(mut typed) = self.shared.typed.lock() {
            // Keyed by name: a few strings per session, dropped with the session's
            // removal event.
            match typed.get_mut(session) {
                Some(at) => *at = Instant::now(),
                None => {
                    typed.insert(session.to_owned(), Instant::now());
                }
            }
        }
    }

    /// What `canopy status` should mention.
    pub fn notices(&self) -> Vec<String> {
        self.shared
            .notices
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default()
    }

    /// Send a test notification through every target; the settings and each outcome.
    pub async fn test(&self) -> NotifyTestResult {
        let mut result = NotifyTestResult {
            settings: self.config.lines(),
            targets: Vec::new(),
        };
        if !self.config.enabled {
            result
                .targets
                .push("none: notifications are off (notify.enabled = false)".into());
            return result;
        }
        let note = test_note();
        let mut replies = Vec::new();
        for (name, mailbox) in &self.targets {
            let (tx, rx) = oneshot::channel();
            mailbox.push(Item::Test(Box::new(note.clone()), tx));
            replies.push((*name, rx));
        }
        for (name, rx) in replies {
            let outcome = match tokio::time::timeout(TEST_TIMEOUT, rx).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => "its task has stopped".into(),
                Err(_) => format!("no answer within {}s", TEST_TIMEOUT.as_secs()),
            };
            result.targets.push(format!("{name}: {outcome}"));
        }
        if result.targets.is_empty() {
            result
                .targets
                .push("none: desktop = false and no [notify.ntfy] or [notify.command]".into());
        }
        result
    }
}

fn spawn_target<T: Target>(target: T) -> Arc<Mailbox> {
    let mailbox = Arc::new(Mailbox::default());
    tokio::spawn(drive(target, mailbox.clone()));
    mailbox
}

/// A target's task: its operations one at a time, failures logged once per run of them.
async fn drive<T: Target>(mut target: T, mailbox: Arc<Mailbox>) {
    let mut failing = false;
    loop {
        let result = match mailbox.next().await {
            Item::Op(Op::Show(note)) => target.show(&note).await,
            Item::Op(Op::Withdraw(name)) => target.withdraw(&name).await,
            Item::Test(note, reply) => {
                let outcome = target.show(&note).await;
                let _ = reply.send(match &outcome {
                    Ok(()) => "sent".into(),
                    Err(e) => format!("failed: {e}"),
                });
                outcome
            }
        };
        match result {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "a notification was not delivered");
            }
            Err(e) => tracing::debug!(error = %e, "a notification was not delivered"),
        }
    }
}

/// The policy task: every event through the policy, each operation to every target.
async fn follow(
    mut policy: Policy,
    registry: Registry,
    shared: Arc<Shared>,
    mailboxes: Vec<Arc<Mailbox>>,
) {
    let Ok(mut sub) = registry.subscribe(None).await else {
        return;
    };
    // The registry stays alive while it has subscribers' handles: let ours go.
    drop(registry);
    loop {
        let published = match sub.live.recv().await {
            Ok(p) => p,
            Err(RecvError::Lagged(n)) => {
                // The next event of each session carries its whole state, so nothing
                // is stuck; a transition in between may go unnotified.
                tracing::warn!(missed = n, "notifications fell behind the event bus");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let event = &published.event;
        let Some(session) = &event.session else {
            continue;
        };
        let typed_at = shared.typed.lock().ok().and_then(|mut typed| {
            if event.kind == canopy_protocol::EventKind::SessionRemoved {
                typed.remove(&session.name)
            } else {
                typed.get(&session.name).copied()
            }
        });
        let Some(op) = policy.on_event(event.kind, session, Instant::now(), typed_at) else {
            continue;
        };
        tracing::debug!(session = %op.session(), ?op, "notify");
        for mailbox in &mailboxes {
            mailbox.push(Item::Op(op.clone()));
        }
    }
}

/// Desktop actions, acting as `canopy approve`/`deny`/`attach` would.
async fn answer(daemon: Weak<Daemon>, mut actions: mpsc::Receiver<Action>, open: Option<String>) {
    while let Some(action) = actions.recv().await {
        tracing::info!(session = %action.session, action = %action.key, "notification action");
        let decision = match action.key.as_str() {
            "approve" => method::APPROVE,
            "deny" => method::DENY,
            "open" => {
                open_terminal(open.as_deref(), &action.session);
                continue;
            }
            other => {
                tracing::debug!(action = other, "unknown notification action");
                continue;
            }
        };
        let Some(daemon) = daemon.upgrade() else {
            return;
        };
        let params = DecisionParams {
            name: action.session.clone(),
            reason: None,
        };
        // In its own task: an approve held by a slow session never delays the next.
        tokio::spawn(async move {
            let params = match crate::rpc::encode(&params) {
                Ok(p) => p,
                Err(e) => return tracing::warn!(error = %e.message, "bad decision params"),
            };
            if let Err(e) = crate::rpc::handle(&daemon, decision, &[params]).await {
                tracing::warn!(session = %action.session, error = %e.message, "notification action failed");
            }
        });
    }
}

/// Run the "Open" command for a session: `$TERMINAL -e canopy attach NAME` unless
/// `open_command` says otherwise. Never waited on: the terminal lives as long as the
/// user keeps it.
fn open_terminal(open: Option<&str>, session: &str) {
    let argv = match open {
        Some(command) => shell_words::split(command)
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.replace("{name}", session))
            .collect(),
        None => {
            let terminal =
                std::env::var("TERMINAL").unwrap_or_else(|_| "x-terminal-emulator".into());
            let canopy = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "canopy".into());
            vec![
                terminal,
                "-e".into(),
                canopy,
                "attach".into(),
                session.to_owned(),
            ]
        }
    };
    let Some((program, args)) = argv.split_first() else {
        return;
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match child {
        // Reaped when it ends, so no zombie is left behind.
        Ok(mut child) => {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        Err(e) => tracing::warn!(program = %program, error = %e, "cannot run the open command"),
    }
}

/// The note `canopy notify test` sends.
fn test_note() -> Note {
    let now = crate::clock::now_ms();
    let session = Session {
        name: "canopy-test".into(),
        host: canopy_protocol::LOCAL_HOST.into(),
        stale_since: None,
        env: Default::default(),
        comments: Vec::new(),
        pr: None,
        radar: None,
        agent: String::new(),
        command: Vec::new(),
        repo: String::new(),
        worktree: String::new(),
        branch: String::new(),
        base: String::new(),
        base_commit: String::new(),
        created_at: now,
        state: State::new(StateKind::Idle, StateSource::Host, now),
        health: Default::default(),
        pid: None,
        agent_session_id: None,
        exit_code: None,
        usage: Default::default(),
        task: None,
    };
    Note {
        reason: Reason::Finished,
        urgency: Urgency::Normal,
        summary: "Canopy test notification".into(),
        body: "notifications reach you here".into(),
        session,
    }
}
