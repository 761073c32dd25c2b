//! `fake-agent`: one binary that stands in for Claude Code, Codex CLI, Gemini CLI and
//! OpenCode in Canopy's tests. It runs in a real PTY, draws each CLI's screen text,
//! calls the hooks it was configured with exactly as the real CLI does (same config
//! format, same payload field names), and writes real-format transcripts at the real
//! paths. Nothing is printed to stderr in normal operation.
//!
//! # Choosing the flavour
//! The basename of argv[0] (`claude`, `codex`, `gemini`, `opencode`; tests symlink
//! those names to this binary) or, when it is none of those, `FAKE_AGENT=<name>`.
//! `--version` prints the real CLI's version line and exits.
//!
//! # Configuration per flavour
//! - **claude**: `--settings <json|path>` (hooks `{"hooks":{"Event":[{"matcher","hooks":
//!   [{"type":"command","command","timeout"(s),"async"} | {"type":"http","url",…}]}]}}`,
//!   merged with `$CLAUDE_CONFIG_DIR|~/.claude/settings.json` and
//!   `<cwd>/.claude/settings{,.local}.json`; `disableAllHooks` honoured; also
//!   `permissions.defaultMode`), `--session-id <uuid>`, `-r/--resume <id>`,
//!   `-c/--continue`, `--permission-mode <m>` (`manual` is reported as `default`;
//!   `bypassPermissions` never asks), `--model <m>` (default `claude-sonnet-4-5`),
//!   `--append-system-prompt <t>`, positional initial prompt. Unknown flags ignored.
//!   Transcript: `$CLAUDE_CONFIG_DIR|~/.claude` `/projects/<cwd, non-alnum→'->/<id>.jsonl`.
//! - **codex**: `-c key=value` (TOML value; `hooks.<Event>=[{matcher?,hooks=[{type=
//!   "command",command,timeout?}]}]`, `notify=[argv…]`, `model`, `approval_policy`),
//!   merged over `$CODEX_HOME/config.toml`; hooks run only with
//!   `--dangerously-bypass-hook-trust`. `[flags] resume <id> [prompt]`, `-m`, `-a`
//!   (`never` = no approvals), `-s`, `-C dir`, `--no-alt-screen`. notify gets the JSON
//!   as its last argument (stdin null) after every completed turn, plus once more for a
//!   title thread (another thread-id) after the first. Rollout:
//!   `$CODEX_HOME|~/.codex/sessions/YYYY/MM/DD/rollout-<local ts>-<uuid>.jsonl`.
//! - **gemini**: hooks from the JSON file `$GEMINI_CLI_SYSTEM_SETTINGS_PATH` (timeouts in
//!   ms), ignored when any ancestor directory is group/world-writable, unless
//!   `FAKE_GEMINI_SKIP_SETTINGS_CHECK=1`. `-i/--prompt-interactive <p>` (or positional),
//!   `--session-id <uuid>`, `-r/--resume <uuid|latest>`, `--approval-mode` (`yolo` or
//!   `-y` = no approvals), `--skip-trust`, `-m`. Tool `Bash` is reported as
//!   `run_shell_command` (display "Shell"). Session file:
//!   `~/.gemini/tmp/<slug from ~/.gemini/projects.json>/chats/session-<UTC YYYY-MM-DDTHH-MM>-<id8>.jsonl`.
//! - **opencode**: `OPENCODE_CONFIG_CONTENT` (JSON: `model` "provider/model", default
//!   `anthropic/claude-sonnet-4-5`; `permission` where `allow` skips the dialog of
//!   `@ask` and `deny` blocks the tool), `--port N` (default 0 = any free port; the
//!   screen shows `server http://127.0.0.1:PORT`), `--hostname`, `--prompt <p>`,
//!   `-s/--session <id>`. HTTP: `GET /global/health`, `GET /event` (SSE, `data:
//!   {"id","type","properties"}`), `GET /permission`, `POST /permission/{id}/reply
//!   {"reply":"once|always|reject"}` (also the older `POST
//!   /session/{sid}/permissions/{id} {"response":…}`), `GET /session/status`, `GET
//!   /session/{sid}/message` (the newest), `POST /session/{id}/prompt_async`, `POST
//!   /session/{id}/abort`.
//!
//! # Behaviour
//! Start: SessionStart hook (`source` `startup`, or `resume` when resuming — the idle
//! screen then shows `resumed <id>`), idle screen. Enter submits the typed line
//! (UserPromptSubmit / BeforeAgent (+ PreCompress auto) / OpenCode events); Enter while
//! busy queues the line. The prompt is a script of space-separated directives; other
//! words are prose, echoed as the reply (or `Done.`):
//! `@sleep:MS`, `@tool:NAME:ARG` (pre + post tool hooks; `ARG` is
//! `tool_input.command`), `@ask:NAME:ARG` (pre hook, permission hook/event, dialog,
//! answer, post hook), `@error` (API error ending the turn), `@crash` (exit 1, no
//! hooks), `@exit` (SessionEnd, exit 0), `@compact`, `@bg` (claude: Stop with a
//! background task, then `idle_prompt` 200 ms later; 1.5 s later the task ends and
//! wakes the agent for a turn of its own; codex: a command that outlives its yield time,
//! PreToolUse with no PostToolUse and the footer `1 background terminal running` from
//! then until it ends 1.5 s after the turn, waking nobody), `@agent` (codex: a
//! sub-agent, `collaborationspawn_agent` tool hooks and SubagentStart in the turn,
//! SubagentStop 1.5 s after it; claude: as `@bg`), `@proceed` (prose asking to
//! proceed, no dialog), `@stream:N` (claude: N API responses one step apart, each a
//! transcript line and a screen line, with no hook — a long reply streaming in, for
//! load tests; the screen is repainted about once a second). `/exit` = `@exit`; Ctrl-C twice or Ctrl-D on an empty line exit
//! the same way. Esc (or Ctrl-C) while busy interrupts: no Stop hook.
//!
//! Dialog keys: claude `1`/Enter yes, `2` always, `3` yes, `4`/Esc no; codex `y`/Enter
//! yes, `p` always, `n`/Esc no; gemini `1`/Enter yes, `2` always, `3`/Esc no; opencode
//! Enter/`a` once, `r`/Esc reject (or the HTTP reply). Arrows move the selection.
//! Answering "no" ends the turn without a Stop hook, as an interrupt does (claude fires
//! no hook at all and shows `Interrupted · What should Claude do instead?`; codex shows
//! `Conversation interrupted`; gemini `Request cancelled.`; opencode goes idle).
//! `@error`: claude StopFailure; codex StopFailure (no notify) and `■ unexpected status
//! 400 …`; gemini AfterAgent with an empty `prompt_response` and `✕ [API Error: …]`;
//! opencode `session.error` (`APIError`) then idle. A PermissionRequest hook answering
//! `{"hookSpecificOutput":{"decision":{"behavior":"allow|deny"}}}`, a PreToolUse
//! `permissionDecision`, and exit code 2 (gemini ≥ 2) are honoured. Claude runs its
//! PermissionRequest hook beside the open dialog and takes the first answer; a hook's
//! deny sends the model its message and the turn goes on (no PermissionDenied).
//!
//! `FAKE_FIRST_PAINT_MS` (0): the screen stays blank that long after start while hooks
//! or events already go out, and keys typed meanwhile are lost (OpenCode's TUI).
//!
//! Claude fires Notification `permission_prompt` after `FAKE_PERMISSION_NOTIFY_MS`
//! (6000) with a dialog open, and `idle_prompt` after `FAKE_IDLE_NOTIFY_MS` (60000)
//! idle. Each simulated API response takes `FAKE_STEP_MS` (50) and each tool
//! `FAKE_TOOL_MS` (20).
//!
//! Usage per API response is fixed: claude 1000 in / 50 out / 2000 cache write (5m) /
//! 3000 cache read; codex 4000 in (3000 cached) / 50 out; gemini 4000 in (3000 cached)
//! / 50 out; opencode 1000 / 50 / write 2000 / read 3000. A turn makes one response per
//! tool directive plus one closing response. Claude writes every response as two lines
//! with the same `message.id`/`requestId`/usage: text + tool_use for a tool step,
//! thinking + text for the closing reply.

