//! Retention: per category of the privacy policy's schedule, the backlog
//! against its period, overdue records highlighted with the oldest one's
//! age, what falls due in 24 h and 7 days, and the last and next purge run.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::{Component, Ctx};
use crate::action::{Action, WriteAction};
use crate::format;
use crate::keymap::KeyCommand;
use crate::store::Feed;
use crate::widgets::panel;

#[derive(Debug, Default)]
pub struct RetentionView;

impl Component for RetentionView {
    fn handle_event(&mut self, cmd: KeyCommand, _ctx: &Ctx) -> Option<Action> {
        match cmd {
            KeyCommand::Purge => Some(Action::Write(WriteAction::Purge)),
            _ => None,
        }
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = ctx.theme;
        let s = ctx.store;
        let fresh = s.freshness(Feed::Retention);
        let [table, runs] =
            Layout::vertical([Constraint::Min(9), Constraint::Length(8)]).areas(area);
        let header = Row::new(
            [
                "CATEGORY",
                "POLICY",
                "RECORDS",
                "BYTES",
                "OVERDUE",
                "OLDEST OVERDUE",
                "DUE 24H",
                "DUE 7D",
            ]
            .map(Cell::from),
        )
        .style(t.header);
        let rows: Vec<Row> = s
            .retention
            .as_ref()
            .map(|r| {
                r.categories
                    .iter()
                    .map(|c| {
                        if !c.tracked {
                            return Row::new(vec![
                                Cell::from(c.label.as_str()),
                                Cell::from(c.policy.as_str()),
                                Cell::from(Line::from("–").right_aligned()),
                                Cell::from(Line::from("–").right_aligned()),
                                Cell::from("–"),
                                Cell::from("–"),
                                Cell::from("–"),
                                Cell::from("–"),
                            ])
                            .style(t.dim);
                        }
                        let overdue = if c.overdue > 0 {
                            Cell::from(Span::styled(format!("{} OVERDUE", c.overdue), t.danger))
                        } else {
                            Cell::from(Span::styled("0", t.ok))
                        };
                        let oldest = c
                            .oldest_overdue_age_s
                            .map(|a| Cell::from(Span::styled(format::age_coarse(a), t.danger)))
                            .unwrap_or_else(|| Cell::from("–"));
                        Row::new(vec![
                            Cell::from(c.label.as_str()),
                            Cell::from(c.policy.as_str()),
                            Cell::from(Line::from(c.records.to_string()).right_aligned()),
                            Cell::from(Line::from(format::bytes(c.bytes)).right_aligned()),
                            overdue,
                            oldest,
                            Cell::from(Span::styled(
                                c.due_24h.to_string(),
                                if c.due_24h > 0 { t.warn } else { t.text },
                            )),
                            Cell::from(c.due_7d.to_string()),
                        ])
                    })
                    .collect()
            })
            .unwrap_or_default();
        let widths = [
            Constraint::Length(29),
            Constraint::Min(20),
            Constraint::Length(8),
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Length(14),
            Constraint::Length(7),
            Constraint::Length(7),
        ];
        f.render_widget(
            Table::new(rows, widths).header(header).block(panel::block(
                "Retention backlog by category",
                fresh,
                t,
            )),
            table,
        );
        let mut lines = Vec::new();
        if let Some(r) = &s.retention {
            let now = s.core_now;
            match &r.last_purge {
                Some(p) => lines.push(Line::from(vec![
                    Span::styled("last purge   ", t.dim),
                    Span::styled(
                        format!(
                            "{} ({}) · {} rows deleted · {} keys destroyed · {} ms",
                            format::date_time_str(&p.at),
                            p.trigger,
                            p.rows_deleted,
                            p.keys_destroyed.len(),
                            p.duration_ms
                        ),
                        t.text,
                    ),
                ])),
                None => lines.push(Line::from(vec![
                    Span::styled("last purge   ", t.dim),
                    Span::styled("none yet", t.text),
                ])),
            }
            let next = r
                .next_purge_at
                .as_deref()
                .map(|n| match (format::parse_time(n), now) {
                    (Some(n), Some(now)) if n >= now => {
                        format!("{} ({})", format::date_time(&n), format::relative(&n, &now))
                    }
                    // The dev clock moved past the scheduled time.
                    (Some(n), Some(_)) => {
                        format!("{} (behind the core clock)", format::date_time(&n))
                    }
                    _ => format::date_time_str(n),
                })
                .unwrap_or_else(|| "not scheduled".into());
            lines.push(Line::from(vec![
                Span::styled("next purge   ", t.dim),
                Span::styled(
                    format!("{next} · every {}", format::age(r.purge_interval_s as i64)),
                    t.text,
                ),
            ]));
            lines.push(Line::from(vec![
                Span::styled("tenants      ", t.dim),
                Span::styled(
                    format!(
                        "{} terminated, key not yet destroyed",
                        r.tenants_pending_purge
                    ),
                    if r.tenants_pending_purge > 0 {
                        t.warn
                    } else {
                        t.text
                    },
                ),
            ]));
            let untracked: Vec<&str> = r
                .categories
                .iter()
                .filter(|c| !c.tracked)
                .map(|c| c.label.as_str())
                .collect();
            if !untracked.is_empty() {
                lines.push(Line::styled(
                    format!(
                        "– in the policy, not stored by this core: {}",
                        untracked.join(", ")
                    ),
                    t.dim,
                ));
            }
            let overdue: i64 = r.categories.iter().map(|c| c.overdue).sum();
            if overdue > 0 {
                lines.push(Line::styled(
                    format!("{overdue} records are past their retention date and wait for the next purge run."),
                    t.danger,
                ));
            }
            if ctx.write {
                lines.push(Line::styled(
                    format!(
                        "{} runs a purge now (TOTP)",
                        ctx.keymap.keys_label(KeyCommand::Purge)
                    ),
                    t.dim,
                ));
            }
        }
        f.render_widget(
            Paragraph::new(lines).block(panel::block("Purge runs", fresh, t)),
            runs,
        );
    }
}
