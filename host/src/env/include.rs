//! Files a new worktree gets from the main checkout: the git-ignored files matched by
//! `.worktreeinclude` (gitignore syntax, Claude Code's convention) are copied, and the
//! directories named by `[setup] symlink` are linked.
//!
//! Two rules hold: a symlink is never followed out of the repository (one that points
//! inside it is copied as its target), and nothing already in the worktree is
//! overwritten (a tracked file, or a directory that is a symlink).

use std::path::{Component, Path, PathBuf};

use git2::{Repository, StatusOptions};

use super::EnvError;

/// The include file at the repository's root.
pub const INCLUDE_FILE: &str = ".worktreeinclude";

/// What was done, one line each, for the session's setup log.
pub type Notes = Vec<String>;

/// Copy the included files from `repo` (the main checkout) into `worktree` and link
/// `symlinks`. `scratch` is a private directory for the pattern matcher.
pub fn populate(
    repo: &Path,
    worktree: &Path,
    symlinks: &[String],
    scratch: &Path,
) -> Result<Notes, EnvError> {
    let mut notes = Notes::new();
    let root = repo
        .canonicalize()
        .map_err(|e| EnvError::io(format!("resolving {}", repo.display()), e))?;
    match std::fs::read_to_string(root.join(INCLUDE_FILE)) {
        Ok(rules) => copy_included(&root, worktree, &rules, scratch, &mut notes)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(EnvError::io(format!("reading {INCLUDE_FILE}"), e)),
    }
    for rel in symlinks {
        link(&root, worktree, rel, &mut notes);
    }
    Ok(notes)
}

/// gitignore matching as git does it: libgit2's own rules, in a private empty
/// repository holding only these rules (the user's global excludes switched off).
struct Matcher {
    repo: Repository,
    dir: PathBuf,
}

impl Matcher {
    fn new(rules: &str, scratch: &Path) -> Result<Self, EnvError> {
        let dir = scratch.join("worktreeinclude");
        let _ = std::fs::remove_dir_all(&dir);
        let g = |e: git2::Error| EnvError::Include(format!("pattern matcher: {e}"));
        let repo = Repository::init(&dir).map_err(g)?;
        repo.config()
            .and_then(|mut c| c.set_str("core.excludesFile", ""))
            .map_err(g)?;
        repo.add_ignore_rule(rules).map_err(g)?;
        Ok(Self { repo, dir })
    }

    /// Whether `rel` (ending in `/` for a directory) is matched.
    fn matches(&self, rel: &str) -> bool {
        self.repo.is_path_ignored(rel).unwrap_or(false)
    }
}

impl Drop for Matcher {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn copy_included(
    root: &Path,
    worktree: &Path,
    rules: &str,
    scratch: &Path,
    notes: &mut Notes,
) -> Result<(), EnvError> {
    let matcher = Matcher::new(rules, scratch)?;
    let repo = Repository::open(root).map_err(|e| EnvError::Include(e.to_string()))?;
    let mut opts = StatusOptions::new();
    // Ignored directories come as one entry each ("dir/"), walked below only if needed.
    opts.include_ignored(true)
        .include_untracked(false)
        .recurse_ignored_dirs(false);
    let statuses = repo
        .statuses(Some(&mut opts))
        .map_err(|e| EnvError::Include(format!("listing ignored files: {e}")))?;
    let ignored: Vec<String> = statuses
        .iter()
        .filter(|s| s.status().is_ignored())
        .filter_map(|s| s.path().ok().map(str::to_owned))
        .collect();
    for rel in ignored {
        visit(root, worktree, rel.trim_end_matches('/'), &matcher, notes);
    }
    Ok(())
}

/// Copy `rel` if it is matched; walk into an ignored directory to find matches inside.
fn visit(root: &Path, worktree: &Path, rel: &str, matcher: &Matcher, notes: &mut Notes) {
    let src = root.join(rel);
    let Ok(meta) = std::fs::symlink_metadata(&src) else {
        return;
    };
    if meta.is_dir() {
        let Ok(entries) = std::fs::read_dir(&src) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == ".git" {
                continue;
            }
            let child = format!("{rel}/{}", name.to_string_lossy());
            visit(root, worktree, &child, matcher, notes);
        }
        return;
    }
    if !matcher.matches(rel) {
        return;
    }
    let file = if meta.file_type().is_symlink() {
        // Followed only while it stays inside the repository.
        match src.canonicalize() {
            Ok(target) if target.starts_with(root) && target.is_file() => target,
            _ => {
                notes.push(format!(
                    "include: skipped {rel}: a symlink that leads out of the repository"
                ));
                return;
            }
        }
    } else if meta.is_file() {
        src
    } else {
        return;
    };
    let Some(dest) = destination(worktree, rel, notes) else {
        return;
    };
    match std::fs::copy(&file, &dest) {
        Ok(_) => notes.push(format!("include: copied {rel}")),
        Err(e) => notes.push(format!("include: cannot copy {rel}: {e}")),
    }
}

