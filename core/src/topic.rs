//! MQTT topic names and topic filters (MQTT 3.1.1 §4.7).
//!
//! A [`TopicFilter`] may hold `+` and `#`; a topic name (what a PUBLISH carries)
//! may not. Matching follows the specification, including §4.7.2: a filter that
//! starts with a wildcard does not match a topic whose first level starts with
//! `$` (such as `$aws/things/...`).

use std::fmt;
use std::sync::Arc;

pub use ggcore_ipc::topic::{validate_filter, validate_topic, TopicError, MAX_TOPIC_BYTES};

/// A validated topic filter (a subscription's Subject, or a device's SUBSCRIBE).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(Arc<str>);

impl TopicFilter {
    pub fn new(filter: &str) -> Result<Self, TopicError> {
        validate_filter(filter)?;
        Ok(Self(Arc::from(filter)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this filter matches the concrete `topic`.
    pub fn matches(&self, topic: &str) -> bool {
        filter_matches(&self.0, topic)
    }

    /// Whether some topic could match both this filter and `other`.
    pub fn overlaps(&self, other: &TopicFilter) -> bool {
        filters_overlap(&self.0, &other.0)
    }
}

impl fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub use ggcore_ipc::topic::filter_matches;
use ggcore_ipc::topic::starts_with_dollar;

/// Whether some concrete topic matches both filters (both assumed valid).
pub fn filters_overlap(a: &str, b: &str) -> bool {
    let mut x = a.split('/');
    let mut y = b.split('/');
    let mut first = true;
    loop {
        match (x.next(), y.next()) {
            (Some("#"), other) | (other, Some("#")) => {
                // The '#' side accepts whatever the other side still demands,
                // except that a leading wildcard cannot meet a '$' level.
                return !(first && other.is_some_and(|l| l != "+" && l != "#" && starts_with_dollar(l)));
            }
            (Some(l), Some(r)) => {
                let ok = match (l, r) {
                    ("+", "+") => true,
                    ("+", lit) | (lit, "+") => !(first && starts_with_dollar(lit)),
                    (l, r) => l == r,
                };
                if !ok {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_filters() {
        for ok in ["a", "a/b", "+", "#", "a/+/b", "a/#", "+/+", "$aws/things/x/shadow/#", "a//b", "/"] {
            assert_eq!(validate_filter(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_filter("a/#/b"), Err(TopicError::MisplacedHash));
        assert_eq!(validate_filter("a#"), Err(TopicError::MisplacedHash));
        assert_eq!(validate_filter("a/b+"), Err(TopicError::MisplacedPlus));
        assert_eq!(validate_filter(""), Err(TopicError::Empty));
        assert_eq!(validate_filter("a\0"), Err(TopicError::Nul));
        assert_eq!(validate_topic("a/+"), Err(TopicError::WildcardInTopic));
        assert_eq!(validate_topic("a/b"), Ok(()));
    }

    #[test]
    fn matches_by_the_book() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+/+", "/x", true),
            ("+", "/x", false),
            ("#", "$aws/things/x", false),
            ("+/things/#", "$aws/things/x", false),
            ("$aws/things/+/shadow/#", "$aws/things/x/shadow/update", true),
            ("a//b", "a//b", true),
            ("a/+/b", "a//b", true),
        ];
        for (f, t, want) in cases {
            assert_eq!(filter_matches(f, t), want, "{f} vs {t}");
        }
    }

    #[test]
    fn overlap_examples() {
        assert!(filters_overlap("a/#", "a"));
        assert!(filters_overlap("a/+", "+/b"));
        assert!(!filters_overlap("a/+", "a/b/c"));
        assert!(filters_overlap("#", "a/b"));
        assert!(!filters_overlap("#", "$aws/x"));
        assert!(filters_overlap("$aws/#", "$aws/things/+"));
        assert!(!filters_overlap("+/x", "$aws/x"));
        assert!(filters_overlap("+/x", "+/+"));
        assert!(filters_overlap("#", "+"));
        assert!(!filters_overlap("a/b", "a/c"));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn level() -> impl Strategy<Value = String> {
            prop_oneof![Just("a".to_string()), Just("b".to_string()), Just("$s".to_string()), Just(String::new())]
        }

        fn topic() -> impl Strategy<Value = String> {
            prop::collection::vec(level(), 1..5).prop_map(|v| v.join("/"))
        }

        fn filter() -> impl Strategy<Value = String> {
            let lv = prop_oneof![4 => level(), 2 => Just("+".to_string())];
            (prop::collection::vec(lv, 1..5), any::<bool>()).prop_map(|(mut v, hash)| {
                if hash {
                    v.push("#".to_string());
                }
                v.join("/")
            })
        }

        /// Reference matcher: level-by-level recursion, written for clarity only.
        fn reference_matches(f: &[&str], t: &[&str], first: bool) -> bool {
            match (f.first(), t.first()) {
                (Some(&"#"), _) => !(first && t.first().is_some_and(|l| l.starts_with('$'))),
                (Some(&"+"), Some(tl)) => !(first && tl.starts_with('$')) && reference_matches(&f[1..], &t[1..], false),
                (Some(fl), Some(tl)) => fl == tl && reference_matches(&f[1..], &t[1..], false),
                (None, None) => true,
                _ => false,
            }
        }

        /// Every topic of up to 5 levels over the alphabet, for brute-force overlap.
        fn all_topics() -> &'static [String] {
            static ALL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
            ALL.get_or_init(build_all_topics)
        }

        fn build_all_topics() -> Vec<String> {
            let levels = ["a", "b", "$s", "", "c"];
            let mut out: Vec<Vec<&str>> = levels.iter().map(|l| vec![*l]).collect();
            let mut frontier = out.clone();
            for _ in 1..6 {
                let mut next = Vec::new();
                for t in &frontier {
                    for l in levels {
                        let mut n = t.clone();
                        n.push(l);
                        next.push(n);
                    }
                }
                out.extend(next.iter().cloned());
                frontier = next;
            }
            out.into_iter().map(|v| v.join("/")).collect()
        }

        proptest! {
            #[test]
            fn matcher_agrees_with_reference(f in filter(), t in topic()) {
                let fv: Vec<&str> = f.split('/').collect();
                let tv: Vec<&str> = t.split('/').collect();
                prop_assert_eq!(filter_matches(&f, &t), reference_matches(&fv, &tv, true));
            }

            #[test]
            fn overlap_agrees_with_brute_force(a in filter(), b in filter()) {
                let brute = all_topics().iter().any(|t| filter_matches(&a, t) && filter_matches(&b, t));
                prop_assert_eq!(filters_overlap(&a, &b), brute, "{} vs {}", a, b);
            }
        }
    }
}
