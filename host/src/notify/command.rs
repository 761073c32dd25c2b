//! `[notify.command]`: any program, run once per notification and withdrawal with the
//! event as JSON on stdin and `CANOPY_*` variables. It runs in its own process group and
//! is killed (group and all) at its timeout, so a hung program costs only its own
//! notifications.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::settings::secs;
use super::{CommandConfig, Note, Target, TargetError};

pub(super) struct Command {
    run: Vec<String>,
    timeout: Duration,
}

impl Command {
    pub(super) fn new(config: &CommandConfig) -> Self {
        Command {
            run: config.run.clone(),
            timeout: secs(config.timeout_secs, Duration::from_secs(10)),
        }
    }

    async fn run(&self, vars: &[(&str, &str)], stdin: String) -> Result<(), TargetError> {
        let Some((program, args)) = self.run.split_first() else {
            return Err(TargetError::Command("no program".into()));
        };
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .envs(vars.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TargetError::Command(format!("cannot run {program}: {e}")))?;
        let mut input = child.stdin.take();
        let finished = tokio::time::timeout(self.timeout, async {
            if let Some(input) = &mut input {
                // A program that does not read its stdin is fine.
                let _ = input.write_all(stdin.as_bytes()).await;
            }
            drop(input);
            child.wait().await
        })
        .await;
        match finished {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(TargetError::Command(format!("{program}: {status}"))),
            Ok(Err(e)) => Err(TargetError::Command(format!("{program}: {e}"))),
            Err(_) => {
                if let Some(pid) = child.id() {
                    // SAFETY: a signal to the process group we started.
                    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
                }
                let _ = child.wait().await;
                Err(TargetError::Command(format!(
                    "{program} was killed after {}s",
                    self.timeout.as_secs_f64()
                )))
            }
        }
    }
}

impl Target for Command {
    async fn show(&mut self, note: &Note) -> Result<(), TargetError> {
        let mut json =
            serde_json::to_value(note).map_err(|e| TargetError::Command(e.to_string()))?;
        json["action"] = "show".into();
        let vars = [
            ("CANOPY_NOTIFY", "show"),
            ("CANOPY_SESSION", note.name()),
            ("CANOPY_REASON", note.reason.as_str()),
            ("CANOPY_STATE", note.session.state.kind.as_str()),
            ("CANOPY_SUMMARY", &note.summary),
            ("CANOPY_BODY", &note.body),
        ];
        self.run(&vars, json.to_string()).await
    }

    async fn withdraw(&mut self, session: &str) -> Result<(), TargetError> {
        let json = serde_json::json!({ "action": "withdraw", "name": session });
        let vars = [("CANOPY_NOTIFY", "withdraw"), ("CANOPY_SESSION", session)];
        self.run(&vars, json.to_string()).await
    }
}
