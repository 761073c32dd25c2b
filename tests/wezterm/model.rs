//! A model of the WezTerm Lua surface the Canopy plugin touches, written from WezTerm's
//! source (github.com/wez/wezterm); each behaviour names the file it follows. The pure
//! Lua parts (`wezterm.format`, `wezterm.action`, colours) are in `wezterm.lua`.
//!
//! What the model keeps of WezTerm: info objects are userdata with field getters, mux
//! objects are userdata with methods, events dispatch as WezTerm dispatches them, and
//! the tab bar is recomputed only on the triggers WezTerm has, so a stale badge stays
//! stale here too. GUI calls (`set_right_status`, `perform_action`) are queued as
//! WezTerm's `TermWindowNotif`s are, and applied by `settle`.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::rc::Rc;

use mlua::{
    Function, IntoLuaMulti, Lua, LuaSerdeExt, MultiValue, Table, UserData, UserDataFields,
    UserDataMethods, UserDataRef, Value,
};

/// One pane: what its program set (title, OSC 1337 user vars, OSC 7 cwd).
#[derive(Clone, Debug, Default)]
pub struct PaneSpec {
    pub title: String,
    pub user_vars: BTreeMap<String, String>,
    pub cwd: Option<String>,
}

#[derive(Clone, Debug)]
struct PaneState {
    id: u64,
    spec: PaneSpec,
}

#[derive(Clone, Debug)]
struct TabState {
    id: u64,
    title: String,
    panes: Vec<PaneState>,
    active_pane: usize,
}

/// A toast as `window:toast_notification` received it, after mlua's conversion.
#[derive(Clone, Debug, PartialEq)]
pub struct Toast {
    pub title: String,
    pub message: String,
    pub url: Option<String>,
    pub timeout_ms: Option<u64>,
}

/// A GUI window: its mux tabs plus what the GUI draws.
#[derive(Debug, Default)]
struct WindowState {
    id: u64,
    tabs: Vec<TabState>,
    active_tab: usize,
    right_status: String,
    left_status: String,
    /// The tab titles as drawn, each rendered with `wezterm.format`'s markers.
    tab_bar: Vec<String>,
    /// How many times the tab bar was drawn with a different content.
    redraws: u64,
    toasts: Vec<Toast>,
    actions: Vec<serde_json::Value>,
}

/// A queued `TermWindowNotif` (wezterm-gui/src/termwindow/mod.rs): Lua's calls on a
/// window take effect when the GUI loop next runs, not during the call.
enum Notif {
    SetRightStatus(u64, String),
    SetLeftStatus(u64, String),
    Perform(u64, u64, serde_json::Value),
    UserVarChanged(u64, String, String),
}

#[derive(Default)]
struct World {
    windows: Vec<WindowState>,
    queue: VecDeque<Notif>,
    next_id: u64,
    logs: Vec<(String, String)>,
    watched: Vec<String>,
}

impl World {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn window(&mut self, id: u64) -> Option<&mut WindowState> {
        self.windows.iter_mut().find(|w| w.id == id)
    }

    fn pane(&mut self, id: u64) -> Option<(u64, &mut PaneState)> {
        self.windows.iter_mut().find_map(|w| {
            let wid = w.id;
            w.tabs
                .iter_mut()
                .flat_map(|t| t.panes.iter_mut())
                .find(|p| p.id == id)
                .map(|p| (wid, p))
        })
    }
}

type Shared = Rc<RefCell<World>>;

fn lua_err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

/// PaneInformation: a snapshot with field getters, made for `format-tab-title`
/// (wezterm-gui/src/termwindow/mod.rs, `impl UserData for PaneInformation`).
#[derive(Clone)]
struct PaneInformation {
    pane_id: u64,
    pane_index: usize,
    is_active: bool,
    title: String,
    user_vars: BTreeMap<String, String>,
}

