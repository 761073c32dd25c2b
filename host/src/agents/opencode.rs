//! OpenCode: started with its embedded server on a free loopback port; its event stream
//! (`GET /global/event`) is the authority, and permission requests are answered with
//! `POST /permission/{id}/reply`. Its user config is left alone.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, PoisonError};

use canopy_protocol::StateKind;
use serde_json::{Value, json};

use super::{
    Adapter, AgentError, Cues, Effect, HookEvent, Launch, LaunchCtx, field, one_line, tool_detail,
};

static CUES: LazyLock<Cues> = LazyLock::new(|| {
    Cues::new(&[r"△ Permission required"], &[], &[r"esc interrupt"])
        .expect("built-in patterns compile")
});

#[derive(Debug, Default)]
pub struct OpenCode {
    /// Sessions that are sub-agents' (created by the `task` tool with a `parentID`):
    /// their turns are not their parent's. Ids are unique across sessions.
    children: Mutex<HashSet<String>>,
}

impl OpenCode {
    pub fn new() -> Self {
        OpenCode {
            children: Mutex::default(),
        }
    }

    fn is_child(&self, id: &str) -> bool {
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16, AgentError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| {
            AgentError::Unsupported(format!("no free loopback port for OpenCode's server: {e}"))
        })
}

impl Adapter for OpenCode {
    fn name(&self) -> &str {
        "opencode"
    }

