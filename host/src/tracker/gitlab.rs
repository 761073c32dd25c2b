//! GitLab REST v4 (gitlab.com and self-hosted): the issue and its notes, newest first
//! so that the newest are the ones kept, following `Link` (or `X-Next-Page`) pages.
//! Shapes from docs.gitlab.com/api/issues ("Single project issue") and /api/notes
//! ("List all issue notes").

use serde::Deserialize;

use super::http::{Client, Page};
use super::settings::{Locator, Target};
use super::{Comment, Issue, Kind, MAX_COMMENTS, PAGE_SIZE, TrackerError};

#[derive(Debug, Deserialize)]
struct RawIssue {
    title: String,
    #[serde(default)]
    description: Option<String>,
    /// `opened` or `closed`.
    state: String,
    /// Names only: the issue API returns label names unless `with_labels_details`.
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    author: Option<User>,
    web_url: String,
}

#[derive(Debug, Deserialize)]
struct User {
    username: String,
    /// Present on newer instances' author objects; older ones omit it.
    #[serde(default)]
    bot: bool,
}

impl User {
    /// GitLab's bots: marked so, or named as GitLab names project and group access
    /// token users (`project_12_bot_…`, `group_3_bot_…`) and service accounts.
    fn is_bot(&self) -> bool {
        let name = self.username.as_str();
        let numbered = |prefix: &str| {
            name.strip_prefix(prefix)
                .and_then(|rest| rest.split_once('_'))
                .is_some_and(|(n, rest)| {
                    !n.is_empty()
                        && n.chars().all(|c| c.is_ascii_digit())
                        && rest.starts_with("bot")
                })
        };
        self.bot
            || numbered("project_")
            || numbered("group_")
            || name.starts_with("service_account_")
    }
}

#[derive(Debug, Deserialize)]
struct RawNote {
    #[serde(default)]
    body: String,
    #[serde(default)]
    author: Option<User>,
    created_at: String,
    /// Notes GitLab writes itself ("changed the description", "added ~bug label").
    #[serde(default)]
    system: bool,
}

pub fn fetch(client: &Client, target: &Target) -> Result<Issue, TrackerError> {
    let Locator::GitLab { project, iid } = &target.locator else {
        return Err(client.malformed("not a GitLab issue".into()));
    };
    // The API takes a project's path as one URL-encoded segment.
    let issue_url = format!(
        "{}/api/v4/projects/{}/issues/{iid}",
        target.base,
        project.replace('/', "%2F")
    );
    let raw: RawIssue = client.decode(client.get(&issue_url, &[])?.json)?;
    let notes_url = format!("{issue_url}/notes?sort=desc&order_by=created_at&per_page={PAGE_SIZE}");
    let mut url = Some(notes_url.clone());
    let mut fetched = 0;
    let mut comments = Vec::new();
    while let Some(next) = url.take() {
        let Page {
            json,
            next,
            next_page,
            ..
        } = client.get(&next, &[])?;
        let page: Vec<RawNote> = client.decode(json)?;
        fetched += page.len();
        comments.extend(page.into_iter().filter_map(|n| {
            let author = n.author?;
            (!n.system && !author.is_bot()).then_some(Comment {
                author: author.username,
                created: n.created_at,
                body: n.body,
            })
        }));
        url = next
            .or_else(|| next_page.map(|p| format!("{notes_url}&page={p}")))
            .filter(|_| fetched < MAX_COMMENTS);
    }
    comments.reverse();
    Ok(Issue {
        tracker: Kind::GitLab,
        id: target.label.id.clone(),
        title: raw.title,
        url: raw.web_url,
        state: raw.state,
        labels: raw.labels,
        author: raw.author.map(|u| u.username),
        assignee: None,
        description: raw.description.unwrap_or_default(),
        comments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots() {
        let user = |name: &str, bot| User {
            username: name.into(),
            bot,
        };
        for name in [
            "project_278964_bot_3f2a",
            "group_9_bot",
            "service_account_group_5_ci",
        ] {
            assert!(user(name, false).is_bot(), "{name}");
        }
        assert!(user("renovate", true).is_bot());
        for name in ["project_lead", "jdoe", "group_x_bot"] {
            assert!(!user(name, false).is_bot(), "{name}");
        }
    }
}
