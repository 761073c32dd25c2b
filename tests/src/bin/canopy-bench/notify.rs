//! Notifications: a permission request → the desktop `Notify` call, through a real
//! `dbus-daemon` and the notification server of `canopy_tests::dbus`.

use std::time::{Duration, Instant};

use canopy_protocol::method;
use canopy_protocol::params::{HookParams, HookResult};
use canopy_tests::TestEnv;
use canopy_tests::dbus::{Bus, Call, Notifications};

use super::{Figure, Samples, Target, ms_since};

/// Wait (spinning briefly) until `server` has more than `seen` calls; the newest.
fn next_call(server: &Notifications, seen: usize) -> Call {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let calls = server.calls();
        if calls.len() > seen {
            return calls[calls.len() - 1].clone();
        }
        assert!(Instant::now() < deadline, "no D-Bus call within 5 s");
        std::thread::sleep(Duration::from_micros(200));
    }
}

pub fn figures(samples: usize) -> Vec<Figure> {
    let bus = Bus::start().expect("dbus-daemon is needed for the notify group");
    let server = Notifications::serve(&bus.address);
    let mut env = TestEnv::new();
    let stubs = env.stub_agents(&["claude"], "exec sleep 100000");
    env.prepend_path(&stubs);
    env.set_var("DBUS_SESSION_BUS_ADDRESS", &bus.address);
    // Every request must reach the desktop: no flood guard here.
    env.write_config("[notify]\nper_session_per_minute = 100000\nper_minute = 100000\n");
    env.ok(&["new", "n", "--agent", "claude"]);

    let hook = |event: &str| {
        HookParams {
        session: "n".into(),
        agent: "claude".into(),
        payload: match event {
            "ask" => r#"{"hook_event_name":"Notification","notification_type":"permission_prompt","session_id":"x"}"#.into(),
            _ => r#"{"hook_event_name":"PreToolUse","session_id":"x","tool_name":"Bash","tool_input":{"command":"ls"}}"#.into(),
        },
    }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let lat = runtime.block_on(async {
        let mut client = env.client().await;
        let mut out = Vec::with_capacity(samples);
        for _ in 0..samples {
            let seen = server.calls().len();
            let start = Instant::now();
            let _: HookResult = client.call(method::HOOK, &hook("ask")).await.expect("hook");
            match next_call(&server, seen) {
                Call::Notify { at, .. } => {
                    out.push(at.duration_since(start).as_secs_f64() * 1000.0)
                }
                other => panic!("expected Notify, got {other:?}"),
            }
            // Answered: the notification is withdrawn before the next request.
            let seen = server.calls().len();
            let _: HookResult = client
                .call(method::HOOK, &hook("tool"))
                .await
                .expect("hook");
            next_call(&server, seen);
        }
        out
    });
    let lat = Samples::new(lat);
    let start = Instant::now();
    env.ok(&["notify", "test"]);
    let test_ms = ms_since(start);
    let method = format!(
        "{} permission requests (Claude's permission_prompt hook over the socket, each answered by the next tool's hook); from the hook request to the `Notify` call arriving at a notification server on a private dbus-daemon",
        lat.len()
    );
    vec![
        Figure::new(
            "permission request → desktop notification (p50)",
            lat.median(),
            "ms",
            Target::Below(300.0),
            method.clone(),
        ),
        Figure::new(
            "permission request → desktop notification (p99)",
            lat.p(0.99),
            "ms",
            Target::Below(300.0),
            method,
        ),
        Figure::new(
            "`canopy notify test` wall time",
            test_ms,
            "ms",
            Target::Info,
            "one run, desktop target only, through the same bus and server",
        ),
    ]
}
