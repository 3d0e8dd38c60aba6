//! Sessions (MQTT 3.1.1 §3.1.2.4, §4.1), redelivery (§4.4), wills
//! (§3.1.2.5–3.1.2.7), keep-alive (§3.1.2.10) and DISCONNECT (§3.14).

use super::packets::{self, puback, pubcomp, publish, pubrec, pubrel, Connect, DISCONNECT, PINGREQ, PINGRESP};
use super::{barrier, case, connect_with_will, next_publish, publish_acked, subscribe_ok, Case, Lane};
use crate::common::raw::Conn;

pub fn cases() -> Vec<Case> {
    vec![
        case!(["MQTT-3.1.2-4", "MQTT-3.1.2-5", "MQTT-4.1.0-1", "MQTT-4.5.0-1"], persistent_session_keeps_subscriptions_and_messages),
        case!(["MQTT-3.1.2-6", "MQTT-3.1.4-3"], clean_session_discards_the_stored_one),
        case!(["MQTT-3.1.3-2"], client_id_names_the_session),
        case!(["MQTT-4.1.0-2"], session_lasts_as_long_as_the_connection),
        case!(
            ["MQTT-4.4.0-1", "MQTT-3.3.1-1", "MQTT-2.3.1-4", "MQTT-4.6.0-1", "MQTT-4.3.2-1"],
            unacknowledged_messages_are_resent_on_reconnect
        ),
        case!(["MQTT-3.10.4-3"], delivery_in_flight_completes_after_unsubscribe),
        case!(["MQTT-4.3.3-2", "MQTT-4.1.0-1"], qos2_awaiting_release_is_kept_in_the_session),
        case!(["MQTT-3.1.2-8", "MQTT-3.1.2-16"], will_is_published_when_the_connection_drops),
        case!(["MQTT-3.1.2-10"], will_is_published_once),
        case!(["MQTT-3.14.4-3"], disconnect_discards_the_will),
        case!(["MQTT-3.1.2-12"], no_will_flag_publishes_nothing),
        case!(["MQTT-3.1.2-17"], retained_will_is_published_as_a_plain_message),
        case!(["MQTT-3.1.2-24"], silence_past_the_keep_alive_closes),
        case!(["MQTT-3.14.1-1"], disconnect_with_reserved_bits_closes_and_publishes_the_will),
        case!(["MQTT-4.8.0-1"], protocol_violation_publishes_the_will),
    ]
}

/// Connects `who` with CleanSession 0 and the given session-present flag.
async fn persistent(l: &Lane, who: &crate::common::Creds, present: bool) -> Conn {
    l.connect_with(who, Connect::new(&who.thing).persistent(), present).await
}

async fn disconnect(mut c: Conn) {
    c.send(&DISCONNECT).await;
    c.closed("DISCONNECT").await;
}

/// CleanSession 0: subscriptions and the QoS 1 and 2 messages routed while
/// the device was away are kept (QoS 2 as QoS 1), QoS 0 ones are not; the
/// device comes back to session present 1 and its messages, in order.
async fn persistent_session_keeps_subscriptions_and_messages(l: Lane) {
    l.end_session(&l.b).await;
    let mut b = persistent(&l, &l.b, false).await;
    subscribe_ok(&mut b, 1, &[(&l.all(), 1)], &[1]).await;
    disconnect(b).await;
    let mut a = l.connect(&l.a).await;
    publish_acked(&mut a, &l.topic("1"), 1, b"one").await;
    a.send(&publish(0, &l.topic("zero"), 0, b"not kept")).await;
    a.send(&publish(2, &l.topic("2"), 2, b"two")).await;
    a.expect(&pubrec(2), "PUBREC").await;
    a.send(&pubrel(2)).await;
    a.expect(&pubcomp(2), "PUBCOMP").await;
    let mut b = persistent(&l, &l.b, true).await;
    for (topic, payload) in [("1", &b"one"[..]), ("2", b"two")] {
        let p = next_publish(&mut b, "a kept message").await;
        assert_eq!((p.qos(), p.topic(), &p.payload[..]), (1, l.topic(topic).as_str(), payload));
        b.send(&puback(p.pkid.unwrap())).await;
    }
    // The subscription is in force without a new SUBSCRIBE.
    barrier(&mut a, &mut b, &l.topic("barrier")).await;
    l.end_session(&l.b).await;
}

