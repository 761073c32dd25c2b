//! Pull requests (GitHub) and merge requests (GitLab) for `canopy pr`, opened by the CLI
//! with the user's own `git` and tokens: neither ever reaches the host, which only
//! records the outcome (`set_pr`).
//!
//! # Layout
//! - [`push`]: which remote (the base's upstream, else `origin`) and `git push` as a
//!   child process, so credential helpers and SSH keys work as they do for the user.
//! - [`github`], [`gitlab`]: find the branch's open request, create one, read one back.
//! - here: which forge a remote is on, and the open-or-refresh flow.

pub mod github;
pub mod gitlab;
pub mod push;

use std::path::{Path, PathBuf};

use canopy_protocol::{PullRequest, Session};

use crate::git::{GitError, open_main_repo};
use crate::tracker::http::Client;
use crate::tracker::settings::{self, Api, Env, parse_remote};
use crate::tracker::{Kind, Label, RepoFile, TrackerError, TrackersConfig};

/// Why no pull or merge request could be opened.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The session's repository cannot be opened.
    #[error(transparent)]
    Repo(#[from] GitError),
    /// Neither the base's upstream nor `origin` names a remote.
    #[error("no remote to push {branch} to: {why}")]
    NoRemote { branch: String, why: String },
    /// The remote's URL is on no forge Canopy knows.
    #[error("remote {remote:?} ({url}) is not a GitHub or GitLab repository")]
    UnknownForge { remote: String, url: String },
    /// `git push` failed; `reason` is git's own.
    #[error("git push to {remote} failed: {reason}")]
    Push { remote: String, reason: String },
    /// `git` could not be run.
    #[error("cannot run git: {0}")]
    NoGit(std::io::Error),
    /// The forge's API refused or failed.
    #[error(transparent)]
    Api(#[from] TrackerError),
    /// The repository's `.canopy.toml` is unreadable.
    #[error("{0}")]
    RepoConfig(String),
}

impl ForgeError {
    /// What the user can do about it; `forge` once the remote's forge is known (a
    /// credential failure then says when no token was sent, and why).
    pub fn hint(&self, forge: Option<&Forge>) -> String {
        let hint = self.advice(forge.map(|f| f.kind));
        let credentials = matches!(
            self,
            ForgeError::Api(
                TrackerError::Unauthorized { .. }
                    | TrackerError::Forbidden { .. }
                    | TrackerError::NotFound { .. }
            )
        );
        match forge.and_then(|f| f.anonymous_because.as_deref()) {
            Some(why) if credentials => format!("{hint} (no credentials were sent: {why})"),
            _ => hint,
        }
    }

    fn advice(&self, kind: Option<Kind>) -> String {
        match self {
            ForgeError::Repo(_) => "is the session's repository still there?".into(),
            ForgeError::NoRemote { .. } => {
                "add one (`git remote add origin URL` in the repository), or set the base branch's upstream".into()
            }
            ForgeError::UnknownForge { .. } => {
                "a self-hosted instance needs its host under [trackers.gitlab] hosts or [trackers.github] hosts in config.toml".into()
            }
            ForgeError::Push { reason, .. } if reason.contains("rejected") => {
                "the remote branch has commits the session's branch lacks: merge or rebase them in the session's worktree, then run `canopy pr` again".into()
            }
            ForgeError::Push { .. } => {
                "check that `git push` works from the repository (credentials, network)".into()
            }
            ForgeError::NoGit(_) => "install git and put it on the PATH".into(),
            ForgeError::RepoConfig(_) => "fix the repository's .canopy.toml".into(),
            ForgeError::Api(e) => match (e, kind) {
                (
                    TrackerError::Unauthorized { .. } | TrackerError::Forbidden { .. },
                    Some(Kind::GitLab),
                ) => "a token with the api scope is needed: set GITLAB_TOKEN, or run `glab auth login`".into(),
                (TrackerError::Unauthorized { .. } | TrackerError::Forbidden { .. }, _) => {
                    "a token that may write pull requests is needed: set GH_TOKEN (or GITHUB_TOKEN), or run `gh auth login`".into()
                }
                (TrackerError::NotFound { .. }, _) => {
                    "check the remote's repository path; a private repository also answers 404 without a token that may see it".into()
                }
                (TrackerError::Status { status: 422, .. }, _) => {
                    "fix what it names (the base must be a branch of the remote: --base BRANCH)".into()
                }
                _ => e.hint(),
            },
        }
    }
}

/// What to open.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub title: String,
    pub body: String,
    pub draft: bool,
    /// The branch of the remote to merge into (default: the base's upstream branch,
    /// else the base's own name).
    pub base: Option<String>,
}

