//! Review: a session's diff, comments on it, merging it, and the conflict radar.
//! Params and results of `diff`, `review_*`, `merge` and `conflicts`.

use serde::{Deserialize, Serialize};

use crate::session::{Comment, PullRequest};

/// `diff`: the session's change against its base.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiffParams {
    pub name: String,
    /// Only these paths (git pathspecs, relative to the worktree); all when empty.
    pub paths: Vec<String>,
}

/// A session's whole change: commits on its branch since the merge base with its base,
/// staged, unstaged and untracked files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Diff {
    /// The commit diffed against (the merge base of the branch and its base).
    pub base_commit: String,
    pub files: Vec<FileDiff>,
}

/// One changed file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FileDiff {
    /// The path now (the old path for a deleted file).
    pub path: String,
    /// The path before, when it differs (a rename).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// `added`, `deleted`, `modified`, `renamed`, `typechange` or `untracked`.
    pub status: String,
    pub added: u32,
    pub removed: u32,
    /// Binary content: no hunks.
    pub binary: bool,
    pub hunks: Vec<Hunk>,
}

/// One hunk, with git's numbering (`@@ -old_start,old_lines +new_start,new_lines @@`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hunk {
    pub header: String,
    pub old_start: u32,
    pub old_lines: u32,
    pub new_start: u32,
    pub new_lines: u32,
    pub lines: Vec<DiffLine>,
}

/// One line of a hunk: `+` added (new number only), `-` removed (old number only), ` `
/// context (both).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiffLine {
    pub origin: char,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<u32>,
    /// The line without its newline.
    pub text: String,
}

/// `review_add`: a comment on line `line` (1-based, new side) of `path` in the worktree.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommentParams {
    pub name: String,
    pub path: String,
    pub line: u32,
    pub text: String,
}

/// A comment as it stands against the worktree now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anchored {
    /// The comment, its `path` where the file is now (after a rename).
    pub comment: Comment,
    pub anchor: Anchor,
    /// The path the comment was made on, when the session's change renamed that file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
}

/// Where a comment's code line is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Anchor {
    /// Still at the line it was made on.
    At { line: u32 },
    /// The code moved (edits above it): found at `line`.
    Moved { line: u32 },
    /// The code line is no longer in the file (or the file is gone).
    Gone,
}

/// `review_send`: what was sent to the agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SentComments {
    /// How many comments were sent (and cleared).
    pub sent: u32,
    /// The prompt typed into the agent.
    pub prompt: String,
}

/// `merge`: land the session's branch in its base (or `into`) in the main checkout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MergeParams {
    pub name: String,
    /// One commit with the branch's whole change, instead of a merge commit.
    pub squash: bool,
    /// Replay the branch's commits on the target's tip and fast-forward it (linear
    /// history, no merge commit).
    pub rebase: bool,
    /// The branch to merge into (default: the session's base).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
}

/// What `merge` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MergeResult {
    /// The branch merged into.
    pub target: String,
    /// Its new tip.
    pub commit: String,
    /// `fast_forward`, `merge`, `squash`, `rebase`, or `up_to_date` (nothing to merge).
    pub how: String,
}

/// `conflicts`: what live sessions would collide on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Conflicts {
    /// Files changed by more than one live session of the same repository.
    pub shared_files: Vec<SharedFile>,
    /// Sessions whose branch no longer merges cleanly into their base's tip.
    pub unmergeable: Vec<Unmergeable>,
    /// Sessions that could not be checked, with why.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SharedFile {
    pub repo: String,
    pub path: String,
    pub sessions: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Unmergeable {
    pub name: String,
    pub base: String,
    /// The files that conflict.
    pub files: Vec<String>,
}

/// `set_pr`: the pull or merge request of a session's branch, as the CLI last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrParams {
    pub name: String,
    pub pr: PullRequest,
}
