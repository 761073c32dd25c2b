//! Environments end to end (issue 18): included files, trusted setup and teardown,
//! port blocks, dev servers and browser profiles, through the real binary with real
//! git worktrees, real processes and (where installed) real headless Chromium.
//!
//! The Chromium test skips when `chromium` is not installed, unless
//! `CANOPY_REQUIRE_CHROMIUM` is set (CI sets it, so a missing browser fails there).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use canopy_protocol::StateKind;
use canopy_tests::{TestEnv, wait_for};

const WAIT: Duration = Duration::from_secs(20);

/// A `.gitignore` for `.env*` committed in the main checkout, with `.env` there.
fn ignored_env_file(env: &TestEnv) {
    std::fs::write(env.repo.join(".gitignore"), ".env*\n").expect("write");
    std::fs::write(env.repo.join(".worktreeinclude"), ".env\n").expect("write");
    env.git(&env.repo, &["add", ".gitignore", ".worktreeinclude"]);
    env.git(&env.repo, &["commit", "-qm", "ignore .env"]);
    std::fs::write(env.repo.join(".env"), "SECRET=1\n").expect("write");
    std::fs::write(env.repo.join(".env.other"), "NOT=copied\n").expect("write");
}

fn wait_state(env: &TestEnv, name: &str, kind: StateKind) -> canopy_protocol::Session {
    wait_for(&format!("{name} in {kind}"), WAIT, || {
        Some(env.session(name)).filter(|s| s.state.kind == kind)
    })
}

/// Wait until the agent of `name` runs (its setup done).
fn wait_agent(env: &TestEnv, name: &str) -> canopy_protocol::Session {
    wait_for(&format!("{name}'s agent to start"), WAIT, || {
        Some(env.session(name)).filter(|s| s.pid.is_some())
    })
}

/// A GET over plain TCP: the body, or `None` when nothing answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

#[test]
fn worktreeinclude_copies_ignored_files_into_new_worktrees() {
    let env = TestEnv::with_fake_agents();
    ignored_env_file(&env);
    env.ok(&["new", "inc", "--agent", "claude"]);
    let wt = env.worktree("inc");
    assert_eq!(
        std::fs::read_to_string(wt.join(".env")).ok().as_deref(),
        Some("SECRET=1\n")
    );
    assert!(
        !wt.join(".env.other").exists(),
        "not named by .worktreeinclude"
    );
    // A copied ignored file is not work: rm goes ahead.
    env.ok(&["rm", "inc"]);
}

