//! `canopy pr` end to end: a real bare remote for the push (the remote's GitHub or
//! GitLab URL is mapped onto it with git's own `url.<base>.insteadOf`, so the provider is
//! read from the URL as for a real remote) and a loopback server answering the GitHub
//! and GitLab endpoints used, with their documented JSON shapes:
//! - GitHub, docs.github.com/en/rest/pulls/pulls: "List pull requests" (`Link`
//!   pagination), "Create a pull request" (201), "Get a pull request"; error bodies
//!   `{"message", "errors", "documentation_url", "status"}` from
//!   docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api.
//! - GitLab, docs.gitlab.com/api/merge_requests: "List project merge requests"
//!   (`X-Next-Page` pagination), "Create MR" (201), "Get single MR"; error bodies
//!   `{"message": …}` and `{"error": …}` from docs.gitlab.com/api/rest/troubleshooting.

use std::path::{Path, PathBuf};

use canopy_tests::TestEnv;
use canopy_tests::http_mock::{Mock, reply};

const GH_TOKEN: &str = "ghp_SECRETprTOKEN000000000000000000";
const GITLAB_TOKEN: &str = "glpat-SECRETmrTOKEN1111111111";

/// A bare repository in the test's directory that `url` (as the remote says it) pushes
/// to; `origin` of the main checkout is `url`.
fn bare_remote(env: &TestEnv, url: &str) -> PathBuf {
    let bare = env.dir.path().join("remote.git");
    env.git(env.dir.path(), &["init", "-q", "--bare", "remote.git"]);
    env.git(&env.repo, &["remote", "add", "origin", url]);
    let rule = format!("url.{}.insteadOf", bare.display());
    env.git(&env.repo, &["config", &rule, url]);
    bare
}

