//! A session's whole change against its base, with git2: the commits on its branch
//! since the merge base, staged and unstaged edits and untracked files, as files,
//! hunks and numbered lines.

use std::collections::HashMap;
use std::path::Path;

use canopy_protocol::review::{Diff, DiffLine, FileDiff, Hunk};
use git2::{Delta, DiffOptions, Patch, Repository};

use super::{ReviewError, git};

/// The commit a session's change is measured from: the merge base of its HEAD and its
/// base as it is now (which follows the base merged into the branch), else the commit
/// it started from.
pub fn merge_base(
    repo: &Repository,
    base: &str,
    base_commit: &str,
) -> Result<git2::Oid, ReviewError> {
    let started = git2::Oid::from_str(base_commit)
        .map_err(git(format!("reading base commit {base_commit:?}")))?;
    let head = repo.head().ok().and_then(|h| h.target());
    let base_tip = repo
        .revparse_single(base)
        .ok()
        .and_then(|o| o.peel_to_commit().ok())
        .map(|c| c.id());
    Ok(match (head, base_tip) {
        (Some(head), Some(tip)) => repo.merge_base(head, tip).unwrap_or(started),
        _ => started,
    })
}

/// The git2 diff of the worktree (index and files, untracked included) against the
/// merge base, limited to `paths` when any are given.
fn raw<'r>(
    repo: &'r Repository,
    base: &str,
    base_commit: &str,
    paths: &[String],
) -> Result<(git2::Oid, git2::Diff<'r>), ReviewError> {
    let from = merge_base(repo, base, base_commit)?;
    let tree = repo
        .find_commit(from)
        .and_then(|c| c.tree())
        .map_err(git(format!("reading commit {from}")))?;
    let mut opts = DiffOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .show_untracked_content(true);
    for p in paths {
        opts.pathspec(p);
    }
    let mut diff = repo
        .diff_tree_to_workdir_with_index(Some(&tree), Some(&mut opts))
        .map_err(git("diffing the worktree against its base"))?;
    // Untracked files count: an agent renames with `mv` as often as with `git mv`.
    let mut find = git2::DiffFindOptions::new();
    find.renames(true).for_untracked(true);
    diff.find_similar(Some(&mut find))
        .map_err(git("finding renames"))?;
    Ok((from, diff))
}

/// The session's change, file by file.
pub fn diff(
    worktree: &Path,
    base: &str,
    base_commit: &str,
    paths: &[String],
) -> Result<Diff, ReviewError> {
    let repo =
        Repository::open(worktree).map_err(git(format!("opening {}", worktree.display())))?;
    let (from, diff) = raw(&repo, base, base_commit, paths)?;
    let mut files = Vec::new();
    for (idx, delta) in diff.deltas().enumerate() {
        let patch = Patch::from_diff(&diff, idx).map_err(git("reading a file's diff"))?;
        files.push(file_diff(&delta, patch.as_ref())?);
    }
    Ok(Diff {
        base_commit: from.to_string(),
        files,
    })
}