impl UserData for PaneInformation {
    fn add_fields<F: UserDataFields<Self>>(f: &mut F) {
        f.add_field_method_get("pane_id", |_, t| Ok(t.pane_id));
        f.add_field_method_get("pane_index", |_, t| Ok(t.pane_index));
        f.add_field_method_get("is_active", |_, t| Ok(t.is_active));
        f.add_field_method_get("is_zoomed", |_, _| Ok(false));
        f.add_field_method_get("has_unseen_output", |_, _| Ok(false));
        for dim in [
            "left",
            "top",
            "width",
            "height",
            "pixel_width",
            "pixel_height",
        ] {
            f.add_field_method_get(dim, |_, _| Ok(0));
        }
        f.add_field_method_get("title", |_, t| Ok(t.title.clone()));
        f.add_field_method_get("user_vars", |_, t| Ok(t.user_vars.clone()));
        f.add_field_method_get("foreground_process_name", |_, _| Ok(String::new()));
        f.add_field_method_get("domain_name", |_, _| Ok("local".to_owned()));
    }
}

/// TabInformation: the same, for a tab; `active_pane` is nil when the tab has none
/// (wezterm-gui/src/termwindow/mod.rs, `impl UserData for TabInformation`).
#[derive(Clone)]
struct TabInformation {
    tab_id: u64,
    tab_index: usize,
    is_active: bool,
    active_pane: Option<PaneInformation>,
    window_id: u64,
    tab_title: String,
    panes: Vec<PaneInformation>,
}

impl UserData for TabInformation {
    fn add_fields<F: UserDataFields<Self>>(f: &mut F) {
        f.add_field_method_get("tab_id", |_, t| Ok(t.tab_id));
        f.add_field_method_get("tab_index", |_, t| Ok(t.tab_index));
        f.add_field_method_get("is_active", |_, t| Ok(t.is_active));
        f.add_field_method_get("is_last_active", |_, _| Ok(false));
        f.add_field_method_get("active_pane", |_, t| Ok(t.active_pane.clone()));
        f.add_field_method_get("panes", |_, t| Ok(t.panes.clone()));
        f.add_field_method_get("window_id", |_, t| Ok(t.window_id));
        f.add_field_method_get("tab_title", |_, t| Ok(t.tab_title.clone()));
        f.add_field_method_get("window_title", |_, _| Ok(String::new()));
    }
}

/// The `Url` object `get_current_working_dir` returns since 20240127
/// (lua-api-crates/url-funcs).
struct Url(String);

impl UserData for Url {
    fn add_fields<F: UserDataFields<Self>>(f: &mut F) {
        f.add_field_method_get("scheme", |_, _| Ok("file"));
        f.add_field_method_get("file_path", |_, u| Ok(u.0.clone()));
    }
}

/// MuxPane: a handle by id with methods (lua-api-crates/mux/src/pane.rs).
#[derive(Clone)]
struct MuxPane(u64, Shared);

impl UserData for MuxPane {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("pane_id", |_, p, ()| Ok(p.0));
        m.add_method("get_title", |_, p, ()| {
            let mut w = p.1.borrow_mut();
            let (_, pane) = w.pane(p.0).ok_or_else(|| lua_err("pane is gone"))?;
            Ok(pane.spec.title.clone())
        });
        m.add_method("get_user_vars", |_, p, ()| {
            let mut w = p.1.borrow_mut();
            let (_, pane) = w.pane(p.0).ok_or_else(|| lua_err("pane is gone"))?;
            Ok(pane.spec.user_vars.clone())
        });
        m.add_method("get_current_working_dir", |_, p, ()| {
            let mut w = p.1.borrow_mut();
            let (_, pane) = w.pane(p.0).ok_or_else(|| lua_err("pane is gone"))?;
            Ok(pane.spec.cwd.clone().map(Url))
        });
        // The text goes through a fresh escape parser into the pane's terminal; of what
        // it can do, the model keeps OSC 1337 SetUserVar, which raises a user-var change.
        m.add_method("inject_output", |_, p, text: String| {
            let mut w = p.1.borrow_mut();
            let (_, pane) = w.pane(p.0).ok_or_else(|| lua_err("pane is gone"))?;
            let _ = pane;
            for (name, value) in set_user_vars(&text) {
                w.queue.push_back(Notif::UserVarChanged(p.0, name, value));
            }
            Ok(())
        });
    }
}