fn commit(env: &TestEnv, dir: &Path, file: &str, message: &str) {
    std::fs::write(dir.join(file), format!("{message}\n")).expect("write");
    env.git(dir, &["add", file]);
    env.git(dir, &["commit", "-qm", message]);
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A pull request as GitHub returns it (the fields Canopy reads among the usual ones).
fn github_pull(number: u64, branch: &str, state: &str, merged: bool) -> String {
    let merged_at = if merged {
        "\"2026-01-02T03:04:05Z\""
    } else {
        "null"
    };
    format!(
        r#"{{"url":"{{base}}/repos/acme/widgets/pulls/{number}","id":10{number},"number":{number},"state":"{state}","locked":false,"title":"t","user":{{"login":"me","type":"User"}},"body":null,"draft":false,"merged_at":{merged_at},"html_url":"https://github.com/acme/widgets/pull/{number}","head":{{"label":"acme:{branch}","ref":"{branch}","sha":"0000000000000000000000000000000000000000"}},"base":{{"label":"acme:main","ref":"main","sha":"1111111111111111111111111111111111111111"}}}}"#
    )
}

fn assert_no_secret(text: &str) {
    for secret in [GH_TOKEN, GITLAB_TOKEN] {
        assert!(!text.contains(secret), "a token leaked: {text}");
    }
}

/// `canopy ARGS` fails with one line that starts with `start` and says `want`, then a
/// hint that says `hint`, and no token anywhere.
fn refused(env: &TestEnv, args: &[&str], start: &str, want: &str, hint: &str) {
    let err = env.fails(args);
    let first = err.lines().next().unwrap_or_default();
    assert!(first.starts_with(start), "{err}");
    assert!(first.contains(want), "{want}: {err}");
    let hint_line = err
        .lines()
        .find(|l| l.starts_with("hint: "))
        .unwrap_or_default();
    assert!(hint_line.contains(hint), "{hint}: {err}");
    assert_no_secret(&err);
}

/// GitHub's API at `mock`, with a token.
fn github_env(mock: &Mock) -> TestEnv {
    let mut env = TestEnv::new();
    env.write_config(&format!(
        "[trackers.github]\nbase_url = \"{}\"\n",
        mock.base
    ));
    env.set_var("GH_TOKEN", GH_TOKEN);
    env
}

#[test]
fn github_pull_request_pushed_created_shown_reused_and_refreshed() {
    let mock = Mock::start();
    let env = github_env(&mock);
    let bare = bare_remote(&env, "https://github.com/acme/widgets.git");
    mock.route(
        "/repos/acme/widgets/issues/42",
        &[],
        vec![reply(
            200,
            r#"{"number":42,"state":"open","title":"Widgets wobble","body":"b","html_url":"https://github.com/acme/widgets/issues/42","user":{"login":"o","type":"User"},"labels":[],"comments":0}"#,
        )],
    );
    env.ok(&["new", "feat", "--issue", "acme/widgets#42"]);
    commit(&env, &env.worktree("feat"), "feat.txt", "Add the feature");

    // The list has two pages (the other branch's request on the first); none is ours.
    mock.route(
        "/repos/acme/widgets/pulls",
        &["page=2"],
        vec![reply(200, "[]")],
    );
    mock.route(
        "/repos/acme/widgets/pulls",
        &["head=acme%3Acanopy%2Ffeat", "state=open"],
        vec![
            reply(200, format!("[{}]", github_pull(3, "other", "open", false))).header(
                "Link",
                "<{base}/repos/acme/widgets/pulls?head=acme%3Acanopy%2Ffeat&state=open&page=2>; rel=\"next\"",
            ),
        ],
    );
    mock.route(
        "/repos/acme/widgets/pulls",
        &["\"head\":\"canopy/feat\""],
        vec![reply(201, github_pull(7, "canopy/feat", "open", false))],
    );
    std::fs::write(env.worktree("feat").join("scratch.txt"), "x\n").expect("write");
    let run = env.run(&["pr", "feat", "--draft"]);
    let (out, err) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(run.status.success(), "{err}");
    assert_eq!(
        out,
        "feat: pushed to origin; opened pull request #7 https://github.com/acme/widgets/pull/7\n"
    );
    assert_eq!(
        err,
        "warning: feat has 1 uncommitted files that the push leaves out\n"
    );
    std::fs::remove_file(env.worktree("feat").join("scratch.txt")).expect("rm");
    // The branch is on the remote, at the session's tip.
    assert_eq!(
        env.git(&bare, &["rev-parse", "refs/heads/canopy/feat"]),
        env.git(&env.repo, &["rev-parse", "refs/heads/canopy/feat"])
    );
    let requests = mock.requests("/repos/acme/widgets/pulls");
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests[1].query.contains("page=2"), "{requests:?}");
    let post = &requests[2];
    assert_eq!(post.method, "POST");
    assert_eq!(
        post.header("authorization"),
        Some(format!("Bearer {GH_TOKEN}").as_str())
    );
    let body = json(&post.body);
    assert_eq!(body["head"], "canopy/feat");
    assert_eq!(body["base"], "main");
    assert_eq!(body["title"], "Widgets wobble");
    assert_eq!(body["draft"], true);
    let text = body["body"].as_str().unwrap_or_default();
    assert!(text.starts_with("Closes #42\n\n---\nMade by "), "{text}");
    assert!(text.contains("in Canopy session `feat`"), "{text}");

    // Kept in the record: ls, inspect, JSON.
    let s = env.session("feat");
    assert_eq!(
        serde_json::to_value(&s.pr).expect("json"),
        serde_json::json!({"provider": "github", "number": 7, "url": "https://github.com/acme/widgets/pull/7", "state": "open"})
    );
    let ls = env.ok(&["ls"]);
    assert!(ls.lines().next().unwrap_or("").contains(" PR "), "{ls}");
    assert!(ls.contains(" #7 "), "{ls}");
    let inspect = env.ok(&["inspect", "feat"]);
    assert!(
        inspect.contains("pr:       #7 https://github.com/acme/widgets/pull/7\n"),
        "{inspect}"
    );

    // Run again once it is merged: read back by number, not pushed, recorded.
    mock.route(
        "/repos/acme/widgets/pulls/7",
        &[],
        vec![reply(200, github_pull(7, "canopy/feat", "closed", true))],
    );
    commit(&env, &env.worktree("feat"), "late.txt", "Late work");
    let out = env.ok(&["pr", "feat"]);
    assert_eq!(
        out,
        "feat: pull request #7 is merged: https://github.com/acme/widgets/pull/7\n"
    );
    assert_ne!(
        env.git(&bare, &["rev-parse", "refs/heads/canopy/feat"]),
        env.git(&env.repo, &["rev-parse", "refs/heads/canopy/feat"])
    );
    assert_eq!(
        env.session("feat").pr.map(|p| p.state).as_deref(),
        Some("merged")
    );
    assert!(env.ok(&["ls"]).contains(" #7 merged"));

    // Another session whose branch already has an open request: reused, not created.
    env.ok(&["new", "again"]);
    commit(&env, &env.worktree("again"), "again.txt", "Again");
    mock.route(
        "/repos/acme/widgets/pulls",
        &["head=acme%3Acanopy%2Fagain"],
        vec![reply(
            200,
            format!("[{}]", github_pull(9, "canopy/again", "open", false)),
        )],
    );
    let out = env.ok(&["pr", "again"]);
    assert_eq!(
        out,
        "again: pushed to origin; already open: pull request #9 https://github.com/acme/widgets/pull/9\n"
    );
    let posts = mock
        .requests("/repos/acme/widgets/pulls")
        .into_iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1);
    let log = std::fs::read_to_string(env.paths.log_file()).unwrap_or_default();
    assert_no_secret(&log);
}

