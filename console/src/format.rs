//! How numbers, sizes, durations and dates are written on screen, and how
//! `--redact` masks tenant names and identifiers. Coarse on purpose: a
//! figure that would tick every second (an age, a countdown) is shown at a
//! granularity that keeps an idle screen unchanged.

use chrono::{DateTime, Utc};

/// `1.2 KiB`, `3.4 MiB`.
pub fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} B", n as u64)
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `12`, `1.2k`, `3.4M`.
pub fn count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1_000.0),
        _ => format!("{:.1}M", n as f64 / 1_000_000.0),
    }
}

/// Messages per second: `0`, `0.4`, `12.3`, `1.2k`.
pub fn rate(r: f64) -> String {
    if r <= 0.0 || !r.is_finite() {
        "0".into()
    } else if r < 0.05 {
        "<0.1".into()
    } else if r < 100.0 {
        format!("{r:.1}")
    } else if r < 10_000.0 {
        format!("{r:.0}")
    } else {
        format!("{:.1}k", r / 1_000.0)
    }
}

/// A latency in µs: `850µs`, `1.2ms`, `3.4s`; `–` for nothing recorded.
pub fn micros(us: u64, samples: u64) -> String {
    if samples == 0 {
        "–".into()
    } else if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1_000.0)
    } else {
        format!("{:.1}s", us as f64 / 1_000_000.0)
    }
}

/// A duration in seconds, coarse: `45s`, `12m`, `5h 12m`, `3d 4h`.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3_599 => format!("{}m", s / 60),
        3_600..=86_399 => format!("{}h {}m", s / 3_600, (s % 3_600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3_600),
    }
}

/// Like [`age`] but never finer than a minute, for figures that would
/// otherwise change on every refresh (`<1m`, `12m`, `5h 12m`, `3d 4h`).
pub fn age_coarse(secs: i64) -> String {
    if secs < 60 { "<1m".into() } else { age(secs) }
}

/// Parses an RFC 3339 timestamp from the API.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `2026-05-01 14:03` (UTC).
pub fn date_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// `2026-05-01`.
pub fn date(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Milliseconds since the epoch shown as [`date_time`].
pub fn date_time_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| date_time(&t))
        .unwrap_or_else(|| "–".into())
}

/// An RFC 3339 string shown as [`date_time`], or the raw text if unreadable.
pub fn date_time_str(s: &str) -> String {
    parse_time(s)
        .map(|t| date_time(&t))
        .unwrap_or_else(|| s.to_string())
}

/// `in 3d 4h` / `4h 2m ago` relative to `now`, minute granularity.
pub fn relative(t: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    let d = (*t - *now).num_seconds();
    if d >= 0 {
        format!("in {}", age_coarse(d))
    } else {
        format!("{} ago", age_coarse(-d))
    }
}

/// Cuts `s` to `width` characters, ending in `…` when cut.
pub fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else if width == 0 {
        String::new()
    } else {
        let mut out: String = s.chars().take(width - 1).collect();
        out.push('…');
        out
    }
}

/// FNV-1a: a stable hash (the same on every run and build), for pseudonyms.
fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Masks tenant names and identifiers for demos and screenshots: the same
/// input always gives the same pseudonym, so rows stay distinguishable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redactor {
    pub on: bool,
}

impl Redactor {
    pub fn new(on: bool) -> Self {
        Self { on }
    }

    fn tag(id: &str) -> String {
        format!("{:04x}", fnv1a(id) & 0xffff)
    }

    /// A tenant's name; the pseudonym is derived from the tenant id, so
    /// name and id of one tenant match each other.
    pub fn tenant_name(&self, id: &str, name: &str) -> String {
        if self.on {
            format!("Tenant {}", Self::tag(id))
        } else {
            name.to_string()
        }
    }

    /// A tenant id (also in audit targets and event data).
    pub fn tenant_id(&self, id: &str) -> String {
        if self.on {
            format!("t-••••{}", Self::tag(id))
        } else {
            id.to_string()
        }
    }

    /// Any other identifier (phone number id, email address, staff name).
    pub fn ident(&self, s: &str) -> String {
        if self.on && !s.is_empty() {
            format!("••••{}", Self::tag(s))
        } else {
            s.to_string()
        }
    }

    /// Free text that may contain tenant ids (audit targets, event data):
    /// every run of exactly 32 hex digits (the form of a tenant id) is
    /// replaced by its pseudonym. One pass over the text, whatever the
    /// number of tenants.
    pub fn text_with_ids(&self, s: &str) -> String {
        if !self.on {
            return s.to_string();
        }
        let bytes = s.as_bytes();
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        while i < bytes.len() {
            let run = bytes[i..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            if run == 32 {
                out.push_str(&self.tenant_id(&s[i..i + 32]));
                i += 32;
            } else if run > 0 {
                out.push_str(&s[i..i + run]);
                i += run;
            } else {
                let ch = s[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8().max(1);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_rates_and_ages() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(1.25), "1.2");
        assert_eq!(rate(250.0), "250");
        assert_eq!(micros(850, 3), "850µs");
        assert_eq!(micros(1_500, 3), "1.5ms");
        assert_eq!(micros(1_500, 0), "–");
        assert_eq!(age(45), "45s");
        assert_eq!(age(3_700), "1h 1m");
        assert_eq!(age(90_000), "1d 1h");
        assert_eq!(age_coarse(30), "<1m");
        assert_eq!(clip("abcdef", 4), "abc…");
    }

    #[test]
    fn redaction_is_stable_and_hides_the_input() {
        let r = Redactor::new(true);
        let a = r.tenant_name("t_123", "Acme");
        assert_eq!(a, r.tenant_name("t_123", "Acme"));
        assert!(!a.contains("Acme"));
        assert!(!r.tenant_id("t_123").contains("123"));
        assert_eq!(Redactor::new(false).tenant_name("t_1", "Acme"), "Acme");
        let id = "0196000000007000800000000000000a";
        let text = r.text_with_ids(&format!("/admin/v1/tenants/{id}/suspend · é"));
        assert!(!text.contains(id), "{text}");
        assert!(
            text.starts_with("/admin/v1/tenants/t-••••") && text.ends_with("/suspend · é"),
            "{text}"
        );
        assert_eq!(r.text_with_ids("abc 123"), "abc 123");
    }
}
