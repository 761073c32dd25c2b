//! The Zellij entry point: registers the plugin and translates between Zellij's
//! events/commands and the pure [`canopy_zellij::app`] state machine. Off wasm32 this
//! binary is a stub, so native workspace builds never compile zellij-tile.

#[cfg(target_arch = "wasm32")]
use zellij_tile::prelude::*;

#[cfg(target_arch = "wasm32")]
register_plugin!(wasm::Plugin);

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("canopy-zellij is a Zellij plugin: build it with --target wasm32-wasip1");
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::collections::BTreeMap;

    use canopy_zellij::app::{App, Config, Effect, Input, Key};
    use canopy_zellij::view;
    use zellij_tile::prelude::*;

    #[derive(Default)]
    pub struct Plugin {
        app: App,
    }

    impl Plugin {
        /// Feed one input and carry out its effects; effects that answer with another
        /// input (an opened pane's id) are fed back in turn.
        fn feed(&mut self, input: Input) -> bool {
            let (effects, mut render) = self.app.handle(input);
            for effect in effects {
                if let Some(next) = run(effect) {
                    render |= self.feed(next);
                }
            }
            render
        }
    }

    fn run(effect: Effect) -> Option<Input> {
        match effect {
            Effect::RequestPermissions => request_permission(&[
                PermissionType::RunCommands,
                PermissionType::ReadApplicationState,
                PermissionType::ChangeApplicationState,
            ]),
            Effect::Subscribe => subscribe(&[
                EventType::PermissionRequestResult,
                EventType::RunCommandResult,
                EventType::Key,
                EventType::Timer,
                EventType::CommandPaneOpened,
                EventType::CommandPaneExited,
                EventType::PaneClosed,
            ]),
            Effect::Run { argv, ctx } => {
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                run_command(&argv, ctx);
            }
            Effect::OpenPane { argv, ctx } => {
                let mut argv = argv.into_iter();
                let path = argv.next().unwrap_or_default();
                let cmd = CommandToRun {
                    path: path.into(),
                    args: argv.collect(),
                    cwd: None,
                };
                // Returns a value: the app only asks for this after the grant.
                if let Some(PaneId::Terminal(pane)) =
                    open_command_pane_floating(cmd, None, ctx.clone())
                {
                    return Some(Input::PaneOpened { pane, ctx });
                }
            }
            Effect::FocusPane(pane) => focus_terminal_pane(pane, true, false),
            Effect::ClosePane(pane) => close_terminal_pane(pane),
            Effect::SetTimeout(secs) => set_timeout(secs),
        }
        None
    }

    fn key(k: &KeyWithModifier) -> Key {
        if !k.key_modifiers.is_empty() && k.key_modifiers != [KeyModifier::Shift].into() {
            return Key::Other;
        }
        match k.bare_key {
            BareKey::Char(c) => Key::Char(c),
            BareKey::Up => Key::Up,
            BareKey::Down => Key::Down,
            BareKey::Enter => Key::Enter,
            BareKey::Esc => Key::Esc,
            BareKey::Backspace => Key::Backspace,
            BareKey::Tab => Key::Tab,
            _ => Key::Other,
        }
    }

    impl ZellijPlugin for Plugin {
        fn load(&mut self, configuration: BTreeMap<String, String>) {
            self.feed(Input::Load(Config::from_map(&configuration)));
        }

        fn update(&mut self, event: Event) -> bool {
            let input = match event {
                Event::PermissionRequestResult(status) => Input::Permission {
                    granted: status == PermissionStatus::Granted,
                },
                Event::RunCommandResult(exit, stdout, stderr, ctx) => Input::CommandDone {
                    exit,
                    stdout,
                    stderr,
                    ctx,
                },
                Event::CommandPaneOpened(pane, ctx) => Input::PaneOpened { pane, ctx },
                Event::CommandPaneExited(pane, exit, _) => Input::PaneExited { pane, exit },
                Event::PaneClosed(PaneId::Terminal(pane)) => Input::PaneClosed { pane },
                Event::Key(k) => Input::Key(key(&k)),
                Event::Timer(_) => Input::Timer,
                _ => return false,
            };
            self.feed(input)
        }

        fn pipe(&mut self, message: PipeMessage) -> bool {
            match message.payload {
                Some(payload) => self.feed(Input::Pipe {
                    name: message.name,
                    payload,
                }),
                None => false,
            }
        }

        fn render(&mut self, rows: usize, cols: usize) {
            self.app.now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            print!("{}", view::render(&self.app, rows, cols));
        }
    }
}
