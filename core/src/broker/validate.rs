//! The MQTT 3.1.1 rules that the packet decoder (rumqttc's v4 codec) does not
//! check, checked on a packet's raw bytes before it is decoded: reserved
//! header flags, the fixed size of acknowledgements, CONNECT's reserved flag,
//! flag combinations and stray bytes, U+0000 in strings, packet id 0, and
//! SUBSCRIBE's reserved option bits (docs/mqtt.md, "Protocol errors").
//!
//! PUBLISH, the hot path, is left to the decoder and the reader (QoS 3, the
//! topic's UTF-8, wildcards and U+0000), so checking costs it one look at the
//! first byte.

use std::fmt;

/// Why a packet is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// A CONNECT for a protocol version other than MQTT 3.1.1: answered with
    /// CONNACK 0x01 (unacceptable protocol version), then closed.
    UnsupportedProtocol(String),
    /// A packet that breaks the standard: the connection is closed
    /// unanswered.
    Malformed(String),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::UnsupportedProtocol(what) => write!(f, "unsupported protocol: {what}"),
            Invalid::Malformed(what) => f.write_str(what),
        }
    }
}

fn malformed(what: impl Into<String>) -> Invalid {
    Invalid::Malformed(what.into())
}

/// Checks the first packet in `buf` once it is complete. `Ok` when it is
/// fine, when it is not complete yet (the decoder waits for the rest or
/// refuses an oversized length) and for PUBLISH and packet types the reader
/// refuses by itself.
pub fn check_first(buf: &[u8]) -> Result<(), Invalid> {
    let Some(&byte1) = buf.first() else { return Ok(()) };
    if byte1 >> 4 == 3 {
        return Ok(());
    }
    let Some((header, remaining)) = fixed_header(buf) else { return Ok(()) };
    let Some(body) = buf.get(header..header + remaining) else { return Ok(()) };
    check_packet(byte1, body)
}

/// The fixed header's length and the remaining length, once both are there
/// (a remaining length over four bytes is the decoder's to refuse).
fn fixed_header(buf: &[u8]) -> Option<(usize, usize)> {
    let mut remaining = 0usize;
    for i in 0..4 {
        let b = *buf.get(1 + i)?;
        remaining |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Some((2 + i, remaining));
        }
    }
    None
}

/// Checks one whole packet: its first byte and the bytes after its fixed
/// header.
pub fn check_packet(byte1: u8, body: &[u8]) -> Result<(), Invalid> {
    let (kind, flags) = (byte1 >> 4, byte1 & 0x0f);
    let name = match kind {
        1 => "CONNECT",
        4 => "PUBACK",
        5 => "PUBREC",
        6 => "PUBREL",
        7 => "PUBCOMP",
        8 => "SUBSCRIBE",
        10 => "UNSUBSCRIBE",
        12 => "PINGREQ",
        14 => "DISCONNECT",
        // PUBLISH, the packets only a server sends and the reserved types:
        // the decoder and the reader refuse what must be refused.
        _ => return Ok(()),
    };
    let want_flags = if matches!(kind, 6 | 8 | 10) { 0b0010 } else { 0 };
    if flags != want_flags {
        return Err(malformed(format!("{name} with header flags {flags:04b} (must be {want_flags:04b})")));
    }
    match kind {
        1 => check_connect(body),
        4..=7 if body.len() != 2 => Err(malformed(format!("{name} with a remaining length of {} (must be 2)", body.len()))),
        12 | 14 if !body.is_empty() => Err(malformed(format!("{name} with a remaining length of {} (must be 0)", body.len()))),
        8 => check_subscribe(body),
        10 => check_unsubscribe(body),
        _ => Ok(()),
    }
}

/// Reads length-prefixed fields off a packet body.
struct Fields<'a> {
    rest: &'a [u8],
    packet: &'static str,
}

impl<'a> Fields<'a> {
    fn u8(&mut self, what: &str) -> Result<u8, Invalid> {
        let (&b, rest) = self.rest.split_first().ok_or_else(|| malformed(format!("{} ends before its {what}", self.packet)))?;
        self.rest = rest;
        Ok(b)
    }

    fn u16(&mut self, what: &str) -> Result<u16, Invalid> {
        if self.rest.len() < 2 {
            return Err(malformed(format!("{} ends before its {what}", self.packet)));
        }
        let (n, rest) = self.rest.split_at(2);
        self.rest = rest;
        Ok(u16::from_be_bytes([n[0], n[1]]))
    }

    fn bytes(&mut self, what: &str) -> Result<&'a [u8], Invalid> {
        let len = self.u16(what)? as usize;
        if self.rest.len() < len {
            return Err(malformed(format!("{} ends inside its {what}", self.packet)));
        }
        let (b, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(b)
    }

