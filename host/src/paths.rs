//! Where Canopy keeps its socket, state, logs and configuration.
//!
//! Socket: `$CANOPY_SOCKET`, else `$XDG_RUNTIME_DIR/canopy/canopy.sock`, else
//! `/tmp/canopy-$UID/canopy.sock` (on macOS `$TMPDIR/canopy-$UID/canopy.sock`, the
//! per-user temporary directory). The socket's directory also holds the status
//! snapshot and the host lock. State (registry, logs): `$XDG_STATE_HOME/canopy`, else
//! `~/.local/state/canopy`. Config: `$XDG_CONFIG_HOME/canopy/config.toml`, else
//! `~/.config/canopy/config.toml` (on macOS too, as command-line tools there expect).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The longest socket path `sockaddr_un` holds with its closing NUL: 107 bytes on
/// Linux, 103 on macOS.
const SOCKET_PATH_MAX: usize =
    size_of::<libc::sockaddr_un>() - std::mem::offset_of!(libc::sockaddr_un, sun_path) - 1;

/// A socket path longer than unix sockets take on this system.
#[derive(Debug, thiserror::Error)]
#[error(
    "the socket path {} is {len} bytes, longer than the {max} a unix socket takes here: set CANOPY_SOCKET to a shorter path",
    path.display()
)]
pub struct SocketPathTooLong {
    pub path: PathBuf,
    pub len: usize,
    pub max: usize,
}

/// Refuse a socket path the system would cut or reject, naming the way out (the OS's
/// own error says only "path must be shorter than SUN_LEN").
pub fn check_socket_path(path: &Path) -> Result<(), SocketPathTooLong> {
    let len = path.as_os_str().len();
    if len > SOCKET_PATH_MAX {
        return Err(SocketPathTooLong {
            path: path.to_owned(),
            len,
            max: SOCKET_PATH_MAX,
        });
    }
    Ok(())
}

/// Where the runtime directory goes without `XDG_RUNTIME_DIR`: `/tmp`, shared by
/// everyone, hence the uid in its name and the 0700 check.
#[cfg(not(target_os = "macos"))]
fn temp_dir(_env: &impl Fn(&str) -> Option<PathBuf>) -> PathBuf {
    PathBuf::from("/tmp")
}

