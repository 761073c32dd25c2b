//! Property tests against a real host: whatever a client writes (random bytes, cut or
//! mutated frames, params of the wrong types, huge lengths, unknown methods, bad hook
//! payloads for known and unknown sessions), it gets an error response or a closed
//! connection, never a stuck one; and afterwards the same host still answers at once.
//! Hook payloads also go through the real `canopy hook` command, which must exit 0
//! promptly whatever it reads. Case counts are bounded to keep this to seconds; `fuzz/`
//! runs the in-process equivalents for as long as you like.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use canopy_protocol::{Decoder, ErrorCode, Message, RpcError, method};
use canopy_tests::TestEnv;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rmpv::Value;

/// Longer than any reply takes here; a connection still open after it is stuck.
const DEADLINE: Duration = Duration::from_secs(5);

/// Cases per kind of input.
const CASES: u32 = 48;

/// Sessions that exist (agents that sleep, behind each built-in adapter).
const KNOWN: &[(&str, &str)] = &[("kc", "claude"), ("kx", "codex"), ("kg", "gemini")];

/// Every method but the two that end things on purpose (`shutdown`) or may start a
/// program (`new` with a real agent is the subject of other tests).
const METHODS: &[&str] = &[
    method::HELLO,
    method::LIST,
    method::GET,
    method::SEND,
    method::STOP,
    method::RM,
    method::STATUS,
    method::SUBSCRIBE,
    method::UNSUBSCRIBE,
    method::ATTACH,
    method::INPUT,
    method::RESIZE,
    method::DETACH,
    method::HOOK,
    method::EXPLAIN,
    method::APPROVE,
    method::DENY,
    method::RESUME,
];

/// Param names the methods read.
const KEYS: &[&str] = &[
    "name", "repo", "agent", "args", "base", "prompt", "env", "rows", "cols", "text", "enter",
    "force", "since", "data", "session", "payload", "reason", "client", "version",
];

/// Hook events the adapters know. Not `PermissionRequest`: Claude's is held open until
/// the request is answered, which is the point of it.
const EVENTS: &[&str] = &[
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionDenied",
    "Notification",
    "Stop",
    "StopFailure",
    "PreCompact",
    "PostCompact",
    "SessionEnd",
    "BeforeAgent",
    "AfterAgent",
    "BeforeTool",
    "AfterTool",
    "PreCompress",
];

fn env_with_sessions() -> TestEnv {
    let mut env = TestEnv::new();
    let names: Vec<&str> = KNOWN.iter().map(|(_, agent)| *agent).collect();
    let bin = env.stub_agents(&names, "exec sleep 600");
    env.prepend_path(&bin);
    for (name, agent) in KNOWN {
        env.ok(&["new", name, "--agent", agent]);
    }
    env
}

fn text(max: usize) -> BoxedStrategy<String> {
    prop::collection::vec(any::<char>(), 0..max)
        .prop_map(String::from_iter)
        .boxed()
}

/// Any msgpack value, small.
fn value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::F64),
        text(20).prop_map(Value::from),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Binary),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((text(8).prop_map(Value::from), inner), 0..4)
                .prop_map(Value::Map),
        ]
    })
    .boxed()
}

/// A params map of known keys with values of any type (mostly the wrong one).
fn params() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(KEYS), value()), 0..5)
        .prop_map(|kv| Value::Map(kv.into_iter().map(|(k, v)| (Value::from(k), v)).collect()))
}

fn request(id: u32, method: &str, params: Value) -> Vec<u8> {
    Message::Request {
        id,
        method: method.to_owned(),
        params: vec![params],
    }
    .encode()
}

/// A JSON-ish hook payload: an object with a known event and fields of any JSON type,
/// or text that may not be JSON at all.
fn payload() -> impl Strategy<Value = String> {
    let json_leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        text(30).prop_map(serde_json::Value::from),
    ];
    let json = json_leaf
        .prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(text(8), inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed();
    let fields = prop::sample::select(
        &[
            "tool_name",
            "tool_input",
            "session_id",
            "notification_type",
            "background_tasks",
            "error",
            "last_assistant_message",
            "prompt_response",
            "details",
            "trigger",
            "type",
            "thread-id",
            "payload",
            "properties",
            "transcript_path",
        ][..],
    );
    let object = (
        prop::sample::select(EVENTS),
        prop::collection::vec((fields, json.clone()), 0..5),
    )
        .prop_map(|(event, kv)| {
            let mut map = serde_json::Map::new();
            map.insert("hook_event_name".into(), event.into());
            for (k, v) in kv {
                // A transcript path the host would follow: keep it inside nowhere.
                let v = if k == "transcript_path" {
                    serde_json::Value::from("/nonexistent/t.jsonl")
                } else {
                    v
                };
                map.insert(k.into(), v);
            }
            serde_json::Value::Object(map).to_string()
        });
    prop_oneof![
        3 => object,
        1 => json.prop_map(|v| v.to_string()),
        1 => text(60),
    ]
}

