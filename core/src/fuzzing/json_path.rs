//! Checks that an error's JSON path (as `a.b[2].c`, the form group.json and
//! config.json problems are reported in) names a place in the document.

use serde_json::Value;

/// What a path may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A value present in the document.
    Present,
    /// A value present, or a member missing from an object that is present
    /// (a required field the document lacks).
    PresentOrMissingMember,
}

/// Whether `path` names a place in `doc`. Keys may themselves hold `.`, `[`
/// or `]` (unknown fields, environment variable names), so every reading of
/// the path is tried.
pub fn names(doc: &Value, path: &str, want: Want) -> bool {
    walk(doc, path, want)
}

fn walk(v: &Value, rest: &str, want: Want) -> bool {
    if rest.is_empty() {
        return true;
    }
    match v {
        Value::Object(map) => {
            for (key, child) in map {
                let Some(after) = rest.strip_prefix(key.as_str()) else { continue };
                let found = match after.as_bytes().first() {
                    None => true,
                    Some(b'.') => walk(child, &after[1..], want),
                    Some(b'[') => walk(child, after, want),
                    Some(_) => false,
                };
                if found {
                    return true;
                }
            }
            // The last segment may name a member that is not there.
            want == Want::PresentOrMissingMember && !map.contains_key(rest) && is_field_name(rest)
        }
        Value::Array(items) => {
            let Some(inner) = rest.strip_prefix('[') else { return false };
            let Some(close) = inner.find(']') else { return false };
            let Ok(i) = inner[..close].parse::<usize>() else { return false };
            let Some(child) = items.get(i) else { return false };
            let after = &inner[close + 1..];
            match after.as_bytes().first() {
                None => true,
                Some(b'.') => walk(child, &after[1..], want),
                Some(b'[') => walk(child, after, want),
                Some(_) => false,
            }
        }
        _ => false,
    }
}

/// A field name as the schemas spell them (`Id`, `thingArn`).
fn is_field_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_resolved() {
        let doc: Value = serde_json::from_str(r#"{"a":{"b":[{"c":1},{"x.y":2}]},"k[0]":{"z":3}}"#).unwrap();
        for p in ["a", "a.b", "a.b[0]", "a.b[0].c", "a.b[1].x.y", "k[0].z"] {
            assert!(names(&doc, p, Want::Present), "{p}");
        }
        for p in ["b", "a.b[2]", "a.b[0].d", "a.b.c", "a.b[0]c", "k[0].z.q"] {
            assert!(!names(&doc, p, Want::Present), "{p}");
        }
        assert!(names(&doc, "a.b[0].Id", Want::PresentOrMissingMember));
        assert!(!names(&doc, "a.q.Id", Want::PresentOrMissingMember));
    }
}
