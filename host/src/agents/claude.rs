//! Claude Code: hooks through `--settings` (merged with the user's own settings, for
//! this launch only), a conversation id fixed at launch with `--session-id`, resume with
//! `--resume`.

use std::sync::LazyLock;

use canopy_protocol::StateKind;
use serde_json::{Value, json};

use super::{
    Adapter, AgentError, Cues, Effect, HookEvent, Launch, LaunchCtx, field, hook_command, new_uuid,
    tool_detail,
};

/// Runs beside the permission dialog; Canopy holds it open to answer the request.
const PERMISSION_REQUEST: &str = "PermissionRequest";

/// How long Claude lets a hook run, in seconds. The permission hook waits for an answer
/// from Canopy, so it may wait as long as the dialog stays open.
const HOOK_TIMEOUT_SECS: u64 = 10;
const PERMISSION_HOOK_TIMEOUT_SECS: u64 = 24 * 3600;

/// The hook events Canopy listens to.
const EVENTS: &[&str] = &[
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    PERMISSION_REQUEST,
    "PermissionDenied",
    "PostToolUse",
    "PostToolUseFailure",
    "Notification",
    "Stop",
    "StopFailure",
    "PreCompact",
    "PostCompact",
    "SessionEnd",
];

static CUES: LazyLock<Cues> = LazyLock::new(|| {
    Cues::new(
        // The dialog's question and its numbered first choice, together: prose that
        // merely asks "do you want to proceed" is not a dialog.
        &[r"(?s)Do you want to proceed\?.*\n\s*(❯\s*)?1\. Yes"],
        &[r"Interrupted · What should Claude do instead\?"],
        &[r"esc to interrupt"],
    )
    .and_then(|c| c.with_errors(&[r#"API Error: \d{3}"#]))
    // Strings of the 2.1 binary: the folder-trust dialog and the login menu.
    .and_then(|c| {
        c.with_inputs(&[
            r"Quick safety check: [Ii]s this a project you created or one you trust",
            r"Select login method:",
        ])
    })
    .expect("built-in patterns compile")
});

#[derive(Debug, Default)]
pub struct Claude;

impl Claude {
    pub fn new() -> Self {
        Claude
    }

    /// The `--settings` JSON: one command hook per event, calling `canopy hook`.
    pub fn settings(canopy_hook: &str) -> Value {
        let hooks: serde_json::Map<String, Value> = EVENTS
            .iter()
            .map(|e| {
                let timeout = if *e == PERMISSION_REQUEST {
                    PERMISSION_HOOK_TIMEOUT_SECS
                } else {
                    HOOK_TIMEOUT_SECS
                };
                (
                    (*e).to_owned(),
                    json!([{"matcher": "", "hooks": [{"type": "command", "command": canopy_hook, "timeout": timeout}]}]),
                )
            })
            .collect();
        json!({ "hooks": hooks })
    }
}

impl Adapter for Claude {
    fn name(&self) -> &str {
        "claude"
    }

    fn launch(&self, ctx: &LaunchCtx<'_>) -> Result<Launch, AgentError> {
        let settings = Self::settings(&hook_command(ctx.canopy_exe, "claude"));
        let mut args = vec!["--settings".to_owned(), settings.to_string()];
        let id = match ctx.resume_id {
            Some(id) => {
                args.extend(["--resume".to_owned(), id.to_owned()]);
                id.to_owned()
            }
            None => {
                let id = new_uuid();
                args.extend(["--session-id".to_owned(), id.clone()]);
                id
            }
        };
        args.extend(ctx.extra_args.iter().cloned());
        if let Some(p) = ctx.prompt {
            // After `--`: options such as `--allowedTools` take every value that follows
            // them, and would swallow the prompt.
            args.extend(["--".to_owned(), p.to_owned()]);
        }
        Ok(Launch {
            program: "claude".into(),
            args,
            env: Vec::new(),
            agent_session_id: Some(id),
            type_prompt: None,
            server: None,
        })
    }

    fn has_hooks(&self) -> bool {
        true
    }

    fn hook(&self, p: &Value, _known_session: Option<&str>) -> HookEvent {
        let name = field(p, "hook_event_name").unwrap_or("?").to_owned();
        let tool = field(p, "tool_name").map(str::to_owned);
        let effect = match name.as_str() {
            // Compaction starts the conversation over from a summary: PostCompact says
            // how it goes on.
            "SessionStart" if field(p, "source") == Some("compact") => {
                Effect::ignore("the conversation goes on after compaction")
            }
            "SessionStart" => Effect::state(StateKind::Idle),
            "UserPromptSubmit" => Effect::state(StateKind::Thinking),
            // A sub-agent's own tools: the session's state is the sub-agent's call (or
            // the background it runs in), whatever it does inside; its permission
            // requests still count.
            "PreToolUse" | "PostToolUse" | "PostToolUseFailure" if p.get("agent_id").is_some() => {
                Effect::ignore("a sub-agent's own tool")
            }
            "PreToolUse" => Effect::tool(StateKind::Tool, tool, tool_detail(p.get("tool_input"))),
            PERMISSION_REQUEST => Effect::tool(
                StateKind::WaitingPermission,
                tool,
                tool_detail(p.get("tool_input")),
            ),
            "PostToolUse" => Effect::ToolEnded {
                completed: true,
                tool,
            },
            "PostToolUseFailure" => Effect::ToolEnded {
                completed: false,
                tool,
            },
            "PermissionDenied" => Effect::state(StateKind::Thinking),
            "PostCompact" => super::post_compact(p),
            "PreCompact" => Effect::state(StateKind::Compacting),
            // "Lets hooks distinguish 'session is done' from 'session is paused waiting
            // for background work to wake it'" (its schema): the work goes on, and its
            // end wakes the agent for a turn of its own (UserPromptSubmit … Stop).
            "Stop" => match background_tasks(p) {
                Some(detail) => Effect::Background { detail },
                None => Effect::state(StateKind::Idle),
            },
            "StopFailure" => super::stop_failure(p),
            "Notification" => match field(p, "notification_type") {
                Some("permission_prompt") => Effect::state(StateKind::WaitingPermission),
                Some("elicitation_dialog") => Effect::state(StateKind::WaitingInput),
                // "Waiting for your input" after a minute idle: the agent is idle, and
                // may still have background tasks running; nothing changes.
                Some("idle_prompt") => Effect::ignore("idle reminder; the state stands"),
                other => Effect::ignore(format!("notification {}", other.unwrap_or("?"))),
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
            b"1".to_vec()
        } else {
            b"\x1b".to_vec()
        }
    }

    fn hook_decision(&self, event: &str, approve: bool, reason: Option<&str>) -> Option<String> {
        if event != PERMISSION_REQUEST {
            return None;
        }
        let decision = if approve {
            json!({"behavior": "allow"})
        } else {
            json!({"behavior": "deny", "message": reason.unwrap_or("denied from canopy")})
        };
        Some(
            json!({"hookSpecificOutput": {"hookEventName": PERMISSION_REQUEST, "decision": decision}})
                .to_string(),
        )
    }

    fn install_hint(&self) -> String {
        "install Claude Code (npm install -g @anthropic-ai/claude-code)".into()
    }
}

/// What `Stop`'s `background_tasks` (`{id, type, status, description, command?}`)
/// still runs, said in one line; `None` when nothing does.
fn background_tasks(p: &Value) -> Option<String> {
    let tasks = p.get("background_tasks")?.as_array()?;
    if tasks.is_empty() {
        return None;
    }
    let each: Vec<String> = tasks
        .iter()
        .map(|t| {
            let kind = field(t, "type").unwrap_or("task");
            let what = field(t, "command")
                .or_else(|| field(t, "description"))
                .unwrap_or("");
            format!("{kind} {what}").trim().to_owned()
        })
        .collect();
    Some(super::one_line(
        &format!("{} in the background: {}", tasks.len(), each.join("; ")),
        200,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::Cue;

    fn kind(e: &HookEvent) -> Option<StateKind> {
        match &e.effect {
            Effect::State { kind, .. } => Some(*kind),
            // While its turn runs, a tool's end means thinking.
            Effect::ToolEnded { .. } | Effect::Backgrounded { .. } | Effect::Busy => {
                Some(StateKind::Thinking)
            }
            Effect::Background { .. } => Some(StateKind::Tool),
            Effect::Answered { .. }
            | Effect::SubAgent { .. }
            | Effect::Ignore(_)
            | Effect::Noise => None,
        }
    }

    /// `/compact` (found with the real Claude 2.1.332): PreCompact, SessionStart with
    /// source compact, PostCompact, and no Stop: it ends idle. Automatic compaction is
    /// part of a turn that goes on.
    #[test]
    fn compaction_ends_idle_unless_it_was_automatic() {
        let c = Claude::new();
        let ev = |v: serde_json::Value| kind(&c.hook(&v, None));
        assert_eq!(
            ev(json!({"hook_event_name":"PreCompact","trigger":"manual"})),
            Some(StateKind::Compacting)
        );
        assert_eq!(
            ev(json!({"hook_event_name":"SessionStart","source":"compact"})),
            None
        );
        assert_eq!(
            ev(json!({"hook_event_name":"PostCompact","trigger":"manual"})),
            Some(StateKind::Idle)
        );
        assert_eq!(
            ev(json!({"hook_event_name":"PostCompact","trigger":"auto"})),
            Some(StateKind::Thinking)
        );
    }

    #[test]
    fn maps_the_hook_sequence_of_a_permissioned_tool_call() {
        let c = Claude::new();
        let seq = [
            (
                json!({"hook_event_name":"UserPromptSubmit","session_id":"s1","prompt":"x"}),
                Some(StateKind::Thinking),
            ),
            (
                json!({"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"rm x"}}),
                Some(StateKind::Tool),
            ),
            (
                json!({"hook_event_name":"PermissionRequest","tool_name":"Bash","tool_input":{"command":"rm x"}}),
                Some(StateKind::WaitingPermission),
            ),
            (
                json!({"hook_event_name":"PostToolUse","tool_name":"Bash","duration_ms":41}),
                Some(StateKind::Thinking),
            ),
            (
                json!({"hook_event_name":"Stop","background_tasks":[]}),
                Some(StateKind::Idle),
            ),
            (
                json!({"hook_event_name":"Stop","background_tasks":[{"id":"b1","type":"subagent","status":"running","description":"Review the diff"}]}),
                Some(StateKind::Tool),
            ),
            // A sub-agent's own tools leave the session's state to its call.
            (
                json!({"hook_event_name":"PreToolUse","agent_id":"a1","tool_name":"Bash","tool_input":{"command":"ls"}}),
                None,
            ),
            (
                json!({"hook_event_name":"StopFailure","error":"unknown","last_assistant_message":"API Error: 400"}),
                Some(StateKind::Error),
            ),
            (
                json!({"hook_event_name":"Notification","notification_type":"idle_prompt"}),
                None,
            ),
        ];
        for (payload, want) in seq {
            assert_eq!(kind(&c.hook(&payload, None)), want, "{payload}");
        }
        let e = c.hook(&json!({"hook_event_name":"PermissionRequest","tool_name":"Bash","tool_input":{"command":"rm x"},"session_id":"s1"}), None);
        assert_eq!(e.agent_session_id.as_deref(), Some("s1"));
        assert_eq!(
            e.effect,
            Effect::tool(
                StateKind::WaitingPermission,
                Some("Bash".into()),
                Some("rm x".into())
            )
        );
    }

    #[test]
    fn dialog_cue_needs_the_question_and_the_choices() {
        let dialog = " Bash command\n   rm x\n Do you want to proceed?\n ❯ 1. Yes\n   2. Yes, and don't ask again\n   4. No\n";
        assert_eq!(CUES.classify(dialog), Cue::Permission);
        let prose = "Do you want to proceed with the plan? I will proceed.\n❯ \n";
        assert_eq!(CUES.classify(prose), Cue::Quiet);
        assert_eq!(CUES.classify("✢ Leavening…\n esc to interrupt"), Cue::Busy);
        assert_eq!(
            CUES.classify("Interrupted · What should Claude do instead?"),
            Cue::Interrupted
        );
    }

    #[test]
    fn launch_injects_settings_and_fixes_the_conversation_id() {
        let ctx = LaunchCtx {
            session: "s",
            worktree: std::path::Path::new("/w"),
            session_dir: std::path::Path::new("/d"),
            canopy_exe: std::path::Path::new("/opt/my canopy/canopy"),
            prompt: Some("fix the bug"),
            resume_id: None,
            extra_args: &[],
        };
        let l = Claude::new().launch(&ctx).expect("launch");
        assert_eq!(l.program, "claude");
        assert_eq!(l.args[0], "--settings");
        let settings: Value = serde_json::from_str(&l.args[1]).expect("json");
        assert_eq!(
            settings["hooks"]["PreToolUse"][0]["hooks"][0]["command"],
            "'/opt/my canopy/canopy' hook --agent claude"
        );
        assert_eq!(l.args[2], "--session-id");
        assert_eq!(Some(l.args[3].clone()), l.agent_session_id);
        assert_eq!(l.args.last().map(String::as_str), Some("fix the bug"));
        let resumed = Claude::new()
            .launch(&LaunchCtx {
                resume_id: Some("abc"),
                prompt: None,
                ..ctx
            })
            .expect("launch");
        assert_eq!(&resumed.args[2..], ["--resume", "abc"]);
    }
}
