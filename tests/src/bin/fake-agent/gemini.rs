//! Gemini CLI 0.61.0: hooks from `$GEMINI_CLI_SYSTEM_SETTINGS_PATH`, the session JSONL
//! under `~/.gemini/tmp/<slug>/chats/`, and its screens.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::hooks::{self, Outcome, TimeoutUnit};
use crate::term::Key;
use crate::util::{self, iso_now, uuid_v4};
use crate::{API_ERROR, Answer, Args, Cx, Flavour, Pre, ToolCall, View};

const VERSION: &str = "0.61.0";

// Fixed usage of every API response (input includes cached).
const IN: u64 = 4000;
const CACHED: u64 = 3000;
const OUT: u64 = 50;

pub struct Gemini {
    file: PathBuf,
    new_file: bool,
    bypass: bool,
    source: &'static str,
    branch: String,
    /// The model message of the tool step in progress (re-appended when updated).
    step: Option<Value>,
}

/// The file is ignored when any ancestor directory is group- or world-writable.
fn settings_path_is_safe(path: &Path) -> bool {
    if std::env::var("FAKE_GEMINI_SKIP_SETTINGS_CHECK").is_ok_and(|v| v == "1") {
        return true;
    }
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut dir = abs.parent();
    while let Some(d) = dir {
        match std::fs::metadata(d) {
            Ok(m) if m.permissions().mode() & 0o022 != 0 => return false,
            Ok(_) => {}
            Err(_) => return false,
        }
        dir = d.parent();
    }
    true
}

