//! How a call tree of stack samples is shown: which nodes are open, and the
//! cursor among the rows they make. A tree opens with its hottest path
//! expanded, so the first screen already says where most of the time went;
//! the operator opens and closes the rest. Kept apart from any terminal:
//! `ui` draws the rows, tests drive the keys.

use std::collections::HashSet;

use crossterm::event::KeyCode;
use jvmapm_analyzer::query::call_tree::{CallTree, ROOT};

/// The open nodes of a call tree, and the row under the cursor.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileView {
    expanded: HashSet<u32>,
    /// Index into [`ProfileView::rows`].
    pub cursor: usize,
}

impl ProfileView {
    /// `tree` with its hottest path open and the cursor on the first row.
    pub fn hottest(tree: &CallTree) -> ProfileView {
        ProfileView {
            expanded: tree.hottest_path().into_iter().collect(),
            cursor: 0,
        }
    }

    /// The rows shown: every child of an open node, depth first with the
    /// hottest first, with its depth (1 for the root's children).
    pub fn rows(&self, tree: &CallTree) -> Vec<(u32, usize)> {
        let mut rows = Vec::new();
        let mut todo: Vec<(u32, usize)> = vec![(ROOT, 0)];
        while let Some((id, depth)) = todo.pop() {
            if id != ROOT {
                rows.push((id, depth));
            }
            if id == ROOT || self.expanded.contains(&id) {
                todo.extend(tree.children(id).into_iter().rev().map(|c| (c, depth + 1)));
            }
        }
        rows
    }

    pub fn is_open(&self, id: u32) -> bool {
        self.expanded.contains(&id)
    }

    /// Moves the cursor (Up, Down, PageUp, PageDown, Home, End) or opens
    /// (Right) and closes (Left) the node under it; true when `code` was one
    /// of those. Left on a closed node goes to its caller.
    pub fn key(&mut self, tree: &CallTree, code: KeyCode, page: usize) -> bool {
        let rows = self.rows(tree);
        let last = rows.len().saturating_sub(1);
        let here = rows.get(self.cursor).map(|&(id, _)| id);
        match code {
            KeyCode::Up => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Down => self.cursor = (self.cursor + 1).min(last),
            KeyCode::PageUp => self.cursor = self.cursor.saturating_sub(page),
            KeyCode::PageDown => self.cursor = (self.cursor + page).min(last),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = last,
            KeyCode::Right => {
                if let Some(id) = here {
                    self.expanded.insert(id);
                }
            }
            KeyCode::Left => match here {
                Some(id) if self.expanded.remove(&id) => {}
                Some(id) => {
                    let parent = tree.node(id).parent;
                    if let Some(row) = rows.iter().position(|&(r, _)| r == parent) {
                        self.cursor = row;
                    }
                }
                None => {}
            },
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(tree: &CallTree, view: &ProfileView) -> Vec<String> {
        view.rows(tree)
            .iter()
            .map(|&(id, depth)| format!("{}{}", " ".repeat(depth - 1), tree.node(id).frame))
            .collect()
    }

    #[test]
    fn the_hottest_path_opens_and_keys_open_and_close_the_rest() {
        let tree = CallTree::parse(
            "main;work;[running] 6\nmain;io;read;[native] 3\nmain;[waiting] 1\nidle 1\n",
        );
        let mut view = ProfileView::hottest(&tree);
        assert_eq!(
            shown(&tree, &view),
            ["main", " work", "  [running]", " io", " [waiting]", "idle"]
        );
        let key = |view: &mut ProfileView, code| assert!(view.key(&tree, code, 10));
        key(&mut view, KeyCode::Down);
        key(&mut view, KeyCode::Down);
        key(&mut view, KeyCode::Down);
        key(&mut view, KeyCode::Right);
        assert_eq!(
            shown(&tree, &view)[3..6],
            [" io", "  read", " [waiting]"],
            "io opened"
        );
        key(&mut view, KeyCode::Down);
        key(&mut view, KeyCode::Left);
        assert_eq!(view.cursor, 3, "Left on a closed node goes to its caller");
        key(&mut view, KeyCode::Left);
        assert!(!view.is_open(view.rows(&tree)[3].0), "then closes it");
        key(&mut view, KeyCode::End);
        assert_eq!(view.cursor, 5);
        assert!(!view.key(&tree, KeyCode::Char('x'), 10));
    }
}
