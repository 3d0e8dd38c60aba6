//! Bad input on the MQTT port (docs/mqtt.md): malformed packets, oversized
//! payloads, other protocol versions and handshakes that never complete close
//! that one connection with a log line, and nothing else is affected.

use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::common::mqtt::text;
use crate::common::raw::{self, expect_closed, publish_packet};
use crate::common::{Env, Opts, QoS, Root};

/// Each malformed packet closes its own connection (logged as an MQTT protocol
/// error); devices connected meanwhile keep routing, and nothing of the bad
/// packets is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_packets_close_only_that_connection() {
    let env = Env::start(&["good", "bad", "listener"], &[("good", "t/#", "listener"), ("bad", "t/#", "listener")]);
    let port = env.core.port;
    let mut good = env.connect("good").await;
    let mut listener = env.connect("listener").await;
    listener.sub("t/#", QoS::AtLeastOnce).await;
    let bad = env.creds("bad");

    // (bytes after a successful CONNECT, what the log's reason must mention)
    let mut remaining_len_too_long = vec![0x30];
    remaining_len_too_long.extend([0xff, 0xff, 0xff, 0xff, 0x7f]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("reserved packet type 0", vec![0x00, 0x00], "malformed packet"),
        ("PUBLISH topic not UTF-8", publish_packet(&[b't', b'/', 0xff, 0xfe], 0, 0, b"x"), "malformed packet"),
        ("SUBSCRIBE with QoS 3", raw::subscribe_packet(1, &[("t/#", 3)]), "malformed packet"),
        ("remaining length over four bytes", remaining_len_too_long, "malformed packet"),
        ("PUBLISH topic with a wildcard", publish_packet(b"t/+", 1, 7, b"x"), "PUBLISH topic 't/+'"),
        ("second CONNECT", raw::connect_packet("bad"), "unexpected CONNECT"),
        ("CONNACK from a device", vec![0x20, 0x02, 0x00, 0x00], "unexpected CONNACK"),
    ];
    for (i, (what, bytes, reason)) in cases.iter().enumerate() {
        let (mut s, _) = raw::session(port, bad).await;
        s.write_all(bytes).await.unwrap();
        s.flush().await.unwrap();
        expect_closed(&mut s, what).await;
        let line = env.core.wait_log_count(&["MQTT protocol error; connection closed", "thing=bad"], i + 1).await;
        assert!(line.contains(reason), "{what}: {line}");
        // Everyone else is unaffected.
        good.publish("t/ok", QoS::AtLeastOnce, *what).await;
        listener.expect("t/ok", what).await;
    }
    // Garbage instead of CONNECT closes the connection too.
    let mut s = raw::tls(port, bad).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    expect_closed(&mut s, "HTTP instead of MQTT").await;

    // The bad device itself can connect again and be routed.
    let mut again = env.connect("bad").await;
    again.publish("t/back", QoS::AtLeastOnce, "back").await;
    listener.expect("t/back", "back").await;
    listener.expect_silence().await;
    assert!(good.is_connected() && listener.is_connected());
    let status = env.root.status();
    assert!(status["broker"]["protocolErrors"].as_u64().unwrap() >= cases.len() as u64, "{}", status["broker"]);
    env.stop();
}

