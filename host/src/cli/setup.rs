//! `canopy setup TARGET`: what to add to another tool's configuration to use Canopy
//! from it. The WezTerm plugin is built into the binary, so `--write` can install the
//! very version that matches this host, as `canopy/init.lua` in WezTerm's config dir:
//! WezTerm puts `<config dir>/?/init.lua` on `package.path` and watches every file
//! `require` loads (config/src/lua.rs), so `require('canopy')` finds it and an upgrade
//! is one `--write`. The Zellij plugin is a separate wasm build
//! (`canopy-zellij.wasm`), which `--write` copies from beside the binary or `--from`.

use std::path::{Path, PathBuf};

use super::error::CliError;
use crate::paths::Paths;

/// Front ends `canopy setup` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// The WezTerm plugin: tab badges, status, notifications, a session picker
    Wezterm,
    /// The Zellij sidebar plugin: a layout and a config snippet
    Zellij,
}

/// The plugin's file name, as `cargo build -p canopy-zellij --target wasm32-wasip1` names it.
pub const ZELLIJ_WASM: &str = "canopy-zellij.wasm";

/// The WezTerm plugin's source, as shipped in `wezterm-lua/plugin/init.lua`.
pub const WEZTERM_PLUGIN: &str = include_str!("../../../wezterm-lua/plugin/init.lua");

/// Print the snippet for `target`; with `write`, install the plugin first.
pub fn run(
    paths: &Paths,
    target: Target,
    write: bool,
    dir: Option<PathBuf>,
) -> Result<(), CliError> {
    match target {
        Target::Wezterm => {
            let dir = match dir {
                Some(d) => std::path::absolute(d)?,
                None => wezterm_dir(paths),
            };
            let module = lua_module(&dir)?;
            let file = dir.join("init.lua");
            if write {
                std::fs::create_dir_all(&dir)?;
                crate::snapshot::write_atomically(&file, WEZTERM_PLUGIN.trim_end().as_bytes())
                    .map_err(|e| CliError::new(format!("cannot write {}: {e}", file.display())))?;
                eprintln!("wrote {}", file.display());
            } else if !file.exists() {
                eprintln!(
                    "note: the plugin is not installed at {}; `canopy setup wezterm --write` installs it",
                    file.display()
                );
            }
            let canopy = std::env::current_exe().ok();
            // Only WezTerm's own config dir is on its package.path already.
            let search = (dir != wezterm_dir(paths)).then(|| dir.parent()).flatten();
            print!(
                "{}",
                wezterm_snippet(module, search, canopy.as_deref(), &status_file(paths))
            );
        }
        Target::Zellij => zellij(paths, write, dir)?,
    }
    Ok(())
}

/// `canopy setup zellij`: with `write`, install the plugin and `layouts/canopy.kdl` into
/// Zellij's config dir (or `dir`); always print the layout and the config snippet.
fn zellij(paths: &Paths, write: bool, dir: Option<PathBuf>) -> Result<(), CliError> {
    let dir = match dir {
        Some(d) => std::path::absolute(d)?,
        None => config_home(paths).join("zellij"),
    };
    let wasm = dir.join("plugins").join(ZELLIJ_WASM);
    let canopy = std::env::current_exe().ok();
    let layout = zellij_layout(&wasm, canopy.as_deref());
    if write {
        let built = zellij_build(canopy.as_deref()).ok_or_else(|| {
            CliError::new(format!(
                "no {ZELLIJ_WASM} beside the canopy binary (or in $CANOPY_ZELLIJ_WASM)"
            ))
            .with_hint(
                "build it with `cargo build -p canopy-zellij --release --target wasm32-wasip1` \
                 and set CANOPY_ZELLIJ_WASM to target/wasm32-wasip1/release/canopy-zellij.wasm",
            )
        })?;
        std::fs::create_dir_all(dir.join("plugins"))?;
        std::fs::create_dir_all(dir.join("layouts"))?;
        std::fs::copy(&built, &wasm)
            .map_err(|e| CliError::new(format!("cannot copy {}: {e}", built.display())))?;
        let file = dir.join("layouts/canopy.kdl");
        crate::snapshot::write_atomically(&file, layout.as_bytes())
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", file.display())))?;
        eprintln!("wrote {} and {}", wasm.display(), file.display());
        eprintln!("start it with: zellij --layout canopy");
    } else if !wasm.exists() {
        eprintln!(
            "note: the plugin is not installed at {}; `canopy setup zellij --write` installs it",
            wasm.display()
        );
    }
    print!("// layouts/canopy.kdl\n{layout}\n{}", zellij_config(&wasm));
    Ok(())
}

