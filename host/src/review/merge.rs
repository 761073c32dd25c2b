//! Landing a session's branch in the main checkout. The merge (or each commit of a
//! rebase) is made in memory (git2 `merge_commits`, `cherrypick_commit`) and written
//! only when it is conflict-free and the checkout is clean and on the target branch, so
//! a refusal leaves the checkout, its index and every ref as they were.

use std::path::Path;

use canopy_protocol::review::MergeResult;
use git2::{BranchType, Repository, StatusOptions, build::CheckoutBuilder};

use super::{ReviewError, git};
use crate::git::open_main_repo;

/// What to merge where.
#[derive(Debug)]
pub struct Request<'a> {
    pub name: &'a str,
    /// The main checkout (any path in the repository).
    pub repo: &'a Path,
    /// The session's worktree, checked for work not committed to its branch.
    pub worktree: &'a Path,
    pub branch: &'a str,
    /// The local branch to merge into.
    pub target: &'a str,
    pub how: How,
}

/// How the branch lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// A fast-forward when possible, else a merge commit.
    Merge,
    /// One commit with the branch's whole change.
    Squash,
    /// The branch's commits replayed one by one on the target's tip, which then
    /// fast-forwards to them (the session's branch itself stays where it is, as its
    /// worktree has it checked out).
    Rebase,
}

/// Merge, squash or rebase the session's branch into `target`, checked out and clean in the
/// main checkout; refuse with the reason otherwise, changing nothing.
pub fn merge(req: &Request<'_>) -> Result<MergeResult, ReviewError> {
    let repo = open_main_repo(req.repo)?;
    let checkout = repo
        .workdir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let target_ref = format!("refs/heads/{}", req.target);
    let ours = repo
        .find_branch(req.target, BranchType::Local)
        .and_then(|b| b.get().peel_to_commit())
        .map_err(|_| ReviewError::NotABranch(req.target.to_owned()))?;
    let head = repo.head().ok();
    let on = head
        .as_ref()
        .and_then(|h| h.name().ok().map(str::to_owned))
        .unwrap_or_else(|| "HEAD".to_owned());
    if !head.as_ref().is_some_and(|h| h.is_branch()) || on != target_ref {
        return Err(ReviewError::WrongBranch {
            checkout,
            on: on.trim_start_matches("refs/heads/").to_owned(),
            target: req.target.to_owned(),
        });
    }
    let dirty = changed(&repo, false)?;
    if !dirty.is_empty() {
        return Err(ReviewError::Dirty {
            checkout,
            files: dirty,
        });
    }
    let session = Repository::open(req.worktree)
        .map_err(git(format!("opening {}", req.worktree.display())))?;
    let uncommitted = changed(&session, true)?;
    if !uncommitted.is_empty() {
        return Err(ReviewError::Uncommitted {
            name: req.name.to_owned(),
            files: uncommitted,
        });
    }
    let theirs = repo
        .find_branch(req.branch, BranchType::Local)
        .and_then(|b| b.get().peel_to_commit())
        .map_err(git(format!("reading branch {}", req.branch)))?;

    let done = |commit: git2::Oid, how: &str| MergeResult {
        target: req.target.to_owned(),
        commit: commit.to_string(),
        how: how.to_owned(),
    };
    let contains =
        |a: git2::Oid, b: git2::Oid| a == b || repo.graph_descendant_of(a, b).unwrap_or(false);
    if contains(ours.id(), theirs.id()) {
        return Ok(done(ours.id(), "up_to_date"));
    }
    let (new, how) = if req.how != How::Squash && contains(theirs.id(), ours.id()) {
        (theirs.id(), "fast_forward")
    } else if req.how == How::Rebase {
        (rebased(&repo, req, &ours, &theirs)?, "rebase")
    } else {
        let index = repo
            .merge_commits(&ours, &theirs, None)
            .map_err(git("merging in memory"))?;
        let tree = clean_tree(&repo, req, index)?;
        let sig = repo.signature().map_err(|_| ReviewError::NoIdentity)?;
        let (message, parents, how) = if req.how == How::Squash {
            (
                squash_message(&repo, req, &ours, &theirs)?,
                vec![&ours],
                "squash",
            )
        } else {
            (
                format!("Merge branch '{}' into {}", req.branch, req.target),
                vec![&ours, &theirs],
                "merge",
            )
        };
        // Not on any ref yet: the branch moves only once the files are written.
        let id = repo
            .commit(None, &sig, &sig, &message, &tree, &parents)
            .map_err(git("making the merge commit"))?;
        (id, how)
    };
    // A rebase whose every commit was already in the target changes nothing.
    if new == ours.id() {
        return Ok(done(new, "up_to_date"));
    }
    let commit = repo
        .find_commit(new)
        .map_err(git("reading the new commit"))?;
    // libgit2 checks every file before it writes any: an untracked file in the way
    // fails the checkout with nothing changed.
    repo.checkout_tree(commit.as_object(), Some(CheckoutBuilder::new().safe()))
        .map_err(git("writing the merged files"))?;
    repo.reference_matching(
        &target_ref,
        new,
        true,
        ours.id(),
        &format!("canopy merge {}: {how}", req.name),
    )
    .map_err(git(format!("moving {}", req.target)))?;
    Ok(done(new, how))
}

