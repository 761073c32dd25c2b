//! Handing freed heap back to the system once the host is at rest.
//!
//! glibc keeps memory freed in the middle of its heaps resident. The screens free a
//! thousand spare rows whenever their output pauses (`Screen::trim`), and the
//! holes they leave held 0.37 MiB per session with 10,000 lines of scrollback
//! (BENCHMARKS.md, issue 22). `malloc_trim(0)` returns them, but it walks every arena,
//! so it runs only once nothing has been freed for [`QUIET`], on the blocking pool: never
//! while sessions stream.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::mpsc;

/// How long nothing must have been freed before the heap is trimmed.
const QUIET: Duration = Duration::from_secs(1);

/// The trimmer's inbox; the task starts with the first call to [`freed`].
static FREED: OnceLock<mpsc::Sender<()>> = OnceLock::new();

/// Note that memory was freed. Call from within the host's runtime, which runs the
/// trimmer.
pub fn freed() {
    let inbox = FREED.get_or_init(|| {
        // One pending note is enough: the trimmer only needs to know that one came.
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(trimmer(rx, trim));
        tx
    });
    let _ = inbox.try_send(());
}

/// Run `trim` on the blocking pool each time notes on `freed` stop for [`QUIET`].
async fn trimmer(mut freed: mpsc::Receiver<()>, trim: fn()) {
    while freed.recv().await.is_some() {
        // Until nothing more is freed for QUIET.
        loop {
            match tokio::time::timeout(QUIET, freed.recv()).await {
                Ok(Some(())) => {}
                Ok(None) => return,
                Err(_quiet) => break,
            }
        }
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only returns glibc's own free pages to the system.
    unsafe { libc::malloc_trim(0) };
}

/// Other allocators return free memory their own way.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    static TRIMS: AtomicUsize = AtomicUsize::new(0);
    static TRIMMED: tokio::sync::Notify = tokio::sync::Notify::const_new();

    fn count() {
        TRIMS.fetch_add(1, Ordering::SeqCst);
        TRIMMED.notify_one();
    }

    #[tokio::test(start_paused = true)]
    async fn trims_once_after_the_notes_stop_and_never_while_they_come() {
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(trimmer(rx, count));
        // Notes every 500 ms for 5 s: never quiet long enough.
        for _ in 0..10 {
            let _ = tx.try_send(());
            tokio::time::sleep(QUIET / 2).await;
        }
        assert_eq!(TRIMS.load(Ordering::SeqCst), 0);
        // The trim runs on the blocking pool once the notes have stopped for QUIET.
        TRIMMED.notified().await;
        assert_eq!(TRIMS.load(Ordering::SeqCst), 1);
        // At rest: nothing more, until the next note.
        tokio::time::sleep(QUIET * 10).await;
        assert_eq!(TRIMS.load(Ordering::SeqCst), 1);
        drop(tx);
        task.await.expect("the trimmer ends with its inbox");
    }
}
