//! The hundred-session load scenario, shared by `tests/load.rs` (which asserts loose
//! bounds) and `canopy-bench --only load` (which reports the figures against their
//! targets): a hundred fake Claude sessions stream replies with usage reported at the
//! host's cap, while twenty clients subscribe, four attach, and one client subscribed
//! and attached never reads.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use canopy::client::Client;
use canopy_protocol::params::{
    AttachParams, AttachResult, NewParams, OutputData, Status, SubscribeParams, SubscribeResult,
};
use canopy_protocol::{Session, method};
use serde::Deserialize;
use tokio::sync::watch;

use crate::TestEnv;

/// What /proc says about the host: open descriptors and resident memory (KiB).
pub fn host_proc(pid: i32) -> (usize, u64) {
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
pub fn host_cpu_ticks(pid: i32) -> u64 {
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

/// Create sessions `names` running `agent` with `prompt`, `parallel` at a time.
/// `command` is the agent and its arguments.
pub async fn create(
    env: &TestEnv,
    names: &[String],
    command: &[&str],
    prompt: &str,
    parallel: usize,
) {
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
pub async fn subscribed(env: &TestEnv) -> (Client, u64) {
    let mut c = env.client().await;
    let r: SubscribeResult = c
        .call(method::SUBSCRIBE, &SubscribeParams { since: None })
        .await
        .expect("subscribe");
    (c, r.seq)
}

/// A client attached to session `name` at 24×80.
pub async fn attached(env: &TestEnv, name: &str) -> Client {
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
pub struct Seen {
    /// From each usage report's making (the record's `created_at + wall_ms`) to its
    /// event arriving here, in ms.
    pub latencies: Vec<u64>,
    pub events: u64,
    pub resyncs: u64,
    /// The seq of every event received.
    pub seqs: Vec<u64>,
}

/// The fields of an event a watcher times, borrowed from the frame: decoding whole
/// records would make the watchers, not the host, the bottleneck being measured.
#[derive(Deserialize)]
struct Timed<'a> {
    seq: u64,
    #[serde(borrow)]
    session: Option<TimedSession<'a>>,
}

#[derive(Deserialize)]
struct TimedSession<'a> {
    name: &'a str,
    created_at: u64,
    usage: TimedUsage,
}

#[derive(Deserialize)]
struct TimedUsage {
    wall_ms: u64,
}

/// Read events until one numbered `end` or later (published once known) or `until`,
/// timing each usage report. Takes the whole client: its writer closing would end the
/// connection.
pub async fn watch_events(client: Client, end: watch::Receiver<u64>, until: Instant) -> Seen {
    let mut reader = client.reader;
    let _writer = client.writer;
    let mut seen = Seen::default();
    let mut last_wall: HashMap<String, u64> = HashMap::new();
    let deadline = tokio::time::Instant::from_std(until);
    while let Ok(Ok(Some(frame))) = tokio::time::timeout_at(deadline, reader.next_frame()).await {
        if frame.method() != Some(method::EVENT) {
            continue;
        }
        let Ok(event) = frame.params::<Timed>() else {
            continue;
        };
        seen.events += 1;
        seen.seqs.push(event.seq);
        if event.seq >= *end.borrow() {
            break;
        }
        let Some(s) = event.session else {
            seen.resyncs += 1;
            continue;
        };
        // A new `wall_ms` is a new usage report; other events repeat the last one, and
        // the first event of a session may carry a report from before subscribing.
        let wall_ms = s.usage.wall_ms;
        let last = last_wall.insert(s.name.to_owned(), wall_ms);
        if last.is_some_and(|w| w != wall_ms) {
            let made = s.created_at + wall_ms;
            seen.latencies
                .push(canopy::clock::now_ms().saturating_sub(made));
        }
    }
    seen
}

/// Read output notifications until `until`; the bytes received.
pub async fn read_output(client: Client, until: Instant) -> usize {
    let mut reader = client.reader;
    let _writer = client.writer;
    let mut bytes = 0;
    let deadline = tokio::time::Instant::from_std(until);
    while let Ok(Ok(Some(frame))) = tokio::time::timeout_at(deadline, reader.next_frame()).await {
        bytes += output(&frame).map_or(0, <[u8]>::len);
    }
    bytes
}

/// The terminal output in `frame`, if it is an `output` notification.
pub fn output<'a>(frame: &canopy_protocol::frame::RawMessage<'a>) -> Option<&'a [u8]> {
    if frame.method() != Some(method::OUTPUT) {
        return None;
    }
    frame.params::<OutputData>().ok().map(|o| o.data)
}

