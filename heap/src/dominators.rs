//! The dominator tree of a heap's object graph, and what it answers: how
//! much memory each object keeps alive (its retained size, as Eclipse MAT
//! defines it) and how much each class keeps alive. An object dominates
//! another when every path from the GC roots to the other passes through it;
//! freeing it would free everything it dominates.
//!
//! A dump of a 1 GB heap has some 25 million objects and 40 million
//! references, so everything here works on flat `u32` arrays, frees each as
//! soon as it can, and never recurses (a linked list makes chains of
//! millions of nodes). Arrays that large miss the caches on nearly every
//! random access, and a miss that waits for another costs several times one
//! that does not: loops are arranged so that their random accesses are
//! independent of each other where the algorithm allows, and data read
//! together is stored together. The depth-first search cannot be arranged
//! so (each step waits for the last), and is most of the time when the
//! numbering of the nodes follows the heap's layout poorly.
//!
//! Immediate dominators come from Semi-NCA (Georgiadis's simplification of
//! Lengauer and Tarjan): semidominators by path-compressed evaluation over
//! the depth-first tree, then each immediate dominator as the nearest common
//! ancestor, in the dominator tree built so far, of the node's tree parent
//! and its semidominator. That search climbs by skew-binary jump pointers,
//! so a deep tree cannot make it quadratic.

/// A directed graph in compressed sparse row form: the successors of node v
/// are targets[offsets[v] as usize .. offsets[v + 1] as usize].
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Where each node's successors start in `targets`: n + 1 entries,
    /// non-decreasing, `offsets[0] == 0` and `offsets[n] == targets.len()`.
    pub offsets: Vec<u32>,
    /// The successors of all nodes, node after node; each is below n.
    pub targets: Vec<u32>,
}

impl Graph {
    /// Number of nodes: one less than the number of offsets.
    pub fn node_count(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// The successors of node `v`, as stored (duplicates and self-loops
    /// allowed).
    pub fn successors(&self, v: u32) -> &[u32] {
        let v = v as usize;
        &self.targets[self.offsets[v] as usize..self.offsets[v + 1] as usize]
    }
}

/// Marks a node with no immediate dominator (the root, and nodes the root does not reach).
pub const NONE: u32 = u32::MAX;

/// The dominator tree of the nodes a root reaches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dominators {
    /// Immediate dominator of every node; NONE for the root and for unreachable nodes.
    pub idom: Vec<u32>,
    /// Nodes reachable from the root, in DFS preorder (root first): every node comes after its immediate dominator.
    pub preorder: Vec<u32>,
}

/// Marks the first entry of each node's group in the predecessor lists,
/// which need no offsets: nodes are handled in order, and their groups lie
/// in order.
const FIRST: u32 = 1 << 31;

/// Immediate dominators of every node reachable from `root`.
///
/// Takes about three `u32` per node and one per edge at its peak, besides
/// the graph and the result. Panics if `root` is not a node, if a target is
/// not a node, if the last offset is not the number of targets, or if the
/// root reaches 2^31 nodes or more.
pub fn dominators(graph: &Graph, root: u32) -> Dominators {
    let n = graph.node_count();
    assert!(
        n <= NONE as usize,
        "{n} nodes: node numbers must fit in a u32 below NONE"
    );
    assert!(
        (root as usize) < n,
        "root {root} is not a node of a graph of {n} nodes"
    );
    assert_eq!(
        graph.offsets[n] as usize,
        graph.targets.len(),
        "the last offset must be the number of targets"
    );

    // Everything below works on DFS numbers: the root is 0, and a node's
    // DFS ancestors (its dominators among them) have smaller numbers. Each
    // step keeps only what the next ones need: the tree parents travel in
    // the predecessor lists, and the node of each number is made again from
    // the numbers once these are no longer needed.
    let Search {
        number,
        parent,
        scratch,
    } = depth_first(graph, root);
    let reached = parent.len();
    assert!(
        reached < FIRST as usize,
        "the root reaches {reached} nodes; at most 2^31 - 1 are supported"
    );
    let mut preds = predecessors(graph, &number, parent, scratch);
    let mut vertex = vec![0u32; reached];
    for (v, &d) in number.iter().enumerate() {
        if d != NONE {
            vertex[d as usize] = v as u32;
        }
    }
    drop(number);

    let mut forest = vec![
        Link {
            ancestor: NONE,
            best: 0,
        };
        reached
    ];
    for (link, &entry) in forest[1..]
        .iter_mut()
        .zip(preds.iter().filter(|&&entry| entry & FIRST != 0))
    {
        link.ancestor = entry & !FIRST;
    }
    semidominators(&mut preds, &mut forest);
    drop(forest);

    let mut idom = vec![NONE; reached];
    let mut semi = vec![0u32; reached];
    let mut w = 0;
    for (i, &entry) in preds.iter().enumerate() {
        if entry & FIRST != 0 {
            w += 1;
            idom[w] = entry & !FIRST;
            semi[w] = match preds.get(i + 1) {
                Some(&next) if next & FIRST == 0 => next,
                _ => idom[w],
            };
        }
    }
    drop(preds);
    nearest_common_ancestors(&mut idom, semi);

    let mut idom_of = vec![NONE; n];
    for d in 1..reached {
        idom_of[vertex[d] as usize] = vertex[idom[d] as usize];
    }
    drop(idom);
    Dominators {
        idom: idom_of,
        preorder: vertex,
    }
}

