//! Foreign-key load order: parents before children, and the cycles that make a
//! strict order impossible.
//!
//! Pure graph code over names, so it is unit-tested without a database.

use std::collections::HashMap;
use std::hash::Hash;

/// The result of ordering: every table once, parents first; members of a cycle
/// are adjacent, and each cycle is listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOrder<T> {
    pub order: Vec<T>,
    /// Groups of two or more tables that reference each other in a cycle.
    pub cycles: Vec<Vec<T>>,
    /// Tables with a foreign key to themselves.
    pub self_referencing: Vec<T>,
}

/// Orders `tables` so that for every edge `(child, parent)` among them the
/// parent comes first. Edges to tables outside `tables` are ignored. Ties keep
/// the order of `tables`, so a sorted input gives a deterministic output.
pub fn order_tables<T: Clone + Eq + Hash>(tables: &[T], edges: &[(T, T)]) -> LoadOrder<T> {
    let pos: HashMap<&T, usize> = tables.iter().enumerate().map(|(i, t)| (t, i)).collect();
    let n = tables.len();
    // parents[i] = tables that i references.
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut self_ref = vec![false; n];
    for (child, parent) in edges {
        if let (Some(&c), Some(&p)) = (pos.get(child), pos.get(parent)) {
            if c == p {
                self_ref[c] = true;
            } else if !parents[c].contains(&p) {
                parents[c].push(p);
            }
        }
    }

    let comps = strongly_connected(&parents);
    let mut comp_of = vec![0usize; n];
    for (ci, comp) in comps.iter().enumerate() {
        for &v in comp {
            comp_of[v] = ci;
        }
    }

    // Kahn's algorithm over components, always taking the ready component whose
    // smallest member comes first in the input.
    let nc = comps.len();
    let mut pending_parents = vec![0usize; nc];
    let mut children_of: Vec<Vec<usize>> = vec![Vec::new(); nc];
    for c in 0..n {
        for &p in &parents[c] {
            let (cc, pc) = (comp_of[c], comp_of[p]);
            if cc != pc && !children_of[pc].contains(&cc) {
                children_of[pc].push(cc);
                pending_parents[cc] += 1;
            }
        }
    }
    // A heap of (smallest member, component): ten thousand tables must not
    // cost a sort of the ready list per table.
    use std::cmp::Reverse;
    let key = |ci: usize| comps[ci].iter().copied().min().unwrap_or(usize::MAX);
    let mut ready: std::collections::BinaryHeap<Reverse<(usize, usize)>> =
        (0..nc).filter(|&c| pending_parents[c] == 0).map(|c| Reverse((key(c), c))).collect();
    let mut order = Vec::with_capacity(n);
    let mut cycles = Vec::new();
    while let Some(Reverse((_, ci))) = ready.pop() {
        let mut members = comps[ci].clone();
        members.sort_unstable();
        if members.len() > 1 {
            cycles.push(members.iter().map(|&v| tables[v].clone()).collect());
        }
        order.extend(members.iter().map(|&v| tables[v].clone()));
        for &child in &children_of[ci] {
            pending_parents[child] -= 1;
            if pending_parents[child] == 0 {
                ready.push(Reverse((key(child), child)));
            }
        }
    }
    LoadOrder {
        order,
        cycles,
        self_referencing: (0..n).filter(|&i| self_ref[i]).map(|i| tables[i].clone()).collect(),
    }
}

/// Tarjan's strongly connected components, iterative so deep FK chains cannot
/// overflow the stack.
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut comps = Vec::new();
    let mut next = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut ei)) = call.last_mut() {
            if *ei < edges[v].len() {
                let w = edges[v][*ei];
                *ei += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    comps.push(comp);
                }
            }
        }
    }
    comps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(c: &'static str, p: &'static str) -> (&'static str, &'static str) {
        (c, p)
    }

    #[test]
    fn parents_come_first() {
        let tables = ["RoleAssignment", "Role", "User", "UserPermission", "Permission"];
        let edges = [
            e("RoleAssignment", "Role"),
            e("RoleAssignment", "User"),
            e("UserPermission", "User"),
            e("UserPermission", "Permission"),
        ];
        let o = order_tables(&tables, &edges);
        let pos = |t| o.order.iter().position(|x| *x == t).unwrap();
        for (c, p) in edges {
            assert!(pos(p) < pos(c), "{p} before {c}: {:?}", o.order);
        }
        assert!(o.cycles.is_empty());
        assert_eq!(o.order.len(), 5);
    }

    #[test]
    fn ignores_unselected_parents_and_keeps_input_order_on_ties() {
        let o = order_tables(&["b", "a"], &[e("b", "zzz")]);
        assert_eq!(o.order, vec!["b", "a"]);
    }

    #[test]
    fn finds_cycles_and_self_references() {
        let tables = ["a", "b", "c", "d", "s"];
        let edges = [e("a", "b"), e("b", "c"), e("c", "a"), e("d", "a"), e("s", "s")];
        let o = order_tables(&tables, &edges);
        assert_eq!(o.cycles, vec![vec!["a", "b", "c"]]);
        assert_eq!(o.self_referencing, vec!["s"]);
        assert_eq!(o.order.len(), 5);
        let pos = |t| o.order.iter().position(|x| *x == t).unwrap();
        assert!(pos("a") < pos("d"));
    }

    #[test]
    fn long_chain_does_not_overflow() {
        let names: Vec<String> = (0..20_000).map(|i| format!("t{i}")).collect();
        let edges: Vec<(String, String)> =
            (1..names.len()).map(|i| (names[i - 1].clone(), names[i].clone())).collect();
        let o = order_tables(&names, &edges);
        assert_eq!(o.order.first(), Some(&names[names.len() - 1]));
        assert!(o.cycles.is_empty());
    }
}
