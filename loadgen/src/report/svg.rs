//! Charts as inline SVG, drawn here so an HTML report needs no script
//! library and no network: line charts (over time, over rate, percentile
//! spectra) and a ratio chart with confidence intervals.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::thresholds::format_micros;

const W: f64 = 700.0;
const H: f64 = 280.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 60.0;

/// Colours of successive series (colour-blind-safe, Okabe–Ito).
const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
];

/// How values on an axis are shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Microseconds, shown as µs/ms/s.
    Micros,
    /// Seconds of run time.
    Seconds,
    /// Per second.
    Rate,
    /// A plain number.
    Number,
    /// Percentiles on HdrHistogram's log axis: x = log10(1 / (1 − q)).
    Percentile,
}

impl Scale {
    fn label(self, v: f64) -> String {
        match self {
            Scale::Micros => format_micros(v),
            Scale::Seconds => format!("{v:.0}s"),
            Scale::Rate => {
                if v >= 100.0 {
                    format!("{v:.0}/s")
                } else {
                    format!("{v:.1}/s")
                }
            }
            Scale::Number => {
                if v.abs() >= 100.0 || v == v.trunc() {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            }
            Scale::Percentile => match v.round() as i64 {
                0 => "0%".into(),
                1 => "90%".into(),
                2 => "99%".into(),
                3 => "99.9%".into(),
                4 => "99.99%".into(),
                _ => "max".into(),
            },
        }
    }
}

/// One line on a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    /// Draw a dot per point, coloured by this verdict when given (capacity probes).
    pub marks: Option<Vec<bool>>,
    /// Palette index (series of a pair share a colour).
    pub colour: usize,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>, colour: usize) -> Self {
        Series {
            name: name.into(),
            points,
            dashed: false,
            marks: None,
            colour,
        }
    }

    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }

    pub fn marked(mut self, marks: Vec<bool>) -> Self {
        self.marks = Some(marks);
        self
    }
}

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// About five round tick values covering `lo..hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut out = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-9 && out.len() < 12 {
        // No "-0.00" from rounding around zero.
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        v += step;
    }
    out
}

/// A line chart; `class="chart"`, each drawn series a `path.series`.
pub fn line_chart(title: &str, x: Scale, y: Scale, series: &[Series]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<figure><svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><text x="{LEFT}" y="18" class="title">{t}</text>"#,
        t = esc(title)
    );
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    if pts.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" class="empty">no data</text></svg></figure>"#,
            W / 2.0 - 30.0,
            H / 2.0
        );
        return out;
    }
    let (mut x0, mut x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let top = pts.iter().fold(f64::MIN, |a, p| a.max(p.1));
    // An all-zero chart (no errors) still gets a readable axis.
    let y1 = if top > 0.0 { top * 1.08 } else { 1.0 };
    let y0 = 0.0;
    if x == Scale::Percentile {
        x0 = 0.0;
        x1 = x1.max(2.0);
    }
    if x1 - x0 < 1e-9 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let sx = |v: f64| LEFT + (v - x0) / (x1 - x0) * pw;
    let sy = |v: f64| TOP + ph - (v - y0) / (y1 - y0) * ph;
    // Grid and axes.
    for t in ticks(y0, y1) {
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            sy(t) + 4.0,
            esc(&y.label(t)),
            y = sy(t)
        );
    }
    let xt: Vec<f64> = if x == Scale::Percentile {
        (0..=(x1.floor() as i64)).map(|v| v as f64).collect()
    } else {
        ticks(x0, x1)
    };
    for t in xt {
        let _ = write!(
            out,
            r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}"/><text class="tick" x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            TOP + ph,
            TOP + ph + 16.0,
            esc(&x.label(t)),
            x = sx(t)
        );
    }
    let _ = write!(
        out,
        r#"<rect class="frame" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none"/>"#
    );
    // Series and legend.
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[s.colour % PALETTE.len()];
        let pts: Vec<&(f64, f64)> = s
            .points
            .iter()
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .collect();
        if !pts.is_empty() {
            let mut d = String::new();
            for (j, (a, b)) in pts.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1} {:.1}",
                    if j == 0 { "M" } else { " L" },
                    sx(*a),
                    sy(*b)
                );
            }
            let _ = write!(
                out,
                r#"<path class="series" d="{d}" fill="none" stroke="{colour}" stroke-width="2"{}><title>{}</title></path>"#,
                if s.dashed {
                    r#" stroke-dasharray="6 4""#
                } else {
                    ""
                },
                esc(&s.name)
            );
            if let Some(marks) = &s.marks {
                for ((a, b), ok) in pts.iter().zip(marks) {
                    let _ = write!(
                        out,
                        r#"<circle class="mark {}" cx="{:.1}" cy="{:.1}" r="4" fill="{}"><title>{}: {} at {}</title></circle>"#,
                        if *ok { "held" } else { "broke" },
                        sx(*a),
                        sy(*b),
                        if *ok { "#009E73" } else { "#D55E00" },
                        esc(&s.name),
                        esc(&y.label(*b)),
                        esc(&x.label(*a))
                    );
                }
            }
        }
        let lx = LEFT + (i % 4) as f64 * 165.0;
        let ly = H - 22.0 + (i / 4) as f64 * 14.0;
        let _ = write!(
            out,
            r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"{}/><text class="legend" x="{}" y="{}">{}</text>"#,
            lx + 18.0,
            if s.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            },
            lx + 22.0,
            ly + 4.0,
            esc(&s.name)
        );
    }
    out.push_str("</svg></figure>");
    out
}

