//! Claude Code 2.1.332: `--settings` hooks, the transcript JSONL under
//! `projects/<slug>/<session>.jsonl`, and its screens.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::hooks::{self, Outcome, TimeoutUnit};
use crate::term::{Input, Key};
use crate::util::{self, iso_now, rand_alnum, uuid_v4};
use crate::{API_ERROR, Answer, Args, Cx, Flavour, Pre, ToolCall, View};

const VERSION: &str = "2.1.332";
const REJECTED: &str = "The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file edit, the new_string was NOT written to the file). STOP what you are doing and wait for the user to tell you how to proceed.";
const INTERRUPTED_TOOL: &str = "[Request interrupted by user for tool use]";
const INTERRUPTED: &str = "Interrupted · What should Claude do instead?";

// Fixed usage of every API response.
const IN: u64 = 1000;
const OUT: u64 = 50;
const WRITE: u64 = 2000;
const READ: u64 = 3000;

pub struct Claude {
    transcript: PathBuf,
    /// `permission_mode` as hooks report it.
    permission_mode: String,
    mode_label: Option<&'static str>,
    bypass: bool,
    source: &'static str,
    last_uuid: Option<String>,
    prompt_id: Option<String>,
    branch: String,
    responses: u64,
    api_ms: u64,
    tool_ms: u64,
    idle_ms: u64,
    step_ms: u64,
}

fn config_dir() -> PathBuf {
    std::env::var_os("CLAUDE_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| util::home().join(".claude"))
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn usage() -> Value {
    json!({
        "input_tokens": IN,
        "cache_creation_input_tokens": WRITE,
        "cache_read_input_tokens": READ,
        "output_tokens": OUT,
        "output_tokens_details": {"thinking_tokens": 0},
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": WRITE},
        "speed": "standard"
    })
}

fn tool_input(t: &ToolCall) -> Value {
    if t.name == "Bash" {
        json!({"command": t.arg, "description": format!("Run {}", t.arg)})
    } else {
        json!({"command": t.arg})
    }
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), extra) {
        a.extend(b);
    }
}

