//! Review: a session's diff against its base (`diff.rs`), comments anchored to its
//! lines and sent back to the agent (`comments.rs`), landing the branch in the main
//! checkout (`merge.rs`), and the conflict radar across live sessions (`radar.rs`).
//!
//! The git work is blocking and runs on the blocking pool; the handlers here only
//! fetch records, hand the work over and record comment changes in the registry.

pub mod comments;
pub mod diff;
pub mod merge;
pub mod radar;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use canopy_protocol::params::NameParams;
use canopy_protocol::review::{CommentParams, DiffParams, MergeParams, PrParams, SentComments};
use canopy_protocol::{ErrorCode, RpcError, method};
use rmpv::Value;

use crate::clock::now_ms;
use crate::daemon::Daemon;
use crate::git::GitError;
use crate::rpc::{blocking, encode, parse};

/// What went wrong in review work.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Opening the repository failed.
    #[error(transparent)]
    Repo(#[from] GitError),
    /// A git operation failed, with what was being done.
    #[error("{doing}: {source}")]
    Git { doing: String, source: git2::Error },
    /// A comment's path is not a file of the worktree.
    #[error("{path}: {why}")]
    BadPath { path: String, why: String },
    /// A comment's line is past the end of its file.
    #[error("{path} has {lines} lines; there is no line {line}")]
    NoLine {
        path: String,
        line: u32,
        lines: usize,
    },
    /// The merge target is not a local branch.
    #[error("{0:?} is not a local branch to merge into")]
    NotABranch(String),
    /// The main checkout is on another branch than the one to merge into.
    #[error("the checkout at {checkout} is on {on}, not {target}")]
    WrongBranch {
        checkout: String,
        on: String,
        target: String,
    },
    /// The main checkout has changes a merge could mix with.
    #[error("the checkout at {checkout} has uncommitted changes")]
    Dirty {
        checkout: String,
        files: Vec<String>,
    },
    /// The session's worktree has work its branch does not hold yet.
    #[error("session {name:?} has uncommitted work that a merge would leave out")]
    Uncommitted { name: String, files: Vec<String> },
    /// The branch does not merge cleanly.
    #[error("{branch} conflicts with {target} in {} files", files.len())]
    Conflicts {
        branch: String,
        target: String,
        files: Vec<String>,
    },
    /// git has no user to sign the commit with.
    #[error("git has no user.name and user.email to make the merge commit with")]
    NoIdentity,
}

pub(crate) fn git(doing: impl Into<String>) -> impl FnOnce(git2::Error) -> ReviewError {
    let doing = doing.into();
    move |source| ReviewError::Git { doing, source }
}

impl From<ReviewError> for RpcError {
    fn from(e: ReviewError) -> Self {
        let message = e.to_string();
        let (code, hint, details) = match e {
            ReviewError::Repo(e) => return e.into(),
            ReviewError::Git { .. } => (ErrorCode::Git, None, Vec::new()),
            ReviewError::BadPath { .. } | ReviewError::NoLine { .. } => (
                ErrorCode::InvalidParams,
                Some("give PATH:LINE with PATH relative to the worktree, LINE from 1".to_owned()),
                Vec::new(),
            ),
            ReviewError::NotABranch(_) => (
                ErrorCode::InvalidParams,
                Some("pass --into BRANCH".to_owned()),
                Vec::new(),
            ),
            ReviewError::WrongBranch { target, .. } => (
                ErrorCode::InvalidState,
                Some(format!("`git switch {target}` there first, or pass --into")),
                Vec::new(),
            ),
            ReviewError::Dirty { files, .. } => (
                ErrorCode::InvalidState,
                Some("commit or stash them first; nothing was changed".to_owned()),
                files,
            ),
            ReviewError::Uncommitted { name, files } => (
                ErrorCode::InvalidState,
                Some(format!("ask the agent to commit (`canopy send {name} …`) or commit in its worktree")),
                files,
            ),
            ReviewError::Conflicts { files, .. } => (
                ErrorCode::InvalidState,
                Some("nothing was changed; rebase or merge the base into the session's branch and resolve them there".to_owned()),
                files,
            ),
            ReviewError::NoIdentity => (
                ErrorCode::Git,
                Some("`git config --global user.name NAME` and `user.email EMAIL`".to_owned()),
                Vec::new(),
            ),
        };
        let err = RpcError::new(code, message).with_details(details);
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }
}

