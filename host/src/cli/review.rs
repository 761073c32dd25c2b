//! `canopy diff`, `review`, `merge` and `conflicts`: the host computes, this prints.

use std::io::{IsTerminal, Write};

use canopy_protocol::method;
use canopy_protocol::params::NameParams;
use canopy_protocol::review::{
    Anchor, Anchored, CommentParams, Conflicts, Diff, DiffParams, FileDiff, MergeParams,
    MergeResult, SentComments,
};

use super::{CliError, connect, print_json};
use crate::paths::Paths;

/// `canopy diff NAME [--stat] [--json] [-- PATHS]`.
pub async fn diff(
    paths: &Paths,
    name: String,
    stat: bool,
    json: bool,
    only: Vec<String>,
) -> Result<(), CliError> {
    let mut client = connect(paths).await?;
    let mut d: Diff = client
        .call(method::DIFF, &DiffParams { name, paths: only })
        .await?;
    if json {
        // The counts alone, for a front end's file list (the Zellij pane).
        if stat {
            d.files.iter_mut().for_each(|f| f.hunks.clear());
        }
        return print_json(&d);
    }
    let colour = std::io::stdout().is_terminal();
    let mut out = std::io::stdout().lock();
    let text = if stat {
        stat_text(&d)
    } else {
        patch_text(&d, colour)
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

const BOLD: &str = "\x1b[1m";
const CYAN: &str = "\x1b[36m";
const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[m";

/// The diff as `git diff` prints it, coloured as git colours it on a terminal.
fn patch_text(d: &Diff, colour: bool) -> String {
    let paint = |c: &str, s: &str| {
        if colour {
            format!("{c}{s}{RESET}\n")
        } else {
            format!("{s}\n")
        }
    };
    let mut out = String::new();
    for f in &d.files {
        let old = f.old_path.as_deref().unwrap_or(&f.path);
        out += &paint(BOLD, &format!("diff --git a/{old} b/{}", f.path));
        let (from, to) = match f.status.as_str() {
            "added" | "untracked" => {
                out += &paint(BOLD, "new file");
                ("/dev/null".to_owned(), format!("b/{}", f.path))
            }
            "deleted" => {
                out += &paint(BOLD, "deleted file");
                (format!("a/{old}"), "/dev/null".to_owned())
            }
            _ => (format!("a/{old}"), format!("b/{}", f.path)),
        };
        if f.binary {
            out += &format!("Binary files {from} and {to} differ\n");
            continue;
        }
        if f.hunks.is_empty() {
            continue;
        }
        out += &paint(BOLD, &format!("--- {from}"));
        out += &paint(BOLD, &format!("+++ {to}"));
        for h in &f.hunks {
            out += &paint(CYAN, &h.header);
            for l in &h.lines {
                let line = format!("{}{}", l.origin, l.text);
                out += &match l.origin {
                    '+' => paint(GREEN, &line),
                    '-' => paint(RED, &line),
                    _ => format!("{line}\n"),
                };
            }
        }
    }
    out
}

/// One line per file with its counts, then the totals, as `git diff --stat`.
fn stat_text(d: &Diff) -> String {
    let width = d.files.iter().map(|f| f.path.len()).max().unwrap_or(0);
    let most = d
        .files
        .iter()
        .map(|f| f.added + f.removed)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for f in &d.files {
        out += &format!(" {:width$} | {}\n", f.path, counts(f, most));
    }
    let (added, removed) = d
        .files
        .iter()
        .fold((0, 0), |(a, r), f| (a + f.added, r + f.removed));
    let s = |n: u32| if n == 1 { "" } else { "s" };
    out += &format!(
        " {} file{} changed, {added} insertion{}(+), {removed} deletion{}(-)\n",
        d.files.len(),
        s(d.files.len() as u32),
        s(added),
        s(removed)
    );
    out
}

/// `N +++--`, the bar scaled to at most 40 characters.
fn counts(f: &FileDiff, most: u32) -> String {
    if f.binary {
        return "Bin".to_owned();
    }
    let scale = |n: u32| {
        if most <= 40 {
            n
        } else {
            (n * 40).div_ceil(most)
        }
    };
    format!(
        "{} {}{}",
        f.added + f.removed,
        "+".repeat(scale(f.added) as usize),
        "-".repeat(scale(f.removed) as usize)
    )
}

/// `canopy review NAME [--comment PATH:LINE TEXT | --send] [--json]`.
pub async fn review(
    paths: &Paths,
    name: String,
    comment: Option<Vec<String>>,
    send: bool,
    json: bool,
) -> Result<(), CliError> {
    let mut client = connect(paths).await?;
    if let Some(words) = comment {
        let [place, text] = words.as_slice() else {
            return Err(CliError::new("--comment takes PATH:LINE and TEXT"));
        };
        let (path, line) = place
            .rsplit_once(':')
            .and_then(|(p, l)| Some((p.to_owned(), l.parse::<u32>().ok()?)))
            .ok_or_else(|| {
                CliError::new(format!("{place:?} is not PATH:LINE"))
                    .with_hint("e.g. --comment src/main.rs:42 \"why not a match here?\"")
            })?;
        let a: Anchored = client
            .call(
                method::REVIEW_ADD,
                &CommentParams {
                    name,
                    path,
                    line,
                    text: text.clone(),
                },
            )
            .await?;
        return if json {
            print_json(&a)
        } else {
            println!("{}", describe(&a));
            Ok(())
        };
    }
    if send {
        let sent: SentComments = client
            .call(method::REVIEW_SEND, &NameParams { name: name.clone() })
            .await?;
        return if json {
            print_json(&sent)
        } else {
            println!("{name}: sent {} comments", sent.sent);
            Ok(())
        };
    }
    let all: Vec<Anchored> = client
        .call(method::REVIEW_LIST, &NameParams { name: name.clone() })
        .await?;
    if json {
        return print_json(&all);
    }
    if all.is_empty() {
        println!("{name}: no review comments");
    }
    for a in &all {
        println!("{}", describe(a));
    }
    Ok(())
}

/// `PATH:LINE  text`, flagged when the file was renamed or the code moved or is gone,
/// then the code line.
fn describe(a: &Anchored) -> String {
    let c = &a.comment;
    let from = a
        .renamed_from
        .as_ref()
        .map_or_else(|| "line ".to_owned(), |old| format!("{old}:"));
    let place = match a.anchor {
        Anchor::At { line } if a.renamed_from.is_some() => {
            format!("{}:{line} (moved from {from}{})", c.path, c.line)
        }
        Anchor::At { line } => format!("{}:{line}", c.path),
        Anchor::Moved { line } => format!("{}:{line} (moved from {from}{})", c.path, c.line),
        Anchor::Gone => format!("{}:{} (line gone)", c.path, c.line),
    };
    format!("{place}  {}\n    | {}", c.text, c.code.trim())
}

/// `canopy merge NAME [--squash|--rebase] [--into BRANCH]`.
pub async fn merge(
    paths: &Paths,
    name: String,
    squash: bool,
    rebase: bool,
    into: Option<String>,
) -> Result<(), CliError> {
    let mut client = connect(paths).await?;
    let m: MergeResult = client
        .call(
            method::MERGE,
            &MergeParams {
                name: name.clone(),
                squash,
                rebase,
                into,
            },
        )
        .await?;
    let short = m.commit.get(..8).unwrap_or(&m.commit);
    match m.how.as_str() {
        "up_to_date" => println!("{name}: {} already has everything on its branch", m.target),
        "fast_forward" => println!("{name}: {} fast-forwarded to {short}", m.target),
        "squash" => println!("{name}: squashed into {} as {short}", m.target),
        "rebase" => println!(
            "{name}: rebased onto {} and fast-forwarded it to {short}",
            m.target
        ),
        _ => println!("{name}: merged into {} as {short}", m.target),
    }
    Ok(())
}

/// `canopy conflicts [--json]`.
pub async fn conflicts(paths: &Paths, json: bool) -> Result<(), CliError> {
    let mut client = connect(paths).await?;
    let c: Conflicts = client
        .call(method::CONFLICTS, &NameParams::default())
        .await?;
    if json {
        return print_json(&c);
    }
    if c.shared_files.is_empty() && c.unmergeable.is_empty() {
        println!("no conflicts between live sessions");
    }
    for f in &c.shared_files {
        println!("{}: changed by {}", f.path, f.sessions.join(", "));
    }
    for u in &c.unmergeable {
        println!(
            "{}: no longer merges into {} (conflicts in {})",
            u.name,
            u.base,
            u.files.join(", ")
        );
    }
    for e in &c.errors {
        eprintln!("warning: {e}");
    }
    Ok(())
}