impl Claude {
    pub fn start(args: &[String], cx: &mut Cx) -> (Box<dyn Flavour>, Option<String>) {
        let a = Args::parse(
            args,
            &[
                "--settings",
                "--session-id",
                "--resume",
                "-r",
                "--permission-mode",
                "--model",
                "--append-system-prompt",
                "--system-prompt",
                "--append-system-prompt-file",
                "--system-prompt-file",
                "-n",
                "--name",
                "--mcp-config",
                "--allowedTools...",
                "--allowed-tools...",
                "--disallowedTools...",
                "--disallowed-tools...",
                "--add-dir...",
                "--fallback-model",
                "--output-format",
                "--input-format",
                "--agent",
                "--agents",
                "--setting-sources",
                "--max-turns",
                "--plugin-dir",
                "--effort",
                "--betas",
            ],
        );

        // Settings: user, project, local, then --settings; hook arrays are additive.
        let mut settings = Vec::new();
        settings.extend(read_json(&config_dir().join("settings.json")));
        settings.extend(read_json(&cx.cwd.join(".claude/settings.json")));
        settings.extend(read_json(&cx.cwd.join(".claude/settings.local.json")));
        if let Some(s) = a.value(&["--settings"]) {
            let v = if s.trim_start().starts_with('{') {
                serde_json::from_str(s).ok()
            } else {
                read_json(Path::new(s))
            };
            settings.extend(v);
        }
        let disabled = settings
            .iter()
            .any(|s| s.get("disableAllHooks") == Some(&Value::Bool(true)));
        if !disabled {
            for s in &settings {
                if let Some(h) = s.get("hooks") {
                    cx.hooks
                        .add_json(h, TimeoutUnit::Seconds, Duration::from_secs(600));
                }
            }
        }
        let default_mode = settings.iter().rev().find_map(|s| {
            s.pointer("/permissions/defaultMode")?
                .as_str()
                .map(str::to_owned)
        });

        cx.model = a
            .value(&["--model"])
            .map(str::to_owned)
            .or_else(|| {
                std::env::var("ANTHROPIC_MODEL")
                    .ok()
                    .filter(|m| !m.is_empty())
            })
            .unwrap_or_else(|| "claude-sonnet-4-5".into());

        let project = config_dir()
            .join("projects")
            .join(util::claude_slug(&cx.cwd));
        let mut source = "startup";
        cx.session_id = if let Some(id) = a.value(&["--resume", "-r"]) {
            source = "resume";
            cx.resumed = Some(id.to_owned());
            id.to_owned()
        } else if a.flag(&["-c", "--continue"]) {
            match latest_session(&project) {
                Some(id) => {
                    source = "resume";
                    cx.resumed = Some(id.clone());
                    id
                }
                None => uuid_v4(),
            }
        } else if let Some(id) = a.value(&["--session-id"]) {
            id.to_owned()
        } else {
            uuid_v4()
        };

        let mode = a
            .value(&["--permission-mode"])
            .map(str::to_owned)
            .or(default_mode);
        let (permission_mode, mode_label) = match mode.as_deref() {
            None | Some("default") => ("default".to_owned(), None),
            Some("manual") => ("default".to_owned(), Some("⏸ manual mode on")),
            Some("acceptEdits") => ("acceptEdits".to_owned(), Some("⏵⏵ accept edits on")),
            Some("bypassPermissions") => (
                "bypassPermissions".to_owned(),
                Some("⏵⏵ bypass permissions on"),
            ),
            Some("plan") => ("plan".to_owned(), Some("⏸ plan mode on")),
            Some("auto") => ("auto".to_owned(), Some("⏵⏵ auto mode on")),
            Some(other) => (other.to_owned(), None),
        };

        cx.hooks.env.push((
            "CLAUDE_PROJECT_DIR".into(),
            cx.cwd.to_string_lossy().into_owned(),
        ));
        let transcript = project.join(format!("{}.jsonl", cx.session_id));
        let me = Claude {
            bypass: permission_mode == "bypassPermissions",
            permission_mode,
            mode_label,
            source,
            last_uuid: None,
            prompt_id: None,
            branch: util::git_branch(&cx.cwd).unwrap_or_default(),
            responses: 0,
            api_ms: 0,
            tool_ms: 0,
            idle_ms: util::env_ms("FAKE_IDLE_NOTIFY_MS", 60_000),
            step_ms: util::env_ms("FAKE_STEP_MS", 50),
            transcript,
        };
        let prompt = a.positional.first().cloned();
        (Box::new(me), prompt)
    }

    fn payload(&self, cx: &Cx, event: &str, extra: Value) -> Value {
        let mut v = json!({
            "session_id": cx.session_id,
            "transcript_path": self.transcript.to_string_lossy(),
            "cwd": cx.cwd.to_string_lossy(),
            "hook_event_name": event,
            "permission_mode": self.permission_mode,
        });
        if let Some(p) = &self.prompt_id {
            v["prompt_id"] = json!(p);
        }
        merge(&mut v, extra);
        v
    }

    fn fire(&self, cx: &Cx, event: &str, subject: Option<&str>, extra: Value) -> Vec<Outcome> {
        if !cx.hooks.has(event) {
            return Vec::new();
        }
        cx.hooks
            .run(event, subject, &self.payload(cx, event, extra))
    }

    /// Append a chained transcript line.
    fn write(&mut self, cx: &Cx, line: Value) {
        let uuid = uuid_v4();
        let mut v = json!({
            "parentUuid": self.last_uuid,
            "isSidechain": false,
            "userType": "external",
            "cwd": cx.cwd.to_string_lossy(),
            "sessionId": cx.session_id,
            "version": VERSION,
            "gitBranch": self.branch,
            "uuid": uuid,
            "timestamp": iso_now(),
        });
        if let Some(p) = &self.prompt_id {
            v["promptId"] = json!(p);
        }
        merge(&mut v, line);
        util::append_line(&self.transcript, &v);
        self.last_uuid = Some(uuid);
    }

