//! Sequences no statement names, which a server must still survive: packets
//! cut at every byte, many packets in one TLS record, acknowledgements of
//! nothing, a SUBSCRIBE of hundreds of filters, a PUBLISH too large for the
//! core that is declared and never sent, and keep-alive at its limit.

use std::time::Duration;

use super::packets::{self, puback, pubcomp, publish, pubrec, pubrel, Connect, CONNACK_OK, DISCONNECT, FAILURE, PINGREQ, PINGRESP};
use super::{barrier, case, next_publish, publish_acked, Case, Lane};
use crate::common::raw::remaining_length;
use crate::common::Creds;

pub fn cases() -> Vec<Case> {
    vec![
        case!(["seq:keep-alive-at-1.5x"], keep_alive_holds_up_to_one_and_a_half_times),
        case!(["seq:split-at-every-byte"], packets_split_at_every_byte_boundary),
        case!(["seq:many-packets-per-record"], many_packets_in_one_tls_record),
        case!(["seq:ack-of-unknown-id"], acknowledgements_of_unknown_packet_ids),
        case!(["seq:hundreds-of-filters"], subscribe_with_hundreds_of_filters),
        case!(["seq:oversized-declared-never-sent"], oversized_publish_declared_and_never_sent),
    ]
}

/// What a device sends in the split case, and what the core must answer
/// (then it closes, after the DISCONNECT).
fn script(who: &Creds) -> (Vec<u8>, Vec<u8>) {
    let sent = [
        Connect::new(&who.thing).encode(),
        packets::subscribe(1, &[("w/#", 1)]),
        PINGREQ.to_vec(),
        publish(2, "w/nowhere", 5, b"qos 2"),
        pubrel(5),
        packets::unsubscribe(2, &["w/#"]),
        publish(1, "w/nowhere", 6, b"qos 1"),
        publish(0, "w/nowhere", 0, b"qos 0"),
        DISCONNECT.to_vec(),
    ]
    .concat();
    let answered =
        [CONNACK_OK.to_vec(), packets::suback(1, &[FAILURE]), PINGRESP.to_vec(), pubrec(5), pubcomp(5), packets::unsuback(2), puback(6)]
            .concat();
    (sent, answered)
}

