//! Durations and sizes as people write them: `500ms`, `60s`, `5m`, `1h`,
//! `31d`; `64KiB`, `10MiB`. One parser for every command line and file.

use std::time::Duration;

/// Parses `500ms`, `60s`, `5m`, `1h`, `31d` (and combinations like `1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. 500ms, 60s, 5m, 1h, 31d".into());
    }
    if s.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{s:?} has no unit; write e.g. {s}s or {s}ms"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?}: {e}; write e.g. 500ms, 60s, 5m, 1h, 31d"))
}

/// Parses `512B`, `64KiB`, `10MiB`, `1GiB` (binary units; `KB`/`MB` are decimal).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit; write e.g. 64KiB or 10MiB"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number before the unit"))?;
    let mult: u64 = match unit.trim() {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?}; use B, KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("31d"), Ok(Duration::from_secs(31 * 86400)));
        assert!(parse_duration("60").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("512B"), Ok(512));
        assert!(parse_size("10").is_err());
        assert!(parse_size("10XB").is_err());
    }
}
