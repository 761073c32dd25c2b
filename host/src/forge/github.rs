//! GitHub pull requests over REST (github.com, Enterprise Server, `*.ghe.com`), shapes
//! from docs.github.com/en/rest/pulls/pulls: "List pull requests" (`GET
//! /repos/{owner}/{repo}/pulls?head=OWNER:BRANCH&state=open`), "Create a pull request"
//! (`POST /repos/{owner}/{repo}/pulls`, 201) and "Get a pull request".

use canopy_protocol::PullRequest;
use serde::Deserialize;
use serde_json::json;

use super::{Forge, Options, escape, find_in_pages};
use crate::tracker::TrackerError;

const HEADERS: &[(&str, &str)] = &[
    ("Accept", "application/vnd.github+json"),
    // The version the issue client pins (see tracker/github.rs).
    ("X-GitHub-Api-Version", "2022-11-28"),
];

#[derive(Debug, Deserialize)]
struct RawPull {
    number: u64,
    html_url: String,
    /// `open` or `closed` (a merged one is closed with `merged_at`).
    state: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    merged_at: Option<String>,
    head: Head,
}

#[derive(Debug, Deserialize)]
struct Head {
    #[serde(rename = "ref")]
    name: String,
}

impl From<RawPull> for PullRequest {
    fn from(p: RawPull) -> Self {
        let state = if p.merged_at.is_some() {
            "merged"
        } else if p.state == "closed" {
            "closed"
        } else if p.draft {
            "draft"
        } else {
            "open"
        };
        PullRequest {
            provider: "github".into(),
            number: p.number,
            url: p.html_url,
            state: state.into(),
        }
    }
}

/// The open pull request whose head is `branch` of this repository.
pub fn find_open(forge: &Forge, branch: &str) -> Result<Option<PullRequest>, TrackerError> {
    let project = &forge.project;
    let owner = project.split('/').next().unwrap_or(project);
    let url = format!(
        "{}?state=open&head={}&per_page=100",
        pulls_url(forge),
        escape(&format!("{owner}:{branch}"))
    );
    let found: Option<RawPull> = find_in_pages(&forge.client, &url, HEADERS, |p: &RawPull| {
        p.head.name == branch
    })?;
    Ok(found.map(Into::into))
}

fn pulls_url(forge: &Forge) -> String {
    format!("{}/repos/{}/pulls", forge.base, forge.project)
}

pub fn create(
    forge: &Forge,
    branch: &str,
    into: &str,
    opts: &Options,
) -> Result<PullRequest, TrackerError> {
    let body = json!({
        "title": opts.title,
        "head": branch,
        "base": into,
        "body": opts.body,
        "draft": opts.draft,
    });
    let client = &forge.client;
    let page = client.post(&pulls_url(forge), HEADERS, &body)?;
    Ok(client.decode::<RawPull>(page.json)?.into())
}

pub fn get(forge: &Forge, number: u64) -> Result<PullRequest, TrackerError> {
    let client = &forge.client;
    let page = client.get(&format!("{}/{number}", pulls_url(forge)), HEADERS)?;
    Ok(client.decode::<RawPull>(page.json)?.into())
}
