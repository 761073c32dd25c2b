//! Hooks: `canopy hook` wall time with the host up and down, and hook → state change at
//! a subscribed client as the number of sessions grows.

use std::process::{Command, Stdio};
use std::time::Instant;

use canopy_protocol::params::{HookParams, HookResult, SubscribeParams, SubscribeResult};
use canopy_protocol::{Message, method};
use canopy_tests::{TestEnv, spawn_with_stdin};

use super::{Figure, Samples, Target, ms_since};

fn payload(event: &str) -> String {
    format!("{{\"hook_event_name\":\"{event}\",\"session_id\":\"x\"}}")
}

/// The event for the `i`th sample over `sessions` sessions: each session alternates, so
/// every hook changes its state.
fn event(i: usize, sessions: usize) -> &'static str {
    if (i / sessions).is_multiple_of(2) {
        "UserPromptSubmit"
    } else {
        "Stop"
    }
}

/// Wall time of one `canopy hook` with `body` on stdin, in ms.
fn time_hook(cmd: &mut Command, body: &str) -> f64 {
    let start = Instant::now();
    let mut child = spawn_with_stdin(cmd.stdout(Stdio::null()), body.as_bytes());
    assert!(child.wait().expect("wait").success());
    ms_since(start)
}

/// Latency from a `hook` request to the `event` for that session at another connection
/// subscribed to the host, over sessions `h000`..`h{sessions-1}`, in ms.
async fn hook_to_event(env: &TestEnv, sessions: usize, samples: usize) -> Vec<f64> {
    let mut sub = env.client().await;
    let _: SubscribeResult = sub
        .call(method::SUBSCRIBE, &SubscribeParams::default())
        .await
        .expect("subscribe");
    let mut hooks = env.client().await;
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let name = format!("h{:03}", i % sessions);
        let start = Instant::now();
        let _: HookResult = hooks
            .call(
                method::HOOK,
                &HookParams {
                    session: name.clone(),
                    agent: "claude".into(),
                    payload: payload(event(i, sessions)),
                },
            )
            .await
            .expect("hook");
        loop {
            match sub.reader.next().await.expect("read") {
                Some(Message::Notification { method, params }) if method == method::EVENT => {
                    let e: canopy_protocol::Event =
                        canopy_protocol::frame::params(&params).expect("event");
                    if e.session.is_some_and(|s| s.name == name) {
                        break;
                    }
                }
                Some(_) => {}
                None => panic!("host went away"),
            }
        }
        out.push(ms_since(start));
    }
    out
}

pub fn figures(session_counts: &[usize], samples: usize) -> Vec<Figure> {
    let mut env = TestEnv::new();
    let stubs = env.stub_agents(&["claude"], "exec sleep 100000");
    env.prepend_path(&stubs);
    env.ok(&["new", "h000", "--agent", "claude"]);

    let runs = samples.min(100);
    let up = Samples::new(
        (0..runs)
            .map(|i| {
                time_hook(
                    &mut env.hook_command("h000", "claude"),
                    &payload(event(i, 1)),
                )
            })
            .collect(),
    );
    let down = Samples::new(
        (0..runs)
            .map(|_| {
                let mut cmd = env.hook_command("h000", "claude");
                cmd.env("CANOPY_SOCKET", env.dir.path().join("no-host.sock"));
                time_hook(&mut cmd, &payload("Stop"))
            })
            .collect(),
    );
    let mut figures = vec![
        Figure::new(
            "`canopy hook` wall time, host up (median)",
            up.median(),
            "ms",
            Target::Below(5.0),
            format!(
                "{} runs of the release binary with a Claude payload on stdin; p95 {:.1} ms",
                up.len(),
                up.p(0.95)
            ),
        ),
        Figure::new(
            "`canopy hook` wall time, host down (median)",
            down.median(),
            "ms",
            Target::Below(100.0),
            format!(
                "{} runs against a socket nobody serves; p95 {:.1} ms; always exit 0",
                down.len(),
                down.p(0.95)
            ),
        ),
    ];

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut created = 1;
    for &n in session_counts {
        // The same host throughout: sessions are added up to each count.
        for i in created..n {
            env.ok(&["new", &format!("h{i:03}"), "--agent", "claude"]);
        }
        created = created.max(n);
        let lat = Samples::new(runtime.block_on(hook_to_event(&env, n, samples)));
        let method = format!(
            "{samples} `hook` requests alternating UserPromptSubmit/Stop round-robin over the sessions (agents idle); from the request to the `event` at another subscribed connection"
        );
        for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
            figures.push(Figure::new(
                format!("hook → state change at a subscriber, {n} sessions ({label})"),
                lat.p(q),
                "ms",
                Target::Below(5.0),
                method.clone(),
            ));
        }
    }
    figures
}
