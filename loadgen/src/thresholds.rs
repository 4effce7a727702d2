//! k6-style pass/fail criteria: `"webchat.ack.p99" = "< 50ms"`.
//!
//! A key names what is measured, `[SCENARIO.]CHANNEL.METRIC.STAT[.uncorrected]`
//! (STAT: `p50`, `p99.9`, …, `max`, `min`, `mean`, `count`, `rate`), or
//! `[SCENARIO.][CHANNEL.]errors.{rate,count}` or `[SCENARIO.]dropped.{rate,count}`;
//! the check is an operator and a bound in the unit the statistic has
//! (`50ms`, `900/s`, `0.1%`, `10`). Latency statistics read the corrected
//! histogram unless the key ends in `.uncorrected`.

use std::time::Duration;

use crate::metrics::{Metric, Recorder};
use crate::scenario::Channel;

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The key as written.
    pub key: String,
    /// The check as written, e.g. `< 50ms`.
    pub check: String,
    pub selector: Selector,
    pub op: Op,
    /// The bound in the selector's unit: µs, per second, percent or a count.
    pub bound: f64,
    /// Stop the run as soon as this fails (after `delay` into the run).
    pub abort_on_fail: Option<Duration>,
    /// Line in the scenario file, for messages.
    pub line: usize,
}

/// What a threshold reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    Latency {
        scenario: Option<String>,
        channel: Channel,
        metric: Metric,
        stat: Stat,
        uncorrected: bool,
    },
    Errors {
        scenario: Option<String>,
        channel: Option<Channel>,
        stat: CountStat,
    },
    Dropped {
        scenario: Option<String>,
        stat: CountStat,
    },
    /// `overhead.KEY`: B's figure over A's, judged by `compare` only (a
    /// plain `run` has no B and reports it as not judged).
    Overhead(Box<Selector>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// A percentile, 0–100.
    Percentile(f64),
    Max,
    Min,
    Mean,
    Count,
    /// Samples per second of run time.
    Rate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountStat {
    /// Share of operations (or of due arrivals), percent.
    Rate,
    Count,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl Op {
    pub fn holds(self, observed: f64, bound: f64) -> bool {
        match self {
            Op::Lt => observed < bound,
            Op::Le => observed <= bound,
            Op::Gt => observed > bound,
            Op::Ge => observed >= bound,
            Op::Eq => (observed - bound).abs() < f64::EPSILON * bound.abs().max(1.0),
        }
    }
}

/// The unit a statistic's bound is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Duration,
    PerSecond,
    Percent,
    Count,
    /// A ratio (B / A), a plain number like `1.10`.
    Ratio,
}

impl Unit {
    fn example(self) -> &'static str {
        match self {
            Unit::Duration => "a duration like \"< 50ms\"",
            Unit::PerSecond => "a rate like \"> 900/s\"",
            Unit::Percent => "a percentage like \"< 0.1%\"",
            Unit::Count => "a plain number like \"< 10\"",
            Unit::Ratio => "a ratio like \"< 1.10\"",
        }
    }
}

impl Selector {
    pub fn unit(&self) -> Unit {
        match self {
            Selector::Latency { stat, .. } => match stat {
                Stat::Count => Unit::Count,
                Stat::Rate => Unit::PerSecond,
                _ => Unit::Duration,
            },
            Selector::Errors { stat, .. } | Selector::Dropped { stat, .. } => match stat {
                CountStat::Rate => Unit::Percent,
                CountStat::Count => Unit::Count,
            },
            Selector::Overhead(_) => Unit::Ratio,
        }
    }

    fn scenario(&self) -> Option<&str> {
        match self {
            Selector::Latency { scenario, .. }
            | Selector::Errors { scenario, .. }
            | Selector::Dropped { scenario, .. } => scenario.as_deref(),
            Selector::Overhead(inner) => inner.scenario(),
        }
    }
}

