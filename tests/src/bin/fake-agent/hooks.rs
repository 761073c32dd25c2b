//! Hook configuration (Claude/Gemini JSON, Codex TOML) and running hook handlers the
//! way the CLIs do: `sh -c <command>` with the payload JSON on stdin, the environment
//! inherited, synchronously with a timeout (or detached when `async`); Claude `http`
//! handlers POST the same JSON.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::matcher;

#[derive(Debug, Clone)]
enum Handler {
    Command {
        command: String,
        timeout: Duration,
        detached: bool,
    },
    Http {
        url: String,
        headers: Vec<(String, String)>,
        allowed_env: Vec<String>,
        timeout: Duration,
    },
}

#[derive(Debug, Clone)]
struct Group {
    matcher: Option<String>,
    handlers: Vec<Handler>,
}

/// What one handler did.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Exit status (`None` when killed by a timeout or signal, or for HTTP failures).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// stdout (or the HTTP body) when it is a JSON value.
    pub json: Option<Value>,
}

/// The hooks of one session.
#[derive(Debug, Default, Clone)]
pub struct Hooks {
    events: BTreeMap<String, Vec<Group>>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// The unit of a handler's `timeout` field.
#[derive(Debug, Clone, Copy)]
pub enum TimeoutUnit {
    Seconds,
    Millis,
}

impl Hooks {
    /// Add the groups of a `{"Event":[{"matcher":…,"hooks":[…]}]}` object.
    pub fn add_json(&mut self, hooks: &Value, unit: TimeoutUnit, default: Duration) {
        let Some(map) = hooks.as_object() else {
            return;
        };
        for (event, groups) in map {
            let Some(groups) = groups.as_array() else {
                continue;
            };
            for g in groups {
                let matcher = g.get("matcher").and_then(Value::as_str).map(str::to_owned);
                let handlers = g
                    .get("hooks")
                    .and_then(Value::as_array)
                    .map(|hs| {
                        hs.iter()
                            .filter_map(|h| handler(h, unit, default))
                            .collect()
                    })
                    .unwrap_or_default();
                self.events
                    .entry(event.clone())
                    .or_default()
                    .push(Group { matcher, handlers });
            }
        }
    }

    /// Whether any handler is configured for `event`.
    pub fn has(&self, event: &str) -> bool {
        self.events
            .get(event)
            .is_some_and(|gs| gs.iter().any(|g| !g.handlers.is_empty()))
    }

    /// Run every handler of `event` whose matcher accepts `subject` (the tool name,
    /// source, notification type …; `None` = the event has no matcher subject).
    pub fn run(&self, event: &str, subject: Option<&str>, payload: &Value) -> Vec<Outcome> {
        let Some(groups) = self.events.get(event) else {
            return Vec::new();
        };
        let input = payload.to_string();
        let mut out = Vec::new();
        for g in groups {
            if let Some(subject) = subject
                && !matcher::matches(g.matcher.as_deref(), subject)
            {
                continue;
            }
            for h in &g.handlers {
                out.push(self.run_handler(h, &input));
            }
        }
        out
    }

    fn run_handler(&self, h: &Handler, input: &str) -> Outcome {
        match h {
            Handler::Command {
                command,
                timeout,
                detached,
            } => self.run_command(command, input, *timeout, *detached),
            Handler::Http {
                url,
                headers,
                allowed_env,
                timeout,
            } => post(url, headers, allowed_env, input, *timeout),
        }
    }

    fn run_command(
        &self,
        command: &str,
        input: &str,
        timeout: Duration,
        detached: bool,
    ) -> Outcome {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.cwd.is_dir() {
            cmd.current_dir(&self.cwd);
        }
        let Ok(mut child) = cmd.spawn() else {
            return Outcome {
                code: Some(127),
                ..Outcome::default()
            };
        };
        let stdin = child.stdin.take();
        let input = input.to_owned();
        let writer = std::thread::spawn(move || {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(input.as_bytes());
            }
        });
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let out_reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(o) = stdout.as_mut() {
                let _ = o.read_to_string(&mut s);
            }
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(e) = stderr.as_mut() {
                let _ = e.read_to_string(&mut s);
            }
            s
        });
        if detached {
            std::thread::spawn(move || {
                let _ = writer.join();
                let _ = child.wait();
            });
            return Outcome {
                code: Some(0),
                ..Outcome::default()
            };
        }
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status.code(),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(_) => break None,
            }
        };
        let _ = writer.join();
        // A handler that left a background child holding the pipes must not hang us.
        let stdout = join_within(out_reader, Duration::from_millis(200));
        let stderr = join_within(err_reader, Duration::from_millis(200));
        let json = serde_json::from_str::<Value>(stdout.trim())
            .ok()
            .filter(Value::is_object);
        Outcome {
            code: status,
            stdout,
            stderr,
            json,
        }
    }
}

