//! `canopy issue show REF` and the fetch behind `canopy new --issue REF`: the CLI
//! resolves and fetches the issue itself, with the user's environment, so tokens never
//! leave this process.

use std::path::{Path, PathBuf};

use canopy_protocol::session::Task;

use super::CliError;
use crate::config::Config;
use crate::paths::Paths;
use crate::tracker::settings::{self, ProcessEnv};
use crate::tracker::{self, IssueRef, RepoFile, TrackerError, context};

/// An issue ready to hand to the host.
#[derive(Debug)]
pub struct Fetched {
    /// The instruction line and `<issue>` block: the prompt's start and `task.md`.
    pub context: String,
    pub task: Task,
    /// The default session name.
    pub name: String,
}

/// Why `--issue` produced nothing, with what `--issue-optional` still needs.
#[derive(Debug)]
pub struct FetchFailed {
    pub error: CliError,
    /// A session name from the reference alone; `None` when the reference itself is bad
    /// (which `--issue-optional` does not excuse).
    pub fallback_name: Option<String>,
}

/// Resolve `reference` (URL, `owner/repo#N`, `group/project#N`, `#N`, `KEY-12`) for the repository around
/// `repo` and fetch it.
pub async fn fetch(paths: &Paths, reference: &str, repo: &Path) -> Result<Fetched, FetchFailed> {
    let parsed = IssueRef::parse(reference).map_err(|e| FetchFailed {
        error: tracker_error(&e, None),
        fallback_name: None,
    })?;
    let fallback_name = Some(context::fallback_name(&parsed));
    let config = Config::load(&paths.config_file).map_err(|e| FetchFailed {
        error: e.into(),
        fallback_name: None,
    })?;
    let repo = repo.to_owned();
    let work = tokio::task::spawn_blocking(move || fetch_blocking(&parsed, &config, &repo));
    match work.await {
        Ok(result) => result,
        Err(e) => Err(FetchFailed {
            error: CliError::new(format!("the issue fetch failed: {e}")),
            fallback_name,
        }),
    }
}

fn fetch_blocking(parsed: &IssueRef, config: &Config, repo: &Path) -> Result<Fetched, FetchFailed> {
    let unresolved = |e: TrackerError| FetchFailed {
        error: tracker_error(&e, None),
        fallback_name: Some(context::fallback_name(parsed)),
    };
    let repo_file = RepoFile::load(repo).map_err(unresolved)?;
    let target = settings::resolve(parsed, &config.trackers, &repo_file, repo, &ProcessEnv)
        .map_err(unresolved)?;
    // Once resolved, the tracker is known: `#7` on GitLab falls back to `gl-7`.
    let issue = tracker::fetch(&target, config.trackers.timeout()).map_err(|e| FetchFailed {
        error: tracker_error(&e, target.anonymous_because.as_deref()),
        fallback_name: Some(context::label_name(&target.label)),
    })?;
    Ok(Fetched {
        context: context::render(&issue),
        task: context::task(&issue),
        name: context::session_name(&issue),
    })
}

/// One line saying what failed, and a hint; when no credentials were sent and that may
/// be why, the hint says so.
fn tracker_error(e: &TrackerError, anonymous_because: Option<&str>) -> CliError {
    let credential_failure = matches!(
        e,
        TrackerError::Unauthorized { .. }
            | TrackerError::Forbidden { .. }
            | TrackerError::NotFound { .. }
    );
    let hint = match anonymous_because.filter(|_| credential_failure) {
        Some(why) => format!("{} (no credentials were sent: {why})", e.hint()),
        None => e.hint(),
    };
    CliError::new(e.to_string()).with_hint(hint)
}

/// `canopy issue show REF`: the context exactly as the agent would get it.
pub async fn show(paths: &Paths, reference: &str, repo: Option<PathBuf>) -> Result<(), CliError> {
    let repo = match repo {
        Some(r) => std::path::absolute(r)?,
        None => std::env::current_dir()?,
    };
    let fetched = fetch(paths, reference, &repo).await.map_err(|f| f.error)?;
    print!("{}", fetched.context);
    Ok(())
}
