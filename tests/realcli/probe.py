#!/usr/bin/env python3
"""Drive each real agent CLI in a real PTY (120x40) against mock_models.py and record
its hook events and screens.

    python3 tests/realcli/probe.py [claude|codex|gemini|opencode ...] [options]

Per CLI, in a fresh temp HOME (XDG dirs inside it) and project dir:
  1. start the CLI with the initial prompt "please RUN_TOOL touch probe.txt" in manual /
     on-request approval mode, hooks -> hook_logger.py (OpenCode: its /event SSE stream)
  2. wait for the permission dialog, snapshot it, answer it by typing keys (--answer)
  3. the tool runs, the turn ends -> snapshot the idle screen
  4. (--busy) type "SLOW 4 busy check" and snapshot the busy screen
  5. type "API_ERROR now" -> snapshot the error screen
  6. exit the CLI (its exit command, then Ctrl-C/Ctrl-D, then SIGTERM/SIGKILL)
It prints the ordered hook events, the screen lines at dialog/idle/busy/error, and a verdict.
Full screens + raw PTY bytes + hook log go to --out (default: a temp dir, printed).

Screens are rendered with `pyte` when it is importable (pip install pyte); otherwise a crude
ANSI-stripping fallback is used (good enough for pattern matching, not for exact lines).

Experiments (FINDINGS.md):
  --perm-hook-sleep 5            PermissionRequest hook sleeps 5 s (claude, codex)
  --perm-hook-reply allow|deny   PermissionRequest hook prints an allow/deny decision
  --answer yes|no|none|api       how to answer the dialog (api: OpenCode REST reply)
  --answer-delay S               wait S seconds after the dialog shows before answering
  --startup                      also measure time-to-idle-screen without a prompt
  --resume                       after exit, relaunch with the CLI's resume flag and report
"""
import argparse
import codecs
import fcntl
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(HERE, "bin")
HOOK = os.path.join(HERE, "hook_logger.py")
MOCK = os.path.join(HERE, "mock_models.py")
COLS, ROWS = 120, 40
API_KEY = "sk-mock-realcli-0123456789abcdefghijklmnopqrstuv"

try:
    import pyte  # type: ignore
except Exception:  # noqa: BLE001
    pyte = None

OSC_RE = re.compile(r"\x1b\](\d+);([^\x07\x1b]*)(?:\x07|\x1b\\)")
ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[PX^_][^\x1b]*\x1b\\|\x1b[()][0-9A-Za-z]|\x1b[=>78DEHMNOc]")


def now():
    return time.time()