/// macOS has no `XDG_RUNTIME_DIR`; `$TMPDIR` is the user's private temporary
/// directory (`/var/folders/…/T/`). Where it is unset (an ssh login), the same
/// directory comes from `confstr`, so every shell finds the same host.
#[cfg(target_os = "macos")]
fn temp_dir(env: &impl Fn(&str) -> Option<PathBuf>) -> PathBuf {
    env("TMPDIR")
        .or_else(darwin_user_temp_dir)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

#[cfg(target_os = "macos")]
fn darwin_user_temp_dir() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: confstr writes at most buf.len() bytes, NUL included, and returns the
    // length the whole value needs (0 on error).
    let needed = unsafe {
        libc::confstr(
            libc::_CS_DARWIN_USER_TEMP_DIR,
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if needed == 0 || needed > buf.len() {
        return None;
    }
    buf.truncate(needed - 1);
    Some(PathBuf::from(OsString::from_vec(buf)))
}

/// Every path Canopy uses, resolved once from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub socket: PathBuf,
    /// The socket's directory: snapshot file and lock live here.
    pub runtime_dir: PathBuf,
    pub state_dir: PathBuf,
    pub config_file: PathBuf,
}

impl Paths {
    /// Resolve from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var_os(k))
    }

    /// Resolve from any environment, for tests.
    pub fn from_lookup(env: impl Fn(&str) -> Option<OsString>) -> Self {
        let nonempty = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = nonempty("HOME").unwrap_or_else(|| PathBuf::from("/"));
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let socket = nonempty("CANOPY_SOCKET").unwrap_or_else(|| {
            nonempty("XDG_RUNTIME_DIR")
                .map(|d| d.join("canopy"))
                .unwrap_or_else(|| temp_dir(&nonempty).join(format!("canopy-{uid}")))
                .join("canopy.sock")
        });
        let runtime_dir = socket
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let state_dir = nonempty("XDG_STATE_HOME")
            .unwrap_or_else(|| home.join(".local/state"))
            .join("canopy");
        let config_file = nonempty("XDG_CONFIG_HOME")
            .unwrap_or_else(|| home.join(".config"))
            .join("canopy/config.toml");
        Self {
            socket,
            runtime_dir,
            state_dir,
            config_file,
        }
    }

    /// The status snapshot, for front ends that cannot hold a socket.
    pub fn snapshot_file(&self) -> PathBuf {
        self.runtime_dir.join("status.json")
    }

    /// Held (flock) by the running host, so two hosts never share a socket.
    pub fn host_lock(&self) -> PathBuf {
        self.runtime_dir.join("host.lock")
    }

    /// Held by a client while it starts a host, so concurrent clients start only one.
    pub fn start_lock(&self) -> PathBuf {
        self.runtime_dir.join("start.lock")
    }

    /// The ssh connection master of the link to remote host `host`: in the private
    /// runtime directory, so no other user's ssh and no other link shares it.
    pub fn control_path(&self, host: &str) -> PathBuf {
        self.runtime_dir.join("ssh").join(host)
    }

    pub fn registry_db(&self) -> PathBuf {
        self.state_dir.join("registry.sqlite3")
    }

    pub fn log_file(&self) -> PathBuf {
        self.state_dir.join("host.log")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(vars: &[(&str, &str)]) -> Paths {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Paths::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn canopy_socket_wins() {
        let p = resolve(&[
            ("CANOPY_SOCKET", "/x/s.sock"),
            ("XDG_RUNTIME_DIR", "/run/u"),
        ]);
        assert_eq!(p.socket, PathBuf::from("/x/s.sock"));
        assert_eq!(p.snapshot_file(), PathBuf::from("/x/status.json"));
    }

    #[test]
    fn xdg_runtime_dir_next() {
        let p = resolve(&[("XDG_RUNTIME_DIR", "/run/u"), ("HOME", "/h")]);
        assert_eq!(p.socket, PathBuf::from("/run/u/canopy/canopy.sock"));
        assert_eq!(p.state_dir, PathBuf::from("/h/.local/state/canopy"));
        assert_eq!(
            p.config_file,
            PathBuf::from("/h/.config/canopy/config.toml")
        );
    }

    #[cfg(not(target_os = "macos"))]
    #[test]
    fn tmp_with_uid_last() {
        let p = resolve(&[("HOME", "/h"), ("XDG_RUNTIME_DIR", "")]);
        let uid = unsafe { libc::getuid() };
        assert_eq!(
            p.socket,
            PathBuf::from(format!("/tmp/canopy-{uid}/canopy.sock"))
        );
    }

    #[cfg(target_os = "macos")]
    #[test]
    fn tmpdir_with_uid_last_on_macos() {
        let p = resolve(&[("HOME", "/h"), ("TMPDIR", "/var/folders/ab/xyz/T/")]);
        let uid = unsafe { libc::getuid() };
        assert_eq!(
            p.socket,
            PathBuf::from(format!("/var/folders/ab/xyz/T/canopy-{uid}/canopy.sock"))
        );
    }

    #[test]
    fn a_socket_path_too_long_names_the_way_out() {
        let long = PathBuf::from(format!("/{}/canopy.sock", "d".repeat(SOCKET_PATH_MAX)));
        let err = check_socket_path(&long).expect_err("too long");
        assert!(err.to_string().contains("set CANOPY_SOCKET"), "{err}");
        let fits = PathBuf::from(format!("/{}", "s".repeat(SOCKET_PATH_MAX - 1)));
        assert!(check_socket_path(&fits).is_ok());
    }

    #[test]
    fn xdg_state_and_config() {
        let p = resolve(&[("XDG_STATE_HOME", "/s"), ("XDG_CONFIG_HOME", "/c")]);
        assert_eq!(p.registry_db(), PathBuf::from("/s/canopy/registry.sqlite3"));
        assert_eq!(p.config_file, PathBuf::from("/c/canopy/config.toml"));
    }
}
