//! MQTT packets as a device sends them: decoded with rumqttc's v4 codec and the
//! size limit, as the broker reads its socket. Every packet decoded must encode
//! again and decode to itself, a PUBLISH encoded by the broker's own hot path
//! must decode to what it carried, and a packet refused for its size must be
//! described (topic, size) from its header alone.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::Packet;
use rumqttc::mqttbytes::{Error as CodecError, QoS};

use crate::broker::packet::oversized;
use crate::broker::session::encode_publish;
use crate::config::DEFAULT_MAX_PAYLOAD_BYTES;
use crate::router::Qos;

/// The broker's limit on one packet: `maxPayloadBytes` plus framing (topic, ids, header).
const MAX_PACKET: usize = DEFAULT_MAX_PAYLOAD_BYTES + 65_535 + 16;

/// First byte: the size limit (even: the broker's default; odd: small, so that
/// the over-the-limit path is reached by small inputs). The rest: the stream.
pub fn mqtt_packet(data: &[u8]) {
    let Some((&pick, stream)) = data.split_first() else { return };
    let limit = if pick & 1 == 0 { MAX_PACKET } else { pick as usize };
    let mut buf = BytesMut::from(stream);
    loop {
        let before = buf.len();
        match Packet::read(&mut buf, limit) {
            Ok(p) => {
                assert!(buf.len() < before, "a packet decoded from nothing");
                assert!(p.size() <= limit + 5, "a {} byte packet passed the {limit} byte limit", p.size());
                check_round_trip(&p);
            }
            Err(CodecError::InsufficientBytes(n)) => {
                // Nothing consumed: the broker reads more and tries again.
                assert_eq!(buf.len(), before);
                assert!(n > 0);
                break;
            }
            Err(CodecError::PayloadSizeLimitExceeded(len)) => {
                // The broker names the refused PUBLISH from what is buffered.
                assert!(len > limit);
                let (topic, size) = oversized(&buf, len);
                assert!(size <= len);
                if !topic.starts_with('<') {
                    assert_eq!(buf.first().map(|b| b >> 4), Some(3), "a topic {topic:?} read from a packet that is not a PUBLISH");
                    if !topic.is_empty() {
                        let at = buf.windows(topic.len()).position(|w| w == topic.as_bytes());
                        assert!(at.is_some_and(|i| i <= 7), "{topic:?} is not in the packet's header");
                    }
                }
                break;
            }
            // Anything else closes the connection.
            Err(_) => break,
        }
    }
}

fn check_round_trip(p: &Packet) {
    let mut out = BytesMut::new();
    let written = p.write(&mut out, usize::MAX).unwrap_or_else(|e| panic!("{p:?} decoded but does not encode: {e}"));
    assert_eq!(written, out.len());
    assert_eq!(written, p.size(), "{p:?}");
    let again = Packet::read(&mut out, usize::MAX).unwrap_or_else(|e| panic!("{p:?} encodes to bytes that do not decode: {e}"));
    assert_eq!(&again, p);
    assert!(out.is_empty());
    if let Packet::Publish(publish) = p {
        // What the broker sends a device: QoS 2 is delivered at QoS 1.
        let (qos, pkid) = match publish.qos {
            QoS::AtMostOnce => (Qos::AtMostOnce, 0),
            _ => (Qos::AtLeastOnce, publish.pkid.max(1)),
        };
        let mut out = BytesMut::new();
        encode_publish(&mut out, &publish.topic, &publish.payload, qos, pkid, publish.dup);
        let Ok(Packet::Publish(sent)) = Packet::read(&mut out, usize::MAX) else {
            panic!("the broker's encoding of {publish:?} does not decode as a PUBLISH")
        };
        assert!(out.is_empty());
        assert_eq!(
            (&sent.topic, &sent.payload, sent.pkid, sent.dup, sent.retain),
            (&publish.topic, &publish.payload, pkid, publish.dup, false)
        );
        assert_eq!(sent.qos as u8, qos as u8);
    }
}