/// The project's short name from `~/.gemini/projects.json`, registering it if new.
fn project_slug(gemini_dir: &Path, cwd: &Path) -> String {
    let path = gemini_dir.join("projects.json");
    let mut doc: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| json!({"projects": {}}));
    let key = cwd.to_string_lossy().into_owned();
    if let Some(s) = doc
        .get("projects")
        .and_then(|p| p.get(&key))
        .and_then(Value::as_str)
    {
        return s.to_owned();
    }
    let base: String = cwd
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_else(|| "root".into())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let taken: Vec<String> = doc
        .get("projects")
        .and_then(Value::as_object)
        .map(|m| {
            m.values()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut slug = base.clone();
    let mut n = 1;
    while taken.contains(&slug) {
        slug = format!("{base}-{n}");
        n += 1;
    }
    if !doc.get("projects").is_some_and(Value::is_object) {
        doc["projects"] = json!({});
    }
    doc["projects"][key] = json!(slug);
    let _ = std::fs::create_dir_all(gemini_dir);
    let _ = std::fs::write(&path, doc.to_string());
    slug
}

/// Session files in `chats`, newest first, with their session ids.
fn sessions(chats: &Path) -> Vec<(PathBuf, String)> {
    let mut found: Vec<(std::time::SystemTime, PathBuf, String)> = std::fs::read_dir(chats)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let name = p.file_name()?.to_string_lossy().into_owned();
            if !name.starts_with("session-") || !name.ends_with(".jsonl") {
                return None;
            }
            let first = std::fs::read_to_string(&p).ok()?.lines().next()?.to_owned();
            let id = serde_json::from_str::<Value>(&first)
                .ok()?
                .get("sessionId")?
                .as_str()?
                .to_owned();
            Some((e.metadata().ok()?.modified().ok()?, p, id))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.into_iter().map(|(_, p, id)| (p, id)).collect()
}

fn tool_name(name: &str) -> String {
    match name {
        "Bash" => "run_shell_command",
        "Read" => "read_file",
        "Edit" => "replace",
        "Write" => "write_file",
        "Grep" => "search_file_content",
        "Glob" => "glob",
        other => other,
    }
    .to_owned()
}

fn display_name(name: &str) -> String {
    match name {
        "Bash" => "Shell",
        "Read" => "ReadFile",
        "Write" => "WriteFile",
        "Grep" => "SearchText",
        "Glob" => "FindFiles",
        other => other,
    }
    .to_owned()
}

fn tokens() -> Value {
    json!({"input": IN, "output": OUT, "cached": CACHED, "thoughts": 0, "tool": 0, "total": IN + OUT})
}

impl Gemini {
    pub fn start(args: &[String], cx: &mut Cx) -> (Box<dyn Flavour>, Option<String>) {
        let a = Args::parse(
            args,
            &[
                "-i",
                "--prompt-interactive",
                "--session-id",
                "-r",
                "--resume",
                "--approval-mode",
                "-m",
                "--model",
                "-p",
                "--prompt",
                "-o",
                "--output-format",
                "-e",
                "--extensions",
                "--include-directories",
                "--allowed-tools",
                "--allowed-mcp-server-names",
                "--session-file",
            ],
        );
        if let Some(path) = std::env::var_os("GEMINI_CLI_SYSTEM_SETTINGS_PATH") {
            let path = PathBuf::from(path);
            if settings_path_is_safe(&path) {
                let settings: Option<Value> = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| serde_json::from_str(&s).ok());
                if let Some(s) = settings {
                    let enabled = s.pointer("/hooksConfig/enabled") != Some(&Value::Bool(false));
                    if let (true, Some(h)) = (enabled, s.get("hooks")) {
                        cx.hooks
                            .add_json(h, TimeoutUnit::Millis, Duration::from_millis(60_000));
                    }
                }
            }
        }
        cx.model = a
            .value(&["-m", "--model"])
            .unwrap_or("gemini-3.1-pro-preview")
            .to_owned();
        let gemini_dir = util::home().join(".gemini");
        let slug = project_slug(&gemini_dir, &cx.cwd);
        let chats = gemini_dir.join("tmp").join(slug).join("chats");

        let mut source = "startup";
        let mut file = None;
        cx.session_id = if let Some(r) = a.value(&["-r", "--resume"]) {
            source = "resume";
            let known = sessions(&chats);
            let found = if r == "latest" {
                known.first().cloned()
            } else if let Ok(n) = r.parse::<usize>() {
                // 1-based index, oldest first (as --list-sessions numbers them).
                let mut oldest = known.clone();
                oldest.reverse();
                n.checked_sub(1).and_then(|i| oldest.get(i).cloned())
            } else {
                known.iter().find(|(_, id)| id == r).cloned()
            };
            let id = match found {
                Some((p, id)) => {
                    file = Some(p);
                    id
                }
                None if r.len() == 36 => r.to_owned(),
                None => uuid_v4(),
            };
            cx.resumed = Some(id.clone());
            id
        } else if let Some(id) = a.value(&["--session-id"]) {
            id.to_owned()
        } else {
            uuid_v4()
        };
        if file.is_none() {
            file = sessions(&chats)
                .into_iter()
                .find(|(_, id)| *id == cx.session_id)
                .map(|(p, _)| p);
        }
        let new_file = file.is_none();
        let file = file.unwrap_or_else(|| {
            let (y, mo, d, h, mi, _) = util::civil_utc((util::now_ms() / 1000) as i64);
            let short: String = cx.session_id.chars().take(8).collect();
            chats.join(format!(
                "session-{y:04}-{mo:02}-{d:02}T{h:02}-{mi:02}-{short}.jsonl"
            ))
        });
        let mode = a.value(&["--approval-mode"]).unwrap_or("default");
        let bypass = mode == "yolo" || a.flag(&["-y", "--yolo"]);
        let cwd = cx.cwd.to_string_lossy().into_owned();
        cx.hooks.env.extend([
            ("GEMINI_PROJECT_DIR".to_owned(), cwd.clone()),
            ("CLAUDE_PROJECT_DIR".to_owned(), cwd.clone()),
            ("GEMINI_CWD".to_owned(), cwd),
            ("GEMINI_SESSION_ID".to_owned(), cx.session_id.clone()),
        ]);
        let prompt = a
            .value(&["-i", "--prompt-interactive", "-p", "--prompt"])
            .map(str::to_owned)
            .or_else(|| a.positional.first().cloned());
        let me = Gemini {
            file,
            new_file,
            bypass,
            source,
            branch: util::git_branch(&cx.cwd).unwrap_or_default(),
            step: None,
        };
        (Box::new(me), prompt)
    }

    /// `AfterTool` for call `t`, with its response.
    fn after_tool(&self, cx: &Cx, t: &ToolCall, response: Value) {
        let name = tool_name(&t.name);
        self.fire(
            cx,
            "AfterTool",
            Some(&name),
            json!({"tool_name": name, "tool_input": Self::tool_input(t), "tool_response": response}),
        );
    }

    fn fire(&self, cx: &Cx, event: &str, subject: Option<&str>, extra: Value) -> Vec<Outcome> {
        if !cx.hooks.has(event) {
            return Vec::new();
        }
        let mut v = json!({
            "session_id": cx.session_id,
            "transcript_path": self.file.to_string_lossy(),
            "cwd": cx.cwd.to_string_lossy(),
            "hook_event_name": event,
            "timestamp": iso_now(),
        });
        if let (Some(a), Value::Object(b)) = (v.as_object_mut(), extra) {
            a.extend(b);
        }
        cx.hooks.run(event, subject, &v)
    }

    fn record(&self, v: &Value) {
        util::append_line(&self.file, v);
        util::append_line(&self.file, &json!({"$set": {"lastUpdated": iso_now()}}));
    }

    fn update_step(&mut self, status: &str, result: Option<Value>) {
        if let Some(mut step) = self.step.take() {
            step["timestamp"] = json!(iso_now());
            if let Some(call) = step.pointer_mut("/toolCalls/0") {
                call["status"] = json!(status);
                if let Some(r) = result {
                    call["result"] = r;
                }
            }
            self.record(&step);
        }
    }

    fn tool_input(t: &ToolCall) -> Value {
        if t.name == "Bash" {
            json!({"command": t.arg, "description": format!("Run {}", t.arg)})
        } else {
            json!({"command": t.arg})
        }
    }
}

