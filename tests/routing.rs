//! Routing by the subscription table (docs/mqtt.md): a device hears exactly what
//! the table routes to it and it subscribed to, once, in order.

use rumqttc::SubscribeReasonCode as Code;

use crate::common::mqtt::text;
use crate::common::{Env, QoS};

/// Delivered where the table says, and nowhere else: not to a device that
/// subscribed to the same filter without a route, not back to the publisher,
/// not from a device that is no Source, not for a topic no Subject matches.
/// Two matching subscriptions and two matching filters still deliver once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivers_by_the_table_and_nothing_else() {
    let env = Env::start(
        &["alpha", "bravo", "charlie", "delta"],
        &[
            ("alpha", "room/+/temp", "bravo"),
            ("alpha", "room/#", "bravo"),
            ("charlie", "room/+/temp", "delta"),
            ("bravo", "reply/alpha", "alpha"),
        ],
    );
    let mut alpha = env.connect("alpha").await;
    let mut bravo = env.connect("bravo").await;
    let mut charlie = env.connect("charlie").await;
    let mut delta = env.connect("delta").await;
    bravo.sub("room/#", QoS::AtLeastOnce).await;
    bravo.sub("room/+/temp", QoS::AtLeastOnce).await;
    delta.sub("room/#", QoS::AtLeastOnce).await;
    alpha.sub("reply/alpha", QoS::AtLeastOnce).await;

    // alpha → bravo: matches two subscriptions and two of bravo's filters.
    alpha.publish("room/1/temp", QoS::AtLeastOnce, "alpha-1").await;
    // Routed to bravo only by room/#.
    alpha.publish("room/1/humidity", QoS::AtLeastOnce, "alpha-2").await;
    // charlie → delta only, though bravo's filter room/# matches it too.
    charlie.publish("room/2/temp", QoS::AtLeastOnce, "charlie-1").await;
    // bravo is no Source of room/...: nobody hears it, not even bravo.
    bravo.publish("room/3/temp", QoS::AtLeastOnce, "bravo-1").await;
    // delta is a Source of nothing; charlie's Subject does not match humidity.
    delta.publish("room/4/temp", QoS::AtLeastOnce, "delta-1").await;
    charlie.publish("room/2/humidity", QoS::AtLeastOnce, "charlie-2").await;
    // No Subject matches at all.
    alpha.publish("other/x", QoS::AtLeastOnce, "alpha-3").await;
    // bravo → alpha on the one topic the table allows.
    bravo.publish("reply/alpha", QoS::AtLeastOnce, "bravo-2").await;

    // Barriers: a last routed message on each path. Order per (source,
    // target) is kept, so nothing unexpected can still be on its way after it.
    alpha.publish("room/9/temp", QoS::AtLeastOnce, "alpha-barrier").await;
    charlie.publish("room/9/temp", QoS::AtLeastOnce, "charlie-barrier").await;

    bravo.expect("room/1/temp", "alpha-1").await;
    bravo.expect("room/1/humidity", "alpha-2").await;
    bravo.expect("room/9/temp", "alpha-barrier").await;
    delta.expect("room/2/temp", "charlie-1").await;
    delta.expect("room/9/temp", "charlie-barrier").await;
    alpha.expect("reply/alpha", "bravo-2").await;
    for d in [&mut alpha, &mut bravo, &mut charlie, &mut delta] {
        d.expect_silence().await;
    }

    // The core counted what no subscription allowed.
    let status = env.root.status();
    let router = &status["router"];
    assert!(router["unrouted"].as_u64().unwrap() >= 4, "unrouted: {router}");
    assert!(router["received"].as_u64().unwrap() >= 10, "received: {router}");
    assert!(env.core.count_log(&["no subscription routes this message; dropped"]) >= 1);
    // Dropped publishes are still acknowledged and the publisher stays on.
    assert!(bravo.is_connected() && delta.is_connected());
    env.stop();
}

/// 1,000 QoS 1 messages from one device arrive at another complete, once each,
/// in the order they were sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keeps_the_order_of_1000_qos1_messages() {
    let env = Env::start(&["src", "dst"], &[("src", "seq/#", "dst")]);
    let mut src = env.connect("src").await;
    let mut dst = env.connect("dst").await;
    dst.sub("seq/#", QoS::AtLeastOnce).await;
    for i in 0..1000 {
        src.publish_nowait(&format!("seq/{}", i % 7), QoS::AtLeastOnce, false, i.to_string()).await;
    }
    src.wait_acked().await;
    for i in 0..1000 {
        let p = dst.recv().await;
        assert_eq!((p.topic.as_str(), text(&p)), (format!("seq/{}", i % 7).as_str(), i.to_string()), "message {i} out of order or missing");
        assert_eq!(p.qos, QoS::AtLeastOnce);
    }
    dst.expect_silence().await;
    env.stop();
}

