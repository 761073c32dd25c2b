//! Git worktrees for sessions, with git2: create one per session on its own branch,
//! find what removing it would lose, and remove it.
//!
//! Everything here is blocking disk work; the host runs it on the blocking pool.

use std::path::{Path, PathBuf};

use git2::{BranchType, Repository, StatusOptions, WorktreeAddOptions, WorktreePruneOptions};

/// What went wrong with a git operation.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The path is not inside a git repository.
    #[error("{0} is not inside a git repository")]
    NotARepo(PathBuf),
    /// Sessions need a working directory.
    #[error("{0} is a bare repository; sessions need one with a working directory")]
    Bare(PathBuf),
    /// There is nothing to branch from.
    #[error("the repository at {0} has no commits yet")]
    NoCommits(PathBuf),
    /// `--base` does not name a commit.
    #[error("base {base:?} does not name a commit: {message}")]
    BadBase { base: String, message: String },
    /// The session name cannot be a branch or directory name.
    #[error("invalid session name {name:?}: {why}")]
    BadName { name: String, why: &'static str },
    /// A branch, directory or worktree by that name is already there.
    #[error("{0} already exists")]
    Exists(String),
    /// Any other failure, with what was being done.
    #[error("{doing}: {source}")]
    Git { doing: String, source: git2::Error },
    /// A file-system operation failed.
    #[error("{doing}: {source}")]
    Io {
        doing: String,
        source: std::io::Error,
    },
}

fn git(doing: impl Into<String>) -> impl FnOnce(git2::Error) -> GitError {
    let doing = doing.into();
    move |source| GitError::Git { doing, source }
}

fn io(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> GitError {
    let doing = doing.into();
    move |source| GitError::Io { doing, source }
}

/// The branch prefix of every session branch.
pub const BRANCH_PREFIX: &str = "canopy/";

/// A session's worktree as created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    /// The main working directory of the repository.
    pub repo: PathBuf,
    pub path: PathBuf,
    pub branch: String,
    /// The base as the user named it (or HEAD's branch).
    pub base: String,
    pub base_commit: String,
}

