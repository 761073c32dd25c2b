//! `canopy rm` never loses work: each way a worktree can hold work, or be moved or
//! deleted by hand, is refused or handled as `canopy rm --help` documents; `--force` is
//! the only way through, it deletes nothing outside the session's worktree, and it
//! never deletes a commit that exists nowhere else.

use std::path::Path;

use canopy_tests::TestEnv;

/// The branches of `repo` whose names start with `canopy/`.
fn canopy_branches(env: &TestEnv) -> Vec<String> {
    env.git(
        &env.repo,
        &["branch", "--list", "canopy/*", "--format=%(refname:short)"],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Commit a new file in `wt`; returns the commit id.
fn commit(env: &TestEnv, wt: &Path, file: &str, message: &str) -> String {
    std::fs::write(wt.join(file), format!("{file}\n")).expect("write");
    env.git(wt, &["add", file]);
    env.git(wt, &["commit", "-qm", message]);
    env.git(wt, &["rev-parse", "HEAD"]).trim().to_owned()
}

/// `rm NAME` is refused, names `expect`, points at `--force`, and leaves the session,
/// its agent and its worktree as they were.
fn refused(env: &TestEnv, name: &str, expect: &str) -> String {
    let err = env.fails(&["rm", name]);
    assert!(err.contains(expect), "{name}: {err}");
    assert!(err.contains("--force"), "{name}: {err}");
    assert!(
        env.session(name).is_running(),
        "{name}: a refused rm does not stop the agent"
    );
    err
}

#[test]
fn rm_refuses_each_kind_of_unsaved_work_until_forced() {
    let env = TestEnv::new();
    /// A session name, how to leave work in its worktree, and what rm must say about it.
    type Case<'a> = (&'a str, &'a dyn Fn(&Path), &'a str);
    let cases: [Case; 4] = [
        (
            "locked",
            &|wt| {
                let wt = wt.to_str().expect("utf8");
                env.git(
                    &env.repo,
                    &["worktree", "lock", "--reason", "on a USB disk", wt],
                );
            },
            "worktree locked with `git worktree lock`: on a USB disk",
        ),
        (
            "uncommitted",
            &|wt| std::fs::write(wt.join("README.md"), "changed\n").expect("write"),
            "uncommitted change: README.md",
        ),
        (
            "untracked",
            &|wt| std::fs::write(wt.join("new.txt"), "x\n").expect("write"),
            "untracked file: new.txt",
        ),
        (
            "staged",
            &|wt| {
                std::fs::write(wt.join("staged.txt"), "x\n").expect("write");
                env.git(wt, &["add", "staged.txt"]);
            },
            "staged change: staged.txt",
        ),
    ];
    for (name, make_work, expect) in cases {
        env.ok(&["new", name, "--agent", "sh"]);
        let wt = env.worktree(name);
        make_work(&wt);
        refused(&env, name, expect);
        assert!(wt.exists(), "{name}: worktree kept");
        env.ok(&["rm", "--force", name]);
        assert!(!wt.exists(), "{name}: forced rm removes the worktree");
        assert!(
            !canopy_branches(&env).contains(&format!("canopy/{name}")),
            "{name}: no commits of its own, so its branch goes"
        );
    }
    // Merged work is not lost: after merging into main, rm goes through.
    env.ok(&["new", "merged", "--agent", "sh"]);
    let wt = env.worktree("merged");
    commit(&env, &wt, "m.txt", "merged work");
    env.git(&env.repo, &["merge", "-q", "--ff-only", "canopy/merged"]);
    env.ok(&["rm", "merged"]);
    assert!(env.sessions().is_empty());
    assert!(canopy_branches(&env).is_empty());
}

#[test]
fn commits_found_nowhere_else_are_refused_and_forced_rm_keeps_their_branch() {
    let env = TestEnv::new();
    env.ok(&["new", "committed", "--agent", "sh"]);
    let wt = env.worktree("committed");
    let id = commit(&env, &wt, "c.txt", "agent work");
    let err = refused(&env, "committed", "commit not in main: ");
    assert!(err.contains(&format!("{} agent work", &id[..8])), "{err}");

    // Another branch (or a tag) holding the commit saves it: nothing would be lost.
    env.git(&env.repo, &["branch", "saved", "canopy/committed"]);
    env.ok(&["rm", "committed"]);
    assert!(!wt.exists());
    assert!(canopy_branches(&env).is_empty());

    // Forced, a branch whose commits are found nowhere else is kept, and says why.
    env.ok(&["new", "forced", "--agent", "sh"]);
    let wt = env.worktree("forced");
    let id = commit(&env, &wt, "f.txt", "only here");
    refused(&env, "forced", "commit not in main: ");
    env.ok(&["rm", "--force", "forced"]);
    assert!(!wt.exists(), "the worktree is removed");
    assert!(env.sessions().is_empty(), "the session is removed");
    assert_eq!(canopy_branches(&env), vec!["canopy/forced"]);
    assert_eq!(
        env.git(&env.repo, &["rev-parse", "canopy/forced"]).trim(),
        id
    );
    let log = std::fs::read_to_string(env.paths.log_file()).expect("host log");
    assert!(
        log.contains("kept the branch: its commits are found nowhere else"),
        "{log}"
    );
    // The kept branch holds the name until the user deletes it.
    let err = env.fails(&["new", "forced", "--agent", "sh"]);
    assert!(err.contains("branch canopy/forced already exists"), "{err}");
}

#[test]
fn commits_not_pushed_to_the_upstream_are_refused_until_pushed() {
    let env = TestEnv::new();
    let remote = env.dir.path().join("remote.git");
    env.git(
        env.dir.path(),
        &["init", "-q", "--bare", remote.to_str().expect("utf8")],
    );
    env.git(
        &env.repo,
        &["remote", "add", "origin", remote.to_str().expect("utf8")],
    );
    env.git(&env.repo, &["push", "-q", "origin", "main"]);

    env.ok(&["new", "pushed", "--agent", "sh"]);
    let wt = env.worktree("pushed");
    commit(&env, &wt, "one.txt", "pushed work");
    env.git(&wt, &["push", "-q", "-u", "origin", "canopy/pushed"]);
    let id = commit(&env, &wt, "two.txt", "not pushed yet");
    let err = refused(
        &env,
        "pushed",
        "commit not in main nor pushed to origin/canopy/pushed: ",
    );
    assert!(
        err.contains(&format!("{} not pushed yet", &id[..8])),
        "{err}"
    );
    assert!(
        !err.contains("pushed work"),
        "the pushed commit is safe: {err}"
    );

    env.git(&wt, &["push", "-q"]);
    env.ok(&["rm", "pushed"]);
    assert!(!wt.exists());
    assert!(
        canopy_branches(&env).is_empty(),
        "the remote keeps the work"
    );
    assert_eq!(
        env.git(&remote, &["rev-parse", "canopy/pushed"]).trim(),
        id,
        "the remote branch is not touched"
    );
}

#[test]
fn commits_on_a_detached_head_are_refused_and_kept_on_a_branch_when_forced() {
    let env = TestEnv::new();
    env.ok(&["new", "detached", "--agent", "sh"]);
    let wt = env.worktree("detached");
    env.git(&wt, &["checkout", "-q", "--detach"]);
    let id = commit(&env, &wt, "d.txt", "on a detached head");
    refused(
        &env,
        "detached",
        &format!("{} on a detached head", &id[..8]),
    );

    env.ok(&["rm", "--force", "detached"]);
    assert!(!wt.exists());
    let kept = format!("canopy/detached-detached-{}", &id[..8]);
    assert_eq!(
        canopy_branches(&env),
        vec![kept.clone()],
        "the session's own branch had nothing of its own; the detached commits got one"
    );
    assert_eq!(env.git(&env.repo, &["rev-parse", &kept]).trim(), id);
}

#[test]
fn a_worktree_moved_with_git_is_followed() {
    let env = TestEnv::new();
    env.ok(&["new", "moved", "--agent", "sh"]);
    let wt = env.worktree("moved");
    let to = env.dir.path().join("elsewhere");
    env.git(
        &env.repo,
        &[
            "worktree",
            "move",
            wt.to_str().expect("utf8"),
            to.to_str().expect("utf8"),
        ],
    );
    // Its work is checked where git says it is now.
    std::fs::write(to.join("notes.txt"), "x\n").expect("write");
    refused(&env, "moved", "untracked file: notes.txt");
    std::fs::remove_file(to.join("notes.txt")).expect("rm");
    env.ok(&["rm", "moved"]);
    assert!(!to.exists(), "removed where git moved it");
    assert!(!wt.exists());
    assert!(canopy_branches(&env).is_empty());
    assert_eq!(
        env.git(&env.repo, &["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1,
        "only the main worktree is left"
    );
}

#[test]
fn a_worktree_moved_with_plain_mv_is_refused_and_never_deleted() {
    let env = TestEnv::new();
    env.ok(&["new", "mv", "--agent", "sh"]);
    let wt = env.worktree("mv");
    let to = env.dir.path().join("by-hand");
    std::fs::rename(&wt, &to).expect("mv");
    std::fs::write(to.join("work.txt"), "precious\n").expect("write");
    refused(&env, "mv", "worktree missing: ");
    refused(&env, "mv", "git worktree repair");

    // After `git worktree repair`, rm finds it in its new place and checks it there.
    env.git(&to, &["worktree", "repair"]);
    refused(&env, "mv", "untracked file: work.txt");

    // Moved by hand again and forced: the session is forgotten; the directory the
    // user moved is not touched.
    let again = env.dir.path().join("by-hand-2");
    std::fs::rename(&to, &again).expect("mv");
    env.ok(&["rm", "--force", "mv"]);
    assert!(env.sessions().is_empty());
    assert_eq!(
        std::fs::read_to_string(again.join("work.txt")).expect("kept"),
        "precious\n"
    );
}

#[test]
fn a_worktree_deleted_by_hand_is_refused_then_forgotten_when_forced() {
    let env = TestEnv::new();
    env.ok(&["new", "gone", "--agent", "sh"]);
    env.ok(&["new", "gone-work", "--agent", "sh"]);
    let wt = env.worktree("gone");
    std::fs::remove_dir_all(&wt).expect("rm -r");
    refused(&env, "gone", "worktree missing: ");
    env.ok(&["rm", "--force", "gone"]);
    assert!(
        !canopy_branches(&env).contains(&"canopy/gone".to_owned()),
        "nothing of its own: the branch goes"
    );

    // Deleted by hand with commits of its own: forced rm keeps the branch.
    let wt = env.worktree("gone-work");
    let id = commit(&env, &wt, "w.txt", "survives");
    std::fs::remove_dir_all(&wt).expect("rm -r");
    refused(&env, "gone-work", "commit not in main: ");
    env.ok(&["rm", "--force", "gone-work"]);
    assert_eq!(canopy_branches(&env), vec!["canopy/gone-work"]);
    assert_eq!(
        env.git(&env.repo, &["rev-parse", "canopy/gone-work"])
            .trim(),
        id
    );
    assert!(env.sessions().is_empty());
}

#[test]
fn something_else_at_the_worktree_path_is_never_deleted() {
    let env = TestEnv::new();
    // A plain directory in its place.
    env.ok(&["new", "replaced", "--agent", "sh"]);
    let wt = env.worktree("replaced");
    std::fs::remove_dir_all(&wt).expect("rm -r");
    std::fs::create_dir(&wt).expect("mkdir");
    std::fs::write(wt.join("mine.txt"), "not canopy's\n").expect("write");
    refused(&env, "replaced", "is no longer this session's worktree");
    env.ok(&["rm", "--force", "replaced"]);
    assert_eq!(
        std::fs::read_to_string(wt.join("mine.txt")).expect("kept"),
        "not canopy's\n"
    );

    // A symlink in its place, to a directory outside: neither is followed nor deleted.
    env.ok(&["new", "linked", "--agent", "sh"]);
    let wt = env.worktree("linked");
    let outside = env.dir.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("keep.txt"), "x\n").expect("write");
    std::fs::remove_dir_all(&wt).expect("rm -r");
    std::os::unix::fs::symlink(&outside, &wt).expect("symlink");
    refused(&env, "linked", "is no longer this session's worktree");
    env.ok(&["rm", "--force", "linked"]);
    assert!(outside.join("keep.txt").exists());
    assert!(wt.symlink_metadata().is_ok(), "the symlink is left too");

    // Another session's worktree moved into its place is that session's, not this one's.
    env.ok(&["new", "a", "--agent", "sh"]);
    env.ok(&["new", "b", "--agent", "sh"]);
    let (a, b) = (env.worktree("a"), env.worktree("b"));
    std::fs::remove_dir_all(&a).expect("rm -r");
    std::fs::rename(&b, &a).expect("mv");
    refused(&env, "a", "is no longer this session's worktree");
    env.ok(&["rm", "--force", "a"]);
    assert!(a.join("README.md").exists(), "b's worktree is left alone");
    let left: Vec<_> = env.sessions().into_iter().map(|s| s.name).collect();
    assert_eq!(left, vec!["b"]);
}
