//! The views, one component each (gitui's shape): `handle_event` turns a
//! key command into an optional [`Action`], `update` follows the store,
//! `draw` renders into an area. Every view draws from the store alone, so
//! each one can be drawn on a `TestBackend` with fixed data.
//!
//! Tabs `1`–`7`: [`overview`], [`tenants`] (with [`tenant_detail`] behind
//! `Enter`), [`throughput`], [`retention`], [`subprocessors`], [`audit`],
//! [`compliance`];
//! [`help`] is generated from the keymap.

pub mod audit;
pub mod compliance;
pub mod help;
pub mod overview;
pub mod retention;
pub mod subprocessors;
pub mod tenant_detail;
pub mod tenants;
pub mod throughput;

use ratatui::Frame;
use ratatui::layout::Rect;

use crate::action::Action;
use crate::keymap::{KeyCommand, Keymap};
use crate::store::Store;
use crate::theme::Theme;

/// The top-level views, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tab {
    Overview,
    Tenants,
    Throughput,
    Retention,
    Subprocessors,
    Audit,
    Compliance,
}

impl Tab {
    pub const ALL: [Tab; 7] = [
        Tab::Overview,
        Tab::Tenants,
        Tab::Throughput,
        Tab::Retention,
        Tab::Subprocessors,
        Tab::Audit,
        Tab::Compliance,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Overview => "Overview",
            Tab::Tenants => "Tenants",
            Tab::Throughput => "Throughput",
            Tab::Retention => "Retention",
            Tab::Subprocessors => "Sub-processors",
            Tab::Audit => "Audit / events",
            Tab::Compliance => "Compliance",
        }
    }

    /// The `:` command (and `--snapshot` name) of the view.
    pub fn command(self) -> &'static str {
        match self {
            Tab::Overview => "overview",
            Tab::Tenants => "tenants",
            Tab::Throughput => "throughput",
            Tab::Retention => "retention",
            Tab::Subprocessors => "subprocessors",
            Tab::Audit => "audit",
            Tab::Compliance => "compliance",
        }
    }

    pub fn parse(s: &str) -> Option<Tab> {
        let s = s.trim().to_ascii_lowercase();
        let alias = match s.as_str() {
            "subs" | "sub-processors" | "registry" => "subprocessors",
            "events" => "audit",
            "dsr" | "incidents" | "consents" | "gdpr" => "compliance",
            other => other,
        };
        Tab::ALL.into_iter().find(|t| t.command() == alias)
    }

    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    pub fn next(self) -> Tab {
        Tab::ALL[(self.index() + 1) % Tab::ALL.len()]
    }

    pub fn prev(self) -> Tab {
        Tab::ALL[(self.index() + Tab::ALL.len() - 1) % Tab::ALL.len()]
    }
}

/// What a view may read while handling a key or drawing.
pub struct Ctx<'a> {
    pub store: &'a Store,
    pub theme: &'a Theme,
    pub keymap: &'a Keymap,
    /// `--write` given.
    pub write: bool,
}

/// A view.
pub trait Component {
    /// A key command while this view is in front; `None` if it is not for it.
    fn handle_event(&mut self, cmd: KeyCommand, ctx: &Ctx) -> Option<Action>;
    /// Follows the store (called before every draw; cheap when nothing changed).
    fn update(&mut self, _store: &Store) {}
    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &Ctx);
}

/// Moves a selection index by a key command over `len` rows, `page` rows a page.
pub fn move_selection(selected: usize, len: usize, page: usize, cmd: KeyCommand) -> Option<usize> {
    if len == 0 {
        return None;
    }
    let last = len - 1;
    let page = page.max(1);
    Some(match cmd {
        KeyCommand::Up => selected.saturating_sub(1),
        KeyCommand::Down => (selected + 1).min(last),
        KeyCommand::PageUp => selected.saturating_sub(page),
        KeyCommand::PageDown => (selected + page).min(last),
        KeyCommand::Top => 0,
        KeyCommand::Bottom => last,
        _ => return None,
    })
}

/// The first row to show so that `selected` is visible in `height` rows.
pub fn scroll_offset(offset: usize, selected: usize, height: usize) -> usize {
    let height = height.max(1);
    if selected < offset {
        selected
    } else if selected >= offset + height {
        selected + 1 - height
    } else {
        offset
    }
}
