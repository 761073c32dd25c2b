//! Request handlers: method name → typed params → result or [`RpcError`].
//!
//! Connection-bound methods (subscribe, attach, input, …) live in
//! [`crate::connection`]; everything here is independent of who asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use canopy_protocol::frame::{self, to_value};
use canopy_protocol::params::{
    CaptureParams, CaptureResult, DecisionParams, Explanation, HelloParams, HelloResult,
    HookParams, HookResult, NameParams, NewParams, RemoveResult, ResumeParams, SendParams,
    ShutdownParams, Signal, StopParams,
};
use canopy_protocol::{
    ErrorCode, PROTOCOL_VERSION, RpcError, Session, State, StateKind, StateSource, method,
};
use rmpv::Value;

use crate::agents::{self, Adapter, Launch, LaunchCtx};
use crate::clock::now_ms;
use crate::daemon::Daemon;
use crate::env::{self, EnvError};
use crate::git::{self, GitError};
use crate::session::{self, Command, Report, SessionHandle, SpawnSpec, keeper};
use std::os::unix::fs::DirBuilderExt;

/// What the host can do, for clients to feature-test in `hello`.
pub const CAPABILITIES: &[&str] = &[
    "sessions",
    "attach",
    "subscribe",
    "subscribe_since",
    "status",
    "hooks",
    "explain",
    "approve",
    "resume",
    "capture",
    "remote",
    "env",
    "notify_test",
    "review",
    "pr",
];

/// Methods whose handlers may take long (git, process stops); connections run them in
/// their own task so other requests on the same connection are not held up.
pub fn is_slow(method: &str) -> bool {
    matches!(
        method,
        method::NEW
            | method::STOP
            | method::RM
            | method::SEND
            | method::SHUTDOWN
            | method::RESUME
            | method::RUN
            // Waits for every notification target.
            | method::NOTIFY_TEST
            // A permission hook may be held until the request is answered.
            | method::HOOK
            // git2 diffs and merges.
            | method::DIFF
            | method::REVIEW_LIST
            | method::REVIEW_ADD
            | method::REVIEW_SEND
            | method::MERGE
            | method::CONFLICTS
    )
}

/// Handle one request that does not depend on the connection.
pub async fn handle(
    daemon: &Arc<Daemon>,
    method: &str,
    params: &[Value],
) -> Result<Value, RpcError> {
    if let Some(host) = crate::remote::addressed_host(method, params) {
        return daemon.remotes.call(&host, method, params).await;
    }
    match method {
        method::HELLO => {
            let p: HelloParams = parse(params)?;
            tracing::debug!(client = %p.client, version = %p.version, "hello");
            encode(&HelloResult {
                protocol: PROTOCOL_VERSION,
                host_version: daemon.info.version.clone(),
                capabilities: CAPABILITIES.iter().map(|c| (*c).to_owned()).collect(),
                pid: daemon.info.pid,
                tasks: Some(
                    tokio::runtime::Handle::current()
                        .metrics()
                        .num_alive_tasks() as u64,
                ),
                boot_id: Some(format!("{}-{}", daemon.info.pid, daemon.info.started_at)),
            })
        }
        method::LIST => encode(&daemon.registry.list().await?),
        method::GET => {
            let p: NameParams = parse(params)?;
            encode(&daemon.registry.get(&p.name).await?.0)
        }
        method::STATUS => {
            let mut status = daemon.registry.status().await?;
            status.notices = daemon.notify.notices();
            encode(&status)
        }
        method::NOTIFY_TEST => encode(&daemon.notify.test().await),
        method::NEW => encode(&new_session(daemon, parse(params)?).await?),
        method::SEND => {
            let p: SendParams = parse(params)?;
            let handle = running(daemon, &p.name).await?;
            type_text(&handle, p.text, p.enter)
                .await
                .ok_or_else(|| exited(&p.name))?;
            Ok(Value::Nil)
        }
        method::STOP => {
            let p: StopParams = parse(params)?;
            encode(&stop(daemon, &p.name, p.force).await?)
        }
        method::RM => {
            let p: StopParams = parse(params)?;
            encode(&remove(daemon, &p.name, p.force).await?)
        }
        method::SHUTDOWN => {
            let p: ShutdownParams = parse(params)?;
            daemon
                .keep_agents
                .store(p.keep_agents, std::sync::atomic::Ordering::Relaxed);
            daemon.shutdown.send_replace(true);
            Ok(Value::Nil)
        }
        method::HOOK => {
            let p: HookParams = parse(params)?;
            let payload: serde_json::Value = serde_json::from_str(&p.payload).map_err(|e| {
                RpcError::new(
                    ErrorCode::InvalidParams,
                    format!("hook payload is not JSON: {e}"),
                )
            })?;
            if !payload.is_object() {
                return Err(RpcError::new(
                    ErrorCode::InvalidParams,
                    "hook payload is not a JSON object",
                ));
            }
            // A hook names its session from the agent's environment; one that names no
            // running session changes nothing (the relay still exits 0 for its agent).
            let handle = running(daemon, &p.session).await.inspect_err(|e| {
                tracing::debug!(session = %p.session, agent = %p.agent, why = %e.message, "hook ignored");
            })?;
            let stdout = handle
                .ask(|reply| Command::Hook { payload, reply })
                .await
                .ok_or_else(|| exited(&p.session))?;
            encode(&HookResult { stdout })
        }
        method::EXPLAIN => {
            let p: NameParams = parse(params)?;
            encode(&explain(daemon, &p.name).await?)
        }
        method::APPROVE | method::DENY => {
            let p: DecisionParams = parse(params)?;
            let approve = method == method::APPROVE;
            let handle = running(daemon, &p.name).await?;
            handle
                .ask(|reply| Command::Answer {
                    approve,
                    reason: p.reason,
                    reply,
                })
                .await
                .ok_or_else(|| exited(&p.name))?
                .map_err(|why| {
                    RpcError::new(
                        ErrorCode::InvalidState,
                        format!("cannot answer {:?}: {why}", p.name),
                    )
                    .with_hint(format!(
                        "`canopy explain {}` shows what it is doing",
                        p.name
                    ))
                })?;
            Ok(Value::Nil)
        }
        method::CAPTURE => {
            let p: CaptureParams = parse(params)?;
            let handle = if p.run {
                run_handle(daemon, &p.name).await?
            } else {
                match running(daemon, &p.name).await {
                    Ok(handle) => handle,
                    Err(e) => {
                        return encode(&setup_output(daemon, &p.name, p.lines).await.ok_or(e)?);
                    }
                }
            };
            let text = handle
                .ask(|reply| Command::Capture {
                    lines: p.lines.map(|n| n as usize),
                    colours: p.colours,
                    reply,
                })
                .await
                .ok_or_else(|| exited(&p.name))?;
            encode(&CaptureResult { text })
        }
        method::RESUME => {
            let p: ResumeParams = parse(params)?;
            encode(&resume(daemon, p).await?)
        }
        method::RUN => {
            let p: NameParams = parse(params)?;
            encode(&start_run(daemon, &p.name).await?)
        }
        method::DIFF
        | method::REVIEW_LIST
        | method::REVIEW_ADD
        | method::REVIEW_SEND
        | method::MERGE
        | method::CONFLICTS
        | method::SET_PR => crate::review::handle(daemon, method, params).await,
        _ => Err(RpcError::new(
            ErrorCode::UnknownMethod,
            format!("unknown method {method:?}"),
        )
        .with_hint("`hello` lists the host's capabilities; docs/protocol.md lists methods")),
    }
}