mod claude;
mod codex;
mod gemini;
mod hooks;
mod http;
mod matcher;
mod opencode;
mod term;
mod util;

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use hooks::Hooks;
use term::{Input, Key};

/// The reply words of `@proceed`.
pub const PROCEED_TEXT: &str = "Do you want to proceed with the plan? I will proceed.";
/// The message of `@error`.
pub const API_ERROR: &str = "API Error: 400 mock bad request";

/// Session state shared by the runner and the flavour.
pub struct Cx {
    pub session_id: String,
    pub cwd: PathBuf,
    pub model: String,
    pub resumed: Option<String>,
    pub hooks: Hooks,
    /// Conversation lines shown above the input area.
    pub history: Vec<String>,
    /// The line being typed.
    pub input: String,
    /// What the busy line says instead of the flavour's default (e.g. compacting).
    pub activity: Option<String>,
    /// A transient footer note (e.g. "Press Ctrl-C again to exit").
    pub notice: Option<String>,
    pub turn: Turn,
    /// Completed turns so far.
    pub turns_done: u32,
    /// Where hooks that run beside the UI (claude's PermissionRequest) send their answer.
    pub inputs: std::sync::mpsc::Sender<Input>,
}

#[derive(Debug, Clone)]
pub struct Turn {
    pub prompt: String,
    pub id: String,
    pub started: Instant,
}

