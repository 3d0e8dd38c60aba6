//! Connecting (MQTT 3.1.1 §3.1, §3.2), the strings of CONNECT (§1.5.3), the
//! packet format (§2.2.2) and protocol errors in general (§4.8).

use super::packets::{self, connack, field, frame, id_packet, Connect, CONNACK_OK, DISCONNECT, PINGREQ, PINGRESP};
use super::{barrier, case, next_publish, subscribe_ok, Case, Lane};

pub fn cases() -> Vec<Case> {
    vec![
        case!(["MQTT-3.1.0-1"], first_packet_must_be_connect),
        case!(["MQTT-3.1.0-2"], second_connect_closes),
        case!(["MQTT-3.1.2-1"], other_protocol_names_are_refused),
        case!(["MQTT-3.1.2-2"], unsupported_protocol_levels_get_connack_1),
        case!(["MQTT-3.1.2-3"], reserved_connect_flag_closes),
        case!(["MQTT-3.1.2-9"], will_flag_without_will_fields_closes),
        case!(["MQTT-3.1.2-11"], will_fields_without_will_flag_close),
        case!(["MQTT-3.1.2-13"], will_qos_without_will_flag_closes),
        case!(["MQTT-3.1.2-14"], will_qos_3_closes),
        case!(["MQTT-3.1.2-15"], will_retain_without_will_flag_closes),
        case!(["MQTT-3.1.2-18"], user_name_without_its_flag_closes),
        case!(["MQTT-3.1.2-19"], user_name_flag_without_user_name_closes),
        case!(["MQTT-3.1.2-20"], password_without_its_flag_closes),
        case!(["MQTT-3.1.2-21"], password_flag_without_password_closes),
        case!(["MQTT-3.1.2-22"], password_without_user_name_closes),
        case!(["MQTT-3.1.3-1"], payload_fields_are_read_in_order),
        case!(["MQTT-3.1.3-3"], missing_client_id_closes),
        case!(["MQTT-3.1.3-4", "MQTT-1.5.3-1"], ill_formed_utf8_in_connect_closes),
        case!(["MQTT-1.5.3-2"], nul_in_connect_strings_closes),
        case!(["MQTT-3.1.3-5"], client_id_must_be_the_thing_name),
        case!(["MQTT-3.1.3-6"], empty_client_id_is_rejected),
        case!(["MQTT-3.1.3-8"], empty_client_id_with_persistent_session_gets_connack_2),
        case!(["MQTT-3.1.3-9"], rejected_client_id_gets_connack_2),
        case!(["MQTT-3.1.3-10"], will_topic_not_utf8_closes),
        case!(["MQTT-3.1.3-11"], user_name_not_utf8_closes),
        case!(["MQTT-3.1.4-1"], malformed_connect_closes_without_connack),
        case!(["MQTT-3.1.4-2"], same_client_id_takes_over),
        case!(["MQTT-3.1.4-4"], accepted_connect_gets_connack_0),
        case!(["MQTT-3.1.4-5"], nothing_after_a_refused_connect_is_processed),
        case!(["MQTT-3.2.0-1"], connack_comes_first),
        case!(["MQTT-3.2.2-1", "MQTT-3.1.4-3"], clean_session_has_no_session_present),
        case!(["MQTT-3.2.2-2", "MQTT-3.2.2-3"], session_present_says_whether_a_session_was_kept),
        case!(["MQTT-3.2.2-4", "MQTT-3.2.2-5"], refusals_have_no_session_present_and_close),
        case!(["MQTT-3.2.2-6"], no_fitting_return_code_closes_without_connack),
        case!(["MQTT-2.2.2-2"], reserved_header_flags_close),
        case!(["MQTT-2.2.2-1", "MQTT-2.3.1-6", "MQTT-2.3.1-7", "MQTT-3.3.4-1"], answers_carry_the_right_flags_and_ids),
        case!(["MQTT-4.8.0-1"], packets_a_client_may_not_send_close),
        case!(["MQTT-7.0.0-2", "MQTT-7.1.1-1"], a_standard_client_needs_no_extension),
    ]
}