impl Flavour for Gemini {
    fn header(&self, cx: &Cx) -> Vec<String> {
        let mut lines = vec![
            format!(" ███ Gemini CLI v{VERSION}"),
            String::new(),
            "Tips for getting started:".into(),
            "1. Ask questions, edit files, or run commands.".into(),
            "2. Be specific for the best results.".into(),
        ];
        if let Some(id) = &cx.resumed {
            lines.push(format!("resumed {id}"));
        }
        lines.push(String::new());
        lines
    }

    fn bottom(&self, cx: &Cx, view: &View<'_>) -> (Vec<String>, Option<(usize, usize)>) {
        let w = crate::width();
        let mut lines = Vec::new();
        let branch = if self.branch.is_empty() {
            String::new()
        } else {
            format!(" ({}*)", self.branch)
        };
        let footer = format!(
            "{}{branch}   no sandbox   {} (100% context left)",
            cx.cwd.display(),
            cx.model
        );
        let input_box = |lines: &mut Vec<String>| -> (usize, usize) {
            let text = if cx.input.is_empty() {
                ">   Type your message or @path/to/file".to_owned()
            } else {
                format!("> {}", cx.input)
            };
            let at = (lines.len() + 1, 4 + cx.input.chars().count());
            lines.extend(crate::boxed(&[text], w));
            at
        };
        let cursor = match view {
            View::Idle => {
                let c = input_box(&mut lines);
                lines.push(footer);
                Some(c)
            }
            View::Busy(elapsed) => {
                let label = cx.activity.as_deref().unwrap_or("Thinking...");
                lines.push(format!("⠹ {label} (esc to cancel, {}s)", elapsed.as_secs()));
                lines.push(String::new());
                let c = input_box(&mut lines);
                lines.push(footer);
                Some(c)
            }
            View::Dialog(t, sel) => {
                let shown = display_name(&t.name);
                let opts = [
                    "1. Allow once",
                    "2. Allow for this session",
                    "3. No, suggest changes (esc)",
                ];
                let mut body = vec![
                    format!("? {shown} {}", t.arg),
                    String::new(),
                    t.arg.clone(),
                    String::new(),
                    format!("Allow execution of [{shown}]?"),
                    String::new(),
                ];
                for (i, o) in opts.iter().enumerate() {
                    let mark = if i == *sel { "●" } else { " " };
                    body.push(format!("{mark} {o}"));
                }
                lines.extend(crate::boxed(&body, w));
                None
            }
        };
        (lines, cursor)
    }