/// What `open` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// An open request for the branch already existed; the push updated it.
    Reused,
    /// The recorded request, read back (and pushed to while it is open).
    Refreshed,
}

/// The request and how it came to be.
#[derive(Debug, Clone)]
pub struct Opened {
    pub pr: PullRequest,
    pub outcome: Outcome,
    /// The remote pushed to, when the branch was pushed.
    pub pushed_to: Option<String>,
}

/// A forge repository: where its API is and how to reach it.
pub struct Forge {
    pub kind: Kind,
    /// `owner/repo` or `group/sub/project`.
    pub project: String,
    pub base: String,
    /// Why no token goes with the requests, when none does; for hints.
    pub anonymous_because: Option<String>,
    client: Client,
}

impl Forge {
    /// The forge and project behind a remote URL. GitLab: gitlab.com, `gitlab.*` and
    /// the hosts under `[trackers.gitlab] hosts`; GitHub: github.com, `*.ghe.com` and
    /// the hosts under `[trackers.github] hosts`. API bases and tokens are those of the
    /// tracker settings.
    pub fn of_remote(
        remote: &push::Remote,
        user: &TrackersConfig,
        repo_file: &RepoFile,
        env: &dyn Env,
    ) -> Result<Forge, ForgeError> {
        let unknown = || ForgeError::UnknownForge {
            remote: remote.name.clone(),
            url: remote.url.clone(),
        };
        let (host, project) = parse_remote(&remote.url).ok_or_else(unknown)?;
        let (kind, api, noun) = if settings::is_gitlab_host(user, repo_file, &host) {
            let api = settings::gitlab_api(user, repo_file, env, &host);
            (Kind::GitLab, api, "merge request")
        } else if host == "github.com"
            || host.ends_with(".ghe.com")
            || user.github.hosts.contains_key(&host)
        {
            let api = settings::github_api(user, env, &host);
            (Kind::GitHub, api, "pull request")
        } else {
            return Err(unknown());
        };
        let Api {
            base,
            auth,
            anonymous_because,
        } = api;
        let label = Label {
            tracker: kind,
            noun,
            id: project.clone(),
        };
        let client = Client::to(&base, auth, label, user.timeout());
        Ok(Forge {
            kind,
            project,
            base,
            anonymous_because,
            client,
        })
    }

    fn find_open(&self, branch: &str) -> Result<Option<PullRequest>, TrackerError> {
        match self.kind {
            Kind::GitLab => gitlab::find_open(self, branch),
            _ => github::find_open(self, branch),
        }
    }

    fn create(
        &self,
        branch: &str,
        into: &str,
        opts: &Options,
    ) -> Result<PullRequest, TrackerError> {
        match self.kind {
            Kind::GitLab => gitlab::create(self, branch, into, opts),
            _ => github::create(self, branch, into, opts),
        }
    }

    fn get(&self, number: u64) -> Result<PullRequest, TrackerError> {
        match self.kind {
            Kind::GitLab => gitlab::get(self, number),
            _ => github::get(self, number),
        }
    }
}

