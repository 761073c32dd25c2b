//! Codex CLI 0.169.0: `-c` TOML overrides (hooks behind the trust gate, `notify`), the
//! rollout JSONL under `sessions/YYYY/MM/DD/`, and its screens.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::hooks::{self, Outcome, TimeoutUnit};
use crate::term::Key;
use crate::util::{self, iso_now, rand_alnum, uuid_v7};
use crate::{API_ERROR, Answer, Args, Cx, Flavour, Pre, ToolCall, View};

const VERSION: &str = "0.169.0";
const CONTEXT_WINDOW: u64 = 258_400;
/// The command `@bg` leaves running in a background terminal.
const BACKGROUND_COMMAND: &str = "sleep 5";
/// The sub-agent tool as Codex's hooks name it (namespace and name run together).
const SPAWN_AGENT: &str = "collaborationspawn_agent";
const INTERRUPTED: &str = "■ Conversation interrupted - tell the model what to do differently. Something went wrong? Hit `/feedback` to report the issue.";

// Fixed usage of every API response (input includes cached).
const IN: u64 = 4000;
const CACHED: u64 = 3000;
const OUT: u64 = 50;

pub struct Codex {
    rollout: PathBuf,
    notify: Vec<String>,
    approval: String,
    sandbox: String,
    bypass: bool,
    alt: bool,
    source: &'static str,
    ordinal: u64,
    responses: u64,
    title_sent: bool,
    /// Commands left running in background terminals (`@bg`), shown in the footer.
    terminals: usize,
    /// Sub-agents running beside the turn (`@agent`), by id.
    sub_agents: Vec<String>,
    /// Threads running `notify` programs (waited for, briefly, at exit).
    notifiers: Vec<std::thread::JoinHandle<()>>,
}

/// `-c key=value`: the value is TOML, or a plain string when it does not parse.
fn set_override(table: &mut toml::Table, kv: &str) {
    let Some((key, raw)) = kv.split_once('=') else {
        return;
    };
    let value = toml::from_str::<toml::Table>(&format!("x = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("x"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry((*p).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        cur = next;
    }
    if let Some(last) = parts.last() {
        cur.insert((*last).to_owned(), value);
    }
}

fn find_rollout(dir: &Path, id: &str) -> Option<PathBuf> {
    let suffix = format!("-{id}.jsonl");
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        if p.is_dir() {
            if let Some(found) = find_rollout(&p, id) {
                return Some(found);
            }
        } else if p.to_string_lossy().ends_with(&suffix) {
            return Some(p);
        }
    }
    None
}

fn latest_rollout(dir: &Path) -> Option<PathBuf> {
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(m) = entry.metadata().and_then(|m| m.modified())
                && best.as_ref().is_none_or(|(b, _)| m > *b)
            {
                best = Some((m, p));
            }
        }
    }
    best.map(|(_, p)| p)
}

fn usage(n: u64) -> Value {
    json!({
        "input_tokens": IN * n,
        "cached_input_tokens": CACHED * n,
        "cache_write_input_tokens": 0,
        "output_tokens": OUT * n,
        "reasoning_output_tokens": 0,
        "total_tokens": (IN + OUT) * n,
    })
}

