//! The keeper: one small process per agent that owns the agent's terminal, so the agent
//! outlives the host (a crash, `kill -9`, an upgrade) and the next host takes it back.
//!
//! The host starts `canopy keep` with an [`Order`] on its stdin. The keeper opens the
//! terminal, starts the agent in it, listens on a unix socket in the private runtime
//! directory and prints the agent's pid (or `error: …`) as one line. On every
//! connection it sends a hello line with the terminal's master side attached
//! (`SCM_RIGHTS`), and once the agent has ended, its exit status as a line; it leaves
//! when a host answers that line with `done` (so a host that dies before reading it
//! leaves the status for the next one). The keeper reads nothing else: resizing and
//! signals go straight to the terminal and the process group.

use std::io::{self, BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use super::pty::{ExitStatus, SpawnSpec};

/// What a keeper is asked to run, and where to listen.
#[derive(Debug, Serialize, Deserialize)]
pub struct Order {
    pub spec: SpawnSpec,
    pub socket: PathBuf,
    pub meta: Meta,
}

/// What the next host needs to know of the agent beyond its record, kept for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The agent's own loopback server (OpenCode).
    pub server: Option<String>,
}

/// A line from keeper to host.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Hello { pid: u32, meta: Meta },
    Exit(ExitStatus),
}

/// The host's answer once it has the exit status.
const DONE: &[u8] = b"done\n";

/// How long a host waits for a keeper's hello before it gives up on it.
const HELLO_WAIT: Duration = Duration::from_secs(5);

/// An agent's terminal, taken from its keeper.
#[derive(Debug)]
pub struct Kept {
    /// The terminal's master side (the keeper holds another copy).
    pub master: OwnedFd,
    pub pid: u32,
    pub meta: Meta,
    /// The agent's exit status, once it has ended.
    pub exit: oneshot::Receiver<ExitStatus>,
}

/// The keeper's socket for the terminal named `name` (a session, or `NAME.run` for its
/// dev server).
pub fn socket(runtime_dir: &Path, name: &str) -> PathBuf {
    runtime_dir.join("keep").join(name)
}

/// Start a keeper for `order` and take the terminal from it. Blocking: it waits for the
/// agent to be started (run it on the blocking pool).
pub fn start(order: &Order) -> io::Result<Kept> {
    if let Some(dir) = order.socket.parent() {
        crate::daemon::ensure_private_dir(dir).map_err(io::Error::other)?;
    }
    let mut child = std::process::Command::new(own_exe()?);
    child
        .arg("keep")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe. A session of its own: no terminal or process
    // group signal meant for the host (Ctrl+C in its terminal, its group killed) reaches
    // the keeper.
    unsafe {
        child.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = child.spawn()?;
    let input = serde_json::to_vec(order).map_err(io::Error::other)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&input)?;
    }
    let mut first = String::new();
    if let Some(stdout) = child.stdout.take() {
        BufReader::new(stdout).read_line(&mut first)?;
    }
    // Reap it whenever it leaves (a host that dies first leaves that to init).
    std::thread::Builder::new()
        .name("canopy-keeper-wait".into())
        .spawn(move || child.wait())?;
    let first = first.trim();
    if let Some(error) = first.strip_prefix("error: ") {
        return Err(io::Error::other(error.to_owned()));
    }
    if first.parse::<u32>().is_err() {
        return Err(io::Error::other(format!(
            "the keeper ended before starting the agent ({first:?})"
        )));
    }
    adopt(&order.socket)?
        .ok_or_else(|| io::Error::other("the keeper left before the host could reach it"))
}

/// Take back the terminal of a keeper listening at `socket` (one an earlier host left),
/// if there is one. Needs a tokio runtime, which receives its exit status.
pub fn adopt(socket: &Path) -> io::Result<Option<Kept>> {
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            // Nobody listens: a keeper that left without cleaning up.
            let _ = std::fs::remove_file(socket);
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(Some(HELLO_WAIT))?;
    let (hello, master, rest) = receive_hello(&stream)?;
    let Line::Hello { pid, meta } = hello else {
        return Err(io::Error::other("the keeper did not say hello"));
    };
    stream.set_read_timeout(None)?;
    stream.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(stream)?;
    let (tx, exit) = oneshot::channel();
    tokio::spawn(follow(stream, rest, pid, tx));
    Ok(Some(Kept {
        master,
        pid,
        meta,
        exit,
    }))
}

/// Read the hello line and the descriptor sent with it; returns what followed it.
fn receive_hello(stream: &UnixStream) -> io::Result<(Line, OwnedFd, Vec<u8>)> {
    let mut data = Vec::new();
    let mut master = None;
    while !data.contains(&b'\n') {
        let mut buf = [0u8; 4096];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = rustix::net::recvmsg(
            stream.as_fd(),
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RECV_CLOEXEC,
        )?;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = message {
                for fd in fds {
                    set_cloexec(&fd)?;
                    master.get_or_insert(fd);
                }
            }
        }
        if got.bytes == 0 {
            return Err(io::Error::other("the keeper closed before its hello"));
        }
        data.extend_from_slice(&buf[..got.bytes]);
    }
    let end = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let line = serde_json::from_slice(&data[..end]).map_err(io::Error::other)?;
    let master = master.ok_or_else(|| io::Error::other("the keeper sent no terminal"))?;
    Ok((line, master, data.split_off(end + 1)))
}

/// Received descriptors close on exec, so agents started later never hold another's
/// terminal: atomically where the system can (Linux), else just after the receipt.
#[cfg(any(target_os = "linux", target_os = "android"))]
const RECV_CLOEXEC: RecvFlags = RecvFlags::CMSG_CLOEXEC;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const RECV_CLOEXEC: RecvFlags = RecvFlags::empty();

