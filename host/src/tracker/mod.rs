//! Task context from issue trackers (GitHub, GitLab, Jira, YouTrack, Linear), fetched by the CLI at
//! session start so that tokens stay in the user's process and never reach the host.
//!
//! # Layout
//! - [`refs`]: what the user typed (`URL`, `owner/repo#N`, `group/project#N`, `#N`,
//!   `KEY-12`) → [`IssueRef`].
//! - [`settings`]: `[trackers.*]` in `config.toml` and `.canopy.toml`, and the trust rule
//!   that decides where a token may go; resolves a reference to a [`Target`].
//! - [`auth`]: tokens as [`auth::Secret`]s (never printed), `gh auth token`,
//!   `glab auth status --show-token`.
//! - [`http`]: GET and GraphQL POST with timeouts, bounded rate-limit retries and one
//!   error per failure.
//! - [`github`], [`gitlab`], [`jira`] (with [`adf`]), [`youtrack`], [`linear`]: each API
//!   → one [`Issue`].
//! - [`context`]: the prompt block and `.canopy/task.md` text, session names.

pub mod adf;
pub mod auth;
pub mod context;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod jira;
pub mod linear;
pub mod refs;
pub mod settings;
pub mod youtrack;

use std::fmt;
use std::time::Duration;

pub use refs::IssueRef;
pub use settings::{RepoFile, Target, TrackersConfig};

/// Comments fetched at most per issue (the newest ones); bounds the number of requests.
pub const MAX_COMMENTS: usize = 500;
/// Items asked for per page of comments (the most GitHub, GitLab, Jira and YouTrack allow).
pub const PAGE_SIZE: usize = 100;

/// Which tracker an issue lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    GitHub,
    GitLab,
    Jira,
    YouTrack,
    Linear,
}

impl Kind {
    /// The name in the session record and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::GitHub => "github",
            Kind::GitLab => "gitlab",
            Kind::Jira => "jira",
            Kind::YouTrack => "youtrack",
            Kind::Linear => "linear",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An issue as every tracker's answer is reduced to.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub tracker: Kind,
    /// `owner/repo#12`, `group/project#12` or `KEY-12`.
    pub id: String,
    pub title: String,
    /// Where a person reads it.
    pub url: String,
    pub state: String,
    pub labels: Vec<String>,
    pub author: Option<String>,
    /// Who the issue is assigned to, where the tracker's context names one (Linear).
    pub assignee: Option<String>,
    /// Markdown (GitHub, GitLab, Linear, Jira Cloud after ADF conversion) or the
    /// tracker's wiki text.
    pub description: String,
    /// Oldest first; bots, system notes and deleted comments already dropped.
    pub comments: Vec<Comment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    pub author: String,
    /// As the tracker gives it (ISO 8601), or converted from epoch milliseconds.
    pub created: String,
    pub body: String,
}

/// "github issue octocat/Hello-World#1347": how every message names what is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub tracker: Kind,
    /// `issue`, or what else is asked for (`pull request`, `merge request`).
    pub noun: &'static str,
    pub id: String,
}

impl Label {
    pub fn issue(tracker: Kind, id: String) -> Self {
        Label {
            tracker,
            noun: "issue",
            id,
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.tracker, self.noun, self.id)
    }
}

/// Why no issue context could be had. Messages are one line and never carry a token
/// (none is ever formatted); [`TrackerError::hint`] says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// The reference matches no form Canopy knows.
    #[error("cannot read issue reference {reference:?}: {why}")]
    BadRef { reference: String, why: String },
    /// A bare key, but no configured tracker claims its project.
    #[error("no tracker for issue {key}: {why}")]
    NoTracker { key: String, why: String },
    /// `#N` outside a repository whose `origin` is on GitHub or GitLab.
    #[error("cannot resolve {reference}: {why}")]
    NoRepo { reference: String, why: String },
    /// A repository's `.canopy.toml` that cannot be read.
    #[error("invalid {path}: {message}")]
    RepoConfig { path: String, message: String },
    /// The user's tracker configuration lacks something this request needs.
    #[error("{label}: {why}")]
    Config { label: Label, why: String },
    /// HTTP 401. `said` is the API's own explanation (`: Bad credentials`), or empty.
    #[error("{label}: {host} rejected the credentials (HTTP 401){said}")]
    Unauthorized {
        label: Label,
        host: String,
        said: Said,
    },
    /// HTTP 403 that is not a rate limit.
    #[error("{label}: access denied by {host} (HTTP 403){said}")]
    Forbidden {
        label: Label,
        host: String,
        said: Said,
    },
    /// HTTP 404 (also what Jira answers for an issue the caller may not see).
    #[error("{label}: not found on {host} (HTTP 404){said}")]
    NotFound {
        label: Label,
        host: String,
        said: Said,
    },
    /// HTTP 410.
    #[error("{label}: deleted on {host} (HTTP 410)")]
    Gone { label: Label, host: String },
    /// 429, or a rate-limit 403, still limited after the retries (or asking for a longer
    /// wait than [`http::MAX_RETRY_WAIT`]).
    #[error("{label}: rate limited by {host} (HTTP {status}){}", wait_text(.wait))]
    RateLimited {
        label: Label,
        host: String,
        status: u16,
        wait: Option<Duration>,
    },
    /// No answer within the timeout.
    #[error("{label}: no answer from {host} within {}s", .timeout.as_secs_f64())]
    Timeout {
        label: Label,
        host: String,
        timeout: Duration,
    },
    /// Name resolution, connection or TLS failure.
    #[error("{label}: cannot reach {host}: {why}")]
    Unreachable {
        label: Label,
        host: String,
        why: String,
    },
    /// A body that is not the JSON the API documents.
    #[error("{label}: unexpected response from {host}: {why}")]
    Malformed {
        label: Label,
        host: String,
        why: String,
    },
    /// A GraphQL error the API explains in its own words (Linear).
    #[error("{label}: {host} refused the query: {message}")]
    Rejected {
        label: Label,
        host: String,
        message: String,
    },
    /// Any other non-success status (GitHub's 422 `Validation Failed` among them).
    #[error("{label}: HTTP {status} from {host}{said}")]
    Status {
        label: Label,
        host: String,
        status: u16,
        said: Said,
    },
}

