//! The compiled subscription table: built once per deployment, read lock-free by
//! every publisher (`ArcSwap`), replaced whole on redeploy.

use std::collections::HashMap;
use std::sync::Arc;

use super::index::FilterIndex;
use crate::group::{Device, Endpoint, Group};
use crate::topic::TopicFilter;

/// Index of a target in [`RouteTable::target`].
pub type TargetId = u32;

/// Subscription table: source → topic-filter index → targets.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Increases with every table the router installs.
    pub generation: u64,
    pub group: Arc<Group>,
    targets: Vec<Endpoint>,
    sources: HashMap<Endpoint, FilterIndex<TargetId>>,
    devices: HashMap<String, Device>,
    by_fingerprint: HashMap<String, String>,
    /// Subjects of the subscriptions that target each device (thing name).
    grants: HashMap<String, Vec<TopicFilter>>,
}

impl RouteTable {
    pub fn compile(group: Arc<Group>, generation: u64) -> Self {
        let mut targets: Vec<Endpoint> = Vec::new();
        let mut target_ids: HashMap<Endpoint, TargetId> = HashMap::new();
        let mut sources: HashMap<Endpoint, FilterIndex<TargetId>> = HashMap::new();
        let mut grants: HashMap<String, Vec<TopicFilter>> = HashMap::new();
        for s in &group.subscriptions {
            let id = *target_ids.entry(s.target.clone()).or_insert_with(|| {
                targets.push(s.target.clone());
                (targets.len() - 1) as TargetId
            });
            sources.entry(s.source.clone()).or_default().insert(s.subject.as_str(), id);
            if let Endpoint::Device(t) = &s.target {
                let v = grants.entry(t.name().to_string()).or_default();
                if !v.contains(&s.subject) {
                    v.push(s.subject.clone());
                }
            }
        }
        let mut devices = HashMap::new();
        let mut by_fingerprint = HashMap::new();
        for d in &group.devices {
            if let Some(c) = &d.certificate {
                by_fingerprint.insert(c.fingerprint().to_string(), d.thing.name().to_string());
            }
            devices.insert(d.thing.name().to_string(), d.clone());
        }
        Self { generation, group, targets, sources, devices, by_fingerprint, grants }
    }

    /// Appends the targets of a message from `source` on `topic` to `out`, each once.
    pub fn route(&self, source: &Endpoint, topic: &str, out: &mut Vec<TargetId>) {
        if let Some(ix) = self.sources.get(source) {
            let start = out.len();
            ix.matches(topic, out);
            let tail = &mut out[start..];
            if tail.len() > 1 {
                tail.sort_unstable();
                let mut w = 1;
                for r in 1..tail.len() {
                    if tail[r] != tail[w - 1] {
                        tail[w] = tail[r];
                        w += 1;
                    }
                }
                out.truncate(start + w);
            }
        }
    }

    pub fn target(&self, id: TargetId) -> &Endpoint {
        &self.targets[id as usize]
    }

    /// Whether `source` may publish anything at all.
    pub fn has_source(&self, source: &Endpoint) -> bool {
        self.sources.contains_key(source)
    }

    /// The device a client certificate identifies: by fingerprint (the id inside
    /// its `CertificateArn`), else a device without `CertificateArn` whose thing
    /// name equals the certificate's CN.
    pub fn admit(&self, fingerprint: &str, common_name: Option<&str>) -> Option<&Device> {
        if let Some(name) = self.by_fingerprint.get(fingerprint) {
            return self.devices.get(name);
        }
        let cn = common_name?;
        self.devices.get(cn).filter(|d| d.certificate.is_none())
    }

    pub fn device(&self, thing_name: &str) -> Option<&Device> {
        self.devices.get(thing_name)
    }

    /// Whether a device's SUBSCRIBE filter can be granted: some topic could match
    /// both it and the subject of a subscription targeting the device.
    pub fn grants(&self, thing_name: &str, filter: &TopicFilter) -> bool {
        self.grants.get(thing_name).is_some_and(|subjects| subjects.iter().any(|s| s.overlaps(filter)))
    }

    pub fn subscription_count(&self) -> usize {
        self.group.subscriptions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{CertificateArn, Subscription, ThingArn};

    fn dev(name: &str, fp: Option<&str>) -> Device {
        Device {
            id: name.into(),
            thing: ThingArn::build("r", "a", name),
            certificate: fp.map(|f| CertificateArn::build("r", "a", f)),
            sync_shadow: false,
        }
    }

    fn sub(src: &str, subject: &str, dst: &str) -> Subscription {
        let ep = |n: &str| {
            if n == "cloud" {
                Endpoint::Cloud
            } else {
                Endpoint::Device(ThingArn::build("r", "a", n))
            }
        };
        Subscription { id: format!("{src}-{subject}-{dst}"), source: ep(src), subject: TopicFilter::new(subject).unwrap(), target: ep(dst) }
    }

    #[test]
    fn routes_once_per_target_and_grants_by_overlap() {
        let fp1 = "1".repeat(64);
        let group = Group {
            devices: vec![dev("d1", Some(&fp1)), dev("d2", None)],
            subscriptions: vec![sub("d1", "a/#", "d2"), sub("d1", "a/+", "d2"), sub("d1", "a/b", "cloud"), sub("d2", "x", "d1")],
            ..Group::default()
        };
        let t = RouteTable::compile(Arc::new(group), 1);
        let d1 = Endpoint::Device(ThingArn::build("r", "a", "d1"));
        let mut out = Vec::new();
        t.route(&d1, "a/b", &mut out);
        let names: Vec<String> = out.iter().map(|i| t.target(*i).to_string()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        out.clear();
        t.route(&d1, "x", &mut out);
        assert!(out.is_empty());
        assert_eq!(t.admit(&fp1, Some("whatever")).map(|d| d.thing.name()), Some("d1"));
        assert_eq!(t.admit(&"2".repeat(64), Some("d2")).map(|d| d.thing.name()), Some("d2"));
        assert!(t.admit(&"2".repeat(64), Some("d1")).is_none(), "d1 needs its registered certificate");
        assert!(t.grants("d2", &TopicFilter::new("a/b/c").unwrap()));
        assert!(t.grants("d2", &TopicFilter::new("#").unwrap()));
        assert!(!t.grants("d2", &TopicFilter::new("x").unwrap()));
        assert!(t.grants("d1", &TopicFilter::new("+").unwrap()));
        assert!(!t.grants("cloud", &TopicFilter::new("#").unwrap()));
    }
}