#[derive(Debug, Clone)]
pub struct ToolCall {
    /// The name from the directive (`Bash`, `Read`, …).
    pub name: String,
    pub arg: String,
    pub id: String,
    /// The permission request id (OpenCode).
    pub perm_id: Option<String>,
    pub started: Instant,
    /// Whether the user was asked.
    pub asked: bool,
    /// Whether it runs (or ran): past its permission.
    pub running: bool,
}

/// What the pre-tool hooks decided.
pub enum Pre {
    Continue,
    Allow,
    Ask,
    Block(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Once,
    Always,
    Reject,
}

/// What the bottom of the screen shows.
pub enum View<'a> {
    Idle,
    Busy(Duration),
    Dialog(&'a ToolCall, usize),
}

/// One CLI's screens, hooks and transcript.
pub trait Flavour {
    /// Banner lines (including `resumed <id>` when resuming).
    fn header(&self, cx: &Cx) -> Vec<String>;
    /// The lines under the history, and the cursor position within them.
    fn bottom(&self, cx: &Cx, view: &View<'_>) -> (Vec<String>, Option<(usize, usize)>);
    /// The dialog's options, in order.
    fn options(&self) -> &'static [Answer];
    /// A key that picks an option directly.
    fn answer_key(&self, key: &Key) -> Option<Answer>;
    /// Whether approvals are off (bypass / yolo / never).
    fn bypass(&self) -> bool;
    fn tool_id(&self) -> String;
    /// Uses the alternate screen.
    fn alt_screen(&self) -> bool {
        false
    }
    /// Printed after the screen is left on a clean exit.
    fn goodbye(&self, _cx: &Cx) -> String {
        String::new()
    }

    fn session_start(&mut self, cx: &mut Cx);
    /// A prompt was submitted (`cx.turn` is set). `Err` = blocked by a hook.
    fn prompt(&mut self, cx: &mut Cx) -> Result<(), String>;
    /// The model asked for a tool (transcript lines, screen).
    fn tool_requested(&mut self, cx: &mut Cx, t: &ToolCall);
    fn tool_pre(&mut self, cx: &mut Cx, t: &ToolCall) -> Pre;
    fn tool_blocked(&mut self, cx: &mut Cx, t: &ToolCall, reason: &str);
    /// The permission dialog opens; a hook may answer it.
    fn permission_asked(&mut self, cx: &mut Cx, t: &mut ToolCall) -> Option<Answer>;
    /// The dialog has been open for the notification delay.
    fn permission_waiting(&mut self, _cx: &mut Cx, _t: &ToolCall) {}
    fn permission_answered(&mut self, _cx: &mut Cx, _t: &ToolCall, _a: Answer) {}
    fn tool_running(&mut self, _cx: &mut Cx, _t: &ToolCall) {}
    fn tool_done(&mut self, cx: &mut Cx, t: &ToolCall, output: &str, duration_ms: u64);
    /// The user said no; the turn ends.
    fn denied(&mut self, cx: &mut Cx, t: &ToolCall);
    /// Esc while busy; the turn ends.
    fn interrupted(&mut self, cx: &mut Cx, t: Option<&ToolCall>);
    fn api_error(&mut self, cx: &mut Cx);
    fn compact_start(&mut self, cx: &mut Cx);
    fn compact_end(&mut self, cx: &mut Cx);
    /// The turn completed; returns when to send an idle notification, if ever.
    fn turn_done(&mut self, cx: &mut Cx, reply: &str, bg: bool) -> Option<Duration>;
    /// Work that outlives the turn starts (`@bg`, or `@agent`: a sub-agent).
    fn background_started(&mut self, _cx: &mut Cx, _agent: bool) {}
    /// That work ends; returns the prompt it wakes the agent with (Claude Code takes a
    /// turn of its own), or `None` when it wakes nobody (Codex).
    fn background_done(&mut self, _cx: &mut Cx) -> Option<String> {
        Some(BACKGROUND_DONE.into())
    }
    fn idle_notify(&mut self, _cx: &mut Cx) {}
    fn session_end(&mut self, cx: &mut Cx);
    /// Part `i` of a streamed reply (`@stream:N`): an API response with no hook. Only
    /// claude writes one; the others show the line only.
    fn stream_part(&mut self, cx: &mut Cx, i: u64) {
        cx.history.push(format!("streamed part {i}"));
    }
}

/// Why a turn stopped early.
enum Stop {
    Interrupt(Option<ToolCall>),
    Denied,
    Exit(i32),
}

enum Mode {
    Idle,
    Busy(Instant),
    Dialog(ToolCall, usize),
}

struct Agent {
    fl: Box<dyn Flavour>,
    cx: Cx,
    rx: Receiver<Input>,
    mode: Mode,
    queue: VecDeque<String>,
    always: HashSet<String>,
    step: Duration,
    tool_time: Duration,
    perm_notify: Duration,
    last_ctrl_c: Option<Instant>,
    idle_deadline: Option<Instant>,
    /// When the task left in the background (`@bg`) ends and wakes the agent.
    wake_at: Option<Instant>,
    /// A permission hook's deny reason, for the answer it ended the dialog with.
    hook_denied: Option<String>,
}

enum Directive<'a> {
    Sleep(u64),
    Stream(u64),
    Tool(&'a str, &'a str, bool),
    Error,
    Crash,
    Exit,
    Compact,
    Bg,
    Agent,
    Proceed,
    Word(&'a str),
}

fn directive(word: &str) -> Directive<'_> {
    if let Some(ms) = word.strip_prefix("@sleep:")
        && let Ok(ms) = ms.parse()
    {
        return Directive::Sleep(ms);
    }
    if let Some(n) = word.strip_prefix("@stream:")
        && let Ok(n) = n.parse()
    {
        return Directive::Stream(n);
    }
    for (prefix, ask) in [("@tool:", false), ("@ask:", true)] {
        if let Some(rest) = word.strip_prefix(prefix) {
            let (name, arg) = rest.split_once(':').unwrap_or((rest, ""));
            if !name.is_empty() {
                return Directive::Tool(name, arg, ask);
            }
        }
    }
    match word {
        "@error" => Directive::Error,
        "@crash" => Directive::Crash,
        "@exit" => Directive::Exit,
        "@compact" => Directive::Compact,
        "@bg" => Directive::Bg,
        "@agent" => Directive::Agent,
        "@proceed" => Directive::Proceed,
        w => Directive::Word(w),
    }
}

impl Agent {
    fn render(&self) {
        let mut lines = self.fl.header(&self.cx);
        lines.extend(self.cx.history.iter().cloned());
        let view = match &self.mode {
            Mode::Idle => View::Idle,
            Mode::Busy(since) => View::Busy(since.elapsed()),
            Mode::Dialog(t, sel) => View::Dialog(t, *sel),
        };
        let (bottom, cursor) = self.fl.bottom(&self.cx, &view);
        let base = lines.len();
        lines.extend(bottom);
        if let Some(n) = &self.cx.notice {
            lines.push(format!("  {n}"));
        }
        term::paint(&lines, cursor.map(|(r, c)| (base + r, c)));
    }

