//! Reading and writing frames: the one implementation the core, the worker
//! and the zygote all use.
//!
//! A frame is a little-endian `u32` body length, then the body (a postcard
//! message, whose first byte is its kind). [`FrameReader`] reads exactly one
//! frame at a time and never more: it asks for the 4-byte prefix and the
//! kind, checks the announced length against what that kind may carry
//! ([`FrameLimits`]), and only then makes room for the body. A reader that asks for
//! [`FrameReader::buffer`]'s length therefore never takes bytes of the next
//! frame, so a stream can change hands between frames (a worker reads its
//! `Start` before handing the stream to its connection).

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::{FrameError, FrameLimits};

/// Length of the prefix before each body.
const PREFIX: usize = 4;

/// Where the reader is in the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the length prefix (`filled` bytes of it so far).
    Prefix,
    /// Reading the first byte of a body of this many bytes: its kind.
    Kind(usize),
    /// Reading the rest of a body of this many bytes.
    Body(usize),
}

/// Reads frames one at a time from whatever the caller reads bytes from.
#[derive(Debug)]
pub struct FrameReader {
    limits: FrameLimits,
    state: State,
    prefix: [u8; PREFIX],
    kind: [u8; 1],
    body: Vec<u8>,
    /// Bytes of the prefix or body read so far.
    filled: usize,
}

impl FrameReader {
    /// A reader of frames going one way, checked against `limits`.
    pub fn new(limits: FrameLimits) -> Self {
        Self { limits, state: State::Prefix, prefix: [0; PREFIX], kind: [0], body: Vec::new(), filled: 0 }
    }

    /// Changes the limits (a worker learns `maxPayloadBytes` from its spec).
    pub fn set_limits(&mut self, limits: FrameLimits) {
        self.limits = limits;
    }

    /// Room for exactly the bytes the current frame still needs (never
    /// empty). Write received bytes to its start, then call [`Self::advance`].
    pub fn buffer(&mut self) -> &mut [u8] {
        match self.state {
            State::Prefix => &mut self.prefix[self.filled..],
            State::Kind(_) => &mut self.kind[..],
            State::Body(len) => &mut self.body[self.filled..len],
        }
    }

