//! Setup and teardown commands: each runs with `sh -c` in the worktree, with the
//! session's environment, its output appended to the session's setup log (what
//! `canopy capture` shows until the agent runs).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::SETUP_LOG;

/// The setup log of the session whose private directory is `session_dir`.
pub fn log_path(session_dir: &Path) -> PathBuf {
    session_dir.join(SETUP_LOG)
}

/// Append lines to the setup log (best effort: the log is for people).
pub fn log(session_dir: &Path, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(session_dir))
    {
        for line in lines {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Run one command to its end. `Err` says how it ended: `exited N`, `killed by signal
/// N`, or why it could not start.
pub fn run(
    step: &str,
    cwd: &Path,
    env: &BTreeMap<String, String>,
    session_dir: &Path,
) -> Result<(), String> {
    log(session_dir, &[format!("$ {step}")]);
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(session_dir))
        .map_err(|e| format!("cannot write its log: {e}"))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot write its log: {e}"))?;
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(step)
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| format!("could not start: {e}"))?;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(format!("exited {code}")),
        (None, Some(signal)) => Err(format!("killed by signal {signal}")),
        (None, None) => Err("ended".into()),
    }
}

/// The last `n` lines of the setup log, for `explain`.
pub fn tail(session_dir: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(log_path(session_dir)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_goes_to_the_log_and_failures_say_how() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env = BTreeMap::new();
        env.insert("CANOPY_PORT".to_owned(), "20000".to_owned());
        assert_eq!(
            run("echo port=$CANOPY_PORT", dir.path(), &env, dir.path()),
            Ok(())
        );
        assert_eq!(
            run("echo oops >&2; exit 3", dir.path(), &env, dir.path()),
            Err("exited 3".into())
        );
        assert_eq!(
            tail(dir.path(), 10),
            [
                "$ echo port=$CANOPY_PORT",
                "port=20000",
                "$ echo oops >&2; exit 3",
                "oops"
            ]
        );
    }
}
