//! OpenCode: started with its embedded server on a loopback port; its state is read
//! from the screen. (Its event stream and `POST /permission/{id}/reply` are the planned
//! authority; see ARCHITECTURE.md.)

use std::sync::LazyLock;

use serde_json::Value;

use super::{Adapter, AgentError, Cues, Effect, HookEvent, Launch, LaunchCtx};

static CUES: LazyLock<Cues> = LazyLock::new(|| {
    Cues::new(&[r"△ Permission required"], &[], &[r"esc interrupt"])
        .expect("built-in patterns compile")
});

#[derive(Debug, Default)]
pub struct OpenCode;

impl OpenCode {
    pub fn new() -> Self {
        OpenCode
    }
}

impl Adapter for OpenCode {
    fn name(&self) -> &str {
        "opencode"
    }

    fn launch(&self, ctx: &LaunchCtx<'_>) -> Result<Launch, AgentError> {
        let mut args = Vec::new();
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
        })
    }

    fn has_hooks(&self) -> bool {
        false
    }

    fn hook(&self, _p: &Value, _known_session: Option<&str>) -> HookEvent {
        HookEvent {
            name: "?".into(),
            agent_session_id: None,
            effect: Effect::ignore("OpenCode reports through its event stream, not hooks"),
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