    /// Takes `n` bytes written to [`Self::buffer`]; returns the body once the
    /// frame is complete. A length over what the frame's kind may carry (or
    /// an unknown kind) is an error before any room is made for the body;
    /// after an error the stream is out of step and must be closed.
    pub fn advance(&mut self, n: usize) -> Result<Option<Vec<u8>>, FrameError> {
        self.filled += n;
        match self.state {
            State::Prefix => {
                if self.filled < PREFIX {
                    return Ok(None);
                }
                let len = u32::from_le_bytes(self.prefix) as usize;
                if len == 0 {
                    return Err(FrameError::Empty);
                }
                self.filled = 0;
                self.state = State::Kind(len);
                Ok(None)
            }
            State::Kind(len) => {
                if self.filled == 0 {
                    return Ok(None);
                }
                self.limits.check(self.kind[0], len)?;
                self.body = vec![0; len];
                self.body[0] = self.kind[0];
                self.state = State::Body(len);
                if len == 1 {
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
    use crate::{decode, encode, limits, Down, Outcome, Up};

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

    const UP: FrameLimits = FrameLimits::up(1000);
    const DOWN: FrameLimits = FrameLimits::down(1000);

    #[test]
    fn frames_split_anywhere_are_read_whole_and_never_past_their_end() {
        let mut stream = encode(&Up::Ready);
        stream.extend(encode(&Up::Log { level: 1, message: "hello".into() }));
        stream.extend(encode(&Up::Result { id: 7, outcome: Outcome::Ok(vec![9; 1000]) }));
        let mut r = FrameReader::new(UP);
        let mut src = Trickle(&stream);
        assert_eq!(decode::<Up>(&r.read(&mut src).unwrap().unwrap()).unwrap(), Up::Ready);
        // The reader stopped at the end of the first frame: the rest is there.
        assert_eq!(src.0.len(), stream.len() - encode(&Up::Ready).len());
        assert_eq!(decode::<Up>(&r.read(&mut src).unwrap().unwrap()).unwrap(), Up::Log { level: 1, message: "hello".into() });
        assert_eq!(decode::<Up>(&r.read(&mut src).unwrap().unwrap()).unwrap(), Up::Result { id: 7, outcome: Outcome::Ok(vec![9; 1000]) });
        assert!(r.read(&mut src).unwrap().is_none());
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_an_error() {
        let frame = encode(&Up::Log { level: 1, message: "cut short".into() });
        for cut in 1..frame.len() {
            let mut r = FrameReader::new(UP);
            assert!(r.read(&mut &frame[..cut]).is_err(), "cut at {cut}");
        }
    }

    /// A prefix and a kind whose frame would be `len` bytes long, and no more.
    fn announce(len: u32, kind: u8) -> Vec<u8> {
        let mut b = len.to_le_bytes().to_vec();
        b.push(kind);
        b
    }

    /// Worker to core: a frame longer than its kind may carry is refused
    /// after five bytes, before any room is made for it, naming kind, size
    /// and limit; the same size is fine for a kind that may carry it.
    #[test]
    fn up_frames_over_their_kind_limit_are_refused_before_allocating() {
        let cases = [
            (0u8, "Hello", limits::MAX_SMALL_BYTES),
            (1, "Ready", limits::MAX_SMALL_BYTES),
            (3, "Result", 1000 + limits::FRAMING_ALLOWANCE),
            (4, "Call", 1000 + limits::FRAMING_ALLOWANCE),
            (5, "Log", limits::MAX_TEXT_BYTES + limits::MAX_SMALL_BYTES),
        ];
        for (kind, name, limit) in cases {
            for len in [limit + 1, 64 << 20, u32::MAX as usize] {
                let mut r = FrameReader::new(UP);
                let e = r.read(&mut &announce(len as u32, kind)[..]).unwrap_err();
                assert_eq!(e.to_string(), format!("a {name} frame of {len} bytes is over the {limit}-byte limit for that kind"));
                assert_eq!(r.body.capacity(), 0, "{name}: room was made for the body");
            }
        }
        // A Log frame of 100 KiB is over its limit, a Result of 100 KiB is not.
        let mut r = FrameReader::new(UP);
        assert!(matches!(r.read(&mut &announce(100 << 10, 5)[..]), Err(FrameError::TooLarge { kind: "Log", .. })));
        let mut r = FrameReader::new(UP);
        assert!(matches!(r.read(&mut &announce(100 << 10, 3)[..]), Err(FrameError::Io(_))), "cut short, not refused");
        // Unknown kinds and empty frames.
        assert!(matches!(FrameReader::new(UP).read(&mut &announce(10, 11)[..]), Err(FrameError::UnknownKind(11))));
        assert!(matches!(FrameReader::new(UP).read(&mut &0u32.to_le_bytes()[..]), Err(FrameError::Empty)));
    }

    /// Core to worker: the same, with the worker's own limits.
    #[test]
    fn down_frames_over_their_kind_limit_are_refused_before_allocating() {
        let cases = [
            (0u8, "Start", limits::MAX_SPEC_BYTES),
            (1, "Invoke", 1000 + limits::FRAMING_ALLOWANCE),
            (2, "Reply", 1000 + limits::FRAMING_ALLOWANCE),
            (5, "Stop", limits::MAX_SMALL_BYTES),
        ];
        for (kind, name, limit) in cases {
            let mut r = FrameReader::new(DOWN);
            let e = r.read(&mut &announce(limit as u32 + 1, kind)[..]).unwrap_err();
            assert_eq!(e.to_string(), format!("a {name} frame of {} bytes is over the {limit}-byte limit for that kind", limit + 1));
            assert_eq!(r.body.capacity(), 0);
        }
        assert!(matches!(FrameReader::new(DOWN).read(&mut &announce(10, 6)[..]), Err(FrameError::UnknownKind(6))));
        // A worker learns maxPayloadBytes from its spec: the Invoke limit follows.
        let mut r = FrameReader::new(FrameLimits::down(0));
        let invoke = encode(&Down::Invoke {
            id: 1,
            event: vec![7; 200_000],
            context: crate::Context { invocation_id: "i".into(), client_context: String::new(), deadline_unix_ms: 0, event: true },
        });
        assert!(matches!(r.read(&mut &invoke[..]), Err(FrameError::TooLarge { kind: "Invoke", .. })));
        let mut r = FrameReader::new(FrameLimits::down(0));
        r.set_limits(FrameLimits::down(200_000));
        assert!(matches!(decode::<Down>(&r.read(&mut &invoke[..]).unwrap().unwrap()), Ok(Down::Invoke { .. })));
    }

    #[test]
    fn descriptors_travel_with_their_frame() {
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (pipe_r, _pipe_w) = nix::unistd::pipe().unwrap();
        write_with_fds(&mut a, &encode(&Down::Stop), &[pipe_r.as_raw_fd()]).unwrap();
        write_with_fds(&mut a, &encode(&Up::Ready), &[]).unwrap();
        drop(a);
        let mut fds = VecDeque::new();
        let mut r = FrameReader::new(UP);
        use std::os::fd::AsFd;
        r.set_limits(DOWN);
        assert_eq!(decode::<Down>(&r.read_with_fds(b.as_fd(), &mut fds).unwrap().unwrap()).unwrap(), Down::Stop);
        r.set_limits(UP);
        assert_eq!(fds.len(), 1);
        assert_eq!(decode::<Up>(&r.read_with_fds(b.as_fd(), &mut fds).unwrap().unwrap()).unwrap(), Up::Ready);
        assert!(r.read_with_fds(b.as_fd(), &mut fds).unwrap().is_none());
        assert_eq!(fds.len(), 1);
    }
}
