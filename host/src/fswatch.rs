//! One file-system watcher for the whole host, shared by every session's usage task.
//!
//! A watcher per session cost an inotify instance and a thread each, and Linux allows a
//! user 128 instances by default (`fs.inotify.max_user_instances`): past that, sessions
//! silently lost their transcript and worktree events (their usage moved only on
//! hooks). Here one `notify` watcher is owned by one thread, which also keeps the
//! subscriptions: who watches which directory, how, and where its events go. Several
//! subscribers of one directory (an agent and its dev server share a worktree; Codex
//! sessions share a day's rollout directory) share its watch, which is removed with
//! its last subscriber.
//!
//! Subscribing does not wait: a recursive watch walks the whole tree, which would
//! stall the caller on a large worktree. Once a watch is in place, its directory's own
//! path is delivered to the subscriber, so what was written before then can be read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Subscription ids.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The host's watcher; cheap to clone.
#[derive(Debug, Clone)]
pub struct FsWatch {
    tx: std_mpsc::Sender<Msg>,
    /// The thread stops when the last clone goes (the watcher's own handler keeps a
    /// sender, so the channel alone would never close).
    _alive: Arc<Alive>,
}

#[derive(Debug)]
struct Alive(std_mpsc::Sender<Msg>);

impl Drop for Alive {
    fn drop(&mut self) {
        let _ = self.0.send(Msg::Stop);
    }
}

/// One subscription: its watch ends when this is dropped.
#[derive(Debug)]
pub struct Subscription {
    id: u64,
    tx: std_mpsc::Sender<Msg>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Unwatch(self.id));
    }
}

enum Msg {
    Watch {
        id: u64,
        dir: PathBuf,
        mode: RecursiveMode,
        events: mpsc::Sender<PathBuf>,
    },
    Unwatch(u64),
    Event(notify::Event),
    Stop,
}

impl FsWatch {
    /// Start the watcher's thread. Where the system gives no watcher, subscriptions
    /// get no events (a warning says so once): usage then moves on hooks only.
    pub fn start() -> FsWatch {
        let (tx, rx) = std_mpsc::channel();
        let events = tx.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            // Only changes count. Opening and reading are reported too (inotify's
            // IN_OPEN, IN_CLOSE_NOWRITE), and counting lines reads the worktree: acting
            // on those would count again and again, forever, on an idle session.
            if let Ok(event) = event
                && !matches!(event.kind, notify::EventKind::Access(_))
            {
                let _ = events.send(Msg::Event(event));
            }
        };
        let watcher = match notify::recommended_watcher(handler) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "no file-system watcher; usage follows hooks only");
                None
            }
        };
        let table = Table {
            watcher,
            dirs: HashMap::new(),
            subs: HashMap::new(),
        };
        let spawned = std::thread::Builder::new()
            .name("canopy-fswatch".into())
            .spawn(move || table.run(&rx));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no file-system watcher thread; usage follows hooks only");
        }
        FsWatch {
            _alive: Arc::new(Alive(tx.clone())),
            tx,
        }
    }

    /// Send the paths of changes under `dir` (only its entries, or its whole tree) to
    /// `events`, dropping them while `events` is full: one is enough to know that
    /// something changed. The path of `dir` itself arrives once the watch is in place.
    pub fn watch(
        &self,
        dir: &Path,
        mode: RecursiveMode,
        events: mpsc::Sender<PathBuf>,
    ) -> Subscription {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Watch {
            id,
            dir: dir.to_owned(),
            mode,
            events,
        });
        Subscription {
            id,
            tx: self.tx.clone(),
        }
    }
}

struct Sub {
    dir: PathBuf,
    recursive: bool,
    events: mpsc::Sender<PathBuf>,
}

/// The thread's state: the watcher and who listens where.
struct Table {
    watcher: Option<notify::RecommendedWatcher>,
    /// Each watched directory, with its subscribers' ids.
    dirs: HashMap<PathBuf, Vec<u64>>,
    subs: HashMap<u64, Sub>,
}

