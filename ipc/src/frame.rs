//! Reading and writing frames: the one implementation the core, the worker
//! and the zygote all use.
//!
//! A frame is a little-endian `u32` body length, then the body (a postcard
//! message). [`FrameReader`] reads exactly one frame at a time and never
//! more: it asks for the 4-byte prefix, checks the announced length against
//! its limit, and only then makes room for the body. A reader that asks for
//! [`FrameReader::buffer`]'s length therefore never takes bytes of the next
//! frame, so a stream can change hands between frames (a worker reads its
//! `Start` before handing the stream to its connection).

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::FrameError;

/// Largest frame accepted (payloads themselves are bounded by `maxPayloadBytes`).
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Length of the prefix before each body.
const PREFIX: usize = 4;

/// Where the reader is in the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the length prefix (`filled` bytes of it so far).
    Prefix,
    /// Reading the body of this many bytes.
    Body(usize),
}

/// Reads frames one at a time from whatever the caller reads bytes from.
#[derive(Debug)]
pub struct FrameReader {
    limit: usize,
    state: State,
    prefix: [u8; PREFIX],
    body: Vec<u8>,
    /// Bytes of the prefix or body read so far.
    filled: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameReader {
    pub fn new() -> Self {
        Self { limit: MAX_FRAME_BYTES, state: State::Prefix, prefix: [0; PREFIX], body: Vec::new(), filled: 0 }
    }

    /// Room for exactly the bytes the current frame still needs (never
    /// empty). Write received bytes to its start, then call [`Self::advance`].
    pub fn buffer(&mut self) -> &mut [u8] {
        match self.state {
            State::Prefix => &mut self.prefix[self.filled..],
            State::Body(len) => &mut self.body[self.filled..len],
        }
    }

    /// Takes `n` bytes written to [`Self::buffer`]; returns the body once the
    /// frame is complete. A length over the limit is an error before any room
    /// is made for the body.
    pub fn advance(&mut self, n: usize) -> Result<Option<Vec<u8>>, FrameError> {
        self.filled += n;
        match self.state {
            State::Prefix => {
                if self.filled < PREFIX {
                    return Ok(None);
                }
                let len = u32::from_le_bytes(self.prefix) as usize;
                if len > self.limit {
                    return Err(FrameError::TooLarge(len));
                }
                self.body = vec![0; len];
                self.filled = 0;
                self.state = State::Body(len);
                if len == 0 {
                    return Ok(Some(self.finish()));
                }
                Ok(None)
            }
            State::Body(len) if self.filled == len => Ok(Some(self.finish())),
            State::Body(_) => Ok(None),
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        self.state = State::Prefix;
        self.filled = 0;
        std::mem::take(&mut self.body)
    }

    /// The stream ended: fine between frames, an error inside one.
    pub fn end(&self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.state == State::Prefix && self.filled == 0 {
            Ok(None)
        } else {
            Err(FrameError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "the stream ended inside a frame")))
        }
    }

    /// Reads one frame's body from a blocking reader; `Ok(None)` when the
    /// stream ends between frames.
    pub fn read<R: Read>(&mut self, r: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            let n = match r.read(self.buffer()) {
                Ok(0) => return self.end(),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if let Some(body) = self.advance(n)? {
                return Ok(Some(body));
            }
        }
    }

    /// The same from a tokio reader.
    #[cfg(feature = "tokio")]
    pub async fn read_async<R: tokio::io::AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
        use tokio::io::AsyncReadExt;
        loop {
            let n = match r.read(self.buffer()).await {
                Ok(0) => return self.end(),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if let Some(body) = self.advance(n)? {
                return Ok(Some(body));
            }
        }
    }

