//! Notifications end to end, with real parts: a real `dbus-daemon` with a notification
//! server written here (zbus, server side of `org.freedesktop.Notifications`: records
//! `Notify` and `CloseNotification`, emits `ActionInvoked`), a loopback HTTP server for
//! ntfy, and a command target that hangs. The agents are the fake agent CLIs.
//!
//! The bus and the server are in `canopy_tests::dbus` (the benchmark uses them too).
//! The D-Bus tests skip when `dbus-daemon` is not installed, unless
//! `CANOPY_REQUIRE_DBUS` is set (CI sets it, so a missing daemon fails there).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canopy_protocol::StateKind;
use canopy_tests::dbus::{Bus, Call, Notifications};
use canopy_tests::{TestEnv, wait_for};

const WAIT: Duration = Duration::from_secs(15);
/// The bus, the notification server on it, and an environment whose host will use
/// that bus.
struct Desktop {
    env: TestEnv,
    server: Notifications,
    _bus: Bus,
}

impl Desktop {
    fn start(config: &str) -> Option<Desktop> {
        let bus = Bus::start()?;
        let server = Notifications::serve(&bus.address);
        let mut env = TestEnv::with_fake_agents();
        env.set_var("DBUS_SESSION_BUS_ADDRESS", &bus.address);
        env.write_config(config);
        Some(Desktop {
            env,
            server,
            _bus: bus,
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.server.calls()
    }

    fn notified(&self, prefix: &str) -> Vec<Call> {
        self.server.notified(prefix)
    }
}

fn wait_state(env: &TestEnv, name: &str, kind: StateKind) {
    wait_for(&format!("{name} to be {kind}"), WAIT, || {
        (env.session(name).state.kind == kind).then_some(())
    });
}

fn first_id(calls: &[Call]) -> u32 {
    match calls.first() {
        Some(Call::Notify { id, .. }) => *id,
        other => panic!("no notification: {other:?}"),
    }
}

/// A permission request notifies once, with the actions; pressing Approve answers it
/// exactly as `canopy approve` does (the agent runs the tool), and the notification is
/// then withdrawn.
#[test]
fn approve_on_the_desktop_notification_runs_the_tool() {
    let Some(d) = Desktop::start("") else { return };
    d.env.ok(&[
        "new",
        "api",
        "--agent",
        "claude",
        "--prompt",
        "@ask:Bash:touch-x",
    ]);
    wait_state(&d.env, "api", StateKind::WaitingPermission);
    let shown = wait_for("the Notify call", WAIT, || {
        let n = d.notified("api wants to run Bash");
        (!n.is_empty()).then_some(n)
    });
    let Call::Notify {
        id,
        body,
        actions,
        urgency,
        ..
    } = &shown[0]
    else {
        unreachable!()
    };
    assert_eq!(body, "touch-x");
    assert_eq!(
        actions,
        &["approve", "Approve", "deny", "Deny", "open", "Open"]
    );
    assert_eq!(*urgency, Some(2), "a permission request is critical");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.notified("api wants").len(), 1, "once: {:?}", d.calls());

    d.server.press(*id, "approve");
    wait_state(&d.env, "api", StateKind::Idle);
    let screen = d.env.screen_text("api", 40, 120);
    assert!(screen.contains("fake output of touch-x"), "{screen}");
    wait_for("CloseNotification", WAIT, || {
        d.calls()
            .iter()
            .any(|c| matches!(c, Call::Close(closed) if closed == id))
            .then_some(())
    });
    let log = std::fs::read_to_string(d.env.paths.log_file()).unwrap_or_default();
    assert!(log.contains("notification action"), "{log}");
}

/// Answered in the agent's own terminal: the notification is withdrawn.
#[test]
fn answering_in_the_terminal_withdraws_the_notification() {
    let Some(d) = Desktop::start("") else { return };
    d.env.ok(&[
        "new",
        "t",
        "--agent",
        "claude",
        "--prompt",
        "@ask:Bash:touch-y",
    ]);
    let id = wait_for("the Notify call", WAIT, || {
        let n = d.notified("t wants to run Bash");
        (!n.is_empty()).then(|| first_id(&n))
    });
    wait_for("the dialog on screen", WAIT, || {
        d.env
            .ok(&["explain", "t"])
            .contains("screen: permission dialog on screen")
            .then_some(())
    });
    d.env.ok(&["send", "t", "1"]);
    wait_for("CloseNotification", WAIT, || {
        d.calls()
            .iter()
            .any(|c| matches!(c, Call::Close(closed) if *closed == id))
            .then_some(())
    });
    wait_state(&d.env, "t", StateKind::Idle);
}

/// Fifty fast transitions in and out of a permission request: at most the rate limit
/// reaches the desktop.
#[test]
fn a_flood_of_transitions_is_held_to_the_rate_limit() {
    let Some(d) = Desktop::start("[notify]\nper_session_per_minute = 3\n") else {
        return;
    };
    d.env.ok(&["new", "f", "--agent", "claude"]);
    wait_state(&d.env, "f", StateKind::Idle);
    let seq = d.env.seq();
    let ask = r#"{"hook_event_name":"Notification","notification_type":"permission_prompt","session_id":"x"}"#;
    // A tool that ends leaves the wait (a tool merely starting would not: its permission
    // is still open).
    let tool = r#"{"hook_event_name":"PostToolUse","session_id":"x","tool_name":"Bash","tool_input":{"command":"ls"}}"#;
    for i in 0..50 {
        let payload = if i % 2 == 0 { ask } else { tool };
        let out = canopy_tests::spawn_with_stdin(
            d.env
                .hook_command("f", "claude")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            payload.as_bytes(),
        )
        .wait()
        .expect("hook");
        assert!(out.success());
    }
    let history = d.env.state_history("f", seq);
    let asked = history
        .iter()
        .filter(|s| s.starts_with("waiting_permission"))
        .count();
    assert!(asked > 3, "the flood reached the host: {history:?}");
    std::thread::sleep(Duration::from_millis(500));
    let shown = d.notified("f ").len();
    assert!((1..=3).contains(&shown), "{shown} shown: {:?}", d.calls());
    // The host serves on.
    d.env.ok(&["ls"]);
}

/// Without a session bus the host says so once in `canopy status` and works on.
#[test]
fn no_session_bus_is_a_notice_not_a_failure() {
    let env = TestEnv::with_fake_agents();
    env.ok(&["new", "n", "--agent", "claude"]);
    let status = wait_for("the notice", WAIT, || {
        let s = env.ok(&["status"]);
        s.contains("notice: desktop notifications are off: no D-Bus session bus")
            .then_some(s)
    });
    assert_eq!(status.matches("notice:").count(), 1, "{status}");
    let test = env.ok(&["notify", "test"]);
    assert!(test.contains("enabled = true"), "{test}");
    assert!(
        test.contains("desktop: desktop notifications are off"),
        "{test}"
    );
}

/// One HTTP request as the loopback server read it.
#[derive(Debug, Clone)]
struct Request {
    line: String,
    headers: HashMap<String, String>,
    body: String,
}

/// A loopback HTTP server answering 200 to everything: its URL and what it received.
fn http_server() -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut headers = HashMap::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            record.lock().expect("seen").push(Request {
                line: line.trim().to_owned(),
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        }
    });
    (url, seen)
}

