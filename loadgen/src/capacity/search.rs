//! The search for the highest arrival rate that holds the SLOs: raise the
//! rate by a factor per step until a step breaks an SLO (or the ceiling is
//! reached), then bisect between the last rate that held and the first that
//! broke. A plain state machine (`next` → measure → `record`), so the logic
//! is tested with a fake measurement and driven by real runs alike.

use serde::{Deserialize, Serialize};

/// How the search proceeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchPlan {
    /// The first rate tried (conversations per second).
    pub start: f64,
    /// Each raising step multiplies the rate by this (> 1).
    pub factor: f64,
    /// Never try above this.
    pub max: f64,
    /// Bisection probes after the bracket is found.
    pub bisections: u32,
    /// Stop bisecting once (broke − held) / held is below this.
    pub resolution: f64,
}

impl SearchPlan {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.start.is_finite() && self.start > 0.0) {
            return Err("--start-rate: a rate above 0".into());
        }
        if !(self.factor.is_finite() && self.factor > 1.0) {
            return Err("--factor: a number above 1, e.g. 2".into());
        }
        if !(self.max.is_finite() && self.max >= self.start) {
            return Err("--max-rate: at least --start-rate".into());
        }
        if !(self.resolution.is_finite() && self.resolution >= 0.0) {
            return Err("--resolution: a share like 0.05".into());
        }
        Ok(())
    }
}

/// Why the search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// An SLO broke and the bisection narrowed the bracket.
    Slo,
    /// Every rate up to `--max-rate` held: the capacity is at least that.
    MaxRate,
    /// The load generator could not keep a rate: the result is only a lower bound.
    Generator,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Raising { next: f64 },
    Bisecting { left: u32 },
    Done(Ended),
}

/// The search's state.
#[derive(Debug, Clone)]
pub struct Search {
    plan: SearchPlan,
    phase: Phase,
    /// Highest rate that held, and lowest that broke.
    held: Option<f64>,
    broke: Option<f64>,
}

impl Search {
    pub fn new(plan: SearchPlan) -> Self {
        Search {
            plan,
            phase: Phase::Raising { next: plan.start },
            held: None,
            broke: None,
        }
    }

    /// The next rate to measure, or `None` when the search is over.
    pub fn next(&self) -> Option<f64> {
        match self.phase {
            Phase::Raising { next } => Some(next),
            Phase::Bisecting { .. } => {
                let lo = self.held.unwrap_or(0.0);
                let hi = self.broke?;
                Some((lo + hi) / 2.0)
            }
            Phase::Done(_) => None,
        }
    }

    /// The verdict of measuring `rate`: did every SLO hold?
    pub fn record(&mut self, rate: f64, held: bool) {
        if held {
            self.held = Some(self.held.map_or(rate, |h| h.max(rate)));
        } else {
            self.broke = Some(self.broke.map_or(rate, |b| b.min(rate)));
        }
        self.phase = match self.phase {
            Phase::Raising { .. } if held => {
                if rate >= self.plan.max {
                    Phase::Done(Ended::MaxRate)
                } else {
                    Phase::Raising {
                        next: (rate * self.plan.factor).min(self.plan.max),
                    }
                }
            }
            Phase::Raising { .. } => self.bisect_or_done(self.plan.bisections),
            Phase::Bisecting { left } => self.bisect_or_done(left.saturating_sub(1)),
            done @ Phase::Done(_) => done,
        };
    }

    fn bisect_or_done(&self, left: u32) -> Phase {
        let narrow = match (self.held, self.broke) {
            (Some(lo), Some(hi)) => (hi - lo) / lo <= self.plan.resolution,
            _ => false,
        };
        if left == 0 || narrow {
            Phase::Done(Ended::Slo)
        } else {
            Phase::Bisecting { left }
        }
    }

    /// The generator could not keep the rate: stop, keeping what held.
    pub fn generator_limited(&mut self) {
        self.phase = Phase::Done(Ended::Generator);
    }

    /// The highest rate that held so far.
    pub fn held(&self) -> Option<f64> {
        self.held
    }

    /// The lowest rate that broke so far.
    pub fn broke(&self) -> Option<f64> {
        self.broke
    }

    pub fn ended(&self) -> Option<Ended> {
        match self.phase {
            Phase::Done(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SearchPlan {
        SearchPlan {
            start: 10.0,
            factor: 2.0,
            max: 10_000.0,
            bisections: 4,
            resolution: 0.0,
        }
    }

    /// Drives a search against a target that holds up to `capacity`.
    fn drive(plan: SearchPlan, capacity: f64) -> (Search, Vec<f64>) {
        let mut s = Search::new(plan);
        let mut tried = Vec::new();
        while let Some(r) = s.next() {
            tried.push(r);
            s.record(r, r <= capacity);
            assert!(tried.len() < 100, "the search must end");
        }
        (s, tried)
    }

    #[test]
    fn raises_by_the_factor_then_bisects_the_bracket() {
        let (s, tried) = drive(plan(), 137.0);
        assert_eq!(
            tried,
            vec![10.0, 20.0, 40.0, 80.0, 160.0, 120.0, 140.0, 130.0, 135.0]
        );
        assert_eq!(s.held(), Some(135.0));
        assert_eq!(s.broke(), Some(140.0));
        assert_eq!(s.ended(), Some(Ended::Slo));
    }

    #[test]
    fn a_first_step_that_breaks_bisects_down_from_it() {
        let (s, tried) = drive(plan(), 3.0);
        assert_eq!(tried, vec![10.0, 5.0, 2.5, 3.75, 3.125]);
        assert_eq!(s.held(), Some(2.5));
        assert_eq!(s.ended(), Some(Ended::Slo));
        let (s, _) = drive(plan(), 0.1);
        assert_eq!(s.held(), None);
    }

    #[test]
    fn stops_at_the_ceiling_when_everything_holds() {
        let p = SearchPlan {
            max: 50.0,
            ..plan()
        };
        let (s, tried) = drive(p, f64::INFINITY);
        assert_eq!(tried, vec![10.0, 20.0, 40.0, 50.0]);
        assert_eq!((s.held(), s.ended()), (Some(50.0), Some(Ended::MaxRate)));
    }

    #[test]
    fn bisection_stops_at_the_resolution() {
        let p = SearchPlan {
            resolution: 0.2,
            bisections: 20,
            ..plan()
        };
        let (s, tried) = drive(p, 137.0);
        // 80 held, 160 broke; 120 held, 140 broke: (140 − 120) / 120 < 0.2.
        assert_eq!(tried, vec![10.0, 20.0, 40.0, 80.0, 160.0, 120.0, 140.0]);
        assert_eq!(s.held(), Some(120.0));
    }

    #[test]
    fn a_lagging_generator_ends_the_search_with_a_lower_bound() {
        let mut s = Search::new(plan());
        s.record(10.0, true);
        s.generator_limited();
        assert_eq!(s.next(), None);
        assert_eq!((s.held(), s.ended()), (Some(10.0), Some(Ended::Generator)));
    }

    #[test]
    fn bad_plans_are_refused() {
        for p in [
            SearchPlan {
                start: 0.0,
                ..plan()
            },
            SearchPlan {
                factor: 1.0,
                ..plan()
            },
            SearchPlan { max: 5.0, ..plan() },
        ] {
            assert!(p.validate().is_err(), "{p:?}");
        }
        assert!(plan().validate().is_ok());
    }
}
