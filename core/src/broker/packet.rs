//! Packet helpers shared by the connection's parts: reading the first packet,
//! writing a single packet, naming packets in logs, and the size check that
//! names the topic of a PUBLISH refused for its size.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::Packet;
use rumqttc::mqttbytes::Error as CodecError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::validate::{check_first, Invalid};

/// Bytes of MQTT framing allowed on top of `maxPayloadBytes` (topic, ids, header).
pub const FRAMING_ALLOWANCE: usize = 65_535 + 16;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Codec(CodecError),
    /// Refused by the checks the decoder does not make (validate.rs).
    #[error("{0}")]
    Invalid(Invalid),
    #[error("connection closed")]
    Eof,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads one whole packet (CONNECT), buffering what follows it in `buf`.
pub async fn read_packet<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut BytesMut, max: usize) -> Result<Packet, ReadError> {
    loop {
        check_first(buf).map_err(ReadError::Invalid)?;
        match Packet::read(buf, max) {
            Ok(p) => return Ok(p),
            Err(CodecError::InsufficientBytes(n)) => {
                buf.reserve(n.max(1024));
                if rd.read_buf(buf).await? == 0 {
                    return Err(ReadError::Eof);
                }
            }
            Err(e) => return Err(ReadError::Codec(e)),
        }
    }
}

/// Writes one packet and flushes (CONNACK; everything later goes through the writer).
pub async fn write_packet<W: AsyncWrite + Unpin>(wr: &mut W, p: Packet) -> std::io::Result<()> {
    let mut b = BytesMut::new();
    p.write(&mut b, usize::MAX).map_err(std::io::Error::other)?;
    wr.write_all(&b).await?;
    wr.flush().await
}

pub fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}

/// A packet refused for its size: the PUBLISH topic when the buffered bytes
/// already hold it, and the payload size the header declares.
pub fn oversized(buf: &BytesMut, remaining_len: usize) -> (String, usize) {
    let topic = peek_publish_topic(buf).unwrap_or_else(|| "<not a PUBLISH or not yet received>".to_string());
    // A packet id follows the topic only at QoS 1 and 2.
    let packet_id = if buf.first().is_some_and(|b| b & 0b0110 != 0) { 2 } else { 0 };
    let size = remaining_len.saturating_sub(2 + topic.len() + packet_id);
    (topic, size)
}

/// The topic of a PUBLISH whose first bytes are buffered (the codec cannot parse
/// a packet it refuses for size, so only the topic is read from the prefix).
fn peek_publish_topic(buf: &[u8]) -> Option<String> {
    if buf.first()? >> 4 != 3 {
        return None;
    }
    let mut i = 1;
    while buf.get(i)? & 0x80 != 0 {
        i += 1;
        if i > 4 {
            return None;
        }
    }
    let start = i + 1;
    let len = u16::from_be_bytes([*buf.get(start)?, *buf.get(start + 1)?]) as usize;
    let bytes = buf.get(start + 2..start + 2 + len)?;
    String::from_utf8(bytes.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::session::encode_publish;
    use crate::router::Qos;

    #[test]
    fn oversized_size_counts_the_packet_id_only_at_qos_1_and_2() {
        for (qos, header) in [(Qos::AtMostOnce, 2 + 9), (Qos::AtLeastOnce, 2 + 9 + 2)] {
            let mut b = BytesMut::new();
            encode_publish(&mut b, "big/topic", &vec![0u8; 300_000], qos, 1, false);
            let (topic, size) = oversized(&b, 300_000 + header);
            assert_eq!((topic.as_str(), size), ("big/topic", 300_000));
        }
    }

    #[test]
    fn topic_of_a_partial_publish() {
        let mut b = BytesMut::new();
        encode_publish(&mut b, "big/topic", &vec![0u8; 300_000], Qos::AtMostOnce, 0, false);
        b.truncate(40);
        assert_eq!(peek_publish_topic(&b).as_deref(), Some("big/topic"));
        assert_eq!(peek_publish_topic(&[0x82, 0x05]), None);
    }
}
