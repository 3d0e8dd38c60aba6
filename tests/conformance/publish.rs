//! Publishing (MQTT 3.1.1 §3.3–3.7), QoS flows (§4.3), ordering (§4.6),
//! packet identifiers (§2.3.1), retained messages, and topic names (§1.5.3,
//! §4.7.3).

use super::packets::{self, puback, pubcomp, publish, publish_raw, pubrec, pubrel, PINGREQ, PINGRESP};
use super::{barrier, case, next_publish, publish_acked, subscribe_ok, Case, Lane};
use crate::common::raw::Conn;

pub fn cases() -> Vec<Case> {
    vec![
        case!(["MQTT-2.3.1-1"], zero_packet_ids_close),
        case!(["MQTT-2.3.1-4", "MQTT-4.3.2-1"], delivered_qos1_messages_get_unused_ids),
        case!(["MQTT-2.3.1-5", "MQTT-3.3.1-2", "MQTT-4.3.1-1"], qos0_delivery_has_no_id_and_no_dup),
        case!(["MQTT-3.3.1-3"], dup_is_not_passed_on),
        case!(["MQTT-3.3.1-4"], qos_3_closes),
        case!(["MQTT-3.3.1-5", "MQTT-3.3.1-6", "MQTT-3.3.1-7", "MQTT-3.3.1-8", "MQTT-3.1.2.7"], retained_messages_are_not_kept),
        case!(["MQTT-3.3.1-9"], retain_is_cleared_on_delivery),
        case!(["MQTT-3.3.1-10", "MQTT-3.3.1-11"], empty_retained_message_is_delivered_as_usual),
        case!(["MQTT-3.3.1-12"], non_retained_message_is_not_stored),
        case!(["MQTT-3.3.2-1", "MQTT-1.5.3-1"], topic_name_missing_or_not_utf8_closes),
        case!(["MQTT-3.3.2-2", "MQTT-4.7.1-1"], wildcard_in_topic_name_closes),
        case!(["MQTT-3.3.2-3"], delivered_topic_matches_the_filter),
        case!(["MQTT-3.3.5-1"], overlapping_subscriptions_deliver_once_at_the_highest_qos),
        case!(["MQTT-3.3.5-2"], publish_routed_nowhere_is_acknowledged),
        case!(["MQTT-3.6.1-1"], pubrel_with_wrong_flags_closes),
        case!(["MQTT-4.3.2-2"], qos1_id_is_free_again_after_puback),
        case!(["MQTT-4.3.3-2"], qos2_is_passed_on_once_per_release),
        case!(["MQTT-4.3.3-1", "MQTT-4.6.0-4"], qos2_subscriptions_are_served_at_qos1),
        case!(["MQTT-4.6.0-2"], pubacks_follow_publish_order),
        case!(["MQTT-4.6.0-3"], pubrecs_follow_publish_order),
        case!(["MQTT-4.6.0-5", "MQTT-4.6.0-6"], each_publisher_is_delivered_in_order),
        case!(["MQTT-4.5.0-1"], a_message_reaches_every_matching_session),
        case!(["MQTT-1.5.3-3"], byte_order_mark_is_kept),
        case!(["MQTT-4.7.3-3"], longest_topic_name_is_routed),
        case!(["MQTT-4.7.3-4"], topics_are_not_normalized),
        case!(["MQTT-4.7.3-2", "MQTT-1.5.3-2"], nul_in_topic_name_closes),
        case!(["MQTT-4.8.0-2"], publish_over_the_payload_limit_closes),
    ]
}

/// `a` connected, `b` subscribed to `t/<seq>/#` at `qos`.
async fn pair(l: &Lane, qos: u8) -> (Conn, Conn) {
    let sub = l.subscriber(&l.b, &[(&l.all(), qos)]).await;
    (l.connect(&l.a).await, sub)
}

/// After `bad` on a connection of `a`, the connection closes unanswered and
/// nothing reaches `b`.
async fn closes_and_routes_nothing(l: &Lane, sub: &mut Conn, bad: &[u8], what: &str) {
    let mut c = l.connect(&l.a).await;
    c.send(bad).await;
    c.closed_silently(what).await;
    let mut publisher = l.connect(&l.a).await;
    barrier(&mut publisher, sub, &l.topic("barrier")).await;
}

