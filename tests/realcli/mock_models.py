#!/usr/bin/env python3
"""Scripted mock of three model wire APIs, for running the real agent CLIs offline.

Python 3 stdlib only.  One server on 127.0.0.1:PORT serves:

  Anthropic Messages   POST /v1/messages[?beta=true]   (SSE when "stream": true, JSON otherwise)
                       POST /v1/messages/count_tokens
                       GET  /v1/models
  OpenAI Responses     POST /v1/responses               (SSE)
                       GET  /v1/models                  (same handler; both shapes in one body)
  Gemini               POST /v1beta/models/<m>:streamGenerateContent?alt=sse
                       POST /v1beta/models/<m>:generateContent   (router / JSON-schema side calls)
                       POST /v1beta/models/<m>:countTokens

Scripted scenario, decided per request from the conversation so far:
  * last user text starts with "API_ERROR"     -> HTTP 400, provider error JSON, "mock bad request"
  * last user text starts with "API_ERROR500"  -> HTTP 500 (a server error the CLI may retry)
  * last user text starts with "RATE_LIMIT_ONCE" -> HTTP 429 with retry-after: 1 the first time that
                                                  conversation asks, then the normal answer
  * last user text contains "RUN_SAFE <cmd>"   -> like RUN_TOOL, but Codex is not asked to escalate
                                                  (so its sandbox runs it without a dialog)
  * last user text contains "RUN_TOOL <cmd>"   -> ONE shell tool call running <cmd>; with
        "RUN_TOOL <a> THEN_TOOL <b>" a second call running <b> follows the first one's result
        Claude Code / OpenCode: tool named Bash/bash, input {"command": cmd, "description": ...}
        Codex:  function_call exec_command {"cmd": cmd, "sandbox_permissions":"require_escalated", ...}
        Gemini: functionCall run_shell_command {"command": cmd}
    (only when the request offers such a tool; side requests without tools get text)
  * last user text contains "RUN_BG <cmd>"     -> a shell call running <cmd> in the background
                                                  (Claude Code "run_in_background": true,
                                                  Gemini "is_background": true)
  * last user text contains "RUN_AGENT <task>" -> Claude Code: an Agent (sub-agent) call with
                                                  <task> as its prompt, in the background;
                                                  OpenCode: a task call (a child session)
  * last message is a tool result              -> text "done: <first 40 chars of result>"
  * otherwise                                  -> text "mock reply"
  (user text typed after a rejected call shares a message with its tool_result: text wins)
  * "SLOW <secs>" anywhere in the last user text delays the reply (to observe busy screens).

Usage numbers are fixed:
  Anthropic: input 1000, output 50, cache_creation 2000 (ephemeral_5m 2000), cache_read 3000
  OpenAI:    input 2400 (cached 1600), output 120 (reasoning 40), total 2520
  Gemini:    prompt 1500 (cached 500), candidates 40, thoughts 50, total 1590

Each request is logged as one line on stderr:  <METHOD> <path> model=<m> branch=<b>
With --log-bodies FILE every request (path + JSON body) is appended to FILE as one JSON line.

Run:  python3 mock_models.py --port 0      (prints "PORT=<n>" as the first stdout line)
"""
import argparse
import gzip
import json
import re
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

MOCK_TEXT = "mock reply"
ERROR_TEXT = "mock bad request"

ANTHROPIC_USAGE = {
    "input_tokens": 1000,
    "cache_creation_input_tokens": 2000,
    "cache_read_input_tokens": 3000,
    "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 50,
    "service_tier": "standard",
}
OPENAI_USAGE = {
    "input_tokens": 2400,
    "input_tokens_details": {"cached_tokens": 1600},
    "output_tokens": 120,
    "output_tokens_details": {"reasoning_tokens": 40},
    "total_tokens": 2520,
}
GEMINI_USAGE = {
    "promptTokenCount": 1500,
    "cachedContentTokenCount": 500,
    "candidatesTokenCount": 40,
    "thoughtsTokenCount": 50,
    "totalTokenCount": 1590,
}