/// Parses a threshold key; `scenarios` are the plan's scenario names.
pub fn parse_key(key: &str, scenarios: &[String]) -> Result<Selector, String> {
    if let Some(inner) = key.strip_prefix("overhead.") {
        return match parse_key(inner, scenarios)? {
            Selector::Overhead(_) => Err(format!("{key:?}: `overhead.` is written once")),
            s => Ok(Selector::Overhead(Box::new(s))),
        };
    }
    let mut rest = key;
    let mut scenario = None;
    if let Some((first, tail)) = rest.split_once('.')
        && Channel::parse(first).is_none()
        && first != "errors"
        && first != "dropped"
        && first != "overhead"
    {
        if !scenarios.iter().any(|s| s == first) {
            return Err(format!(
                "{first:?} is neither a channel (webchat, whatsapp, email), `errors`, `dropped`, \
                 nor a scenario of this file"
            ));
        }
        scenario = Some(first.to_string());
        rest = tail;
    }
    let count_stat = |s: &str| match s {
        "rate" => Ok(CountStat::Rate),
        "count" => Ok(CountStat::Count),
        other => Err(format!("unknown statistic {other:?}; use rate or count")),
    };
    if let Some(stat) = rest.strip_prefix("errors.") {
        return Ok(Selector::Errors {
            scenario,
            channel: None,
            stat: count_stat(stat)?,
        });
    }
    if let Some(stat) = rest.strip_prefix("dropped.") {
        return Ok(Selector::Dropped {
            scenario,
            stat: count_stat(stat)?,
        });
    }
    let (channel, rest) = rest
        .split_once('.')
        .ok_or_else(|| format!("{key:?}: expected CHANNEL.METRIC.STAT, e.g. webchat.ack.p99"))?;
    let channel = Channel::parse(channel)
        .ok_or_else(|| format!("unknown channel {channel:?}; use webchat, whatsapp or email"))?;
    if let Some(stat) = rest.strip_prefix("errors.") {
        return Ok(Selector::Errors {
            scenario,
            channel: Some(channel),
            stat: count_stat(stat)?,
        });
    }
    let (metric, stat) = rest
        .split_once('.')
        .ok_or_else(|| format!("{key:?}: expected CHANNEL.METRIC.STAT, e.g. webchat.ack.p99"))?;
    let metric = Metric::parse(metric).ok_or_else(|| {
        let names: Vec<_> = Metric::ALL.iter().map(|m| m.as_str()).collect();
        format!("unknown metric {metric:?}; use one of {}", names.join(", "))
    })?;
    let (stat, uncorrected) = match stat.strip_suffix(".uncorrected") {
        Some(s) => (s, true),
        None => (stat, false),
    };
    let stat = match stat {
        "max" => Stat::Max,
        "min" => Stat::Min,
        "mean" | "avg" => Stat::Mean,
        "count" => Stat::Count,
        "rate" => Stat::Rate,
        p if p.starts_with('p') => {
            let v: f64 = p[1..]
                .parse()
                .map_err(|_| format!("{p:?} is not a percentile; write e.g. p50, p99 or p99.9"))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(format!(
                    "{p:?}: a percentile is between 0 and 100 (write p99.9, not p999)"
                ));
            }
            Stat::Percentile(v)
        }
        other => {
            return Err(format!(
                "unknown statistic {other:?}; use pNN (p50, p99.9), max, min, mean, count or rate"
            ));
        }
    };
    Ok(Selector::Latency {
        scenario,
        channel,
        metric,
        stat,
        uncorrected,
    })
}

/// Parses a check like `< 50ms` for a statistic in `unit`; gives the operator
/// and the bound in that unit (µs for durations).
pub fn parse_check(check: &str, unit: Unit) -> Result<(Op, f64), String> {
    let s = check.trim();
    let (op, rest) = if let Some(r) = s.strip_prefix("<=") {
        (Op::Le, r)
    } else if let Some(r) = s.strip_prefix(">=") {
        (Op::Ge, r)
    } else if let Some(r) = s.strip_prefix("==") {
        (Op::Eq, r)
    } else if let Some(r) = s.strip_prefix('<') {
        (Op::Lt, r)
    } else if let Some(r) = s.strip_prefix('>') {
        (Op::Gt, r)
    } else {
        return Err(format!(
            "{check:?} has no comparison; start it with <, <=, >, >= or =="
        ));
    };
    let v = rest.trim();
    let wrong = || format!("{check:?}: this statistic takes {}", unit.example());
    let number = |t: &str| -> Result<f64, String> {
        let n: f64 = t.trim().parse().map_err(|_| wrong())?;
        if n.is_finite() && n >= 0.0 {
            Ok(n)
        } else {
            Err(wrong())
        }
    };
    let bound = match unit {
        Unit::Duration => {
            let d = c24_api::units::parse_duration(v).map_err(|e| format!("{}: {e}", wrong()))?;
            d.as_secs_f64() * 1e6
        }
        Unit::PerSecond => number(v.strip_suffix("/s").ok_or_else(wrong)?)?,
        Unit::Percent => number(v.strip_suffix('%').ok_or_else(wrong)?)?,
        Unit::Count | Unit::Ratio => number(v)?,
    };
    Ok((op, bound))
}

/// A threshold's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub passed: bool,
    /// What was observed, in the bound's unit; `None` when nothing was measured.
    pub observed: Option<f64>,
    /// `observed 63.2ms` or why nothing could be observed.
    pub detail: String,
}

