//! Subscribing and unsubscribing (MQTT 3.1.1 §3.8–3.11), PINGREQ (§3.12)
//! and topic filters (§4.7).

use super::packets::{
    self, puback, publish, subscribe_raw, unsuback, unsubscribe, unsubscribe_raw, FAILURE, GRANTED_0, GRANTED_1, PINGREQ, PINGRESP,
};
use super::{case, next_publish, publish_acked, subscribe_ok, Case, Lane};

pub fn cases() -> Vec<Case> {
    vec![
        case!(["MQTT-3.8.1-1"], subscribe_with_wrong_flags_closes),
        case!(["MQTT-3.8.3-1", "MQTT-1.5.3-1"], filter_not_utf8_closes),
        case!(["MQTT-3.8.3-2"], wildcard_filters_are_supported),
        case!(["MQTT-3.8.3-3"], subscribe_without_filters_closes),
        case!(["MQTT-3-8.3-4"], reserved_bits_of_requested_qos_close),
        case!(["MQTT-3.8.4-1", "MQTT-3.8.4-2", "MQTT-3.8.4-5", "MQTT-3.9.3-1", "MQTT-3.9.3-2"], suback_has_a_code_per_filter_in_order),
        case!(["MQTT-3.8.4-3"], same_filter_replaces_the_subscription),
        case!(["MQTT-3.8.4-4"], filters_of_one_subscribe_apply_in_sequence),
        case!(["MQTT-3.8.4-6"], delivery_qos_is_the_lower_of_published_and_granted),
        case!(["MQTT-3.10.1-1"], unsubscribe_with_wrong_flags_closes),
        case!(["MQTT-3.10.3-1"], unsubscribe_filter_not_utf8_closes),
        case!(["MQTT-3.10.3-2"], unsubscribe_without_filters_closes),
        case!(["MQTT-3.10.4-1", "MQTT-3.10.4-2"], unsubscribe_matches_filters_exactly),
        case!(["MQTT-3.10.4-4", "MQTT-3.10.4-5", "MQTT-3.10.4-6"], one_unsuback_per_unsubscribe),
        case!(["MQTT-3.12.4-1"], pingreq_gets_pingresp),
        case!(["MQTT-4.7.1-2", "MQTT-4.7.1-3"], malformed_filters_are_refused),
        case!(["MQTT-4.7.2-1"], wildcards_do_not_match_dollar_topics),
        case!(["MQTT-4.7.3-1"], empty_topics_and_filters),
        case!(["MQTT-4.7.3-2", "MQTT-1.5.3-2"], nul_in_filters_closes),
    ]
}

async fn subscribe_with_wrong_flags_closes(l: Lane) {
    for byte1 in [0x80u8, 0x83, 0x8A, 0x86] {
        let mut b = l.connect(&l.b).await;
        b.send(&subscribe_raw(byte1, 1, &[(l.all().as_bytes(), 1)])).await;
        b.closed_silently(&format!("SUBSCRIBE with first byte {byte1:#04x}")).await;
    }
}

async fn filter_not_utf8_closes(l: Lane) {
    let prefix = format!("t/{}/", l.seq);
    for bad in [&[0xFFu8][..], &[0xED, 0xB0, 0x80], &[0xC0, 0x80]] {
        let filter = [prefix.as_bytes(), bad].concat();
        let mut b = l.connect(&l.b).await;
        b.send(&subscribe_raw(0x82, 1, &[(&filter, 1)])).await;
        b.closed_silently(&format!("filter with {bad:02x?}")).await;
    }
}

/// `+` and `#` are supported: granted, and they match.
async fn wildcard_filters_are_supported(l: Lane) {
    let mut b = l.connect(&l.b).await;
    subscribe_ok(&mut b, 1, &[(&format!("t/{}/+/#", l.seq), 1)], &[GRANTED_1]).await;
    let mut a = l.connect(&l.a).await;
    publish_acked(&mut a, &l.topic("x/y/z"), 1, b"deep").await;
    let p = next_publish(&mut b, "the match").await;
    assert_eq!((p.topic(), &p.payload[..]), (l.topic("x/y/z").as_str(), &b"deep"[..]));
}