/// `+` and `#` in Subjects and in device filters: the table decides what may
/// reach a device, its own filters narrow it further.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wildcards_in_subjects_and_in_device_filters() {
    let env = Env::start(
        &["pub", "all", "narrow"],
        &[("pub", "sensors/+/temp", "all"), ("pub", "logs/#", "all"), ("pub", "sensors/+/temp", "narrow")],
    );
    let mut publisher = env.connect("pub").await;
    let mut all = env.connect("all").await;
    let mut narrow = env.connect("narrow").await;
    // `#` overlaps the Subjects routed to `all`: granted, but it only hears
    // what the table routes to it.
    all.sub("#", QoS::AtLeastOnce).await;
    // `narrow` may subscribe to one sensor only, or to a filter overlapping the
    // Subject; logs/# overlaps nothing routed to it.
    let codes =
        narrow.subscribe(&[("sensors/k2/temp", QoS::AtLeastOnce), ("logs/#", QoS::AtLeastOnce), ("+/+/temp", QoS::AtMostOnce)]).await;
    assert_eq!(codes, vec![Code::Success(QoS::AtLeastOnce), Code::Failure, Code::Success(QoS::AtMostOnce)]);
    narrow.unsubscribe("+/+/temp").await;

    let sends = [
        ("sensors/k1/temp", true, false),
        ("sensors/k2/temp", true, true),
        ("sensors/k1/x/temp", false, false),
        ("sensors/temp", false, false),
        ("sensors/k1/humidity", false, false),
        ("logs", true, false),
        ("logs/a/b/c", true, false),
        ("log/a", false, false),
        ("other/logs", false, false),
    ];
    for (topic, _, _) in sends {
        publisher.publish(topic, QoS::AtLeastOnce, topic).await;
    }
    publisher.publish("sensors/end/temp", QoS::AtLeastOnce, "barrier").await;
    publisher.publish("sensors/k2/temp", QoS::AtLeastOnce, "barrier").await;
    for (topic, to_all, _) in sends {
        if to_all {
            all.expect(topic, topic).await;
        }
    }
    all.expect("sensors/end/temp", "barrier").await;
    all.expect("sensors/k2/temp", "barrier").await;
    for (topic, _, to_narrow) in sends {
        if to_narrow {
            narrow.expect(topic, topic).await;
        }
    }
    narrow.expect("sensors/k2/temp", "barrier").await;
    all.expect_silence().await;
    narrow.expect_silence().await;
    env.stop();
}

/// `$aws/...` topics route like any other when named explicitly; filters
/// starting with `+` or `#` (a device's or a Subject) never match them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_topics_and_the_dollar_rule() {
    let env = Env::start(
        &["pub", "shadowed", "hashed"],
        &[("pub", "$aws/things/shadowed/shadow/update", "shadowed"), ("pub", "plain/#", "shadowed"), ("pub", "#", "hashed")],
    );
    let mut publisher = env.connect("pub").await;
    let mut shadowed = env.connect("shadowed").await;
    let mut hashed = env.connect("hashed").await;

    // A Subject `#` does not route `$aws/...`: a `$aws` filter is refused for
    // `hashed`, whose only route is `#`; `#` itself is granted.
    let codes = hashed.subscribe(&[("$aws/things/hashed/shadow/update", QoS::AtLeastOnce), ("#", QoS::AtLeastOnce)]).await;
    assert_eq!(codes, vec![Code::Failure, Code::Success(QoS::AtLeastOnce)]);

    // `#` is granted to `shadowed` (it overlaps plain/#) but does not match
    // `$aws/...`.
    shadowed.sub("#", QoS::AtLeastOnce).await;
    publisher.publish("$aws/things/shadowed/shadow/update", QoS::AtLeastOnce, "via-hash").await;
    publisher.publish("plain/1", QoS::AtLeastOnce, "barrier-1").await;
    shadowed.expect("plain/1", "barrier-1").await;

    // Named explicitly (or with a wildcard after `$aws`), it is delivered.
    shadowed.sub("$aws/things/shadowed/shadow/+", QoS::AtLeastOnce).await;
    publisher.publish("$aws/things/shadowed/shadow/update", QoS::AtLeastOnce, r#"{"state":{"reported":{"on":true}}}"#).await;
    publisher.publish("plain/2", QoS::AtLeastOnce, "barrier-2").await;
    shadowed.expect("$aws/things/shadowed/shadow/update", r#"{"state":{"reported":{"on":true}}}"#).await;
    shadowed.expect("plain/2", "barrier-2").await;

    // A `$aws` filter that no Subject routes to this device is refused.
    let codes = shadowed.subscribe(&[("$aws/things/other/shadow/update", QoS::AtLeastOnce)]).await;
    assert_eq!(codes, vec![Code::Failure]);

    // `$aws/things/hashed/...` is routed to nobody (the Subject `#` does not
    // match it); `hashed` hears every other topic `pub` sends.
    publisher.publish("$aws/things/hashed/shadow/update", QoS::AtLeastOnce, "not-routed").await;
    publisher.publish("anything/else", QoS::AtLeastOnce, "barrier-3").await;
    hashed.expect("plain/1", "barrier-1").await;
    hashed.expect("plain/2", "barrier-2").await;
    hashed.expect("anything/else", "barrier-3").await;
    hashed.expect_silence().await;
    shadowed.expect_silence().await;
    assert!(env.root.status()["router"]["unrouted"].as_u64().unwrap() >= 1);
    env.stop();
}
