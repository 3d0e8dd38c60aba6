//! Micro-benchmark of ggcore's per-message hot path without sockets or TLS:
//! `Router::route` (subscription table lookup, delivery to the device hub:
//! session lookup, granted-filter match, queueing) followed by the writer's
//! drain of each target session (PUBLISH encoding), for the topologies of the
//! load harness. What it costs per delivered message is the router's share of
//! the broker CPU that the `suite` measures end to end.
//!
//! `cargo bench -p ggcore-benches --bench hot_path` (links the ggcore library,
//! and so RocksDB; only this benchmark does).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ggcore::broker::hub::{DeviceHub, Session};
use ggcore::broker::session::SessionLimits;
use ggcore::group::{compile_text, CompileContext, Endpoint};
use ggcore::router::{Message, Qos, Router, TargetId, TargetKind};
use ggcore::topic::TopicFilter;
use ggcore_benches::brokers::group_json;
use ggcore_benches::load::{pub_name, sub_name, topic, Topology};

struct Setup {
    router: Router,
    sources: Vec<Endpoint>,
    topics: Vec<String>,
    sessions: Vec<Arc<Session>>,
}

fn setup(topology: Topology) -> Setup {
    // Fake certificate ARNs: admission is not exercised here.
    let mut arns = BTreeMap::new();
    let n = topology.publishers().max(topology.subscribers());
    for (k, t) in (0..n).map(pub_name).chain((0..n).map(sub_name)).enumerate() {
        arns.insert(t, format!("arn:aws:iot:us-east-1:000000000000:cert/{k:064x}"));
    }
    let text = group_json(topology, &arns).expect("group").to_string();
    let runtimes = |_: &str| -> Result<Option<String>, String> { Ok(None) };
    let cx = CompileContext { base_dir: None, runtimes: &runtimes, unserved: &[] };
    let group = compile_text("bench.json", &text, &cx).expect("valid group").group;
    let router = Router::new();
    let table = router.install(Arc::new(group));
    let hub = Arc::new(DeviceHub::new(SessionLimits::default()));
    router.attach(TargetKind::Device, hub.clone());
    let peer: SocketAddr = "127.0.0.1:1".parse().expect("addr");
    let mut sessions = Vec::new();
    for j in 0..topology.subscribers() {
        let device = table.device(&sub_name(j)).expect("subscriber in the group").clone();
        let (s, _) = hub.attach(&device, true, j as u64 + 1, tokio_util::sync::CancellationToken::new(), peer);
        for f in topology.filters(j) {
            s.state().subscribe(TopicFilter::new(&f).expect("filter"), Qos::AtMostOnce).expect("under the subscription bound");
        }
        sessions.push(s);
    }
    let sources = (0..topology.publishers())
        .map(|i| Endpoint::Device(table.device(&pub_name(i)).expect("publisher in the group").thing.clone()))
        .collect();
    let topics = (0..topology.publishers()).map(topic).collect();
    Setup { router, sources, topics, sessions }
}

fn hot_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_and_drain");
    for topology in [Topology::Pairs(1), Topology::Pairs(10), Topology::FanIn(100), Topology::FanOut(100)] {
        for payload in [128usize, 16 * 1024] {
            let s = setup(topology);
            let deliveries_per_publish = topology.routes().len() / topology.publishers();
            g.throughput(Throughput::Elements(deliveries_per_publish as u64));
            let id = BenchmarkId::new(topology.label(), format!("{payload} B"));
            let payload = Bytes::from(vec![0x5a; payload]);
            let mut scratch: Vec<TargetId> = Vec::new();
            let mut out = BytesMut::with_capacity(1 << 20);
            let mut next = 0usize;
            g.bench_function(id, |b| {
                b.iter(|| {
                    // Publishers take turns, as in the load runs.
                    let i = next % s.sources.len();
                    next += 1;
                    // The topic is allocated per message, as the connection does.
                    let msg = Message { topic: Arc::from(s.topics[i].as_str()), payload: payload.clone(), qos: Qos::AtMostOnce };
                    let r = s.router.route(&s.sources[i], &msg, &mut scratch);
                    debug_assert_eq!(r.delivered, deliveries_per_publish);
                    let now = Instant::now();
                    for session in &s.sessions {
                        let mut st = session.state();
                        if st.pending() > 0 {
                            st.drain_into(&mut out, now, 512);
                        }
                    }
                    out.clear();
                    r.delivered
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