/// Opens TLS as `a`, sends `bytes` and expects the core to close the
/// connection without answering.
async fn refused_silently(l: &Lane, bytes: &[u8], what: &str) {
    let mut c = l.open(&l.a).await;
    c.send(bytes).await;
    c.closed_silently(what).await;
}

/// Opens TLS as `a`, sends `connect` and expects CONNACK `code` (session
/// present 0) and then the close.
async fn refused_with(l: &Lane, connect: &Connect, code: u8, what: &str) {
    let mut c = l.send_connect(&l.a, connect).await;
    c.expect(&connack(false, code), what).await;
    c.closed_silently(what).await;
}

/// A connection must start with CONNECT: anything else closes it unanswered.
async fn first_packet_must_be_connect(l: Lane) {
    let firsts = [
        (PINGREQ.to_vec(), "PINGREQ"),
        (packets::publish(1, &l.topic("x"), 1, b"p"), "PUBLISH"),
        (packets::subscribe(1, &[("t/#", 1)]), "SUBSCRIBE"),
        (DISCONNECT.to_vec(), "DISCONNECT"),
        (CONNACK_OK.to_vec(), "CONNACK"),
    ];
    for (bytes, what) in firsts {
        refused_silently(&l, &bytes, &format!("{what} first")).await;
    }
}

/// A second CONNECT on a connection is a protocol violation: no second
/// CONNACK, the connection closes.
async fn second_connect_closes(l: Lane) {
    let mut c = l.connect(&l.a).await;
    c.send(&Connect::new(&l.a.thing).encode()).await;
    c.closed_silently("a second CONNECT").await;
}

/// A protocol name other than "MQTT" closes the connection unanswered; the
/// one exception is "MQIsdp" (MQTT 3.1), which gets MQTT 3.1's refusal of
/// its version, CONNACK 0x01, and then the close.
async fn other_protocol_names_are_refused(l: Lane) {
    for name in [&b"MQTX"[..], b"mqtt", b"MQT", b"", b"MQTT\0"] {
        let mut connect = Connect::new(&l.a.thing);
        connect.protocol = name.to_vec();
        refused_silently(&l, &connect.encode(), &format!("protocol name {name:?}")).await;
    }
    let mut v31 = Connect::new(&l.a.thing);
    v31.protocol = b"MQIsdp".to_vec();
    v31.level = 3;
    refused_with(&l, &v31, 0x01, "MQTT 3.1 (MQIsdp, level 3)").await;
}

/// Protocol levels other than 4 get CONNACK 0x01 and the close — whatever
/// follows the level, as in an MQTT 5 CONNECT with its properties.
async fn unsupported_protocol_levels_get_connack_1(l: Lane) {
    for level in [0u8, 3, 5, 6, 255] {
        let mut connect = Connect::new(&l.a.thing);
        connect.level = level;
        refused_with(&l, &connect, 0x01, &format!("protocol level {level}")).await;
    }
    // MQTT 5: properties (here: session expiry 0x11 = 60) between keep-alive
    // and payload.
    let mut v5 = Connect::new(&l.a.thing);
    v5.level = 5;
    let mut payload = vec![0x05, 0x11, 0, 0, 0, 60];
    payload.extend(field(l.a.thing.as_bytes()));
    v5.payload = Some(payload);
    refused_with(&l, &v5, 0x01, "an MQTT 5 CONNECT with properties").await;
}

/// Bit 0 of the connect flags is reserved: set, the connection closes
/// unanswered.
async fn reserved_connect_flag_closes(l: Lane) {
    let mut connect = Connect::new(&l.a.thing);
    connect.extra_flags = 0x01;
    refused_silently(&l, &connect.encode(), "reserved connect flag set").await;
}

async fn will_flag_without_will_fields_closes(l: Lane) {
    let mut connect = Connect::new(&l.a.thing);
    connect.extra_flags = 0x04 | 0x08;
    refused_silently(&l, &connect.encode(), "will flag without will topic and message").await;
    // Only the topic.
    connect.trailing = field(b"t/w");
    refused_silently(&l, &connect.encode(), "will flag with a will topic but no message").await;
}

