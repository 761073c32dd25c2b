//! Rendering: the state as exactly `rows` lines of at most `cols` cells each. Every
//! visible string goes through [`crate::text`], and colours are added after the width
//! is fixed, so nothing ever wraps.

use crate::app::{App, Files, Mode, NEW_FIELDS, Permission};
use crate::model::{Session, StateKind};
use crate::text::{clean, fit, fit_right, truncate};

const RESET: &str = "\x1b[0m";
const REVERSE: &str = "\x1b[7m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";

/// A state's badge: symbol and ANSI colour. Attention states are bold and warm.
pub fn badge(kind: StateKind) -> (char, &'static str) {
    match kind {
        StateKind::Starting => ('◌', "\x1b[34m"),
        StateKind::Idle => ('○', "\x1b[37m"),
        StateKind::Thinking => ('●', "\x1b[36m"),
        StateKind::Tool => ('◆', "\x1b[36m"),
        StateKind::WaitingPermission => ('!', "\x1b[1;33m"),
        StateKind::WaitingInput => ('?', "\x1b[1;33m"),
        StateKind::Compacting => ('◍', "\x1b[35m"),
        StateKind::Error => ('✗', "\x1b[1;31m"),
        StateKind::Exited => ('■', "\x1b[90m"),
        StateKind::Unknown => ('·', ""),
    }
}

/// Order of the states in the header's counts: what needs the user first.
const ORDER: [StateKind; 10] = [
    StateKind::WaitingPermission,
    StateKind::WaitingInput,
    StateKind::Error,
    StateKind::Thinking,
    StateKind::Tool,
    StateKind::Compacting,
    StateKind::Starting,
    StateKind::Idle,
    StateKind::Exited,
    StateKind::Unknown,
];

/// The frame: `rows` lines joined by `\n`, each at most `cols` cells.
pub fn render(app: &App, rows: usize, cols: usize) -> String {
    let lines = frame_lines(app, rows, cols);
    lines.join("\n")
}

/// One styled line: the text is cut to `cols` first, then wrapped in `style`.
fn styled(style: &str, text: &str, cols: usize) -> String {
    if style.is_empty() {
        truncate(text, cols)
    } else {
        format!("{style}{}{RESET}", truncate(text, cols))
    }
}

fn frame_lines(app: &App, rows: usize, cols: usize) -> Vec<String> {
    if rows == 0 || cols == 0 {
        return vec![];
    }
    let mut body: Vec<String> = match app.permission {
        None | Some(Permission::Pending) => vec![
            styled(BOLD, "canopy", cols),
            truncate(
                "Waiting for permission: allow this plugin to run commands",
                cols,
            ),
        ],
        Some(Permission::Denied) => vec![
            styled("\x1b[1;31m", "canopy: permission denied", cols),
            truncate(
                "The sidebar needs to run `canopy` commands and open panes.",
                cols,
            ),
            truncate("Reload the plugin (or its layout) to be asked again.", cols),
        ],
        Some(Permission::Granted) => match app.mode() {
            Mode::List => list(app, rows, cols),
            Mode::Details {
                name,
                explain,
                files,
            } => details(app, name, explain.as_deref(), files, cols),
            Mode::New(form) => {
                let mut l = vec![styled(BOLD, "New session", cols)];
                for (i, label) in NEW_FIELDS.iter().enumerate() {
                    let cursor = if i == form.at { "▏" } else { "" };
                    let text = format!("{label:>5}: {}{cursor}", form.fields[i]);
                    let style = if i == form.at { REVERSE } else { "" };
                    l.push(styled(style, &text, cols));
                }
                l.push(truncate(
                    "Tab/Enter next field, Enter on issue starts",
                    cols,
                ));
                l.push(truncate("Esc cancels; issue is optional", cols));
                l
            }
        },
    };
    // Flash and footer stay at the bottom; the body gives way when rows are few.
    let mut bottom = vec![];
    if let Some(f) = &app.flash {
        bottom.push(styled(DIM, &clean(f), cols));
    }
    if app.permission == Some(Permission::Granted) {
        bottom.push(styled(DIM, footer(app, cols), cols));
    }
    bottom.truncate(rows);
    body.truncate(rows - bottom.len());
    body.resize(rows - bottom.len(), String::new());
    body.extend(bottom);
    body
}

fn footer(app: &App, cols: usize) -> &'static str {
    const LONG: &str = "j/k ⏎ attach n new a approve d deny x stop i info";
    match (app.mode(), LONG.chars().count() <= cols) {
        (Mode::List, true) => LONG,
        (Mode::List, false) => "jk ⏎ n a d x i",
        (Mode::Details { .. }, _) => "i/Esc back",
        (Mode::New(_), _) => "Esc cancel",
    }
}

