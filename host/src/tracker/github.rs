//! GitHub REST (github.com, Enterprise Server, Enterprise Cloud): the issue (a pull
//! request is an issue too) and its comments, following `Link` pages as given.

use super::http::{Client, Page};
use super::settings::{Locator, Target};
use super::{Comment, Issue, Kind, MAX_COMMENTS, PAGE_SIZE, TrackerError};
use serde::Deserialize;

const HEADERS: &[(&str, &str)] = &[
    ("Accept", "application/vnd.github+json"),
    // Pinned: 2026-03-10 carries breaking changes not yet checked against these calls.
    ("X-GitHub-Api-Version", "2022-11-28"),
];

#[derive(Debug, Deserialize)]
struct RawIssue {
    title: String,
    #[serde(default)]
    body: Option<String>,
    state: String,
    #[serde(default)]
    state_reason: Option<String>,
    html_url: String,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    labels: Vec<RawLabel>,
    #[serde(default)]
    comments: u64,
    #[serde(default)]
    pull_request: Option<PullRequest>,
}

#[derive(Debug, Deserialize)]
struct PullRequest {
    #[serde(default)]
    merged_at: Option<String>,
}

/// The schema allows a label as a bare string or an object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawLabel {
    Name(String),
    Object { name: String },
}

#[derive(Debug, Deserialize)]
struct User {
    login: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

impl User {
    fn is_bot(&self) -> bool {
        self.kind.as_deref() == Some("Bot") || self.login.ends_with("[bot]")
    }
}

#[derive(Debug, Deserialize)]
struct RawComment {
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    user: Option<User>,
    created_at: String,
}

pub fn fetch(client: &Client, target: &Target) -> Result<Issue, TrackerError> {
    let Locator::GitHub {
        owner,
        repo,
        number,
    } = &target.locator
    else {
        return Err(client.malformed("not a GitHub issue".into()));
    };
    let issue_url = format!("{}/repos/{owner}/{repo}/issues/{number}", target.base);
    let raw: RawIssue = client.decode(client.get(&issue_url, HEADERS)?.json)?;
    let mut comments = Vec::new();
    if raw.comments > 0 {
        // Past MAX_COMMENTS, start at the page that leaves the newest ones.
        let pages = usize::try_from(raw.comments)
            .unwrap_or(usize::MAX)
            .div_ceil(PAGE_SIZE);
        let first = pages.saturating_sub(MAX_COMMENTS / PAGE_SIZE) + 1;
        let mut url = Some(format!(
            "{issue_url}/comments?per_page={PAGE_SIZE}&page={first}"
        ));
        let mut fetched = 0;
        while let Some(next) = url.take() {
            let Page { json, next, .. } = client.get(&next, HEADERS)?;
            let page: Vec<RawComment> = client.decode(json)?;
            fetched += page.len();
            comments.extend(page.into_iter().filter_map(|c| {
                let user = c.user?;
                (!user.is_bot()).then(|| Comment {
                    author: user.login,
                    created: c.created_at,
                    body: c.body.unwrap_or_default(),
                })
            }));
            url = next.filter(|_| fetched < MAX_COMMENTS);
        }
    }
    let state = match (&raw.pull_request, raw.state_reason.as_deref()) {
        (Some(PullRequest { merged_at: Some(_) }), _) => "merged (pull request)".to_owned(),
        (Some(_), _) => format!("{} (pull request)", raw.state),
        (None, Some(reason)) if raw.state == "closed" => format!("closed ({reason})"),
        (None, _) => raw.state.clone(),
    };
    Ok(Issue {
        tracker: Kind::GitHub,
        id: target.label.id.clone(),
        title: raw.title,
        url: raw.html_url,
        state,
        labels: raw
            .labels
            .into_iter()
            .map(|l| match l {
                RawLabel::Name(n) | RawLabel::Object { name: n } => n,
            })
            .collect(),
        author: raw.user.map(|u| u.login),
        assignee: None,
        description: raw.body.unwrap_or_default(),
        comments,
    })
}
