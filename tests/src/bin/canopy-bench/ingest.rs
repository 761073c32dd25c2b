//! Usage ingestion: Canopy's whole-corpus Claude transcript ingestion against
//! `ccusage session --json --offline` on the same generated corpus, and the cost of one
//! small append to a large transcript.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use canopy::usage::{Meter, Prices, claude::ClaudeTranscript, tail::Tail};

use super::{Figure, Samples, Target};

const SESSIONS: usize = 2000;
const RUNS: usize = 3;

pub fn figures(total_mb: usize) -> Vec<Figure> {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("claude");
    let (files, bytes) = generate(&config, total_mb * 1024 * 1024);
    let mb = bytes as f64 / 1e6;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let canopy = Samples::new((0..RUNS).map(|_| ingest(&files, threads)).collect()).median();
    let ccusage = ccusage_bin().map(|bin| {
        Samples::new(
            (0..RUNS)
                .map(|_| run_ccusage(&bin, &config, dir.path()))
                .collect(),
        )
        .median()
    });
    let append = append_cost(dir.path());

    let canopy_rate = mb / canopy;
    let mut out = vec![Figure::new(
        format!("usage ingestion, {mb:.0} MB Claude corpus"),
        canopy_rate,
        "MB/s",
        Target::Compared {
            text: "≥ ccusage",
            met: ccusage.is_none_or(|c| canopy <= c),
        },
        format!(
            "median of {RUNS}: {SESSIONS} generated real-format sessions; every file through Tail + ClaudeTranscript + Meter, files spread over {threads} threads; {canopy:.2} s"
        ),
    )];
    if let Some(c) = ccusage {
        out.push(Figure::new(
            "ccusage ingestion of the same corpus",
            mb / c,
            "MB/s",
            Target::Baseline,
            format!(
                "median of {RUNS}: `ccusage session --json --offline` 20.0.24 with CLAUDE_CONFIG_DIR on the corpus, process start to exit (it uses every core); {c:.2} s"
            ),
        ));
        out.push(Figure::new(
            "ingestion ratio Canopy / ccusage",
            c / canopy,
            "×",
            Target::AtLeast(1.0),
            "same run, same files (page cache warm for both)",
        ));
    }
    out.push(Figure::new(
        "1 KB append to a 100 MB transcript, read and metered (median)",
        append * 1e3,
        "ms",
        Target::Below(1.0),
        "Tail::read_new after the whole file was read once; 20 appends of one ~1 KB assistant line (tool_use)",
    ));
    out
}

fn ccusage_bin() -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("realcli/bin/ccusage");
    bin.exists().then_some(bin)
}

fn run_ccusage(bin: &Path, config: &Path, home: &Path) -> f64 {
    let start = Instant::now();
    let out = Command::new(bin)
        .args(["session", "--json", "--offline"])
        .env("HOME", home)
        .env("CLAUDE_CONFIG_DIR", config)
        .output()
        .expect("run ccusage");
    let took = start.elapsed().as_secs_f64();
    assert!(out.status.success(), "ccusage failed");
    took
}