/// Will topic and message present while the will flag is 0: bytes the flags
/// do not account for.
async fn will_fields_without_will_flag_close(l: Lane) {
    let mut connect = Connect::new(&l.a.thing);
    connect.trailing = [field(l.topic("w").as_bytes()), field(b"bye")].concat();
    refused_silently(&l, &connect.encode(), "will fields without the will flag").await;
}

async fn will_qos_without_will_flag_closes(l: Lane) {
    for qos_bits in [0x08u8, 0x10, 0x18] {
        let mut connect = Connect::new(&l.a.thing);
        connect.extra_flags = qos_bits;
        refused_silently(&l, &connect.encode(), &format!("will QoS bits {qos_bits:#04x} without the will flag")).await;
    }
}

async fn will_qos_3_closes(l: Lane) {
    let connect = Connect::new(&l.a.thing).will(&l.topic("w"), b"bye", 3, false);
    refused_silently(&l, &connect.encode(), "will QoS 3").await;
}

async fn will_retain_without_will_flag_closes(l: Lane) {
    let mut connect = Connect::new(&l.a.thing);
    connect.extra_flags = 0x20;
    refused_silently(&l, &connect.encode(), "will retain without the will flag").await;
}

async fn user_name_without_its_flag_closes(l: Lane) {
    let mut connect = Connect::new(&l.a.thing);
    connect.trailing = field(b"user");
    refused_silently(&l, &connect.encode(), "a user name without the user name flag").await;
}

async fn user_name_flag_without_user_name_closes(l: Lane) {
    let mut connect = Connect::new(&l.a.thing);
    connect.extra_flags = 0x80;
    refused_silently(&l, &connect.encode(), "the user name flag without a user name").await;
}

async fn password_without_its_flag_closes(l: Lane) {
    let mut connect = Connect::new(&l.a.thing);
    connect.username = Some(b"user".to_vec());
    connect.trailing = field(b"secret");
    refused_silently(&l, &connect.encode(), "a password without the password flag").await;
}

async fn password_flag_without_password_closes(l: Lane) {
    let mut connect = Connect::new(&l.a.thing);
    connect.username = Some(b"user".to_vec());
    connect.extra_flags = 0x40;
    refused_silently(&l, &connect.encode(), "the password flag without a password").await;
}

async fn password_without_user_name_closes(l: Lane) {
    let mut connect = Connect::new(&l.a.thing);
    connect.password = Some(b"secret".to_vec());
    refused_silently(&l, &connect.encode(), "a password without a user name").await;
}

/// Every optional field at once, in the standard's order: accepted, and the
/// field after the client id is taken as the will topic (the will published
/// when the connection drops goes there, with the will message). User name
/// and password are accepted and not used: devices authenticate with their
/// certificate.
async fn payload_fields_are_read_in_order(l: Lane) {
    let mut sub = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
    let mut connect = Connect::new(&l.a.thing).will(&l.topic("will"), b"last words", 1, false);
    connect.username = Some(b"user".to_vec());
    connect.password = Some(b"secret".to_vec());
    let c = l.connect_with(&l.a, connect, false).await;
    drop(c);
    let p = next_publish(&mut sub, "the will").await;
    assert_eq!((p.topic(), &p.payload[..]), (l.topic("will").as_str(), &b"last words"[..]));
}

async fn missing_client_id_closes(l: Lane) {
    let mut connect = Connect::new(&l.a.thing);
    connect.payload = Some(Vec::new());
    refused_silently(&l, &connect.encode(), "no client id").await;
    // A length prefix with fewer bytes after it than it says.
    connect.payload = Some(vec![0x00, 0x10, b'a']);
    refused_silently(&l, &connect.encode(), "a client id shorter than its length").await;
}

/// Ill-formed UTF-8 in the client id: a stray continuation byte, an
/// overlong encoding, an encoded surrogate (U+D800).
async fn ill_formed_utf8_in_connect_closes(l: Lane) {
    for id in [&[b'a', 0x80][..], &[0xC0, 0xAF], &[0xED, 0xA0, 0x80], &[0xFF]] {
        let mut connect = Connect::new(&l.a.thing);
        connect.client_id = id.to_vec();
        refused_silently(&l, &connect.encode(), &format!("client id {id:02x?}")).await;
    }
}

