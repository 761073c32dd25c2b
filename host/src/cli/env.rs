//! `canopy trust`, `canopy env` and `canopy open`: a session's environment, seen from
//! the command line. Trust decisions are made here, by the user, and only read by the
//! host.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use canopy_protocol::Session;

use super::CliError;
use crate::env::{browser, settings, trust};
use crate::git;
use crate::paths::Paths;

/// Show the commands of the repository's `.canopy.toml` and approve (or withdraw
/// approval of) exactly this file.
pub fn trust(paths: &Paths, repo: Option<PathBuf>, revoke: bool) -> Result<(), CliError> {
    let dir = match repo {
        Some(r) => r,
        None => std::env::current_dir()?,
    };
    let root = git::main_checkout(&dir).map_err(|e| CliError::new(e.to_string()))?;
    let file = settings::repo_file(&root);
    let content = std::fs::read(&file).map_err(|e| {
        CliError::new(format!("cannot read {}: {e}", file.display()))
            .with_hint("trust approves a repository's .canopy.toml; this one has none")
    })?;
    let trust_dir = trust::dir(&paths.state_dir);
    if revoke {
        let had = trust::revoke(&trust_dir, &root, &content)?;
        println!(
            "{}: {}",
            file.display(),
            if had {
                "no longer trusted"
            } else {
                "was not trusted"
            }
        );
        return Ok(());
    }
    let env = settings::parse_repo_file(&String::from_utf8_lossy(&content), &file)
        .map_err(|e| CliError::new(e.to_string()))?;
    let commands = env.commands();
    if commands.is_empty() {
        println!("{} has no commands to run", file.display());
    } else {
        println!("{} runs, in every new session's worktree:", file.display());
        for c in &commands {
            println!("  {c}");
        }
    }
    trust::approve(&trust_dir, &root, &content)?;
    println!("trusted: any change to the file needs `canopy trust` again");
    Ok(())
}

/// The variables a session's processes get, as `export` lines for a shell.
pub fn print_env(session: &Session) {
    let mut vars = session.env.vars.clone();
    vars.entry("CANOPY_SESSION".into())
        .or_insert_with(|| session.name.clone());
    vars.entry("CANOPY_WORKTREE".into())
        .or_insert_with(|| session.worktree.clone());
    for (k, v) in vars {
        println!("export {k}={}", shell_words::quote(&v));
    }
}

/// Open `url` (default: the session's dev server) in a Chromium-family browser with the
/// session's own profile; the browser runs on its own.
pub fn open(session: &Session, url: Option<String>) -> Result<(), CliError> {
    let name = &session.name;
    let url = url.or_else(|| session.env.url.clone()).ok_or_else(|| {
        CliError::new(format!("{name} has no dev server URL")).with_hint(format!(
            "give one: `canopy open {name} http://localhost:PORT`"
        ))
    })?;
    let profile = session.env.browser_profile.as_deref().ok_or_else(|| {
        CliError::new(format!(
            "{name} has no browser profile (it was made before Canopy had them)"
        ))
    })?;
    let configured = std::env::var("CANOPY_BROWSER").ok();
    let line = browser::find(
        configured.as_deref(),
        std::env::var_os("PATH"),
        &std::env::current_dir()?,
    )
    .ok_or_else(|| {
        CliError::new("no Chromium-family browser found")
            .with_hint("install chromium, or set CANOPY_BROWSER to the browser's command")
    })?;
    let (program, args) = line
        .split_first()
        .ok_or_else(|| CliError::new("CANOPY_BROWSER is empty"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .args(browser::args(profile, &url))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Its own process group: a ^C in this terminal later does not close the browser.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn()
        .map_err(|e| CliError::new(format!("cannot start {program}: {e}")))?;
    println!("{name}: opened {url} in {program} (profile {profile})");
    Ok(())
}