/// The same session — CONNECT, SUBSCRIBE, PINGREQ, a QoS 2 flow, UNSUBSCRIBE,
/// QoS 1 and 0 publishes, DISCONNECT — cut in two at every byte boundary
/// (two TLS records, a pause between them), and once more one byte per TLS
/// record: the answers are always the same bytes. Three devices share the
/// boundaries between them.
async fn packets_split_at_every_byte_boundary(l: Lane) {
    let mut tasks = Vec::new();
    for (i, who) in [l.a.clone(), l.b.clone(), l.c.clone()].into_iter().enumerate() {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            let (sent, answered) = script(&who);
            for cut in (1..sent.len()).filter(|k| k % 3 == i) {
                let mut c = l.open(&who).await;
                c.send(&sent[..cut]).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
                c.send(&sent[cut..]).await;
                let got = c.closed(&format!("cut at byte {cut}")).await;
                assert_eq!(got, answered, "cut at byte {cut} of {}", sent.len());
            }
            if i == 0 {
                let mut c = l.open(&who).await;
                c.send_bytewise(&sent, Duration::from_millis(1)).await;
                let got = c.closed("one byte per record").await;
                assert_eq!(got, answered, "one byte per record");
            }
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// 300 QoS 1 PUBLISHes and a PINGREQ in one write (one TLS record): 300
/// PUBACKs in order, then PINGRESP; the subscriber gets the 300 in order and
/// acknowledges them in batches of 100, each batch in one record.
async fn many_packets_in_one_tls_record(l: Lane) {
    const N: u16 = 300;
    let mut b = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
    let mut a = l.connect(&l.a).await;
    let mut bytes: Vec<u8> = (1..=N).flat_map(|i| publish(1, &l.topic("x"), i, &i.to_be_bytes())).collect();
    bytes.extend_from_slice(&PINGREQ);
    assert!(bytes.len() < 16 * 1024, "fits one TLS record");
    a.send(&bytes).await;
    for i in 1..=N {
        a.expect(&puback(i), &format!("PUBACK {i}")).await;
    }
    a.expect(&PINGRESP, "PINGRESP after the PUBACKs").await;
    let mut pending = Vec::new();
    for i in 1..=N {
        let p = next_publish(&mut b, &format!("message {i}")).await;
        assert_eq!(p.payload, i.to_be_bytes(), "message {i} in order");
        pending.extend(puback(p.pkid.unwrap()));
        if i % 100 == 0 {
            b.send(&std::mem::take(&mut pending)).await;
        }
    }
    b.send(&PINGREQ).await;
    b.expect(&PINGRESP, "nothing re-sent once acknowledged").await;
}

/// PUBACKs for ids never sent (or already acknowledged) are ignored and the
/// connection stays; PUBREL of an unknown id gets its PUBCOMP. The core never
/// sends QoS 2, so a PUBREC or PUBCOMP from a device is a protocol violation.
async fn acknowledgements_of_unknown_packet_ids(l: Lane) {
    let mut b = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
    b.send(&[puback(0x4242), puback(1), puback(65535)].concat()).await;
    b.send(&PINGREQ).await;
    b.expect(&PINGRESP, "still connected").await;
    let mut a = l.connect(&l.a).await;
    publish_acked(&mut a, &l.topic("x"), 1, b"m1").await;
    let id = next_publish(&mut b, "m1").await.pkid.unwrap();
    b.send(&[puback(id), puback(id), puback(id)].concat()).await;
    publish_acked(&mut a, &l.topic("x"), 2, b"m2").await;
    let p = next_publish(&mut b, "m2").await;
    assert_eq!((p.dup(), &p.payload[..]), (false, &b"m2"[..]), "delivery goes on");
    b.send(&puback(p.pkid.unwrap())).await;
    b.send(&PINGREQ).await;
    b.expect(&PINGRESP, "nothing re-sent").await;
    b.send(&pubrel(0x0707)).await;
    b.expect(&pubcomp(0x0707), "PUBCOMP for an unknown PUBREL").await;
    for (bad, what) in [(pubrec(0x0808), "PUBREC"), (pubcomp(0x0909), "PUBCOMP")] {
        let mut c = l.connect(&l.c).await;
        c.send(&bad).await;
        c.closed_silently(&format!("{what} from a device")).await;
    }
}

/// One SUBSCRIBE of 500 filters — granted at QoS 1, at QoS 0, or refused —
/// gets one SUBACK of 500 codes in order (a two-byte remaining length); the
/// granted filters deliver; one UNSUBSCRIBE of all 500 removes them.
async fn subscribe_with_hundreds_of_filters(l: Lane) {
    let barrier_topic = format!("u/{}/v", l.seq);
    let mut b = l.subscriber(&l.b, &[(&barrier_topic, 0)]).await;
    let filters: Vec<(String, u8, u8)> = (0..500)
        .map(|i| match i % 3 {
            0 => (format!("w/{i}"), 1, FAILURE),
            1 => (l.topic(&i.to_string()), 1, 1),
            _ => (l.topic(&format!("{i}/#")), 0, 0),
        })
        .collect();
    let request: Vec<(&str, u8)> = filters.iter().map(|(f, q, _)| (f.as_str(), *q)).collect();
    let codes: Vec<u8> = filters.iter().map(|(_, _, c)| *c).collect();
    let sent = packets::subscribe(0x5150, &request);
    assert!(sent.len() > 1000);
    b.send(&sent).await;
    let mut want = vec![0x90];
    want.extend(remaining_length(2 + 500));
    want.extend_from_slice(&[0x51, 0x50]);
    want.extend_from_slice(&codes);
    assert_eq!(want[1..3], [0xF6, 0x03]);
    b.expect(&want, "SUBACK with 500 codes").await;
    let mut a = l.connect(&l.a).await;
    a.send(&publish(1, &l.topic("499"), 1, b"granted 1")).await;
    a.send(&publish(1, &l.topic("2/x"), 2, b"granted 0")).await;
    let p = next_publish(&mut b, "on a QoS 1 filter").await;
    assert_eq!((p.qos(), p.topic()), (1, l.topic("499").as_str()));
    b.send(&puback(p.pkid.unwrap())).await;
    b.expect(&publish(0, &l.topic("2/x"), 0, b"granted 0"), "on a QoS 0 filter").await;
    let all: Vec<&str> = filters.iter().map(|(f, _, _)| f.as_str()).collect();
    b.send(&packets::unsubscribe(0x5151, &all)).await;
    b.expect(&packets::unsuback(0x5151), "one UNSUBACK").await;
    a.send(&publish(0, &l.topic("499"), 0, b"unsubscribed")).await;
    a.send(&publish(0, &barrier_topic, 0, b"barrier")).await;
    b.expect(&publish(0, &barrier_topic, 0, b"barrier"), "nothing for the removed filters").await;
}

/// A PUBLISH whose fixed header declares 1 MiB — more than `maxPayloadBytes`
/// allows — with only its topic and packet id sent: the core closes the
/// connection at once, without waiting for the rest, logs the device, topic
/// and declared size, and routes nothing.
async fn oversized_publish_declared_and_never_sent(l: Lane) {
    let mut b = l.subscriber(&l.b, &[(&l.all(), 1)]).await;
    let topic = l.topic("huge");
    let declared = 1024 * 1024;
    let mut head = vec![0x32];
    head.extend(remaining_length(declared));
    head.extend(packets::field(topic.as_bytes()));
    head.extend_from_slice(&[0x00, 0x01]);
    let mut a = l.connect(&l.a).await;
    a.send(&head).await;
    a.closed_silently("a PUBLISH of 1 MiB declared").await;
    l.core
        .wait_log(&[
            "payload over maxPayloadBytes",
            &format!("thing={}", l.a.thing),
            &format!("topic={topic}"),
            &format!("size={}", declared - 2 - topic.len() - 2),
        ])
        .await;
    let mut a = l.connect(&l.a).await;
    barrier(&mut a, &mut b, &l.topic("barrier")).await;
}

/// Keep-alive 4 s: a device that pings after 4 s and then after 5 s (1.25
/// times its keep-alive) stays connected; silent, it is closed (at 1.5
/// times; not timed here) and its will is published.
async fn keep_alive_holds_up_to_one_and_a_half_times(l: Lane) {
    let mut b = l.subscriber(&l.b, &[(&l.all(), 0)]).await;
    let connect = Connect::new(&l.a.thing).keep_alive(4).will(&l.topic("will"), b"silent", 0, false);
    let mut a = l.connect_with(&l.a, connect, false).await;
    for gap in [4_000u64, 5_000] {
        tokio::time::sleep(Duration::from_millis(gap)).await;
        a.send(&PINGREQ).await;
        a.expect(&PINGRESP, &format!("PINGRESP after {gap} ms of silence")).await;
    }
    a.closed_silently("silent past 1.5 times the keep-alive").await;
    b.expect(&publish(0, &l.topic("will"), 0, b"silent"), "the will").await;
}
