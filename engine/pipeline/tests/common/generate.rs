//! Generated pipelines for the tests and the benchmark of large files: `shape` is
//! - `chain`: each step needs the one before and reads `${{ steps.<prev>.outputs.x }}`;
//! - `fan-in`: every step but the last (`sink`) is independent; `sink` needs all of them
//!   and reads the output of each (one `with:` entry per step);
//! - `far`: a chain where each step of the second half also reads the step half the chain
//!   back;
//! - `random`: each step needs up to 4 random earlier steps (among the 50 before it) and
//!   reads one of them and one step that one needs.
//!
//! Steps are `s0`, `s1`... and use the test resolver's `echo`, whose outputs are its params.

use std::fmt::Write as _;

/// The text of a generated pipeline of `n` steps of shape `shape`.
pub fn generate(shape: &str, n: usize) -> String {
    let mut out = String::with_capacity(n * 120);
    out.push_str("version: 1\nname: generated\nsteps:\n");
    match shape {
        "chain" | "far" => {
            for i in 0..n {
                let _ = writeln!(out, "  s{i}:\n    uses: echo");
                if i == 0 {
                    out.push_str("    with: { x: \"0\" }\n");
                    continue;
                }
                let _ = writeln!(out, "    needs: [s{}]", i - 1);
                let _ = writeln!(
                    out,
                    "    with:\n      x: \"${{{{ steps.s{}.outputs.x }}}}\"",
                    i - 1
                );
                if shape == "far" && i >= n / 2 && n >= 2 {
                    let _ = writeln!(
                        out,
                        "      y: \"${{{{ steps.s{}.outputs.x }}}}\"",
                        i - n / 2
                    );
                }
            }
        }
        "fan-in" => {
            for i in 0..n.saturating_sub(1) {
                let _ = writeln!(out, "  s{i}:\n    uses: echo\n    with: {{ x: \"{i}\" }}");
            }
            out.push_str("  sink:\n    uses: echo\n    needs:\n");
            for i in 0..n.saturating_sub(1) {
                let _ = writeln!(out, "      - s{i}");
            }
            out.push_str("    with:\n");
            for i in 0..n.saturating_sub(1) {
                let _ = writeln!(out, "      x{i}: \"${{{{ steps.s{i}.outputs.x }}}}\"");
            }
        }
        "random" => {
            // A small deterministic generator (xorshift), so every run checks the same file.
            let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
            let mut next = move |below: usize| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % below as u64) as usize
            };
            let mut needs: Vec<Vec<usize>> = Vec::with_capacity(n);
            for i in 0..n {
                let _ = writeln!(out, "  s{i}:\n    uses: echo");
                let mut mine: Vec<usize> = Vec::new();
                if i > 0 {
                    for _ in 0..=next(4) {
                        let back = 1 + next(i.min(50));
                        if !mine.contains(&(i - back)) {
                            mine.push(i - back);
                        }
                    }
                    let list: Vec<String> = mine.iter().map(|m| format!("s{m}")).collect();
                    let _ = writeln!(out, "    needs: [{}]", list.join(", "));
                }
                out.push_str("    with:\n      x: \"1\"\n");
                if let Some(&direct) = mine.first() {
                    let _ = writeln!(out, "      a: \"${{{{ steps.s{direct}.outputs.x }}}}\"");
                    if let Some(&further) = needs[direct].first() {
                        let _ = writeln!(out, "      b: \"${{{{ steps.s{further}.outputs.x }}}}\"");
                    }
                }
                needs.push(mine);
            }
        }
        other => panic!("unknown shape `{other}`"),
    }
    out
}
