//! `--snapshot VIEW`: one frame of a view as plain text, for SSH scripts,
//! cron mail and CI logs. The same drawing code as the live console, on a
//! `TestBackend`, then the buffer's characters line by line.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::text::Line;

use crate::action::Action;
use crate::app::App;
use crate::store::Feed;
use crate::views::Tab;

/// What `--snapshot` can render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotView {
    Tab(Tab),
    /// `tenant:NAME|ID`: one tenant's detail.
    Tenant(String),
    Help,
}

impl SnapshotView {
    pub const NAMES: &'static str = "overview, tenants, tenant:NAME, throughput, retention, subprocessors, audit, compliance, help";

    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(t) = s.strip_prefix("tenant:") {
            return Ok(SnapshotView::Tenant(t.to_string()));
        }
        if s == "help" {
            return Ok(SnapshotView::Help);
        }
        Tab::parse(s)
            .map(SnapshotView::Tab)
            .ok_or_else(|| format!("unknown view {s:?}; one of {}", Self::NAMES))
    }

    /// The feeds this view needs before it is worth rendering.
    pub fn feeds(&self) -> &'static [Feed] {
        match self {
            SnapshotView::Tab(Tab::Overview) => {
                &[Feed::Overview, Feed::Throughput, Feed::Retention]
            }
            SnapshotView::Tab(Tab::Tenants) => &[Feed::Tenants],
            SnapshotView::Tenant(_) => &[Feed::Tenants, Feed::Registry],
            SnapshotView::Tab(Tab::Throughput) => &[Feed::Throughput],
            SnapshotView::Tab(Tab::Retention) => &[Feed::Retention],
            SnapshotView::Tab(Tab::Subprocessors) => &[Feed::Registry, Feed::Tenants],
            SnapshotView::Tab(Tab::Audit) => &[Feed::Audit, Feed::Events],
            // The overview carries the core's clock the countdowns run on.
            SnapshotView::Tab(Tab::Compliance) => &[
                Feed::Overview,
                Feed::Tenants,
                Feed::Dsr,
                Feed::Incidents,
                Feed::Consents,
            ],
            SnapshotView::Help => &[],
        }
    }

    /// Puts the app in front of this view. For a tenant, returns its id
    /// (the detail feed must be loaded for it next), or an error if no
    /// tenant matches.
    pub fn show(&self, app: &mut App) -> Result<Option<String>, String> {
        match self {
            SnapshotView::Tab(t) => {
                app.apply(Action::SwitchTab(*t));
                Ok(None)
            }
            SnapshotView::Help => {
                app.apply(Action::ToggleHelp);
                Ok(None)
            }
            SnapshotView::Tenant(needle) => {
                let lower = needle.to_lowercase();
                let id = app
                    .store
                    .tenants
                    .iter()
                    .find(|r| r.record.id == *needle || r.name.to_lowercase() == lower)
                    .or_else(|| {
                        app.store
                            .tenants
                            .iter()
                            .find(|r| r.haystack.contains(&lower))
                    })
                    .map(|r| r.record.id.clone())
                    .ok_or_else(|| format!("no tenant matches {needle:?}"))?;
                app.apply(Action::OpenTenant(id.clone()));
                Ok(Some(id))
            }
        }
    }
}

/// Draws the app once on a `width`×`height` test backend.
pub fn render(app: &mut App, width: u16, height: u16) -> Buffer {
    let backend = TestBackend::new(width, height);
    // A TestBackend cannot fail (its error type is `Infallible`).
    let mut terminal = match Terminal::new(backend) {
        Ok(t) => t,
        Err(never) => match never {},
    };
    if let Err(never) = terminal.draw(|f| app.draw(f)) {
        match never {}
    }
    terminal.backend().buffer().clone()
}

/// The buffer as text: one line per row, trailing blanks cut.
pub fn to_text(buf: &Buffer) -> String {
    let width = buf.area.width as usize;
    let mut out = String::new();
    for row in buf.content.chunks(width.max(1)) {
        let mut line = String::new();
        let mut skip = 0usize;
        for cell in row {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let sym = cell.symbol();
            line.push_str(sym);
            skip = Line::from(sym).width().saturating_sub(1);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