/// The header: total and a count per state, most urgent first.
fn header(app: &App, cols: usize) -> String {
    let mut plain = format!("canopy {}", app.sessions.len());
    let mut out = format!("{BOLD}canopy{RESET} {}", app.sessions.len());
    for kind in ORDER {
        let n = app.sessions.iter().filter(|s| s.state.kind == kind).count();
        if n == 0 {
            continue;
        }
        let (sym, colour) = badge(kind);
        let piece = format!(" {sym}{n}");
        if plain.chars().count() + piece.chars().count() > cols {
            break;
        }
        plain.push_str(&piece);
        out.push_str(&format!(" {colour}{sym}{n}{RESET}"));
    }
    if plain.chars().count() > cols {
        return truncate(&plain, cols);
    }
    out
}

fn list(app: &App, rows: usize, cols: usize) -> Vec<String> {
    let mut l = vec![header(app, cols)];
    if app.seq.is_none() && app.flash.is_none() {
        l.push(truncate("connecting to canopy…", cols));
        return l;
    }
    if app.sessions.is_empty() {
        l.push(truncate("no sessions; n starts one", cols));
        return l;
    }
    // Keep the selection visible: scroll so it is on screen (header, flash, footer
    // take up to 3 rows).
    let room = rows.saturating_sub(3).max(1);
    let first = app.selected.saturating_sub(room - 1);
    let hosts = host_width(&app.sessions);
    for (i, s) in app.sessions.iter().enumerate().skip(first).take(room) {
        l.push(row(s, i == app.selected, hosts, cols));
    }
    l
}

/// Cost as shown in a row: `?` when a price is unknown (never `$0`).
pub fn cost(s: &Session) -> String {
    match s.usage.cost_usd {
        None => "?".into(),
        Some(c) if c < 10.0 => format!("${c:.2}"),
        Some(c) if c < 1000.0 => format!("${c:.0}"),
        Some(c) => format!("${:.0}k", c / 1000.0),
    }
}

/// Context use: `–` when the window is unknown.
pub fn context(s: &Session) -> String {
    if s.usage.context.window == 0 {
        "–".into()
    } else {
        format!("{:.0}%", s.usage.context.percent)
    }
}

/// The width of the host column: 0 (no column) while every session is local, so a
/// single machine's pane looks as it always did.
pub fn host_width(sessions: &[Session]) -> usize {
    if sessions.iter().all(Session::is_local) {
        return 0;
    }
    let widest = sessions.iter().map(|s| s.host.chars().count()).max();
    widest.unwrap_or(0).clamp(5, 10)
}

/// One session row. Columns drop off right to left as the pane narrows: issue, then
/// context, cost, agent and host (`hosts` wide, when more than one machine has
/// sessions); the badge and the name always stay. A session of a host whose link is
/// down says `(stale)` after its name.
pub fn row(s: &Session, selected: bool, hosts: usize, cols: usize) -> String {
    let (sym, colour) = badge(s.state.kind);
    let issue = s.task.as_ref().map(|t| t.id.as_str()).unwrap_or("");
    // (width, text, right-aligned) of the optional columns, in the order they drop.
    let host = [(hosts, s.host.clone(), false)];
    let optional = [
        (8, s.agent.clone(), false),
        (6, cost(s), true),
        (4, context(s), true),
        (10, issue.to_string(), false),
    ];
    let mut name_width = cols.saturating_sub(2);
    let mut shown = 0;
    let columns = host.iter().filter(|c| c.0 > 0).chain(&optional);
    for (w, _, _) in columns.clone() {
        // Keep at least 10 cells for the name before adding a column.
        if name_width >= w + 1 + 10 {
            name_width -= w + 1;
            shown += 1;
        } else {
            break;
        }
    }
    // With the host in its own column, the name goes without its `HOST:`.
    let name = match s.name.split_once(':') {
        Some((h, short)) if hosts > 0 && shown > 0 && h == s.host => short,
        _ => s.name.as_str(),
    };
    let name = match s.stale_since {
        Some(_) => format!("{name} (stale)"),
        None => name.to_string(),
    };
    let mut text = fit(&name, name_width);
    for (w, t, right) in columns.take(shown) {
        text.push(' ');
        text.push_str(&if *right { fit_right(t, *w) } else { fit(t, *w) });
    }
    let text = truncate(&text, cols.saturating_sub(2));
    if cols < 2 {
        return truncate(&sym.to_string(), cols);
    }
    let on = if selected { REVERSE } else { "" };
    format!("{colour}{sym}{RESET}{on} {text}{RESET}")
}

/// A session's wall time: counted to `now_ms` while it runs (its record holds the time
/// of its last usage report), the recorded figure once it has exited.
fn wall_ms(s: &Session, now_ms: u64) -> u64 {
    if s.state.kind != StateKind::Exited && now_ms > s.created_at {
        now_ms - s.created_at
    } else {
        s.usage.wall_ms
    }
}

