//! YouTrack REST: the issue with the fields named (YouTrack returns only those), and
//! its comments paged with `$skip`/`$top` until a short page. Text (Markdown or
//! YouTrack wiki) passes through.

use serde::Deserialize;
use serde_json::Value;

use super::http::Client;
use super::settings::{Locator, Target};
use super::{Comment, Issue, Kind, MAX_COMMENTS, PAGE_SIZE, TrackerError};

const ISSUE_FIELDS: &str = "idReadable,summary,description,usesMarkdown,reporter(login,fullName),customFields(name,value(name)),tags(name),commentsCount";
const COMMENT_FIELDS: &str = "id,text,created,deleted,author(login,fullName)";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIssue {
    id_readable: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    reporter: Option<User>,
    #[serde(default)]
    custom_fields: Vec<CustomField>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    comments_count: usize,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    full_name: Option<String>,
}

impl User {
    fn shown(&self) -> String {
        self.full_name
            .clone()
            .or_else(|| self.login.clone())
            .unwrap_or_else(|| "unknown".into())
    }
}

#[derive(Debug, Deserialize)]
struct CustomField {
    name: String,
    /// An enum value `{name}`, a list of them, a number, or null.
    #[serde(default)]
    value: Value,
}

#[derive(Debug, Deserialize)]
struct Tag {
    name: String,
}

#[derive(Debug, Deserialize)]
struct RawComment {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    created: i64,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    author: Option<User>,
}

pub fn fetch(client: &Client, target: &Target) -> Result<Issue, TrackerError> {
    let Locator::Key(key) = &target.locator else {
        return Err(client.malformed("not a YouTrack issue id".into()));
    };
    let api = format!("{}/api/issues/{key}", target.base);
    let raw: RawIssue = client.decode(
        client
            .get(&format!("{api}?fields={ISSUE_FIELDS}"), &[])?
            .json,
    )?;
    let mut raw_comments = Vec::new();
    // Past MAX_COMMENTS, skip the oldest.
    let mut skip = raw.comments_count.saturating_sub(MAX_COMMENTS);
    loop {
        let url = format!("{api}/comments?fields={COMMENT_FIELDS}&$skip={skip}&$top={PAGE_SIZE}");
        let page: Vec<RawComment> = client.decode(client.get(&url, &[])?.json)?;
        let got = page.len();
        raw_comments.extend(page);
        skip += got;
        // No total in the answer: a short page is the last.
        if got < PAGE_SIZE || raw_comments.len() >= MAX_COMMENTS {
            break;
        }
    }
    // The order is not documented: sort by creation (stable for equal times).
    raw_comments.sort_by_key(|c| c.created);
    let state = raw
        .custom_fields
        .iter()
        .find(|f| f.name == "State")
        .and_then(|f| f.value.get("name").and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned();
    Ok(Issue {
        tracker: Kind::YouTrack,
        url: format!("{}/issue/{}", target.base, raw.id_readable),
        id: raw.id_readable,
        title: raw.summary,
        state,
        labels: raw.tags.into_iter().map(|t| t.name).collect(),
        author: raw.reporter.as_ref().map(User::shown),
        assignee: None,
        description: raw.description.unwrap_or_default(),
        comments: raw_comments
            .into_iter()
            .filter(|c| !c.deleted)
            .map(|c| Comment {
                author: c
                    .author
                    .as_ref()
                    .map_or_else(|| "unknown".into(), User::shown),
                created: iso_from_ms(c.created),
                body: c.text.unwrap_or_default(),
            })
            .collect(),
    })
}

fn iso_from_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
