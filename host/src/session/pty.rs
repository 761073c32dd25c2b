//! An agent's pseudo-terminal as the host drives it, without threads: the master side
//! (received from the agent's [`keeper`](super::keeper)) is a non-blocking fd registered
//! with tokio. Should the keeper die, the agent's exit is still seen through a pidfd
//! (Linux) or a kqueue `EVFILT_PROC` filter (macOS).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// What to run and where.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpawnSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// The complete environment of the process.
    pub env: Vec<(String, String)>,
    pub rows: u16,
    pub cols: u16,
}

/// How the process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code, when the process exited rather than being killed.
    pub code: Option<i32>,
    /// The signal's description, when it was killed.
    pub signal: Option<String>,
}

impl ExitStatus {
    pub(super) fn from_pty(status: &portable_pty::ExitStatus) -> Self {
        match status.signal() {
            Some(signal) => Self {
                code: None,
                signal: Some(signal.to_owned()),
            },
            None => Self {
                code: Some(status.exit_code() as i32),
                signal: None,
            },
        }
    }

    /// One phrase for state details: "exited with code 0", "killed by signal 9
    /// (SIGKILL)" — the number and name people look up, not only the C library's text.
    pub fn describe(&self) -> String {
        match (&self.code, &self.signal) {
            (_, Some(text)) => match signal_number(text) {
                Some((number, name)) => format!("killed by signal {number} ({name})"),
                None => format!("killed by signal: {text}"),
            },
            (Some(code), None) => format!("exited with code {code}"),
            (None, None) => "exited".to_owned(),
        }
    }
}

/// The signals an agent is commonly ended by, with their names.
const SIGNALS: &[(libc::c_int, &str)] = &[
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGTRAP, "SIGTRAP"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGFPE, "SIGFPE"),
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGSYS, "SIGSYS"),
];

/// The number and name of a signal from the text portable-pty reports for it, which is
/// `strsignal`'s description ("Killed") or, for a signal without one, "Signal N".
fn signal_number(text: &str) -> Option<(libc::c_int, &'static str)> {
    if let Some(n) = text
        .strip_prefix("Signal ")
        .and_then(|n| n.parse::<libc::c_int>().ok())
    {
        return SIGNALS.iter().copied().find(|(s, _)| *s == n);
    }
    SIGNALS.iter().copied().find(|(number, _)| {
        // SAFETY: strsignal returns a pointer to a NUL-terminated description (for the
        // known signals above, a constant string) that we only read before returning.
        let described = unsafe { libc::strsignal(*number) };
        !described.is_null()
            && unsafe { std::ffi::CStr::from_ptr(described) }.to_string_lossy() == text
    })
}

/// A running process and its terminal.
pub struct Pty {
    /// The master side, non-blocking, registered with the reactor.
    io: AsyncFd<OwnedFd>,
    pub pid: u32,
}

impl std::fmt::Debug for Pty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pty").field("pid", &self.pid).finish()
    }
}

