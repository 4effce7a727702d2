//! Audit / events: the live event stream (newest first) and the audit log
//! of every admin write, allowed or refused.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::{Component, Ctx, move_selection, scroll_offset};
use crate::action::Action;
use crate::format;
use crate::keymap::KeyCommand;
use crate::store::Feed;
use crate::widgets::panel;

#[derive(Debug, Default)]
pub struct AuditView {
    selected: usize,
    offset: usize,
    page: usize,
}

impl Component for AuditView {
    fn handle_event(&mut self, cmd: KeyCommand, ctx: &Ctx) -> Option<Action> {
        if let Some(s) = move_selection(self.selected, ctx.store.audit.len(), self.page, cmd) {
            self.selected = s;
        }
        None
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = ctx.theme;
        let s = ctx.store;
        let r = s.redactor();
        let [events, audit] =
            Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(area);
        let h = events.height.saturating_sub(2) as usize;
        let mut lines: Vec<Line> = s
            .events
            .iter()
            .take(h)
            .map(|e| {
                Line::from(vec![
                    Span::styled(format!("{} ", e.at), t.dim),
                    Span::styled(format!("{:<17} ", e.kind), t.accent),
                    Span::styled(e.summary.as_str(), t.text),
                ])
            })
            .collect();
        if lines.is_empty() {
            lines.push(Line::styled(
                "no events yet (ticks arrive every second and are not listed)",
                t.dim,
            ));
        }
        let title = format!("Live events · {} ticks received", s.ticks_seen);
        f.render_widget(
            Paragraph::new(lines).block(panel::block(&title, s.freshness(Feed::Events), t)),
            events,
        );

        self.selected = self.selected.min(s.audit.len().saturating_sub(1));
        let height = audit.height.saturating_sub(3) as usize;
        self.page = height.max(1);
        self.offset = scroll_offset(self.offset, self.selected, height);
        let header = Row::new(
            [
                "AT", "ACTOR", "ROLE", "ACTION", "TARGET", "STATUS", "OUTCOME",
            ]
            .map(Cell::from),
        )
        .style(t.header);
        let rows = s
            .audit
            .iter()
            .enumerate()
            .skip(self.offset)
            .take(height)
            .map(|(i, a)| {
                let ok = (200..300).contains(&a.status);
                let row = Row::new(vec![
                    Cell::from(format::date_time_str(&a.at)),
                    Cell::from(r.ident(&a.actor)),
                    Cell::from(a.role.as_str()),
                    Cell::from(a.action.as_str()),
                    Cell::from(r.text_with_ids(&a.target)),
                    Cell::from(Span::styled(
                        a.status.to_string(),
                        if ok { t.ok } else { t.danger },
                    )),
                    Cell::from(a.outcome.as_str()),
                ]);
                if i == self.selected {
                    row.style(t.selected)
                } else {
                    row
                }
            });
        let widths = [
            Constraint::Length(16),
            Constraint::Length(18),
            Constraint::Length(8),
            Constraint::Fill(1),
            Constraint::Fill(1),
            Constraint::Length(6),
            Constraint::Length(12),
        ];
        f.render_widget(
            Table::new(rows, widths).header(header).block(panel::block(
                "Audit log (newest first)",
                s.freshness(Feed::Audit),
                t,
            )),
            audit,
        );
    }
}
