//! Desktop notifications: the freedesktop `org.freedesktop.Notifications` interface on
//! the D-Bus session bus (zbus, pure Rust, on tokio). One live notification per session,
//! replaced through `replaces_id` and withdrawn with `CloseNotification`; where the
//! server lists the `actions` capability, a permission request carries Approve, Deny
//! and Open, which come back as `ActionInvoked` signals.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_core::Stream;
use tokio::sync::mpsc;
use zbus::zvariant::Value;
use zbus::{Connection, Proxy};

use super::{Action, Item, Mailbox, Note, Reason, Shared, Target, TargetError};

const DESTINATION: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";
const INTERFACE: &str = "org.freedesktop.Notifications";

/// The desktop target's task: connect, then deliver. Without a session bus it says so
/// once (log and `canopy status`) and drops what it is given.
pub(super) async fn run(mailbox: Arc<Mailbox>, shared: Arc<Shared>, actions: mpsc::Sender<Action>) {
    match Desktop::connect(actions).await {
        Ok((desktop, notice)) => {
            if let Some(notice) = notice {
                shared.notice(notice);
            }
            super::drive(desktop, mailbox).await;
        }
        Err(why) => {
            shared.notice(why.clone());
            loop {
                if let Item::Test(_, reply) = mailbox.next().await {
                    let _ = reply.send(why.clone());
                }
            }
        }
    }
}

struct Desktop {
    proxy: Proxy<'static>,
    /// The server shows action buttons.
    actions: bool,
    /// The server renders markup in bodies, so text must be escaped.
    markup: bool,
    /// Each session's live notification id; shared with the signal listener, which
    /// maps an action back to its session. Never held across an await.
    live: Arc<Mutex<HashMap<String, u32>>>,
}

impl Desktop {
    /// The bus, the server's capabilities, and a listener for its signals. An error is
    /// the notice to show.
    async fn connect(actions: mpsc::Sender<Action>) -> Result<(Desktop, Option<String>), String> {
        let off = |e: zbus::Error| {
            format!("desktop notifications are off: no D-Bus session bus reachable ({e})")
        };
        let connection = Connection::session().await.map_err(off)?;
        let proxy = Proxy::new(&connection, DESTINATION, PATH, INTERFACE)
            .await
            .map_err(off)?;
        let (caps, notice) = match proxy
            .call::<_, _, Vec<String>>("GetCapabilities", &())
            .await
        {
            Ok(caps) => (caps, None),
            Err(e) => (
                Vec::new(),
                Some(format!(
                    "no desktop notification server answered on the session bus ({e}); notifications are sent anyway, without buttons"
                )),
            ),
        };
        tracing::info!(capabilities = ?caps, "desktop notifications over D-Bus");
        let live = Arc::new(Mutex::new(HashMap::new()));
        let invoked = proxy.receive_signal("ActionInvoked").await.map_err(off)?;
        let closed = proxy
            .receive_signal("NotificationClosed")
            .await
            .map_err(off)?;
        tokio::spawn(listen(invoked, closed, live.clone(), actions));
        Ok((
            Desktop {
                proxy,
                actions: caps.iter().any(|c| c == "actions"),
                markup: caps.iter().any(|c| c == "body-markup"),
                live,
            },
            notice,
        ))
    }

    fn live_id(&self, session: &str) -> Option<u32> {
        self.live.lock().ok()?.get(session).copied()
    }
}

impl Target for Desktop {
    async fn show(&mut self, note: &Note) -> Result<(), TargetError> {
        let replaces = self.live_id(note.name()).unwrap_or(0);
        let actions: &[&str] = match (self.actions, note.reason) {
            (false, _) => &[],
            (true, Reason::WaitingPermission) => {
                &["approve", "Approve", "deny", "Deny", "open", "Open"]
            }
            (true, _) => &["open", "Open"],
        };
        let mut hints: HashMap<&str, Value<'_>> = HashMap::new();
        hints.insert("urgency", Value::U8(note.urgency as u8));
        let body = if self.markup {
            escape(&note.body)
        } else {
            note.body.clone()
        };
        let id: u32 = self
            .proxy
            .call(
                "Notify",
                &(
                    "Canopy",
                    replaces,
                    "",
                    note.summary.as_str(),
                    body.as_str(),
                    actions,
                    hints,
                    -1i32,
                ),
            )
            .await?;
        if let Ok(mut live) = self.live.lock() {
            live.insert(note.name().to_owned(), id);
        }
        Ok(())
    }

    async fn withdraw(&mut self, session: &str) -> Result<(), TargetError> {
        let id = self.live.lock().ok().and_then(|mut l| l.remove(session));
        if let Some(id) = id {
            self.proxy
                .call::<_, _, ()>("CloseNotification", &(id,))
                .await?;
        }
        Ok(())
    }
}

/// The server's signals: an action pressed goes to the answering task; a notification
/// closed (dismissed, expired) is forgotten.
async fn listen(
    mut invoked: zbus::proxy::SignalStream<'static>,
    mut closed: zbus::proxy::SignalStream<'static>,
    live: Arc<Mutex<HashMap<String, u32>>>,
    actions: mpsc::Sender<Action>,
) {
    let session_of = |id: u32| -> Option<String> {
        let live = live.lock().ok()?;
        live.iter().find(|(_, v)| **v == id).map(|(k, _)| k.clone())
    };
    loop {
        tokio::select! {
            Some(msg) = next(&mut invoked) => {
                let Ok((id, key)) = msg.body().deserialize::<(u32, String)>() else { continue };
                if let Some(session) = session_of(id) {
                    // Full only when a hundred presses wait: dropping one is harmless.
                    let _ = actions.try_send(Action { session, key });
                }
            }
            Some(msg) = next(&mut closed) => {
                let Ok((id, _reason)) = msg.body().deserialize::<(u32, u32)>() else { continue };
                if let Some(session) = session_of(id)
                    && let Ok(mut live) = live.lock()
                {
                    live.remove(&session);
                }
            }
            else => return,
        }
    }
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// The body markup the spec allows is a small subset of HTML: only `&`, `<` and `>`
/// need escaping for text to show as itself.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