/// The `SetUserVar=NAME=BASE64` sequences in `text` (OSC 1337, BEL or ST ended).
fn set_user_vars(text: &str) -> Vec<(String, String)> {
    text.split("\x1b]1337;SetUserVar=")
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find(['\x07', '\x1b'])?;
            let (name, value) = rest[..end].split_once('=')?;
            Some((name.to_owned(), String::from_utf8(base64(value)?).ok()?))
        })
        .collect()
}

fn base64(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Some(out)
}

/// MuxTab (lua-api-crates/mux/src/tab.rs).
#[derive(Clone)]
struct MuxTab(u64, Shared);

impl UserData for MuxTab {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("tab_id", |_, t, ()| Ok(t.0));
        m.add_method("panes", |_, t, ()| {
            let w = t.1.borrow();
            let tab = w
                .windows
                .iter()
                .flat_map(|w| &w.tabs)
                .find(|x| x.id == t.0)
                .ok_or_else(|| lua_err("tab is gone"))?;
            Ok(tab
                .panes
                .iter()
                .map(|p| MuxPane(p.id, t.1.clone()))
                .collect::<Vec<_>>())
        });
    }
}

/// MuxWindow (lua-api-crates/mux/src/window.rs): `tabs_with_info` gives
/// `{ index, is_active, tab }` tables.
#[derive(Clone)]
struct MuxWindow(u64, Shared);

impl UserData for MuxWindow {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("window_id", |_, w, ()| Ok(w.0));
        m.add_method("tabs", |_, w, ()| {
            let world = w.1.borrow();
            let win = world.windows.iter().find(|x| x.id == w.0);
            Ok(win
                .map(|x| x.tabs.iter().map(|t| MuxTab(t.id, w.1.clone())).collect())
                .unwrap_or_else(Vec::new))
        });
        m.add_method("tabs_with_info", |lua, w, ()| {
            let world = w.1.borrow();
            let win = world
                .windows
                .iter()
                .find(|x| x.id == w.0)
                .ok_or_else(|| lua_err("window is gone"))?;
            let out = lua.create_table()?;
            for (i, t) in win.tabs.iter().enumerate() {
                let info = lua.create_table()?;
                info.set("index", i)?;
                info.set("is_active", i == win.active_tab)?;
                info.set("tab", MuxTab(t.id, w.1.clone()))?;
                out.raw_push(info)?;
            }
            Ok(out)
        });
    }
}

/// The GUI window `update-status` and key callbacks get (wezterm-gui/src/scripting/guiwin.rs).
#[derive(Clone)]
struct GuiWin(u64, Shared);

