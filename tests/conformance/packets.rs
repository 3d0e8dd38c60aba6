//! MQTT 3.1.1 packets written byte by byte, so that a case can send exactly
//! what it means to — including what no client library would send — and the
//! exact bytes the core must answer with.

use crate::common::raw::remaining_length;

/// A fixed header (`byte1`, remaining length) followed by `body`.
pub fn frame(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![byte1];
    p.extend(remaining_length(body.len()));
    p.extend_from_slice(body);
    p
}

/// A length-prefixed string or binary field.
pub fn field(bytes: &[u8]) -> Vec<u8> {
    let mut f = (bytes.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(bytes);
    f
}

/// A CONNECT, built field by field; every part can be set to something wrong.
#[derive(Debug, Clone)]
pub struct Connect {
    pub byte1: u8,
    pub protocol: Vec<u8>,
    pub level: u8,
    pub clean: bool,
    pub keep_alive: u16,
    pub client_id: Vec<u8>,
    /// Topic, message, QoS, retain.
    pub will: Option<(Vec<u8>, Vec<u8>, u8, bool)>,
    pub username: Option<Vec<u8>>,
    pub password: Option<Vec<u8>>,
    /// Bits set in the connect flags on top of those the fields imply.
    pub extra_flags: u8,
    /// Bytes after the last field.
    pub trailing: Vec<u8>,
    /// When set, the payload (client id onwards) is exactly this.
    pub payload: Option<Vec<u8>>,
}

impl Connect {
    /// MQTT 3.1.1, clean session, keep-alive 60 s, `client_id`.
    pub fn new(client_id: &str) -> Self {
        Self {
            byte1: 0x10,
            protocol: b"MQTT".to_vec(),
            level: 4,
            clean: true,
            keep_alive: 60,
            client_id: client_id.as_bytes().to_vec(),
            will: None,
            username: None,
            password: None,
            extra_flags: 0,
            trailing: Vec::new(),
            payload: None,
        }
    }

    pub fn persistent(mut self) -> Self {
        self.clean = false;
        self
    }

    pub fn keep_alive(mut self, seconds: u16) -> Self {
        self.keep_alive = seconds;
        self
    }

    pub fn will(mut self, topic: &str, message: &[u8], qos: u8, retain: bool) -> Self {
        self.will = Some((topic.as_bytes().to_vec(), message.to_vec(), qos, retain));
        self
    }

    pub fn flags(&self) -> u8 {
        let mut f = self.extra_flags;
        if self.clean {
            f |= 0x02;
        }
        if let Some((_, _, qos, retain)) = &self.will {
            f |= 0x04 | (qos << 3) | if *retain { 0x20 } else { 0 };
        }
        if self.password.is_some() {
            f |= 0x40;
        }
        if self.username.is_some() {
            f |= 0x80;
        }
        f
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = field(&self.protocol);
        body.push(self.level);
        body.push(self.flags());
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        match &self.payload {
            Some(p) => body.extend_from_slice(p),
            None => {
                body.extend(field(&self.client_id));
                if let Some((topic, message, _, _)) = &self.will {
                    body.extend(field(topic));
                    body.extend(field(message));
                }
                if let Some(u) = &self.username {
                    body.extend(field(u));
                }
                if let Some(p) = &self.password {
                    body.extend(field(p));
                }
            }
        }
        body.extend_from_slice(&self.trailing);
        frame(self.byte1, &body)
    }
}

/// A PUBLISH with its first byte given (type, DUP, QoS, RETAIN).
pub fn publish_raw(byte1: u8, topic: &[u8], pkid: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let mut body = field(topic);
    if let Some(id) = pkid {
        body.extend_from_slice(&id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    frame(byte1, &body)
}

/// A PUBLISH at `qos` (the packet id is written at QoS 1 and 2 only).
pub fn publish(qos: u8, topic: &str, pkid: u16, payload: &[u8]) -> Vec<u8> {
    publish_raw(0x30 | (qos << 1), topic.as_bytes(), (qos > 0).then_some(pkid), payload)
}

/// A SUBSCRIBE with its first byte given and raw (filter, options byte) pairs.
pub fn subscribe_raw(byte1: u8, pkid: u16, filters: &[(&[u8], u8)]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    for (f, o) in filters {
        body.extend(field(f));
        body.push(*o);
    }
    frame(byte1, &body)
}

pub fn subscribe(pkid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let raw: Vec<(&[u8], u8)> = filters.iter().map(|(f, q)| (f.as_bytes(), *q)).collect();
    subscribe_raw(0x82, pkid, &raw)
}

/// An UNSUBSCRIBE with its first byte given and raw filters.
pub fn unsubscribe_raw(byte1: u8, pkid: u16, filters: &[&[u8]]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    for f in filters {
        body.extend(field(f));
    }
    frame(byte1, &body)
}

pub fn unsubscribe(pkid: u16, filters: &[&str]) -> Vec<u8> {
    let raw: Vec<&[u8]> = filters.iter().map(|f| f.as_bytes()).collect();
    unsubscribe_raw(0xA2, pkid, &raw)
}

/// A two-byte packet id packet: PUBACK (0x40), PUBREC (0x50), PUBREL (0x62),
/// PUBCOMP (0x70), UNSUBACK (0xB0).
pub fn id_packet(byte1: u8, pkid: u16) -> Vec<u8> {
    let [hi, lo] = pkid.to_be_bytes();
    vec![byte1, 0x02, hi, lo]
}

pub fn puback(pkid: u16) -> Vec<u8> {
    id_packet(0x40, pkid)
}

pub fn pubrec(pkid: u16) -> Vec<u8> {
    id_packet(0x50, pkid)
}

pub fn pubrel(pkid: u16) -> Vec<u8> {
    id_packet(0x62, pkid)
}

pub fn pubcomp(pkid: u16) -> Vec<u8> {
    id_packet(0x70, pkid)
}

pub fn unsuback(pkid: u16) -> Vec<u8> {
    id_packet(0xB0, pkid)
}

pub fn suback(pkid: u16, codes: &[u8]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    body.extend_from_slice(codes);
    frame(0x90, &body)
}

pub fn connack(session_present: bool, code: u8) -> Vec<u8> {
    vec![0x20, 0x02, session_present as u8, code]
}

pub const CONNACK_OK: [u8; 4] = [0x20, 0x02, 0x00, 0x00];
pub const PINGREQ: [u8; 2] = [0xC0, 0x00];
pub const PINGRESP: [u8; 2] = [0xD0, 0x00];
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];

/// SUBACK return codes.
pub const GRANTED_0: u8 = 0x00;
pub const GRANTED_1: u8 = 0x01;
pub const FAILURE: u8 = 0x80;

/// A PUBLISH the core sent, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub byte1: u8,
    pub topic: Vec<u8>,
    pub pkid: Option<u16>,
    pub payload: Vec<u8>,
}

impl Publish {
    /// Parses a whole PUBLISH frame; panics (naming it) on anything else.
    pub fn parse(frame: &[u8]) -> Publish {
        assert_eq!(frame.first().map(|b| b >> 4), Some(3), "not a PUBLISH: {frame:02x?}");
        let byte1 = frame[0];
        let mut i = 1;
        while frame[i] & 0x80 != 0 {
            i += 1;
        }
        let body = &frame[i + 1..];
        let len = u16::from_be_bytes([body[0], body[1]]) as usize;
        let topic = body[2..2 + len].to_vec();
        let mut rest = &body[2 + len..];
        let qos = (byte1 >> 1) & 3;
        assert_ne!(qos, 3, "the core sent a PUBLISH with QoS 3: {frame:02x?}");
        let pkid = (qos > 0).then(|| {
            let id = u16::from_be_bytes([rest[0], rest[1]]);
            rest = &rest[2..];
            id
        });
        Publish { byte1, topic, pkid, payload: rest.to_vec() }
    }

    pub fn qos(&self) -> u8 {
        (self.byte1 >> 1) & 3
    }

    pub fn dup(&self) -> bool {
        self.byte1 & 0x08 != 0
    }

    pub fn topic(&self) -> &str {
        std::str::from_utf8(&self.topic).expect("topic is UTF-8")
    }
}

#[test]
fn builders_match_the_codec() {
    use bytes::BytesMut;
    use rumqttc::mqttbytes::v4::Packet;
    let mut b = BytesMut::from(&Connect::new("dev").will("t/w", b"bye", 1, false).encode()[..]);
    let Ok(Packet::Connect(c)) = Packet::read(&mut b, 1 << 20) else { panic!("CONNECT does not parse") };
    assert_eq!((c.client_id.as_str(), c.keep_alive, c.clean_session), ("dev", 60, true));
    assert_eq!(c.last_will.map(|w| (w.topic, w.qos as u8)), Some(("t/w".to_string(), 1)));
    let mut b = BytesMut::from(&subscribe(7, &[("a/#", 1), ("b", 0)])[..]);
    let Ok(Packet::Subscribe(s)) = Packet::read(&mut b, 1 << 20) else { panic!("SUBSCRIBE does not parse") };
    assert_eq!((s.pkid, s.filters.len()), (7, 2));
    let p = publish(1, "a/b", 9, b"xy");
    assert_eq!(Publish::parse(&p), Publish { byte1: 0x32, topic: b"a/b".to_vec(), pkid: Some(9), payload: b"xy".to_vec() });
}
