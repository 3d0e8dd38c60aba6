//! The worker's connection to the core: a writer shared by every thread (host
//! callbacks may come from any thread of the function), and a reader thread
//! that hands invocations to the main thread and replies to waiting callers.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use ggcore_ipc::limits::cut_text;
use ggcore_ipc::{Call, Context, Down, FrameLimits, Reply, Up};
use ggcore_plugin_abi::{HostApi, HostError, HostErrorCode, InvocationType, InvokeArgs, InvokeReply, LogLevel, PublishArgs, ShadowOp};

/// Work for the main thread.
pub enum Work {
    Invoke { id: u64, event: Vec<u8>, context: Context },
    Stop,
}

type Pending = Arc<Mutex<HashMap<u64, SyncSender<Reply>>>>;

/// A connection to the core.
#[derive(Clone)]
pub struct Conn {
    writer: Arc<Mutex<UnixStream>>,
    pending: Pending,
    next: Arc<AtomicU64>,
    /// What the core accepts from this worker: a frame over its kind's limit
    /// would end the instance, so it is an error to the caller instead.
    limits: FrameLimits,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Conn {
    /// Wraps a connected stream; starts the reader thread, which sends
    /// invocations and Stop to the returned receiver. `max_payload` is the
    /// core's `maxPayloadBytes` (from the spec).
    pub fn start(stream: UnixStream, max_payload: usize) -> std::io::Result<(Self, Receiver<Work>)> {
        let reader = stream.try_clone()?;
        let conn = Conn {
            writer: Arc::new(Mutex::new(stream)),
            pending: Arc::default(),
            next: Arc::new(AtomicU64::new(1)),
            limits: FrameLimits::up(max_payload),
        };
        let (tx, rx) = mpsc::sync_channel(64);
        let pending = conn.pending.clone();
        let limits = FrameLimits::down(max_payload);
        std::thread::Builder::new().name("ggcore-ipc-reader".into()).spawn(move || read_loop(reader, limits, pending, tx))?;
        Ok((conn, rx))
    }

    /// Sends a host call that needs no answer.
    pub fn cast(&self, call: Call) -> Result<(), HostError> {
        self.send(&Up::Call { corr: 0, call }).map_err(SendError::into_host_error)
    }

    /// Sends one frame, unless it is over what the core accepts for its kind.
    pub fn send(&self, msg: &Up) -> Result<(), SendError> {
        let frame = ggcore_ipc::encode(msg);
        self.limits.check_frame(&frame).map_err(|e| SendError::TooLarge(e.to_string()))?;
        lock(&self.writer).write_all(&frame).map_err(SendError::Closed)
    }

    /// Sends a host call and waits for its reply.
    pub fn call(&self, call: Call) -> Reply {
        let corr = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel(1);
        lock(&self.pending).insert(corr, tx);
        if let Err(e) = self.send(&Up::Call { corr, call }) {
            lock(&self.pending).remove(&corr);
            let e = e.into_host_error();
            return Reply::Error { code: e.code as u8, message: e.message.to_string() };
        }
        rx.recv().unwrap_or(Reply::Error { code: HostErrorCode::Internal as u8, message: "the connection to the core closed".into() })
    }
}

/// Why a frame was not sent.
#[derive(Debug)]
pub enum SendError {
    /// Over the limit of its kind (see `ggcore_ipc::limits`).
    TooLarge(String),
    /// The connection to the core is gone.
    Closed(std::io::Error),
}

impl SendError {
    fn into_host_error(self) -> HostError {
        match self {
            SendError::TooLarge(why) => HostError::new(HostErrorCode::TooLarge, format!("the request is too large: {why}")),
            SendError::Closed(e) => HostError::new(HostErrorCode::Internal, format!("the core cannot be reached: {e}")),
        }
    }
}

fn read_loop(stream: UnixStream, limits: FrameLimits, pending: Pending, work: SyncSender<Work>) {
    let mut stream = std::io::BufReader::new(stream);
    let mut frames = ggcore_ipc::FrameReader::new(limits);
    let mut code = 0;
    loop {
        let body = match frames.read(&mut stream) {
            Ok(Some(body)) => body,
            Ok(None) => break,
            // Reset or closed: the core is gone.
            Err(ggcore_ipc::FrameError::Io(_)) => break,
            Err(e) => {
                crate::say(format_args!("bad frame from the core ({e}); ending the instance"));
                code = 1;
                break;
            }
        };
        match ggcore_ipc::decode::<Down>(&body) {
            Ok(Down::Invoke { id, event, context }) => {
                if work.send(Work::Invoke { id, event, context }).is_err() {
                    break;
                }
            }
            Ok(Down::Reply { corr, reply }) => {
                if let Some(tx) = lock(&pending).remove(&corr) {
                    let _ = tx.send(reply);
                }
            }
            Ok(Down::Stop) => {
                let _ = work.send(Work::Stop);
            }
            Ok(other) => crate::say(format_args!("unexpected frame from the core: {other:?}")),
            Err(e) => {
                crate::say(format_args!("bad frame from the core ({e}); ending the instance"));
                code = 1;
                break;
            }
        }
    }
    // The core is gone: nothing this process does can reach anyone. End it now,
    // even in the middle of a handler (a busy main thread would never see Stop).
    lock(&pending).clear();
    drop(work);
    std::process::exit(code);
}

fn host_error(code: u8, message: String) -> HostError {
    let code = match code {
        0 => HostErrorCode::BadRequest,
        1 => HostErrorCode::NotFound,
        2 => HostErrorCode::Full,
        3 => HostErrorCode::Refused,
        4 => HostErrorCode::TooLarge,
        5 => HostErrorCode::Unavailable,
        _ => HostErrorCode::Internal,
    };
    HostError::new(code, message)
}

fn unexpected(reply: Reply) -> HostError {
    match reply {
        Reply::Error { code, message } => host_error(code, message),
        other => HostError::new(HostErrorCode::Internal, format!("unexpected reply from the core: {other:?}")),
    }
}

/// The host callbacks a plugin gets: each one is a request to the core.
pub struct IpcHost {
    pub conn: Conn,
    /// `maxPayloadBytes` (0: unknown, every publish waits for the core's answer).
    pub max_payload: usize,
    /// Topic filters whose publishes always wait for the core's answer (they
    /// route to the cloud queue, which acknowledges once durable).
    pub wait_for: Vec<String>,
}

impl HostApi for IpcHost {
    fn publish(&self, args: PublishArgs<'_>) -> Result<(), HostError> {
        let call = Call::Publish {
            topic: args.topic.to_string(),
            payload: args.payload.to_vec(),
            queue_full_policy: args.queue_full_policy.to_string(),
            claimed_source: args.claimed_source.to_string(),
        };
        // A plain publish checked here needs no round trip: the core takes the
        // frames in order (and holds this worker back when targets are full).
        // All-or-error publishes, claimed sources and topics routed to the
        // cloud (acknowledged once durable) wait for the core's verdict.
        let plain = self.max_payload > 0
            && args.claimed_source.is_empty()
            && args.queue_full_policy.as_str() != "AllOrError"
            && !self.wait_for.iter().any(|f| ggcore_ipc::topic::filter_matches(f, args.topic.as_str()));
        if plain {
            return match ggcore_ipc::topic::check_publish(args.topic.as_str(), args.payload.len(), self.max_payload) {
                Ok(()) => self.conn.cast(call),
                Err(ggcore_ipc::topic::PublishError::BadTopic(m)) => Err(HostError::new(HostErrorCode::BadRequest, m)),
                Err(ggcore_ipc::topic::PublishError::TooLarge(m)) => Err(HostError::new(HostErrorCode::TooLarge, m)),
            };
        }
        match self.conn.call(call) {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn invoke(&self, args: InvokeArgs<'_>) -> Result<InvokeReply, HostError> {
        let call = Call::Invoke {
            function_arn: args.function_arn.to_string(),
            qualifier: args.qualifier.to_string(),
            event: args.invocation_type == InvocationType::Event,
            client_context: args.client_context.to_string(),
            payload: args.payload.to_vec(),
        };
        match self.conn.call(call) {
            Reply::Invoked { invocation_id, payload, function_error } => {
                Ok(InvokeReply { invocation_id: invocation_id.into(), payload: payload.into(), function_error: function_error.into() })
            }
            other => Err(unexpected(other)),
        }
    }

    fn shadow(&self, op: ShadowOp, thing_name: &str, payload: &[u8]) -> Result<Vec<u8>, HostError> {
        match self.conn.call(Call::Shadow { op: op as u8, thing: thing_name.to_string(), payload: payload.to_vec() }) {
            Reply::Bytes(b) => Ok(b),
            other => Err(unexpected(other)),
        }
    }

    fn get_secret(&self, payload: &[u8]) -> Result<Vec<u8>, HostError> {
        match self.conn.call(Call::GetSecret { payload: payload.to_vec() }) {
            Reply::Bytes(b) => Ok(b),
            other => Err(unexpected(other)),
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        let _ = self.conn.send(&Up::Log { level: level as u8, message: cut_text(message).into_owned() });
    }
}