    /// One API response: a line per content block, same id, request id and usage.
    fn response(&mut self, cx: &Cx, blocks: Vec<Value>, stop_reason: &str) {
        let msg_id = format!("msg_01{}", rand_alnum(22));
        let req_id = format!("req_011C{}", rand_alnum(20));
        for b in blocks {
            let line = json!({
                "type": "assistant",
                "requestId": req_id,
                "requestedModel": cx.model,
                "message": {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": cx.model,
                    "content": [b],
                    "stop_reason": stop_reason,
                    "stop_sequence": null,
                    "usage": usage(),
                },
            });
            self.write(cx, line);
        }
        self.responses += 1;
        self.api_ms += self.step_ms;
    }

    fn user_text(&mut self, cx: &Cx, text: &str) {
        self.write(
            cx,
            json!({"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": text}]}}),
        );
    }

    fn tool_result(&mut self, cx: &Cx, t: &ToolCall, content: &str, is_error: bool, extra: Value) {
        let mut line = json!({
            "type": "user",
            "message": {"role": "user", "content": [{
                "tool_use_id": t.id, "type": "tool_result", "content": content, "is_error": is_error
            }]},
        });
        merge(&mut line, extra);
        self.write(cx, line);
    }

    fn options_text(&self, cx: &Cx, t: &ToolCall) -> [String; 4] {
        let first = t.arg.split_whitespace().next().unwrap_or(&t.arg);
        [
            "1. Yes".into(),
            format!(
                "2. Yes, and don't ask again for {first} commands in {}",
                cx.cwd.display()
            ),
            "3. Yes, and switch to auto mode".into(),
            "4. No".into(),
        ]
    }
}

fn latest_session(project: &Path) -> Option<String> {
    let entries = std::fs::read_dir(project).ok()?;
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max_by_key(|(m, _)| *m)
        .and_then(|(_, p)| Some(p.file_stem()?.to_string_lossy().into_owned()))
}

impl Flavour for Claude {
    fn header(&self, cx: &Cx) -> Vec<String> {
        let mut lines = crate::boxed(
            &[
                "✻ Welcome to Claude Code!".into(),
                String::new(),
                "  /help for help, /status for your current setup".into(),
                String::new(),
                format!("  cwd: {}", cx.cwd.display()),
            ],
            crate::width().min(60),
        );
        if let Some(id) = &cx.resumed {
            lines.push(format!(" resumed {id}"));
        }
        lines.push(String::new());
        lines
    }

    fn bottom(&self, cx: &Cx, view: &View<'_>) -> (Vec<String>, Option<(usize, usize)>) {
        let rule = "─".repeat(crate::width());
        let mut lines = vec![String::new()];
        let mut cursor = None;
        // Like the real one, a pasted block of lines shows collapsed, not as its text.
        let shown = match cx.input.matches('\n').count() {
            0 => cx.input.clone(),
            breaks => format!("[Pasted text #1 +{breaks} lines]"),
        };
        let mut prompt_box = |lines: &mut Vec<String>| {
            lines.push(rule.clone());
            cursor = Some((lines.len(), 2 + shown.chars().count()));
            lines.push(format!("❯ {shown}"));
            lines.push(rule.clone());
        };
        match view {
            View::Idle => {
                prompt_box(&mut lines);
                lines.push(format!(
                    "  {}",
                    self.mode_label.unwrap_or("? for shortcuts")
                ));
            }
            View::Busy(_) => {
                let label = cx.activity.as_deref().unwrap_or("✢ Leavening…");
                lines.push(format!("{label} (esc to interrupt)"));
                lines.push(String::new());
                prompt_box(&mut lines);
                match self.mode_label {
                    Some(m) => lines.push(format!("  {m} · esc to interrupt")),
                    None => lines.push("  esc to interrupt".into()),
                }
            }
            View::Dialog(t, sel) => {
                lines.push(rule.clone());
                lines.push(if t.name == "Bash" {
                    " Bash command".into()
                } else {
                    format!(" {}", t.name)
                });
                lines.push(String::new());
                lines.push(format!("   {}", t.arg));
                lines.push(format!("   Run {}", t.arg));
                lines.push(String::new());
                lines.push(" This command requires approval".into());
                lines.push(String::new());
                lines.push(" Do you want to proceed?".into());
                for (i, o) in self.options_text(cx, t).iter().enumerate() {
                    let mark = if i == *sel { "❯" } else { " " };
                    lines.push(format!(" {mark} {o}"));
                }
                lines.push(String::new());
                lines.push(" Esc to cancel · Tab to amend".into());
            }
        }
        (lines, cursor)
    }