    /// A UTF-8 string without U+0000 (MQTT 3.1.1 §1.5.3).
    fn string(&mut self, what: &str) -> Result<&'a str, Invalid> {
        let b = self.bytes(what)?;
        let s = std::str::from_utf8(b).map_err(|_| malformed(format!("{} {what} is not well-formed UTF-8", self.packet)))?;
        if s.contains('\0') {
            return Err(malformed(format!("{} {what} contains U+0000", self.packet)));
        }
        Ok(s)
    }
}

fn check_connect(body: &[u8]) -> Result<(), Invalid> {
    let mut f = Fields { rest: body, packet: "CONNECT" };
    let name = f.bytes("protocol name")?;
    let level = f.u8("protocol level")?;
    match name {
        b"MQTT" if level == 4 => {}
        b"MQTT" => return Err(Invalid::UnsupportedProtocol(format!("MQTT protocol level {level}"))),
        // MQTT 3.1's name: its clients understand CONNACK 0x01.
        b"MQIsdp" => return Err(Invalid::UnsupportedProtocol(format!("MQIsdp (MQTT 3.1) protocol level {level}"))),
        other => return Err(malformed(format!("CONNECT for protocol {:?}, not MQTT", String::from_utf8_lossy(other)))),
    }
    let flags = f.u8("connect flags")?;
    f.u16("keep-alive")?;
    if flags & 0x01 != 0 {
        return Err(malformed("CONNECT with its reserved flag set"));
    }
    let will = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    let (user_name, password) = (flags & 0x80 != 0, flags & 0x40 != 0);
    if !will && (will_qos != 0 || will_retain) {
        return Err(malformed("CONNECT with will QoS or will retain but no will"));
    }
    if will_qos == 3 {
        return Err(malformed("CONNECT with will QoS 3"));
    }
    if password && !user_name {
        return Err(malformed("CONNECT with a password but no user name"));
    }
    f.string("client id")?;
    if will {
        f.string("will topic")?;
        f.bytes("will message")?;
    }
    if user_name {
        f.string("user name")?;
    }
    if password {
        f.bytes("password")?;
    }
    if !f.rest.is_empty() {
        return Err(malformed(format!("CONNECT with {} bytes after the fields its flags announce", f.rest.len())));
    }
    Ok(())
}

fn check_subscribe(body: &[u8]) -> Result<(), Invalid> {
    let mut f = Fields { rest: body, packet: "SUBSCRIBE" };
    if f.u16("packet id")? == 0 {
        return Err(malformed("SUBSCRIBE with packet id 0"));
    }
    if f.rest.is_empty() {
        return Err(malformed("SUBSCRIBE without a topic filter"));
    }
    while !f.rest.is_empty() {
        f.string("topic filter")?;
        let options = f.u8("requested QoS")?;
        if options & 0xfc != 0 || options & 0x03 == 3 {
            return Err(malformed(format!("SUBSCRIBE with requested QoS byte {options:#04x} (reserved bits or QoS 3)")));
        }
    }
    Ok(())
}