fn details(
    app: &App,
    name: &str,
    explain: Option<&str>,
    files: &Files,
    cols: usize,
) -> Vec<String> {
    let Some(s) = app.sessions.iter().find(|s| s.name == name) else {
        return vec![truncate(&format!("{name}: gone"), cols)];
    };
    let u = &s.usage;
    let t = &u.tokens;
    let (sym, _) = badge(s.state.kind);
    let mut state = s.state.kind.to_string();
    if let Some(tool) = &s.state.tool {
        state.push_str(&format!(" {tool}"));
    }
    if s.stale_since.is_some() {
        state.push_str(" (stale: its host's link is down)");
    }
    let tools = u
        .tool_calls
        .by_tool
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut l = vec![
        styled(BOLD, &format!("{sym} {}", s.name), cols),
        truncate(
            &format!(
                "agent   {} ({})",
                s.agent,
                u.model.as_deref().unwrap_or("model ?")
            ),
            cols,
        ),
        truncate(&format!("state   {state}"), cols),
    ];
    if !s.is_local() {
        l.push(truncate(&format!("host    {}", s.host), cols));
    }
    if let Some(d) = &s.state.detail {
        l.push(truncate(&format!("        {d}"), cols));
    }
    l.extend(
        [
            format!("cost    {}", cost(s)),
            format!(
                "tokens  in {} out {} cache r {} w {}",
                t.input,
                t.output,
                t.cache_read,
                t.cache_write_5m + t.cache_write_1h
            ),
            format!(
                "context {} of {} ({})",
                u.context.used,
                u.context.window,
                context(s)
            ),
            format!("tools   {} {}", u.tool_calls.total, tools),
            format!(
                "time    {} wall, {} active",
                duration(wall_ms(s, app.now_ms)),
                duration(u.active_ms)
            ),
            format!("lines   +{} -{}", u.lines_added, u.lines_removed),
        ]
        .iter()
        .map(|x| truncate(x, cols)),
    );
    if let Some(task) = &s.task {
        l.push(truncate(
            &format!("issue   {} {}", task.id, task.title),
            cols,
        ));
    }
    if let Some(url) = &s.env.url {
        l.push(truncate(&format!("url     {url}"), cols));
    }
    l.extend(review(s, files, cols));
    l.push(styled(DIM, "explain", cols));
    match explain {
        None => l.push(truncate("  …", cols)),
        Some(text) => l.extend(text.lines().map(|x| truncate(&format!("  {x}"), cols))),
    }
    l
}

/// The session's pending review comments (`PATH:LINE text`), then its changed files
/// (`M +3 -1 PATH`) once `canopy diff --stat` has answered.
fn review(s: &Session, files: &Files, cols: usize) -> Vec<String> {
    let mut l = vec![];
    if let Some(pr) = &s.pr {
        let mark = if pr.provider == "gitlab" { '!' } else { '#' };
        l.push(truncate(
            &format!("request {mark}{} {}  {}", pr.number, pr.state, pr.url),
            cols,
        ));
    }
    if let Some(radar) = &s.radar {
        if !radar.conflicts.is_empty() {
            l.push(truncate(
                &format!("⚠ conflicts with its base: {}", radar.conflicts.join(", ")),
                cols,
            ));
        }
        if !radar.shared_files.is_empty() {
            l.push(truncate(
                &format!(
                    "⚠ shared with {}: {}",
                    radar.shared_with.join(", "),
                    radar.shared_files.join(", ")
                ),
                cols,
            ));
        }
    }
    if !s.comments.is_empty() {
        l.push(styled(
            DIM,
            &format!("comments {} pending", s.comments.len()),
            cols,
        ));
        l.extend(s.comments.iter().map(|c| {
            let text = c.text.lines().collect::<Vec<_>>().join(" ");
            truncate(&format!("  {}:{} {text}", c.path, c.line), cols)
        }));
    }
    match &files.last {
        None => l.push(styled(DIM, "files …", cols)),
        Some(Err(why)) => l.push(truncate(&format!("files: {why}"), cols)),
        Some(Ok(files)) => {
            l.push(styled(
                DIM,
                &format!("files   {} changed", files.len()),
                cols,
            ));
            l.extend(files.iter().map(|f| {
                let counts = if f.binary {
                    "bin".to_string()
                } else {
                    format!("+{} -{}", f.added, f.removed)
                };
                truncate(
                    &format!("  {} {counts} {}", status_letter(&f.status), f.path),
                    cols,
                )
            }));
        }
    }
    l
}

/// `M` modified, `A` added, `D` deleted, `R` renamed, `T` type changed, `?` untracked.
fn status_letter(status: &str) -> char {
    match status {
        "added" => 'A',
        "deleted" => 'D',
        "modified" => 'M',
        "renamed" => 'R',
        "typechange" => 'T',
        _ => '?',
    }
}

/// `1h02m`, `3m05s`, `42s`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}