/// U+0000 in the client id, the will topic or the user name closes the
/// connection unanswered.
async fn nul_in_connect_strings_closes(l: Lane) {
    let mut connect = Connect::new(&l.a.thing);
    connect.client_id = format!("{}\0", l.a.thing).into_bytes();
    refused_silently(&l, &connect.encode(), "NUL in the client id").await;
    let connect = Connect::new(&l.a.thing).will("t/\0", b"bye", 0, false);
    refused_silently(&l, &connect.encode(), "NUL in the will topic").await;
    let mut connect = Connect::new(&l.a.thing);
    connect.username = Some(b"us\0er".to_vec());
    refused_silently(&l, &connect.encode(), "NUL in the user name").await;
}

/// Deliberately different: the client id must be the thing name of the
/// certificate's device. Well-formed ids (1–23 of `0-9a-zA-Z`) that are not
/// get CONNACK 0x02, identifier rejected; the thing name (itself such an id
/// here) is accepted.
async fn client_id_must_be_the_thing_name(l: Lane) {
    for id in ["abc123", "A", "0123456789abcdefghijklm"] {
        refused_with(&l, &Connect::new(id), 0x02, &format!("client id {id}")).await;
    }
    assert!(l.a.thing.len() <= 23 && l.a.thing.bytes().all(|b| b.is_ascii_alphanumeric()));
    l.connect(&l.a).await;
}

/// ggcore does not take the option to accept an empty client id (it could
/// not be a thing name): CONNACK 0x02 and the close, with a clean session too.
async fn empty_client_id_is_rejected(l: Lane) {
    refused_with(&l, &Connect::new(""), 0x02, "empty client id, clean session").await;
}

async fn empty_client_id_with_persistent_session_gets_connack_2(l: Lane) {
    refused_with(&l, &Connect::new("").persistent(), 0x02, "empty client id, persistent session").await;
}

/// A client id the server rejects — here another device's thing name with
/// this device's certificate.
async fn rejected_client_id_gets_connack_2(l: Lane) {
    refused_with(&l, &Connect::new(&l.b.thing), 0x02, "another device's thing name").await;
    refused_with(&l, &Connect::new(&l.b.thing).persistent(), 0x02, "another device's thing name, persistent").await;
}

async fn will_topic_not_utf8_closes(l: Lane) {
    let mut connect = Connect::new(&l.a.thing);
    connect.will = Some((vec![b't', b'/', 0xC3, 0x28], b"bye".to_vec(), 0, false));
    refused_silently(&l, &connect.encode(), "will topic not UTF-8").await;
}

async fn user_name_not_utf8_closes(l: Lane) {
    let mut connect = Connect::new(&l.a.thing);
    connect.username = Some(vec![0xFF, 0xFE]);
    refused_silently(&l, &connect.encode(), "user name not UTF-8").await;
}

/// CONNECTs that do not hold together close the connection without CONNACK.
async fn malformed_connect_closes_without_connack(l: Lane) {
    let good = Connect::new(&l.a.thing).encode();
    // No variable header at all.
    refused_silently(&l, &[0x10, 0x00], "an empty CONNECT").await;
    // Cut after the protocol name, the level, the flags.
    for keep in [6usize, 7, 8] {
        let body = &good[2..2 + keep];
        refused_silently(&l, &frame(0x10, body), &format!("CONNECT cut after {keep} bytes")).await;
    }
    // A remaining length larger than what follows, then junk that completes it.
    let mut longer = good.clone();
    longer[1] += 3;
    longer.extend_from_slice(&[0xAA, 0xBB, 0xCC]);
    refused_silently(&l, &longer, "CONNECT with bytes after its last field").await;
}

/// A second connection with the same client id closes the first.
async fn same_client_id_takes_over(l: Lane) {
    let mut first = l.connect(&l.a).await;
    let mut second = l.connect(&l.a).await;
    first.closed_silently("the connection taken over").await;
    second.send(&PINGREQ).await;
    second.expect(&PINGRESP, "PINGRESP on the new connection").await;
}

async fn accepted_connect_gets_connack_0(l: Lane) {
    let mut c = l.send_connect(&l.a, &Connect::new(&l.a.thing)).await;
    c.expect(&CONNACK_OK, "CONNACK").await;
}