/// The tree of an in-memory merge, or the conflicts that keep it from being written.
fn clean_tree<'r>(
    repo: &'r Repository,
    req: &Request<'_>,
    mut index: git2::Index,
) -> Result<git2::Tree<'r>, ReviewError> {
    if index.has_conflicts() {
        return Err(ReviewError::Conflicts {
            branch: req.branch.to_owned(),
            target: req.target.to_owned(),
            files: conflicted(&index)?,
        });
    }
    let id = index
        .write_tree_to(repo)
        .map_err(git("writing the merged tree"))?;
    repo.find_tree(id).map_err(git("reading the merged tree"))
}

/// Replay the commits of `theirs` that `ours` lacks, oldest first, on `ours`: each
/// keeps its author and message. Merge commits, and commits whose change the target
/// already has, are left out, as `git rebase` leaves them out. Nothing is on a ref yet; a conflict in any commit refuses the whole.
fn rebased(
    repo: &Repository,
    req: &Request<'_>,
    ours: &git2::Commit<'_>,
    theirs: &git2::Commit<'_>,
) -> Result<git2::Oid, ReviewError> {
    let sig = repo.signature().map_err(|_| ReviewError::NoIdentity)?;
    let mut tip = ours.clone();
    for id in branch_commits(repo, ours, theirs, git2::Sort::REVERSE)? {
        let commit = repo
            .find_commit(id)
            .map_err(git(format!("reading commit {id}")))?;
        if commit.parent_count() > 1 {
            continue;
        }
        let index = repo
            .cherrypick_commit(&commit, &tip, 0, None)
            .map_err(git(format!("replaying commit {id}")))?;
        let tree = clean_tree(repo, req, index)?;
        // Its change is in the target already (landed before): left out, as git does.
        if tree.id() == tip.tree_id() {
            continue;
        }
        let new = repo
            .commit(
                None,
                &commit.author(),
                &sig,
                commit.message_raw().unwrap_or_default(),
                &tree,
                &[&tip],
            )
            .map_err(git("making a rebased commit"))?;
        tip = repo
            .find_commit(new)
            .map_err(git("reading a rebased commit"))?;
    }
    Ok(tip.id())
}

/// The commits on `theirs` that `ours` does not have, in topological order (oldest
/// first with `Sort::REVERSE`).
fn branch_commits(
    repo: &Repository,
    ours: &git2::Commit<'_>,
    theirs: &git2::Commit<'_>,
    order: git2::Sort,
) -> Result<Vec<git2::Oid>, ReviewError> {
    let mut walk = repo.revwalk().map_err(git("walking commits"))?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | order)
        .map_err(git("walking commits"))?;
    walk.push(theirs.id()).map_err(git("walking commits"))?;
    walk.hide(ours.id()).map_err(git("walking commits"))?;
    walk.collect::<Result<_, _>>()
        .map_err(git("walking commits"))
}

/// Files changed in a checkout: tracked changes, and untracked files too when
/// `untracked` (a session's new files are work a merge would leave out; stray files in
/// the main checkout are not in a merge's way unless the checkout meets them).
pub(crate) fn changed(repo: &Repository, untracked: bool) -> Result<Vec<String>, ReviewError> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(untracked)
        .recurse_untracked_dirs(untracked)
        .include_ignored(false);
    let statuses = repo
        .statuses(Some(&mut opts))
        .map_err(git("reading the checkout's status"))?;
    Ok(statuses
        .iter()
        .filter_map(|e| e.path().ok().map(str::to_owned))
        .collect())
}

fn conflicted(index: &git2::Index) -> Result<Vec<String>, ReviewError> {
    let mut files: Vec<String> = index
        .conflicts()
        .map_err(git("listing conflicts"))?
        .flatten()
        .filter_map(|c| c.our.or(c.their).or(c.ancestor))
        .map(|e| String::from_utf8_lossy(&e.path).into_owned())
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// Conflicting files if `branch` were merged into `base` now, from a merge in memory.
pub fn dry_run(repo: &Repository, base: &str, branch: &str) -> Result<Vec<String>, ReviewError> {
    let commit = |name: &str| {
        repo.revparse_single(name)
            .and_then(|o| o.peel_to_commit())
            .map_err(git(format!("reading {name}")))
    };
    let (ours, theirs) = (commit(base)?, commit(&format!("refs/heads/{branch}"))?);
    let index = repo
        .merge_commits(&ours, &theirs, None)
        .map_err(git("merging in memory"))?;
    if index.has_conflicts() {
        conflicted(&index)
    } else {
        Ok(Vec::new())
    }
}

fn squash_message(
    repo: &Repository,
    req: &Request<'_>,
    ours: &git2::Commit<'_>,
    theirs: &git2::Commit<'_>,
) -> Result<String, ReviewError> {
    let mut message = format!("{} (squashed)\n", req.branch);
    for id in branch_commits(repo, ours, theirs, git2::Sort::NONE)? {
        if let Ok(c) = repo.find_commit(id) {
            message.push_str(&format!("\n* {}", c.summary().ok().flatten().unwrap_or("")));
        }
    }
    Ok(message)
}