async fn subscribe_without_filters_closes(l: Lane) {
    let mut b = l.connect(&l.b).await;
    b.send(&[0x82, 0x02, 0x00, 0x01]).await;
    b.closed_silently("SUBSCRIBE with no filter").await;
}

/// Bits 2–7 of a requested-QoS byte are reserved; QoS 3 does not exist.
async fn reserved_bits_of_requested_qos_close(l: Lane) {
    for options in [0x04u8, 0x81, 0xFC, 0x03] {
        let mut b = l.connect(&l.b).await;
        b.send(&subscribe_raw(0x82, 1, &[(l.all().as_bytes(), options)])).await;
        b.closed_silently(&format!("requested QoS byte {options:#04x}")).await;
    }
}

/// One SUBACK, with the SUBSCRIBE's packet id and one code per filter in
/// order: granted at the QoS asked (QoS 2 at 1), 0x80 for a filter no
/// subscription of the group routes to the device (Greengrass's rule, the
/// server's choice under MQTT) and for a malformed one. No other code.
async fn suback_has_a_code_per_filter_in_order(l: Lane) {
    let mut b = l.connect(&l.b).await;
    let filters = [
        (l.topic("a"), 1),
        ("w/#".to_string(), 1),
        (l.topic("b"), 0),
        (l.topic("c"), 2),
        ("a/#/b".to_string(), 1),
        (format!("u/{}/v", l.seq), 0),
    ];
    let filters: Vec<(&str, u8)> = filters.iter().map(|(f, q)| (f.as_str(), *q)).collect();
    b.send(&packets::subscribe(0xABCD, &filters)).await;
    b.expect(&[0x90, 0x08, 0xAB, 0xCD, GRANTED_1, FAILURE, GRANTED_0, GRANTED_1, FAILURE, GRANTED_0], "SUBACK").await;
}

/// Subscribing again to an identical filter replaces the subscription: its
/// QoS changes, and a message is still delivered once.
async fn same_filter_replaces_the_subscription(l: Lane) {
    let mut b = l.connect(&l.b).await;
    subscribe_ok(&mut b, 1, &[(&l.all(), 1)], &[GRANTED_1]).await;
    subscribe_ok(&mut b, 2, &[(&l.all(), 0)], &[GRANTED_0]).await;
    let mut a = l.connect(&l.a).await;
    publish_acked(&mut a, &l.topic("x"), 1, b"at 0").await;
    b.expect(&publish(0, &l.topic("x"), 0, b"at 0"), "one copy at QoS 0").await;
    subscribe_ok(&mut b, 3, &[(&l.all(), 1)], &[GRANTED_1]).await;
    publish_acked(&mut a, &l.topic("y"), 2, b"at 1").await;
    let p = next_publish(&mut b, "one copy at QoS 1").await;
    assert_eq!((p.qos(), &p.payload[..]), (1, &b"at 1"[..]));
    b.send(&puback(p.pkid.unwrap())).await;
    b.send(&PINGREQ).await;
    b.expect(&PINGRESP, "no second copy").await;
}

/// The same filter twice in one SUBSCRIBE acts as two SUBSCRIBEs: the second
/// replaces the first; one SUBACK answers both.
async fn filters_of_one_subscribe_apply_in_sequence(l: Lane) {
    let mut b = l.connect(&l.b).await;
    subscribe_ok(&mut b, 9, &[(&l.all(), 0), (&l.all(), 1)], &[GRANTED_0, GRANTED_1]).await;
    let mut a = l.connect(&l.a).await;
    publish_acked(&mut a, &l.topic("x"), 1, b"x").await;
    let p = next_publish(&mut b, "the delivery").await;
    assert_eq!(p.qos(), 1, "the second filter's QoS is in force");
    b.send(&puback(p.pkid.unwrap())).await;
    b.send(&PINGREQ).await;
    b.expect(&PINGRESP, "one copy only").await;
}

