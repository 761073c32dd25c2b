//! Review end to end with real repositories and worktrees: `canopy diff`, review
//! comments through edits, renames, a host restart and a send to a fake agent, `merge`
//! (clean, squashed, rebased, conflicting, dirty) and the conflict radar.

use std::fs;
use std::time::Duration;

use canopy_protocol::StateKind;
use canopy_tests::{TestEnv, wait_for};

const WAIT: Duration = Duration::from_secs(15);

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).expect("valid JSON")
}

/// The main checkout's state as a refused merge must leave it: files, index, HEAD and
/// every ref.
fn checkout_state(env: &TestEnv) -> [String; 4] {
    [
        env.git(&env.repo, &["status", "--porcelain"]),
        env.git(&env.repo, &["ls-files", "--stage"]),
        env.git(&env.repo, &["rev-parse", "HEAD"]),
        env.git(&env.repo, &["for-each-ref"]),
    ]
}

fn with_identity(env: &TestEnv) {
    env.git(&env.repo, &["config", "user.name", "Test"]);
    env.git(&env.repo, &["config", "user.email", "test@example.invalid"]);
}

#[test]
fn diff_covers_commits_staged_unstaged_and_untracked_files() {
    let env = TestEnv::new();
    env.ok(&["new", "a"]);
    let wt = env.worktree("a");
    fs::write(wt.join("README.md"), "# proj\nmore\n").expect("write");
    env.git(&wt, &["commit", "-qam", "more"]);
    fs::write(wt.join("staged.txt"), "s1\ns2\n").expect("write");
    env.git(&wt, &["add", "staged.txt"]);
    fs::write(wt.join("README.md"), "top\n# proj\nmore\n").expect("write");
    fs::write(wt.join("new.txt"), "n\n").expect("write");

    let d = json(&env.ok(&["diff", "a", "--json"]));
    let files: Vec<_> = d["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap_or("").to_owned(),
                f["status"].as_str().unwrap_or("").to_owned(),
                f["added"].as_u64().unwrap_or(0),
                f["removed"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let expect = |p: &str, s: &str, a: u64, r: u64| (p.to_owned(), s.to_owned(), a, r);
    assert_eq!(
        files,
        [
            expect("README.md", "modified", 2, 0),
            expect("new.txt", "untracked", 1, 0),
            expect("staged.txt", "added", 2, 0),
        ]
    );
    let readme = &d["files"][0]["hunks"][0]["lines"];
    assert_eq!(
        readme[0],
        serde_json::json!({"origin": "+", "new": 1, "text": "top"})
    );
    assert_eq!(
        readme[1],
        serde_json::json!({"origin": " ", "old": 1, "new": 2, "text": "# proj"})
    );
    assert_eq!(
        readme[2],
        serde_json::json!({"origin": "+", "new": 3, "text": "more"})
    );

    // Piped: plain text, as git prints it.
    let patch = env.ok(&["diff", "a"]);
    assert!(!patch.contains('\x1b'), "{patch}");
    assert!(patch.contains("diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1,3 @@\n+top\n # proj\n+more\n"), "{patch}");
    assert!(patch.contains("--- /dev/null\n+++ b/new.txt\n"), "{patch}");

    let stat = env.ok(&["diff", "a", "--stat"]);
    assert!(stat.contains(" README.md  | 2 ++\n"), "{stat}");
    assert!(
        stat.ends_with(" 3 files changed, 5 insertions(+), 0 deletions(-)\n"),
        "{stat}"
    );

    let counts = json(&env.ok(&["diff", "a", "--stat", "--json"]));
    assert_eq!(counts["files"][0]["added"], 2, "{counts}");
    assert!(
        counts["files"]
            .as_array()
            .is_some_and(|f| f.len() == 3 && f.iter().all(|f| f["hunks"] == serde_json::json!([]))),
        "--stat --json: counts without hunks: {counts}"
    );

    let only = json(&env.ok(&["diff", "a", "--json", "--", "new.txt"]));
    assert_eq!(only["files"].as_array().map(Vec::len), Some(1));
}

#[test]
fn comments_follow_the_code_flag_a_deleted_line_and_survive_a_restart() {
    let env = TestEnv::new();
    env.ok(&["new", "a"]);
    let wt = env.worktree("a");
    fs::write(
        wt.join("code.rs"),
        "fn f() {\n    let x = 1;\n    let y = 2;\n}\n",
    )
    .expect("write");
    env.ok(&["review", "a", "--comment", "code.rs:2", "name x better"]);
    env.ok(&["review", "a", "--comment", "code.rs:3", "why y?"]);
    let err = env.fails(&["review", "a", "--comment", "code.rs:9", "past the end"]);
    assert!(
        err.contains("code.rs has 4 lines; there is no line 9"),
        "{err}"
    );
    let err = env.fails(&["review", "a", "--comment", "../x:1", "outside"]);
    assert!(err.contains("hint:"), "{err}");

    // Two lines added above, and the `y` line deleted.
    fs::write(
        wt.join("code.rs"),
        "// a\n// b\nfn f() {\n    let x = 1;\n}\n",
    )
    .expect("write");
    let list = env.ok(&["review", "a"]);
    assert_eq!(
        list,
        "code.rs:4 (moved from line 2)  name x better\n    | let x = 1;\n\
         code.rs:3 (line gone)  why y?\n    | let y = 2;\n"
    );

    env.ok(&["host", "stop"]);
    let after: serde_json::Value = json(&env.ok(&["review", "a", "--json"]));
    assert_eq!(after.as_array().map(Vec::len), Some(2), "{after}");
    assert_eq!(
        after[0]["anchor"],
        serde_json::json!({"kind": "moved", "line": 4})
    );
    assert_eq!(after[1]["anchor"], serde_json::json!({"kind": "gone"}));
}

#[test]
fn a_comment_follows_its_file_through_a_rename_and_is_flagged_when_it_is_deleted() {
    let env = TestEnv::new();
    env.ok(&["new", "r"]);
    let wt = env.worktree("r");
    env.ok(&["review", "r", "--comment", "README.md:1", "a better title"]);
    env.git(&wt, &["mv", "README.md", "DOCS.md"]);
    fs::write(wt.join("DOCS.md"), "intro\n# proj\n").expect("write");
    assert_eq!(
        env.ok(&["review", "r"]),
        "DOCS.md:2 (moved from README.md:1)  a better title\n    | # proj\n"
    );
    let listed = json(&env.ok(&["review", "r", "--json"]));
    assert_eq!(listed[0]["comment"]["path"], "DOCS.md");
    assert_eq!(listed[0]["renamed_from"], "README.md");

    // Deleted: kept, flagged, at the path it was made on.
    env.git(&wt, &["rm", "-qf", "DOCS.md"]);
    assert_eq!(
        env.ok(&["review", "r"]),
        "README.md:1 (line gone)  a better title\n    | # proj\n"
    );
}

#[test]
fn send_types_every_comment_into_the_agent_and_clears_them() {
    let env = TestEnv::with_fake_agents();
    env.ok(&["new", "f", "--agent", "claude"]);
    wait_for("f to be idle", WAIT, || {
        (env.session("f").state.kind == StateKind::Idle).then_some(())
    });
    let wt = env.worktree("f");
    fs::write(wt.join("lib.rs"), "pub fn answer() -> u32 {\n    41\n}\n").expect("write");
    env.ok(&["review", "f", "--comment", "lib.rs:2", "should be 42"]);
    let err = env.fails(&["review", "f", "--send", "--comment", "lib.rs:1", "x"]);
    assert!(err.contains("cannot be used with"), "{err}");
    let sent = json(&env.ok(&["review", "f", "--send", "--json"]));
    assert_eq!(sent["sent"], 1);
    assert!(
        sent["prompt"]
            .as_str()
            .unwrap_or("")
            .contains("1. lib.rs:2: `41`\n   should be 42"),
        "{sent}"
    );
    // One prompt, the comment in it (a multi-line prompt goes as one paste). The agent
    // shows the paste collapsed, never echoed: Enter follows its redraw, well before
    // the 5 s an echo is waited for.
    let prompts = wait_for(
        "the prompt in the agent's transcript",
        Duration::from_secs(3),
        || {
            let prompts = env.claude_prompts();
            (!prompts.is_empty()).then_some(prompts)
        },
    );
    assert_eq!(prompts.len(), 1, "{prompts:#?}");
    assert!(
        prompts[0].ends_with("1. lib.rs:2: `41`\n   should be 42"),
        "{prompts:#?}"
    );
    assert_eq!(env.ok(&["review", "f"]), "f: no review comments\n");
    let err = env.fails(&["review", "f", "--send"]);
    assert!(err.contains("no review comments to send"), "{err}");
}

#[test]
fn merge_lands_clean_work_and_refuses_dirty_or_conflicting_leaving_the_checkout_alone() {
    let env = TestEnv::new();
    with_identity(&env);
    for name in ["m", "s", "c"] {
        env.ok(&["new", name]);
    }
    // m: a new file; main moves on meanwhile, so this is a real merge.
    let m = env.worktree("m");
    fs::write(m.join("m.txt"), "m\n").expect("write");
    env.git(&m, &["add", "m.txt"]);
    env.git(&m, &["commit", "-qm", "m work"]);
    fs::write(env.repo.join("main.txt"), "main\n").expect("write");
    env.git(&env.repo, &["add", "main.txt"]);
    env.git(&env.repo, &["commit", "-qm", "main work"]);

    // Dirty checkout: refused, nothing touched.
    fs::write(env.repo.join("README.md"), "# proj\nlocal edit\n").expect("write");
    let before = checkout_state(&env);
    let err = env.fails(&["merge", "m"]);
    assert!(err.contains("has uncommitted changes"), "{err}");
    assert!(err.contains("  - README.md"), "{err}");
    assert_eq!(checkout_state(&env), before);
    env.git(&env.repo, &["checkout", "README.md"]);

    // The session's own uncommitted work would be left out: refused.
    fs::write(m.join("later.txt"), "x\n").expect("write");
    let err = env.fails(&["merge", "m"]);
    assert!(err.contains("uncommitted work"), "{err}");
    fs::remove_file(m.join("later.txt")).expect("rm");

    let out = env.ok(&["merge", "m"]);
    assert!(out.starts_with("m: merged into main as "), "{out}");
    assert!(env.repo.join("m.txt").exists());
    assert_eq!(env.git(&env.repo, &["status", "--porcelain"]), "");
    let parents = env.git(&env.repo, &["log", "-1", "--format=%P"]);
    assert_eq!(parents.split_whitespace().count(), 2, "{parents}");
    assert!(env.ok(&["merge", "m"]).contains("already has everything"));

    // s: two commits squashed into one.
    let s = env.worktree("s");
    for (file, msg) in [("s1.txt", "s one"), ("s2.txt", "s two")] {
        fs::write(s.join(file), "s\n").expect("write");
        env.git(&s, &["add", file]);
        env.git(&s, &["commit", "-qm", msg]);
    }
    env.ok(&["merge", "s", "--squash"]);
    let parents = env.git(&env.repo, &["log", "-1", "--format=%P"]);
    assert_eq!(parents.split_whitespace().count(), 1, "{parents}");
    assert!(env.repo.join("s1.txt").exists() && env.repo.join("s2.txt").exists());
    let message = env.git(&env.repo, &["log", "-1", "--format=%B"]);
    assert!(
        message.contains("* s one") && message.contains("* s two"),
        "{message}"
    );

    // c: the same line as main changed: conflicts listed, checkout as it was.
    let c = env.worktree("c");
    fs::write(c.join("README.md"), "# session title\n").expect("write");
    env.git(&c, &["commit", "-qam", "c title"]);
    fs::write(env.repo.join("README.md"), "# main title\n").expect("write");
    env.git(&env.repo, &["commit", "-qam", "main title"]);
    let before = checkout_state(&env);
    let err = env.fails(&["merge", "c"]);
    assert!(
        err.contains("canopy/c conflicts with main in 1 files"),
        "{err}"
    );
    assert!(err.contains("  - README.md"), "{err}");
    assert_eq!(checkout_state(&env), before);
    assert!(!env.repo.join(".git/MERGE_HEAD").exists());

    // On another branch: refused with the reason.
    env.git(&env.repo, &["switch", "-qc", "other"]);
    let err = env.fails(&["merge", "s"]);
    assert!(err.contains("is on other, not main"), "{err}");
}

#[test]
fn rebase_replays_the_commits_on_the_base_tip_or_refuses_changing_nothing() {
    let env = TestEnv::new();
    with_identity(&env);
    for name in ["r", "c"] {
        env.ok(&["new", name]);
    }
    let r = env.worktree("r");
    for (file, msg) in [("r1.txt", "r one"), ("r2.txt", "r two")] {
        fs::write(r.join(file), "r\n").expect("write");
        env.git(&r, &["add", file]);
        env.git(&r, &["commit", "-qm", msg]);
    }
    fs::write(env.repo.join("main.txt"), "main\n").expect("write");
    env.git(&env.repo, &["add", "main.txt"]);
    env.git(&env.repo, &["commit", "-qm", "main work"]);
    let main_tip = env.git(&env.repo, &["rev-parse", "HEAD"]);

    // Dirty checkout: refused as --squash refuses, nothing touched.
    fs::write(env.repo.join("README.md"), "# proj\nlocal edit\n").expect("write");
    let before = checkout_state(&env);
    let err = env.fails(&["merge", "r", "--rebase"]);
    assert!(err.contains("has uncommitted changes"), "{err}");
    assert_eq!(checkout_state(&env), before);
    env.git(&env.repo, &["checkout", "README.md"]);
    let err = env.fails(&["merge", "r", "--rebase", "--squash"]);
    assert!(err.contains("cannot be used with"), "{err}");

    let out = env.ok(&["merge", "r", "--rebase"]);
    assert!(
        out.starts_with("r: rebased onto main and fast-forwarded it to "),
        "{out}"
    );
    // Linear: the two commits, with their messages, on top of main's tip.
    let log = env.git(&env.repo, &["log", "--format=%s %P", "-3"]);
    let lines: Vec<_> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(lines[0].starts_with("r two "), "{log}");
    assert!(lines[1].starts_with("r one "), "{log}");
    assert_eq!(
        lines[1].split_whitespace().last(),
        Some(main_tip.trim()),
        "{log}"
    );
    assert!(
        lines.iter().all(|l| l.split_whitespace().count() == 3),
        "{log}"
    );
    assert!(env.repo.join("r1.txt").exists() && env.repo.join("r2.txt").exists());
    assert_eq!(env.git(&env.repo, &["status", "--porcelain"]), "");
    // Again: every commit is in main already (by content): nothing to do.
    assert!(
        env.ok(&["merge", "r", "--rebase"])
            .contains("already has everything"),
        "a second rebase changes nothing"
    );

    // c: its second commit conflicts with main: nothing changes, the file is named.
    let c = env.worktree("c");
    fs::write(c.join("c.txt"), "c\n").expect("write");
    env.git(&c, &["add", "c.txt"]);
    env.git(&c, &["commit", "-qm", "c file"]);
    fs::write(c.join("README.md"), "# session title\n").expect("write");
    env.git(&c, &["commit", "-qam", "c title"]);
    fs::write(env.repo.join("README.md"), "# main title\n").expect("write");
    env.git(&env.repo, &["commit", "-qam", "main title"]);
    let before = checkout_state(&env);
    let err = env.fails(&["merge", "c", "--rebase"]);
    assert!(
        err.contains("canopy/c conflicts with main in 1 files"),
        "{err}"
    );
    assert!(err.contains("  - README.md"), "{err}");
    assert_eq!(checkout_state(&env), before);
    assert!(!env.repo.join("c.txt").exists());
    assert!(!env.repo.join(".git/REBASE_HEAD").exists());
    assert!(!env.repo.join(".git/rebase-merge").exists());
}

#[test]
fn the_radar_finds_shared_files_and_branches_that_no_longer_merge() {
    let env = TestEnv::new();
    for name in ["x", "y", "z"] {
        env.ok(&["new", name]);
    }
    let (x, y, z) = (env.worktree("x"), env.worktree("y"), env.worktree("z"));
    fs::write(x.join("README.md"), "# x\n").expect("write");
    env.git(&x, &["commit", "-qam", "x"]);
    fs::write(y.join("README.md"), "# y\n").expect("write");
    fs::write(y.join("shared.txt"), "y\n").expect("write");
    fs::write(z.join("shared.txt"), "z\n").expect("write");
    fs::write(z.join("z.txt"), "z\n").expect("write");
    fs::write(env.repo.join("README.md"), "# main\n").expect("write");
    env.git(&env.repo, &["commit", "-qam", "main"]);

    let c = json(&env.ok(&["conflicts", "--json"]));
    let shared: Vec<_> = c["shared_files"]
        .as_array()
        .expect("shared")
        .iter()
        .map(|f| (f["path"].clone(), f["sessions"].clone()))
        .collect();
    assert_eq!(
        shared,
        [
            (
                serde_json::json!("README.md"),
                serde_json::json!(["x", "y"])
            ),
            (
                serde_json::json!("shared.txt"),
                serde_json::json!(["y", "z"])
            ),
        ]
    );
    // y's README edit is not committed: only x's branch conflicts with main.
    assert_eq!(
        c["unmergeable"],
        serde_json::json!([{"name": "x", "base": "main", "files": ["README.md"]}])
    );
    let text = env.ok(&["conflicts"]);
    assert!(text.contains("README.md: changed by x, y\n"), "{text}");

    // The same, kept in the records as the worktrees change (no request needed).
    let radar = |name: &str| serde_json::to_value(env.session(name).radar).expect("json");
    let want_x = serde_json::json!({"shared_files": ["README.md"], "shared_with": ["y"], "conflicts": ["README.md"]});
    wait_for("x's radar mark", WAIT, || {
        (radar("x") == want_x).then_some(())
    });
    let want_z = serde_json::json!({"shared_files": ["shared.txt"], "shared_with": ["y"]});
    wait_for("z's radar mark", WAIT, || {
        (radar("z") == want_z).then_some(())
    });
    let inspect = env.ok(&["inspect", "x"]);
    assert!(
        inspect.contains("shared:   README.md (also changed by y)\n"),
        "{inspect}"
    );
    assert!(
        inspect.contains("conflict: README.md with main\n"),
        "{inspect}"
    );
    // z stops sharing: its mark goes, and y's partner list shrinks.
    std::fs::remove_file(z.join("shared.txt")).expect("rm");
    wait_for("z's mark cleared", WAIT, || {
        (radar("z").is_null()).then_some(())
    });
    let want_y = serde_json::json!({"shared_files": ["README.md"], "shared_with": ["x"]});
    wait_for("y's radar mark", WAIT, || {
        (radar("y") == want_y).then_some(())
    });
    assert!(
        text.contains("x: no longer merges into main (conflicts in README.md)\n"),
        "{text}"
    );
}
