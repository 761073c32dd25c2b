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
    /// Notifications: `[notify]`, `[notify.ntfy]`, `[notify.command]`.
    pub notify: crate::notify::NotifyConfig,
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
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            worktree_root: None,
            stop_grace_secs: 5.0,
            scrollback_lines: 2000,
            hook_grace_secs: 30.0,
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
    fn detach_key_forms() {
        assert_eq!(DetachKey::parse("ctrl-\\"), Ok(DetachKey(0x1c)));
        assert_eq!(DetachKey::parse("C-]"), Ok(DetachKey(0x1d)));
        assert_eq!(DetachKey::parse("^B"), Ok(DetachKey(2)));
        assert!(DetachKey::parse("ctrl-1").is_err());
    }
}
