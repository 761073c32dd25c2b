//! `canopy host`: run the host in the foreground (or detached, for auto-start), and
//! `canopy host stop`.

use std::io::Write;
use std::process::ExitCode;

use canopy_protocol::method;
use canopy_protocol::params::{NameParams, ShutdownParams, Status};

use super::error::CliError;
use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::daemon;
use crate::paths::Paths;

/// Run the host until it is told to stop. With `detached`, log to the state directory
/// and tell the starting client "ready" (or the error) on stdout.
pub fn run(paths: Paths, detached: bool) -> ExitCode {
    let result = serve(paths, detached);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if detached {
                println!("error: {}", e.message);
            }
            e.report()
        }
    }
}

fn serve(paths: Paths, detached: bool) -> Result<(), CliError> {
    init_logging(detached);
    let config = Config::load(&paths.config_file)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("canopy-host")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (listener, _lock) = daemon::bind(&paths).map_err(|e| match e {
            daemon::StartError::AlreadyRunning(_) => {
                CliError::new(e.to_string()).with_hint("`canopy host stop` stops it")
            }
            other => CliError::new(other.to_string()),
        })?;
        let host = daemon::start(paths.clone(), config)
            .await
            .map_err(|e| CliError::new(e.to_string()))?;
        tracing::info!(socket = %paths.socket.display(), pid = std::process::id(), "host ready");
        if detached {
            announce_ready();
        }
        daemon::run(listener, host, shutdown_signal()).await;
        tracing::info!("host stopped");
        Ok(())
    })
}

/// Tell the client that started us, then let go of its pipe.
fn announce_ready() {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto our own stdout descriptor.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 1) };
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// Log to stderr: the terminal in the foreground, the state directory's `host.log`
/// (opened for append by the starting client) when detached.
fn init_logging(detached: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CANOPY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(!detached)
        .with_writer(std::io::stderr)
        .init();
}

/// Ask the running host to stop and wait until it has.
pub async fn stop(paths: &Paths) -> Result<(), CliError> {
    if shut_down(paths, false).await? {
        println!("host stopped");
    } else {
        println!("no host is running");
    }
    Ok(())
}

/// Stop the running host leaving its agents to their keepers, and start the next one
/// (the binary on disk now: how an upgrade takes effect), which takes them back.
pub async fn restart(paths: &Paths) -> Result<(), CliError> {
    shut_down(paths, true).await?;
    let mut client = Client::connect_or_start(paths).await?;
    let status: Status = client.call(method::STATUS, &NameParams::default()).await?;
    println!(
        "host restarted (pid {}); {} sessions kept",
        status.host.pid,
        status.counts.values().sum::<u64>()
    );
    Ok(())
}

/// Ask the host to stop and wait until it has; false when none was running.
async fn shut_down(paths: &Paths, keep_agents: bool) -> Result<bool, CliError> {
    let mut client = match Client::connect(&paths.socket).await {
        Ok(c) => c,
        Err(ClientError::Connect { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let stopping = client
        .call::<_, ()>(method::SHUTDOWN, &ShutdownParams { keep_agents })
        .await;
    match stopping {
        // A host with nothing to stop may exit before its reply is written: the
        // connection closing is the answer then.
        Ok(()) | Err(ClientError::Closed) => {}
        Err(e) => return Err(e.into()),
    }
    // The host closes every connection as it exits.
    while client.reader.next().await.ok().flatten().is_some() {}
    Ok(true)
}
