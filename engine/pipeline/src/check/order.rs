//! The order of a dependency graph (`needs[i]`: the steps step `i` needs): a topological
//! order that keeps the file order between independent steps, and the cycles that prevent
//! one. Plain graph algorithms, without diagnostics.

use std::collections::BTreeSet;

/// The steps that need each step directly, ascending.
pub(super) fn dependents(needs: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); needs.len()];
    for (d, step_needs) in needs.iter().enumerate() {
        for &n in step_needs {
            out[n].push(d);
        }
    }
    out
}

/// Kahn's algorithm, always taking the ready step that comes first in the file. Returns the
/// order and the steps left out (those on or behind a cycle).
pub(super) fn topological_order(needs: &[Vec<usize>]) -> (Vec<usize>, BTreeSet<usize>) {
    let dependents = dependents(needs);
    let mut missing: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut ready: BTreeSet<usize> = (0..needs.len()).filter(|&i| missing[i] == 0).collect();
    let mut order = Vec::with_capacity(needs.len());
    let mut placed = vec![false; needs.len()];
    while let Some(i) = ready.pop_first() {
        order.push(i);
        placed[i] = true;
        for &d in &dependents[i] {
            missing[d] -= 1;
            if missing[d] == 0 {
                ready.insert(d);
            }
        }
    }
    let remaining = (0..needs.len()).filter(|&i| !placed[i]).collect();
    (order, remaining)
}

/// The dependency cycles among `remaining` (the steps Kahn's algorithm left out), in the
/// order they are reported: the first cycle found by following, from the first such step in
/// the file, the first need of each step that is still left out; then the same again
/// without the steps of the cycles already found. Each cycle starts at its step that comes
/// first in the file; each of its steps needs the next, the last needs the first.
///
/// Every step left out needs another one left out, so a walk either comes back to a step
/// of its path (a cycle) or, once cycles were removed, ends at a step whose needs are all
/// gone. Such a dead end stays one, and after a cycle is removed the walk from the same
/// start goes through the same steps up to where the cycle began: the walk goes on from
/// there, and each step and each need is looked at a bounded number of times (linear).
pub(super) fn cycles(needs: &[Vec<usize>], remaining: &BTreeSet<usize>) -> Vec<Vec<usize>> {
    const OFF_PATH: usize = usize::MAX;
    let n = needs.len();
    let mut left = vec![false; n];
    for &i in remaining {
        left[i] = true;
    }
    let mut dead = vec![false; n];
    // Where each step is on the path, if it is.
    let mut at = vec![OFF_PATH; n];
    // How many of each step's needs are known to be gone.
    let mut skipped = vec![0; n];
    let mut starts = remaining.iter().copied();
    let mut path: Vec<usize> = Vec::new();
    let mut found = Vec::new();
    loop {
        let Some(&current) = path.last() else {
            let Some(start) = starts.find(|&s| left[s] && !dead[s]) else {
                break;
            };
            at[start] = 0;
            path.push(start);
            continue;
        };
        while skipped[current] < needs[current].len() && !left[needs[current][skipped[current]]] {
            skipped[current] += 1;
        }
        let next = needs[current].get(skipped[current]).copied();
        match next {
            Some(next) if at[next] != OFF_PATH => {
                let mut cycle = path.split_off(at[next]);
                for &step in &cycle {
                    at[step] = OFF_PATH;
                    left[step] = false;
                }
                if let Some(min_at) = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| **s)
                    .map(|(k, _)| k)
                {
                    cycle.rotate_left(min_at);
                }
                found.push(cycle);
            }
            Some(next) if !dead[next] => {
                at[next] = path.len();
                path.push(next);
            }
            // A dead end, or a step whose walk leads to one: so does every step of the path.
            _ => {
                for step in path.drain(..) {
                    at[step] = OFF_PATH;
                    dead[step] = true;
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keeps_file_order_between_independent_steps() {
        // 0 needs 2, 1 needs nothing, 2 needs nothing, 3 needs 0 and 1.
        let needs = vec![vec![2], vec![], vec![], vec![0, 1]];
        let (order, remaining) = topological_order(&needs);
        assert_eq!(order, [1, 2, 0, 3]);
        assert!(remaining.is_empty());
    }

    #[test]
    fn cycles_are_found_and_named_in_order() {
        // 0 -> 1 -> 2 -> 0, and 3 needs 0 (behind the cycle, not on it).
        let needs = vec![vec![1], vec![2], vec![0], vec![0]];
        let (order, remaining) = topological_order(&needs);
        assert!(order.is_empty());
        assert_eq!(cycles(&needs, &remaining), [vec![0, 1, 2]]);
        let needs = vec![vec![], vec![3], vec![1], vec![2]];
        let (order, remaining) = topological_order(&needs);
        assert_eq!(order, [0]);
        assert_eq!(cycles(&needs, &remaining), [vec![1, 3, 2]]);
    }

    #[test]
    fn a_step_behind_a_cycle_is_not_on_it() {
        let needs = vec![vec![1], vec![2], vec![1]];
        let (_, remaining) = topological_order(&needs);
        assert_eq!(cycles(&needs, &remaining), [vec![1, 2]]);
    }

    /// The cycles as first reported: each one found by a new walk from the first step left.
    fn cycles_one_walk_at_a_time(
        needs: &[Vec<usize>],
        remaining: &BTreeSet<usize>,
    ) -> Vec<Vec<usize>> {
        let mut remaining = remaining.clone();
        let mut found = Vec::new();
        'search: loop {
            for &start in &remaining {
                let mut path = vec![start];
                let mut current = start;
                while let Some(&next) = needs[current].iter().find(|n| remaining.contains(n)) {
                    if let Some(at) = path.iter().position(|&p| p == next) {
                        let mut cycle = path.split_off(at);
                        let min_at = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
                        cycle.rotate_left(min_at);
                        for step in &cycle {
                            remaining.remove(step);
                        }
                        found.push(cycle);
                        continue 'search;
                    }
                    path.push(next);
                    current = next;
                }
            }
            return found;
        }
    }

    #[test]
    fn cycles_are_those_of_one_walk_at_a_time() {
        let mut next = crate::testing::xorshift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..500 {
            let n = 1 + next(25);
            let needs: Vec<Vec<usize>> = (0..n)
                .map(|i| {
                    let mut mine = Vec::new();
                    for _ in 0..next(4) {
                        let candidate = next(n);
                        if candidate != i && !mine.contains(&candidate) {
                            mine.push(candidate);
                        }
                    }
                    mine
                })
                .collect();
            let (_, remaining) = topological_order(&needs);
            assert_eq!(
                cycles(&needs, &remaining),
                cycles_one_walk_at_a_time(&needs, &remaining),
                "{needs:?}"
            );
        }
    }

    #[test]
    fn a_long_tail_before_many_cycles_is_walked_once() {
        // 0 -> 1 -> ... -> k, and k needs the first step of many two-step cycles.
        let k = 50_000;
        let mut needs: Vec<Vec<usize>> = (0..k).map(|i| vec![i + 1]).collect();
        needs.push(Vec::new());
        for _ in 0..k {
            let a = needs.len();
            needs[k].push(a);
            needs.push(vec![a + 1]);
            needs.push(vec![a]);
        }
        let (order, remaining) = topological_order(&needs);
        assert!(order.is_empty());
        let found = cycles(&needs, &remaining);
        assert_eq!(found.len(), k);
        assert_eq!(found[0], [k + 1, k + 2]);
    }
}
