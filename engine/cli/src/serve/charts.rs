//! The dashboard's charts, as inline SVG: runs over time by status, a histogram of
//! durations, and a duration trend. Every label is escaped; each mark has a
//! `<title>` that says its figure.

use std::fmt::Write;

use flow_store::{RunStatus, format_rfc3339};

use super::html::{escape, ms};

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

/// Runs per hour or day (whichever gives a readable number of bars), stacked by how
/// they ended. `runs`: (started at, status).
pub(crate) fn runs_over_time(runs: &[(u64, RunStatus)]) -> String {
    let (Some(first), Some(last)) = (
        runs.iter().map(|r| r.0).min(),
        runs.iter().map(|r| r.0).max(),
    ) else {
        return "<p class=\"muted\">no runs</p>".into();
    };
    let span = last - first;
    let (size, unit) = if span <= 2 * DAY {
        (HOUR, "hour")
    } else if span <= 120 * DAY {
        (DAY, "day")
    } else {
        (7 * DAY, "week")
    };
    let start = first / size * size;
    let buckets = ((last - start) / size + 1) as usize;
    // [succeeded, failed, running, other]
    let mut counts = vec![[0usize; 4]; buckets];
    for (at, status) in runs {
        let i = ((at - start) / size) as usize;
        let kind = match status {
            RunStatus::Succeeded => 0,
            RunStatus::Failed => 1,
            RunStatus::Running => 2,
            _ => 3,
        };
        counts[i][kind] += 1;
    }
    let max = counts
        .iter()
        .map(|c| c.iter().sum::<usize>())
        .max()
        .unwrap_or(1)
        .max(1);
    let (width, height, left, bottom) = (1100usize, 160usize, 36usize, 20usize);
    let bar = ((width - left) / buckets).clamp(2, 40);
    let plot = height - bottom - 6;
    let mut svg = format!(
        "<svg id=\"runs-chart\" width=\"{width}\" height=\"{height}\" role=\"img\" \
         aria-label=\"runs per {unit}\">\
         <text x=\"0\" y=\"12\">{max}</text><text x=\"0\" y=\"{}\">0</text>",
        height - bottom
    );
    const CLASSES: [&str; 4] = ["s-succeeded", "s-failed", "s-running", "s-other"];
    const WORDS: [&str; 4] = ["succeeded", "failed", "running", "cancelled or interrupted"];
    for (i, c) in counts.iter().enumerate() {
        let x = left + i * bar;
        let mut y = height - bottom;
        let when = format_rfc3339(start + i as u64 * size);
        for kind in 0..4 {
            if c[kind] == 0 {
                continue;
            }
            let h = (c[kind] * plot).div_ceil(max).max(1);
            y = y.saturating_sub(h);
            let _ = write!(
                svg,
                "<rect class=\"bar {}\" data-bucket=\"{}\" data-count=\"{}\" x=\"{x}\" y=\"{y}\" \
                 width=\"{}\" height=\"{h}\"><title>{} {}: {} {}</title></rect>",
                CLASSES[kind],
                escape(&when),
                c[kind],
                bar.saturating_sub(1).max(1),
                unit,
                escape(&when),
                c[kind],
                WORDS[kind]
            );
        }
        if buckets <= 12 || i % (buckets / 12 + 1) == 0 {
            let label = match unit {
                "hour" => when.get(11..16).unwrap_or(""),
                _ => when.get(5..10).unwrap_or(""),
            };
            let _ = write!(
                svg,
                "<text x=\"{x}\" y=\"{}\">{}</text>",
                height - 5,
                escape(label)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A histogram of durations (ms) in up to 10 bins, small enough for a table cell.
pub(crate) fn histogram(samples: &[u64]) -> String {
    let (Some(&min), Some(&max)) = (samples.iter().min(), samples.iter().max()) else {
        return String::new();
    };
    const BINS: u64 = 10;
    let width = (max - min) / BINS + 1;
    let mut bins = [0usize; BINS as usize];
    for s in samples {
        bins[(((s - min) / width) as usize).min(BINS as usize - 1)] += 1;
    }
    let top = bins.iter().copied().max().unwrap_or(1).max(1);
    let (w, h) = (120usize, 28usize);
    let mut svg = format!("<svg class=\"histogram\" width=\"{w}\" height=\"{h}\">");
    for (i, n) in bins.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let bh = (n * h).div_ceil(top).max(1);
        let lo = min + i as u64 * width;
        let _ = write!(
            svg,
            "<rect class=\"hist\" x=\"{}\" y=\"{}\" width=\"11\" height=\"{bh}\">\
             <title>{} to {}: {n}</title></rect>",
            i * 12,
            h - bh,
            escape(&ms(lo)),
            escape(&ms(lo + width))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Durations (ms) in the order they happened, as a line (the latest 50).
pub(crate) fn trend(samples: &[u64]) -> String {
    let samples = &samples[samples.len().saturating_sub(50)..];
    if samples.len() < 2 {
        return String::new();
    }
    let max = samples.iter().copied().max().unwrap_or(1).max(1);
    let (w, h) = (120.0f64, 28.0f64);
    let step = w / (samples.len() - 1) as f64;
    let points: Vec<String> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                h - 1.0 - (*s as f64 / max as f64) * (h - 2.0)
            )
        })
        .collect();
    format!(
        "<svg class=\"trend-chart\" width=\"{w}\" height=\"{h}\"><polyline class=\"trend\" \
         points=\"{}\"><title>last {} durations, oldest first; longest {}</title></polyline></svg>",
        points.join(" "),
        samples.len(),
        escape(&ms(max))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_counted_in_their_bucket() {
        let svg = runs_over_time(&[
            (0, RunStatus::Succeeded),
            (10, RunStatus::Succeeded),
            (HOUR + 1, RunStatus::Failed),
        ]);
        assert!(svg.contains("data-count=\"2\""), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(runs_over_time(&[]).contains("no runs"));
        let h = histogram(&[1, 2, 3, 100]);
        assert_eq!(h.matches("<rect").count(), 2);
        assert_eq!(histogram(&[5, 5]).matches("<rect").count(), 1);
        assert!(trend(&[1]).is_empty());
        assert!(trend(&[1, 2, 3]).contains("polyline"));
    }
}