    fn set_busy(&mut self) {
        if !matches!(self.mode, Mode::Busy(_)) {
            self.mode = Mode::Busy(Instant::now());
        }
        self.render();
    }

    fn set_idle(&mut self) {
        self.mode = Mode::Idle;
        self.cx.activity = None;
        self.render();
    }

    /// Typing while busy: edit the line, Enter queues it.
    fn type_ahead(&mut self, key: Key) {
        match key {
            Key::Char(c) => self.cx.input.push(c),
            Key::Paste(p) => self.cx.input.push_str(&paste_text(&p)),
            Key::Backspace => {
                self.cx.input.pop();
            }
            Key::CtrlU => self.cx.input.clear(),
            Key::Enter => {
                let line = std::mem::take(&mut self.cx.input);
                if !line.trim().is_empty() {
                    self.queue.push_back(line);
                }
            }
            _ => return,
        }
        self.render();
    }

    /// Stay busy for `d`; Esc/Ctrl-C interrupts.
    fn busy_wait(&mut self, d: Duration) -> Result<(), Stop> {
        self.set_busy();
        let end = Instant::now() + d;
        loop {
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            let wait = (end - now).min(Duration::from_secs(1));
            match self.rx.recv_timeout(wait) {
                Ok(Input::Key(Key::Esc | Key::CtrlC)) | Ok(Input::Abort) => {
                    return Err(Stop::Interrupt(None));
                }
                Ok(Input::Key(k)) => self.type_ahead(k),
                Ok(Input::Prompt(p)) => self.queue.push_back(p),
                Ok(Input::PermissionReply(..) | Input::HookDecision { .. }) => {}
                Ok(Input::Eof) | Err(RecvTimeoutError::Disconnected) => return Err(Stop::Exit(0)),
                Err(RecvTimeoutError::Timeout) => self.render(),
            }
        }
    }

