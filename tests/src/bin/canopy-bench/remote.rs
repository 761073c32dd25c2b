//! Remote hosts over a real sshd on loopback: hook → state change at a local subscriber
//! for a remote session against a local one, the hub's CPU and memory per remote host,
//! and the time a killed link takes to be live again.

use std::time::{Duration, Instant};

use canopy::client::Client;
use canopy_protocol::params::{
    HookParams, HookResult, LinkState, SubscribeParams, SubscribeResult,
};
use canopy_protocol::{Event, EventKind, Message, method};
use canopy_tests::sshd::{ssh_child, sshd};
use canopy_tests::{TestEnv, wait_for};

use super::host::{rss_mib, wakeups_and_cpu};
use super::{Figure, Samples, Target, ms_since};

const WAIT: Duration = Duration::from_secs(30);

/// The next `event` at `sub` that `wanted` accepts.
async fn next_event(sub: &mut Client, wanted: impl Fn(&Event) -> bool) -> Event {
    loop {
        match sub.reader.next().await.expect("read") {
            Some(Message::Notification { method, params }) if method == method::EVENT => {
                let e: Event = canopy_protocol::frame::params(&params).expect("event");
                if wanted(&e) {
                    return e;
                }
            }
            Some(_) => {}
            None => panic!("the hub went away"),
        }
    }
}

/// Latency from a `hook` request at `at`'s host for session `name` to the event for
/// `shown` (its name at the hub) at a subscriber of `hub`, in ms.
async fn hook_to_event(hub: &TestEnv, at: &TestEnv, name: &str, shown: &str, n: usize) -> Samples {
    let mut sub = hub.client().await;
    let _: SubscribeResult = sub
        .call(method::SUBSCRIBE, &SubscribeParams::default())
        .await
        .expect("subscribe");
    let mut hooks = at.client().await;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let event = if i % 2 == 0 {
            "UserPromptSubmit"
        } else {
            "Stop"
        };
        let start = Instant::now();
        let _: HookResult = hooks
            .call(
                method::HOOK,
                &HookParams {
                    session: name.into(),
                    agent: "claude".into(),
                    payload: format!("{{\"hook_event_name\":\"{event}\",\"session_id\":\"x\"}}"),
                },
            )
            .await
            .expect("hook");
        next_event(&mut sub, |e| {
            e.session.as_ref().is_some_and(|s| s.name == shown)
        })
        .await;
        out.push(ms_since(start));
    }
    Samples::new(out)
}

/// An environment whose agents are `claude` stubs that sit idle.
fn env() -> TestEnv {
    let mut env = TestEnv::new();
    let stubs = env.stub_agents(&["claude"], "exec sleep 100000");
    env.prepend_path(&stubs);
    env
}

/// RSS (MiB) 1 s after the hub's first status, and its CPU time (ms) over `secs` idle.
fn hub_cost(hub: &TestEnv, secs: u64) -> (f64, f64) {
    hub.ok(&["status"]);
    let pid = hub.host_pid().expect("hub pid");
    std::thread::sleep(Duration::from_secs(1));
    let rss = rss_mib(pid);
    let (_, cpu0) = wakeups_and_cpu(pid);
    std::thread::sleep(Duration::from_secs(secs));
    let (_, cpu1) = wakeups_and_cpu(pid);
    (rss, cpu1 - cpu0)
}

pub fn figures(samples: usize, reconnects: usize, idle_secs: u64) -> Vec<Figure> {
    let hub = env();
    let Some(sshd) = sshd("canopy-bench remote", &hub.dir.path().join("sshd")) else {
        panic!("the remote group needs sshd (run as root with openssh-server installed)");
    };
    let (alpha, beta) = (env(), env());
    alpha.ok(&["new", "r0", "--agent", "claude"]);
    beta.ok(&["new", "r0", "--agent", "claude"]);

    // The hub alone first: its cost without remote hosts.
    let (rss0, cpu0) = hub_cost(&hub, idle_secs);
    hub.ok(&["host", "stop"]);
    let config = sshd.host_config("alpha", "alpha", &sshd.wrapper("alpha", &alpha))
        + &sshd.host_config("beta", "beta", &sshd.wrapper("beta", &beta));
    hub.write_config(&config);
    // After the restart: a session of the previous hub would be exited.
    hub.ok(&["new", "l0", "--agent", "claude"]);
    for name in ["alpha:r0", "beta:r0"] {
        wait_for(name, WAIT, || {
            hub.sessions().iter().any(|s| s.name == name).then_some(())
        });
    }
    let (rss2, cpu2) = hub_cost(&hub, idle_secs);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = runtime.block_on(hook_to_event(&hub, &hub, "l0", "l0", samples));
    let remote = runtime.block_on(hook_to_event(&hub, &alpha, "r0", "alpha:r0", samples));

    // Reconnect: kill alpha's ssh child, time until its link is live again.
    let control = hub.paths.control_path("alpha");
    let back = runtime.block_on(async {
        let mut sub = hub.client().await;
        let _: SubscribeResult = sub
            .call(method::SUBSCRIBE, &SubscribeParams::default())
            .await
            .expect("subscribe");
        let mut out = Vec::with_capacity(reconnects);
        for _ in 0..reconnects {
            let pid = wait_for("alpha's ssh child", WAIT, || ssh_child(&hub, &control));
            let start = Instant::now();
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let live = |e: &Event| {
                e.kind == EventKind::HostChanged
                    && e.host
                        .as_ref()
                        .is_some_and(|h| h.name == "alpha" && h.state == LinkState::Live)
            };
            tokio::time::timeout(WAIT, next_event(&mut sub, live))
                .await
                .expect("alpha live again");
            out.push(ms_since(start));
        }
        Samples::new(out)
    });

    let hook_method = format!(
        "{samples} `hook` requests alternating UserPromptSubmit/Stop on one idle session, from the request to the `event` at a subscriber of the local hub; remote: the session runs on host `alpha`, reached by `ssh` to an sshd on 127.0.0.1 (`canopy stdio` there)"
    );
    let mut figures = vec![];
    for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
        figures.push(Figure::new(
            format!("remote hook → state change at a local subscriber, loopback ssh ({label})"),
            remote.p(q),
            "ms",
            Target::Below(50.0),
            hook_method.clone(),
        ));
        figures.push(Figure::new(
            format!("local hook → state change at a subscriber, same run ({label})"),
            local.p(q),
            "ms",
            Target::Baseline,
            hook_method.clone(),
        ));
    }
    let cost = format!(
        "the hub with 2 remote hosts (alpha, beta; 1 idle session each, default 5 s heartbeat) against the same hub without hosts, divided by 2; RSS from /proc 1 s after `status`, CPU utime+stime over {idle_secs} s idle"
    );
    figures.push(Figure::new(
        "hub memory per remote host",
        (rss2 - rss0) / 2.0,
        "MiB",
        Target::Below(5.0),
        format!("{cost}; hub alone {rss0:.1} MiB"),
    ));
    figures.push(Figure::new(
        format!("hub CPU time per remote host in {idle_secs} s idle"),
        (cpu2 - cpu0) / 2.0,
        "ms",
        Target::Below(idle_secs as f64 * 10.0),
        cost,
    ));
    figures.push(Figure::new(
        "reconnect after a killed ssh link (median)",
        back.median(),
        "ms",
        Target::Below(5000.0),
        format!(
            "{} times: SIGKILL to alpha's ssh child, until the `host_changed` event saying it is live again at a subscriber (backoff starts at 1 s, jittered); max {:.0} ms",
            back.len(),
            back.p(1.0)
        ),
    ));
    figures
}