/// Packet id 0 in a QoS 1 or 2 PUBLISH, a SUBSCRIBE or an UNSUBSCRIBE closes
/// the connection; the core's own QoS 1 PUBLISH never uses 0 (see the other
/// cases' exact bytes).
async fn zero_packet_ids_close(l: Lane) {
    let mut sub = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
    for qos in [1u8, 2] {
        closes_and_routes_nothing(&l, &mut sub, &publish(qos, &l.topic("x"), 0, b"id 0"), &format!("QoS {qos} PUBLISH with id 0")).await;
    }
    for (bad, what) in
        [(packets::subscribe(0, &[(&l.all(), 1)]), "SUBSCRIBE with id 0"), (packets::unsubscribe(0, &["x"]), "UNSUBSCRIBE with id 0")]
    {
        let mut c = l.connect(&l.a).await;
        c.send(&bad).await;
        c.closed_silently(what).await;
    }
}

/// Messages delivered at QoS 1: QoS 1, DUP 0, distinct non-zero ids while
/// unacknowledged, the topic and payload as published.
async fn delivered_qos1_messages_get_unused_ids(l: Lane) {
    let (mut a, mut b) = pair(&l, 1).await;
    let mut ids = Vec::new();
    for i in 0..5u16 {
        publish_acked(&mut a, &l.topic("x"), 100 + i, format!("m{i}").as_bytes()).await;
    }
    for i in 0..5 {
        let p = next_publish(&mut b, "a QoS 1 delivery").await;
        assert_eq!((p.byte1, p.topic(), p.payload.clone()), (0x32, l.topic("x").as_str(), format!("m{i}").into_bytes()));
        let id = p.pkid.expect("a packet id");
        assert_ne!(id, 0);
        assert!(!ids.contains(&id), "id {id} is in use: {ids:?}");
        ids.push(id);
    }
    for id in &ids {
        b.send(&puback(*id)).await;
    }
    // Acknowledged: nothing is sent again.
    b.send(&PINGREQ).await;
    b.expect(&PINGRESP, "PINGRESP, no re-send").await;
}

/// A message delivered at QoS 0 is exactly `30 len topic payload`: no packet
/// id, DUP 0 (the publisher sent QoS 1).
async fn qos0_delivery_has_no_id_and_no_dup(l: Lane) {
    let (mut a, mut b) = pair(&l, 0).await;
    publish_acked(&mut a, &l.topic("x"), 1, b"payload").await;
    b.expect(&publish(0, &l.topic("x"), 0, b"payload"), "the QoS 0 delivery").await;
    a.send(&publish_raw(0x38, l.topic("y").as_bytes(), None, b"dup set by the publisher")).await;
    b.expect(&publish(0, &l.topic("y"), 0, b"dup set by the publisher"), "QoS 0 DUP 0 whatever the publisher said").await;
}

/// A PUBLISH received with DUP 1 (its first send, as far as the core knows)
/// is delivered with DUP 0.
async fn dup_is_not_passed_on(l: Lane) {
    let (mut a, mut b) = pair(&l, 1).await;
    a.send(&publish_raw(0x3A, l.topic("x").as_bytes(), Some(7), b"dup")).await;
    a.expect(&puback(7), "PUBACK").await;
    let p = next_publish(&mut b, "the delivery").await;
    assert_eq!(p.byte1, 0x32, "QoS 1, DUP 0: {p:?}");
}

async fn qos_3_closes(l: Lane) {
    let mut sub = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
    let bad = publish_raw(0x36, l.topic("x").as_bytes(), Some(1), b"qos 3");
    closes_and_routes_nothing(&l, &mut sub, &bad, "a PUBLISH with QoS 3").await;
}

/// Deliberately different: no retained messages. Messages published with
/// RETAIN 1 (QoS 0 and 1) before a subscription exists are not delivered
/// when it is made; what arrives afterwards has RETAIN 0; a new session of
/// the subscriber gets nothing either.
async fn retained_messages_are_not_kept(l: Lane) {
    let mut a = l.connect(&l.a).await;
    a.send(&publish_raw(0x31, l.topic("r0").as_bytes(), None, b"retained qos 0")).await;
    a.send(&publish_raw(0x33, l.topic("r1").as_bytes(), Some(1), b"retained qos 1")).await;
    a.expect(&puback(1), "PUBACK").await;
    for _ in 0..2 {
        let mut b = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
        barrier(&mut a, &mut b, &l.topic("barrier")).await;
        b.send(&packets::DISCONNECT).await;
        b.closed("DISCONNECT").await;
    }
}