/// Retained size of every node: its own shallow size plus that of every node it dominates. 0 for unreachable nodes.
///
/// `shallow` has one entry per node of the graph `doms` was computed on.
pub fn retained_sizes(doms: &Dominators, shallow: &[u32]) -> Vec<u64> {
    assert_eq!(
        shallow.len(),
        doms.idom.len(),
        "one shallow size per node is needed"
    );
    let mut retained = vec![0u64; shallow.len()];
    // Backwards, each node is complete before it is added to its dominator.
    for &v in doms.preorder.iter().rev() {
        let v = v as usize;
        let size = retained[v] + u64::from(shallow[v]);
        retained[v] = size;
        let d = doms.idom[v];
        if d != NONE {
            retained[d as usize] += size;
        }
    }
    retained
}

/// Retained size per class: for each class, the sum of retained sizes of its objects that are not dominated (transitively, through the dominator tree) by another object of the same class. `class_of[v]` is node v's class index (< classes); nodes with class_of == NONE (e.g. the virtual root) belong to no class.
///
/// `retained` is what [`retained_sizes`] gave for `doms`. Takes two `u32`
/// per node besides the result, and one per level of the dominator tree.
pub fn retained_per_class(
    doms: &Dominators,
    retained: &[u64],
    class_of: &[u32],
    classes: usize,
) -> Vec<u64> {
    let n = doms.idom.len();
    assert_eq!(retained.len(), n, "one retained size per node is needed");
    assert_eq!(class_of.len(), n, "one class per node is needed");
    let mut total = vec![0u64; classes];
    // In preorder of the dominator tree, the path from the root to a node
    // is the path to the node before, cut back to the node's dominator. A
    // node counts when no node of its class is on the path above it.
    let mut on_path = vec![0u32; classes];
    let mut path: Vec<u32> = Vec::new();
    for v in dominator_tree_preorder(doms) {
        let d = doms.idom[v as usize];
        while let Some(&above) = path.last() {
            if above == d {
                break;
            }
            path.pop();
            let class = class_of[above as usize];
            if class != NONE {
                on_path[class as usize] -= 1;
            }
        }
        let class = class_of[v as usize];
        if class != NONE {
            let c = class as usize;
            if on_path[c] == 0 {
                total[c] += retained[v as usize];
            }
            on_path[c] += 1;
        }
        path.push(v);
    }
    total
}

/// The reached nodes in a preorder of the dominator tree, where each node's
/// dominated nodes follow it together (the DFS preorder does not keep them
/// together). Built from the subtree sizes, by random accesses that do not
/// wait for each other, rather than by walking the tree.
fn dominator_tree_preorder(doms: &Dominators) -> Vec<u32> {
    let Some(&root) = doms.preorder.first() else {
        return Vec::new();
    };
    // The size of each node's subtree, children before their dominator.
    let mut slot = vec![0u32; doms.idom.len()];
    for &v in doms.preorder.iter().rev() {
        let size = slot[v as usize] + 1;
        slot[v as usize] = size;
        let d = doms.idom[v as usize];
        if d != NONE {
            slot[d as usize] += size;
        }
    }
    // Each subtree takes a range that starts with its top; its children's
    // ranges fill the rest from the end. Once a node is placed, its slot
    // holds where the range of its next child ends.
    let mut order = vec![0u32; doms.preorder.len()];
    order[0] = root;
    for &v in &doms.preorder[1..] {
        let d = doms.idom[v as usize] as usize;
        let size = slot[v as usize];
        let start = slot[d] - size;
        slot[d] = start;
        order[start as usize] = v;
        slot[v as usize] = start + size;
    }
    order
}