/// A session's repository, the remote its branch goes to, and that remote's forge.
pub struct Located {
    pub forge: Forge,
    pub remote: push::Remote,
    /// The main checkout, where git runs.
    pub workdir: PathBuf,
}

/// Find where `session`'s branch goes and which forge that is. Blocking.
pub fn locate(
    session: &Session,
    user: &TrackersConfig,
    env: &dyn Env,
) -> Result<Located, ForgeError> {
    let repo = open_main_repo(Path::new(&session.repo))?;
    let remote = push::remote_for(&repo, &session.base, &session.branch)?;
    let workdir = repo.workdir().unwrap_or_else(|| repo.path()).to_owned();
    let repo_file = RepoFile::load(&workdir).map_err(|e| ForgeError::RepoConfig(e.to_string()))?;
    let forge = Forge::of_remote(&remote, user, &repo_file, env)?;
    Ok(Located {
        forge,
        remote,
        workdir,
    })
}

/// Open (or find, or refresh) the request for `session`'s branch. A recorded request is
/// read back and, while open, pushed to; otherwise the branch is pushed and the open
/// request for it reused, or one created. Blocking: git and HTTP.
pub fn open(at: &Located, session: &Session, opts: &Options) -> Result<Opened, ForgeError> {
    let Located {
        forge,
        remote,
        workdir,
    } = at;
    let push =
        || push::push(workdir, &remote.name, &session.branch).map(|()| Some(remote.name.clone()));
    let recorded = session
        .pr
        .as_ref()
        .filter(|pr| pr.provider == forge.kind.as_str());
    if let Some(pr) = recorded {
        let pr = forge.get(pr.number)?;
        let pushed_to = if is_open(&pr) { push()? } else { None };
        return Ok(Opened {
            pr,
            outcome: Outcome::Refreshed,
            pushed_to,
        });
    }
    let pushed_to = push()?;
    let (pr, outcome) = match forge.find_open(&session.branch)? {
        Some(pr) => (pr, Outcome::Reused),
        None => {
            let base = opts
                .base
                .clone()
                .or_else(|| remote.upstream_branch.clone())
                .unwrap_or_else(|| session.base.clone());
            (
                forge.create(&session.branch, &base, opts)?,
                Outcome::Created,
            )
        }
    };
    Ok(Opened {
        pr,
        outcome,
        pushed_to,
    })
}

fn is_open(pr: &PullRequest) -> bool {
    matches!(pr.state.as_str(), "open" | "draft")
}

/// A query value or path segment with everything but RFC 3986's unreserved characters
/// percent-encoded (`canopy/x` → `canopy%2Fx`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every page of a list, following `Link: rel="next"` (GitHub, GitLab) or GitLab's
/// `X-Next-Page`, until `want` finds an item; at most [`MAX_PAGES`] pages.
fn find_in_pages<T: serde::de::DeserializeOwned>(
    client: &Client,
    first: &str,
    headers: &[(&str, &str)],
    want: impl Fn(&T) -> bool,
) -> Result<Option<T>, TrackerError> {
    let mut url = Some(first.to_owned());
    let mut pages = 0;
    while let Some(next) = url.take() {
        let page = client.get(&next, headers)?;
        let items: Vec<T> = client.decode(page.json)?;
        if let Some(found) = items.into_iter().find(|i| want(i)) {
            return Ok(Some(found));
        }
        pages += 1;
        url = page
            .next
            .or_else(|| page.next_page.map(|p| format!("{first}&page={p}")))
            .filter(|_| pages < MAX_PAGES);
    }
    Ok(None)
}

/// Pages of open requests read at most while looking for the branch's (100 each).
const MAX_PAGES: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_but_unreserved() {
        assert_eq!(escape("canopy/fix-it_1.2~"), "canopy%2Ffix-it_1.2~");
        assert_eq!(escape("a b&c"), "a%20b%26c");
        assert_eq!(escape("é"), "%C3%A9");
    }
}