/// Delivered on an established subscription: RETAIN 0, whatever the
/// publisher set.
async fn retain_is_cleared_on_delivery(l: Lane) {
    let (mut a, mut b) = pair(&l, 1).await;
    a.send(&publish_raw(0x33, l.topic("x").as_bytes(), Some(5), b"r")).await;
    a.expect(&puback(5), "PUBACK").await;
    a.send(&publish_raw(0x31, l.topic("y").as_bytes(), None, b"r0")).await;
    let p = next_publish(&mut b, "QoS 1 retained").await;
    assert_eq!(p.byte1, 0x32, "RETAIN 0: {p:?}");
    b.send(&puback(p.pkid.unwrap())).await;
    b.expect(&publish(0, &l.topic("y"), 0, b"r0"), "QoS 0 retained, delivered with RETAIN 0").await;
}

/// A retained PUBLISH with an empty payload reaches current subscribers as
/// usual (empty payload, RETAIN 0) and is not stored for later ones.
async fn empty_retained_message_is_delivered_as_usual(l: Lane) {
    let (mut a, mut b) = pair(&l, 1).await;
    a.send(&publish_raw(0x33, l.topic("x").as_bytes(), Some(2), b"")).await;
    a.expect(&puback(2), "PUBACK").await;
    let p = next_publish(&mut b, "the empty message").await;
    assert_eq!((p.byte1, p.topic(), p.payload.len()), (0x32, l.topic("x").as_str(), 0));
    b.send(&puback(p.pkid.unwrap())).await;
    let mut c = l.subscriber(&l.c, &[(&l.all(), 1)]).await;
    barrier(&mut a, &mut c, &l.topic("barrier")).await;
}

async fn non_retained_message_is_not_stored(l: Lane) {
    let mut a = l.connect(&l.a).await;
    publish_acked(&mut a, &l.topic("x"), 3, b"not retained").await;
    let mut c = l.subscriber(&l.c, &[(&l.all(), 1)]).await;
    barrier(&mut a, &mut c, &l.topic("barrier")).await;
}

/// A PUBLISH whose topic is missing (its length cut short) or not UTF-8
/// (a stray continuation byte, an encoded surrogate) closes the connection.
async fn topic_name_missing_or_not_utf8_closes(l: Lane) {
    let mut sub = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
    let prefix = l.topic("");
    let bad = [
        (vec![0x30, 0x01, 0x00], "a topic length cut short".to_string()),
        (vec![0x32, 0x03, 0x00, 0x05, b't'], "a topic shorter than its length".to_string()),
        (publish_raw(0x30, &[prefix.as_bytes(), &[0x80]].concat(), None, b"x"), "a stray continuation byte".to_string()),
        (publish_raw(0x30, &[prefix.as_bytes(), &[0xED, 0xA0, 0x80]].concat(), None, b"x"), "an encoded surrogate".to_string()),
    ];
    for (packet, what) in bad {
        closes_and_routes_nothing(&l, &mut sub, &packet, &what).await;
    }
}

async fn wildcard_in_topic_name_closes(l: Lane) {
    let mut sub = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
    for topic in [l.topic("+"), l.topic("#"), l.topic("a+b")] {
        closes_and_routes_nothing(&l, &mut sub, &publish(1, &topic, 1, b"x"), &format!("PUBLISH to {topic}")).await;
    }
}

/// A subscriber gets exactly the topics that match its filter, named as
/// published.
async fn delivered_topic_matches_the_filter(l: Lane) {
    let filter = format!("t/{}/+/z", l.seq);
    let mut b = l.subscriber(&l.b, &[(&filter, 1)]).await;
    let mut a = l.connect(&l.a).await;
    for topic in ["a/y", "a/z/z", "a/z", "z", "b//z"] {
        a.send(&publish(0, &l.topic(topic), 0, topic.as_bytes())).await;
    }
    b.expect(&publish(0, &l.topic("a/z"), 0, b"a/z"), "t/<seq>/a/z").await;
    a.send(&publish(0, &l.topic("end/z"), 0, b"end/z")).await;
    b.expect(&publish(0, &l.topic("end/z"), 0, b"end/z"), "the barrier (t/<seq>/b//z matches no filter level by level)").await;
}