/// A depth-first search from the root, numbering the nodes in preorder.
struct Search {
    /// DFS number of every node; NONE for those not reached.
    number: Vec<u32>,
    /// The DFS number of the tree parent of every DFS number; NONE for the root.
    parent: Vec<u32>,
    /// One spare entry per DFS number (it held where the search was in
    /// each node's edges).
    scratch: Vec<u32>,
}

/// Numbers the nodes `root` reaches in depth-first preorder. The path back
/// up is the tree itself (`parent`), and where each node's edges are up to is
/// kept by DFS number, so the search needs no stack.
fn depth_first(graph: &Graph, root: u32) -> Search {
    let n = graph.node_count();
    let (offsets, targets) = (&graph.offsets, &graph.targets);
    let mut number = vec![NONE; n];
    let mut vertex = Vec::with_capacity(n);
    let mut parent = Vec::with_capacity(n);
    let mut cursor = Vec::with_capacity(n);
    number[root as usize] = 0;
    vertex.push(root);
    parent.push(NONE);
    cursor.push(offsets[root as usize]);
    let mut at = 0u32;
    loop {
        let end = offsets[vertex[at as usize] as usize + 1];
        let mut edge = cursor[at as usize];
        let mut found = NONE;
        while edge < end {
            let t = targets[edge as usize];
            edge += 1;
            if number[t as usize] == NONE {
                found = t;
                break;
            }
        }
        cursor[at as usize] = edge;
        if found != NONE {
            let d = vertex.len() as u32;
            number[found as usize] = d;
            vertex.push(found);
            parent.push(at);
            cursor.push(offsets[found as usize]);
            at = d;
        } else if at == 0 {
            break;
        } else {
            at = parent[at as usize];
        }
    }
    Search {
        number,
        parent,
        scratch: cursor,
    }
}

/// The predecessors of every reached node but the root, as DFS numbers,
/// grouped by node in DFS order. Each group starts with the node's tree
/// parent (there is one), marked with [`FIRST`]. Edges into the root are
/// left out (nothing dominates it). `group`, one entry per DFS number, is
/// used up.
fn predecessors(graph: &Graph, number: &[u32], parent: Vec<u32>, mut group: Vec<u32>) -> Vec<u32> {
    // Node order reads the graph front to back; all a reached node's
    // successors are reached.
    group.fill(0);
    for (v, &source) in number.iter().enumerate() {
        if source != NONE {
            for &t in graph.successors(v as u32) {
                group[number[t as usize] as usize] += 1;
            }
        }
    }
    group[0] = 0;
    // Where each group ends; filling it backwards leaves where it starts.
    let mut sum = 0u32;
    for count in group.iter_mut() {
        sum += *count;
        *count = sum;
    }
    let mut preds = vec![0u32; sum as usize];
    for (v, &source) in number.iter().enumerate() {
        if source != NONE {
            for &t in graph.successors(v as u32) {
                let d = number[t as usize] as usize;
                if d != 0 {
                    group[d] -= 1;
                    preds[group[d] as usize] = source;
                }
            }
        }
    }
    for d in 1..group.len() {
        let start = group[d] as usize;
        let end = group.get(d + 1).map_or(preds.len(), |&e| e as usize);
        let at = preds[start..end]
            .iter()
            .position(|&p| p == parent[d])
            .expect("the tree parent is a predecessor");
        preds.swap(start, start + at);
        preds[start] |= FIRST;
    }
    preds
}

/// A DFS number in the forest of the evaluation: its parent there, and the
/// least semidominator on its path up to, not including, that parent.
/// Read together, so kept together.
#[derive(Clone, Copy)]
struct Link {
    ancestor: u32,
    best: u32,
}

