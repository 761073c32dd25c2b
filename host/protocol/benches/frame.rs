//! Framing cost of the messages the host sends most: a `session_changed` event (one per
//! state change, to every subscriber) and an `output` notification (every PTY read, to
//! every attached client). `canopy-bench --only criterion` copies the estimates into
//! BENCHMARKS.md.

use std::hint::black_box;

use canopy_protocol::frame::{self, output_frame};
use canopy_protocol::{Decoder, Event, EventKind, Message, Session, method};
use criterion::{Criterion, criterion_group, criterion_main};

/// A session as `status` shows one mid-task: a tool running, usage on two models.
fn session() -> Session {
    let tokens = serde_json::json!({"input": 1200, "output": 5400, "cache_write_5m": 20000, "cache_write_1h": 0, "cache_read": 310000, "reasoning": 0});
    let model = serde_json::json!({"tokens": tokens, "cost_usd": 0.42, "responses": 37});
    serde_json::from_value(serde_json::json!({
        "name": "fix-login",
        "agent": "claude",
        "command": ["claude", "--settings", "/run/user/1000/canopy/claude-fix-login.json"],
        "repo": "/home/dev/src/shop",
        "worktree": "/home/dev/src/shop.worktrees/fix-login",
        "branch": "canopy/fix-login",
        "base": "main",
        "base_commit": "4f1c2a9e0b7d3c5a8e6f1b2d4c6a8e0f2b4d6c8a",
        "created_at": 1_764_000_000_000u64,
        "state": {"kind": "tool", "tool": "Bash", "detail": "cargo test -p shop-auth", "since": 1_764_000_300_000u64, "source": "hook"},
        "health": "ok",
        "pid": 41235,
        "agent_session_id": "0b7d3c5a-8e6f-4b2d-9c6a-8e0f2b4d6c8a",
        "usage": {
            "model": "claude-sonnet-4-5",
            "cost_usd": 0.61,
            "tokens": tokens,
            "by_model": {"claude-sonnet-4-5": model, "claude-haiku-4-5": model},
            "context": {"used": 64000, "window": 200000, "percent": 32.0},
            "tool_calls": {"total": 41, "by_tool": {"Bash": 20, "Read": 15, "Edit": 6}},
            "wall_ms": 300000, "active_ms": 210000, "lines_added": 120, "lines_removed": 31
        }
    }))
    .expect("a valid session")
}

fn event() -> Event {
    Event {
        seq: 1234,
        kind: EventKind::SessionChanged,
        session: Some(session()),
        host: None,
    }
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    let event = event();
    g.bench_function("encode_event", |b| {
        b.iter(|| frame::encode_notification(method::EVENT, black_box(&event)).expect("encode"))
    });

    let bytes = frame::encode_notification(method::EVENT, &event).expect("encode");
    g.bench_function("decode_event", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new();
            decoder.feed(black_box(&bytes));
            let frame = decoder.next_frame().expect("valid").expect("complete");
            frame.params::<Event>().expect("event")
        })
    });

    // The value-tree path typed events replaced (issue 22), still what generic
    // `Message`s take: the ratio shows what typed encoding saves.
    g.bench_function("encode_event_value_tree", |b| {
        b.iter(|| {
            Message::notification(method::EVENT, black_box(&event))
                .expect("encode")
                .encode()
        })
    });
    g.bench_function("decode_event_value_tree", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new();
            decoder.feed(black_box(&bytes));
            match decoder.next_message() {
                Ok(Some(Message::Notification { params, .. })) => {
                    frame::params::<Event>(&params).expect("event")
                }
                other => panic!("not an event: {other:?}"),
            }
        })
    });

    // 4 KiB: a typical PTY read. The direct writer against the generic value-tree path
    // it replaces, so the ratio shows what writing it by hand saves.
    let data = vec![b'x'; 4096];
    g.bench_function("output_4k_direct", |b| {
        b.iter(|| output_frame(black_box("fix-login"), black_box(&data)))
    });
    let params = serde_json::json!({"name": "fix-login"});
    g.bench_function("output_4k_generic", |b| {
        b.iter(|| {
            let mut map = frame::to_value(black_box(&params)).expect("map");
            if let rmpv::Value::Map(entries) = &mut map {
                entries.push(("data".into(), rmpv::Value::Binary(black_box(&data).clone())));
            }
            Message::Notification {
                method: method::OUTPUT.to_owned(),
                params: vec![map],
            }
            .encode()
        })
    });
    g.finish();
}

criterion_group!(frame, benches);
criterion_main!(frame);