async fn delivery_qos_is_the_lower_of_published_and_granted(l: Lane) {
    let (q0, q1) = (l.topic("q0"), l.topic("q1"));
    let mut b = l.connect(&l.b).await;
    subscribe_ok(&mut b, 1, &[(&q0, 0), (&q1, 1)], &[GRANTED_0, GRANTED_1]).await;
    let mut a = l.connect(&l.a).await;
    for (qos, topic, pkid) in [(0u8, &q1, 0u16), (1, &q0, 1), (2, &q0, 2), (1, &q1, 3), (2, &q1, 4)] {
        a.send(&publish(qos, topic, pkid, format!("{qos}").as_bytes())).await;
    }
    for (want, topic) in [(0u8, &q1), (0, &q0), (0, &q0), (1, &q1), (1, &q1)] {
        let p = next_publish(&mut b, "a delivery").await;
        assert_eq!((p.qos(), p.topic()), (want, topic.as_str()), "published at QoS {:?}", String::from_utf8_lossy(&p.payload));
        if let Some(id) = p.pkid {
            b.send(&puback(id)).await;
        }
    }
}

async fn unsubscribe_with_wrong_flags_closes(l: Lane) {
    for byte1 in [0xA0u8, 0xA3, 0xAA] {
        let mut b = l.connect(&l.b).await;
        b.send(&unsubscribe_raw(byte1, 1, &[l.all().as_bytes()])).await;
        b.closed_silently(&format!("UNSUBSCRIBE with first byte {byte1:#04x}")).await;
    }
}

async fn unsubscribe_filter_not_utf8_closes(l: Lane) {
    let mut b = l.connect(&l.b).await;
    b.send(&unsubscribe_raw(0xA2, 1, &[&[b't', b'/', 0xFE]])).await;
    b.closed_silently("UNSUBSCRIBE filter not UTF-8").await;
}

async fn unsubscribe_without_filters_closes(l: Lane) {
    let mut b = l.connect(&l.b).await;
    b.send(&[0xA2, 0x02, 0x00, 0x01]).await;
    b.closed_silently("UNSUBSCRIBE with no filter").await;
}

/// Only a filter equal character for character unsubscribes: `t/<seq>/+`
/// and `T/<seq>/#` leave `t/<seq>/#` in force, `t/<seq>/#` removes it, and
/// nothing is delivered for it afterwards.
async fn unsubscribe_matches_filters_exactly(l: Lane) {
    let barrier_topic = format!("u/{}/v", l.seq);
    let mut b = l.subscriber(&l.b, &[(&l.all(), 0), (&barrier_topic, 0)]).await;
    let mut a = l.connect(&l.a).await;
    b.send(&unsubscribe(2, &[&format!("t/{}/+", l.seq), &format!("T/{}/#", l.seq), &format!("t/{}/#/", l.seq)])).await;
    b.expect(&unsuback(2), "UNSUBACK").await;
    a.send(&publish(0, &l.topic("x"), 0, b"still subscribed")).await;
    b.expect(&publish(0, &l.topic("x"), 0, b"still subscribed"), "the subscription stayed").await;
    b.send(&unsubscribe(3, &[&l.all()])).await;
    b.expect(&unsuback(3), "UNSUBACK").await;
    a.send(&publish(0, &l.topic("x"), 0, b"unsubscribed")).await;
    a.send(&publish(0, &barrier_topic, 0, b"barrier")).await;
    b.expect(&publish(0, &barrier_topic, 0, b"barrier"), "the barrier, and nothing for the removed filter before it").await;
}

/// One UNSUBSCRIBE with several filters (subscribed or not): one UNSUBACK
/// with its packet id, also when nothing was removed.
async fn one_unsuback_per_unsubscribe(l: Lane) {
    let mut b = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
    b.send(&unsubscribe(0x0102, &["w/never", &l.all(), "x/+/y"])).await;
    b.expect(&[0xB0, 0x02, 0x01, 0x02], "one UNSUBACK").await;
    b.send(&unsubscribe(0x0103, &["w/never"])).await;
    b.expect(&[0xB0, 0x02, 0x01, 0x03], "UNSUBACK when nothing matched").await;
    b.send(&PINGREQ).await;
    b.expect(&PINGRESP, "nothing else").await;
}