impl Codex {
    pub fn start(args: &[String], cx: &mut Cx) -> (Box<dyn Flavour>, Option<String>) {
        let a = Args::parse(
            args,
            &[
                "-c",
                "--config",
                "-m",
                "--model",
                "-a",
                "--ask-for-approval",
                "-s",
                "--sandbox",
                "-C",
                "--cd",
                "-p",
                "--profile",
                "-i",
                "--image",
                "--add-dir",
                "--enable",
                "--disable",
                "--local-provider",
            ],
        );
        let home = std::env::var_os("CODEX_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| util::home().join(".codex"));
        if let Some(dir) = a.value(&["-C", "--cd"]) {
            let dir = cx.cwd.join(dir);
            if std::env::set_current_dir(&dir).is_ok() {
                cx.cwd = std::env::current_dir().unwrap_or(dir);
            }
        }

        let mut config: toml::Table = std::fs::read_to_string(home.join("config.toml"))
            .ok()
            .and_then(|s| toml::from_str(&s).ok())
            .unwrap_or_default();
        for kv in a.all("-c").chain(a.all("--config")) {
            set_override(&mut config, kv);
        }
        let config = serde_json::to_value(&config).unwrap_or(Value::Null);

        if a.flag(&["--dangerously-bypass-hook-trust"])
            && let Some(h) = config.get("hooks")
        {
            cx.hooks
                .add_json(h, TimeoutUnit::Seconds, Duration::from_secs(600));
        }
        let notify = config
            .get("notify")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        cx.model = a
            .value(&["-m", "--model"])
            .or_else(|| config.get("model").and_then(Value::as_str))
            .unwrap_or("gpt-5.5")
            .to_owned();
        let yolo = a.flag(&["--dangerously-bypass-approvals-and-sandbox", "--yolo"]);
        let approval = a
            .value(&["-a", "--ask-for-approval"])
            .or_else(|| config.get("approval_policy").and_then(Value::as_str))
            .unwrap_or(if yolo { "never" } else { "on-request" })
            .to_owned();
        let sandbox = a
            .value(&["-s", "--sandbox"])
            .or_else(|| config.get("sandbox_mode").and_then(Value::as_str))
            .unwrap_or(if yolo {
                "danger-full-access"
            } else {
                "workspace-write"
            })
            .to_owned();

        // Positionals: `resume <id> [prompt]` or `[prompt]`.
        let mut pos = a.positional.iter();
        let mut prompt = None;
        let mut source = "startup";
        let sessions = home.join("sessions");
        let mut rollout = None;
        match pos.next().map(String::as_str) {
            Some("resume") => {
                source = "resume";
                let id = if a.flag(&["--last"]) {
                    latest_rollout(&sessions).and_then(|p| {
                        let name = p.file_stem()?.to_string_lossy().into_owned();
                        let id = name.get(name.len().checked_sub(36)?..)?.to_owned();
                        rollout = Some(p);
                        Some(id)
                    })
                } else {
                    pos.next().cloned()
                };
                let id = id.unwrap_or_else(uuid_v7);
                if rollout.is_none() {
                    rollout = find_rollout(&sessions, &id);
                }
                cx.resumed = Some(id.clone());
                cx.session_id = id;
                prompt = pos.next().cloned();
            }
            Some(p) => {
                prompt = Some(p.to_owned());
                cx.session_id = uuid_v7();
            }
            None => cx.session_id = uuid_v7(),
        }
        let rollout = rollout.unwrap_or_else(|| {
            let (y, mo, d, h, mi, s) = util::civil_local((util::now_ms() / 1000) as i64);
            sessions
                .join(format!("{y:04}"))
                .join(format!("{mo:02}"))
                .join(format!("{d:02}"))
                .join(format!(
                    "rollout-{y:04}-{mo:02}-{d:02}T{h:02}-{mi:02}-{s:02}-{}.jsonl",
                    cx.session_id
                ))
        });
        let ordinal = std::fs::read_to_string(&rollout)
            .map(|s| s.lines().count() as u64)
            .unwrap_or(0);
        let me = Codex {
            rollout,
            notify,
            bypass: approval == "never",
            approval,
            sandbox,
            alt: !a.flag(&["--no-alt-screen"]),
            source,
            ordinal,
            responses: 0,
            title_sent: false,
            terminals: 0,
            sub_agents: Vec::new(),
            notifiers: Vec::new(),
        };
        (Box::new(me), prompt)
    }

    fn payload(&self, cx: &Cx, event: &str, turn: bool, extra: Value) -> Value {
        let mut v = json!({
            "session_id": cx.session_id,
            "transcript_path": self.rollout.to_string_lossy(),
            "cwd": cx.cwd.to_string_lossy(),
            "hook_event_name": event,
            "model": cx.model,
            "permission_mode": if self.bypass { "bypassPermissions" } else { "default" },
        });
        if turn {
            v["turn_id"] = json!(cx.turn.id);
        }
        if let (Some(a), Value::Object(b)) = (v.as_object_mut(), extra) {
            a.extend(b);
        }
        v
    }

    fn fire(
        &self,
        cx: &Cx,
        event: &str,
        subject: Option<&str>,
        turn: bool,
        extra: Value,
    ) -> Vec<Outcome> {
        if !cx.hooks.has(event) {
            return Vec::new();
        }
        cx.hooks
            .run(event, subject, &self.payload(cx, event, turn, extra))
    }

    /// The footer's "N background terminal(s) running", while any runs.
    fn terminals_running(&self) -> Option<String> {
        match self.terminals {
            0 => None,
            1 => Some("1 background terminal running".into()),
            n => Some(format!("{n} background terminals running")),
        }
    }

    fn line(&mut self, kind: &str, payload: Value) {
        let v = json!({"timestamp": iso_now(), "ordinal": self.ordinal, "type": kind, "payload": payload});
        self.ordinal += 1;
        util::append_line(&self.rollout, &v);
    }

    fn event(&mut self, payload: Value) {
        self.line("event_msg", payload);
    }

    fn token_count(&mut self) {
        self.responses += 1;
        let total = usage(self.responses);
        self.event(json!({
            "type": "token_count",
            "info": {
                "total_token_usage": total,
                "last_token_usage": usage(1),
                "model_context_window": CONTEXT_WINDOW,
            },
            "rate_limits": null,
        }));
        self.line(
            "token_usage_record",
            json!({"response_id": format!("resp_{}", rand_alnum(24)), "usage": usage(1), "turn_token_usage": usage(1)}),
        );
    }

    /// Run `notify` with `payloads` one after the other (each waits for the previous
    /// program to finish), off the main thread.
    fn run_notify(&mut self, payloads: Vec<Value>) {
        let argv = self.notify.clone();
        if argv.is_empty() {
            return;
        }
        self.notifiers.retain(|h| !h.is_finished());
        self.notifiers.push(std::thread::spawn(move || {
            for payload in payloads {
                let child = Command::new(&argv[0])
                    .args(&argv[1..])
                    .arg(payload.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn();
                if let Ok(mut child) = child {
                    let _ = child.wait();
                }
            }
        }));
    }

    fn aborted(&mut self, cx: &mut Cx) {
        let turn_id = cx.turn.id.clone();
        self.event(json!({"type": "turn_aborted", "turn_id": turn_id, "reason": "interrupted"}));
        cx.history.push(INTERRUPTED.into());
    }
}

impl Flavour for Codex {
    fn header(&self, cx: &Cx) -> Vec<String> {
        let mut lines = crate::boxed(
            &[
                format!(">_ OpenAI Codex (v{VERSION})"),
                String::new(),
                format!("model:     {}   /model to change", cx.model),
                format!("directory: {}", cx.cwd.display()),
            ],
            crate::width().min(64),
        );
        if let Some(id) = &cx.resumed {
            lines.push(format!("  resumed {id}"));
        }
        lines.push(String::new());
        lines
    }

    fn bottom(&self, cx: &Cx, view: &View<'_>) -> (Vec<String>, Option<(usize, usize)>) {
        let mut lines = Vec::new();
        let composer = |lines: &mut Vec<String>| -> (usize, usize) {
            let at = (lines.len(), 2 + cx.input.chars().count());
            if cx.input.is_empty() {
                lines.push("› Ask Codex to do anything".into());
            } else {
                lines.push(format!("› {}", cx.input));
            }
            at
        };
        let cursor = match view {
            View::Idle => {
                lines.push(String::new());
                if let Some(running) = self.terminals_running() {
                    lines.push(format!("  {running} · /ps to view · /stop to close"));
                }
                let c = composer(&mut lines);
                lines.push(String::new());
                lines.push(
                    "  ? for shortcuts                                 100% context left".into(),
                );
                Some(c)
            }
            View::Busy(elapsed) => {
                let label = cx.activity.as_deref().unwrap_or("Working");
                lines.push(String::new());
                let running = self
                    .terminals_running()
                    .map(|r| format!(" · {r} · /ps to view · /stop to close"))
                    .unwrap_or_default();
                lines.push(format!(
                    "• {label} ({}s • esc to interrupt){running}",
                    elapsed.as_secs()
                ));
                lines.push(String::new());
                let c = composer(&mut lines);
                lines.push(String::new());
                lines.push(
                    "  ? for shortcuts                                 100% context left".into(),
                );
                Some(c)
            }
            View::Dialog(t, sel) => {
                lines.push(String::new());
                lines.push("Would you like to run the following command?".into());
                lines.push(String::new());
                lines.push(format!("Reason: the fake agent wants to run {}", t.arg));
                lines.push(String::new());
                lines.push(format!("$ {}", t.arg));
                lines.push(String::new());
                let opts = [
                    "1. Yes, proceed (y)".to_owned(),
                    format!(
                        "2. Yes, and don't ask again for commands that start with `{}` (p)",
                        t.arg.split_whitespace().next().unwrap_or(&t.arg)
                    ),
                    "3. No, and tell Codex what to do differently (esc)".to_owned(),
                ];
                for (i, o) in opts.iter().enumerate() {
                    let mark = if i == *sel { "›" } else { " " };
                    lines.push(format!("{mark} {o}"));
                }
                lines.push(String::new());
                lines.push("Press enter to confirm or esc to cancel".into());
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
            Key::Char('y' | '1') => Some(Answer::Once),
            Key::Char('p' | 'a' | '2') => Some(Answer::Always),
            Key::Char('n' | '3') => Some(Answer::Reject),
            _ => None,
        }
    }

    fn bypass(&self) -> bool {
        self.bypass
    }

    fn tool_id(&self) -> String {
        format!("call_{}", rand_alnum(24))
    }

    fn alt_screen(&self) -> bool {
        self.alt
    }

    fn goodbye(&self, cx: &Cx) -> String {
        let n = self.responses;
        format!(
            "Token usage: total={} input={} (+ {} cached) output={}\r\nTo continue this session, run codex resume {}",
            (IN - CACHED + OUT) * n,
            (IN - CACHED) * n,
            CACHED * n,
            OUT * n,
            cx.session_id
        )
    }

    fn session_start(&mut self, cx: &mut Cx) {
        if self.ordinal == 0 {
            let branch = util::git_branch(&cx.cwd);
            self.line(
                "session_meta",
                json!({
                    "id": cx.session_id,
                    "session_id": cx.session_id,
                    "timestamp": iso_now(),
                    "cwd": cx.cwd.to_string_lossy(),
                    "originator": "codex_cli_rs",
                    "cli_version": VERSION,
                    "source": "cli",
                    "model_provider": "openai",
                    "instructions": null,
                    "git": {"branch": branch},
                }),
            );
        }
        let source = self.source;
        self.fire(
            cx,
            "SessionStart",
            Some(source),
            false,
            json!({"source": source}),
        );
    }

    fn prompt(&mut self, cx: &mut Cx) -> Result<(), String> {
        let prompt = cx.turn.prompt.clone();
        cx.history.push(format!("› {prompt}"));
        let out = self.fire(
            cx,
            "UserPromptSubmit",
            None,
            true,
            json!({"prompt": prompt}),
        );
        if let Some(reason) = hooks::blocked(&out, false) {
            return Err(reason);
        }
        let turn_id = cx.turn.id.clone();
        self.event(json!({"type": "task_started", "turn_id": turn_id, "model_context_window": CONTEXT_WINDOW}));
        self.line(
            "turn_context",
            json!({
                "turn_id": turn_id,
                "cwd": cx.cwd.to_string_lossy(),
                "approval_policy": self.approval,
                "sandbox_policy": {"type": self.sandbox},
                "model": cx.model,
                "effort": "medium",
                "summary": "auto",
            }),
        );
        self.line(
            "response_item",
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}),
        );
        self.event(json!({"type": "user_message", "message": prompt, "images": []}));
        Ok(())
    }

    fn tool_requested(&mut self, _cx: &mut Cx, t: &ToolCall) {
        self.line(
            "response_item",
            json!({
                "type": "function_call",
                "name": "exec_command",
                "arguments": json!({"cmd": t.arg}).to_string(),
                "call_id": t.id,
            }),
        );
        self.token_count();
    }

    fn tool_pre(&mut self, cx: &mut Cx, t: &ToolCall) -> Pre {
        let out = self.fire(
            cx,
            "PreToolUse",
            Some(&t.name),
            true,
            json!({"tool_name": t.name, "tool_input": {"command": t.arg}, "tool_use_id": t.id}),
        );
        if let Some(reason) = hooks::blocked(&out, false) {
            return Pre::Block(reason);
        }
        match hooks::specific(&out, &["permissionDecision"]).and_then(Value::as_str) {
            Some("allow") => Pre::Allow,
            Some("deny") => Pre::Block("denied by PreToolUse hook".into()),
            Some("ask") => Pre::Ask,
            _ => Pre::Continue,
        }
    }

    fn tool_blocked(&mut self, cx: &mut Cx, t: &ToolCall, reason: &str) {
        self.line(
            "response_item",
            json!({"type": "function_call_output", "call_id": t.id, "output": format!("blocked by hook: {reason}")}),
        );
        cx.history.push(format!("• Blocked {} ({reason})", t.arg));
    }

    fn permission_asked(&mut self, cx: &mut Cx, t: &mut ToolCall) -> Option<Answer> {
        let turn_id = cx.turn.id.clone();
        self.event(json!({
            "type": "exec_approval_request",
            "call_id": t.id,
            "turn_id": turn_id,
            "command": ["bash", "-lc", t.arg],
            "cwd": cx.cwd.to_string_lossy(),
            "reason": format!("the fake agent wants to run {}", t.arg),
        }));
        let out = self.fire(
            cx,
            "PermissionRequest",
            Some(&t.name),
            true,
            json!({
                "tool_name": t.name,
                "tool_input": {"command": t.arg, "description": format!("Run {}", t.arg)},
                "tool_use_id": t.id,
            }),
        );
        if hooks::blocked(&out, false).is_some() {
            return Some(Answer::Reject);
        }
        match hooks::specific(&out, &["decision", "behavior"]).and_then(Value::as_str) {
            Some("allow") => Some(Answer::Once),
            Some("deny") => Some(Answer::Reject),
            _ => None,
        }
    }

    fn tool_done(&mut self, cx: &mut Cx, t: &ToolCall, output: &str, duration_ms: u64) {
        let turn_id = cx.turn.id.clone();
        self.event(json!({
            "type": "item_completed",
            "turn_id": turn_id,
            "item": {
                "type": "CommandExecution",
                "id": t.id,
                "command": t.arg,
                "aggregated_output": output,
                "exit_code": 0,
                "status": "completed",
                "duration": {"secs": duration_ms / 1000, "nanos": (duration_ms % 1000) * 1_000_000},
            },
        }));
        self.line(
            "response_item",
            json!({"type": "function_call_output", "call_id": t.id, "output": output}),
        );
        cx.history.push(format!("• Ran {}", t.arg));
        cx.history.push(format!("  └ {output}"));
        self.fire(
            cx,
            "PostToolUse",
            Some(&t.name),
            true,
            json!({
                "tool_name": t.name,
                "tool_input": {"command": t.arg},
                "tool_response": output,
                "tool_use_id": t.id,
            }),
        );
    }

    fn denied(&mut self, cx: &mut Cx, t: &ToolCall) {
        cx.history
            .push(format!("✗ You canceled the request to run {}", t.arg));
        self.aborted(cx);
    }

    fn interrupted(&mut self, cx: &mut Cx, _t: Option<&ToolCall>) {
        self.aborted(cx);
    }

    fn api_error(&mut self, cx: &mut Cx) {
        let message = format!("unexpected status 400 Bad Request: {API_ERROR}");
        let turn_id = cx.turn.id.clone();
        self.event(json!({"type": "error", "message": message}));
        self.event(
            json!({"type": "task_complete", "turn_id": turn_id, "last_agent_message": null}),
        );
        cx.history.push(format!("■ {message}"));
        self.fire(
            cx,
            "StopFailure",
            None,
            true,
            json!({"error": "unknown", "last_assistant_message": API_ERROR}),
        );
    }

    fn compact_start(&mut self, cx: &mut Cx) {
        cx.activity = Some("Compacting conversation…".into());
        self.fire(
            cx,
            "PreCompact",
            Some("manual"),
            true,
            json!({"trigger": "manual"}),
        );
    }

    fn compact_end(&mut self, cx: &mut Cx) {
        self.line(
            "compacted",
            json!({"message": "Summary of the conversation so far."}),
        );
        cx.history.push("• Context compacted".into());
        self.fire(
            cx,
            "PostCompact",
            Some("manual"),
            true,
            json!({"trigger": "manual"}),
        );
    }

    fn turn_done(&mut self, cx: &mut Cx, reply: &str, _bg: bool) -> Option<Duration> {
        let turn_id = cx.turn.id.clone();
        self.line(
            "response_item",
            json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": reply}]}),
        );
        self.event(json!({"type": "agent_message", "message": reply}));
        self.token_count();
        let duration = cx.turn.started.elapsed().as_millis() as u64;
        self.event(json!({
            "type": "task_complete",
            "turn_id": turn_id,
            "last_agent_message": reply,
            "duration_ms": duration,
            "time_to_first_token_ms": duration.min(50),
        }));
        cx.history.push(format!("• {reply}"));
        cx.history.push(format!(
            "─ Worked for {}s ─────────────────────────",
            duration / 1000
        ));
        self.fire(
            cx,
            "Stop",
            None,
            true,
            json!({"stop_hook_active": false, "last_assistant_message": reply}),
        );
        let prompt = cx.turn.prompt.clone();
        let mut payloads = vec![json!({
            "type": "agent-turn-complete",
            "thread-id": cx.session_id,
            "turn-id": turn_id,
            "cwd": cx.cwd.to_string_lossy(),
            "client": "codex-tui",
            "input-messages": [prompt],
            "last-assistant-message": reply,
        })];
        if !self.title_sent {
            self.title_sent = true;
            let title: Vec<&str> = prompt.split_whitespace().take(4).collect();
            payloads.push(json!({
                "type": "agent-turn-complete",
                "thread-id": uuid_v7(),
                "turn-id": uuid_v7(),
                "cwd": cx.cwd.to_string_lossy(),
                "client": "codex-tui",
                "input-messages": [format!("Generate a short title for this conversation: {prompt}")],
                "last-assistant-message": title.join(" "),
            }));
        }
        self.run_notify(payloads);
        None
    }

    fn background_started(&mut self, cx: &mut Cx, agent: bool) {
        let id = format!("call_{}", rand_alnum(24));
        if !agent {
            // The call returns with the command still running: no PostToolUse.
            let input = json!({"command": BACKGROUND_COMMAND});
            self.fire(
                cx,
                "PreToolUse",
                Some("Bash"),
                true,
                json!({"tool_name": "Bash", "tool_input": input, "tool_use_id": id}),
            );
            cx.history.push(format!("• Running {BACKGROUND_COMMAND}"));
            self.terminals += 1;
            return;
        }
        let input = json!({"task_name": "fake_task", "message": "sub work"});
        let call = json!({"tool_name": SPAWN_AGENT, "tool_input": input, "tool_use_id": id});
        self.fire(cx, "PreToolUse", Some(SPAWN_AGENT), true, call.clone());
        let mut done = call;
        done["tool_response"] = json!({"task_name": "/root/fake_task"}).to_string().into();
        self.fire(cx, "PostToolUse", Some(SPAWN_AGENT), true, done);
        let agent_id = uuid_v7();
        self.fire(
            cx,
            "SubagentStart",
            None,
            false,
            json!({"turn_id": uuid_v7(), "agent_id": agent_id, "agent_type": "default"}),
        );
        cx.history.push("• Started `/root/fake_task`".into());
        self.sub_agents.push(agent_id);
    }

    fn background_done(&mut self, cx: &mut Cx) -> Option<String> {
        self.terminals = 0;
        for agent_id in std::mem::take(&mut self.sub_agents) {
            self.fire(
                cx,
                "SubagentStop",
                None,
                false,
                json!({
                    "turn_id": uuid_v7(),
                    "agent_id": agent_id,
                    "agent_type": "default",
                    "agent_transcript_path": null,
                    "stop_hook_active": false,
                    "last_assistant_message": "sub work done",
                }),
            );
            cx.history.push("• Completed `/root/fake_task`".into());
        }
        None
    }

    fn session_end(&mut self, cx: &mut Cx) {
        self.fire(
            cx,
            "SessionEnd",
            Some("exit"),
            false,
            json!({"reason": "exit"}),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while self.notifiers.iter().any(|h| !h.is_finished())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
