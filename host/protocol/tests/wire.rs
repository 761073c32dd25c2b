//! The bytes on the wire, pinned. Every message below was encoded by the value-tree
//! encoder the protocol used until issue 22 and its bytes saved in `wire.txt`; the
//! typed encoder that replaced it must write the same bytes (a client written against
//! the old host must not see a difference), and the typed decoder must read them back.

use std::collections::BTreeMap;

use canopy_protocol::params::{
    DetachedParams, HelloParams, HelloResult, HostLink, LinkState, NewParams, SubscribeParams,
};
use canopy_protocol::session::{
    Comment, Context, Environment, ModelUsage, Task, Tokens, ToolCalls, Usage,
};
use canopy_protocol::{
    Decoder, ErrorCode, Event, EventKind, Health, Message, RpcError, Session, State, StateKind,
    StateSource, frame, method,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

const PINNED: &str = include_str!("wire.txt");

/// A session with every optional part present: usage on two models (one unpriced),
/// a task, an environment, review comments, strings long enough for str8 and str16, and
/// non-ASCII text.
fn full_session() -> Session {
    let tokens = Tokens {
        input: 1200,
        output: 5400,
        cache_write_5m: 20_000,
        cache_write_1h: 0,
        cache_read: 310_000,
        reasoning: 77,
    };
    let model = ModelUsage {
        tokens,
        cost_usd: Some(0.42),
        responses: 37,
    };
    Session {
        name: "fix-login".into(),
        host: "alpha".into(),
        stale_since: Some(1_764_000_400_000),
        agent: "claude".into(),
        command: vec![
            "claude".into(),
            "--settings".into(),
            "/run/user/1000/canopy/claude-fix-login.json".into(),
        ],
        repo: "/home/dev/src/shop".into(),
        worktree: "/home/dev/src/shop.worktrees/fix-login".into(),
        branch: "canopy/fix-login".into(),
        base: "main".into(),
        base_commit: "4f1c2a9e0b7d3c5a8e6f1b2d4c6a8e0f2b4d6c8a".into(),
        created_at: 1_764_000_000_000,
        state: State {
            kind: StateKind::WaitingPermission,
            tool: Some("Bash".into()),
            detail: Some("cargo test -p shop-auth — «überprüfen» ".repeat(10)),
            since: 1_764_000_300_000,
            source: StateSource::Hook,
        },
        health: Health::Degraded,
        pid: Some(41_235),
        agent_session_id: Some("0b7d3c5a-8e6f-4b2d-9c6a-8e0f2b4d6c8a".into()),
        exit_code: Some(-1),
        usage: Usage {
            model: Some("claude-sonnet-4-5".into()),
            cost_usd: None,
            unpriced_models: vec!["claude-next".into()],
            tokens,
            by_model: BTreeMap::from([
                ("claude-sonnet-4-5".into(), model.clone()),
                (
                    "claude-next".into(),
                    ModelUsage {
                        cost_usd: None,
                        ..model
                    },
                ),
            ]),
            context: Context {
                used: 64_000,
                window: 200_000,
                percent: 32.0,
            },
            tool_calls: ToolCalls {
                total: 41,
                by_tool: BTreeMap::from([
                    ("Bash".into(), 20),
                    ("Read".into(), 15),
                    ("Edit".into(), 6),
                ]),
            },
            wall_ms: 300_000,
            active_ms: 210_000,
            lines_added: 120,
            lines_removed: 31,
        },
        task: Some(Task {
            tracker: "github".into(),
            id: "shop/shop#12".into(),
            title: "Login fails after a password reset".into(),
            url: "https://github.com/shop/shop/issues/12".into(),
        }),
        env: Environment {
            ports: Some([41_000, 41_009]),
            url: Some("http://127.0.0.1:41000/".into()),
            browser_profile: Some("/home/dev/.local/state/canopy/browser/fix-login".into()),
            vars: BTreeMap::from([
                ("CANOPY_PORT".into(), "41000".into()),
                ("CANOPY_URL".into(), "http://127.0.0.1:41000/".into()),
            ]),
            setup_failed: Some("npm ci".into()),
            untrusted: Some("/home/dev/src/shop/.canopy.toml".into()),
        },
        comments: vec![
            Comment {
                path: "src/auth.rs".into(),
                line: 12,
                code: "    let token = reset.token()?;".into(),
                text: "check expiry first".into(),
                created_at: 1_764_000_350_000,
            },
            Comment {
                path: "src/lib.rs".into(),
                line: 70_000,
                code: String::new(),
                text: "x".repeat(300),
                created_at: 1_764_000_360_000,
            },
        ],
        pr: None,
        radar: None,
    }
}

/// A session as `new` first records it: every optional part absent.
fn bare_session() -> Session {
    Session {
        name: "tiny".into(),
        host: "local".into(),
        stale_since: None,
        agent: "sh".into(),
        command: Vec::new(),
        repo: "/r".into(),
        worktree: "/r.worktrees/tiny".into(),
        branch: "canopy/tiny".into(),
        base: "HEAD".into(),
        base_commit: String::new(),
        created_at: 5,
        state: State::new(StateKind::Starting, StateSource::Host, 5),
        health: Health::Ok,
        pid: None,
        agent_session_id: None,
        exit_code: None,
        usage: Usage::default(),
        task: None,
        env: Environment::default(),
        comments: Vec::new(),
        pr: None,
        radar: None,
    }
}

fn event(seq: u64, kind: EventKind, session: Option<Session>) -> Event {
    Event {
        seq,
        kind,
        session,
        host: None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pinned(name: &str) -> String {
    PINNED
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no pinned bytes for {name}"))
        .to_owned()
}

/// The message's bytes are the pinned ones, and they decode back to the same params.
fn notification<P: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    name: &str,
    method: &str,
    params: &P,
) {
    let bytes = frame::encode_notification(method, params).expect("encodes");
    assert_eq!(hex(&bytes), pinned(name), "{name}");
    // The value-tree encoder, which wrote the pinned bytes, still agrees.
    let tree = Message::notification(method, params).expect("encodes");
    assert_eq!(tree.encode(), bytes, "{name}");
    let mut d = Decoder::new();
    d.feed(&bytes);
    let got = d.next_frame().expect("valid").expect("complete");
    assert_eq!(got.method(), Some(method), "{name}");
    assert_eq!(&got.params::<P>().expect("typed"), params, "{name}");
}

#[test]
fn events_keep_their_bytes() {
    let full = full_session();
    let mut changed = event(1234, EventKind::SessionChanged, Some(full.clone()));
    notification("session_changed_full", method::EVENT, &changed);
    changed.session = Some(bare_session());
    notification("session_changed_bare", method::EVENT, &changed);
    notification(
        "session_added",
        method::EVENT,
        &event(1, EventKind::SessionAdded, Some(bare_session())),
    );
    notification(
        "session_removed",
        method::EVENT,
        &event(u64::MAX, EventKind::SessionRemoved, Some(full)),
    );
    notification("resync", method::EVENT, &event(0, EventKind::Resync, None));
    let mut host = event(300, EventKind::HostChanged, None);
    host.host = Some(HostLink {
        name: "alpha".into(),
        state: LinkState::Stale,
        since: 1_764_000_000_000,
        detail: Some("ssh: connect to host alpha port 22: Connection refused".into()),
    });
    notification("host_changed", method::EVENT, &host);
}

#[test]
fn other_notifications_keep_their_bytes() {
    notification(
        "detached",
        method::DETACHED,
        &DetachedParams {
            name: "fix-login".into(),
            reason: "the session exited".into(),
        },
    );
    let output = frame::output_frame("fix-login", &[27, b'[', b'H', 0, 255]);
    assert_eq!(hex(&output), pinned("output"));
}

#[test]
fn requests_keep_their_bytes() {
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "request_hello",
            frame::encode_request(
                1,
                method::HELLO,
                &HelloParams {
                    client: "canopy-cli".into(),
                    version: "0.1.0".into(),
                },
            )
            .expect("encodes"),
        ),
        (
            "request_new",
            frame::encode_request(
                u32::MAX,
                method::NEW,
                &NewParams {
                    name: "fix-login".into(),
                    repo: "/home/dev/src/shop".into(),
                    agent: "claude".into(),
                    args: vec!["--model".into(), "opus".into()],
                    base: Some("main".into()),
                    prompt: Some("fix the login".into()),
                    task: full_session().task,
                    task_context: None,
                    env: BTreeMap::from([("PATH".into(), "/usr/bin:/bin".into())]),
                    rows: Some(50),
                    cols: Some(200),
                    host: None,
                },
            )
            .expect("encodes"),
        ),
        (
            "request_subscribe",
            frame::encode_request(300, method::SUBSCRIBE, &SubscribeParams { since: Some(9) })
                .expect("encodes"),
        ),
    ];
    for (name, bytes) in cases {
        assert_eq!(hex(&bytes), pinned(name), "{name}");
    }
}

