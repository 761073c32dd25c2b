//! A real OpenSSH server on loopback for the remote-host tests and benchmark: `sshd`
//! on 127.0.0.1 with its own host key and `authorized_keys`, and a client config for
//! `ssh -F` (never `~/.ssh`) with aliases `alpha` and `beta` (the same key) and
//! `stranger` (a key sshd refuses).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{TestEnv, canopy_bin};

/// A running sshd and the client side of it.
pub struct Sshd {
    child: Child,
    /// The client config for `ssh -F`.
    pub config: PathBuf,
    /// Keys, configs and the wrapper scripts.
    pub dir: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Start sshd in `dir`, or say why not (and fail under `CANOPY_REQUIRE_SSHD=1`).
pub fn sshd(test: &str, dir: &Path) -> Option<Sshd> {
    match start_sshd(dir) {
        Ok(sshd) => Some(sshd),
        Err(why) => {
            assert!(
                std::env::var_os("CANOPY_REQUIRE_SSHD").is_none_or(|v| v != "1"),
                "{test}: sshd cannot run here ({why}), and CANOPY_REQUIRE_SSHD=1"
            );
            eprintln!("skipping {test}: sshd cannot run here ({why})");
            None
        }
    }
}

fn start_sshd(dir: &Path) -> Result<Sshd, String> {
    let sshd_bin = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or("no sshd (apt install openssh-server)")?;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("sshd's privilege separation needs root".into());
    }
    // Privilege separation's empty directory, which a container may lack.
    std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    for key in ["host_key", "id", "other_id"] {
        let made = run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join(key)));
        if !made {
            return Err("ssh-keygen failed (apt install openssh-client)".into());
        }
    }
    std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let d = dir.display();
    let server = dir.join("sshd_config");
    std::fs::write(
        &server,
        format!(
            "ListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile none\n\
             PrintMotd no\nLogLevel ERROR\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new(sshd_bin)
        .args(["-D", "-e", "-f"])
        .arg(&server)
        .args(["-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start sshd: {e}"))?;
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let config = dir.join("ssh_config");
    let host = |alias: &str, key: &str| {
        format!(
            "Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/{key}\n  \
             IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        )
    };
    let text = host("alpha", "id") + &host("beta", "id") + &host("stranger", "other_id");
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let mut sshd = Sshd {
        child,
        config,
        dir: dir.to_owned(),
    };
    // Up when a login answers.
    for _ in 0..100 {
        let ok = run(Command::new("ssh").arg("-F").arg(&sshd.config).args([
            "-o",
            "BatchMode=yes",
            "alpha",
            "true",
        ]));
        if ok {
            return Ok(sshd);
        }
        if let Ok(Some(status)) = sshd.child.try_wait() {
            return Err(format!("sshd exited: {status}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("no login through sshd within 10s".into())
}

impl Sshd {
    /// A script the far side runs as its `canopy`: a login banner (junk before the
    /// preamble), then `canopy` in `remote`'s environment.
    pub fn wrapper(&self, name: &str, remote: &TestEnv) -> PathBuf {
        let path = self.dir.join(format!("{name}.sh"));
        let body = format!(
            "#!/bin/sh\necho 'Welcome to {name}! (a banner before the preamble)'\n{}cd '{}'\nexec '{}' \"$@\"\n",
            remote.exports(),
            remote.repo.display(),
            canopy_bin().display()
        );
        std::fs::write(&path, body).expect("write wrapper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// `[hosts.NAME]` reaching ssh alias `alias` and running `canopy` there.
    pub fn host_config(&self, name: &str, alias: &str, canopy: &Path) -> String {
        format!(
            "[hosts.{name}]\nssh = \"{alias}\"\nssh_args = [\"-F\", \"{}\"]\ncanopy = \"{}\"\ntimeout_secs = 5\n",
            self.config.display(),
            canopy.display()
        )
    }
}

/// The pid of `env`'s host's ssh child for the link whose ControlPath is `control`.
pub fn ssh_child(env: &TestEnv, control: &Path) -> Option<i32> {
    let host = env.host_pid()?;
    let wanted = format!("ControlPath={}", control.display());
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let ppid: i32 = crate::proc_stat_field(pid, 1)?.parse().ok()?;
        let cmdline = std::fs::read_to_string(e.path().join("cmdline")).ok()?;
        (ppid == host && cmdline.contains(&wanted)).then_some(pid)
    })
}