    /// Reads one frame from a Unix socket, keeping the descriptors that come
    /// with it (SCM_RIGHTS) in `fds`, in order.
    pub fn read_with_fds(&mut self, socket: BorrowedFd<'_>, fds: &mut VecDeque<OwnedFd>) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            let mut cmsg = nix::cmsg_space!([RawFd; 8]);
            let (n, received) = {
                let mut iov = [IoSliceMut::new(self.buffer())];
                let msg = match recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
                    Ok(m) => m,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(io::Error::from(e).into()),
                };
                let mut received = Vec::new();
                for c in msg.cmsgs().map_err(io::Error::from)? {
                    if let ControlMessageOwned::ScmRights(list) = c {
                        received.extend(list);
                    }
                }
                (msg.bytes, received)
            };
            for raw in received {
                // SAFETY: the kernel has just installed these descriptors in
                // this process for us; nothing else owns them.
                fds.push_back(unsafe { OwnedFd::from_raw_fd(raw) });
            }
            if n == 0 {
                return self.end();
            }
            if let Some(body) = self.advance(n)? {
                return Ok(Some(body));
            }
        }
    }
}

/// Writes one frame (as [`crate::encode`] made it) with descriptors attached
/// to its first byte (SCM_RIGHTS).
pub fn write_with_fds<S: Write + AsRawFd>(socket: &mut S, frame: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
    let sent = loop {
        match sendmsg::<()>(socket.as_raw_fd(), &[IoSlice::new(frame)], cmsgs, MsgFlags::empty(), None) {
            Ok(n) => break n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    socket.write_all(&frame[sent..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode, Down, Up};

    /// Hands the reader its bytes one at a time (the worst split a stream can make).
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else { return Ok(0) };
            if buf.is_empty() {
                return Ok(0);
            }
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn frames_split_anywhere_are_read_whole_and_never_past_their_end() {
        let mut stream = encode(&Up::Ready);
        stream.extend(encode(&Up::Log { level: 1, message: "hello".into() }));
        stream.extend(encode(&Down::Stop));
        let mut r = FrameReader::new();
        let mut src = Trickle(&stream);
        assert_eq!(decode::<Up>(&r.read(&mut src).unwrap().unwrap()).unwrap(), Up::Ready);
        // The reader stopped at the end of the first frame: the rest is there.
        assert_eq!(src.0.len(), stream.len() - encode(&Up::Ready).len());
        assert_eq!(decode::<Up>(&r.read(&mut src).unwrap().unwrap()).unwrap(), Up::Log { level: 1, message: "hello".into() });
        assert_eq!(decode::<Down>(&r.read(&mut src).unwrap().unwrap()).unwrap(), Down::Stop);
        assert!(r.read(&mut src).unwrap().is_none());
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_an_error() {
        let frame = encode(&Up::Log { level: 1, message: "cut short".into() });
        for cut in 1..frame.len() {
            let mut r = FrameReader::new();
            assert!(r.read(&mut &frame[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_room_is_made() {
        let mut r = FrameReader::new();
        let prefix = (MAX_FRAME_BYTES as u32 + 1).to_le_bytes();
        assert!(matches!(r.read(&mut &prefix[..]), Err(FrameError::TooLarge(n)) if n == MAX_FRAME_BYTES + 1));
        assert_eq!(r.body.capacity(), 0);
    }

    #[test]
    fn descriptors_travel_with_their_frame() {
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (pipe_r, _pipe_w) = nix::unistd::pipe().unwrap();
        write_with_fds(&mut a, &encode(&Down::Stop), &[pipe_r.as_raw_fd()]).unwrap();
        write_with_fds(&mut a, &encode(&Up::Ready), &[]).unwrap();
        drop(a);
        let mut fds = VecDeque::new();
        let mut r = FrameReader::new();
        use std::os::fd::AsFd;
        assert_eq!(decode::<Down>(&r.read_with_fds(b.as_fd(), &mut fds).unwrap().unwrap()).unwrap(), Down::Stop);
        assert_eq!(fds.len(), 1);
        assert_eq!(decode::<Up>(&r.read_with_fds(b.as_fd(), &mut fds).unwrap().unwrap()).unwrap(), Up::Ready);
        assert!(r.read_with_fds(b.as_fd(), &mut fds).unwrap().is_none());
        assert_eq!(fds.len(), 1);
    }
}
