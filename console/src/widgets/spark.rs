//! Sparklines as text, for table cells (a `Sparkline` widget needs its own
//! area; a tenants table has one per row).

const BARS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The newest `width` values of `data` as bar characters, scaled to their
/// maximum. A line of zeros is drawn as the lowest bar so it reads as
/// "nothing" rather than as a gap.
pub fn text<T: Copy + Into<f64>>(data: &[T], width: usize) -> String {
    let start = data.len().saturating_sub(width);
    let tail = &data[start..];
    let max = tail.iter().map(|v| (*v).into()).fold(0.0_f64, f64::max);
    let mut out = String::with_capacity(width * 3);
    for _ in tail.len()..width {
        out.push(BARS[1]);
    }
    for v in tail {
        let v: f64 = (*v).into();
        let level = if max <= 0.0 || v <= 0.0 {
            1
        } else {
            (1.0 + (v / max) * 7.0).round().clamp(1.0, 8.0) as usize
        };
        out.push(BARS[level]);
    }
    out
}

/// The newest `width` values, padded with zeros on the left, so a short
/// series sits at the right-hand (newest) edge of a chart.
pub fn right_aligned(data: &[u64], width: usize) -> Vec<u64> {
    let start = data.len().saturating_sub(width);
    let tail = &data[start..];
    let mut out = vec![0; width.saturating_sub(tail.len())];
    out.extend_from_slice(tail);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn scales_to_the_maximum_and_pads_on_the_left() {
        assert_eq!(super::text(&[0.0_f32, 1.0, 2.0], 5), "▁▁▁▅█");
        assert_eq!(super::text(&[0_u32; 3], 3), "▁▁▁");
        assert_eq!(super::text(&[1.0_f32, 2.0, 3.0, 4.0], 2), "▆█");
    }
}