/// Typed params, or an `invalid_params` error saying what is wrong.
pub fn parse<T: serde::de::DeserializeOwned>(params: &[Value]) -> Result<T, RpcError> {
    frame::params(params)
        .map_err(|e| RpcError::new(ErrorCode::InvalidParams, format!("invalid params: {e}")))
}

pub fn encode<T: serde::Serialize>(value: &T) -> Result<Value, RpcError> {
    to_value(value).map_err(|e| RpcError::new(ErrorCode::Internal, e.to_string()))
}

/// The handle of a session whose agent is running.
pub async fn running(daemon: &Daemon, name: &str) -> Result<SessionHandle, RpcError> {
    daemon
        .registry
        .handle(name)
        .await?
        .ok_or_else(|| exited(name))
}

fn exited(name: &str) -> RpcError {
    RpcError::new(
        ErrorCode::InvalidState,
        format!("session {name:?} is not running"),
    )
    .with_hint(format!("`canopy rm {name}` removes it"))
}

impl From<GitError> for RpcError {
    fn from(e: GitError) -> Self {
        let code = match &e {
            GitError::Exists(_) => ErrorCode::Exists,
            GitError::BadName { .. } => ErrorCode::InvalidParams,
            _ => ErrorCode::Git,
        };
        let hint = match &e {
            GitError::NotARepo(_) => Some("run it inside a git repository, or pass --repo PATH"),
            GitError::NoCommits(_) => Some("make a first commit, then start a session"),
            GitError::BadBase { .. } => Some("--base takes a branch, tag or commit"),
            _ => None,
        };
        let err = RpcError::new(code, e.to_string());
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }
}

/// Run blocking git work off the async threads.
pub(crate) async fn blocking<T: Send + 'static, E: Into<RpcError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, RpcError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(Into::into),
        Err(e) => Err(RpcError::new(
            ErrorCode::Internal,
            format!("git task failed: {e}"),
        )),
    }
}

