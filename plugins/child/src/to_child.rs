//! Writing frames to the child (its fd 3) from any thread without a hop when the
//! pipe has room, and without ever blocking the reader of the child's frames.
//!
//! A small frame goes straight into the pipe when nothing is queued and the
//! pipe can take it at once (a write of at most `PIPE_BUF` bytes to a pipe
//! that polls writable neither blocks nor splits). Anything else — a large
//! frame, a full pipe because the child is busy, or a frame behind queued ones —
//! goes to a writer thread, in order. So a function that publishes in a loop
//! without yielding to its event loop (it reads no replies meanwhile) fills
//! the queue, not a blocked write: the plugin keeps reading the child's frames and
//! nothing deadlocks.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

enum Queued {
    Frame(Vec<u8>),
    /// Close the pipe after what was queued before.
    Close,
}

/// A handle on the child's input, shared by every thread that writes to it.
#[derive(Clone)]
pub struct ToChild {
    shared: Arc<Shared>,
}

struct Shared {
    /// The direct path; `None` once closed.
    direct: Mutex<Option<(File, Sender<Queued>)>>,
    /// Frames handed to the writer thread and not yet written.
    backlog: AtomicUsize,
}

impl ToChild {
    /// Takes the child's input pipe and starts its writer thread.
    pub fn new(pipe: File) -> std::io::Result<Self> {
        let writer = pipe.try_clone()?;
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared { direct: Mutex::new(Some((pipe, tx))), backlog: AtomicUsize::new(0) });
        let for_writer = shared.clone();
        std::thread::Builder::new().name("ggcore-child-writer".into()).spawn(move || write_loop(writer, rx, &for_writer))?;
        Ok(ToChild { shared })
    }

    /// Sends one encoded frame; false once the pipe is closed or the child gone.
    pub fn send(&self, frame: Vec<u8>) -> bool {
        let mut direct = self.shared.direct.lock().unwrap_or_else(|e| e.into_inner());
        let Some((pipe, queue)) = direct.as_mut() else { return false };
        if self.shared.backlog.load(Ordering::SeqCst) == 0 && frame.len() <= libc::PIPE_BUF && writable_now(pipe) {
            return pipe.write_all(&frame).is_ok();
        }
        self.shared.backlog.fetch_add(1, Ordering::SeqCst);
        queue.send(Queued::Frame(frame)).is_ok()
    }

    /// Closes the child's input once what is queued is written (the child then exits).
    pub fn close(&self) {
        let mut direct = self.shared.direct.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, queue)) = direct.take() {
            let _ = queue.send(Queued::Close);
        }
    }
}

/// Whether the pipe takes `PIPE_BUF` bytes without blocking.
fn writable_now(pipe: &File) -> bool {
    let mut pfd = libc::pollfd { fd: pipe.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
    // SAFETY: one valid pollfd, no wait.
    unsafe { libc::poll(&mut pfd, 1, 0) == 1 && pfd.revents & libc::POLLOUT != 0 }
}

/// Writes queued frames in order. While any is queued, senders queue too, so
/// only this thread writes and it needs no lock while a write blocks.
fn write_loop(mut pipe: File, queue: Receiver<Queued>, shared: &Shared) {
    while let Ok(item) = queue.recv() {
        match item {
            Queued::Frame(frame) => {
                let ok = pipe.write_all(&frame).is_ok();
                shared.backlog.fetch_sub(1, Ordering::SeqCst);
                if !ok {
                    // The child is gone; the reader sees its end. Later frames
                    // are dropped with the queue.
                    return;
                }
            }
            Queued::Close => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::FromRawFd;

    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two fresh descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: owned by nobody else.
        unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
    }

    /// Small and large frames from several threads arrive whole and, per
    /// thread, in order, even while the reader is slow (the pipe fills and
    /// the writer thread takes over); close ends the stream after them.
    #[test]
    fn frames_arrive_whole_in_order_and_close_ends_the_stream() {
        let (mut read, write) = pipe();
        let to_child = ToChild::new(write).unwrap();
        let senders: Vec<_> = (0..3u8)
            .map(|t| {
                let to_child = to_child.clone();
                std::thread::spawn(move || {
                    for i in 0..300u32 {
                        let len = if i % 50 == 0 { 100_000 } else { 40 };
                        let mut f = vec![t; len];
                        f[1..5].copy_from_slice(&i.to_le_bytes());
                        f[5..9].copy_from_slice(&(len as u32).to_le_bytes());
                        assert!(to_child.send(f));
                    }
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(50));
        for s in senders {
            s.join().unwrap();
        }
        to_child.close();
        assert!(!to_child.send(vec![9; 10]), "closed");
        let mut all = Vec::new();
        read.read_to_end(&mut all).unwrap();
        let mut next = [0u32; 3];
        let mut at = 0;
        while at < all.len() {
            let t = all[at] as usize;
            let i = u32::from_le_bytes(all[at + 1..at + 5].try_into().unwrap());
            let len = u32::from_le_bytes(all[at + 5..at + 9].try_into().unwrap()) as usize;
            assert!(all[at + 9..at + len].iter().all(|&b| b == t as u8), "frame {t}/{i} whole");
            assert_eq!(i, next[t], "thread {t} in order");
            next[t] += 1;
            at += len;
        }
        assert_eq!(next, [300; 3]);
    }
}
