//! The host's connection handling, in process: a real `Daemon` (registry, store,
//! snapshot writer) in a temporary directory, and `connection::serve` fed arbitrary
//! bytes.
//!
//! Checks: nothing panics (libFuzzer aborts on a panic in any task); the connection
//! ends once the client has written everything and closed its side (a reply per request
//! and then EOF, or EOF at the first bad frame), within a deadline; and afterwards a
//! fresh connection still gets its `hello` answered.
//!
//! Inputs that would call `new`, `resume` or `shutdown` are skipped: the first two
//! start programs, the last stops the host on purpose. Their params are parsed by the
//! same code as every other method's; `tests/tests/props.rs` sends them to a real host.

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use canopy::daemon::{self, Daemon};
use canopy_protocol::{Decoder, Message, method};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Longer than any handler takes with no sessions; reaching it means a stuck host.
const DEADLINE: Duration = Duration::from_secs(5);

struct Host {
    runtime: tokio::runtime::Runtime,
    daemon: Arc<Daemon>,
    /// Holds the daemon's files; removed when the process exits normally.
    _dir: tempfile::TempDir,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_owned();
        let paths = canopy::paths::Paths::from_lookup(|k| match k {
            "HOME" => Some(root.join("home").into()),
            "XDG_RUNTIME_DIR" => Some(root.join("run").into()),
            "XDG_STATE_HOME" => Some(root.join("state").into()),
            "XDG_CONFIG_HOME" => Some(root.join("config").into()),
            _ => None,
        });
        for d in [&paths.runtime_dir, &paths.state_dir] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let daemon = runtime
            .block_on(async { daemon::start(paths, canopy::config::Config::default()) })
            .expect("daemon starts");
        Host {
            runtime,
            daemon,
            _dir: dir,
        }
    })
}

/// Whether the bytes ask for something this target leaves out (see the module doc).
fn skipped(data: &[u8]) -> bool {
    let mut decoder = Decoder::new();
    decoder.feed(data);
    while let Ok(Some(msg)) = decoder.next_message() {
        let name = match &msg {
            Message::Request { method, .. } | Message::Notification { method, .. } => method,
            Message::Response { .. } => continue,
        };
        if [method::NEW, method::RESUME, method::SHUTDOWN].contains(&name.as_str()) {
            return true;
        }
    }
    false
}

/// Write `data` on a new connection, close our side, and read until the host closes
/// its side. Returns what the host sent.
async fn exchange(daemon: &Arc<Daemon>, data: Vec<u8>) -> Vec<u8> {
    let (client, server) = UnixStream::pair().expect("socket pair");
    tokio::spawn(canopy::connection::serve(server, daemon.clone()));
    let (mut rd, mut wr) = client.into_split();
    // Written beside the reads: a host whose replies are not read stops reading.
    tokio::spawn(async move {
        let _ = wr.write_all(&data).await;
        let _ = wr.shutdown().await;
    });
    let mut got = Vec::new();
    tokio::time::timeout(DEADLINE, rd.read_to_end(&mut got))
        .await
        .expect("the host ends the connection: a connection that stays open is stuck")
        .expect("read");
    got
}

fuzz_target!(|data: &[u8]| {
    if skipped(data) {
        return;
    }
    let host = host();
    host.runtime.block_on(async {
        let replies = exchange(&host.daemon, data.to_vec()).await;
        let mut decoder = Decoder::new();
        decoder.feed(&replies);
        while let Some(msg) = decoder.next_message().expect("the host sends valid frames") {
            assert!(
                matches!(msg, Message::Response { .. }),
                "the host sent {msg:?} unasked"
            );
        }
        assert_eq!(decoder.pending(), 0, "the host sent a partial frame");

        let hello = Message::request(1, method::HELLO, &serde_json::json!({}))
            .expect("encodes")
            .encode();
        let answer = exchange(&host.daemon, hello).await;
        let mut decoder = Decoder::new();
        decoder.feed(&answer);
        match decoder.next_message() {
            Ok(Some(Message::Response { id: 1, error, .. })) if error.is_nil() => {}
            other => panic!("hello after the input got {other:?}"),
        }
    });
});
