//! The msgpack-RPC surface: subscriptions, errors, bad input, and who may connect.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use canopy_protocol::params::{SubscribeParams, SubscribeResult};
use canopy_protocol::{ErrorCode, Event, EventKind, Message, method};
use canopy_tests::TestEnv;
use rmpv::Value;

const WAIT: Duration = Duration::from_secs(10);

async fn next_event(client: &mut canopy::client::Client) -> Event {
    tokio::time::timeout(WAIT, async {
        loop {
            match client.reader.next().await.expect("read") {
                Some(Message::Notification { method, params }) if method == method::EVENT => {
                    return canopy_protocol::frame::params(&params).expect("event");
                }
                Some(_) => {}
                None => panic!("connection closed"),
            }
        }
    })
    .await
    .expect("an event arrives")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_subscribers_get_the_same_events_in_order() {
    let env = TestEnv::new();
    env.ok(&["status"]); // starts the host
    let mut a = env.client().await;
    let mut b = env.client().await;
    let sa: SubscribeResult = a
        .call(method::SUBSCRIBE, &SubscribeParams::default())
        .await
        .expect("subscribe");
    let sb: SubscribeResult = b
        .call(method::SUBSCRIBE, &SubscribeParams::default())
        .await
        .expect("subscribe");
    assert_eq!(sa.seq, sb.seq);

    env.ok(&["new", "one", "--agent", "sh"]);
    env.ok(&["stop", "one"]);
    env.ok(&["rm", "one"]);

    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    while got_a.last().map(|e: &Event| e.kind) != Some(EventKind::SessionRemoved) {
        got_a.push(next_event(&mut a).await);
    }
    while got_b.len() < got_a.len() {
        got_b.push(next_event(&mut b).await);
    }
    assert_eq!(got_a, got_b);
    let seqs: Vec<u64> = got_a.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (sa.seq + 1..=sa.seq + got_a.len() as u64).collect();
    assert_eq!(seqs, expected, "seq increases by one per event");
    assert_eq!(got_a[0].kind, EventKind::SessionAdded);
    let states: Vec<_> = got_a
        .iter()
        .filter_map(|e| e.session.as_ref().map(|s| s.state.kind.as_str()))
        .collect();
    assert_eq!(states.first(), Some(&"starting"));
    assert!(states.contains(&"exited"), "{states:?}");

    // A late subscriber resumes from a seq and gets exactly the events after it.
    let mut late = env.client().await;
    let since = got_a[1].seq;
    let _: SubscribeResult = late
        .call(method::SUBSCRIBE, &SubscribeParams { since: Some(since) })
        .await
        .expect("subscribe since");
    let mut replay = Vec::new();
    for _ in since..got_a.last().expect("events").seq {
        replay.push(next_event(&mut late).await);
    }
    assert_eq!(replay, got_a[2..]);
}

#[test]
fn watch_once_since_returns_the_missed_events_as_json_lines() {
    let env = TestEnv::new();
    let status: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "--json"])).expect("json");
    let seq0 = status["seq"].as_u64().expect("seq");
    env.ok(&["new", "w", "--agent", "sh"]);
    env.ok(&["stop", "w"]);
    let out = env.ok(&["watch", "--json", "--once", "--since", &seq0.to_string()]);
    let events: Vec<Event> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(events.len() >= 2, "{out}");
    assert_eq!(events[0].seq, seq0 + 1);
    assert_eq!(events[0].kind, EventKind::SessionAdded);
    // A seq from before this host (or from another host) gets a resync, not a gap.
    let out = env.ok(&["watch", "--json", "--once", "--since", "0"]);
    let first: Event = serde_json::from_str(out.lines().next().expect("a line")).expect("json");
    assert_eq!(first.kind, EventKind::Resync);
    // Nothing new after the last seq: --timeout ends the wait quietly.
    let last = events.last().expect("events").seq.to_string();
    let out = env.ok(&[
        "watch",
        "--json",
        "--once",
        "--since",
        &last,
        "--timeout",
        "0.2",
    ]);
    assert_eq!(out, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_and_bad_params_get_errors_and_the_connection_lives() {
    let env = TestEnv::new();
    env.ok(&["status"]);
    let mut client = env.client().await;
    let err = client
        .call::<_, Value>("no_such_method", &SubscribeParams::default())
        .await
        .expect_err("unknown method");
    let canopy::client::ClientError::Rpc(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.code, ErrorCode::UnknownMethod);

    let err = client
        .call::<_, Value>(
            method::GET,
            &std::collections::BTreeMap::from([("name", 5)]),
        )
        .await
        .expect_err("bad params");
    let canopy::client::ClientError::Rpc(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.code, ErrorCode::InvalidParams);

    let err = client
        .call::<_, Value>(
            method::GET,
            &std::collections::BTreeMap::from([("name", "nope")]),
        )
        .await
        .expect_err("missing session");
    let canopy::client::ClientError::Rpc(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.code, ErrorCode::NotFound);

    // Same connection, still served.
    let list: Vec<canopy_protocol::Session> = client
        .call(method::LIST, &SubscribeParams::default())
        .await
        .expect("list");
    assert!(list.is_empty());
}

#[test]
fn garbage_closes_only_its_own_connection() {
    let env = TestEnv::new();
    env.ok(&["status"]);
    let mut good = UnixStream::connect(&env.paths.socket).expect("connect");
    let mut bad = UnixStream::connect(&env.paths.socket).expect("connect");
    bad.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write garbage");
    bad.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = [0u8; 64];
    assert_eq!(
        bad.read(&mut buf).expect("closed, not timed out"),
        0,
        "the host hangs up"
    );

    good.write_all(
        &Message::request(9, method::LIST, &SubscribeParams::default())
            .expect("req")
            .encode(),
    )
    .expect("write");
    good.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut decoder = canopy_protocol::Decoder::new();
    let reply = loop {
        let n = good.read(&mut buf).expect("read");
        assert!(n > 0, "good connection closed");
        decoder.feed(&buf[..n]);
        if let Some(m) = decoder.next_message().expect("valid reply") {
            break m;
        }
    };
    assert_eq!(
        reply,
        Message::Response {
            id: 9,
            error: Value::Nil,
            result: Value::Array(vec![])
        }
    );
    // And new connections are still accepted.
    env.ok(&["ls"]);
}

/// Works from a real Neovim-style client too: raw msgpack with params as an empty array.
#[test]
fn a_bare_request_with_no_params_works() {
    let env = TestEnv::new();
    env.ok(&["status"]);
    let mut s = UnixStream::connect(&env.paths.socket).expect("connect");
    let req = Message::Request {
        id: 1,
        method: method::STATUS.into(),
        params: vec![],
    };
    s.write_all(&req.encode()).expect("write");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut decoder = canopy_protocol::Decoder::new();
    let mut buf = [0u8; 4096];
    let reply = loop {
        let n = s.read(&mut buf).expect("read");
        decoder.feed(&buf[..n]);
        if let Some(m) = decoder.next_message().expect("valid") {
            break m;
        }
    };
    let Message::Response { error, result, .. } = reply else {
        panic!("{reply:?}")
    };
    assert!(error.is_nil(), "{error}");
    let status: canopy_protocol::params::Status =
        canopy_protocol::frame::from_value(result).expect("status");
    assert_eq!(status.protocol, canopy_protocol::PROTOCOL_VERSION);
}

#[test]
fn another_user_is_refused() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to act as a second user");
        return;
    }
    let env = TestEnv::new();
    // A socket in a directory another user can reach once it is opened up (the test
    // environment itself lives under root's private home).
    let public = tempfile::tempdir().expect("tempdir in /tmp");
    let sock_dir = public.path().join("sock");
    std::fs::create_dir(&sock_dir).expect("mkdir");
    std::fs::set_permissions(
        &sock_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let mut env = env;
    env.set_var("CANOPY_SOCKET", sock_dir.join("canopy.sock"));
    env.ok(&["status"]);
    let probe = |socket: &std::path::Path| -> String {
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import os, socket, sys\n\
                 os.setgid(65534); os.setuid(65534)\n\
                 s = socket.socket(socket.AF_UNIX)\n\
                 try:\n    s.connect(sys.argv[1])\n\
                 except OSError as e:\n    print('connect-failed', e.errno); sys.exit(0)\n\
                 s.settimeout(10)\n\
                 try:\n    s.sendall(bytes([0x94, 0, 1, 0xa4]) + b'list' + bytes([0x90])); data = s.recv(64)\n\
                 except (ConnectionResetError, BrokenPipeError):\n    data = b''\n\
                 print('closed' if data == b'' else 'answered')\n",
            )
            .arg(socket)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    // The 0700 directory keeps other users from reaching the socket at all.
    assert!(probe(&env.paths.socket).starts_with("connect-failed"));
    // Even with the directory and socket opened up by mistake, the peer check refuses.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(public.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    std::fs::set_permissions(
        &env.paths.runtime_dir,
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::set_permissions(&env.paths.socket, std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    assert_eq!(probe(&env.paths.socket), "closed");
    std::fs::set_permissions(
        &env.paths.runtime_dir,
        std::fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    env.ok(&["ls"]);
}
