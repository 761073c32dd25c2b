//! Canopy's Claude usage against the real ccusage (`tests/realcli/bin/ccusage`, npm
//! ccusage@20.0.24) over the committed corpus `tests/corpus/claude`: per session the
//! token totals must be equal, and the cost equal to the cent for every model ccusage
//! prices. ccusage reports 0 for models it does not price (claude-opus-5-5); for those
//! Canopy's own table is checked instead.
//!
//! `CANOPY_SKIP_REALCLI=1` skips this tier, as for `realcli.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use canopy::usage::{Meter, Prices, Tokens, claude::ClaudeTranscript, tail::Tail};
use canopy_protocol::session::Usage;
use serde_json::Value;

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn corpus() -> PathBuf {
    tests_dir().join("corpus/claude")
}

/// The ccusage binary, or None (with one line) when the real-CLI tier is skipped.
fn ccusage() -> Option<PathBuf> {
    let bin = tests_dir().join("realcli/bin/ccusage");
    if std::env::var_os("CANOPY_SKIP_REALCLI").is_some_and(|v| v == "1") {
        eprintln!("skipping the ccusage comparison: CANOPY_SKIP_REALCLI=1");
        return None;
    }
    if !bin.exists() {
        let status = Command::new("bash")
            .arg(tests_dir().join("realcli/install.sh"))
            .status()
            .expect("run tests/realcli/install.sh");
        assert!(status.success(), "tests/realcli/install.sh failed");
    }
    assert!(bin.exists(), "{} is missing", bin.display());
    Some(bin)
}

/// ccusage's sessions by id.
fn ccusage_sessions(bin: &Path) -> BTreeMap<String, Value> {
    let home = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bin)
        .args(["session", "--json", "--offline"])
        .env("HOME", home.path())
        .env("CLAUDE_CONFIG_DIR", corpus())
        .env("NO_COLOR", "1")
        .output()
        .expect("run ccusage");
    assert!(
        out.status.success(),
        "ccusage failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("ccusage JSON");
    v["session"]
        .as_array()
        .expect("session array")
        .iter()
        .map(|s| (s["period"].as_str().expect("period").to_owned(), s.clone()))
        .collect()
}

/// Canopy's usage of one transcript, read the way the host reads it.
fn canopy_usage(path: &Path) -> Usage {
    let mut meter = Meter::new(Arc::new(Prices::builtin()));
    let mut tail = Tail::new(path.to_owned(), Box::new(ClaudeTranscript::default()));
    tail.read_new(&mut meter).expect("read transcript");
    meter.usage()
}

fn transcripts() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for project in std::fs::read_dir(corpus().join("projects")).expect("corpus") {
        for f in std::fs::read_dir(project.expect("entry").path()).expect("project") {
            let path = f.expect("entry").path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

#[test]
fn claude_usage_matches_ccusage() {
    let Some(bin) = ccusage() else { return };
    let theirs = ccusage_sessions(&bin);
    let files = transcripts();
    assert!(files.len() >= 5, "the corpus has its sessions");
    assert_eq!(theirs.len(), files.len(), "ccusage saw every session");
    let prices = Prices::builtin();
    let mut unpriced_checked = 0;
    for path in &files {
        let id = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("session id");
        let cc = theirs
            .get(id)
            .unwrap_or_else(|| panic!("ccusage has no session {id}"));
        let ours = canopy_usage(path);
        let t = &ours.tokens;
        assert_eq!(t.input, n(cc, "inputTokens"), "{id}: input");
        assert_eq!(t.output, n(cc, "outputTokens"), "{id}: output");
        assert_eq!(
            t.cache_write_5m + t.cache_write_1h,
            n(cc, "cacheCreationTokens"),
            "{id}: cache writes"
        );
        assert_eq!(t.cache_read, n(cc, "cacheReadTokens"), "{id}: cache reads");
        for b in cc["modelBreakdowns"].as_array().expect("breakdowns") {
            let model = b["modelName"].as_str().expect("model");
            let mine = ours
                .by_model
                .get(model)
                .unwrap_or_else(|| panic!("{id}: {model}"));
            let their_cost = b["cost"].as_f64().expect("cost");
            let my_cost = mine
                .cost_usd
                .unwrap_or_else(|| panic!("{id}: {model} unpriced"));
            if their_cost == 0.0 && mine.tokens.total() > 0 {
                // ccusage does not price this model: Canopy's table must.
                let price = prices.get(model).expect("Canopy prices it");
                assert!(
                    (my_cost - expected(price, path, model)).abs() < 1e-9,
                    "{id}: {model}"
                );
                unpriced_checked += 1;
            } else {
                assert_eq!(
                    cents(my_cost),
                    cents(their_cost),
                    "{id}: {model} cost {my_cost} vs {their_cost}"
                );
            }
        }
    }
    assert!(
        unpriced_checked > 0,
        "the corpus has a model ccusage does not price"
    );
}

/// A model's cost computed independently: each distinct response once, priced per
/// response (the corpus's unpriced model has no tiers or duplicates beyond repeated
/// lines of one response).
fn expected(price: &canopy::usage::Price, path: &Path, model: &str) -> f64 {
    let text = std::fs::read_to_string(path).expect("read");
    let mut seen = std::collections::HashSet::new();
    let mut cost = 0.0;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("json line");
        let m = &v["message"];
        if m["model"] != model || !seen.insert(m["id"].as_str().unwrap_or("").to_owned()) {
            continue;
        }
        let u = &m["usage"];
        let get = |k: &str| u[k].as_u64().unwrap_or(0);
        cost += price.cost(&Tokens {
            input: get("input_tokens"),
            output: get("output_tokens"),
            cache_write_5m: u["cache_creation"]["ephemeral_5m_input_tokens"]
                .as_u64()
                .unwrap_or(0),
            cache_write_1h: u["cache_creation"]["ephemeral_1h_input_tokens"]
                .as_u64()
                .unwrap_or(0),
            cache_read: get("cache_read_input_tokens"),
            reasoning: 0,
        });
    }
    cost
}

#[test]
fn the_corpus_covers_what_it_should() {
    let mut all = String::new();
    for f in transcripts() {
        all.push_str(&std::fs::read_to_string(f).expect("read"));
    }
    for needle in [
        "\"claude-sonnet-4-5\"",
        "\"claude-opus-4-5\"",
        "\"claude-haiku-4-5",
        "\"claude-opus-5-5\"",
        "\"isSidechain\":true",
        "\"<synthetic>\"",
        "\"isApiErrorMessage\":true",
        "\"tool_use\"",
        "\"ephemeral_1h_input_tokens\":900",
        "\"input_tokens\":230000",
    ] {
        assert!(all.contains(needle), "corpus lacks {needle}");
    }
    // Tool calls and dedup, checked on Canopy's side alone.
    let usage: Vec<Usage> = transcripts().iter().map(|p| canopy_usage(p)).collect();
    let tools: u64 = usage.iter().map(|u| u.tool_calls.total).sum();
    assert_eq!(tools, 9);
    assert!(
        usage.iter().any(|u| u.cost_usd.is_some_and(|c| c > 5.0)),
        "a tiered session"
    );
}
