//! Throughput: live charts per channel and direction over the last minute,
//! server-side ingest latency (receive → commit) and encryption time per
//! message, per channel.

use c24_api::admin::throughput::Direction;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Row, Sparkline, Table};

use super::{Component, Ctx};
use crate::action::Action;
use crate::keymap::KeyCommand;
use crate::store::{CHANNELS, Feed};
use crate::widgets::panel;

#[derive(Debug, Default)]
pub struct ThroughputView;

impl Component for ThroughputView {
    fn handle_event(&mut self, _cmd: KeyCommand, _ctx: &Ctx) -> Option<Action> {
        None
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &Ctx) {
        let t = ctx.theme;
        let s = ctx.store;
        let fresh = s.freshness(Feed::Throughput);
        let [charts, table] =
            Layout::vertical([Constraint::Min(9), Constraint::Length(7)]).areas(area);
        let cols = Layout::horizontal([Constraint::Ratio(1, 3); 3]).split(charts);
        for (i, ch) in CHANNELS.iter().enumerate() {
            let Some(col) = cols.get(i).copied() else {
                continue;
            };
            let title = format!("{ch} · msgs per second");
            let block = panel::block(&title, fresh, t);
            let inner = block.inner(col);
            f.render_widget(block, col);
            let [inb, outb] =
                Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                    .areas(inner);
            for (dir, a) in [(Direction::Inbound, inb), (Direction::Outbound, outb)] {
                let series = s.throughput.as_ref().and_then(|tp| tp.series_of(ch, dir));
                let rate = series.map(|x| x.rate.as_str()).unwrap_or("–");
                let data: &[u64] = series.map(|x| x.counts.as_slice()).unwrap_or(&[]);
                let peak = data.iter().copied().max().unwrap_or(0);
                let b = Block::default()
                    .borders(Borders::TOP)
                    .border_style(t.border)
                    .title(Line::from(vec![
                        Span::styled(format!(" {} ", dir.as_str()), t.header),
                        Span::styled(format!("{rate}/s "), t.accent),
                        Span::styled(format!("peak {peak} "), t.dim),
                    ]));
                let spark_area = b.inner(a);
                f.render_widget(b, a);
                let data = crate::widgets::spark::right_aligned(data, spark_area.width as usize);
                f.render_widget(Sparkline::default().data(&data).style(t.spark), spark_area);
            }
        }
        let title = match &s.throughput {
            Some(tp) => format!(
                "Ingest latency (receive → commit) and encryption, last ~{} s · all channels p50 {} p99 {}",
                tp.latency_window_s, tp.p50, tp.p99
            ),
            None => "Ingest latency and encryption".into(),
        };
        let header = Row::new(
            [
                "CHANNEL",
                "MSGS/S",
                "P50",
                "P90",
                "P99",
                "P99.9",
                "MAX",
                "ENCRYPT/MSG",
                "ERR/S",
            ]
            .map(Cell::from),
        )
        .style(t.header);
        let rows: Vec<Row> = s
            .throughput
            .as_ref()
            .map(|tp| {
                tp.channels
                    .iter()
                    .map(|c| {
                        Row::new(vec![
                            Cell::from(c.channel.as_str()),
                            Cell::from(c.msgs_per_s.as_str()),
                            Cell::from(c.p50.as_str()),
                            Cell::from(c.p90.as_str()),
                            Cell::from(c.p99.as_str()),
                            Cell::from(c.p999.as_str()),
                            Cell::from(c.max.as_str()),
                            Cell::from(c.encrypt.as_str()),
                            Cell::from(Span::styled(
                                c.errors_per_s.as_str(),
                                if c.errors_per_s == "0" {
                                    t.text
                                } else {
                                    t.warn
                                },
                            )),
                        ])
                    })
                    .collect()
            })
            .unwrap_or_default();
        let widths = [
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(12),
            Constraint::Length(6),
        ];
        f.render_widget(
            Table::new(rows, widths)
                .header(header)
                .block(panel::block(&title, fresh, t)),
            table,
        );
    }
}
