//! Environments: what a new worktree gets before its agent starts, so sessions of one
//! repository do not interfere with each other.
//!
//! - [`include`]: the git-ignored files `.worktreeinclude` names, copied from the main
//!   checkout; `[setup] symlink` directories linked.
//! - [`settings`]: `[setup]`, `[teardown]`, `[run]` from the user's `[repos."…"]` or the
//!   repository's `.canopy.toml`, whose commands need [`trust`].
//! - [`trust`]: approvals of repository files (hashes in the state dir).
//! - [`ports`]: a block of free ports per session.
//! - [`steps`]: setup and teardown commands, run into the session's setup log.
//! - [`browser`]: a Chromium-family browser for `canopy open`.
//!
//! Everything here blocks (files, git, processes): callers run it on the blocking pool.

pub mod browser;
pub mod include;
pub mod ports;
pub mod settings;
pub mod steps;
pub mod trust;

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use canopy_protocol::session::Environment;

pub use settings::{RepoEnv, Run};

/// Why a session's environment could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A file or directory could not be read or written.
    #[error("{doing}: {source}")]
    Io {
        doing: String,
        source: std::io::Error,
    },
    /// The repository's `.canopy.toml` does not parse.
    #[error("invalid {path}: {message}")]
    RepoFile { path: PathBuf, message: String },
    /// `.worktreeinclude` could not be applied.
    #[error("{INCLUDE}: {0}", INCLUDE = include::INCLUDE_FILE)]
    Include(String),
    /// Every block of the range is in use.
    #[error("no block of {size} free ports at or above {base}")]
    NoPorts { size: u16, base: u16 },
}

impl EnvError {
    pub fn io(doing: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            doing: doing.into(),
            source,
        }
    }
}

/// The name of the setup log in the session's private directory.
pub const SETUP_LOG: &str = "setup.log";

/// What a new session needs to know about its repository and host.
#[derive(Debug)]
pub struct Request<'a> {
    pub name: &'a str,
    /// The repository's main checkout.
    pub repo: &'a Path,
    pub worktree: &'a Path,
    /// The session's private directory (0700): the browser profile and setup log.
    pub session_dir: &'a Path,
    pub state_dir: &'a Path,
    pub user: &'a BTreeMap<String, RepoEnv>,
    /// Port blocks of the sessions already in the registry.
    pub used_ports: &'a [[u16; 2]],
    pub port_block: u16,
    pub port_base: u16,
}

/// A new session's environment, ready for its processes.
#[derive(Debug)]
pub struct Plan {
    /// For the record (and `canopy env`).
    pub env: Environment,
    /// Setup commands to run before the agent.
    pub setup: Vec<String>,
    /// The dev server, when configured.
    pub run: Option<Run>,
    /// Holds the port block until the record is in the registry.
    pub claim: ports::Claim,
}

/// Copy the included files, resolve the settings, hand out ports and make the browser
/// profile. What was done is written to the setup log.
pub fn plan(req: &Request<'_>) -> Result<Plan, EnvError> {
    let resolved = settings::resolve(req.user, req.repo, &trust::dir(req.state_dir))?;
    let mut notes = include::populate(
        req.repo,
        req.worktree,
        &resolved.env.setup.symlink,
        req.session_dir,
    )?;
    if let Some(path) = &resolved.untrusted {
        notes.push(untrusted_note(path, req.repo));
    }
    let claim = ports::claim(req.used_ports, req.port_block, req.port_base)?;
    let profile = req.session_dir.join("browser");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&profile)
        .map_err(|e| EnvError::io(format!("creating {}", profile.display()), e))?;
    let mut env = Environment {
        ports: Some(claim.ports),
        browser_profile: Some(profile.display().to_string()),
        untrusted: resolved.untrusted.map(|p| p.display().to_string()),
        ..Environment::default()
    };
    env.vars = vars(req.name, req.worktree, &env);
    if let Some(run) = &resolved.env.run {
        let url = run
            .url
            .clone()
            .unwrap_or_else(|| "http://localhost:$CANOPY_PORT".into());
        let url = expand(&url, &env.vars);
        env.vars.insert("CANOPY_URL".into(), url.clone());
        env.url = Some(url);
    }
    steps::log(req.session_dir, &notes);
    Ok(Plan {
        env,
        setup: resolved.env.setup.run,
        run: resolved.env.run,
        claim,
    })
}

/// The one-line note for a `.canopy.toml` whose commands were skipped.
pub fn untrusted_note(path: &Path, repo: &Path) -> String {
    format!(
        "skipped the commands of {}: it is not trusted; review and approve it with `canopy trust --repo {}`",
        path.display(),
        repo.display()
    )
}

/// The variables every process of the session gets.
fn vars(name: &str, worktree: &Path, env: &Environment) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    vars.insert("CANOPY_SESSION".into(), name.to_owned());
    vars.insert("CANOPY_WORKTREE".into(), worktree.display().to_string());
    if let Some([first, last]) = env.ports {
        vars.insert("CANOPY_PORT".into(), first.to_string());
        vars.insert("CANOPY_PORTS".into(), format!("{first}-{last}"));
        vars.insert("PORT".into(), first.to_string());
    }
    if let Some(profile) = &env.browser_profile {
        vars.insert("CANOPY_BROWSER_PROFILE".into(), profile.clone());
    }
    vars
}

/// `$NAME` and `${NAME}` replaced by the session's variables (others left as written).
pub fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    // Longest names first, so `$CANOPY_PORTS` is not read as `$CANOPY_PORT` + "S".
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        out = out
            .replace(&format!("${{{name}}}"), &vars[name])
            .replace(&format!("${name}"), &vars[name]);
    }
    out
}

/// The teardown commands that apply to the repository now (trust is checked again).
pub fn teardown(
    user: &BTreeMap<String, RepoEnv>,
    repo: &Path,
    state_dir: &Path,
) -> Result<Vec<String>, EnvError> {
    Ok(settings::resolve(user, repo, &trust::dir(state_dir))?
        .env
        .teardown
        .run)
}

/// The dev server settings that apply to the repository now.
pub fn run_settings(
    user: &BTreeMap<String, RepoEnv>,
    repo: &Path,
    state_dir: &Path,
) -> Result<Option<Run>, EnvError> {
    Ok(settings::resolve(user, repo, &trust::dir(state_dir))?
        .env
        .run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_prefers_the_longest_name() {
        let mut vars = BTreeMap::new();
        vars.insert("CANOPY_PORT".to_owned(), "20000".to_owned());
        vars.insert("CANOPY_PORTS".to_owned(), "20000-20009".to_owned());
        assert_eq!(
            expand(
                "http://localhost:$CANOPY_PORT/ ${CANOPY_PORTS} $CANOPY_PORTS $HOME",
                &vars
            ),
            "http://localhost:20000/ 20000-20009 20000-20009 $HOME"
        );
    }
}