    fn wait_permission(&mut self, t: &ToolCall) -> Result<Answer, Stop> {
        let options = self.fl.options();
        self.mode = Mode::Dialog(t.clone(), 0);
        self.render();
        let notify_at = Instant::now() + self.perm_notify;
        let mut notified = false;
        loop {
            let wait = if notified {
                Duration::from_secs(3600)
            } else {
                notify_at.saturating_duration_since(Instant::now())
            };
            let sel = match &self.mode {
                Mode::Dialog(_, s) => *s,
                _ => 0,
            };
            match self.rx.recv_timeout(wait) {
                Ok(Input::Key(k)) => {
                    if let Some(a) = self.fl.answer_key(&k) {
                        return Ok(a);
                    }
                    let new_sel = match k {
                        Key::Enter => return Ok(options[sel.min(options.len() - 1)]),
                        Key::Esc | Key::CtrlC => return Ok(Answer::Reject),
                        Key::Up | Key::Left => sel.saturating_sub(1),
                        Key::Down | Key::Right | Key::Tab => (sel + 1).min(options.len() - 1),
                        _ => continue,
                    };
                    if let Mode::Dialog(_, s) = &mut self.mode {
                        *s = new_sel;
                    }
                    self.render();
                }
                Ok(Input::PermissionReply(id, reply)) => {
                    if t.perm_id.as_deref() == Some(id.as_str()) {
                        return Ok(match reply.as_str() {
                            "always" => Answer::Always,
                            "reject" => Answer::Reject,
                            _ => Answer::Once,
                        });
                    }
                }
                Ok(Input::HookDecision { tool_id, deny }) => {
                    if tool_id == t.id {
                        let answer = if deny.is_some() {
                            Answer::Reject
                        } else {
                            Answer::Once
                        };
                        self.hook_denied = deny;
                        return Ok(answer);
                    }
                }
                Ok(Input::Abort) => return Err(Stop::Interrupt(Some(t.clone()))),
                Ok(Input::Prompt(p)) => self.queue.push_back(p),
                Ok(Input::Eof) | Err(RecvTimeoutError::Disconnected) => return Err(Stop::Exit(0)),
                Err(RecvTimeoutError::Timeout) => {
                    if !notified {
                        notified = true;
                        self.fl.permission_waiting(&mut self.cx, t);
                        self.render();
                    }
                }
            }
        }
    }