    fn options(&self) -> &'static [Answer] {
        &[Answer::Once, Answer::Always, Answer::Reject]
    }

    fn answer_key(&self, key: &Key) -> Option<Answer> {
        match key {
            Key::Char('1') => Some(Answer::Once),
            Key::Char('2') => Some(Answer::Always),
            Key::Char('3') => Some(Answer::Reject),
            _ => None,
        }
    }

    fn bypass(&self) -> bool {
        self.bypass
    }

    fn tool_id(&self) -> String {
        format!("{}-{}", util::now_ms(), util::rand_alnum(12).to_lowercase())
    }

    fn session_start(&mut self, cx: &mut Cx) {
        if self.new_file {
            self.new_file = false;
            let now = iso_now();
            util::append_line(
                &self.file,
                &json!({
                    "sessionId": cx.session_id,
                    "projectHash": util::sha256_hex(cx.cwd.to_string_lossy().as_bytes()),
                    "startTime": now,
                    "lastUpdated": now,
                    "kind": "main",
                }),
            );
        }
        let source = self.source;
        self.fire(cx, "SessionStart", Some(source), json!({"source": source}));
    }

    fn prompt(&mut self, cx: &mut Cx) -> Result<(), String> {
        let prompt = cx.turn.prompt.clone();
        cx.history.push(format!("> {prompt}"));
        let out = self.fire(cx, "BeforeAgent", None, json!({"prompt": prompt}));
        if let Some(reason) = hooks::blocked(&out, true) {
            return Err(reason);
        }
        self.record(&json!({
            "id": uuid_v4(),
            "timestamp": iso_now(),
            "type": "user",
            "content": [{"text": prompt}],
        }));
        self.fire(cx, "PreCompress", Some("auto"), json!({"trigger": "auto"}));
        Ok(())
    }

    fn tool_requested(&mut self, cx: &mut Cx, t: &ToolCall) {
        let name = tool_name(&t.name);
        let step = json!({
            "id": uuid_v4(),
            "timestamp": iso_now(),
            "type": "gemini",
            "content": "",
            "thoughts": [],
            "tokens": tokens(),
            "model": cx.model,
            "toolCalls": [{
                "id": format!("{name}-{}", t.id),
                "name": name,
                "args": Self::tool_input(t),
                "status": "scheduled",
                "timestamp": iso_now(),
            }],
        });
        self.record(&step);
        self.step = Some(step);
    }

    fn tool_pre(&mut self, cx: &mut Cx, t: &ToolCall) -> Pre {
        let name = tool_name(&t.name);
        let out = self.fire(
            cx,
            "BeforeTool",
            Some(&name),
            json!({"tool_name": name, "tool_input": Self::tool_input(t)}),
        );
        match hooks::blocked(&out, true) {
            Some(reason) => Pre::Block(reason),
            None => Pre::Continue,
        }
    }

    fn tool_blocked(&mut self, cx: &mut Cx, t: &ToolCall, reason: &str) {
        self.update_step("error", Some(json!([{"error": reason}])));
        cx.history
            .push(format!("✕  {} {} ({reason})", display_name(&t.name), t.arg));
    }

    fn permission_asked(&mut self, cx: &mut Cx, t: &mut ToolCall) -> Option<Answer> {
        let shell = t.name == "Bash";
        let title = if shell {
            "Confirm Shell Command".to_owned()
        } else {
            format!("Confirm {}", display_name(&t.name))
        };
        let root = t.arg.split_whitespace().next().unwrap_or(&t.arg).to_owned();
        let details = if shell {
            json!({"type": "exec", "title": title, "command": t.arg, "rootCommand": root})
        } else {
            json!({"type": "info", "title": title, "prompt": t.arg})
        };
        if let Some(call) = self
            .step
            .as_mut()
            .and_then(|s| s.pointer_mut("/toolCalls/0"))
        {
            call["status"] = json!("awaiting_approval");
        }
        self.fire(
            cx,
            "Notification",
            Some("ToolPermission"),
            json!({
                "notification_type": "ToolPermission",
                "message": format!("Tool {title} requires execution"),
                "details": details,
            }),
        );
        None
    }

    fn tool_done(&mut self, cx: &mut Cx, t: &ToolCall, output: &str, _duration_ms: u64) {
        let name = tool_name(&t.name);
        self.update_step(
            "success",
            Some(json!([{"functionResponse": {"id": format!("{name}-{}", t.id), "name": name, "response": {"output": output}}}])),
        );
        cx.history
            .push(format!("✓  {} {}", display_name(&t.name), t.arg));
        cx.history.push(format!("   {output}"));
        self.after_tool(
            cx,
            t,
            json!({"llmContent": output, "returnDisplay": output}),
        );
    }

    fn denied(&mut self, cx: &mut Cx, t: &ToolCall) {
        self.update_step("cancelled", None);
        cx.history
            .push(format!("-  {} {}", display_name(&t.name), t.arg));
        cx.history.push("ℹ Request cancelled.".into());
    }

    fn interrupted(&mut self, cx: &mut Cx, t: Option<&ToolCall>) {
        self.update_step("cancelled", None);
        self.record(&json!({"id": uuid_v4(), "timestamp": iso_now(), "type": "info", "content": "Request cancelled."}));
        cx.history.push("ℹ Request cancelled.".into());
        // The real one ends a running shell call with its cancel text (`shell.ts`).
        if let Some(t) = t.filter(|t| t.running) {
            self.after_tool(
                cx,
                t,
                json!({
                    "llmContent": "Command was cancelled by user before it could complete. There was no output before it was cancelled.",
                    "returnDisplay": "Command cancelled by user.",
                    "error": null,
                }),
            );
        }
    }

    fn api_error(&mut self, cx: &mut Cx) {
        let text = format!("[{API_ERROR}]");
        self.record(
            &json!({"id": uuid_v4(), "timestamp": iso_now(), "type": "error", "content": text}),
        );
        cx.history.push(format!("✕ {text}"));
        let prompt = cx.turn.prompt.clone();
        self.fire(
            cx,
            "AfterAgent",
            None,
            json!({"prompt": prompt, "prompt_response": "", "stop_hook_active": false}),
        );
    }

    fn compact_start(&mut self, cx: &mut Cx) {
        cx.activity = Some("Compacting conversation…".into());
        self.fire(
            cx,
            "PreCompress",
            Some("manual"),
            json!({"trigger": "manual"}),
        );
    }

    fn compact_end(&mut self, cx: &mut Cx) {
        cx.history.push("✦ Chat history compressed.".into());
    }

    fn turn_done(&mut self, cx: &mut Cx, reply: &str, _bg: bool) -> Option<Duration> {
        self.record(&json!({
            "id": uuid_v4(),
            "timestamp": iso_now(),
            "type": "gemini",
            "content": reply,
            "thoughts": [],
            "tokens": tokens(),
            "model": cx.model,
        }));
        cx.history.push(format!("✦ {reply}"));
        let prompt = cx.turn.prompt.clone();
        self.fire(
            cx,
            "AfterAgent",
            None,
            json!({"prompt": prompt, "prompt_response": reply, "stop_hook_active": false}),
        );
        None
    }

    fn session_end(&mut self, cx: &mut Cx) {
        self.fire(cx, "SessionEnd", Some("exit"), json!({"reason": "exit"}));
    }
}
