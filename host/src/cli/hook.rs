//! `canopy hook`: what the agents' hooks run. It hands the payload to the host and
//! never gets in the agent's way: whatever happens (no session, no host, a slow host,
//! bad input), it exits 0 promptly and prints nothing the agent would act on.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::Duration;

use canopy_protocol::method;
use canopy_protocol::params::{HookParams, HookResult};

use crate::agents;
use crate::client::Client;
use crate::paths::Paths;

/// The longest a hook may hold up its agent when the host is slow.
const HOOK_TIMEOUT: Duration = Duration::from_millis(1000);

/// The longest a held permission hook waits (the agent's hook timeout is shorter).
const HELD_TIMEOUT: Duration = Duration::from_secs(48 * 3600);

/// Whether the host may hold this hook open until Canopy answers it.
fn is_held(params: &HookParams) -> bool {
    let Ok(payload) = serde_json::from_str::<serde_json::Value>(&params.payload) else {
        return false;
    };
    let event = payload
        .get("hook_event_name")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    agents::resolve(&params.agent, &Default::default())
        .hook_decision(event, true, None)
        .is_some()
}

pub fn run(paths: &Paths, agent: String, payload_arg: Option<String>) -> ExitCode {
    let Some(session) = std::env::var("CANOPY_SESSION")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        return ExitCode::SUCCESS;
    };
    let payload = match payload_arg {
        Some(p) => p,
        None => {
            let mut text = String::new();
            let stdin = std::io::stdin();
            if !stdin.is_terminal() {
                let _ = stdin.lock().read_to_string(&mut text);
            }
            text
        }
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::SUCCESS;
    };
    let params = HookParams {
        session,
        agent,
        payload,
    };
    // A permission hook that carries Canopy's answer waits for it; the agent's own hook
    // timeout bounds that wait, and its dialog stays usable meanwhile.
    let answer_timeout = if is_held(&params) {
        HELD_TIMEOUT
    } else {
        HOOK_TIMEOUT
    };
    let result = runtime.block_on(async {
        // Never start a host from a hook: no host means nobody is watching.
        let mut client = tokio::time::timeout(HOOK_TIMEOUT, Client::connect(&paths.socket))
            .await
            .ok()?
            .ok()?;
        tokio::time::timeout(
            answer_timeout,
            client.call::<_, HookResult>(method::HOOK, &params),
        )
        .await
        .ok()?
        .ok()
    });
    if let Some(out) = result.and_then(|r| r.stdout) {
        println!("{out}");
    }
    runtime.shutdown_background();
    ExitCode::SUCCESS
}
