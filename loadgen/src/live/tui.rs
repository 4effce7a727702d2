//! The live panel on a terminal, after oha's: target versus achieved rate,
//! conversations in flight, p50/p99 per channel over the last seconds,
//! errors, and threshold status. Drawn inline on stderr (no alternate
//! screen, no raw mode: Ctrl-C still stops the run, and the last frame stays
//! in the scrollback above the summary).

use std::io::Stderr;
use std::time::Duration;

use ratatui::backend::CrosstermBackend;
use ratatui::layout::Constraint;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Gauge, Paragraph, Row, Table};
use ratatui::{Terminal, TerminalOptions, Viewport};

use crate::metrics::{Metric, Recorder};
use crate::scenario::{Channel, Plan};
use crate::thresholds::format_micros;

/// What one redraw shows.
pub struct Frame<'a> {
    pub name: &'a str,
    pub elapsed: Duration,
    pub duration: Duration,
    /// Conversations per second asked now.
    pub asked: f64,
    /// The last few seconds, and the span they cover.
    pub window: &'a Recorder,
    pub window_span: Duration,
    pub totals: &'a Recorder,
    pub in_flight: usize,
    /// Per threshold, in plan order: holds so far.
    pub verdicts: &'a [bool],
}

/// Rows: border 2, gauge 1, rates 1, table header 1, channel rows, thresholds 1.
const HEIGHT: u16 = 15;

pub struct Panel {
    terminal: Terminal<CrosstermBackend<Stderr>>,
    thresholds: Vec<String>,
}

impl Panel {
    pub fn start(plan: &Plan) -> std::io::Result<Self> {
        let terminal = Terminal::with_options(
            CrosstermBackend::new(std::io::stderr()),
            TerminalOptions {
                viewport: Viewport::Inline(HEIGHT),
            },
        )?;
        Ok(Panel {
            terminal,
            thresholds: plan
                .thresholds
                .iter()
                .map(|t| format!("{} {}", t.key, t.check))
                .collect(),
        })
    }

    pub fn draw(&mut self, f: &Frame<'_>) {
        let thresholds = &self.thresholds;
        let result = self.terminal.draw(|frame| render(frame, f, thresholds));
        if let Err(e) = result {
            tracing::debug!(error = %e, "live panel draw failed");
        }
    }

    /// Leaves the last frame on screen and the cursor below it.
    pub fn stop(mut self) {
        // Below the panel, so what is printed next does not overwrite it.
        let area = self.terminal.get_frame().area();
        let _ = self
            .terminal
            .set_cursor_position(ratatui::layout::Position::new(0, area.bottom()));
        let _ = self.terminal.show_cursor();
        eprintln!();
    }
}

