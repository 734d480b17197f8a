//! Stack samples as a call tree: folded stacks (`root;frame;leaf count`, the
//! form the agent sends in `jvmapm.profile` and flame-graph tools read)
//! parsed and merged into one tree whose nodes count the samples taken in
//! them (self) and under them (total). A thread state that ends a stack
//! (`[running]`, `[sleeping]`) is a node like any frame.
//!
//! Trees merge by adding counts, so the profile of an area of the XLog is
//! exactly the sum of its transactions' profiles, and a tree renders back to
//! folded lines. What a sender gets wrong costs a count, never a panic: a
//! malformed line is skipped and counted, and a tree stops growing at
//! [`MAX_NODES`], its further samples kept on the deepest node that exists.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Nodes a tree may have (each a frame under a given path). A merged tree
/// past it still counts every sample, on the deepest existing node of its
/// stack, and says how many it placed so in [`CallTree::over_cap`].
pub const MAX_NODES: usize = 50_000;

/// The root's id; its frame is empty and its total is every sample.
pub const ROOT: u32 = 0;

/// One frame under one path from the root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// `package.Class.method[:line]`, or a thread state as `[waiting]`.
    pub frame: Arc<str>,
    /// The caller's node id, smaller than this node's own ([`ROOT`] for the root).
    pub parent: u32,
    /// Samples whose stack ended here.
    #[serde(rename = "self")]
    pub self_samples: u64,
    /// Samples whose stack passed through here (self included).
    #[serde(rename = "total")]
    pub total_samples: u64,
}

/// A call tree of stack samples; see the module documentation. On the wire
/// (the query API) its nodes are a flat list in which every node comes after
/// its parent, so a deep stack is no deeper in JSON than a shallow one.
#[derive(Clone, Debug, PartialEq)]
pub struct CallTree {
    nodes: Vec<Node>,
    /// Each node's children by frame, parallel to `nodes`.
    children: Vec<HashMap<Arc<str>, u32>>,
    skipped_lines: u64,
    over_cap: u64,
}

impl Default for CallTree {
    fn default() -> Self {
        CallTree {
            nodes: vec![Node {
                frame: "".into(),
                parent: ROOT,
                self_samples: 0,
                total_samples: 0,
            }],
            children: vec![HashMap::new()],
            skipped_lines: 0,
            over_cap: 0,
        }
    }
}

impl CallTree {
    /// The tree of folded stacks, one `frame;frame;... count` a line.
    pub fn parse(folded: &str) -> CallTree {
        let mut tree = CallTree::default();
        tree.add_folded(folded);
        tree
    }

