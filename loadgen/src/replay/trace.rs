//! The trace file: one `TraceRecord` JSON object per line, as
//! `GET /admin/v1/traffic/trace` exports it. Every bad line is reported as
//! `FILE:LINE: message`; nothing is played from a file with one.

use std::path::{Path, PathBuf};

use c24_api::admin::traffic::TraceRecord;
use chrono::{DateTime, Utc};

/// One record and where it was.
#[derive(Debug, Clone)]
pub struct TraceLine {
    pub line: usize,
    pub record: TraceRecord,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    pub file: PathBuf,
    /// 1-based; 0 for the file as a whole.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file.display(), self.message)
        }
    }
}

/// Every bad line (at most [`MAX_REPORTED`] are listed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TraceErrors(pub Vec<TraceError>);

impl std::fmt::Display for TraceErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::scenario::parse::one_a_line(f, &self.0)
    }
}

/// Bad lines listed before the rest are only counted.
pub const MAX_REPORTED: usize = 20;

pub fn read(path: &Path) -> Result<Vec<TraceLine>, TraceErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(path, &text),
        Err(e) => Err(TraceErrors(vec![TraceError {
            file: path.to_path_buf(),
            line: 0,
            message: format!("cannot read the trace: {e}"),
        }])),
    }
}

pub fn parse_str(path: &Path, text: &str) -> Result<Vec<TraceLine>, TraceErrors> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut bad = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let problem = match serde_json::from_str::<TraceRecord>(raw) {
            Err(e) => Some(format!("not a trace record: {e}")),
            Ok(record) => match DateTime::parse_from_rfc3339(&record.at) {
                Err(e) => Some(format!("at: {:?} is not an RFC 3339 time: {e}", record.at)),
                Ok(_) if record.tenant_id.is_empty() => Some("tenant_id: empty".into()),
                Ok(_) if record.conversation.is_empty() => Some("conversation: empty".into()),
                Ok(_) if record.size_bytes == 0 => {
                    Some("size_bytes: 0; a stored message has at least one byte".into())
                }
                Ok(at) => {
                    out.push(TraceLine {
                        line,
                        at: at.with_timezone(&Utc),
                        record,
                    });
                    None
                }
            },
        };
        if let Some(message) = problem {
            bad += 1;
            if errors.len() < MAX_REPORTED {
                errors.push(TraceError {
                    file: path.to_path_buf(),
                    line,
                    message,
                });
            }
        }
    }
    if bad > errors.len() {
        errors.push(TraceError {
            file: path.to_path_buf(),
            line: 0,
            message: format!("{} more bad line(s)", bad - errors.len()),
        });
    }
    if !errors.is_empty() {
        return Err(TraceErrors(errors));
    }
    if out.is_empty() {
        return Err(TraceErrors(vec![TraceError {
            file: path.to_path_buf(),
            line: 0,
            message: "no records: nothing to replay".into(),
        }]));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_named() {
        let text = concat!(
            r#"{"at":"2026-12-01T09:00:00.000000Z","tenant_id":"t1","channel":"webchat","conversation":"c1","direction":"inbound","size_bytes":10}"#,
            "\n\n",
            r#"{"at":"yesterday","tenant_id":"t1","channel":"webchat","conversation":"c1","direction":"inbound","size_bytes":10}"#,
            "\n",
            r#"{"at":"2026-12-01T09:00:01Z","tenant_id":"t1","channel":"sms","conversation":"c1","direction":"inbound","size_bytes":10}"#,
            "\n",
            "not json\n",
        );
        let e = parse_str(Path::new("t.jsonl"), text).unwrap_err();
        let lines: Vec<usize> = e.0.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(
            e.to_string().starts_with("t.jsonl:3: at: \"yesterday\""),
            "{e}"
        );
        assert!(e.0[1].message.contains("not a trace record"), "{e}");
        let ok = parse_str(Path::new("t.jsonl"), text.lines().next().unwrap()).unwrap();
        assert_eq!(ok.len(), 1);
        assert!(parse_str(Path::new("t.jsonl"), "\n").is_err());
    }
}