fn join_within(h: std::thread::JoinHandle<String>, wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    while !h.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    if h.is_finished() {
        h.join().unwrap_or_default()
    } else {
        String::new()
    }
}

fn handler(h: &Value, unit: TimeoutUnit, default: Duration) -> Option<Handler> {
    let timeout = h
        .get("timeout")
        .and_then(Value::as_f64)
        .map(|t| match unit {
            TimeoutUnit::Seconds => Duration::from_secs_f64(t.max(0.0)),
            TimeoutUnit::Millis => Duration::from_millis(t.max(0.0) as u64),
        })
        .unwrap_or(default);
    match h.get("type").and_then(Value::as_str).unwrap_or("command") {
        "command" => {
            let command = match (h.get("command"), h.get("args")) {
                (Some(Value::String(c)), Some(Value::Array(args))) => {
                    // Exec form: program plus arguments, no shell interpretation.
                    let mut words = vec![shell_quote(c)];
                    words.extend(args.iter().filter_map(Value::as_str).map(shell_quote));
                    words.join(" ")
                }
                (Some(Value::String(c)), _) => c.clone(),
                _ => return None,
            };
            Some(Handler::Command {
                command,
                timeout,
                detached: h.get("async").and_then(Value::as_bool).unwrap_or(false),
            })
        }
        "http" => Some(Handler::Http {
            url: h.get("url")?.as_str()?.to_owned(),
            headers: h
                .get("headers")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default(),
            allowed_env: h
                .get("allowedEnvVars")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            timeout,
        }),
        _ => None,
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `$VAR` / `${VAR}` for the allowed variables; others are left as written.
fn interpolate(s: &str, allowed: &[String]) -> String {
    let mut out = s.to_owned();
    for var in allowed {
        let value = std::env::var(var).unwrap_or_default();
        out = out.replace(&format!("${{{var}}}"), &value);
        out = out.replace(&format!("${var}"), &value);
    }
    out
}

/// POST `body` to a plain `http://host:port/path` URL.
fn post(
    url: &str,
    headers: &[(String, String)],
    allowed: &[String],
    body: &str,
    timeout: Duration,
) -> Outcome {
    let failed = Outcome::default();
    let Some(rest) = url.strip_prefix("http://") else {
        return failed;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let Some(sock) = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .ok()
        .and_then(|mut a| a.next())
    else {
        return failed;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&sock, timeout) else {
        return failed;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {}\r\n", interpolate(v, allowed)));
    }
    req.push_str("\r\n");
    req.push_str(body);
    if stream.write_all(req.as_bytes()).is_err() {
        return failed;
    }
    let mut resp = Vec::new();
    let _ = stream.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<i32>().ok());
    let ok = code.is_some_and(|c| (200..300).contains(&c));
    Outcome {
        code: Some(if ok { 0 } else { 1 }),
        stdout: body.to_owned(),
        stderr: String::new(),
        json: serde_json::from_str::<Value>(body.trim())
            .ok()
            .filter(Value::is_object),
    }
}

/// The first blocking outcome: an exit code of 2 (`>= 2` for Gemini) or a JSON
/// `decision` of `block`/`deny`. Returns the reason.
pub fn blocked(outcomes: &[Outcome], gemini: bool) -> Option<String> {
    for o in outcomes {
        let code_blocks = match o.code {
            Some(2) => true,
            Some(c) if gemini => c >= 2,
            _ => false,
        };
        if code_blocks {
            let reason = if o.stderr.trim().is_empty() {
                o.stdout.trim()
            } else {
                o.stderr.trim()
            };
            return Some(reason.to_owned());
        }
        if o.code == Some(0)
            && let Some(j) = &o.json
        {
            let decision = j.get("decision").and_then(Value::as_str);
            if matches!(decision, Some("block" | "deny"))
                || j.get("continue") == Some(&Value::Bool(false))
            {
                let reason = j
                    .get("reason")
                    .or_else(|| j.get("stopReason"))
                    .and_then(Value::as_str)
                    .unwrap_or("blocked by hook");
                return Some(reason.to_owned());
            }
        }
    }
    None
}

/// A field of `hookSpecificOutput` from the first successful outcome that has it.
pub fn specific<'a>(outcomes: &'a [Outcome], path: &[&str]) -> Option<&'a Value> {
    outcomes.iter().filter(|o| o.code == Some(0)).find_map(|o| {
        let mut v = o.json.as_ref()?.get("hookSpecificOutput")?;
        for p in path {
            v = v.get(p)?;
        }
        Some(v)
    })
}