    /// Adds folded stacks; a malformed line (no count, a count of zero or
    /// past `u64`, an empty frame) is skipped and counted. Blank lines are
    /// not lines.
    pub fn add_folded(&mut self, folded: &str) {
        for line in folded.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match parse_line(line) {
                Some((stack, count)) => self.add_stack(stack.split(';'), count),
                None => self.skipped_lines += 1,
            }
        }
    }

    /// Adds `count` samples of one stack, root first.
    fn add_stack<'a>(&mut self, frames: impl Iterator<Item = &'a str>, count: u64) {
        let mut at = ROOT;
        self.nodes[0].total_samples = self.nodes[0].total_samples.saturating_add(count);
        for frame in frames {
            match self.child(at, frame) {
                Some(child) => {
                    at = child;
                    let node = &mut self.nodes[at as usize];
                    node.total_samples = node.total_samples.saturating_add(count);
                }
                None => {
                    self.over_cap = self.over_cap.saturating_add(count);
                    break;
                }
            }
        }
        let node = &mut self.nodes[at as usize];
        node.self_samples = node.self_samples.saturating_add(count);
    }

    /// The child `frame` of `parent`, made if new; `None` once the tree
    /// has [`MAX_NODES`].
    fn child(&mut self, parent: u32, frame: &str) -> Option<u32> {
        if let Some(&id) = self.children[parent as usize].get(frame) {
            return Some(id);
        }
        if self.nodes.len() >= MAX_NODES {
            return None;
        }
        let id = self.nodes.len() as u32;
        let frame: Arc<str> = frame.into();
        self.children[parent as usize].insert(frame.clone(), id);
        self.nodes.push(Node {
            frame,
            parent,
            self_samples: 0,
            total_samples: 0,
        });
        self.children.push(HashMap::new());
        Some(id)
    }

    /// Adds every sample of `other` (and its counts of skipped lines and
    /// samples over the cap): the folded lines of the result are the sums
    /// of both trees' lines.
    pub fn merge(&mut self, other: &CallTree) {
        self.merge_renamed(other, Cow::Borrowed);
    }

    /// The tree with every frame renamed by `rename` (to make it safe to
    /// print, say); frames that become equal under one caller become one.
    pub fn renamed<'a>(&'a self, rename: impl Fn(&'a str) -> Cow<'a, str>) -> CallTree {
        let mut tree = CallTree::default();
        tree.merge_renamed(self, rename);
        tree
    }

    /// [`Self::merge`], each frame of `other` renamed first.
    fn merge_renamed<'a>(&mut self, other: &'a CallTree, rename: impl Fn(&'a str) -> Cow<'a, str>) {
        self.skipped_lines = self.skipped_lines.saturating_add(other.skipped_lines);
        self.over_cap = self.over_cap.saturating_add(other.over_cap);
        // Where each node of `other` lands here, and whether it landed on
        // an ancestor because the tree is full (then so do its descendants,
        // and only its own samples are added: the ancestor's total has them).
        let mut landed: Vec<(u32, bool)> = Vec::with_capacity(other.nodes.len());
        for (i, node) in other.nodes.iter().enumerate() {
            let (at, full) = if i == 0 {
                (ROOT, false)
            } else {
                match landed[node.parent as usize] {
                    (parent, true) => (parent, true),
                    (parent, false) => match self.child(parent, &rename(&node.frame)) {
                        Some(child) => (child, false),
                        None => (parent, true),
                    },
                }
            };
            landed.push((at, full));
            let here = &mut self.nodes[at as usize];
            here.self_samples = here.self_samples.saturating_add(node.self_samples);
            if full {
                self.over_cap = self.over_cap.saturating_add(node.self_samples);
            } else {
                here.total_samples = here.total_samples.saturating_add(node.total_samples);
            }
        }
    }

    /// Every sample in the tree.
    pub fn samples(&self) -> u64 {
        self.nodes[0].total_samples
    }

    /// Malformed lines skipped, over every profile merged in.
    pub fn skipped_lines(&self) -> u64 {
        self.skipped_lines
    }

    /// Samples kept on a shallower node than their stack because the tree
    /// was full.
    pub fn over_cap(&self) -> u64 {
        self.over_cap
    }

    /// Nodes, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no sample was added.
    pub fn is_empty(&self) -> bool {
        self.samples() == 0
    }

    pub fn node(&self, id: u32) -> &Node {
        &self.nodes[id as usize]
    }

    /// The share of every sample that passed through `id`, 0 to 1.
    pub fn share(&self, id: u32) -> f64 {
        match self.samples() {
            0 => 0.0,
            all => self.node(id).total_samples as f64 / all as f64,
        }
    }

    /// The children of `id`, hottest first (ties by frame, so the order is
    /// the same every time).
    pub fn children(&self, id: u32) -> Vec<u32> {
        let mut ids: Vec<u32> = self.children[id as usize].values().copied().collect();
        ids.sort_by(|&a, &b| {
            let (a, b) = (self.node(a), self.node(b));
            b.total_samples
                .cmp(&a.total_samples)
                .then_with(|| a.frame.cmp(&b.frame))
        });
        ids
    }

    /// From the root, the hottest child at each step down to a leaf: the
    /// root included.
    pub fn hottest_path(&self) -> Vec<u32> {
        let mut path = vec![ROOT];
        while let Some(&next) = self.children(*path.last().expect("has the root")).first() {
            path.push(next);
        }
        path
    }

    /// Every node below the root with its depth (1 for the root's
    /// children), depth first with the hottest child first: the order a
    /// tree is printed in.
    pub fn depth_first(&self) -> Vec<(u32, usize)> {
        let mut order = Vec::with_capacity(self.nodes.len().saturating_sub(1));
        let mut todo: Vec<(u32, usize)> = self
            .children(ROOT)
            .into_iter()
            .rev()
            .map(|id| (id, 1))
            .collect();
        while let Some((id, depth)) = todo.pop() {
            order.push((id, depth));
            todo.extend(self.children(id).into_iter().rev().map(|c| (c, depth + 1)));
        }
        order
    }

    /// The tree as folded stacks, one line a stack with samples ending in
    /// it, in [`Self::depth_first`] order.
    pub fn folded(&self) -> String {
        let mut out = String::new();
        let mut path: Vec<&str> = Vec::new();
        for (id, depth) in self.depth_first() {
            path.truncate(depth - 1);
            let node = self.node(id);
            path.push(&node.frame);
            if node.self_samples > 0 {
                out.push_str(&path.join(";"));
                out.push(' ');
                out.push_str(&node.self_samples.to_string());
                out.push('\n');
            }
        }
        out
    }
}

/// `frames count` split at its last space, when both are sound.
fn parse_line(line: &str) -> Option<(&str, u64)> {
    let (stack, count) = line.rsplit_once(' ')?;
    let stack = stack.trim_end();
    let count = count.parse::<u64>().ok().filter(|&c| c > 0)?;
    (!stack.split(';').any(|f| f.trim().is_empty())).then_some((stack, count))
}