/// Every file through Tail + ClaudeTranscript + Meter, the files shared out over threads.
fn ingest(files: &[PathBuf], threads: usize) -> f64 {
    let prices = Arc::new(Prices::builtin());
    let start = Instant::now();
    let per = files.len().div_ceil(threads);
    let responses: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(per)
            .map(|chunk| {
                let prices = prices.clone();
                s.spawn(move || {
                    let mut n = 0;
                    for f in chunk {
                        let mut meter = Meter::new(prices.clone());
                        let mut tail = Tail::new(f.clone(), Box::new(ClaudeTranscript::default()));
                        tail.read_new(&mut meter).expect("read");
                        n += meter
                            .usage()
                            .by_model
                            .values()
                            .map(|m| m.responses)
                            .sum::<u64>();
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    let took = start.elapsed().as_secs_f64();
    assert!(responses > 0, "the corpus was metered");
    took
}

/// `sessions` files of real-format lines totalling about `bytes`.
fn generate(config: &Path, bytes: usize) -> (Vec<PathBuf>, u64) {
    let per_session = bytes / SESSIONS;
    let mut files = Vec::with_capacity(SESSIONS);
    let mut total = 0;
    for i in 0..SESSIONS {
        let project = config.join(format!("projects/-home-dev-proj{}", i % 40));
        std::fs::create_dir_all(&project).expect("mkdir");
        let path = project.join(format!("{:08x}-0000-4000-8000-{:012x}.jsonl", i, i));
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        let mut written = 0;
        let mut turn = 0;
        while written < per_session {
            for line in turn_lines(i, turn) {
                w.write_all(line.as_bytes()).expect("write");
                written += line.len();
            }
            turn += 1;
        }
        w.flush().expect("flush");
        total += written as u64;
        files.push(path);
    }
    (files, total)
}

/// One turn as Claude Code writes it: a prompt, a response of two lines (text and
/// tool_use, same id and usage), a tool result, and a final text response.
fn turn_lines(session: usize, turn: usize) -> Vec<String> {
    let sid = format!("{session:08x}-0000-4000-8000-{session:012x}");
    let head = |uuid: &str| {
        format!(
            r#"{{"parentUuid":"p{uuid}","isSidechain":false,"userType":"external","cwd":"/home/dev/proj","sessionId":"{sid}","version":"2.1.332","gitBranch":"master","uuid":"{uuid}","timestamp":"2026-11-25T10:00:{:02}.000Z","#,
            turn % 60
        )
    };
    let model = ["claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5"][turn % 3];
    let usage = format!(
        r#"{{"input_tokens":{},"cache_creation_input_tokens":2000,"cache_read_input_tokens":{},"output_tokens":{},"output_tokens_details":{{"thinking_tokens":0}},"server_tool_use":{{"web_search_requests":0,"web_fetch_requests":0}},"service_tier":"standard","cache_creation":{{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":2000}},"speed":"standard"}}"#,
        10 + turn,
        3000 + turn * 100,
        50 + turn
    );
    let assistant = |uuid: &str, msg: &str, content: &str| {
        format!(
            r#"{}"type":"assistant","requestId":"req_{msg}","requestedModel":"{model}","message":{{"id":"msg_{msg}","type":"message","role":"assistant","model":"{model}","content":[{content}],"stop_reason":"tool_use","stop_sequence":null,"usage":{usage}}}}}"#,
            head(uuid)
        ) + "\n"
    };
    let k = format!("{session}x{turn}");
    let prose = "The change keeps the public API and adds a bounded cache; the tests cover the edge cases. ".repeat(6);
    let output = "src/lib.rs:12: fn main() { println!(\"hello\"); }\\n".repeat(40);
    vec![
        format!(
            r#"{}"type":"user","message":{{"role":"user","content":"please look at the failing test {turn} and fix it"}}}}"#,
            head(&format!("u{k}"))
        ) + "\n",
        assistant(
            &format!("a{k}"),
            &format!("a{k}"),
            &format!(r#"{{"type":"text","text":"{prose}"}}"#),
        ),
        assistant(
            &format!("b{k}"),
            &format!("a{k}"),
            &format!(
                r#"{{"type":"tool_use","id":"toolu_{k}","name":"Bash","input":{{"command":"cargo test -- t{turn}"}}}}"#
            ),
        ),
        format!(
            r#"{}"type":"user","message":{{"role":"user","content":[{{"tool_use_id":"toolu_{k}","type":"tool_result","content":"{output}","is_error":false}}]}},"toolUseResult":{{"stdout":"{output}","stderr":"","interrupted":false}}}}"#,
            head(&format!("r{k}"))
        ) + "\n",
        assistant(
            &format!("c{k}"),
            &format!("c{k}"),
            &format!(r#"{{"type":"text","text":"{prose}"}}"#),
        ),
    ]
}

/// Median seconds for `read_new` to meter one 1 KB line appended to a 100 MB transcript.
fn append_cost(dir: &Path) -> f64 {
    let path = dir.join("big.jsonl");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        let mut written = 0;
        let mut turn = 0;
        while written < 100_000_000 {
            for line in turn_lines(999_999, turn) {
                w.write_all(line.as_bytes()).expect("write");
                written += line.len();
            }
            turn += 1;
        }
        w.flush().expect("flush");
    }
    let mut meter = Meter::new(Arc::new(Prices::builtin()));
    let mut tail = Tail::new(path.clone(), Box::new(ClaudeTranscript::default()));
    tail.read_new(&mut meter).expect("read");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    let mut times = Vec::new();
    for i in 0..20 {
        // The tool_use line of a response: about 1 KB.
        let line = turn_lines(1_000_000 + i, 0).swap_remove(2);
        file.write_all(line.as_bytes()).expect("append");
        let start = Instant::now();
        assert!(tail.read_new(&mut meter).expect("read"));
        times.push(start.elapsed().as_secs_f64());
    }
    Samples::new(times).median()
}