/// Register a descriptor we own with the reactor.
fn register(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns `fd`, so it stays open and the same for its lifetime.
    unsafe { AsyncFd::register_with_interest(fd, interest) }
        .map_err(|e| io::Error::other(e.to_string()))
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl flag calls on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Pty {
    /// Drive the terminal whose master side is `master`, where `pid` runs.
    pub fn new(master: OwnedFd, pid: u32) -> io::Result<Self> {
        set_nonblocking(master.as_raw_fd())?;
        Ok(Self {
            io: register(master, Interest::READABLE | Interest::WRITABLE)?,
            pid,
        })
    }

    /// Read available output. `Ok(0)` means the terminal closed (every process holding
    /// its slave side is gone).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.io.readable().await?;
            match guard.try_io(|fd| sys_read(fd.as_raw_fd(), buf)) {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Read whatever is buffered right now without waiting.
    pub fn read_now(&self, buf: &mut [u8]) -> usize {
        sys_read(self.io.as_raw_fd(), buf).unwrap_or(0)
    }

    /// Write some of `data` when the terminal accepts it; returns how much was written.
    pub async fn write(&self, data: &[u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.io.writable().await?;
            match guard.try_io(|fd| sys_write(fd.as_raw_fd(), data)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// The terminal's size (rows, columns).
    pub fn size(&self) -> io::Result<(u16, u16)> {
        // SAFETY: all-zero is a valid winsize.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one winsize into `size`.
        if unsafe { libc::ioctl(self.io.as_raw_fd(), libc::TIOCGWINSZ, &raw mut size) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((size.ws_row, size.ws_col))
    }

    pub fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        let size = libc::winsize {
            ws_row: rows.max(1),
            ws_col: cols.max(1),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize; the kernel signals the foreground group.
        if unsafe { libc::ioctl(self.io.as_raw_fd(), libc::TIOCSWINSZ, &raw const size) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Signal the process group the agent leads (it runs in its own session), so its
    /// tools go with it.
    pub fn signal_group(&self, signal: libc::c_int) {
        if self.pid > 0 {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                if libc::kill(-(self.pid as libc::pid_t), signal) != 0 {
                    libc::kill(self.pid as libc::pid_t, signal);
                }
            }
        }
    }
}

fn sys_read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() writable bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn sys_write(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: data is valid for data.len() readable bytes.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Wait until `pid` (the keeper's child, not ours) has exited: through the system's
/// exit event where there is one, else by checking every second.
pub(super) async fn exited(pid: u32) {
    if let Some(event) = exit_event(pid) {
        let _ = event.readable().await;
        return;
    }
    // SAFETY: signal 0 only checks that the process exists.
    while unsafe { libc::kill(pid as libc::pid_t, 0) } == 0 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// A descriptor on the reactor that turns readable once `pid` has exited: a pidfd.
#[cfg(target_os = "linux")]
fn exit_event(pid: u32) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the syscall returned a fresh descriptor we now own.
    register(
        unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
        Interest::READABLE,
    )
    .ok()
}

/// A descriptor on the reactor that turns readable once `pid` has exited: a kqueue of
/// its own holding one `EVFILT_PROC`/`NOTE_EXIT` filter (a kqueue is readable while an
/// event is pending, so tokio's kqueue watches it like any fd).
#[cfg(target_os = "macos")]
fn exit_event(pid: u32) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: kqueue takes no arguments and returns a new fd or -1. A kqueue is not
    // inherited across fork, so agents spawned later never hold it.
    let kq = unsafe { libc::kqueue() };
    if kq < 0 {
        return None;
    }
    // SAFETY: kq is a fresh descriptor we now own.
    let kq = unsafe { OwnedFd::from_raw_fd(kq) };
    let change = libc::kevent {
        ident: pid as libc::uintptr_t,
        filter: libc::EVFILT_PROC,
        flags: libc::EV_ADD | libc::EV_ONESHOT,
        fflags: libc::NOTE_EXIT,
        data: 0,
        udata: std::ptr::null_mut(),
    };
    // SAFETY: one change read from `change`, no event buffer, no timeout. It fails with
    // ESRCH when the process has already exited; the blocking wait then returns at once.
    let added = unsafe {
        libc::kevent(
            kq.as_raw_fd(),
            &change,
            1,
            std::ptr::null_mut(),
            0,
            std::ptr::null(),
        )
    };
    if added < 0 {
        return None;
    }
    register(kq, Interest::READABLE).ok()
}

/// No exit event here: a thread blocks in `wait` instead.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn exit_event(_pid: u32) -> Option<AsyncFd<OwnedFd>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn killed_by(signal: libc::c_int) -> String {
        // What portable-pty reports: strsignal's text.
        // SAFETY: as in `signal_number`.
        let text = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(signal)) };
        ExitStatus {
            code: None,
            signal: Some(text.to_string_lossy().into_owned()),
        }
        .describe()
    }

    #[test]
    fn a_signal_is_named_by_number_and_name() {
        assert_eq!(killed_by(libc::SIGKILL), "killed by signal 9 (SIGKILL)");
        assert_eq!(killed_by(libc::SIGTERM), "killed by signal 15 (SIGTERM)");
        let odd = ExitStatus {
            code: None,
            signal: Some("Real-time signal 3".into()),
        };
        assert_eq!(odd.describe(), "killed by signal: Real-time signal 3");
        let exited = ExitStatus {
            code: Some(7),
            signal: None,
        };
        assert_eq!(exited.describe(), "exited with code 7");
    }
}
