//! Codex CLI: hooks through `-c hooks.<Event>=…` overrides with
//! `--dangerously-bypass-hook-trust` (trust is otherwise recorded in the user's
//! config.toml, which Canopy must not touch), turn completion through `notify`.

use std::sync::LazyLock;

use canopy_protocol::StateKind;
use serde_json::Value;

use super::{Adapter, AgentError, Cues, Effect, HookEvent, Launch, LaunchCtx, field, tool_detail};

const EVENTS: &[&str] = &[
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "Stop",
    "StopFailure",
    "PreCompact",
    "PostCompact",
    "SubagentStart",
    "SubagentStop",
    "SessionEnd",
];

static CUES: LazyLock<Cues> = LazyLock::new(|| {
    Cues::new(
        &[r"(?s)Would you like to run the following command\?.*Press enter to confirm or esc to cancel"],
        &[r"(?i)conversation interrupted"],
        &[r"esc to interrupt"],
    )
    .and_then(|c| c.with_errors(&[r#"■ \{"error""#]))
    // The model-upgrade menu shown before the first turn ("Meet GPT-6 Sol … 2. Use
    // existing model"; tests/realcli/FINDINGS.md g).
    .and_then(|c| c.with_inputs(&[r"(?s)Meet [^\n]+.*Use existing model"]))
    // A command still running past its yield time goes on in a "background terminal"
    // after the turn; only this footer says so, until it ends (FINDINGS i).
    .and_then(|c| c.with_background(&[r"\d+ background terminals? running"]))
    // Its composer: before it, the launcher may print a warning (a temporary
    // CODEX_HOME), and a prompt typed then is lost.
    .and_then(|c| c.with_ready(&[r"Ask Codex to do anything", r"(?m)^› "]))
    .expect("built-in patterns compile")
});

#[derive(Debug, Default)]
pub struct Codex;

impl Codex {
    pub fn new() -> Self {
        Codex
    }
}

/// A TOML string literal.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

impl Adapter for Codex {
    fn name(&self) -> &str {
        "codex"
    }

    fn launch(&self, ctx: &LaunchCtx<'_>) -> Result<Launch, AgentError> {
        let exe = ctx.canopy_exe.display().to_string();
        let command = super::hook_command(ctx.canopy_exe, "codex");
        let mut args = vec!["--dangerously-bypass-hook-trust".to_owned()];
        for event in EVENTS {
            args.push("-c".into());
            args.push(format!(
                "hooks.{event}=[{{hooks=[{{type=\"command\",command={}}}]}}]",
                toml_str(&command)
            ));
        }
        // notify appends the JSON as the last argument.
        args.push("-c".into());
        args.push(format!(
            "notify=[{},\"hook\",\"--agent\",\"codex\"]",
            toml_str(&exe)
        ));
        if let Some(id) = ctx.resume_id {
            args.extend(["resume".to_owned(), id.to_owned()]);
        }
        args.extend(ctx.extra_args.iter().cloned());
        if let Some(p) = ctx.prompt {
            args.push(p.to_owned());
        }
        Ok(Launch {
            program: "codex".into(),
            args,
            env: Vec::new(),
            agent_session_id: ctx.resume_id.map(str::to_owned),
            type_prompt: None,
            server: None,
        })
    }

    fn has_hooks(&self) -> bool {
        true
    }

    fn hook(&self, p: &Value, known_session: Option<&str>) -> HookEvent {
        // notify payloads name their type instead of a hook event.
        if field(p, "type") == Some("agent-turn-complete") {
            let thread = field(p, "thread-id");
            let effect = match (thread, known_session) {
                (Some(t), Some(k)) if t == k => Effect::state(StateKind::Idle),
                (Some(_), Some(_)) => {
                    Effect::ignore("turn of another thread (e.g. title generation)")
                }
                _ => Effect::ignore("turn of an unknown thread"),
            };
            return HookEvent {
                name: "notify".into(),
                agent_session_id: None,
                request_id: None,
                effect,
            };
        }
        let name = field(p, "hook_event_name").unwrap_or("?").to_owned();
        let tool = field(p, "tool_name").map(str::to_owned);
        let effect = match name.as_str() {
            "SessionStart" => Effect::state(StateKind::Idle),
            "UserPromptSubmit" => Effect::state(StateKind::Thinking),
            "PostToolUse" => Effect::ToolEnded {
                completed: true,
                tool,
            },
            "PostCompact" => super::post_compact(p),
            "PreToolUse" => Effect::tool(StateKind::Tool, tool, tool_detail(p.get("tool_input"))),
            "PermissionRequest" => Effect::tool(
                StateKind::WaitingPermission,
                tool,
                tool_detail(p.get("tool_input")),
            ),
            "Stop" => Effect::state(StateKind::Idle),
            "StopFailure" => super::stop_failure(p),
            "PreCompact" => Effect::state(StateKind::Compacting),
            "SubagentStart" | "SubagentStop" => match field(p, "agent_id") {
                Some(id) => Effect::SubAgent {
                    id: id.to_owned(),
                    running: name == "SubagentStart",
                },
                None => Effect::ignore("a sub-agent with no id"),
            },
            "SessionEnd" => Effect::ignore("the agent is ending; its exit follows"),
            other => Effect::ignore(format!("{other} does not change the state")),
        };
        HookEvent::of_payload(p, name, effect)
    }

    fn cues(&self) -> &Cues {
        &CUES
    }

    fn answer_keys(&self, approve: bool) -> Vec<u8> {
        if approve {
            b"y".to_vec()
        } else {
            b"\x1b".to_vec()
        }
    }

    fn install_hint(&self) -> String {
        "install Codex CLI (npm install -g @openai/codex)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::Cue;
    use serde_json::json;

    #[test]
    fn notify_from_another_thread_is_ignored() {
        let c = Codex::new();
        let ours = json!({"type":"agent-turn-complete","thread-id":"t1","turn-id":"x"});
        let title = json!({"type":"agent-turn-complete","thread-id":"t2","turn-id":"y"});
        assert_eq!(
            c.hook(&ours, Some("t1")).effect,
            Effect::state(StateKind::Idle)
        );
        assert!(matches!(
            c.hook(&title, Some("t1")).effect,
            Effect::Ignore(_)
        ));
    }

    /// Found on the real Codex 0.169.0 (tests/realcli/FINDINGS.md i): sub-agents report
    /// their start and end by id; a background terminal shows in a footer only, beside
    /// the busy line's timer or after the turn.
    #[test]
    fn sub_agents_and_background_terminals_are_background_work() {
        let c = Codex::new();
        let sub = |event: &str| {
            c.hook(
                &json!({"hook_event_name": event, "agent_id": "a1", "agent_type": "default"}),
                None,
            )
            .effect
        };
        assert_eq!(
            sub("SubagentStart"),
            Effect::SubAgent {
                id: "a1".into(),
                running: true
            }
        );
        assert_eq!(
            sub("SubagentStop"),
            Effect::SubAgent {
                id: "a1".into(),
                running: false
            }
        );
        let busy =
            "• Working (3s • esc to interrupt) · 1 background terminal running · /ps to view";
        let r = c.cues().read(busy).expect("drawn");
        assert_eq!(
            (r.cue, r.background.as_deref()),
            (Cue::Busy, Some("1 background terminal running"))
        );
        let done = "  Worked for 1s • 21:07\n  2 background terminals running · /ps to view · /stop to close\n› Ask Codex to do anything";
        let r = c.cues().read(done).expect("drawn");
        assert_eq!(
            (r.cue, r.background.as_deref()),
            (Cue::Quiet, Some("2 background terminals running"))
        );
        let idle = c.cues().read("› Ask Codex to do anything").expect("drawn");
        assert_eq!(idle.background, None);
    }

    #[test]
    fn hooks_are_toml_overrides_with_trust_bypassed() {
        let ctx = LaunchCtx {
            session: "s",
            worktree: std::path::Path::new("/w"),
            session_dir: std::path::Path::new("/d"),
            canopy_exe: std::path::Path::new("/bin/canopy"),
            prompt: Some("hi"),
            resume_id: Some("t1"),
            extra_args: &[],
        };
        let l = Codex::new().launch(&ctx).expect("launch");
        assert_eq!(l.args[0], "--dangerously-bypass-hook-trust");
        let stop = l
            .args
            .iter()
            .find(|a| a.starts_with("hooks.Stop="))
            .expect("Stop hook");
        let parsed: toml::Table =
            toml::from_str(&stop.replacen("hooks.Stop", "x", 1)).expect("valid TOML");
        assert_eq!(
            parsed["x"][0]["hooks"][0]["command"].as_str(),
            Some("/bin/canopy hook --agent codex")
        );
        assert!(
            l.args
                .contains(&"notify=[\"/bin/canopy\",\"hook\",\"--agent\",\"codex\"]".to_owned())
        );
        let n = l.args.len();
        assert_eq!(&l.args[n - 3..], ["resume", "t1", "hi"]);
    }
}
