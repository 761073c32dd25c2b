//! Load: a hundred sessions reporting usage while twenty clients subscribe and some
//! attach; a client that never reads; a thousand connections coming and going.
//!
//! Each test prints the figures it measured (`cargo test --test load -- --nocapture`);
//! the assertions are loose bounds that hold on a busy two-core machine, the figures
//! themselves go to docs/reliability.md and BENCHMARKS.md.

// The host's descriptors, memory and CPU time come from /proc: Linux only.
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use canopy::client::Client;
use canopy_protocol::params::{
    AttachParams, AttachResult, HelloParams, HelloResult, NewParams, Status, SubscribeParams,
    SubscribeResult,
};
use canopy_protocol::{Message, Session, method};
use canopy_tests::{TestEnv, runtime, wait_for};
use tokio::sync::watch;

/// The tests here measure the host: one at a time, or they would measure each other.
static SERIAL: Mutex<()> = Mutex::new(());

/// The fake agents, with the host logging warnings only: debug logging of every hook
/// and report would be part of what is measured.
fn env_with_fake_claude() -> TestEnv {
    let mut env = TestEnv::with_fake_agents();
    env.set_var("CANOPY_LOG", "warn");
    env
}

/// What /proc says about the host: open descriptors and resident memory (KiB).
fn host_proc(pid: i32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("host fds")
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("host status");
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    (fds, rss)
}

/// The host's CPU time so far (user + system), in clock ticks (100 per second).
fn host_cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("host stat");
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    let at = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    at(14) + at(15)
}

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

/// Create sessions `names` running `agent` with `prompt`, `parallel` at a time.
/// `command` is the agent and its arguments.
async fn create(env: &TestEnv, names: &[String], command: &[&str], prompt: &str, parallel: usize) {
    let repo = env.repo.display().to_string();
    for chunk in names.chunks(parallel) {
        let mut calls = tokio::task::JoinSet::new();
        for name in chunk {
            let params = NewParams {
                name: name.clone(),
                repo: repo.clone(),
                agent: command[0].to_owned(),
                args: command[1..].iter().map(|a| (*a).to_owned()).collect(),
                prompt: Some(prompt.to_owned()).filter(|p| !p.is_empty()),
                ..Default::default()
            };
            let socket = env.paths.socket.clone();
            calls.spawn(async move {
                let mut c = Client::connect(&socket).await.expect("connect");
                c.call::<_, Session>(method::NEW, &params)
                    .await
                    .unwrap_or_else(|e| panic!("new {}: {e}", params.name))
            });
        }
        while let Some(done) = calls.join_next().await {
            done.expect("new task");
        }
    }
}

/// A subscribed client, and the seq of the last event before its stream.
async fn subscribed(env: &TestEnv) -> (Client, u64) {
    let mut c = env.client().await;
    let r: SubscribeResult = c
        .call(method::SUBSCRIBE, &SubscribeParams { since: None })
        .await
        .expect("subscribe");
    (c, r.seq)
}

async fn attached(env: &TestEnv, name: &str) -> Client {
    let mut c = env.client().await;
    let _: AttachResult = c
        .call(
            method::ATTACH,
            &AttachParams {
                name: name.to_owned(),
                rows: 24,
                cols: 80,
            },
        )
        .await
        .expect("attach");
    c
}

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    /// From each usage report's making (the record's `created_at + wall_ms`) to its
    /// event arriving here, in ms.
    latencies: Vec<u64>,
    events: u64,
    resyncs: u64,
    /// The seq of every event received.
    seqs: Vec<u64>,
}