/// The `p` quantile (0..=1) of `sorted`, nearest rank; 0 when empty.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// An environment for measuring the host: the fake agents, and the host logging
/// warnings only (debug logging of every hook and report would be part of what is
/// measured).
pub fn env() -> TestEnv {
    let mut env = TestEnv::with_fake_agents();
    env.set_var("CANOPY_LOG", "warn");
    env
}

/// What the hundred-session scenario measured.
#[derive(Debug)]
pub struct HundredSessions {
    pub created_in: Duration,
    pub window: Duration,
    /// What each of the twenty reading subscribers saw.
    pub seen: Vec<Seen>,
    /// Every report→event latency at every reading subscriber, in ms, sorted.
    pub latencies: Vec<u64>,
    /// Output bytes the four attached readers received.
    pub attached_bytes: usize,
    /// Host CPU over the window, in percent of one core.
    pub cpu: f64,
    /// Host RSS (KiB) once the sessions run, mid-window and at the end.
    pub rss: [u64; 3],
    /// Host descriptors at the end, the client that never reads still connected.
    pub fds: usize,
    /// The events of the run: after the last one before any watcher subscribed, up to
    /// the last one when the window closed.
    pub run: RangeInclusive<u64>,
}

impl HundredSessions {
    /// Usage reports per second at the subscriber that timed the most.
    pub fn reports_per_sec(&self) -> f64 {
        self.seen
            .iter()
            .map(|s| s.latencies.len())
            .max()
            .unwrap_or(0) as f64
            / self.window.as_secs_f64()
    }

    /// Each watcher saw exactly the events of the run, in order, with no resync.
    pub fn every_watcher_saw_every_event(&self) -> bool {
        let (first, last) = (*self.run.start(), *self.run.end());
        self.seen.iter().all(|s| {
            let got = s
                .seqs
                .iter()
                .copied()
                .filter(|q| self.run.contains(q) && *q > first);
            got.eq((first + 1)..=last) && s.resyncs == 0
        })
    }
}

/// Run the scenario for `window` on a host started in `env` (made by [`env`]; its host
/// not yet started).
pub fn hundred_sessions(env: &mut TestEnv, window: Duration) -> HundredSessions {
    // A transcript line (and a repaint) every 250 ms each: usage changes 4 times a
    // second, the host's cap per session.
    env.set_var("FAKE_STEP_MS", "250");
    env.ok(&["status"]);
    let env = &*env;
    let pid = env.host_pid().expect("the host's pid");
    let rt = crate::runtime();
    let names: Vec<String> = (0..100).map(|i| format!("s{i:03}")).collect();
    let started = Instant::now();
    // Ten minutes of streaming each: longer than the scenario needs, however long
    // creating the sessions takes.
    rt.block_on(create(env, &names, &["claude"], "@stream:2400", 10));
    let created_in = started.elapsed();
    let (_, rss_start) = host_proc(pid);

    let (seen, attached_bytes, stuck, rss_mid, cpu, run) = rt.block_on(async {
        // Never read from: subscribed to every event and attached to a session.
        let (mut stuck, _) = subscribed(env).await;
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
            let (c, seq) = subscribed(env).await;
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
            let c = attached(env, name).await;
            readers.spawn(read_output(c, until));
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(until - window / 2)).await;
        let (_, rss_mid) = host_proc(pid);
        tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
        // Percent of one core, over the window alone.
        let cpu = (host_cpu_ticks(pid) - cpu_before) as f64 / measuring.elapsed().as_secs_f64();
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
        (seen, bytes, stuck, rss_mid, cpu, first..=status.seq)
    });
    let (fds, rss_end) = host_proc(pid);
    drop(stuck);
    let mut latencies: Vec<u64> = seen.iter().flat_map(|s| s.latencies.clone()).collect();
    latencies.sort_unstable();
    HundredSessions {
        created_in,
        window,
        seen,
        latencies,
        attached_bytes,
        cpu,
        rss: [rss_start, rss_mid, rss_end],
        fds,
        run,
    }
}
