//! Issue references as users type them.
//!
//! | form | meaning |
//! |---|---|
//! | `https://github.com/o/r/issues/1`, `…/pull/1`, the same on any other host | GitHub or GitHub Enterprise |
//! | `https://x.atlassian.net/browse/KEY-1`, `https://host[/ctx]/browse/KEY-1`, `…?selectedIssue=KEY-1` | Jira Cloud or Data Center |
//! | `https://x.youtrack.cloud/issue/PRJ-5[/slug]` | YouTrack |
//! | `https://gitlab.example.com/group/sub/project/-/issues/42` | GitLab (any host: the `/-/` marks it) |
//! | `https://linear.app/TEAM/issue/ENG-123[/slug]` | Linear |
//! | `owner/repo#12`, `#12` | GitHub, or GitLab when `origin` is on GitLab (`#12`: the repository of `origin`) |
//! | `group/sub/project#12` | GitLab: `origin`'s when it is on GitLab, else gitlab.com (GitHub has no nested paths) |
//! | `KEY-12` | Jira, YouTrack or Linear, through the configured trackers |

use super::TrackerError;

/// A parsed reference; URLs keep their scheme, host and path prefix as the base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueRef {
    GitHub {
        /// The web host, lowercased (`github.com`, `ghe.example.com`).
        host: String,
        owner: String,
        repo: String,
        number: u64,
    },
    /// `owner/repo#N` or `group/sub/project#N`: the host comes from `origin` when it is
    /// on GitLab; otherwise GitHub (two segments) or gitlab.com (more).
    Short {
        path: String,
        number: u64,
    },
    /// `#N`: the repository (and its tracker) comes from the `origin` remote.
    Here {
        number: u64,
    },
    GitLab {
        /// The web host, lowercased, with its port.
        host: String,
        /// `group/sub/project`, as typed (GitLab paths are case-insensitive).
        project: String,
        iid: u64,
    },
    /// Linear's API is one endpoint for every workspace, so the URL gives only the key.
    Linear {
        key: String,
    },
    Jira {
        base: String,
        key: String,
    },
    YouTrack {
        base: String,
        key: String,
    },
    /// A bare `KEY-12`.
    Key(String),
}

/// The web host of gitlab.com, the default GitLab instance.
pub const GITLAB_COM: &str = "gitlab.com";
/// The web host of Linear.
pub const LINEAR_APP: &str = "linear.app";

impl IssueRef {
    pub fn parse(text: &str) -> Result<IssueRef, TrackerError> {
        let text = text.trim();
        let bad = |why: &str| TrackerError::BadRef {
            reference: text.to_owned(),
            why: why.to_owned(),
        };
        if let Some(rest) = text
            .strip_prefix("https://")
            .map(|r| ("https", r))
            .or_else(|| text.strip_prefix("http://").map(|r| ("http", r)))
        {
            return parse_url(rest.0, rest.1).ok_or_else(|| {
                bad("not a GitHub issue or pull request, GitLab /-/issues/N, Jira /browse/KEY-1, YouTrack or Linear /issue/KEY-1 URL")
            });
        }
        if let Some(n) = text.strip_prefix('#') {
            return number(n)
                .map(|number| IssueRef::Here { number })
                .ok_or_else(|| bad("#N takes a positive issue number"));
        }
        if let Some((path, n)) = text.split_once('#') {
            let expected = || bad("expected owner/repo#N or group/project#N");
            let number = number(n).ok_or_else(expected)?;
            let segments: Vec<&str> = path.split('/').collect();
            if segments.len() < 2 || !segments.iter().all(|s| is_gh_name(s)) {
                return Err(expected());
            }
            return Ok(IssueRef::Short {
                path: path.to_owned(),
                number,
            });
        }
        let key = text.to_ascii_uppercase();
        if is_key(&key) {
            return Ok(IssueRef::Key(key));
        }
        Err(bad("use a tracker URL, owner/repo#N, #N or KEY-12"))
    }
}

