//! Load: a hundred sessions reporting usage while twenty clients subscribe and some
//! attach; a client that never reads; a thousand connections coming and going.
//!
//! Each test prints the figures it measured (`cargo test --test load -- --nocapture`);
//! the assertions are loose bounds that hold on a busy two-core machine, the figures
//! themselves go to docs/reliability.md and BENCHMARKS.md.

// The host's descriptors, memory and CPU time come from /proc: Linux only.
#![cfg(target_os = "linux")]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use canopy_protocol::method;
use canopy_protocol::params::{AttachParams, AttachResult, HelloParams, HelloResult};
use canopy_tests::load::{
    self, attached, create, host_proc, percentile, read_output, subscribed, watch_events,
};
use canopy_tests::{TestEnv, runtime, wait_for};
use tokio::sync::watch;

/// The tests here measure the host: one at a time, or they would measure each other.
static SERIAL: Mutex<()> = Mutex::new(());

/// The host's live task count, from `hello`.
async fn host_tasks(env: &TestEnv) -> u64 {
    let mut c = env.client().await;
    let hello: HelloResult = c
        .call(
            method::HELLO,
            &HelloParams {
                client: "load-test".into(),
                version: "0".into(),
            },
        )
        .await
        .expect("hello");
    hello.tasks.expect("the host reports its tasks")
}

/// A hundred fake Claude sessions stream replies (a transcript line and a screen line
/// every 50 ms each, so usage is reported at the 4/s cap) while twenty clients subscribe,
/// four attach, and one client subscribed and attached never reads. Every reading
/// subscriber keeps getting each usage report promptly, none piles up, and the host's
/// memory stays bounded.
#[test]
fn a_hundred_sessions_twenty_subscribers_and_a_client_that_never_reads() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut env = load::env();
    let m = load::hundred_sessions(&mut env, Duration::from_secs(8));
    let (p50, p99, max) = (
        percentile(&m.latencies, 0.5),
        percentile(&m.latencies, 0.99),
        m.latencies.last().copied().unwrap_or(0),
    );
    let [rss_start, rss_mid, rss_end] = m.rss;
    eprintln!(
        "100 sessions created in {:?}; over {:?} with 20 subscribers, 4 attached and 1 \
         client never reading: usage reports {:.0}/s, events {} per subscriber, \
         report→event latency p50 {p50} ms, p99 {p99} ms, max {max} ms; resyncs {}; \
         attached output {} KiB; host CPU {:.0}% of one core; RSS {} → {} → {} MiB; {} fds",
        m.created_in,
        m.window,
        m.reports_per_sec(),
        m.seen.iter().map(|s| s.events).max().unwrap_or(0),
        m.seen.iter().map(|s| s.resyncs).sum::<u64>(),
        m.attached_bytes / 1024,
        m.cpu,
        rss_start / 1024,
        rss_mid / 1024,
        rss_end / 1024,
        m.fds,
    );
    // Every reading subscriber saw every event of the run, in order; none fell behind
    // enough to be resynced.
    assert!(m.run.end() > &(m.run.start() + 100), "events {:?}", m.run);
    assert!(m.every_watcher_saw_every_event(), "a watcher missed events");
    assert!(
        m.reports_per_sec() > 20.0,
        "{} reports/s",
        m.reports_per_sec()
    );
    assert!(p50 < 1000 && p99 < 3000, "p50 {p50} ms, p99 {p99} ms");
    assert!(m.attached_bytes > 0);
    assert!(
        rss_end < rss_start + 100 * 1024,
        "RSS {rss_start} → {rss_end} KiB"
    );
}

