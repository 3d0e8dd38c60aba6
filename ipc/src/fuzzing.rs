//! Fuzz entry point for worker IPC frames, both directions (see
//! docs/fuzzing.md): the cargo-fuzz target in `fuzz/` calls [`ipc_frames`],
//! and the test below replays the kept corpus and regressions through it.
//!
//! Input: a byte stream as a socket delivers it. Each frame is read with the
//! length-prefix reader and decoded both as a worker's frame ([`Up`]) and as
//! the core's ([`Down`]); whatever decodes must encode to a frame no longer
//! than the one read, that reads and decodes back to the same message.
//!
//! Built only for tests and with the `fuzzing` feature.

use std::fmt::Debug;
use std::io::Cursor;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{decode, encode, read_frame, Down, FrameError, Up, MAX_FRAME_BYTES};

/// Frames read from one input at most.
const MAX_FRAMES: usize = 256;

pub fn ipc_frames(data: &[u8]) {
    let mut stream = Cursor::new(data);
    for _ in 0..MAX_FRAMES {
        let at = stream.position() as usize;
        match read_frame(&mut stream) {
            Ok(Some(body)) => {
                assert!(body.len() <= MAX_FRAME_BYTES);
                assert_eq!(stream.position() as usize, at + 4 + body.len());
                round_trip::<Up>(&body);
                round_trip::<Down>(&body);
            }
            Ok(None) => {
                assert_eq!(at, data.len(), "a stream cut inside a length prefix read as a clean end");
                return;
            }
            Err(FrameError::TooLarge(n)) => {
                assert!(n > MAX_FRAME_BYTES);
                return;
            }
            Err(FrameError::Io(_)) => {
                // Only a stream cut inside a frame (prefix or body) is an error.
                assert!(at < data.len(), "a stream ending between frames read as an error");
                return;
            }
            Err(FrameError::Decode(e)) => panic!("reading a frame does not decode it, yet failed with {e}"),
        }
    }
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(body: &[u8]) {
    let Ok(msg) = decode::<T>(body) else { return };
    let frame = encode(&msg);
    assert!(frame.len() - 4 <= body.len(), "{msg:?} encodes to more bytes than it was read from");
    let again = match read_frame(&mut Cursor::new(&frame)) {
        Ok(Some(b)) => b,
        other => panic!("{msg:?} encodes to a frame that does not read back: {other:?}"),
    };
    match decode::<T>(&again) {
        Ok(m) => assert_eq!(m, msg),
        Err(e) => panic!("{msg:?} encodes to a frame that does not decode: {e}"),
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