/// Formats a value in a unit for people.
pub fn format_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Duration => format_micros(v),
        Unit::PerSecond => format!("{v:.1}/s"),
        Unit::Percent => format!("{v:.3}%"),
        Unit::Count => format!("{v}"),
        Unit::Ratio => format!("{v:.3}×"),
    }
}

/// `850µs`, `12.3ms`, `1.20s`.
pub fn format_micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

impl Threshold {
    /// Evaluates against merged results covering `elapsed` of run time.
    pub fn evaluate(&self, results: &Recorder, scenarios: &[String], elapsed: Duration) -> Outcome {
        let scen = match self.selector.scenario() {
            None => None,
            Some(name) => match scenarios.iter().position(|s| s == name) {
                Some(i) => Some(i as u16),
                None => {
                    return Outcome {
                        passed: false,
                        observed: None,
                        detail: format!("no scenario {name:?}"),
                    };
                }
            },
        };
        let observed = match &self.selector {
            Selector::Overhead(_) => {
                return Outcome {
                    passed: true,
                    observed: None,
                    detail: "not judged: an overhead ratio is measured by `c24-loadgen compare`"
                        .into(),
                };
            }
            Selector::Latency {
                channel,
                metric,
                stat,
                uncorrected,
                ..
            } => {
                let pair = results.combined(scen, *channel, *metric);
                let h = pair.as_ref().map(|p| {
                    if *uncorrected {
                        &p.uncorrected
                    } else {
                        &p.corrected
                    }
                });
                match (stat, h) {
                    (Stat::Count, h) => Some(h.map(|h| h.len() as f64).unwrap_or(0.0)),
                    (Stat::Rate, h) => {
                        let n = h.map(|h| h.len() as f64).unwrap_or(0.0);
                        Some(n / elapsed.as_secs_f64().max(1e-9))
                    }
                    (_, None) => None,
                    (_, Some(h)) if h.is_empty() => None,
                    (Stat::Percentile(p), Some(h)) => Some(h.value_at_percentile(*p) as f64),
                    (Stat::Max, Some(h)) => Some(h.max() as f64),
                    (Stat::Min, Some(h)) => Some(h.min() as f64),
                    (Stat::Mean, Some(h)) => Some(h.mean()),
                }
            }
            Selector::Errors { channel, stat, .. } => {
                let errors = results.error_count(scen, *channel) as f64;
                match stat {
                    CountStat::Count => Some(errors),
                    CountStat::Rate => {
                        let ops = results.operation_count(scen, *channel) as f64;
                        Some(if ops > 0.0 { 100.0 * errors / ops } else { 0.0 })
                    }
                }
            }
            Selector::Dropped { stat, .. } => {
                let c = results.scenario_totals(scen);
                match stat {
                    CountStat::Count => Some(c.dropped as f64),
                    CountStat::Rate => Some(if c.due > 0 {
                        100.0 * c.dropped as f64 / c.due as f64
                    } else {
                        0.0
                    }),
                }
            }
        };
        let unit = self.selector.unit();
        match observed {
            None => Outcome {
                passed: false,
                observed: None,
                detail: "no samples were recorded".into(),
            },
            Some(v) => Outcome {
                passed: self.op.holds(v, self.bound),
                observed: Some(v),
                detail: format!("observed {}", format_value(v, unit)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::metrics::MetricKey;

    fn names() -> Vec<String> {
        vec!["browse".to_string()]
    }

    fn threshold(key: &str, check: &str) -> Threshold {
        let selector = parse_key(key, &names()).expect("key parses");
        let (op, bound) = parse_check(check, selector.unit()).expect("check parses");
        Threshold {
            key: key.into(),
            check: check.into(),
            selector,
            op,
            bound,
            abort_on_fail: None,
            line: 1,
        }
    }

    #[test]
    fn keys_from_the_issue_parse() {
        assert!(matches!(
            parse_key("webchat.ack.p99", &[]),
            Ok(Selector::Latency { stat: Stat::Percentile(p), uncorrected: false, .. }) if p == 99.0
        ));
        assert!(matches!(
            parse_key("whatsapp.http.p99.9", &[]),
            Ok(Selector::Latency { channel: Channel::Whatsapp, stat: Stat::Percentile(p), .. }) if (p - 99.9).abs() < 1e-9
        ));
        assert!(matches!(
            parse_key("errors.rate", &[]),
            Ok(Selector::Errors {
                channel: None,
                stat: CountStat::Rate,
                ..
            })
        ));
        assert!(matches!(
            parse_key("webchat.ack.rate", &[]),
            Ok(Selector::Latency {
                stat: Stat::Rate,
                ..
            })
        ));
        assert!(matches!(
            parse_key("browse.email.errors.count", &names()),
            Ok(Selector::Errors {
                scenario: Some(_),
                channel: Some(Channel::Email),
                ..
            })
        ));
        assert!(matches!(
            parse_key("webchat.push.p90.uncorrected", &[]),
            Ok(Selector::Latency {
                metric: Metric::Push,
                uncorrected: true,
                ..
            })
        ));
    }

    #[test]
    fn overhead_keys_wrap_a_statistic_and_take_a_ratio() {
        let s = parse_key("overhead.webchat.ack.p99", &[]).expect("parses");
        assert!(matches!(
            &s,
            Selector::Overhead(inner) if matches!(**inner, Selector::Latency { metric: Metric::Ack, .. })
        ));
        assert_eq!(s.unit(), Unit::Ratio);
        assert_eq!(parse_check("< 1.10", Unit::Ratio), Ok((Op::Lt, 1.10)));
        assert!(parse_check("< 10ms", Unit::Ratio).is_err());
        assert!(parse_key("overhead.overhead.webchat.ack.p99", &[]).is_err());
        assert!(parse_key("overhead.sms.ack.p99", &[]).is_err());
        // A plain run reports it as not judged, not as failed.
        let t = threshold("overhead.webchat.ack.p99", "< 1.10");
        let o = t.evaluate(&Recorder::new(1), &names(), Duration::from_secs(1));
        assert!(o.passed && o.observed.is_none(), "{o:?}");
    }

    #[test]
    fn bad_keys_say_why() {
        for (key, needle) in [
            ("webchat.ack.p999", "p99.9"),
            ("webchat.ackk.p99", "unknown metric"),
            ("sms.ack.p99", "neither a channel"),
            ("webchat.ack.median", "unknown statistic"),
            ("errors.ratio", "rate or count"),
            ("webchat", "CHANNEL.METRIC.STAT"),
        ] {
            let e = parse_key(key, &[]).expect_err(key);
            assert!(e.contains(needle), "{key}: {e}");
        }
    }

    #[test]
    fn checks_need_the_right_unit() {
        assert_eq!(
            parse_check("< 50ms", Unit::Duration),
            Ok((Op::Lt, 50_000.0))
        );
        assert_eq!(parse_check(">900/s", Unit::PerSecond), Ok((Op::Gt, 900.0)));
        assert_eq!(parse_check("< 0.1%", Unit::Percent), Ok((Op::Lt, 0.1)));
        assert_eq!(parse_check("<= 3", Unit::Count), Ok((Op::Le, 3.0)));
        assert!(parse_check("< 50", Unit::Duration).is_err());
        assert!(parse_check("< 50ms", Unit::Percent).is_err());
        assert!(parse_check("50ms", Unit::Duration).is_err());
        assert!(parse_check("> 900", Unit::PerSecond).is_err());
    }

    #[test]
    fn evaluation_reads_the_right_histogram() {
        let mut r = Recorder::new(1);
        let key = MetricKey {
            scenario: 0,
            channel: Channel::Webchat,
            metric: Metric::Ack,
            step: Some(0),
        };
        let t0 = Instant::now();
        for i in 0..100u64 {
            // Intended 100 ms before the send; the answer takes 1–2 ms.
            let sent = t0 + Duration::from_millis(100);
            r.latency(key, t0, sent, sent + Duration::from_micros(1000 + 10 * i));
            r.operation(0, Channel::Webchat);
        }
        r.error(0, Channel::Webchat, "timeout");
        let elapsed = Duration::from_secs(10);
        let n = names();
        assert!(
            !threshold("webchat.ack.p99", "< 50ms")
                .evaluate(&r, &n, elapsed)
                .passed
        );
        assert!(
            threshold("webchat.ack.p99.uncorrected", "< 50ms")
                .evaluate(&r, &n, elapsed)
                .passed
        );
        assert!(
            threshold("webchat.ack.rate", "> 9/s")
                .evaluate(&r, &n, elapsed)
                .passed
        );
        assert!(
            !threshold("webchat.ack.rate", "> 11/s")
                .evaluate(&r, &n, elapsed)
                .passed
        );
        let e = threshold("errors.rate", "< 0.5%").evaluate(&r, &n, elapsed);
        assert!(!e.passed, "{e:?}");
        assert_eq!(e.observed, Some(1.0));
        let none = threshold("email.http.p99", "< 1s").evaluate(&r, &n, elapsed);
        assert!(!none.passed && none.observed.is_none());
        assert!(
            threshold("dropped.count", "== 0")
                .evaluate(&r, &n, elapsed)
                .passed
        );
    }
}
