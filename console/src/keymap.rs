//! The one keymap: every key the console answers to, what it does and how
//! the help screen describes it. Users rebind keys in the config file
//! (`[keys] down = ["j", "down"]`); the help screen is generated from the
//! keymap in force, so it never disagrees with the keys.

use std::collections::HashMap;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What a key means, independent of which key it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyCommand {
    Quit,
    Help,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Enter,
    Back,
    Filter,
    Sort,
    SortOrder,
    Command,
    NextTab,
    PrevTab,
    Tab1,
    Tab2,
    Tab3,
    Tab4,
    Tab5,
    Tab6,
    Tab7,
    Refresh,
    Suspend,
    Resume,
    Terminate,
    Purge,
    Approve,
}

/// A help-screen group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    General,
    Navigation,
    Tables,
    Write,
}

impl Group {
    pub fn title(self) -> &'static str {
        match self {
            Group::General => "General",
            Group::Navigation => "Navigation",
            Group::Tables => "Tables",
            Group::Write => "Actions (with --write)",
        }
    }
}

/// Config name, group, description and default keys of every command.
pub const COMMANDS: &[(KeyCommand, &str, Group, &str, &[&str])] = &[
    (
        KeyCommand::Quit,
        "quit",
        Group::General,
        "quit",
        &["q", "ctrl-c"],
    ),
    (
        KeyCommand::Help,
        "help",
        Group::General,
        "this help",
        &["?"],
    ),
    (
        KeyCommand::Command,
        "command",
        Group::General,
        "command line (Tab completes)",
        &[":"],
    ),
    (
        KeyCommand::Refresh,
        "refresh",
        Group::General,
        "fetch everything now",
        &["r"],
    ),
    (
        KeyCommand::Tab1,
        "tab1",
        Group::Navigation,
        "overview",
        &["1"],
    ),
    (
        KeyCommand::Tab2,
        "tab2",
        Group::Navigation,
        "tenants",
        &["2"],
    ),
    (
        KeyCommand::Tab3,
        "tab3",
        Group::Navigation,
        "throughput",
        &["3"],
    ),
    (
        KeyCommand::Tab4,
        "tab4",
        Group::Navigation,
        "retention",
        &["4"],
    ),
    (
        KeyCommand::Tab5,
        "tab5",
        Group::Navigation,
        "sub-processors",
        &["5"],
    ),
    (
        KeyCommand::Tab6,
        "tab6",
        Group::Navigation,
        "audit / events",
        &["6"],
    ),
    (
        KeyCommand::Tab7,
        "tab7",
        Group::Navigation,
        "compliance",
        &["7"],
    ),
    (
        KeyCommand::NextTab,
        "next_tab",
        Group::Navigation,
        "next view",
        &["tab", "l", "right"],
    ),
    (
        KeyCommand::PrevTab,
        "prev_tab",
        Group::Navigation,
        "previous view",
        &["backtab", "h", "left"],
    ),
    (
        KeyCommand::Enter,
        "enter",
        Group::Navigation,
        "open the selected tenant",
        &["enter"],
    ),
    (
        KeyCommand::Back,
        "back",
        Group::Navigation,
        "back / close / clear filter",
        &["esc", "backspace"],
    ),
    (KeyCommand::Up, "up", Group::Tables, "move up", &["k", "up"]),
    (
        KeyCommand::Down,
        "down",
        Group::Tables,
        "move down",
        &["j", "down"],
    ),
    (
        KeyCommand::PageUp,
        "page_up",
        Group::Tables,
        "page up",
        &["pageup", "ctrl-b"],
    ),
    (
        KeyCommand::PageDown,
        "page_down",
        Group::Tables,
        "page down",
        &["pagedown", "ctrl-f"],
    ),
    (
        KeyCommand::Top,
        "top",
        Group::Tables,
        "first row",
        &["g", "home"],
    ),
    (
        KeyCommand::Bottom,
        "bottom",
        Group::Tables,
        "last row",
        &["G", "end"],
    ),
    (
        KeyCommand::Filter,
        "filter",
        Group::Tables,
        "filter rows",
        &["/"],
    ),
    (
        KeyCommand::Sort,
        "sort",
        Group::Tables,
        "next sort column",
        &["s"],
    ),
    (
        KeyCommand::SortOrder,
        "sort_order",
        Group::Tables,
        "reverse sort order",
        &["o"],
    ),
    (
        KeyCommand::Suspend,
        "suspend",
        Group::Write,
        "suspend the selected tenant",
        &["S"],
    ),
    (
        KeyCommand::Resume,
        "resume",
        Group::Write,
        "resume the selected tenant",
        &["R"],
    ),
    (
        KeyCommand::Terminate,
        "terminate",
        Group::Write,
        "terminate the selected tenant (TOTP)",
        &["T"],
    ),
    (
        KeyCommand::Purge,
        "purge",
        Group::Write,
        "run a purge now (TOTP)",
        &["P"],
    ),
    (
        KeyCommand::Approve,
        "approve",
        Group::Write,
        "approve a sub-processor change (TOTP)",
        &["A"],
    ),
];