/// Session names become branch names and directory names: keep them to a safe set.
pub fn check_session_name(name: &str) -> Result<(), GitError> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 64 {
        Some("it is longer than 64 characters")
    } else if name.starts_with(['.', '-']) {
        Some("it starts with '.' or '-'")
    } else if name.ends_with(".lock") || name.contains("..") {
        Some("git does not allow '..' or a '.lock' ending")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Some("use letters, digits, '-', '_' and '.'")
    } else {
        None
    };
    match why {
        Some(why) => Err(GitError::BadName {
            name: name.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// Open the main repository around `path`, even from inside a linked worktree.
pub fn open_main_repo(path: &Path) -> Result<Repository, GitError> {
    let repo = Repository::discover(path).map_err(|_| GitError::NotARepo(path.to_owned()))?;
    let repo = if repo.is_worktree() {
        Repository::open(repo.commondir()).map_err(git("opening the main repository"))?
    } else {
        repo
    };
    if repo.is_bare() {
        return Err(GitError::Bare(repo.path().to_owned()));
    }
    Ok(repo)
}

/// The main checkout of the repository around `path` (where `.canopy.toml` is read).
pub fn main_checkout(path: &Path) -> Result<PathBuf, GitError> {
    workdir(&open_main_repo(path)?)
}

fn workdir(repo: &Repository) -> Result<PathBuf, GitError> {
    repo.workdir()
        .map(|p| p.components().collect::<PathBuf>())
        .ok_or_else(|| GitError::Bare(repo.path().to_owned()))
}

/// Where a session's worktree goes: `<root>/<repo name>/<name>` when a root is
/// configured, else `<repo>.worktrees/<name>` beside the repository.
pub fn worktree_path(repo_dir: &Path, root: Option<&Path>, name: &str) -> PathBuf {
    let repo_name = repo_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".to_owned());
    match root {
        Some(root) => root.join(&repo_name).join(name),
        None => repo_dir
            .with_file_name(format!("{repo_name}.worktrees"))
            .join(name),
    }
}

/// Worktrees are added one at a time. libgit2 decides whether a branch is checked out
/// by reading every worktree's HEAD, and one being added beside it makes that check
/// fail spuriously ("reference … is already checked out", seen with ten `new` at once
/// in tests/tests/load.rs). Callers run this on blocking threads, so waiting here holds
/// no async worker.
static WORKTREE_ADDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Create branch `canopy/<name>` from `base` (default HEAD) and a worktree for it.
/// On any failure nothing is left behind.
pub fn create_worktree(
    repo_hint: &Path,
    name: &str,
    base: Option<&str>,
    root: Option<&Path>,
) -> Result<Worktree, GitError> {
    check_session_name(name)?;
    // Poisoning only means another add panicked; the lock guards no data.
    let _one_at_a_time = WORKTREE_ADDS.lock().unwrap_or_else(|e| e.into_inner());
    let repo = open_main_repo(repo_hint)?;
    let repo_dir = workdir(&repo)?;

    let (base_name, commit) = resolve_base(&repo, &repo_dir, base)?;
    let branch = format!("{BRANCH_PREFIX}{name}");
    if repo.find_branch(&branch, BranchType::Local).is_ok() {
        return Err(GitError::Exists(format!("branch {branch}")));
    }
    let path = worktree_path(&repo_dir, root, name);
    if path.exists() {
        return Err(GitError::Exists(format!("directory {}", path.display())));
    }
    if let Ok(stale) = repo.find_worktree(name) {
        if stale.validate().is_ok() {
            return Err(GitError::Exists(format!("git worktree {name}")));
        }
        // Its directory is gone: the admin entry is only bookkeeping.
        stale
            .prune(None)
            .map_err(git(format!("pruning stale worktree {name}")))?;
    }

    let parent = path.parent().unwrap_or(&repo_dir).to_owned();
    let created_parent = !parent.exists();
    std::fs::create_dir_all(&parent).map_err(io(format!("creating {}", parent.display())))?;

    let undo = |repo: &Repository| {
        if let Ok(mut b) = repo.find_branch(&branch, BranchType::Local) {
            let _ = b.delete();
        }
        if created_parent {
            let _ = std::fs::remove_dir(&parent);
        }
    };
    let made = (|| {
        let branch_ref = repo
            .branch(&branch, &commit, false)
            .map_err(git(format!("creating branch {branch}")))?;
        let mut opts = WorktreeAddOptions::new();
        opts.reference(Some(branch_ref.get()));
        repo.worktree(name, &path, Some(&opts))
            .map_err(git(format!("creating worktree {}", path.display())))
    })();
    if let Err(e) = made {
        undo(&repo);
        let _ = std::fs::remove_dir_all(&path);
        return Err(e);
    }

    Ok(Worktree {
        repo: repo_dir,
        path,
        branch,
        base: base_name,
        base_commit: commit.id().to_string(),
    })
}

fn resolve_base<'r>(
    repo: &'r Repository,
    repo_dir: &Path,
    base: Option<&str>,
) -> Result<(String, git2::Commit<'r>), GitError> {
    let name = match base {
        Some(b) => b.to_owned(),
        None => {
            let head = repo
                .head()
                .map_err(|_| GitError::NoCommits(repo_dir.to_owned()))?;
            if head.is_branch() {
                head.shorthand().unwrap_or("HEAD").to_owned()
            } else {
                head.target()
                    .map(|id| id.to_string())
                    .unwrap_or_else(|| "HEAD".to_owned())
            }
        }
    };
    let commit = repo
        .revparse_single(&name)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| GitError::BadBase {
            base: name.clone(),
            message: e.message().to_owned(),
        })?;
    Ok((name, commit))
}

/// A session's worktree as recorded, for checks and removal.
#[derive(Debug, Clone)]
pub struct Recorded<'a> {
    pub name: &'a str,
    pub repo: &'a Path,
    pub path: &'a Path,
    pub branch: &'a str,
    pub base: &'a str,
    pub base_commit: &'a str,
}

/// Most entries listed per kind of unsaved work; the rest are counted.
const LIST_AT_MOST: usize = 10;