fn parse_url(scheme: &str, rest: &str) -> Option<IssueRef> {
    let (authority, path_query) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    // Credentials in a URL would be sent nowhere by us, but refuse them rather than
    // carry them into a base URL or a message.
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let host = authority.to_ascii_lowercase();
    let path_query = path_query.split('#').next().unwrap_or("");
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let path = path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let base_before = |marker: usize| {
        let prefix = segments[..marker].join("/");
        if prefix.is_empty() {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}/{prefix}")
        }
    };
    // GitLab puts `/-/` between a project's path and its pages, on every host.
    if let Some(dash) = segments.iter().position(|s| *s == "-") {
        return match &segments[dash + 1..] {
            ["issues", n, ..] if dash >= 2 && segments[..dash].iter().all(|s| is_gh_name(s)) => {
                Some(IssueRef::GitLab {
                    host,
                    project: segments[..dash].join("/"),
                    iid: number(n)?,
                })
            }
            _ => None,
        };
    }
    if host == LINEAR_APP {
        return match segments.as_slice() {
            [_workspace, "issue", key, ..] if is_key(key) => Some(IssueRef::Linear {
                key: (*key).to_owned(),
            }),
            _ => None,
        };
    }
    // Jira Software boards: …/jira/software/projects/KEY/boards/N?selectedIssue=KEY-12
    if let Some(key) = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("selectedIssue="))
        .filter(|k| is_key(k))
    {
        let at = segments.iter().position(|s| *s == "jira")?;
        return Some(IssueRef::Jira {
            base: base_before(at),
            key: key.to_owned(),
        });
    }
    for (i, segment) in segments.iter().enumerate() {
        let next = segments.get(i + 1).copied().filter(|k| is_key(k));
        match (*segment, next) {
            ("browse", Some(key)) if i + 2 == segments.len() => {
                return Some(IssueRef::Jira {
                    base: base_before(i),
                    key: key.to_owned(),
                });
            }
            // YouTrack appends a slug of the summary: /issue/PRJ-5/crash-on-start.
            ("issue", Some(key)) if i + 3 >= segments.len() => {
                return Some(IssueRef::YouTrack {
                    base: base_before(i),
                    key: key.to_owned(),
                });
            }
            _ => {}
        }
    }
    match segments.as_slice() {
        [owner, repo, "issues" | "pull", n, ..] if is_gh_name(owner) && is_gh_name(repo) => {
            Some(IssueRef::GitHub {
                host: host.strip_prefix("www.").unwrap_or(&host).to_owned(),
                owner: (*owner).to_owned(),
                repo: (*repo).to_owned(),
                number: number(n)?,
            })
        }
        _ => None,
    }
}

fn number(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().filter(|n| *n > 0)
}

/// GitHub owner and repository names: letters, digits, `-`, `_`, `.` (so they are safe
/// in a URL path as they are).
pub fn is_gh_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `[A-Z][A-Z0-9_]+-\d+`: a Jira or YouTrack issue key.
pub fn is_key(s: &str) -> bool {
    let Some((project, n)) = s.rsplit_once('-') else {
        return false;
    };
    let mut chars = project.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && project.len() >= 2
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !n.is_empty()
        && n.chars().all(|c| c.is_ascii_digit())
}

