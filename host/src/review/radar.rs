//! The conflict radar: files that more than one live session changes, and sessions
//! whose branch no longer merges cleanly into the current tip of its base. Computed on
//! request (`conflicts`), and kept in each live session's record (`Session::radar`) by
//! [`keep_fresh`], which recomputes it when a worktree changes (each session's usage
//! task counts its lines on the file-system events it watches, then nudges) or a merge
//! moves a base.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use canopy_protocol::Session;
use canopy_protocol::review::{Conflicts, SharedFile, Unmergeable};
use canopy_protocol::session::Radar;
use tokio::sync::{Notify, watch};

use super::{diff, merge};
use crate::git::open_main_repo;
use crate::registry::Registry;

/// How long nudges must stop before the radar runs: one agent's burst of writes, or
/// several sessions' counts landing together, cost one run.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Check `sessions` (live, local) against each other and their bases.
pub fn radar(sessions: Vec<Session>) -> Conflicts {
    let mut out = Conflicts::default();
    let mut by_file: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for s in &sessions {
        match diff::changed_paths(Path::new(&s.worktree), &s.base, &s.base_commit) {
            Ok(paths) => {
                for p in paths {
                    by_file
                        .entry((s.repo.clone(), p))
                        .or_default()
                        .push(s.name.clone());
                }
            }
            Err(e) => out.errors.push(format!("{}: {e}", s.name)),
        }
        let files = open_main_repo(Path::new(&s.repo))
            .map_err(Into::into)
            .and_then(|repo| merge::dry_run(&repo, &s.base, &s.branch));
        match files {
            Ok(files) if files.is_empty() => {}
            Ok(files) => out.unmergeable.push(Unmergeable {
                name: s.name.clone(),
                base: s.base.clone(),
                files,
            }),
            Err(e) => out.errors.push(format!("{}: {e}", s.name)),
        }
    }
    out.shared_files = by_file
        .into_iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|((repo, path), sessions)| SharedFile {
            repo,
            path,
            sessions,
        })
        .collect();
    out
}

/// Each session's part of what the radar `found`; `None` for one with nothing flagged.
pub fn marks(sessions: &[Session], found: &Conflicts) -> BTreeMap<String, Option<Radar>> {
    let mut marks: BTreeMap<String, Radar> = BTreeMap::new();
    for f in &found.shared_files {
        for name in &f.sessions {
            let mark = marks.entry(name.clone()).or_default();
            mark.shared_files.push(f.path.clone());
            let others = f.sessions.iter().filter(|o| *o != name);
            mark.shared_with.extend(others.cloned());
        }
    }
    for u in &found.unmergeable {
        marks.entry(u.name.clone()).or_default().conflicts = u.files.clone();
    }
    sessions
        .iter()
        .map(|s| {
            let mark = marks.remove(&s.name).map(|mut m| {
                m.shared_with.sort();
                m.shared_with.dedup();
                m
            });
            (s.name.clone(), mark)
        })
        .collect()
}

/// Recompute the radar [`DEBOUNCE`] after the last `nudge`, and put each local
/// session's mark in its record: live sessions get what was found, the others none.
/// Ends at shutdown.
pub async fn keep_fresh(
    registry: Registry,
    nudge: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = nudge.notified() => {}
            _ = shutdown.changed() => return,
        }
        loop {
            tokio::select! {
                () = nudge.notified() => {}
                () = tokio::time::sleep(DEBOUNCE) => break,
                _ = shutdown.changed() => return,
            }
        }
        let Ok(all) = registry.list().await else {
            return;
        };
        let local: Vec<Session> = all.into_iter().filter(Session::is_local).collect();
        let live: Vec<Session> = local.iter().filter(|s| s.is_running()).cloned().collect();
        let checked = live.clone();
        let Ok(found) = tokio::task::spawn_blocking(move || radar(checked)).await else {
            continue;
        };
        let mut marks = marks(&live, &found);
        for s in local {
            let mark = marks.remove(&s.name).flatten();
            if s.radar != mark {
                // A session removed meanwhile has no record to mark.
                let _ = registry.set_radar(&s.name, mark).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_session_gets_its_shared_files_partners_and_conflicts() {
        let session = |name: &str| {
            let mut s: Session = serde_json::from_value(serde_json::json!({
                "name": name, "agent": "sh", "repo": "/r", "worktree": "/w", "branch": "b",
                "base": "main", "created_at": 0,
                "state": {"kind": "idle", "since": 0, "source": "host"}
            }))
            .expect("session");
            s.name = name.into();
            s
        };
        let found = Conflicts {
            shared_files: vec![
                SharedFile {
                    repo: "/r".into(),
                    path: "a".into(),
                    sessions: vec!["x".into(), "y".into()],
                },
                SharedFile {
                    repo: "/r".into(),
                    path: "b".into(),
                    sessions: vec!["x".into(), "y".into(), "z".into()],
                },
            ],
            unmergeable: vec![Unmergeable {
                name: "z".into(),
                base: "main".into(),
                files: vec!["c".into()],
            }],
            errors: Vec::new(),
        };
        let marks = marks(&[session("x"), session("z"), session("w")], &found);
        let x = marks["x"].clone().expect("x");
        assert_eq!(
            (x.shared_files, x.shared_with),
            (vec!["a".into(), "b".into()], vec!["y".into(), "z".into()])
        );
        let z = marks["z"].clone().expect("z");
        assert_eq!(
            (z.shared_with, z.conflicts),
            (vec!["x".into(), "y".into()], vec!["c".into()])
        );
        assert_eq!(marks["w"], None);
    }
}
