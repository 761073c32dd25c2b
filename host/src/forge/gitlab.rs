//! GitLab merge requests over REST v4 (gitlab.com and self-hosted), shapes from
//! docs.gitlab.com/api/merge_requests: "List project merge requests" (`GET
//! /projects/:id/merge_requests?state=opened&source_branch=…`), "Create MR" (`POST
//! /projects/:id/merge_requests`, 201) and "Get single MR" (by `iid`). A draft is made
//! by the `Draft:` title prefix, which the create call honours.

use canopy_protocol::PullRequest;
use serde::Deserialize;
use serde_json::json;

use super::{Forge, Options, escape, find_in_pages};
use crate::tracker::TrackerError;

#[derive(Debug, Deserialize)]
struct RawMerge {
    iid: u64,
    web_url: String,
    /// `opened`, `closed`, `locked` (being merged) or `merged`.
    state: String,
    #[serde(default)]
    draft: bool,
    source_branch: String,
}

impl From<RawMerge> for PullRequest {
    fn from(m: RawMerge) -> Self {
        let state = match m.state.as_str() {
            "merged" => "merged",
            "closed" => "closed",
            _ if m.draft => "draft",
            _ => "open",
        };
        PullRequest {
            provider: "gitlab".into(),
            number: m.iid,
            url: m.web_url,
            state: state.into(),
        }
    }
}

fn merges_url(forge: &Forge) -> String {
    // The API takes a project's path as one URL-encoded segment.
    format!(
        "{}/api/v4/projects/{}/merge_requests",
        forge.base,
        escape(&forge.project)
    )
}

/// The open merge request from `branch` of this project.
pub fn find_open(forge: &Forge, branch: &str) -> Result<Option<PullRequest>, TrackerError> {
    let url = format!(
        "{}?state=opened&source_branch={}&per_page=100",
        merges_url(forge),
        escape(branch)
    );
    let found: Option<RawMerge> = find_in_pages(&forge.client, &url, &[], |m: &RawMerge| {
        m.source_branch == branch
    })?;
    Ok(found.map(Into::into))
}

pub fn create(
    forge: &Forge,
    branch: &str,
    into: &str,
    opts: &Options,
) -> Result<PullRequest, TrackerError> {
    let title = if opts.draft {
        format!("Draft: {}", opts.title)
    } else {
        opts.title.clone()
    };
    let body = json!({
        "source_branch": branch,
        "target_branch": into,
        "title": title,
        "description": opts.body,
    });
    let client = &forge.client;
    let page = client.post(&merges_url(forge), &[], &body)?;
    Ok(client.decode::<RawMerge>(page.json)?.into())
}

pub fn get(forge: &Forge, iid: u64) -> Result<PullRequest, TrackerError> {
    let client = &forge.client;
    let page = client.get(&format!("{}/{iid}", merges_url(forge)), &[])?;
    Ok(client.decode::<RawMerge>(page.json)?.into())
}