/// The project part of a key: `PROJ` of `PROJ-12`.
pub fn project(key: &str) -> &str {
    key.rsplit_once('-').map_or(key, |(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gh(host: &str, owner: &str, repo: &str, number: u64) -> IssueRef {
        IssueRef::GitHub {
            host: host.into(),
            owner: owner.into(),
            repo: repo.into(),
            number,
        }
    }

    fn gl(host: &str, project: &str, iid: u64) -> IssueRef {
        IssueRef::GitLab {
            host: host.into(),
            project: project.into(),
            iid,
        }
    }

    #[test]
    fn forms() {
        let cases = [
            (
                "https://github.com/octocat/Hello-World/issues/1347",
                gh("github.com", "octocat", "Hello-World", 1347),
            ),
            (
                "https://www.github.com/o/r/pull/7/files",
                gh("github.com", "o", "r", 7),
            ),
            (
                "https://GHE.example.com/o/r.js/issues/3#issuecomment-1",
                gh("ghe.example.com", "o", "r.js", 3),
            ),
            (
                "octocat/Hello-World#12",
                IssueRef::Short {
                    path: "octocat/Hello-World".into(),
                    number: 12,
                },
            ),
            ("#5", IssueRef::Here { number: 5 }),
            (
                "https://gitlab.example.com/group/sub/project/-/issues/42",
                gl("gitlab.example.com", "group/sub/project", 42),
            ),
            (
                "https://gitlab.com/g/p/-/issues/7#note_1",
                gl("gitlab.com", "g/p", 7),
            ),
            (
                "a/b/c#3",
                IssueRef::Short {
                    path: "a/b/c".into(),
                    number: 3,
                },
            ),
            (
                "https://linear.app/acme/issue/ENG-123/fix-login",
                IssueRef::Linear {
                    key: "ENG-123".into(),
                },
            ),
            (
                "https://acme.atlassian.net/browse/PROJ-123",
                IssueRef::Jira {
                    base: "https://acme.atlassian.net".into(),
                    key: "PROJ-123".into(),
                },
            ),
            (
                "https://jira.corp.example/ctx/browse/OPS_2-9/",
                IssueRef::Jira {
                    base: "https://jira.corp.example/ctx".into(),
                    key: "OPS_2-9".into(),
                },
            ),
            (
                "https://acme.atlassian.net/jira/software/projects/KEY/boards/1?selectedIssue=KEY-12",
                IssueRef::Jira {
                    base: "https://acme.atlassian.net".into(),
                    key: "KEY-12".into(),
                },
            ),
            (
                "https://x.youtrack.cloud/issue/PRJ-5/crash-on-start",
                IssueRef::YouTrack {
                    base: "https://x.youtrack.cloud".into(),
                    key: "PRJ-5".into(),
                },
            ),
            (
                "http://127.0.0.1:8080/youtrack/issue/PRJ-5",
                IssueRef::YouTrack {
                    base: "http://127.0.0.1:8080/youtrack".into(),
                    key: "PRJ-5".into(),
                },
            ),
            ("KEY-12", IssueRef::Key("KEY-12".into())),
            (" proj-7 ", IssueRef::Key("PROJ-7".into())),
        ];
        for (text, want) in cases {
            assert_eq!(IssueRef::parse(text).expect(text), want, "{text}");
        }
    }

    #[test]
    fn rejects() {
        for text in [
            "",
            "#0",
            "#x",
            "o/r#",
            "o/#3",
            "a//c#3",
            "https://gitlab.com/g/p/-/merge_requests/1",
            "https://gitlab.com/p/-/issues/1",
            "https://linear.app/acme/issue/eng",
            "../r#3",
            "K-1",
            "1ABC-2",
            "KEY-",
            "https://github.com/o/r/issues/0",
            "https://github.com/o/r/wiki",
            "https://user:pw@acme.atlassian.net/browse/KEY-1",
            "https://x.youtrack.cloud/issues",
            "ftp://github.com/o/r/issues/1",
        ] {
            let err = IssueRef::parse(text).expect_err(text).to_string();
            assert!(err.starts_with("cannot read issue reference"), "{err}");
        }
    }

    #[test]
    fn keys() {
        assert!(is_key("AB-1") && is_key("A_1-22"));
        assert!(!is_key("A-1") && !is_key("ab-1") && !is_key("AB-1x") && !is_key("AB1"));
        assert_eq!(project("PROJ-12"), "PROJ");
    }
}