impl Table {
    fn run(mut self, rx: &std_mpsc::Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                Msg::Watch {
                    id,
                    dir,
                    mode,
                    events,
                } => self.watch(id, dir, mode, events),
                Msg::Unwatch(id) => self.unwatch(id),
                Msg::Event(event) => self.route(&event),
                Msg::Stop => break,
            }
        }
    }

    fn watch(&mut self, id: u64, dir: PathBuf, mode: RecursiveMode, events: mpsc::Sender<PathBuf>) {
        let recursive = mode == RecursiveMode::Recursive;
        let others = self.dirs.get(&dir).map(Vec::as_slice).unwrap_or_default();
        let watched_recursively = others.iter().any(|o| self.subs[o].recursive);
        // A first subscriber adds the watch; a recursive one after non-recursive ones
        // widens it (inotify adds to the existing watch).
        let add = others.is_empty() || (recursive && !watched_recursively);
        if add
            && let Some(w) = &mut self.watcher
            && let Err(e) = w.watch(&dir, mode)
        {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot watch");
            return;
        }
        let _ = events.try_send(dir.clone());
        self.dirs.entry(dir.clone()).or_default().push(id);
        self.subs.insert(
            id,
            Sub {
                dir,
                recursive,
                events,
            },
        );
    }

    fn unwatch(&mut self, id: u64) {
        let Some(sub) = self.subs.remove(&id) else {
            return;
        };
        let Some(ids) = self.dirs.get_mut(&sub.dir) else {
            return;
        };
        ids.retain(|&i| i != id);
        if ids.is_empty() {
            self.dirs.remove(&sub.dir);
            if let Some(w) = &mut self.watcher {
                let _ = w.unwatch(&sub.dir);
            }
        }
    }

    /// Hand each changed path to the subscribers of its directory and, for recursive
    /// ones, of any directory above it: a lookup per ancestor, whatever the number of
    /// sessions.
    fn route(&self, event: &notify::Event) {
        if event.need_rescan() {
            // The kernel's queue overflowed: events were lost, so every subscriber is
            // told its directory changed.
            for sub in self.subs.values() {
                let _ = sub.events.try_send(sub.dir.clone());
            }
            return;
        }
        for path in &event.paths {
            for (depth, dir) in path.ancestors().enumerate() {
                let Some(ids) = self.dirs.get(dir) else {
                    continue;
                };
                for sub in ids.iter().filter_map(|id| self.subs.get(id)) {
                    // A non-recursive watch reports the directory and its entries.
                    if sub.recursive || depth <= 1 {
                        let _ = sub.events.try_send(path.clone());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn next(rx: &mut mpsc::Receiver<PathBuf>) -> PathBuf {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an event within 5 s")
            .expect("open")
    }

    /// Wait for `want`, skipping other paths (a write may report several events).
    async fn until(rx: &mut mpsc::Receiver<PathBuf>, want: &Path) {
        while next(rx).await != want {}
    }

    #[tokio::test]
    async fn subscribers_share_a_watch_until_the_last_one_goes() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("d");
        std::fs::create_dir_all(dir.join("sub")).expect("file system");
        let fs = FsWatch::start();
        let (a_tx, mut a) = mpsc::channel(64);
        let (b_tx, mut b) = mpsc::channel(64);
        let first = fs.watch(&dir, RecursiveMode::Recursive, a_tx);
        let second = fs.watch(&dir, RecursiveMode::NonRecursive, b_tx);
        // Each learns that its watch is in place.
        assert_eq!(next(&mut a).await, dir);
        assert_eq!(next(&mut b).await, dir);

        let deep = dir.join("sub/file");
        std::fs::write(&deep, "x").expect("file system");
        until(&mut a, &deep).await;
        let shallow = dir.join("file");
        std::fs::write(&shallow, "x").expect("file system");
        until(&mut a, &shallow).await;
        // The non-recursive subscriber saw the entry, never the nested file.
        let mut seen = vec![next(&mut b).await];
        while let Ok(p) = b.try_recv() {
            seen.push(p);
        }
        assert!(seen.contains(&shallow), "{seen:?}");
        assert!(!seen.contains(&deep), "{seen:?}");

        drop(first);
        let again = dir.join("again");
        std::fs::write(&again, "x").expect("file system");
        until(&mut b, &again).await;
        drop(second);
    }

    #[tokio::test]
    async fn more_directories_than_inotify_instances_all_report() {
        // Linux allows 128 inotify instances per user by default: a watcher per
        // directory would leave some of these without events.
        let tmp = tempfile::tempdir().expect("temp dir");
        let fs = FsWatch::start();
        let mut watched = Vec::new();
        for i in 0..200 {
            let dir = tmp.path().join(i.to_string());
            std::fs::create_dir(&dir).expect("file system");
            let (tx, mut rx) = mpsc::channel(64);
            let sub = fs.watch(&dir, RecursiveMode::Recursive, tx);
            assert_eq!(next(&mut rx).await, dir);
            watched.push((dir, rx, sub));
        }
        for (dir, rx, _) in &mut watched {
            let file = dir.join("f");
            std::fs::write(&file, "x").expect("file system");
            until(rx, &file).await;
        }
    }
}
