//! `canopy inspect` (one session's usage in full) and `canopy report` (usage over all
//! sessions, finished ones included, grouped by day, session or agent).

use std::collections::BTreeMap;

use canopy_protocol::Session;
use canopy_protocol::session::{Tokens, Usage};
use serde::Serialize;
use time::macros::format_description;

use super::error::CliError;
use super::format::{age, cost, pr_label, state_label};

/// How `report` groups sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    /// The UTC day each session started
    Day,
    Session,
    Agent,
    /// The machine each session runs on (`local`, or a `[hosts.NAME]`)
    Host,
}

/// One row of `report`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReportRow {
    pub key: String,
    pub sessions: u64,
    pub tokens: Tokens,
    /// `None` when a session in the group used a model whose price is unknown.
    pub cost_usd: Option<f64>,
    /// The cost of the sessions whose cost is known.
    pub known_cost_usd: f64,
    pub tool_calls: u64,
    pub active_ms: u64,
    pub lines_added: u64,
    pub lines_removed: u64,
}

/// Parse `--since` (`YYYY-MM-DD`, UTC) into Unix milliseconds.
pub fn parse_since(text: &str) -> Result<u64, CliError> {
    let date =
        time::Date::parse(text, format_description!("[year]-[month]-[day]")).map_err(|e| {
            CliError::new(format!("--since {text:?} is not a date: {e}"))
                .with_hint("write it as YYYY-MM-DD, e.g. --since 2026-11-01")
        })?;
    let ms = date.midnight().assume_utc().unix_timestamp() * 1000;
    Ok(u64::try_from(ms).unwrap_or(0))
}