    fn options(&self) -> &'static [Answer] {
        &[Answer::Once, Answer::Always, Answer::Once, Answer::Reject]
    }

    fn answer_key(&self, key: &Key) -> Option<Answer> {
        match key {
            Key::Char('1' | '3') => Some(Answer::Once),
            Key::Char('2') => Some(Answer::Always),
            Key::Char('4') => Some(Answer::Reject),
            _ => None,
        }
    }

    fn bypass(&self) -> bool {
        self.bypass
    }

    fn tool_id(&self) -> String {
        format!("toolu_01{}", rand_alnum(22))
    }

    fn goodbye(&self, cx: &Cx) -> String {
        format!(
            "Resume this session with:\r\nclaude --resume {}",
            cx.session_id
        )
    }

    fn session_start(&mut self, cx: &mut Cx) {
        let mut extra = json!({"source": self.source, "model": cx.model});
        if self.source == "resume" {
            let since = std::fs::metadata(&self.transcript)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .map_or(0, |d| d.as_secs());
            merge(
                &mut extra,
                json!({
                    "context_tokens": IN + WRITE + READ,
                    "seconds_since_last_response": since,
                    "estimated_cache_write_usd": 0.0,
                }),
            );
        }
        let source = self.source;
        self.fire(cx, "SessionStart", Some(source), extra);
    }

    fn prompt(&mut self, cx: &mut Cx) -> Result<(), String> {
        self.prompt_id = Some(uuid_v4());
        let prompt = cx.turn.prompt.clone();
        cx.history.push(format!("> {prompt}"));
        let out = self.fire(
            cx,
            "UserPromptSubmit",
            None,
            json!({"prompt": prompt, "source": "user"}),
        );
        if let Some(reason) = hooks::blocked(&out, false) {
            return Err(reason);
        }
        util::append_line(
            &self.transcript,
            &json!({"type": "last-prompt", "lastPrompt": prompt, "sessionId": cx.session_id}),
        );
        self.write(
            cx,
            json!({"type": "user", "message": {"role": "user", "content": prompt}}),
        );
        Ok(())
    }

    fn tool_requested(&mut self, cx: &mut Cx, t: &ToolCall) {
        let text = format!("I'll run `{}`.", t.arg);
        self.response(
            cx,
            vec![
                json!({"type": "text", "text": text}),
                json!({"type": "tool_use", "id": t.id, "name": t.name, "input": tool_input(t)}),
            ],
            "tool_use",
        );
        cx.history.push(format!("⏺ {text}"));
        cx.history.push(format!("⏺ {}({})", t.name, t.arg));
    }

    fn tool_pre(&mut self, cx: &mut Cx, t: &ToolCall) -> Pre {
        let out = self.fire(
            cx,
            "PreToolUse",
            Some(&t.name),
            json!({"tool_name": t.name, "tool_input": tool_input(t), "tool_use_id": t.id}),
        );
        if let Some(reason) = hooks::blocked(&out, false) {
            return Pre::Block(reason);
        }
        let reason = hooks::specific(&out, &["permissionDecisionReason"])
            .and_then(Value::as_str)
            .unwrap_or("denied by PreToolUse hook")
            .to_owned();
        match hooks::specific(&out, &["permissionDecision"]).and_then(Value::as_str) {
            Some("allow") => Pre::Allow,
            Some("deny") => Pre::Block(reason),
            Some("ask") => Pre::Ask,
            _ => Pre::Continue,
        }
    }

    fn tool_blocked(&mut self, cx: &mut Cx, t: &ToolCall, reason: &str) {
        self.tool_result(
            cx,
            t,
            reason,
            true,
            json!({"toolUseResult": format!("Error: {reason}")}),
        );
        cx.history.push(format!("  ⎿  Blocked by hook: {reason}"));
    }

    /// The hook runs beside the dialog; whichever answers first wins.
    fn permission_asked(&mut self, cx: &mut Cx, t: &mut ToolCall) -> Option<Answer> {
        if !cx.hooks.has("PermissionRequest") {
            return None;
        }
        let first = t.arg.split_whitespace().next().unwrap_or(&t.arg).to_owned();
        let payload = self.payload(
            cx,
            "PermissionRequest",
            json!({
                "tool_name": t.name,
                "tool_input": tool_input(t),
                "permission_suggestions": [{
                    "type": "addRules",
                    "rules": [{"toolName": t.name, "ruleContent": format!("{first}:*")}],
                    "behavior": "allow",
                    "destination": "localSettings"
                }],
            }),
        );
        let (hooks, inputs, tool, tool_id) = (
            cx.hooks.clone(),
            cx.inputs.clone(),
            t.name.clone(),
            t.id.clone(),
        );
        std::thread::spawn(move || {
            let out = hooks.run("PermissionRequest", Some(&tool), &payload);
            let decision = hooks::specific(&out, &["decision", "behavior"]).and_then(Value::as_str);
            let message = || {
                hooks::specific(&out, &["decision", "message"])
                    .and_then(Value::as_str)
                    .unwrap_or("denied by PermissionRequest hook")
                    .to_owned()
            };
            let deny = match (hooks::blocked(&out, false), decision) {
                (Some(reason), _) => Some(reason),
                (None, Some("deny")) => Some(message()),
                (None, Some("allow")) => None,
                _ => return,
            };
            let _ = inputs.send(Input::HookDecision { tool_id, deny });
        });
        None
    }

    fn permission_waiting(&mut self, cx: &mut Cx, _t: &ToolCall) {
        self.fire(
            cx,
            "Notification",
            Some("permission_prompt"),
            json!({"message": "Claude needs your permission", "notification_type": "permission_prompt"}),
        );
    }

    fn tool_done(&mut self, cx: &mut Cx, t: &ToolCall, output: &str, duration_ms: u64) {
        let response = json!({
            "stdout": output, "stderr": "", "interrupted": false, "isImage": false, "noOutputExpected": false
        });
        let mut extra = json!({"toolUseResult": response});
        if t.asked {
            extra["permissionDecision"] = json!("allow");
        }
        self.tool_result(cx, t, output, false, extra);
        self.tool_ms += duration_ms;
        cx.history.push(format!("  ⎿  {output}"));
        self.fire(
            cx,
            "PostToolUse",
            Some(&t.name),
            json!({
                "tool_name": t.name,
                "tool_input": tool_input(t),
                "tool_response": response,
                "tool_use_id": t.id,
                "duration_ms": duration_ms,
            }),
        );
    }

    /// The user's "No" fires no hook.
    fn denied(&mut self, cx: &mut Cx, t: &ToolCall) {
        self.tool_result(
            cx,
            t,
            REJECTED,
            true,
            json!({"toolUseResult": "User rejected tool use", "permissionDecision": "deny"}),
        );
        self.user_text(cx, INTERRUPTED_TOOL);
        cx.history.push(format!("  ⎿  {INTERRUPTED}"));
    }

    fn interrupted(&mut self, cx: &mut Cx, t: Option<&ToolCall>) {
        if let Some(t) = t {
            self.tool_result(
                cx,
                t,
                INTERRUPTED_TOOL,
                true,
                json!({"toolUseResult": "Error: Interrupted by user"}),
            );
        }
        self.user_text(cx, INTERRUPTED_TOOL);
        cx.history.push(format!("  ⎿  {INTERRUPTED}"));
        self.prompt_id = None;
    }

    fn api_error(&mut self, cx: &mut Cx) {
        self.write(
            cx,
            json!({
                "type": "assistant",
                "isApiErrorMessage": true,
                "error": "unknown",
                "message": {
                    "id": uuid_v4(),
                    "type": "message",
                    "role": "assistant",
                    "model": "<synthetic>",
                    "content": [{"type": "text", "text": API_ERROR}],
                    "stop_reason": "stop_sequence",
                    "stop_sequence": "",
                    "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
                },
            }),
        );
        cx.history.push(format!("  ⎿  {API_ERROR}"));
        self.fire(
            cx,
            "StopFailure",
            Some("unknown"),
            json!({"error": "unknown", "last_assistant_message": API_ERROR}),
        );
        self.prompt_id = None;
    }

    fn compact_start(&mut self, cx: &mut Cx) {
        cx.activity = Some("✻ Compacting conversation…".into());
        self.fire(
            cx,
            "PreCompact",
            Some("manual"),
            json!({"trigger": "manual", "custom_instructions": ""}),
        );
    }

    fn compact_end(&mut self, cx: &mut Cx) {
        self.write(
            cx,
            json!({
                "type": "system",
                "subtype": "compact_boundary",
                "content": "Conversation compacted",
                "level": "info",
                "compactMetadata": {"trigger": "manual", "preTokens": IN + WRITE + READ},
            }),
        );
        let summary = "Summary of the conversation so far.";
        self.write(
            cx,
            json!({"type": "user", "isCompactSummary": true, "message": {"role": "user", "content": summary}}),
        );
        cx.history
            .push("✻ Conversation compacted (ctrl+o for history)".into());
        // The real 2.1.332 starts the new session before PostCompact.
        self.fire(
            cx,
            "SessionStart",
            Some("compact"),
            json!({"source": "compact", "model": cx.model}),
        );
        self.fire(
            cx,
            "PostCompact",
            Some("manual"),
            json!({"trigger": "manual", "compact_summary": summary}),
        );
    }

    fn turn_done(&mut self, cx: &mut Cx, reply: &str, bg: bool) -> Option<Duration> {
        self.response(
            cx,
            vec![
                json!({"type": "thinking", "thinking": "The user wants a reply.", "signature": rand_alnum(32)}),
                json!({"type": "text", "text": reply}),
            ],
            "end_turn",
        );
        let secs = cx.turn.started.elapsed().as_secs();
        cx.history.push(format!("⏺ {reply}"));
        cx.history.push(format!("✻ Cooked for {secs}s"));
        let background = if bg {
            json!([{"id": "bash_1", "type": "shell", "status": "running", "description": "Wait five seconds", "command": "sleep 5"}])
        } else {
            json!([])
        };
        self.fire(
            cx,
            "Stop",
            None,
            json!({
                "stop_hook_active": false,
                "last_assistant_message": reply,
                "background_tasks": background,
                "session_crons": [],
            }),
        );
        self.write(
            cx,
            json!({"type": "system", "subtype": "turn_duration", "durationMs": cx.turn.started.elapsed().as_millis() as u64, "isMeta": false}),
        );
        self.prompt_id = None;
        Some(Duration::from_millis(if bg { 200 } else { self.idle_ms }))
    }

    fn stream_part(&mut self, cx: &mut Cx, i: u64) {
        let text = format!("streamed part {i}");
        self.response(cx, vec![json!({"type": "text", "text": text})], "end_turn");
        cx.history.push(text);
    }

    fn idle_notify(&mut self, cx: &mut Cx) {
        self.fire(
            cx,
            "Notification",
            Some("idle_prompt"),
            json!({"message": "Claude is waiting for your input", "notification_type": "idle_prompt"}),
        );
    }

    fn session_end(&mut self, cx: &mut Cx) {
        self.prompt_id = None;
        self.fire(
            cx,
            "SessionEnd",
            Some("prompt_input_exit"),
            json!({"reason": "prompt_input_exit"}),
        );
        if self.responses > 0 {
            let n = self.responses;
            let cost = util::claude_cost(&cx.model, IN, OUT, WRITE, READ) * n as f64;
            let mut model_usage = serde_json::Map::new();
            model_usage.insert(
                cx.model.clone(),
                json!({
                    "inputTokens": IN * n,
                    "outputTokens": OUT * n,
                    "cacheReadInputTokens": READ * n,
                    "cacheCreationInputTokens": WRITE * n,
                    "cacheCreationEphemeral5mInputTokens": WRITE * n,
                    "cacheCreationEphemeral1hInputTokens": 0,
                    "costUSD": cost,
                }),
            );
            util::append_line(
                &self.transcript,
                &json!({
                    "type": "cost-state",
                    "sessionId": cx.session_id,
                    "totalCostUSD": cost,
                    "totalAPIDuration": self.api_ms,
                    "totalToolDuration": self.tool_ms,
                    "modelUsage": model_usage,
                }),
            );
        }
    }
}
