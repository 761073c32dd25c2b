//! OpenCode 1.18.33: the TUI with its embedded HTTP server (health, SSE events,
//! permissions) and its screens. OpenCode has no command hooks; everything is reported
//! on `GET /event`.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};

use crate::http::{self, Request};
use crate::term::{Input, Key};
use crate::util::{self, opencode_id, rand_alnum};
use crate::{API_ERROR, Answer, Args, Cx, Flavour, Pre, ToolCall, View};

const VERSION: &str = "1.18.33";

// Fixed usage of every API response (input excludes the cache).
const IN: u64 = 1000;
const OUT: u64 = 50;
const WRITE: u64 = 2000;
const READ: u64 = 3000;

#[derive(Default)]
struct Shared {
    session_id: String,
    directory: String,
    busy: bool,
    pending: Vec<Value>,
    subscribers: Vec<Sender<String>>,
    /// The newest message, `{info, parts}`, as `GET /session/{id}/message` shows it.
    newest: Value,
}

type State = Arc<Mutex<Shared>>;

fn lock(s: &State) -> MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn frame(kind: &str, props: Value) -> String {
    json!({"id": opencode_id("evt"), "type": kind, "properties": props}).to_string()
}

fn publish(state: &State, kind: &str, props: Value) {
    let mut s = lock(state);
    match kind {
        "message.updated" if s.newest["info"]["id"] != props["info"]["id"] => {
            s.newest = json!({"info": props["info"], "parts": []});
        }
        "message.part.updated" => {
            let part = &props["part"];
            if let Some(parts) = s.newest["parts"].as_array_mut() {
                match parts.iter_mut().find(|p| p["id"] == part["id"]) {
                    Some(old) => *old = part.clone(),
                    None => parts.push(part.clone()),
                }
            }
        }
        _ => {}
    }
    let line = frame(kind, props);
    s.subscribers.retain(|s| s.send(line.clone()).is_ok());
}

pub struct OpenCode {
    state: State,
    port: u16,
    provider: String,
    model_id: String,
    permission: Value,
    user_msg: String,
    /// The assistant message in progress.
    message: Option<Value>,
    /// The tool part in progress.
    part: Option<Value>,
}

fn now() -> u64 {
    util::now_ms()
}

fn tool(name: &str) -> String {
    name.to_lowercase()
}