/// `$XDG_CONFIG_HOME`, else `~/.config` (the parent of Canopy's own config dir).
fn config_home(paths: &Paths) -> PathBuf {
    paths
        .config_file
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// The built plugin to install: `$CANOPY_ZELLIJ_WASM`, else beside the canopy binary.
fn zellij_build(canopy: Option<&Path>) -> Option<PathBuf> {
    let from_env = std::env::var_os("CANOPY_ZELLIJ_WASM").filter(|s| !s.is_empty());
    let path = match from_env {
        Some(p) => PathBuf::from(p),
        None => canopy?.parent()?.join(ZELLIJ_WASM),
    };
    path.is_file().then_some(path)
}

fn kdl_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A layout with the sidebar on the left of every tab and a shell beside it. A plain
/// `pane` rather than `children`: Zellij 0.45.1 leaves `children` empty in the tabs a
/// layout without `tab` nodes makes, and the sidebar then takes the whole width.
pub fn zellij_layout(wasm: &Path, canopy: Option<&Path>) -> String {
    let location = kdl_string(&format!("file:{}", wasm.display()));
    // Zellij started from a desktop may not have canopy's directory on its PATH.
    let settings = canopy
        .map(|c| {
            format!(
                "\n                    canopy {}",
                kdl_string(&c.display().to_string())
            )
        })
        .unwrap_or_default();
    format!(
        r#"layout {{
    default_tab_template {{
        pane size=1 borderless=true {{
            plugin location="zellij:tab-bar"
        }}
        pane split_direction="vertical" {{
            pane size="25%" name="canopy" {{
                plugin location={location} {{{settings}
                }}
            }}
            pane focus=true
        }}
        pane size=2 borderless=true {{
            plugin location="zellij:status-bar"
        }}
    }}
}}
"#
    )
}

/// The `config.kdl` lines: a key to open the sidebar floating from anywhere.
pub fn zellij_config(wasm: &Path) -> String {
    let location = kdl_string(&format!("file:{}", wasm.display()));
    format!(
        "// config.kdl: Alt-c opens the sidebar as a floating pane in any layout\n\
         keybinds {{\n    shared {{\n        bind \"Alt c\" {{\n            \
         LaunchOrFocusPlugin {location} {{ floating true; }}\n        }}\n    }}\n}}\n"
    )
}

/// Where `--write` installs the plugin by default: beside WezTerm's own configuration
/// (`$XDG_CONFIG_HOME/wezterm/canopy`, else `~/.config/wezterm/canopy`).
fn wezterm_dir(paths: &Paths) -> PathBuf {
    // config_file is <config home>/canopy/config.toml.
    paths
        .config_file
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."))
        .join("wezterm/canopy")
}

/// The module name `require` loads the plugin by: the directory's name, which must
/// not contain a dot (`require` reads dots as directory separators).
fn lua_module(dir: &Path) -> Result<&str, CliError> {
    dir.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && !n.contains('.'))
        .ok_or_else(|| {
            CliError::new(format!(
                "{} cannot be loaded with require: its name must be plain UTF-8 without dots",
                dir.display()
            ))
            .with_hint("pick a --dir such as ~/.config/wezterm/canopy")
        })
}

/// The snapshot path to hard-code in the snippet, when the plugin cannot work it out
/// from WezTerm's environment: it cannot learn the uid for the `/tmp/canopy-$UID`
/// fallback on every platform, and it does not see a `CANOPY_SOCKET` set in a shell.
fn status_file(paths: &Paths) -> Option<PathBuf> {
    let from_xdg = std::env::var_os("CANOPY_SOCKET").is_none_or(|s| s.is_empty())
        && std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| !d.is_empty());
    (!from_xdg).then(|| paths.snapshot_file())
}

fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The lines to paste into `wezterm.lua`, after `local config = wezterm.config_builder()`:
/// `require(module)`, with `search/?/init.lua` put on `package.path` first when the plugin
/// is not in WezTerm's config dir.
pub fn wezterm_snippet(
    module: &str,
    search: Option<&Path>,
    canopy: Option<&Path>,
    status_file: &Option<PathBuf>,
) -> String {
    let mut opts = String::new();
    if let Some(canopy) = canopy {
        // WezTerm started from a desktop may not have canopy's directory on its PATH.
        opts.push_str(&format!(
            "  canopy = {},\n",
            lua_string(&canopy.display().to_string())
        ));
    }
    if let Some(file) = status_file {
        opts.push_str(&format!(
            "  status_file = {},\n",
            lua_string(&file.display().to_string())
        ));
    }
    // CTRL|SHIFT+S is in none of WezTerm's default key assignments (C is Copy).
    opts.push_str("  picker = { key = 'S', mods = 'CTRL|SHIFT' }, -- the session picker\n");
    let path = search
        .map(|dir| {
            format!(
                "package.path = {} .. package.path\n",
                lua_string(&format!("{}/?/init.lua;", dir.display()))
            )
        })
        .unwrap_or_default();
    format!(
        "-- Canopy: session badges on tabs, counts and cost on the right, toasts, a picker.\n\
         {path}local canopy = require({})\n\
         canopy.apply_to_config(config, {{\n{opts}}})\n",
        lua_string(module)
    )
}