    fn tool(&mut self, name: &str, arg: &str, ask: bool) -> Result<(), Stop> {
        self.busy_wait(self.step)?;
        let mut t = ToolCall {
            name: name.to_owned(),
            arg: arg.to_owned(),
            id: self.fl.tool_id(),
            perm_id: None,
            started: Instant::now(),
            asked: false,
            running: false,
        };
        self.fl.tool_requested(&mut self.cx, &t);
        self.render();
        let mut ask = ask;
        match self.fl.tool_pre(&mut self.cx, &t) {
            Pre::Continue => {}
            Pre::Allow => ask = false,
            Pre::Ask => ask = true,
            Pre::Block(reason) => {
                self.fl.tool_blocked(&mut self.cx, &t, &reason);
                self.render();
                return Ok(());
            }
        }
        if ask && !self.always.contains(name) && !self.fl.bypass() {
            let answer = match self.fl.permission_asked(&mut self.cx, &mut t) {
                Some(a) => a,
                None => self.wait_permission(&t)?,
            };
            t.asked = true;
            self.fl.permission_answered(&mut self.cx, &t, answer);
            match answer {
                // A hook's deny: the model is told why, and the turn goes on.
                Answer::Reject if let Some(reason) = self.hook_denied.take() => {
                    self.fl.tool_blocked(&mut self.cx, &t, &reason);
                    self.mode = Mode::Busy(Instant::now());
                    self.render();
                    return Ok(());
                }
                Answer::Reject => {
                    self.fl.denied(&mut self.cx, &t);
                    return Err(Stop::Denied);
                }
                Answer::Always => {
                    self.always.insert(name.to_owned());
                }
                Answer::Once => {}
            }
            self.mode = Mode::Busy(Instant::now());
        }
        t.started = Instant::now();
        t.running = true;
        self.fl.tool_running(&mut self.cx, &t);
        match self.busy_wait(self.tool_time) {
            Err(Stop::Interrupt(_)) => return Err(Stop::Interrupt(Some(t))),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let duration = t.started.elapsed().as_millis() as u64;
        let output = if arg.is_empty() {
            format!("fake {name} output")
        } else {
            format!("fake output of {arg}")
        };
        self.fl.tool_done(&mut self.cx, &t, &output, duration);
        self.render();
        Ok(())
    }

    /// Run one prompt; `Some(code)` = exit the process.
    fn run_turn(&mut self, prompt: String) -> Option<i32> {
        let trimmed = prompt.trim();
        if trimmed == "/exit" || trimmed == "/quit" {
            return Some(self.exit_clean());
        }
        self.idle_deadline = None;
        self.cx.notice = None;
        self.cx.turn = Turn {
            prompt: prompt.clone(),
            id: util::uuid_v7(),
            started: Instant::now(),
        };
        self.mode = Mode::Busy(Instant::now());
        if let Err(reason) = self.fl.prompt(&mut self.cx) {
            let reason = if reason.is_empty() {
                "Prompt blocked by hook".to_owned()
            } else {
                format!("Prompt blocked by hook: {reason}")
            };
            self.cx.history.push(format!("  ⎿  {reason}"));
            self.set_idle();
            return None;
        }
        self.render();
        match self.script(&prompt) {
            Ok(()) => {}
            Err(Stop::Exit(code)) => return Some(code),
            Err(Stop::Denied) => {}
            Err(Stop::Interrupt(t)) => self.fl.interrupted(&mut self.cx, t.as_ref()),
        }
        self.set_idle();
        None
    }

    fn script(&mut self, prompt: &str) -> Result<(), Stop> {
        let mut prose: Vec<&str> = Vec::new();
        let mut bg = false;
        for word in prompt.split_whitespace() {
            self.cx.activity = None;
            match directive(word) {
                Directive::Sleep(ms) => self.busy_wait(Duration::from_millis(ms))?,
                Directive::Stream(n) => {
                    // Painted once a second, not per part: a hundred of these at once
                    // measure the host's usage path, not its terminal emulator. Keys
                    // are read between paints only.
                    let per_paint = (1000 / self.step.as_millis().max(1)).max(1) as u64;
                    for i in 0..n {
                        if i % per_paint == 0 {
                            self.busy_wait(self.step)?;
                        } else {
                            std::thread::sleep(self.step);
                        }
                        self.fl.stream_part(&mut self.cx, i);
                    }
                }
                Directive::Tool(name, arg, ask) => self.tool(name, arg, ask)?,
                Directive::Error => {
                    self.busy_wait(self.step)?;
                    self.fl.api_error(&mut self.cx);
                    return Ok(());
                }
                Directive::Crash => {
                    term::leave_raw();
                    std::process::exit(1);
                }
                Directive::Exit => return Err(Stop::Exit(self.exit_clean())),
                Directive::Compact => {
                    self.fl.compact_start(&mut self.cx);
                    self.busy_wait(self.step)?;
                    self.fl.compact_end(&mut self.cx);
                    self.cx.activity = None;
                }
                Directive::Bg => {
                    bg = true;
                    self.fl.background_started(&mut self.cx, false);
                }
                Directive::Agent => {
                    bg = true;
                    self.fl.background_started(&mut self.cx, true);
                }
                Directive::Proceed => prose.push(PROCEED_TEXT),
                Directive::Word(w) => prose.push(w),
            }
        }
        self.busy_wait(self.step)?;
        let reply = if prose.is_empty() {
            "Done.".to_owned()
        } else {
            prose.join(" ")
        };
        let notify = self.fl.turn_done(&mut self.cx, &reply, bg);
        self.cx.turns_done += 1;
        self.idle_deadline = notify.map(|d| Instant::now() + d);
        // The background task ends a while later and wakes the agent for a turn.
        self.wake_at = bg.then(|| Instant::now() + BACKGROUND_TASK);
        Ok(())
    }

    fn exit_clean(&mut self) -> i32 {
        self.fl.session_end(&mut self.cx);
        self.cx.input.clear();
        self.cx.notice = None;
        self.set_idle();
        finish_screen(self.fl.alt_screen());
        let bye = self.fl.goodbye(&self.cx);
        if !bye.is_empty() {
            term::write_out(format!("{bye}\r\n").as_bytes());
        }
        0
    }

    fn run(&mut self) -> i32 {
        loop {
            if let Some(p) = self.queue.pop_front() {
                if let Some(code) = self.run_turn(p) {
                    return code;
                }
                continue;
            }
            if !matches!(self.mode, Mode::Idle) {
                self.set_idle();
            }
            let wait = [self.idle_deadline, self.wake_at]
                .into_iter()
                .flatten()
                .min()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(3600));
            match self.rx.recv_timeout(wait) {
                Ok(Input::Key(k)) => {
                    if let Some(code) = self.idle_key(k) {
                        return code;
                    }
                }
                Ok(Input::Prompt(p)) => self.queue.push_back(p),
                Ok(Input::Abort | Input::PermissionReply(..) | Input::HookDecision { .. }) => {}
                Ok(Input::Eof) | Err(RecvTimeoutError::Disconnected) => {
                    term::leave_raw();
                    return 0;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.idle_deadline.is_some_and(|d| d <= Instant::now()) {
                        self.idle_deadline = None;
                        self.fl.idle_notify(&mut self.cx);
                    }
                    if self.wake_at.is_some_and(|d| d <= Instant::now()) {
                        self.wake_at = None;
                        match self.fl.background_done(&mut self.cx) {
                            Some(wake) => self.queue.push_back(wake),
                            None => self.render(),
                        }
                    }
                }
            }
        }
    }

