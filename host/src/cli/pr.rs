//! `canopy pr NAME [--draft] [--title T] [--base B]`: the CLI pushes the session's
//! branch and opens (or finds, or refreshes) its pull or merge request with the user's
//! git and tokens (`crate::forge`), then has the host record it (`set_pr`).

use canopy_protocol::params::NameParams;
use canopy_protocol::review::PrParams;
use canopy_protocol::session::Task;
use canopy_protocol::{PullRequest, Session, method};

use super::format::{age, cost, pr_label};
use super::{CliError, connect};
use crate::clock::now_ms;
use crate::config::Config;
use crate::forge::{self, Forge, Located, Options, Outcome};
use crate::paths::Paths;
use crate::tracker::Kind;
use crate::tracker::settings::ProcessEnv;

/// What the user asked for beyond the session.
#[derive(Debug)]
pub struct Args {
    pub name: String,
    pub draft: bool,
    pub title: Option<String>,
    pub base: Option<String>,
}

/// Push, open or refresh, record, and say what became of it.
pub async fn pr(paths: &Paths, args: Args) -> Result<(), CliError> {
    let mut client = connect(paths).await?;
    let session: Session = client
        .call(
            method::GET,
            &NameParams {
                name: args.name.clone(),
            },
        )
        .await?;
    if !session.is_local() {
        return Err(CliError::new(format!(
            "session {:?} runs on host {}, where its branch is",
            session.name, session.host
        ))
        .with_hint(format!("run `canopy pr` on {}", session.host)));
    }
    let config = Config::load(&paths.config_file)?;
    let name = args.name.clone();
    let work = tokio::task::spawn_blocking(move || {
        let at = forge::locate(&session, &config.trackers, &ProcessEnv)
            .map_err(|e| CliError::new(e.to_string()).with_hint(e.hint(None)))?;
        let opts = Options {
            title: args.title.unwrap_or_else(|| default_title(&session, &at)),
            body: body(&session, &at.forge, now_ms()),
            draft: args.draft,
            base: args.base,
        };
        warn_uncommitted(&session);
        forge::open(&at, &session, &opts)
            .map(|opened| (at.forge.kind, opened))
            .map_err(|e| CliError::new(e.to_string()).with_hint(e.hint(Some(&at.forge))))
    });
    let (kind, opened) = work
        .await
        .map_err(|e| CliError::new(format!("canopy pr failed: {e}")))??;
    let _: Session = client
        .call(
            method::SET_PR,
            &PrParams {
                name: name.clone(),
                pr: opened.pr.clone(),
            },
        )
        .await?;
    println!("{}", outcome_line(&name, kind, &opened));
    Ok(())
}

/// Only commits are pushed: say so when the worktree holds more.
fn warn_uncommitted(session: &Session) {
    let files = git2::Repository::open(&session.worktree)
        .ok()
        .and_then(|repo| crate::review::merge::changed(&repo, true).ok())
        .unwrap_or_default();
    if !files.is_empty() {
        eprintln!(
            "warning: {} has {} uncommitted files that the push leaves out",
            session.name,
            files.len()
        );
    }
}

/// `x: pushed to origin; opened pull request #7 URL`, or what became of it.
fn outcome_line(name: &str, kind: Kind, opened: &forge::Opened) -> String {
    let noun = match kind {
        Kind::GitLab => "merge request",
        _ => "pull request",
    };
    let pushed = opened
        .pushed_to
        .as_ref()
        .map_or_else(String::new, |r| format!("pushed to {r}; "));
    let PullRequest { url, state, .. } = &opened.pr;
    let label = pr_label(&opened.pr);
    match opened.outcome {
        Outcome::Created => format!("{name}: {pushed}opened {noun} {label} {url}"),
        Outcome::Reused => format!("{name}: {pushed}already open: {noun} {label} {url}"),
        Outcome::Refreshed => {
            let mark = label.split_whitespace().next().unwrap_or_default();
            format!("{name}: {pushed}{noun} {mark} is {state}: {url}")
        }
    }
}