/// Where a session's worktree is now.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    /// Where it was made (or where `git worktree move` put it): git links it to this
    /// session.
    Found(PathBuf),
    /// Nothing at the recorded path, and git knows of no other place: deleted, or moved
    /// with plain `mv` (which git cannot follow).
    Missing,
    /// Something else is at the recorded path: it is not this session's worktree.
    Foreign,
}

/// Find the session's worktree: at its recorded path when that is still its worktree,
/// else wherever `git worktree move` took it.
fn locate(repo: &Repository, rec: &Recorded<'_>) -> Location {
    if is_session_worktree(rec.path, repo, rec.name) {
        return Location::Found(rec.path.to_owned());
    }
    // `git worktree move` rewrites git's record of the worktree; plain `mv` does not.
    let moved = repo
        .find_worktree(rec.name)
        .ok()
        .map(|wt| wt.path().to_owned())
        .filter(|p| is_session_worktree(p, repo, rec.name));
    match moved {
        Some(path) => Location::Found(path),
        None if rec.path.symlink_metadata().is_ok() => Location::Foreign,
        None => Location::Missing,
    }
}

/// Whether `path` is the linked worktree that git knows as `name` in `repo`: its `.git`
/// file points at `repo`'s `worktrees/<name>`. Anything else is not ours to delete.
fn is_session_worktree(path: &Path, repo: &Repository, name: &str) -> bool {
    // A symlink in its place is not the worktree, whatever it points at.
    let is_dir = path.symlink_metadata().is_ok_and(|m| m.is_dir());
    let Ok(wt) = Repository::open(path) else {
        return false;
    };
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    is_dir
        && wt.is_worktree()
        && same(wt.commondir(), repo.path())
        && same(wt.path(), &repo.path().join("worktrees").join(name))
}

/// Whether the recorded path is still the session's own worktree, before anything (a
/// teardown command) runs in it.
pub fn is_own_worktree(rec: &Recorded<'_>) -> bool {
    Repository::open(rec.repo).is_ok_and(|repo| is_session_worktree(rec.path, &repo, rec.name))
}

/// The commit the worktree's HEAD is on when it is detached from every branch, read
/// from git's own record of the worktree (so it works when the directory is gone too).
fn detached_head(repo: &Repository, name: &str) -> Option<git2::Oid> {
    let admin = Repository::open(repo.path().join("worktrees").join(name)).ok()?;
    if admin.head_detached().ok()? {
        admin.head().ok()?.target()
    } else {
        None
    }
}

/// Everything removing this worktree and branch would lose, one line each. Empty means
/// removal is safe.
pub fn unsaved_work(rec: &Recorded<'_>) -> Result<Vec<String>, GitError> {
    let mut lost = Vec::new();
    let repo = open_main_repo(rec.repo)?;

    match locate(&repo, rec) {
        Location::Found(path) => {
            let wt = Repository::open(&path)
                .map_err(git(format!("opening worktree {}", path.display())))?;
            lost.extend(changed_files(&wt)?);
            if let Ok(found) = repo.find_worktree(rec.name)
                && let Ok(git2::WorktreeLockStatus::Locked(reason)) = found.is_locked()
            {
                lost.push(match reason.filter(|r| !r.is_empty()) {
                    Some(reason) => format!("worktree locked with `git worktree lock`: {reason}"),
                    None => "worktree locked with `git worktree lock`".to_owned(),
                });
            }
        }
        Location::Missing => lost.push(format!(
            "worktree missing: {} was deleted, or moved without `git worktree move` \
             (if you moved it, `git worktree repair NEW_PATH` lets rm find it)",
            rec.path.display()
        )),
        Location::Foreign => lost.push(format!(
            "{} is no longer this session's worktree; rm leaves it alone",
            rec.path.display()
        )),
    }

    let mut tips = Vec::new();
    if let Some(id) = detached_head(&repo, rec.name) {
        tips.push(id);
    }
    if let Ok(b) = repo.find_branch(rec.branch, BranchType::Local)
        && let Some(id) = b.get().target()
    {
        tips.push(id);
    }
    lost.extend(
        commits_found_nowhere_else(&repo, rec, &tips)?
            .into_iter()
            .map(|(id, summary)| describe_commit(&repo, rec, id, &summary)),
    );
    Ok(cap(lost, "things"))
}

