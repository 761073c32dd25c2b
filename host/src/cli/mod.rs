//! The `canopy` command line: one subcommand per job, each a thin client of the host
//! (which any command but `host` starts when none is running).

mod attach;
mod env;
mod error;
mod format;
mod hook;
mod host;
mod issue;
mod pr;
mod review;
mod setup;
mod stdio;
mod usage;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use canopy_protocol::params::{
    CaptureParams, CaptureResult, DecisionParams, Explanation, HelloParams, HelloResult,
    NameParams, NewParams, NotifyTestResult, RemoveResult, ResumeParams, SendParams, Status,
    StopParams, SubscribeParams, SubscribeResult,
};
use canopy_protocol::{Event, EventKind, Message, Session, method};
use clap::{Parser, Subcommand};

pub use error::CliError;

use crate::client::{Client, ClientError};
use crate::clock::now_ms;
use crate::config::Config;
use crate::paths::Paths;
use crate::tracker::context;

#[derive(Debug, Parser)]
#[command(
    name = "canopy",
    version,
    about = "Run many AI coding agents in parallel, one per git worktree",
    long_about = "Run many AI coding agents in parallel, one per git worktree, and watch them \
from the tools you already use. With no command, lists sessions."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create a worktree on branch canopy/NAME and start an agent in it
    New {
        /// Session name: also the branch (canopy/NAME) and the worktree's directory
        /// (default with --issue: KEY-12-short-title)
        #[arg(required_unless_present = "issue")]
        name: Option<String>,
        /// The agent command to run (default: $SHELL)
        #[arg(long, short)]
        agent: Option<String>,
        /// What to branch from (default: the repository's HEAD)
        #[arg(long, short)]
        base: Option<String>,
        /// A path inside the repository (default: the current directory)
        #[arg(long, short)]
        repo: Option<PathBuf>,
        /// Text typed into the agent once it starts
        #[arg(long, short)]
        prompt: Option<String>,
        /// Start from a tracker issue (URL, owner/repo#N, group/project#N, #N or KEY-12): its context
        /// opens the first prompt and is saved in .canopy/task.md
        #[arg(long, value_name = "REF")]
        issue: Option<String>,
        /// If the issue cannot be fetched, start without its context instead of failing
        #[arg(long, requires = "issue")]
        issue_optional: bool,
        /// Start it on this remote host (`[hosts.NAME]`); --repo is then a path there.
        /// An issue is still fetched here, with this machine's tokens
        #[arg(long, requires = "repo")]
        host: Option<String>,
        /// Arguments for the agent command
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Tracker issues as agents get them
    Issue {
        #[command(subcommand)]
        action: IssueAction,
    },
    /// List sessions
    Ls {
        /// One JSON array of sessions
        #[arg(long)]
        json: bool,
    },
    /// Connect this terminal to a session (detach with ctrl-\ by default)
    Attach {
        name: String,
        /// The session's dev server instead of its agent
        #[arg(long)]
        run: bool,
    },
    /// Type text into a session
    Send {
        name: String,
        text: String,
        /// Press Enter after the text
        #[arg(long, short)]
        enter: bool,
    },
    /// Stop a session's agent: SIGTERM, then SIGKILL after the grace period
    Stop {
        name: String,
        /// SIGKILL at once
        #[arg(long, short)]
        force: bool,
    },
    /// Remove a session, its worktree and its branch (refuses if work would be lost)
    #[command(long_about = RM_HELP)]
    Rm {
        name: String,
        /// Remove even if uncommitted or untracked work would be lost (commits are
        /// still kept on a branch)
        #[arg(long, short)]
        force: bool,
    },
    /// The host and a summary of sessions
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Print session events as they happen
    Watch {
        /// One JSON event per line
        #[arg(long)]
        json: bool,
        /// Print the events after --since (or the next one) and exit
        #[arg(long)]
        once: bool,
        /// Start after this event seq
        #[arg(long)]
        since: Option<u64>,
        /// With --once: give up after this many seconds (exit 0, no output)
        #[arg(long)]
        timeout: Option<f64>,
        /// Also raise terminal notifications (OSC 9, 777 or 99, chosen from TERM_PROGRAM
        /// and TERM) by the [notify] policy
        #[arg(long, conflicts_with = "json")]
        notify: bool,
    },
    /// Notifications: `canopy notify test`
    Notify {
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// Run the host in the foreground (other commands start it in the background)
    Host {
        #[command(subcommand)]
        action: Option<HostAction>,
        /// Run detached: log to the state directory, report readiness on stdout
        #[arg(long, hide = true)]
        daemon: bool,
    },
    /// A session's usage: model, cost, tokens, context, tools, time, lines changed
    Inspect {
        name: String,
        /// The session record (with its usage) as JSON
        #[arg(long)]
        json: bool,
    },
    /// Usage and cost over all sessions, finished ones included
    Report {
        /// Only sessions started on or after this day (YYYY-MM-DD, UTC)
        #[arg(long)]
        since: Option<String>,
        /// How to group the sessions
        #[arg(long, value_enum, default_value = "day")]
        by: usage::By,
        /// The rows as JSON
        #[arg(long)]
        json: bool,
    },
    /// Print a running session's scrollback and screen (like `tmux capture-pane`)
    Capture {
        name: String,
        /// Only the last N lines
        #[arg(long, short = 'n', value_name = "N")]
        lines: Option<u32>,
        /// Keep the colours (SGR escape sequences), for `less -R`
        #[arg(long, short = 'e')]
        escapes: bool,
        /// The session's dev server instead of its agent
        #[arg(long)]
        run: bool,
    },
    /// Approve the repository's .canopy.toml (shows its commands): its setup, teardown
    /// and run commands run only while this exact file is approved
    Trust {
        /// A path inside the repository (default: the current directory)
        #[arg(long, short)]
        repo: Option<PathBuf>,
        /// Withdraw the approval
        #[arg(long)]
        revoke: bool,
    },
    /// Start a session's dev server ([run] command) in its own terminal
    Run { name: String },
    /// Open the session's dev server (or URL) in a Chromium-family browser with the
    /// session's own profile ($CANOPY_BROWSER, else chromium, google-chrome, brave…)
    Open { name: String, url: Option<String> },
    /// Print what a session's processes get (ports, browser profile, …) as shell lines
    Env { name: String },
    /// Why a session is in its state, and the signals that led there
    Explain {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Answer a session's pending permission request with yes
    Approve { name: String },
    /// Answer a session's pending permission request with no
    Deny {
        name: String,
        /// What the agent should do instead
        reason: Option<String>,
    },
    /// Relaunch an exited session's agent, continuing its conversation
    Resume { name: String },
    /// Keep an agent's terminal for the host, so the agent outlives it (started by the
    /// host, not by people)
    #[command(hide = true)]
    Keep,
    /// Relay an agent hook to the host (run by the agents' hooks, not by people)
    #[command(hide = true)]
    Hook {
        #[arg(long)]
        agent: String,
        /// The payload when the agent passes it as an argument (else read from stdin)
        payload: Option<String>,
    },
    /// Bridge stdin and stdout to the host's socket, after a `CANOPY1` line (what a hub
    /// runs over ssh to reach this machine)
    Stdio,
    /// The remote hosts of the config and the state of their links
    Hosts {
        #[arg(long)]
        json: bool,
    },
    /// A session's whole change against its base: commits, staged, unstaged and
    /// untracked files
    Diff {
        name: String,
        /// Files with their added and removed line counts (with --json: the files
        /// without their hunks)
        #[arg(long)]
        stat: bool,
        /// Files, hunks and lines (with old and new numbers) as JSON
        #[arg(long)]
        json: bool,
        /// Only these paths (relative to the worktree)
        #[arg(last = true)]
        paths: Vec<String>,
    },
    /// Review comments on a session's change: list them, add one, or send them all to
    /// the agent
    Review {
        name: String,
        /// Add a comment on line LINE of PATH (as the worktree has it now)
        #[arg(long, num_args = 2, value_names = ["PATH:LINE", "TEXT"])]
        comment: Option<Vec<String>>,
        /// Send every comment to the agent as one prompt, then clear them
        #[arg(long, conflicts_with = "comment")]
        send: bool,
        #[arg(long)]
        json: bool,
    },
    /// Merge a session's branch into its base in the main checkout (refuses, changing
    /// nothing, when the checkout is dirty or on another branch, or the merge conflicts)
    Merge {
        name: String,
        /// One commit with the branch's whole change instead of a merge
        #[arg(long)]
        squash: bool,
        /// Replay the branch's commits on the base's tip and fast-forward the base
        /// (linear history, no merge commit)
        #[arg(long, conflicts_with = "squash")]
        rebase: bool,
        /// The branch to merge into (default: the session's base)
        #[arg(long, value_name = "BRANCH")]
        into: Option<String>,
    },
    /// Push a session's branch and open a GitHub pull request or GitLab merge request
    /// for it (or find the open one; run again to refresh its state)
    Pr {
        name: String,
        /// Open it as a draft
        #[arg(long)]
        draft: bool,
        /// Its title (default: the issue's title, else the branch's first commit)
        #[arg(long, value_name = "T")]
        title: Option<String>,
        /// The remote branch to merge into (default: the base's upstream branch, else
        /// the base)
        #[arg(long, value_name = "B")]
        base: Option<String>,
    },
    /// Files changed by more than one live session, and sessions whose branch no longer
    /// merges cleanly into their base
    Conflicts {
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script
    Completions { shell: clap_complete::Shell },
    /// Print the snippet that sets up Canopy in another tool (e.g. wezterm.lua)
    Setup {
        #[arg(value_enum)]
        target: setup::Target,
        /// Install the plugin first (into --dir)
        #[arg(long)]
        write: bool,
        /// Where the plugin lives (default: ~/.config/wezterm/canopy; for zellij ~/.config/zellij)
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// What `canopy rm` does in each case; docs/safety.md says the same at more length.
const RM_HELP: &str =
    "Remove a session: stop its agent, delete its worktree, and delete its branch \
canopy/NAME.

Without --force, rm refuses (and lists what would be lost, leaving the agent running) when:
  - the worktree has uncommitted, staged, untracked or conflicted files (ignored files
    are not work: they go with the worktree, as with `git worktree remove`);
  - the branch or a detached HEAD has commits found nowhere else: not in the base, not
    on any other branch or tag, not pushed to any remote (a branch with an upstream that
    is ahead of it counts);
  - the worktree is locked (`git worktree lock`);
  - the worktree is missing: deleted, or moved with plain `mv` (after `git worktree
    repair NEW_PATH`, rm finds it in its new place);
  - something else is at its path (a directory, a symlink, another worktree).
A worktree moved with `git worktree move` is followed: checked and removed where it is.

--force is the only way past a refusal. It throws away uncommitted and untracked files in
the session's own worktree, and nothing else: rm never deletes outside that worktree (a
missing worktree or something else at its path is left alone and only forgotten), and it
never deletes a commit: a branch with commits found nowhere else is kept (delete it with
`git branch -D canopy/NAME`), and commits on a detached HEAD are kept on a new branch
canopy/NAME-detached-<commit>.";

#[derive(Debug, Subcommand)]
enum IssueAction {
    /// Fetch an issue and print its context exactly as `new --issue` gives it to the agent
    Show {
        /// URL, owner/repo#N, #N or KEY-12
        reference: String,
        /// A path inside the repository (for #N and .canopy.toml; default: here)
        #[arg(long, short)]
        repo: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum NotifyAction {
    /// Print the host's [notify] settings and send a test notification through each target
    Test,
}

#[derive(Debug, Subcommand)]
enum HostAction {
    /// Stop the host gracefully (agents are stopped, records kept)
    Stop,
    /// Restart the host, leaving every agent running (after an upgrade, to use the new
    /// binary)
    Restart,
}

/// Let a closed stdout end the process quietly, as it ends `cat` (`canopy ls | head`).
/// Rust ignores SIGPIPE, which turns every print into a panic once the reader has
/// gone. Not for the host (a client closing its socket is routine) nor `canopy hook`
/// (which must exit 0 whatever its agent does with its output).
fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to the default, before any threads start.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Entry point of the `canopy` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let paths = Paths::from_env();
    if !matches!(
        cli.command,
        Some(Cmd::Host { action: None, .. } | Cmd::Hook { .. } | Cmd::Keep)
    ) {
        restore_sigpipe();
    }
    // These run before (or without) the CLI's runtime.
    let command = match cli.command {
        Some(Cmd::Host {
            action: None,
            daemon,
        }) => return host::run(paths, daemon),
        Some(Cmd::Hook { agent, payload }) => return hook::run(&paths, agent, payload),
        Some(Cmd::Keep) => return crate::session::keeper::main(),
        Some(Cmd::Setup { target, write, dir }) => {
            return match setup::run(&paths, target, write, dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => e.report(),
            };
        }
        other => other,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return CliError::new(format!("cannot start: {e}")).report(),
    };
    let result = runtime.block_on(run(command.unwrap_or(Cmd::Ls { json: false }), paths));
    // Don't wait for a blocked stdin reader thread (attach) to notice.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

/// Connect (starting a host if none answers) and shake hands. A host that dies between
/// our connect and its answer (being stopped or killed just then) is tried once more.
async fn connect(paths: &Paths) -> Result<Client, CliError> {
    let hello = HelloParams {
        client: "canopy-cli".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let mut retried = false;
    loop {
        let mut client = Client::connect_or_start(paths).await?;
        match client.call::<_, HelloResult>(method::HELLO, &hello).await {
            Ok(_) => return Ok(client),
            Err(ClientError::Io(_) | ClientError::Closed) if !retried => retried = true,
            Err(e) => return Err(e.into()),
        }
    }
}

async fn run(cmd: Cmd, paths: Paths) -> Result<(), CliError> {
    match cmd {
        Cmd::New {
            name,
            agent,
            base,
            repo,
            prompt,
            issue,
            issue_optional,
            host,
            args,
        } => {
            let here = std::env::current_dir()?;
            // A remote repository is a path on that machine: taken as given.
            let repo = match (repo, &host) {
                (Some(r), Some(_)) => r,
                (Some(r), None) => std::path::absolute(r)?,
                (None, _) => here.clone(),
            };
            let issue_repo = if host.is_some() { &here } else { &repo };
            // Fetched before anything is created, so a failure leaves nothing behind.
            let (mut prompt, mut task, mut task_context, mut default_name) =
                (prompt, None, None, None);
            if let Some(reference) = issue {
                match issue::fetch(&paths, &reference, issue_repo).await {
                    Ok(fetched) => {
                        prompt = Some(context::prompt(&fetched.context, prompt.as_deref()));
                        default_name = Some(fetched.name);
                        task = Some(fetched.task);
                        task_context = Some(fetched.context);
                    }
                    Err(failed) => match failed.fallback_name {
                        Some(fallback) if issue_optional => {
                            eprintln!(
                                "warning: {}; starting without the issue's context (--issue-optional)",
                                failed.error.message
                            );
                            default_name = Some(fallback);
                        }
                        Some(_) => {
                            let hint = failed.error.hint.clone().unwrap_or_default();
                            return Err(failed.error.with_hint(format!(
                                "{hint}; or pass --issue-optional to start without it"
                            )));
                        }
                        None => return Err(failed.error),
                    },
                }
            }
            let Some(name) = name.or(default_name) else {
                return Err(CliError::new("a session name is needed"));
            };
            let agent = agent
                .or_else(|| std::env::var("SHELL").ok().filter(|s| !s.is_empty()))
                .unwrap_or_else(|| "/bin/sh".to_owned());
            let mut words = shell_words::split(&agent)
                .map_err(|e| CliError::new(format!("cannot parse --agent {agent:?}: {e}")))?;
            if words.is_empty() {
                return Err(CliError::new("--agent is empty"));
            }
            let program = words.remove(0);
            words.extend(args);
            let (cols, rows) = crossterm::terminal::size().unwrap_or((80, 24));
            let params = NewParams {
                name: name.clone(),
                repo: repo.display().to_string(),
                agent: program,
                args: words,
                base,
                prompt,
                task,
                task_context,
                env: std::env::vars().collect::<BTreeMap<_, _>>(),
                rows: Some(rows),
                cols: Some(cols),
                host,
            };
            let mut client = connect(&paths).await?;
            let s: Session = client.call(method::NEW, &params).await?;
            // The agent's name, not its command line: that carries the hook settings.
            println!(
                "{}: {} in {} (branch {}, pid {})",
                s.name,
                s.agent,
                s.worktree,
                s.branch,
                s.pid.map_or_else(|| "-".into(), |p| p.to_string())
            );
            if let Some(path) = &s.env.untrusted {
                eprintln!(
                    "note: {}",
                    crate::env::untrusted_note(
                        std::path::Path::new(path),
                        std::path::Path::new(&s.repo)
                    )
                );
            }
            if s.pid.is_none() && s.state.kind == canopy_protocol::StateKind::Starting {
                println!(
                    "{}: {}; the agent starts after it (`canopy capture {}` shows the output)",
                    s.name,
                    s.state.detail.as_deref().unwrap_or("setting up"),
                    s.name
                );
            }
            if let Some(task) = &s.task {
                println!(
                    "task: {} {} — {} ({})",
                    task.tracker, task.id, task.title, task.url
                );
            }
            if std::io::stdout().is_terminal() {
                println!("attach with `canopy attach {}`", s.name);
            }
        }
        Cmd::Issue {
            action: IssueAction::Show { reference, repo },
        } => issue::show(&paths, &reference, repo).await?,
        Cmd::Ls { json } => {
            let sessions: Vec<Session> = connect(&paths)
                .await?
                .call(method::LIST, &NameParams::default())
                .await?;
            if json {
                print_json(&sessions)?;
            } else {
                print!("{}", format::session_table(&sessions, now_ms()));
            }
        }
        Cmd::Inspect { name, json } => {
            let session: Session = connect(&paths)
                .await?
                .call(method::GET, &NameParams { name })
                .await?;
            if json {
                print_json(&session)?;
            } else {
                print!("{}", usage::inspect(&session, now_ms()));
            }
        }
        Cmd::Report { since, by, json } => {
            let since = since.as_deref().map(usage::parse_since).transpose()?;
            let sessions: Vec<Session> = connect(&paths)
                .await?
                .call(method::LIST, &NameParams::default())
                .await?;
            let rows = usage::report(&sessions, since.unwrap_or(0), by);
            if json {
                print_json(&rows)?;
            } else {
                print!("{}", usage::report_table(&rows, by));
            }
        }
        Cmd::Attach { name, run } => {
            let config = Config::load(&paths.config_file)?;
            let client = connect(&paths).await?;
            let line = attach::run(client, &name, config.attach.detach_key.0, run).await?;
            println!("{line}");
        }
        Cmd::Send { name, text, enter } => {
            let _: () = connect(&paths)
                .await?
                .call(method::SEND, &SendParams { name, text, enter })
                .await?;
        }
        Cmd::Stop { name, force } => {
            let s: Session = connect(&paths)
                .await?
                .call(method::STOP, &StopParams { name, force })
                .await?;
            println!(
                "{}: {}",
                s.name,
                s.state.detail.as_deref().unwrap_or(s.state.kind.as_str())
            );
        }
        Cmd::Rm { name, force } => {
            let removed: Option<RemoveResult> = connect(&paths)
                .await?
                .call(
                    method::RM,
                    &StopParams {
                        name: name.clone(),
                        force,
                    },
                )
                .await?;
            let removed = removed.unwrap_or_default();
            match &removed.kept_branch {
                Some(branch) => println!(
                    "{name}: removed the worktree; kept branch {branch}: it has commits found nowhere else"
                ),
                None => println!("{name}: removed worktree and branch"),
            }
            if let Some(saved) = removed.saved_head {
                println!("{name}: the detached HEAD's commits are kept on branch {saved}");
            }
            if let Some(step) = removed.teardown_failed {
                println!("{name}: teardown failed: {step} (the worktree was removed all the same)");
            }
            if let Some(path) = removed.left_alone {
                println!("{name}: left {path} alone: it is not this session's worktree");
            }
        }
        Cmd::Status { json } => {
            let st: Status = connect(&paths)
                .await?
                .call(method::STATUS, &NameParams::default())
                .await?;
            if json {
                print_json(&st)?;
            } else {
                print!("{}", format::status(&st, now_ms()));
            }
        }
        Cmd::Watch {
            json,
            once,
            since,
            timeout,
            notify,
        } => {
            // The same policy as the host's, applied here to this terminal.
            let policy = if notify {
                let config = Config::load(&paths.config_file)?.notify;
                config.enabled.then(|| crate::notify::Policy::new(config))
            } else {
                None
            };
            watch(&paths, json, once, since, timeout, policy).await?
        }
        Cmd::Notify {
            action: NotifyAction::Test,
        } => {
            let result: NotifyTestResult = connect(&paths)
                .await?
                .call(method::NOTIFY_TEST, &NameParams::default())
                .await?;
            println!("[notify] (as the host read it)");
            for line in &result.settings {
                println!("  {line}");
            }
            println!("test notification:");
            for line in &result.targets {
                println!("  {line}");
            }
        }
        Cmd::Host {
            action: Some(HostAction::Stop),
            ..
        } => host::stop(&paths).await?,
        Cmd::Host {
            action: Some(HostAction::Restart),
            ..
        } => host::restart(&paths).await?,
        Cmd::Capture {
            name,
            lines,
            escapes,
            run,
        } => {
            let captured: CaptureResult = connect(&paths)
                .await?
                .call(
                    method::CAPTURE,
                    &CaptureParams {
                        name,
                        lines,
                        colours: escapes,
                        run,
                    },
                )
                .await?;
            let mut out = std::io::stdout().lock();
            out.write_all(&captured.text)?;
            out.flush()?;
        }
        Cmd::Explain { name, json } => {
            let e: Explanation = connect(&paths)
                .await?
                .call(method::EXPLAIN, &NameParams { name })
                .await?;
            if json {
                print_json(&e)?;
            } else {
                print!("{}", format::explanation(&e, now_ms()));
            }
        }
        Cmd::Approve { name } => {
            let _: () = connect(&paths)
                .await?
                .call(
                    method::APPROVE,
                    &DecisionParams {
                        name: name.clone(),
                        reason: None,
                    },
                )
                .await?;
            println!("{name}: approved");
        }
        Cmd::Deny { name, reason } => {
            let _: () = connect(&paths)
                .await?
                .call(
                    method::DENY,
                    &DecisionParams {
                        name: name.clone(),
                        reason,
                    },
                )
                .await?;
            println!("{name}: denied");
        }
        Cmd::Resume { name } => {
            let (cols, rows) = crossterm::terminal::size().unwrap_or((80, 24));
            let params = ResumeParams {
                name,
                env: std::env::vars().collect(),
                rows: Some(rows),
                cols: Some(cols),
            };
            let s: Session = connect(&paths).await?.call(method::RESUME, &params).await?;
            println!(
                "{}: resumed {} (pid {})",
                s.name,
                s.agent,
                s.pid.map_or_else(|| "-".into(), |p| p.to_string())
            );
        }
        Cmd::Trust { repo, revoke } => env::trust(&paths, repo, revoke)?,
        Cmd::Run { name } => {
            let s: Session = connect(&paths)
                .await?
                .call(method::RUN, &NameParams { name })
                .await?;
            println!(
                "{}: dev server started{} (`canopy capture {} --run` shows it)",
                s.name,
                s.env.url.map(|u| format!(" at {u}")).unwrap_or_default(),
                s.name
            );
        }
        Cmd::Open { name, url } => {
            let s: Session = connect(&paths)
                .await?
                .call(method::GET, &NameParams { name })
                .await?;
            env::open(&s, url)?;
        }
        Cmd::Env { name } => {
            let s: Session = connect(&paths)
                .await?
                .call(method::GET, &NameParams { name })
                .await?;
            env::print_env(&s);
        }
        Cmd::Host { action: None, .. } | Cmd::Hook { .. } | Cmd::Keep | Cmd::Setup { .. } => {
            unreachable!("handled before the runtime starts")
        }
        Cmd::Stdio => stdio::run(&paths).await?,
        Cmd::Hosts { json } => {
            let config = Config::load(&paths.config_file)?;
            let st: Status = connect(&paths)
                .await?
                .call(method::STATUS, &NameParams::default())
                .await?;
            if json {
                print_json(&st.hosts)?;
            } else if config.hosts.is_empty() && st.hosts.is_empty() {
                println!(
                    "no remote hosts; add one with [hosts.NAME] ssh = \"ALIAS\" in {}",
                    paths.config_file.display()
                );
            } else {
                for link in &st.hosts {
                    let sessions = st.sessions.iter().filter(|s| s.host == link.name).count();
                    print!(
                        "{}",
                        format::host_line(link, now_ms()).replacen(
                            '\n',
                            &format!(" ({sessions} sessions)\n"),
                            1
                        )
                    );
                }
                for name in config
                    .hosts
                    .keys()
                    .filter(|n| !st.hosts.iter().any(|l| &&l.name == n))
                {
                    println!(
                        "host {name}: not linked yet (the host reads the config when it starts: `canopy host stop`)"
                    );
                }
            }
        }
        Cmd::Diff {
            name,
            stat,
            json,
            paths: only,
        } => review::diff(&paths, name, stat, json, only).await?,
        Cmd::Review {
            name,
            comment,
            send,
            json,
        } => review::review(&paths, name, comment, send, json).await?,
        Cmd::Merge {
            name,
            squash,
            rebase,
            into,
        } => review::merge(&paths, name, squash, rebase, into).await?,
        Cmd::Pr {
            name,
            draft,
            title,
            base,
        } => {
            let args = pr::Args {
                name,
                draft,
                title,
                base,
            };
            pr::pr(&paths, args).await?
        }
        Cmd::Conflicts { json } => review::conflicts(&paths, json).await?,
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "canopy", &mut std::io::stdout());
        }
    }
    Ok(())
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| CliError::new(e.to_string()))?;
    writeln!(out)?;
    Ok(())
}

async fn watch(
    paths: &Paths,
    json: bool,
    once: bool,
    since: Option<u64>,
    timeout: Option<f64>,
    mut notify: Option<crate::notify::Policy>,
) -> Result<(), CliError> {
    let osc = crate::notify::osc::Osc::for_terminal(
        std::env::var("TERM_PROGRAM").ok().as_deref(),
        std::env::var("TERM").ok().as_deref(),
    );
    let mut client = connect(paths).await?;
    let subscribed: SubscribeResult = client
        .call(method::SUBSCRIBE, &SubscribeParams { since })
        .await?;
    // With --once: the replay (events after `since` up to `subscribed.seq`) if there is
    // one, else the next live event.
    let replay_until = since
        .filter(|s| *s < subscribed.seq)
        .map(|_| subscribed.seq);
    let deadline = timeout
        .and_then(|t| Duration::try_from_secs_f64(t).ok())
        .map(|d| tokio::time::Instant::now() + d);
    let mut out = std::io::stdout();
    loop {
        let next = client.reader.next();
        let msg = match deadline {
            Some(d) => match tokio::time::timeout_at(d, next).await {
                Ok(msg) => msg?,
                Err(_) => return Ok(()),
            },
            None => next.await?,
        };
        let Some(msg) = msg else {
            return Err(CliError::new("the host closed the connection"));
        };
        let Message::Notification { method, params } = msg else {
            continue;
        };
        if method != method::EVENT {
            continue;
        }
        let event: Event = canopy_protocol::frame::params(&params)
            .map_err(|e| CliError::new(format!("bad event from the host: {e}")))?;
        if let (Some(policy), Some(session)) = (&mut notify, &event.session)
            && let Some(crate::notify::Op::Show(note)) =
                policy.on_event(event.kind, session, std::time::Instant::now(), None)
        {
            // Numbered by event so kitty shows each as its own notification.
            write!(out, "{}", osc.sequence(&note, event.seq as u32))?;
        }
        if json {
            serde_json::to_writer(&mut out, &event).map_err(|e| CliError::new(e.to_string()))?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", describe_event(&event))?;
        }
        out.flush()?;
        let replay_done =
            replay_until.is_none_or(|until| event.seq >= until || event.kind == EventKind::Resync);
        if once && replay_done {
            return Ok(());
        }
    }
}

fn describe_event(e: &Event) -> String {
    if let Some(link) = &e.host {
        return format!(
            "#{} host {} {}{}",
            e.seq,
            link.name,
            link.state.as_str(),
            link.detail
                .as_deref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default()
        );
    }
    let Some(s) = &e.session else {
        return format!(
            "#{} resync: events were missed; re-read with `canopy ls`",
            e.seq
        );
    };
    let what = match e.kind {
        EventKind::SessionAdded => "added",
        EventKind::SessionRemoved => "removed",
        EventKind::SessionChanged | EventKind::Resync | EventKind::HostChanged => "",
    };
    let state = format::state_label(s);
    let detail = s
        .state
        .detail
        .as_deref()
        .map(|d| format!(" — {d}"))
        .unwrap_or_default();
    format!(
        "#{} {} {what}{}{state}{detail}",
        e.seq,
        s.name,
        if what.is_empty() { "" } else { " " }
    )
}