/// What an API said about a refusal, in its own words, shown after the status as
/// `: text`; nothing when it said nothing readable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Said(pub Option<String>);

impl fmt::Display for Said {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(text) => write!(f, ": {text}"),
            None => Ok(()),
        }
    }
}

fn wait_text(wait: &Option<Duration>) -> String {
    match wait {
        Some(w) => format!("; it asks to wait {}s", w.as_secs()),
        None => String::new(),
    }
}

impl TrackerError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        let tracker = match self {
            TrackerError::Config { label, .. }
            | TrackerError::Unauthorized { label, .. }
            | TrackerError::Forbidden { label, .. }
            | TrackerError::NotFound { label, .. }
            | TrackerError::Gone { label, .. }
            | TrackerError::RateLimited { label, .. }
            | TrackerError::Timeout { label, .. }
            | TrackerError::Unreachable { label, .. }
            | TrackerError::Malformed { label, .. }
            | TrackerError::Rejected { label, .. }
            | TrackerError::Status { label, .. } => Some(label.tracker),
            _ => None,
        };
        let credentials = match tracker {
            Some(Kind::GitHub) => "set GH_TOKEN (or GITHUB_TOKEN), or run `gh auth login`",
            Some(Kind::GitLab) => {
                "set GITLAB_TOKEN (a token with read_api), or run `glab auth login`; a self-hosted instance needs its host under [trackers.gitlab] hosts"
            }
            Some(Kind::Linear) => {
                "set LINEAR_API_KEY (or the token_env of [trackers.linear]) to a personal API key"
            }
            Some(Kind::Jira) => {
                "check [trackers.jira] in config.toml and the token in its token_env variable (Cloud API tokens expire after a year)"
            }
            _ => {
                "check [trackers.youtrack] in config.toml and the permanent token in its token_env variable"
            }
        };
        match self {
            TrackerError::BadRef { .. } => {
                "use a tracker URL, owner/repo#N, group/project#N, #N or KEY-12".into()
            }
            TrackerError::NoTracker { .. } => {
                "add its project to `projects` under [trackers.jira] or [trackers.youtrack], or its team to `teams` under [trackers.linear], or pass the issue's URL".into()
            }
            TrackerError::NoRepo { .. } => "pass owner/repo#N or the issue's URL".into(),
            TrackerError::RepoConfig { .. } => {
                "fix the repository's .canopy.toml (only base_url, api and projects of [trackers.jira] and [trackers.youtrack], hosts of [trackers.gitlab], teams of [trackers.linear])".into()
            }
            TrackerError::Config { .. } => "see \"Start from an issue\" in the README".into(),
            TrackerError::Unauthorized { .. } => credentials.into(),
            TrackerError::Forbidden { .. } => format!("the credentials may not read it: {credentials}"),
            TrackerError::NotFound { .. } => match tracker {
                Some(Kind::GitHub | Kind::GitLab) => format!("check the number and repository; a private repository needs a token: {credentials}"),
                _ => format!("check the key; trackers also answer 404 when you may not see an issue: {credentials}"),
            },
            TrackerError::Gone { .. } => "the issue was deleted; pick another".into(),
            TrackerError::RateLimited { .. } => match tracker {
                Some(Kind::GitHub) => "try again later; with a token GitHub allows 5,000 requests an hour".into(),
                _ => "try again later".into(),
            },
            TrackerError::Timeout { .. } => {
                "check the network and the tracker's base_url, or raise [trackers] timeout_secs".into()
            }
            TrackerError::Unreachable { .. } => {
                "check the network and the tracker's base_url in config.toml".into()
            }
            TrackerError::Malformed { .. } => {
                "check that base_url points at the tracker itself (GitHub Enterprise: https://HOST/api/v3; GitLab: https://HOST)".into()
            }
            TrackerError::Rejected { .. } => format!("check the key and the credentials: {credentials}"),
            TrackerError::Status { .. } => "try again later".into(),
        }
    }
}

/// Fetch the issue `target` names, with its comments.
pub fn fetch(target: &Target, timeout: Duration) -> Result<Issue, TrackerError> {
    let client = http::Client::new(target, timeout);
    match target.tracker() {
        Kind::GitHub => github::fetch(&client, target),
        Kind::GitLab => gitlab::fetch(&client, target),
        Kind::Jira => jira::fetch(&client, target),
        Kind::YouTrack => youtrack::fetch(&client, target),
        Kind::Linear => linear::fetch(&client, target),
    }
}
