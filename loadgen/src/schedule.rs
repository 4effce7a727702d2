//! When each arrival is meant to start.
//!
//! An open model is a piecewise-linear rate λ(t). Its integral Λ(t) counts
//! the arrivals asked by time t, and the n-th evenly spaced arrival is due at
//! exactly Λ⁻¹(n): `start + n / rate` in a constant stage, the root of a
//! quadratic in a ramp. A Poisson process is the same map applied to a sum of
//! exponential draws. Every intended time is computed from the schedule, never
//! from when the previous send happened, so a late timer or a slow target
//! delays sends without moving the times latencies are measured from.

use std::time::Duration;

use crate::scenario::{Arrivals, Stage, exp1};

#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    /// Seconds from the start of the run.
    start: f64,
    len: f64,
    /// Rate at the start and end of the segment, per second.
    from: f64,
    to: f64,
    /// Λ at the segment's start.
    before: f64,
}

impl Segment {
    /// Λ(start + dt) - Λ(start).
    fn area(&self, dt: f64) -> f64 {
        let slope = if self.len > 0.0 {
            (self.to - self.from) / self.len
        } else {
            0.0
        };
        self.from * dt + slope * dt * dt / 2.0
    }

    /// The dt at which `area(dt) == x` (0 ≤ x ≤ area(len)).
    fn solve(&self, x: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        if self.from == self.to {
            return if self.from > 0.0 { x / self.from } else { 0.0 };
        }
        let a = (self.to - self.from) / self.len;
        // Root of a/2·dt² + from·dt − x = 0 in the form that stays exact as
        // a → 0 and for falling ramps: dt = 2x / (from + √(from² + 2ax)).
        let disc = (self.from * self.from + 2.0 * a * x).max(0.0);
        let denom = self.from + disc.sqrt();
        if denom > 0.0 {
            (2.0 * x / denom).min(self.len)
        } else {
            self.len
        }
    }
}

/// A piecewise-linear arrival rate over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenSchedule {
    segments: Vec<Segment>,
    total: f64,
}

impl OpenSchedule {
    /// Stages in order; after the last one its final rate is held until `total`
    /// (a `total` shorter than the stages is cut to them).
    pub fn new(stages: &[Stage], total: Duration) -> Self {
        let mut segments = Vec::with_capacity(stages.len() + 1);
        let mut start = 0.0;
        let mut before = 0.0;
        for s in stages {
            let seg = Segment {
                start,
                len: s.duration.as_secs_f64(),
                from: s.from,
                to: s.to,
                before,
            };
            before += seg.area(seg.len);
            start += seg.len;
            segments.push(seg);
        }
        let total = total.as_secs_f64().max(start);
        if total > start {
            let last = stages.last().map(|s| s.to).unwrap_or(0.0);
            segments.push(Segment {
                start,
                len: total - start,
                from: last,
                to: last,
                before,
            });
        }
        OpenSchedule { segments, total }
    }

    /// Length of the schedule.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.total)
    }

    /// Λ(T): arrivals asked over the whole schedule.
    pub fn expected_arrivals(&self) -> f64 {
        self.segments
            .last()
            .map(|s| s.before + s.area(s.len))
            .unwrap_or(0.0)
    }

    /// Λ(t): arrivals asked by `t` seconds.
    pub fn arrivals_by(&self, t: f64) -> f64 {
        for s in &self.segments {
            if t < s.start + s.len {
                return s.before + s.area((t - s.start).max(0.0));
            }
        }
        self.expected_arrivals()
    }

    /// λ(t), per second.
    pub fn rate_at(&self, t: f64) -> f64 {
        for s in &self.segments {
            if t < s.start + s.len {
                let f = if s.len > 0.0 {
                    (t - s.start) / s.len
                } else {
                    0.0
                };
                return s.from + (s.to - s.from) * f;
            }
        }
        0.0
    }

    /// Λ⁻¹(x) in seconds, or `None` when x is past the end of the schedule.
    pub fn time_of(&self, x: f64) -> Option<f64> {
        // Binary search on the segments' starting Λ: the last segment that
        // starts at or below x and has room for it.
        let idx = self.segments.partition_point(|s| s.before <= x);
        for s in self.segments[..idx].iter().rev() {
            let area = s.area(s.len);
            if x < s.before + area {
                return Some(s.start + s.solve(x - s.before));
            }
            if area > 0.0 {
                break;
            }
        }
        None
    }
}

/// The intended start times one worker owns: arrivals k, k+W, k+2W, … of the
/// whole schedule (uniform), or an independent Poisson process at rate λ/W.
#[derive(Debug, Clone)]
pub struct ArrivalClock {
    schedule: OpenSchedule,
    arrivals: Arrivals,
    stride: u64,
    next_n: u64,
    poisson_x: f64,
    rng: fastrand::Rng,
}