fn check_unsubscribe(body: &[u8]) -> Result<(), Invalid> {
    let mut f = Fields { rest: body, packet: "UNSUBSCRIBE" };
    if f.u16("packet id")? == 0 {
        return Err(malformed("UNSUBSCRIBE with packet id 0"));
    }
    if f.rest.is_empty() {
        return Err(malformed("UNSUBSCRIBE without a topic filter"));
    }
    while !f.rest.is_empty() {
        f.string("topic filter")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(byte1: u8, body: &[u8]) -> Vec<u8> {
        let mut p = vec![byte1, body.len() as u8];
        p.extend_from_slice(body);
        p
    }

    fn field(b: &[u8]) -> Vec<u8> {
        [&(b.len() as u16).to_be_bytes()[..], b].concat()
    }

    fn connect(name: &[u8], level: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        frame(0x10, &[field(name), vec![level, flags, 0, 60], payload.to_vec()].concat())
    }

    fn is_malformed(r: Result<(), Invalid>, containing: &str) -> bool {
        matches!(r, Err(Invalid::Malformed(m)) if m.contains(containing))
    }

    #[test]
    fn a_plain_connect_passes() {
        let id = field(b"dev");
        assert_eq!(check_first(&connect(b"MQTT", 4, 0x02, &id)), Ok(()));
        let full = [id.clone(), field(b"t/w"), field(b"bye"), field(b"user"), field(b"pw")].concat();
        assert_eq!(check_first(&connect(b"MQTT", 4, 0x02 | 0x04 | 0x08 | 0x20 | 0x80 | 0x40, &full)), Ok(()));
    }

    #[test]
    fn protocol_versions() {
        let id = field(b"dev");
        for level in [3, 5, 0] {
            assert!(matches!(check_first(&connect(b"MQTT", level, 0x02, &id)), Err(Invalid::UnsupportedProtocol(_))));
        }
        assert!(matches!(check_first(&connect(b"MQIsdp", 3, 0x02, &id)), Err(Invalid::UnsupportedProtocol(_))));
        assert!(is_malformed(check_first(&connect(b"MQTX", 4, 0x02, &id)), "not MQTT"));
    }

    #[test]
    fn connect_flags_and_fields() {
        let id = field(b"dev");
        assert!(is_malformed(check_first(&connect(b"MQTT", 4, 0x03, &id)), "reserved flag"));
        assert!(is_malformed(check_first(&connect(b"MQTT", 4, 0x0a, &id)), "no will"));
        assert!(is_malformed(check_first(&connect(b"MQTT", 4, 0x22, &id)), "no will"));
        let will = [id.clone(), field(b"t"), field(b"m")].concat();
        assert!(is_malformed(check_first(&connect(b"MQTT", 4, 0x1e, &will)), "will QoS 3"));
        assert!(is_malformed(check_first(&connect(b"MQTT", 4, 0x42, &[id.clone(), field(b"pw")].concat())), "no user name"));
        assert!(is_malformed(check_first(&connect(b"MQTT", 4, 0x02, &[id.clone(), field(b"user")].concat())), "bytes after"));
        assert!(is_malformed(check_first(&connect(b"MQTT", 4, 0x82, &id)), "ends before its user name"));
        assert!(is_malformed(check_first(&connect(b"MQTT", 4, 0x02, &field(b"d\0v"))), "U+0000"));
        assert!(is_malformed(check_first(&connect(b"MQTT", 4, 0x02, &field(&[0xed, 0xa0, 0x80]))), "UTF-8"));
        assert!(is_malformed(check_first(&frame(0x12, &connect(b"MQTT", 4, 0x02, &id)[2..])), "header flags"));
    }

    #[test]
    fn header_flags_and_sizes() {
        assert_eq!(check_first(&[0x62, 2, 0, 1]), Ok(()));
        assert!(is_malformed(check_first(&[0x60, 2, 0, 1]), "PUBREL with header flags 0000"));
        assert!(is_malformed(check_first(&[0x41, 2, 0, 1]), "PUBACK"));
        assert!(is_malformed(check_first(&[0x40, 3, 0, 1, 0]), "remaining length of 3"));
        assert!(is_malformed(check_first(&[0xe0, 1, 0]), "DISCONNECT with a remaining length of 1"));
        assert!(is_malformed(check_first(&[0xe1, 0]), "DISCONNECT with header flags"));
        assert_eq!(check_first(&[0xc0, 0]), Ok(()));
        // PUBLISH flags are DUP, QoS and RETAIN: left to the decoder.
        assert_eq!(check_first(&[0x3f, 0]), Ok(()));
    }

    #[test]
    fn subscribe_and_unsubscribe() {
        let sub = |byte1, id: u16, opts: u8, filter: &[u8]| frame(byte1, &[&id.to_be_bytes()[..], &field(filter), &[opts]].concat());
        assert_eq!(check_first(&sub(0x82, 1, 1, b"a/#")), Ok(()));
        assert!(is_malformed(check_first(&sub(0x80, 1, 1, b"a/#")), "header flags"));
        assert!(is_malformed(check_first(&sub(0x82, 0, 1, b"a/#")), "packet id 0"));
        assert!(is_malformed(check_first(&sub(0x82, 1, 0x05, b"a/#")), "requested QoS"));
        assert!(is_malformed(check_first(&sub(0x82, 1, 0x03, b"a/#")), "requested QoS"));
        assert!(is_malformed(check_first(&sub(0x82, 1, 0, b"a/\0")), "U+0000"));
        assert!(is_malformed(check_first(&[0x82, 2, 0, 1]), "without a topic filter"));
        let unsub = |byte1, id: u16, filter: &[u8]| frame(byte1, &[&id.to_be_bytes()[..], &field(filter)].concat());
        assert_eq!(check_first(&unsub(0xa2, 1, b"a/#")), Ok(()));
        assert!(is_malformed(check_first(&unsub(0xa3, 1, b"a/#")), "header flags"));
        assert!(is_malformed(check_first(&unsub(0xa2, 0, b"a/#")), "packet id 0"));
        assert!(is_malformed(check_first(&unsub(0xa2, 1, b"\0")), "U+0000"));
        assert!(is_malformed(check_first(&[0xa2, 2, 0, 1]), "without a topic filter"));
    }

    #[test]
    fn incomplete_packets_wait() {
        let full = connect(b"MQTT", 4, 0x03, &field(b"dev"));
        for cut in 0..full.len() {
            assert_eq!(check_first(&full[..cut]), Ok(()), "cut at {cut}");
        }
        assert!(check_first(&full).is_err());
    }
}
