//! Overview: platform totals, msgs/s per channel with sparklines, ingest
//! p50/p99, retention overdue, pending registry changes, open incidents.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};

use super::{Component, Ctx};
use crate::action::Action;
use crate::keymap::KeyCommand;
use crate::store::{CHANNELS, Feed};
use crate::theme::Theme;
use crate::widgets::panel;

#[derive(Debug, Default)]
pub struct OverviewView;

impl Component for OverviewView {
    fn handle_event(&mut self, _cmd: KeyCommand, _ctx: &Ctx) -> Option<Action> {
        None
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = ctx.theme;
        let s = ctx.store;
        let [top, channels, bottom] = Layout::vertical([
            Constraint::Length(9),
            Constraint::Min(8),
            Constraint::Length(6),
        ])
        .areas(area);
        let [totals, ingest] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);

        let fresh = s.freshness(Feed::Overview);
        let kv = |k: &str, v: String, style| {
            Line::from(vec![
                Span::styled(format!("{k:<22}"), t.dim),
                Span::styled(v, style),
            ])
        };
        let mut lines = Vec::new();
        match &s.overview {
            Some(o) => {
                lines.push(kv("tenants", o.tenants_total.to_string(), t.text));
                lines.push(kv(
                    "  active / suspended",
                    format!("{} / {}", o.active, o.suspended),
                    t.text,
                ));
                lines.push(kv(
                    "  terminated / purged",
                    format!("{} / {}", o.terminated, o.purged),
                    t.text,
                ));
                lines.push(kv(
                    "  without a DPA",
                    o.without_dpa.to_string(),
                    if o.without_dpa > 0 { t.warn } else { t.text },
                ));
                lines.push(kv(
                    "messages stored",
                    format!(
                        "{} ({})",
                        crate::format::count(o.messages_total),
                        crate::format::bytes(o.bytes_total as i64)
                    ),
                    t.text,
                ));
                lines.push(kv(
                    "uptime",
                    crate::format::age_coarse(o.uptime_min * 60),
                    t.text,
                ));
            }
            None => lines.push(Line::styled("waiting for the core…", t.dim)),
        }
        f.render_widget(
            Paragraph::new(lines).block(panel::block("Platform", fresh, t)),
            totals,
        );

        let mut lines = Vec::new();
        if let Some(o) = &s.overview {
            lines.push(kv("msgs/s (10 s)", o.msgs_per_s.clone(), t.accent));
            lines.push(kv("ingest p50", o.p50.clone(), t.text));
            lines.push(kv("ingest p99", o.p99.clone(), t.text));
            lines.push(kv(
                "errors (60 s)",
                o.errors_last_60s.to_string(),
                if o.errors_last_60s > 0 {
                    t.warn
                } else {
                    t.text
                },
            ));
            lines.push(kv(
                "active tenants (60 s)",
                o.active_tenants_last_60s.to_string(),
                t.text,
            ));
        }
        f.render_widget(
            Paragraph::new(lines).block(panel::block("Ingest", fresh, t)),
            ingest,
        );

        // Per channel: rate and a sparkline of the last minute.
        let tp_fresh = s.freshness(Feed::Throughput);
        let block = panel::block("Channels · msgs/s, last 60 s", tp_fresh, t);
        let inner = block.inner(channels);
        f.render_widget(block, channels);
        let rows = Layout::vertical([Constraint::Ratio(1, 3); 3]).split(inner);
        for (i, ch) in CHANNELS.iter().enumerate() {
            let Some(row) = rows.get(i).copied() else {
                continue;
            };
            let [label, spark] =
                Layout::horizontal([Constraint::Length(34), Constraint::Min(10)]).areas(row);
            let (rate, errors, p99) = s
                .overview
                .as_ref()
                .and_then(|o| o.channels.iter().find(|c| c.0 == *ch))
                .map(|c| (c.1.clone(), c.2, c.3.clone()))
                .unwrap_or_else(|| ("–".into(), 0, "–".into()));
            let text = vec![
                Line::from(vec![
                    Span::styled(format!("{ch:<9}"), t.header),
                    Span::styled(format!("{rate:>7} msg/s"), t.accent),
                ]),
                Line::from(vec![Span::styled(
                    format!("         p99 {p99:<8} err {errors}"),
                    if errors > 0 { t.warn } else { t.dim },
                )]),
            ];
            f.render_widget(Paragraph::new(text), label);
            let data = s
                .throughput
                .as_ref()
                .map(|tp| tp.channel_counts(ch))
                .unwrap_or_default();
            let data = crate::widgets::spark::right_aligned(&data, spark.width as usize);
            f.render_widget(Sparkline::default().data(&data).style(t.spark), spark);
        }

        let [retention, registry, incidents] = Layout::horizontal([
            Constraint::Ratio(1, 3),
            Constraint::Ratio(1, 3),
            Constraint::Ratio(1, 3),
        ])
        .areas(bottom);
        let mut lines = Vec::new();
        // The retention report is fresher than the overview's copy of it.
        let overdue = s
            .retention
            .as_ref()
            .map(|r| r.categories.iter().map(|c| c.overdue).sum::<i64>())
            .or(s.overview.as_ref().map(|o| o.retention_overdue));
        if let Some(overdue) = overdue {
            let style = if overdue > 0 { t.danger } else { t.ok };
            lines.push(figure("overdue records", overdue.to_string(), style, t));
        }
        if let Some(r) = &s.retention {
            let pending = format!("{} tenants", r.tenants_pending_purge);
            lines.push(figure("pending purge", pending, t.text, t));
        }
        f.render_widget(
            Paragraph::new(lines).block(panel::block("Retention", fresh, t)),
            retention,
        );
        let mut lines = Vec::new();
        if let Some(o) = &s.overview {
            let count = |n: usize, alarm| {
                let style = if n > 0 { alarm } else { t.text };
                (n.to_string(), style)
            };
            let (n, style) = count(o.registry_pending, t.warn);
            lines.push(figure("pending changes", n, style, t));
            let (n, style) = count(o.registry_flagged, t.danger);
            lines.push(figure("flagged", n, style, t));
            // Third, so 80×24 (two lines) still shows the flagged count.
            let (n, style) = count(o.registry_awaiting_approval, t.danger);
            lines.push(figure("need approval", n, style, t));
        }
        f.render_widget(
            Paragraph::new(lines).block(panel::block("Sub-processors", fresh, t)),
            registry,
        );
        // Open breach records: a count, or "—" when the core does not
        // track them (an older core), which is not the same as none open.
        let lines = match s.overview.as_ref().map(|o| o.incidents_open) {
            Some(Some(n)) => vec![
                figure(
                    "open",
                    n.to_string(),
                    if n > 0 { t.danger } else { t.ok },
                    t,
                ),
                Line::styled(
                    if n > 0 {
                        "a notification is due (tab 7)"
                    } else {
                        "every notification recorded"
                    },
                    t.dim,
                ),
            ],
            Some(None) => vec![
                figure("open", "—".into(), t.dim, t),
                Line::styled("not tracked by this core", t.dim),
            ],
            None => Vec::new(),
        };
        f.render_widget(
            Paragraph::new(lines).block(panel::block("Open incidents", fresh, t)),
            incidents,
        );
    }
}

/// One figure of a panel: its dim label in a 17-column field, then the value.
fn figure(label: &str, value: String, style: Style, t: &Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{label:<17}"), t.dim),
        Span::styled(value, style),
    ])
}
