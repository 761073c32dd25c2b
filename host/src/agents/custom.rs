//! Agents defined in `config.toml`, and plain commands (`--agent bash`), which Canopy
//! watches through their screen alone.
//!
//! ```toml
//! [agents.aider]
//! command = "aider"
//! args = ["--no-auto-commits"]
//! prompt_arg = "--message"          # or "positional"; absent: typed once it starts
//! resume_args = ["--restore-chat-history"]   # "{id}" is replaced by a recorded id
//! approve_keys = "y\r"
//! deny_keys = "n\r"
//! [agents.aider.cues]
//! busy = ["Waiting for .*\\.\\.\\."]
//! permission = ["\\(Y\\)es/\\(N\\)o"]
//! interrupted = []
//! ```

use serde::Deserialize;
use serde_json::Value;

use super::{Adapter, AgentError, Cues, Effect, HookEvent, Launch, LaunchCtx};

/// An `[agents.NAME]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomAgent {
    /// The program.
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// How the first prompt is passed: a flag that takes it, `positional`, or (absent)
    /// typed into the terminal once the agent starts.
    #[serde(default)]
    pub prompt_arg: Option<String>,
    /// Arguments that continue the previous conversation on `canopy resume`.
    #[serde(default)]
    pub resume_args: Vec<String>,
    #[serde(default)]
    pub cues: CueConfig,
    #[serde(default)]
    pub approve_keys: Option<String>,
    #[serde(default)]
    pub deny_keys: Option<String>,
}

/// Screen patterns (regular expressions) of a custom agent.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CueConfig {
    #[serde(default)]
    pub busy: Vec<String>,
    #[serde(default)]
    pub permission: Vec<String>,
    #[serde(default)]
    pub interrupted: Vec<String>,
    #[serde(default)]
    pub error: Vec<String>,
}

impl CueConfig {
    /// Compile the patterns; the error names the first bad one.
    pub fn compile(&self) -> Result<Cues, String> {
        fn refs(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        Cues::new(
            &refs(&self.permission),
            &refs(&self.interrupted),
            &refs(&self.busy),
        )
        .map_err(|e| e.to_string())
    }
}

/// A custom agent or a plain command.
#[derive(Debug)]
pub struct Custom {
    name: String,
    agent: CustomAgent,
    cues: Cues,
}

impl Custom {
    /// A configured agent (its patterns were checked when the config was loaded).
    pub fn new(name: &str, agent: CustomAgent) -> Self {
        let cues = agent.cues.compile().unwrap_or_default();
        Self {
            name: name.to_owned(),
            agent,
            cues,
        }
    }

    /// Any command, run as given.
    pub fn command(program: &str) -> Self {
        let name = std::path::Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.to_owned());
        Self {
            name,
            agent: CustomAgent {
                command: program.to_owned(),
                ..CustomAgent::default()
            },
            cues: Cues::default(),
        }
    }
}

impl Adapter for Custom {
    fn name(&self) -> &str {
        &self.name
    }

    fn launch(&self, ctx: &LaunchCtx<'_>) -> Result<Launch, AgentError> {
        let mut args = self.agent.args.clone();
        if let Some(id) = ctx.resume_id {
            args.extend(self.agent.resume_args.iter().map(|a| a.replace("{id}", id)));
        }
        args.extend(ctx.extra_args.iter().cloned());
        let mut type_prompt = None;
        if let Some(p) = ctx.prompt {
            match self.agent.prompt_arg.as_deref() {
                Some("positional") => args.push(p.to_owned()),
                Some(flag) => args.extend([flag.to_owned(), p.to_owned()]),
                None => type_prompt = Some(p.to_owned()),
            }
        }
        Ok(Launch {
            program: self.agent.command.clone(),
            args,
            env: Vec::new(),
            agent_session_id: ctx.resume_id.map(str::to_owned),
            type_prompt,
            server: None,
        })
    }

    fn reads_pastes(&self) -> bool {
        false
    }

    fn has_hooks(&self) -> bool {
        false
    }

    fn hook(&self, _p: &Value, _known_session: Option<&str>) -> HookEvent {
        HookEvent {
            name: "?".into(),
            agent_session_id: None,
            request_id: None,
            effect: Effect::ignore(format!("{} has no hooks", self.name)),
        }
    }

    fn cues(&self) -> &Cues {
        &self.cues
    }

    fn answer_keys(&self, approve: bool) -> Vec<u8> {
        let keys = if approve {
            &self.agent.approve_keys
        } else {
            &self.agent.deny_keys
        };
        keys.clone()
            .unwrap_or_else(|| if approve { "y\r" } else { "n\r" }.to_owned())
            .into_bytes()
    }

    fn install_hint(&self) -> String {
        "install it, or give --agent a full path".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::Cue;

    #[test]
    fn prompt_forms() {
        let ctx = LaunchCtx {
            session: "s",
            worktree: std::path::Path::new("/w"),
            session_dir: std::path::Path::new("/d"),
            canopy_exe: std::path::Path::new("/c"),
            prompt: Some("do it"),
            resume_id: Some("42"),
            extra_args: &["--x".to_owned()],
        };
        let agent = CustomAgent {
            command: "aider".into(),
            args: vec!["--a".into()],
            prompt_arg: Some("--message".into()),
            resume_args: vec!["--resume={id}".into()],
            ..CustomAgent::default()
        };
        let l = Custom::new("aider", agent.clone())
            .launch(&ctx)
            .expect("launch");
        assert_eq!(l.args, ["--a", "--resume=42", "--x", "--message", "do it"]);
        let typed = Custom::new(
            "aider",
            CustomAgent {
                prompt_arg: None,
                ..agent
            },
        )
        .launch(&ctx)
        .expect("launch");
        assert_eq!(typed.type_prompt.as_deref(), Some("do it"));
    }

    #[test]
    fn configured_cues_classify() {
        let agent: CustomAgent = toml::from_str(
            "command = \"x\"\n[cues]\nbusy = [\"working\"]\npermission = [\"\\\\(Y\\\\)es/\\\\(N\\\\)o\"]\n",
        )
        .expect("toml");
        let c = Custom::new("x", agent);
        assert_eq!(c.cues().classify("Run it? (Y)es/(N)o"), Cue::Permission);
        assert_eq!(c.cues().classify("working..."), Cue::Busy);
        assert_eq!(c.cues().classify("$ "), Cue::Quiet);
    }
}
