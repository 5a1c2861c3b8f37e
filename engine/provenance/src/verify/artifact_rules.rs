//! A step's artifact rules (`MATCH`, `ALLOW`, `CREATE`, `MODIFY`, `DELETE`, `REQUIRE`,
//! `DISALLOW`), applied to its link as in-toto applies them: the materials -> products
//! chain between steps.

use std::collections::{BTreeMap, BTreeSet};

use crate::link::LinkPayload;

use super::layout_steps::Step;
use super::report::Failure;

pub(super) type Artifacts = BTreeMap<String, BTreeMap<String, String>>;

/// Applies a step's material and product rules as in-toto does: each rule consumes
/// artifacts from a queue; DISALLOW fails on what is left that matches.
pub(super) fn check_rules(
    step: &Step,
    file: &str,
    link: &LinkPayload,
    links: &BTreeMap<&str, (String, LinkPayload)>,
    failures: &mut Vec<Failure>,
) {
    for (is_materials, rules, artifacts) in [
        (true, &step.materials, &link.materials),
        (false, &step.products, &link.products),
    ] {
        let mut queue: BTreeSet<&String> = artifacts.keys().collect();
        let mut matched_from: Vec<&str> = Vec::new();
        for rule in rules {
            let words: Vec<&str> = rule.iter().map(String::as_str).collect();
            let unsupported = || Failure::UnsupportedRule {
                step: step.name.clone(),
                rule: format!("{rule:?}"),
            };
            let consumed: Vec<&String> = match words.as_slice() {
                [
                    "MATCH",
                    pattern,
                    "WITH",
                    which @ ("MATERIALS" | "PRODUCTS"),
                    "FROM",
                    other,
                ] => {
                    matched_from.push(other);
                    let Some((_, source)) = links.get(other) else {
                        continue;
                    };
                    let dest: &Artifacts = if *which == "MATERIALS" {
                        &source.materials
                    } else {
                        &source.products
                    };
                    queue
                        .iter()
                        .copied()
                        .filter(|a| fnmatch(pattern, a) && dest.get(*a) == artifacts.get(*a))
                        .collect()
                }
                ["ALLOW", pattern] => queue
                    .iter()
                    .copied()
                    .filter(|a| fnmatch(pattern, a))
                    .collect(),
                ["CREATE", pattern] => queue
                    .iter()
                    .copied()
                    .filter(|a| {
                        fnmatch(pattern, a) && !is_materials && !link.materials.contains_key(*a)
                    })
                    .collect(),
                ["MODIFY", pattern] => queue
                    .iter()
                    .copied()
                    .filter(|a| {
                        fnmatch(pattern, a)
                            && link.materials.contains_key(*a)
                            && link.products.contains_key(*a)
                            && link.materials.get(*a) != link.products.get(*a)
                    })
                    .collect(),
                ["DELETE", pattern] => queue
                    .iter()
                    .copied()
                    .filter(|a| {
                        fnmatch(pattern, a) && is_materials && !link.products.contains_key(*a)
                    })
                    .collect(),
                ["REQUIRE", pattern] => {
                    if !artifacts.keys().any(|a| a == pattern) {
                        failures.push(Failure::Malformed {
                            file: file.to_owned(),
                            reason: format!("required artifact {pattern} is not recorded"),
                        });
                    }
                    continue;
                }
                ["DISALLOW", pattern] => {
                    for artifact in queue.iter().filter(|a| fnmatch(pattern, a)) {
                        let digest = sha256_of(artifacts.get(*artifact));
                        failures.push(if is_materials {
                            disallowed_material(step, file, artifact, &digest, &matched_from, links)
                        } else {
                            Failure::DisallowedProduct {
                                step: step.name.clone(),
                                file: file.to_owned(),
                                artifact: (*artifact).clone(),
                                digest,
                            }
                        });
                    }
                    continue;
                }
                _ => {
                    failures.push(unsupported());
                    continue;
                }
            };
            for artifact in consumed {
                queue.remove(artifact);
            }
        }
    }
}

fn disallowed_material(
    step: &Step,
    file: &str,
    artifact: &str,
    digest: &str,
    matched_from: &[&str],
    links: &BTreeMap<&str, (String, LinkPayload)>,
) -> Failure {
    for producer in matched_from {
        if let Some((_, link)) = links.get(producer)
            && let Some(produced) = link.products.get(artifact)
        {
            return Failure::MaterialMismatch {
                step: step.name.clone(),
                file: file.to_owned(),
                artifact: artifact.to_owned(),
                producer: (*producer).to_owned(),
                expected: sha256_of(Some(produced)),
                found: digest.to_owned(),
            };
        }
    }
    Failure::DisallowedMaterial {
        step: step.name.clone(),
        file: file.to_owned(),
        artifact: artifact.to_owned(),
        digest: digest.to_owned(),
    }
}

pub(super) fn sha256_of(hashes: Option<&BTreeMap<String, String>>) -> String {
    hashes
        .and_then(|h| h.get("sha256"))
        .cloned()
        .unwrap_or_else(|| "(none)".into())
}

/// Python's `fnmatch.fnmatch` on POSIX: `*` (also across `/`), `?`, `[seq]`, `[!seq]`.
fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
            continue;
        }
        if pi < p.len()
            && let Some((matched, width)) = match_one(&p[pi..], n[ni])
            && matched
        {
            pi += width;
            ni += 1;
            continue;
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether the pattern element at the start of `p` matches `c`, and its width.
fn match_one(p: &[char], c: char) -> Option<(bool, usize)> {
    match p.first()? {
        '?' => Some((true, 1)),
        '[' => {
            let mut i = 1;
            let negate = matches!(p.get(i), Some('!'));
            if negate {
                i += 1;
            }
            let start = i;
            let mut hit = false;
            while i < p.len() && (p[i] != ']' || i == start) {
                if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                    hit |= p[i] <= c && c <= p[i + 2];
                    i += 3;
                } else {
                    hit |= p[i] == c;
                    i += 1;
                }
            }
            if i >= p.len() {
                // No closing bracket: a literal '['.
                return Some((c == '[', 1));
            }
            Some((hit != negate, i + 1))
        }
        &literal => Some((literal == c, 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn fnmatch_is_pythons() {
        for (p, n, m) in [
            ("*", "a/b/c", true),
            ("/srv/assets/*", "/srv/assets/x/y.png", true),
            ("/srv/assets/*", "/srv/other", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[ab]x", "bx", true),
            ("[!ab]x", "bx", false),
            ("[a-c]", "b", true),
            ("x[", "x[", true),
            ("*.rs", "src/main.rs", true),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(fnmatch(p, n), m, "{p} vs {n}");
        }
    }
}