async fn pingreq_gets_pingresp(l: Lane) {
    let mut a = l.connect(&l.a).await;
    for _ in 0..3 {
        a.send(&PINGREQ).await;
        a.expect(&[0xD0, 0x00], "PINGRESP").await;
    }
    a.send(&[PINGREQ, PINGREQ].concat()).await;
    a.expect(&PINGRESP, "PINGRESP").await;
    a.expect(&PINGRESP, "PINGRESP").await;
}

/// Deliberately different: a malformed filter (`#` not alone or not last,
/// `+` sharing its level) is refused with 0x80 instead of closing the
/// connection, which stays usable and keeps its other filters.
async fn malformed_filters_are_refused(l: Lane) {
    let mut b = l.connect(&l.b).await;
    let seq = l.seq;
    let bad = [format!("t/{seq}/#/x"), format!("t/{seq}#"), format!("t/{seq}/a+"), format!("+t/{seq}"), format!("t/{seq}/##")];
    let mut filters: Vec<(&str, u8)> = bad.iter().map(|f| (f.as_str(), 1)).collect();
    let all = l.all();
    filters.push((&all, 1));
    b.send(&packets::subscribe(4, &filters)).await;
    b.expect(&packets::suback(4, &[FAILURE, FAILURE, FAILURE, FAILURE, FAILURE, GRANTED_1]), "SUBACK").await;
    let mut a = l.connect(&l.a).await;
    publish_acked(&mut a, &l.topic("x"), 1, b"x").await;
    let p = next_publish(&mut b, "the valid filter still works").await;
    assert_eq!(p.topic(), l.topic("x"));
}

/// `#` and `+/...` do not match a topic starting with `$` (the table routes
/// `$x/#` to `b`); `$x/#` does.
async fn wildcards_do_not_match_dollar_topics(l: Lane) {
    let mut b = l.connect(&l.b).await;
    let seq = l.seq;
    subscribe_ok(&mut b, 1, &[("#", 0), (&format!("+/{seq}"), 0), ("+/+", 0)], &[GRANTED_0, GRANTED_0, GRANTED_0]).await;
    let mut a = l.connect(&l.a).await;
    a.send(&publish(0, &format!("$x/{seq}"), 0, b"dollar")).await;
    a.send(&publish(0, &l.topic("barrier"), 0, b"barrier")).await;
    b.expect(&publish(0, &l.topic("barrier"), 0, b"barrier"), "the barrier, and no $ topic before it").await;
    subscribe_ok(&mut b, 2, &[("$x/#", 0)], &[GRANTED_0]).await;
    a.send(&publish(0, &format!("$x/{seq}"), 0, b"dollar")).await;
    b.expect(&publish(0, &format!("$x/{seq}"), 0, b"dollar"), "named explicitly, once").await;
    a.send(&publish(0, &l.topic("barrier"), 0, b"barrier")).await;
    b.expect(&publish(0, &l.topic("barrier"), 0, b"barrier"), "the barrier").await;
}

/// Partly different: a PUBLISH with an empty topic name closes the
/// connection, while an empty filter gets 0x80 like any malformed filter.
async fn empty_topics_and_filters(l: Lane) {
    let mut b = l.connect(&l.b).await;
    b.send(&packets::subscribe(1, &[("", 0), (&l.all(), 0)])).await;
    b.expect(&packets::suback(1, &[FAILURE, GRANTED_0]), "SUBACK").await;
    let mut a = l.connect(&l.a).await;
    a.send(&publish(0, "", 0, b"no topic")).await;
    a.closed_silently("PUBLISH with an empty topic").await;
}

/// U+0000 in a SUBSCRIBE or UNSUBSCRIBE filter closes the connection.
async fn nul_in_filters_closes(l: Lane) {
    let filter = format!("t/{}/\0", l.seq);
    let mut b = l.connect(&l.b).await;
    b.send(&subscribe_raw(0x82, 1, &[(filter.as_bytes(), 0)])).await;
    b.closed_silently("SUBSCRIBE with NUL").await;
    let mut b = l.connect(&l.b).await;
    b.send(&unsubscribe_raw(0xA2, 1, &[filter.as_bytes()])).await;
    b.closed_silently("UNSUBSCRIBE with NUL").await;
}