/// What a connection got: the frames the host sent before it closed.
fn exchange(env: &TestEnv, bytes: &[u8]) -> Result<Vec<Message>, TestCaseError> {
    let mut stream = UnixStream::connect(&env.paths.socket)
        .map_err(|e| TestCaseError::fail(format!("connect: {e}")))?;
    let mut writer = stream
        .try_clone()
        .map_err(|e| TestCaseError::fail(format!("clone: {e}")))?;
    let bytes = bytes.to_vec();
    // Written beside the reads: a host whose replies are not read stops reading.
    let write = std::thread::spawn(move || {
        let _ = writer.write_all(&bytes);
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TestCaseError::fail(
                "the connection is stuck: no close in 5 s",
            ));
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // The host closed first, maybe with our bytes unread.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(TestCaseError::fail(format!("read: {e}"))),
        }
    }
    let _ = write.join();
    let mut decoder = Decoder::new();
    decoder.feed(&got);
    let mut frames = Vec::new();
    while let Some(msg) = decoder
        .next_message()
        .map_err(|e| TestCaseError::fail(format!("the host sent a bad frame: {e}")))?
    {
        frames.push(msg);
    }
    Ok(frames)
}

/// The error of the response to request `id`, or `None` for a success; fails when
/// there is no such response.
fn response(frames: &[Message], id: u32) -> Result<Option<RpcError>, TestCaseError> {
    let error = frames
        .iter()
        .find_map(|m| match m {
            Message::Response { id: got, error, .. } if *got == id => Some(error.clone()),
            _ => None,
        })
        .ok_or_else(|| TestCaseError::fail(format!("no response to request {id}")))?;
    if error.is_nil() {
        return Ok(None);
    }
    canopy_protocol::frame::from_value(error)
        .map(Some)
        .map_err(|e| TestCaseError::fail(format!("bad error object: {e}")))
}

/// The host that answered before still answers `hello` and `list`, at once.
struct Watch<'a> {
    env: &'a TestEnv,
    pid: u32,
    /// How much of the host's log (its stderr) has been checked for panics.
    log_seen: u64,
}

impl<'a> Watch<'a> {
    fn new(env: &'a TestEnv) -> Self {
        let frames = exchange(env, &request(1, method::HELLO, Value::Nil)).expect("hello");
        let pid = match frames.first() {
            Some(Message::Response { result, .. }) => result
                .as_map()
                .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some("pid")))
                .and_then(|(_, v)| v.as_u64())
                .and_then(|p| u32::try_from(p).ok())
                .expect("hello has a pid"),
            other => panic!("hello got {other:?}"),
        };
        Watch {
            env,
            pid,
            log_seen: 0,
        }
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        let started = Instant::now();
        let frames = exchange(self.env, &request(1, method::LIST, Value::Nil))?;
        if response(&frames, 1)?.is_some() {
            return Err(TestCaseError::fail("list failed afterwards"));
        }
        if started.elapsed() > Duration::from_secs(2) {
            return Err(TestCaseError::fail("list was slow afterwards"));
        }
        let pid = Watch::new(self.env).pid;
        if pid != self.pid {
            return Err(TestCaseError::fail(format!(
                "the host restarted: pid {} is now {pid}",
                self.pid
            )));
        }
        let log = std::fs::read(self.env.paths.log_file()).unwrap_or_default();
        let new = log.get(self.log_seen as usize..).unwrap_or_default();
        self.log_seen = log.len() as u64;
        if String::from_utf8_lossy(new).contains("panicked at") {
            return Err(TestCaseError::fail(format!(
                "a host task panicked:\n{}",
                String::from_utf8_lossy(new)
            )));
        }
        Ok(())
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Run `inputs` against the host: each must end in a close (and pass `check`), and the
/// host must be unharmed after each.
fn run_cases<S: Strategy>(
    env: &TestEnv,
    watch: &mut Watch<'_>,
    what: &str,
    inputs: S,
    check: impl Fn(&S::Value, &[Message]) -> Result<(), TestCaseError>,
) where
    S::Value: AsBytes,
{
    let watch = std::cell::RefCell::new(watch);
    let result = runner().run(&inputs, |input| {
        let frames = exchange(env, input.as_bytes())?;
        check(&input, &frames)?;
        watch.borrow_mut().check()
    });
    if let Err(e) = result {
        panic!("{what}: {e}");
    }
}

/// An input's bytes on the wire.
trait AsBytes {
    fn as_bytes(&self) -> &[u8];
}