/// CleanSession 1 discards a stored session: nothing it kept is delivered,
/// its subscriptions are gone, and a later CleanSession 0 finds no session.
async fn clean_session_discards_the_stored_one(l: Lane) {
    let mut b = persistent(&l, &l.b, false).await;
    subscribe_ok(&mut b, 1, &[(&l.all(), 1)], &[1]).await;
    disconnect(b).await;
    let mut a = l.connect(&l.a).await;
    publish_acked(&mut a, &l.topic("kept"), 1, b"for the old session").await;
    let mut b = l.connect(&l.b).await;
    let barrier_topic = format!("u/{}/v", l.seq);
    subscribe_ok(&mut b, 1, &[(&barrier_topic, 1)], &[1]).await;
    publish_acked(&mut a, &l.topic("new"), 2, b"no subscription").await;
    barrier(&mut a, &mut b, &barrier_topic).await;
    disconnect(b).await;
    let b = persistent(&l, &l.b, false).await;
    disconnect(b).await;
    l.end_session(&l.b).await;
}

/// Session state belongs to a client id: `c`'s CleanSession 0 connection
/// finds no session while `b`'s stored one is kept.
async fn client_id_names_the_session(l: Lane) {
    let mut b = persistent(&l, &l.b, false).await;
    subscribe_ok(&mut b, 1, &[(&l.all(), 1)], &[1]).await;
    disconnect(b).await;
    let c = persistent(&l, &l.c, false).await;
    disconnect(c).await;
    persistent(&l, &l.b, true).await;
    l.end_session(&l.b).await;
    l.end_session(&l.c).await;
}

/// A clean session's subscriptions hold for the whole connection.
async fn session_lasts_as_long_as_the_connection(l: Lane) {
    let mut b = l.subscriber(&l.b, &[(&l.all(), 0)]).await;
    let mut a = l.connect(&l.a).await;
    for i in 0..3 {
        a.send(&publish(0, &l.topic("x"), 0, format!("{i}").as_bytes())).await;
        b.expect(&publish(0, &l.topic("x"), 0, format!("{i}").as_bytes()), "a delivery").await;
        b.send(&PINGREQ).await;
        b.expect(&PINGRESP, "PINGRESP").await;
    }
}

/// QoS 1 messages sent and not acknowledged when the connection drops are
/// sent again on reconnection (CleanSession 0): same packet ids, DUP 1, in
/// the original order, and only those.
async fn unacknowledged_messages_are_resent_on_reconnect(l: Lane) {
    l.end_session(&l.b).await;
    let mut b = persistent(&l, &l.b, false).await;
    subscribe_ok(&mut b, 1, &[(&l.all(), 1)], &[1]).await;
    let mut a = l.connect(&l.a).await;
    for i in 0..4u16 {
        publish_acked(&mut a, &l.topic(&i.to_string()), 10 + i, format!("m{i}").as_bytes()).await;
    }
    let mut first = Vec::new();
    for _ in 0..4 {
        let p = next_publish(&mut b, "first delivery").await;
        assert_eq!((p.qos(), p.dup()), (1, false), "{p:?}");
        first.push(p);
    }
    // The second one is acknowledged; the rest are not.
    b.send(&puback(first[1].pkid.unwrap())).await;
    b.send(&PINGREQ).await;
    b.expect(&PINGRESP, "PINGRESP").await;
    drop(b);
    let mut b = persistent(&l, &l.b, true).await;
    for want in [&first[0], &first[2], &first[3]] {
        let p = next_publish(&mut b, "a re-sent message").await;
        assert_eq!(p.byte1, 0x3A, "QoS 1 with DUP: {p:?}");
        assert_eq!((p.pkid, &p.topic, &p.payload), (want.pkid, &want.topic, &want.payload), "re-sent as first sent");
        b.send(&puback(p.pkid.unwrap())).await;
    }
    barrier(&mut a, &mut b, &l.topic("barrier")).await;
    l.end_session(&l.b).await;
}