impl UserData for GuiWin {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("window_id", |_, w, ()| Ok(w.0));
        m.add_method("mux_window", |_, w, ()| Ok(MuxWindow(w.0, w.1.clone())));
        m.add_method("active_pane", |_, w, ()| {
            let mut world = w.1.borrow_mut();
            let win = world.window(w.0).ok_or_else(|| lua_err("window is gone"))?;
            let tab = win.tabs.get(win.active_tab);
            let pane = tab.and_then(|t| t.panes.get(t.active_pane));
            Ok(pane.map(|p| MuxPane(p.id, w.1.clone())))
        });
        // The argument types are WezTerm's, so mlua converts (and refuses) as it does there.
        m.add_method(
            "toast_notification",
            |_, w, (title, message, url, timeout_ms): (String, String, Option<String>, Option<u64>)| {
                let mut world = w.1.borrow_mut();
                let win = world.window(w.0).ok_or_else(|| lua_err("window is gone"))?;
                win.toasts.push(Toast { title, message, url, timeout_ms });
                Ok(())
            },
        );
        m.add_method("set_right_status", |_, w, status: String| {
            w.1.borrow_mut()
                .queue
                .push_back(Notif::SetRightStatus(w.0, status));
            Ok(())
        });
        m.add_method("set_left_status", |_, w, status: String| {
            w.1.borrow_mut()
                .queue
                .push_back(Notif::SetLeftStatus(w.0, status));
            Ok(())
        });
        m.add_method(
            "perform_action",
            |lua, w, (action, pane): (Value, UserDataRef<MuxPane>)| {
                if !matches!(action, Value::Table(_) | Value::String(_)) {
                    return Err(lua_err("perform_action: not a KeyAssignment"));
                }
                let action: serde_json::Value = lua.from_value(action)?;
                w.1.borrow_mut()
                    .queue
                    .push_back(Notif::Perform(w.0, pane.0, action));
                Ok(())
            },
        );
    }
}

/// WezTerm's Lua state with the plugin's world, built as `make_lua_context` builds it.
pub struct Wez {
    pub lua: Lua,
    world: Shared,
    wezterm: Table,
}

impl Wez {
    /// A fresh Lua state as WezTerm makes one for `config_dir` under `home`
    /// (config/src/lua.rs, `make_lua_context`).
    pub fn new(home: &Path, config_dir: &Path) -> mlua::Result<Self> {
        let lua = Lua::new();
        let world: Shared = Rc::new(RefCell::new(World::default()));
        let json_parse = lua.create_function(|lua, text: String| {
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(mlua::Error::external)?;
            lua.to_value_with(
                &v,
                mlua::serde::SerializeOptions::new()
                    .serialize_none_to_null(false)
                    .serialize_unit_to_null(false),
            )
        })?;
        let src = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("wezterm/wezterm.lua"),
        )
        .map_err(mlua::Error::external)?;
        let wezterm: Table = lua
            .load(src)
            .set_name("@tests/wezterm/wezterm.lua")
            .call(json_parse)?;
        let loaded: Table = lua.globals().get::<Table>("package")?.get("loaded")?;
        loaded.set("wezterm", wezterm.clone())?;
        wezterm.set("config_dir", config_dir.display().to_string())?;
        wezterm.set("home_dir", home.display().to_string())?;

