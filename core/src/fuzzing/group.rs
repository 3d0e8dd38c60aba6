//! group.json: compile as `ggcore deploy` does; a valid group must route, an
//! invalid one must say where, with a JSON path that names a place in the file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::json_path::{names, Want};
use crate::group::{compile_text, CompileContext, Endpoint, Group, GroupError, Problem};
use crate::router::RouteTable;
use crate::topic::TopicFilter;

/// The directory `Functions[].Code` is relative to (`fuzz/fixture/group`):
/// holds a code directory `code/` and a code package `code.zip`.
pub(super) fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fixture/group")
}

/// Runtimes as a machine with the Python plugin answers: one native version,
/// other python3 versions with a warning, everything else refused.
fn runtimes(runtime: &str) -> Result<Option<String>, String> {
    match runtime {
        "python3.11" | "executable" => Ok(None),
        r if ggcore_plugin_abi::runtime_matches("python3.*", r) => Ok(Some(format!("runtime '{r}' runs on the installed python3.11"))),
        r => Err(format!("no runtime plugin serves runtime '{r}'")),
    }
}

pub fn group_compile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let base = fixture_dir();
    let cx = CompileContext { base_dir: Some(&base), runtimes: &runtimes, unserved: &[] };
    // The document as the paths refer to it: definition members unwrapped.
    let doc = serde_json::from_str::<Value>(text).ok().filter(Value::is_object).map(unwrap_definitions);
    match compile_text("group.json", text, &cx) {
        Ok(compiled) => {
            let doc = doc.unwrap_or_else(|| panic!("a group that is not a JSON object compiled"));
            for w in &compiled.warnings {
                check_problem(&doc, w, "warning");
            }
            check_group(&compiled.group);
        }
        Err(e) => check_error(doc.as_ref(), &e),
    }
}

fn unwrap_definitions(mut doc: Value) -> Value {
    if let Some(obj) = doc.as_object_mut() {
        crate::group::raw::unwrap_definitions(obj);
    }
    doc
}

fn check_problem(doc: &Value, p: &Problem, kind: &str) {
    assert!(!p.message.is_empty(), "{kind} without a message at {:?}", p.path);
    let want = if p.message.starts_with("is required") { Want::PresentOrMissingMember } else { Want::Present };
    assert!(names(doc, &p.path, want), "{kind} path {:?} names nothing in the group ({})", p.path, p.message);
}

fn check_error(doc: Option<&Value>, e: &GroupError) {
    assert!(!e.problems.is_empty(), "a group refused without a problem");
    let shown = e.to_string();
    assert!(shown.starts_with("group.json: the group is invalid"), "{shown}");
    match doc {
        // Not JSON, or not an object: one problem for the whole file.
        None => {
            assert_eq!(e.problems.len(), 1, "{:?}", e.problems);
            assert!(e.problems[0].path.is_empty(), "{:?}", e.problems[0]);
        }
        Some(doc) => {
            for p in &e.problems {
                assert!(!p.path.is_empty(), "a problem without a JSON path: {}", p.message);
                check_problem(doc, p, "problem");
            }
        }
    }
}

/// What every valid group promises the router and the deployer.
fn check_group(g: &Group) {
    let core_name = g.core.as_ref().map(|c| c.thing.name());
    let mut things = HashSet::new();
    let mut certs = HashSet::new();
    for d in &g.devices {
        assert!(things.insert(d.thing.name()), "device {} twice", d.thing.name());
        assert_ne!(Some(d.thing.name()), core_name, "the core is a device of its group");
        if let Some(c) = &d.certificate {
            assert!(certs.insert(c.fingerprint()), "certificate {} twice", c.fingerprint());
        }
    }
    let mut arns = HashSet::new();
    for f in &g.functions {
        assert!(arns.insert(f.arn.unqualified()), "function {} twice", f.arn);
        assert!(!f.arn.is_system(), "system function {} deployed", f.arn);
        assert_ne!(f.arn.qualifier(), Some("$LATEST"));
        assert!((1..=900).contains(&f.timeout.as_secs()), "{:?}", f.timeout);
        assert!((2048..=4 * 1024 * 1024).contains(&f.memory_kb), "{}", f.memory_kb);
        assert!(!f.executable.trim().is_empty());
        assert!(f.code.as_deref().is_some_and(Path::exists), "function {} without code", f.arn);
        assert!(f.environment.keys().all(|k| !k.is_empty() && !k.contains(['=', '\0'])));
    }
    for s in &g.subscriptions {
        for e in [&s.source, &s.target] {
            match e {
                Endpoint::Device(t) => assert!(g.device_by_name(t.name()).is_some(), "subscription {} names an unknown device", s.id),
                Endpoint::Function(a) => assert!(g.function(a).is_some(), "subscription {} names an unknown function", s.id),
                Endpoint::Cloud | Endpoint::Shadow => {}
            }
        }
        assert!(!(s.source == Endpoint::Cloud && s.target == Endpoint::Cloud));
    }
    check_routes(g);
}

/// Every subscription routes a topic its subject matches from its source to
/// its target, and grants a device target its own subject.
fn check_routes(g: &Group) {
    let table = RouteTable::compile(Arc::new(g.clone()), 1);
    let mut out = Vec::new();
    for s in &g.subscriptions {
        let topic = instance_of(&s.subject);
        assert!(s.subject.matches(&topic), "{topic} does not match {}", s.subject);
        out.clear();
        table.route(&s.source, &topic, &mut out);
        assert!(out.iter().any(|id| table.target(*id) == &s.target), "subscription {} does not route {topic}", s.id);
        let mut unique = out.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), out.len(), "a target routed twice");
        if let Endpoint::Device(t) = &s.target {
            assert!(table.grants(t.name(), &s.subject), "device {} not granted {}", t.name(), s.subject);
        }
    }
    for d in &g.devices {
        if let Some(c) = &d.certificate {
            let admitted = table.admit(c.fingerprint(), None).map(|a| a.thing.name());
            assert_eq!(admitted, Some(d.thing.name()));
        }
    }
}

/// A concrete topic matched by `filter`: each wildcard becomes the level `x`.
pub(super) fn instance_of(filter: &TopicFilter) -> String {
    filter.as_str().split('/').map(|l| if l == "+" || l == "#" { "x" } else { l }).collect::<Vec<_>>().join("/")
}
