//! Human-readable output: the session table, states, durations and costs.

use canopy_protocol::Session;
use canopy_protocol::params::Status;

/// The `canopy ls` table.
pub fn session_table(sessions: &[Session], now_ms: u64) -> String {
    if sessions.is_empty() {
        return "no sessions; start one with `canopy new NAME`\n".to_owned();
    }
    let header = ["NAME", "STATE", "AGENT", "BRANCH", "COST", "CTX", "AGE"];
    let rows: Vec<[String; 7]> = sessions
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                state_label(s),
                s.agent.clone(),
                s.branch.clone(),
                cost(s.usage.cost_usd),
                context(s),
                age(now_ms.saturating_sub(s.created_at)),
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
    let mut line = |cells: &[String]| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push('\n');
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    out
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
    out
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