    fn idle_key(&mut self, k: Key) -> Option<i32> {
        if k != Key::CtrlC {
            self.last_ctrl_c = None;
            self.cx.notice = None;
        }
        match k {
            Key::Enter => {
                let line = std::mem::take(&mut self.cx.input);
                if !line.trim().is_empty() {
                    self.queue.push_back(line);
                }
            }
            Key::CtrlC => {
                if !self.cx.input.is_empty() {
                    self.cx.input.clear();
                } else if self
                    .last_ctrl_c
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(2))
                {
                    return Some(self.exit_clean());
                } else {
                    self.last_ctrl_c = Some(Instant::now());
                    self.cx.notice = Some("Press Ctrl-C again to exit".into());
                }
            }
            Key::CtrlD if self.cx.input.is_empty() => return Some(self.exit_clean()),
            Key::Char(c) => self.cx.input.push(c),
            Key::Paste(p) => self.cx.input.push_str(&paste_text(&p)),
            Key::Backspace => {
                self.cx.input.pop();
            }
            Key::CtrlU => self.cx.input.clear(),
            _ => {}
        }
        self.render();
        None
    }
}

/// How long the task `@bg` leaves in the background runs.
const BACKGROUND_TASK: Duration = Duration::from_millis(1500);
/// What the agent is woken with when it ends (Claude Code 2.1 takes a turn of its own).
const BACKGROUND_DONE: &str = "Background command \"sleep 5\" completed (exit code 0)";

/// Pasted text with its line breaks as `\n`.
fn paste_text(p: &str) -> String {
    p.replace("\r\n", "\n").replace('\r', "\n")
}

fn finish_screen(alt: bool) {
    let mut s = String::from("\x1b[?2004l\x1b[?25h");
    if alt {
        s.push_str("\x1b[?1049l");
    } else {
        term::below_screen();
    }
    term::write_out(s.as_bytes());
    term::leave_raw();
}

/// Which CLI to be.
fn pick_flavour() -> Option<String> {
    const NAMES: [&str; 4] = ["claude", "codex", "gemini", "opencode"];
    let arg0 = std::env::args_os().next().unwrap_or_default();
    let base = std::path::Path::new(&arg0)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    if NAMES.contains(&base.as_str()) {
        return Some(base);
    }
    let env = std::env::var("FAKE_AGENT").ok()?;
    NAMES.contains(&env.as_str()).then_some(env)
}

