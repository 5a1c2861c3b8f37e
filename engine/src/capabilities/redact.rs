//! Keeping secret values out of what a run records: log lines, outputs, failure
//! reasons and commands are masked, also in their base64 forms.

use base64::Engine as _;

/// What a redacted value is replaced with.
pub const MASK: &str = "***";
/// Shorter values cannot be redacted without masking ordinary text.
pub const MIN_SECRET_LEN: usize = 4;
/// Shortest base64 fragment that is masked (shorter ones match ordinary text).
const MIN_ENCODED_LEN: usize = 6;

/// Replaces every secret value, and its base64 encodings, with [`MASK`].
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Longest first, so that a value containing another is masked whole.
    patterns: Vec<String>,
}

impl Redactor {
    /// A redactor for these values (values shorter than [`MIN_SECRET_LEN`] are
    /// refused earlier, when secrets are loaded).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut patterns = Vec::new();
        for value in values {
            if value.len() < MIN_SECRET_LEN {
                continue;
            }
            patterns.push(value.to_owned());
            // A multi-line value (a key file) is also masked line by line, since
            // logs are kept line by line.
            let trimmed = value.trim_end_matches(['\n', '\r']);
            if trimmed.contains('\n') {
                patterns.extend(
                    trimmed
                        .lines()
                        .map(str::trim)
                        .filter(|l| l.len() >= MIN_SECRET_LEN)
                        .map(str::to_owned),
                );
            } else if trimmed.len() >= MIN_SECRET_LEN && trimmed != value {
                patterns.push(trimmed.to_owned());
            }
            patterns.extend(encoded_forms(trimmed.as_bytes()));
        }
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        Redactor { patterns }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The longest pattern, in bytes: a writer that holds back this many bytes
    /// minus one never flushes half of a value.
    pub fn longest(&self) -> usize {
        self.patterns.first().map_or(0, String::len)
    }

    /// A cut at or before `at` in `bytes` that does not fall inside an occurrence
    /// of a value.
    pub fn safe_cut(&self, bytes: &[u8], at: usize) -> usize {
        let mut cut = at.min(bytes.len());
        loop {
            let before = cut;
            for pattern in &self.patterns {
                let p = pattern.as_bytes();
                let from = cut.saturating_sub(p.len() - 1);
                let until = cut.min(bytes.len().saturating_sub(p.len() - 1));
                if let Some(i) =
                    (from..until).find(|&i| bytes[i..].starts_with(p) && i + p.len() > cut)
                {
                    cut = i;
                }
            }
            if cut == before {
                return cut;
            }
        }
    }

    /// `text` with every value masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for pattern in &self.patterns {
            if out.contains(pattern.as_str()) {
                out = out.replace(pattern.as_str(), MASK);
            }
        }
        out
    }

    /// Redact in place; returns whether anything changed.
    pub fn redact_in_place(&self, text: &mut String) -> bool {
        if self.patterns.iter().any(|p| text.contains(p.as_str())) {
            *text = self.redact(text);
            true
        } else {
            false
        }
    }
}

/// The base64 forms of `value` as it appears inside a longer encoded text: its
/// encoding depends on its offset modulo 3 in that text, so take each of the
/// three alignments and keep the characters that depend on `value` alone.
fn encoded_forms(value: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for offset in 0..3usize {
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(value);
        for engine in [
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let encoded = engine.encode(&padded);
            // Leading characters mix in the padding bytes; trailing ones the
            // bytes after the value.
            let skip = (offset * 8).div_ceil(6);
            let keep_bits = (offset + value.len()) * 8;
            let full = keep_bits / 6;
            if full > skip && full - skip >= MIN_ENCODED_LEN {
                out.push(encoded[skip..full].to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_values_lines_and_base64_forms() {
        let r = Redactor::new([
            "hunter2-secret",
            "-----BEGIN KEY-----\nAAAABBBBCCCC\n-----END KEY-----\n",
        ]);
        assert_eq!(r.redact("token=hunter2-secret;"), "token=***;");
        assert_eq!(r.redact("line AAAABBBBCCCC here"), "line *** here");
        let basic = base64::engine::general_purpose::STANDARD.encode("user:hunter2-secret");
        let masked = r.redact(&format!("Authorization: Basic {basic}"));
        assert!(!masked.contains(&basic[8..20]), "{masked}");
        assert!(masked.contains(MASK), "{masked}");
        for prefix in ["", "a", "ab", "abc"] {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(format!("{prefix}hunter2-secret!"));
            assert!(r.redact(&encoded).contains(MASK), "{prefix}: {encoded}");
            let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("{prefix}hunter2-secret!"));
            assert!(r.redact(&url).contains(MASK), "{prefix}: {url}");
        }
        assert_eq!(r.redact("nothing to see"), "nothing to see");
        assert!(r.longest() >= "hunter2-secret".len());
    }

    #[test]
    fn short_values_are_not_patterns() {
        assert!(Redactor::new(["abc"]).is_empty());
    }
}
