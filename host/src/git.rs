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

/// Create branch `canopy/<name>` from `base` (default HEAD) and a worktree for it.
/// On any failure nothing is left behind.
pub fn create_worktree(
    repo_hint: &Path,
    name: &str,
    base: Option<&str>,
    root: Option<&Path>,
) -> Result<Worktree, GitError> {
    check_session_name(name)?;
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

/// Everything removing this worktree and branch would lose, one line each. Empty means
/// removal is safe.
pub fn unsaved_work(rec: &Recorded<'_>) -> Result<Vec<String>, GitError> {
    let mut lost = Vec::new();
    let repo = open_main_repo(rec.repo)?;
    let mut tips = Vec::new();

    if rec.path.exists() {
        let wt = Repository::open(rec.path)
            .map_err(git(format!("opening worktree {}", rec.path.display())))?;
        lost.extend(changed_files(&wt)?);
        if let Some(id) = wt.head().ok().and_then(|h| h.target()) {
            tips.push(id);
        }
    }
    if let Ok(b) = repo.find_branch(rec.branch, BranchType::Local)
        && let Some(id) = b.get().target()
    {
        tips.push(id);
    }
    lost.extend(unmerged_commits(&repo, rec, &tips)?);
    Ok(lost)
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

fn unmerged_commits(
    repo: &Repository,
    rec: &Recorded<'_>,
    tips: &[git2::Oid],
) -> Result<Vec<String>, GitError> {
    if tips.is_empty() {
        return Ok(Vec::new());
    }
    // The base as it is now: a branch may have moved on and merged the session's work.
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
    walk.hide(base_now).map_err(git("walking commits"))?;
    let mut lines = Vec::new();
    for id in walk {
        let id = id.map_err(git("walking commits"))?;
        let summary = repo
            .find_commit(id)
            .ok()
            .and_then(|c| c.summary().ok().flatten().map(str::to_owned))
            .unwrap_or_default();
        let short = &id.to_string()[..8];
        lines.push(format!("commit not in {}: {short} {summary}", rec.base));
    }
    Ok(cap(lines, "commits"))
}

fn cap(mut lines: Vec<String>, what: &str) -> Vec<String> {
    if lines.len() > LIST_AT_MOST {
        let more = lines.len() - LIST_AT_MOST;
        lines.truncate(LIST_AT_MOST);
        lines.push(format!("… and {more} more {what}"));
    }
    lines
}

/// Remove the worktree directory, its git bookkeeping and the branch. The caller has
/// already decided that nothing is lost (or the user forced it).
pub fn remove_worktree(rec: &Recorded<'_>) -> Result<(), GitError> {
    let repo = open_main_repo(rec.repo)?;
    if rec.path.exists() {
        if !is_worktree_of(rec.path, &repo) {
            return Err(GitError::Exists(format!(
                "{} is not this repository's worktree; refusing to delete it",
                rec.path.display()
            )));
        }
        std::fs::remove_dir_all(rec.path)
            .map_err(io(format!("removing {}", rec.path.display())))?;
    }
    if let Ok(wt) = repo.find_worktree(rec.name) {
        let mut opts = WorktreePruneOptions::new();
        opts.valid(true).working_tree(false);
        wt.prune(Some(&mut opts))
            .map_err(git(format!("pruning worktree {}", rec.name)))?;
    }
    if let Ok(mut b) = repo.find_branch(rec.branch, BranchType::Local) {
        b.delete()
            .map_err(git(format!("deleting branch {}", rec.branch)))?;
    }
    // Leave no empty `<repo>.worktrees` behind.
    if let Some(parent) = rec.path.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

/// Whether `path` is a linked worktree of `repo` (its `.git` file points into it).
fn is_worktree_of(path: &Path, repo: &Repository) -> bool {
    let Ok(wt) = Repository::open(path) else {
        return false;
    };
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    wt.is_worktree() && same(wt.commondir(), repo.path())
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
mod tests {
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

    fn commit_all(repo: &Repository, msg: &str) {
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
    fn a_worktree_deleted_by_hand_is_still_removable() {
        let f = fixture();
        let wt = create_worktree(&f.repo, "demo", None, None).expect("create");
        fs::remove_dir_all(&wt.path).expect("rm");
        assert!(unsaved_work(&recorded(&wt)).expect("check").is_empty());
        remove_worktree(&recorded(&wt)).expect("remove");
    }

    #[test]
    fn configured_root_groups_by_repo_name() {
        assert_eq!(
            worktree_path(Path::new("/src/proj"), Some(Path::new("/wt")), "a"),
            PathBuf::from("/wt/proj/a")
        );
    }
}