async fn new_session(daemon: &Arc<Daemon>, p: NewParams) -> Result<Session, RpcError> {
    git::check_session_name(&p.name)?;
    if p.agent.trim().is_empty() {
        return Err(RpcError::new(ErrorCode::InvalidParams, "no agent given"));
    }
    let repo_hint = PathBuf::from(if p.repo.is_empty() { "." } else { &p.repo });
    daemon.registry.reserve(&p.name).await?;
    let prepared = prepare(
        daemon,
        &Prepare {
            name: &p.name,
            agent: &p.agent,
            extra_args: &p.args,
            prompt: p.prompt.as_deref(),
            resume_id: None,
            env: &p.env,
            cwd: &repo_hint,
        },
    );
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            forget_session_dir(daemon, &p.name);
            daemon.registry.release(&p.name).await;
            return Err(e);
        }
    };
    let (name, base, root) = (
        p.name.clone(),
        p.base.clone(),
        daemon
            .config
            .sessions
            .worktree_root(std::env::var_os("HOME").map(PathBuf::from).as_deref()),
    );
    let created =
        blocking(move || git::create_worktree(&repo_hint, &name, base.as_deref(), root.as_deref()))
            .await;
    let wt = match created {
        Ok(wt) => wt,
        Err(e) => {
            forget_session_dir(daemon, &p.name);
            daemon.registry.release(&p.name).await;
            return Err(e);
        }
    };

    if let Some(text) = &p.task_context
        && let Err(e) = write_task_file(&wt.path, text).await
    {
        // The worktree is brand new: removing it loses nothing.
        let fresh = Owned::of_worktree(&p.name, &wt);
        let _ = blocking(move || git::remove_worktree(&fresh.recorded())).await;
        forget_session_dir(daemon, &p.name);
        daemon.registry.release(&p.name).await;
        return Err(RpcError::new(
            ErrorCode::Internal,
            format!("cannot write .canopy/task.md: {e}"),
        ));
    }

    let plan = match plan_env(daemon, &p.name, &wt).await {
        Ok(plan) => plan,
        Err(e) => {
            let fresh = Owned::of_worktree(&p.name, &wt);
            let _ = blocking(move || git::remove_worktree(&fresh.recorded())).await;
            forget_session_dir(daemon, &p.name);
            daemon.registry.release(&p.name).await;
            return Err(e);
        }
    };
    let mut prepared = prepared;
    prepared.env.extend(plan.env.vars.clone());

    let now = now_ms();
    let (rows, cols) = (p.rows.unwrap_or(24).max(1), p.cols.unwrap_or(80).max(1));
    let mut record = Session {
        name: p.name.clone(),
        host: canopy_protocol::LOCAL_HOST.into(),
        stale_since: None,
        agent: prepared.adapter.name().to_owned(),
        command: prepared.command(),
        repo: wt.repo.display().to_string(),
        worktree: wt.path.display().to_string(),
        branch: wt.branch.clone(),
        base: wt.base.clone(),
        base_commit: wt.base_commit.clone(),
        created_at: now,
        state: State::new(StateKind::Starting, StateSource::Host, now),
        health: Default::default(),
        pid: None,
        agent_session_id: prepared.launch.agent_session_id.clone(),
        exit_code: None,
        usage: Default::default(),
        task: p.task.clone(),
        env: plan.env.clone(),
        comments: Vec::new(),
        pr: None,
        radar: None,
    };
    if let Some(first) = plan.setup.first() {
        // The agent starts once the setup has run, off this request.
        record.state.detail = Some(format!("setup: {first}"));
        let record = daemon.registry.insert_pending(record).await;
        if record.is_ok() {
            plan.claim.keep();
        }
        tokio::spawn(set_up(
            daemon.clone(),
            p.name.clone(),
            prepared,
            plan.setup,
            (rows, cols),
        ));
        return record;
    }
    match spawn(daemon, prepared, record, &wt.path, rows, cols).await {
        Ok((record, handle)) => {
            let record = daemon.registry.insert(record, handle).await;
            if record.is_ok() {
                plan.claim.keep();
            }
            if plan.run.is_some()
                && let Err(e) = start_run(daemon, &p.name).await
            {
                tracing::warn!(session = %p.name, error = %e, "dev server not started");
            }
            record
        }
        Err(e) => {
            // The worktree is brand new: removing it loses nothing.
            let fresh = Owned::of_worktree(&p.name, &wt);
            let _ = blocking(move || git::remove_worktree(&fresh.recorded())).await;
            forget_session_dir(daemon, &p.name);
            daemon.registry.release(&p.name).await;
            Err(e)
        }
    }
}

/// The issue context in `<worktree>/.canopy/task.md`, with a `.gitignore` of `*` beside
/// it so the directory stays out of git without touching the user's ignore files.
async fn write_task_file(worktree: &Path, text: &str) -> std::io::Result<()> {
    let dir = worktree.join(".canopy");
    tokio::fs::create_dir_all(&dir).await?;
    tokio::fs::write(dir.join(".gitignore"), "*\n").await?;
    tokio::fs::write(dir.join("task.md"), text).await
}

/// What to launch, before anything is spawned.
struct Prepare<'a> {
    name: &'a str,
    agent: &'a str,
    extra_args: &'a [String],
    prompt: Option<&'a str>,
    resume_id: Option<&'a str>,
    /// The caller's environment (empty: the host's).
    env: &'a BTreeMap<String, String>,
    /// Where a relative program is looked up.
    cwd: &'a Path,
}

/// A launch ready to spawn: the adapter, its plan, the resolved program, the
/// environment.
struct Prepared {
    adapter: Arc<dyn Adapter>,
    launch: Launch,
    program: PathBuf,
    env: BTreeMap<String, String>,
}

impl Prepared {
    fn command(&self) -> Vec<String> {
        let mut command = vec![self.launch.program.clone()];
        command.extend(self.launch.args.iter().cloned());
        command
    }
}

