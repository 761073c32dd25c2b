//! Review comments: anchored to a line of a file in the session's worktree by its
//! number and its text, found again by that text after the agent edits the file, and
//! sent back to the agent as one prompt.

use std::collections::HashMap;
use std::path::{Component, Path};

use canopy_protocol::review::{Anchor, Anchored};
use canopy_protocol::session::Comment;

use super::ReviewError;

/// The text of line `line` (1-based) of `path` in the worktree, for a new comment.
pub fn code_at(worktree: &Path, path: &str, line: u32) -> Result<String, ReviewError> {
    let bad = |why: &str| ReviewError::BadPath {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let rel = Path::new(path);
    if path.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad("give a path inside the worktree, relative to it"));
    }
    let text = std::fs::read(worktree.join(rel))
        .map_err(|e| bad(&format!("cannot read it in the session's worktree: {e}")))?;
    let text = String::from_utf8_lossy(&text);
    let lines = text.lines().count();
    line.checked_sub(1)
        .and_then(|i| text.lines().nth(i as usize))
        .map(str::to_owned)
        .ok_or(ReviewError::NoLine {
            path: path.to_owned(),
            line,
            lines,
        })
}

/// A comment just made: at its own line.
pub fn anchored_at(comment: Comment) -> Anchored {
    let anchor = Anchor::At { line: comment.line };
    Anchored {
        comment,
        anchor,
        renamed_from: None,
    }
}

/// Where `comment`'s code line is in `text` (the file now; `None` when it is gone):
/// at its line, else the nearest line with the same text (below first at equal
/// distance, as code moves down when lines are added above it), else gone.
pub fn anchor(comment: &Comment, text: Option<&str>) -> Anchor {
    let Some(text) = text else {
        return Anchor::Gone;
    };
    let lines: Vec<&str> = text.lines().collect();
    let want = comment.code.trim_end();
    let same = |i: usize| lines.get(i).is_some_and(|l| l.trim_end() == want);
    let at = comment.line.saturating_sub(1) as usize;
    if same(at) {
        return Anchor::At { line: comment.line };
    }
    for d in 1..=lines.len() {
        for i in [at.checked_add(d), at.checked_sub(d)].into_iter().flatten() {
            if same(i) {
                return Anchor::Moved { line: i as u32 + 1 };
            }
        }
    }
    Anchor::Gone
}

/// Every comment against the worktree as it is now, in the order they were made. A
/// comment on a file the change renamed (`renames`: old path → new path) moves to the
/// new path and is found there by its text; one whose file is gone is flagged, and
/// keeps its path.
pub fn anchor_all(
    worktree: &Path,
    renames: &HashMap<String, String>,
    comments: Vec<Comment>,
) -> Vec<Anchored> {
    let mut files: HashMap<String, Option<String>> = HashMap::new();
    let mut read = |path: &str| {
        files
            .entry(path.to_owned())
            .or_insert_with(|| {
                std::fs::read(worktree.join(path))
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            })
            .clone()
    };
    comments
        .into_iter()
        .map(|mut comment| {
            let mut text = read(&comment.path);
            let mut renamed_from = None;
            if let (None, Some(new)) = (&text, renames.get(&comment.path)) {
                text = read(new);
                if text.is_some() {
                    renamed_from = Some(std::mem::replace(&mut comment.path, new.clone()));
                }
            }
            let anchor = anchor(&comment, text.as_deref());
            Anchored {
                comment,
                anchor,
                renamed_from,
            }
        })
        .collect()
}