/// Two filters of one subscriber match: one delivery, at the higher QoS;
/// a topic only the QoS 0 filter matches comes at QoS 0.
async fn overlapping_subscriptions_deliver_once_at_the_highest_qos(l: Lane) {
    let mut b = l.connect(&l.b).await;
    subscribe_ok(&mut b, 1, &[(&l.all(), 0), (&format!("t/{}/+", l.seq), 1)], &[0, 1]).await;
    let mut a = l.connect(&l.a).await;
    publish_acked(&mut a, &l.topic("x"), 1, b"both").await;
    publish_acked(&mut a, &l.topic("x/y"), 2, b"one").await;
    let p = next_publish(&mut b, "the message both filters match").await;
    assert_eq!((p.qos(), p.topic(), &p.payload[..]), (1, l.topic("x").as_str(), &b"both"[..]));
    b.send(&puback(p.pkid.unwrap())).await;
    b.expect(&publish(0, &l.topic("x/y"), 0, b"one"), "the message only the QoS 0 filter matches (and no second copy)").await;
}

/// A publish no subscription routes (an unauthorized one, for Greengrass)
/// is acknowledged as its QoS says and the connection stays.
async fn publish_routed_nowhere_is_acknowledged(l: Lane) {
    let mut a = l.connect(&l.a).await;
    a.send(&publish(0, "w/nowhere", 0, b"q0")).await;
    a.send(&publish(1, "w/nowhere", 11, b"q1")).await;
    a.expect(&puback(11), "PUBACK").await;
    a.send(&publish(2, "w/nowhere", 12, b"q2")).await;
    a.expect(&pubrec(12), "PUBREC").await;
    a.send(&pubrel(12)).await;
    a.expect(&pubcomp(12), "PUBCOMP").await;
    a.send(&PINGREQ).await;
    a.expect(&PINGRESP, "still connected").await;
}

async fn pubrel_with_wrong_flags_closes(l: Lane) {
    for byte1 in [0x60u8, 0x63, 0x6A] {
        let mut a = l.connect(&l.a).await;
        a.send(&publish(2, "w/nowhere", 4, b"q2")).await;
        a.expect(&pubrec(4), "PUBREC").await;
        a.send(&packets::id_packet(byte1, 4)).await;
        a.closed_silently(&format!("PUBREL with first byte {byte1:#04x}")).await;
    }
}

/// Once a QoS 1 PUBLISH is acknowledged, its id names a new message: the
/// same id (DUP or not) is routed again.
async fn qos1_id_is_free_again_after_puback(l: Lane) {
    let (mut a, mut b) = pair(&l, 1).await;
    publish_acked(&mut a, &l.topic("x"), 9, b"first").await;
    a.send(&publish_raw(0x3A, l.topic("x").as_bytes(), Some(9), b"second")).await;
    a.expect(&puback(9), "PUBACK").await;
    for want in [&b"first"[..], b"second"] {
        let p = next_publish(&mut b, "a delivery").await;
        assert_eq!(p.payload, want);
        b.send(&puback(p.pkid.unwrap())).await;
    }
}

/// QoS 2 from a device: PUBREC; copies re-sent before PUBREL get PUBREC and
/// are not passed on; PUBREL gets PUBCOMP; the id then names a new message.
async fn qos2_is_passed_on_once_per_release(l: Lane) {
    let (mut a, mut b) = pair(&l, 1).await;
    a.send(&publish(2, &l.topic("x"), 9, b"once")).await;
    a.expect(&pubrec(9), "PUBREC").await;
    for _ in 0..2 {
        a.send(&publish_raw(0x3C, l.topic("x").as_bytes(), Some(9), b"once")).await;
        a.expect(&pubrec(9), "PUBREC for the re-sent copy").await;
    }
    a.send(&pubrel(9)).await;
    a.expect(&pubcomp(9), "PUBCOMP").await;
    a.send(&publish(2, &l.topic("x"), 9, b"again")).await;
    a.expect(&pubrec(9), "PUBREC for the new message").await;
    a.send(&pubrel(9)).await;
    a.expect(&pubcomp(9), "PUBCOMP").await;
    for want in [&b"once"[..], b"again"] {
        let p = next_publish(&mut b, "a delivery").await;
        assert_eq!((p.qos(), &p.payload[..]), (1, want), "routed at QoS 1");
        b.send(&puback(p.pkid.unwrap())).await;
    }
    barrier(&mut a, &mut b, &l.topic("barrier")).await;
}

