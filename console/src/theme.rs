//! The one [`Theme`]: every style a view uses comes from here, so a colour
//! scheme (or its absence under `NO_COLOR`) is decided in one place.
//!
//! The monochrome theme keeps every distinction that matters readable
//! without colour: the selection is reversed and bold, warnings are bold,
//! danger is bold and underlined, stale data is dim and italic.

use ratatui::style::{Color, Modifier, Style};

/// Which palette to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThemeName {
    Dark,
    Light,
    /// No colours at all (what `NO_COLOR` selects).
    Mono,
}

impl ThemeName {
    pub const ALL: [ThemeName; 3] = [ThemeName::Dark, ThemeName::Light, ThemeName::Mono];

    pub fn as_str(self) -> &'static str {
        match self {
            ThemeName::Dark => "dark",
            ThemeName::Light => "light",
            ThemeName::Mono => "mono",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown theme {s:?}; use dark, light or mono"))
    }
}

/// Styles by meaning, never by colour name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Theme {
    pub name: ThemeName,
    pub text: Style,
    pub dim: Style,
    pub title: Style,
    pub border: Style,
    pub header: Style,
    pub selected: Style,
    pub tab: Style,
    pub tab_active: Style,
    pub ok: Style,
    pub warn: Style,
    pub danger: Style,
    pub stale: Style,
    pub accent: Style,
    pub spark: Style,
    pub badge_write: Style,
    pub badge_read: Style,
    pub input: Style,
}

impl Theme {
    pub fn new(name: ThemeName) -> Self {
        match name {
            ThemeName::Dark => Self::colored(name, Color::Cyan, Color::Gray, Color::DarkGray),
            ThemeName::Light => Self::colored(name, Color::Blue, Color::Black, Color::Gray),
            ThemeName::Mono => Self::mono(),
        }
    }

    /// The theme for the environment: `NO_COLOR` (set and non-empty, as
    /// no-color.org says) wins over the requested name.
    pub fn for_env(requested: ThemeName, no_color: bool) -> Self {
        if no_color {
            Self::new(ThemeName::Mono)
        } else {
            Self::new(requested)
        }
    }

    fn colored(name: ThemeName, accent: Color, text: Color, dim: Color) -> Self {
        let bold = Modifier::BOLD;
        Self {
            name,
            text: Style::new().fg(text),
            dim: Style::new().fg(dim),
            title: Style::new().fg(accent).add_modifier(bold),
            border: Style::new().fg(dim),
            header: Style::new().fg(accent).add_modifier(bold),
            selected: Style::new()
                .add_modifier(Modifier::REVERSED)
                .add_modifier(bold),
            tab: Style::new().fg(text),
            tab_active: Style::new()
                .fg(accent)
                .add_modifier(bold)
                .add_modifier(Modifier::REVERSED),
            ok: Style::new().fg(Color::Green),
            warn: Style::new().fg(Color::Yellow).add_modifier(bold),
            danger: Style::new().fg(Color::Red).add_modifier(bold),
            stale: Style::new()
                .fg(Color::Yellow)
                .add_modifier(Modifier::ITALIC),
            accent: Style::new().fg(accent),
            spark: Style::new().fg(Color::Green),
            badge_write: Style::new()
                .fg(Color::Black)
                .bg(Color::Red)
                .add_modifier(bold),
            badge_read: Style::new().fg(Color::Black).bg(Color::Green),
            input: Style::new().fg(accent),
        }
    }

    fn mono() -> Self {
        let none = Style::new();
        let bold = Style::new().add_modifier(Modifier::BOLD);
        Self {
            name: ThemeName::Mono,
            text: none,
            dim: none,
            title: bold,
            border: none,
            header: bold.add_modifier(Modifier::UNDERLINED),
            selected: Style::new()
                .add_modifier(Modifier::REVERSED)
                .add_modifier(Modifier::BOLD),
            tab: none,
            tab_active: Style::new()
                .add_modifier(Modifier::REVERSED)
                .add_modifier(Modifier::BOLD),
            ok: none,
            warn: bold,
            danger: bold.add_modifier(Modifier::UNDERLINED),
            stale: Style::new().add_modifier(Modifier::ITALIC),
            accent: none,
            spark: none,
            badge_write: Style::new()
                .add_modifier(Modifier::REVERSED)
                .add_modifier(Modifier::BOLD),
            badge_read: none,
            input: bold,
        }
    }
}

impl Default for Theme {
    fn default() -> Self {
        Self::new(ThemeName::Dark)
    }
}

/// Whether `NO_COLOR` asks for no colour (present and not empty).
pub fn no_color_from_env() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_has_no_colour_but_a_visible_selection() {
        let t = Theme::new(ThemeName::Mono);
        for s in [
            t.text,
            t.dim,
            t.title,
            t.border,
            t.header,
            t.selected,
            t.tab,
            t.tab_active,
            t.ok,
            t.warn,
            t.danger,
            t.stale,
            t.accent,
            t.spark,
            t.badge_write,
            t.badge_read,
            t.input,
        ] {
            assert_eq!(s.fg, None);
            assert_eq!(s.bg, None);
        }
        assert!(t.selected.add_modifier.contains(Modifier::REVERSED));
        assert!(t.selected.add_modifier.contains(Modifier::BOLD));
    }

    #[test]
    fn no_color_wins() {
        assert_eq!(Theme::for_env(ThemeName::Dark, true).name, ThemeName::Mono);
        assert_eq!(ThemeName::parse("Light"), Ok(ThemeName::Light));
        assert!(ThemeName::parse("neon").is_err());
    }
}