/// Resolve the agent, write its per-launch configuration and find its program.
fn prepare(daemon: &Daemon, req: &Prepare<'_>) -> Result<Prepared, RpcError> {
    let adapter = agents::resolve(req.agent, &daemon.config.agents);
    let session_dir = daemon.session_dir(req.name);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&session_dir)
        .map_err(|e| {
            RpcError::new(
                ErrorCode::Internal,
                format!("cannot create {}: {e}", session_dir.display()),
            )
            .with_hint("Canopy's state directory must be writable and have free space")
        })?;
    let canopy_exe = std::env::current_exe().map_err(|e| {
        RpcError::new(
            ErrorCode::Internal,
            format!("cannot find the canopy executable: {e}"),
        )
    })?;
    let launch = adapter
        .launch(&LaunchCtx {
            session: req.name,
            worktree: req.cwd,
            session_dir: &session_dir,
            canopy_exe: &canopy_exe,
            prompt: req.prompt.filter(|p| !p.is_empty()),
            resume_id: req.resume_id,
            extra_args: req.extra_args,
        })
        .map_err(|e| RpcError::new(ErrorCode::Agent, e.to_string()))?;
    let mut env: BTreeMap<String, String> = if req.env.is_empty() {
        std::env::vars().collect()
    } else {
        req.env.clone()
    };
    let program = resolve_program(&launch.program, &env, req.cwd)
        .map_err(|e| e.with_hint(adapter.install_hint()))?;
    env.extend(launch.env.iter().cloned());
    env.insert("CANOPY_SESSION".into(), req.name.to_owned());
    env.insert(
        "CANOPY_SOCKET".into(),
        daemon.paths.socket.display().to_string(),
    );
    env.entry("TERM".into())
        .or_insert_with(|| "xterm-256color".into());
    Ok(Prepared {
        adapter,
        launch,
        program,
        env,
    })
}

/// Spawn a prepared launch in `worktree` for `record`; the record comes back with the
/// pid filled in.
async fn spawn(
    daemon: &Daemon,
    prepared: Prepared,
    mut record: Session,
    worktree: &Path,
    rows: u16,
    cols: u16,
) -> Result<(Session, SessionHandle), RpcError> {
    let Prepared {
        adapter,
        launch,
        program,
        env,
    } = prepared;
    let spec = SpawnSpec {
        program,
        args: launch.args.clone(),
        cwd: worktree.to_owned(),
        env: env.into_iter().collect(),
        rows,
        cols,
    };
    let order = keeper::Order {
        spec,
        socket: keeper::socket(&daemon.paths.runtime_dir, &record.name),
        meta: keeper::Meta {
            server: launch.server.clone(),
        },
    };
    let (handle, pid) = session::start(
        session::Start {
            name: record.name.clone(),
            terminal: session::Terminal::Spawn(order),
            adapter,
            agent_session_id: launch.agent_session_id.clone(),
            state: record.state.clone(),
            settings: daemon.session_settings(),
            usage: usage_start(daemon, &record),
            active_ms: record.usage.active_ms,
        },
        daemon.reports.clone(),
    )
    .await
    .map_err(|e| {
        RpcError::new(
            ErrorCode::Agent,
            format!("cannot start {}: {e}", launch.program),
        )
    })?;
    daemon.registry.spawned(&record.name, handle.clone()).await;
    record.pid = Some(pid);
    record.state.detail = Some(format!("started pid {pid}"));
    if let Some(prompt) = launch.type_prompt {
        let typed = handle.clone();
        tokio::spawn(async move { type_text(&typed, prompt, true).await });
    }
    Ok((record, handle))
}

/// Type `text` into a session, then (with `enter`) press Enter as a keystroke of its own.
/// `None` when the session has ended.
pub(crate) async fn type_text(handle: &SessionHandle, text: String, enter: bool) -> Option<()> {
    let text = text.into_bytes();
    if enter {
        handle.ask(|reply| Command::Submit { text, reply }).await
    } else if text.is_empty() || handle.send(Command::Input(text)).await {
        Some(())
    } else {
        None
    }
}

/// Remove a session's private directory (generated agent configuration).
fn forget_session_dir(daemon: &Daemon, name: &str) {
    let _ = std::fs::remove_dir_all(daemon.session_dir(name));
}

/// Find the agent program the way the caller's shell would: through its PATH.
fn resolve_program(
    agent: &str,
    env: &BTreeMap<String, String>,
    cwd: &Path,
) -> Result<PathBuf, RpcError> {
    let path = env
        .get("PATH")
        .map(String::as_str)
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    which::which_in(agent, Some(path), cwd).map_err(|_| {
        RpcError::new(
            ErrorCode::Agent,
            format!("agent command {agent:?} not found"),
        )
    })
}

/// The worktree fields of a session record, owned, for blocking git work.
struct Owned {
    name: String,
    repo: PathBuf,
    path: PathBuf,
    branch: String,
    base: String,
    base_commit: String,
}

impl Owned {
    fn of(s: &Session) -> Self {
        Self {
            name: s.name.clone(),
            repo: s.repo.clone().into(),
            path: s.worktree.clone().into(),
            branch: s.branch.clone(),
            base: s.base.clone(),
            base_commit: s.base_commit.clone(),
        }
    }

    fn of_worktree(name: &str, wt: &git::Worktree) -> Self {
        Self {
            name: name.to_owned(),
            repo: wt.repo.clone(),
            path: wt.path.clone(),
            branch: wt.branch.clone(),
            base: wt.base.clone(),
            base_commit: wt.base_commit.clone(),
        }
    }

