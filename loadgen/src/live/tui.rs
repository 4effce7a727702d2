//! The live panel on a terminal, after oha's: target versus achieved rate,
//! conversations in flight, p50/p99 per channel over the last seconds,
//! errors, and threshold status. Drawn inline on stderr (no alternate
//! screen: the last frame stays in the scrollback above the summary).
//!
//! Keys (one [`KEYMAP`], which also writes the panel's help line): `q` and
//! Ctrl-C stop the run early, cleanly (the report is still written), `p`
//! shows or hides a row per script step. When stdin is a terminal it is put
//! in raw mode for single key presses, read on a thread of its own so
//! drawing never waits for input, and restored when the panel stops.

use std::io::{IsTerminal, Stderr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc;

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

/// Rows: border 2, gauge 1, rates 1, table header 1, channel rows, thresholds 1, keys 1.
const HEIGHT: u16 = 16;

/// What a key asks the run to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// End the run now: arrivals stop, running conversations are cut, the
    /// report is written. The text says why, for the report.
    Stop(&'static str),
    /// Show or hide a row per script step.
    ToggleSteps,
}

/// Every key the panel takes: what is pressed, what the help line says, what it does.
pub const KEYMAP: [(&str, &str, Action); 3] = [
    ("q", "stop", Action::Stop("stopped from the live panel (q)")),
    ("Ctrl-C", "stop", Action::Stop("interrupted (Ctrl-C)")),
    ("p", "per-step rows", Action::ToggleSteps),
];

/// The key's action, if it has one (presses only, not releases or repeats).
pub fn handle_key(key: &KeyEvent) -> Option<Action> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    let name = match key.code {
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => "Ctrl-C",
        KeyCode::Char('q') | KeyCode::Char('Q') => "q",
        KeyCode::Char('p') | KeyCode::Char('P') => "p",
        _ => return None,
    };
    KEYMAP
        .iter()
        .find(|(k, _, _)| *k == name)
        .map(|(_, _, a)| *a)
}

