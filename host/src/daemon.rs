//! The host process: binds the socket (0700 directory, one host per socket), accepts
//! connections from the owning user only, and shuts down gracefully.
//!
//! [`run`] takes the listener and a shutdown future, so tests drive the real server on
//! a temporary socket.

use std::future::Future;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use canopy_protocol::params::HostInfo;
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::config::Config;
use crate::paths::Paths;
use crate::registry::Registry;
use crate::session::{self, Report};
use crate::store::{Store, StoreError};

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another host owns this socket.
    #[error("a Canopy host is already running on {0}")]
    AlreadyRunning(PathBuf),
    /// The socket directory is not private to this user.
    #[error(
        "{path} must be a directory owned by you with mode 0700 (it is {mode:o}, owner uid {uid})"
    )]
    UnsafeDir { path: PathBuf, mode: u32, uid: u32 },
    #[error("cannot set up {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The socket path is too long for a unix socket on this system.
    #[error(transparent)]
    SocketPath(#[from] crate::paths::SocketPathTooLong),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| StartError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What every connection and request handler shares.
#[derive(Debug)]
pub struct Daemon {
    pub registry: Registry,
    pub reports: tokio::sync::mpsc::UnboundedSender<Report>,
    pub paths: Paths,
    pub config: Config,
    /// The built-in price table with the user's `[prices]` entries.
    pub prices: Arc<crate::usage::Prices>,
    pub info: HostInfo,
    /// The links to remote hosts, which run requests for `HOST:NAME` there.
    pub remotes: crate::remote::Remotes,
    /// Notifications: the policy task and its targets.
    pub notify: crate::notify::Notifier,
    /// Set to true to begin a graceful shutdown.
    pub shutdown: watch::Sender<bool>,
    /// Whether that shutdown leaves the agents to their keepers (`host restart`).
    pub keep_agents: std::sync::atomic::AtomicBool,
    /// Each session's dev server (`[run]`), a second terminal beside its agent. The
    /// lock is never held across an await.
    pub runs: std::sync::Mutex<std::collections::HashMap<String, crate::session::SessionHandle>>,
    /// Nudged when a session's worktree or a base changed: the conflict radar runs a
    /// debounce later and marks the records (`review::radar::keep_fresh`).
    pub radar: Arc<tokio::sync::Notify>,
    /// The one file-system watcher every session's usage task subscribes to.
    pub fswatch: crate::fswatch::FsWatch,
    /// The status snapshot writer, awaited at shutdown before its file is removed. The
    /// lock is only taken to move the handle out.
    snapshot_writer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Daemon {
    pub fn session_settings(&self) -> session::Settings {
        session::Settings {
            scrollback_lines: self.config.sessions.scrollback_lines,
            stop_grace: self.config.sessions.stop_grace(),
            timing: crate::state::Timing {
                grace: self.config.sessions.hook_grace(),
                ..crate::state::Timing::default()
            },
        }
    }

    /// A session's private directory for generated agent configuration.
    pub fn session_dir(&self, name: &str) -> std::path::PathBuf {
        self.paths.state_dir.join("sessions").join(name)
    }
}

/// An exclusive hold on a socket path; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct HostLock {
    _file: std::fs::File,
}

/// Create the private runtime directory, take the host lock and bind the socket.
pub fn bind(paths: &Paths) -> Result<(UnixListener, HostLock), StartError> {
    crate::paths::check_socket_path(&paths.socket)?;
    ensure_private_dir(&paths.runtime_dir)?;
    let lock_path = paths.host_lock();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(StartError::AlreadyRunning(paths.socket.clone()));
    }
    // We hold the lock, so any socket file left here belongs to a dead host.
    match std::fs::remove_file(&paths.socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&paths.socket)(e)),
    }
    let listener = UnixListener::bind(&paths.socket).map_err(io_err(&paths.socket))?;
    std::fs::set_permissions(&paths.socket, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(&paths.socket))?;
    Ok((listener, HostLock { _file: file }))
}

/// The socket's directory must exist, belong to us and be closed to everyone else.
/// A directory we create is made so; one we find is checked, never loosened or taken.
pub fn ensure_private_dir(dir: &Path) -> Result<(), StartError> {
    match std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(false)
        .create(dir)
    {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Missing parents (e.g. a custom CANOPY_SOCKET path): create them, then ours.
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            return std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })
                .map_err(io_err(dir));
        }
        Err(e) => return Err(io_err(dir)(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io_err(dir))?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let mode = meta.mode() & 0o7777;
    if !meta.is_dir() || meta.uid() != me || mode & 0o077 != 0 {
        return Err(StartError::UnsafeDir {
            path: dir.to_owned(),
            mode,
            uid: meta.uid(),
        });
    }
    Ok(())
}