#[test]
fn untrusted_setup_is_skipped_until_trusted_and_again_once_edited() {
    let env = TestEnv::with_fake_agents();
    let home = env.dir.path().join("home");
    let file = "[setup]\nrun = [\"echo port=$CANOPY_PORT ports=$CANOPY_PORTS > setup-marker\"]\n\
                [teardown]\nrun = [\"echo torn > $HOME/teardown-$CANOPY_SESSION\"]\n";
    std::fs::write(env.repo.join(".canopy.toml"), file).expect("write");

    // Untrusted: skipped with a note, never run; the agent starts at once.
    let out = env.run(&["new", "first", "--agent", "claude"]);
    assert!(out.status.success());
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains("not trusted") && note.contains("canopy trust"),
        "{note}"
    );
    assert_eq!(note.trim().lines().count(), 1, "{note}");
    assert!(env.session("first").pid.is_some());
    assert!(!env.worktree("first").join("setup-marker").exists());
    env.ok(&["rm", "first"]);
    assert!(
        !home.join("teardown-first").exists(),
        "untrusted teardown ran"
    );

    // Trusted: shown, then run, with the session's ports.
    let shown = env.ok(&["trust"]);
    assert!(
        shown.contains("setup:    echo port=$CANOPY_PORT"),
        "{shown}"
    );
    assert!(shown.contains("teardown: echo torn"), "{shown}");
    let out = env.run(&["new", "second", "--agent", "claude"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = wait_agent(&env, "second");
    let [first, last] = s.env.ports.expect("ports");
    assert_eq!(last - first + 1, 10);
    assert_eq!(
        std::fs::read_to_string(env.worktree("second").join("setup-marker"))
            .expect("setup ran")
            .trim(),
        format!("port={first} ports={first}-{last}")
    );
    // The marker is the setup's own untracked file: rm --force, and teardown runs first.
    env.ok(&["rm", "--force", "second"]);
    assert_eq!(
        std::fs::read_to_string(home.join("teardown-second"))
            .expect("teardown ran")
            .trim(),
        "torn"
    );

    // Edited: untrusted again.
    std::fs::write(
        env.repo.join(".canopy.toml"),
        file.replace("setup-marker", "other-marker"),
    )
    .expect("write");
    let out = env.run(&["new", "third", "--agent", "claude"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("canopy trust"));
    assert!(env.session("third").pid.is_some());
    assert!(!env.worktree("third").join("other-marker").exists());
    assert!(env.session("third").env.untrusted.is_some());
}

#[test]
fn a_failing_setup_step_leaves_the_agent_unstarted_and_resume_retries() {
    let env = TestEnv::with_fake_agents();
    let home = env.dir.path().join("home");
    env.write_config(&format!(
        "[repos.\"{}\".setup]\nrun = [\"echo checking the setup\", \"test -f $HOME/ready\", \"touch after-ready\"]\n",
        env.repo.display()
    ));
    let out = env.ok(&["new", "broken", "--agent", "claude"]);
    assert!(out.contains("setup: echo checking the setup"), "{out}");
    let s = wait_state(&env, "broken", StateKind::Error);
    assert_eq!(
        s.state.detail.as_deref(),
        Some("setup failed: test -f $HOME/ready exited 1")
    );
    assert_eq!(s.pid, None, "the agent was not started");
    assert!(env.worktree("broken").is_dir(), "the worktree is kept");
    assert!(!env.worktree("broken").join("after-ready").exists());
    let captured = env.ok(&["capture", "broken"]);
    assert!(captured.contains("checking the setup"), "{captured}");
    assert!(captured.contains("$ test -f $HOME/ready"), "{captured}");
    let explained = env.ok(&["explain", "broken"]);
    assert!(explained.contains("setup failed"), "{explained}");

    // Fixed: resume runs the setup again, then the agent.
    std::fs::write(home.join("ready"), "").expect("write");
    env.ok(&["resume", "broken"]);
    let s = wait_agent(&env, "broken");
    assert_eq!(s.env.setup_failed, None);
    assert!(env.worktree("broken").join("after-ready").exists());
    env.ok(&["rm", "--force", "broken"]);
}

#[test]
fn twenty_sessions_at_once_get_disjoint_free_port_blocks() {
    let env = TestEnv::new();
    // A port in use where the blocks start is skipped.
    let busy = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let busy_port = busy.local_addr().expect("addr").port();
    env.write_config(&format!(
        "[sessions]\nport_base = {}\nport_block = 10\n",
        busy_port.saturating_sub(5)
    ));
    env.ok(&["status"]);
    let names: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
    let started: Vec<_> = names
        .iter()
        .map(|name| {
            env.canopy(&["new", name, "--agent", "sh"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("canopy new")
        })
        .collect();
    for mut child in started {
        assert!(child.wait().expect("wait").success());
    }
    let mut blocks: Vec<[u16; 2]> = env
        .sessions()
        .iter()
        .map(|s| s.env.ports.expect("ports"))
        .collect();
    assert_eq!(blocks.len(), 20);
    blocks.sort();
    for b in &blocks {
        assert_eq!(b[1] - b[0] + 1, 10);
        assert!(!(b[0]..=b[1]).contains(&busy_port), "{b:?} has a busy port");
    }
    assert!(
        blocks.windows(2).all(|w| w[0][1] < w[1][0]),
        "overlapping blocks: {blocks:?}"
    );

    // The agent, and `canopy env`, have them.
    let s = env.session("p3");
    let [first, last] = s.env.ports.expect("ports");
    let printed = env.ok(&["env", "p3"]);
    for line in [
        format!("export CANOPY_PORT={first}"),
        format!("export CANOPY_PORTS={first}-{last}"),
        format!("export PORT={first}"),
        "export CANOPY_SESSION=p3".to_owned(),
    ] {
        assert!(printed.lines().any(|l| l == line), "{line} in {printed}");
    }
    assert!(
        printed.contains("export CANOPY_BROWSER_PROFILE="),
        "{printed}"
    );
    env.ok(&["send", "p3", "echo $PORT $CANOPY_PORTS > seen", "--enter"]);
    let seen = wait_for("the agent's ports", WAIT, || {
        std::fs::read_to_string(env.worktree("p3").join("seen")).ok()
    });
    assert_eq!(seen.trim(), format!("{first} {first}-{last}"));

    // Kept across a host restart; released on rm.
    env.ok(&["host", "stop"]);
    assert_eq!(env.session("p3").env.ports, Some([first, last]));
    env.ok(&["rm", "--force", "p3"]);
    env.ok(&["new", "again", "--agent", "sh"]);
    assert_eq!(env.session("again").env.ports, Some([first, last]));
}

#[test]
fn two_dev_servers_answer_on_their_own_ports_at_once() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "[repos.\"{}\".run]\ncommand = \"exec python3 -m http.server $CANOPY_PORT --bind 127.0.0.1\"\n",
        env.repo.display()
    ));
    let mut ports = Vec::new();
    for name in ["web-a", "web-b"] {
        env.ok(&["new", name, "--agent", "sh"]);
        std::fs::write(env.worktree(name).join("who.txt"), name).expect("write");
        let s = env.session(name);
        let port = s.env.ports.expect("ports")[0];
        assert_eq!(s.env.url, Some(format!("http://localhost:{port}")));
        ports.push((name, port));
    }
    for (name, port) in &ports {
        let body = wait_for(&format!("{name}'s dev server"), WAIT, || {
            http_get(*port, "/who.txt")
        });
        assert_eq!(&body, name);
    }
    let captured = env.ok(&["capture", "web-a", "--run"]);
    assert!(captured.contains("Serving HTTP"), "{captured}");
    let inspected = env.ok(&["inspect", "web-a"]);
    assert!(
        inspected.contains(&format!("http://localhost:{}", ports[0].1)),
        "{inspected}"
    );
    // `run` while it runs is refused; the dev server stops with the session.
    assert!(env.fails(&["run", "web-a"]).contains("is running"));
    env.ok(&["stop", "web-a"]);
    wait_for("web-a's dev server to stop", WAIT, || {
        http_get(ports[0].1, "/who.txt").is_none().then_some(())
    });
    assert_eq!(http_get(ports[1].1, "/who.txt").as_deref(), Some("web-b"));
    env.fails(&["capture", "web-a", "--run"]);
}

/// A loopback server: `/set?v=X` sets cookie `who=X`; any other path shows the cookie.
const COOKIE_SERVER: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith('/set?v='):
            v = self.path.split('=', 1)[1]
            body = 'set ' + v
            extra = [('Set-Cookie', 'who=' + v + '; Max-Age=3600; Path=/')]
        else:
            body = 'cookie=[' + self.headers.get('Cookie', '') + ']'
            extra = []
        self.send_response(200)
        self.send_header('Content-Type', 'text/html')
        for k, val in extra:
            self.send_header(k, val)
        self.end_headers()
        self.wfile.write(('<html><body>' + body + '</body></html>').encode())
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

#[test]
fn canopy_open_keeps_each_sessions_cookies_in_its_own_profile() {
    let chromium = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    });
    let Some(chromium) = chromium else {
        assert!(
            std::env::var_os("CANOPY_REQUIRE_CHROMIUM").is_none(),
            "CANOPY_REQUIRE_CHROMIUM is set but `chromium` is not installed"
        );
        eprintln!("skipped: chromium is not installed");
        return;
    };
    let env = TestEnv::new();
    let mut server = std::process::Command::new("python3")
        .args(["-c", COOKIE_SERVER])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cookie server");
    let mut line = String::new();
    {
        use std::io::BufRead;
        let stdout = server.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("port");
    }
    let base = format!("http://127.0.0.1:{}", line.trim());
    // The browser as `canopy open` starts it (headless, printing the page), wrapped to
    // record the page and its end.
    let wrapper = env.dir.path().join("browser");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nout=$1; shift\n{} --headless --no-sandbox --disable-gpu --dump-dom \"$@\" > \"$out.part\" 2>/dev/null\nmv \"$out.part\" \"$out\"\n",
            chromium.display()
        ),
    )
    .expect("write");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    env.ok(&["new", "alice", "--agent", "sh"]);
    env.ok(&["new", "bob", "--agent", "sh"]);
    let mut n = 0;
    let mut open = |name: &str, path: &str| -> String {
        n += 1;
        let out = env.dir.path().join(format!("page-{n}"));
        let status = env
            .canopy(&["open", name, &format!("{base}{path}")])
            .env(
                "CANOPY_BROWSER",
                format!("{} {}", wrapper.display(), out.display()),
            )
            .output()
            .expect("canopy open");
        assert!(status.status.success());
        wait_for(
            &format!("{name}'s browser on {path}"),
            Duration::from_secs(60),
            || std::fs::read_to_string(&out).ok(),
        )
    };
    assert!(open("alice", "/set?v=alice").contains("set alice"));
    assert!(
        open("bob", "/").contains("cookie=[]"),
        "bob sees no cookie of alice's"
    );
    assert!(open("alice", "/").contains("cookie=[who=alice]"));
    assert!(open("bob", "/set?v=bob").contains("set bob"));
    assert!(open("bob", "/").contains("cookie=[who=bob]"));
    assert!(open("alice", "/").contains("cookie=[who=alice]"));
    let profile = env.session("alice").env.browser_profile.expect("profile");
    assert!(
        Path::new(&profile).starts_with(env.dir.path().join("state")),
        "{profile}"
    );
    let _ = server.kill();
    let _ = server.wait();
}
