//! Whether a step needs another, directly or not: the question the checker asks for every
//! `steps.<id>` an expression reads.
//!
//! Listing every step's ancestors is quadratic in a chain, so the answer is looked up
//! instead, in time that does not grow with the pipeline in the common shapes:
//!
//! 1. One depth-first walk over `needs` (Tarjan's algorithm, without recursion) groups the
//!    steps into strongly connected components, numbered so that a component only reaches
//!    components with a smaller number (a topological position, cycles included: the steps
//!    of a cycle reach each other).
//! 2. Negative filter: a step of component `c` can reach one of component `d` only if
//!    `d < c` and `low(c) <= low(d)`, where `low` is the smallest component number
//!    reachable (computed with the components).
//! 3. Positive shortcuts: a step reaches every step below it in the tree of the walk
//!    (pre-order intervals), and the steps it needs directly (sorted lists).
//! 4. Otherwise, a depth-first search from the step over `needs` that never enters a step
//!    the filter rules out, remembering its answers per (step, target): on success every
//!    step on the path reaches the target; on failure no visited step does.
//!
//! The walk starts from the last steps of the file, which usually are the ones nothing
//! needs, so a chain (each step needs the previous one) is one path of the tree and a fan-in
//! (one step needs all the others) one node with all the others below it: every question is
//! answered in constant time there, including a step reading one far back in the chain.
//!
//! Worst case, honestly: the search in 4 can visit every step between the target and the
//! asking step for each question that the filters and shortcuts leave open (the target
//! reachable only through edges outside the walk's tree, in a dense DAG whose `low` numbers
//! do not separate the two), so `R` such references in a DAG of `V` steps and `E` needs cost
//! `O(R * (V + E))`. Memoisation makes repeated questions about the same target cheap, but a
//! crafted file can still make checking quadratic. Building the structure is `O(V + E)`.

use std::collections::HashMap;

/// No value yet, for the walk's numbers.
const UNSET: usize = usize::MAX;

/// Answers "does step `i` need step `t`, directly or not?" for one pipeline's `needs`.
pub(crate) struct Reachability<'a> {
    needs: &'a [Vec<usize>],
    /// Each step's needs, sorted, for the direct test.
    sorted_needs: Vec<Vec<usize>>,
    /// The strongly connected component of each step.
    component: Vec<usize>,
    /// The number of steps of each component.
    component_size: Vec<usize>,
    /// The smallest component number reachable from each component (itself included).
    low: Vec<usize>,
    /// The pre-order number of each step in the walk.
    pre: Vec<usize>,
    /// The largest pre-order number below each step in the walk's tree (itself included).
    last: Vec<usize>,
    /// Answers found by searches, per (step, target).
    memo: HashMap<(usize, usize), bool>,
    /// Visit marks of the current search (`stamp`), so no mark is ever cleared.
    visited: Vec<u32>,
    stamp: u32,
}