/// Read events until one numbered `end` or later (published once known) or `until`,
/// timing each usage report. Takes the whole client: its writer closing would end the
/// connection.
async fn watch_events(client: Client, end: watch::Receiver<u64>, until: Instant) -> Seen {
    let mut reader = client.reader;
    let _writer = client.writer;
    let mut seen = Seen::default();
    let mut last_wall: HashMap<String, u64> = HashMap::new();
    let deadline = tokio::time::Instant::from_std(until);
    while let Ok(Ok(Some(msg))) = tokio::time::timeout_at(deadline, reader.next()).await {
        let Message::Notification { method, params } = msg else {
            continue;
        };
        if method != method::EVENT {
            continue;
        }
        let Some(event) = params.first() else {
            continue;
        };
        seen.events += 1;
        let seq = field(event, "seq").and_then(|v| v.as_u64()).unwrap_or(0);
        seen.seqs.push(seq);
        if seq >= *end.borrow() {
            break;
        }
        // Only the fields needed, read in place: decoding whole records would make this
        // client, not the host, the bottleneck being measured.
        let Some(s) = field(event, "session") else {
            seen.resyncs += 1;
            continue;
        };
        let name = field(s, "name").and_then(|v| v.as_str()).unwrap_or("");
        let created_at = field(s, "created_at").and_then(|v| v.as_u64()).unwrap_or(0);
        let wall_ms = field(s, "usage")
            .and_then(|u| field(u, "wall_ms"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        // A new `wall_ms` is a new usage report; other events repeat the last one, and
        // the first event of a session may carry a report from before subscribing.
        let last = last_wall.insert(name.to_owned(), wall_ms);
        if last.is_some_and(|w| w != wall_ms) {
            let made = created_at + wall_ms;
            seen.latencies
                .push(canopy::clock::now_ms().saturating_sub(made));
        }
    }
    seen
}

/// Read output notifications until `until`; the bytes received.
async fn read_output(client: Client, until: Instant) -> usize {
    let mut reader = client.reader;
    let _writer = client.writer;
    let mut bytes = 0;
    let deadline = tokio::time::Instant::from_std(until);
    while let Ok(Ok(Some(msg))) = tokio::time::timeout_at(deadline, reader.next()).await {
        bytes += output_len(&msg);
    }
    bytes
}

/// Field `key` of a msgpack map.
fn field<'v>(map: &'v rmpv::Value, key: &str) -> Option<&'v rmpv::Value> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// The size of the terminal output in `msg`, if it is an `output` notification.
fn output_len(msg: &Message) -> usize {
    let Message::Notification { method, params } = msg else {
        return 0;
    };
    let Some(rmpv::Value::Map(fields)) = params.first().filter(|_| method == method::OUTPUT) else {
        return 0;
    };
    fields
        .iter()
        .find(|(k, _)| k.as_str() == Some("data"))
        .and_then(|(_, v)| v.as_slice())
        .map_or(0, <[u8]>::len)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A hundred fake Claude sessions stream replies (a transcript line and a screen line
/// every 50 ms each, so usage is reported at the 4/s cap) while twenty clients subscribe,
/// four attach, and one client subscribed and attached never reads. Every reading
/// subscriber keeps getting each usage report promptly, none piles up, and the host's
/// memory stays bounded.
#[test]
fn a_hundred_sessions_twenty_subscribers_and_a_client_that_never_reads() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut env = env_with_fake_claude();
    // A transcript line (and a repaint) every 250 ms: usage changes 4 times a second,
    // the host's cap per session.
    env.set_var("FAKE_STEP_MS", "250");
    env.ok(&["status"]);
    let pid = env.host_pid().expect("host");
    let rt = runtime();
    let names: Vec<String> = (0..100).map(|i| format!("s{i:03}")).collect();
    let started = Instant::now();
    // Ten minutes of streaming each: longer than the test needs, however long creating
    // the sessions takes.
    rt.block_on(create(&env, &names, &["claude"], "@stream:2400", 10));
    let created_in = started.elapsed();
    let (_, rss_start) = host_proc(pid);

    let window = Duration::from_secs(8);
    let (seen, attached_bytes, stuck, rss_mid, cpu, run) = rt.block_on(async {
        // Never read from: subscribed to every event and attached to a session.
        let (mut stuck, _) = subscribed(&env).await;
        let _: AttachResult = stuck
            .call(
                method::ATTACH,
                &AttachParams {
                    name: names[99].clone(),
                    rows: 24,
                    cols: 80,
                },
            )
            .await
            .expect("attach");
        let until = Instant::now() + window;
        let measuring = Instant::now();
        let cpu_before = host_cpu_ticks(pid);
        let mut watchers = tokio::task::JoinSet::new();
        // The last event before every watcher's stream, and (once the window is over)
        // the last one of the run: each watcher must see every event between.
        let mut first = 0;
        let (end_tx, end) = watch::channel(u64::MAX);
        for _ in 0..20 {
            let (c, seq) = subscribed(&env).await;
            first = first.max(seq);
            // Past the window, time enough for a watcher behind to catch up.
            watchers.spawn(watch_events(
                c,
                end.clone(),
                until + Duration::from_secs(60),
            ));
        }
        let mut readers = tokio::task::JoinSet::new();
        for name in &names[95..99] {
            let c = attached(&env, name).await;
            readers.spawn(read_output(c, until));
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(until - window / 2)).await;
        let (_, rss_mid) = host_proc(pid);
        tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
        let mut c = env.client().await;
        let status: Status = c
            .call(method::STATUS, &HashMap::<String, String>::new())
            .await
            .expect("status");
        let _ = end_tx.send(status.seq);
        let mut seen = Vec::new();
        while let Some(s) = watchers.join_next().await {
            seen.push(s.expect("watcher"));
        }
        let mut bytes = 0;
        while let Some(b) = readers.join_next().await {
            bytes += b.expect("reader");
        }
        // Percent of one core.
        let cpu = (host_cpu_ticks(pid) - cpu_before) as f64 / measuring.elapsed().as_secs_f64();
        (seen, bytes, stuck, rss_mid, cpu, first..=status.seq)
    });
    let (fds, rss_end) = host_proc(pid);
    drop(stuck);

    let mut all: Vec<u64> = seen.iter().flat_map(|s| s.latencies.clone()).collect();
    all.sort_unstable();
    let reports_per_sec =
        seen.iter().map(|s| s.latencies.len()).max().unwrap_or(0) as f64 / window.as_secs_f64();
    let (p50, p99, max) = (
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(0),
    );
    eprintln!(
        "100 sessions created in {created_in:?}; over {window:?} with 20 subscribers, 4 attached \
         and 1 client never reading: usage reports {reports_per_sec:.0}/s, events \
         {} per subscriber, report→event latency p50 {p50} ms, p99 {p99} ms, max {max} ms; \
         resyncs {}; attached output {} KiB; host CPU {:.0}% of one core; RSS {} → {} → {} MiB; \
         {fds} fds",
        seen.iter().map(|s| s.events).max().unwrap_or(0),
        seen.iter().map(|s| s.resyncs).sum::<u64>(),
        attached_bytes / 1024,
        cpu,
        rss_start / 1024,
        rss_mid / 1024,
        rss_end / 1024,
    );
    // Every reading subscriber saw every event of the run, in order; none fell behind
    // enough to be resynced.
    let (first, last) = (*run.start(), *run.end());
    assert!(last > first + 100, "events {first}..={last}");
    for s in &seen {
        let got: Vec<u64> = s
            .seqs
            .iter()
            .copied()
            .filter(|q| run.contains(q) && *q > first)
            .collect();
        assert_eq!(
            got,
            ((first + 1)..=last).collect::<Vec<_>>(),
            "a watcher missed events"
        );
        assert_eq!(s.resyncs, 0);
    }
    assert!(reports_per_sec > 20.0, "{reports_per_sec} reports/s");
    assert!(p50 < 1000 && p99 < 3000, "p50 {p50} ms, p99 {p99} ms");
    assert!(attached_bytes > 0);
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
    let env = env_with_fake_claude();
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
            let msg = tokio::time::timeout(Duration::from_secs(10), stuck.reader.next())
                .await
                .expect("the stuck client gets data again")
                .expect("read")
                .expect("open");
            if let Message::Notification { params, .. } = &msg
                && output_len(&msg) > 0
                && let Some(data) = params
                    .first()
                    .and_then(|p| field(p, "data"))
                    .and_then(|d| d.as_slice())
            {
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
    let env = env_with_fake_claude();
    env.ok(&["new", "a", "--agent", "sh"]);
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