/// A tree as the API sends it.
#[derive(Serialize)]
struct WireOut<'a> {
    nodes: &'a [Node],
    skipped_lines: u64,
    over_cap: u64,
}

/// A tree as the API's clients read it, checked before it is believed.
#[derive(Deserialize)]
struct WireIn {
    nodes: Vec<Node>,
    skipped_lines: u64,
    over_cap: u64,
}

impl Serialize for CallTree {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireOut {
            nodes: &self.nodes,
            skipped_lines: self.skipped_lines,
            over_cap: self.over_cap,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CallTree {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireIn::deserialize(deserializer)?;
        CallTree::from_wire(wire).map_err(serde::de::Error::custom)
    }
}

impl CallTree {
    /// A tree from the wire, if it is one: a root first, at most
    /// [`MAX_NODES`], every parent before its child, no frame twice under
    /// one parent.
    fn from_wire(wire: WireIn) -> Result<CallTree, String> {
        if wire.nodes.len() > MAX_NODES {
            return Err(format!("a call tree of more than {MAX_NODES} nodes"));
        }
        match wire.nodes.first() {
            Some(root) if root.frame.is_empty() && root.parent == ROOT => {}
            _ => return Err("a call tree must start with its root".into()),
        }
        let mut children = vec![HashMap::new(); wire.nodes.len()];
        for (id, node) in wire.nodes.iter().enumerate().skip(1) {
            if node.parent as usize >= id {
                return Err(format!("call tree node {id} comes before its parent"));
            }
            if children[node.parent as usize]
                .insert(node.frame.clone(), id as u32)
                .is_some()
            {
                return Err(format!("call tree node {id} repeats a frame of its caller"));
            }
        }
        Ok(CallTree {
            nodes: wire.nodes,
            children,
            skipped_lines: wire.skipped_lines,
            over_cap: wire.over_cap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jvmapm_contract::random::Rng;

    /// Folded lines as stack → count, duplicate lines added.
    fn lines(folded: &str) -> HashMap<String, u64> {
        let mut sums = HashMap::new();
        for line in folded.lines() {
            let (stack, count) = parse_line(line).expect("a sound line");
            *sums.entry(stack.to_string()).or_insert(0) += count;
        }
        sums
    }

    fn frame_names(tree: &CallTree, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&id| tree.node(id).frame.to_string())
            .collect()
    }

    #[test]
    fn stacks_merge_into_nodes_with_self_and_total_and_states_as_leaves() {
        let tree = CallTree::parse(
            "Thread.run;Shop.order;Db.query;[native] 30\n\
             Thread.run;Shop.order;Shop.price;[running] 60\n\
             Thread.run;Shop.order;[sleeping] 10\n",
        );
        assert_eq!(tree.samples(), 100);
        let path = tree.hottest_path();
        assert_eq!(
            frame_names(&tree, &path),
            ["", "Thread.run", "Shop.order", "Shop.price", "[running]"]
        );
        let order = tree.node(path[2]);
        assert_eq!((order.self_samples, order.total_samples), (0, 100));
        let running = tree.node(path[4]);
        assert_eq!((running.self_samples, running.total_samples), (60, 60));
        assert_eq!(tree.share(path[3]), 0.6);
        let below_order = tree.children(path[2]);
        assert_eq!(
            frame_names(&tree, &below_order),
            ["Shop.price", "Db.query", "[sleeping]"],
            "hottest first"
        );
    }

    #[test]
    fn it_renders_back_to_the_lines_it_was_parsed_from() {
        let folded = "a;b;c 3\na;b 2\na;d;[waiting] 7\nx 1\n";
        let tree = CallTree::parse(folded);
        assert_eq!(lines(&tree.folded()), lines(folded));
        assert_eq!(
            tree.folded().lines().next(),
            Some("a;d;[waiting] 7"),
            "the hottest branch first"
        );
    }

    #[test]
    fn malformed_lines_are_skipped_and_counted() {
        let tree = CallTree::parse(
            "a;b 5\n\nno-count\na;b x\na;;b 2\n;a 1\na 0\na 99999999999999999999999\n \t\na;c 1\r\n",
        );
        assert_eq!(tree.skipped_lines(), 6);
        assert_eq!(tree.samples(), 6);
        assert_eq!(lines(&tree.folded()), lines("a;b 5\na;c 1"));
    }

    #[test]
    fn a_full_tree_keeps_counting_samples_on_the_deepest_node_it_has() {
        let mut folded = String::new();
        for i in 0..MAX_NODES + 10 {
            folded.push_str(&format!("root;f{i} 2\n"));
        }
        let tree = CallTree::parse(&folded);
        assert_eq!(tree.len(), MAX_NODES);
        assert_eq!(tree.samples(), 2 * (MAX_NODES as u64 + 10));
        let root = tree.children(ROOT)[0];
        assert_eq!(tree.node(root).total_samples, tree.samples());
        // The root's child and MAX_NODES - 2 frames under it fit.
        let placed_high = 2 * (MAX_NODES as u64 + 10 - (MAX_NODES as u64 - 2));
        assert_eq!(tree.over_cap(), placed_high);
        assert_eq!(tree.node(root).self_samples, placed_high);

        let mut merged = tree.clone();
        merged.merge(&CallTree::parse("root;new;deeper 4\nother 1\n"));
        assert_eq!(merged.len(), MAX_NODES);
        assert_eq!(merged.samples(), tree.samples() + 5);
        assert_eq!(merged.node(root).self_samples, placed_high + 4);
        assert_eq!(merged.over_cap(), placed_high + 5);
        assert_eq!(merged.node(ROOT).self_samples, 1);
    }

    /// Random folded text over a small set of frames, so stacks share
    /// prefixes and repeat.
    fn random_folded(rng: &mut Rng) -> String {
        let frames = ["a", "b", "c", "Db.query:42", "[running]", "[waiting]"];
        let mut out = String::new();
        for _ in 0..rng.below(12) {
            let depth = 1 + rng.below(5);
            let stack: Vec<&str> = (0..depth)
                .map(|_| frames[rng.below(frames.len() as u64) as usize])
                .collect();
            out.push_str(&format!("{} {}\n", stack.join(";"), 1 + rng.below(50)));
        }
        out
    }

    #[test]
    fn merged_lines_are_the_sums_of_both_trees_lines() {
        let mut rng = Rng::seeded(16);
        for _ in 0..500 {
            let (a, b) = (random_folded(&mut rng), random_folded(&mut rng));
            let (ta, tb) = (CallTree::parse(&a), CallTree::parse(&b));
            let mut merged = ta.clone();
            merged.merge(&tb);
            let mut expected = lines(&ta.folded());
            for (stack, count) in lines(&tb.folded()) {
                *expected.entry(stack).or_insert(0) += count;
            }
            assert_eq!(lines(&merged.folded()), expected, "{a}\n+\n{b}");
            assert_eq!(merged, CallTree::parse(&format!("{a}{b}")), "{a}\n+\n{b}");
            assert_eq!(merged.samples(), ta.samples() + tb.samples());
        }
    }

    #[test]
    fn any_text_parses_and_what_it_renders_parses_back_whole() {
        let alphabet: Vec<char> = "ab;; 0 19\n\r\t[]é\u{0}-".chars().collect();
        let mut rng = Rng::seeded(7);
        for _ in 0..2_000 {
            let text: String = (0..rng.below(80))
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect();
            let tree = CallTree::parse(&text);
            let again = CallTree::parse(&tree.folded());
            assert_eq!(again.skipped_lines(), 0, "{text:?}");
            assert_eq!(again.samples(), tree.samples(), "{text:?}");
            assert_eq!(lines(&again.folded()), lines(&tree.folded()), "{text:?}");
        }
    }

    #[test]
    fn frames_renamed_alike_become_one() {
        let tree = CallTree::parse("a;x1 2\na;x2 3\nb 1\n");
        let renamed = tree.renamed(|f| match f.strip_prefix('x') {
            Some(_) => Cow::Borrowed("x"),
            None => Cow::Borrowed(f),
        });
        assert_eq!(lines(&renamed.folded()), lines("a;x 5\nb 1"));
        assert_eq!(renamed.samples(), tree.samples());
    }

    #[test]
    fn the_wire_form_reads_back_and_a_broken_one_is_refused() {
        let tree = CallTree::parse("a;b 2\na;c 1\n[running] 4\nbad\n");
        let json = serde_json::to_value(&tree).unwrap();
        assert_eq!(json["skipped_lines"], 1);
        assert_eq!(json["nodes"][0]["total"], 7);
        assert_eq!(serde_json::from_value::<CallTree>(json).unwrap(), tree);

        let node = |frame: &str, parent: u32| Node {
            frame: frame.into(),
            parent,
            self_samples: 1,
            total_samples: 1,
        };
        let refused = |nodes: Vec<Node>| {
            let json = serde_json::json!({"nodes": nodes, "skipped_lines": 0, "over_cap": 0});
            serde_json::from_value::<CallTree>(json)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(vec![]).contains("root"));
        assert!(refused(vec![node("", 0), node("a", 2), node("b", 0)]).contains("parent"));
        assert!(refused(vec![node("", 0), node("a", 0), node("a", 0)]).contains("repeats"));
        assert!(refused(vec![node("", 0), node("a", 1)]).contains("parent"));
    }
}