/// Where `rel` goes in the worktree, creating its parent directories; `None` (with a
/// note) when something is already there or a parent is not a plain directory.
fn destination(worktree: &Path, rel: &str, notes: &mut Notes) -> Option<PathBuf> {
    let rel_path = Path::new(rel);
    if rel_path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        notes.push(format!("include: skipped {rel}: not a plain relative path"));
        return None;
    }
    let mut at = worktree.to_owned();
    let parts: Vec<_> = rel_path.components().collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        let last = i + 1 == parts.len();
        match std::fs::symlink_metadata(&at) {
            Ok(_) if last => {
                notes.push(format!(
                    "include: kept the worktree's own {rel} (never overwritten)"
                ));
                return None;
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                notes.push(format!(
                    "include: skipped {rel}: {} is not a plain directory",
                    at.display()
                ));
                return None;
            }
            Err(_) if last => {}
            Err(_) => {
                if let Err(e) = std::fs::create_dir(&at) {
                    notes.push(format!("include: cannot create {}: {e}", at.display()));
                    return None;
                }
            }
        }
    }
    Some(at)
}

/// Link `worktree/rel` to the main checkout's directory `rel`, if that is a real
/// directory inside the repository.
fn link(root: &Path, worktree: &Path, rel: &str, notes: &mut Notes) {
    let rel = rel.trim_end_matches('/');
    let src = root.join(rel);
    let inside = src
        .canonicalize()
        .is_ok_and(|t| t.starts_with(root) && t.is_dir());
    if !inside || Path::new(rel).is_absolute() {
        notes.push(format!(
            "symlink: skipped {rel}: not a directory inside the repository"
        ));
        return;
    }
    let Some(dest) = destination(worktree, rel, notes) else {
        return;
    };
    match std::os::unix::fs::symlink(&src, &dest) {
        Ok(()) => notes.push(format!("symlink: linked {rel}")),
        Err(e) => notes.push(format!("symlink: cannot link {rel}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .expect("git")
            .success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn copies_ignored_matches_only_and_never_overwrites_or_escapes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        let wt = tmp.path().join("wt");
        let outside = tmp.path().join("secret");
        std::fs::create_dir_all(repo.join("config/deep")).expect("mkdir");
        std::fs::create_dir_all(&wt).expect("mkdir");
        std::fs::write(&outside, "outside").expect("write");
        std::fs::write(
            repo.join(".gitignore"),
            ".env*\nconfig/\nbuild/\nescape\ntracked.txt\n",
        )
        .expect("write");
        std::fs::write(
            repo.join(INCLUDE_FILE),
            ".env\n.env.local\nconfig/**/*.json\nescape\ntracked.txt\n",
        )
        .expect("write");
        std::fs::write(repo.join(".env"), "A=1").expect("write");
        std::fs::write(repo.join(".env.local"), "B=2").expect("write");
        std::fs::write(repo.join(".env.other"), "C=3").expect("write");
        std::fs::write(repo.join("config/deep/k.json"), "{}").expect("write");
        std::fs::write(repo.join("config/deep/k.txt"), "no").expect("write");
        std::os::unix::fs::symlink(&outside, repo.join("escape")).expect("symlink");
        std::fs::write(repo.join("tracked.txt"), "main's").expect("write");
        std::fs::write(wt.join("tracked.txt"), "worktree's").expect("write");
        git(&repo, &["init", "-q"]);

        let notes = populate(&repo, &wt, &[], tmp.path()).expect("populate");
        assert_eq!(
            std::fs::read_to_string(wt.join(".env")).ok().as_deref(),
            Some("A=1")
        );
        assert!(wt.join(".env.local").is_file());
        assert!(!wt.join(".env.other").exists(), "not in .worktreeinclude");
        assert!(wt.join("config/deep/k.json").is_file());
        assert!(!wt.join("config/deep/k.txt").exists());
        assert!(!wt.join("escape").exists(), "{notes:?}");
        assert_eq!(
            std::fs::read_to_string(wt.join("tracked.txt"))
                .ok()
                .as_deref(),
            Some("worktree's")
        );
        assert!(
            notes.iter().any(|n| n.contains("skipped escape")),
            "{notes:?}"
        );
    }

    #[test]
    fn links_directories_inside_the_repository_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        let wt = tmp.path().join("wt");
        std::fs::create_dir_all(repo.join("node_modules/.cache")).expect("mkdir");
        std::fs::create_dir_all(&wt).expect("mkdir");
        let notes = populate(
            &repo,
            &wt,
            &["node_modules/.cache".into(), "../..".into()],
            tmp.path(),
        )
        .expect("populate");
        assert!(
            std::fs::symlink_metadata(wt.join("node_modules/.cache"))
                .expect("link")
                .file_type()
                .is_symlink()
        );
        assert!(
            notes.iter().any(|n| n.contains("skipped ../..")),
            "{notes:?}"
        );
    }
}