# --------------------------------------------------------------------------- mock server
class Mock:
    def __init__(self, out_dir):
        self.err_path = os.path.join(out_dir, "mock.log")
        self.bodies = os.path.join(out_dir, "mock_bodies.jsonl")
        self.err = open(self.err_path, "w")
        self.p = subprocess.Popen([sys.executable, MOCK, "--port", "0", "--log-bodies", self.bodies],
                                  stdout=subprocess.PIPE, stderr=self.err, text=True)
        line = self.p.stdout.readline().strip()
        if not line.startswith("PORT="):
            raise SystemExit(f"mock_models.py did not start: {line!r}")
        self.port = int(line.split("=", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def lines(self):
        self.err.flush()
        with open(self.err_path) as f:
            return [l.rstrip("\n") for l in f if l.startswith(("POST", "GET"))]

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(3)
            except subprocess.TimeoutExpired:
                self.p.kill()
        self.err.close()


# --------------------------------------------------------------------------- PTY + screen
if pyte is not None:
    class _Screen(pyte.Screen):
        def __init__(self, cols, rows, responder):
            super().__init__(cols, rows)
            self._responder = responder

        def write_process_input(self, data):  # DSR / DA replies go back to the app
            self._responder(data)


class Term:
    """A child process on a real PTY with a rendered screen."""

    def __init__(self, argv, env, cwd, raw_path, cols=COLS, rows=ROWS, answer_osc7501=False):
        self.argv = argv
        self.answer_osc7501 = answer_osc7501
        self.osc = []  # (t, code, data) for OSC 0/2 titles and OSC 7501 program status
        self._osc_tail = ""
        self.cols, self.rows = cols, rows
        self.raw = open(raw_path, "wb")
        self.lock = threading.Lock()
        self.text = ""  # fallback: ANSI-stripped transcript
        self.last_out = now()
        self.exit_status = None
        self.t_start = now()
        pid, fd = os.forkpty()
        if pid == 0:  # child
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                os.chdir(cwd)
                os.execvpe(argv[0], argv, env)
            except Exception as e:  # noqa: BLE001
                os.write(2, f"exec failed: {e}\n".encode())
            os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.dec = codecs.getincrementaldecoder("utf-8")("replace")
        if pyte is not None:
            self.screen = _Screen(cols, rows, self._respond)
            self.stream = pyte.Stream(self.screen)
        else:
            self.screen = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _respond(self, data):
        try:
            os.write(self.fd, data.encode() if isinstance(data, str) else data)
        except OSError:
            pass

    def _read(self):
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                break
            if not data:
                break
            self.raw.write(data)
            s = self.dec.decode(data)
            if self.answer_osc7501 and "\x1b]7501;?" in s:
                # Claude Code probes `OSC 7501 ; ?` (program status) and only emits
                # `OSC 7501;state=…;app=claude-code` if the terminal answers before DA1.
                self._respond("\x1b]7501;?\x07")
            buf = self._osc_tail + s
            last_end = 0
            for m in OSC_RE.finditer(buf):
                last_end = m.end()
                if m.group(1) in ("0", "2", "7501", "9", "777", "99"):
                    self.osc.append((now(), m.group(1), m.group(2)))
            rest = buf[last_end:]
            i = rest.rfind("\x1b]")
            self._osc_tail = rest[i:][-512:] if i >= 0 else ""
            with self.lock:
                self.last_out = now()
                if self.screen is not None:
                    try:
                        self.stream.feed(s)
                    except Exception:  # noqa: BLE001 - never let a render bug kill the probe
                        pass
                else:
                    # crude fallback: answer cursor-position queries, strip escapes
                    if "\x1b[6n" in s:
                        self._respond("\x1b[1;1R")
                    self.text = (self.text + ANSI_RE.sub("", s).replace("\r", ""))[-20000:]
        self.raw.flush()

    def lines(self):
        with self.lock:
            if self.screen is not None:
                return [l.rstrip() for l in self.screen.display]
            return self.text.split("\n")[-self.rows:]

    def screen_text(self):
        return "\n".join(self.lines())

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        os.write(self.fd, data)

    def type_line(self, text, enter="\r"):
        self.send(text)
        time.sleep(0.6)
        self.send(enter)

    def alive(self):
        if self.exit_status is not None:
            return False
        try:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.exit_status = -1
            return False
        if pid == 0:
            return True
        self.exit_status = os.waitstatus_to_exitcode(st)
        return False

    def wait_exit(self, timeout):
        end = now() + timeout
        while now() < end:
            if not self.alive():
                return True
            time.sleep(0.1)
        return False

    def kill(self):
        for sig, wait in ((signal.SIGHUP, 2), (signal.SIGTERM, 2), (signal.SIGKILL, 2)):
            if not self.alive():
                break
            try:
                os.killpg(self.pid, sig)  # forkpty child is a session/group leader
            except ProcessLookupError:
                break
            self.wait_exit(wait)
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.raw.close()


def find(lines, pat):
    rx = re.compile(pat) if isinstance(pat, str) else pat
    return [l for l in lines if rx.search(l)]


def snippet(lines, keep_blank=False):
    out = [l for l in lines if keep_blank or l.strip()]
    return out


# --------------------------------------------------------------------------- hook log
class HookLog:
    def __init__(self, path):
        self.path = path
        open(path, "a").close()

    def records(self):
        out = []
        with open(self.path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except Exception:  # noqa: BLE001
                    pass
        return out

    def events(self):
        return [r["event"] for r in self.records() if r.get("phase") == "start"]

    def has(self, ev, after=0.0):
        return any(r["event"] == ev and r.get("phase") == "start" and r["t"] >= after for r in self.records())

    def first(self, ev, after=0.0, phase="start"):
        for r in self.records():
            if r["event"] == ev and r.get("phase") == phase and r["t"] >= after:
                return r
        return None


class OpencodeEvents(threading.Thread):
    """Tails OpenCode's embedded server /event SSE into the hook log (tagged 'opencode')."""

    def __init__(self, base, log_path):
        super().__init__(daemon=True)
        self.base, self.log_path = base, log_path
        self.stop = False
        self.connected = False

    def run(self):
        while not self.stop:
            try:
                with urllib.request.urlopen(self.base + "/event", timeout=60) as r:
                    self.connected = True
                    for raw in r:
                        if self.stop:
                            return
                        line = raw.decode("utf-8", "replace").strip()
                        if not line.startswith("data:"):
                            continue
                        try:
                            ev = json.loads(line[5:].strip())
                        except Exception:  # noqa: BLE001
                            continue
                        typ = ev.get("type") or (ev.get("payload") or {}).get("type") or "?"
                        if typ in ("server.heartbeat", "message.part.delta"):
                            continue
                        with open(self.log_path, "a") as f:
                            f.write(json.dumps({"cli": "opencode", "event": typ, "phase": "start",
                                                "t": now(), "payload": ev}) + "\n")
            except Exception:  # noqa: BLE001
                time.sleep(0.3)


# --------------------------------------------------------------------------- per-CLI setup
class Ctx:
    def __init__(self, cli, root, mock, args):
        self.cli, self.root, self.mock, self.args = cli, root, mock, args
        self.home = os.path.join(root, "home")
        self.proj = os.path.join(root, "proj")
        os.makedirs(self.home, mode=0o700)
        os.makedirs(self.proj)
        os.chmod(root, 0o700)
        self.hook_log_path = os.path.join(root, "hooks.jsonl")
        self.hooks = HookLog(self.hook_log_path)
        self.hook_cmd = f"{sys.executable} {HOOK} {cli}"
        self.session_id = str(uuid.uuid4())
        self.oc_port = None
        self.cleanup = []

    def env(self):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "CLAUDE", "CODEX_",
                                  "OPENCODE", "REALCLI_", "TMUX", "NO_COLOR"))}
        e.update({
            "HOME": self.home, "TERM": "xterm-256color", "COLORTERM": "truecolor", "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
            "XDG_DATA_HOME": os.path.join(self.home, ".local/share"),
            "XDG_CACHE_HOME": os.path.join(self.home, ".cache"),
            "XDG_STATE_HOME": os.path.join(self.home, ".local/state"),
            "PATH": BIN + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
            "REALCLI_HOOK_LOG": self.hook_log_path,
            "COLUMNS": str(COLS), "LINES": str(ROWS),
        })
        a = self.args
        if a.perm_hook_sleep:
            e["REALCLI_HOOK_SLEEP_EVENT"] = PERM_EVENT.get(self.cli, "PermissionRequest")
            e["REALCLI_HOOK_SLEEP_SECS"] = str(a.perm_hook_sleep)
        if a.perm_hook_reply:
            e["REALCLI_HOOK_REPLY_EVENT"] = PERM_EVENT.get(self.cli, "PermissionRequest")
            if a.perm_hook_json:
                e["REALCLI_HOOK_REPLY_JSON"] = a.perm_hook_json
            elif a.perm_hook_reply == "allow":
                e["REALCLI_HOOK_REPLY_JSON"] = json.dumps({"hookSpecificOutput": {
                    "hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}})
            else:
                e["REALCLI_HOOK_REPLY_JSON"] = json.dumps({"hookSpecificOutput": {
                    "hookEventName": "PermissionRequest",
                    "decision": {"behavior": "deny", "message": "denied by canopy probe hook"}}})
        return e


OPENCODE_NOISE = {"plugin.added", "catalog.updated", "reference.updated", "integration.updated",
                  "message.part.updated", "message.updated", "session.updated", "session.diff"}
TIMELINE_EVENTS = {"PermissionRequest", "Notification", "PostToolUse", "PostToolUseFailure", "PermissionDenied",
                   "Stop", "StopFailure", "BeforeTool", "AfterTool", "AfterAgent", "permission.asked",
                   "permission.replied", "session.idle", "session.error"}
PERM_EVENT = {"claude": "PermissionRequest", "codex": "PermissionRequest"}

CLAUDE_EVENTS = ["SessionStart", "SessionEnd", "UserPromptSubmit", "PreToolUse", "PostToolUse",
                 "PostToolUseFailure", "PermissionRequest", "PermissionDenied", "Notification", "Stop",
                 "StopFailure", "PreCompact", "SubagentStart", "SubagentStop"]
CODEX_EVENTS = ["SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest", "PostToolUse",
                "Stop", "StopFailure", "SessionEnd"]
GEMINI_EVENTS = ["SessionStart", "SessionEnd", "BeforeAgent", "AfterAgent", "BeforeTool", "AfterTool",
                 "Notification", "PreCompress", "BeforeModel", "AfterModel"]


def setup_claude(c, prompt, resume=False):
    key = API_KEY
    with open(os.path.join(c.home, ".claude.json"), "w") as f:
        json.dump({"hasCompletedOnboarding": True, "numStartups": 1,
                   "projects": {c.proj: {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
                   "customApiKeyResponses": {"approved": [key[-20:]], "rejected": []}}, f)
    hooks = {}
    for ev in CLAUDE_EVENTS:
        h = {"type": "command", "command": c.hook_cmd, "timeout": c.args.hook_timeout}
        hooks[ev] = [{"matcher": "", "hooks": [h]}]
    settings = json.dumps({"hooks": hooks})
    env = c.env()
    env.update({"ANTHROPIC_BASE_URL": c.mock.url, "ANTHROPIC_API_KEY": key,
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"})
    argv = [os.path.join(BIN, "claude"), "--permission-mode", "manual", "--settings", settings]
    if resume:
        argv += ["--resume", c.session_id]
    else:
        argv += ["--session-id", c.session_id]
    if prompt:
        argv.append(prompt)
    return argv, env


def _toml_str(s):
    return json.dumps(s)  # JSON string literal is a valid TOML basic string


def setup_codex(c, prompt, resume=False):
    ch = os.path.join(c.home, ".codex")
    os.makedirs(ch, exist_ok=True)
    lines = [
        'model = "gpt-5.5"', 'model_provider = "mock"', 'approval_policy = "on-request"',
        'sandbox_mode = "workspace-write"', 'check_for_update_on_startup = false',
        '[model_providers.mock]', 'name = "Mock"', f'base_url = "{c.mock.url}/v1"', 'wire_api = "responses"',
        'env_key = "MOCK_API_KEY"', 'request_max_retries = 0', 'stream_max_retries = 0',
        '[features]', 'enable_request_compression = false',
        f'[projects.{_toml_str(c.proj)}]', 'trust_level = "trusted"',
        '[hooks]',
    ]
    for ev in CODEX_EVENTS:
        lines.append(f'{ev} = [{{ hooks = [{{ type = "command", command = {_toml_str(c.hook_cmd)}, timeout = {c.args.hook_timeout} }}] }}]')
    with open(os.path.join(ch, "config.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    env = c.env()
    env.update({"CODEX_HOME": ch, "MOCK_API_KEY": "mock"})
    argv = [os.path.join(BIN, "codex")]
    if resume:
        argv += ["resume", c.codex_thread or "--last"]
    argv += ["--dangerously-bypass-hook-trust", "--no-alt-screen", "-a", "on-request", "-s", "workspace-write",
             "-C", c.proj]
    if c.args.codex_no_daemon:
        argv.append("--no-daemon")
    if prompt:
        argv.append(prompt)
    return argv, env


def secure_dir(name):
    """A 0700 directory none of whose ancestors is group/world writable (~/.cache/canopy-realcli/<name>)."""
    base = os.path.join(os.path.expanduser("~"), ".cache", "canopy-realcli")
    os.makedirs(base, mode=0o700, exist_ok=True)
    d = os.path.join(base, name)
    os.makedirs(d, mode=0o700, exist_ok=True)
    p = d
    while p != os.path.dirname(p):
        if os.stat(p).st_mode & 0o022:
            print(f"warning: {p} is group/world writable; Gemini will ignore system settings under it",
                  file=sys.stderr)
        p = os.path.dirname(p)
    return d


def setup_gemini(c, prompt, resume=False):
    gdir = os.path.join(c.home, ".gemini")
    os.makedirs(gdir, exist_ok=True)
    with open(os.path.join(gdir, "settings.json"), "w") as f:
        json.dump({"security": {"auth": {"selectedType": "gemini-api-key"}},
                   "ui": {"theme": "Default"}, "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
                   "privacy": {"usageStatisticsEnabled": False}}, f)
    # Gemini silently skips GEMINI_CLI_SYSTEM_SETTINGS_PATH when ANY ancestor directory is group/world
    # writable (including /tmp itself, mode 1777), so the file must live outside /tmp.
    sysdir = secure_dir(f"gemini-sys-{os.path.basename(c.root)}")
    c.cleanup.append(sysdir)
    hooks = {}
    for ev in GEMINI_EVENTS:
        hooks[ev] = [{"matcher": "", "hooks": [{"type": "command", "command": c.hook_cmd, "name": f"log-{ev}",
                                                 "timeout": c.args.hook_timeout * 1000}]}]
    sysfile = os.path.join(sysdir, "settings.json")
    with open(sysfile, "w") as f:
        json.dump({"hooks": hooks}, f)
    env = c.env()
    env.update({"GEMINI_API_KEY": "mock-key", "GOOGLE_GEMINI_BASE_URL": c.mock.url,
                "GEMINI_CLI_SYSTEM_SETTINGS_PATH": sysfile, "GEMINI_CLI_NO_RELAUNCH": "true"})
    argv = [os.path.join(BIN, "gemini"), "--approval-mode", "default", "--skip-trust"]
    if resume:
        argv += ["--resume", c.args.gemini_resume or c.session_id]
    else:
        argv += ["--session-id", c.session_id]
    if prompt:
        argv += ["-i", prompt]
    return argv, env


def setup_opencode(c, prompt, resume=False):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    c.oc_port = s.getsockname()[1]
    s.close()
    cfg = {"$schema": "https://opencode.ai/config.json", "model": "anthropic/claude-sonnet-4-5",
           "autoupdate": False, "share": "disabled",
           "provider": {"anthropic": {"options": {"baseURL": c.mock.url + "/v1", "apiKey": "mock-key"}}},
           "permission": {"bash": "ask", "edit": "ask"}}
    env = c.env()
    env.update({"OPENCODE_CONFIG_CONTENT": json.dumps(cfg), "OPENCODE_DISABLE_MODELS_FETCH": "1",
                "OPENCODE_DISABLE_AUTOUPDATE": "1", "OPENCODE_DISABLE_LSP_DOWNLOAD": "1"})
    argv = [os.path.join(BIN, "opencode"), c.proj, "--port", str(c.oc_port), "--hostname", "127.0.0.1"]
    if resume and c.oc_session:
        argv += ["--session", c.oc_session]
    if prompt:
        argv += ["--prompt", prompt]
    return argv, env


# Screen patterns / keys per CLI (see FINDINGS.md d)
SPEC = {
    "claude": dict(setup=setup_claude,
                   dialog=r"Do you want to proceed\?",
                   idle=r"^\s*❯\s*$|^❯ ",
                   busy=r"esc to interrupt",
                   error=r"API Error|mock bad request",
                   yes=["\r"], no=["\x1b"],
                   exit=["/exit", "\r"],
                   turn_end=["Stop", "StopFailure"], error_hook="StopFailure",
                   startup_dialogs=[]),
    "codex": dict(setup=setup_codex,
                  dialog=r"Would you like to run the following command\?|Press enter to confirm",
                  idle=r"Ask Codex to do anything",
                  busy=r"esc to interrupt",
                  error=r"mock bad request|unexpected status|■",
                  yes=["y"], no=["\x1b"],
                  exit=["/quit", "\r"],
                  turn_end=["Stop", "StopFailure"], error_hook="StopFailure",
                  startup_dialogs=[(r"Trust this folder|Do you trust", "1\r"),
                                   (r"Hooks need review", "2\r"),
                                   (r"Use existing model", "2\r")]),
    "gemini": dict(setup=setup_gemini,
                   dialog=r"Allow execution of|Allow once",
                   idle=r"Type your message",
                   busy=r"esc to cancel",
                   error=r"mock bad request|\[API Error",
                   yes=["\r"], no=["\x1b"],
                   exit=["/quit", "\r"],
                   turn_end=["AfterAgent"], error_hook=None,
                   startup_dialogs=[(r"Do you trust this folder", "1\r")]),
    "opencode": dict(setup=setup_opencode,
                     dialog=r"Permission required",
                     idle=r"ctrl\+p commands|tab agents|Ask anything",
                     busy=r"esc interrupt",
                     error=r"mock bad request",
                     yes=["\r"], no=["\x1b"],
                     exit=["\x03"],
                     turn_end=["session.idle"], error_hook="session.error",
                     startup_dialogs=[]),
}


# --------------------------------------------------------------------------- the probe
class Probe:
    def __init__(self, cli, args, out_root, mock):
        self.cli, self.args, self.mock = cli, args, mock
        self.spec = SPEC[cli]
        self.root = tempfile.mkdtemp(prefix=f"realcli-{cli}-", dir=out_root)
        self.c = Ctx(cli, self.root, mock, args)
        self.c.codex_thread = None
        self.c.oc_session = None
        self.report = {"cli": cli, "dir": self.root, "steps": [], "screens": {}, "ok": False}
        self.t0 = now()
        self.t_launch = self.t0
        self.marks = []
        self.osc_all = []
        self.term = None
        self.oc = None
        self.deadline = now() + args.timeout

    # helpers -----------------------------------------------------------
    def step(self, msg):
        dt = now() - self.t0
        self.report["steps"].append(f"{dt:6.2f}s {msg}")
        if self.args.verbose:
            print(f"  [{self.cli} {dt:6.2f}s] {msg}", flush=True)

    def snap(self, name):
        lines = self.term.lines()
        self.report["screens"][name] = lines
        with open(os.path.join(self.root, f"screen-{name}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        return lines

    def left(self, cap):
        return max(0.5, min(cap, self.deadline - now()))

    def wait(self, cond, timeout, auto_dialogs=True):
        end = now() + self.left(timeout)
        answered = set()
        while now() < end:
            if cond():
                return True
            if not self.term.alive():
                return cond()
            if auto_dialogs:
                txt = self.term.screen_text()
                for pat, keys in self.spec["startup_dialogs"]:
                    if pat not in answered and re.search(pat, txt):
                        self.step(f"auto-answer startup dialog /{pat}/ with {keys!r}")
                        self.term.send(keys)
                        answered.add(pat)
            time.sleep(0.1)
        return False

    def turn_done(self, since):
        """Turn end: a turn-end hook since `since`, or (fallback) an idle screen stable for 1.5 s."""
        sp = self.spec
        if any(self.c.hooks.has(e, since) for e in sp["turn_end"]):
            return True
        idle = (self.on_screen(sp["idle"]) and not self.on_screen(sp["busy"])
                and not self.on_screen(sp["dialog"]))
        if not idle:
            self._idle_since = None
            return False
        if getattr(self, "_idle_since", None) is None:
            self._idle_since = now()
        return now() - self._idle_since >= 1.5 and now() - since > 2.0

    def on_screen(self, pat):
        return bool(re.search(pat, self.term.screen_text(), re.M))

    def launch(self, prompt, resume=False, raw_name="raw"):
        argv, env = self.spec["setup"](self.c, prompt, resume)
        with open(os.path.join(self.root, f"{raw_name}.argv.json"), "w") as f:
            json.dump(argv, f)
        if self.term is not None:
            self.osc_all += self.term.osc
        self.term = Term(argv, env, self.c.proj, os.path.join(self.root, f"{raw_name}.pty"),
                         answer_osc7501=self.args.osc7501)
        if self.cli == "opencode":
            self._opencode_wait_server()
        return self.term

    def close(self, graceful=True):
        if self.term is None:
            return None
        if graceful and self.term.alive():
            for k in self.spec["exit"]:
                self.term.send(k)
                time.sleep(0.5)
            if not self.term.wait_exit(8):
                self.step("exit command did not end it; sending Ctrl-C Ctrl-C / Ctrl-D")
                for k in ("\x03", "\x03", "\x04"):
                    if self.term.alive():
                        self.term.send(k)
                        time.sleep(0.7)
                self.term.wait_exit(4)
        exited_by_itself = not self.term.alive()
        code = self.term.exit_status
        self.term.kill()
        if self.oc:
            self.oc.stop = True
        self.step(f"process ended (exit={code}, by itself={exited_by_itself})")
        return exited_by_itself

    # scenario -----------------------------------------------------------
    def measure_startup(self):
        t = now()
        self.launch(None, raw_name="startup")
        ok = self.wait(lambda: self.on_screen(self.spec["idle"]), 40)
        dt = now() - t
        self.report["startup_s"] = round(dt, 2) if ok else None
        self.snap("startup-idle")
        self.step(f"startup to idle screen: {dt:.2f}s ok={ok}")
        self.close()
        # fresh state for the real run
        open(self.c.hook_log_path, "w").close()
        if self.cli == "claude":
            pass

    def run(self):
        sp = self.spec
        a = self.args
        if a.startup:
            self.measure_startup()
            self.deadline = now() + a.timeout
        t_launch = self.t_launch = now()
        self.launch(a.prompt)
        self.step(f"launched: {' '.join(self.term.argv[:1])} … (pid {self.term.pid})")
        # 1. dialog
        # (a PermissionRequest hook that decides may mean no dialog at all: then the turn just ends)
        self._idle_since = None
        got = self.wait(lambda: self.on_screen(sp["dialog"]) or
                        any(self.c.hooks.has(e, t_launch) for e in sp["turn_end"]), 60)
        got = got and self.on_screen(sp["dialog"])
        t_dialog = now()
        self.report["t_dialog"] = t_dialog if got else None
        self.snap("dialog")
        if not got:
            no_dialog_ok = bool(a.perm_hook_reply) and any(self.c.hooks.has(e, t_launch) for e in sp["turn_end"])
            self.step(f"no permission dialog appeared (turn ended without it: {no_dialog_ok})")
            if not no_dialog_ok:
                self.report["error"] = "permission dialog never appeared"
                self.close()
                return self.finish()
        else:
            self.marks.append(("dialog visible", t_dialog))
            self.step(f"dialog visible after {t_dialog - t_launch:.2f}s")
            time.sleep(0.3)
            self.snap("dialog")
            self.answer_dialog()
        # 3. turn end
        self._idle_since = None
        ended = self.wait(lambda: self.turn_done(t_launch), 30)
        time.sleep(1.0)
        self.snap("idle")
        tool_ran = os.path.exists(os.path.join(self.c.proj, "probe.txt"))
        self.report["tool_ran"] = tool_ran
        self.step(f"turn ended={ended}, probe.txt exists={tool_ran}")
        return self.rest()

    def answer_dialog(self):
        sp, a = self.spec, self.args
        if a.answer_delay:
            time.sleep(a.answer_delay)
            self.snap("dialog-before-answer")
        self.marks.append((f"answered {a.answer}", now()))
        if a.answer in ("yes", "no"):
            keys = sp["yes"] if a.answer == "yes" else sp["no"]
            if a.keys is not None:
                keys = [a.keys.encode().decode("unicode_escape")]
            self.step(f"answer {a.answer}: typing {keys!r}")
            for k in keys:
                self.term.send(k)
                time.sleep(0.2)
        elif a.answer == "api":
            self._opencode_api_reply()
        else:
            self.step("not answering the dialog (answer=none)")
        t_answer = now()
        gone = self.wait(lambda: not self.on_screen(sp["dialog"]), 15 if a.answer == "none" else 30,
                         auto_dialogs=False)
        if not gone and a.answer == "none" and self.term.alive():
            self.step("dialog still open; answering yes now so the scenario can go on")
            self.marks.append(("fallback answer yes", now()))
            for k in sp["yes"]:
                self.term.send(k)
            gone = self.wait(lambda: not self.on_screen(sp["dialog"]), 10, auto_dialogs=False)
        self.step(f"dialog closed={gone} {now() - t_answer:.2f}s after answer")
        if gone:
            self.marks.append(("dialog gone", now()))
        self.snap("after-answer")

    def rest(self):
        sp, a = self.spec, self.args
        # 4. busy screen
        if a.busy and self.term.alive():
            t_b = now()
            self.term.type_line("SLOW 4 busy check")
            self.wait(lambda: self.on_screen(sp["busy"]), 4)
            time.sleep(1.0)
            self.snap("busy")
            self._idle_since = None
            self.wait(lambda: self.turn_done(t_b), 15)
            time.sleep(1.0)
            self.snap("idle2")
        # 5. API error
        if self.term.alive():
            t_e = now()
            self.term.type_line("API_ERROR now")
            evs = [sp["error_hook"]] if sp["error_hook"] else sp["turn_end"]
            got_err = self.wait(lambda: any(self.c.hooks.has(e, t_e) for e in evs)
                                or self.on_screen(sp["error"]), 30)
            time.sleep(1.5)
            self.snap("error")
            self.report["error_seen"] = got_err
            self.step(f"error seen={got_err}")
        # 6. exit
        exited = self.close()
        self.report["exited_cleanly"] = exited
        if a.resume:
            self.try_resume()
        return self.finish()

    def try_resume(self):
        if self.cli == "codex":
            for r in self.c.hooks.records():
                sid = (r.get("payload") or {}).get("session_id")
                if sid:
                    self.c.codex_thread = sid
                    break
        if self.cli == "opencode":
            for r in self.c.hooks.records():
                p = (r.get("payload") or {}).get("properties") or {}
                if p.get("sessionID"):
                    self.c.oc_session = p["sessionID"]
                    break
        t = now()
        self.deadline = now() + 60
        self.launch(None, resume=True, raw_name="resume")
        ok = self.wait(lambda: self.on_screen(r"mock reply|done:"), 30)
        time.sleep(1.5)
        self.snap("resume")
        self.report["resume_ok"] = ok
        self.step(f"resume shows old conversation={ok} after {now() - t:.2f}s")
        self.close()

    def _opencode_wait_server(self):
        base = f"http://127.0.0.1:{self.c.oc_port}"
        ok = self.wait(lambda: self._get(base + "/global/health") is not None, 30)
        self.step(f"opencode server up={ok} on {base}")
        # connect only once the server answers: an early connect can hang while it boots
        self.oc = OpencodeEvents(base, self.c.hook_log_path)
        self.oc.start()
        self.wait(lambda: self.oc.connected, 5)

    def _get(self, url, data=None):
        try:
            req = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=3) as r:
                body = r.read()
                return json.loads(body) if body else {}
        except Exception:  # noqa: BLE001
            return None

    def _opencode_api_reply(self):
        base = f"http://127.0.0.1:{self.c.oc_port}"
        pend = self._get(base + "/permission") or []
        self.step(f"GET /permission -> {json.dumps(pend)[:300]}")
        if pend:
            pid = pend[0].get("id")
            res = self._get(f"{base}/permission/{pid}/reply", {"reply": self.args.api_reply})
            self.step(f"POST /permission/{pid}/reply {self.args.api_reply} -> {res}")
            self.report["api_reply"] = {"id": pid, "result": res}

    def finish(self):
        evs = self.c.hooks.events()
        if self.cli == "opencode":
            evs = [e for e in evs if e not in OPENCODE_NOISE]
        tl = []
        for rec in self.c.hooks.records():
            if rec.get("phase") == "return" or rec["event"] in TIMELINE_EVENTS:
                extra = ""
                if rec.get("phase") == "return":
                    extra = f" returned {rec.get('stdout', '')[:80]!r} exit={rec.get('exit')}"
                pl = rec.get("payload") or {}
                if rec["event"] == "Notification":
                    extra += f" {pl.get('notification_type', '')}"
                tl.append(f"{rec['t'] - self.t_launch:5.2f} {rec['event']}{extra}")
        for name, t in self.marks:
            tl.append(f"{t - self.t_launch:5.2f} [{name}]")
        osc = self.osc_all + (self.term.osc if self.term else [])
        prev = {}
        for t, code, data in osc:
            if code in ("0", "2"):
                data = re.sub(r"^[⠀-⣿]", "⠿", data.strip())  # collapse braille spinner frames
                if prev.get("title") == data:
                    continue
                prev["title"] = data
                if self.args.titles:
                    tl.append(f"{t - self.t_launch:5.2f} title={data!r}")
            else:
                tl.append(f"{t - self.t_launch:5.2f} OSC{code} {data!r}")
        self.report["osc"] = [(round(t - self.t_launch, 2), c, d) for t, c, d in osc]
        tl.sort(key=lambda x: float(x.split()[0]))
        self.report["timeline"] = tl
        self.report["hook_events"] = evs
        self.report["mock_requests"] = self.mock_lines
        dialog = snippet(self.report["screens"].get("dialog", []))
        a = self.args
        exp = None  # expected "tool ran"
        if a.perm_hook_reply:
            exp = (a.perm_hook_reply == "allow") if a.answer == "none" else None
        elif a.answer == "yes":
            exp = True
        elif a.answer == "no":
            exp = False
        elif a.answer == "api":
            exp = a.api_reply != "reject"
        ok = (not self.report.get("error") and bool(self.report.get("error_seen"))
              and (exp is None or self.report.get("tool_ran") == exp)
              and (bool(self.report.get("t_dialog")) or bool(a.perm_hook_reply)))
        self.report["ok"] = ok
        for d in self.c.cleanup:
            shutil.rmtree(d, ignore_errors=True)
        with open(os.path.join(self.root, "report.json"), "w") as f:
            json.dump(self.report, f, indent=1, default=str)
        return self.report

    @property
    def mock_lines(self):
        return self.mock.lines()


def print_report(r, verbose_screens):
    print(f"\n=== {r['cli']}: {'WORKED' if r['ok'] else 'FAILED'}   (artifacts: {r['dir']})")
    if r.get("error"):
        print(f"  error: {r['error']}")
    if r.get("startup_s") is not None:
        print(f"  startup to idle screen: {r['startup_s']}s")
    # compress consecutive duplicates for readability
    evs, out = r.get("hook_events", []), []
    for e in evs:
        if out and out[-1][0] == e:
            out[-1][1] += 1
        else:
            out.append([e, 1])
    print("  hook events: " + " → ".join(e if n == 1 else f"{e}×{n}" for e, n in out))
    if r.get("timeline"):
        print("  timeline (s since launch): " + "; ".join(r["timeline"]))
    print(f"  tool ran (probe.txt): {r.get('tool_ran')}   error seen: {r.get('error_seen')}   "
          f"exited by itself: {r.get('exited_cleanly')}")
    if "resume_ok" in r:
        print(f"  resume showed previous conversation: {r['resume_ok']}")
    print("  steps:")
    for s in r["steps"]:
        print("    " + s)
    names = ["dialog", "idle", "busy", "error"] if not verbose_screens else list(r["screens"])
    for name in names:
        lines = snippet(r["screens"].get(name, []))
        if lines:
            print(f"  screen [{name}]:")
            for l in lines[-18:]:
                print("    | " + l)


def main():
    ap = argparse.ArgumentParser(description="Probe real agent CLIs in a PTY against mock_models.py")
    ap.add_argument("clis", nargs="*", default=["claude", "codex", "gemini", "opencode"])
    ap.add_argument("--prompt", default="please RUN_TOOL touch probe.txt")
    ap.add_argument("--answer", choices=["yes", "no", "none", "api"], default="yes")
    ap.add_argument("--keys", default=None, help="override the answer keys (python escapes, e.g. '1' or '\\r')")
    ap.add_argument("--answer-delay", type=float, default=0.0)
    ap.add_argument("--api-reply", default="once", help="OpenCode REST reply: once|always|reject")
    ap.add_argument("--perm-hook-sleep", type=float, default=0.0)
    ap.add_argument("--perm-hook-reply", choices=["allow", "deny"], default=None)
    ap.add_argument("--perm-hook-json", default=None, help="exact stdout for the PermissionRequest hook")
    ap.add_argument("--busy", action="store_true", help="also snapshot a busy screen (SLOW 4 prompt)")
    ap.add_argument("--startup", action="store_true", help="measure time to idle screen first")
    ap.add_argument("--resume", action="store_true", help="relaunch with the resume flag afterwards")
    ap.add_argument("--codex-no-daemon", action="store_true")
    ap.add_argument("--osc7501", action="store_true",
                    help="answer Claude's OSC 7501 program-status probe (it then reports its state)")
    ap.add_argument("--hook-timeout", type=int, default=60, help="hook timeout in seconds (all hooks)")
    ap.add_argument("--titles", action="store_true", help="show terminal title changes in the timeline")
    ap.add_argument("--gemini-resume", default=None, help="value for gemini --resume (default: the session id)")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds per CLI run")
    ap.add_argument("--out", default=None, help="directory for artifacts (default: new temp dir)")
    ap.add_argument("--all-screens", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    for c in args.clis:
        if c not in SPEC:
            ap.error(f"unknown cli {c!r}")
        if not os.path.exists(os.path.join(BIN, c)):
            sys.exit(f"{BIN}/{c} missing: run tests/realcli/install.sh first")
    if pyte is None:
        print("note: pyte not installed; screens are approximations (pip install pyte)", file=sys.stderr)
    out_root = args.out or tempfile.mkdtemp(prefix="realcli-probe-")
    os.makedirs(out_root, exist_ok=True)
    mock = Mock(out_root)
    results = []
    try:
        for cli in args.clis:
            p = Probe(cli, args, out_root, mock)
            try:
                r = p.run()
            except Exception as e:  # noqa: BLE001
                import traceback
                traceback.print_exc()
                p.report["error"] = f"{type(e).__name__}: {e}"
                if p.term:
                    p.term.kill()
                r = p.finish()
            results.append(r)
            print_report(r, args.all_screens)
    finally:
        mock.stop()
    print(f"\nmock log: {mock.err_path}")
    print("summary: " + ", ".join(f"{r['cli']}={'ok' if r['ok'] else 'FAIL'}" for r in results))
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
