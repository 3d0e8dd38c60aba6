//! A trie of topic filters: given a concrete topic, find every value whose
//! filter matches, without allocating (the caller passes the output vector).

use std::collections::HashMap;

#[derive(Debug, Clone)]
struct Node<T> {
    children: HashMap<Box<str>, u32>,
    plus: Option<u32>,
    /// Values of filters ending here.
    here: Vec<T>,
    /// Values of filters ending with `/#` after this node (or `#` at the root).
    hash: Vec<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self { children: HashMap::new(), plus: None, here: Vec::new(), hash: Vec::new() }
    }
}

/// Topic-filter index. Filters must be valid (see [`crate::topic::validate_filter`]).
#[derive(Debug, Clone)]
pub struct FilterIndex<T> {
    nodes: Vec<Node<T>>,
    len: usize,
}

impl<T: Copy> Default for FilterIndex<T> {
    fn default() -> Self {
        Self { nodes: vec![Node::default()], len: 0 }
    }
}

impl<T: Copy> FilterIndex<T> {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of (filter, value) pairs inserted.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn insert(&mut self, filter: &str, value: T) {
        let mut at = 0usize;
        for level in filter.split('/') {
            if level == "#" {
                self.nodes[at].hash.push(value);
                self.len += 1;
                return;
            }
            let next = if level == "+" { self.nodes[at].plus } else { self.nodes[at].children.get(level).copied() };
            at = match next {
                Some(n) => n as usize,
                None => {
                    let n = self.nodes.len();
                    self.nodes.push(Node::default());
                    let id = n as u32;
                    if level == "+" {
                        self.nodes[at].plus = Some(id);
                    } else {
                        self.nodes[at].children.insert(level.into(), id);
                    }
                    n
                }
            };
        }
        self.nodes[at].here.push(value);
        self.len += 1;
    }

    /// Appends to `out` the value of every filter matching `topic` (a value appears
    /// once per matching filter; callers dedup when they need to).
    pub fn matches(&self, topic: &str, out: &mut Vec<T>) {
        self.walk(0, topic.split('/'), true, out);
    }

    fn walk(&self, at: usize, mut levels: std::str::Split<'_, char>, first: bool, out: &mut Vec<T>) {
        let node = &self.nodes[at];
        match levels.next() {
            None => {
                out.extend_from_slice(&node.here);
                // "a/#" also matches "a".
                out.extend_from_slice(&node.hash);
            }
            Some(level) => {
                // MQTT 3.1.1 §4.7.2: wildcards at the first level never match '$' topics.
                let dollar = first && level.starts_with('$');
                if !dollar {
                    out.extend_from_slice(&node.hash);
                }
                if let Some(&child) = node.children.get(level) {
                    self.walk(child as usize, levels.clone(), false, out);
                }
                if !dollar {
                    if let Some(plus) = node.plus {
                        self.walk(plus as usize, levels, false, out);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::filter_matches;
    use proptest::prelude::*;

    #[test]
    fn finds_matching_filters() {
        let mut ix = FilterIndex::default();
        let filters = ["a/b", "a/+", "a/#", "#", "+/b", "$aws/things/+/shadow/#", "a", "+"];
        for (i, f) in filters.iter().enumerate() {
            ix.insert(f, i);
        }
        let mut out = Vec::new();
        ix.matches("a/b", &mut out);
        out.sort();
        assert_eq!(out, vec![0, 1, 2, 3, 4]);
        out.clear();
        ix.matches("a", &mut out);
        out.sort();
        assert_eq!(out, vec![2, 3, 6, 7]);
        out.clear();
        ix.matches("$aws/things/t/shadow/update", &mut out);
        assert_eq!(out, vec![5]);
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![Just("a".to_string()), Just("b".to_string()), Just("$x".to_string()), Just(String::new())]
    }

    fn filter() -> impl Strategy<Value = String> {
        let lv = prop_oneof![3 => level(), 1 => Just("+".to_string())];
        (prop::collection::vec(lv, 1..4), any::<bool>()).prop_map(|(mut v, h)| {
            if h {
                v.push("#".into());
            }
            v.join("/")
        })
    }

    proptest! {
        #[test]
        fn agrees_with_linear_scan(filters in prop::collection::vec(filter(), 0..12), topics in prop::collection::vec(prop::collection::vec(level(), 1..5), 1..8)) {
            let mut ix = FilterIndex::default();
            for (i, f) in filters.iter().enumerate() {
                ix.insert(f, i);
            }
            for t in topics {
                let t = t.join("/");
                let mut got = Vec::new();
                ix.matches(&t, &mut got);
                got.sort();
                let want: Vec<usize> = filters.iter().enumerate().filter(|(_, f)| filter_matches(f, &t)).map(|(i, _)| i).collect();
                prop_assert_eq!(got, want, "topic {}", t);
            }
        }
    }
}
