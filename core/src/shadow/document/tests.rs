use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::*;

fn update(shadow: &Shadow, req: Value, now: u64) -> Result<Updated, Rejection> {
    let req = parse_update(&serde_json::to_vec(&req).unwrap())?;
    shadow.update(&req, now)
}

#[test]
fn first_update_is_version_1_with_metadata_and_delta() {
    let u = update(
        &Shadow::default(),
        json!({"state": {"desired": {"color": "red", "n": {"x": 1}}, "reported": {"color": "blue"}}, "clientToken": "t1"}),
        100,
    )
    .unwrap();
    assert_eq!(u.shadow.version, 1);
    assert_eq!(u.accepted["version"], 1);
    assert_eq!(u.accepted["clientToken"], "t1");
    assert_eq!(u.accepted["metadata"]["desired"]["n"]["x"]["timestamp"], 100);
    assert_eq!(u.shadow.meta_desired.as_ref().unwrap()["color"], json!({"timestamp": 100}));
    let delta = u.delta.expect("delta");
    assert_eq!(delta["state"], json!({"color": "red", "n": {"x": 1}}));
    assert_eq!(delta["metadata"]["n"]["x"]["timestamp"], 100);
    assert_eq!(delta["version"], 1);
    assert!(u.documents.get("previous").is_none(), "a new shadow has no previous");
    assert_eq!(u.documents["current"]["version"], 1);
}

#[test]
fn merge_deletes_with_null_merges_objects_and_replaces_arrays() {
    let s = update(&Shadow::default(), json!({"state": {"reported": {"a": 1, "o": {"x": 1, "y": 2}, "l": [1, 2]}}}), 1).unwrap().shadow;
    let u = update(&s, json!({"state": {"reported": {"a": null, "o": {"y": 3, "z": {"k": true}}, "l": [3]}}}), 2).unwrap();
    assert_eq!(u.shadow.reported.clone().map(Value::Object).unwrap(), json!({"o": {"x": 1, "y": 3, "z": {"k": true}}, "l": [3]}));
    let m = Value::Object(u.shadow.meta_reported.clone().unwrap());
    assert_eq!(m["o"]["x"]["timestamp"], 1);
    assert_eq!(m["o"]["y"]["timestamp"], 2);
    assert_eq!(m["l"], json!([{"timestamp": 2}]));
    assert!(m.get("a").is_none());
    assert!(u.delta.is_none(), "no desired in the request");
    assert_eq!(u.documents["previous"]["version"], 1);
    assert_eq!(u.documents["previous"]["state"]["reported"]["a"], 1);
    // Deleting every key removes the section; a null section removes it whole.
    let u2 = update(&u.shadow, json!({"state": {"reported": {"o": null, "l": null}, "desired": {"q": 1}}}), 3).unwrap();
    assert!(u2.shadow.reported.is_none());
    let u3 = update(&u2.shadow, json!({"state": {"desired": null}}), 4).unwrap();
    assert!(u3.shadow.desired.is_none() && u3.shadow.meta_desired.is_none());
    assert_eq!(u3.shadow.state(), json!({}));
    assert_eq!(u3.shadow.version, 4);
}

#[test]
fn delta_is_sent_only_for_desired_updates_that_leave_a_difference() {
    let s = update(&Shadow::default(), json!({"state": {"desired": {"on": true}}}), 1).unwrap();
    assert_eq!(s.delta.unwrap()["state"], json!({"on": true}));
    let r = update(&s.shadow, json!({"state": {"reported": {"on": true}}}), 2).unwrap();
    assert!(r.delta.is_none());
    assert!(r.shadow.delta().is_none());
    let d = update(&r.shadow, json!({"state": {"desired": {"on": true}}}), 3).unwrap();
    assert!(d.delta.is_none(), "desired equals reported");
    let get = d.shadow.get_document(Some("g"), 9);
    assert!(get["state"].get("delta").is_none());
    assert_eq!(get["clientToken"], "g");
    assert_eq!(get["timestamp"], 9);
}

#[test]
fn version_conflict_and_optimistic_locking() {
    let s = update(&Shadow::default(), json!({"state": {"reported": {"a": 1}}}), 1).unwrap().shadow;
    let e = update(&s, json!({"state": {"reported": {"a": 2}}, "version": 5}), 2).unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (409, "Version conflict"));
    assert_eq!(update(&s, json!({"state": {"reported": {"a": 2}}, "version": 1}), 2).unwrap().shadow.version, 2);
}

