//! Topic names and filters: validation, matching, the router's trie and the
//! SUBSCRIBE grant check (overlap), each against a naive reference written
//! here from MQTT 3.1.1 §4.7 for clarity only.
//!
//! Input: lines, each tried as a filter and as a topic name.

use crate::router::index::FilterIndex;
use crate::topic::{filter_matches, validate_filter, validate_topic, TopicFilter, MAX_TOPIC_BYTES};

/// Most lines read from one input (the checks are quadratic in them).
const MAX_LINES: usize = 12;
/// Overlap is checked by enumerating topics: only for filters this short,
/// and among the first filters of an input.
const MAX_BRUTE_LEVELS: usize = 4;
const MAX_BRUTE_FILTERS: usize = 8;

pub fn topic_match(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut filters: Vec<TopicFilter> = Vec::new();
    let mut topics: Vec<String> = Vec::new();
    for line in text.split('\n').take(MAX_LINES) {
        let as_filter = validate_filter(line);
        let as_topic = validate_topic(line);
        assert_eq!(as_filter.is_ok(), reference_valid_filter(line), "filter {line:?}: {as_filter:?}");
        assert_eq!(as_topic.is_ok(), reference_valid_topic(line), "topic {line:?}: {as_topic:?}");
        let publish = ggcore_ipc::topic::check_publish(line, 0, 1);
        assert_eq!(publish.is_ok(), as_topic.is_ok(), "{line:?}");
        if let Ok(f) = TopicFilter::new(line) {
            assert_eq!(f.as_str(), line);
            topics.push(super::group::instance_of(&f));
            filters.push(f);
        }
        if as_topic.is_ok() {
            topics.push(line.to_string());
        }
    }
    let mut index = FilterIndex::default();
    for (i, f) in filters.iter().enumerate() {
        index.insert(f.as_str(), i);
    }
    assert_eq!(index.len(), filters.len());
    let mut found = Vec::new();
    for t in &topics {
        assert!(validate_topic(t).is_ok(), "{t:?}");
        let tv: Vec<&str> = t.split('/').collect();
        let linear: Vec<usize> = filters.iter().enumerate().filter(|(_, f)| f.matches(t)).map(|(i, _)| i).collect();
        for (i, f) in filters.iter().enumerate() {
            let fv: Vec<&str> = f.as_str().split('/').collect();
            assert_eq!(linear.contains(&i), reference_matches(&fv, &tv, true), "filter {f:?} vs topic {t:?}");
        }
        found.clear();
        index.matches(t, &mut found);
        found.sort_unstable();
        assert_eq!(found, linear, "trie vs linear scan for topic {t:?}");
    }
    for (i, a) in filters.iter().enumerate() {
        assert!(a.overlaps(a), "{a:?} does not overlap itself");
        for (j, b) in filters.iter().enumerate() {
            let got = a.overlaps(b);
            assert_eq!(got, b.overlaps(a), "overlap of {a:?} and {b:?} is not symmetric");
            let brute = if i < MAX_BRUTE_FILTERS && j < MAX_BRUTE_FILTERS { brute_overlap(a.as_str(), b.as_str()) } else { None };
            if let Some(want) = brute {
                assert_eq!(got, want, "overlap of {a:?} and {b:?}");
            }
            // Overlap is what grants a SUBSCRIBE: a filter matching a topic
            // also matched by the subject must be granted.
            for t in &topics {
                if a.matches(t) && b.matches(t) {
                    assert!(got, "{a:?} and {b:?} both match {t:?}");
                }
            }
        }
    }
}

fn reference_valid_filter(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_TOPIC_BYTES || s.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = s.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| {
        let hash_ok = !l.contains('#') || (*l == "#" && i == levels.len() - 1);
        let plus_ok = !l.contains('+') || *l == "+";
        hash_ok && plus_ok
    })
}

fn reference_valid_topic(s: &str) -> bool {
    reference_valid_filter(s) && !s.contains(['+', '#'])
}

/// Level-by-level recursion; `first`: wildcards at the first level never match `$` topics.
fn reference_matches(f: &[&str], t: &[&str], first: bool) -> bool {
    let dollar = first && t.first().is_some_and(|l| l.starts_with('$'));
    match (f.first(), t.first()) {
        (Some(&"#"), _) => !dollar,
        (Some(&"+"), Some(_)) => !dollar && reference_matches(&f[1..], &t[1..], false),
        (Some(fl), Some(tl)) => fl == tl && reference_matches(&f[1..], &t[1..], false),
        (None, None) => true,
        _ => false,
    }
}

/// Whether some topic matches both filters, by trying every topic made of
/// their literal levels and one fresh level; `None` when they are too long.
fn brute_overlap(a: &str, b: &str) -> Option<bool> {
    let av: Vec<&str> = a.split('/').collect();
    let bv: Vec<&str> = b.split('/').collect();
    let longest = av.len().max(bv.len());
    if longest > MAX_BRUTE_LEVELS {
        return None;
    }
    // A level no filter names (so that wildcards have something of their own).
    let fresh = "\u{1}fresh";
    let choices: Vec<Vec<&str>> = (0..=longest)
        .map(|i| {
            let mut c: Vec<&str> = [av.get(i), bv.get(i)].into_iter().flatten().copied().filter(|l| *l != "+" && *l != "#").collect();
            c.push(fresh);
            c.dedup();
            c
        })
        .collect();
    let mut topic: Vec<&str> = Vec::new();
    Some((1..=longest + 1).any(|len| any_topic(&choices, len, &mut topic, &|t| filter_matches(a, t) && filter_matches(b, t))))
}

fn any_topic<'a>(choices: &[Vec<&'a str>], len: usize, prefix: &mut Vec<&'a str>, test: &dyn Fn(&str) -> bool) -> bool {
    if prefix.len() == len {
        return test(&prefix.join("/"));
    }
    for c in &choices[prefix.len()] {
        prefix.push(c);
        let hit = any_topic(choices, len, prefix, test);
        prefix.pop();
        if hit {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brute_force_overlap_examples() {
        assert_eq!(brute_overlap("a/+", "+/b"), Some(true));
        assert_eq!(brute_overlap("#", "$aws/x"), Some(false));
        assert_eq!(brute_overlap("a/#", "a"), Some(true));
        assert_eq!(brute_overlap("a/b", "a/c"), Some(false));
        assert_eq!(brute_overlap("+/+/+/+/+/+", "#"), None);
    }
}