        // Handlers in registry tables in registration order (config/src/lua.rs,
        // `register_event`).
        wezterm.set(
            "on",
            lua.create_function(|lua, (name, f): (String, Function)| {
                let key = format!("wezterm-event-{name}");
                let t = match lua.named_registry_value::<Option<Table>>(&key)? {
                    Some(t) => t,
                    None => {
                        let t = lua.create_table()?;
                        lua.set_named_registry_value(&key, t.clone())?;
                        t
                    }
                };
                t.raw_push(f)
            })?,
        )?;
        wezterm.set(
            "emit",
            lua.create_function(|lua, (name, args): (String, MultiValue)| emit(lua, &name, args))?,
        )?;
        for level in ["info", "warn", "error"] {
            let world = world.clone();
            wezterm.set(
                format!("log_{level}"),
                lua.create_function(move |_, args: MultiValue| {
                    let msg: Vec<String> = args
                        .iter()
                        .map(|v| v.to_string().unwrap_or_default())
                        .collect();
                    world
                        .borrow_mut()
                        .logs
                        .push((level.to_owned(), msg.join(" ")));
                    Ok(())
                })?,
            )?;
        }
        {
            let world = world.clone();
            wezterm.set(
                "add_to_config_reload_watch_list",
                lua.create_function(move |_, path: String| {
                    world.borrow_mut().watched.push(path);
                    Ok(())
                })?,
            )?;
        }
        // package.path gains ~/.wezterm, the config dir (`?.lua`, `?/init.lua`) and the
        // plugin dirs; the second searcher is wrapped so every file `require` finds is
        // watched for reloads (config/src/lua.rs).
        let package: Table = lua.globals().get("package")?;
        let mut path: Vec<String> = package
            .get::<String>("path")?
            .split(';')
            .map(str::to_owned)
            .collect();
        let data = home.join(".local/share/wezterm");
        for dir in [home.join(".wezterm"), config_dir.to_path_buf()] {
            path.push(format!("{}/?.lua", dir.display()));
            path.push(format!("{}/?/init.lua", dir.display()));
        }
        path.push(format!("{}/plugins/?/plugin/init.lua", data.display()));
        package.set("path", path.join(";"))?;
        lua.load(
            "local orig = package.searchers[2]
             package.searchers[2] = function(module)
               local name = package.searchpath(module, package.path)
               if name then package.loaded.wezterm.add_to_config_reload_watch_list(name) end
               return orig(module)
             end",
        )
        .set_name("=searcher")
        .exec()?;
        Ok(Wez {
            lua,
            world,
            wezterm,
        })
    }

    /// The environment `os.getenv` sees: WezTerm replaces it with its own, which reads
    /// the environment WezTerm resolved for spawning (config/src/lua.rs `getenv`).
    pub fn set_env(&self, vars: &[(&str, String)]) -> mlua::Result<()> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let getenv = self
            .lua
            .create_function(move |_, name: String| Ok(vars.get(&name).cloned()))?;
        self.lua.globals().get::<Table>("os")?.set("getenv", getenv)
    }

    /// Run a `wezterm.lua` and return its config table, as WezTerm loads the file.
    pub fn load_config(&self, file: &Path) -> mlua::Result<Table> {
        let src = std::fs::read_to_string(file).map_err(mlua::Error::external)?;
        self.lua
            .load(src)
            .set_name(format!("@{}", file.display()))
            .eval()
    }

    /// A window of tabs, each a list of panes (the first active), drawn once as WezTerm
    /// draws a new window.
    pub fn open_window(&self, tabs: Vec<Vec<PaneSpec>>) -> u64 {
        let id = {
            let mut w = self.world.borrow_mut();
            let id = w.id();
            let mut win = WindowState {
                id,
                ..Default::default()
            };
            for panes in tabs {
                let tab_id = w.id();
                let panes = panes
                    .into_iter()
                    .map(|spec| PaneState { id: w.id(), spec })
                    .collect();
                win.tabs.push(TabState {
                    id: tab_id,
                    title: String::new(),
                    panes,
                    active_pane: 0,
                });
            }
            w.windows.push(win);
            id
        };
        self.update_title(id);
        id
    }

    /// The Lua objects WezTerm would pass for `window`: the GUI window and its active pane.
    pub fn window_objects(&self, window: u64) -> (Value, Value) {
        let pane = self.active_pane(window).unwrap_or(0);
        (
            Value::UserData(
                self.lua
                    .create_userdata(GuiWin(window, self.world.clone()))
                    .expect("userdata"),
            ),
            Value::UserData(
                self.lua
                    .create_userdata(MuxPane(pane, self.world.clone()))
                    .expect("userdata"),
            ),
        )
    }

    fn active_pane(&self, window: u64) -> Option<u64> {
        let mut w = self.world.borrow_mut();
        let win = w.window(window)?;
        let tab = win.tabs.get(win.active_tab)?;
        tab.panes.get(tab.active_pane).map(|p| p.id)
    }

    /// One `update-status` (an async event: every handler, wezterm-gui/src/termwindow/mod.rs
    /// `emit_window_event`), then what it queued.
    pub fn tick(&self, window: u64) -> mlua::Result<()> {
        let (win, pane) = self.window_objects(window);
        emit(
            &self.lua,
            "update-status",
            (win, pane).into_lua_multi(&self.lua)?,
        )?;
        self.settle()
    }

    /// Apply queued window calls in order, as the GUI loop does.
    pub fn settle(&self) -> mlua::Result<()> {
        loop {
            let next = self.world.borrow_mut().queue.pop_front();
            let Some(notif) = next else { return Ok(()) };
            match notif {
                // Only a different string redraws the tab bar
                // (termwindow/mod.rs, `TermWindowNotif::SetRightStatus`).
                Notif::SetRightStatus(id, s) => self.set_status(id, s, true),
                Notif::SetLeftStatus(id, s) => self.set_status(id, s, false),
                Notif::Perform(id, pane, action) => {
                    let name = action
                        .get("EmitEvent")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned);
                    if let Some(win) = self.world.borrow_mut().window(id) {
                        win.actions.push(action);
                    }
                    if let Some(name) = name {
                        let args = self.objects(id, pane)?;
                        emit(&self.lua, &name, args)?;
                    }
                }
                // A user var set by the pane: `user-var-changed`, then the tab bar
                // (termwindow/mod.rs, `emit_user_var_event`).
                Notif::UserVarChanged(pane, name, value) => {
                    let window = {
                        let mut w = self.world.borrow_mut();
                        w.pane(pane).map(|(wid, p)| {
                            p.spec.user_vars.insert(name.clone(), value.clone());
                            wid
                        })
                    };
                    if let Some(id) = window {
                        let args = (
                            GuiWin(id, self.world.clone()),
                            MuxPane(pane, self.world.clone()),
                            name,
                            value,
                        )
                            .into_lua_multi(&self.lua)?;
                        emit(&self.lua, "user-var-changed", args)?;
                        self.update_title(id);
                    }
                }
            }
        }
    }

    fn objects(&self, window: u64, pane: u64) -> mlua::Result<MultiValue> {
        (
            GuiWin(window, self.world.clone()),
            MuxPane(pane, self.world.clone()),
        )
            .into_lua_multi(&self.lua)
    }

    fn set_status(&self, id: u64, s: String, right: bool) {
        let changed = match self.world.borrow_mut().window(id) {
            Some(win) => {
                let slot = if right {
                    &mut win.right_status
                } else {
                    &mut win.left_status
                };
                let changed = *slot != s;
                *slot = s;
                changed
            }
            None => false,
        };
        if changed {
            self.update_title(id);
        }
    }

    /// A program in `window`'s active pane sets a user var (OSC 1337), as `canopy attach` does.
    pub fn set_user_var(
        &self,
        window: u64,
        tab: usize,
        name: &str,
        value: &str,
    ) -> mlua::Result<()> {
        let pane = {
            let w = self.world.borrow();
            let win = w
                .windows
                .iter()
                .find(|x| x.id == window)
                .ok_or_else(|| lua_err("no window"))?;
            let t = win.tabs.get(tab).ok_or_else(|| lua_err("no tab"))?;
            t.panes
                .get(t.active_pane)
                .ok_or_else(|| lua_err("no pane"))?
                .id
        };
        self.world
            .borrow_mut()
            .queue
            .push_back(Notif::UserVarChanged(
                pane,
                name.to_owned(),
                value.to_owned(),
            ));
        self.settle()
    }

    /// The tab bar as drawn now.
    pub fn tab_bar(&self, window: u64) -> Vec<String> {
        let w = self.world.borrow();
        w.windows
            .iter()
            .find(|x| x.id == window)
            .map(|x| x.tab_bar.clone())
            .unwrap_or_default()
    }

    /// How many times the tab bar's content changed.
    pub fn redraws(&self, window: u64) -> u64 {
        let w = self.world.borrow();
        w.windows
            .iter()
            .find(|x| x.id == window)
            .map_or(0, |x| x.redraws)
    }

    pub fn right_status(&self, window: u64) -> String {
        let w = self.world.borrow();
        w.windows
            .iter()
            .find(|x| x.id == window)
            .map(|x| x.right_status.clone())
            .unwrap_or_default()
    }

    pub fn toasts(&self, window: u64) -> Vec<Toast> {
        let w = self.world.borrow();
        w.windows
            .iter()
            .find(|x| x.id == window)
            .map(|x| x.toasts.clone())
            .unwrap_or_default()
    }

    pub fn actions(&self, window: u64) -> Vec<serde_json::Value> {
        let w = self.world.borrow();
        w.windows
            .iter()
            .find(|x| x.id == window)
            .map(|x| x.actions.clone())
            .unwrap_or_default()
    }

    /// Log lines at `level` (`info`, `warn`, `error`).
    pub fn logs(&self, level: &str) -> Vec<String> {
        let w = self.world.borrow();
        w.logs
            .iter()
            .filter(|(l, _)| l == level)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Files `require` loaded, which WezTerm watches to reload the config.
    pub fn watched(&self) -> Vec<String> {
        self.world.borrow().watched.clone()
    }

    /// The handlers registered for `name`.
    pub fn handlers(&self, name: &str) -> usize {
        self.lua
            .named_registry_value::<Option<Table>>(&format!("wezterm-event-{name}"))
            .ok()
            .flatten()
            .map_or(0, |t| t.raw_len())
    }

    /// Answer the last InputSelector or PromptInputLine the plugin opened, as the user
    /// would: its action's event with the window, the pane and `args`.
    pub fn answer(&self, window: u64, kind: &str, args: &[Option<&str>]) -> mlua::Result<()> {
        let event = self
            .actions(window)
            .iter()
            .rev()
            .find_map(|a| {
                a.get(kind)?
                    .get("action")?
                    .get("EmitEvent")?
                    .as_str()
                    .map(str::to_owned)
            })
            .ok_or_else(|| lua_err(format!("no {kind} was opened")))?;
        let pane = self.active_pane(window).unwrap_or(0);
        let mut values: Vec<Value> = self.objects(window, pane)?.into_iter().collect();
        for a in args {
            values.push(match a {
                Some(s) => Value::String(self.lua.create_string(s)?),
                None => Value::Nil,
            });
        }
        emit(&self.lua, &event, MultiValue::from_iter(values))?;
        self.settle()
    }

    /// Press a key binding from `config.keys` in `window`'s active pane.
    pub fn press(&self, window: u64, config: &Table, index: usize) -> mlua::Result<()> {
        let keys: Table = config.get("keys")?;
        let binding: Table = keys.get(index)?;
        let action: Value = binding.get("action")?;
        let pane = self.active_pane(window).unwrap_or(0);
        let action: serde_json::Value = self.lua.from_value(action)?;
        self.world
            .borrow_mut()
            .queue
            .push_back(Notif::Perform(window, pane, action));
        self.settle()
    }

    /// Recompute the tab bar (termwindow/mod.rs `update_title_impl`, tabbar.rs
    /// `TabBarState::new`): each title from the first `format-tab-title` handler, twice
    /// per tab as WezTerm asks (for the widths, then to draw), and a redraw when it
    /// differs from what is drawn.
    fn update_title(&self, window: u64) {
        let infos = self.tab_infos(window);
        let panes: Vec<PaneInformation> = infos
            .iter()
            .find(|t| t.is_active)
            .map(|t| t.panes.clone())
            .unwrap_or_default();
        let max: usize = self
            .lua
            .globals()
            .get::<Option<Table>>("config")
            .ok()
            .flatten()
            .and_then(|c| c.get::<Option<usize>>("tab_max_width").ok().flatten())
            .unwrap_or(16);
        let mut bar = Vec::new();
        for info in &infos {
            let mut title = String::new();
            for _ in 0..2 {
                title = self.tab_title(info, &infos, &panes, max);
            }
            bar.push(title);
        }
        if let Some(win) = self.world.borrow_mut().window(window)
            && win.tab_bar != bar
        {
            win.tab_bar = bar;
            win.redraws += 1;
        }
    }

    fn tab_infos(&self, window: u64) -> Vec<TabInformation> {
        let w = self.world.borrow();
        let Some(win) = w.windows.iter().find(|x| x.id == window) else {
            return Vec::new();
        };
        win.tabs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let panes: Vec<PaneInformation> = t
                    .panes
                    .iter()
                    .enumerate()
                    .map(|(j, p)| PaneInformation {
                        pane_id: p.id,
                        pane_index: j,
                        is_active: j == t.active_pane,
                        title: p.spec.title.clone(),
                        user_vars: p.spec.user_vars.clone(),
                    })
                    .collect();
                TabInformation {
                    tab_id: t.id,
                    tab_index: i,
                    is_active: i == win.active_tab,
                    active_pane: panes.get(t.active_pane).cloned(),
                    window_id: win.id,
                    tab_title: t.title.clone(),
                    panes,
                }
            })
            .collect()
    }

    /// One title (tabbar.rs `call_format_tab_title`): nil → WezTerm's own, a table →
    /// FormatItems, anything else → a string; a handler error is logged and WezTerm's
    /// own title used.
    fn tab_title(
        &self,
        tab: &TabInformation,
        tabs: &[TabInformation],
        panes: &[PaneInformation],
        max: usize,
    ) -> String {
        let result = (|| -> mlua::Result<Option<String>> {
            let config: Value = self.lua.globals().get("config")?;
            let args = (
                tab.clone(),
                tabs.to_vec(),
                panes.to_vec(),
                config,
                false,
                max,
            )
                .into_lua_multi(&self.lua)?;
            let v = emit_sync(&self.lua, "format-tab-title", args)?;
            match v {
                Value::Nil => Ok(None),
                Value::Table(_) => {
                    let format: Function = self.wezterm.get("format")?;
                    Ok(Some(format.call(v)?))
                }
                v => Ok(Some(self.lua.unpack::<String>(v)?)),
            }
        })();
        match result {
            Ok(Some(title)) => title,
            Ok(None) => default_title(tab),
            Err(e) => {
                self.world
                    .borrow_mut()
                    .logs
                    .push(("warn".into(), format!("format-tab-title: {e}")));
                default_title(tab)
            }
        }
    }
}

