//! Progress while a run goes: on a terminal, a live panel (see [`tui`]);
//! otherwise one plain summary line every 5 s on stderr, for CI logs.

pub mod tui;

use std::io::IsTerminal;
use std::time::Duration;

use crate::metrics::{Metric, Recorder};
use crate::scenario::{Channel, Plan};
use crate::thresholds::format_micros;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveMode {
    /// The ratatui panel (stderr is a terminal).
    Panel,
    /// A line every 5 s.
    Lines,
    /// Nothing.
    Quiet,
}

impl LiveMode {
    /// The panel on a terminal, lines otherwise.
    pub fn detect() -> Self {
        if std::io::stderr().is_terminal() {
            LiveMode::Panel
        } else {
            LiveMode::Lines
        }
    }
}

/// Seconds between plain progress lines.
pub const LINE_EVERY: Duration = Duration::from_secs(5);

pub struct Live {
    mode: LiveMode,
    plan_name: String,
    duration: Duration,
    asked: Vec<f64>,
    /// Any open-model scenario, and the closed models' visitors.
    open: bool,
    visitors: u64,
    /// Everything so far, and since the last line.
    totals: Recorder,
    window: Recorder,
    window_from: Duration,
    panel: Option<tui::Panel>,
    /// Stop requests from the panel's keys (`q`, Ctrl-C), until taken.
    stops: Option<tokio::sync::mpsc::UnboundedReceiver<&'static str>>,
}

impl Live {
    pub fn new(mode: LiveMode, plan: &Plan) -> Self {
        let n = plan.scenarios.len();
        let (stop_tx, stops) = tokio::sync::mpsc::unbounded_channel();
        let panel = match mode {
            LiveMode::Panel => tui::Panel::start(plan, stop_tx).ok(),
            _ => None,
        };
        let mode = if mode == LiveMode::Panel && panel.is_none() {
            LiveMode::Lines
        } else {
            mode
        };
        // The asked rate at each second, for target-versus-achieved.
        let asked = (0..=plan.duration.as_secs())
            .map(|s| plan.asked_rate_at(Duration::from_secs(s)))
            .collect();
        let open = plan
            .scenarios
            .iter()
            .any(|s| matches!(s.model, crate::scenario::Model::Open { .. }));
        let visitors = plan
            .scenarios
            .iter()
            .map(|s| match s.model {
                crate::scenario::Model::Closed { visitors } => u64::from(visitors),
                crate::scenario::Model::Open { .. } => 0,
            })
            .sum();
        Live {
            mode,
            plan_name: plan.name.clone(),
            duration: plan.duration,
            asked,
            open,
            visitors,
            totals: Recorder::new(n),
            window: Recorder::new(n),
            window_from: Duration::ZERO,
            panel,
            stops: Some(stops),
        }
    }

    /// A worker's interval arrived.
    pub fn add(&mut self, rec: &Recorder) {
        if self.mode == LiveMode::Quiet {
            return;
        }
        self.window.merge(rec);
        if self.panel.is_some() {
            self.totals.merge(rec);
        }
    }

    fn asked_at(&self, t: Duration) -> f64 {
        self.asked.get(t.as_secs() as usize).copied().unwrap_or(0.0)
    }

    /// Once a second.
    pub fn tick(&mut self, elapsed: Duration, in_flight: usize, verdicts: &[bool]) {
        match self.mode {
            LiveMode::Quiet => {}
            LiveMode::Panel => {
                let asked = self.asked_at(elapsed);
                if let Some(p) = &mut self.panel {
                    let span = elapsed.saturating_sub(self.window_from);
                    p.draw(&tui::Frame {
                        name: &self.plan_name,
                        elapsed,
                        duration: self.duration,
                        asked,
                        window: &self.window,
                        window_span: span,
                        totals: &self.totals,
                        in_flight,
                        verdicts,
                    });
                }
                if elapsed.saturating_sub(self.window_from) >= LINE_EVERY {
                    self.window = Recorder::new(self.window.scenarios.len());
                    self.window_from = elapsed;
                }
            }
            LiveMode::Lines => {
                let span = elapsed.saturating_sub(self.window_from);
                if span < LINE_EVERY {
                    return;
                }
                let line = self.line(elapsed, span, in_flight, verdicts);
                eprintln!("{line}");
                self.window = Recorder::new(self.window.scenarios.len());
                self.window_from = elapsed;
            }
        }
    }

