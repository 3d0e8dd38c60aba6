//! Fuzz entry point for worker IPC frames, both directions (see
//! docs/fuzzing.md): the cargo-fuzz target in `fuzz/` calls [`ipc_frames`],
//! and the test below replays the kept corpus and regressions through it.
//!
//! Input: a first byte that picks the direction (bit 0: from workers or to
//! them), `maxPayloadBytes` (bits 1-3) and how many bytes each read returns
//! (bits 4-7: the stream split anywhere), then a byte stream as a socket
//! delivers it. Frames are read with [`FrameReader`] as the core and the
//! worker do. Checked: a frame is never read past its end, a clean end only
//! comes between frames, every frame passes its kind's limit and a refused
//! one is refused before room is made for its body; whatever decodes encodes
//! to a frame no longer than the one read, within the same limits, that reads
//! and decodes back to the same message.
//!
//! Built only for tests and with the `fuzzing` feature.

use std::fmt::Debug;
use std::io::{self, Cursor, Read};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::frame::FrameReader;
use crate::limits::Direction;
use crate::{decode, encode, Down, FrameError, FrameLimits, Up};

/// Frames read from one input at most.
const MAX_FRAMES: usize = 256;

pub fn ipc_frames(data: &[u8]) {
    let Some((&setup, stream)) = data.split_first() else { return };
    let max_payload = [0, 1, 16, 100, 1024, 4096, 128 * 1024, 1 << 20][usize::from((setup >> 1) & 7)];
    let limits = if setup & 1 == 0 { FrameLimits::up(max_payload) } else { FrameLimits::down(max_payload) };
    let chunk = usize::from(setup >> 4).max(1);
    let mut src = Chunks { inner: Cursor::new(stream), chunk };
    let mut reader = FrameReader::new(limits);
    for _ in 0..MAX_FRAMES {
        let at = src.inner.position() as usize;
        let read = reader.read(&mut src);
        let now = src.inner.position() as usize;
        match read {
            Ok(Some(body)) => {
                assert_eq!(now, at + 4 + body.len(), "a frame was read past its end");
                let tag = body[0];
                let limit = limits.limit(tag).unwrap_or_else(|e| panic!("a frame of unknown kind {tag} was read: {e}"));
                assert!(body.len() <= limit, "a {} byte frame passed the {limit} byte limit", body.len());
                match limits.direction {
                    Direction::Up => round_trip::<Up>(limits, &body),
                    Direction::Down => round_trip::<Down>(limits, &body),
                }
            }
            Ok(None) => {
                assert_eq!(at, stream.len(), "a stream ending inside a frame read as a clean end");
                return;
            }
            Err(FrameError::Io(_)) => {
                assert!(at < stream.len() && now == stream.len(), "an error while the stream was whole");
                return;
            }
            Err(e) => {
                // Refused from the prefix and the kind alone.
                assert!(now <= at + 5, "{e}, after reading {} bytes of the frame", now - at);
                let prefix = stream.get(at..at + 4).map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize);
                match e {
                    FrameError::Empty => assert_eq!(prefix, Some(0)),
                    FrameError::UnknownKind(tag) => assert!(limits.kind_name(tag).is_none()),
                    FrameError::TooLarge { len, limit, .. } => assert!(prefix == Some(len) && len > limit),
                    other => panic!("reading a frame failed with {other}"),
                }
                return;
            }
        }
    }
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(limits: FrameLimits, body: &[u8]) {
    let Ok(msg) = decode::<T>(body) else { return };
    let frame = encode(&msg);
    assert!(frame.len() - 4 <= body.len(), "{msg:?} encodes to more bytes than it was read from");
    assert_eq!(frame.get(4), body.first(), "{msg:?} encodes to another kind");
    if let Err(e) = limits.check_frame(&frame) {
        panic!("{msg:?} was read within its limit but its own encoding is refused: {e}");
    }
    let again = match FrameReader::new(limits).read(&mut Cursor::new(&frame)) {
        Ok(Some(b)) => b,
        other => panic!("{msg:?} encodes to a frame that does not read back: {other:?}"),
    };
    match decode::<T>(&again) {
        Ok(m) => assert_eq!(m, msg),
        Err(e) => panic!("{msg:?} encodes to a frame that does not decode: {e}"),
    }
}

/// A stream that hands out at most `chunk` bytes per read.
struct Chunks<'a> {
    inner: Cursor<&'a [u8]>,
    chunk: usize,
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk);
        self.inner.read(&mut buf[..n])
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    #[test]
    fn ipc_frames_kept_inputs_pass() {
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let fuzz = Path::new(&manifest).join("../fuzz");
        let mut n = 0;
        for kind in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join("ipc_frames")) else { continue };
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
            files.sort();
            for file in files {
                let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                if std::panic::catch_unwind(|| super::ipc_frames(&data)).is_err() {
                    panic!("fuzz target ipc_frames fails on {}", file.display());
                }
                n += 1;
            }
        }
        assert!(n > 0, "no kept inputs for fuzz target ipc_frames under {}", fuzz.display());
    }
}