ARGS = None
_log_lock = threading.Lock()


def log(line):
    with _log_lock:
        sys.stderr.write(line.rstrip("\n") + "\n")
        sys.stderr.flush()


def log_body(path, body):
    if not ARGS or not ARGS.log_bodies:
        return
    with _log_lock:
        with open(ARGS.log_bodies, "a", encoding="utf-8") as f:
            f.write(json.dumps({"t": time.time(), "path": path, "body": body}) + "\n")


def new_id(prefix):
    return prefix + uuid.uuid4().hex[:24]


RUN_TOOL_RE = re.compile(r"RUN_(?:TOOL|SAFE)[ \t]+(.+?)(?:[ \t]+THEN_TOOL[ \t]|[\n\r]|$)")
RUN_BG_RE = re.compile(r"RUN_(BG|AGENT)[ \t]+([^\n\r]+)")
THEN_TOOL_RE = re.compile(r"THEN_TOOL[ \t]+([^\n\r]+)")
# Conversations already refused once with 429, by their first words.
_rate_limited = set()
_rate_lock = threading.Lock()


def rate_limited_now(text):
    """True the first time a RATE_LIMIT_ONCE prompt asks, False on the retry."""
    if "RATE_LIMIT_ONCE" not in (text or ""):
        return False
    with _rate_lock:
        if text in _rate_limited:
            return False
        _rate_limited.add(text)
        return True
SLOW_RE = re.compile(r"SLOW[ \t]+([0-9]+(?:\.[0-9]+)?)")


def decide(last_text, tool_result, can_call_tool, turn_text="", results=0):
    """Return (branch, payload). branch in tool_result|api_error|tool_call|text.

    `last_text` is the user-typed text of the last user turn; `tool_result` the text of a tool
    result in that turn (or None).  After a rejected tool call, Claude Code and OpenCode put the
    tool_result AND the user's next prompt into ONE user message, so new user text wins over the
    tool result: API_ERROR > RUN_TOOL > tool result > plain text.
    """
    text = last_text or ""
    # Error triggers count only at the start of a prompt: a compaction request quotes the
    # whole conversation, earlier "API_ERROR" prompts included.
    lead = text.lstrip()
    if lead.startswith("API_ERROR500"):
        return "server_error", "mock server error"
    if lead.startswith("RATE_LIMIT_ONCE") and rate_limited_now(text):
        return "rate_limited", "mock rate limited"
    if lead.startswith("API_ERROR"):
        return "api_error", ERROR_TEXT
    m = RUN_BG_RE.search(text)
    if m and can_call_tool and tool_result is None:
        kind = "background_call" if m.group(1) == "BG" else "agent_call"
        return kind, m.group(2).strip().rstrip("\"'`<").strip()
    m = RUN_TOOL_RE.search(text)
    if m and can_call_tool:
        cmd = m.group(1).strip()
        # strip closing quotes/markup a CLI may wrap around the prompt
        cmd = cmd.rstrip("\"'`<").strip()
        return "tool_call", cmd
    # "RUN_TOOL a THEN_TOOL b": after the first tool's result, a second call in the turn.
    then = THEN_TOOL_RE.search(turn_text or "")
    if tool_result is not None and then and results == 1 and can_call_tool:
        return "tool_call", then.group(1).strip().rstrip("\"'`<").strip()
    if tool_result is not None:
        return "tool_result", "done: " + tool_result[:40]
    return "text", MOCK_TEXT


def slow_secs(text):
    m = SLOW_RE.search(text or "")
    return float(m.group(1)) if m else 0.0