/// One key with its modifiers, as written in the config (`ctrl-c`, `G`, `pagedown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
}

impl Key {
    pub fn parse(s: &str) -> Result<Key, String> {
        let mut ctrl = false;
        let mut alt = false;
        let mut rest = s;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                ctrl = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                alt = true;
                rest = r;
            } else {
                break;
            }
        }
        let code = match rest {
            "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "backspace" => KeyCode::Backspace,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "space" => KeyCode::Char(' '),
            f if f.len() > 1 && f.starts_with('f') && f[1..].parse::<u8>().is_ok() => {
                KeyCode::F(f[1..].parse::<u8>().unwrap_or(1))
            }
            c if c.chars().count() == 1 => KeyCode::Char(c.chars().next().unwrap_or(' ')),
            other => return Err(format!("unknown key {other:?} in {s:?}")),
        };
        Ok(Key { code, ctrl, alt })
    }

    pub fn from_event(ev: &KeyEvent) -> Key {
        Key {
            code: ev.code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
            alt: ev.modifiers.contains(KeyModifiers::ALT),
        }
    }

    /// As the help screen writes it.
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Enter => "Enter".to_string(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "S-Tab".into(),
            KeyCode::Backspace => "Bksp".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::Char(' ') => "Space".into(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::F(n) => format!("F{n}"),
            _ => "?".into(),
        };
        match (self.ctrl, self.alt) {
            (true, _) => format!("Ctrl-{base}"),
            (_, true) => format!("Alt-{base}"),
            _ => base,
        }
    }
}

/// Why a `[keys]` table was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeymapError {
    #[error("[keys]: unknown command {0:?}")]
    UnknownCommand(String),
    #[error("[keys]: {0}")]
    BadKey(String),
}

/// Keys → commands, plus each command's keys in order (for the help).
#[derive(Debug, Clone)]
pub struct Keymap {
    by_key: HashMap<Key, KeyCommand>,
    keys: Vec<(KeyCommand, Vec<Key>)>,
}

impl Default for Keymap {
    fn default() -> Self {
        Self::with_overrides(&HashMap::new()).unwrap_or_else(|_| Self {
            by_key: HashMap::new(),
            keys: Vec::new(),
        })
    }
}

impl Keymap {
    /// The default keymap with `overrides` (command name → keys) applied;
    /// an override replaces all of that command's default keys.
    pub fn with_overrides(overrides: &HashMap<String, Vec<String>>) -> Result<Self, KeymapError> {
        for name in overrides.keys() {
            if !COMMANDS.iter().any(|(_, n, ..)| n == name) {
                return Err(KeymapError::UnknownCommand(name.clone()));
            }
        }
        let mut keys = Vec::new();
        for (cmd, name, _, _, defaults) in COMMANDS {
            let list: Vec<Key> = match overrides.get(*name) {
                Some(custom) => custom
                    .iter()
                    .map(|k| Key::parse(k).map_err(KeymapError::BadKey))
                    .collect::<Result<_, _>>()?,
                None => defaults
                    .iter()
                    .map(|k| Key::parse(k).map_err(KeymapError::BadKey))
                    .collect::<Result<_, _>>()?,
            };
            keys.push((*cmd, list));
        }
        // Overrides win over defaults bound to the same key.
        let mut by_key = HashMap::new();
        for (cmd, list) in &keys {
            let name = Self::name(*cmd);
            if !overrides.contains_key(name) {
                for k in list {
                    by_key.insert(*k, *cmd);
                }
            }
        }
        for (cmd, list) in &keys {
            if overrides.contains_key(Self::name(*cmd)) {
                for k in list {
                    by_key.insert(*k, *cmd);
                }
            }
        }
        // A key taken by an override is no longer shown for the default.
        let keys = keys
            .into_iter()
            .map(|(cmd, list)| {
                let list = list
                    .into_iter()
                    .filter(|k| by_key.get(k) == Some(&cmd))
                    .collect();
                (cmd, list)
            })
            .collect();
        Ok(Self { by_key, keys })
    }

