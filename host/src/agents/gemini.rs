//! Gemini CLI: hooks from a settings file in the session's private directory, named by
//! `GEMINI_CLI_SYSTEM_SETTINGS_PATH` (Gemini ignores it unless no ancestor directory is
//! writable by others, so it cannot live in /tmp).

use std::sync::LazyLock;

use canopy_protocol::StateKind;
use serde_json::{Value, json};

use super::{
    Adapter, AgentError, Cues, Effect, HookEvent, Launch, LaunchCtx, field, new_uuid, tool_detail,
    write_private,
};

const EVENTS: &[&str] = &[
    "SessionStart",
    "BeforeAgent",
    "BeforeTool",
    "AfterTool",
    "AfterAgent",
    "Notification",
    "PreCompress",
    "SessionEnd",
];

static CUES: LazyLock<Cues> = LazyLock::new(|| {
    Cues::new(
        &[
            r"Allow execution of \[",
            r"(?s)Apply this change\?.*1\. Allow once",
        ],
        &[r"Request cancelled"],
        // A long status line is cut at the screen's edge ("…(esc to cance"): the
        // spinner that starts it is the steadier sign.
        &[r"esc to cancel", r"(?m)^\s*[\u{2801}-\u{28FF}] \S"],
    )
    .and_then(|c| c.with_errors(&[r#"\[API Error"#]))
    // The auth dialog of a first run and the folder-trust question in a folder not
    // trusted yet (strings of the 0.61 bundle).
    .and_then(|c| {
        c.with_inputs(&[
            r"How would you like to authenticate for this project\?",
            r"Do you trust the files in this folder\?",
        ])
    })
    .map(Cues::with_unsteady_busy)
    .expect("built-in patterns compile")
});

#[derive(Debug, Default)]
pub struct Gemini;

impl Gemini {
    pub fn new() -> Self {
        Gemini
    }
}

impl Adapter for Gemini {
    fn name(&self) -> &str {
        "gemini"
    }

    fn launch(&self, ctx: &LaunchCtx<'_>) -> Result<Launch, AgentError> {
        let command = super::hook_command(ctx.canopy_exe, "gemini");
        let hooks: serde_json::Map<String, Value> = EVENTS
            .iter()
            .map(|e| {
                (
                    (*e).to_owned(),
                    json!([{"matcher": "", "hooks": [{"type": "command", "command": command, "name": "canopy", "timeout": 10000}]}]),
                )
            })
            .collect();
        let path = ctx.session_dir.join("gemini-settings.json");
        write_private(&path, &json!({ "hooks": hooks }).to_string())?;
        let mut args = Vec::new();
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
            args.extend(["--prompt-interactive".to_owned(), p.to_owned()]);
        }
        Ok(Launch {
            program: "gemini".into(),
            args,
            env: vec![(
                "GEMINI_CLI_SYSTEM_SETTINGS_PATH".into(),
                path.display().to_string(),
            )],
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
            "SessionStart" => Effect::state(StateKind::Idle),
            // On an API error Gemini still fires AfterAgent, with no response text; the
            // error shows only on screen, so this turn end is not taken as idle.
            "AfterAgent"
                if field(p, "prompt_response")
                    .is_none_or(|r| r.is_empty() || r == "[no response text]") =>
            {
                Effect::ignore("turn ended without a response (an error follows on screen)")
            }
            "AfterAgent" => Effect::state(StateKind::Idle),
            "BeforeAgent" => Effect::state(StateKind::Thinking),
            // Esc cancels the whole turn: the shell tool then ends with "Command was
            // cancelled by user …" (`shell.ts` in gemini-cli-core) and no AfterAgent.
            "AfterTool" if cancelled_by_user(p) => Effect::tool(
                StateKind::Idle,
                None,
                Some("the tool was cancelled by the user".into()),
            ),
            "AfterTool" if let Some(pid) = moved_to_background(p) => {
                Effect::Backgrounded { tool, pid }
            }
            "AfterTool" => Effect::ToolEnded {
                tool,
                completed: p
                    .get("tool_response")
                    .and_then(|r| r.get("error"))
                    .is_none_or(Value::is_null),
            },
            "BeforeTool" => Effect::tool(StateKind::Tool, tool, tool_detail(p.get("tool_input"))),
            "Notification" if field(p, "notification_type") == Some("ToolPermission") => {
                let detail = p
                    .get("details")
                    .and_then(|d| d.get("command").or_else(|| d.get("title")))
                    .and_then(Value::as_str)
                    .map(|c| super::one_line(c, 200));
                Effect::tool(StateKind::WaitingPermission, None, detail)
            }
            // Gemini fires PreCompress (auto) on every turn; only a manual one compacts.
            "PreCompress" if field(p, "trigger") == Some("manual") => {
                Effect::state(StateKind::Compacting)
            }
            "PreCompress" => Effect::ignore("automatic PreCompress fires every turn"),
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

    fn install_hint(&self) -> String {
        "install Gemini CLI (npm install -g @google/gemini-cli)".into()
    }
}

/// The process an `AfterTool` says went on in the background: "Command moved to
/// background (PID: 26828). Output hidden. …" (`shell.ts`, `is_background`).
fn moved_to_background(p: &Value) -> Option<u32> {
    let text = p.get("tool_response")?.get("llmContent")?.as_str()?;
    let rest = text.split_once("moved to background (PID: ")?.1;
    rest.split(')').next()?.trim().parse().ok()
}

/// Whether an `AfterTool` reports a call the user cancelled: its response says so
/// (`llmContent` "Command was cancelled by user before it could complete.",
/// `returnDisplay` "Command cancelled by user."), as text or as text parts.
fn cancelled_by_user(p: &Value) -> bool {
    let Some(response) = p.get("tool_response") else {
        return false;
    };
    let says = |v: &Value| match v {
        Value::String(s) => s.contains("cancelled by user"),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .any(|s| s.contains("cancelled by user")),
        _ => false,
    };
    ["llmContent", "returnDisplay"]
        .iter()
        .filter_map(|k| response.get(*k))
        .any(says)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_tool_ends_the_turn_and_a_finished_one_goes_on() {
        let g = Gemini::new();
        let after = |response: Value| {
            g.hook(
                &json!({"hook_event_name":"AfterTool","tool_name":"run_shell_command","tool_response":response}),
                None,
            )
            .effect
        };
        assert!(matches!(
            after(
                json!({"llmContent":"Command was cancelled by user before it could complete. There was no output before it was cancelled.","returnDisplay":"Command cancelled by user.","error":null})
            ),
            Effect::State {
                kind: StateKind::Idle,
                ..
            }
        ));
        assert_eq!(
            after(
                json!({"llmContent":"Command moved to background (PID: 26828). Output hidden. Press Ctrl+B to view.","error":null})
            ),
            Effect::Backgrounded {
                tool: Some("run_shell_command".into()),
                pid: 26828
            }
        );
        assert_eq!(
            after(json!({"llmContent":"Output: hi","returnDisplay":"hi","error":null})),
            Effect::ToolEnded {
                completed: true,
                tool: Some("run_shell_command".into())
            }
        );
        assert_eq!(
            after(json!({"llmContent":"x","error":{"type":"execution_failed","message":"boom"}})),
            Effect::ToolEnded {
                completed: false,
                tool: Some("run_shell_command".into())
            }
        );
    }
}