/// A message whose delivery had started when its subscription was removed
/// is still completed: re-sent after reconnection until acknowledged, while
/// new messages on that topic no longer come.
async fn delivery_in_flight_completes_after_unsubscribe(l: Lane) {
    l.end_session(&l.b).await;
    let barrier_topic = format!("u/{}/v", l.seq);
    let mut b = persistent(&l, &l.b, false).await;
    subscribe_ok(&mut b, 1, &[(&l.all(), 1), (&barrier_topic, 1)], &[1, 1]).await;
    let mut a = l.connect(&l.a).await;
    publish_acked(&mut a, &l.topic("x"), 1, b"in flight").await;
    let p = next_publish(&mut b, "the delivery").await;
    b.send(&packets::unsubscribe(2, &[&l.all()])).await;
    b.expect(&packets::unsuback(2), "UNSUBACK").await;
    drop(b);
    let mut b = persistent(&l, &l.b, true).await;
    let again = next_publish(&mut b, "the delivery, completed").await;
    assert_eq!((again.pkid, again.dup(), &again.payload[..]), (p.pkid, true, &b"in flight"[..]));
    b.send(&puback(again.pkid.unwrap())).await;
    publish_acked(&mut a, &l.topic("x"), 2, b"after unsubscribe").await;
    barrier(&mut a, &mut b, &barrier_topic).await;
    l.end_session(&l.b).await;
}

/// A QoS 2 message received and not yet released belongs to the session:
/// re-sent after the publisher reconnects with CleanSession 0, it gets PUBREC
/// and is not passed on a second time; PUBREL completes it.
async fn qos2_awaiting_release_is_kept_in_the_session(l: Lane) {
    l.end_session(&l.a).await;
    let mut b = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
    let mut a = persistent(&l, &l.a, false).await;
    a.send(&publish(2, &l.topic("x"), 9, b"exactly once")).await;
    a.expect(&pubrec(9), "PUBREC").await;
    drop(a);
    let mut a = persistent(&l, &l.a, true).await;
    a.send(&packets::publish_raw(0x3C, l.topic("x").as_bytes(), Some(9), b"exactly once")).await;
    a.expect(&pubrec(9), "PUBREC for the copy re-sent after reconnecting").await;
    a.send(&pubrel(9)).await;
    a.expect(&pubcomp(9), "PUBCOMP").await;
    let p = next_publish(&mut b, "the message").await;
    assert_eq!(p.payload, b"exactly once");
    b.send(&puback(p.pkid.unwrap())).await;
    barrier(&mut a, &mut b, &l.topic("barrier")).await;
    drop(a);
    l.end_session(&l.a).await;
}

/// A connection dropped without DISCONNECT publishes its will, like a
/// publish of the device, with RETAIN 0.
async fn will_is_published_when_the_connection_drops(l: Lane) {
    let mut b = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
    let a = connect_with_will(&l, &l.a, (&l.topic("will"), b"gone", 1, false)).await;
    drop(a);
    let p = next_publish(&mut b, "the will").await;
    assert_eq!((p.byte1 & 0x0F, p.topic(), &p.payload[..]), (0x02, l.topic("will").as_str(), &b"gone"[..]), "QoS 1, RETAIN 0, DUP 0");
    b.send(&puback(p.pkid.unwrap())).await;
}

/// Once published, the will is gone: the next connection (without a will)
/// dropping publishes nothing.
async fn will_is_published_once(l: Lane) {
    let mut b = l.subscriber(&l.b, &[(&l.all(), 0)]).await;
    let a = connect_with_will(&l, &l.a, (&l.topic("will"), b"gone", 0, false)).await;
    drop(a);
    b.expect(&publish(0, &l.topic("will"), 0, b"gone"), "the will").await;
    let a = l.connect(&l.a).await;
    drop(a);
    let mut a = l.connect(&l.a).await;
    barrier(&mut a, &mut b, &l.topic("barrier")).await;
}