/// The issue's title, else the summary of the branch's first commit, else the name.
fn default_title(session: &Session, at: &Located) -> String {
    if let Some(task) = &session.task {
        return task.title.clone();
    }
    first_commit(at, session).unwrap_or_else(|| session.name.clone())
}

/// The summary of the oldest commit on the branch that its base lacks.
fn first_commit(at: &Located, session: &Session) -> Option<String> {
    let repo = git2::Repository::open(&at.workdir).ok()?;
    let mut walk = repo.revwalk().ok()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
        .ok()?;
    walk.push_ref(&format!("refs/heads/{}", session.branch))
        .ok()?;
    let base = repo.revparse_single(&session.base).ok()?;
    walk.hide(base.id()).ok()?;
    let first = walk.flatten().next()?;
    let commit = repo.find_commit(first).ok()?;
    commit.summary().ok().flatten().map(str::to_owned)
}

/// The body: the issue the session started from (closed by the merge when it is on the
/// same forge), then what the session cost and did.
fn body(session: &Session, forge: &Forge, now_ms: u64) -> String {
    let mut out = String::new();
    if let Some(task) = &session.task {
        out.push_str(&issue_line(task, forge));
        out.push_str("\n\n");
    }
    out.push_str(&summary(session, now_ms));
    out
}

/// `Closes #42` for an issue of the same repository, `Closes o/r#42` for another one on
/// the same forge (GitHub and GitLab both read that), else a link.
fn issue_line(task: &Task, forge: &Forge) -> String {
    let same_forge = task.tracker == forge.kind.as_str();
    match task.id.rsplit_once('#') {
        Some((project, n)) if same_forge && project.eq_ignore_ascii_case(&forge.project) => {
            format!("Closes #{n}")
        }
        Some(_) if same_forge => format!("Closes {}", task.id),
        _ => format!("Issue: [{}]({}) — {}", task.id, task.url, task.title),
    }
}

/// One line on how the change was made: agent, cost, time, lines and tools.
fn summary(s: &Session, now_ms: u64) -> String {
    let u = &s.usage;
    let wall = if u.wall_ms > 0 {
        u.wall_ms
    } else {
        now_ms.saturating_sub(s.created_at)
    };
    let mut tools: Vec<(&String, &u64)> = u.tool_calls.by_tool.iter().collect();
    tools.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = tools
        .iter()
        .take(5)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    let tools = if top.is_empty() {
        format!("{} tool calls", u.tool_calls.total)
    } else {
        format!("{} tool calls ({})", u.tool_calls.total, top.join(", "))
    };
    format!(
        "---\nMade by {} in Canopy session `{}`: {} over {} ({} active), +{} −{} lines, {tools}.\n",
        s.agent,
        s.name,
        cost(u.cost_usd),
        age(wall),
        age(u.active_ms),
        u.lines_added,
        u.lines_removed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(tracker: &str, id: &str) -> Task {
        Task {
            tracker: tracker.into(),
            id: id.into(),
            title: "Fix it".into(),
            url: "https://x.test/i".into(),
        }
    }

    #[test]
    fn the_body_closes_an_issue_of_the_same_forge_and_links_others() {
        let trackers = crate::tracker::TrackersConfig::default();
        let remote = forge::push::Remote {
            name: "origin".into(),
            url: "git@github.com:Acme/widgets.git".into(),
            upstream_branch: None,
        };
        let repo_file = crate::tracker::RepoFile::default();
        let forge = Forge::of_remote(&remote, &trackers, &repo_file, &NoEnv).expect("forge");
        assert_eq!(
            issue_line(&task("github", "acme/Widgets#42"), &forge),
            "Closes #42"
        );
        assert_eq!(
            issue_line(&task("github", "acme/other#7"), &forge),
            "Closes acme/other#7"
        );
        assert_eq!(
            issue_line(&task("jira", "PROJ-12"), &forge),
            "Issue: [PROJ-12](https://x.test/i) — Fix it"
        );
    }

    struct NoEnv;

    impl crate::tracker::settings::Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
        fn gh_token(&self, _: &str) -> Option<String> {
            None
        }
        fn glab_token(&self, _: &str) -> Option<String> {
            None
        }
    }
}