/// A payload over `maxPayloadBytes` closes the publishing device's connection
/// with a log line naming device, topic and size; it is never delivered (not
/// even cut), a payload of exactly the limit is, and other devices carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_payload_closes_the_device_connection() {
    let root = Root::with_config(json!({
        "ggcore": { "mqtt": { "host": "127.0.0.1", "port": 0, "maxPayloadBytes": 1024 } }
    }));
    let env = Env::start_on(root, &["big", "small", "listener"], &[("big", "t/#", "listener"), ("small", "t/#", "listener")]);
    let mut small = env.connect("small").await;
    let mut listener = env.connect("listener").await;
    listener.sub("t/#", QoS::AtLeastOnce).await;

    // Exactly the limit: delivered whole.
    let mut big = env.connect("big").await;
    big.publish("t/limit", QoS::AtLeastOnce, vec![b'x'; 1024]).await;
    let p = listener.recv().await;
    assert_eq!((p.topic.as_str(), p.payload.len()), ("t/limit", 1024));
    big.disconnect().await;

    // One byte over, and far over (beyond what the codec even buffers).
    for (topic, size) in [("t/over", 1025usize), ("t/huge", 300_000)] {
        let mut big = env.connect("big").await;
        big.publish_nowait(topic, QoS::AtLeastOnce, false, vec![b'y'; size]).await;
        big.wait_closed().await;
        env.core
            .wait_log(&["payload over maxPayloadBytes; connection closed", "thing=big", &format!("topic={topic}"), &format!("size={size}")])
            .await;
        small.publish("t/small", QoS::AtLeastOnce, topic).await;
        listener.expect("t/small", topic).await;
    }
    // A will over the limit is refused at CONNECT.
    let huge_will = Opts { will: Some(rumqttc::LastWill::new("t/will", vec![b'w'; 2000], QoS::AtLeastOnce, false)), ..Opts::default() };
    match env.try_connect("big", huge_will).await {
        Err(crate::common::ConnectError::Failed(_)) => {}
        Err(e) => panic!("a will over maxPayloadBytes: expected no CONNACK, got {e:?}"),
        Ok(_) => panic!("a will over maxPayloadBytes was accepted"),
    }
    env.core.wait_log(&["invalid will message; connection refused", "thing=big"]).await;
    listener.expect_silence().await;
    assert!(small.is_connected() && listener.is_connected());
    assert_eq!(env.root.status()["broker"]["oversizedPayloads"], 2, "{}", env.root.status()["broker"]);
    env.stop();
}

/// The size in the log line is the payload's, whatever the QoS, also for a
/// packet too large to be buffered (QoS 0 has no packet id).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_qos0_payload_is_logged_with_its_size() {
    let root = Root::with_config(json!({
        "ggcore": { "mqtt": { "host": "127.0.0.1", "port": 0, "maxPayloadBytes": 1024 } }
    }));
    let env = Env::start_on(root, &["big", "listener"], &[("big", "t/#", "listener")]);
    let mut big = env.connect("big").await;
    big.publish_nowait("t/huge0", QoS::AtMostOnce, false, vec![b'z'; 300_000]).await;
    big.wait_closed().await;
    let line = env.core.wait_log(&["payload over maxPayloadBytes", "topic=t/huge0"]).await;
    assert!(line.contains("size=300000 "), "{line}");
    env.stop();
}

/// A client speaking another MQTT version gets CONNACK 1 (unacceptable
/// protocol version) and is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_protocol_versions_are_refused() {
    let env = Env::start(&["dev"], &[]);
    let mut s = raw::tls(env.core.port, env.creds("dev")).await;
    // MQTT 5 CONNECT: protocol level 5, clean start, keep-alive 60, no
    // properties, client id "dev".
    let body: Vec<u8> =
        [&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3c, 0x00][..], &[0x00, 0x03, b'd', b'e', b'v'][..]].concat();
    let mut packet = vec![0x10];
    packet.extend(raw::remaining_length(body.len()));
    packet.extend(body);
    s.write_all(&packet).await.unwrap();
    let rest = expect_closed(&mut s, "MQTT 5 CONNECT").await;
    assert_eq!(rest, vec![0x20, 0x02, 0x00, 0x01], "CONNACK 1 expected");
    env.core.wait_log(&["unsupported MQTT protocol version"]).await;
    env.stop();
}

/// Connections that never finish the TLS handshake, or never send CONNECT,
/// are closed after 10 s, and meanwhile other devices connect and route.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handshakes_that_never_complete_are_closed_and_block_nobody() {
    let env = Env::start(&["a", "b", "idle"], &[("a", "t/#", "b")]);
    let port = env.core.port;
    // TCP only; a partial ClientHello; TLS done but no CONNECT.
    let mut silent = raw::tcp(port).await;
    let mut partial = raw::tcp(port).await;
    partial.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]).await.unwrap();
    let mut no_connect = raw::tls(port, env.creds("idle")).await;

    // While they hang, others connect and talk.
    let mut a = env.connect("a").await;
    let mut b = env.connect("b").await;
    b.sub("t/#", QoS::AtLeastOnce).await;
    a.publish("t/1", QoS::AtLeastOnce, "through").await;
    b.expect("t/1", "through").await;

    let deadline = crate::common::DEADLINE + Duration::from_secs(15);
    for (s, what) in [(&mut silent, "TCP only"), (&mut partial, "partial ClientHello")] {
        assert!(raw::closed_within(s, deadline).await.is_some(), "{what}: still open");
    }
    assert!(raw::closed_within(&mut no_connect, deadline).await.is_some(), "no CONNECT: still open");
    env.core.wait_log_count(&["TLS handshake did not finish within 10 s; connection closed"], 2).await;
    env.core.wait_log(&["no CONNECT within 10 s; connection closed"]).await;

    // Still serving.
    a.publish("t/2", QoS::AtLeastOnce, "after").await;
    b.expect("t/2", "after").await;
    assert!(a.is_connected() && b.is_connected());
    env.stop();
}

