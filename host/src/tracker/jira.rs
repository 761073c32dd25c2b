//! Jira: Cloud (REST v3, descriptions and comments in ADF, converted by [`super::adf`])
//! and Data Center (REST v2, wiki text passed through). Comments come embedded in the
//! issue; when Jira embeds fewer than it has, the comment endpoint is paged.

use serde::Deserialize;
use serde_json::Value;

use super::adf;
use super::http::Client;
use super::settings::{JiraApi, Locator, Target};
use super::{Comment, Issue, Kind, MAX_COMMENTS, PAGE_SIZE, TrackerError};

#[derive(Debug, Deserialize)]
struct RawIssue {
    key: String,
    fields: Fields,
}

#[derive(Debug, Deserialize)]
struct Fields {
    #[serde(default)]
    summary: String,
    #[serde(default)]
    description: Value,
    #[serde(default)]
    status: Option<Named>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    reporter: Option<Person>,
    #[serde(default)]
    comment: Option<CommentPage>,
}

#[derive(Debug, Deserialize)]
struct Named {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Person {
    #[serde(default)]
    display_name: Option<String>,
    /// Data Center's user name.
    #[serde(default)]
    name: Option<String>,
    /// Cloud: `atlassian`, `app` (bots and integrations) or `customer`.
    #[serde(default)]
    account_type: Option<String>,
}

impl Person {
    fn shown(&self) -> String {
        self.display_name
            .clone()
            .or_else(|| self.name.clone())
            .unwrap_or_else(|| "unknown".into())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommentPage {
    #[serde(default)]
    comments: Vec<RawComment>,
    #[serde(default)]
    start_at: usize,
    #[serde(default)]
    total: usize,
}

#[derive(Debug, Deserialize)]
struct RawComment {
    #[serde(default)]
    author: Option<Person>,
    #[serde(default)]
    body: Value,
    #[serde(default)]
    created: String,
}

const FIELDS: &str = "summary,description,comment,status,labels,reporter";

pub fn fetch(client: &Client, target: &Target) -> Result<Issue, TrackerError> {
    let Locator::Key(key) = &target.locator else {
        return Err(client.malformed("not a Jira key".into()));
    };
    let version = match target.jira_api {
        JiraApi::Cloud => 3,
        JiraApi::DataCenter => 2,
    };
    let api = format!("{}/rest/api/{version}/issue/{key}", target.base);
    let raw: RawIssue = client.decode(client.get(&format!("{api}?fields={FIELDS}"), &[])?.json)?;
    let embedded = raw.fields.comment.unwrap_or(CommentPage {
        comments: Vec::new(),
        start_at: 0,
        total: 0,
    });
    let raw_comments = if embedded.total > embedded.comments.len() {
        page_comments(client, &api, embedded.total)?
    } else {
        embedded.comments
    };
    let comments = raw_comments
        .into_iter()
        .filter(|c| {
            c.author
                .as_ref()
                .is_none_or(|a| a.account_type.as_deref() != Some("app"))
        })
        .map(|c| Comment {
            author: c
                .author
                .as_ref()
                .map_or_else(|| "unknown".into(), Person::shown),
            created: c.created,
            body: text(&c.body),
        })
        .collect();
    Ok(Issue {
        tracker: Kind::Jira,
        url: format!("{}/browse/{}", target.base, raw.key),
        id: raw.key,
        title: raw.fields.summary,
        state: raw.fields.status.map_or_else(String::new, |s| s.name),
        labels: raw.fields.labels,
        author: raw.fields.reporter.as_ref().map(Person::shown),
        assignee: None,
        description: text(&raw.fields.description),
        comments,
    })
}

/// The newest [`MAX_COMMENTS`] comments, oldest first, through `…/comment` pages.
fn page_comments(
    client: &Client,
    api: &str,
    total: usize,
) -> Result<Vec<RawComment>, TrackerError> {
    let mut start = total.saturating_sub(MAX_COMMENTS);
    let mut all = Vec::new();
    loop {
        let url = format!("{api}/comment?startAt={start}&maxResults={PAGE_SIZE}&orderBy=created");
        let page: CommentPage = client.decode(client.get(&url, &[])?.json)?;
        let got = page.comments.len();
        all.extend(page.comments);
        // The server may return fewer than asked: trust what it says it returned.
        start = page.start_at + got;
        if got == 0 || start >= page.total || all.len() >= MAX_COMMENTS {
            return Ok(all);
        }
    }
}

/// ADF (Cloud v3) to Markdown; wiki text (Data Center, v2) as it is.
fn text(body: &Value) -> String {
    match body {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        doc => adf::to_markdown(doc),
    }
}
