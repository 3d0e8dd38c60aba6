//! The frames between a runtime plugin and the process it runs a function
//! in (node, a native executable), both ways:
//!
//! ```text
//! u32 LE header_len | u32 LE payload_len | header (UTF-8 JSON object) | payload (raw bytes)
//! ```
//!
//! The header says what the frame is (`t`); events, results, publish
//! payloads and log text travel raw in the payload, never base64.

use std::io::{self, Read, Write};

use serde_json::{Map, Value};

/// Largest header accepted (client contexts and messages are small).
pub const MAX_HEADER: usize = 1 << 20;
/// Largest payload accepted: above the core's largest payload
/// (`maxPayloadBytes` is at most 128 MiB), with room for an error document.
pub const MAX_PAYLOAD: usize = 129 << 20;

/// One frame: its JSON header and raw payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub header: Map<String, Value>,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A frame of type `t` with the given header fields.
    pub fn new(t: &str, fields: Value, payload: Vec<u8>) -> Self {
        let mut header = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        header.insert("t".into(), Value::String(t.into()));
        Frame { header, payload }
    }

    /// The frame's type.
    pub fn kind(&self) -> &str {
        self.str("t")
    }

    /// A string field, or `""`.
    pub fn str(&self, key: &str) -> &str {
        self.header.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// A number field.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.header.get(key).and_then(Value::as_u64)
    }

    /// A boolean field, false when absent.
    pub fn flag(&self, key: &str) -> bool {
        self.header.get(key).and_then(Value::as_bool).unwrap_or(false)
    }

    /// The frame as bytes, ready to write in one call.
    pub fn encode(&self) -> Vec<u8> {
        let header = Value::Object(self.header.clone()).to_string();
        let mut out = Vec::with_capacity(8 + header.len() + self.payload.len());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Writes the frame.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.encode())
    }
}

/// Reads one frame; `Ok(None)` at a clean end of stream (between frames).
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut lens = [0u8; 8];
    let mut got = 0;
    while got < lens.len() {
        match r.read(&mut lens[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a frame ended early")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let header_len = u32::from_le_bytes([lens[0], lens[1], lens[2], lens[3]]) as usize;
    let payload_len = u32::from_le_bytes([lens[4], lens[5], lens[6], lens[7]]) as usize;
    if header_len > MAX_HEADER || payload_len > MAX_PAYLOAD {
        return Err(invalid(format!("a frame is too large (header {header_len} bytes, payload {payload_len} bytes)")));
    }
    let mut header = vec![0u8; header_len];
    r.read_exact(&mut header)?;
    let mut payload = vec![0u8; payload_len];
    r.read_exact(&mut payload)?;
    let header = match serde_json::from_slice::<Value>(&header) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(invalid("a frame header is not a JSON object".into())),
        Err(e) => return Err(invalid(format!("a frame header is not JSON: {e}"))),
    };
    Ok(Some(Frame { header, payload }))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_round_trip_with_raw_payloads() {
        let f = Frame::new("invoke", json!({"id": 7, "clientContext": "{\"custom\":{}}"}), vec![0, 1, 2, 255]);
        let mut bytes = f.encode();
        let second = Frame::new("stop", json!({}), Vec::new());
        bytes.extend(second.encode());
        let mut r = bytes.as_slice();
        assert_eq!(read_frame(&mut r).unwrap().unwrap(), f);
        let got = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((got.kind(), got.payload.len()), ("stop", 0));
        assert!(read_frame(&mut r).unwrap().is_none(), "a clean end between frames");
        assert_eq!(f.u64("id"), Some(7));
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        // Cut inside the lengths, inside the body, a header that is not an
        // object, and lengths over the limits.
        let good = Frame::new("log", json!({"level": 1}), b"hello".to_vec()).encode();
        for cut in [3, 12, good.len() - 1] {
            assert!(read_frame(&mut &good[..cut]).is_err(), "cut at {cut}");
        }
        let mut array = Vec::new();
        array.extend(2u32.to_le_bytes());
        array.extend(0u32.to_le_bytes());
        array.extend(b"[]");
        assert!(read_frame(&mut array.as_slice()).unwrap_err().to_string().contains("not a JSON object"));
        let mut huge = Vec::new();
        huge.extend(2u32.to_le_bytes());
        huge.extend(u32::MAX.to_le_bytes());
        assert!(read_frame(&mut huge.as_slice()).unwrap_err().to_string().contains("too large"));
    }
}