#[test]
fn responses_keep_their_bytes() {
    let hello = HelloResult {
        protocol: 1,
        host_version: "0.1.0".into(),
        capabilities: vec!["attach".into(), "review".into()],
        pid: 4321,
        tasks: Some(17),
        boot_id: None,
    };
    let error = RpcError::new(ErrorCode::NotFound, "no session named \"x\"")
        .with_hint("`canopy ls` lists them")
        .with_details(vec!["one".into(), "two".into()]);
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "response_list",
            frame::encode_ok(2, &vec![full_session(), bare_session()]).expect("encodes"),
        ),
        (
            "response_hello",
            frame::encode_ok(70_000, &hello).expect("encodes"),
        ),
        ("response_nil", frame::encode_ok(3, &()).expect("encodes")),
        ("response_error", frame::encode_err(4, &error)),
    ];
    for (name, bytes) in &cases {
        assert_eq!(hex(bytes), pinned(name), "{name}");
    }
    let mut d = Decoder::new();
    d.feed(&cases[0].1);
    d.feed(&cases[3].1);
    let list = d.next_frame().expect("valid").expect("complete");
    assert_eq!(list.id(), Some(2));
    let sessions: Vec<Session> = list.result().expect("typed").expect("ok");
    assert_eq!(sessions, vec![full_session(), bare_session()]);
    let failed = d.next_frame().expect("valid").expect("complete");
    let sent = failed.result::<()>().expect("typed").expect_err("an error");
    assert_eq!(
        frame::from_value::<RpcError>(sent).expect("an error object"),
        error
    );
}
