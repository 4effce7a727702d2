//! Compliance: open data-subject requests with their deadlines (overdue
//! first), personal-data breaches with each notification clock (48 h per
//! affected controller, 72 h for the authority, the people themselves),
//! and consent withdrawals. Countdowns are computed at draw time against
//! the core's clock (the dev clock may run ahead of this machine's).
//! Overdue is marked with `!` as well as the danger style, so it stays
//! visible under `NO_COLOR`.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table};

use super::{Component, Ctx, move_selection, scroll_offset};
use crate::action::Action;
use crate::format;
use crate::keymap::KeyCommand;
use crate::store::{ClockRow, Feed};
use crate::theme::Theme;
use crate::widgets::panel;

/// Requests due within this many seconds are shown as a warning.
const DSR_SOON_S: i64 = 3 * 86_400;

#[derive(Debug, Default)]
pub struct ComplianceView {
    selected: usize,
    offset: usize,
    page: usize,
}

/// Seconds left until `deadline` by the core's clock; without either, the
/// figure the core gave at the last fetch.
pub fn seconds_left(
    deadline: Option<DateTime<Utc>>,
    at_fetch: i64,
    now: Option<DateTime<Utc>>,
) -> i64 {
    match (deadline, now) {
        (Some(d), Some(n)) => (d - n).num_seconds(),
        _ => at_fetch,
    }
}

/// `in 12d 3h` or `! overdue 2d 1h`, minute granularity.
pub fn countdown(secs: i64) -> String {
    if secs >= 0 {
        format!("in {}", format::age_coarse(secs))
    } else {
        format!("! overdue {}", format::age_coarse(-secs))
    }
}

fn clock_state<'a>(c: &ClockRow, now: Option<DateTime<Utc>>, t: &Theme) -> Span<'a> {
    match &c.notified_at {
        Some(at) if c.seconds_left < 0 => Span::styled(format!("notified {at} (late)"), t.warn),
        Some(at) => Span::styled(format!("notified {at}"), t.ok),
        None => {
            let left = seconds_left(c.deadline_at, c.seconds_left, now);
            Span::styled(countdown(left), if left < 0 { t.danger } else { t.warn })
        }
    }
}

fn due_style(left: i64, t: &Theme) -> Style {
    if left < 0 {
        t.danger
    } else if left < DSR_SOON_S {
        t.warn
    } else {
        t.text
    }
}