/// CONNECT refused (wrong client id) with a PUBLISH right behind it in the
/// same write: CONNACK 0x02, the close, and the PUBLISH never routed.
async fn nothing_after_a_refused_connect_is_processed(l: Lane) {
    let mut sub = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
    let mut c = l.open(&l.a).await;
    let bytes = [Connect::new("someone-else").encode(), packets::publish(1, &l.topic("x"), 1, b"must not pass")].concat();
    c.send(&bytes).await;
    c.expect(&connack(false, 0x02), "CONNACK 0x02").await;
    c.closed_silently("refused CONNECT").await;
    let mut publisher = l.connect(&l.a).await;
    barrier(&mut publisher, &mut sub, &l.topic("barrier")).await;
}

/// CONNECT, SUBSCRIBE and PINGREQ in one write: CONNACK first, then the
/// answers in order.
async fn connack_comes_first(l: Lane) {
    let mut c = l.open(&l.b).await;
    let bytes = [Connect::new(&l.b.thing).encode(), packets::subscribe(3, &[(&l.all(), 1)]), PINGREQ.to_vec()].concat();
    c.send(&bytes).await;
    c.expect(&CONNACK_OK, "CONNACK first").await;
    c.expect(&packets::suback(3, &[1]), "then SUBACK").await;
    c.expect(&PINGRESP, "then PINGRESP").await;
}

/// With a persistent session stored, a clean-session CONNECT gets session
/// present 0 (and discards the stored session).
async fn clean_session_has_no_session_present(l: Lane) {
    let mut c = l.connect_with(&l.b, Connect::new(&l.b.thing).persistent(), false).await;
    subscribe_ok(&mut c, 1, &[(&l.all(), 1)], &[1]).await;
    c.send(&DISCONNECT).await;
    c.closed("DISCONNECT").await;
    let mut clean = l.connect_with(&l.b, Connect::new(&l.b.thing), false).await;
    clean.send(&DISCONNECT).await;
    clean.closed("DISCONNECT").await;
    // The stored session is gone.
    l.connect_with(&l.b, Connect::new(&l.b.thing).persistent(), false).await;
    l.end_session(&l.b).await;
}

async fn session_present_says_whether_a_session_was_kept(l: Lane) {
    l.end_session(&l.b).await;
    let mut c = l.connect_with(&l.b, Connect::new(&l.b.thing).persistent(), false).await;
    c.send(&DISCONNECT).await;
    c.closed("DISCONNECT").await;
    let c = l.connect_with(&l.b, Connect::new(&l.b.thing).persistent(), true).await;
    // Dropped without DISCONNECT: the session is kept all the same.
    drop(c);
    l.connect_with(&l.b, Connect::new(&l.b.thing).persistent(), true).await;
    l.end_session(&l.b).await;
}

/// Refusals — identifier rejected while the thing has a stored session, not
/// authorized for a certificate that is not a device of the group — have
/// session present 0 and close the connection.
async fn refusals_have_no_session_present_and_close(l: Lane) {
    let mut c = l.connect_with(&l.a, Connect::new(&l.a.thing).persistent(), false).await;
    c.send(&DISCONNECT).await;
    c.closed("DISCONNECT").await;
    refused_with(&l, &Connect::new("not-a").persistent(), 0x02, "wrong client id").await;
    let mut c = l.send_connect(&l.stranger, &Connect::new(&l.stranger.thing).persistent()).await;
    c.expect(&connack(false, 0x05), "a certificate of no device of the group").await;
    c.closed_silently("not authorized").await;
    l.end_session(&l.a).await;
}

/// A CONNECT no return code fits — well-formed, from a device of the group,
/// but with a will on a topic no message may have (a wildcard) — closes
/// the connection without CONNACK.
async fn no_fitting_return_code_closes_without_connack(l: Lane) {
    let connect = Connect::new(&l.a.thing).will("t/#", b"bye", 1, false);
    refused_silently(&l, &connect.encode(), "will topic with a wildcard").await;
}

