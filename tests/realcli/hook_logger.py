#!/usr/bin/env python3
"""Hook command used by probe.py for every CLI: `python3 hook_logger.py <cli>`.

Reads the hook payload (JSON) from stdin (Codex `notify` passes it as the last argv
instead) and appends one JSON line to $REALCLI_HOOK_LOG:
    {"cli", "event", "phase":"start", "t", "pid", "payload"}
Optional behaviour, for the permission-hook experiments (FINDINGS.md a/b):
    REALCLI_HOOK_SLEEP_EVENT=PermissionRequest REALCLI_HOOK_SLEEP_SECS=5
        sleep that long before returning (a second line, phase "return", is logged)
    REALCLI_HOOK_REPLY_EVENT=PermissionRequest REALCLI_HOOK_REPLY_JSON='{"hookSpecificOutput":…}'
        print that JSON on stdout for that event
    REALCLI_HOOK_EXIT_CODE=<n> (with REALCLI_HOOK_REPLY_EVENT) exit with that code, reply text on stderr
"""
import json
import os
import sys
import time


def main():
    cli = sys.argv[1] if len(sys.argv) > 1 else "?"
    t0 = time.time()
    raw = ""
    if len(sys.argv) > 2:  # codex notify: JSON is the last argv
        raw = sys.argv[-1]
    else:
        try:
            raw = sys.stdin.read()
        except Exception:  # noqa: BLE001
            raw = ""
    try:
        payload = json.loads(raw) if raw.strip() else {}
    except Exception:  # noqa: BLE001
        payload = {"_raw": raw[:4000]}
    event = (payload.get("hook_event_name") or payload.get("type") or "?") if isinstance(payload, dict) else "?"
    path = os.environ.get("REALCLI_HOOK_LOG")
    rec = {"cli": cli, "event": event, "phase": "start", "t": t0, "pid": os.getpid(), "payload": payload}

    def append(r):
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(r) + "\n")

    append(rec)
    sleep_ev = os.environ.get("REALCLI_HOOK_SLEEP_EVENT")
    reply_ev = os.environ.get("REALCLI_HOOK_REPLY_EVENT")
    out = ""
    code = 0
    if sleep_ev and sleep_ev == event:
        time.sleep(float(os.environ.get("REALCLI_HOOK_SLEEP_SECS", "5")))
    if reply_ev and reply_ev == event:
        out = os.environ.get("REALCLI_HOOK_REPLY_JSON", "")
        code = int(os.environ.get("REALCLI_HOOK_EXIT_CODE", "0"))
    if (sleep_ev == event) or (reply_ev == event):
        append({"cli": cli, "event": event, "phase": "return", "t": time.time(), "pid": os.getpid(),
                "stdout": out, "exit": code})
    if out:
        if code == 0:
            sys.stdout.write(out)
            sys.stdout.flush()
        else:
            sys.stderr.write(out)
            sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