/// The semidominator of every DFS number but the root's, from the last to
/// the first. Once a group of predecessors is handled only its first entry
/// (the tree parent) is needed again: the semidominator goes into the second
/// entry, if there is one (with none, it is the parent). `forest` starts
/// with every DFS number linked to its tree parent.
///
/// When node w is handled, the nodes numbered above it are in the forest,
/// linked to their tree parents. A predecessor numbered below w is a
/// candidate itself; one above it offers the least semidominator on its
/// forest path up to the first node numbered w or below.
fn semidominators(preds: &mut [u32], forest: &mut [Link]) {
    let mut end = preds.len();
    // What the reads ahead found, kept only so that they are not left out.
    let mut ahead = 0u32;
    for w in (1..forest.len() as u32).rev() {
        let group_end = end;
        let mut semi = w;
        loop {
            end -= 1;
            // Read the link of a predecessor further on now: its cache miss
            // overlaps with the work in between instead of stalling later.
            if let Some(&further) = preds.get(end.wrapping_sub(READ_AHEAD)) {
                ahead ^= forest[(further & !FIRST) as usize].ancestor;
            }
            let entry = preds[end];
            let v = entry & !FIRST;
            let candidate = if v <= w { v } else { evaluate(forest, v, w) };
            semi = semi.min(candidate);
            if entry & FIRST != 0 {
                break;
            }
        }
        if end + 1 < group_end {
            preds[end + 1] = semi;
        }
        forest[w as usize].best = semi;
    }
    std::hint::black_box(ahead);
}

/// How many predecessors ahead [`semidominators`] reads.
const READ_AHEAD: usize = 16;

/// The least semidominator on the forest path from `v` (numbered above `w`)
/// up to, not including, its first ancestor numbered `w` or below. The path
/// is compressed: each node on it is linked straight to that ancestor, its
/// `best` the least on the way. The climb reverses the links it follows and
/// the descent restores them, so it needs no stack however long the path.
fn evaluate(forest: &mut [Link], v: u32, w: u32) -> u32 {
    let mut below = NONE;
    let mut x = v;
    let mut up = forest[x as usize].ancestor;
    while up > w {
        forest[x as usize].ancestor = below;
        below = x;
        x = up;
        up = forest[x as usize].ancestor;
    }
    // `x` is the top of the path, `up` the ancestor beyond it.
    let mut least = forest[x as usize].best;
    while below != NONE {
        let y = &mut forest[below as usize];
        below = y.ancestor;
        y.ancestor = up;
        if least < y.best {
            y.best = least;
        } else {
            least = y.best;
        }
    }
    forest[v as usize].best
}

