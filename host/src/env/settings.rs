//! `[setup]`, `[teardown]` and `[run]`: from the user's `[repos."PATH-OR-REMOTE-URL"]`
//! (trusted), else from the repository's `.canopy.toml`, whose commands count only once
//! the user approved that exact file ([`super::trust`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{EnvError, trust};

/// A repository's environment settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoEnv {
    pub setup: Setup,
    pub teardown: Teardown,
    pub run: Option<Run>,
}

/// `[setup]`: what a new worktree gets before its agent starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Setup {
    /// Shell commands run in the worktree, in order; the first failure stops the session.
    pub run: Vec<String>,
    /// Directories of the main checkout linked into the worktree instead of copied.
    pub symlink: Vec<String>,
}

/// `[teardown]`: commands run in the worktree before `rm` removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Teardown {
    pub run: Vec<String>,
}

/// `[run]`: the dev server, in a second terminal of the session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    pub command: String,
    /// Where it answers; default `http://localhost:$CANOPY_PORT`.
    #[serde(default)]
    pub url: Option<String>,
}

impl RepoEnv {
    /// Every command the settings would run, as the user reviews them.
    pub fn commands(&self) -> Vec<String> {
        let setup = self.setup.run.iter().map(|c| format!("setup:    {c}"));
        let teardown = self.teardown.run.iter().map(|c| format!("teardown: {c}"));
        let run = self.run.iter().map(|r| format!("run:      {}", r.command));
        setup.chain(teardown).chain(run).collect()
    }

    /// The same settings without their commands (what an untrusted file may still do).
    fn without_commands(self) -> Self {
        Self {
            setup: Setup {
                run: Vec::new(),
                symlink: self.setup.symlink,
            },
            teardown: Teardown::default(),
            run: None,
        }
    }
}

/// The environment part of `.canopy.toml`; its tracker settings are read elsewhere.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RepoFileEnv {
    setup: Setup,
    teardown: Teardown,
    run: Option<Run>,
}

/// The settings that apply to a repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub env: RepoEnv,
    /// A `.canopy.toml` with commands that were left out: it is not trusted.
    pub untrusted: Option<PathBuf>,
}

/// The repository's `.canopy.toml` (in its main checkout), when it has one.
pub fn repo_file(repo: &Path) -> PathBuf {
    repo.join(".canopy.toml")
}

/// Read the environment settings of `.canopy.toml` from its text.
pub fn parse_repo_file(text: &str, path: &Path) -> Result<RepoEnv, EnvError> {
    let file: RepoFileEnv = toml::from_str(text).map_err(|e| EnvError::RepoFile {
        path: path.to_owned(),
        message: e.message().trim().to_owned(),
    })?;
    Ok(RepoEnv {
        setup: file.setup,
        teardown: file.teardown,
        run: file.run,
    })
}

/// The settings for the repository whose main checkout is `repo`: the user's entry for
/// it if there is one, else its `.canopy.toml` (commands only when trusted).
pub fn resolve(
    user: &BTreeMap<String, RepoEnv>,
    repo: &Path,
    trust_dir: &Path,
) -> Result<Resolved, EnvError> {
    if let Some(env) = user_entry(user, repo) {
        return Ok(Resolved {
            env: env.clone(),
            untrusted: None,
        });
    }
    let path = repo_file(repo);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Resolved::default()),
        Err(e) => return Err(EnvError::io(format!("reading {}", path.display()), e)),
    };
    let env = parse_repo_file(&String::from_utf8_lossy(&text), &path)?;
    if env.commands().is_empty() || trust::is_trusted(trust_dir, repo, &text) {
        return Ok(Resolved {
            env,
            untrusted: None,
        });
    }
    Ok(Resolved {
        env: env.without_commands(),
        untrusted: Some(path),
    })
}

