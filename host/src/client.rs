//! The client side of the protocol, used by the CLI (and tests): connect (starting a
//! host when none answers, as tmux does), call methods, read notifications.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use canopy_protocol::frame::RawMessage;
use canopy_protocol::frame::{self, FrameError};
use canopy_protocol::{Decoder, Message, RpcError};
use rmpv::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::paths::Paths;

/// How long a client waits for a host it started to report ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong talking to the host.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No host answers on the socket.
    #[error("cannot connect to the Canopy host at {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The socket path is too long for a unix socket on this system.
    #[error(transparent)]
    SocketPath(#[from] crate::paths::SocketPathTooLong),
    /// Starting a host failed.
    #[error("cannot start the Canopy host: {0}")]
    Start(String),
    #[error("connection to the host failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the host sent bad data: {0}")]
    Frame(#[from] FrameError),
    #[error("the host closed the connection")]
    Closed,
    /// The host answered with an error.
    #[error("{0}")]
    Rpc(RpcError),
    /// A result did not have the expected shape (a host of another version?).
    #[error("unexpected reply from the host: {0}")]
    Decode(String),
}

/// Reads messages from the host.
pub struct Reader {
    rd: OwnedReadHalf,
    decoder: Decoder,
    buf: Vec<u8>,
    /// Messages read while waiting for a response, as their bytes: read again, typed or
    /// not, before anything newer.
    queued: Decoder,
}

impl Reader {
    /// The next message, or `None` when the host closed the connection.
    pub async fn next(&mut self) -> Result<Option<Message>, ClientError> {
        match self.next_frame().await? {
            Some(frame) => Ok(Some(frame.message()?)),
            None => Ok(None),
        }
    }

    /// The next message as the bytes it came in (typed params decode straight from
    /// them), or `None` when the host closed the connection.
    pub async fn next_frame(&mut self) -> Result<Option<RawMessage<'_>>, ClientError> {
        if self.queued.has_frame()? {
            return Ok(self.queued.next_frame()?);
        }
        while !self.decoder.has_frame()? {
            if !self.fill().await? {
                return Ok(None);
            }
        }
        Ok(self.decoder.next_frame()?)
    }

    /// The result of request `id`, decoded straight from the frame into `R`; whatever
    /// arrives before it is kept for [`Reader::next`].
    async fn response<R: DeserializeOwned>(&mut self, id: u32) -> Result<R, ClientError> {
        loop {
            while let Some(frame) = self.decoder.next_frame()? {
                if frame.id() == Some(id) && frame.method().is_none() {
                    return match frame.result() {
                        Ok(Ok(result)) => Ok(result),
                        Ok(Err(error)) => Err(ClientError::Rpc(rpc_error(error))),
                        Err(e) => Err(ClientError::Decode(e.to_string())),
                    };
                }
                self.queued.feed(frame.bytes());
            }
            if !self.fill().await? {
                return Err(ClientError::Closed);
            }
        }
    }

    /// Read what the socket has into the decoder; false when the host closed it.
    async fn fill(&mut self) -> Result<bool, ClientError> {
        let n = self.rd.read(&mut self.buf).await?;
        self.decoder.feed(&self.buf[..n]);
        Ok(n > 0)
    }
}

/// Writes messages to the host.
pub struct Writer {
    wr: OwnedWriteHalf,
}

impl Writer {
    pub async fn send(&mut self, msg: &Message) -> Result<(), ClientError> {
        self.write(&msg.encode()).await
    }

    pub async fn notify<P: Serialize>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<(), ClientError> {
        let bytes = frame::encode_notification(method, params)
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        self.write(&bytes).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.wr.write_all(bytes).await?;
        Ok(())
    }
}

/// A connection to the host.
pub struct Client {
    pub reader: Reader,
    pub writer: Writer,
    next_id: u32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Client")
    }
}

impl Client {
    /// Connect to a running host.
    pub async fn connect(path: &Path) -> Result<Client, ClientError> {
        Ok(Client::over(stream(path).await?))
    }

    fn over(stream: UnixStream) -> Client {
        let (rd, wr) = stream.into_split();
        Client {
            reader: Reader {
                rd,
                decoder: Decoder::new(),
                buf: vec![0; 64 * 1024],
                queued: Decoder::new(),
            },
            writer: Writer { wr },
            next_id: 1,
        }
    }

    /// Connect, starting a host in the background first if none answers.
    pub async fn connect_or_start(paths: &Paths) -> Result<Client, ClientError> {
        Ok(Client::over(stream_or_start(paths).await?))
    }

    /// Call `method` with one map of params and decode the result.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let bytes = frame::encode_request(id, method, params)
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        self.writer.write(&bytes).await?;
        self.reader.response(id).await
    }
}

/// The socket of a running host.
async fn stream(path: &Path) -> Result<UnixStream, ClientError> {
    crate::paths::check_socket_path(path)?;
    UnixStream::connect(path)
        .await
        .map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })
}

/// The host's socket, starting a host in the background first if none answers.
pub async fn stream_or_start(paths: &Paths) -> Result<UnixStream, ClientError> {
    match stream(&paths.socket).await {
        Ok(s) => return Ok(s),
        Err(ClientError::Connect { source, .. }) if host_absent(&source) => {}
        Err(e) => return Err(e),
    }
    let for_start = paths.clone();
    tokio::task::spawn_blocking(move || start_host(&for_start))
        .await
        .map_err(|e| ClientError::Start(e.to_string()))??;
    stream(&paths.socket).await
}

/// Read an error object, tolerating hosts that send a plain string.
pub fn rpc_error(value: Value) -> RpcError {
    frame::from_value::<RpcError>(value.clone()).unwrap_or_else(|_| {
        RpcError::new(
            canopy_protocol::ErrorCode::Unknown,
            value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string()),
        )
    })
}

fn host_absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    )
}

/// Start a detached host and wait until it reports ready. A lock makes concurrent
/// clients start one host between them.
fn start_host(paths: &Paths) -> Result<(), ClientError> {
    crate::daemon::ensure_private_dir(&paths.runtime_dir)
        .map_err(|e| ClientError::Start(e.to_string()))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(paths.start_lock())
        .map_err(|e| ClientError::Start(format!("{}: {e}", paths.start_lock().display())))?;
    // SAFETY: flock on a descriptor we own; released when `lock` is dropped.
    unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    // Another client may have started one while we waited for the lock.
    if std::os::unix::net::UnixStream::connect(&paths.socket).is_ok() {
        return Ok(());
    }

    std::fs::create_dir_all(&paths.state_dir)
        .map_err(|e| ClientError::Start(format!("{}: {e}", paths.state_dir.display())))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.log_file())
        .map_err(|e| ClientError::Start(format!("{}: {e}", paths.log_file().display())))?;
    let exe = std::env::current_exe().map_err(|e| ClientError::Start(e.to_string()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["host", "--daemon"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the host leaves our terminal's session so
    // closing the terminal does not end it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| ClientError::Start(e.to_string()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ClientError::Start("no pipe".into()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(START_TIMEOUT).map_err(|_| {
        ClientError::Start(format!(
            "it did not become ready within {}s; see {}",
            START_TIMEOUT.as_secs(),
            paths.log_file().display()
        ))
    })?;
    match line.trim_end() {
        "ready" => Ok(()),
        "" => Err(ClientError::Start(format!(
            "it exited at once; see {}",
            paths.log_file().display()
        ))),
        other => Err(ClientError::Start(
            other.trim_start_matches("error: ").to_owned(),
        )),
    }
}
