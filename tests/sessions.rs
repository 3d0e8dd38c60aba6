//! MQTT session behaviour (docs/mqtt.md): SUBACK codes, persistent sessions,
//! redelivery, takeover, will messages, QoS 2 and the retain flag.

use rumqttc::{LastWill, SubscribeReasonCode as Code};

use crate::common::mqtt::text;
use crate::common::{Env, Opts, QoS};

/// A SUBSCRIBE filter is granted only when it overlaps a Subject routed to the
/// device (failure code 0x80 otherwise, and for invalid filters); QoS 2 is
/// granted as QoS 1; refused filters deliver nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suback_carries_the_failure_code_for_ungranted_filters() {
    let env = Env::start(&["src", "dst", "lonely"], &[("src", "t/#", "dst"), ("src", "u/+/v", "dst")]);
    let mut src = env.connect("src").await;
    let mut dst = env.connect("dst").await;
    let codes = dst
        .subscribe(&[
            ("t/x", QoS::AtLeastOnce),
            ("w/#", QoS::AtLeastOnce),
            ("t/y", QoS::ExactlyOnce),
            ("+/z/v", QoS::AtMostOnce),
            ("u/a/w", QoS::AtLeastOnce),
        ])
        .await;
    assert_eq!(
        codes,
        vec![
            Code::Success(QoS::AtLeastOnce),
            Code::Failure,
            Code::Success(QoS::AtLeastOnce),
            Code::Success(QoS::AtMostOnce),
            Code::Failure,
        ]
    );
    env.core.wait_log(&["SUBSCRIBE refused", "thing=dst", "filter=w/#"]).await;
    // A device that nothing is routed to may subscribe to nothing.
    let mut lonely = env.connect("lonely").await;
    let codes = lonely.subscribe(&[("#", QoS::AtMostOnce), ("t/x", QoS::AtLeastOnce)]).await;
    assert_eq!(codes, vec![Code::Failure, Code::Failure]);

    src.publish("t/y", QoS::AtLeastOnce, "qos2-granted-as-1").await;
    src.publish("u/z/v", QoS::AtLeastOnce, "qos0").await;
    src.publish("t/x", QoS::AtLeastOnce, "barrier").await;
    let p = dst.expect("t/y", "qos2-granted-as-1").await;
    assert_eq!(p.qos, QoS::AtLeastOnce);
    let p = dst.expect("u/z/v", "qos0").await;
    assert_eq!(p.qos, QoS::AtMostOnce);
    dst.expect("t/x", "barrier").await;
    dst.expect_silence().await;
    lonely.expect_silence().await;

    // An invalid filter (rumqttc will not send one, so by hand) gets 0x80
    // while the valid one beside it is granted.
    let (mut s, mut buf) = crate::common::raw::session(env.core.port, env.creds("lonely")).await;
    drop(lonely);
    use tokio::io::AsyncWriteExt;
    s.write_all(&crate::common::raw::subscribe_packet(9, &[("a/#/b", 1), ("t/#", 1)])).await.unwrap();
    match crate::common::raw::read_packet(&mut s, &mut buf).await {
        Some(rumqttc::Packet::SubAck(a)) => {
            assert_eq!(a.pkid, 9);
            assert_eq!(a.return_codes, vec![Code::Failure, Code::Failure]);
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
    let (mut s2, mut buf2) = crate::common::raw::session(env.core.port, env.creds("dst")).await;
    s2.write_all(&crate::common::raw::subscribe_packet(10, &[("a/#/b", 1), ("t/#", 1)])).await.unwrap();
    match crate::common::raw::read_packet(&mut s2, &mut buf2).await {
        Some(rumqttc::Packet::SubAck(a)) => {
            assert_eq!(a.pkid, 10);
            assert_eq!(a.return_codes, vec![Code::Failure, Code::Success(QoS::AtLeastOnce)]);
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
    env.core.wait_log(&["SUBSCRIBE refused: invalid topic filter", "filter=a/#/b"]).await;
    env.stop();
}

/// cleanSession=0: the session (subscriptions and QoS 1 messages routed while
/// the device was away) is kept, and the CONNACK says session present; QoS 0
/// messages are not kept. cleanSession=1 discards the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn persistent_session_keeps_subscriptions_and_queued_qos1() {
    let env = Env::start(&["src", "dst"], &[("src", "t/#", "dst")]);
    let mut src = env.connect("src").await;

    let mut dst = env.connect_with("dst", Opts::persistent()).await;
    assert!(!dst.session_present, "a first connection has no session");
    dst.sub("t/#", QoS::AtLeastOnce).await;
    dst.disconnect().await;

    for i in 0..5 {
        src.publish(&format!("t/{i}"), QoS::AtLeastOnce, format!("queued-{i}")).await;
    }
    src.publish("t/zero", QoS::AtMostOnce, "not kept").await;
    src.publish("t/5", QoS::AtLeastOnce, "queued-5").await;
    crate::common::eventually("the session to hold the messages", crate::common::DEADLINE, || {
        let s = env.root.status();
        (s["devices"]["sessions"] == 2).then_some(())
    })
    .await;

    // Back with cleanSession=0: no SUBSCRIBE needed, the queue arrives in order.
    let mut dst = env.connect_with("dst", Opts::persistent()).await;
    assert!(dst.session_present, "the session must be present");
    for i in 0..6 {
        let p = dst.recv().await;
        assert_eq!((p.topic.as_str(), text(&p)), (format!("t/{i}").as_str(), format!("queued-{i}")),);
        assert_eq!(p.qos, QoS::AtLeastOnce);
    }
    dst.expect_silence().await;
    // The subscription is still in force for new messages.
    src.publish("t/live", QoS::AtLeastOnce, "live").await;
    dst.expect("t/live", "live").await;
    dst.disconnect().await;

    // cleanSession=1 ends the session: no session present, no subscription.
    src.publish("t/lost", QoS::AtLeastOnce, "for the old session").await;
    let mut clean = env.connect("dst").await;
    assert!(!clean.session_present);
    src.publish("t/after", QoS::AtLeastOnce, "unsubscribed").await;
    clean.expect_silence().await;
    clean.disconnect().await;
    // ...and a later persistent connection starts afresh.
    let dst = env.connect_with("dst", Opts::persistent()).await;
    assert!(!dst.session_present);
    env.stop();
}

/// Connects `dst` with a persistent session and manual acks, has `src` send
/// two messages, acknowledges only the first, and drops the connection
/// without DISCONNECT: the second stays in flight in the session.
async fn leave_one_in_flight(env: &Env, src: &mut crate::common::Device) -> Opts {
    let opts = Opts { manual_acks: true, ..Opts::persistent() };
    let mut dst = env.connect_with("dst", opts.clone()).await;
    dst.sub("t/#", QoS::AtLeastOnce).await;
    src.publish("t/1", QoS::AtLeastOnce, "first").await;
    src.publish("t/2", QoS::AtLeastOnce, "second").await;
    let p1 = dst.expect("t/1", "first").await;
    dst.ack(&p1).await;
    let p2 = dst.expect("t/2", "second").await;
    assert!(!p2.dup);
    dst.drop_connection().await;
    env.core.wait_log(&["device connection ", "thing=dst"]).await;
    opts
}

/// A QoS 1 message sent but not acknowledged is sent again (DUP, first) when
/// the device comes back with its persistent session, before newer messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unacknowledged_qos1_is_redelivered_after_reconnect() {
    let env = Env::start(&["src", "dst"], &[("src", "t/#", "dst")]);
    let mut src = env.connect("src").await;
    let opts = leave_one_in_flight(&env, &mut src).await;

    let mut dst = env.connect_with("dst", opts).await;
    assert!(dst.session_present);
    src.publish("t/3", QoS::AtLeastOnce, "third").await;
    let again = dst.expect("t/2", "second").await;
    assert!(again.dup, "a redelivery carries DUP");
    assert_eq!(again.qos, QoS::AtLeastOnce);
    dst.ack(&again).await;
    let p3 = dst.expect("t/3", "third").await;
    assert!(!p3.dup);
    dst.ack(&p3).await;
    dst.expect_silence().await;
    env.stop();
}

/// The redelivery happens at reconnect, not only once other traffic for the
/// device wakes its connection up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unacknowledged_qos1_is_redelivered_at_reconnect_without_other_traffic() {
    let env = Env::start(&["src", "dst"], &[("src", "t/#", "dst")]);
    let mut src = env.connect("src").await;
    let opts = leave_one_in_flight(&env, &mut src).await;
    let mut dst = env.connect_with("dst", opts).await;
    assert!(dst.session_present);
    let again = dst.expect("t/2", "second").await;
    assert!(again.dup, "a redelivery carries DUP");
    dst.ack(&again).await;
    dst.expect_silence().await;
    env.stop();
}

