//! 200 devices connected at once, each routed to one sink and back.

use std::collections::BTreeSet;

use crate::common::mqtt::text;
use crate::common::{eventually, Group, QoS, Root, DEADLINE};

const DEVICES: usize = 200;

/// 200 devices connect concurrently and each publishes once (QoS 1): the sink
/// hears every one of them exactly once. Then the sink broadcasts and every
/// device hears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_devices() {
    let root = Root::new();
    let names: Vec<String> = (0..DEVICES).map(|i| format!("fleet-{i:03}")).collect();
    let fleet = root.devices(&names);
    let sink = root.device("sink");
    let mut group = Group::new("fleet").device(&sink).devices(&fleet);
    for n in &names {
        group = group.route(n, &format!("fleet/{n}/#"), "sink").route("sink", "broadcast", n);
    }
    let mut core = root.start();
    root.deploy_ok(&group);
    let port = core.port;
    let mut sink_dev = crate::common::connect(port, &sink).await;
    sink_dev.sub("fleet/#", QoS::AtLeastOnce).await;

    // All at once: connect, subscribe, publish; keep the connections open.
    let tasks: Vec<_> = fleet
        .iter()
        .cloned()
        .map(|c| {
            tokio::spawn(async move {
                let mut d = crate::common::connect(port, &c).await;
                d.sub("broadcast", QoS::AtLeastOnce).await;
                d.publish(&format!("fleet/{}/hello", c.thing), QoS::AtLeastOnce, c.thing.clone()).await;
                d
            })
        })
        .collect();
    let mut devices = Vec::new();
    for t in tasks {
        devices.push(t.await.expect("device task"));
    }

    let mut heard = BTreeSet::new();
    for _ in 0..DEVICES {
        let p = sink_dev.recv().await;
        let from = text(&p);
        assert_eq!(p.topic, format!("fleet/{from}/hello"));
        assert!(heard.insert(from.clone()), "{from} heard twice");
    }
    assert_eq!(heard, names.iter().cloned().collect::<BTreeSet<_>>());
    sink_dev.expect_silence().await;

    eventually("201 devices connected", DEADLINE, || (root.status()["devices"]["connected"] == DEVICES + 1).then_some(())).await;

    sink_dev.publish("broadcast", QoS::AtLeastOnce, "to all").await;
    for d in &mut devices {
        d.expect("broadcast", "to all").await;
    }
    for d in &mut devices {
        assert!(d.is_connected(), "{} lost its connection", d.thing);
    }
    assert_eq!(core.count_log(&["connection refused"]), 0);
    drop(devices);
    core.stop_ok();
}