fn handle(req: Request, mut stream: TcpStream, state: &State, tx: &Sender<Input>) {
    let path = req.path.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let not_found = |stream: TcpStream, what: &str| {
        http::respond(
            stream,
            404,
            &json!({"name": "NotFoundError", "data": {"message": what}}).to_string(),
        );
    };
    match (req.method.as_str(), parts.as_slice()) {
        ("GET", ["global", "health"]) => http::respond(
            stream,
            200,
            &json!({"healthy": true, "version": VERSION}).to_string(),
        ),
        ("GET", path @ (["event"] | ["global", "event"])) => {
            if !http::start_sse(&mut stream) {
                return;
            }
            // The global stream wraps each instance's events with their directory.
            let directory = (path.len() == 2).then(|| lock(state).directory.clone());
            let (stx, srx) = channel();
            let _ = stx.send(frame("server.connected", json!({})));
            lock(state).subscribers.push(stx);
            loop {
                let line = match srx.recv_timeout(Duration::from_secs(10)) {
                    Ok(line) => line,
                    Err(RecvTimeoutError::Timeout) => frame("server.heartbeat", json!({})),
                    Err(RecvTimeoutError::Disconnected) => return,
                };
                let line = match &directory {
                    Some(dir) => {
                        let payload: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                        json!({"directory": dir, "payload": payload}).to_string()
                    }
                    None => line,
                };
                let ok = stream
                    .write_all(format!("data: {line}\n\n").as_bytes())
                    .and_then(|()| stream.flush())
                    .is_ok();
                if !ok {
                    return;
                }
            }
        }
        ("GET", ["permission"]) => {
            let pending = lock(state).pending.clone();
            http::respond(stream, 200, &Value::Array(pending).to_string());
        }
        ("POST", ["permission", id, "reply"]) | ("POST", ["session", _, "permissions", id]) => {
            let reply = body
                .get("reply")
                .or_else(|| body.get("response"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if !matches!(reply, "once" | "always" | "reject") {
                http::respond(
                    stream,
                    400,
                    &json!({"name": "BadRequest", "data": {"message": "reply must be once, always or reject"}}).to_string(),
                );
                return;
            }
            let known = lock(state)
                .pending
                .iter()
                .any(|p| p.get("id").and_then(Value::as_str) == Some(*id));
            if !known {
                not_found(stream, &format!("permission {id} not found"));
                return;
            }
            let _ = tx.send(Input::PermissionReply((*id).to_owned(), reply.to_owned()));
            http::respond(stream, 200, "true");
        }
        ("GET", ["session", _, "message"]) => {
            let v = json!([lock(state).newest.clone()]);
            http::respond(stream, 200, &v.to_string());
        }
        ("GET", ["session", "status"]) => {
            let s = lock(state);
            let v = if s.busy {
                json!({ s.session_id.clone(): {"type": "busy"} })
            } else {
                json!({})
            };
            drop(s);
            http::respond(stream, 200, &v.to_string());
        }
        ("GET", ["session"]) => {
            let s = lock(state);
            let v = json!([{"id": s.session_id, "directory": s.directory, "title": "Fake session", "version": VERSION}]);
            drop(s);
            http::respond(stream, 200, &v.to_string());
        }
        ("GET", ["session", id]) => {
            let s = lock(state);
            if *id == s.session_id {
                let v = json!({"id": s.session_id, "directory": s.directory, "title": "Fake session", "version": VERSION});
                drop(s);
                http::respond(stream, 200, &v.to_string());
            } else {
                drop(s);
                not_found(stream, &format!("session {id} not found"));
            }
        }
        ("POST", ["session", _, "prompt_async"]) => {
            let text: Vec<&str> = body
                .get("parts")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            let _ = tx.send(Input::Prompt(text.join(" ")));
            http::respond(stream, 204, "");
        }
        ("POST", ["session", _, "abort"]) => {
            let _ = tx.send(Input::Abort);
            http::respond(stream, 200, "true");
        }
        _ => not_found(stream, &format!("{} {}", req.method, req.path)),
    }
}

impl OpenCode {
    pub fn start(
        args: &[String],
        cx: &mut Cx,
        tx: Sender<Input>,
    ) -> Result<(Box<dyn Flavour>, Option<String>), String> {
        let a = Args::parse(
            args,
            &[
                "--port",
                "--hostname",
                "--prompt",
                "-s",
                "--session",
                "-m",
                "--model",
                "--agent",
                "--log-level",
            ],
        );
        let config: Value = std::env::var("OPENCODE_CONFIG_CONTENT")
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null);
        let model = a
            .value(&["-m", "--model"])
            .or_else(|| config.get("model").and_then(Value::as_str))
            .unwrap_or("anthropic/claude-sonnet-4-5")
            .to_owned();
        let (provider, model_id) = model
            .split_once('/')
            .map(|(p, m)| (p.to_owned(), m.to_owned()))
            .unwrap_or_else(|| ("anthropic".into(), model.clone()));
        cx.model = model_id.clone();
        if let Some(dir) = a.positional.first() {
            let dir = cx.cwd.join(dir);
            if dir.is_dir() && std::env::set_current_dir(&dir).is_ok() {
                cx.cwd = std::env::current_dir().unwrap_or(dir);
            }
        }
        cx.session_id = match a.value(&["-s", "--session"]) {
            Some(id) => {
                cx.resumed = Some(id.to_owned());
                id.to_owned()
            }
            None => opencode_id("ses"),
        };
        let host = a.value(&["--hostname"]).unwrap_or("127.0.0.1");
        let port: u16 = a
            .value(&["--port"])
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let listener = TcpListener::bind((host, port))
            .map_err(|e| format!("failed to listen on {host}:{port}: {e}"))?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        let state: State = Arc::new(Mutex::new(Shared {
            session_id: cx.session_id.clone(),
            directory: cx.cwd.to_string_lossy().into_owned(),
            ..Shared::default()
        }));
        let st = state.clone();
        let tx = Mutex::new(tx);
        http::serve(
            listener,
            Arc::new(move |req, stream| {
                let tx = tx
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                handle(req, stream, &st, &tx);
            }),
        );
        let me = OpenCode {
            state,
            port,
            provider,
            model_id,
            permission: config.get("permission").cloned().unwrap_or(Value::Null),
            user_msg: String::new(),
            message: None,
            part: None,
        };
        Ok((Box::new(me), a.value(&["--prompt"]).map(str::to_owned)))
    }

    fn publish(&self, kind: &str, props: Value) {
        publish(&self.state, kind, props);
    }

    fn cost(&self) -> f64 {
        util::claude_cost(&self.model_id, IN, OUT, WRITE, READ)
    }

    fn tokens() -> Value {
        json!({"total": IN + OUT + WRITE + READ, "input": IN, "output": OUT, "reasoning": 0, "cache": {"write": WRITE, "read": READ}})
    }

    /// The configured action for a tool: `allow`, `ask`, `deny`, or none.
    fn action(&self, name: &str) -> Option<String> {
        match &self.permission {
            Value::String(s) => Some(s.clone()),
            Value::Object(m) => match m.get(name).or_else(|| m.get("*"))? {
                Value::String(s) => Some(s.clone()),
                Value::Object(patterns) => {
                    patterns.get("*").and_then(Value::as_str).map(str::to_owned)
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn start_message(&mut self, cx: &Cx) {
        let id = opencode_id("msg");
        let info = json!({
            "id": id,
            "sessionID": cx.session_id,
            "role": "assistant",
            "time": {"created": now()},
            "parentID": self.user_msg,
            "modelID": self.model_id,
            "providerID": self.provider,
            "mode": "build",
            "agent": "build",
            "path": {"cwd": cx.cwd.to_string_lossy(), "root": cx.cwd.to_string_lossy()},
            "cost": 0,
            "tokens": {"input": 0, "output": 0, "reasoning": 0, "cache": {"read": 0, "write": 0}},
        });
        self.publish("message.updated", json!({"info": info}));
        self.publish(
            "message.part.updated",
            json!({"part": {"id": opencode_id("prt"), "sessionID": cx.session_id, "messageID": id, "type": "step-start"}}),
        );
        self.message = Some(info);
    }

    fn message_id(&self) -> String {
        self.message
            .as_ref()
            .and_then(|m| m.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    fn text_part(&self, cx: &Cx, text: &str) {
        let t = now();
        self.publish(
            "message.part.updated",
            json!({"part": {
                "id": opencode_id("prt"), "sessionID": cx.session_id, "messageID": self.message_id(),
                "type": "text", "text": text, "time": {"start": t, "end": t}
            }}),
        );
    }

    fn finish_message(&mut self, cx: &Cx, reason: &str) {
        let Some(mut info) = self.message.take() else {
            return;
        };
        let cost = self.cost();
        self.publish(
            "message.part.updated",
            json!({"part": {
                "id": opencode_id("prt"), "sessionID": cx.session_id, "messageID": info["id"],
                "type": "step-finish", "reason": reason, "cost": cost, "tokens": Self::tokens()
            }}),
        );
        info["cost"] = json!(cost);
        info["tokens"] = Self::tokens();
        info["finish"] = json!(reason);
        info["time"]["completed"] = json!(now());
        self.publish("message.updated", json!({"info": info}));
    }

    fn update_part(&mut self, state: Value) {
        if let Some(mut part) = self.part.take() {
            part["state"] = state;
            self.publish("message.part.updated", json!({"part": part.clone()}));
            self.part = Some(part);
        }
    }

    fn go_idle(&self, cx: &Cx) {
        lock(&self.state).busy = false;
        self.publish(
            "session.status",
            json!({"sessionID": cx.session_id, "status": {"type": "idle"}}),
        );
        self.publish("session.idle", json!({"sessionID": cx.session_id}));
    }

    fn fail(&mut self, cx: &mut Cx, error: Value) {
        if let Some(mut info) = self.message.take() {
            info["error"] = error.clone();
            info["time"]["completed"] = json!(now());
            self.publish("message.updated", json!({"info": info}));
        }
        self.publish(
            "session.error",
            json!({"sessionID": cx.session_id, "error": error}),
        );
        self.go_idle(cx);
    }

    fn input_of(t: &ToolCall) -> Value {
        json!({"command": t.arg, "description": format!("Run {}", t.arg)})
    }
}

impl Flavour for OpenCode {
    fn header(&self, cx: &Cx) -> Vec<String> {
        let mut lines = vec![
            format!("  opencode v{VERSION}"),
            format!("  session {}", cx.session_id),
            format!("  server http://127.0.0.1:{}", self.port),
        ];
        if let Some(id) = &cx.resumed {
            lines.push(format!("  resumed {id}"));
        }
        lines.push(String::new());
        lines
    }

    fn bottom(&self, cx: &Cx, view: &View<'_>) -> (Vec<String>, Option<(usize, usize)>) {
        let w = crate::width();
        let mut lines = vec![String::new()];
        let input_area = |lines: &mut Vec<String>| -> (usize, usize) {
            let at = (lines.len(), 5 + cx.input.chars().count());
            if cx.input.is_empty() {
                lines.push("  ┃  Ask anything... \"Fix a TODO in the codebase\"".into());
            } else {
                lines.push(format!("  ┃  {}", cx.input));
            }
            lines.push(format!("  ┃  Build  {} {}", self.model_id, self.provider));
            lines.push(format!("  ╹{}", "▀".repeat(w.saturating_sub(4))));
            at
        };
        let cursor = match view {
            View::Idle => {
                let c = input_area(&mut lines);
                lines.push("  enter send                                   ctrl+p commands".into());
                Some(c)
            }
            View::Busy(_) => {
                let c = input_area(&mut lines);
                match cx.activity.as_deref() {
                    Some(a) => lines.push(format!("  ⬝⬝■■■■■■  {a}  esc interrupt")),
                    None => lines.push("  ⬝⬝■■■■■■  esc interrupt".into()),
                }
                Some(c)
            }
            View::Dialog(t, sel) => {
                lines.push("  △ Permission required".into());
                lines.push(if t.name == "Bash" {
                    "  # Shell command".into()
                } else {
                    format!("  # {}", t.name)
                });
                lines.push(format!("  $ {}", t.arg));
                lines.push(String::new());
                lines.push("  Allow once   Allow always   Reject".into());
                let chosen = ["Allow once", "Allow always", "Reject"][(*sel).min(2)];
                lines.push(format!("  › {chosen}"));
                lines.push("  enter confirm   ←/→ select   esc reject".into());
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
            Key::Char('a') => Some(Answer::Once),
            Key::Char('r') => Some(Answer::Reject),
            _ => None,
        }
    }

    fn bypass(&self) -> bool {
        false
    }

    fn tool_id(&self) -> String {
        format!("toolu_01{}", rand_alnum(22))
    }

    fn alt_screen(&self) -> bool {
        true
    }

    fn session_start(&mut self, cx: &mut Cx) {
        let info = json!({"id": cx.session_id, "directory": cx.cwd.to_string_lossy(), "title": "Fake session", "version": VERSION, "time": {"created": now(), "updated": now()}});
        self.publish("session.updated", json!({"info": info}));
    }

    fn prompt(&mut self, cx: &mut Cx) -> Result<(), String> {
        let prompt = cx.turn.prompt.clone();
        cx.history.push(format!("  ┃ {prompt}"));
        self.user_msg = opencode_id("msg");
        self.publish(
            "message.updated",
            json!({"info": {
                "id": self.user_msg, "sessionID": cx.session_id, "role": "user", "time": {"created": now()},
                "agent": "build", "model": {"providerID": self.provider, "modelID": self.model_id}
            }}),
        );
        self.publish(
            "message.part.updated",
            json!({"part": {"id": opencode_id("prt"), "sessionID": cx.session_id, "messageID": self.user_msg, "type": "text", "text": prompt}}),
        );
        lock(&self.state).busy = true;
        self.publish(
            "session.status",
            json!({"sessionID": cx.session_id, "status": {"type": "busy"}}),
        );
        Ok(())
    }

    fn tool_requested(&mut self, cx: &mut Cx, t: &ToolCall) {
        self.start_message(cx);
        self.text_part(cx, &format!("I'll run `{}`.", t.arg));
        let part = json!({
            "id": opencode_id("prt"),
            "sessionID": cx.session_id,
            "messageID": self.message_id(),
            "type": "tool",
            "callID": t.id,
            "tool": tool(&t.name),
            "state": {"status": "pending", "input": {}, "raw": ""},
        });
        self.publish("message.part.updated", json!({"part": part.clone()}));
        self.part = Some(part);
    }

    fn tool_pre(&mut self, _cx: &mut Cx, t: &ToolCall) -> Pre {
        self.update_part(json!({
            "status": "running",
            "input": Self::input_of(t),
            "title": t.arg,
            "time": {"start": now()},
        }));
        // `ask` does not turn `@tool` into a question: the script decides when to ask.
        match self.action(&tool(&t.name)).as_deref() {
            Some("allow") => Pre::Allow,
            Some("deny") => Pre::Block("denied by the permission configuration".into()),
            _ => Pre::Continue,
        }
    }

    fn tool_blocked(&mut self, cx: &mut Cx, t: &ToolCall, reason: &str) {
        self.update_part(json!({"status": "error", "input": Self::input_of(t), "error": reason, "time": {"start": now(), "end": now()}}));
        self.part = None;
        self.finish_message(cx, "tool-calls");
        cx.history
            .push(format!("  ✗ {} {} ({reason})", tool(&t.name), t.arg));
    }

    fn permission_asked(&mut self, cx: &mut Cx, t: &mut ToolCall) -> Option<Answer> {
        let id = opencode_id("per");
        let first = t.arg.split_whitespace().next().unwrap_or(&t.arg).to_owned();
        let request = json!({
            "id": id,
            "sessionID": cx.session_id,
            "permission": tool(&t.name),
            "patterns": [t.arg],
            "metadata": {"command": t.arg},
            "always": [format!("{first} *")],
            "tool": {"messageID": self.message_id(), "callID": t.id},
        });
        lock(&self.state).pending.push(request.clone());
        self.publish("permission.asked", request);
        t.perm_id = Some(id);
        None
    }

    fn permission_answered(&mut self, cx: &mut Cx, t: &ToolCall, a: Answer) {
        let Some(id) = t.perm_id.clone() else {
            return;
        };
        lock(&self.state)
            .pending
            .retain(|p| p.get("id").and_then(Value::as_str) != Some(id.as_str()));
        let reply = match a {
            Answer::Once => "once",
            Answer::Always => "always",
            Answer::Reject => "reject",
        };
        self.publish(
            "permission.replied",
            json!({"sessionID": cx.session_id, "requestID": id, "reply": reply}),
        );
    }

    fn tool_done(&mut self, cx: &mut Cx, t: &ToolCall, output: &str, duration_ms: u64) {
        let end = now();
        self.update_part(json!({
            "status": "completed",
            "input": Self::input_of(t),
            "output": output,
            "title": t.arg,
            "metadata": {"output": output, "exit": 0, "description": format!("Run {}", t.arg)},
            "time": {"start": end.saturating_sub(duration_ms), "end": end},
        }));
        self.part = None;
        self.finish_message(cx, "tool-calls");
        cx.history.push(format!("  ⚙ {} {}", tool(&t.name), t.arg));
        cx.history.push(format!("    {output}"));
    }

    fn denied(&mut self, cx: &mut Cx, t: &ToolCall) {
        let n = now();
        self.update_part(json!({
            "status": "error",
            "input": Self::input_of(t),
            "error": "The user rejected permission to use this specific tool call.",
            "time": {"start": n, "end": n},
        }));
        self.part = None;
        self.finish_message(cx, "tool-calls");
        cx.history
            .push(format!("  ✗ {} {} (rejected)", tool(&t.name), t.arg));
        self.go_idle(cx);
    }

    fn interrupted(&mut self, cx: &mut Cx, t: Option<&ToolCall>) {
        if let Some(t) = t {
            let n = now();
            self.update_part(json!({"status": "error", "input": Self::input_of(t), "error": "Tool execution aborted", "time": {"start": n, "end": n}}));
        }
        self.part = None;
        if self.message.is_none() {
            self.start_message(cx);
        }
        if let Some(t) = t.and_then(|t| t.perm_id.clone()) {
            lock(&self.state)
                .pending
                .retain(|p| p.get("id").and_then(Value::as_str) != Some(t.as_str()));
        }
        cx.history.push("  ┃ The operation was aborted.".into());
        self.fail(
            cx,
            json!({"name": "MessageAbortedError", "data": {"message": "The operation was aborted."}}),
        );
    }

    fn api_error(&mut self, cx: &mut Cx) {
        if self.message.is_none() {
            self.start_message(cx);
        }
        cx.history.push(format!("  ┃ Error: {API_ERROR}"));
        self.fail(
            cx,
            json!({"name": "APIError", "data": {"message": API_ERROR, "statusCode": 400, "isRetryable": false}}),
        );
    }

    /// Like the real one (`SessionCompaction.create`): a compaction part on a user
    /// message, then the loop runs busy.
    fn compact_start(&mut self, cx: &mut Cx) {
        cx.activity = Some("Compacting conversation…".into());
        self.publish(
            "message.part.updated",
            json!({"part": {"id": opencode_id("prt"), "sessionID": cx.session_id, "messageID": self.user_msg, "type": "compaction", "auto": false}}),
        );
        self.publish(
            "session.status",
            json!({"sessionID": cx.session_id, "status": {"type": "busy"}}),
        );
    }

    fn compact_end(&mut self, cx: &mut Cx) {
        self.publish("session.compacted", json!({"sessionID": cx.session_id}));
        cx.history.push("  ┃ Session compacted".into());
    }

    fn turn_done(&mut self, cx: &mut Cx, reply: &str, _bg: bool) -> Option<Duration> {
        self.start_message(cx);
        self.text_part(cx, reply);
        self.finish_message(cx, "stop");
        cx.history.push(format!("  {reply}"));
        cx.history.push(format!(
            "  ▣ Build · {} · {:.1}s",
            self.model_id,
            cx.turn.started.elapsed().as_secs_f64()
        ));
        self.go_idle(cx);
        None
    }

    fn session_end(&mut self, _cx: &mut Cx) {}
}