/// Reserved flag bits set in the fixed header of each packet type that has
/// them: the connection closes unanswered (no PUBACK, SUBACK, PINGRESP...).
async fn reserved_header_flags_close(l: Lane) {
    let connect = Connect::new(&l.a.thing);
    let mut bad_connect = connect.clone();
    bad_connect.byte1 = 0x12;
    refused_silently(&l, &bad_connect.encode(), "CONNECT with flags 0010").await;
    let bad = [
        (id_packet(0x41, 1), "PUBACK flags 0001"),
        (id_packet(0x58, 1), "PUBREC flags 1000"),
        (id_packet(0x72, 1), "PUBCOMP flags 0010"),
        (vec![0xC1, 0x00], "PINGREQ flags 0001"),
        (vec![0xC2, 0x00], "PINGREQ flags 0010"),
        (vec![0xE2, 0x00], "DISCONNECT flags 0010"),
        (packets::subscribe_raw(0x80, 1, &[(b"t/#", 1)]), "SUBSCRIBE flags 0000"),
        (packets::unsubscribe_raw(0xA0, 1, &[b"t/#"]), "UNSUBSCRIBE flags 0000"),
        (id_packet(0x60, 1), "PUBREL flags 0000"),
    ];
    for (packet, what) in bad {
        let mut c = l.connect(&l.b).await;
        c.send(&packet).await;
        c.closed_silently(what).await;
    }
}

/// What the core answers carries the flag values of the table and the
/// packet id of what it answers: PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK,
/// PINGRESP, and nothing for QoS 0.
async fn answers_carry_the_right_flags_and_ids(l: Lane) {
    let mut c = l.connect(&l.a).await;
    c.send(&packets::publish(0, "w/nobody", 0, b"q0")).await;
    c.send(&packets::publish(1, "w/nobody", 0x1234, b"q1")).await;
    c.expect(&[0x40, 0x02, 0x12, 0x34], "PUBACK (and nothing for QoS 0 before it)").await;
    c.send(&packets::publish(2, "w/nobody", 0xBEEF, b"q2")).await;
    c.expect(&[0x50, 0x02, 0xBE, 0xEF], "PUBREC").await;
    c.send(&packets::pubrel(0xBEEF)).await;
    c.expect(&[0x70, 0x02, 0xBE, 0xEF], "PUBCOMP").await;
    c.send(&packets::subscribe(0x0A0B, &[("w/#", 1)])).await;
    c.expect(&[0x90, 0x03, 0x0A, 0x0B, 0x80], "SUBACK").await;
    c.send(&packets::unsubscribe(0x0C0D, &["w/#"])).await;
    c.expect(&[0xB0, 0x02, 0x0C, 0x0D], "UNSUBACK").await;
    c.send(&PINGREQ).await;
    c.expect(&[0xD0, 0x00], "PINGRESP").await;
}

/// Packets only a server sends, and the reserved packet types 0 and 15,
/// close the connection unanswered.
async fn packets_a_client_may_not_send_close(l: Lane) {
    let bad = [
        (CONNACK_OK.to_vec(), "CONNACK"),
        (packets::suback(1, &[0]), "SUBACK"),
        (packets::unsuback(1), "UNSUBACK"),
        (PINGRESP.to_vec(), "PINGRESP"),
        (vec![0x00, 0x00], "packet type 0"),
        (vec![0xF0, 0x00], "packet type 15"),
        (vec![0x30, 0x80, 0x80, 0x80, 0x80, 0x01], "a remaining length of five bytes"),
    ];
    for (packet, what) in bad {
        let mut c = l.connect(&l.b).await;
        c.send(&packet).await;
        c.closed_silently(what).await;
    }
}

/// A standard client library (rumqttc, no extension of any kind) connects,
/// subscribes, publishes and receives over the TLS byte stream.
async fn a_standard_client_needs_no_extension(l: Lane) {
    use crate::common::QoS;
    let mut sub = crate::common::connect(l.port, &l.b).await;
    sub.sub(&l.all(), QoS::AtLeastOnce).await;
    let mut publisher = crate::common::connect(l.port, &l.a).await;
    for i in 0..3 {
        publisher.publish(&l.topic(&i.to_string()), QoS::AtLeastOnce, format!("m{i}")).await;
    }
    for i in 0..3 {
        sub.expect(&l.topic(&i.to_string()), &format!("m{i}")).await;
    }
}