/// The user's `[repos."…"]` entry naming this repository by its path (`~/` allowed)
/// or by one of its remotes' URLs.
fn user_entry<'a>(user: &'a BTreeMap<String, RepoEnv>, repo: &Path) -> Option<&'a RepoEnv> {
    if user.is_empty() {
        return None;
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let canonical = repo.canonicalize().unwrap_or_else(|_| repo.to_owned());
    let mut urls = Vec::new();
    if let Ok(r) = git2::Repository::open(repo)
        && let Ok(names) = r.remotes()
    {
        for name in names.iter().flatten().flatten() {
            if let Ok(remote) = r.find_remote(name)
                && let Ok(url) = remote.url()
            {
                urls.push(url.to_owned());
            }
        }
    }
    user.iter().find_map(|(key, env)| {
        let path = match (key.strip_prefix("~/"), &home) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => PathBuf::from(key),
        };
        let same_path = path.is_absolute() && path.canonicalize().is_ok_and(|p| p == canonical);
        let same_url = urls.iter().any(|u| same_remote(u, key));
        (same_path || same_url).then_some(env)
    })
}

/// Remote URLs equal but for a trailing `.git` or `/`.
fn same_remote(a: &str, b: &str) -> bool {
    let norm = |u: &str| {
        let u = u.trim_end_matches('/');
        u.strip_suffix(".git").unwrap_or(u).to_owned()
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_file_sections_are_read_and_typos_refused() {
        let env = parse_repo_file(
            "[trackers.linear]\nteams = [\"ENG\"]\n[setup]\nrun = [\"npm ci\"]\nsymlink = [\"node_modules/.cache\"]\n[teardown]\nrun = [\"make clean\"]\n[run]\ncommand = \"npm run dev\"\n",
            Path::new(".canopy.toml"),
        )
        .expect("parses");
        assert_eq!(env.setup.run, ["npm ci"]);
        assert_eq!(env.setup.symlink, ["node_modules/.cache"]);
        assert_eq!(
            env.commands(),
            [
                "setup:    npm ci",
                "teardown: make clean",
                "run:      npm run dev"
            ]
        );
        assert!(parse_repo_file("[setup]\nrun_ = []\n", Path::new("x")).is_err());
    }

    #[test]
    fn untrusted_files_lose_their_commands_and_trusted_ones_keep_them() {
        let repo = tempfile::tempdir().expect("tempdir");
        let trust_dir = tempfile::tempdir().expect("tempdir");
        let text = "[setup]\nrun = [\"touch x\"]\nsymlink = [\"cache\"]\n";
        std::fs::write(repo.path().join(".canopy.toml"), text).expect("write");
        let r = resolve(&BTreeMap::new(), repo.path(), trust_dir.path()).expect("resolve");
        assert!(r.env.setup.run.is_empty());
        assert_eq!(r.env.setup.symlink, ["cache"]);
        assert!(r.untrusted.is_some());

        trust::approve(trust_dir.path(), repo.path(), text.as_bytes()).expect("approve");
        let r = resolve(&BTreeMap::new(), repo.path(), trust_dir.path()).expect("resolve");
        assert_eq!(r.env.setup.run, ["touch x"]);
        assert_eq!(r.untrusted, None);

        // Any change needs approving again.
        std::fs::write(repo.path().join(".canopy.toml"), format!("{text}\n")).expect("write");
        let r = resolve(&BTreeMap::new(), repo.path(), trust_dir.path()).expect("resolve");
        assert!(r.env.setup.run.is_empty());
    }

    #[test]
    fn the_users_entry_wins_by_path() {
        let repo = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            repo.path().join(".canopy.toml"),
            "[setup]\nrun = [\"evil\"]\n",
        )
        .expect("write");
        let mut user = BTreeMap::new();
        user.insert(
            repo.path().display().to_string(),
            RepoEnv {
                setup: Setup {
                    run: vec!["mine".into()],
                    symlink: Vec::new(),
                },
                ..RepoEnv::default()
            },
        );
        let r = resolve(&user, repo.path(), Path::new("/nonexistent")).expect("resolve");
        assert_eq!(r.env.setup.run, ["mine"]);
        assert!(same_remote("git@h:o/r.git", "git@h:o/r"));
    }
}