impl AsBytes for Vec<u8> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl<T> AsBytes for (Vec<u8>, T) {
    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn anything(_: &impl std::fmt::Debug, _: &[Message]) -> Result<(), TestCaseError> {
    Ok(())
}

/// A valid request, any method, any params, as bytes.
fn valid_request() -> impl Strategy<Value = Vec<u8>> {
    (prop::sample::select(METHODS), params()).prop_map(|(m, p)| request(7, m, p))
}

#[test]
fn no_input_panics_or_hangs_the_host() {
    let env = env_with_sessions();
    let mut watch = Watch::new(&env);

    run_cases(
        &env,
        &mut watch,
        "random bytes",
        prop::collection::vec(any::<u8>(), 0..2048),
        anything,
    );

    run_cases(
        &env,
        &mut watch,
        "cut frames",
        (valid_request(), any::<prop::sample::Index>())
            .prop_map(|(bytes, cut)| bytes[..cut.index(bytes.len())].to_vec()),
        |_, frames| {
            prop_assert!(frames.is_empty(), "a cut frame got {frames:?}");
            Ok(())
        },
    );

    run_cases(
        &env,
        &mut watch,
        "mutated frames",
        (
            valid_request(),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        )
            .prop_map(|(mut bytes, flips)| {
                for (at, b) in flips {
                    let i = at.index(bytes.len());
                    bytes[i] = b;
                }
                bytes
            }),
        anything,
    );

    run_cases(
        &env,
        &mut watch,
        "params of any type",
        (prop::sample::select(METHODS), params()).prop_map(|(m, p)| (request(7, m, p), m)),
        |_, frames| response(frames, 7).map(drop),
    );

    run_cases(
        &env,
        &mut watch,
        "huge lengths",
        (
            prop::sample::select(&[0xc6u8, 0xdb, 0xdd, 0xdf, 0xc9][..]),
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..256),
        )
            .prop_map(|(marker, len, tail)| {
                let mut bytes = vec![0x94, 0x00, 0x07, 0xa4, b'l', b'i', b's', b't', 0x91];
                bytes.push(marker);
                bytes.extend(len.to_be_bytes());
                bytes.extend(tail);
                bytes
            }),
        anything,
    );

    run_cases(
        &env,
        &mut watch,
        "unknown methods",
        (text(24), params()).prop_filter_map("a known method", |(m, p)| {
            let known = METHODS.contains(&m.as_str())
                || [method::NEW, method::SHUTDOWN].contains(&m.as_str());
            (!known).then(|| (request(7, &m, p), m))
        }),
        |_, frames| match response(frames, 7)? {
            Some(e) if e.code == ErrorCode::UnknownMethod => Ok(()),
            other => Err(TestCaseError::fail(format!(
                "an unknown method got {other:?}"
            ))),
        },
    );

    let sessions = prop_oneof![
        prop::sample::select(KNOWN).prop_map(|(s, a)| (s.to_owned(), a.to_owned())),
        (text(10), text(10)),
        (prop::sample::select(KNOWN), text(8)).prop_map(|((s, _), a)| (s.to_owned(), a)),
    ];
    run_cases(
        &env,
        &mut watch,
        "hook payloads",
        (sessions, payload()).prop_map(|((session, agent), payload)| {
            let params = canopy_protocol::frame::to_value(&canopy_protocol::params::HookParams {
                session,
                agent,
                payload,
            })
            .expect("encodes");
            (request(7, method::HOOK, params), ())
        }),
        |_, frames| response(frames, 7).map(drop),
    );

    // One frame past the size limit, complete: refused, and the host is unharmed.
    let mut big = vec![0x94, 0x00, 0x07, 0xa4, b'l', b'i', b's', b't', 0x91, 0xc6];
    let len = canopy_protocol::frame::MAX_FRAME_BYTES + 1;
    big.extend(u32::try_from(len).expect("fits").to_be_bytes());
    big.resize(big.len() + len, 0);
    let frames = exchange(&env, &big).expect("an oversized frame closes the connection");
    assert!(frames.is_empty(), "{frames:?}");
    watch.check().expect("the host is unharmed");

    // The sessions lived through it all.
    for (name, _) in KNOWN {
        assert!(
            env.session(name).state.kind.is_live(),
            "{name} is still running"
        );
    }
}

#[test]
fn the_hook_command_exits_zero_at_once_on_any_input() {
    let env = env_with_sessions();
    let watch = std::cell::RefCell::new(Watch::new(&env));
    let inputs = (
        prop::sample::select(&["kc", "kx", "kg", "nope", ""][..]),
        prop::sample::select(&["claude", "codex", "gemini", "opencode", "x"][..]),
        prop_oneof![
            payload().prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..512),
        ],
    );
    let result = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    })
    .run(&inputs, |(session, agent, stdin)| {
        let started = Instant::now();
        let mut child = env
            .hook_command(session, agent)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| TestCaseError::fail(format!("spawn: {e}")))?;
        if let Some(mut pipe) = child.stdin.take() {
            let _ = pipe.write_all(&stdin);
        }
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| TestCaseError::fail(format!("wait: {e}")))?
            {
                break status;
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TestCaseError::fail("canopy hook did not exit in 5 s"));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        prop_assert!(status.success(), "canopy hook exited {status}");
        watch.borrow_mut().check()
    });
    if let Err(e) = result {
        panic!("canopy hook: {e}");
    }
}
