//! `[notify]` in `config.toml`: what notifies, how often, and where it goes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a session notifies: a state it entered, or the end of a long turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// It asks to run a tool.
    WaitingPermission,
    /// It asks the user a question.
    WaitingInput,
    /// It hit an error (API, rate limit).
    Error,
    /// A turn ended after at least `finished_after_secs` of work.
    Finished,
    /// Its agent exited on its own with a failure (a `canopy stop` is expected).
    Exited,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::WaitingPermission => "waiting_permission",
            Reason::WaitingInput => "waiting_input",
            Reason::Error => "error",
            Reason::Finished => "finished",
            Reason::Exited => "exited",
        }
    }

    /// The freedesktop urgency: asking and failing are critical (the user is the
    /// bottleneck), a finished turn is news that can wait.
    pub fn urgency(self) -> Urgency {
        match self {
            Reason::WaitingPermission | Reason::Error => Urgency::Critical,
            Reason::WaitingInput | Reason::Exited => Urgency::Normal,
            Reason::Finished => Urgency::Low,
        }
    }

    /// ntfy's priority (1 min … 5 max) unless `[notify.ntfy.priority]` says otherwise.
    pub fn ntfy_priority(self) -> u8 {
        match self {
            Reason::WaitingPermission | Reason::Error => 5,
            Reason::WaitingInput | Reason::Exited => 4,
            Reason::Finished => 3,
        }
    }
}

/// The freedesktop urgency levels (the `urgency` hint's byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Low = 0,
    Normal = 1,
    Critical = 2,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Off turns every target off (`canopy watch --notify` too).
    pub enabled: bool,
    /// Which reasons notify.
    pub on: Vec<Reason>,
    /// A finished turn notifies when it worked at least this long.
    pub finished_after_secs: f64,
    /// Notifications per session per minute at most (withdrawals are not counted).
    pub per_session_per_minute: u32,
    /// Notifications per minute over all sessions at most.
    pub per_minute: u32,
    /// A session typed into from an attached terminal within this many seconds is not
    /// notified about: the user is looking at it.
    pub quiet_after_typing_secs: f64,
    /// Desktop notifications over D-Bus.
    pub desktop: bool,
    /// What the desktop notification's "Open" runs, split like a shell would; `{name}`
    /// is the session. Default: `$TERMINAL -e canopy attach {name}`.
    pub open_command: Option<String>,
    /// ntfy publishing (phones), off unless `[notify.ntfy]` is present.
    pub ntfy: Option<NtfyConfig>,
    /// A program run for every notification, off unless `[notify.command]` is present.
    pub command: Option<CommandConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            on: vec![
                Reason::WaitingPermission,
                Reason::WaitingInput,
                Reason::Error,
                Reason::Finished,
                Reason::Exited,
            ],
            finished_after_secs: 60.0,
            per_session_per_minute: 4,
            per_minute: 12,
            quiet_after_typing_secs: 15.0,
            desktop: true,
            open_command: None,
            ntfy: None,
            command: None,
        }
    }
}

/// `[notify.ntfy]`: a plain HTTP POST to a topic URL.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtfyConfig {
    /// The topic URL, e.g. `https://ntfy.sh/my-canopy-topic`.
    pub url: String,
    /// The environment variable (of the host) holding an access token, sent as a
    /// bearer token. The config file names it and never holds it.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Opened when the notification is tapped; `{name}` is the session.
    #[serde(default)]
    pub click: Option<String>,
    /// Priority (1–5) per reason, over the defaults.
    #[serde(default)]
    pub priority: BTreeMap<Reason, u8>,
    /// Tags (ntfy shows emoji for known ones) per reason.
    #[serde(default)]
    pub tags: BTreeMap<Reason, Vec<String>>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
}

/// `[notify.command]`: a program given the notification as JSON on stdin.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program and its arguments.
    pub run: Vec<String>,
    /// Killed after this long, so a hung program holds up only its own notifications.
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
}

fn default_timeout() -> f64 {
    10.0
}

/// Seconds from the config as a duration; a negative or absurd value falls back.
pub fn secs(value: f64, fallback: Duration) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(fallback)
}

impl NotifyConfig {
    /// A problem the config parser should report, naming the field.
    pub fn check(&self) -> Result<(), String> {
        if let Some(ntfy) = &self.ntfy {
            if !(ntfy.url.starts_with("http://") || ntfy.url.starts_with("https://")) {
                return Err(format!(
                    "notify.ntfy.url {:?} must be an http:// or https:// topic URL",
                    ntfy.url
                ));
            }
            if let Some((reason, p)) = ntfy.priority.iter().find(|(_, p)| !(1..=5).contains(*p)) {
                return Err(format!(
                    "notify.ntfy.priority.{}: {p} is not 1 to 5",
                    reason.as_str()
                ));
            }
        }
        if let Some(command) = &self.command
            && command.run.is_empty()
        {
            return Err("notify.command.run must name a program".into());
        }
        if let Some(open) = &self.open_command
            && shell_words::split(open).is_err()
        {
            return Err(format!(
                "notify.open_command {open:?} has unbalanced quotes"
            ));
        }
        Ok(())
    }

    /// The effective settings, one `key = value` per line, for `canopy notify test`.
    pub fn lines(&self) -> Vec<String> {
        let on: Vec<&str> = self.on.iter().map(|r| r.as_str()).collect();
        let mut lines = vec![
            format!("enabled = {}", self.enabled),
            format!("on = {on:?}"),
            format!("finished_after_secs = {}", self.finished_after_secs),
            format!("per_session_per_minute = {}", self.per_session_per_minute),
            format!("per_minute = {}", self.per_minute),
            format!("quiet_after_typing_secs = {}", self.quiet_after_typing_secs),
            format!("desktop = {}", self.desktop),
            format!(
                "open_command = {:?}",
                self.open_command
                    .as_deref()
                    .unwrap_or("$TERMINAL -e canopy attach {name}")
            ),
        ];
        match &self.ntfy {
            Some(n) => lines.push(format!(
                "ntfy = {} (token from {})",
                n.url,
                n.token_env.as_deref().unwrap_or("no variable")
            )),
            None => lines.push("ntfy = off".into()),
        }
        match &self.command {
            Some(c) => lines.push(format!(
                "command = {:?} (timeout {}s)",
                c.run, c.timeout_secs
            )),
            None => lines.push("command = off".into()),
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_and_checked() {
        let c: NotifyConfig = toml::from_str(
            "on = [\"error\"]\n[ntfy]\nurl = \"https://ntfy.sh/t\"\ntoken_env = \"T\"\n[ntfy.priority]\nerror = 2\n[command]\nrun = [\"x\"]\n",
        )
        .expect("parses");
        assert_eq!(c.on, [Reason::Error]);
        assert_eq!(c.ntfy.as_ref().map(|n| n.priority[&Reason::Error]), Some(2));
        assert_eq!(c.command.as_ref().map(|c| c.timeout_secs), Some(10.0));
        assert_eq!(c.check(), Ok(()));
        for bad in [
            "[ntfy]\nurl = \"ntfy.sh/t\"\n",
            "[ntfy]\nurl = \"http://h/t\"\n[ntfy.priority]\nerror = 9\n",
            "[command]\nrun = []\n",
            "open_command = \"a 'b\"\n",
        ] {
            let c: NotifyConfig = toml::from_str(bad).expect(bad);
            assert!(c.check().is_err(), "{bad}");
        }
        assert!(toml::from_str::<NotifyConfig>("on = [\"thinking\"]\n").is_err());
    }
}