    fn recorded(&self) -> git::Recorded<'_> {
        git::Recorded {
            name: &self.name,
            repo: &self.repo,
            path: &self.path,
            branch: &self.branch,
            base: &self.base,
            base_commit: &self.base_commit,
        }
    }
}

async fn stop(daemon: &Daemon, name: &str, force: bool) -> Result<Session, RpcError> {
    let (record, handle) = daemon.registry.get(name).await?;
    let run = daemon
        .runs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(name);
    if let Some(run) = run {
        run.ask(|reply| Command::Stop { force, reply }).await;
    }
    let Some(handle) = handle else {
        return Ok(record);
    };
    handle.ask(|reply| Command::Stop { force, reply }).await;
    Ok(daemon.registry.get(name).await?.0)
}

async fn remove(daemon: &Daemon, name: &str, force: bool) -> Result<RemoveResult, RpcError> {
    let (record, _) = daemon.registry.get(name).await?;
    if !force {
        refuse_unsaved_work(&record).await?;
    }
    stop(daemon, name, false).await?;
    // The agent may have written more while it stopped: look again, now that nothing
    // else writes there (it stays stopped; its work and worktree stay too).
    if !force {
        refuse_unsaved_work(&record).await?;
    }
    let teardown_failed = tear_down(daemon, &record).await;
    let wt = Owned::of(&record);
    let removed = blocking(move || git::remove_worktree(&wt.recorded())).await?;
    forget_session_dir(daemon, name);
    daemon.registry.remove(name).await?;
    if let Some(ports) = record.env.ports {
        env::ports::release(ports);
    }
    Ok(RemoveResult {
        kept_branch: removed.kept_branch,
        saved_head: removed.saved_head,
        left_alone: removed.left_alone.map(|p| p.display().to_string()),
        teardown_failed,
    })
}

/// `unsaved_work` listing what removing the session's worktree would lose, if anything.
async fn refuse_unsaved_work(record: &Session) -> Result<(), RpcError> {
    let wt = Owned::of(record);
    let lost = blocking(move || git::unsaved_work(&wt.recorded())).await?;
    if lost.is_empty() {
        return Ok(());
    }
    let name = &record.name;
    Err(RpcError::new(
        ErrorCode::UnsavedWork,
        format!("removing {name:?} would lose work in {}", record.worktree),
    )
    .with_hint(format!(
        "commit and merge (or push) it first, or `canopy rm --force {name}` to throw it away"
    ))
    .with_details(lost))
}

async fn explain(daemon: &Daemon, name: &str) -> Result<Explanation, RpcError> {
    let (record, handle) = daemon.registry.get(name).await?;
    if let Some(handle) = handle
        && let Some(e) = handle.ask(|reply| Command::Explain { reply }).await
    {
        return Ok(Explanation {
            name: name.to_owned(),
            state: e.state,
            health: e.health,
            health_detail: e.health_detail,
            screen: e.screen.map(|c| c.as_str().to_owned()),
            signals: e.signals,
        });
    }
    let mut signals = daemon.registry.signals(name).await?;
    let in_setup = record.state.kind == StateKind::Starting || record.env.setup_failed.is_some();
    if in_setup {
        let dir = daemon.session_dir(name);
        let tail = tokio::task::spawn_blocking(move || crate::env::steps::tail(&dir, 10))
            .await
            .unwrap_or_default();
        signals.push(Signal {
            at: record.state.since,
            source: StateSource::Host,
            event: "setup".into(),
            detail: Some(tail.join("\n")),
            outcome: record.state.detail.clone().unwrap_or_default(),
        });
    }
    Ok(Explanation {
        name: name.to_owned(),
        state: record.state,
        health: record.health,
        health_detail: if in_setup {
            "the agent starts once the setup has run; `canopy capture` shows its output".into()
        } else {
            "the agent is not running".into()
        },
        screen: None,
        signals,
    })
}

/// Relaunch an exited session's agent in its worktree, continuing its conversation.
async fn resume(daemon: &Arc<Daemon>, p: ResumeParams) -> Result<Session, RpcError> {
    let (record, handle) = daemon.registry.get(&p.name).await?;
    if handle.is_some() {
        return Err(RpcError::new(
            ErrorCode::InvalidState,
            format!("session {:?} is running", p.name),
        )
        .with_hint(format!("`canopy attach {}` connects to it", p.name)));
    }
    let worktree = PathBuf::from(&record.worktree);
    if !worktree.is_dir() {
        return Err(RpcError::new(
            ErrorCode::InvalidState,
            format!("the worktree {} is gone", record.worktree),
        ));
    }
    let resume_id = record.agent_session_id.clone();
    let prepared = prepare(
        daemon,
        &Prepare {
            name: &p.name,
            agent: &record.agent,
            extra_args: &[],
            prompt: None,
            resume_id: resume_id.as_deref(),
            env: &p.env,
            cwd: &worktree,
        },
    )?;
    let mut prepared = prepared;
    prepared.env.extend(record.env.vars.clone());
    if record.env.setup_failed.is_some() {
        return set_up_again(daemon, record.clone(), prepared, &p).await;
    }
    let now = now_ms();
    let mut fresh = record.clone();
    fresh.command = prepared.command();
    fresh.state = State::new(StateKind::Starting, StateSource::Host, now);
    fresh.exit_code = None;
    fresh.health = Default::default();
    let (fresh, handle) = spawn(
        daemon,
        prepared,
        fresh,
        &worktree,
        p.rows.unwrap_or(24),
        p.cols.unwrap_or(80),
    )
    .await?;
    let resumed = daemon.registry.relaunched(fresh, handle).await?;
    if resumed.env.url.is_some() && run_handle(daemon, &p.name).await.is_err() {
        let _ = start_run(daemon, &p.name).await;
    }
    Ok(resumed)
}