    /// One progress line over the last window.
    pub fn line(
        &self,
        elapsed: Duration,
        span: Duration,
        in_flight: usize,
        verdicts: &[bool],
    ) -> String {
        let secs = span.as_secs_f64().max(1e-3);
        let started = self.window.scenario_totals(None).started as f64;
        let mut line = format!("[{:>4.0}s]", elapsed.as_secs_f64());
        if self.open {
            line.push_str(&format!(
                " conversations/s asked {:.1} achieved {:.1}",
                self.asked_at(elapsed.saturating_sub(span / 2)),
                started / secs
            ));
        }
        if self.visitors > 0 {
            line.push_str(&format!(" visitors {}", self.visitors));
        }
        line.push_str(&format!(" | in flight {in_flight}"));
        for c in Channel::ALL {
            let metric = match c {
                Channel::Webchat => Metric::Ack,
                _ => Metric::Http,
            };
            if let Some(p) = self.window.combined(None, c, metric) {
                line.push_str(&format!(
                    " | {c} {} p50 {} p99 {}",
                    metric.as_str(),
                    format_micros(p.corrected.value_at_quantile(0.5) as f64),
                    format_micros(p.corrected.value_at_quantile(0.99) as f64)
                ));
            }
        }
        line.push_str(&format!(
            " | errors {}",
            self.window.error_count(None, None)
        ));
        if !verdicts.is_empty() {
            let failing = verdicts.iter().filter(|v| !**v).count();
            if failing == 0 {
                line.push_str(" | thresholds ok");
            } else {
                line.push_str(&format!(
                    " | thresholds failing {failing}/{}",
                    verdicts.len()
                ));
            }
        }
        line
    }

    /// The panel's stop requests (each a reason for the report), once.
    pub fn stop_requests(&mut self) -> Option<tokio::sync::mpsc::UnboundedReceiver<&'static str>> {
        self.stops.take()
    }

    /// Restores the terminal.
    pub fn finish(&mut self) {
        if let Some(p) = self.panel.take() {
            p.stop();
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The next stop request, or never when there are none to wait for.
pub async fn next_stop(
    rx: &mut Option<tokio::sync::mpsc::UnboundedReceiver<&'static str>>,
) -> &'static str {
    match rx {
        Some(r) => match r.recv().await {
            Some(why) => why,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use super::*;
    use crate::metrics::MetricKey;

    #[test]
    fn a_plain_line_has_rates_latency_errors_and_thresholds() {
        let plan = crate::scenario::parse_str(
            Path::new("l.toml"),
            "name = \"l\"\n[[stages]]\nrate = 5\nduration = \"10s\"\n[[script]]\nchannel = \"webchat\"\nsteps = [{ send = \"x\" }]\n",
        )
        .expect("valid");
        let mut live = Live::new(LiveMode::Lines, &plan);
        let mut rec = Recorder::new(1);
        rec.counters(0).started = 25;
        let t = Instant::now();
        rec.latency(
            MetricKey {
                scenario: 0,
                channel: Channel::Webchat,
                metric: Metric::Ack,
                step: Some(0),
            },
            t,
            t,
            t + Duration::from_millis(3),
        );
        rec.error(0, Channel::Webchat, "timeout");
        live.add(&rec);
        let line = live.line(
            Duration::from_secs(5),
            Duration::from_secs(5),
            2,
            &[true, false],
        );
        for needle in [
            "[   5s]",
            "asked 5.0 achieved 5.0",
            "in flight 2",
            "webchat ack p50 3.00ms",
            "errors 1",
            "thresholds failing 1/2",
        ] {
            assert!(line.contains(needle), "{needle:?} not in {line:?}");
        }
    }
}
