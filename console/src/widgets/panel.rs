//! A bordered panel whose title says what it is and whose right-hand
//! title says how old its data is.

use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders};

use crate::store::Freshness;
use crate::theme::Theme;

/// A panel for data of a given freshness.
pub fn block<'a>(title: &'a str, freshness: &Freshness, theme: &Theme) -> Block<'a> {
    let age_style = match freshness {
        Freshness::Fresh => theme.ok,
        Freshness::Loading => theme.dim,
        Freshness::Stale(_) => theme.stale,
        Freshness::Failed(_) => theme.danger,
    };
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Line::from(Span::styled(format!(" {title} "), theme.title)))
        .title(
            Line::from(Span::styled(format!(" {} ", freshness.label()), age_style)).right_aligned(),
        )
}

/// A panel without a data age (help, popups).
pub fn plain<'a>(title: &'a str, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Line::from(Span::styled(format!(" {title} "), theme.title)))
}