#[test]
fn bad_requests_get_aws_codes() {
    let bad = |p: &[u8]| parse_update(p).unwrap_err();
    assert_eq!(bad(b"{nope").code, 400);
    assert_eq!(bad(b"{nope").message, "Payload contains invalid json");
    assert_eq!(bad(b"[1]").code, 400);
    assert_eq!(bad(br#"{"desired": {}}"#).message, "Missing required node: state");
    assert_eq!(bad(br#"{"state": 3}"#).code, 400);
    assert_eq!(bad(br#"{"state": {"desired": 3}}"#).code, 400);
    assert_eq!(bad(br#"{"state": {"delta": {}}}"#).code, 400);
    assert_eq!(bad(br#"{"state": {}}"#).code, 400);
    assert_eq!(bad(br#"{"state": {"desired": {}}, "version": "1"}"#).code, 400);
    assert_eq!(bad(br#"{"state": {"desired": {}}, "version": -1}"#).code, 400);
    assert_eq!(bad(format!(r#"{{"state": {{"desired": {{}}}}, "clientToken": "{}"}}"#, "x".repeat(65)).as_bytes()).code, 400);
    let deep = br#"{"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}}"#;
    assert!(bad(deep).message.contains("maximum is 6"));
    let ok6 = br#"{"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}}"#;
    assert!(parse_update(ok6).is_ok());
    let big = format!(r#"{{"state": {{"desired": {{"a": "{}"}}}}}}"#, "x".repeat(MAX_DOCUMENT_BYTES));
    assert_eq!(bad(big.as_bytes()).code, 413);
    assert_eq!(token_of(br#"{"clientToken": "abc", "state": 1}"#).as_deref(), Some("abc"));
    assert_eq!(parse_token_request(b"").unwrap(), None);
    assert_eq!(parse_token_request(br#"{"clientToken": "z"}"#).unwrap().as_deref(), Some("z"));
    assert_eq!(parse_token_request(b"{").unwrap_err().code, 400);
}

#[test]
fn a_state_growing_past_8_kib_is_413_and_nothing_changes() {
    let half = "y".repeat(5000);
    let s = update(&Shadow::default(), json!({"state": {"desired": {"a": half}}}), 1).unwrap().shadow;
    let e = update(&s, json!({"state": {"reported": {"b": half}}}), 2).unwrap_err();
    assert_eq!(e.code, 413);
    assert_eq!(s.version, 1);
}

#[test]
fn delete_keeps_the_version_and_a_deleted_shadow_is_absent() {
    let s = update(&Shadow::default(), json!({"state": {"reported": {"a": 1}}}), 1).unwrap().shadow;
    let s = update(&s, json!({"state": {"reported": {"a": 2}}}), 2).unwrap().shadow;
    let (gone, doc) = s.delete("t", Some("c"), 3).unwrap();
    assert_eq!(doc, json!({"version": 2, "timestamp": 3, "clientToken": "c"}));
    assert!(!gone.exists());
    assert_eq!(gone.delete("t", None, 4).unwrap_err().code, 404);
    let back = Shadow::from_bytes(&gone.to_bytes()).unwrap();
    assert_eq!(back, gone);
    let u = update(&back, json!({"state": {"reported": {"b": 1}}}), 5).unwrap();
    assert_eq!(u.shadow.version, 3, "the version continues after a delete");
    assert_eq!(u.shadow.state(), json!({"reported": {"b": 1}}));
    assert!(u.documents.get("previous").is_none());
}

#[test]
fn stored_form_round_trips() {
    let s = update(&Shadow::default(), json!({"state": {"desired": {"a": [1, {"b": 2}]}, "reported": {"c": "d"}}}), 7).unwrap().shadow;
    assert_eq!(Shadow::from_bytes(&s.to_bytes()).unwrap(), s);
    assert!(Shadow::from_bytes(b"{}").is_err());
}

#[test]
fn thing_names() {
    assert!(check_thing_name("Bulb-1:a_b").is_ok());
    assert!(check_thing_name("").is_err());
    assert!(check_thing_name("a/b").is_err());
    assert!(check_thing_name("+").is_err());
    assert!(check_thing_name(&"a".repeat(129)).is_err());
}

// ---- the reference model: leaves by path -----------------------------------

type Path = Vec<String>;

/// A section as its leaves (non-object values) by path, with their time stamps.
#[derive(Debug, Clone, Default)]
struct Model {
    leaves: BTreeMap<Path, (Value, u64)>,
}

impl Model {
    fn apply(&mut self, req: &Map<String, Value>, now: u64, at: &Path) {
        for (k, v) in req {
            let mut p = at.clone();
            p.push(k.clone());
            // Whatever was a leaf on the way (a scalar replaced by an object) goes.
            for i in 1..p.len() {
                self.leaves.remove(&p[..i]);
            }
            match v {
                Value::Object(o) => {
                    // A non-object at p is replaced; an object at p merges.
                    self.leaves.remove(&p);
                    self.apply(o, now, &p);
                }
                Value::Null => self.remove_under(&p),
                other => {
                    self.remove_under(&p);
                    self.leaves.insert(p, (other.clone(), now));
                }
            }
        }
    }

    fn remove_under(&mut self, p: &Path) {
        self.leaves.retain(|k, _| !k.starts_with(p));
    }

    fn tree(&self) -> Option<Value> {
        if self.leaves.is_empty() {
            return None;
        }
        let mut root = Value::Object(Map::new());
        for (p, (v, _)) in &self.leaves {
            let mut at = &mut root;
            for k in &p[..p.len() - 1] {
                at = at.as_object_mut().unwrap().entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
            }
            at.as_object_mut().unwrap().insert(p[p.len() - 1].clone(), v.clone());
        }
        Some(root)
    }
}

/// The paths of a metadata tree's leaves (`{"timestamp": T}` or an array).
fn meta_paths(meta: &Value, at: &mut Path, out: &mut Vec<Path>) {
    match meta {
        Value::Object(m) if m.len() == 1 && m.get("timestamp").is_some_and(Value::is_u64) => out.push(at.clone()),
        Value::Object(m) => {
            for (k, v) in m {
                at.push(k.clone());
                meta_paths(v, at, out);
                at.pop();
            }
        }
        _ => out.push(at.clone()),
    }
}

fn meta_at<'a>(meta: &'a Value, p: &Path) -> Option<&'a Value> {
    p.iter().try_fold(meta, |m, k| m.get(k))
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![Just("a".to_string()), Just("b".to_string()), Just("c".to_string())]
}

fn value(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        3 => (0i64..3).prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => prop::collection::vec(0i64..3, 0..3).prop_map(|v| json!(v)),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![3 => leaf, 2 => object(depth - 1).prop_map(Value::Object)].boxed()
}

fn object(depth: u32) -> BoxedStrategy<Map<String, Value>> {
    prop::collection::btree_map(key(), value(depth), 0..3).prop_map(|m| m.into_iter().collect()).boxed()
}

fn section() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![3 => Just(None), 1 => Just(Some(Value::Null)), 6 => object(2).prop_map(|o| Some(Value::Object(o)))]
}

proptest! {
    #[test]
    fn updates_match_the_leaf_model(reqs in prop::collection::vec((section(), section()), 1..12)) {
        let mut shadow = Shadow::default();
        let mut desired = Model::default();
        let mut reported = Model::default();
        for (now, (d, r)) in reqs.into_iter().enumerate() {
            let now = now as u64 + 1;
            let mut state = Map::new();
            if let Some(d) = &d { state.insert("desired".into(), d.clone()); }
            if let Some(r) = &r { state.insert("reported".into(), r.clone()); }
            let parsed = parse_update(&serde_json::to_vec(&json!({"state": state})).unwrap());
            let Ok(req) = parsed else {
                prop_assert!(d.is_none() && r.is_none(), "only an empty state is refused here");
                continue;
            };
            let before = shadow.version;
            let u = shadow.update(&req, now).unwrap();
            for (model, sec) in [(&mut desired, &d), (&mut reported, &r)] {
                match sec {
                    None => {}
                    Some(Value::Null) => *model = Model::default(),
                    Some(Value::Object(o)) => model.apply(o, now, &vec![]),
                    Some(_) => unreachable!(),
                }
            }
            shadow = u.shadow;
            prop_assert_eq!(shadow.version, before + 1);
            prop_assert_eq!(shadow.desired.clone().map(Value::Object), desired.tree());
            prop_assert_eq!(shadow.reported.clone().map(Value::Object), reported.tree());
            for (model, meta) in [(&desired, &shadow.meta_desired), (&reported, &shadow.meta_reported)] {
                let meta = meta.clone().map(Value::Object).unwrap_or(json!({}));
                for (p, (v, ts)) in &model.leaves {
                    let m = meta_at(&meta, p);
                    let expect = match v {
                        Value::Array(a) => json!(a.iter().map(|_| json!({"timestamp": ts})).collect::<Vec<_>>()),
                        _ => json!({"timestamp": ts}),
                    };
                    prop_assert_eq!(m, Some(&expect), "metadata at {:?}", p);
                }
                // And nothing else: no metadata left for deleted or replaced leaves.
                let mut paths = Vec::new();
                meta_paths(&meta, &mut Vec::new(), &mut paths);
                let expected: Vec<Path> = model.leaves.keys().cloned().collect();
                let root_only = paths == vec![Vec::<String>::new()] && expected.is_empty();
                prop_assert!(root_only || paths == expected, "metadata leaves {:?}, state leaves {:?}", paths, expected);
            }
            // The delta: every desired leaf whose reported leaf differs or is missing.
            let mut want = Model::default();
            for (p, v) in &desired.leaves {
                if reported.leaves.get(p).map(|r| &r.0) != Some(&v.0) {
                    want.leaves.insert(p.clone(), v.clone());
                }
            }
            prop_assert_eq!(shadow.delta().map(Value::Object), want.tree());
            let sent_delta = u.delta.map(|d| d["state"].clone());
            let expect_sent = if matches!(d, Some(Value::Object(_))) { want.tree() } else { None };
            prop_assert_eq!(sent_delta, expect_sent);
            prop_assert_eq!(Shadow::from_bytes(&shadow.to_bytes()).unwrap(), shadow.clone());
        }
    }
}