// Environments (`crate::env`): setup before the agent, the dev server, teardown.

impl From<EnvError> for RpcError {
    fn from(e: EnvError) -> Self {
        let hint = match &e {
            EnvError::RepoFile { .. } => {
                Some("fix the file, or set [repos.\"…\"] in your config.toml")
            }
            EnvError::NoPorts { .. } => {
                Some("set [sessions] port_base or port_block in config.toml")
            }
            _ => None,
        };
        let code = match &e {
            EnvError::RepoFile { .. } => ErrorCode::InvalidParams,
            _ => ErrorCode::Internal,
        };
        let err = RpcError::new(code, e.to_string());
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }
}

/// Run environment work on the blocking pool.
async fn blocking_env<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EnvError> + Send + 'static,
) -> Result<T, RpcError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(RpcError::from),
        Err(e) => Err(RpcError::new(
            ErrorCode::Internal,
            format!("environment task failed: {e}"),
        )),
    }
}

/// Included files, settings, a port block and a browser profile for a new worktree.
async fn plan_env(daemon: &Daemon, name: &str, wt: &git::Worktree) -> Result<env::Plan, RpcError> {
    let used: Vec<[u16; 2]> = daemon
        .registry
        .list()
        .await?
        .iter()
        .filter_map(|s| s.env.ports)
        .collect();
    let (name, repo, worktree) = (name.to_owned(), wt.repo.clone(), wt.path.clone());
    let (session_dir, state_dir) = (daemon.session_dir(&name), daemon.paths.state_dir.clone());
    let user = daemon.config.repos.clone();
    let sessions = &daemon.config.sessions;
    let (port_block, port_base) = (sessions.port_block, sessions.port_base);
    blocking_env(move || {
        env::plan(&env::Request {
            name: &name,
            repo: &repo,
            worktree: &worktree,
            session_dir: &session_dir,
            state_dir: &state_dir,
            user: &user,
            used_ports: &used,
            port_block,
            port_base,
        })
    })
    .await
}

/// Run the setup commands, then start the agent; a failed step leaves the session in
/// `error` with the worktree kept (`resume` runs the setup again, `rm` removes it).
async fn set_up(
    daemon: Arc<Daemon>,
    name: String,
    prepared: Prepared,
    steps: Vec<String>,
    (rows, cols): (u16, u16),
) {
    let Ok((record, _)) = daemon.registry.get(&name).await else {
        return;
    };
    let worktree = PathBuf::from(&record.worktree);
    let dir = daemon.session_dir(&name);
    for step in steps {
        let state = State::new(StateKind::Starting, StateSource::Host, now_ms())
            .with_detail(format!("setup: {step}"));
        let _ = daemon.reports.send(Report::Update {
            name: name.clone(),
            state: Some(state),
            health: None,
            agent_session_id: None,
        });
        let (s, wt, vars, d) = (
            step.clone(),
            worktree.clone(),
            prepared.env.clone(),
            dir.clone(),
        );
        let ran = tokio::task::spawn_blocking(move || env::steps::run(&s, &wt, &vars, &d))
            .await
            .unwrap_or_else(|e| Err(format!("failed: {e}")));
        let Ok((record, _)) = daemon.registry.get(&name).await else {
            // Removed meanwhile: nothing more to do.
            return;
        };
        if let Err(how) = ran {
            let mut env = record.env;
            env.setup_failed = Some(step.clone());
            let state = State::new(StateKind::Error, StateSource::Host, now_ms())
                .with_detail(format!("setup failed: {step} {how}"));
            let _ = daemon.reports.send(Report::Env {
                name,
                env: Box::new(env),
                state,
            });
            return;
        }
    }
    let Ok((mut record, _)) = daemon.registry.get(&name).await else {
        return;
    };
    record.env.setup_failed = None;
    record.state = State::new(StateKind::Starting, StateSource::Host, now_ms());
    let failed = match spawn(&daemon, prepared, record.clone(), &worktree, rows, cols).await {
        Ok((started, handle)) => match daemon.registry.relaunched(started, handle.clone()).await {
            Ok(started) => {
                if started.env.url.is_some()
                    && let Err(e) = start_run(&daemon, &name).await
                {
                    tracing::warn!(session = %name, error = %e, "dev server not started");
                }
                return;
            }
            Err(e) => {
                handle
                    .ask(|reply| Command::Stop { force: true, reply })
                    .await;
                e
            }
        },
        Err(e) => e,
    };
    let _ = daemon.reports.send(Report::Env {
        name,
        env: Box::new(record.env),
        state: State::new(StateKind::Error, StateSource::Host, now_ms())
            .with_detail(failed.message),
    });
}

