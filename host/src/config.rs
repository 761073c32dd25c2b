//! User configuration: `$XDG_CONFIG_HOME/canopy/config.toml`.
//!
//! Every field has a default, so a missing file is a valid (default) configuration. An
//! unreadable or malformed file is an error naming the file and the problem; Canopy
//! never guesses past a typo.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped fields.
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub attach: AttachConfig,
    pub sessions: SessionsConfig,
    /// Custom agents: `[agents.NAME]`.
    pub agents: std::collections::BTreeMap<String, crate::agents::custom::CustomAgent>,
    /// Prices to add or replace, `[prices."MODEL"]`, in dollars per million tokens.
    pub prices: std::collections::BTreeMap<String, crate::usage::Price>,
    /// Issue trackers for `canopy new --issue`: `[trackers.github]`, `[trackers.jira]`,
    /// `[trackers.youtrack]`.
    pub trackers: crate::tracker::TrackersConfig,
    /// Remote hosts whose sessions this host shows and steers: `[hosts.NAME]`.
    pub hosts: std::collections::BTreeMap<String, HostConfig>,
    /// Per repository (`[repos."PATH-OR-REMOTE-URL"]`): setup, teardown and dev server
    /// commands, trusted as the rest of this file (they replace the repository's own).
    pub repos: std::collections::BTreeMap<String, crate::env::RepoEnv>,
    /// Notifications: `[notify]`, `[notify.ntfy]`, `[notify.command]`.
    pub notify: crate::notify::NotifyConfig,
}

/// One remote host, reached by `ssh` (or any command that gives `canopy stdio`'s
/// stdin and stdout).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// What to give `ssh`: an alias of `~/.ssh/config`, `user@host`, …
    pub ssh: Option<String>,
    /// The `canopy` binary on the far side (a path when it is not on the login PATH).
    pub canopy: String,
    /// More options for `ssh`, before the destination.
    pub ssh_args: Vec<String>,
    /// Instead of `ssh`: a command whose stdin and stdout reach `canopy stdio` there
    /// (`["docker", "exec", "-i", "box", "canopy", "stdio"]`).
    pub command: Option<Vec<String>>,
    /// How long connecting, the handshake and each call may take.
    pub timeout_secs: f64,
    /// Silence after which the link sends a ping; three unanswered ones drop the link.
    pub heartbeat_secs: f64,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            ssh: None,
            canopy: "canopy".into(),
            ssh_args: Vec::new(),
            command: None,
            timeout_secs: 15.0,
            heartbeat_secs: 5.0,
        }
    }
}