fn main() {
    let Some(name) = pick_flavour() else {
        eprintln!("fake-agent: invoke as claude, codex, gemini or opencode (or set FAKE_AGENT)");
        std::process::exit(2);
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args
        .iter()
        .any(|a| matches!(a.as_str(), "--version" | "-v" | "-V"))
    {
        let v = match name.as_str() {
            "claude" => "2.1.332 (Claude Code)",
            "codex" => "codex-cli 0.169.0",
            "gemini" => "0.61.0",
            _ => "1.18.33",
        };
        println!("{v}");
        return;
    }

    let (tx, rx) = channel();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let mut cx = Cx {
        session_id: String::new(),
        cwd,
        model: String::new(),
        resumed: None,
        hooks: Hooks::default(),
        history: Vec::new(),
        input: String::new(),
        activity: None,
        notice: None,
        turn: Turn {
            prompt: String::new(),
            id: String::new(),
            started: Instant::now(),
        },
        turns_done: 0,
        inputs: tx.clone(),
    };
    let (fl, initial): (Box<dyn Flavour>, Option<String>) = match name.as_str() {
        "claude" => claude::Claude::start(&args, &mut cx),
        "codex" => codex::Codex::start(&args, &mut cx),
        "gemini" => gemini::Gemini::start(&args, &mut cx),
        _ => match opencode::OpenCode::start(&args, &mut cx, tx.clone()) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("Error: {e}");
                std::process::exit(1);
            }
        },
    };
    cx.hooks.cwd = cx.cwd.clone();

    term::enter_raw();
    let mut init = String::from("\x1b[?2004h");
    if fl.alt_screen() {
        init.insert_str(0, "\x1b[?1049h");
    }
    term::write_out(init.as_bytes());
    term::spawn_reader(tx);

    let mut agent = Agent {
        fl,
        cx,
        rx,
        mode: Mode::Idle,
        queue: VecDeque::new(),
        always: HashSet::new(),
        step: Duration::from_millis(util::env_ms("FAKE_STEP_MS", 50)),
        tool_time: Duration::from_millis(util::env_ms("FAKE_TOOL_MS", 20)),
        perm_notify: Duration::from_millis(util::env_ms("FAKE_PERMISSION_NOTIFY_MS", 6000)),
        last_ctrl_c: None,
        idle_deadline: None,
        wake_at: None,
        hook_denied: None,
    };
    // OpenCode's server sends events seconds before its TUI first draws, and keys typed
    // meanwhile are lost (`FAKE_FIRST_PAINT_MS`, 0 by default).
    let first_paint = Duration::from_millis(util::env_ms("FAKE_FIRST_PAINT_MS", 0));
    if first_paint.is_zero() {
        agent.render();
    }
    agent.fl.session_start(&mut agent.cx);
    if !first_paint.is_zero() {
        std::thread::sleep(first_paint);
        while agent.rx.try_recv().is_ok() {}
    }
    agent.render();
    if let Some(p) = initial.filter(|p| !p.trim().is_empty()) {
        agent.queue.push_back(p);
    }
    let code = agent.run();
    std::process::exit(code);
}

/// Parsed command line: flags with values, boolean flags, positionals.
#[derive(Debug, Default)]
pub struct Args {
    pub values: Vec<(String, String)>,
    pub flags: Vec<String>,
    pub positional: Vec<String>,
}

impl Args {
    /// Parse `args`; `with_value` lists flags that take a value (`--x v` or `--x=v`).
    pub fn parse(args: &[String], with_value: &[&str]) -> Args {
        let mut out = Args::default();
        let mut it = args.iter();
        let mut only_positional = false;
        while let Some(a) = it.next() {
            if only_positional || !a.starts_with('-') || a == "-" {
                out.positional.push(a.clone());
                continue;
            }
            if a == "--" {
                only_positional = true;
                continue;
            }
            if let Some((k, v)) = a.split_once('=').filter(|(k, _)| k.starts_with("--")) {
                out.values.push((k.to_owned(), v.to_owned()));
                continue;
            }
            // `--flag...`: takes every value up to the next flag, as Claude's
            // `--allowedTools` does (it swallows a prompt that follows it).
            if with_value.contains(&format!("{a}...").as_str()) {
                while let Some(v) = it.as_slice().first().filter(|v| !v.starts_with('-')) {
                    out.values.push((a.clone(), v.clone()));
                    it.next();
                }
                continue;
            }
            if with_value.contains(&a.as_str()) {
                if let Some(v) = it.next() {
                    out.values.push((a.clone(), v.clone()));
                }
                continue;
            }
            out.flags.push(a.clone());
        }
        out
    }

    /// The last value of any of `names`.
    pub fn value(&self, names: &[&str]) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.values
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, names: &[&str]) -> bool {
        self.flags.iter().any(|f| names.contains(&f.as_str()))
    }
}

/// Draw `lines` inside a rounded box `width` columns wide.
pub fn boxed(lines: &[String], width: usize) -> Vec<String> {
    let inner = width.saturating_sub(4);
    let mut out = vec![format!("╭{}╮", "─".repeat(width.saturating_sub(2)))];
    for l in lines {
        let n = l.chars().count();
        let pad = inner.saturating_sub(n);
        out.push(format!("│ {l}{} │", " ".repeat(pad)));
    }
    out.push(format!("╰{}╯", "─".repeat(width.saturating_sub(2))));
    out
}

/// The width to draw boxes and rules at.
pub fn width() -> usize {
    term::size().1.saturating_sub(2).clamp(20, 100)
}