/// PINGREQ is answered; a device silent for longer than 1.5 × its keep-alive
/// is closed (and logged), others carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keep_alive_is_enforced() {
    let env = Env::start(&["quiet", "a", "b"], &[("a", "t/#", "b")]);
    let mut a = env.connect("a").await;
    let mut b = env.connect("b").await;
    b.sub("t/#", QoS::AtLeastOnce).await;
    let (mut s, mut buf) = raw::session_with(env.core.port, env.creds("quiet"), 2).await;
    s.write_all(&[0xc0, 0x00]).await.unwrap();
    match raw::read_packet(&mut s, &mut buf).await {
        Some(rumqttc::Packet::PingResp) => {}
        other => panic!("expected PINGRESP, got {other:?}"),
    }
    // Now silent: closed after 3 s without a packet.
    expect_closed(&mut s, "a device past its keep-alive").await;
    env.core.wait_log(&["device silent past its keep-alive; connection closed", "thing=quiet"]).await;
    a.publish("t/1", QoS::AtLeastOnce, "unaffected").await;
    b.expect("t/1", "unaffected").await;
    env.stop();
}

/// A QoS 1 subscriber that reads but never acknowledges holds back only the
/// publisher that feeds it, and only until the stall timeout: then it is
/// disconnected, its persistent session keeps its queue (what did not fit is
/// counted as dropped), and the publisher's other subscriber gets everything,
/// in order. On reconnect the device gets the kept messages in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_that_never_acknowledges_is_cut_after_the_stall_timeout() {
    const N: usize = 1500;
    const BOUND: usize = 100;
    let root = Root::with_config(json!({ "ggcore": { "mqtt": {
        "host": "127.0.0.1", "port": 0, "maxQueuedMessages": BOUND, "stallTimeoutSeconds": 3 } } }));
    let env = Env::start_on(root, &["src", "fast", "slow"], &[("src", "t/#", "fast"), ("src", "t/#", "slow")]);
    let mut src = env.connect("src").await;
    let mut fast = env.connect("fast").await;
    fast.sub("t/#", QoS::AtLeastOnce).await;
    let never_acks = Opts { manual_acks: true, ..Opts::persistent() };
    let mut slow = env.connect_with("slow", never_acks).await;
    slow.sub("t/#", QoS::AtLeastOnce).await;

    let publish = async {
        for i in 0..N {
            src.publish_nowait(&format!("t/{i}"), QoS::AtLeastOnce, false, i.to_string()).await;
        }
        src.wait_acked().await;
    };
    let receive = async {
        for i in 0..N {
            fast.expect(&format!("t/{i}"), &i.to_string()).await;
        }
    };
    tokio::join!(publish, receive);
    slow.wait_closed().await;
    env.core.wait_log(&["device made no progress while its queue was full", "thing=slow"]).await;
    let status = env.root.status();
    let kept = status["devices"]["offline"]
        .as_array()
        .and_then(|l| l.iter().find(|d| d["thing"] == "slow").cloned())
        .expect("slow's session is kept");
    let (pending, dropped) = (kept["pending"].as_u64().unwrap() as usize, kept["dropped"].as_u64().unwrap() as usize);
    assert!(pending >= BOUND, "{kept}");
    assert_eq!(pending + dropped, N, "every message is kept for slow or counted as dropped: {kept}");

    let mut slow = env.connect_with("slow", Opts::persistent()).await;
    assert!(slow.session_present, "the session is kept");
    for next in 0..pending {
        let p = slow.recv().await;
        assert_eq!((p.topic.as_str(), text(&p)), (format!("t/{next}").as_str(), next.to_string()), "kept messages out of order");
    }
    src.publish("t/after", QoS::AtLeastOnce, "after").await;
    slow.expect("t/after", "after").await;
    fast.expect("t/after", "after").await;
    assert!(fast.is_connected() && src.is_connected());
    env.stop();
}
