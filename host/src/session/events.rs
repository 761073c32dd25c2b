//! An agent's own event stream (Server-Sent Events from its loopback server, as
//! OpenCode has), followed on a thread of its own, and replies posted back to it.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// How long the agent's server may take to come up before Canopy stops trying.
const STARTUP: Duration = Duration::from_secs(120);

/// How long a request may wait for the response head. A server that accepted the
/// connection while still booting may never answer it; Canopy asks again instead.
const ANSWER: Duration = Duration::from_secs(3);

/// For the event stream: its body never ends, so only the head is timed.
fn stream_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(ANSWER))
        .timeout_recv_response(Some(ANSWER))
        .build()
        .into()
}

/// For one-shot requests (readiness, catch-up).
fn request_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(ANSWER))
        .build()
        .into()
}

/// Reads the agent's current state over its server, as events, for what happened before
/// the stream was connected: given a GET function (path → JSON), the events to replay.
pub type CatchUp =
    Box<dyn Fn(&dyn Fn(&str) -> Option<serde_json::Value>) -> Vec<serde_json::Value> + Send>;

/// Follow the SSE stream at `server` + `path`, sending each event's JSON (after the
/// catch-up events on each connection), until `events` closes. Connection attempts back
/// off and stop after [`STARTUP`] without success, so a server that never comes up
/// costs no wakeups for long.
pub fn follow(
    server: String,
    path: String,
    ready_path: Option<String>,
    catch_up: CatchUp,
    events: mpsc::UnboundedSender<serde_json::Value>,
) {
    let url = format!("{server}{path}");
    let spawned = std::thread::Builder::new()
        .name("canopy-events".into())
        .spawn(move || {
            let (agent, requests) = (stream_agent(), request_agent());
            let mut backoff = Duration::from_millis(50);
            let mut failing_since = Instant::now();
            while !events.is_closed() {
                // A stream opened while the server still boots may never deliver:
                // connect once the server says it is up.
                let ready = ready_path
                    .as_deref()
                    .is_none_or(|p| requests.get(format!("{server}{p}")).call().is_ok());
                let attempt = if ready {
                    agent.get(&url).header("Accept", "text/event-stream").call()
                } else {
                    Err(ureq::Error::ConnectionFailed)
                };
                match attempt {
                    Ok(response) => {
                        backoff = Duration::from_millis(50);
                        let get = |p: &str| -> Option<serde_json::Value> {
                            let mut r = requests.get(format!("{server}{p}")).call().ok()?;
                            serde_json::from_reader(r.body_mut().as_reader()).ok()
                        };
                        for event in catch_up(&get) {
                            if events.send(event).is_err() {
                                return;
                            }
                        }
                        let reader = BufReader::new(response.into_body().into_reader());
                        for line in reader.lines() {
                            let Ok(line) = line else { break };
                            let Some(data) = line.strip_prefix("data:") else { continue };
                            match serde_json::from_str(data.trim()) {
                                Ok(v) => {
                                    if events.send(v).is_err() {
                                        return;
                                    }
                                }
                                Err(e) => tracing::debug!(error = %e, "unreadable agent event"),
                            }
                        }
                        failing_since = Instant::now();
                    }
                    Err(e) => {
                        if failing_since.elapsed() > STARTUP {
                            tracing::warn!(%url, error = %e, "giving up on the agent's event stream");
                            return;
                        }
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot follow the agent's events");
    }
}

/// POST a JSON body to the agent's server.
pub fn post_json(url: &str, body: &serde_json::Value) -> Result<(), String> {
    request_agent()
        .post(url)
        .content_type("application/json")
        .send(body.to_string())
        .map(|_| ())
        .map_err(|e| format!("{url}: {e}"))
}