/// A session floods its terminal; one attached and subscribed client never reads.
/// The host's memory stays bounded, the client reading beside it gets the stream at
/// full speed, and the one that never read is repainted once it reads again.
#[test]
fn a_client_that_never_reads_holds_bounded_memory_and_is_repainted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = load::env();
    env.ok(&["status"]);
    let pid = env.host_pid().expect("host");
    let rt = runtime();
    rt.block_on(async {
        create(
            &env,
            &["flood".to_owned()],
            &[
                "sh",
                "-c",
                "i=0; while :; do i=$((i+1)); echo \"flood line $i 0123456789abcdefghijklmnopqrstuvwxyz\"; done",
            ],
            "",
            1,
        )
        .await;
        create(&env, &["talk".to_owned()], &["claude"], "@stream:400", 1).await;
        let (mut stuck, _) = subscribed(&env).await;
        let _: AttachResult = stuck
            .call(
                method::ATTACH,
                &AttachParams {
                    name: "flood".into(),
                    rows: 24,
                    cols: 80,
                },
            )
            .await
            .expect("attach");
        // Let the stuck client's socket buffer and queues fill.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (_, rss_start) = host_proc(pid);
        let window = Duration::from_secs(5);
        let until = Instant::now() + window;
        let reading = attached(&env, "flood").await;
        let (watcher, _) = subscribed(&env).await;
        let bytes = tokio::spawn(read_output(reading, until));
        let seen = tokio::spawn(watch_events(watcher, watch::channel(u64::MAX).1, until));
        tokio::time::sleep(window / 2).await;
        let (_, rss_mid) = host_proc(pid);
        let bytes = bytes.await.expect("reader");
        let seen = seen.await.expect("watcher");
        let (_, rss_end) = host_proc(pid);
        let mut lat = seen.latencies.clone();
        lat.sort_unstable();
        eprintln!(
            "flooding session, 1 client never reading: the reading client got {:.1} MiB/s; \
             usage report→event p50 {} ms, max {} ms over {} reports; RSS {} → {} → {} MiB",
            bytes as f64 / window.as_secs_f64() / (1024.0 * 1024.0),
            percentile(&lat, 0.5),
            lat.last().copied().unwrap_or(0),
            lat.len(),
            rss_start / 1024,
            rss_mid / 1024,
            rss_end / 1024,
        );
        assert!(bytes > 1024 * 1024, "{bytes} bytes");
        assert!(lat.len() >= 10, "{seen:?}");
        assert!(percentile(&lat, 0.5) < 500, "{lat:?}");
        assert!(rss_end < rss_start + 64 * 1024, "RSS {rss_start} → {rss_end} KiB");

        // The stuck client reads again and the stream resumes: what was queued for it,
        // then a repaint of the screen (which starts by clearing it) if it fell further
        // behind than the session's backlog.
        let caught_up = Instant::now();
        let repaint = b"\x1b[0m\x1b[H\x1b[2J";
        let mut output = Vec::new();
        while output.len() < 4 * 1024 * 1024 {
            let frame = tokio::time::timeout(Duration::from_secs(10), stuck.reader.next_frame())
                .await
                .expect("the stuck client gets data again")
                .expect("read")
                .expect("open");
            if let Some(data) = load::output(&frame) {
                output.extend_from_slice(data);
            }
            assert!(
                caught_up.elapsed() < Duration::from_secs(10),
                "the stream did not resume"
            );
        }
        eprintln!(
            "the client that never read got 4 MiB within {:?} of reading again (repainted: {})",
            caught_up.elapsed(),
            output.windows(repaint.len()).any(|w| w == repaint)
        );
    });
}

/// A thousand each of: connect and close; connect, subscribe and close; connect,
/// attach and close. The host ends with the descriptors and tasks it started with.
#[test]
fn a_thousand_connections_leave_no_descriptors_or_tasks_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = load::env();
    env.ok(&["new", "a", "--agent", "sh"]);
    // What the host starts once, lazily, belongs to "before": the screen gives back its
    // spare rows 100 ms after the prompt, which starts the heap trimmer, whose first
    // trim runs on the blocking pool a second later.
    std::thread::sleep(Duration::from_millis(1500));
    let pid = env.host_pid().expect("host");
    let rt = runtime();
    rt.block_on(async {
        let tasks_before = host_tasks(&env).await;
        let (fds_before, rss_before) = host_proc(pid);
        let started = Instant::now();
        for _ in 0..1000 {
            drop(env.client().await);
            drop(subscribed(&env).await.0);
            drop(attached(&env, "a").await);
        }
        let took = started.elapsed();
        // Closing is asynchronous on the host's side: wait for it to notice.
        let (mut fds_after, mut tasks_after) = (0, 0);
        let settled = Instant::now() + Duration::from_secs(5);
        while Instant::now() < settled {
            tasks_after = host_tasks(&env).await;
            fds_after = host_proc(pid).0;
            if tasks_after <= tasks_before && fds_after <= fds_before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, rss_after) = host_proc(pid);
        eprintln!(
            "3000 connections (1000 plain, 1000 subscribe, 1000 attach) in {took:?}: fds \
             {fds_before} → {fds_after}, tasks {tasks_before} → {tasks_after}, RSS {} → {} MiB",
            rss_before / 1024,
            rss_after / 1024
        );
        // At most as many: a descriptor the host held for its own reasons (a watch,
        // a log file being rotated) may close meanwhile; a leak only ever adds.
        assert!(
            fds_after <= fds_before,
            "descriptors leaked: {fds_before} → {fds_after}"
        );
        assert!(
            tasks_after <= tasks_before,
            "tasks leaked: {tasks_before} → {tasks_after}"
        );
    });
    // Still serving.
    wait_for("the session still listed", Duration::from_secs(5), || {
        env.sessions().iter().any(|s| s.name == "a").then_some(())
    });
}