async fn disconnect_discards_the_will(l: Lane) {
    let mut b = l.subscriber(&l.b, &[(&l.all(), 0)]).await;
    let a = connect_with_will(&l, &l.a, (&l.topic("will"), b"must not come", 0, false)).await;
    disconnect(a).await;
    let mut a = l.connect(&l.a).await;
    barrier(&mut a, &mut b, &l.topic("barrier")).await;
}

async fn no_will_flag_publishes_nothing(l: Lane) {
    let mut b = l.subscriber(&l.b, &[(&l.all(), 0)]).await;
    drop(l.connect(&l.a).await);
    let mut a = l.connect(&l.a).await;
    barrier(&mut a, &mut b, &l.topic("barrier")).await;
}

/// Deliberately different: a will with RETAIN 1 is delivered like any other
/// message, with RETAIN 0, and not kept for later subscribers.
async fn retained_will_is_published_as_a_plain_message(l: Lane) {
    let mut b = l.subscriber(&l.b, &[(&l.all(), 0)]).await;
    let a = connect_with_will(&l, &l.a, (&l.topic("will"), b"retained?", 0, true)).await;
    drop(a);
    b.expect(&publish(0, &l.topic("will"), 0, b"retained?"), "the will, RETAIN 0").await;
    let mut c = l.subscriber(&l.c, &[(&l.all(), 0)]).await;
    let mut a = l.connect(&l.a).await;
    barrier(&mut a, &mut c, &l.topic("barrier")).await;
}

/// Keep-alive 1 s and then silence: the core closes the connection (within
/// 1.5 s; this case does not time it) without a word, as if the network had
/// failed — so the will is published.
async fn silence_past_the_keep_alive_closes(l: Lane) {
    let mut b = l.subscriber(&l.b, &[(&l.all(), 0)]).await;
    let connect = Connect::new(&l.a.thing).keep_alive(1).will(&l.topic("will"), b"timed out", 0, false);
    let mut a = l.connect_with(&l.a, connect, false).await;
    a.closed_silently("silent past the keep-alive").await;
    b.expect(&publish(0, &l.topic("will"), 0, b"timed out"), "the will").await;
    l.core.wait_log(&["device silent past its keep-alive", &format!("thing={}", l.a.thing)]).await;
}

/// A DISCONNECT with reserved bits set is malformed: the connection closes
/// and, as it did not end by a valid DISCONNECT, the will is published.
async fn disconnect_with_reserved_bits_closes_and_publishes_the_will(l: Lane) {
    let mut b = l.subscriber(&l.b, &[(&l.all(), 0)]).await;
    let mut a = connect_with_will(&l, &l.a, (&l.topic("will"), b"bad disconnect", 0, false)).await;
    a.send(&[0xE1, 0x00]).await;
    a.closed_silently("DISCONNECT with flags 0001").await;
    b.expect(&publish(0, &l.topic("will"), 0, b"bad disconnect"), "the will").await;
    let mut a = connect_with_will(&l, &l.a, (&l.topic("will"), b"bad disconnect", 0, false)).await;
    a.send(&[0xE0, 0x01, 0x00]).await;
    a.closed_silently("DISCONNECT with a remaining length of 1").await;
    b.expect(&publish(0, &l.topic("will"), 0, b"bad disconnect"), "the will").await;
}

/// A connection closed for a protocol violation publishes its will.
async fn protocol_violation_publishes_the_will(l: Lane) {
    let mut b = l.subscriber(&l.b, &[(&l.all(), 0)]).await;
    let mut a = connect_with_will(&l, &l.a, (&l.topic("will"), b"violated", 0, false)).await;
    a.send(&packets::suback(1, &[0])).await;
    a.closed_silently("SUBACK from a client").await;
    b.expect(&publish(0, &l.topic("will"), 0, b"violated"), "the will").await;
    l.core.wait_log(&["MQTT protocol error; connection closed", &format!("thing={}", l.a.thing), "SUBACK"]).await;
}