/// ntfy: the permission request is published with its title, priority, tags, click URL
/// and token; the token is in no log and no output.
#[test]
fn ntfy_publishes_and_keeps_the_token_out_of_logs() {
    const TOKEN: &str = "tk_very_secret_token_42";
    let (url, seen) = http_server();
    let mut env = TestEnv::with_fake_agents();
    env.set_var("CANOPY_NTFY_TOKEN", TOKEN);
    env.write_config(&format!(
        "[notify]\ndesktop = false\n[notify.ntfy]\nurl = \"{url}/canopy-topic\"\ntoken_env = \"CANOPY_NTFY_TOKEN\"\nclick = \"https://example.invalid/{{name}}\"\n[notify.ntfy.tags]\nwaiting_permission = [\"lock\", \"robot\"]\n"
    ));
    env.ok(&[
        "new",
        "p",
        "--agent",
        "claude",
        "--prompt",
        "@ask:Bash:touch-z",
    ]);
    let req = wait_for("the ntfy request", WAIT, || {
        seen.lock().expect("seen").first().cloned()
    });
    assert_eq!(req.line, "POST /canopy-topic HTTP/1.1");
    assert_eq!(req.headers["title"], "p wants to run Bash");
    assert_eq!(req.headers["priority"], "5");
    assert_eq!(req.headers["tags"], "lock,robot");
    assert_eq!(req.headers["click"], "https://example.invalid/p");
    assert_eq!(req.headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(req.body, "touch-z");

    let test = env.ok(&["notify", "test"]);
    assert!(test.contains("ntfy: sent"), "{test}");
    assert!(test.contains("token from CANOPY_NTFY_TOKEN"), "{test}");
    env.ok(&["approve", "p"]);
    wait_state(&env, "p", StateKind::Idle);
    let log = std::fs::read_to_string(env.paths.log_file()).expect("host log");
    assert!(!log.contains(TOKEN), "the token leaked into the log");
    assert!(!test.contains(TOKEN));
    assert!(!env.ok(&["status", "--json"]).contains(TOKEN));
}

/// A command target that hangs is killed at its timeout; the host serves on meanwhile.
#[test]
fn a_hung_command_is_killed_at_its_timeout() {
    let env = TestEnv::with_fake_agents();
    let dir = env.dir.path();
    let script = dir.join("notify.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho $$ >> \"$0.pids\"\ncat > \"$0.$CANOPY_NOTIFY.json\"\necho \"$CANOPY_SESSION $CANOPY_REASON\" >> \"$0.vars\"\nsleep 30\n",
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    env.write_config(&format!(
        "[notify]\ndesktop = false\n[notify.command]\nrun = [\"{}\"]\ntimeout_secs = 1\n",
        script.display()
    ));
    env.ok(&[
        "new",
        "c",
        "--agent",
        "claude",
        "--prompt",
        "@ask:Bash:touch-w",
    ]);
    let json = with_suffix(&script, ".show.json");
    let shown = wait_for("the command's stdin", WAIT, || {
        std::fs::read_to_string(&json)
            .ok()
            .filter(|s| s.ends_with('}'))
    });
    let event: serde_json::Value = serde_json::from_str(&shown).expect("event json");
    assert_eq!(event["action"], "show");
    assert_eq!(event["reason"], "waiting_permission");
    assert_eq!(event["summary"], "c wants to run Bash");
    assert_eq!(event["session"]["name"], "c");
    // The script writes its variables after its stdin: wait for them too.
    let vars = wait_for("the command's variables", WAIT, || {
        std::fs::read_to_string(with_suffix(&script, ".vars"))
            .ok()
            .filter(|v| v.ends_with('\n'))
    });
    assert!(vars.starts_with("c waiting_permission"), "{vars}");
    // While it hangs, the host answers at once.
    let started = Instant::now();
    env.ok(&["ls"]);
    assert!(started.elapsed() < Duration::from_secs(1));
    let pid: i32 = std::fs::read_to_string(with_suffix(&script, ".pids"))
        .expect("pids")
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("pid");
    wait_for(
        "the hung command to be killed",
        Duration::from_secs(5),
        || (!Path::new(&format!("/proc/{pid}")).exists()).then_some(()),
    );
    // And the next notification goes through the same target.
    env.ok(&["approve", "c"]);
    wait_state(&env, "c", StateKind::Idle);
    wait_for("the withdrawal", WAIT, || {
        with_suffix(&script, ".withdraw.json")
            .exists()
            .then_some(())
    });
}

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    p.into()
}