/// WezTerm's own title: `N: title` (fancy tab bar, show_tab_index_in_tab_bar), the tab's
/// title or else its active pane's (tabbar.rs `compute_tab_title`).
fn default_title(tab: &TabInformation) -> String {
    match &tab.active_pane {
        Some(p) if tab.tab_title.is_empty() => format!("{}: {}", tab.tab_index + 1, p.title),
        Some(_) => format!("{}: {}", tab.tab_index + 1, tab.tab_title),
        None => " no pane ".to_owned(),
    }
}

/// An asynchronous event: every handler in order until one returns false
/// (config/src/lua.rs `emit_event`).
fn emit(lua: &Lua, name: &str, args: MultiValue) -> mlua::Result<bool> {
    let Some(handlers) =
        lua.named_registry_value::<Option<Table>>(&format!("wezterm-event-{name}"))?
    else {
        return Ok(true);
    };
    for f in handlers.sequence_values::<Function>() {
        if let Value::Boolean(false) = f?.call::<Value>(args.clone())? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A synchronous event such as `format-tab-title`: the first handler only, its value
/// the result (config/src/lua.rs `emit_sync_callback`).
fn emit_sync(lua: &Lua, name: &str, args: MultiValue) -> mlua::Result<Value> {
    let Some(handlers) =
        lua.named_registry_value::<Option<Table>>(&format!("wezterm-event-{name}"))?
    else {
        return Ok(Value::Nil);
    };
    match handlers.raw_get::<Option<Function>>(1)? {
        Some(f) => f.call(args),
        None => Ok(Value::Nil),
    }
}