/// The one prompt that carries every comment to the agent: file, line and the code
/// line each refers to, then the comment.
pub fn prompt(anchored: &[Anchored]) -> String {
    let mut out = String::from("Review comments on your change. Please address each one:\n");
    for (i, a) in anchored.iter().enumerate() {
        let c = &a.comment;
        let code = c.code.trim();
        let was = a
            .renamed_from
            .as_ref()
            .map_or_else(String::new, |old| format!(" (renamed from {old})"));
        let place = match a.anchor {
            Anchor::At { line } | Anchor::Moved { line } => {
                format!("{}:{line}{was}: `{code}`", c.path)
            }
            Anchor::Gone => format!(
                "{} (the line is gone; it was line {}: `{code}`)",
                c.path, c.line
            ),
        };
        out.push_str(&format!("\n{}. {place}\n", i + 1));
        for line in c.text.lines() {
            out.push_str(&format!("   {line}\n"));
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(line: u32, code: &str) -> Comment {
        Comment {
            path: "a.rs".into(),
            line,
            code: code.into(),
            text: "fix".into(),
            created_at: 0,
        }
    }

    #[test]
    fn anchors_follow_the_code_or_say_it_is_gone() {
        let c = comment(2, "let x = 1;");
        assert_eq!(
            anchor(&c, Some("fn f() {\nlet x = 1;\n}\n")),
            Anchor::At { line: 2 }
        );
        assert_eq!(
            anchor(&c, Some("// new\n// lines\nfn f() {\nlet x = 1;\n}\n")),
            Anchor::Moved { line: 4 }
        );
        // Two copies: the nearer one wins.
        assert_eq!(
            anchor(&c, Some("let x = 1;\nx\ny\nz\nlet x = 1;\n")),
            Anchor::Moved { line: 1 }
        );
        assert_eq!(anchor(&c, Some("fn f() {\nlet x = 2;\n}\n")), Anchor::Gone);
        assert_eq!(anchor(&c, None), Anchor::Gone);
    }

    #[test]
    fn the_prompt_names_file_line_and_code() {
        let moved = Anchored {
            comment: comment(2, "  let x = 1;"),
            anchor: Anchor::Moved { line: 4 },
            renamed_from: Some("old.rs".into()),
        };
        let gone = Anchored {
            comment: Comment {
                text: "two\nlines".into(),
                ..comment(7, "old()")
            },
            anchor: Anchor::Gone,
            renamed_from: None,
        };
        assert_eq!(
            prompt(&[moved, gone]),
            "Review comments on your change. Please address each one:\n\n\
             1. a.rs:4 (renamed from old.rs): `let x = 1;`\n   fix\n\n\
             2. a.rs (the line is gone; it was line 7: `old()`)\n   two\n   lines"
        );
    }

    #[test]
    fn comments_follow_a_renamed_file_and_are_flagged_when_it_is_deleted() {
        let (_dir, wt) = crate::review::tests::fixture();
        let c = Comment {
            path: "a.txt".into(),
            ..comment(2, "two")
        };
        // Renamed with a plain `mv` (untracked new path) and edited above the line.
        std::fs::remove_file(wt.path.join("a.txt")).expect("rm");
        std::fs::write(wt.path.join("b.txt"), "zero\none\ntwo\nthree\n").expect("write");
        let renames =
            super::super::diff::renames(&wt.path, &wt.base, &wt.base_commit).expect("renames");
        assert_eq!(renames.get("a.txt").map(String::as_str), Some("b.txt"));
        let [a] = &anchor_all(&wt.path, &renames, vec![c.clone()])[..] else {
            panic!("one comment");
        };
        assert_eq!(a.comment.path, "b.txt");
        assert_eq!(a.renamed_from.as_deref(), Some("a.txt"));
        assert_eq!(a.anchor, Anchor::Moved { line: 3 });

        std::fs::remove_file(wt.path.join("b.txt")).expect("rm");
        let renames =
            super::super::diff::renames(&wt.path, &wt.base, &wt.base_commit).expect("renames");
        let [a] = &anchor_all(&wt.path, &renames, vec![c])[..] else {
            panic!("one comment");
        };
        assert_eq!((a.comment.path.as_str(), a.anchor), ("a.txt", Anchor::Gone));
        assert_eq!(a.renamed_from, None);
    }

    #[test]
    fn paths_must_stay_inside_the_worktree() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.rs"), "one\ntwo\n").expect("write");
        assert_eq!(code_at(dir.path(), "a.rs", 2).expect("line"), "two");
        for bad in ["../a.rs", "/etc/passwd", ""] {
            assert!(
                matches!(
                    code_at(dir.path(), bad, 1),
                    Err(ReviewError::BadPath { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            code_at(dir.path(), "a.rs", 3),
            Err(ReviewError::NoLine { lines: 2, .. })
        ));
        assert!(matches!(
            code_at(dir.path(), "a.rs", 0),
            Err(ReviewError::NoLine { .. })
        ));
    }
}
