//! `canopy stdio`: this machine's host on stdin and stdout, for a hub that reaches it
//! over ssh (or any command that carries stdio). The host's own checks apply: the
//! bridge connects as the user ssh logged in, so the peer-uid check is the same.

use std::io::{Read, Write};

use super::error::CliError;
use crate::client::stream_or_start;
use crate::paths::Paths;
use crate::remote::PREAMBLE;

/// Connect (starting the host if needed), announce, then copy both ways until either
/// side closes. Plain threads: the copies block on pipes, and nothing else runs here.
pub async fn run(paths: &Paths) -> Result<(), CliError> {
    let stream = stream_or_start(paths).await?.into_std()?;
    stream.set_nonblocking(false)?;
    let mut to_host = stream.try_clone()?;
    let mut from_host = stream;
    let mut stdout = std::io::stdout().lock();
    // Only now: the hub takes the line to mean a host is there to answer.
    stdout.write_all(format!("{PREAMBLE}\n").as_bytes())?;
    stdout.flush()?;
    drop(stdout);
    let (done, ended) = std::sync::mpsc::channel::<()>();
    let up_done = done.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to_host);
        let _ = up_done.send(());
    });
    std::thread::spawn(move || {
        let mut stdout = std::io::stdout().lock();
        let mut buf = vec![0u8; 64 * 1024];
        // Each chunk goes out at once: events and output are small and urgent.
        while let Ok(n @ 1..) = from_host.read(&mut buf) {
            if stdout.write_all(&buf[..n]).is_err() || stdout.flush().is_err() {
                break;
            }
        }
        let _ = done.send(());
    });
    // Whichever side ends first ends the bridge: the hub gone, or the host stopped.
    let _ = tokio::task::spawn_blocking(move || ended.recv()).await;
    Ok(())
}
