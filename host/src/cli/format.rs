//! Human-readable output: the session table, states, durations and costs.

use canopy_protocol::params::{Explanation, HostLink, Status};
use canopy_protocol::{Health, PullRequest, Session, StateSource};

/// The `canopy ls` table.
pub fn session_table(sessions: &[Session], now_ms: u64) -> String {
    if sessions.is_empty() {
        return "no sessions; start one with `canopy new NAME`\n".to_owned();
    }
    // The host column only where there is more than one host to tell apart.
    let hosts = sessions.iter().any(|s| !s.is_local());
    let header = [
        "HOST", "NAME", "STATE", "AGENT", "BRANCH", "COST", "CTX", "AGE", "PR", "ISSUE",
    ];
    let rows: Vec<[String; 10]> = sessions
        .iter()
        .map(|s| {
            [
                s.host.clone(),
                s.name.clone(),
                match s.stale_since {
                    Some(since) => format!(
                        "{} (stale {})",
                        state_label(s),
                        age(now_ms.saturating_sub(since))
                    ),
                    None => state_label(s),
                },
                s.agent.clone(),
                s.branch.clone(),
                cost(s.usage.cost_usd),
                context(s),
                age(now_ms.saturating_sub(s.created_at)),
                s.pr.as_ref().map_or_else(String::new, pr_label),
                s.task.as_ref().map_or_else(String::new, |t| t.id.clone()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let first = usize::from(!hosts);
    let mut line = |cells: &[String]| {
        let last = cells.len() - 1;
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate().skip(first) {
            if i == last {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        // The issue column is empty for sessions not started from one.
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    out
}

/// `#42` for an open pull request, `!7 merged` for a merged GitLab merge request.
pub fn pr_label(pr: &PullRequest) -> String {
    let mark = if pr.provider == "gitlab" { '!' } else { '#' };
    match pr.state.as_str() {
        "open" => format!("{mark}{}", pr.number),
        state => format!("{mark}{} {state}", pr.number),
    }
}

/// `idle`, `tool(Bash)`, `exited(0)`.
pub fn state_label(s: &Session) -> String {
    let kind = s.state.kind.as_str();
    match (&s.state.tool, s.exit_code) {
        (Some(tool), _) => format!("{kind}({tool})"),
        (None, Some(code)) if !s.is_running() => format!("{kind}({code})"),
        _ => kind.to_owned(),
    }
}

pub fn cost(usd: Option<f64>) -> String {
    usd.map_or_else(|| "-".to_owned(), |c| format!("${c:.2}"))
}

fn context(s: &Session) -> String {
    if s.usage.context.window == 0 {
        "-".to_owned()
    } else {
        format!("{:.0}%", s.usage.context.percent)
    }
}

/// `45s`, `12m`, `3h`, `2d`.
pub fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// The `canopy status` summary.
pub fn status(st: &Status, now_ms: u64) -> String {
    let mut out = format!(
        "host: pid {} (canopy {}), up {}, socket {}\n",
        st.host.pid,
        st.host.version,
        age(now_ms.saturating_sub(st.host.started_at)),
        st.host.socket
    );
    let counts: Vec<String> = st.counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    out.push_str(&format!(
        "sessions: {}{}\n",
        st.sessions.len(),
        if counts.is_empty() {
            String::new()
        } else {
            format!(" ({})", counts.join(", "))
        }
    ));
    out.push_str(&format!("cost: ${:.2}\n", st.total_cost_usd));
    for link in &st.hosts {
        out.push_str(&host_line(link, now_ms));
    }
    for notice in &st.notices {
        out.push_str(&format!("notice: {notice}\n"));
    }
    out
}

/// `host devbox: live for 3m` (and why, when it is down).
pub fn host_line(link: &HostLink, now_ms: u64) -> String {
    let detail = link
        .detail
        .as_deref()
        .map(|d| format!(" — {d}"))
        .unwrap_or_default();
    format!(
        "host {}: {} for {}{detail}\n",
        link.name,
        link.state.as_str(),
        age(now_ms.saturating_sub(link.since))
    )
}

/// The `canopy explain` report.
pub fn explanation(e: &Explanation, now_ms: u64) -> String {
    let mut out = String::new();
    let state = match &e.state.tool {
        Some(t) => format!("{}({t})", e.state.kind),
        None => e.state.kind.to_string(),
    };
    out.push_str(&format!(
        "{}: {state}{} — for {}, from {}\n",
        e.name,
        e.state
            .detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default(),
        age(now_ms.saturating_sub(e.state.since)),
        source(e.state.source)
    ));
    out.push_str(&format!(
        "health: {} — {}\n",
        health(e.health),
        e.health_detail
    ));
    if let Some(screen) = &e.screen {
        out.push_str(&format!("screen: {screen}\n"));
    }
    if e.signals.is_empty() {
        out.push_str("no signals recorded\n");
        return out;
    }
    out.push_str("recent signals (newest last):\n");
    for s in &e.signals {
        let ago = now_ms.saturating_sub(s.at) as f64 / 1000.0;
        let detail = s
            .detail
            .as_deref()
            .map(|d| format!(" [{d}]"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {ago:>7.1}s ago  {:<7} {}{detail} {}\n",
            source(s.source),
            s.event,
            s.outcome
        ));
    }
    out
}

fn source(s: StateSource) -> &'static str {
    match s {
        StateSource::Host => "host",
        StateSource::Hook => "hook",
        StateSource::Screen => "screen",
        StateSource::Transcript => "transcript",
        StateSource::Process => "process",
    }
}

fn health(h: Health) -> &'static str {
    match h {
        Health::Ok => "ok",
        Health::Degraded => "degraded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_round_down_to_one_unit() {
        assert_eq!(age(59_999), "59s");
        assert_eq!(age(60_000), "1m");
        assert_eq!(age(7_200_000), "2h");
        assert_eq!(age(3 * 86_400_000), "3d");
    }

    #[test]
    fn unknown_cost_is_a_dash_not_zero() {
        assert_eq!(cost(None), "-");
        assert_eq!(cost(Some(0.0)), "$0.00");
        assert_eq!(cost(Some(1.234)), "$1.23");
    }
}
