//! Linear GraphQL (`POST {base}/graphql`): `issue(id:)` takes the `ENG-123` key. Comments
//! come in pages of [`PAGE_SIZE`], newest page first (`last`/`before`), so that the newest
//! are the ones kept; replies are flattened under the comment they answer. Schema: linear.app/developers/graphql and the public
//! schema (`Issue`, `Comment.parent`, `Comment.botActor`); errors arrive in an `errors`
//! list with `extensions.code`.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Client, graphql_code};
use super::settings::{Locator, Target};
use super::{Comment, Issue, Kind, MAX_COMMENTS, PAGE_SIZE, Said, TrackerError};

const QUERY: &str = "query Issue($id: String!, $last: Int!, $before: String) {
  issue(id: $id) {
    identifier title description url
    state { name }
    labels { nodes { name } }
    creator { name displayName }
    assignee { name displayName }
    comments(last: $last, before: $before) {
      nodes { id body createdAt user { name displayName } botActor { id } parent { id } }
      pageInfo { hasPreviousPage startCursor }
    }
  }
}";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIssue {
    identifier: String,
    title: String,
    #[serde(default)]
    description: Option<String>,
    url: String,
    #[serde(default)]
    state: Option<Named>,
    #[serde(default)]
    labels: Option<Nodes<Named>>,
    #[serde(default)]
    creator: Option<User>,
    #[serde(default)]
    assignee: Option<User>,
    comments: Connection,
}

#[derive(Debug, Deserialize)]
struct Named {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Nodes<T> {
    nodes: Vec<T>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

impl User {
    fn shown(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.display_name.clone())
            .unwrap_or_else(|| "unknown".into())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Connection {
    nodes: Vec<RawComment>,
    page_info: PageInfo,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_previous_page: bool,
    #[serde(default)]
    start_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawComment {
    id: String,
    #[serde(default)]
    body: String,
    created_at: String,
    /// Null for integrations and bots, which carry a `botActor` instead.
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    bot_actor: Option<Value>,
    #[serde(default)]
    parent: Option<Parent>,
}

#[derive(Debug, Deserialize)]
struct Parent {
    id: String,
}

pub fn fetch(client: &Client, target: &Target) -> Result<Issue, TrackerError> {
    let Locator::Key(key) = &target.locator else {
        return Err(client.malformed("not a Linear issue key".into()));
    };
    let url = format!("{}/graphql", target.base);
    let mut before: Option<String> = None;
    let mut first: Option<RawIssue> = None;
    let mut raw_comments = Vec::new();
    loop {
        let page = client.graphql(
            &url,
            QUERY,
            json!({ "id": key, "last": PAGE_SIZE, "before": before }),
        )?;
        let mut issue = answer(client, page.json)?;
        let Connection { nodes, page_info } = std::mem::take(&mut issue.comments);
        raw_comments.extend(nodes);
        first.get_or_insert(issue);
        match page_info.start_cursor {
            Some(cursor) if page_info.has_previous_page && raw_comments.len() < MAX_COMMENTS => {
                before = Some(cursor);
            }
            _ => break,
        }
    }
    let Some(raw) = first else {
        return Err(client.malformed("no issue in the answer".into()));
    };
    Ok(Issue {
        tracker: Kind::Linear,
        id: raw.identifier,
        title: raw.title,
        url: raw.url,
        state: raw.state.map(|s| s.name).unwrap_or_default(),
        labels: raw
            .labels
            .map(|l| l.nodes.into_iter().map(|n| n.name).collect())
            .unwrap_or_default(),
        author: raw.creator.as_ref().map(User::shown),
        assignee: raw.assignee.as_ref().map(User::shown),
        description: raw.description.unwrap_or_default(),
        comments: flatten(raw_comments),
    })
}

/// The issue in a GraphQL answer, or the error its `errors` list stands for.
fn answer(client: &Client, mut json: Value) -> Result<RawIssue, TrackerError> {
    let issue = json.pointer_mut("/data/issue").map(Value::take);
    match issue {
        Some(issue) if !issue.is_null() => client.decode(issue),
        _ => Err(graphql_error(client, &json)),
    }
}

/// Linear's error codes as the errors every tracker reports; a message of its own
/// otherwise. (`Entity not found: Issue` comes as `INPUT_ERROR`, sometimes with HTTP 200.)
fn graphql_error(client: &Client, json: &Value) -> TrackerError {
    let first = json.pointer("/errors/0");
    let text = |field: &str| {
        first
            .and_then(|e| e.pointer(field))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let message = text("/message");
    if graphql_code(json, "AUTHENTICATION_ERROR") {
        return client.status_error(401, Said::default());
    }
    if graphql_code(json, "FORBIDDEN") {
        return client.status_error(403, Said::default());
    }
    if message.starts_with("Entity not found") || first.is_none() {
        return client.status_error(404, Said::default());
    }
    let shown = match text("/extensions/userPresentableMessage") {
        "" => message,
        user => user,
    };
    TrackerError::Rejected {
        label: client.label.clone(),
        host: client.host.clone(),
        message: shown.replace(['\r', '\n'], " ").chars().take(200).collect(),
    }
}

/// Oldest thread first, each reply right after the comment it answers (replies oldest
/// first too); bots and integrations dropped.
fn flatten(mut raw: Vec<RawComment>) -> Vec<Comment> {
    raw.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    let known: std::collections::HashSet<String> = raw.iter().map(|c| c.id.clone()).collect();
    let mut replies: HashMap<String, Vec<RawComment>> = HashMap::new();
    let mut roots = Vec::new();
    for c in raw {
        match c.parent.as_ref().map(|p| p.id.clone()) {
            // A reply whose parent is not among those fetched stands on its own.
            Some(parent) if known.contains(&parent) => replies.entry(parent).or_default().push(c),
            _ => roots.push(c),
        }
    }
    let mut out = Vec::new();
    let mut stack: Vec<RawComment> = roots.into_iter().rev().collect();
    while let Some(c) = stack.pop() {
        if let Some(children) = replies.remove(&c.id) {
            stack.extend(children.into_iter().rev());
        }
        if c.bot_actor.as_ref().is_some_and(|b| !b.is_null()) {
            continue;
        }
        if let Some(user) = &c.user {
            out.push(Comment {
                author: user.shown(),
                created: c.created_at,
                body: c.body,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(id: &str, at: &str, parent: Option<&str>) -> RawComment {
        RawComment {
            id: id.into(),
            body: id.into(),
            created_at: at.into(),
            user: Some(User {
                name: Some("u".into()),
                display_name: None,
            }),
            bot_actor: None,
            parent: parent.map(|p| Parent { id: p.into() }),
        }
    }

    #[test]
    fn threads_are_flattened_in_order() {
        let mut bot = comment("bot", "2024-01-01T00:00:05Z", None);
        bot.user = None;
        bot.bot_actor = Some(json!({"id": "b"}));
        let raw = vec![
            comment("b", "2024-01-01T00:00:02Z", None),
            comment("a1", "2024-01-01T00:00:03Z", Some("a")),
            comment("a", "2024-01-01T00:00:01Z", None),
            comment("b1", "2024-01-01T00:00:06Z", Some("b")),
            comment("a2", "2024-01-01T00:00:04Z", Some("a")),
            bot,
            comment("orphan", "2024-01-01T00:00:07Z", Some("gone")),
        ];
        let order: Vec<String> = flatten(raw).into_iter().map(|c| c.body).collect();
        assert_eq!(order, ["a", "a1", "a2", "b", "b1", "orphan"]);
    }
}
