//! `--report-json FILE`: the [`Report`] as JSON (schema in `loadgen/REPORT.md`).
//! Histograms travel as base64 of HdrHistogram's V2 + deflate encoding, the
//! same bytes an interval log holds, so reports can be merged exactly.

use std::path::Path;

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use super::Report;

/// The `encoding` of every serialized histogram.
pub const HISTOGRAM_ENCODING: &str = "hdrhistogram-v2-deflate-base64";

/// Base64 of the V2 + deflate encoding (empty string if encoding failed).
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(buf),
        Err(e) => {
            tracing::warn!(error = ?e, "could not serialize a histogram");
            String::new()
        }
    }
}

/// Reads back what [`encode_histogram`] wrote.
pub fn decode_histogram(s: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("not an HdrHistogram V2 encoding: {e:?}"))
}

/// Writes the report, pretty-printed.
pub fn write(report: &Report, path: &Path) -> Result<(), String> {
    write_pretty(report, path)
}

/// Writes any JSON report (run, compare, capacity), pretty-printed.
pub fn write_pretty<T: serde::Serialize>(report: &T, path: &Path) -> Result<(), String> {
    let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}
