//! A captured value (`inspect get`) as a tree of rows: objects' fields,
//! dicts' keys and lists' items are children, each with the path that
//! reads it (`shop.CONFIG.limits['cart'][0]`). A child the capture did not
//! expand (beyond its depth: `"<dict len=3>"`, `"<shop.Item object at
//! 0x..>"`) can be read deeper with its path; the answers are grafted in.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// One visible row.
#[derive(Debug)]
pub(super) struct Row<'a> {
    pub(super) path: String,
    pub(super) label: String,
    pub(super) value: &'a Value,
    pub(super) depth: usize,
    pub(super) open: bool,
    /// Whether it has children to show (expanded in the capture).
    pub(super) branch: bool,
    /// Whether it is a summary that a deeper read would expand.
    pub(super) deeper: bool,
}

/// Whether `text` is what the capture writes for a value it did not expand.
pub(super) fn is_summary(value: &Value) -> bool {
    let Some(text) = value.as_str() else {
        return false;
    };
    text.starts_with('<')
        && text.ends_with('>')
        && (text.contains(" len=") || text.contains(" object at 0x"))
}

fn children(value: &Value, path: &str) -> Vec<(String, String, usize)> {
    match value {
        Value::Object(fields) => {
            let is_object = fields.contains_key("@type");
            fields
                .keys()
                .enumerate()
                .filter(|(_, k)| !k.starts_with('@'))
                .map(|(i, k)| {
                    let sub = if is_object && k.chars().all(|c| c.is_alphanumeric() || c == '_') {
                        format!("{path}.{k}")
                    } else {
                        format!("{path}[{k:?}]").replace('"', "'")
                    };
                    (k.clone(), sub, i)
                })
                .collect()
        }
        Value::Array(items) => (0..items.len())
            .filter(|i| {
                !items[*i]
                    .as_str()
                    .is_some_and(|s| s.ends_with(" more items>") || s.contains(" more items of "))
            })
            .map(|i| (format!("[{i}]"), format!("{path}[{i}]"), i))
            .collect(),
        _ => Vec::new(),
    }
}

fn child<'a>(value: &'a Value, key: &str, index: usize) -> Option<&'a Value> {
    match value {
        Value::Object(fields) => fields.get(key),
        Value::Array(items) => items.get(index),
        _ => None,
    }
}

/// The rows of `root` (read at `path`), with `fetched` grafted in and only
/// the nodes in `open` expanded.
pub(super) fn rows<'a>(
    root: &'a Value,
    path: &str,
    fetched: &'a HashMap<String, Value>,
    open: &HashSet<String>,
) -> Vec<Row<'a>> {
    let mut out = Vec::new();
    walk(root, path, path.to_owned(), 0, fetched, open, &mut out);
    out
}

fn walk<'a>(
    value: &'a Value,
    path: &str,
    label: String,
    depth: usize,
    fetched: &'a HashMap<String, Value>,
    open: &HashSet<String>,
    out: &mut Vec<Row<'a>>,
) {
    if out.len() >= 5000 || depth > 32 {
        return;
    }
    let value = fetched.get(path).unwrap_or(value);
    let branch = matches!(value, Value::Object(f) if !f.is_empty())
        || matches!(value, Value::Array(a) if !a.is_empty());
    let is_open = branch && open.contains(path);
    out.push(Row {
        path: path.to_owned(),
        label,
        value,
        depth,
        open: is_open,
        branch,
        deeper: is_summary(value),
    });
    if is_open {
        for (key, sub, index) in children(value, path) {
            if let Some(v) = child(value, &key, index) {
                walk(v, &sub, key, depth + 1, fetched, open, out);
            }
        }
    }
}

/// A value on one line: scalars as they are, containers summarised.
pub(super) fn summary(value: &Value) -> String {
    match value {
        Value::Object(fields) => match fields.get("@type").and_then(Value::as_str) {
            Some(t) => format!("{t} ({} fields)", fields.len() - 1),
            None => format!("{{{} keys}}", fields.len()),
        },
        Value::Array(items) => format!("[{} items]", items.len()),
        Value::String(s) if is_summary(value) => s.clone(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_fields_keys_and_items() {
        let value = serde_json::json!({"@type": "shop.Config", "limits": {"cart": [1, "<dict len=2>"]}, "name": "x"});
        let open: HashSet<String> = ["c", "c.limits", "c.limits['cart']"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let fetched = HashMap::new();
        let all = rows(&value, "c", &fetched, &open);
        let paths: Vec<_> = all.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "c",
                "c.limits",
                "c.limits['cart']",
                "c.limits['cart'][0]",
                "c.limits['cart'][1]",
                "c.name"
            ]
        );
        assert!(all[4].deeper);
        let mut fetched = HashMap::new();
        fetched.insert(
            "c.limits['cart'][1]".to_owned(),
            serde_json::json!({"a": 1}),
        );
        let mut open = open;
        open.insert("c.limits['cart'][1]".into());
        assert_eq!(rows(&value, "c", &fetched, &open).len(), 7);
    }
}