/// Handle `diff`, `review_*`, `merge`, `conflicts` and `set_pr`.
pub async fn handle(
    daemon: &Arc<Daemon>,
    method: &str,
    params: &[Value],
) -> Result<Value, RpcError> {
    match method {
        method::DIFF => {
            let p: DiffParams = parse(params)?;
            let (s, _) = daemon.registry.get(&p.name).await?;
            encode(
                &blocking(move || {
                    diff::diff(Path::new(&s.worktree), &s.base, &s.base_commit, &p.paths)
                })
                .await?,
            )
        }
        method::REVIEW_LIST => {
            let p: NameParams = parse(params)?;
            let (s, _) = daemon.registry.get(&p.name).await?;
            encode(&blocking(move || Ok::<_, ReviewError>(anchored(&s))).await?)
        }
        method::REVIEW_ADD => {
            let p: CommentParams = parse(params)?;
            let (s, _) = daemon.registry.get(&p.name).await?;
            let worktree = PathBuf::from(s.worktree);
            let (path, line) = (p.path.clone(), p.line);
            let code = blocking(move || comments::code_at(&worktree, &path, line)).await?;
            let comment = canopy_protocol::session::Comment {
                path: p.path,
                line: p.line,
                code,
                text: p.text,
                created_at: now_ms(),
            };
            let added = comment.clone();
            daemon
                .registry
                .edit_comments(&p.name, Box::new(move |all| all.push(added)))
                .await?;
            encode(&comments::anchored_at(comment))
        }
        method::REVIEW_SEND => {
            let p: NameParams = parse(params)?;
            let handle = crate::rpc::running(daemon, &p.name).await?;
            let (s, _) = daemon.registry.get(&p.name).await?;
            if s.comments.is_empty() {
                return Err(RpcError::new(
                    ErrorCode::InvalidState,
                    format!("session {:?} has no review comments to send", p.name),
                )
                .with_hint(format!(
                    "`canopy review {} --comment PATH:LINE TEXT` adds one",
                    p.name
                )));
            }
            let sent = s.clone();
            let anchored = blocking(move || Ok::<_, ReviewError>(anchored(&sent))).await?;
            let prompt = comments::prompt(&anchored);
            crate::rpc::type_text(&handle, prompt.clone(), true)
                .await
                .ok_or_else(|| {
                    RpcError::new(
                        ErrorCode::InvalidState,
                        format!("session {:?} is not running", p.name),
                    )
                })?;
            // Only the comments sent are cleared: one added meanwhile waits for the next send.
            let sent = s.comments;
            daemon
                .registry
                .edit_comments(
                    &p.name,
                    Box::new(move |all| all.retain(|c| !sent.contains(c))),
                )
                .await?;
            encode(&SentComments {
                sent: anchored.len() as u32,
                prompt,
            })
        }
        method::MERGE => {
            let p: MergeParams = parse(params)?;
            let (s, _) = daemon.registry.get(&p.name).await?;
            let target = p.into.unwrap_or_else(|| s.base.clone());
            let how = match (p.squash, p.rebase) {
                (false, false) => merge::How::Merge,
                (true, false) => merge::How::Squash,
                (false, true) => merge::How::Rebase,
                (true, true) => {
                    return Err(RpcError::new(
                        ErrorCode::InvalidParams,
                        "squash and rebase exclude each other",
                    ));
                }
            };
            let merged = blocking(move || {
                merge::merge(&merge::Request {
                    name: &s.name,
                    repo: s.repo.as_ref(),
                    worktree: s.worktree.as_ref(),
                    branch: &s.branch,
                    target: &target,
                    how,
                })
            })
            .await?;
            // The base moved: other sessions may no longer merge into it.
            daemon.radar.notify_one();
            encode(&merged)
        }
        method::CONFLICTS => {
            let live = daemon
                .registry
                .list()
                .await?
                .into_iter()
                .filter(|s| s.is_local() && s.is_running())
                .collect();
            encode(&blocking(move || Ok::<_, ReviewError>(radar::radar(live))).await?)
        }
        method::SET_PR => {
            let p: PrParams = parse(params)?;
            encode(&daemon.registry.set_pr(&p.name, p.pr).await?)
        }
        _ => Err(RpcError::new(
            ErrorCode::UnknownMethod,
            format!("unknown method {method:?}"),
        )),
    }
}

/// A session's comments against its worktree now, following the files its change
/// renamed. Blocking.
fn anchored(s: &canopy_protocol::Session) -> Vec<canopy_protocol::review::Anchored> {
    let worktree = Path::new(&s.worktree);
    // Without renames (say, the base is gone) comments are still listed, by their paths.
    let renames = diff::renames(worktree, &s.base, &s.base_commit).unwrap_or_default();
    comments::anchor_all(worktree, &renames, s.comments.clone())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fs;
    use std::path::Path;

    use git2::Repository;

    use crate::git::tests::commit_all;
    use crate::git::{Worktree, create_worktree};

    /// A repository on `main` with `a.txt` (one, two, three) and a session worktree.
    pub fn fixture() -> (tempfile::TempDir, Worktree) {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo_dir = dir.path().join("proj");
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = Repository::init_opts(&repo_dir, &opts).expect("init");
        fs::write(repo_dir.join("a.txt"), "one\ntwo\nthree\n").expect("write");
        commit_all(&repo, "first");
        let wt = create_worktree(Path::new(&repo_dir), "s", None, None).expect("worktree");
        (dir, wt)
    }
}