/// `resume` of a session whose setup failed: the setup (as configured now) again, then
/// the agent.
async fn set_up_again(
    daemon: &Arc<Daemon>,
    record: Session,
    prepared: Prepared,
    p: &ResumeParams,
) -> Result<Session, RpcError> {
    let (user, repo, state_dir) = (
        daemon.config.repos.clone(),
        PathBuf::from(&record.repo),
        daemon.paths.state_dir.clone(),
    );
    let steps = blocking_env(move || {
        Ok(
            env::settings::resolve(&user, &repo, &env::trust::dir(&state_dir))?
                .env
                .setup
                .run,
        )
    })
    .await?;
    let mut env = record.env.clone();
    env.setup_failed = None;
    let state = State::new(StateKind::Starting, StateSource::Host, now_ms()).with_detail(
        steps
            .first()
            .map_or_else(|| "starting".to_owned(), |s| format!("setup: {s}")),
    );
    let _ = daemon.reports.send(Report::Env {
        name: record.name.clone(),
        env: Box::new(env),
        state,
    });
    tokio::spawn(set_up(
        daemon.clone(),
        record.name.clone(),
        prepared,
        steps,
        (p.rows.unwrap_or(24), p.cols.unwrap_or(80)),
    ));
    Ok(daemon.registry.get(&record.name).await?.0)
}

/// Start the session's dev server (`[run]`) in a terminal of its own.
async fn start_run(daemon: &Daemon, name: &str) -> Result<Session, RpcError> {
    let (record, _) = daemon.registry.get(name).await?;
    if run_handle(daemon, name).await.is_ok() {
        return Err(RpcError::new(
            ErrorCode::InvalidState,
            format!("the dev server of {name:?} is running"),
        )
        .with_hint(format!("`canopy capture {name} --run` shows it")));
    }
    let (user, repo, state_dir) = (
        daemon.config.repos.clone(),
        PathBuf::from(&record.repo),
        daemon.paths.state_dir.clone(),
    );
    let run = blocking_env(move || env::run_settings(&user, &repo, &state_dir))
        .await?
        .ok_or_else(|| {
            RpcError::new(
                ErrorCode::InvalidState,
                format!("no dev server is configured for {name:?}"),
            )
            .with_hint(
                "set [run] command = \"…\" in the repository's .canopy.toml (then `canopy trust`) or in [repos.\"…\"] of config.toml",
            )
        })?;
    let worktree = PathBuf::from(&record.worktree);
    let mut vars: BTreeMap<String, String> = std::env::vars().collect();
    vars.extend(record.env.vars.clone());
    vars.entry("TERM".into())
        .or_insert_with(|| "xterm-256color".into());
    let order = keeper::Order {
        spec: SpawnSpec {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), run.command.clone()],
            cwd: worktree,
            env: vars.into_iter().collect(),
            rows: 24,
            cols: 120,
        },
        socket: keeper::socket(&daemon.paths.runtime_dir, &format!("{name}.run")),
        meta: keeper::Meta::default(),
    };
    run_session(daemon, &record, session::Terminal::Spawn(order))
        .await
        .map_err(|e| {
            RpcError::new(
                ErrorCode::Agent,
                format!("cannot start the dev server {:?}: {e}", run.command),
            )
        })?;
    Ok(record)
}

/// Run the dev server of `record` in `terminal` and keep its handle.
async fn run_session(
    daemon: &Daemon,
    record: &Session,
    terminal: session::Terminal,
) -> std::io::Result<()> {
    let now = now_ms();
    // Its state and usage mean nothing to anyone: they are dropped.
    let (reports, mut dropped) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move { while dropped.recv().await.is_some() {} });
    let (handle, _) = session::start(
        session::Start {
            name: record.name.clone(),
            terminal,
            adapter: agents::resolve("sh", &BTreeMap::new()),
            agent_session_id: None,
            state: State::new(StateKind::Starting, StateSource::Host, now),
            settings: daemon.session_settings(),
            usage: session::usage::UsageStart {
                agent: "run".into(),
                worktree: PathBuf::from(&record.worktree),
                base_commit: record.base_commit.clone(),
                created_at: now,
                prices: daemon.prices.clone(),
                earlier: Default::default(),
                // The agent's own usage task already watches this worktree.
                radar: None,
                fs: daemon.fswatch.clone(),
            },
            active_ms: 0,
        },
        reports,
    )
    .await?;
    daemon
        .runs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(record.name.clone(), handle);
    Ok(())
}

/// What an earlier host left running: agents and dev servers whose keepers still hold
/// them.
#[derive(Debug, Default)]
pub struct Left {
    pub agents: Vec<(Session, keeper::Kept)>,
    pub runs: Vec<(Session, keeper::Kept)>,
}

