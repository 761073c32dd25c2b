//! Request handlers: method name → typed params → result or [`RpcError`].
//!
//! Connection-bound methods (subscribe, attach, input, …) live in
//! [`crate::connection`]; everything here is independent of who asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use canopy_protocol::frame::{self, to_value};
use canopy_protocol::params::{
    HelloParams, HelloResult, NameParams, NewParams, SendParams, StopParams,
};
use canopy_protocol::{
    ErrorCode, PROTOCOL_VERSION, RpcError, Session, State, StateKind, StateSource, method,
};
use rmpv::Value;

use crate::clock::now_ms;
use crate::daemon::Daemon;
use crate::git::{self, GitError};
use crate::session::{self, Command, SessionHandle, SpawnSpec};

/// What the host can do, for clients to feature-test in `hello`.
pub const CAPABILITIES: &[&str] = &[
    "sessions",
    "attach",
    "subscribe",
    "subscribe_since",
    "status",
];

/// Methods whose handlers may take long (git, process stops); connections run them in
/// their own task so other requests on the same connection are not held up.
pub fn is_slow(method: &str) -> bool {
    matches!(
        method,
        method::NEW | method::STOP | method::RM | method::SEND | method::SHUTDOWN
    )
}

/// Handle one request that does not depend on the connection.
pub async fn handle(
    daemon: &Arc<Daemon>,
    method: &str,
    params: &[Value],
) -> Result<Value, RpcError> {
    match method {
        method::HELLO => {
            let p: HelloParams = parse(params)?;
            tracing::debug!(client = %p.client, version = %p.version, "hello");
            encode(&HelloResult {
                protocol: PROTOCOL_VERSION,
                host_version: daemon.info.version.clone(),
                capabilities: CAPABILITIES.iter().map(|c| (*c).to_owned()).collect(),
                pid: daemon.info.pid,
            })
        }
        method::LIST => encode(&daemon.registry.list().await?),
        method::GET => {
            let p: NameParams = parse(params)?;
            encode(&daemon.registry.get(&p.name).await?.0)
        }
        method::STATUS => encode(&daemon.registry.status().await?),
        method::NEW => encode(&new_session(daemon, parse(params)?).await?),
        method::SEND => {
            let p: SendParams = parse(params)?;
            let handle = running(daemon, &p.name).await?;
            let mut data = p.text.into_bytes();
            if p.enter {
                data.push(b'\r');
            }
            if !handle.send(Command::Input(data)).await {
                return Err(exited(&p.name));
            }
            Ok(Value::Nil)
        }
        method::STOP => {
            let p: StopParams = parse(params)?;
            encode(&stop(daemon, &p.name, p.force).await?)
        }
        method::RM => {
            let p: StopParams = parse(params)?;
            remove(daemon, &p.name, p.force).await?;
            Ok(Value::Nil)
        }
        method::SHUTDOWN => {
            daemon.shutdown.send_replace(true);
            Ok(Value::Nil)
        }
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
    match daemon.registry.get(name).await? {
        (_, Some(handle)) => Ok(handle),
        (_, None) => Err(exited(name)),
    }
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
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<T, RpcError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(RpcError::from),
        Err(e) => Err(RpcError::new(
            ErrorCode::Internal,
            format!("git task failed: {e}"),
        )),
    }
}

async fn new_session(daemon: &Arc<Daemon>, p: NewParams) -> Result<Session, RpcError> {
    git::check_session_name(&p.name)?;
    if p.agent.trim().is_empty() {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            "no agent command given",
        ));
    }
    let repo_hint = PathBuf::from(if p.repo.is_empty() { "." } else { &p.repo });
    let mut env: BTreeMap<String, String> = if p.env.is_empty() {
        std::env::vars().collect()
    } else {
        p.env.clone()
    };
    let program = resolve_program(&p.agent, &env, &repo_hint)?;

    daemon.registry.reserve(&p.name).await?;
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
            daemon.registry.release(&p.name).await;
            return Err(e);
        }
    };

    env.insert("CANOPY_SESSION".into(), p.name.clone());
    env.insert(
        "CANOPY_SOCKET".into(),
        daemon.paths.socket.display().to_string(),
    );
    env.entry("TERM".into())
        .or_insert_with(|| "xterm-256color".into());
    let (rows, cols) = (p.rows.unwrap_or(24).max(1), p.cols.unwrap_or(80).max(1));
    let spec = SpawnSpec {
        program,
        args: p.args.clone(),
        cwd: wt.path.clone(),
        env: env.into_iter().collect(),
        rows,
        cols,
    };
    let started = session::start(
        p.name.clone(),
        &spec,
        daemon.session_settings(),
        daemon.reports.clone(),
    );
    let (handle, pid) = match started {
        Ok(started) => started,
        Err(e) => {
            // The worktree is brand new: removing it loses nothing.
            let fresh = Owned::of_worktree(&p.name, &wt);
            let _ = blocking(move || git::remove_worktree(&fresh.recorded())).await;
            daemon.registry.release(&p.name).await;
            return Err(RpcError::new(
                ErrorCode::Agent,
                format!("cannot start {:?}: {e}", p.agent),
            ));
        }
    };

    let now = now_ms();
    let mut command = vec![p.agent.clone()];
    command.extend(p.args.iter().cloned());
    let record = Session {
        name: p.name.clone(),
        agent: agent_name(&p.agent),
        command,
        repo: wt.repo.display().to_string(),
        worktree: wt.path.display().to_string(),
        branch: wt.branch.clone(),
        base: wt.base.clone(),
        base_commit: wt.base_commit.clone(),
        created_at: now,
        state: State::new(StateKind::Starting, StateSource::Host, now)
            .with_detail(format!("started pid {pid}")),
        health: Default::default(),
        pid: Some(pid),
        exit_code: None,
        usage: Default::default(),
        task: None,
    };
    if let Some(prompt) = p.prompt.filter(|t| !t.is_empty()) {
        let mut data = prompt.into_bytes();
        data.push(b'\r');
        handle.send(Command::Input(data)).await;
    }
    daemon.registry.insert(record, handle).await
}

/// The agent's short name: the program's file name.
fn agent_name(agent: &str) -> String {
    Path::new(agent)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| agent.to_owned())
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
        .with_hint("install it, or give --agent a full path")
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
    let Some(handle) = handle else {
        return Ok(record);
    };
    handle.ask(|reply| Command::Stop { force, reply }).await;
    Ok(daemon.registry.get(name).await?.0)
}

async fn remove(daemon: &Daemon, name: &str, force: bool) -> Result<(), RpcError> {
    let (record, _) = daemon.registry.get(name).await?;
    let wt = Owned::of(&record);
    if !force {
        let wt = Owned::of(&record);
        let lost = blocking(move || git::unsaved_work(&wt.recorded())).await?;
        if !lost.is_empty() {
            return Err(RpcError::new(
                ErrorCode::UnsavedWork,
                format!("removing {name:?} would lose work in {}", record.worktree),
            )
            .with_hint(format!(
                "commit and merge (or push) it first, or `canopy rm --force {name}` to throw it away"
            ))
            .with_details(lost));
        }
    }
    stop(daemon, name, false).await?;
    blocking(move || git::remove_worktree(&wt.recorded())).await?;
    daemon.registry.remove(name).await?;
    Ok(())
}