/// Open the registry, start the actors behind a [`Daemon`] and take back the agents an
/// earlier host left running, before any client is served.
pub async fn start(paths: Paths, config: Config) -> Result<Arc<Daemon>, StartError> {
    let (store, loaded) = Store::open(&paths.registry_db())?;
    let info = HostInfo {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        socket: paths.socket.display().to_string(),
        started_at: now_ms(),
    };
    let left = crate::rpc::Left::find(&paths.runtime_dir, &loaded).await;
    let running = left.running().map(str::to_owned).collect();
    let (registry, reports, status) = Registry::start(store, loaded, &running, info.clone());
    let (shutdown, _) = watch::channel(false);
    let remotes =
        crate::remote::Remotes::start(&config.hosts, &paths, &registry, shutdown.subscribe());
    let writer = tokio::spawn(crate::snapshot::keep_written(
        paths.snapshot_file(),
        status,
        shutdown.subscribe(),
    ));
    let prices = Arc::new(crate::usage::Prices::builtin().with(config.prices.clone()));
    let notify = crate::notify::Notifier::start(config.notify.clone(), registry.clone());
    let radar = Arc::new(tokio::sync::Notify::new());
    // A first run clears the marks records kept from before a restart.
    radar.notify_one();
    tokio::spawn(crate::review::radar::keep_fresh(
        registry.clone(),
        radar.clone(),
        shutdown.subscribe(),
    ));
    let daemon = Arc::new(Daemon {
        registry,
        reports,
        paths,
        config,
        prices,
        info,
        remotes,
        notify,
        fswatch: crate::fswatch::FsWatch::start(),
        shutdown,
        keep_agents: std::sync::atomic::AtomicBool::new(false),
        runs: std::sync::Mutex::default(),
        radar,
        snapshot_writer: std::sync::Mutex::new(Some(writer)),
    });
    daemon.notify.answer_actions(Arc::downgrade(&daemon));
    crate::rpc::take_back(&daemon, left).await;
    Ok(daemon)
}

/// Serve connections until `shutdown` completes or a client asks the host to stop;
/// then stop every agent (unless asked to leave them to their keepers) and let the
/// registry reach the disk.
pub async fn run(listener: UnixListener, daemon: Arc<Daemon>, shutdown: impl Future<Output = ()>) {
    let mut stop_requested = daemon.shutdown.subscribe();
    tokio::pin!(shutdown);
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    match stream.peer_cred() {
                        Ok(cred) if cred.uid() == me => {
                            tokio::spawn(crate::connection::serve(stream, daemon.clone()));
                        }
                        // Closed without a reply: another user learns nothing from the host.
                        Ok(cred) => tracing::warn!(
                            uid = cred.uid(),
                            pid = ?cred.pid(),
                            host_uid = me,
                            "refused a connection from another user: only the host's own user may connect"
                        ),
                        Err(e) => tracing::warn!(error = %e, "refused a connection whose peer is unknown"),
                    }
                }
                Err(e) => {
                    // EMFILE and the like: log and go on; the listener itself is fine.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::task::yield_now().await;
                }
            },
            () = &mut shutdown => break,
            changed = stop_requested.changed() => if changed.is_err() || *stop_requested.borrow() { break },
        }
    }
    tracing::info!("shutting down");
    drop(listener);
    daemon.shutdown.send_replace(true);
    if daemon
        .keep_agents
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        tracing::info!("leaving the agents to their keepers");
        daemon.registry.flush().await;
    } else {
        stop_all(&daemon).await;
    }
    let writer = daemon
        .snapshot_writer
        .lock()
        .ok()
        .and_then(|mut w| w.take());
    if let Some(writer) = writer {
        let _ = writer.await;
    }
    let _ = std::fs::remove_file(&daemon.paths.socket);
    let _ = std::fs::remove_file(daemon.paths.snapshot_file());
}

/// Stop every running agent (gracefully, in parallel) and flush the registry.
async fn stop_all(daemon: &Daemon) {
    let running = daemon.registry.running().await.unwrap_or_default();
    let mut stops = tokio::task::JoinSet::new();
    for (name, handle) in running {
        tracing::info!(session = %name, "stopping");
        stops.spawn(async move {
            handle
                .ask(|reply| session::Command::Stop {
                    force: false,
                    reply,
                })
                .await
        });
    }
    while stops.join_next().await.is_some() {}
    daemon.registry.flush().await;
}