/// A second connection with the same client id takes over: the older one is
/// closed (and logged), the newer one is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_connection_with_the_same_client_id_takes_over() {
    let env = Env::start(&["src", "dst"], &[("src", "t/#", "dst")]);
    let mut src = env.connect("src").await;
    let mut first = env.connect("dst").await;
    first.sub("t/#", QoS::AtLeastOnce).await;
    src.publish("t/1", QoS::AtLeastOnce, "to first").await;
    first.expect("t/1", "to first").await;

    let mut second = env.connect("dst").await;
    first.wait_closed().await;
    env.core.wait_log(&["a second connection with the same client id takes over", "thing=dst"]).await;
    second.sub("t/#", QoS::AtLeastOnce).await;
    src.publish("t/2", QoS::AtLeastOnce, "to second").await;
    second.expect("t/2", "to second").await;
    second.expect_silence().await;
    assert_eq!(env.root.connected(), vec!["dst", "src"]);
    assert_eq!(env.root.status()["broker"]["takeovers"], 1);
    assert!(second.is_connected());
    env.stop();
}

/// A will is routed like a publish from its device when the connection ends
/// without DISCONNECT, not after a DISCONNECT, and only where the table routes
/// its topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn will_messages_are_routed_unless_the_device_disconnects() {
    let env = Env::start(&["mortal", "watcher"], &[("mortal", "status/#", "watcher"), ("mortal", "t/#", "watcher")]);
    let mut watcher = env.connect("watcher").await;
    watcher.sub("status/#", QoS::AtLeastOnce).await;
    watcher.sub("t/#", QoS::AtLeastOnce).await;
    let with_will = |topic: &str, payload: &str| Opts {
        will: Some(LastWill::new(topic, payload.to_string(), QoS::AtLeastOnce, false)),
        ..Opts::default()
    };

    // Lost connection: the will is routed.
    let mortal = env.connect_with("mortal", with_will("status/mortal", "gone")).await;
    mortal.drop_connection().await;
    let p = watcher.expect("status/mortal", "gone").await;
    assert_eq!(p.qos, QoS::AtLeastOnce);

    // Clean DISCONNECT: no will.
    let mut mortal = env.connect_with("mortal", with_will("status/mortal", "should not be sent")).await;
    mortal.publish("t/1", QoS::AtLeastOnce, "bye").await;
    mortal.disconnect().await;
    env.core.wait_log(&["device disconnected", "thing=mortal"]).await;
    watcher.expect("t/1", "bye").await;

    // A will on a topic the table does not route reaches nobody.
    let mortal = env.connect_with("mortal", with_will("elsewhere/mortal", "unrouted")).await;
    mortal.drop_connection().await;
    env.core.wait_log_count(&["device connection ", "thing=mortal"], 2).await;
    // Barrier: a later message from the same source.
    let mut mortal = env.connect("mortal").await;
    mortal.publish("t/2", QoS::AtLeastOnce, "barrier").await;
    watcher.expect("t/2", "barrier").await;
    watcher.expect_silence().await;
    env.stop();
}

