//! What workers print: their stdout and stderr, read line by line into the
//! function's log (or, for a spare not yet assigned, the core's debug log).

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use ggcore_plugin_abi::LogLevel;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio_util::task::TaskTracker;

use super::slot::FunctionSlot;

/// Lines are cut at this length: a function printing without newlines cannot
/// make the core hold its output in memory.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Where a worker's stdout/stderr lines go: the function it was assigned to,
/// or (a spare not yet assigned) the core's own debug log.
#[derive(Default)]
pub struct LineSink {
    slot: Mutex<Option<Arc<FunctionSlot>>>,
}

impl LineSink {
    pub fn for_slot(slot: &Arc<FunctionSlot>) -> Arc<Self> {
        Arc::new(Self { slot: Mutex::new(Some(slot.clone())) })
    }

    pub fn assign(&self, slot: &Arc<FunctionSlot>) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot.clone());
    }

    pub fn write(&self, level: LogLevel, line: &str) {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match slot {
            Some(s) => s.log.write(level, line),
            None => tracing::debug!(level = level.as_str(), "spare worker: {line}"),
        }
    }
}

/// Writes the lines a worker prints to `sink`, at `level`. The task is
/// registered with `tracker` and ends when every holder of the pipe's write
/// end (the worker) has ended.
pub(crate) fn forward_lines<R: AsyncRead + Send + Unpin + 'static>(tracker: &TaskTracker, sink: Arc<LineSink>, stream: R, level: LogLevel) {
    tracker.spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut line: Vec<u8> = Vec::new();
        let mut cut = 0usize;
        loop {
            let (consumed, ended) = {
                let Ok(buf) = reader.fill_buf().await else { break };
                if buf.is_empty() {
                    break;
                }
                let (chunk, ended) = match buf.iter().position(|b| *b == b'\n') {
                    Some(i) => (&buf[..i], true),
                    None => (buf, false),
                };
                let room = MAX_LINE_BYTES.saturating_sub(line.len());
                line.extend_from_slice(&chunk[..chunk.len().min(room)]);
                cut += chunk.len().saturating_sub(room);
                (chunk.len() + usize::from(ended), ended)
            };
            reader.consume(consumed);
            if ended {
                emit(&sink, level, &mut line, &mut cut);
            }
        }
        if !line.is_empty() || cut > 0 {
            emit(&sink, level, &mut line, &mut cut);
        }
    });
}

fn emit(sink: &LineSink, level: LogLevel, line: &mut Vec<u8>, cut: &mut usize) {
    let mut text = String::from_utf8_lossy(line).into_owned();
    if *cut > 0 {
        text.push_str(&format!(" [line cut: {} more bytes]", *cut));
    }
    sink.write(level, &text);
    line.clear();
    *cut = 0;
}

/// Two pipes for a forked worker's stdout and stderr: the read ends wrapped
/// for tokio (the core keeps them), the write ends to hand to the zygote.
pub(crate) type Pipes = ((tokio::net::unix::pipe::Receiver, OwnedFd), (tokio::net::unix::pipe::Receiver, OwnedFd));

pub(crate) fn new_pipes() -> std::io::Result<Pipes> {
    let pipe = || -> std::io::Result<(tokio::net::unix::pipe::Receiver, OwnedFd)> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        Ok((tokio::net::unix::pipe::Receiver::from_owned_fd(r)?, w))
    };
    Ok((pipe()?, pipe()?))
}