impl Component for ComplianceView {
    fn handle_event(&mut self, cmd: KeyCommand, ctx: &Ctx) -> Option<Action> {
        let len = ctx.store.compliance.dsrs.len();
        if let Some(s) = move_selection(self.selected, len, self.page, cmd) {
            self.selected = s;
        }
        None
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = ctx.theme;
        let s = ctx.store;
        let c = &s.compliance;
        let now = s.core_now;
        let [dsr_area, incident_area, consent_area] = Layout::vertical([
            Constraint::Percentage(40),
            Constraint::Percentage(35),
            Constraint::Min(5),
        ])
        .areas(area);

        // --- data-subject requests ----------------------------------------
        self.selected = self.selected.min(c.dsrs.len().saturating_sub(1));
        let height = dsr_area.height.saturating_sub(3) as usize;
        self.page = height.max(1);
        self.offset = scroll_offset(self.offset, self.selected, height);
        let lefts: Vec<i64> = c
            .dsrs
            .iter()
            .map(|d| seconds_left(d.due_at, d.seconds_left, now))
            .collect();
        let overdue = lefts.iter().filter(|l| **l < 0).count();
        let header = Row::new(
            [
                "TENANT",
                "TYPE",
                "SUBJECT",
                "RECEIVED",
                "DUE",
                "COUNTDOWN",
                "STATUS",
                "EXT.",
            ]
            .map(Cell::from),
        )
        .style(t.header);
        let rows: Vec<Row> = c
            .dsrs
            .iter()
            .zip(&lefts)
            .enumerate()
            .skip(self.offset)
            .take(height)
            .map(|(i, (d, left))| {
                let row = Row::new(vec![
                    Cell::from(d.tenant.as_str()),
                    Cell::from(d.kind),
                    Cell::from(d.subject_kind),
                    Cell::from(d.received_at.as_str()),
                    Cell::from(d.due_at.map(|d| format::date_time(&d)).unwrap_or_default()),
                    Cell::from(Span::styled(countdown(*left), due_style(*left, t))),
                    Cell::from(d.status),
                    Cell::from(d.extension.as_str()),
                ]);
                if i == self.selected {
                    row.style(t.selected)
                } else {
                    row
                }
            })
            .collect();
        let mut title = format!(
            "Data-subject requests · {} open · {overdue} overdue",
            c.dsr_open
        );
        if c.dsr_open > c.dsrs.len() {
            title.push_str(&format!(
                " · {} beyond the first pages",
                c.dsr_open - c.dsrs.len()
            ));
        }
        let widths = [
            Constraint::Fill(1),
            Constraint::Length(13),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(16),
            Constraint::Length(17),
            Constraint::Length(8),
            Constraint::Length(5),
        ];
        let empty = c.dsrs.is_empty();
        let mut table = Table::new(rows, widths).header(header);
        if empty {
            table = Table::new(
                [Row::new([Cell::from(Span::styled(
                    "no open requests",
                    t.dim,
                ))])],
                [Constraint::Fill(1)],
            );
        }
        f.render_widget(
            table.block(panel::block(&title, s.freshness(Feed::Dsr), t)),
            dsr_area,
        );

        // --- breaches -------------------------------------------------------
        // Each breach: its nature, then when the platform became aware,
        // beside its clocks one a row.
        let header =
            Row::new(["BREACH", "CLOCK", "DEADLINE", "STATE"].map(Cell::from)).style(t.header);
        let mut rows: Vec<Row> = Vec::new();
        let mut open_clocks = 0usize;
        let mut overdue_clocks = 0usize;
        for i in &c.incidents {
            let n_rows = i.clocks.len().max(2);
            for n in 0..n_rows {
                let first = match n {
                    0 => Cell::from(Span::styled(
                        i.nature.as_str(),
                        if i.open { t.text } else { t.dim },
                    )),
                    1 => Cell::from(Span::styled(format!("  aware {}", i.aware_at), t.dim)),
                    _ => Cell::from(""),
                };
                let Some(k) = i.clocks.get(n) else {
                    let what = if i.clocks.is_empty() && n == 0 {
                        "no notification due"
                    } else {
                        ""
                    };
                    rows.push(Row::new(vec![first, Cell::from(Span::styled(what, t.dim))]));
                    continue;
                };
                if k.notified_at.is_none() {
                    open_clocks += 1;
                    if seconds_left(k.deadline_at, k.seconds_left, now) < 0 {
                        overdue_clocks += 1;
                    }
                }
                let label = match &k.tenant {
                    Some(tn) => format!("{} · {tn}", k.label),
                    None => k.label.to_string(),
                };
                rows.push(Row::new(vec![
                    first,
                    Cell::from(label),
                    Cell::from(
                        k.deadline_at
                            .map(|d| format::date_time(&d))
                            .unwrap_or_default(),
                    ),
                    Cell::from(clock_state(k, now, t)),
                ]));
            }
        }
        if rows.is_empty() {
            rows.push(Row::new([Cell::from(Span::styled(
                "no breaches recorded",
                t.dim,
            ))]));
        }
        let title = format!(
            "Breaches · {} recorded · {open_clocks} notifications due · {overdue_clocks} overdue",
            c.incidents.len()
        );
        let widths = [
            Constraint::Fill(1),
            Constraint::Fill(1),
            Constraint::Length(16),
            Constraint::Length(32),
        ];
        f.render_widget(
            Table::new(rows, widths).header(header).block(panel::block(
                &title,
                s.freshness(Feed::Incidents),
                t,
            )),
            incident_area,
        );

        // --- consent withdrawals ---------------------------------------------
        let header = Row::new(["TENANT", "SUBJECT", "PURPOSES WITHDRAWN", "WHEN"].map(Cell::from))
            .style(t.header);
        let mut rows: Vec<Row> = c
            .consents
            .iter()
            .map(|r| {
                let purposes = if r.all {
                    Line::from(vec![
                        Span::styled(r.withdrawn.as_str(), t.text),
                        Span::styled(" (all)", t.dim),
                    ])
                } else {
                    Line::from(r.withdrawn.as_str())
                };
                Row::new(vec![
                    Cell::from(r.tenant.as_str()),
                    Cell::from(r.subject_kind),
                    Cell::from(purposes),
                    Cell::from(r.at.as_str()),
                ])
            })
            .collect();
        if rows.is_empty() {
            rows.push(Row::new([Cell::from(Span::styled(
                "no withdrawals",
                t.dim,
            ))]));
        }
        let title = format!("Consent withdrawals · {} purposes withdrawn", c.withdrawals);
        let widths = [
            Constraint::Fill(1),
            Constraint::Length(10),
            Constraint::Fill(2),
            Constraint::Length(16),
        ];
        f.render_widget(
            Table::new(rows, widths).header(header).block(panel::block(
                &title,
                s.freshness(Feed::Consents),
                t,
            )),
            consent_area,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdowns_read_both_ways() {
        assert_eq!(countdown(12 * 86_400 + 3 * 3_600), "in 12d 3h");
        assert_eq!(countdown(5 * 3_600 + 12 * 60), "in 5h 12m");
        assert_eq!(countdown(-3 * 3_600), "! overdue 3h 0m");
        assert_eq!(countdown(-30), "! overdue <1m");
        let now = format::parse_time("2026-03-01T12:00:00Z");
        let due = format::parse_time("2026-03-01T10:00:00Z");
        assert_eq!(seconds_left(due, 999, now), -7_200);
        assert_eq!(seconds_left(due, 999, None), 999);
    }
}