def _flatten_text(x):
    """Text of a tool result / content that may be str, list of blocks, or dict."""
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    if isinstance(x, list):
        return "".join(_flatten_text(i) for i in x)
    if isinstance(x, dict):
        if "text" in x and isinstance(x["text"], str):
            return x["text"]
        for k in ("output", "content", "llmContent", "result", "stdout"):
            if k in x:
                return _flatten_text(x[k])
        return json.dumps(x)
    return str(x)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CanopyMockModels/1.0"

    # --- plumbing -------------------------------------------------------
    def log_message(self, fmt, *args):  # silence default access log
        pass

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        enc = (self.headers.get("Content-Encoding") or "").lower()
        try:
            if enc == "gzip":
                raw = gzip.decompress(raw)
            elif enc == "deflate":
                raw = zlib.decompress(raw)
            elif enc in ("zstd", "br"):
                log(f"WARN body Content-Encoding {enc} is not supported by the mock")
        except Exception as e:  # noqa: BLE001
            log(f"WARN cannot decode body ({enc}): {e}")
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except Exception:  # noqa: BLE001
            return {"_raw": raw[:2000].decode("utf-8", "replace")}

    def _send_json(self, code, obj, extra_headers=None):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _start_sse(self, extra_headers=None):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.close_connection = True

    def _sse(self, data, event=None):
        out = ""
        if event:
            out += f"event: {event}\n"
        out += "data: " + json.dumps(data) + "\n\n"
        self.wfile.write(out.encode())
        self.wfile.flush()
        if ARGS and ARGS.event_delay:
            time.sleep(ARGS.event_delay)

    # --- routing --------------------------------------------------------
    def do_GET(self):
        path = urlsplit(self.path).path
        if path.rstrip("/") in ("/v1/models", "/models"):
            log(f"GET {self.path} model=- branch=models")
            models = [
                {"id": m, "object": "model", "type": "model", "display_name": m,
                 "created": 1764000000, "created_at": "2026-11-01T00:00:00Z", "owned_by": "mock"}
                for m in ("gpt-5.5", "claude-sonnet-4-5", "claude-opus-5-5")
            ]
            # OpenAI list shape ("data") + Anthropic list shape ("data", "has_more") + Codex ("models": [])
            return self._send_json(200, {"object": "list", "data": models, "has_more": False,
                                         "first_id": models[0]["id"], "last_id": models[-1]["id"],
                                         "models": []})
        if path in ("/", "/health", "/healthz"):
            log(f"GET {self.path} model=- branch=health")
            return self._send_json(200, {"ok": True})
        log(f"GET {self.path} model=- branch=404")
        self._send_json(404, {"error": {"message": f"mock: no route GET {path}"}})

    def do_HEAD(self):
        log(f"HEAD {self.path} model=- branch=head")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        path = urlsplit(self.path).path
        body = self._read_body()
        log_body(self.path, body)
        try:
            if path.endswith("/messages/count_tokens"):
                log(f"POST {self.path} model={body.get('model', '-')} branch=count_tokens")
                return self._send_json(200, {"input_tokens": 1000})
            # "ANSWERED <unix time>" once a model answer has gone out whole: when the
            # truth changed, for tests that measure how soon Canopy shows it.
            if path.endswith("/messages"):
                self.anthropic(body)
                return log(f"ANSWERED {time.time():.3f} {self.path}")
            if path.endswith("/responses"):
                self.openai(body)
                return log(f"ANSWERED {time.time():.3f} {self.path}")
            m = re.search(r"/models/([^/:]+):(streamGenerateContent|generateContent|countTokens)$", path)
            if m:
                self.gemini(m.group(1), m.group(2), body)
                return log(f"ANSWERED {time.time():.3f} {self.path}")
            log(f"POST {self.path} model=- branch=404")
            self._send_json(404, {"error": {"message": f"mock: no route POST {path}"}})
        except (BrokenPipeError, ConnectionResetError):
            log(f"WARN client closed connection during {self.path}")

    def _error_status(self, branch):
        """HTTP status and headers of an error branch, or None."""
        return {"api_error": (400, {}), "server_error": (500, {}),
                "rate_limited": (429, {"retry-after": "1"})}.get(branch)

    # --- Anthropic ------------------------------------------------------
    def anthropic(self, body):
        model = body.get("model", "claude-sonnet-4-5")
        # Claude Code 2.1.332 appends a role:"system" message (environment) after the user turn:
        # the "last message" is the last user/assistant one.
        msgs = [m for m in (body.get("messages") or []) if m.get("role") in ("user", "assistant")]
        last = msgs[-1] if msgs else {}
        last_text, tool_result = "", None
        content = last.get("content")
        if last.get("role") == "user":
            if isinstance(content, str):
                last_text = content
            elif isinstance(content, list):
                results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
                if results:
                    tool_result = _flatten_text(results[-1].get("content"))
                    if results[-1].get("is_error") and not tool_result:
                        tool_result = "error"
                # The newest text block: a failed turn leaves its prompt in the same
                # user message as the next one.
                texts = [b.get("text", "") for b in content
                         if isinstance(b, dict) and b.get("type") == "text"]
                last_text = texts[-1] if texts else ""
        tools = body.get("tools") or []
        bash = next((t.get("name") for t in tools
                     if isinstance(t, dict) and str(t.get("name", "")).lower() == "bash"), None)
        # The prompt that asked for two tools, and the tool results since it (Claude adds
        # reminder text blocks to tool-result messages, so any text is no turn start).
        turn_text, results = "", 0
        for m in reversed(msgs):
            c = m.get("content")
            blocks = [{"type": "text", "text": c}] if isinstance(c, str) else (c or [])
            if m.get("role") != "user":
                continue
            texts = [b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
            asked = [t for t in texts if "THEN_TOOL" in t]
            if asked:
                turn_text = asked[-1]
                break
            results += sum(1 for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result")
        branch, payload = decide(last_text, tool_result, bash is not None, turn_text, results)
        stream = bool(body.get("stream"))
        log(f"POST {self.path} model={model} branch={branch} stream={stream} tools={len(tools)}")
        delay = slow_secs(last_text)
        req_id = new_id("req_mock")
        hdrs = {"request-id": req_id, "anthropic-organization-id": "mock-org"}
        err = self._error_status(branch)
        if err:
            kind = {400: "invalid_request_error", 500: "api_error", 429: "rate_limit_error"}[err[0]]
            return self._send_json(err[0], {"type": "error", "error": {"type": kind, "message": payload},
                                            "request_id": req_id}, dict(hdrs, **err[1]))
        msg_id = new_id("msg_mock")
        agent = next((t.get("name") for t in tools
                      if isinstance(t, dict) and t.get("name") in ("Agent", "Task", "task")), None)
        if branch == "agent_call" and agent is None:
            branch = "text"
        if branch in ("tool_call", "background_call"):
            block = {"type": "tool_use", "id": new_id("toolu_mock"), "name": bash,
                     "input": {"command": payload, "description": "mock tool call"}}
            if branch == "background_call":
                block["input"]["run_in_background"] = True
            stop_reason = "tool_use"
        elif branch == "agent_call" and agent == "task":
            # OpenCode's sub-agent tool: it runs in the turn, in a child session.
            block = {"type": "tool_use", "id": new_id("toolu_mock"), "name": agent,
                     "input": {"description": "mock sub-agent", "prompt": payload,
                               "subagent_type": "general"}}
            stop_reason = "tool_use"
        elif branch == "agent_call":
            block = {"type": "tool_use", "id": new_id("toolu_mock"), "name": agent,
                     "input": {"description": "mock sub-agent", "prompt": payload,
                               "subagent_type": "general-purpose", "run_in_background": True}}
            stop_reason = "tool_use"
        else:
            block = {"type": "text", "text": payload}
            stop_reason = "end_turn"
        if not stream:
            if delay:
                time.sleep(delay)
            return self._send_json(200, {"id": msg_id, "type": "message", "role": "assistant", "model": model,
                                         "content": [block], "stop_reason": stop_reason, "stop_sequence": None,
                                         "usage": ANTHROPIC_USAGE}, hdrs)
        self._start_sse(hdrs)
        start_usage = dict(ANTHROPIC_USAGE, output_tokens=1)
        self._sse({"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}}, "message_start")
        if block["type"] == "text":
            self._sse({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}}, "content_block_start")
            self._sse({"type": "ping"}, "ping")
            if delay:
                time.sleep(delay)
            text = block["text"]
            half = max(1, len(text) // 2)
            for chunk in (text[:half], text[half:]):
                if chunk:
                    self._sse({"type": "content_block_delta", "index": 0,
                               "delta": {"type": "text_delta", "text": chunk}}, "content_block_delta")
        else:
            self._sse({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"],
                                         "input": {}}}, "content_block_start")
            self._sse({"type": "ping"}, "ping")
            if delay:
                time.sleep(delay)
            js = json.dumps(block["input"])
            half = len(js) // 2
            for chunk in ("", js[:half], js[half:]):
                self._sse({"type": "content_block_delta", "index": 0,
                           "delta": {"type": "input_json_delta", "partial_json": chunk}}, "content_block_delta")
        self._sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        self._sse({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                   "usage": {k: ANTHROPIC_USAGE[k] for k in
                             ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                              "output_tokens")}}, "message_delta")
        self._sse({"type": "message_stop"}, "message_stop")

    # --- OpenAI Responses -----------------------------------------------
    def openai(self, body):
        model = body.get("model", "gpt-5.5")
        items = body.get("input") or []
        if isinstance(items, str):
            items = [{"type": "message", "role": "user", "content": items}]
        # skip trailing system/developer messages, then join the trailing run of user messages
        items = [i for i in items if not (i.get("type", "message") == "message"
                                          and i.get("role") in ("system", "developer"))]
        last = items[-1] if items else {}
        last_text, tool_result = "", None
        ltype = last.get("type", "message")
        if ltype == "agent_message":
            # A sub-agent's task (multi_agent_v2): its text comes as "encrypted" content.
            items[-1] = last = {"type": "message", "role": "user", "content": [
                {"text": p.get("text") or p.get("encrypted_content") or ""}
                for p in last.get("content") or [] if isinstance(p, dict)]}
            ltype = "message"
        run = []
        for it in reversed(items):
            if it.get("type", "message") == "message" and it.get("role") == "user":
                run.insert(0, it)
            else:
                break
        if ltype in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
            tool_result = _flatten_text(last.get("output"))
        elif run:
            # The newest user message: a failed turn leaves its prompt right before it.
            c = run[-1].get("content")
            last_text = c if isinstance(c, str) else "\n".join(
                p.get("text", "") for p in (c or []) if isinstance(p, dict))
        tools = body.get("tools") or []
        names = {t.get("name") for t in tools if isinstance(t, dict)}
        tool_name = "exec_command" if "exec_command" in names else ("shell" if "shell" in names else None)
        turn_text, results = "", 0
        for it in reversed(items):
            if it.get("type") in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
                results += 1
            elif it.get("type", "message") == "message" and it.get("role") == "user":
                c = it.get("content")
                turn_text = c if isinstance(c, str) else "\n".join(
                    p.get("text", "") for p in (c or []) if isinstance(p, dict))
                break
        branch, payload = decide(last_text, tool_result, tool_name is not None, turn_text, results)
        log(f"POST {self.path} model={model} branch={branch} tools={len(tools)}")
        # The sub-agent, not the call that starts it, takes the time "SLOW" asks for.
        delay = 0 if branch == "agent_call" else slow_secs(last_text)
        err = self._error_status(branch)
        if err:
            kind = {400: "invalid_request_error", 500: "server_error", 429: "rate_limit_exceeded"}[err[0]]
            return self._send_json(err[0], {"error": {"message": payload, "type": kind,
                                                      "param": None, "code": None}}, err[1])
        resp_id = new_id("resp_mock")
        created = int(time.time())
        base = {"id": resp_id, "object": "response", "created_at": created, "model": model,
                "status": "in_progress", "output": [], "usage": None}
        self._start_sse({"x-request-id": new_id("req_mock")})
        seq = [0]

        def ev(obj):
            obj["sequence_number"] = seq[0]
            seq[0] += 1
            self._sse(obj, obj["type"])

        ev({"type": "response.created", "response": base})
        ev({"type": "response.in_progress", "response": base})
        if delay:
            time.sleep(delay)
        call = openai_call(branch, payload, tool_name, names, last_text)
        if call:
            name, args = call
            item = {"id": new_id("fc_mock"), "type": "function_call", "status": "completed",
                    "call_id": new_id("call_mock"), "name": name, "arguments": json.dumps(args)}
            if name == "spawn_agent":
                item["namespace"] = "collaboration"
            ev({"type": "response.output_item.added", "output_index": 0,
                "item": dict(item, status="in_progress", arguments="")})
            ev({"type": "response.function_call_arguments.delta", "item_id": item["id"], "output_index": 0,
                "delta": item["arguments"]})
            ev({"type": "response.function_call_arguments.done", "item_id": item["id"], "output_index": 0,
                "arguments": item["arguments"]})
            ev({"type": "response.output_item.done", "output_index": 0, "item": item})
        else:
            mid = new_id("msg_mock")
            part = {"type": "output_text", "text": "", "annotations": []}
            ev({"type": "response.output_item.added", "output_index": 0,
                "item": {"id": mid, "type": "message", "status": "in_progress", "role": "assistant",
                         "content": []}})
            ev({"type": "response.content_part.added", "item_id": mid, "output_index": 0, "content_index": 0,
                "part": part})
            half = max(1, len(payload) // 2)
            for chunk in (payload[:half], payload[half:]):
                if chunk:
                    ev({"type": "response.output_text.delta", "item_id": mid, "output_index": 0,
                        "content_index": 0, "delta": chunk})
            ev({"type": "response.output_text.done", "item_id": mid, "output_index": 0, "content_index": 0,
                "text": payload})
            done_part = dict(part, text=payload)
            ev({"type": "response.content_part.done", "item_id": mid, "output_index": 0, "content_index": 0,
                "part": done_part})
            item = {"id": mid, "type": "message", "status": "completed", "role": "assistant",
                    "content": [done_part]}
            ev({"type": "response.output_item.done", "output_index": 0, "item": item})
        ev({"type": "response.completed",
            "response": dict(base, status="completed", output=[item], usage=OPENAI_USAGE)})

    # --- Gemini ---------------------------------------------------------
    def gemini(self, model, method, body):
        if method == "countTokens":
            log(f"POST {self.path} model={model} branch=count_tokens")
            return self._send_json(200, {"totalTokens": 1000})
        contents = body.get("contents") or []
        last = contents[-1] if contents else {}
        last_text, tool_result = "", None
        parts = last.get("parts") or []
        if last.get("role", "user") == "user":
            fr = [p["functionResponse"] for p in parts if isinstance(p, dict) and "functionResponse" in p]
            if fr:
                tool_result = _flatten_text(fr[-1].get("response"))
            texts = [p.get("text", "") for p in parts if isinstance(p, dict) and "text" in p]
            last_text = texts[-1] if texts else ""
        decls = []
        for t in body.get("tools") or []:
            decls += [d.get("name") for d in (t.get("functionDeclarations") or t.get("function_declarations") or [])]
        has_shell = "run_shell_command" in decls
        gen = body.get("generationConfig") or {}
        schema = gen.get("responseJsonSchema") or gen.get("responseSchema")
        if schema is not None or gen.get("responseMimeType") == "application/json":
            # router / next-speaker / loop-check side calls: answer with schema-shaped JSON
            obj = json_for_schema(schema or {})
            log(f"POST {self.path} model={model} branch=json_side_call")
            resp = {"candidates": [{"content": {"role": "model", "parts": [{"text": json.dumps(obj)}]},
                                    "finishReason": "STOP", "index": 0}],
                    "usageMetadata": GEMINI_USAGE, "modelVersion": model, "responseId": new_id("mock")}
            if method == "generateContent":
                return self._send_json(200, resp)
            self._start_sse()
            self._sse(resp)
            return
        turn_text, results = "", 0
        for c in reversed(contents):
            if c.get("role", "user") != "user":
                continue
            ps = c.get("parts") or []
            results += sum(1 for p in ps if isinstance(p, dict) and "functionResponse" in p)
            texts = [p.get("text", "") for p in ps if isinstance(p, dict) and "text" in p]
            if texts:
                turn_text = texts[-1]
                break
        branch, payload = decide(last_text, tool_result, has_shell, turn_text, results)
        log(f"POST {self.path} model={model} branch={branch} method={method} tools={len(decls)}")
        delay = slow_secs(last_text)
        err = self._error_status(branch)
        if err:
            status = {400: "INVALID_ARGUMENT", 500: "INTERNAL", 429: "RESOURCE_EXHAUSTED"}[err[0]]
            return self._send_json(err[0], {"error": {"code": err[0], "message": payload,
                                                      "status": status}}, err[1])
        if branch in ("tool_call", "background_call"):
            args = {"command": payload, "description": "mock tool call"}
            if branch == "background_call":
                args["is_background"] = True
            part = {"functionCall": {"name": "run_shell_command", "args": args}}
        else:
            part = {"text": payload}
        final = {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP",
                                 "index": 0}],
                 "usageMetadata": GEMINI_USAGE, "modelVersion": model, "responseId": new_id("mock")}
        if method == "generateContent":
            if delay:
                time.sleep(delay)
            return self._send_json(200, final)
        self._start_sse()
        if delay:
            time.sleep(delay)
        if "text" in part and len(payload) > 1:
            half = len(payload) // 2
            self._sse({"candidates": [{"content": {"role": "model", "parts": [{"text": payload[:half]}]},
                                       "index": 0}], "modelVersion": model})
            final["candidates"][0]["content"]["parts"] = [{"text": payload[half:]}]
        self._sse(final)


def openai_call(branch, payload, tool_name, names, last_text):
    """(function name, arguments) of the Codex call a branch asks for, or None for text."""
    if branch == "background_call" and tool_name == "exec_command":
        # Unified exec: a command still running when its yield time is up goes on in a
        # "background terminal" after the call, and the turn, returned.
        return "exec_command", {"cmd": payload, "yield_time_ms": 500}
    if branch == "agent_call" and "collaboration" in names:
        return "spawn_agent", {"task_name": "mock_task", "message": payload, "fork_turns": "none"}
    if branch != "tool_call":
        return None
    if tool_name == "exec_command" and "RUN_SAFE" in (last_text or ""):
        return "exec_command", {"cmd": payload}
    if tool_name == "exec_command":
        return "exec_command", {"cmd": payload, "sandbox_permissions": "require_escalated",
                                "justification": "mock: this command needs approval"}
    return tool_name, {"command": ["bash", "-lc", payload], "with_escalated_permissions": True,
                       "justification": "mock: this command needs approval"}


def json_for_schema(schema):
    """Minimal JSON value matching a (Gemini/OpenAPI-ish) JSON schema."""
    t = schema.get("type")
    if isinstance(t, list):
        t = t[0]
    t = (t or "object").lower()
    if t == "object":
        out = {}
        props = schema.get("properties") or {}
        for k, sub in props.items():
            if k == "model_choice":
                out[k] = "flash"
            elif k == "next_speaker":
                out[k] = "user"
            elif k in ("reasoning", "explanation", "analysis"):
                out[k] = "mock"
            else:
                out[k] = json_for_schema(sub or {})
        return out
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if t == "array":
        return []
    if t in ("number", "integer"):
        return 0
    if t == "boolean":
        return False
    return "mock"


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port and print PORT=<n>")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--event-delay", type=float, default=0.01, help="seconds between SSE events")
    ap.add_argument("--log-bodies", default=None, help="append every request body as JSON lines here")
    ARGS = ap.parse_args()
    srv = ThreadingHTTPServer((ARGS.host, ARGS.port), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    print(f"PORT={port}", flush=True)
    log(f"mock_models listening on http://{ARGS.host}:{port}")
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