impl<'a> Reachability<'a> {
    /// Prepares the answers for `needs` (the indices of the steps each step needs, without
    /// repeats or self-needs): `O(V + E)`.
    pub(crate) fn new(needs: &'a [Vec<usize>]) -> Reachability<'a> {
        let n = needs.len();
        let mut component = vec![UNSET; n];
        let mut component_size = Vec::new();
        let mut low = Vec::new();
        let mut pre = vec![UNSET; n];
        let mut last = vec![0; n];
        let mut lowlink = vec![0; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<usize> = Vec::new();
        // The walk's path: a step and how many of its needs were looked at.
        let mut path: Vec<(usize, usize)> = Vec::new();
        let mut counter = 0;
        for root in (0..n).rev() {
            if pre[root] != UNSET {
                continue;
            }
            pre[root] = counter;
            lowlink[root] = counter;
            counter += 1;
            stack.push(root);
            on_stack[root] = true;
            path.push((root, 0));
            while let Some(&mut (v, ref mut k)) = path.last_mut() {
                if let Some(&w) = needs[v].get(*k) {
                    *k += 1;
                    if pre[w] == UNSET {
                        pre[w] = counter;
                        lowlink[w] = counter;
                        counter += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        path.push((w, 0));
                    } else if on_stack[w] {
                        lowlink[v] = lowlink[v].min(pre[w]);
                    }
                    continue;
                }
                path.pop();
                last[v] = counter - 1;
                if let Some(&(parent, _)) = path.last() {
                    lowlink[parent] = lowlink[parent].min(lowlink[v]);
                }
                if lowlink[v] != pre[v] {
                    continue;
                }
                // `v` roots a component: its steps are on the stack above it. Every
                // component they reach is numbered already.
                let c = component_size.len();
                let mut members = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component[w] = c;
                    members.push(w);
                    if w == v {
                        break;
                    }
                }
                let mut smallest = c;
                for &w in &members {
                    for &x in &needs[w] {
                        if component[x] != c {
                            smallest = smallest.min(low[component[x]]);
                        }
                    }
                }
                component_size.push(members.len());
                low.push(smallest);
            }
        }
        let sorted_needs = needs
            .iter()
            .map(|n| {
                let mut sorted = n.clone();
                sorted.sort_unstable();
                sorted
            })
            .collect();
        Reachability {
            needs,
            sorted_needs,
            component,
            component_size,
            low,
            pre,
            last,
            memo: HashMap::new(),
            visited: vec![0; n],
            stamp: 0,
        }
    }

    /// Whether step `i` needs step `t`, directly or through other steps (around a cycle,
    /// a step needs itself).
    pub(crate) fn reaches(&mut self, i: usize, t: usize) -> bool {
        let target = self.component[t];
        if self.component[i] == target {
            return self.component_size[target] > 1;
        }
        if !self.may_reach(i, t) {
            return false;
        }
        if self.below(i, t) || self.sorted_needs[i].binary_search(&t).is_ok() {
            return true;
        }
        if let Some(&known) = self.memo.get(&(i, t)) {
            return known;
        }
        self.search(i, t)
    }

    /// The filter: `false` when step `x` certainly cannot reach step `t`.
    fn may_reach(&self, x: usize, t: usize) -> bool {
        let (from, to) = (self.component[x], self.component[t]);
        to < from && self.low[from] <= self.low[to]
    }

    /// Whether `t` is below `x` in the walk's tree (then `x` reaches it).
    fn below(&self, x: usize, t: usize) -> bool {
        self.pre[x] <= self.pre[t] && self.pre[t] <= self.last[x]
    }

    /// A depth-first search from `i` for `t` (in another component), remembering what it
    /// learnt.
    fn search(&mut self, i: usize, t: usize) -> bool {
        let target = self.component[t];
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.visited.fill(0);
            self.stamp = 1;
        }
        let stamp = self.stamp;
        self.visited[i] = stamp;
        let mut seen = vec![i];
        let mut path: Vec<(usize, usize)> = vec![(i, 0)];
        let mut found = false;
        while let Some(&mut (x, ref mut k)) = path.last_mut() {
            let Some(&y) = self.needs[x].get(*k) else {
                path.pop();
                continue;
            };
            *k += 1;
            if self.visited[y] == stamp {
                continue;
            }
            self.visited[y] = stamp;
            seen.push(y);
            let known = self.memo.get(&(y, t)).copied();
            if self.component[y] == target || self.below(y, t) || known == Some(true) {
                found = true;
                break;
            }
            if known == Some(false) || !self.may_reach(y, t) {
                continue;
            }
            path.push((y, 0));
        }
        if found {
            for (x, _) in path {
                self.memo.insert((x, t), true);
            }
        } else {
            for x in seen {
                self.memo.insert((x, t), false);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every step `i` needs, directly or not, the slow and obvious way.
    fn ancestors(i: usize, needs: &[Vec<usize>]) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<usize> = needs[i].clone();
        while let Some(n) = todo.pop() {
            if seen.insert(n) {
                todo.extend(needs[n].iter().copied());
            }
        }
        seen
    }

    fn assert_same_as_ancestors(needs: &[Vec<usize>]) {
        let mut reach = Reachability::new(needs);
        for i in 0..needs.len() {
            let expected = ancestors(i, needs);
            for t in 0..needs.len() {
                assert_eq!(
                    reach.reaches(i, t),
                    expected.contains(&t),
                    "does {i} reach {t}? needs: {needs:?}"
                );
            }
        }
    }

    #[test]
    fn chains_fans_and_cycles() {
        assert_same_as_ancestors(&[vec![], vec![0], vec![1], vec![2]]);
        assert_same_as_ancestors(&[vec![], vec![], vec![], vec![0, 1, 2]]);
        assert_same_as_ancestors(&[vec![1, 2, 3], vec![], vec![], vec![]]);
        assert_same_as_ancestors(&[vec![1], vec![2], vec![0], vec![0], vec![3]]);
        assert_same_as_ancestors(&[vec![1], vec![2], vec![1]]);
        // A diamond and a step beside it.
        assert_same_as_ancestors(&[vec![], vec![0], vec![0], vec![1, 2], vec![]]);
    }

    #[test]
    fn random_graphs_agree_with_the_obvious_answer() {
        let mut next = crate::testing::xorshift(0x2545_F491_4F6C_DD1D);
        for round in 0..300 {
            let n = 1 + next(30);
            let cyclic = round % 3 == 0;
            let needs: Vec<Vec<usize>> = (0..n)
                .map(|i| {
                    let mut mine = Vec::new();
                    for _ in 0..next(4) {
                        let candidate = if cyclic { next(n) } else { next(i.max(1)) };
                        if candidate != i && (cyclic || candidate < i) && !mine.contains(&candidate)
                        {
                            mine.push(candidate);
                        }
                    }
                    mine
                })
                .collect();
            assert_same_as_ancestors(&needs);
        }
    }

    #[test]
    fn long_chains_are_walked_without_recursion() {
        let n = 200_000;
        let needs: Vec<Vec<usize>> = (0..n)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        let mut reach = Reachability::new(&needs);
        assert!(reach.reaches(n - 1, 0));
        assert!(reach.reaches(n / 2, n / 4));
        assert!(!reach.reaches(0, n - 1));
        // Each step needs the next one instead: the walk starts from the other end.
        let needs: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 == n { vec![] } else { vec![i + 1] })
            .collect();
        let mut reach = Reachability::new(&needs);
        assert!(reach.reaches(0, n - 1));
        assert!(!reach.reaches(n - 1, 0));
    }
}
