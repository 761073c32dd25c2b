//! Handing freed heap back to the system once the host is at rest.
//!
//! glibc keeps memory freed in the middle of its heaps resident. The screens free a
//! thousand spare rows at the end of every burst of output (`Screen::trim`), and the
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
        tokio::spawn(trimmer(rx));
        tx
    });
    let _ = inbox.try_send(());
}

async fn trimmer(mut freed: mpsc::Receiver<()>) {
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
