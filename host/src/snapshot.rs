//! The status snapshot file (`status.json` beside the socket), for front ends that
//! cannot hold a socket (WezTerm's Lua reads it in `update-status`).
//!
//! Written after every change, coalesced: while one write is in flight, later changes
//! collapse into the next write. Each write goes to a temporary file that is renamed
//! over the old one, so a reader sees a whole old or a whole new document. A write that
//! fails (disk full) leaves the old document and no temporary file, and is retried
//! after a backoff as well as on the next change, so the file catches up once the disk
//! recovers even if nothing changes meanwhile.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use canopy_protocol::params::Status;
use tokio::sync::watch;

/// The first retry of a failed write comes this soon; each failure doubles the wait.
const RETRY_FIRST: Duration = Duration::from_millis(250);
/// The longest wait between retries while writes fail.
const RETRY_MAX: Duration = Duration::from_secs(15);

/// Keep `path` up to date with `status` until the sender side closes or `stop` turns
/// true. No write is in flight when this returns, so the caller may then remove the file.
pub async fn keep_written(
    path: PathBuf,
    mut status: watch::Receiver<Status>,
    mut stop: watch::Receiver<bool>,
) {
    // While writes fail: the wait before the next retry.
    let mut retry: Option<Duration> = None;
    loop {
        let json = match serde_json::to_vec(&*status.borrow_and_update()) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the status snapshot");
                Vec::new()
            }
        };
        if !json.is_empty() {
            let target = path.clone();
            let failed =
                match tokio::task::spawn_blocking(move || write_atomically(&target, &json)).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(e) => Some(e.to_string()),
                };
            retry = match failed {
                None => None,
                Some(e) => {
                    // Once per outage: the log may be on the same full disk.
                    if retry.is_none() {
                        tracing::warn!(path = %path.display(), error = %e, "cannot write the status snapshot; retrying");
                    }
                    Some(retry.map_or(RETRY_FIRST, |w| (w * 2).min(RETRY_MAX)))
                }
            };
        }
        let again = async {
            match retry {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = status.changed() => if changed.is_err() { break },
            () = again => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
}

/// Write `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.write_all(b"\n")?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.json");
        write_atomically(&path, b"{\"a\":1}").expect("write");
        write_atomically(&path, b"{\"a\":2}").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\"a\":2}\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("status.json")]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.json");
        write_atomically(&path, b"{\"a\":1}").expect("write");
        // The rename fails: a directory stands where the temporary file would go.
        let tmp = dir
            .path()
            .join(format!(".status.json.{}.tmp", std::process::id()));
        std::fs::create_dir(&tmp).expect("mkdir");
        assert!(write_atomically(&path, b"{\"a\":2}").is_err());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\"a\":1}\n");
    }
}