/// The UTC day of a Unix-millisecond time.
fn day(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// Group the sessions started at or after `since`.
pub fn report(sessions: &[Session], since: u64, by: By) -> Vec<ReportRow> {
    let mut rows: BTreeMap<String, ReportRow> = BTreeMap::new();
    for s in sessions.iter().filter(|s| s.created_at >= since) {
        let key = match by {
            By::Day => day(s.created_at),
            By::Session => s.name.clone(),
            By::Agent => s.agent.clone(),
            By::Host => s.host.clone(),
        };
        let row = rows.entry(key.clone()).or_insert_with(|| ReportRow {
            key,
            cost_usd: Some(0.0),
            ..ReportRow::default()
        });
        let u = &s.usage;
        row.sessions += 1;
        row.tokens.add(&u.tokens);
        row.known_cost_usd += u.cost_usd.unwrap_or(0.0);
        row.cost_usd = row.cost_usd.zip(u.cost_usd).map(|(a, b)| a + b);
        row.tool_calls += u.tool_calls.total;
        row.active_ms += u.active_ms;
        row.lines_added += u.lines_added;
        row.lines_removed += u.lines_removed;
    }
    rows.into_values().collect()
}

/// The `report` table, with a total line.
pub fn report_table(rows: &[ReportRow], by: By) -> String {
    if rows.is_empty() {
        return "no sessions in that period\n".to_owned();
    }
    let first = match by {
        By::Day => "DAY",
        By::Session => "SESSION",
        By::Agent => "AGENT",
        By::Host => "HOST",
    };
    let header = [
        first, "SESSIONS", "COST", "INPUT", "OUTPUT", "CACHE-R", "CACHE-W", "TOOLS", "ACTIVE",
        "LINES",
    ];
    let cells = |r: &ReportRow| -> Vec<String> {
        vec![
            r.key.clone(),
            r.sessions.to_string(),
            group_cost(r),
            count(r.tokens.input),
            count(r.tokens.output),
            count(r.tokens.cache_read),
            count(r.tokens.cache_write_5m + r.tokens.cache_write_1h),
            r.tool_calls.to_string(),
            age(r.active_ms),
            format!("+{} -{}", r.lines_added, r.lines_removed),
        ]
    };
    let mut total = ReportRow {
        key: "total".into(),
        cost_usd: Some(0.0),
        ..ReportRow::default()
    };
    for r in rows {
        total.sessions += r.sessions;
        total.tokens.add(&r.tokens);
        total.known_cost_usd += r.known_cost_usd;
        total.cost_usd = total.cost_usd.zip(r.cost_usd).map(|(a, b)| a + b);
        total.tool_calls += r.tool_calls;
        total.active_ms += r.active_ms;
        total.lines_added += r.lines_added;
        total.lines_removed += r.lines_removed;
    }
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    table.extend(rows.iter().map(cells));
    table.push(cells(&total));
    align(&table)
}

/// A group's cost; with an unpriced model in it, the known part and a `+?`.
fn group_cost(r: &ReportRow) -> String {
    match r.cost_usd {
        Some(c) => format!("${c:.2}"),
        None => format!("${:.2}+?", r.known_cost_usd),
    }
}

/// `1234` → `1.2k`, `3400000` → `3.4M`.
fn count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// Left-aligned columns, two spaces apart.
fn align(rows: &[Vec<String>]) -> String {
    let mut widths = vec![0; rows.first().map_or(0, Vec::len)];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The `inspect` page of one session.
pub fn inspect(s: &Session, now_ms: u64) -> String {
    let u = &s.usage;
    let mut out = format!(
        "{}: {} — {} on {}, started {} ago\n",
        s.name,
        state_label(s),
        s.agent,
        s.branch,
        age(now_ms.saturating_sub(s.created_at))
    );
    if let Some(task) = &s.task {
        out.push_str(&format!(
            "task:     {} {} ({})\n",
            task.id, task.title, task.url
        ));
    }
    if let Some(pr) = &s.pr {
        out.push_str(&format!("pr:       {} {}\n", pr_label(pr), pr.url));
    }
    if let Some(radar) = &s.radar {
        if !radar.shared_files.is_empty() {
            out.push_str(&format!(
                "shared:   {} (also changed by {})\n",
                radar.shared_files.join(", "),
                radar.shared_with.join(", ")
            ));
        }
        if !radar.conflicts.is_empty() {
            out.push_str(&format!(
                "conflict: {} with {}\n",
                radar.conflicts.join(", "),
                s.base
            ));
        }
    }
    if let Some(url) = &s.env.url {
        out.push_str(&format!("url:      {url}\n"));
    }
    if let Some([first, last]) = s.env.ports {
        out.push_str(&format!("ports:    {first}-{last}\n"));
    }
    out.push_str(&format!(
        "model:    {}\n",
        u.model.as_deref().unwrap_or("unknown yet")
    ));
    out.push_str(&format!("cost:     {}\n", cost_line(u)));
    out.push_str(&format!("tokens:   {}\n", tokens_line(&u.tokens)));
    for (model, m) in u.by_model.iter().filter(|_| u.by_model.len() > 1) {
        out.push_str(&format!(
            "  {model}: {} — {} in {} responses\n",
            cost(m.cost_usd),
            tokens_line(&m.tokens),
            m.responses
        ));
    }
    out.push_str(&format!("context:  {}\n", context_line(u)));
    out.push_str(&format!("tools:    {}\n", tools_line(u)));
    out.push_str(&format!(
        "time:     {} wall, {} active\n",
        // `wall_ms` is as of the last usage report; a running session's clock goes on.
        age(if s.is_running() {
            now_ms.saturating_sub(s.created_at)
        } else {
            u.wall_ms
        }),
        age(u.active_ms)
    ));
    out.push_str(&format!(
        "lines:    +{} -{} against {}\n",
        u.lines_added,
        u.lines_removed,
        short(&s.base_commit)
    ));
    out
}

fn cost_line(u: &Usage) -> String {
    match u.cost_usd {
        Some(c) => format!("${c:.4}"),
        // Nothing metered yet: no model to price.
        None if u.unpriced_models.is_empty() => "unknown yet".into(),
        None => format!(
            "unknown (no price for {}; add one under [prices] in config.toml)",
            u.unpriced_models.join(", ")
        ),
    }
}

fn tokens_line(t: &Tokens) -> String {
    let mut parts = vec![
        format!("{} in", count(t.input)),
        format!("{} out", count(t.output)),
    ];
    if t.reasoning > 0 {
        parts.push(format!("({} reasoning)", count(t.reasoning)));
    }
    if t.cache_read > 0 {
        parts.push(format!("{} cache read", count(t.cache_read)));
    }
    if t.cache_write_5m > 0 {
        parts.push(format!("{} cache write 5m", count(t.cache_write_5m)));
    }
    if t.cache_write_1h > 0 {
        parts.push(format!("{} cache write 1h", count(t.cache_write_1h)));
    }
    parts.join(", ")
}

fn context_line(u: &Usage) -> String {
    match u.context.window {
        0 if u.context.used == 0 => "unknown yet".to_owned(),
        0 => format!("{} tokens (window unknown)", count(u.context.used)),
        w => format!(
            "{} of {} ({:.0}%)",
            count(u.context.used),
            count(w),
            u.context.percent
        ),
    }
}

fn tools_line(u: &Usage) -> String {
    if u.tool_calls.total == 0 {
        return "none".to_owned();
    }
    let mut by: Vec<(&String, &u64)> = u.tool_calls.by_tool.iter().collect();
    by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let list: Vec<String> = by.iter().map(|(t, n)| format!("{t} {n}")).collect();
    format!("{} ({})", u.tool_calls.total, list.join(", "))
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_protocol::{State, StateKind, StateSource};

    fn session(name: &str, agent: &str, created_at: u64, cost: Option<f64>) -> Session {
        Session {
            name: name.into(),
            host: canopy_protocol::LOCAL_HOST.into(),
            stale_since: None,
            agent: agent.into(),
            command: Vec::new(),
            repo: "/r".into(),
            worktree: format!("/r.worktrees/{name}"),
            branch: format!("canopy/{name}"),
            base: "main".into(),
            base_commit: "0123456789abcdef".into(),
            created_at,
            state: State::new(StateKind::Exited, StateSource::Process, created_at),
            health: Default::default(),
            pid: None,
            agent_session_id: None,
            exit_code: Some(0),
            usage: Usage {
                cost_usd: cost,
                unpriced_models: cost.map_or_else(|| vec!["m-x".into()], |_| Vec::new()),
                tokens: Tokens {
                    input: 1000,
                    output: 50,
                    ..Tokens::default()
                },
                lines_added: 3,
                ..Usage::default()
            },
            task: None,
            env: Default::default(),
            comments: Vec::new(),
            pr: None,
            radar: None,
        }
    }

    const DAY: u64 = 86_400_000;

    #[test]
    fn groups_by_day_agent_and_session_from_a_date() {
        let since = parse_since("2026-11-24").expect("date");
        let sessions = [
            session("old", "claude", since - 1, Some(9.0)),
            session("a", "claude", since + 10, Some(1.0)),
            session("b", "codex", since + 20, Some(2.0)),
            session("c", "claude", since + DAY + 5, None),
        ];
        let by_day = report(&sessions, since, By::Day);
        let keys: Vec<&str> = by_day.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["2026-11-24", "2026-11-25"]);
        assert_eq!(by_day[0].sessions, 2);
        assert_eq!(by_day[0].cost_usd, Some(3.0));
        assert_eq!(by_day[0].tokens.input, 2000);
        assert_eq!(
            by_day[1].cost_usd, None,
            "an unpriced model makes it unknown"
        );
        let by_agent = report(&sessions, since, By::Agent);
        assert_eq!(by_agent[0].key, "claude");
        assert_eq!(by_agent[0].known_cost_usd, 1.0);
        assert_eq!(by_agent[0].lines_added, 6);
        assert_eq!(report(&sessions, since, By::Session).len(), 3);
        let table = report_table(&by_agent, By::Agent);
        assert!(table.contains("$1.00+?"), "{table}");
        assert!(
            table.lines().last().unwrap_or("").starts_with("total"),
            "{table}"
        );
    }

    #[test]
    fn a_bad_date_says_how_to_write_it() {
        let err = parse_since("yesterday").expect_err("not a date");
        assert!(err.message.contains("yesterday"), "{err:?}");
    }

    #[test]
    fn inspect_says_why_cost_is_unknown() {
        let page = inspect(&session("c", "claude", 0, None), 1000);
        assert!(page.contains("unknown (no price for m-x"), "{page}");
        assert!(page.contains("+3 -0"), "{page}");
    }
}