fn describe_commit(repo: &Repository, rec: &Recorded<'_>, id: git2::Oid, summary: &str) -> String {
    let short = &id.to_string()[..8];
    let upstream = repo
        .find_branch(rec.branch, BranchType::Local)
        .ok()
        .and_then(|b| b.upstream().ok())
        .and_then(|u| u.name().ok().flatten().map(str::to_owned));
    match upstream {
        Some(up) => format!(
            "commit not in {} nor pushed to {up}: {short} {summary}",
            rec.base
        ),
        None => format!("commit not in {}: {short} {summary}", rec.base),
    }
}

fn changed_files(wt: &Repository) -> Result<Vec<String>, GitError> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .exclude_submodules(false);
    let statuses = wt
        .statuses(Some(&mut opts))
        .map_err(git("reading worktree status"))?;
    let mut lines = Vec::new();
    for entry in statuses.iter() {
        let s = entry.status();
        let kind = if s.is_wt_new() {
            "untracked file"
        } else if s.is_conflicted() {
            "conflicted file"
        } else if s.is_index_new() || s.is_index_modified() || s.is_index_deleted() {
            "staged change"
        } else {
            "uncommitted change"
        };
        lines.push(format!("{kind}: {}", entry.path().unwrap_or("?")));
    }
    Ok(cap(lines, "changed files"))
}

/// Commits reachable from `tips` that nothing else keeps: not in the base (as it is
/// now: a branch may have moved on and merged the session's work) and not on any other
/// branch, tag or remote-tracking branch. Newest first, with their summaries.
fn commits_found_nowhere_else(
    repo: &Repository,
    rec: &Recorded<'_>,
    tips: &[git2::Oid],
) -> Result<Vec<(git2::Oid, String)>, GitError> {
    if tips.is_empty() {
        return Ok(Vec::new());
    }
    let base_now = repo
        .revparse_single(rec.base)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .or_else(|_| git2::Oid::from_str(rec.base_commit))
        .map_err(git(format!("resolving base {}", rec.base)))?;
    let mut walk = repo.revwalk().map_err(git("walking commits"))?;
    for tip in tips {
        walk.push(*tip).map_err(git("walking commits"))?;
    }
    // A base commit that no longer exists (history rewritten) hides nothing.
    let _ = walk.hide(base_now);
    let own = format!("refs/heads/{}", rec.branch);
    let refs = repo.references().map_err(git("listing references"))?;
    for r in refs.flatten() {
        let keeps = r.name().ok().is_some_and(|n| {
            n != own
                && (n.starts_with("refs/heads/")
                    || n.starts_with("refs/tags/")
                    || n.starts_with("refs/remotes/"))
        });
        if keeps && let Ok(commit) = r.peel_to_commit() {
            walk.hide(commit.id()).map_err(git("walking commits"))?;
        }
    }
    let mut commits = Vec::new();
    for id in walk {
        let id = id.map_err(git("walking commits"))?;
        let summary = repo
            .find_commit(id)
            .ok()
            .and_then(|c| c.summary().ok().flatten().map(str::to_owned))
            .unwrap_or_default();
        commits.push((id, summary));
    }
    Ok(commits)
}

fn cap(mut lines: Vec<String>, what: &str) -> Vec<String> {
    if lines.len() > LIST_AT_MOST {
        let more = lines.len() - LIST_AT_MOST;
        lines.truncate(LIST_AT_MOST);
        lines.push(format!("… and {more} more {what}"));
    }
    lines
}

/// What [`remove_worktree`] did beyond removing the worktree.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The session's branch, kept because it has commits found nowhere else.
    pub kept_branch: Option<String>,
    /// A branch made to keep commits on the worktree's detached HEAD.
    pub saved_head: Option<String>,
    /// Something else was at the recorded path, and was left alone.
    pub left_alone: Option<PathBuf>,
}