impl Left {
    /// Reach the keepers of the sessions an earlier host recorded as live, all at once:
    /// a keeper that does not answer costs its hello's wait, not the sum of them all.
    pub async fn find(runtime_dir: &Path, records: &[Session]) -> Self {
        let mut reaching = tokio::task::JoinSet::new();
        for record in records {
            let mut reach = |agent: bool, name: &str| {
                let socket = keeper::socket(runtime_dir, name);
                // Most records have no keeper (an exited agent, no dev server): no
                // thread of the blocking pool for those.
                if !socket.exists() {
                    return;
                }
                let record = record.clone();
                reaching.spawn_blocking(move || (agent, record, keeper::adopt(&socket)));
            };
            if record.state.kind.is_live() {
                reach(true, &record.name);
            }
            reach(false, &format!("{}.run", record.name));
        }
        let mut left = Left::default();
        while let Some(reached) = reaching.join_next().await {
            let Ok((agent, record, reached)) = reached else {
                continue;
            };
            match reached {
                Ok(Some(kept)) if agent => left.agents.push((record, kept)),
                Ok(Some(kept)) => left.runs.push((record, kept)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(session = %record.name, error = %e, "cannot reach a keeper");
                }
            }
        }
        left
    }

    /// The sessions whose agents still run.
    pub fn running(&self) -> impl Iterator<Item = &str> {
        self.agents.iter().map(|(s, _)| s.name.as_str())
    }
}

/// Take back what an earlier host left running: each agent goes on in its session,
/// from its recorded state, which its next hook or screen change corrects.
pub async fn take_back(daemon: &Daemon, left: Left) {
    for (record, kept) in left.agents {
        let name = record.name.clone();
        let start = session::Start {
            name: name.clone(),
            terminal: session::Terminal::Kept(kept),
            adapter: agents::resolve(&record.agent, &daemon.config.agents),
            agent_session_id: record.agent_session_id.clone(),
            state: record.state.clone(),
            settings: daemon.session_settings(),
            usage: usage_start(daemon, &record),
            active_ms: record.usage.active_ms,
        };
        match session::start(start, daemon.reports.clone()).await {
            Ok((handle, _)) => daemon.registry.spawned(&name, handle).await,
            Err(e) => tracing::warn!(session = %name, error = %e, "cannot take the agent back"),
        }
    }
    for (record, kept) in left.runs {
        if let Err(e) = run_session(daemon, &record, session::Terminal::Kept(kept)).await {
            tracing::warn!(session = %record.name, error = %e, "cannot take the dev server back");
        }
    }
}

/// Where a session's usage counting starts: what its record has so far.
fn usage_start(daemon: &Daemon, record: &Session) -> session::usage::UsageStart {
    session::usage::UsageStart {
        agent: record.agent.clone(),
        worktree: PathBuf::from(&record.worktree),
        base_commit: record.base_commit.clone(),
        created_at: record.created_at,
        prices: daemon.prices.clone(),
        earlier: record.usage.clone(),
        radar: Some(daemon.radar.clone()),
        fs: daemon.fswatch.clone(),
    }
}

/// The handle of the session's running dev server.
pub async fn run_handle(daemon: &Daemon, name: &str) -> Result<SessionHandle, RpcError> {
    let handle = daemon
        .runs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
        .cloned();
    let alive = match &handle {
        Some(h) => h.ask(|reply| Command::Explain { reply }).await.is_some(),
        None => false,
    };
    match handle {
        Some(handle) if alive => Ok(handle),
        _ => Err(RpcError::new(
            ErrorCode::InvalidState,
            format!("the dev server of {name:?} is not running"),
        )
        .with_hint(format!("`canopy run {name}` starts it"))),
    }
}

/// The setup log, as `capture` shows it while the setup runs or after it failed.
async fn setup_output(daemon: &Daemon, name: &str, lines: Option<u32>) -> Option<CaptureResult> {
    let (record, _) = daemon.registry.get(name).await.ok()?;
    if record.state.kind != StateKind::Starting && record.env.setup_failed.is_none() {
        return None;
    }
    let text = tokio::fs::read(env::steps::log_path(&daemon.session_dir(name)))
        .await
        .ok()?;
    let skip = match lines {
        Some(n) => text
            .split_inclusive(|b| *b == b'\n')
            .count()
            .saturating_sub(n as usize),
        None => 0,
    };
    let text = text
        .split_inclusive(|b| *b == b'\n')
        .skip(skip)
        .flatten()
        .copied()
        .collect();
    Some(CaptureResult { text })
}

/// Run the teardown commands in the session's own worktree; the failed step, if any.
async fn tear_down(daemon: &Daemon, record: &Session) -> Option<String> {
    let (user, state_dir) = (daemon.config.repos.clone(), daemon.paths.state_dir.clone());
    let owned = Owned::of(record);
    let mut vars: BTreeMap<String, String> = std::env::vars().collect();
    vars.extend(record.env.vars.clone());
    let dir = daemon.session_dir(&record.name);
    tokio::task::spawn_blocking(move || {
        if !git::is_own_worktree(&owned.recorded()) {
            return None;
        }
        let steps = match env::teardown(&user, &owned.repo, &state_dir) {
            Ok(steps) => steps,
            Err(e) => return Some(e.to_string()),
        };
        steps.into_iter().find_map(|step| {
            env::steps::run(&step, &owned.path, &vars, &dir)
                .err()
                .map(|how| format!("{step} {how}"))
        })
    })
    .await
    .unwrap_or_else(|e| Some(e.to_string()))
}
