//! The HdrHistogram interval log (`--hdr-log FILE`): one interval per second,
//! V2 + deflate encoded, one histogram per channel × metric tagged
//! `CHANNEL.METRIC` (corrected) and `CHANNEL.METRIC.uncorrected`, plus
//! `generator.lag`. HdrHistogram's own tools (HistogramLogProcessor, the
//! Python and Go readers) read it; logs of several shards can be merged by tag.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use crate::metrics::{Metric, Recorder, add_into, new_histogram};
use crate::scenario::Channel;

/// An interval log being written.
pub struct HdrLog {
    path: PathBuf,
    out: BufWriter<File>,
    base: SystemTime,
    serializer: V2DeflateSerializer,
}

impl HdrLog {
    /// Creates the file and writes the header (`StartTime` and `BaseTime` = `base`).
    pub fn create(path: &Path, base: SystemTime) -> std::io::Result<Self> {
        let file = File::create(path)?;
        let mut out = BufWriter::new(file);
        let mut serializer = V2DeflateSerializer::new();
        {
            let mut builder = IntervalLogWriterBuilder::new();
            builder
                .add_comment("c24-loadgen interval log: values (and the Interval_Max column) in microseconds; tags CHANNEL.METRIC[.uncorrected]")
                .with_start_time(base)
                .with_base_time(base);
            builder.begin_log_with(&mut out, &mut serializer)?;
        }
        out.write_all(b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n")?;
        Ok(HdrLog {
            path: path.to_path_buf(),
            out,
            base,
            serializer,
        })
    }

    pub fn path(&self) -> &str {
        self.path.to_str().unwrap_or("the HDR log")
    }

    /// Writes one interval: every channel × metric that has samples.
    pub fn write(&mut self, rec: &Recorder, _scenarios: &[String]) -> Result<(), String> {
        let start = rec.from.duration_since(self.base).unwrap_or(Duration::ZERO);
        let length = rec.to.duration_since(rec.from).unwrap_or(Duration::ZERO);
        let mut entries: Vec<(String, Histogram<u64>)> = Vec::new();
        for c in Channel::ALL {
            for m in Metric::ALL {
                if let Some(p) = rec.combined(None, c, m) {
                    entries.push((format!("{c}.{}", m.as_str()), p.corrected));
                    entries.push((format!("{c}.{}.uncorrected", m.as_str()), p.uncorrected));
                }
            }
        }
        if !rec.lag.is_empty() {
            let mut lag = new_histogram();
            add_into(&mut lag, &rec.lag);
            entries.push(("generator.lag".into(), lag));
        }
        if entries.is_empty() {
            return Ok(());
        }
        // The builder only adds header lines when asked to, so a fresh writer
        // per interval appends plain interval lines to the same file.
        let mut writer = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut self.out, &mut self.serializer)
            .map_err(|e| e.to_string())?;
        for (tag, h) in &entries {
            let tag = Tag::new(tag);
            writer
                .write_histogram(h, start, length, tag)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Flushes and syncs the file.
    pub fn finish(&mut self) -> Result<(), String> {
        self.out.flush().map_err(|e| e.to_string())?;
        self.out.get_ref().sync_all().map_err(|e| e.to_string())
    }
}

/// Seconds since the Unix epoch, for log headers.
pub fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
