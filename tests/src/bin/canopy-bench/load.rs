//! The hundred-session load scenario of `tests/load.rs` on the release host: 100
//! streaming fake Claude sessions reporting usage at the cap, 20 subscribers, 4
//! attached readers and one client that never reads.

use std::time::Duration;

use canopy_tests::load::{self, percentile};

use super::{Figure, Run, Target};

/// Build the fake agent beside this binary (same profile) and point the harness at it.
fn fake_agent(run: &Run) {
    let ok = super::cargo()
        .args([
            "build",
            "--release",
            "-p",
            "canopy-tests",
            "--bin",
            "fake-agent",
        ])
        .current_dir(&run.root)
        .status()
        .expect("run cargo")
        .success();
    assert!(ok, "building the fake agent failed");
    let fake = run.target.join("release/fake-agent");
    // SAFETY: the bench is single-threaded between groups; nothing reads the
    // environment concurrently.
    unsafe { std::env::set_var("CANOPY_FAKE_AGENT", fake) };
}

pub fn figures(run: &Run) -> Vec<Figure> {
    fake_agent(run);
    let window = Duration::from_secs(if run.quick { 4 } else { 20 });
    let mut env = load::env();
    let m = load::hundred_sessions(&mut env, window);
    assert!(
        m.every_watcher_saw_every_event(),
        "a watcher missed events: the figures would not mean anything"
    );
    let lat = &m.latencies;
    let method = format!(
        "100 fake Claude sessions streaming (a transcript line every 250 ms each: usage at the 4/s cap, {:.0} reports/s seen), 20 subscribers, 4 attached readers, 1 client subscribed and attached that never reads; {} s window, {} report→event samples over all subscribers (ms resolution); release host",
        m.reports_per_sec(),
        window.as_secs(),
        lat.len()
    );
    let [rss_start, _, rss_end] = m.rss;
    // p50 and p99 under 5 ms, the worst under 20 ms.
    let latency = [
        ("p50", percentile(lat, 0.5), 5.0),
        ("p99", percentile(lat, 0.99), 5.0),
        ("max", lat.last().copied().unwrap_or(0), 20.0),
    ];
    let mut figures: Vec<Figure> = latency
        .into_iter()
        .map(|(which, ms, most)| {
            Figure::new(
                format!("load: usage report → event at a subscriber, 100 sessions ({which})"),
                ms as f64,
                "ms",
                Target::Below(most),
                method.clone(),
            )
        })
        .collect();
    figures.extend([
        Figure::new(
            "load: host CPU, 100 streaming sessions",
            m.cpu,
            "% of a core",
            Target::Below(25.0),
            format!("{method}; utime+stime from /proc over the window"),
        ),
        Figure::new(
            "load: host RSS, 100 streaming sessions",
            rss_end as f64 / 1024.0,
            "MiB",
            Target::Info,
            format!(
                "VmRSS at the end of the window (after the sessions started: {:.1} MiB)",
                rss_start as f64 / 1024.0
            ),
        ),
    ]);
    figures
}
