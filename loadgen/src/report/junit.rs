//! `--junit FILE`: one test case per threshold, for CI systems that show
//! JUnit results. A failed threshold is a `<failure>` naming what was observed;
//! an aborted run adds a failed `run` case saying why.

use std::fmt::Write as _;
use std::path::Path;

use super::Report;

/// Escapes text for XML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The JUnit XML document.
pub fn render(report: &Report) -> String {
    let mut cases = String::new();
    let mut failures = 0;
    let mut tests = 0;
    for t in &report.thresholds {
        tests += 1;
        let name = format!("{} {}", t.key, t.check);
        let _ = write!(
            cases,
            "    <testcase classname=\"{}.thresholds\" name=\"{}\" time=\"{:.3}\">",
            esc(&report.name),
            esc(&name),
            report.duration_s
        );
        if t.passed {
            let _ = writeln!(
                cases,
                "<system-out>{}</system-out></testcase>",
                esc(&t.detail)
            );
        } else {
            failures += 1;
            let _ = writeln!(
                cases,
                "\n      <failure message=\"{}\" type=\"threshold\">{} failed: {} (scenario line {})</failure>\n    </testcase>",
                esc(&t.detail),
                esc(&name),
                esc(&t.detail),
                t.line
            );
        }
    }
    if let Some(why) = &report.aborted {
        tests += 1;
        failures += 1;
        let _ = writeln!(
            cases,
            "    <testcase classname=\"{}\" name=\"run\"><failure message=\"{}\" type=\"aborted\"/></testcase>",
            esc(&report.name),
            esc(why)
        );
    }
    let mut doc = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        doc,
        "<testsuites name=\"c24-loadgen\" tests=\"{tests}\" failures=\"{failures}\">"
    );
    let _ = writeln!(
        doc,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{:.3}\" timestamp=\"{}\">",
        esc(&report.name),
        report.elapsed_s,
        esc(&report.started_at)
    );
    doc.push_str(&cases);
    doc.push_str("  </testsuite>\n</testsuites>\n");
    doc
}

pub fn write(report: &Report, path: &Path) -> Result<(), String> {
    std::fs::write(path, render(report)).map_err(|e| format!("{}: {e}", path.display()))
}