    fn launch(&self, ctx: &LaunchCtx<'_>) -> Result<Launch, AgentError> {
        let port = free_port()?;
        let mut args = vec![
            "--port".to_owned(),
            port.to_string(),
            "--hostname".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        if let Some(id) = ctx.resume_id {
            args.extend(["--session".to_owned(), id.to_owned()]);
        }
        args.extend(ctx.extra_args.iter().cloned());
        if let Some(p) = ctx.prompt {
            args.extend(["--prompt".to_owned(), p.to_owned()]);
        }
        Ok(Launch {
            program: "opencode".into(),
            args,
            env: Vec::new(),
            agent_session_id: ctx.resume_id.map(str::to_owned),
            type_prompt: None,
            server: Some(format!("http://127.0.0.1:{port}")),
        })
    }

    fn has_hooks(&self) -> bool {
        true
    }

    /// The global stream: `/event` follows one instance (directory) of the server and
    /// ends when that instance is disposed, and a stream opened while the TUI's instance
    /// boots can stay silent; the global one carries every instance's events.
    fn events_path(&self) -> Option<&str> {
        Some("/global/event")
    }

    fn ready_path(&self) -> Option<&str> {
        Some("/global/health")
    }

    /// What happened while nobody listened (a host that was down, a stream that
    /// dropped): each busy session's newest message, part by part, as the stream would
    /// have told it (a tool that ended meanwhile, a compaction), then the statuses and
    /// the open permission requests.
    fn catch_up(&self, get: &dyn Fn(&str) -> Option<Value>) -> Vec<Value> {
        let mut events = Vec::new();
        // Which sessions are sub-agents', for a host that did not see them created.
        if let Some(Value::Array(sessions)) = get("/session") {
            events.extend(
                sessions
                    .into_iter()
                    .filter(|s| s.get("parentID").is_some())
                    .map(|s| json!({"type": "session.created", "properties": {"info": s}})),
            );
        }
        if let Some(Value::Object(sessions)) = get("/session/status") {
            for (id, status) in sessions {
                if field(&status, "type") == Some("busy")
                    && let Some(Value::Array(messages)) =
                        get(&format!("/session/{id}/message?limit=1"))
                {
                    let parts = messages
                        .last()
                        .and_then(|m| m.get("parts"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten();
                    events.extend(parts.map(|part| {
                        json!({"type": "message.part.updated", "properties": {"part": part}})
                    }));
                }
                events.push(json!({"type": "session.status", "properties": {"sessionID": id, "status": status}}));
            }
        }
        if let Some(Value::Array(pending)) = get("/permission") {
            events.extend(
                pending
                    .into_iter()
                    .map(|p| json!({"type": "permission.asked", "properties": p})),
            );
        }
        events
    }

    fn answer_request(&self, id: &str, approve: bool) -> Option<(String, Value)> {
        let reply = if approve { "once" } else { "reject" };
        Some((format!("/permission/{id}/reply"), json!({ "reply": reply })))
    }

    /// Events of the stream, `{directory, payload: {type, properties}}`, or the bare
    /// `{type, properties}` of the catch-up.
    fn hook(&self, p: &Value, _known_session: Option<&str>) -> HookEvent {
        let p = p.get("payload").unwrap_or(p);
        let name = field(p, "type").unwrap_or("?").to_owned();
        let props = p.get("properties").cloned().unwrap_or(Value::Null);
        let session = field(&props, "sessionID")
            .or_else(|| props.get("part").and_then(|part| field(part, "sessionID")))
            .or_else(|| props.get("info").and_then(|info| field(info, "sessionID")))
            .map(str::to_owned);
        // A sub-agent (the `task` tool) runs in a child session of its own, on the same
        // stream: its turn is not the session's, but its permission requests are the
        // user's to answer like any other.
        if let Some(info) = props.get("info")
            && name.starts_with("session.")
            && field(info, "parentID").is_some()
            && let Some(id) = field(info, "id")
        {
            self.children
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id.to_owned());
        }
        if session.as_deref().is_some_and(|id| self.is_child(id))
            && !name.starts_with("permission.")
        {
            return HookEvent {
                name,
                agent_session_id: None,
                request_id: None,
                effect: Effect::Noise,
            };
        }
        let mut request_id = None;
        let effect = match name.as_str() {
            "session.status" => match props.get("status").and_then(|s| field(s, "type")) {
                Some("busy") => Effect::Busy,
                Some("idle") => Effect::state(StateKind::Idle),
                other => Effect::ignore(format!("status {}", other.unwrap_or("?"))),
            },
            "session.idle" => Effect::state(StateKind::Idle),
            "permission.asked" => {
                request_id = field(&props, "id").map(str::to_owned);
                Effect::tool(
                    StateKind::WaitingPermission,
                    field(&props, "permission").map(str::to_owned),
                    tool_detail(props.get("metadata")),
                )
            }
            // A rejected request ends the turn (session.idle follows).
            "permission.replied" => Effect::Answered {
                approve: field(&props, "reply") != Some("reject"),
            },
            "message.part.updated" => {
                let part = props.get("part").cloned().unwrap_or(Value::Null);
                match (
                    field(&part, "type"),
                    part.get("state").and_then(|s| field(s, "status")),
                ) {
                    (Some("tool"), Some("running")) => Effect::tool(
                        StateKind::Tool,
                        field(&part, "tool").map(str::to_owned),
                        tool_detail(part.get("state").and_then(|s| s.get("input"))),
                    ),
                    // `/compact` and automatic compaction start with this part of a
                    // user message (`SessionCompaction.create`); `session.compacted`
                    // ends it.
                    (Some("compaction"), _) => Effect::state(StateKind::Compacting),
                    (Some("tool"), Some("completed")) => Effect::ToolEnded {
                        completed: true,
                        tool: field(&part, "tool").map(str::to_owned),
                    },
                    // Also how a rejected or aborted call ends (`failToolCall` in its
                    // session processor), after the turn did.
                    (Some("tool"), Some("error")) => Effect::ToolEnded {
                        completed: false,
                        tool: field(&part, "tool").map(str::to_owned),
                    },
                    _ => Effect::Noise,
                }
            }
            "session.error" => {
                let error = props.get("error").cloned().unwrap_or(Value::Null);
                let kind = field(&error, "name").unwrap_or("error");
                let message = error
                    .get("data")
                    .and_then(|d| field(d, "message"))
                    .unwrap_or("");
                if kind == "MessageAbortedError" {
                    Effect::state(StateKind::Idle)
                } else {
                    Effect::tool(
                        StateKind::Error,
                        None,
                        Some(one_line(&format!("{kind}: {message}"), 300)),
                    )
                }
            }
            // Published as the compaction step ends; the loop then goes on for another
            // step (`SessionCompaction.process` returns "continue"): the turn's end
            // comes with `session.idle`, or the model goes on after an automatic one.
            "session.compacted" => Effect::tool(
                StateKind::Thinking,
                None,
                Some("compaction done; the turn goes on".into()),
            ),
            _ => Effect::Noise,
        };
        HookEvent {
            name,
            agent_session_id: session.filter(|id| !self.is_child(id)),
            request_id,
            effect,
        }
    }

    fn cues(&self) -> &Cues {
        &CUES
    }

    fn answer_keys(&self, approve: bool) -> Vec<u8> {
        if approve {
            b"\r".to_vec()
        } else {
            b"\x1b".to_vec()
        }
    }

    fn install_hint(&self) -> String {
        "install OpenCode (npm install -g opencode-ai)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host that comes back while a turn runs learns from the newest message what
    /// the stream told while it was away: here, that the tool it recorded has ended.
    #[test]
    fn catching_up_replays_the_turn_in_progress() {
        let o = OpenCode::new();
        // The shapes of `GET /session/status` and `GET /session/{id}/message` (OpenCode
        // 1.18: `{info, parts}` per message).
        let get = |path: &str| match path {
            "/session/status" => Some(json!({"ses_1": {"type": "busy"}})),
            "/session/ses_1/message?limit=1" => Some(json!([{
                "info": {"id": "msg_2", "role": "assistant", "sessionID": "ses_1"},
                "parts": [
                    {"type": "step-start"},
                    {"type": "tool", "tool": "bash", "state": {"status": "completed", "input": {"command": "sleep 5"}}}
                ]
            }])),
            "/permission" => Some(json!([])),
            _ => None,
        };
        let effects: Vec<Effect> = o
            .catch_up(&get)
            .iter()
            .map(|e| o.hook(e, None).effect)
            .filter(|e| *e != Effect::Noise)
            .collect();
        assert_eq!(
            effects,
            [
                Effect::ToolEnded {
                    completed: true,
                    tool: Some("bash".into())
                },
                Effect::Busy
            ]
        );
    }

    /// A sub-agent's session (the `task` tool) says nothing of its parent's turn, but
    /// its permission requests are the user's to answer.
    #[test]
    fn a_sub_agents_session_is_not_the_sessions_turn() {
        let o = OpenCode::new();
        let created = json!({"type":"session.created","properties":{"info":{"id":"ses_child","parentID":"ses_1","title":"sub"}}});
        assert_eq!(o.hook(&created, Some("ses_1")).effect, Effect::Noise);
        let idle = o.hook(
            &json!({"type":"session.idle","properties":{"sessionID":"ses_child"}}),
            Some("ses_1"),
        );
        assert_eq!((idle.effect, idle.agent_session_id), (Effect::Noise, None));
        let running = json!({"type":"message.part.updated","properties":{"part":{"sessionID":"ses_child","type":"tool","tool":"bash","state":{"status":"running","input":{"command":"ls"}}}}});
        assert_eq!(o.hook(&running, Some("ses_1")).effect, Effect::Noise);
        let asked = json!({"type":"permission.asked","properties":{"id":"per_9","sessionID":"ses_child","permission":"bash","metadata":{"command":"rm x"}}});
        let asked = o.hook(&asked, Some("ses_1"));
        assert!(matches!(
            asked.effect,
            Effect::State {
                kind: StateKind::WaitingPermission,
                ..
            }
        ));
        assert_eq!(asked.agent_session_id, None);
        // The parent's own events count as ever.
        let own = o.hook(
            &json!({"type":"session.idle","properties":{"sessionID":"ses_1"}}),
            Some("ses_1"),
        );
        assert_eq!(own.effect, Effect::state(StateKind::Idle));
    }

    #[test]
    fn maps_the_event_stream() {
        let o = OpenCode::new();
        let asked = json!({"type":"permission.asked","properties":{"id":"per_1","sessionID":"ses_1","permission":"bash","metadata":{"command":"rm x"}}});
        let e = o.hook(&asked, None);
        assert_eq!(e.request_id.as_deref(), Some("per_1"));
        assert_eq!(e.agent_session_id.as_deref(), Some("ses_1"));
        assert_eq!(
            e.effect,
            Effect::tool(
                StateKind::WaitingPermission,
                Some("bash".into()),
                Some("rm x".into())
            )
        );
        let running = json!({"type":"message.part.updated","properties":{"part":{"type":"tool","tool":"bash","state":{"status":"running","input":{"command":"ls"}}}}});
        assert_eq!(
            o.hook(&running, None).effect,
            Effect::tool(StateKind::Tool, Some("bash".into()), Some("ls".into()))
        );
        let error = json!({"type":"session.error","properties":{"error":{"name":"APIError","data":{"message":"mock bad request"}}}});
        assert!(matches!(
            o.hook(&error, None).effect,
            Effect::State {
                kind: StateKind::Error,
                ..
            }
        ));
        assert_eq!(
            o.hook(&json!({"type":"server.heartbeat","properties":{}}), None)
                .effect,
            Effect::Noise
        );
        let replied = |reply: &str| {
            o.hook(
                &json!({"type":"permission.replied","properties":{"sessionID":"ses_1","requestID":"per_1","reply":reply}}),
                None,
            )
            .effect
        };
        assert_eq!(replied("once"), Effect::Answered { approve: true });
        assert_eq!(replied("reject"), Effect::Answered { approve: false });
        assert_eq!(
            o.answer_request("per_1", false),
            Some((
                "/permission/per_1/reply".to_owned(),
                json!({"reply":"reject"})
            ))
        );
    }
}