impl ArrivalClock {
    pub fn new(
        schedule: OpenSchedule,
        arrivals: Arrivals,
        worker: u64,
        workers: u64,
        seed: u64,
    ) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed ^ worker.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let stride = workers.max(1);
        let poisson_x = stride as f64 * exp1(&mut rng);
        ArrivalClock {
            schedule,
            arrivals,
            stride,
            next_n: worker,
            poisson_x,
            rng,
        }
    }

    /// The next arrival: its global number and its offset from the run's start.
    pub fn next_arrival(&mut self) -> Option<(u64, Duration)> {
        let n = self.next_n;
        let t = match self.arrivals {
            Arrivals::Uniform => self.schedule.time_of(n as f64)?,
            Arrivals::Poisson => {
                let t = self.schedule.time_of(self.poisson_x)?;
                self.poisson_x += self.stride as f64 * exp1(&mut self.rng);
                t
            }
        };
        self.next_n += self.stride;
        Some((n, Duration::from_secs_f64(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constant(rate: f64, secs: u64) -> Stage {
        Stage {
            from: rate,
            to: rate,
            duration: Duration::from_secs(secs),
        }
    }

    #[test]
    fn constant_stage_is_start_plus_n_over_rate() {
        let s = OpenSchedule::new(&[constant(8.0, 10)], Duration::ZERO);
        for n in 0..80u64 {
            let t = s.time_of(n as f64).expect("inside the schedule");
            assert!((t - n as f64 / 8.0).abs() < 1e-12, "n={n} t={t}");
        }
        assert_eq!(s.time_of(80.0), None);
        assert_eq!(s.expected_arrivals(), 80.0);
    }

    #[test]
    fn ramp_integrates_the_rate() {
        // 0 → 100/s over 10 s asks 500 arrivals; the 125th (a quarter of
        // them) is due at √(2·125/10) = 5 s.
        let s = OpenSchedule::new(
            &[Stage {
                from: 0.0,
                to: 100.0,
                duration: Duration::from_secs(10),
            }],
            Duration::ZERO,
        );
        assert!((s.expected_arrivals() - 500.0).abs() < 1e-9);
        let t = s.time_of(125.0).expect("inside");
        assert!((t - 5.0).abs() < 1e-9, "{t}");
        let mut clock = ArrivalClock::new(s, Arrivals::Uniform, 0, 1, 1);
        let mut count = 0;
        let mut last = Duration::ZERO;
        while let Some((_, t)) = clock.next_arrival() {
            assert!(t >= last);
            last = t;
            count += 1;
        }
        assert_eq!(count, 500);
    }

    #[test]
    fn falling_ramp_and_hold() {
        let s = OpenSchedule::new(
            &[
                constant(10.0, 2),
                Stage {
                    from: 10.0,
                    to: 0.0,
                    duration: Duration::from_secs(2),
                },
            ],
            Duration::from_secs(6),
        );
        // 20 + 10 arrivals, then the final rate (0) is held.
        assert!((s.expected_arrivals() - 30.0).abs() < 1e-9);
        let t = s.time_of(29.0).expect("inside");
        assert!(t > 3.0 && t < 4.0, "{t}");
        assert_eq!(s.time_of(30.0), None);
        assert_eq!(s.duration(), Duration::from_secs(6));
    }

    #[test]
    fn zero_rate_stage_pauses() {
        let s = OpenSchedule::new(
            &[constant(1.0, 2), constant(0.0, 5), constant(1.0, 2)],
            Duration::ZERO,
        );
        let times: Vec<f64> = (0..4).filter_map(|n| s.time_of(n as f64)).collect();
        assert_eq!(times, vec![0.0, 1.0, 7.0, 8.0]);
    }

    #[test]
    fn strided_workers_cover_every_arrival_once() {
        let s = OpenSchedule::new(&[constant(100.0, 1)], Duration::ZERO);
        let mut all: Vec<u64> = Vec::new();
        for w in 0..3 {
            let mut c = ArrivalClock::new(s.clone(), Arrivals::Uniform, w, 3, 7);
            while let Some((n, t)) = c.next_arrival() {
                assert!((t.as_secs_f64() - n as f64 / 100.0).abs() < 1e-9);
                all.push(n);
            }
        }
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn poisson_count_matches_the_rate() {
        // 2,000 expected arrivals over two workers; a Poisson count's standard
        // deviation is √2000 ≈ 45, so ±250 is over five of them.
        let s = OpenSchedule::new(&[constant(200.0, 10)], Duration::ZERO);
        let mut total = 0;
        for w in 0..2 {
            let mut c = ArrivalClock::new(s.clone(), Arrivals::Poisson, w, 2, 42);
            while c.next_arrival().is_some() {
                total += 1;
            }
        }
        assert!((1750..=2250).contains(&total), "{total}");
    }
}