/// Remove the session's worktree (wherever `git worktree move` took it), git's record
/// of it, and its branch. The caller has already decided that no uncommitted work is
/// lost (or the user forced it); commits are never lost even so: a branch with commits
/// found nowhere else is kept, and commits on a detached HEAD get a branch of their own.
/// Nothing but the session's own worktree is deleted.
pub fn remove_worktree(rec: &Recorded<'_>) -> Result<Removed, GitError> {
    let repo = open_main_repo(rec.repo)?;
    let mut removed = Removed::default();

    if let Some(head) = detached_head(&repo, rec.name)
        && !commits_found_nowhere_else(&repo, rec, &[head])?.is_empty()
    {
        let name = format!("{}-detached-{}", rec.branch, &head.to_string()[..8]);
        let commit = repo
            .find_commit(head)
            .map_err(git(format!("reading the detached HEAD of {}", rec.name)))?;
        repo.branch(&name, &commit, false)
            .map_err(git(format!("keeping the detached HEAD as branch {name}")))?;
        tracing::info!(session = rec.name, branch = %name, "kept the worktree's detached HEAD as a branch");
        removed.saved_head = Some(name);
    }

    match locate(&repo, rec) {
        Location::Found(path) => {
            std::fs::remove_dir_all(&path).map_err(io(format!("removing {}", path.display())))?;
        }
        Location::Missing => {}
        Location::Foreign => removed.left_alone = Some(rec.path.to_owned()),
    }
    if let Ok(wt) = repo.find_worktree(rec.name) {
        let mut opts = WorktreePruneOptions::new();
        opts.valid(true).locked(true).working_tree(false);
        wt.prune(Some(&mut opts))
            .map_err(git(format!("pruning worktree {}", rec.name)))?;
    }
    if let Ok(mut b) = repo.find_branch(rec.branch, BranchType::Local) {
        let tip = b.get().target();
        let unique = match tip {
            Some(tip) => commits_found_nowhere_else(&repo, rec, &[tip])?.len(),
            None => 0,
        };
        if unique == 0 {
            b.delete()
                .map_err(git(format!("deleting branch {}", rec.branch)))?;
        } else {
            tracing::info!(
                session = rec.name,
                branch = rec.branch,
                commits = unique,
                "kept the branch: its commits are found nowhere else"
            );
            removed.kept_branch = Some(rec.branch.to_owned());
        }
    }
    // Leave no empty `<repo>.worktrees` behind (`remove_dir` only removes empty ones).
    if let Some(parent) = rec.path.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(removed)
}