#[test]
fn gitlab_merge_request_on_a_self_hosted_instance_with_paged_lists_and_errors() {
    let mock = Mock::start();
    let mut env = TestEnv::new();
    env.write_config(&format!(
        "[trackers.gitlab.hosts]\n\"git.acme.test\" = \"{}\"\n",
        mock.base
    ));
    env.set_var("GITLAB_TOKEN", GITLAB_TOKEN);
    let bare = bare_remote(&env, "https://git.acme.test/group/sub/proj.git");
    env.ok(&["new", "mr"]);
    commit(&env, &env.worktree("mr"), "mr.txt", "Make the MR");

    let path = "/api/v4/projects/group%2Fsub%2Fproj/merge_requests";
    let other = r#"[{"id":1,"iid":3,"project_id":1,"title":"x","state":"opened","draft":false,"source_branch":"other","target_branch":"main","web_url":"https://git.acme.test/group/sub/proj/-/merge_requests/3"}]"#;
    mock.route(path, &["page=2"], vec![reply(200, "[]")]);
    mock.route(
        path,
        &["source_branch=canopy%2Fmr", "state=opened"],
        vec![reply(200, other).header("X-Next-Page", "2")],
    );
    mock.route(
        path,
        &["\"source_branch\":\"canopy/mr\""],
        vec![
            reply(401, r#"{"message":"401 Unauthorized"}"#),
            reply(
                403,
                r#"{"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token.","scope":"api"}"#,
            ),
            reply(
                422,
                r#"{"message":["Another open merge request already exists for this source branch: !4"]}"#,
            ),
            reply(
                201,
                r#"{"id":12,"iid":5,"project_id":1,"title":"Draft: Make the MR","description":"d","state":"opened","draft":true,"source_branch":"canopy/mr","target_branch":"main","web_url":"https://git.acme.test/group/sub/proj/-/merge_requests/5"}"#,
            ),
        ],
    );
    let fails = |want: &str, hint: &str| {
        refused(
            &env,
            &["pr", "mr", "--draft"],
            "error: gitlab merge request group/sub/proj: ",
            want,
            hint,
        );
    };
    fails(
        "rejected the credentials (HTTP 401): 401 Unauthorized",
        "a token with the api scope",
    );
    fails(
        "(HTTP 403): The request requires higher privileges than provided by the access token.",
        "a token with the api scope",
    );
    fails("HTTP 422 from 127.0.0.1", "fix what it names");
    let out = env.ok(&["pr", "mr", "--draft"]);
    assert_eq!(
        out,
        "mr: pushed to origin; opened merge request !5 draft https://git.acme.test/group/sub/proj/-/merge_requests/5\n"
    );
    let posts: Vec<_> = mock
        .requests(path)
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    let body = json(&posts[posts.len() - 1].body);
    assert_eq!(body["title"], "Draft: Make the MR");
    assert_eq!(body["target_branch"], "main");
    assert!(
        body["description"]
            .as_str()
            .unwrap_or_default()
            .starts_with("---\nMade by "),
        "{body}"
    );
    assert_eq!(
        posts[0].header("authorization"),
        Some(format!("Bearer {GITLAB_TOKEN}").as_str())
    );
    assert_eq!(
        env.git(&bare, &["rev-parse", "refs/heads/canopy/mr"]),
        env.git(&env.repo, &["rev-parse", "refs/heads/canopy/mr"])
    );
    assert!(env.ok(&["ls"]).contains(" !5 draft"));
}

#[test]
fn no_remote_a_rejected_push_and_github_refusals_are_one_line_with_hints() {
    let mock = Mock::start();
    let mut env = github_env(&mock);
    env.ok(&["new", "x"]);
    commit(&env, &env.worktree("x"), "x.txt", "X");

    let err = env.fails(&["pr", "x"]);
    assert!(
        err.starts_with(
            "error: no remote to push canopy/x to: the repository has no remote \"origin\""
        ),
        "{err}"
    );
    assert!(err.contains("hint: add one"), "{err}");

    // The remote's branch has a commit the session lacks: git's refusal, verbatim.
    let bare = bare_remote(&env, "https://github.com/acme/widgets.git");
    env.git(
        &env.repo,
        &["push", "-q", "origin", "main:refs/heads/canopy/x"],
    );
    let elsewhere = env.dir.path().join("elsewhere");
    env.git(
        env.dir.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap_or_default(),
            "elsewhere",
        ],
    );
    env.git(&elsewhere, &["switch", "-q", "canopy/x"]);
    commit(&env, &elsewhere, "theirs.txt", "Theirs");
    env.git(&elsewhere, &["push", "-q", "origin", "canopy/x"]);
    let err = env.fails(&["pr", "x"]);
    assert!(
        err.starts_with("error: git push to origin failed: [rejected] (fetch first)"),
        "{err}"
    );
    assert!(err.contains("hint: the remote branch has commits"), "{err}");
    assert!(mock.all_requests().is_empty());
    env.git(
        &elsewhere,
        &["push", "-q", "origin", "--delete", "canopy/x"],
    );

    let list = "/repos/acme/widgets/pulls";
    mock.route(
        list,
        &["state=open"],
        vec![
            reply(401, r#"{"message":"Requires authentication","documentation_url":"https://docs.github.com/rest","status":"401"}"#),
            reply(401, r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest","status":"401"}"#),
            reply(403, r#"{"message":"Resource not accessible by personal access token","documentation_url":"https://docs.github.com/rest/pulls/pulls#list-pull-requests","status":"403"}"#),
            reply(404, r#"{"message":"Not Found","documentation_url":"https://docs.github.com/rest/pulls/pulls#list-pull-requests","status":"404"}"#),
            reply(200, "[]"),
        ],
    );
    mock.route(
        list,
        &["\"head\":\"canopy/x\""],
        vec![reply(
            422,
            r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"base","code":"invalid"}],"documentation_url":"https://docs.github.com/rest/pulls/pulls#create-a-pull-request","status":"422"}"#,
        )],
    );
    // No token at all (none set, no gh): the hint says none was sent, and why.
    env.set_var("GH_TOKEN", "");
    refused(
        &env,
        &["pr", "x"],
        "error: github pull request acme/widgets: ",
        "(HTTP 401): Requires authentication",
        "(no credentials were sent: no GitHub token was found for github.com)",
    );
    assert_eq!(mock.requests(list)[0].header("authorization"), None);
    env.set_var("GH_TOKEN", GH_TOKEN);
    for (want, hint) in [
        (
            "rejected the credentials (HTTP 401): Bad credentials",
            "a token that may write pull requests",
        ),
        (
            "(HTTP 403): Resource not accessible by personal access token",
            "a token that may write pull requests",
        ),
        (
            "(HTTP 404): Not Found",
            "check the remote's repository path",
        ),
        ("HTTP 422 from 127.0.0.1", "fix what it names"),
    ] {
        refused(
            &env,
            &["pr", "x", "--base", "nope"],
            "error: github pull request acme/widgets: ",
            want,
            hint,
        );
    }
    let err = env.fails(&["pr", "x", "--base", "nope"]);
    assert!(err.contains(": Validation Failed: base invalid"), "{err}");
    let posted = json(
        &mock
            .requests(list)
            .last()
            .map(|r| r.body.clone())
            .unwrap_or_default(),
    );
    assert_eq!(posted["base"], "nope");
    assert_eq!(env.session("x").pr, None);
}