impl HostConfig {
    pub fn timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.timeout_secs).unwrap_or(Duration::from_secs(15))
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::try_from_secs_f64(self.heartbeat_secs).unwrap_or(Duration::from_secs(5))
    }

    /// The command line that reaches the far `canopy stdio`. With ssh, the connection
    /// master lives at `control_path`, private to this host and this link.
    pub fn argv(&self, control_path: &Path) -> Vec<String> {
        if let Some(command) = &self.command {
            return command.clone();
        }
        let secs = self.timeout().as_secs().max(1);
        let mut argv: Vec<String> = vec!["ssh".into(), "-T".into()];
        for opt in [
            "BatchMode=yes".to_owned(),
            "ControlMaster=auto".to_owned(),
            format!("ControlPath={}", control_path.display()),
            "ControlPersist=60".to_owned(),
            format!("ConnectTimeout={secs}"),
            "ServerAliveInterval=5".to_owned(),
            "ServerAliveCountMax=3".to_owned(),
        ] {
            argv.push("-o".into());
            argv.push(opt);
        }
        argv.extend(self.ssh_args.iter().cloned());
        argv.push(self.ssh.clone().unwrap_or_default());
        argv.push("--".into());
        argv.push(self.canopy.clone());
        argv.push("stdio".into());
        argv
    }

    /// Exactly one transport, and something in it.
    fn check(&self, name: &str) -> Result<(), String> {
        if name == canopy_protocol::LOCAL_HOST || name.is_empty() || name.contains(':') {
            return Err(format!(
                "hosts.{name}: \"local\", empty names and names with ':' are reserved"
            ));
        }
        match (&self.ssh, &self.command) {
            (Some(ssh), None) if !ssh.trim().is_empty() => Ok(()),
            (None, Some(command)) if !command.is_empty() => Ok(()),
            (Some(_), Some(_)) => Err(format!("hosts.{name}: give ssh or command, not both")),
            _ => Err(format!(
                "hosts.{name}: give ssh = \"ALIAS\" or command = [\"...\"]"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachConfig {
    /// The key that detaches `canopy attach`, as `ctrl-<char>`.
    pub detach_key: DetachKey,
}

impl Default for AttachConfig {
    fn default() -> Self {
        Self {
            detach_key: DetachKey(0x1c),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// Where worktrees go: `<root>/<repo name>/<session>`. Unset: beside the repository,
    /// `<repo>.worktrees/<session>`.
    pub worktree_root: Option<PathBuf>,
    /// How long `stop` waits after SIGTERM before SIGKILL.
    pub stop_grace_secs: f64,
    /// Lines of scrollback kept per session.
    pub scrollback_lines: usize,
    /// How long an agent with hooks may run before a missing first hook counts as
    /// degraded integration.
    pub hook_grace_secs: f64,
    /// Ports per session (`CANOPY_PORT` is the first of them).
    pub port_block: u16,
    /// Where port blocks start.
    pub port_base: u16,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            worktree_root: None,
            stop_grace_secs: 5.0,
            scrollback_lines: 2000,
            hook_grace_secs: 30.0,
            port_block: 10,
            port_base: 20000,
        }
    }
}

impl SessionsConfig {
    /// The worktree root with a leading `~/` taken as `home`.
    pub fn worktree_root(&self, home: Option<&Path>) -> Option<PathBuf> {
        let root = self.worktree_root.as_ref()?;
        match (root.strip_prefix("~"), home) {
            (Ok(rest), Some(home)) => Some(home.join(rest)),
            _ => Some(root.clone()),
        }
    }

    pub fn stop_grace(&self) -> Duration {
        Duration::try_from_secs_f64(self.stop_grace_secs).unwrap_or(Duration::from_secs(5))
    }

    pub fn hook_grace(&self) -> Duration {
        Duration::try_from_secs_f64(self.hook_grace_secs).unwrap_or(Duration::from_secs(30))
    }
}

/// A control key, written `ctrl-\`, `ctrl-a`, `ctrl-]`; held as the byte it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetachKey(pub u8);

impl DetachKey {
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        let rest = lower
            .strip_prefix("ctrl-")
            .or_else(|| lower.strip_prefix("c-"))
            .or_else(|| lower.strip_prefix('^'))
            .ok_or_else(|| {
                format!("detach_key {text:?} must look like ctrl-<key>, e.g. \"ctrl-]\"")
            })?;
        let mut chars = rest.chars();
        match (chars.next(), chars.next()) {
            (Some(c @ ('a'..='z' | '@' | '[' | '\\' | ']' | '^' | '_')), None) => {
                Ok(DetachKey((c.to_ascii_uppercase() as u8) & 0x1f))
            }
            _ => Err(format!(
                "detach_key {text:?}: use ctrl- with a letter or one of @ [ \\ ] ^ _"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for DetachKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DetachKey::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Config {
    /// Load from `path`; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            // toml's message spans several lines with a source excerpt; keep it to one.
            message: one_line(&e),
        })?;
        for (name, host) in &config.hosts {
            host.check(name).map_err(|message| ConfigError::Parse {
                path: path.to_owned(),
                message,
            })?;
        }
        for (name, agent) in &config.agents {
            agent.cues.compile().map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: format!(
                    "agents.{name}.cues: {}",
                    e.lines().last().unwrap_or("bad pattern").trim()
                ),
            })?;
        }
        config
            .notify
            .check()
            .map_err(|message| ConfigError::Parse {
                path: path.to_owned(),
                message,
            })?;
        Ok(config)
    }
}

fn one_line(e: &toml::de::Error) -> String {
    let message = e.message().trim().to_owned();
    match e.span() {
        Some(span) => format!("{message} (at byte {})", span.start),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_defaults() {
        let c = Config::parse("", Path::new("c.toml")).expect("parses");
        assert_eq!(c, Config::default());
        assert_eq!(c.attach.detach_key, DetachKey(0x1c));
    }

    #[test]
    fn fields_are_read() {
        let c = Config::parse(
            "[attach]\ndetach_key = \"ctrl-a\"\n[sessions]\nworktree_root = \"/w\"\nstop_grace_secs = 0.5\n",
            Path::new("c.toml"),
        )
        .expect("parses");
        assert_eq!(c.attach.detach_key, DetachKey(1));
        assert_eq!(c.sessions.worktree_root(None), Some(PathBuf::from("/w")));
        assert_eq!(c.sessions.stop_grace(), Duration::from_millis(500));
    }

    #[test]
    fn unknown_fields_and_bad_keys_are_one_line_errors() {
        for bad in [
            "[attach]\ndetach = 1\n",
            "[attach]\ndetach_key = \"alt-x\"\n",
            "[sessions\n",
        ] {
            let err = Config::parse(bad, Path::new("/c/config.toml"))
                .expect_err(bad)
                .to_string();
            assert!(err.starts_with("invalid config /c/config.toml: "), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn custom_agents_are_read_and_their_patterns_checked() {
        let c = Config::parse(
            "[agents.aider]\ncommand = \"aider\"\nprompt_arg = \"--message\"\n[agents.aider.cues]\nbusy = [\"Waiting\"]\n",
            Path::new("c.toml"),
        )
        .expect("parses");
        assert_eq!(c.agents["aider"].command, "aider");
        let err = Config::parse(
            "[agents.x]\ncommand = \"x\"\n[agents.x.cues]\nbusy = [\"(\"]\n",
            Path::new("c.toml"),
        )
        .expect_err("bad regex")
        .to_string();
        assert!(err.contains("agents.x.cues"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn worktree_root_expands_home() {
        let c = Config::parse(
            "[sessions]\nworktree_root = \"~/wt\"\n",
            Path::new("c.toml"),
        )
        .expect("parses");
        assert_eq!(
            c.sessions.worktree_root(Some(Path::new("/home/u"))),
            Some(PathBuf::from("/home/u/wt"))
        );
        assert_eq!(
            Config::default()
                .sessions
                .worktree_root(Some(Path::new("/h"))),
            None
        );
    }

    #[test]
    fn hosts_are_read_and_checked() {
        let c = Config::parse(
            "[hosts.devbox]\nssh = \"dev\"\nssh_args = [\"-p\", \"2222\"]\n[hosts.box]\ncommand = [\"docker\", \"exec\", \"-i\", \"b\", \"canopy\", \"stdio\"]\n",
            Path::new("c.toml"),
        )
        .expect("parses");
        let argv = c.hosts["devbox"].argv(Path::new("/run/c/ssh/devbox"));
        assert_eq!(argv[..2], ["ssh", "-T"]);
        assert!(argv.contains(&"ControlPath=/run/c/ssh/devbox".to_owned()));
        assert_eq!(
            argv[argv.len() - 6..],
            ["-p", "2222", "dev", "--", "canopy", "stdio"]
        );
        assert_eq!(c.hosts["box"].argv(Path::new("/x"))[0], "docker");
        for bad in [
            "[hosts.local]\nssh = \"x\"\n",
            "[hosts.a]\n",
            "[hosts.a]\nssh = \"x\"\ncommand = [\"y\"]\n",
        ] {
            let err = Config::parse(bad, Path::new("c.toml"))
                .expect_err(bad)
                .to_string();
            assert!(err.contains("hosts."), "{err}");
        }
    }

    #[test]
    fn detach_key_forms() {
        assert_eq!(DetachKey::parse("ctrl-\\"), Ok(DetachKey(0x1c)));
        assert_eq!(DetachKey::parse("C-]"), Ok(DetachKey(0x1d)));
        assert_eq!(DetachKey::parse("^B"), Ok(DetachKey(2)));
        assert!(DetachKey::parse("ctrl-1").is_err());
    }
}