/// The percentile spectrum of a histogram of µs, as chart points.
pub fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<(f64, f64)> = [
        0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999,
    ]
    .iter()
    .map(|q: &f64| ((1.0 / (1.0 - q)).log10(), h.value_at_quantile(*q) as f64))
    .collect();
    out.push((5.0, h.max() as f64));
    out
}

/// One row of a ratio chart.
pub struct RatioRow {
    pub label: String,
    pub ratio: f64,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// B/A ratios as dots with their confidence intervals, a line at 1.
pub fn ratio_chart(title: &str, rows: &[RatioRow]) -> String {
    let row_h = 22.0;
    let h = TOP + 30.0 + row_h * rows.len().max(1) as f64;
    let left = 190.0;
    let pw = W - left - RIGHT;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<figure><svg class="chart" viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><text x="10" y="18" class="title">{t}</text>"#,
        t = esc(title)
    );
    let vals: Vec<f64> = rows
        .iter()
        .flat_map(|r| [Some(r.ratio), r.low, r.high])
        .flatten()
        .filter(|v| v.is_finite())
        .collect();
    if vals.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" class="empty">no data</text></svg></figure>"#,
            W / 2.0,
            h / 2.0
        );
        return out;
    }
    let lo = vals.iter().fold(1.0f64, |a, v| a.min(*v));
    let hi = vals.iter().fold(1.0f64, |a, v| a.max(*v));
    let pad = ((hi - lo) * 0.1).max(0.02);
    let (x0, x1) = (lo - pad, hi + pad);
    let sx = |v: f64| left + (v - x0) / (x1 - x0) * pw;
    let bottom = h - 24.0;
    for t in ticks(x0, x1) {
        let _ = write!(
            out,
            r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{bottom}"/><text class="tick" x="{x:.1}" y="{}" text-anchor="middle">{t:.2}×</text>"#,
            bottom + 14.0,
            x = sx(t)
        );
    }
    let _ = write!(
        out,
        r##"<line class="one" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{bottom}" stroke="#000" stroke-dasharray="3 3"/>"##,
        x = sx(1.0)
    );
    let mut d = String::new();
    for (i, r) in rows.iter().enumerate() {
        let y = TOP + 12.0 + row_h * i as f64;
        let _ = write!(
            out,
            r#"<text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + 4.0,
            esc(&r.label)
        );
        if let (Some(l), Some(u)) = (r.low, r.high) {
            let _ = write!(d, "M{:.1} {y:.1} L{:.1} {y:.1} ", sx(l), sx(u));
        }
        let _ = write!(
            out,
            r##"<circle class="mark" cx="{:.1}" cy="{y:.1}" r="4" fill="#0072B2"><title>{}: {:.3}×{}</title></circle>"##,
            sx(r.ratio),
            esc(&r.label),
            r.ratio,
            match (r.low, r.high) {
                (Some(l), Some(u)) => format!(" (95% CI {l:.3}–{u:.3})"),
                _ => String::new(),
            }
        );
    }
    let _ = write!(
        out,
        r##"<path class="series" d="{}" stroke="#0072B2" stroke-width="2" fill="none"><title>95% confidence intervals</title></path></svg></figure>"##,
        if d.is_empty() { "M0 0".to_string() } else { d }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(0.0, 1234.0);
        assert!(t.first() == Some(&0.0) && *t.last().unwrap() <= 1234.0 && t.len() >= 4);
    }

    #[test]
    fn a_chart_draws_one_path_per_series_and_escapes_names() {
        let svg = line_chart(
            "a <b>",
            Scale::Seconds,
            Scale::Micros,
            &[
                Series::new("x & y", vec![(0.0, 1.0), (1.0, 2.0)], 0),
                Series::new("z", vec![(0.0, 3.0)], 1).dashed(),
            ],
        );
        assert_eq!(svg.matches(r#"class="series""#).count(), 2);
        assert!(svg.contains("a &lt;b&gt;") && svg.contains("x &amp; y"));
        assert!(!line_chart("e", Scale::Seconds, Scale::Micros, &[]).contains("series"));
    }

    #[test]
    fn the_spectrum_ends_at_the_max() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let s = spectrum(&h);
        assert_eq!(s.first().map(|p| p.0), Some(0.0));
        assert!((s[2].1 - 500.0).abs() <= 1.0);
        assert_eq!(s.last(), Some(&(5.0, h.max() as f64)));
    }
}