    pub fn name(cmd: KeyCommand) -> &'static str {
        COMMANDS
            .iter()
            .find(|(c, ..)| *c == cmd)
            .map(|(_, n, ..)| *n)
            .unwrap_or("?")
    }

    /// The command a key press means, if any (key releases are ignored).
    pub fn command(&self, ev: &KeyEvent) -> Option<KeyCommand> {
        if ev.kind == KeyEventKind::Release {
            return None;
        }
        self.by_key.get(&Key::from_event(ev)).copied()
    }

    /// The keys of `cmd`, as the help writes them (`j/↓`).
    pub fn keys_label(&self, cmd: KeyCommand) -> String {
        self.keys
            .iter()
            .find(|(c, _)| *c == cmd)
            .map(|(_, ks)| ks.iter().map(Key::label).collect::<Vec<_>>().join("/"))
            .unwrap_or_default()
    }

    /// The help screen's lines: per group, (keys, description).
    pub fn help(&self) -> Vec<(Group, Vec<(String, &'static str)>)> {
        let mut out: Vec<(Group, Vec<(String, &'static str)>)> = Vec::new();
        for (cmd, _, group, desc, _) in COMMANDS {
            let keys = self.keys_label(*cmd);
            let keys = if keys.is_empty() {
                "(unbound)".into()
            } else {
                keys
            };
            match out.iter_mut().find(|(g, _)| g == group) {
                Some((_, lines)) => lines.push((keys, desc)),
                None => out.push((*group, vec![(keys, desc)])),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn defaults_cover_vim_and_arrows() {
        let k = Keymap::default();
        assert_eq!(
            k.command(&press(KeyCode::Char('j'), KeyModifiers::NONE)),
            Some(KeyCommand::Down)
        );
        assert_eq!(
            k.command(&press(KeyCode::Down, KeyModifiers::NONE)),
            Some(KeyCommand::Down)
        );
        assert_eq!(
            k.command(&press(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(KeyCommand::Quit)
        );
        assert_eq!(
            k.command(&press(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(KeyCommand::Bottom)
        );
        assert_eq!(k.keys_label(KeyCommand::Down), "j/↓");
    }

    #[test]
    fn overrides_replace_defaults_and_show_in_help() {
        let mut o = HashMap::new();
        o.insert("quit".to_string(), vec!["x".to_string()]);
        o.insert(
            "down".to_string(),
            vec!["n".to_string(), "down".to_string()],
        );
        let k = Keymap::with_overrides(&o).unwrap();
        assert_eq!(
            k.command(&press(KeyCode::Char('x'), KeyModifiers::NONE)),
            Some(KeyCommand::Quit)
        );
        assert_eq!(
            k.command(&press(KeyCode::Char('q'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(k.keys_label(KeyCommand::Down), "n/↓");
        let help = k.help();
        assert!(
            help.iter()
                .flat_map(|(_, l)| l)
                .any(|(keys, d)| keys == "x" && *d == "quit")
        );
    }

    #[test]
    fn bad_overrides_are_refused() {
        let mut o = HashMap::new();
        o.insert("fly".to_string(), vec!["x".to_string()]);
        assert!(matches!(
            Keymap::with_overrides(&o),
            Err(KeymapError::UnknownCommand(_))
        ));
        let mut o = HashMap::new();
        o.insert("quit".to_string(), vec!["hyper-x".to_string()]);
        assert!(matches!(
            Keymap::with_overrides(&o),
            Err(KeymapError::BadKey(_))
        ));
    }
}
