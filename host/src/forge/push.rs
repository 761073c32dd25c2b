//! The remote a session's branch goes to, and the push itself with the system `git`
//! (not libgit2), so the user's credential helpers, SSH agent and `insteadOf` rules
//! apply exactly as they do to their own pushes.

use std::path::Path;
use std::process::{Command, Stdio};

use git2::Repository;

use super::ForgeError;

/// Where a session's branch is pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub name: String,
    /// As configured (before git applies `insteadOf`): what names the forge.
    pub url: String,
    /// The branch of the remote the base tracks (`branch.BASE.merge`), the natural
    /// target of the request.
    pub upstream_branch: Option<String>,
}

/// The remote of the base's upstream (`branch.BASE.remote`), else `origin`.
pub fn remote_for(repo: &Repository, base: &str, branch: &str) -> Result<Remote, ForgeError> {
    let config = repo.config().ok();
    let get = |key: String| config.as_ref().and_then(|c| c.get_string(&key).ok());
    let upstream = get(format!("branch.{base}.remote")).filter(|r| r != ".");
    let upstream_branch = upstream.as_ref().and_then(|_| {
        get(format!("branch.{base}.merge"))
            .map(|m| m.strip_prefix("refs/heads/").unwrap_or(&m).to_owned())
    });
    let name = upstream.unwrap_or_else(|| "origin".to_owned());
    // The configured URL, not git2's `Remote::url`, which has `insteadOf` applied.
    let url = get(format!("remote.{name}.url"))
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ForgeError::NoRemote {
            branch: branch.to_owned(),
            why: format!("the repository has no remote {name:?}"),
        })?;
    Ok(Remote {
        name,
        url,
        upstream_branch,
    })
}

/// `git push REMOTE refs/heads/BRANCH:refs/heads/BRANCH` in `dir`. Never forced: a
/// remote branch with commits the session lacks is git's refusal, shown as git says it.
pub fn push(dir: &Path, remote: &str, branch: &str) -> Result<(), ForgeError> {
    let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["push", "--porcelain", remote, &refspec])
        // Git's messages are matched below; keep them in English.
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(ForgeError::NoGit)?;
    if out.status.success() {
        return Ok(());
    }
    Err(ForgeError::Push {
        remote: remote.to_owned(),
        reason: reason(
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
        ),
    })
}

/// Git's reason on one line: the rejected ref's `[rejected] (why)` from the porcelain
/// output, else its `error:`/`fatal:`/`remote:` lines, else the status.
fn reason(stdout: &str, stderr: &str) -> String {
    // Porcelain: `!\tSRC:DST\t[rejected] (fetch first)`.
    let rejected: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with('!'))
        .filter_map(|l| l.split('\t').nth(2))
        .collect();
    if !rejected.is_empty() {
        return rejected.join("; ");
    }
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| {
            ["error:", "fatal:", "remote:"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    if said.is_empty() {
        stderr
            .trim()
            .lines()
            .last()
            .unwrap_or("git failed")
            .to_owned()
    } else {
        said.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_reasons_on_one_line() {
        let porcelain = "To /tmp/r.git\n!\trefs/heads/canopy/x:refs/heads/canopy/x\t[rejected] (fetch first)\nDone\n";
        assert_eq!(
            reason(porcelain, "error: failed to push some refs\nhint: …\n"),
            "[rejected] (fetch first)"
        );
        assert_eq!(
            reason(
                "",
                "fatal: 'origin' does not appear to be a git repository\nfatal: Could not read from remote repository.\n"
            ),
            "fatal: 'origin' does not appear to be a git repository fatal: Could not read from remote repository."
        );
        assert_eq!(reason("", ""), "git failed");
    }
}
