//! A private D-Bus session bus (a real `dbus-daemon`) and a desktop notification server
//! on it (the server side of `org.freedesktop.Notifications`, in zbus) that records
//! `Notify` and `CloseNotification` calls and emits `ActionInvoked`: the desktop for
//! `tests/notify.rs` and `canopy-bench --only notify`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use zbus::zvariant::OwnedValue;

const PATH: &str = "/org/freedesktop/Notifications";
const INTERFACE: &str = "org.freedesktop.Notifications";

/// A private session bus: `dbus-daemon` on a socket in a temporary directory, stopped
/// when dropped.
pub struct Bus {
    child: Child,
    /// What `DBUS_SESSION_BUS_ADDRESS` should say.
    pub address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bus {
    /// A bus, or `None` (skip) where `dbus-daemon` is missing and `CANOPY_REQUIRE_DBUS`
    /// is not set; with it set, a missing daemon is a failure.
    pub fn start() -> Option<Bus> {
        let installed = Command::new("dbus-daemon")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var_os("CANOPY_REQUIRE_DBUS").is_none(),
                "CANOPY_REQUIRE_DBUS is set but `dbus-daemon` is not installed"
            );
            eprintln!(
                "skipping: dbus-daemon is not installed (set CANOPY_REQUIRE_DBUS=1 to require it)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("session.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                dir.path().display()
            ),
        )
        .expect("write bus config");
        let mut child = Command::new("dbus-daemon")
            .args(["--nofork", "--print-address"])
            .arg(format!("--config-file={}", config.display()))
            .stdout(Stdio::piped())
            // It warns that it cannot raise its fd limit when not root: noise here.
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let mut address = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut address)
            .expect("bus address");
        Some(Bus {
            child,
            address: address.trim().to_owned(),
            _dir: dir,
        })
    }
}

/// A call the notification server received.
#[derive(Debug, Clone)]
pub enum Call {
    Notify {
        id: u32,
        summary: String,
        body: String,
        actions: Vec<String>,
        urgency: Option<u8>,
        /// When the call arrived.
        at: Instant,
    },
    Close(u32),
}

struct Server {
    calls: Arc<Mutex<Vec<Call>>>,
    next_id: u32,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Server {
    fn get_capabilities(&self) -> Vec<String> {
        vec!["actions".into(), "body".into()]
    }

    #[allow(clippy::too_many_arguments)]
    fn notify(
        &mut self,
        _app_name: String,
        replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let id = if replaces_id == 0 {
            self.next_id += 1;
            self.next_id
        } else {
            replaces_id
        };
        let urgency = hints.get("urgency").and_then(|v| u8::try_from(v).ok());
        self.calls.lock().expect("calls").push(Call::Notify {
            id,
            summary,
            body,
            actions,
            urgency,
            at: Instant::now(),
        });
        id
    }

    fn close_notification(&mut self, id: u32) {
        self.calls.lock().expect("calls").push(Call::Close(id));
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "canopy-test".into(),
            "canopy".into(),
            "0".into(),
            "1.2".into(),
        )
    }
}

/// The notification server, serving on its own runtime.
pub struct Notifications {
    calls: Arc<Mutex<Vec<Call>>>,
    connection: zbus::Connection,
    rt: tokio::runtime::Runtime,
}

impl Notifications {
    /// Own `org.freedesktop.Notifications` on the bus at `address`.
    pub fn serve(address: &str) -> Notifications {
        let rt = crate::runtime();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let server = Server {
            calls: calls.clone(),
            next_id: 0,
        };
        let connection = rt
            .block_on(async {
                zbus::connection::Builder::address(address)?
                    .name(INTERFACE)?
                    .serve_at(PATH, server)?
                    .build()
                    .await
            })
            .expect("notification server on the bus");
        Notifications {
            calls,
            connection,
            rt,
        }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    /// `Notify` calls whose summary starts with `prefix`.
    pub fn notified(&self, prefix: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| matches!(c, Call::Notify { summary, .. } if summary.starts_with(prefix)))
            .collect()
    }

    /// The user pressed `key` on notification `id`.
    pub fn press(&self, id: u32, key: &str) {
        self.rt
            .block_on(self.connection.emit_signal(
                None::<zbus::names::BusName<'_>>,
                PATH,
                INTERFACE,
                "ActionInvoked",
                &(id, key),
            ))
            .expect("emit ActionInvoked");
    }
}
