//! The call tree of one traced call as rows on screen: nodes are named by
//! their path (child indices from the root), folded nodes hide their
//! children.

use std::collections::HashSet;

use peeka_core::client::TraceNode;

/// A node's place in the tree: the child indices from the root.
pub(super) type NodePath = Vec<usize>;

/// One visible row.
#[derive(Debug)]
pub(super) struct Row<'a> {
    pub(super) path: NodePath,
    pub(super) node: &'a TraceNode,
    pub(super) depth: usize,
    pub(super) folded: bool,
}

/// The rows of `root` with the nodes in `folded` closed, depth first.
pub(super) fn rows<'a>(root: &'a TraceNode, folded: &HashSet<NodePath>) -> Vec<Row<'a>> {
    let mut out = Vec::new();
    let mut stack: Vec<(NodePath, &TraceNode)> = vec![(Vec::new(), root)];
    while let Some((path, node)) = stack.pop() {
        let is_folded = !node.children.is_empty() && folded.contains(&path);
        if !is_folded {
            for (index, child) in node.children.iter().enumerate().rev() {
                let mut child_path = path.clone();
                child_path.push(index);
                stack.push((child_path, child));
            }
        }
        out.push(Row {
            depth: path.len(),
            path,
            node,
            folded: is_folded,
        });
    }
    out
}

/// The share of the root's time a node took, in percent.
pub(super) fn share(node: &TraceNode, root_ms: f64) -> f64 {
    if root_ms > 0.0 {
        node.duration_ms / root_ms * 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn node(function: &str, ms: f64, children: Vec<TraceNode>) -> TraceNode {
        serde_json::from_value(serde_json::json!({
            "function": function, "duration_ms": ms, "count": 1,
            "children": serde_json::to_value(children).unwrap_or_default()
        }))
        .unwrap()
    }

    #[test]
    fn folding_hides_the_children() {
        let root = node(
            "a",
            3.0,
            vec![
                node("b", 2.0, vec![node("c", 1.0, vec![])]),
                node("d", 1.0, vec![]),
            ],
        );
        let names = |folded: &HashSet<NodePath>| -> Vec<String> {
            rows(&root, folded)
                .iter()
                .map(|r| r.node.function.clone())
                .collect()
        };
        assert_eq!(names(&HashSet::new()), ["a", "b", "c", "d"]);
        let folded: HashSet<NodePath> = [vec![0]].into_iter().collect();
        assert_eq!(names(&folded), ["a", "b", "d"]);
        assert!(rows(&root, &folded)[1].folded);
        let all: HashSet<NodePath> = [vec![]].into_iter().collect();
        assert_eq!(names(&all), ["a"]);
        assert_eq!(share(&root.children[0], 3.0).round(), 67.0);
    }
}