/// Lines added and removed in a worktree against the commit it started from: commits
/// since, staged and unstaged edits, and untracked files (not ignored ones).
pub fn lines_changed(worktree: &Path, base_commit: &str) -> Result<(u64, u64), GitError> {
    let repo = Repository::open(worktree).map_err(git("opening the worktree"))?;
    let base = git2::Oid::from_str(base_commit)
        .and_then(|oid| repo.find_commit(oid))
        .and_then(|c| c.tree())
        .map_err(git(format!("reading base commit {base_commit}")))?;
    let mut opts = git2::DiffOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .show_untracked_content(true);
    let diff = repo
        .diff_tree_to_workdir_with_index(Some(&base), Some(&mut opts))
        .map_err(git("diffing the worktree against its base"))?;
    let stats = diff.stats().map_err(git("counting changed lines"))?;
    Ok((stats.insertions() as u64, stats.deletions() as u64))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;

    struct Fixture {
        _dir: tempfile::TempDir,
        repo: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo_dir = dir.path().join("proj");
        let repo = Repository::init(&repo_dir).expect("init");
        fs::write(repo_dir.join("README"), "hello\n").expect("write");
        commit_all(&repo, "first");
        Fixture {
            repo: repo_dir,
            _dir: dir,
        }
    }

    pub(crate) fn commit_all(repo: &Repository, msg: &str) {
        let mut index = repo.index().expect("index");
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .expect("add");
        index.write().expect("write index");
        let tree = repo
            .find_tree(index.write_tree().expect("tree"))
            .expect("tree");
        let sig = git2::Signature::now("T", "t@example.invalid").expect("sig");
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<_> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &parents)
            .expect("commit");
    }

    fn recorded(wt: &Worktree) -> Recorded<'_> {
        Recorded {
            name: wt.path.file_name().and_then(|n| n.to_str()).unwrap_or(""),
            repo: &wt.repo,
            path: &wt.path,
            branch: &wt.branch,
            base: &wt.base,
            base_commit: &wt.base_commit,
        }
    }

    #[test]
    fn creates_beside_the_repo_on_a_new_branch() {
        let f = fixture();
        let wt = create_worktree(&f.repo.join("."), "demo", None, None).expect("create");
        assert_eq!(
            wt.path,
            f.repo.with_file_name("proj.worktrees").join("demo")
        );
        assert_eq!(wt.branch, "canopy/demo");
        assert!(wt.path.join("README").exists());
        assert!(unsaved_work(&recorded(&wt)).expect("check").is_empty());
    }

    #[test]
    fn lines_changed_count_commits_edits_and_untracked_files() {
        let f = fixture();
        let wt = create_worktree(&f.repo, "lines", None, None).expect("create");
        assert_eq!(
            lines_changed(&wt.path, &wt.base_commit).expect("lines"),
            (0, 0)
        );
        // A commit on the branch: README rewritten (1 removed, 2 added).
        fs::write(wt.path.join("README"), "hi\nthere\n").expect("write");
        let repo = Repository::open(&wt.path).expect("open");
        commit_all(&repo, "edit");
        // An unstaged edit, an untracked file in a new directory, an ignored file.
        fs::write(wt.path.join("README"), "hi\nthere\nagain\n").expect("write");
        fs::create_dir(wt.path.join("src")).expect("mkdir");
        fs::write(wt.path.join("src/new.rs"), "a\nb\nc\n").expect("write");
        fs::write(wt.path.join(".gitignore"), "*.log\n").expect("write");
        fs::write(wt.path.join("build.log"), "x\ny\n").expect("write");
        assert_eq!(
            lines_changed(&wt.path, &wt.base_commit).expect("lines"),
            (3 + 3 + 1, 1)
        );
    }

    #[test]
    fn from_inside_a_worktree_uses_the_main_repo() {
        let f = fixture();
        let a = create_worktree(&f.repo, "a", None, None).expect("a");
        let b = create_worktree(&a.path, "b", None, None).expect("b");
        assert_eq!(b.repo, a.repo);
        assert_eq!(b.path.parent(), a.path.parent());
    }

    #[test]
    fn refuses_duplicates_bad_bases_and_non_repos_leaving_nothing() {
        let f = fixture();
        create_worktree(&f.repo, "demo", None, None).expect("create");
        assert!(matches!(
            create_worktree(&f.repo, "demo", None, None),
            Err(GitError::Exists(_))
        ));
        assert!(matches!(
            create_worktree(&f.repo, "other", Some("no-such-ref"), None),
            Err(GitError::BadBase { .. })
        ));
        let repo = Repository::open(&f.repo).expect("open");
        assert!(repo.find_branch("canopy/other", BranchType::Local).is_err());
        assert!(
            !f.repo
                .with_file_name("proj.worktrees")
                .join("other")
                .exists()
        );
        let elsewhere = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            create_worktree(elsewhere.path(), "x", None, None),
            Err(GitError::NotARepo(_))
        ));
        assert!(matches!(
            create_worktree(&f.repo, "../x", None, None),
            Err(GitError::BadName { .. })
        ));
    }

    #[test]
    fn unsaved_work_names_each_kind() {
        let f = fixture();
        let wt = create_worktree(&f.repo, "demo", None, None).expect("create");
        fs::write(wt.path.join("README"), "changed\n").expect("write");
        fs::write(wt.path.join("new.txt"), "new\n").expect("write");
        let lost = unsaved_work(&recorded(&wt)).expect("check");
        assert_eq!(
            lost,
            vec!["uncommitted change: README", "untracked file: new.txt"]
        );

        let wt_repo = Repository::open(&wt.path).expect("open");
        commit_all(&wt_repo, "work");
        let lost = unsaved_work(&recorded(&wt)).expect("check");
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(
            lost[0].starts_with("commit not in master: ")
                || lost[0].starts_with("commit not in main: ")
        );
        assert!(lost[0].ends_with(" work"), "{lost:?}");
    }

    #[test]
    fn merged_work_is_not_lost_and_removal_cleans_up() {
        let f = fixture();
        let wt = create_worktree(&f.repo, "demo", None, None).expect("create");
        let wt_repo = Repository::open(&wt.path).expect("open");
        fs::write(wt.path.join("x"), "x\n").expect("write");
        commit_all(&wt_repo, "work");
        // Fast-forward the base branch to the session's branch.
        let repo = Repository::open(&f.repo).expect("open");
        let tip = repo
            .find_branch(&wt.branch, BranchType::Local)
            .expect("branch")
            .get()
            .target()
            .expect("tip");
        repo.reference(&format!("refs/heads/{}", wt.base), tip, true, "ff")
            .expect("ff");
        assert!(unsaved_work(&recorded(&wt)).expect("check").is_empty());

        remove_worktree(&recorded(&wt)).expect("remove");
        assert!(!wt.path.exists());
        assert!(!f.repo.with_file_name("proj.worktrees").exists());
        assert!(repo.find_branch(&wt.branch, BranchType::Local).is_err());
        assert!(repo.find_worktree("demo").is_err());
        // The name is free again.
        create_worktree(&f.repo, "demo", None, None).expect("again");
    }

    #[test]
    fn a_worktree_deleted_by_hand_is_named_and_forgotten_only_when_forced() {
        let f = fixture();
        let wt = create_worktree(&f.repo, "demo", None, None).expect("create");
        fs::remove_dir_all(&wt.path).expect("rm");
        let lost = unsaved_work(&recorded(&wt)).expect("check");
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(lost[0].starts_with("worktree missing: "), "{lost:?}");
        assert_eq!(
            remove_worktree(&recorded(&wt)).expect("remove"),
            Removed::default()
        );
        let repo = Repository::open(&f.repo).expect("open");
        assert!(repo.find_worktree("demo").is_err());
        assert!(repo.find_branch(&wt.branch, BranchType::Local).is_err());
    }

    #[test]
    fn commits_kept_by_another_ref_are_not_lost_and_unique_ones_keep_the_branch() {
        let f = fixture();
        let wt = create_worktree(&f.repo, "demo", None, None).expect("create");
        let wt_repo = Repository::open(&wt.path).expect("open");
        fs::write(wt.path.join("x"), "x\n").expect("write");
        commit_all(&wt_repo, "work");
        let repo = Repository::open(&f.repo).expect("open");
        let tip = repo
            .find_branch(&wt.branch, BranchType::Local)
            .expect("branch")
            .get()
            .peel_to_commit()
            .expect("tip");
        // Tagged elsewhere: nothing is lost.
        repo.tag_lightweight("keep", tip.as_object(), false)
            .expect("tag");
        assert!(unsaved_work(&recorded(&wt)).expect("check").is_empty());
        repo.tag_delete("keep").expect("untag");
        assert_eq!(unsaved_work(&recorded(&wt)).expect("check").len(), 1);
        // Forced removal keeps the branch that alone holds the commit.
        let removed = remove_worktree(&recorded(&wt)).expect("remove");
        assert_eq!(removed.kept_branch.as_deref(), Some("canopy/demo"));
        assert!(!wt.path.exists());
        assert!(repo.find_branch(&wt.branch, BranchType::Local).is_ok());
    }

    #[test]
    fn something_else_at_the_path_is_never_deleted() {
        let f = fixture();
        let a = create_worktree(&f.repo, "a", None, None).expect("a");
        let b = create_worktree(&f.repo, "b", None, None).expect("b");
        // a's directory replaced by b's worktree (moved by hand): not a's to delete.
        fs::remove_dir_all(&a.path).expect("rm");
        fs::rename(&b.path, &a.path).expect("mv");
        let lost = unsaved_work(&recorded(&a)).expect("check");
        assert!(
            lost[0].contains("no longer this session's worktree"),
            "{lost:?}"
        );
        let removed = remove_worktree(&recorded(&a)).expect("remove");
        assert_eq!(removed.left_alone.as_deref(), Some(a.path.as_path()));
        assert!(a.path.join("README").exists());
    }

    #[test]
    fn configured_root_groups_by_repo_name() {
        assert_eq!(
            worktree_path(Path::new("/src/proj"), Some(Path::new("/wt")), "a"),
            PathBuf::from("/wt/proj/a")
        );
    }
}