/// Turns `idom`, given as the tree parents, into immediate dominators: that
/// of w is the nearest ancestor of its tree parent, in the dominator tree
/// built so far, numbered no more than its semidominator. Dominator tree
/// ancestors have decreasing numbers, so skew-binary jump pointers find it
/// in logarithmic time. Once w is handled its semidominator is not needed
/// again, and its entry in `level` holds its depth in the tree instead.
fn nearest_common_ancestors(idom: &mut [u32], semi: Vec<u32>) {
    let mut level = semi;
    let mut jump = vec![0u32; idom.len()];
    level[0] = 0;
    for w in 1..idom.len() {
        let s = level[w];
        let mut x = idom[w];
        while x > s {
            let j = jump[x as usize];
            x = if j > s { j } else { idom[x as usize] };
        }
        idom[w] = x;
        let x = x as usize;
        let depth = |v: usize| level[v];
        let j = jump[x] as usize;
        jump[w] = if depth(x) - depth(j) == depth(j) - depth(jump[j] as usize) {
            jump[j]
        } else {
            x as u32
        };
        level[w] = level[x] + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph of `n` nodes with these edges.
    fn graph(n: usize, edges: &[(u32, u32)]) -> Graph {
        let mut offsets = vec![0u32; n + 1];
        for &(from, _) in edges {
            offsets[from as usize + 1] += 1;
        }
        for v in 0..n {
            offsets[v + 1] += offsets[v];
        }
        let mut next = offsets.clone();
        let mut targets = vec![0; edges.len()];
        for &(from, to) in edges {
            targets[next[from as usize] as usize] = to;
            next[from as usize] += 1;
        }
        Graph { offsets, targets }
    }

    /// Checks that `preorder` holds exactly the nodes with an immediate
    /// dominator, plus the root first, each after its dominator.
    fn check_preorder(doms: &Dominators, root: u32) {
        assert_eq!(doms.preorder.first(), Some(&root));
        assert_eq!(doms.idom[root as usize], NONE);
        let mut position = vec![NONE; doms.idom.len()];
        for (i, &v) in doms.preorder.iter().enumerate() {
            assert_eq!(position[v as usize], NONE, "{v} twice in preorder");
            position[v as usize] = i as u32;
        }
        for (v, &d) in doms.idom.iter().enumerate() {
            if d != NONE {
                assert!(position[d as usize] < position[v], "{v} before {d}");
            } else if v as u32 != root {
                assert_eq!(position[v], NONE, "{v} reached without dominator");
            }
        }
    }

    #[test]
    fn chain() {
        let g = graph(4, &[(0, 1), (1, 2), (2, 3)]);
        let doms = dominators(&g, 0);
        assert_eq!(doms.idom, [NONE, 0, 1, 2]);
        assert_eq!(doms.preorder, [0, 1, 2, 3]);
        assert_eq!(retained_sizes(&doms, &[1, 2, 3, 4]), [10, 9, 7, 4]);
    }

    #[test]
    fn diamond_is_dominated_by_its_top() {
        let g = graph(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]);
        let doms = dominators(&g, 0);
        assert_eq!(doms.idom, [NONE, 0, 0, 0]);
        check_preorder(&doms, 0);
        let retained = retained_sizes(&doms, &[1, 10, 100, 1000]);
        assert_eq!(retained, [1111, 10, 100, 1000]);
    }

    #[test]
    fn cycles() {
        // A cycle below the root, entered at 1.
        let g = graph(4, &[(0, 1), (1, 2), (2, 3), (3, 1)]);
        let doms = dominators(&g, 0);
        assert_eq!(doms.idom, [NONE, 0, 1, 2]);
        assert_eq!(retained_sizes(&doms, &[1, 1, 1, 1]), [4, 3, 2, 1]);
        // A cycle through the root.
        let g = graph(3, &[(0, 1), (1, 2), (2, 0)]);
        assert_eq!(dominators(&g, 0).idom, [NONE, 0, 1]);
        // A cycle entered at two places: neither entry dominates the other.
        let g = graph(4, &[(0, 1), (0, 2), (1, 2), (2, 1), (1, 3), (2, 3)]);
        assert_eq!(dominators(&g, 0).idom, [NONE, 0, 0, 0]);
    }

    #[test]
    fn shared_children_and_private_ones() {
        // 3 is shared by 1 and 2; 4 and 5 are reachable only through 1.
        let g = graph(6, &[(0, 1), (0, 2), (1, 3), (2, 3), (1, 4), (4, 5)]);
        let doms = dominators(&g, 0);
        assert_eq!(doms.idom, [NONE, 0, 0, 0, 1, 4]);
        check_preorder(&doms, 0);
        let retained = retained_sizes(&doms, &[0, 1, 2, 4, 8, 16]);
        assert_eq!(retained, [31, 25, 2, 4, 24, 16]);
    }

    #[test]
    fn the_lengauer_tarjan_example() {
        // R A B C D E F G H I J K L
        // 0 1 2 3 4 5 6 7 8 9 10 11 12
        let (r, a, b, c, d, e, f, g, h, i, j, k, l) = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
        let edges = [
            (r, a),
            (r, b),
            (r, c),
            (a, d),
            (b, a),
            (b, d),
            (b, e),
            (c, f),
            (c, g),
            (d, l),
            (e, h),
            (f, i),
            (g, i),
            (g, j),
            (h, e),
            (h, k),
            (i, k),
            (j, i),
            (k, i),
            (k, r),
            (l, h),
        ];
        let doms = dominators(&graph(13, &edges), r);
        let expected = [NONE, r, r, r, r, r, c, c, r, r, g, r, d];
        assert_eq!(doms.idom, expected);
        check_preorder(&doms, r);
    }

    #[test]
    fn unreachable_nodes_have_no_dominator_and_retain_nothing() {
        // 2 points into the reachable part and at 3; nothing reaches them.
        let g = graph(5, &[(0, 1), (2, 1), (2, 3), (1, 4)]);
        let doms = dominators(&g, 0);
        assert_eq!(doms.idom, [NONE, 0, NONE, NONE, 1]);
        assert_eq!(doms.preorder, [0, 1, 4]);
        let retained = retained_sizes(&doms, &[1, 2, 4, 8, 16]);
        assert_eq!(retained, [19, 18, 0, 0, 16]);
        let per_class = retained_per_class(&doms, &retained, &[NONE, 0, 0, 0, 1], 2);
        assert_eq!(per_class, [18, 16]);
    }

    #[test]
    fn self_loops_and_duplicate_edges_change_nothing() {
        let g = graph(3, &[(0, 0), (0, 1), (0, 1), (1, 1), (1, 2), (1, 2), (2, 2)]);
        let doms = dominators(&g, 0);
        assert_eq!(doms.idom, [NONE, 0, 1]);
        assert_eq!(retained_sizes(&doms, &[1, 1, 1]), [3, 2, 1]);
    }

    #[test]
    fn a_root_alone() {
        let g = graph(3, &[(1, 2)]);
        let doms = dominators(&g, 0);
        assert_eq!(doms.idom, [NONE; 3]);
        assert_eq!(doms.preorder, [0]);
        let retained = retained_sizes(&doms, &[5, 6, 7]);
        assert_eq!(retained, [5, 0, 0]);
        assert_eq!(retained_per_class(&doms, &retained, &[0, 0, 0], 1), [5]);
        // Any node may be the root.
        let doms = dominators(&g, 1);
        assert_eq!(doms.idom, [NONE, NONE, 1]);
        assert_eq!(doms.preorder, [1, 2]);
    }

    #[test]
    fn a_million_node_chain_needs_no_recursion() {
        let n = 1_000_000u32;
        let edges: Vec<(u32, u32)> = (1..n).map(|v| (v - 1, v)).collect();
        let doms = dominators(&graph(n as usize, &edges), 0);
        assert!(doms.idom[1..]
            .iter()
            .enumerate()
            .all(|(v, &d)| d == v as u32));
        assert_eq!(doms.preorder.len(), n as usize);
        let retained = retained_sizes(&doms, &vec![1; n as usize]);
        assert!(retained
            .iter()
            .enumerate()
            .all(|(v, &r)| r == u64::from(n) - v as u64));
        // One class all along: only the head counts.
        let per_class = retained_per_class(&doms, &retained, &vec![0; n as usize], 1);
        assert_eq!(per_class, [u64::from(n)]);
        // Alternating classes: the first of each counts.
        let classes: Vec<u32> = (0..n).map(|v| v % 2).collect();
        let per_class = retained_per_class(&doms, &retained, &classes, 2);
        assert_eq!(per_class, [u64::from(n), u64::from(n) - 1]);
    }

    #[test]
    fn a_long_chain_over_many_shared_leaves_stays_fast() {
        // The search reaches every leaf from the end of a long chain first,
        // but the root points at each too: each leaf's dominator is the
        // root, far above its tree parent. Climbing one step at a time
        // would take chain × leaves steps.
        let (chain, leaves) = (100_000u32, 100_000u32);
        let mut edges: Vec<(u32, u32)> = (1..=chain).map(|v| (v - 1, v)).collect();
        for leaf in chain + 1..=chain + leaves {
            edges.push((chain, leaf));
            edges.push((0, leaf));
        }
        let n = (chain + leaves + 1) as usize;
        let doms = dominators(&graph(n, &edges), 0);
        for v in 1..=chain {
            assert_eq!(doms.idom[v as usize], v - 1);
        }
        for leaf in chain + 1..=chain + leaves {
            assert_eq!(doms.idom[leaf as usize], 0);
        }
        check_preorder(&doms, 0);
    }

    #[test]
    fn a_class_inside_its_own_class_counts_once() {
        // 0 is the virtual root (no class); X = 0, Y = 1.
        // 1 (X) -> 2 (Y) -> 3 (X) -> 4 (X): only 1 counts for X, 2 for Y.
        // 5 (X) is a sibling of 1: it counts too.
        // 6 (Y) is shared by 3 and 5: dominated by the root, counts.
        let g = graph(7, &[(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (3, 6), (5, 6)]);
        let doms = dominators(&g, 0);
        assert_eq!(doms.idom, [NONE, 0, 1, 2, 3, 0, 0]);
        let shallow = [0, 1, 2, 4, 8, 16, 32];
        let retained = retained_sizes(&doms, &shallow);
        assert_eq!(retained, [63, 15, 14, 12, 8, 16, 32]);
        let class_of = [NONE, 0, 1, 0, 0, 0, 1];
        let per_class = retained_per_class(&doms, &retained, &class_of, 3);
        assert_eq!(per_class, [15 + 16, 14 + 32, 0]);
    }

    /// Which nodes `root` reaches when `removed` is taken out of the graph.
    fn reach(g: &Graph, root: u32, removed: u32) -> Vec<bool> {
        let mut seen = vec![false; g.node_count()];
        if root == removed {
            return seen;
        }
        seen[root as usize] = true;
        let mut stack = vec![root];
        while let Some(v) = stack.pop() {
            for &t in g.successors(v) {
                if t != removed && !seen[t as usize] {
                    seen[t as usize] = true;
                    stack.push(t);
                }
            }
        }
        seen
    }

    #[test]
    fn random_graphs_agree_with_removing_each_node() {
        let mut rng = jvmapm_contract::random::Rng::seeded(0x9E37_79B9_7F4A_7C15);
        for round in 0..2000 {
            let n = 1 + rng.below(60) as usize;
            let edge_count = rng.below(3 * n as u64 + 1) as usize;
            let mut edges: Vec<(u32, u32)> = (0..edge_count)
                .map(|_| (rng.below(n as u64) as u32, rng.below(n as u64) as u32))
                .collect();
            // Every other graph gets a long path too, for deep trees.
            if round % 2 == 1 {
                edges.extend((1..n as u32).map(|v| (v - 1, v)));
                let at = rng.below(edges.len() as u64 + 1) as usize;
                edges.rotate_left(at);
            }
            let g = graph(n, &edges);
            let root = rng.below(n as u64) as u32;
            let shallow: Vec<u32> = (0..n).map(|_| rng.below(1000) as u32).collect();
            let classes = 1 + rng.below(4) as usize;
            let class_of: Vec<u32> = (0..n)
                .map(|_| match rng.below(classes as u64 + 1) {
                    0 => NONE,
                    c => c as u32 - 1,
                })
                .collect();

            // dominated[v][w]: v dominates w (w reached, and not without v).
            let reached = reach(&g, root, NONE);
            let dominated: Vec<Vec<bool>> = (0..n as u32)
                .map(|v| {
                    let without = reach(&g, root, v);
                    (0..n)
                        .map(|w| reached[w] && reached[v as usize] && !without[w])
                        .collect()
                })
                .collect();
            // The immediate dominator is the strict dominator with the most
            // dominators of its own.
            let dominator_count: Vec<usize> = (0..n)
                .map(|w| (0..n).filter(|&v| dominated[v][w]).count())
                .collect();
            let expected_idom: Vec<u32> = (0..n)
                .map(|w| {
                    (0..n)
                        .filter(|&v| v != w && dominated[v][w])
                        .max_by_key(|&v| dominator_count[v])
                        .map_or(NONE, |v| v as u32)
                })
                .collect();
            let expected_retained: Vec<u64> = (0..n)
                .map(|v| {
                    (0..n)
                        .filter(|&w| dominated[v][w])
                        .map(|w| u64::from(shallow[w]))
                        .sum()
                })
                .collect();
            let mut expected_per_class = vec![0u64; classes];
            for v in 0..n {
                let c = class_of[v];
                let outer = (0..n).all(|u| u == v || !dominated[u][v] || class_of[u] != c);
                if reached[v] && c != NONE && outer {
                    expected_per_class[c as usize] += expected_retained[v];
                }
            }

            let doms = dominators(&g, root);
            assert_eq!(
                doms.idom, expected_idom,
                "round {round}: {edges:?} from {root}"
            );
            check_preorder(&doms, root);
            assert_eq!(doms.preorder.len(), reached.iter().filter(|&&r| r).count());
            let retained = retained_sizes(&doms, &shallow);
            assert_eq!(retained, expected_retained, "round {round}");
            let per_class = retained_per_class(&doms, &retained, &class_of, classes);
            assert_eq!(per_class, expected_per_class, "round {round}");
        }
    }
}