/// The paths the session changed (new side, old side too for a rename): what the
/// radar compares between sessions, without reading any content.
pub fn changed_paths(
    worktree: &Path,
    base: &str,
    base_commit: &str,
) -> Result<Vec<String>, ReviewError> {
    let repo =
        Repository::open(worktree).map_err(git(format!("opening {}", worktree.display())))?;
    let (_, diff) = raw(&repo, base, base_commit, &[])?;
    let mut paths: Vec<String> = diff
        .deltas()
        .flat_map(|d| [d.old_file().path(), d.new_file().path()])
        .flatten()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// The files the session's change renamed: old path → new path.
pub fn renames(
    worktree: &Path,
    base: &str,
    base_commit: &str,
) -> Result<HashMap<String, String>, ReviewError> {
    let repo =
        Repository::open(worktree).map_err(git(format!("opening {}", worktree.display())))?;
    let (_, diff) = raw(&repo, base, base_commit, &[])?;
    let path = |f: git2::DiffFile<'_>| f.path().map(|p| p.to_string_lossy().into_owned());
    Ok(diff
        .deltas()
        .filter(|d| d.status() == Delta::Renamed)
        .filter_map(|d| Some((path(d.old_file())?, path(d.new_file())?)))
        .collect())
}

fn file_diff(
    delta: &git2::DiffDelta<'_>,
    patch: Option<&Patch<'_>>,
) -> Result<FileDiff, ReviewError> {
    let path_of = |f: git2::DiffFile<'_>| f.path().map(|p| p.to_string_lossy().into_owned());
    let new = path_of(delta.new_file());
    let old = path_of(delta.old_file());
    let path = new.clone().or_else(|| old.clone()).unwrap_or_default();
    let status = match delta.status() {
        Delta::Added => "added",
        Delta::Deleted => "deleted",
        Delta::Renamed => "renamed",
        Delta::Typechange => "typechange",
        Delta::Untracked => "untracked",
        _ => "modified",
    };
    let mut file = FileDiff {
        old_path: old.filter(|o| *o != path),
        path,
        status: status.to_owned(),
        binary: delta.flags().is_binary(),
        ..FileDiff::default()
    };
    let Some(patch) = patch else {
        return Ok(file);
    };
    for h in 0..patch.num_hunks() {
        let (hunk, count) = patch.hunk(h).map_err(git("reading a hunk"))?;
        let mut out = Hunk {
            header: String::from_utf8_lossy(hunk.header()).trim_end().to_owned(),
            old_start: hunk.old_start(),
            old_lines: hunk.old_lines(),
            new_start: hunk.new_start(),
            new_lines: hunk.new_lines(),
            lines: Vec::with_capacity(count),
        };
        for l in 0..count {
            let line = patch.line_in_hunk(h, l).map_err(git("reading a line"))?;
            // `=`, `<` and `>` only mark a missing newline at the end of the file.
            let origin = line.origin();
            if !matches!(origin, '+' | '-' | ' ') {
                continue;
            }
            match origin {
                '+' => file.added += 1,
                '-' => file.removed += 1,
                _ => {}
            }
            let text = String::from_utf8_lossy(line.content());
            out.lines.push(DiffLine {
                origin,
                old: line.old_lineno(),
                new: line.new_lineno(),
                text: text.strip_suffix('\n').unwrap_or(&text).to_owned(),
            });
        }
        file.hunks.push(out);
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::tests::commit_all;
    use crate::review::tests::fixture;
    use std::fs;

    #[test]
    fn committed_staged_unstaged_and_untracked_with_line_numbers() {
        let (_dir, wt) = fixture();
        let repo = Repository::open(&wt.path).expect("open");
        fs::write(wt.path.join("a.txt"), "one\nTWO\nthree\n").expect("write");
        commit_all(&repo, "edit a");
        fs::write(wt.path.join("b.txt"), "staged\n").expect("write");
        let mut index = repo.index().expect("index");
        index.add_path(Path::new("b.txt")).expect("add");
        index.write().expect("write");
        fs::write(wt.path.join("a.txt"), "zero\none\nTWO\nthree\n").expect("write");
        fs::write(wt.path.join("c.txt"), "new\n").expect("write");

        let d = diff(&wt.path, &wt.base, &wt.base_commit, &[]).expect("diff");
        let summary: Vec<_> = d
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.status.as_str(), f.added, f.removed))
            .collect();
        assert_eq!(
            summary,
            [
                ("a.txt", "modified", 2, 1),
                ("b.txt", "added", 1, 0),
                ("c.txt", "untracked", 1, 0)
            ]
        );
        let lines: Vec<_> = d.files[0].hunks[0]
            .lines
            .iter()
            .map(|l| (l.origin, l.old, l.new, l.text.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                ('+', None, Some(1), "zero"),
                (' ', Some(1), Some(2), "one"),
                ('-', Some(2), None, "two"),
                ('+', None, Some(3), "TWO"),
                (' ', Some(3), Some(4), "three"),
            ]
        );
        let only = diff(&wt.path, &wt.base, &wt.base_commit, &["c.txt".into()]).expect("diff");
        assert_eq!(only.files.len(), 1);
    }
}