/// Deliberately different: QoS 2 is served at QoS 1. A QoS 2 subscription
/// is granted 1 and a QoS 2 message arrives as QoS 1, completed by PUBACK:
/// the core never sends QoS 2, so never PUBREL.
async fn qos2_subscriptions_are_served_at_qos1(l: Lane) {
    let mut b = l.connect(&l.b).await;
    subscribe_ok(&mut b, 1, &[(&l.all(), 2)], &[1]).await;
    let mut a = l.connect(&l.a).await;
    a.send(&publish(2, &l.topic("x"), 3, b"exactly once?")).await;
    a.expect(&pubrec(3), "PUBREC").await;
    a.send(&pubrel(3)).await;
    a.expect(&pubcomp(3), "PUBCOMP").await;
    let p = next_publish(&mut b, "the delivery").await;
    assert_eq!((p.byte1, &p.payload[..]), (0x32, &b"exactly once?"[..]));
    b.send(&puback(p.pkid.unwrap())).await;
    b.send(&PINGREQ).await;
    b.expect(&PINGRESP, "PINGRESP (and no PUBREL before it)").await;
}

/// Ten QoS 1 publishes in one write: ten PUBACKs in the same order.
async fn pubacks_follow_publish_order(l: Lane) {
    let mut a = l.connect(&l.a).await;
    let ids: Vec<u16> = vec![40, 3, 1000, 7, 65535, 2, 300, 9, 41, 1];
    let bytes: Vec<u8> = ids.iter().flat_map(|id| publish(1, &l.topic("x"), *id, b"p")).collect();
    a.send(&bytes).await;
    for id in ids {
        a.expect(&puback(id), &format!("PUBACK {id} in order")).await;
    }
}

async fn pubrecs_follow_publish_order(l: Lane) {
    let mut a = l.connect(&l.a).await;
    let ids: Vec<u16> = vec![5, 4, 3, 900, 2, 1];
    let bytes: Vec<u8> = ids.iter().flat_map(|id| publish(2, "w/nowhere", *id, b"p")).collect();
    a.send(&bytes).await;
    for id in &ids {
        a.expect(&pubrec(*id), &format!("PUBREC {id} in order")).await;
    }
    let rels: Vec<u8> = ids.iter().flat_map(|id| pubrel(*id)).collect();
    a.send(&rels).await;
    for id in &ids {
        a.expect(&pubcomp(*id), &format!("PUBCOMP {id} in order")).await;
    }
}

/// Two publishers (`a`, `c`) interleave QoS 1 and QoS 0 messages on one
/// topic; the subscriber gets each publisher's messages of each QoS in the
/// order sent.
async fn each_publisher_is_delivered_in_order(l: Lane) {
    let (mut a, mut b) = pair(&l, 1).await;
    let mut c = l.connect(&l.c).await;
    const N: u16 = 60;
    for i in 1..=N {
        let qos = (i % 2) as u8;
        a.send(&publish(qos, &l.topic("x"), i, format!("a {qos} {i}").as_bytes())).await;
        c.send(&publish(qos, &l.topic("x"), i, format!("c {qos} {i}").as_bytes())).await;
    }
    let mut last = std::collections::HashMap::new();
    for _ in 0..2 * N {
        let p = next_publish(&mut b, "a delivery").await;
        if let Some(id) = p.pkid {
            b.send(&puback(id)).await;
        }
        let text = String::from_utf8(p.payload).unwrap();
        let mut parts = text.split(' ');
        let (who, qos, i) =
            (parts.next().unwrap().to_string(), parts.next().unwrap().to_string(), parts.next().unwrap().parse::<u16>().unwrap());
        let previous = last.insert((who.clone(), qos.clone()), i);
        assert!(previous.is_none_or(|p| p < i), "{who}'s QoS {qos} message {i} came after {previous:?}");
    }
    assert_eq!(last.values().filter(|i| **i >= N - 1).count(), 4, "every stream reached its end: {last:?}");
}

