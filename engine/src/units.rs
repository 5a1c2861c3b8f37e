//! Human-readable sizes and durations for messages.

use std::time::Duration;

/// `256 MiB`, `1.5 GiB`, `512 B`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

/// `850ms`, `30s`, `2m5s`, `1h0m3s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    if secs < 60 {
        let tenths = (ms % 1000) / 100;
        return if tenths == 0 {
            format!("{secs}s")
        } else {
            format!("{secs}.{tenths}s")
        };
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

/// `text` with every byte but a URI's unreserved characters (`A-Z a-z 0-9 - . _ ~`)
/// percent-encoded: a URL's path segment or query value, a purl's name.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A step's progress in words: `12/40 files`, `1.5 MiB of 3.0 MiB`, `7 packages`.
pub fn format_progress(done: u64, total: Option<u64>, unit: &str) -> String {
    match (total, unit == "bytes") {
        (Some(total), true) => format!("{} of {}", format_bytes(done), format_bytes(total)),
        (None, true) => format_bytes(done),
        (Some(total), false) => format!("{done}/{total} {unit}"),
        (None, false) => format!("{done} {unit}"),
    }
}

/// What an I/O error on `dir` says: "no space left on DIR" for a full disk (or
/// quota), "DIR: " and its own words otherwise.
pub fn io_words(e: &std::io::Error, dir: &std::path::Path) -> String {
    if flow_store::is_no_space(e) {
        format!("no space left on {}", dir.display())
    } else {
        format!("{}: {e}", dir.display())
    }
}

/// Whether the file system holding `path` (or, once it is gone, its nearest
/// ancestor) has no block left for an unprivileged writer (false when it cannot
/// be asked).
pub fn is_full(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    for at in path.ancestors() {
        let Ok(c_path) = std::ffi::CString::new(at.as_os_str().as_bytes()) else {
            return false;
        };
        let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `c_path` is a valid C string and `stat` is written by the call.
        if unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) } == 0 {
            // SAFETY: statvfs succeeded, so it filled `stat`.
            let stat = unsafe { stat.assume_init() };
            return stat.f_bavail == 0;
        }
    }
    false
}

/// The first line of `text` (all of it when it has one line; empty when empty).
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sizes_and_durations() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(256 << 20), "256 MiB");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m5s");
        assert_eq!(format_duration(Duration::from_secs(3603)), "1h0m3s");
    }
}
