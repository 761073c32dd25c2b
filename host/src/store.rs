//! The session registry on disk: SQLite in the state directory.
//!
//! Writes go through one thread that owns the connection, so the host never waits on
//! the disk. Each batch of writes is one transaction: a crash (even `kill -9`) leaves
//! either the old or the new record, never a torn one. A write that fails (disk full,
//! read-only directory) is rolled back whole, kept, and retried with the next batch or
//! after a backoff (the only timer here, and only while writes are failing), so the
//! records reach the disk as soon as it recovers; the host keeps serving from memory
//! meanwhile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use canopy_protocol::Session;
use rusqlite::{Connection, params};
use tokio::sync::oneshot;

/// Why the registry could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the session registry {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

enum Op {
    Put(Box<Session>),
    Delete(String),
    Flush(oneshot::Sender<()>),
}

/// Handle to the writer thread. Dropping every handle lets the thread finish its queue
/// and exit.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Op>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
";

const SCHEMA_VERSION: i64 = 1;

/// The first retry of a failed write comes this soon; each failure doubles the wait.
const RETRY_FIRST: Duration = Duration::from_millis(250);
/// The longest wait between retries while the disk stays unwritable.
const RETRY_MAX: Duration = Duration::from_secs(15);

impl Store {
    /// Open (creating if needed) the registry and read every stored session.
    pub fn open(path: &Path) -> Result<(Store, Vec<Session>), StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        // Only written when it changes: opening an existing registry is then no write
        // transaction, which a nearly full disk could refuse.
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(open_err)?;
        if version != SCHEMA_VERSION {
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(open_err)?;
        }
        let sessions = load(&conn).map_err(open_err)?;

        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("canopy-store".into())
            .spawn(move || writer(conn, rx))
            .map_err(|source| StoreError::Dir {
                path: path.to_owned(),
                source,
            })?;
        Ok((Store { tx }, sessions))
    }

    pub fn put(&self, session: &Session) {
        let _ = self.tx.send(Op::Put(Box::new(session.clone())));
    }

    pub fn delete(&self, name: &str) {
        let _ = self.tx.send(Op::Delete(name.to_owned()));
    }

    /// Wait until everything sent so far has been attempted.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn load(conn: &Connection) -> rusqlite::Result<Vec<Session>> {
    let mut stmt = conn.prepare("SELECT name, record FROM sessions ORDER BY name")?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut sessions = Vec::new();
    for row in rows {
        let (name, record) = row?;
        match serde_json::from_str::<Session>(&record) {
            Ok(s) => sessions.push(s),
            // Keep the row: a newer Canopy may have written it.
            Err(e) => tracing::warn!(%name, error = %e, "skipping unreadable session record"),
        }
    }
    Ok(sessions)
}

/// Latest wanted content per session name: `None` means deleted.
type Pending = BTreeMap<String, Option<String>>;

fn writer(mut conn: Connection, rx: mpsc::Receiver<Op>) {
    let mut pending = Pending::new();
    let mut flushes = Vec::new();
    // While writes fail: how long until the next retry, and whether that was logged.
    let mut retry: Option<Duration> = None;
    loop {
        let first = match retry {
            None => match rx.recv() {
                Ok(op) => Some(op),
                Err(_) => break,
            },
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(op) => Some(op),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
        };
        let mut next = first;
        // Take everything already queued so one transaction covers a burst.
        while let Some(op) = next.take().or_else(|| rx.try_recv().ok()) {
            match op {
                Op::Put(s) => match serde_json::to_string(&s) {
                    Ok(json) => {
                        pending.insert(s.name.clone(), Some(json));
                    }
                    Err(e) => tracing::error!(name = %s.name, error = %e, "cannot encode session"),
                },
                Op::Delete(name) => {
                    pending.insert(name, None);
                }
                Op::Flush(done) => flushes.push(done),
            }
        }
        match write_batch(&mut conn, &pending) {
            Ok(()) => {
                if retry.take().is_some() {
                    tracing::info!(
                        written = pending.len(),
                        "the session registry is writable again; kept changes written"
                    );
                }
                pending.clear();
            }
            Err(e) => {
                // Logged once per outage, not on every retry (the log may be on the
                // same full disk).
                if retry.is_none() {
                    tracing::error!(
                        error = %e,
                        kept = pending.len(),
                        "cannot write the session registry; changes are kept in memory and retried"
                    );
                }
                retry = Some(retry.map_or(RETRY_FIRST, |w| (w * 2).min(RETRY_MAX)));
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
    if !pending.is_empty()
        && let Err(e) = write_batch(&mut conn, &pending)
    {
        tracing::error!(error = %e, lost = pending.len(), "session registry writes lost at exit");
    }
}

fn write_batch(conn: &mut Connection, pending: &Pending) -> rusqlite::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let now = crate::clock::now_ms() as i64;
    let tx = conn.transaction()?;
    for (name, record) in pending {
        match record {
            Some(json) => tx.execute(
                "INSERT INTO sessions (name, record, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at",
                params![name, json, now],
            )?,
            None => tx.execute("DELETE FROM sessions WHERE name = ?1", params![name])?,
        };
    }
    tx.commit()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use canopy_protocol::{State, StateKind, StateSource};

    pub(crate) fn session(name: &str) -> Session {
        Session {
            name: name.into(),
            host: canopy_protocol::LOCAL_HOST.into(),
            stale_since: None,
            agent: "bash".into(),
            command: vec!["bash".into()],
            repo: "/r".into(),
            worktree: format!("/r.worktrees/{name}"),
            branch: format!("canopy/{name}"),
            base: "main".into(),
            base_commit: "0".repeat(40),
            created_at: 1,
            state: State::new(StateKind::Starting, StateSource::Host, 1),
            health: Default::default(),
            pid: Some(42),
            agent_session_id: None,
            exit_code: None,
            usage: Default::default(),
            task: None,
            env: Default::default(),
            comments: Vec::new(),
            pr: None,
            radar: None,
        }
    }

    #[tokio::test]
    async fn records_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state/registry.sqlite3");
        let (store, loaded) = Store::open(&path).expect("open");
        assert!(loaded.is_empty());
        store.put(&session("a"));
        store.put(&session("b"));
        let mut changed = session("a");
        changed.state = State::new(StateKind::Idle, StateSource::Screen, 2);
        store.put(&changed);
        store.delete("b");
        store.flush().await;
        drop(store);

        let (_store, loaded) = Store::open(&path).expect("reopen");
        assert_eq!(loaded, vec![changed]);
    }

    #[tokio::test]
    async fn an_unreadable_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "").expect("write");
        let err = Store::open(&file.join("registry.sqlite3")).expect_err("must fail");
        assert!(
            err.to_string()
                .starts_with("cannot create the state directory"),
            "{err}"
        );
    }
}