fn set_cloexec(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: plain fcntl flag calls on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags | libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Wait for the exit line, answer it, and pass the status on. A keeper that goes away
/// without one was killed: the agent's own exit is then watched, its status unknown.
async fn follow(
    stream: tokio::net::UnixStream,
    rest: Vec<u8>,
    pid: u32,
    tx: oneshot::Sender<ExitStatus>,
) {
    let (read, mut write) = stream.into_split();
    let earlier = std::io::Cursor::new(rest);
    let mut lines =
        tokio::io::BufReader::new(tokio::io::AsyncReadExt::chain(earlier, read)).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(Line::Exit(status)) = serde_json::from_str(&line) {
            let _ = tx.send(status);
            let _ = write.write_all(DONE).await;
            return;
        }
    }
    tracing::warn!(
        pid,
        "the agent's keeper went away; watching the agent itself"
    );
    super::pty::exited(pid).await;
    let _ = tx.send(ExitStatus {
        code: None,
        signal: None,
    });
}

/// The host's own executable, for starting keepers: after an upgrade replaced it on
/// disk, the new one at the same path.
fn own_exe() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let text = exe.to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => exe,
    })
}

/// What the keeper and the waiting thread share.
#[derive(Default)]
struct Shared {
    exit: Option<ExitStatus>,
    /// The connected host, if any, and its number.
    host: Option<(u64, UnixStream)>,
}

/// `canopy keep`: the keeper process.
pub fn main() -> ExitCode {
    let mut input = Vec::new();
    let order = io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice::<Order>(&input).map_err(|e| e.to_string()));
    let result = order.and_then(|order| keep(&order).map_err(|e| e.to_string()));
    match result {
        Ok(never) => match never {},
        Err(e) => {
            println!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Start the agent, report its pid and serve hosts until one has its exit status.
fn keep(order: &Order) -> io::Result<std::convert::Infallible> {
    let spec = &order.spec;
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: spec.rows.max(1),
            cols: spec.cols.max(1),
            pixel_width: 0,
            pixel_height: 0,
        })
        .map_err(io::Error::other)?;
    let mut cmd = CommandBuilder::new(&spec.program);
    cmd.args(&spec.args);
    cmd.cwd(&spec.cwd);
    cmd.env_clear();
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    let mut child = pair.slave.spawn_command(cmd).map_err(io::Error::other)?;
    // Holding the slave open would keep the terminal from ever closing.
    drop(pair.slave);
    let pid = child.process_id().unwrap_or(0);
    let master = pair
        .master
        .as_raw_fd()
        .ok_or_else(|| io::Error::other("the terminal has no file descriptor"))?;
    // We hold the lock on nothing: a file here is a keeper that is gone, or ours.
    let _ = std::fs::remove_file(&order.socket);
    let listener = UnixListener::bind(&order.socket)?;
    println!("{pid}");
    io::stdout().flush()?;
    detach_stdio();

    let shared = Arc::new(Mutex::new(Shared::default()));
    let waiting = shared.clone();
    std::thread::Builder::new()
        .name("canopy-keep-wait".into())
        .spawn(move || {
            let status = child.wait().map_or(
                ExitStatus {
                    code: None,
                    signal: None,
                },
                |s| ExitStatus::from_pty(&s),
            );
            let mut shared = waiting.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, host)) = &mut shared.host {
                let _ = send_line(host, &Line::Exit(status.clone()));
            }
            shared.exit = Some(status);
        })?;

    for (number, host) in (1u64..).zip(listener.incoming()) {
        let Ok(mut host) = host else { continue };
        let hello = Line::Hello {
            pid,
            meta: order.meta.clone(),
        };
        if send_hello(&host, &hello, master).is_err() {
            continue;
        }
        let mut guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(status) = &guard.exit {
            let _ = send_line(&mut host, &Line::Exit(status.clone()));
        }
        let Ok(reader) = host.try_clone() else {
            continue;
        };
        // One host at a time: an older connection is a host that is gone.
        if let Some((_, old)) = guard.host.replace((number, host)) {
            let _ = old.shutdown(std::net::Shutdown::Both);
        }
        drop(guard);
        let socket = order.socket.clone();
        std::thread::Builder::new()
            .name("canopy-keep-host".into())
            .spawn(move || {
                let mut answer = String::new();
                let _ = BufReader::new(reader).read_line(&mut answer);
                if answer.as_bytes() == DONE {
                    let _ = std::fs::remove_file(&socket);
                    std::process::exit(0);
                }
            })?;
    }
    Err(io::Error::other("the keeper's socket closed"))
}

/// Point stdin, stdout and stderr at /dev/null: the host's pipes are not ours to hold.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn send_line(host: &mut UnixStream, line: &Line) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(line).map_err(io::Error::other)?;
    bytes.push(b'\n');
    host.write_all(&bytes)
}

/// The hello line, with the terminal attached.
fn send_hello(host: &UnixStream, line: &Line, master: std::os::fd::RawFd) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(line).map_err(io::Error::other)?;
    bytes.push(b'\n');
    // SAFETY: `master` stays open for the keeper's whole life (it owns the terminal).
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(master) };
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    // SIGPIPE stays ignored in the keeper (Rust's default), so a host gone away is
    // only an error here.
    let sent = rustix::net::sendmsg(
        host.as_fd(),
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::empty(),
    )?;
    // The descriptor went with the first bytes; the rest is plain data.
    (&*host).write_all(&bytes[sent..])
}