/// Draws one frame of the panel.
pub fn render(frame: &mut ratatui::Frame<'_>, f: &Frame<'_>, thresholds: &[String]) {
    let area = frame.area();
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" c24-loadgen: {} ", f.name));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = ratatui::layout::Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(2),
    ])
    .split(inner);

    let ratio = if f.duration.is_zero() {
        1.0
    } else {
        (f.elapsed.as_secs_f64() / f.duration.as_secs_f64()).clamp(0.0, 1.0)
    };
    frame.render_widget(
        Gauge::default()
            .gauge_style(Style::default().fg(Color::Cyan))
            .ratio(ratio)
            .label(format!(
                "{:.0}s / {:.0}s",
                f.elapsed.as_secs_f64(),
                f.duration.as_secs_f64()
            )),
        rows[0],
    );

    let secs = f.window_span.as_secs_f64().max(1e-3);
    let started = f.window.scenario_totals(None).started as f64 / secs;
    let totals = f.totals.scenario_totals(None);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::raw("conversations/s  asked "),
            Span::styled(
                format!("{:.1}", f.asked),
                Style::default().add_modifier(Modifier::BOLD),
            ),
            Span::raw("  achieved "),
            Span::styled(
                format!("{started:.1}"),
                Style::default().add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!(
                "   in flight {}   started {}   late {}   dropped {}",
                f.in_flight, totals.started, totals.late, totals.dropped
            )),
        ])),
        rows[1],
    );

    let mut table_rows = Vec::new();
    for c in Channel::ALL {
        for m in Metric::ALL {
            if matches!(m, Metric::Storage | Metric::Network) {
                continue;
            }
            let Some(p) = f.window.combined(None, c, m) else {
                continue;
            };
            let errors = f.totals.error_count(None, Some(c));
            table_rows.push(Row::new(vec![
                Cell::from(c.as_str()),
                Cell::from(m.as_str()),
                Cell::from(format!("{:.1}", p.corrected.len() as f64 / secs)),
                Cell::from(format_micros(p.corrected.value_at_quantile(0.5) as f64)),
                Cell::from(format_micros(p.corrected.value_at_quantile(0.99) as f64)),
                Cell::from(format_micros(p.uncorrected.value_at_quantile(0.99) as f64)),
                Cell::from(errors.to_string()).style(if errors > 0 {
                    Style::default().fg(Color::Red)
                } else {
                    Style::default()
                }),
            ]));
        }
    }
    let table = Table::new(
        table_rows,
        [
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Length(7),
        ],
    )
    .header(
        Row::new(vec![
            "channel",
            "metric",
            "/s",
            "p50",
            "p99",
            "p99 uncorr",
            "errors",
        ])
        .style(Style::default().add_modifier(Modifier::BOLD)),
    );
    frame.render_widget(table, rows[2]);

    let failing: Vec<&str> = thresholds
        .iter()
        .zip(f.verdicts)
        .filter(|(_, ok)| !**ok)
        .map(|(t, _)| t.as_str())
        .collect();
    let status = if thresholds.is_empty() {
        Line::from("no thresholds")
    } else if failing.is_empty() {
        Line::from(Span::styled(
            format!("thresholds: all {} holding", thresholds.len()),
            Style::default().fg(Color::Green),
        ))
    } else {
        Line::from(Span::styled(
            format!(
                "thresholds failing ({}/{}): {}",
                failing.len(),
                thresholds.len(),
                failing.join(", ")
            ),
            Style::default().fg(Color::Red),
        ))
    };
    frame.render_widget(Paragraph::new(status), rows[3]);
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use ratatui::backend::TestBackend;

    use super::*;
    use crate::metrics::MetricKey;

    #[test]
    fn the_panel_shows_rates_latency_and_failing_thresholds() {
        let mut rec = Recorder::new(1);
        rec.counters(0).started = 50;
        let t = Instant::now();
        for _ in 0..10 {
            rec.latency(
                MetricKey {
                    scenario: 0,
                    channel: Channel::Webchat,
                    metric: Metric::Ack,
                    step: Some(0),
                },
                t,
                t,
                t + Duration::from_millis(4),
            );
        }
        let thresholds = vec![
            "webchat.ack.p99 < 1ms".to_string(),
            "errors.rate < 1%".to_string(),
        ];
        let frame = Frame {
            name: "smoke",
            elapsed: Duration::from_secs(5),
            duration: Duration::from_secs(10),
            asked: 10.0,
            window: &rec,
            window_span: Duration::from_secs(5),
            totals: &rec,
            in_flight: 3,
            verdicts: &[false, true],
        };
        let mut term = Terminal::new(TestBackend::new(100, HEIGHT)).expect("test terminal");
        term.draw(|f| render(f, &frame, &thresholds))
            .expect("draws");
        let screen: String = term
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        for needle in [
            "c24-loadgen: smoke",
            "5s / 10s",
            "asked 10.0",
            "achieved 10.0",
            "in flight 3",
            "webchat",
            "4.00ms",
            "thresholds failing (1/2): webchat.ack.p99 < 1ms",
        ] {
            assert!(
                screen.contains(needle),
                "{needle:?} not on the panel:\n{screen}"
            );
        }
    }
}