/// A message is added to every session whose subscription matches: two
/// subscribers of `a`'s topic both get it, once.
async fn a_message_reaches_every_matching_session(l: Lane) {
    let (mut a, mut b) = pair(&l, 1).await;
    let mut c = l.subscriber(&l.c, &[(&l.topic("x"), 0)]).await;
    publish_acked(&mut a, &l.topic("x"), 1, b"for both").await;
    let p = next_publish(&mut b, "b's copy").await;
    assert_eq!(p.payload, b"for both");
    c.expect(&publish(0, &l.topic("x"), 0, b"for both"), "c's copy").await;
    barrier(&mut a, &mut c, &l.topic("x")).await;
}

/// U+FEFF (EF BB BF) in a topic is a character like any other: kept in the
/// delivered topic, matched only by a filter that has it.
async fn byte_order_mark_is_kept(l: Lane) {
    let with_bom = l.topic("\u{feff}x");
    let mut b = l.subscriber(&l.b, &[(&with_bom, 0)]).await;
    let mut a = l.connect(&l.a).await;
    a.send(&publish(0, &l.topic("x"), 0, b"no bom")).await;
    a.send(&publish(0, &with_bom, 0, b"bom")).await;
    let p = next_publish(&mut b, "the message with the BOM").await;
    assert_eq!((&p.topic[..], &p.payload[..]), (with_bom.as_bytes(), &b"bom"[..]), "{p:?}");
}

/// A topic name of 65,535 bytes (the most a length prefix holds) is routed
/// and delivered whole.
async fn longest_topic_name_is_routed(l: Lane) {
    let (mut a, mut b) = pair(&l, 1).await;
    let prefix = l.topic("");
    let topic = format!("{prefix}{}", "x".repeat(65_535 - prefix.len()));
    assert_eq!(topic.len(), 65_535);
    publish_acked(&mut a, &topic, 1, b"long").await;
    let p = next_publish(&mut b, "the long topic").await;
    assert_eq!((p.topic.len(), &p.payload[..]), (65_535, &b"long"[..]));
    assert!(p.topic == topic.as_bytes());
}

/// Matching compares bytes: no case folding, no Unicode normalization, no
/// trimming of separators.
async fn topics_are_not_normalized(l: Lane) {
    let nfc = l.topic("caf\u{e9}");
    let mut b = l.subscriber(&l.b, &[(&l.topic("Case"), 0), (&nfc, 0)]).await;
    let mut a = l.connect(&l.a).await;
    for near in [l.topic("case"), l.topic("CASE"), l.topic("Case/"), l.topic("cafe\u{301}"), l.topic("caf\u{c9}")] {
        a.send(&publish(0, &near, 0, b"near miss")).await;
    }
    a.send(&publish(0, &nfc, 0, b"exact")).await;
    b.expect(&publish(0, &nfc, 0, b"exact"), "only the exact topic").await;
}

async fn nul_in_topic_name_closes(l: Lane) {
    let mut sub = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
    closes_and_routes_nothing(&l, &mut sub, &publish(1, &l.topic("a\0b"), 1, b"x"), "NUL in a topic name").await;
}

/// A PUBLISH the core cannot take — its payload over `maxPayloadBytes`
/// (default 128 KiB), the most the core buffers for one packet — closes the
/// connection (MQTT 3.1.1 has no negative acknowledgement); the log names
/// device, topic and size; nothing is routed.
async fn publish_over_the_payload_limit_closes(l: Lane) {
    let mut sub = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
    let big = vec![0x55u8; 128 * 1024 + 1];
    let topic = l.topic("big");
    closes_and_routes_nothing(&l, &mut sub, &publish(1, &topic, 1, &big), "a payload of 128 KiB + 1").await;
    l.core.wait_log(&["payload over maxPayloadBytes", &format!("thing={}", l.a.thing), &format!("topic={topic}"), "size=131073"]).await;
}
