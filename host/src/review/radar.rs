//! The conflict radar: files that more than one live session changes, and sessions
//! whose branch no longer merges cleanly into the current tip of its base.

use std::collections::BTreeMap;
use std::path::Path;

use canopy_protocol::Session;
use canopy_protocol::review::{Conflicts, SharedFile, Unmergeable};

use super::{diff, merge};
use crate::git::open_main_repo;

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
