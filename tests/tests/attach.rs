//! Attaching while output floods: the relay runs ahead of the screen model (by up to
//! its byte budget), so an attachment's repaint is taken behind the live stream. Each
//! client must still see every byte exactly once, in the repaint or live.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use canopy::client::Client;
use canopy::session::screen::Screen;
use canopy_protocol::params::{AttachParams, AttachResult, OutputParams};
use canopy_protocol::{Message, method};
use canopy_tests::TestEnv;

const WAIT: Duration = Duration::from_secs(60);
const ROWS: u16 = 24;
const COLS: u16 = 80;
/// The flood: `seq 1 LAST`, some 2 MB.
const LAST: u32 = 300_000;
/// What the first client has seen when the others start attaching: the flood is on.
const STARTED: usize = 64 * 1024;
const DONE: &str = "DONE-42";
/// How a repaint begins ([`Screen::repaint`]).
const REPAINT: &[u8] = b"\x1b[0m\x1b[H\x1b[2J";

/// Attach a protocol client and read the session's output until [`DONE`], in a task
/// of its own; yields the repaint followed by everything read. `progress`, if given,
/// follows how much has been read (`usize::MAX` once done).
fn attach(socket: PathBuf, progress: Option<Arc<AtomicUsize>>) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut client = Client::connect(&socket).await.expect("connect");
        let attached: AttachResult = client
            .call(
                method::ATTACH,
                &AttachParams {
                    name: "flood".into(),
                    rows: ROWS,
                    cols: COLS,
                },
            )
            .await
            .expect("attach");
        let mut seen = attached.screen;
        if let Some(progress) = &progress {
            progress.store(seen.len(), Ordering::Relaxed);
        }
        let read = async {
            // Where the marker may begin in what is still to be searched.
            let mut from = 0;
            while memchr::memmem::find(&seen[from..], DONE.as_bytes()).is_none() {
                match client.reader.next().await.expect("read") {
                    Some(Message::Notification { method, params }) if method == method::OUTPUT => {
                        let p: OutputParams =
                            canopy_protocol::frame::params(&params).expect("output params");
                        from = seen.len().saturating_sub(DONE.len());
                        seen.extend(p.data);
                        if let Some(progress) = &progress {
                            progress.store(seen.len(), Ordering::Relaxed);
                        }
                    }
                    Some(_) => {}
                    None => panic!("host closed the connection"),
                }
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("the flood ends");
        if let Some(progress) = progress {
            progress.store(usize::MAX, Ordering::Relaxed);
        }
        seen
    })
}

/// The numbers a client's terminal shows, scrollback included, from its last repaint
/// on (a client that fell behind is repainted; none should here).
fn numbers(stream: &[u8]) -> Vec<u32> {
    let from = memchr::memmem::rfind(stream, REPAINT).expect("a repaint");
    let mut term = Screen::new(ROWS, COLS, 1_000_000);
    term.process(&stream[from..]);
    String::from_utf8_lossy(&term.capture(None, false))
        .lines()
        .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
        .map(|l| l.parse().expect("a number"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_attaching_mid_flood_see_every_line_once() {
    let env = TestEnv::new();
    env.ok(&["new", "flood", "--agent", "sh"]);
    // The first client attaches before the flood (and sets the terminal's size).
    let progress = Arc::new(AtomicUsize::new(0));
    let socket = env.paths.socket.clone();
    let mut clients = vec![attach(socket.clone(), Some(progress.clone()))];
    // Attached (a repaint is never empty).
    while progress.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    env.ok(&[
        "send",
        "flood",
        &format!("seq 1 {LAST}; echo DONE-$((40+2))"),
        "--enter",
    ]);
    while progress.load(Ordering::Relaxed) < STARTED {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The others while it lasts: the relay is ahead of the screen model (in a debug
    // build by most of the flood), so each repaint is taken well behind the stream.
    while progress.load(Ordering::Relaxed) != usize::MAX && clients.len() < 8 {
        clients.push(attach(socket.clone(), None));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut mid_flood = 0;
    for (i, client) in clients.into_iter().enumerate() {
        let seen = numbers(&client.await.expect("client"));
        let (Some(&first), Some(&last)) = (seen.first(), seen.last()) else {
            panic!("client {i} saw no numbers");
        };
        assert_eq!(last, LAST, "client {i} saw the end");
        if let Some(w) = seen.windows(2).find(|w| w[1] != w[0] + 1) {
            panic!(
                "client {i} (from {first}) saw {} then {}: a line missed or shown twice",
                w[0], w[1]
            );
        }
        if first > 1 {
            mid_flood += 1;
        }
    }
    assert!(
        mid_flood >= 2,
        "only {mid_flood} clients attached mid-flood"
    );
}