/// QoS 2 publishes get the full handshake (PUBREC, PUBCOMP) and are routed
/// at QoS 1 (at QoS 0 to a QoS 0 subscription), once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn qos2_publish_is_accepted_and_routed_at_qos1() {
    let env = Env::start(&["src", "dst", "low"], &[("src", "t/#", "dst"), ("src", "t/#", "low")]);
    let mut src = env.connect("src").await;
    let mut dst = env.connect("dst").await;
    let mut low = env.connect("low").await;
    assert_eq!(dst.subscribe(&[("t/#", QoS::ExactlyOnce)]).await, vec![Code::Success(QoS::AtLeastOnce)]);
    low.sub("t/#", QoS::AtMostOnce).await;
    for i in 0..3 {
        src.publish(&format!("t/{i}"), QoS::ExactlyOnce, format!("exactly-{i}")).await;
    }
    assert_eq!(src.qos2_acks(), (3, 3), "PUBREC and PUBCOMP for each");
    for i in 0..3 {
        let p = dst.expect(&format!("t/{i}"), &format!("exactly-{i}")).await;
        assert_eq!(p.qos, QoS::AtLeastOnce);
        let p = low.expect(&format!("t/{i}"), &format!("exactly-{i}")).await;
        assert_eq!(p.qos, QoS::AtMostOnce);
    }
    dst.expect_silence().await;
    low.expect_silence().await;
    env.stop();
}

/// The retain flag is ignored: the message is delivered as a normal one (retain
/// cleared) and not kept for later subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_retain_flag_is_ignored() {
    let env = Env::start(&["src", "now", "later"], &[("src", "t/#", "now"), ("src", "t/#", "later")]);
    let mut src = env.connect("src").await;
    let mut now = env.connect("now").await;
    now.sub("t/#", QoS::AtLeastOnce).await;
    src.publish_nowait("t/r", QoS::AtLeastOnce, true, "retained?").await;
    src.wait_acked().await;
    let p = now.expect("t/r", "retained?").await;
    assert!(!p.retain, "the retain flag is not passed on");
    let mut later = env.connect("later").await;
    later.sub("t/#", QoS::AtLeastOnce).await;
    later.expect_silence().await;
    env.stop();
}