/// The help line: `q stop · Ctrl-C stop · p per-step rows`.
pub fn help_line() -> String {
    KEYMAP
        .iter()
        .map(|(k, what, _)| format!("{k} {what}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Panel state the keys change.
#[derive(Debug, Default)]
pub struct PanelState {
    pub show_steps: AtomicBool,
}

impl PanelState {
    /// Applies an action the panel itself handles; returns a stop reason for the run.
    pub fn apply(&self, a: Action) -> Option<&'static str> {
        match a {
            Action::Stop(why) => Some(why),
            Action::ToggleSteps => {
                self.show_steps.fetch_xor(true, Ordering::Relaxed);
                None
            }
        }
    }
}

/// Reads keys on its own thread while raw mode is on.
struct KeyReader {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl KeyReader {
    fn start(state: Arc<PanelState>, stops: mpsc::UnboundedSender<&'static str>) -> Option<Self> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        ratatui::crossterm::terminal::enable_raw_mode().ok()?;
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let thread = std::thread::Builder::new()
            .name("loadgen-keys".into())
            .spawn(move || {
                while !d.load(Ordering::Relaxed) {
                    match event::poll(Duration::from_millis(100)) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(_) => break,
                    }
                    let Ok(Event::Key(key)) = event::read() else {
                        continue;
                    };
                    if let Some(a) = handle_key(&key)
                        && let Some(why) = state.apply(a)
                    {
                        let _ = stops.send(why);
                    }
                }
            });
        match thread {
            Ok(thread) => Some(KeyReader { done, thread }),
            Err(_) => {
                let _ = ratatui::crossterm::terminal::disable_raw_mode();
                None
            }
        }
    }

    fn stop(self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let _ = ratatui::crossterm::terminal::disable_raw_mode();
    }
}

pub struct Panel {
    terminal: Terminal<CrosstermBackend<Stderr>>,
    thresholds: Vec<String>,
    state: Arc<PanelState>,
    keys: Option<KeyReader>,
}

impl Panel {
    /// Starts the panel; stop requests from its keys go to `stops`.
    pub fn start(plan: &Plan, stops: mpsc::UnboundedSender<&'static str>) -> std::io::Result<Self> {
        let terminal = Terminal::with_options(
            CrosstermBackend::new(std::io::stderr()),
            TerminalOptions {
                viewport: Viewport::Inline(HEIGHT),
            },
        )?;
        let state = Arc::new(PanelState::default());
        let keys = KeyReader::start(state.clone(), stops);
        Ok(Panel {
            terminal,
            thresholds: plan
                .thresholds
                .iter()
                .map(|t| format!("{} {}", t.key, t.check))
                .collect(),
            state,
            keys,
        })
    }

    pub fn draw(&mut self, f: &Frame<'_>) {
        let thresholds = &self.thresholds;
        let steps = self.state.show_steps.load(Ordering::Relaxed);
        let result = self
            .terminal
            .draw(|frame| render_with(frame, f, thresholds, steps));
        if let Err(e) = result {
            tracing::debug!(error = %e, "live panel draw failed");
        }
    }

    /// Leaves the last frame on screen and the cursor below it.
    pub fn stop(mut self) {
        if let Some(k) = self.keys.take() {
            k.stop();
        }
        // Below the panel, so what is printed next does not overwrite it.
        let area = self.terminal.get_frame().area();
        let _ = self
            .terminal
            .set_cursor_position(ratatui::layout::Position::new(0, area.bottom()));
        let _ = self.terminal.show_cursor();
        eprintln!();
    }
}

/// Draws one frame of the panel, one row per channel × metric.
pub fn render(frame: &mut ratatui::Frame<'_>, f: &Frame<'_>, thresholds: &[String]) {
    render_with(frame, f, thresholds, false);
}

/// Draws one frame; with `steps`, one row per channel × metric × step.
pub fn render_with(
    frame: &mut ratatui::Frame<'_>,
    f: &Frame<'_>,
    thresholds: &[String],
    steps: bool,
) {
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
        Constraint::Length(1),
        Constraint::Length(1),
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
            // One row for the metric, or one per step that has samples.
            let mut rows: Vec<(String, crate::metrics::LatencyPair)> = Vec::new();
            if steps {
                let mut per_step: std::collections::BTreeMap<
                    Option<u16>,
                    crate::metrics::LatencyPair,
                > = std::collections::BTreeMap::new();
                for (k, v) in &f.window.latencies {
                    if k.channel == c && k.metric == m {
                        per_step.entry(k.step).or_default().add(v);
                    }
                }
                for (step, p) in per_step {
                    let label = match step {
                        Some(i) => format!("{} #{i}", m.as_str()),
                        None => m.as_str().to_string(),
                    };
                    rows.push((label, p));
                }
            } else if let Some(p) = f.window.combined(None, c, m) {
                rows.push((m.as_str().to_string(), p));
            }
            for (label, p) in rows {
                let errors = f.totals.error_count(None, Some(c));
                table_rows.push(Row::new(vec![
                    Cell::from(c.as_str()),
                    Cell::from(label),
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
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled(
            help_line(),
            Style::default().fg(Color::DarkGray),
        ))),
        rows[4],
    );
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
            "q stop · Ctrl-C stop · p per-step rows",
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

    fn screen(f: &Frame<'_>, steps: bool) -> String {
        let mut term = Terminal::new(TestBackend::new(100, HEIGHT)).expect("test terminal");
        term.draw(|fr| render_with(fr, f, &[], steps))
            .expect("draws");
        term.backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect()
    }

    #[test]
    fn keys_stop_the_run_and_toggle_step_rows() {
        use ratatui::crossterm::event::KeyEventState;
        let key = |code, modifiers| KeyEvent {
            code,
            modifiers,
            kind: KeyEventKind::Press,
            state: KeyEventState::NONE,
        };
        assert_eq!(
            handle_key(&key(KeyCode::Char('q'), KeyModifiers::NONE)),
            Some(Action::Stop("stopped from the live panel (q)"))
        );
        assert_eq!(
            handle_key(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Stop("interrupted (Ctrl-C)"))
        );
        assert_eq!(
            handle_key(&key(KeyCode::Char('c'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            handle_key(&key(KeyCode::Char('x'), KeyModifiers::NONE)),
            None
        );
        let mut release = key(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(handle_key(&release), None);
        let p = handle_key(&key(KeyCode::Char('p'), KeyModifiers::NONE)).expect("p is bound");

        // p flips the per-step rows; q and Ctrl-C hand a reason to the run.
        let state = PanelState::default();
        assert_eq!(state.apply(p), None);
        assert!(state.show_steps.load(Ordering::Relaxed));
        assert_eq!(state.apply(p), None);
        assert!(!state.show_steps.load(Ordering::Relaxed));
        assert_eq!(
            state.apply(Action::Stop("interrupted (Ctrl-C)")),
            Some("interrupted (Ctrl-C)")
        );

        // What the rows look like either way.
        let mut rec = Recorder::new(1);
        let t = Instant::now();
        for step in [0u16, 2] {
            rec.latency(
                MetricKey {
                    scenario: 0,
                    channel: Channel::Webchat,
                    metric: Metric::Ack,
                    step: Some(step),
                },
                t,
                t,
                t + Duration::from_millis(3),
            );
        }
        let frame = Frame {
            name: "s",
            elapsed: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            asked: 1.0,
            window: &rec,
            window_span: Duration::from_secs(1),
            totals: &rec,
            in_flight: 0,
            verdicts: &[],
        };
        let merged = screen(&frame, false);
        assert!(!merged.contains("ack #0"), "{merged}");
        let stepped = screen(&frame, true);
        assert!(
            stepped.contains("ack #0") && stepped.contains("ack #2"),
            "{stepped}"
        );
    }
}
