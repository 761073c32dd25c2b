//! Usage end to end: the real `canopy` binary runs the fake agents, which write
//! real-format transcripts (and OpenCode events); `ls`, `inspect`, `report` and the
//! records show tokens, cost, context, tool calls, time and lines changed.

use std::time::Duration;

use canopy_protocol::session::Tokens;
use canopy_protocol::{Session, StateKind};
use canopy_tests::{TestEnv, wait_for};

const WAIT: Duration = Duration::from_secs(20);

/// Wait until session `name`'s record satisfies `check`.
fn wait_usage(env: &TestEnv, name: &str, what: &str, check: impl Fn(&Session) -> bool) -> Session {
    wait_for(&format!("{name}: {what}"), WAIT, || {
        let s = env.session(name);
        check(&s).then_some(s)
    })
}

/// A fake Claude session on `model`, given `prompt`.
fn start_claude(env: &TestEnv, name: &str, prompt: &str, model: &str) {
    env.ok(&[
        "new", name, "--agent", "claude", "--prompt", prompt, "--", "--model", model,
    ]);
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Two API responses (one per tool step, one closing), each 1000 in / 50 out / 2000
/// cache write 5m / 3000 cache read, on claude-sonnet-4-5 at 3 / 15 / 3.75 / 0.3 $/MTok.
#[test]
fn claude_usage_from_its_transcript_and_lines_from_the_worktree() {
    let env = TestEnv::with_fake_agents();
    start_claude(&env, "a", "hello @tool:Bash:ls", "claude-sonnet-4-5");
    let s = wait_usage(&env, "a", "two responses metered", |s| {
        s.usage.tokens.input == 2000
    });
    let u = &s.usage;
    assert_eq!(
        u.tokens,
        Tokens {
            input: 2000,
            output: 100,
            cache_write_5m: 4000,
            cache_write_1h: 0,
            cache_read: 6000,
            reasoning: 0,
        },
        "one response is written as two lines: counted once"
    );
    assert_eq!(u.model.as_deref(), Some("claude-sonnet-4-5"));
    assert!(
        close(u.cost_usd.unwrap_or(-1.0), 0.0243),
        "{:?}",
        u.cost_usd
    );
    assert_eq!(u.tool_calls.total, 1);
    assert_eq!(u.tool_calls.by_tool.get("Bash"), Some(&1));
    assert_eq!(u.context.used, 6000);
    assert_eq!(u.context.window, 200_000);

    // Lines changed: a new file in the worktree is seen without any hook.
    std::fs::write(env.worktree("a").join("notes.txt"), "one\ntwo\nthree\n").expect("write");
    let s = wait_usage(&env, "a", "lines counted", |s| s.usage.lines_added == 3);
    assert!(s.usage.active_ms > 0, "{:?}", s.usage);
    assert!(s.usage.wall_ms >= s.usage.active_ms, "{:?}", s.usage);

    let page = env.ok(&["inspect", "a"]);
    assert!(page.contains("$0.0243"), "{page}");
    assert!(page.contains("Bash 1"), "{page}");
    assert!(page.contains("+3 -0"), "{page}");
    let ls = env.ok(&["ls"]);
    assert!(ls.contains("$0.02") && ls.contains("3%"), "{ls}");

    // Finished sessions stay in the report.
    env.ok(&["send", "a", "@exit", "--enter"]);
    wait_usage(&env, "a", "exited", |s| s.state.kind == StateKind::Exited);
    let report: serde_json::Value =
        serde_json::from_str(&env.ok(&["report", "--by", "agent", "--json"])).expect("json");
    assert_eq!(report[0]["key"], "claude", "{report}");
    assert_eq!(report[0]["sessions"], 1, "{report}");
    assert!(
        close(report[0]["cost_usd"].as_f64().unwrap_or(-1.0), 0.0243),
        "{report}"
    );
    let table = env.ok(&["report", "--since", "2026-01-01"]);
    assert!(table.contains("$0.02"), "{table}");
}

#[test]
fn an_unknown_model_has_an_unknown_cost_not_zero() {
    let env = TestEnv::with_fake_agents();
    start_claude(&env, "u", "hello", "claude-mystery-9");
    let s = wait_usage(&env, "u", "one response metered", |s| {
        s.usage.tokens.input == 1000
    });
    assert_eq!(s.usage.cost_usd, None);
    assert_eq!(s.usage.unpriced_models, ["claude-mystery-9"]);
    let page = env.ok(&["inspect", "u"]);
    assert!(
        page.contains("unknown (no price for claude-mystery-9"),
        "{page}"
    );
}

#[test]
fn prices_from_the_config_replace_the_table() {
    let env = TestEnv::with_fake_agents();
    env.write_config(
        "[prices.\"claude-mystery-9\"]\ninput = 1.0\noutput = 2.0\ncache_write_5m = 1.0\ncache_read = 0.5\ncontext_window = 100000\n",
    );
    start_claude(&env, "p", "hello", "claude-mystery-9");
    let s = wait_usage(&env, "p", "one response metered", |s| {
        s.usage.tokens.input == 1000
    });
    // 1000×1 + 50×2 + 2000×1 + 3000×0.5 per million.
    assert!(
        close(s.usage.cost_usd.unwrap_or(-1.0), 0.0046),
        "{:?}",
        s.usage
    );
    assert_eq!(s.usage.context.window, 100_000);
}

/// Codex, Gemini and OpenCode: two responses each (one tool step, one closing), read
/// from the rollout, the chat file and the event stream. The fakes write 4000 in (3000
/// of them cached) / 50 out per response for Codex and Gemini, and 1000 in / 50 out /
/// 2000 cache write / 3000 cache read for OpenCode.
#[test]
fn codex_gemini_and_opencode_usage() {
    let env = TestEnv::with_fake_agents();
    for (name, agent) in [("c", "codex"), ("g", "gemini"), ("o", "opencode")] {
        env.ok(&[
            "new",
            name,
            "--agent",
            agent,
            "--prompt",
            "hello @tool:Bash:ls",
        ]);
    }
    for (name, input, cache_read, cache_write) in [
        ("c", 2000, 6000, 0),
        ("g", 2000, 6000, 0),
        ("o", 2000, 6000, 4000),
    ] {
        let s = wait_usage(&env, name, "two responses metered", |s| {
            s.usage.tokens.input == input && s.usage.tool_calls.total == 1
        });
        let u = &s.usage;
        assert_eq!(u.tokens.cache_read, cache_read, "{name}: {u:?}");
        assert_eq!(u.tokens.cache_write_5m, cache_write, "{name}: {u:?}");
        assert!(u.tokens.output >= 100, "{name}: {u:?}");
        assert!(u.cost_usd.is_some_and(|c| c > 0.0), "{name}: {u:?}");
        assert!(u.context.window > 0 && u.context.used > 0, "{name}: {u:?}");
    }
}
