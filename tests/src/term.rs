//! A real terminal for tests: a command in a PTY, its output collected on a thread.

use std::io::{Read, Write};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// A command running in a real PTY.
pub struct Term {
    writer: Box<dyn Write + Send>,
    /// Everything the command printed so far (the reader thread appends).
    output: Arc<Mutex<Vec<u8>>>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

/// A command in a PTY, before anything reads it: the child, the output side, and the
/// master (kept open for the child's sake).
pub struct RawTerm {
    pub child: Box<dyn portable_pty::Child + Send + Sync>,
    pub reader: Box<dyn Read + Send>,
    pub master: Box<dyn portable_pty::MasterPty + Send>,
}

impl RawTerm {
    /// Run `cmd` (program, args, env and cwd are taken from it; only the variables it
    /// sets) in a rows×cols PTY.
    pub fn spawn(cmd: &Command, rows: u16, cols: u16) -> RawTerm {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("openpty");
        let mut builder = CommandBuilder::new(cmd.get_program());
        builder.args(cmd.get_args());
        builder.env_clear();
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                builder.env(k, v);
            }
        }
        if let Some(dir) = cmd.get_current_dir() {
            builder.cwd(dir);
        }
        let child = pair.slave.spawn_command(builder).expect("spawn in pty");
        drop(pair.slave);
        let reader = pair.master.try_clone_reader().expect("reader");
        RawTerm {
            child,
            reader,
            master: pair.master,
        }
    }
}

impl Term {
    /// Run `cmd` in a rows×cols PTY, collecting its output.
    pub fn spawn(cmd: &Command, rows: u16, cols: u16) -> Term {
        let RawTerm {
            child,
            mut reader,
            master,
        } = RawTerm::spawn(cmd, rows, cols);
        let writer = master.take_writer().expect("writer");
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("output lock")
                    .extend_from_slice(&buf[..n]);
            }
        });
        Term {
            writer,
            output,
            child,
            _master: master,
        }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write to pty");
        self.writer.flush().expect("flush pty");
    }

    /// Everything printed so far, lossily decoded.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("output lock")).into_owned()
    }

    /// Wait until the output contains `needle`.
    pub fn expect(&self, needle: &str, timeout: Duration) {
        crate::wait_for(&format!("{needle:?} on the terminal"), timeout, || {
            self.output().contains(needle).then_some(())
        });
    }

    /// Wait for the command to exit; its exit code.
    pub fn wait(&mut self, timeout: Duration) -> u32 {
        crate::wait_for("the terminal's command to exit", timeout, || {
            self.child
                .try_wait()
                .expect("try_wait")
                .map(|s| s.exit_code())
        })
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
